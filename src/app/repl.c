/* repl.c - see include/app/repl.h */
#define _GNU_SOURCE
#include "app/repl.h"

#include <errno.h>
#include <jansson.h>
#include <readline/history.h>
#include <readline/readline.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/scripted.h"
#include "core/buf.h"
#include "core/common.h"
#include "core/meminfo.h"
#include "model/conversation.h"
#include "text/stream.h"
#include "tui/preview.h"
#include "app/repl_skills.h"
#include "tui/statusbar.h"

typedef struct {
    vc_model *m;
    vc_conversation conv;
    vc_sampler_params sampling;
    int max_tokens;
    bool ignore_eos, quit, color;
    vc_preview_mode preview;
    int cell_w, cell_h;
    vc_statusbar bar;
    vc_buf pending;               /* continued lines (trailing backslash) */
    double last_tok_s;
    volatile sig_atomic_t *interrupt;
    char history_path[4096];
    bool started;                 /* reply text shown yet (leading space dropped) */
    char note[VC_EVENT_LEN];      /* the model's load note, shown until the first event */
    unsigned shown_events;
} repl;

static repl *R;   /* readline's line callback has no user pointer */

static const char *const COMMANDS[] = { "/image", "/images", "/clear", "/stats", "/set", "/system",
                                        "/save", "/load", "/model", "/help", "/quit", "/caption", "/detect",
                                        "/point", NULL };

/* ---- status ---- */

static void mib(char *out, size_t n, size_t bytes)
{
    if (bytes >= (size_t)1 << 30)
        snprintf(out, n, "%.1fG", bytes / 1073741824.0);
    else
        snprintf(out, n, "%.1fM", bytes / 1048576.0);
}

/* The latest memory/context event; the model's load note until there is one. */
static const char *latest_event(const repl *r)
{
    return r->conv.session.event[0] ? r->conv.session.event : r->note;
}

static void status(repl *r)
{
    char rss[16], w[16], kv[16], img[16], avail[16], line[512];
    const vc_llm *l = &r->m->llm;
    mib(rss, sizeof rss, vc_mem_rss());
    mib(w, sizeof w, vc_tensors_bytes(&l->weights));
    mib(kv, sizeof kv, vc_llm_kv_bytes(l));
    mib(img, sizeof img, vc_session_image_bytes(&r->conv.session));
    mib(avail, sizeof avail, vc_mem_available());
    const char *event = latest_event(r);
    snprintf(line, sizeof line, " RSS %s | weights %s | KV %d/%d (%s) | img %s | avail %s | %.0f tok/s%s%s",
             rss, w, l->n_past, l->n_ctx, kv, img, avail, r->last_tok_s, event[0] ? " | " : "", event);
    vc_statusbar_draw(&r->bar, line);
}

/* Memory pressure (the process near its budget, little memory left on the
 * system, or PSI reporting stalls) drops the image cache; see model/session.h. */
static void check_pressure(repl *r) { vc_session_check_pressure(&r->conv.session); }

/* ---- output ---- */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static void complain(void) { say("error: %s\n", vc_error()); }

