/* engine.c - see include/serve/engine.h */
#include "serve/engine.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/common.h"
#include "model/skills.h"
#include "core/meminfo.h"
#include "model/generate.h"
#include "model/prompt.h"
#include "model/session.h"
#include "text/stream.h"

#define EVENT_SLOTS 8

struct vc_job {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    vc_api_request req;
    vc_image images[VC_API_MAX_IMAGES];
    uint64_t keys[VC_API_MAX_IMAGES];   /* pixel hashes, for the caches */
    bool started, done;
    int status;
    vc_buf out;                         /* the answer's bytes */
    size_t out_read;
    volatile sig_atomic_t cancel;
    char id[48];
    long created;
    vc_job *next;
};

typedef struct {
    unsigned long long completions, failed, cancelled, prompt_tokens, completion_tokens, reused_tokens;
    unsigned long long images_encoded, image_cache_hits, cleanups;
    double busy_ms;
    size_t cache_bytes;                 /* encoded images held */
} engine_counts;

struct vc_engine {
    vc_model *m;
    vc_engine_options opt;
    pthread_t thread;
    pthread_mutex_t mu;                 /* guards the queue, `running` and the stats */
    pthread_cond_t cv;
    vc_job *head, *tail, *running;
    int queued;
    bool closing, joined;
    /* worker-only state */
    vc_session session;                 /* KV cache reuse, image cache, pressure cleanup */
    unsigned long long seed_counter;
    /* stats (under mu) */
    engine_counts counts;
    struct { long when; char text[VC_EVENT_LEN]; } events[EVENT_SLOTS];
    unsigned n_events;
};

/* ---- jobs ---- */

vc_job *vc_job_new(vc_api_request *req, vc_image *images)
{
    vc_job *j = vc_calloc(1, sizeof *j);
    if (!j) {
        vc_api_request_free(req);
        for (int i = 0; i < VC_API_MAX_IMAGES; i++)
            vc_image_free(&images[i]);
        return NULL;
    }
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->refs = 1;
    j->req = *req;
    memset(req, 0, sizeof *req);
    for (int i = 0; i < j->req.n_images; i++) {
        j->images[i] = images[i];
        j->keys[i] = vc_session_pixel_hash(&images[i]);
        memset(&images[i], 0, sizeof images[i]);
    }
    static unsigned long long serial;
    j->created = (long)time(NULL);
    snprintf(j->id, sizeof j->id, "chatcmpl-%lx%06llx", j->created, __atomic_add_fetch(&serial, 1, __ATOMIC_RELAXED));
    return j;
}

static void job_ref(vc_job *j)
{
    pthread_mutex_lock(&j->mu);
    j->refs++;
    pthread_mutex_unlock(&j->mu);
}

void vc_job_release(vc_job *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left > 0)
        return;
    vc_api_request_free(&j->req);
    for (int i = 0; i < VC_API_MAX_IMAGES; i++)
        vc_image_free(&j->images[i]);
    vc_buf_free(&j->out);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

/* Appends answer bytes (and wakes the reader). */
static void job_emit(vc_job *j, char *owned)
{
    pthread_mutex_lock(&j->mu);
    if (owned)
        vc_buf_puts(&j->out, owned);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    free(owned);
}

