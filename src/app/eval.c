/* eval.c - see include/app/eval.h */
#define _POSIX_C_SOURCE 200809L
#include "app/eval.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "app/scripted.h"
#include "core/buf.h"
#include "core/common.h"
#include "model/conversation.h"
#include "model/generate.h"
#include "model/prompt.h"

void vc_eval_normalize(char *s)
{
    static const char *const numbers[] = { "zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                                           "nine", "ten" };
    static const char *const articles[] = { "a", "an", "the" };
    /* lowercase; punctuation becomes space (apostrophes dropped) */
    for (char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x80 && ispunct(c))
            *p = c == '\'' ? 1 : ' ';
        else if (c < 0x80)
            *p = (char)tolower(c);
    }
    char *out = s, *word = strtok(s, " \t\n\r\1");
    vc_buf b = { 0 };
    while (word) {
        bool skip = false;
        for (size_t i = 0; i < VC_ARRAY_LEN(articles); i++)
            skip = skip || strcmp(word, articles[i]) == 0;
        const char *w = word;
        char digit[4];
        for (size_t i = 0; i < VC_ARRAY_LEN(numbers); i++)
            if (strcmp(word, numbers[i]) == 0) {
                snprintf(digit, sizeof digit, "%zu", i);
                w = digit;
            }
        if (!skip) {
            if (b.len)
                vc_buf_putc(&b, ' ');
            vc_buf_puts(&b, w);
        }
        word = strtok(NULL, " \t\n\r\1");
    }
    /* the result is never longer than the input */
    memcpy(out, b.data ? b.data : "", b.len + 1);
    /* apostrophes were marked with \1: remove them */
    char *r = out, *wp = out;
    for (; *r; r++)
        if (*r != 1)
            *wp++ = *r;
    *wp = 0;
    vc_buf_free(&b);
}

/* VQA accuracy of one prediction against reference answers. */
static double score(const char *pred, json_t *answers)
{
    char *p = vc_strdup(pred);
    if (!p)
        return 0;
    vc_eval_normalize(p);
    size_t n = json_array_size(answers), matches = 0;
    for (size_t i = 0; i < n; i++) {
        const char *ref = json_string_value(json_array_get(answers, i));
        char *a = vc_strdup(ref ? ref : "");
        if (!a)
            break;
        vc_eval_normalize(a);
        matches += strcmp(a, p) == 0;
        free(a);
    }
    free(p);
    if (n >= 3)
        return fmin(1.0, matches / 3.0);
    return matches > 0 ? 1.0 : 0.0;
}

typedef struct {
    char *image, *question, *expected, *answer, *category;
    double score, latency_ms, decode_ms;
    size_t tokens;
} item;

/* The categories reported separately, in order of first appearance. */
typedef struct {
    char *name[32];
    double score[32];
    size_t total[32];
    size_t n;
} categories;