static int on_text(void *ctx, const char *text, size_t len)
{
    repl *r = ctx;
    vc_reply_trim_start(&r->started, &text, &len);
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

/* ---- commands ---- */

static void cmd_image(repl *r, char *args)
{
    for (char *path = strtok(args, " \t"); path; path = strtok(NULL, " \t")) {
        vc_image img;
        if (vc_image_load(path, NULL, &img) != 0) {
            complain();
            continue;
        }
        int cols = r->bar.active ? VC_MIN(r->bar.cols - 2, 48) : 48;
        vc_preview_show(stdout, &img, r->preview, cols, 12, r->cell_w, r->cell_h);
        vc_image_free(&img);
        double t0 = vc_now_ms();
        if (vc_conv_attach(&r->conv, path) != 0) {
            complain();
            continue;
        }
        const vc_conv_image *e = &r->conv.images[r->conv.n_images - 1];
        say("[image %d: %s, %d tokens, encoded in %.0f ms]\n", r->conv.n_images, path, e->n_tokens, vc_now_ms() - t0);
        check_pressure(r);
    }
}

/* /caption, /detect, /point (app/repl_skills.c) on the latest image */
static void cmd_skill(repl *r, const char *cmd, const char *args)
{
    int last = r->conv.n_images - 1;
    vc_image_embd cached = { 0 }, encoded = { 0 };
    const vc_image_embd *image = NULL;
    if (last >= 0) {   /* the session's cached rows, or encoded again if memory pressure dropped them */
        if (vc_session_find_image(&r->conv.session, r->conv.images[last].key, &cached))
            image = &cached;
        else if (vc_model_encode_image(r->m, r->conv.image_paths[last], &encoded) == 0)
            image = &encoded;
        else {
            complain();
            return;
        }
    }
    vc_repl_skill_ctx ctx = { r->m, last >= 0 ? r->conv.image_paths[last] : NULL, image, r->sampling, r->max_tokens,
                              r->preview, r->bar.active ? VC_MIN(r->bar.cols - 2, 48) : 48, r->cell_w, r->cell_h,
                              r->interrupt };
    if (vc_repl_skill(&ctx, cmd, args) != 0)
        complain();
    vc_session_forget(&r->conv.session);   /* the KV cache held the skill's prompt */
    vc_image_embd_free(&encoded);
}

static void cmd_images(repl *r)
{
    if (r->conv.n_images == 0)
        say("no images\n");
    for (int i = 0; i < r->conv.n_images; i++)
        say("%d  %s  %d tokens  %s\n", i + 1, r->conv.image_paths[i], r->conv.images[i].n_tokens,
            i < r->conv.used_images ? "sent" : "attached to the next message");
}

static void cmd_stats(repl *r)
{
    char a[16], b[16], c[16], d[16];
    const vc_llm *l = &r->m->llm;
    mib(a, sizeof a, vc_mem_rss());
    mib(b, sizeof b, vc_mem_peak_rss());
    mib(c, sizeof c, vc_tensors_bytes(&l->weights));
    mib(d, sizeof d, vc_llm_kv_bytes(l));
    say("context %d of %d tokens, %zu turns, %d images\nRSS %s (peak %s), weights %s mapped, KV cache %s\n"
        "last reply %.1f tok/s; %u memory/context events%s%s\n",
        l->n_past, l->n_ctx, r->conv.n_turns, r->conv.n_images, a, b, c, d, r->last_tok_s, r->conv.session.events,
        latest_event(r)[0] ? ", latest: " : "", latest_event(r));
}

static void cmd_set(repl *r, char *args)
{
    char *key = strtok(args, " \t"), *val = strtok(NULL, "");
    vc_sampler_params *p = &r->sampling;
    if (!key) {
        say("temp %g  top-p %g  top-k %d  min-p %g  repeat-penalty %g  max-tokens %d  seed %llu  ignore-eos %s\n",
            p->temperature, p->top_p, p->top_k, p->min_p, p->repeat_penalty, r->max_tokens,
            (unsigned long long)p->seed, r->ignore_eos ? "on" : "off");
        return;
    }
    if (!val) {
        say("usage: /set KEY VALUE (/set alone lists them)\n");
        return;
    }
    char *end;
    double v = strtod(val, &end);
    bool number = end != val && *end == 0;
    if (strcmp(key, "ignore-eos") == 0)
        r->ignore_eos = strcmp(val, "on") == 0 || strcmp(val, "1") == 0 || strcmp(val, "true") == 0;
    else if (!number)
        say("%s: '%s' is not a number\n", key, val);
    else if (strcmp(key, "temp") == 0 && v >= 0)
        p->temperature = (float)v;
    else if (strcmp(key, "top-p") == 0 && v > 0 && v <= 1)
        p->top_p = (float)v;
    else if (strcmp(key, "top-k") == 0 && v >= 0)
        p->top_k = (int)v;
    else if (strcmp(key, "min-p") == 0 && v >= 0 && v <= 1)
        p->min_p = (float)v;
    else if (strcmp(key, "repeat-penalty") == 0 && v > 0)
        p->repeat_penalty = (float)v;
    else if (strcmp(key, "max-tokens") == 0 && v >= 1)
        r->max_tokens = (int)v;
    else if (strcmp(key, "seed") == 0 && v >= 0)
        p->seed = (uint64_t)v;
    else
        say("unknown setting or value out of range: %s %s\n", key, val);
}

/* Conversation files are what --messages reads: an OpenAI-style messages
 * array, images as image_url parts (file paths) before the message's text. */
static void cmd_save(repl *r, char *path)
{
    if (!path || !*path) {
        say("usage: /save FILE\n");
        return;
    }
    json_t *doc = json_array();
    if (r->conv.system)
        json_array_append_new(doc, json_pack("{s:s, s:s}", "role", "system", "content", r->conv.system));
    int img = 0;
    for (size_t i = 0; i < r->conv.n_turns; i++) {
        const vc_turn *t = &r->conv.turns[i];
        json_t *content;
        if (t->n_images == 0) {
            content = json_string(t->content);
        } else {
            content = json_array();
            for (int k = 0; k < t->n_images && img < r->conv.n_images; k++)
                json_array_append_new(content, json_pack("{s:s, s:{s:s}}", "type", "image_url", "image_url", "url",
                                                         r->conv.image_paths[img++]));
            json_array_append_new(content, json_pack("{s:s, s:s}", "type", "text", "text", t->content));
        }
        json_array_append_new(doc, json_pack("{s:s, s:o}", "role", t->role, "content", content));
    }
    char *text = json_dumps(doc, JSON_INDENT(1));
    json_decref(doc);
    if (!text || vc_write_file_atomic(path, text, strlen(text)) != 0)
        complain();
    else
        say("saved %zu turns to %s\n", r->conv.n_turns, path);
    free(text);
}

/* A messages array (what /save writes) as the conversation's
 * {"system", "turns": [{"role", "content", "images"}]} document; NULL when
 * the text is not a messages array (an older file, or malformed: the
 * loader reports it). */
static char *messages_as_turns(const char *text, size_t len, const char *path)
{
    json_t *msgs = json_loadb(text, len, 0, NULL);
    if (!json_is_array(msgs)) {
        json_decref(msgs);
        return NULL;
    }
    json_t *doc = json_pack("{s:i, s:[]}", "version", 1, "turns"), *turns = json_object_get(doc, "turns");
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        json_t *content = json_object_get(m, "content"), *images = json_array(), *part;
        vc_buf b = { 0 };
        if (json_is_string(content))
            vc_buf_puts(&b, json_string_value(content));
        size_t k;
        json_array_foreach(content, k, part) {
            const char *type = json_string_value(json_object_get(part, "type"));
            json_t *u = json_object_get(part, "image_url");
            if (type && strcmp(type, "text") == 0 && json_is_string(json_object_get(part, "text")))
                vc_buf_puts(&b, json_string_value(json_object_get(part, "text")));
            else if (type && strcmp(type, "image_url") == 0)
                json_array_append(images, json_is_string(u) ? u : json_object_get(u, "url"));
        }
        char *s = vc_buf_take(&b, NULL);
        if (role && strcmp(role, "system") == 0)
            json_object_set_new(doc, "system", json_string(s ? s : ""));
        else
            json_array_append_new(turns, json_pack("{s:s?, s:s?, s:o}", "role", role, "content", s ? s : "", "images",
                                                   images));
        if (role && strcmp(role, "system") == 0)
            json_decref(images);
        free(s);
    }
    char *out = json_dumps(doc, 0);
    json_decref(doc);
    json_decref(msgs);
    (void)path;
    return out;
}