static void job_start(vc_job *j)
{
    pthread_mutex_lock(&j->mu);
    j->started = true;
    j->status = 200;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* Ends the job; a job that never started answers `status` with `body`. */
static void job_finish(vc_job *j, int status, char *body)
{
    pthread_mutex_lock(&j->mu);
    if (!j->started)
        j->status = status;
    if (body)
        vc_buf_puts(&j->out, body);
    j->done = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    free(body);
}

static void job_fail(vc_job *j, int status, const char *type, const char *code)
{
    char *body = vc_api_error_json(vc_error(), type, code);
    if (j->started && body) {   /* mid-stream: the error is an event, then the stream ends */
        vc_buf b = { 0 };
        vc_buf_printf(&b, "data: %s\n\n", body);
        free(body);
        body = vc_buf_take(&b, NULL);
    }
    job_finish(j, status, body);
}

int vc_job_wait_start(vc_job *j)
{
    pthread_mutex_lock(&j->mu);
    while (!j->done && !(j->started && j->req.stream))
        pthread_cond_wait(&j->cv, &j->mu);
    int status = j->status;
    pthread_mutex_unlock(&j->mu);
    return status;
}

size_t vc_job_read(vc_job *j, char *buf, size_t cap)
{
    pthread_mutex_lock(&j->mu);
    while (!j->done && j->out_read == j->out.len)
        pthread_cond_wait(&j->cv, &j->mu);
    size_t n = VC_MIN(cap, j->out.len - j->out_read);
    if (n)
        memcpy(buf, j->out.data + j->out_read, n);
    j->out_read += n;
    pthread_mutex_unlock(&j->mu);
    return n;
}

void vc_job_cancel(vc_job *j) { j->cancel = 1; }

/* ---- events and stats ---- */

/* The session's cleanup events, kept for the stats (the worker calls it). */
static void on_event(void *ctx, const char *text)
{
    vc_engine *e = ctx;
    pthread_mutex_lock(&e->mu);
    unsigned slot = e->n_events++ % EVENT_SLOTS;
    e->events[slot].when = (long)time(NULL);
    snprintf(e->events[slot].text, sizeof e->events[slot].text, "%s", text);
    e->counts.cleanups++;
    pthread_mutex_unlock(&e->mu);
    if (e->opt.verbose)
        fprintf(stderr, "vlmchat: %s\n", text);
}

/* Copies the session's image figures into the stats (the worker calls it). */
static void publish_images(vc_engine *e)
{
    size_t bytes = vc_session_image_bytes(&e->session);
    pthread_mutex_lock(&e->mu);
    e->counts.cache_bytes = bytes;
    e->counts.images_encoded = e->session.images_encoded;
    e->counts.image_cache_hits = e->session.image_cache_hits;
    pthread_mutex_unlock(&e->mu);
}

json_t *vc_engine_stats(vc_engine *e)
{
    pthread_mutex_lock(&e->mu);
    engine_counts c = e->counts;
    int queued = e->queued;
    bool busy = e->running != NULL;
    json_t *events = json_array();
    unsigned first = e->n_events > EVENT_SLOTS ? e->n_events - EVENT_SLOTS : 0;
    for (unsigned i = first; i < e->n_events; i++)
        json_array_append_new(events, json_pack("{s:I,s:s}", "time", (json_int_t)e->events[i % EVENT_SLOTS].when,
                                                "event", e->events[i % EVENT_SLOTS].text));
    pthread_mutex_unlock(&e->mu);
    json_t *j = json_pack("{s:{s:I,s:I,s:I},s:{s:I,s:I,s:I},s:{s:i,s:i,s:b},s:{s:I,s:I,s:I},s:f}",
        "completions", "ok", (json_int_t)c.completions, "failed", (json_int_t)c.failed, "cancelled",
        (json_int_t)c.cancelled,
        "tokens", "prompt", (json_int_t)c.prompt_tokens, "completion", (json_int_t)c.completion_tokens,
        "reused_from_kv_cache", (json_int_t)c.reused_tokens,
        "queue", "waiting", queued, "limit", e->opt.max_queue, "busy", busy,
        "images", "encoded", (json_int_t)c.images_encoded, "cache_hits", (json_int_t)c.image_cache_hits,
        "cache_bytes", (json_int_t)c.cache_bytes,
        "busy_seconds", c.busy_ms / 1e3);
    json_t *mem = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "rss_bytes", (json_int_t)vc_mem_rss(), "peak_rss_bytes",
                            (json_int_t)vc_mem_peak_rss(), "weights_bytes",
                            (json_int_t)vc_tensors_bytes(&e->m->llm.weights), "kv_cache_bytes",
                            (json_int_t)vc_llm_kv_bytes(&e->m->llm), "budget_bytes", (json_int_t)e->opt.budget,
                            "available_bytes", (json_int_t)vc_mem_available());
    json_object_set_new(j, "memory", mem);
    json_object_set_new(j, "cleanup_events", json_pack("{s:I,s:o}", "count", (json_int_t)c.cleanups, "latest",
                                                       events));
    return j;
}