static void count_category(categories *c, const char *name, double score)
{
    size_t i = 0;
    while (i < c->n && strcmp(c->name[i], name) != 0)
        i++;
    if (i == c->n) {
        if (c->n == VC_ARRAY_LEN(c->name) || !(c->name[i] = vc_strdup(name)))
            return;
        c->n++;
    }
    c->score[i] += score;
    c->total[i]++;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Answers one question greedily (unless sampling was asked for). */
static int run_item(vc_model *m, const vc_cli *cli, const char *image_path, const char *question, item *it,
                    volatile sig_atomic_t *interrupt)
{
    double t0 = vc_now_ms();
    vc_image_embd img = { 0 };
    int n_images = image_path ? 1 : 0, rc = 0;
    if (image_path)
        rc = vc_model_encode_image(m, image_path, &img);
    int32_t *ids = NULL;
    size_t n = 0;
    float *embd = NULL;
    vc_chat_msg msg = { "user", question, n_images };
    if (rc == 0)
        rc = vc_model_prompt_ids(m, &msg, 1, &img, n_images, true, &ids, &n);
    if (rc == 0 && n_images)
        rc = vc_model_prompt_embd(m, ids, n, &img, n_images, &embd);
    vc_gen_result r = { 0 };
    if (rc == 0) {
        vc_llm_truncate(&m->llm, 0);
        vc_gen_options opt = { .max_tokens = cli->max_tokens, .sampling = vc_effective_sampling(m, cli),
                               .interrupt = interrupt, .prompt_embd = embd };
        if (!cli->set_temp)
            opt.sampling.temperature = 0;
        rc = vc_generate(m, ids, n, &opt, &r);
    }
    if (rc == 0) {
        it->answer = vc_strdup(r.text);
        it->tokens = r.n_tokens;
        it->latency_ms = vc_now_ms() - t0;
        it->decode_ms = r.decode_ms;   /* decode time only, for tokens/s */
    }
    vc_gen_result_free(&r);
    free(ids);
    free(embd);
    vc_image_embd_free(&img);
    return rc == 0 && it->answer ? 0 : -1;
}

/* Text of a message's content (a string, or its text parts joined); NULL when it has none. */
static char *content_text(json_t *content)
{
    if (json_is_string(content))
        return vc_strdup(json_string_value(content));
    vc_buf b = { 0 };
    size_t k;
    json_t *part;
    json_array_foreach(content, k, part) {
        const char *type = json_string_value(json_object_get(part, "type"));
        const char *t = json_string_value(json_object_get(part, "text"));
        if (type && strcmp(type, "text") == 0 && t)
            vc_buf_puts(&b, t);
    }
    if (!b.data)
        return vc_strdup("");
    return b.data;
}

/* The image file of an image part (image_url or image), or NULL. */
static const char *part_image(json_t *part)
{
    const char *type = json_string_value(json_object_get(part, "type"));
    if (!type)
        return NULL;
    if (strcmp(type, "image_url") == 0) {
        json_t *u = json_object_get(part, "image_url");
        return json_is_string(u) ? json_string_value(u) : json_string_value(json_object_get(u, "url"));
    }
    if (strcmp(type, "image") == 0) {
        const char *keys[] = { "image", "path", "url" };
        for (size_t i = 0; i < VC_ARRAY_LEN(keys); i++)
            if (json_is_string(json_object_get(part, keys[i])))
                return json_string_value(json_object_get(part, keys[i]));
    }
    return NULL;
}

/* One conversation ({"messages": [...]}), turn by turn through the REPL's
 * conversation (model/conversation.h): each user message with its images,
 * then the model's own reply kept in the history, scored against the next
 * assistant message's "answers" (or its content). Appends one item per
 * answered turn. */
static int run_conversation(vc_model *m, const vc_cli *cli, json_t *messages, const char *base, const char *where,
                            item **items, size_t *n, size_t *cap, volatile sig_atomic_t *interrupt)
{
    vc_conversation c;
    vc_conv_init(&c, m);
    int rc = 0, turn = 0;
    size_t count = json_array_size(messages);
    for (size_t i = 0; rc == 0 && i < count; i++) {
        json_t *msg = json_array_get(messages, i);
        const char *role = json_string_value(json_object_get(msg, "role"));
        json_t *content = json_object_get(msg, "content");
        if (!role || (!json_is_string(content) && !json_is_array(content))) {
            rc = vc_fail_code(VC_EXIT_INPUT, "%s: message %zu needs a role and content", where, i + 1);
            break;
        }
        if (strcmp(role, "system") == 0) {
            char *t = content_text(content);
            rc = t ? vc_conv_set_system(&c, t) : -1;
            free(t);
            continue;
        }
        if (strcmp(role, "user") != 0)
            continue;                              /* assistant messages are the references, read below */
        json_t *next = json_array_get(messages, i + 1);
        const char *next_role = json_string_value(json_object_get(next, "role"));
        if (!next_role || strcmp(next_role, "assistant") != 0)
            break;                                 /* a last question without a reference is not scored */
        json_t *answers = json_object_get(next, "answers");
        json_t *made = NULL;
        if (!json_is_array(answers) || json_array_size(answers) == 0) {
            char *ref = content_text(json_object_get(next, "content"));
            answers = made = json_pack("[s]", ref ? ref : "");
            free(ref);
        }
        /* the message's images, attached before its text as in the REPL */
        if (json_is_array(content)) {
            size_t k;
            json_t *part;
            json_array_foreach(content, k, part) {
                const char *img = part_image(part);
                if (!img)
                    continue;
                char path[4096];
                if (strncmp(img, "file://", 7) == 0)
                    img += 7;
                snprintf(path, sizeof path, "%s%s%s", img[0] == '/' ? "" : base, img[0] == '/' ? "" : "/", img);
                if (vc_conv_attach(&c, path) != 0) {
                    rc = vc_fail_ctx("%s: message %zu", where, i + 1);
                    break;
                }
            }
        }
        char *text = rc == 0 ? content_text(content) : NULL;
        if (rc == 0 && (!text || vc_reserve((void **)items, cap, *n + 1, sizeof **items) != 0))
            rc = -1;
        if (rc == 0) {
            item *it = &(*items)[*n];
            memset(it, 0, sizeof *it);
            vc_gen_options opt = { .max_tokens = cli->max_tokens, .sampling = vc_effective_sampling(m, cli),
                                   .interrupt = interrupt };
            if (!cli->set_temp)
                opt.sampling.temperature = 0;
            vc_gen_result r = { 0 };
            double t0 = vc_now_ms();
            rc = vc_conv_turn(&c, text, &opt, &r);
            if (rc == 0) {
                const char *a = r.text ? r.text : "";
                it->answer = vc_strdup(a + strspn(a, " "));
                it->latency_ms = vc_now_ms() - t0;
                it->tokens = r.n_tokens;
                it->decode_ms = r.decode_ms;
                const char *cat = json_string_value(json_object_get(next, "category"));
                it->category = vc_strdup(cat ? cat : turn == 0 ? "first" : "follow-up");
                it->question = vc_strdup(text);
                const char *first = json_string_value(json_array_get(answers, 0));
                it->expected = vc_strdup(first ? first : "");
                it->image = vc_strdup("");
                if (!it->answer || !it->category || !it->question || !it->expected || !it->image) {
                    free(it->answer);
                    free(it->category);
                    free(it->question);
                    free(it->expected);
                    free(it->image);
                    memset(it, 0, sizeof *it);
                    rc = -1;
                } else {
                    it->score = score(it->answer, answers);
                    (*n)++;
                    turn++;
                }
            } else {
                vc_fail_ctx("%s: message %zu", where, i + 1);
            }
            vc_gen_result_free(&r);
        }
        free(text);
        json_decref(made);
        i++;                                       /* past the reference */
        if (interrupt && *interrupt)
            rc = vc_fail_code(VC_EXIT_INTERRUPTED, "interrupted");
    }
    vc_conv_free(&c);
    return rc;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? vc_strndup(path, (size_t)(slash - path)) : vc_strdup(".");
}

static void print_table(const item *items, size_t n)
{
    printf("%4s  %-3s %8s  %-40s %-24s %s\n", "#", "ok", "ms", "question", "expected", "answer");
    for (size_t i = 0; i < n; i++) {
        char q[41], e[25];
        snprintf(q, sizeof q, "%s", items[i].question);
        snprintf(e, sizeof e, "%s", items[i].expected);
        const char *a = items[i].answer;
        while (*a == ' ')
            a++;
        printf("%4zu  %-3s %8.1f  %-40s %-24s %s\n", i + 1, items[i].score >= 1 ? "yes" : items[i].score > 0 ? "~" : "no",
               items[i].latency_ms, q, e, a);
    }
}

int vc_run_eval(vc_model *m, const vc_cli *cli, volatile sig_atomic_t *interrupt)
{
    size_t len;
    char *text = vc_read_file(cli->eval_file, &len);
    if (!text)
        return vc_fail_code(VC_EXIT_INPUT, "%s", vc_error());
    char *base = dir_of(cli->eval_file);
    item *items = NULL;
    size_t n = 0, cap = 0;
    double total_score = 0, decode_ms = 0, below = -1;   /* below: the accuracy if under --min-accuracy */
    size_t decode_tokens = 0;
    categories cats = { 0 };
    int rc = base ? 0 : -1, line_no = 0;
    for (char *line = text, *next; rc == 0 && line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        line_no++;
        if (strspn(line, " \t\r") == strlen(line))
            continue;
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        json_t *messages = json_object_get(o, "messages");
        if (json_is_array(messages)) {
            char where[64];
            snprintf(where, sizeof where, "%.40s:%d", cli->eval_file, line_no);
            size_t before = n;
            rc = run_conversation(m, cli, messages, base, where, &items, &n, &cap, interrupt);
            for (size_t i = before; i < n; i++) {
                decode_ms += items[i].decode_ms;
                decode_tokens += items[i].tokens;
                total_score += items[i].score;
                count_category(&cats, items[i].category, items[i].score);
            }
            if (rc == 0 && n == before)
                rc = vc_fail_code(VC_EXIT_INPUT, "%s: a conversation with no answered question", where);
            json_decref(o);
            continue;
        }
        const char *q = json_string_value(json_object_get(o, "question"));
        json_t *answers = json_object_get(o, "answers");
        if (!answers && json_is_string(json_object_get(o, "answer"))) {
            answers = json_pack("[O]", json_object_get(o, "answer"));
            json_object_set_new(o, "answers", answers);
        }
        if (!o || !q || !json_is_array(answers) || json_array_size(answers) == 0) {
            rc = vc_fail_code(VC_EXIT_INPUT,
                              "%s:%d: expected {\"image\", \"question\", \"answers\": [...]} or {\"messages\": [...]}",
                              cli->eval_file, line_no);
            json_decref(o);
            break;
        }
        const char *img = json_string_value(json_object_get(o, "image"));
        char path[4096];
        if (img)
            snprintf(path, sizeof path, "%s%s%s", img[0] == '/' ? "" : base, img[0] == '/' ? "" : "/", img);
        if (vc_reserve((void **)&items, &cap, n + 1, sizeof *items) != 0) {
            json_decref(o);
            rc = -1;
            break;
        }
        item *it = &items[n];
        memset(it, 0, sizeof *it);
        rc = run_item(m, cli, img ? path : NULL, q, it, interrupt);
        if (rc == 0) {
            decode_ms += it->decode_ms;
            decode_tokens += it->tokens;
            it->score = score(it->answer, answers);
            total_score += it->score;
            it->image = vc_strdup(img ? img : "");
            it->question = vc_strdup(q);
            const char *first = json_string_value(json_array_get(answers, 0));
            it->expected = vc_strdup(first ? first : "");
            const char *cat = json_string_value(json_object_get(o, "category"));
            it->category = cat ? vc_strdup(cat) : NULL;
            if (cat)
                count_category(&cats, cat, it->score);
            n++;
        } else {
            vc_fail_ctx("%s:%d", cli->eval_file, line_no);
        }
        json_decref(o);
        if (interrupt && *interrupt)
            rc = vc_fail_code(VC_EXIT_INTERRUPTED, "interrupted");
    }
    free(text);
    free(base);
    if (rc == 0 && n == 0)
        rc = vc_fail_code(VC_EXIT_INPUT, "%s: no questions", cli->eval_file);
    if (rc == 0) {
        double *lat = vc_malloc(n * sizeof *lat), mean = 0;
        for (size_t i = 0; lat && i < n; i++) {
            lat[i] = items[i].latency_ms;
            mean += lat[i] / n;
        }
        if (lat)
            qsort(lat, n, sizeof *lat, cmp_double);
        double p50 = lat ? lat[n / 2] : 0, p90 = lat ? lat[VC_MIN(n - 1, n * 9 / 10)] : 0;
        double acc = total_score / n, tps = decode_ms > 0 ? decode_tokens / (decode_ms / 1e3) : 0;
        struct rusage ru;
        size_t rss = getrusage(RUSAGE_SELF, &ru) == 0 ? (size_t)ru.ru_maxrss * 1024 : 0;
        if (cli->json) {
            json_t *list = json_array();
            for (size_t i = 0; i < n; i++) {
                json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:f, s:f, s:I}", "image", items[i].image, "question",
                                      items[i].question, "expected", items[i].expected, "answer", items[i].answer,
                                      "score", items[i].score, "latency_ms", items[i].latency_ms, "tokens",
                                      (json_int_t)items[i].tokens);
                if (e && items[i].category)
                    json_object_set_new(e, "category", json_string(items[i].category));
                json_array_append_new(list, e);
            }
            json_t *by = json_object();
            for (size_t i = 0; i < cats.n; i++)
                json_object_set_new(by, cats.name[i], json_pack("{s:f, s:f, s:I}", "accuracy",
                                                                cats.score[i] / cats.total[i], "score", cats.score[i],
                                                                "total", (json_int_t)cats.total[i]));
            json_t *doc = json_pack("{s:f, s:f, s:I, s:{s:f, s:f, s:f}, s:f, s:I, s:s, s:o}", "accuracy", acc, "score",
                                    total_score, "total", (json_int_t)n, "latency_ms", "mean", mean, "p50", p50, "p90",
                                    p90, "decode_tok_s", tps, "peak_rss_bytes", (json_int_t)rss, "model", m->path,
                                    "items", list);
            json_object_set_new(doc, "categories", by);
            char *s = json_dumps(doc, JSON_COMPACT);
            if (s)
                puts(s);
            free(s);
            json_decref(doc);
        } else {
            print_table(items, n);
            printf("accuracy %.1f%% (%.1f of %zu)  latency mean %.1f ms, p50 %.1f, p90 %.1f  decode %.1f tok/s  "
                   "peak RSS %.1f MiB\n",
                   acc * 100, total_score, n, mean, p50, p90, tps, rss / 1048576.0);
            for (size_t i = 0; i < cats.n; i++)
                printf("  %-12s %5.1f%% (%.1f of %zu)\n", cats.name[i], 100 * cats.score[i] / cats.total[i],
                       cats.score[i], cats.total[i]);
        }
        fflush(stdout);
        free(lat);
        if (cli->min_accuracy > 0 && acc < cli->min_accuracy)
            below = acc;
    }
    for (size_t i = 0; i < n; i++) {
        free(items[i].image);
        free(items[i].question);
        free(items[i].expected);
        free(items[i].answer);
        free(items[i].category);
    }
    for (size_t i = 0; i < cats.n; i++)
        free(cats.name[i]);
    if (rc != 0 && n < cap)
        free(items[n].answer);
    free(items);
    if (rc == 0 && below >= 0)
        return vc_fail_code(VC_EXIT_RUNTIME, "accuracy %.3f is below --min-accuracy %.3f", below, cli->min_accuracy);
    return rc;
}