static void cmd_load(repl *r, char *path)
{
    size_t len;
    char *text = path && *path ? vc_read_file(path, &len) : NULL;
    if (!text) {
        say(path && *path ? "error: %s\n" : "usage: /load FILE\n", vc_error());
        return;
    }
    char *turns = messages_as_turns(text, len, path);   /* NULL: the older {"system", "turns"} format */
    int rc = vc_conv_load_json(&r->conv, turns ? turns : text, turns ? strlen(turns) : len, path);
    free(turns);
    if (rc != 0)
        complain();
    else
        say("loaded %zu turns from %s\n", r->conv.n_turns, path);
    free(text);
}

static void cmd_help(void)
{
    say("/image PATH...   attach images to your next message (a preview is shown)\n"
        "/images          list the conversation's images\n"
        "/clear           start a new conversation\n"
        "/stats           context, speed and memory\n"
        "/set [KEY VALUE] temp, top-p, top-k, min-p, repeat-penalty, max-tokens, seed, ignore-eos\n"
        "/system [TEXT]   set or clear the system message\n"
        "/save FILE, /load FILE   save or restore the conversation\n"
        "/model           what is loaded\n"
        "/caption [short|normal|long], /detect OBJECT, /point OBJECT   Moondream2's skills on the latest\n"
        "                 image; boxes and points are drawn over its preview and listed\n"
        "/quit            leave (or Ctrl-D); Ctrl-C stops a reply\n"
        "End a line with \\ to continue on the next one.\n");
}