/* ---- running a job ---- */

typedef struct {
    vc_engine *e;
    vc_job *j;
    vc_stopper stop;
    bool started_text;
} stream_ctx;

/* Emits what the stop sequences allow (as an SSE chunk when streaming). */
static void flush_text(stream_ctx *s, bool final)
{
    size_t n;
    const char *t = vc_stopper_ready(&s->stop, final, &n);
    if (n && s->j->req.stream)
        job_emit(s->j, vc_api_chunk_sse(s->j->id, s->j->created, s->e->opt.model_name, NULL, t, n, NULL));
}

/* VLMCHAT_TEST_TOKEN_DELAY_MS (at most 1000) paces generation so that tests
 * can hold a request in flight (full queues, disconnects, shutdown) however
 * fast the machine is. Read once; only the model worker calls it. */
static void pace_for_tests(void)
{
    static long delay_ms = -1;
    if (delay_ms < 0) {
        const char *v = getenv("VLMCHAT_TEST_TOKEN_DELAY_MS");
        delay_ms = v ? strtol(v, NULL, 10) : 0;
        delay_ms = delay_ms < 0 ? 0 : delay_ms > 1000 ? 1000 : delay_ms;
    }
    if (delay_ms > 0)
        nanosleep(&(struct timespec){ delay_ms / 1000, (delay_ms % 1000) * 1000000L }, NULL);
}

static int on_text(void *ctx, const char *text, size_t len)
{
    stream_ctx *s = ctx;
    pace_for_tests();
    vc_reply_trim_start(&s->started_text, &text, &len);
    if (vc_stopper_push(&s->stop, text, len) != 0)
        return 1;
    flush_text(s, false);
    return s->stop.stopped || s->j->cancel;
}

static vc_sampler_params job_sampling(vc_engine *e, const vc_api_request *r)
{
    vc_sampler_params p = e->opt.sampling;
    if (r->has_temperature)
        p.temperature = r->temperature;
    if (r->has_top_p)
        p.top_p = r->top_p;
    p.seed = r->has_seed ? r->seed : (uint64_t)time(NULL) * 1000003ULL + ++e->seed_counter;
    return p;
}

static const char *finish_reason(const vc_gen_result *r, const vc_stopper *s)
{
    if (s->stopped || r->stop == VC_STOP_EOS)
        return "stop";
    return "length";
}

/* Prompt ids of the job's messages; images[] gets the encoded images
 * (shallow copies of image-cache entries, valid until the next job). Fails
 * with the HTTP status in *status and the OpenAI error code (or NULL) in *code. */
