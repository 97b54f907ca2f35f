/* scripted.c - see include/app/scripted.h */
#define _POSIX_C_SOURCE 200809L
#include "app/scripted.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/buf.h"
#include "core/common.h"
#include "app/messages.h"
#include "app/template.h"
#include "model/generate.h"
#include "model/prompt.h"
#include "text/stream.h"

vc_sampler_params vc_effective_sampling(const vc_model *m, const vc_cli *cli)
{
    vc_sampler_params p = m->has_sampling_defaults ? m->sampling : vc_sampler_defaults();
    if (cli->set_temp)
        p.temperature = cli->sampling.temperature;
    if (cli->set_top_p)
        p.top_p = cli->sampling.top_p;
    if (cli->set_top_k)
        p.top_k = cli->sampling.top_k;
    if (cli->set_min_p)
        p.min_p = cli->sampling.min_p;
    if (cli->set_repeat_penalty)
        p.repeat_penalty = cli->sampling.repeat_penalty;
    p.seed = cli->sampling.seed;
    return p;
}

/* Writes and flushes; fails (output closed) on EPIPE or any write error. */
static int emit(const char *s, size_t n)
{
    if ((n && fwrite(s, 1, n, stdout) != n) || fflush(stdout) != 0)
        return -1;
    return 0;
}

/* Streams a reply; the space a tokenizer puts before the first word is not shown. */
static int on_text(void *ctx, const char *text, size_t len)
{
    vc_reply_trim_start(ctx, &text, &len);
    return emit(text, len) == 0 ? 0 : 1;
}

static size_t peak_rss_bytes(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (size_t)ru.ru_maxrss * 1024 : 0;
}

static int print_json(const vc_model *m, const vc_gen_result *r)
{
    vc_buf b = { 0 };
    double load = m->load_ms, pre = r->prefill_ms, dec = r->decode_ms;
    vc_buf_puts(&b, "{\"text\":");
    vc_buf_json_string(&b, r->text, r->text_len);
    vc_buf_puts(&b, ",\"tokens\":[");
    for (size_t i = 0; i < r->n_tokens; i++)
        vc_buf_printf(&b, "%s%d", i ? "," : "", r->tokens[i]);
    vc_buf_printf(&b, "],\"prompt_tokens\":%zu,\"stop_reason\":\"%s\"", r->prompt_tokens, vc_stop_reason_name(r->stop));
    vc_buf_printf(&b, ",\"timings\":{\"load_ms\":%.3f,\"prefill_ms\":%.3f,\"prefill_tok_s\":%.3f,\"decode_ms\":%.3f,"
                      "\"decode_tok_s\":%.3f}",
                  load, pre, pre > 0 ? r->prompt_tokens / (pre / 1e3) : 0.0, dec,
                  dec > 0 ? r->n_tokens / (dec / 1e3) : 0.0);
    vc_buf_printf(&b, ",\"memory\":{\"peak_rss_bytes\":%zu,\"weights_bytes\":%zu,\"kv_bytes\":%zu}}\n",
                  peak_rss_bytes(), vc_tensors_bytes(&m->llm.weights), vc_llm_kv_bytes(&m->llm));
    size_t len;
    char *s = vc_buf_take(&b, &len);
    int rc = s ? emit(s, len) : -1;
    free(s);
    return rc;
}

/* One user message (plus --system) with the --image images as the
 * messages array a template renders (--tools needs the JSON path). */
static json_t *single_turn(const vc_cli *cli, const char *text)
{
    json_t *msgs = json_array(), *content = json_string(text);
    if (cli->n_images > 0) {
        json_decref(content);
        content = json_array();
        for (int i = 0; i < cli->n_images; i++)
            json_array_append_new(content, json_pack("{ss}", "type", "image"));
        json_array_append_new(content, json_pack("{ssss}", "type", "text", "text", text));
    }
    if (cli->system)
        json_array_append_new(msgs, json_pack("{ssss}", "role", "system", "content", cli->system));
    json_array_append_new(msgs, json_pack("{ssso}", "role", "user", "content", content));
    return msgs;
}

/* The rendered prompt of one request: the --prompt text as one user turn, or
 * the --messages conversation (msgs). */