static void cmd_model(repl *r)
{
    const vc_llm_config *c = &r->m->llm.cfg;
    say("%s (%s): %d layers, dim %d, %d/%d heads, vocab %d, chat format %s, context %d%s\n", r->m->path,
        r->m->format, c->n_layers, c->dim, c->n_heads, c->n_kv_heads, c->n_vocab,
        vc_chat_format_name(r->m->chat.format), r->m->llm.n_ctx, r->m->vision ? ", takes images" : "");
}

/* ---- a chat turn ---- */

static void chat(repl *r, const char *text)
{
    check_pressure(r);
    vc_gen_options opt = { .max_tokens = r->max_tokens, .ignore_eos = r->ignore_eos, .sampling = r->sampling,
                           .on_text = on_text, .ctx = r, .interrupt = r->interrupt };
    vc_gen_result res;
    r->started = false;
    int rc = vc_conv_turn(&r->conv, text, &opt, &res);
    if (res.stop == VC_STOP_INTERRUPT)
        say(" [stopped]");
    say("\n");
    if (rc != 0)
        complain();
    r->last_tok_s = res.decode_ms > 0 ? res.n_tokens / (res.decode_ms / 1e3) : 0;
    check_pressure(r);
    if (r->conv.session.events != r->shown_events) {   /* memory and context events also go into the transcript */
        r->shown_events = r->conv.session.events;
        say("[%s]\n", r->conv.session.event);
    }
    vc_gen_result_free(&res);
    if (*r->interrupt != SIGTERM)
        *r->interrupt = 0;
}

static void handle(repl *r, char *line)
{
    char *cmd = line + strspn(line, " \t");
    if (*cmd != '/') {
        if (*cmd)
            chat(r, line);
        return;
    }
    char *args = cmd + strcspn(cmd, " \t");
    if (*args)
        *args++ = 0;
    args += strspn(args, " \t");
    if (strcmp(cmd, "/image") == 0)
        cmd_image(r, args);
    else if (strcmp(cmd, "/images") == 0)
        cmd_images(r);
    else if (strcmp(cmd, "/clear") == 0) {
        vc_conv_clear(&r->conv);
        say("new conversation\n");
    } else if (strcmp(cmd, "/stats") == 0)
        cmd_stats(r);
    else if (strcmp(cmd, "/set") == 0)
        cmd_set(r, args);
    else if (strcmp(cmd, "/system") == 0)
        vc_conv_set_system(&r->conv, *args ? args : NULL);
    else if (strcmp(cmd, "/save") == 0)
        cmd_save(r, args);
    else if (strcmp(cmd, "/load") == 0)
        cmd_load(r, args);
    else if (strcmp(cmd, "/model") == 0)
        cmd_model(r);
    else if (strcmp(cmd, "/help") == 0)
        cmd_help();
    else if (strcmp(cmd, "/quit") == 0 || strcmp(cmd, "/exit") == 0)
        r->quit = true;
    else if (vc_repl_is_skill(cmd))
        cmd_skill(r, cmd, args);
    else
        say("unknown command %s (/help lists them)\n", cmd);
}

/* ---- readline plumbing ---- */