static int build_prompt(vc_engine *e, vc_job *j, vc_image_embd *images, int32_t **ids, size_t *n, int *status,
                        const char **code)
{
    const vc_api_request *r = &j->req;
    *status = 400;
    *code = NULL;
    if (r->n_images > 0 && !e->m->vision)
        return vc_fail_code(VC_EXIT_INPUT, "the model '%s' takes no images", e->opt.model_name);
    for (int i = 0; i < r->n_images; i++) {
        int rc = vc_session_image(&e->session, &j->images[i], j->keys[i], &images[i]);
        publish_images(e);
        if (rc != 0)
            return -1;
    }
    vc_chat_msg *msgs = vc_calloc(r->n_msgs, sizeof *msgs);
    json_t **fields = vc_calloc(r->n_msgs, sizeof *fields);
    if (!msgs || !fields) {
        free(msgs);
        free(fields);
        return *status = 500, -1;
    }
    for (size_t i = 0; i < r->n_msgs; i++) {
        msgs[i] = (vc_chat_msg){ r->msgs[i].role, r->msgs[i].content, r->msgs[i].n_images };
        fields[i] = r->msgs[i].fields;
    }
    int rc = vc_model_prompt_ids_tools(e->m, msgs, r->n_msgs, fields, r->tools, images, r->n_images, true, ids, n);
    free(msgs);
    free(fields);
    if (rc == 0 && (int)*n >= e->m->llm.n_ctx) {
        free(*ids);
        *code = "context_length_exceeded";
        return vc_fail_code(VC_EXIT_INPUT, "the prompt is %zu tokens; the context holds %d", *n, e->m->llm.n_ctx);
    }
    return rc;
}

/* The request's "task" extension: a Moondream2 skill on its one image, the
 * last user message's text as the caption length, question or object. The
 * answer is one JSON object; the KV cache is not kept for the next prompt. */
static void run_skill_job(vc_engine *e, vc_job *j)
{
    const vc_api_request *r = &j->req;
    const char *task = r->task, *arg = NULL;
    for (size_t i = 0; i < r->n_msgs; i++)
        if (strcmp(r->msgs[i].role, "user") == 0)
            arg = r->msgs[i].content;
    bool text = strcmp(task, "caption") == 0 || strcmp(task, "query") == 0;
    if (!vc_skill_supported(e->m) || r->n_images != 1 || r->stream || (!arg && strcmp(task, "caption") != 0)) {
        vc_fail_code(VC_EXIT_INPUT, !vc_skill_supported(e->m) ? "task: the model '%s' has no skills (Moondream2 has)"
                                    : r->stream ? "task: not with stream"
                                    : r->n_images != 1 ? "task: one image is needed (%s)"
                                                       : "task: the user message names the question or object (%s)",
                     e->opt.model_name);
        job_fail(j, 400, "invalid_request_error", NULL);
        return;
    }
    if (!arg || !*arg)
        arg = "normal";
    vc_image_embd embd;
    int prefix = 0, rc = vc_session_image(&e->session, &j->images[0], j->keys[0], &embd);
    if (rc == 0)
        rc = vc_skill_prefix(e->m, &embd, &prefix);
    vc_session_forget(&e->session);   /* the KV cache now holds the skill's prompt, not a chat's */
    vc_buf b = { 0 };
    vc_gen_result res = { 0 };
    if (rc == 0 && text) {
        int room = e->m->llm.n_ctx - prefix - 64;
        vc_gen_options o = { .max_tokens = VC_MIN(r->max_tokens > 0 ? r->max_tokens : 768, VC_MAX(room, 1)),
                             .sampling = job_sampling(e, r), .interrupt = &j->cancel };
        if ((rc = vc_skill_text(e->m, prefix, task, arg, &o, &res)) == 0) {
            vc_buf_printf(&b, "{\"id\":\"%s\",\"object\":\"vlmchat.skill\",\"created\":%ld,\"model\":", j->id,
                          j->created);
            vc_buf_json_string(&b, e->opt.model_name, strlen(e->opt.model_name));
            vc_buf_printf(&b, ",\"task\":\"%s\",\"text\":", task);
            vc_buf_json_string(&b, res.text, res.text_len);
            vc_buf_printf(&b, ",\"finish_reason\":\"%s\",\"usage\":{\"prompt_tokens\":%zu,\"completion_tokens\":%zu}}",
                          res.stop == VC_STOP_EOS ? "stop" : "length", (size_t)prefix + res.prompt_tokens,
                          res.n_tokens);
        }
    } else if (rc == 0) {
        vc_region *regions;
        int n;
        if ((rc = vc_skill_regions(e->m, prefix, task, arg, 50, &regions, &n)) == 0) {
            char *list = vc_skill_regions_json(regions, n, j->images[0].width, j->images[0].height);
            vc_buf_printf(&b, "{\"id\":\"%s\",\"object\":\"vlmchat.skill\",\"created\":%ld,\"model\":", j->id,
                          j->created);
            vc_buf_json_string(&b, e->opt.model_name, strlen(e->opt.model_name));
            vc_buf_printf(&b, ",\"task\":\"%s\",\"object_name\":", task);
            vc_buf_json_string(&b, arg, strlen(arg));
            vc_buf_printf(&b, ",\"image\":{\"width\":%d,\"height\":%d},\"%s\":%s}", j->images[0].width,
                          j->images[0].height, strcmp(task, "detect") == 0 ? "objects" : "points", list ? list : "[]");
            rc = list ? 0 : -1;
            free(list);
            free(regions);
        }
    }
    vc_llm_truncate(&e->m->llm, 0);
    vc_gen_result_free(&res);
    pthread_mutex_lock(&e->mu);
    e->counts.completions += rc == 0;
    e->counts.failed += rc != 0;
    pthread_mutex_unlock(&e->mu);
    char *body = vc_buf_take(&b, NULL);
    if (rc != 0 || !body) {
        free(body);
        job_fail(j, 500, "server_error", NULL);
        return;
    }
    job_finish(j, 200, body);
}