static char *render_request(const vc_model *m, const vc_cli *cli, const char *text, const json_t *msgs,
                            const json_t *tools)
{
    if (!msgs && !tools) {
        vc_chat_msg turn[2];
        size_t k = 0;
        if (cli->system)
            turn[k++] = (vc_chat_msg){ "system", cli->system, 0 };
        turn[k++] = (vc_chat_msg){ "user", text, cli->n_images };
        return vc_chat_render(&m->chat, turn, k, true);
    }
    json_t *own = msgs ? NULL : single_turn(cli, text);
    if (!msgs && !own) {
        vc_fail("out of memory");
        return NULL;
    }
    char *out = vc_chat_render_json(&m->chat, msgs ? msgs : own, tools, true);
    json_decref(own);
    return out;
}

/* Chat-templated prompt ids of a request with its images; embd gets input
 * embeddings when there are images. */
static int prompt_input(const vc_model *m, const vc_cli *cli, const char *text, const json_t *msgs,
                        const json_t *tools, const vc_image_embd *images, int n_images, int32_t **ids, size_t *n,
                        float **embd)
{
    *embd = NULL;
    bool own_prompt = m->vision && m->vision->image_ids_by_content;   /* Moondream's prompt templates */
    if (!msgs && !tools && !cli->raw && own_prompt) {
        vc_chat_msg turn = { "user", text, n_images };
        if (vc_model_prompt_ids(m, &turn, 1, images, n_images, true, ids, n) != 0)
            return -1;
    } else if (!msgs && (cli->raw || (m->chat.format == VC_CHAT_RAW && !m->chat.jinja))) {
        /* images at the model's own placeholders where the prompt has them */
        if (vc_model_raw_prompt_ids(m, text, images, n_images, ids, n) != 0)
            return -1;
    } else {
        char *rendered = render_request(m, cli, text, msgs, tools);
        if (!rendered)
            return -1;
        int rc = vc_model_prompt_encode(m, rendered, images, n_images, ids, n);
        free(rendered);
        if (rc != 0)
            return -1;
    }
    if (n_images > 0 && vc_model_prompt_embd(m, *ids, *n, images, n_images, embd) != 0) {
        free(*ids);
        return -1;
    }
    return 0;
}

/* --print-prompt: the rendered prompt, byte for byte. */
static int print_prompt(const vc_model *m, const vc_cli *cli, const char *text, const json_t *msgs,
                        const json_t *tools)
{
    char *rendered = cli->raw && !msgs ? vc_strdup(text) : render_request(m, cli, text, msgs, tools);
    if (!rendered)
        return -1;
    int rc = emit(rendered, strlen(rendered));
    free(rendered);
    return rc == 0 ? 0 : vc_fail("standard output was closed");
}

typedef struct {
    const json_t *msgs, *tools;      /* --messages (normalized) and --tools, or NULL */
    const vc_image_embd *images;
    int n_images;
} request;

static int answer_request(vc_model *m, const vc_cli *cli, const char *text, const request *req,
                          volatile sig_atomic_t *interrupt)
{
    if (cli->print_prompt)
        return print_prompt(m, cli, text, req->msgs, req->tools);
    int32_t *ids;
    size_t n;
    float *embd;
    if (prompt_input(m, cli, text, req->msgs, req->tools, req->images, req->n_images, &ids, &n, &embd) != 0)
        return -1;
    vc_llm_truncate(&m->llm, 0);
    bool started = false;
    vc_gen_options opt = { .max_tokens = cli->max_tokens, .ignore_eos = cli->ignore_eos,
                           .sampling = vc_effective_sampling(m, cli), .on_text = cli->json ? NULL : on_text,
                           .ctx = &started, .interrupt = interrupt, .prompt_embd = embd };
    vc_gen_result r;
    int rc = vc_generate(m, ids, n, &opt, &r);
    free(ids);
    free(embd);
    bool closed = r.stop == VC_STOP_OUTPUT;
    if (rc == 0 && !closed && (cli->json ? print_json(m, &r) : emit("\n", 1)) != 0)
        closed = true;
    if (closed)
        rc = vc_fail("standard output was closed (%s)", errno == EPIPE ? "broken pipe" : "write error");
    if (rc == 0 && cli->verbose)
        fprintf(stderr, "vlmchat: %zu prompt tokens in %.1f ms, %zu tokens in %.1f ms (%.2f tok/s), stop: %s\n",
                r.prompt_tokens, r.prefill_ms, r.n_tokens, r.decode_ms,
                r.decode_ms > 0 ? r.n_tokens / (r.decode_ms / 1e3) : 0.0, vc_stop_reason_name(r.stop));
    if (rc == 0 && r.stop == VC_STOP_INTERRUPT)
        rc = vc_fail_code(VC_EXIT_INTERRUPTED, "interrupted");
    vc_gen_result_free(&r);
    return rc;
}