static void on_line(char *line)
{
    repl *r = R;
    if (!line) {                      /* Ctrl-D */
        say("\n");
        r->quit = true;
        return;
    }
    size_t len = strlen(line);
    bool more = len && line[len - 1] == '\\';
    if (more)
        line[len - 1] = '\n';
    vc_buf_puts(&r->pending, line);
    free(line);
    if (more) {
        rl_set_prompt("... ");
        return;
    }
    rl_set_prompt("> ");
    char *full = vc_buf_take(&r->pending, NULL);
    if (!full)
        return;
    if (*full) {
        add_history(full);
        if (r->history_path[0])
            append_history(1, r->history_path);
    }
    rl_callback_handler_remove();     /* readline must not echo while we stream */
    handle(r, full);
    free(full);
    status(r);
    if (*r->interrupt == SIGTERM)
        r->quit = true;
    if (!r->quit)
        rl_callback_handler_install("> ", on_line);
}

static char *command_names(const char *text, int state)
{
    static int i;
    if (!state)
        i = 0;
    while (COMMANDS[i])
        if (strncmp(COMMANDS[i++], text, strlen(text)) == 0)
            return strdup(COMMANDS[i - 1]);
    return NULL;
}

/* Commands complete at the start of a line, file names everywhere else. */
static char **complete(const char *text, int start, int end)
{
    (void)end;
    if (start == 0 && text[0] == '/')
        return rl_completion_matches(text, command_names);
    return NULL;
}

static void history_location(repl *r)
{
    const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    char dir[3800];
    if (state && *state)
        snprintf(dir, sizeof dir, "%s/vlmchat", state);
    else if (home && *home)
        snprintf(dir, sizeof dir, "%s/.local/state/vlmchat", home);
    else
        return;
    /* create the directory chain */
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(dir, 0700);
            *p = '/';
        }
    mkdir(dir, 0700);
    snprintf(r->history_path, sizeof r->history_path, "%s/history", dir);
    struct stat st;
    if (stat(r->history_path, &st) != 0)
        write_history(r->history_path);   /* append_history needs the file to exist */
    read_history(r->history_path);
    stifle_history(1000);
}

int vc_run_repl(vc_model *m, const vc_cli *cli, volatile sig_atomic_t *interrupt)
{
    repl r = { 0 };
    R = &r;
    r.m = m;
    r.interrupt = interrupt;
    r.sampling = vc_effective_sampling(m, cli);
    r.max_tokens = cli->max_tokens;
    r.ignore_eos = cli->ignore_eos;
    vc_conv_init(&r.conv, m);
    if (cli->system)
        vc_conv_set_system(&r.conv, cli->system);
    int forced = vc_preview_from_name(cli->preview);
    if (forced >= 0)
        r.preview = (vc_preview_mode)forced;
    else
        r.preview = vc_preview_detect(STDIN_FILENO, STDOUT_FILENO, 300, &r.cell_w, &r.cell_h);
    if (r.cell_w == 0)
        r.cell_w = 10, r.cell_h = 20;
    if (!cli->no_status)
        vc_statusbar_init(&r.bar);
    history_location(&r);
    rl_attempted_completion_function = complete;
    rl_catch_signals = 0;
    say("vlmchat - %s. /help for commands, Ctrl-D to quit.\n", m->path);
    if (m->note[0])
        snprintf(r.note, sizeof r.note, "%.150s", m->note);
    for (int i = 0; i < cli->n_images; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s", cli->images[i]);
        cmd_image(&r, path);
    }
    status(&r);
    rl_callback_handler_install("> ", on_line);
    while (!r.quit) {
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(STDIN_FILENO, &fds);
        if (select(STDIN_FILENO + 1, &fds, NULL, NULL, NULL) < 0) {
            if (errno != EINTR)
                break;
            if (*interrupt == SIGTERM) {
                r.quit = true;
                break;
            }
            if (*interrupt) {         /* Ctrl-C at the prompt: drop the line */
                *interrupt = 0;
                vc_buf_free(&r.pending);
                rl_set_prompt("> ");
                rl_replace_line("", 0);
                rl_crlf();
                rl_on_new_line();
                rl_redisplay();
            }
            continue;
        }
        rl_callback_read_char();
    }
    rl_callback_handler_remove();
    vc_statusbar_end(&r.bar);
    vc_buf_free(&r.pending);
    vc_conv_free(&r.conv);
    if (*interrupt == SIGTERM)
        return vc_fail_code(VC_EXIT_INTERRUPTED, "terminated");
    return 0;
}