static void run_job(vc_engine *e, vc_job *j)
{
    if (j->req.task) {
        vc_session_check_pressure(&e->session);
        run_skill_job(e, j);
        vc_session_end_turn(&e->session);
        publish_images(e);
        return;
    }
    vc_image_embd images[VC_API_MAX_IMAGES];
    int32_t *ids = NULL;
    size_t n = 0;
    int status;
    const char *code;
    vc_session_check_pressure(&e->session);
    publish_images(e);
    if (build_prompt(e, j, images, &ids, &n, &status, &code) != 0) {
        job_fail(j, status, status == 400 ? "invalid_request_error" : "server_error", code);
        return;
    }
    size_t keep;
    if (vc_session_prepare(&e->session, ids, n, images, j->keys, j->req.n_images, &keep) != 0) {
        free(ids);
        job_fail(j, 500, "server_error", NULL);
        return;
    }
    int room = e->m->llm.n_ctx - (int)n;
    int max_tokens = j->req.max_tokens > 0 ? j->req.max_tokens : e->opt.max_tokens > 0 ? e->opt.max_tokens : room;
    stream_ctx s = { .e = e, .j = j };
    vc_stopper_init(&s.stop, j->req.stop, j->req.n_stop);
    vc_gen_options o = { .max_tokens = VC_MIN(max_tokens, room), .ignore_eos = j->req.ignore_eos, .sampling = job_sampling(e, &j->req),
                         .on_text = on_text, .ctx = &s, .interrupt = &j->cancel };
    job_start(j);
    if (j->req.stream)
        job_emit(j, vc_api_chunk_sse(j->id, j->created, e->opt.model_name, "assistant", "", 0, NULL));
    vc_gen_result res;
    int rc = vc_session_run(&e->session, &o, &res);
    free(ids);
    pthread_mutex_lock(&e->mu);
    e->counts.prompt_tokens += n;
    e->counts.reused_tokens += keep;
    e->counts.completion_tokens += res.n_tokens;
    bool cancelled = res.stop == VC_STOP_INTERRUPT;
    e->counts.completions += rc == 0 && !cancelled;
    e->counts.failed += rc != 0;
    e->counts.cancelled += rc == 0 && cancelled;
    pthread_mutex_unlock(&e->mu);
    if (rc != 0) {
        job_fail(j, 500, "server_error", NULL);
    } else if (j->req.stream) {
        flush_text(&s, true);
        job_emit(j, vc_api_chunk_sse(j->id, j->created, e->opt.model_name, NULL, NULL, 0, finish_reason(&res, &s.stop)));
        if (j->req.include_usage)
            job_emit(j, vc_api_usage_sse(j->id, j->created, e->opt.model_name, n, res.n_tokens));
        job_finish(j, 200, vc_strdup("data: [DONE]\n\n"));
    } else {
        size_t len;
        vc_stopper_ready(&s.stop, true, &len);
        char *body = vc_api_completion_json(j->id, j->created, e->opt.model_name, s.stop.text ? s.stop.text : "",
                                            s.stop.len, finish_reason(&res, &s.stop), n, res.n_tokens);
        if (body)
            job_finish(j, 200, body);
        else
            job_fail(j, 500, "server_error", NULL);
    }
    if (e->opt.verbose)
        fprintf(stderr, "vlmchat: %s: %zu prompt tokens (%zu from the KV cache), %zu generated in %.0f ms, %s\n",
                j->id, n, keep, res.n_tokens, res.prefill_ms + res.decode_ms, vc_stop_reason_name(res.stop));
    vc_stopper_free(&s.stop);
    vc_gen_result_free(&res);
}