static char *read_all(FILE *f, size_t *len)
{
    vc_buf b = { 0 };
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
        vc_buf_append(&b, chunk, got);
    if (ferror(f)) {
        vc_buf_free(&b);
        vc_fail_code(VC_EXIT_INPUT, "reading standard input failed: %s", strerror(errno));
        return NULL;
    }
    return vc_buf_take(&b, len);
}

static bool has_nul(const char *s, size_t len) { return memchr(s, 0, len) != NULL; }

static int run_prompts(vc_model *m, const vc_cli *cli, const request *req, volatile sig_atomic_t *interrupt);

/* --messages: the file's conversation, its last turn answered. */
static int run_messages(vc_model *m, const vc_cli *cli, const json_t *tools, volatile sig_atomic_t *interrupt)
{
    vc_messages msgs;
    if (vc_messages_load(cli->messages, cli->print_prompt ? NULL : m, &msgs) != 0)
        return -1;
    if (msgs.n_images > 0 && !m->vision) {
        vc_messages_free(&msgs);
        return vc_fail_code(VC_EXIT_USAGE, "%s: this model takes no images", m->path);
    }
    request req = { msgs.messages, tools, msgs.images, msgs.n_images };
    int rc = answer_request(m, cli, "", &req, interrupt);
    vc_messages_free(&msgs);
    return rc;
}

/* Images are encoded once and serve every prompt. */
int vc_run_scripted(vc_model *m, const vc_cli *cli, volatile sig_atomic_t *interrupt)
{
    json_t *tools = cli->tools ? vc_read_json_array(cli->tools, "--tools") : NULL;
    if (cli->tools && !tools)
        return -1;
    if (cli->messages) {
        int rc = run_messages(m, cli, tools, interrupt);
        json_decref(tools);
        return rc;
    }
    vc_image_embd images[VC_MAX_IMAGES] = { 0 };
    int rc = 0;
    for (int i = 0; rc == 0 && i < cli->n_images; i++) {
        double t0 = vc_now_ms();
        rc = vc_model_encode_image(m, cli->images[i], &images[i]);
        if (rc == 0 && cli->verbose)
            fprintf(stderr, "vlmchat: %s: %d image tokens in %.1f ms\n", cli->images[i], images[i].n_tokens,
                    vc_now_ms() - t0);
    }
    request req = { NULL, tools, images, cli->n_images };
    if (rc == 0)
        rc = run_prompts(m, cli, &req, interrupt);
    for (int i = 0; i < cli->n_images; i++)
        vc_image_embd_free(&images[i]);
    json_decref(tools);
    return rc;
}

static int run_prompts(vc_model *m, const vc_cli *cli, const request *req, volatile sig_atomic_t *interrupt)
{
    int rc = 0;
    if (cli->prompt)
        return answer_request(m, cli, cli->prompt, req, interrupt);
    if (cli->whole_input) {
        size_t len;
        char *all = read_all(stdin, &len);
        if (!all)
            return -1;
        if (has_nul(all, len))
            rc = vc_fail_code(VC_EXIT_INPUT, "standard input contains a NUL byte");
        else
            rc = answer_request(m, cli, all, req, interrupt);
        free(all);
        return rc;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int answered = 0;
    while (rc == 0 && (got = getline(&line, &cap, stdin)) >= 0) {
        size_t len = (size_t)got;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (len == 0)
            continue;
        if (has_nul(line, len)) {
            rc = vc_fail_code(VC_EXIT_INPUT, "input line %d contains a NUL byte", answered + 1);
            break;
        }
        rc = answer_request(m, cli, line, req, interrupt);
        answered++;
        if (interrupt && *interrupt)
            break;
    }
    free(line);
    if (rc == 0 && answered == 0)
        rc = vc_fail_code(VC_EXIT_INPUT, "no prompt: standard input was empty");
    return rc;
}