/* ---- the worker and its queue ---- */

static void *worker(void *arg)
{
    vc_engine *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->head && !e->closing)
            pthread_cond_wait(&e->cv, &e->mu);
        if (e->closing) {
            pthread_mutex_unlock(&e->mu);
            return NULL;
        }
        vc_job *j = e->head;
        e->head = j->next;
        if (!e->head)
            e->tail = NULL;
        e->queued--;
        e->running = j;
        pthread_mutex_unlock(&e->mu);
        double t0 = vc_now_ms();
        if (j->cancel)
            job_finish(j, 499, NULL);
        else
            run_job(e, j);
        vc_session_end_turn(&e->session);
        publish_images(e);
        pthread_mutex_lock(&e->mu);
        e->running = NULL;
        e->counts.busy_ms += vc_now_ms() - t0;
        pthread_mutex_unlock(&e->mu);
        vc_job_release(j);
    }
}

int vc_engine_start(vc_model *m, const vc_engine_options *opt, vc_engine **out)
{
    vc_engine *e = vc_calloc(1, sizeof *e);
    if (!e)
        return -1;
    e->m = m;
    e->opt = *opt;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    vc_session_init(&e->session, m, opt->budget);
    e->session.on_event = on_event;
    e->session.event_ctx = e;
    vc_session_reset(&e->session);
    if (pthread_create(&e->thread, NULL, worker, e) != 0) {
        free(e);
        return vc_fail("cannot start the model worker thread");
    }
    *out = e;
    return 0;
}

vc_submit_result vc_engine_submit(vc_engine *e, vc_job *j)
{
    pthread_mutex_lock(&e->mu);
    vc_submit_result r = e->closing ? VC_SUBMIT_CLOSED : e->queued >= e->opt.max_queue ? VC_SUBMIT_FULL : VC_SUBMIT_OK;
    if (r == VC_SUBMIT_OK) {
        job_ref(j);
        j->next = NULL;
        if (e->tail)
            e->tail->next = j;
        else
            e->head = j;
        e->tail = j;
        e->queued++;
        pthread_cond_signal(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
    return r;
}

void vc_engine_stop(vc_engine *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->closing = true;
    if (e->running)
        e->running->cancel = 1;
    vc_job *queued = e->head;
    e->head = e->tail = NULL;
    e->queued = 0;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (!e->joined)
        pthread_join(e->thread, NULL);
    e->joined = true;
    while (queued) {
        vc_job *next = queued->next;
        vc_fail("the server is shutting down");
        job_fail(queued, 503, "server_error", NULL);
        vc_job_release(queued);
        queued = next;
    }
}

void vc_engine_free(vc_engine *e)
{
    if (!e)
        return;
    vc_session_free(&e->session);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}
