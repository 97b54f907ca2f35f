/* server.c - see include/serve/server.h */
#define _GNU_SOURCE   /* realpath, getaddrinfo */
#include "serve/server.h"

#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/common.h"

#define STREAM_BLOCK 4096

typedef struct {
    const vc_serve_options *opt;
    vc_engine *engine;
    char allow_dir[PATH_MAX];        /* realpath of --allow-files, or "" */
    double started_ms;
    volatile sig_atomic_t *stop;
    pthread_mutex_t mu;              /* guards the counters */
    unsigned long long requests, by_class[6], unauthorized, too_large, rejected_busy, unavailable;
} server;

/* Per-request state, kept across MHD's calls for one request. */
typedef struct {
    vc_buf body;
    bool too_big, answered;
    double t0;
    int status;
    char method[16], url[160];
} request;

/* The request this connection thread is answering. Each connection has its
 * own thread (MHD_USE_THREAD_PER_CONNECTION), so the answer functions learn
 * it from here instead of through every call. */
static _Thread_local request *current;

/* ---- answering ---- */

static void count_status(server *s, int status)
{
    if (current)
        current->status = status;
    pthread_mutex_lock(&s->mu);
    s->by_class[status / 100 < 6 ? status / 100 : 5]++;
    s->unauthorized += status == 401;
    s->too_large += status == 413;
    s->rejected_busy += status == 429;
    s->unavailable += status == 503;
    pthread_mutex_unlock(&s->mu);
}

/* One access-log line per request, when it is over (a stream included). */
static void log_request(struct MHD_Connection *c, const request *rq)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char host[64] = "?";
    if (ci && ci->client_addr)
        getnameinfo(ci->client_addr, ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                                            : sizeof(struct sockaddr_in),
                    host, sizeof host, NULL, 0, NI_NUMERICHOST);
    fprintf(stderr, "vlmchat: %s %s %s %d %.0f ms\n", host, rq->method, rq->url, rq->status, vc_now_ms() - rq->t0);
}

/* Queues body (malloc'd, taken over; NULL: empty) as the answer. */
static enum MHD_Result send_body(server *s, struct MHD_Connection *c, int status, char *body, const char *type,
                                 const char *header, const char *value)
{
    size_t len = body ? strlen(body) : 0;
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body ? body : (char *)"", MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    if (header)
        MHD_add_response_header(r, header, value);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    count_status(s, status);
    return ok;
}

static enum MHD_Result send_json(server *s, struct MHD_Connection *c, int status, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return send_body(s, c, status, text, "application/json", NULL, NULL);
}

static const char *error_type(int status)
{
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    case 500: case 503: return "server_error";
    default: return "invalid_request_error";
    }
}

/* An OpenAI-style error body with the message given. */
static enum MHD_Result send_error(server *s, struct MHD_Connection *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum MHD_Result send_error(server *s, struct MHD_Connection *c, int status, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    char *body = vc_api_error_json(message, error_type(status), NULL);
    const char *header = status == 429 ? "Retry-After" : status == 401 ? "WWW-Authenticate" : NULL;
    return send_body(s, c, status, body, "application/json", header, status == 429 ? "1" : "Bearer");
}

/* ---- the small endpoints ---- */

static const char *model_name(const server *s) { return s->opt->engine.model_name; }

static enum MHD_Result health(server *s, struct MHD_Connection *c)
{
    bool closing = *s->stop != 0;
    return send_json(s, c, closing ? 503 : 200,
                     json_pack("{s:s,s:s,s:b,s:f}", "status", closing ? "shutting down" : "ok", "model",
                               model_name(s), "loaded", 1, "uptime_s", (vc_now_ms() - s->started_ms) / 1e3));
}

static json_t *model_object(const server *s)
{
    return json_pack("{s:s,s:s,s:I,s:s}", "id", model_name(s), "object", "model", "created",
                     (json_int_t)(time(NULL) - (time_t)((vc_now_ms() - s->started_ms) / 1e3)), "owned_by", "vlmchat");
}

static enum MHD_Result models(server *s, struct MHD_Connection *c)
{
    return send_json(s, c, 200, json_pack("{s:s,s:[o]}", "object", "list", "data", model_object(s)));
}

static enum MHD_Result stats(server *s, struct MHD_Connection *c)
{
    json_t *j = vc_engine_stats(s->engine);
    pthread_mutex_lock(&s->mu);
    json_t *http = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "requests", (json_int_t)s->requests,
                             "2xx", (json_int_t)s->by_class[2], "4xx", (json_int_t)s->by_class[4], "5xx",
                             (json_int_t)s->by_class[5], "unauthorized_401", (json_int_t)s->unauthorized,
                             "too_large_413", (json_int_t)s->too_large, "busy_429", (json_int_t)s->rejected_busy,
                             "unavailable_503", (json_int_t)s->unavailable, "in_flight",
                             (json_int_t)(s->requests - s->by_class[1] - s->by_class[2] - s->by_class[3] -
                                          s->by_class[4] - s->by_class[5]));
    pthread_mutex_unlock(&s->mu);
    json_object_set_new(j, "http", http);
    json_object_set_new(j, "model", json_string(model_name(s)));
    json_object_set_new(j, "uptime_s", json_real((vc_now_ms() - s->started_ms) / 1e3));
    return send_json(s, c, 200, j);
}

/* ---- chat completions ---- */

/* Decodes the request's images with the server's limits; local paths must
 * lie under --allow-files. Returns the HTTP status to fail with, or 0. */
static int load_images(server *s, vc_api_request *req, vc_image *images)
{
    for (int i = 0; i < req->n_images; i++) {
        vc_api_image *im = &req->images[i];
        char name[32];
        snprintf(name, sizeof name, "image %d", i + 1);
        if (im->data) {
            if (vc_image_decode(im->data, im->len, name, &s->opt->image_limits, &images[i]) != 0)
                return 400;
            continue;
        }
        char real[PATH_MAX];
        if (!s->allow_dir[0])
            return vc_fail("%s: local image paths are not allowed (start the server with --allow-files DIR)", name),
                   403;
        if (!realpath(im->path, real))
            return vc_fail("%s: %s: %s", name, im->path, strerror(errno)), 400;
        size_t dl = strlen(s->allow_dir);
        if (strncmp(real, s->allow_dir, dl) != 0 || (real[dl] != '/' && !(dl == 1 && s->allow_dir[0] == '/')))
            return vc_fail("%s: %s is outside the --allow-files directory", name, im->path), 403;
        if (vc_image_load(real, &s->opt->image_limits, &images[i]) != 0)
            return 400;
    }
    return 0;
}

static ssize_t read_stream(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    size_t n = vc_job_read(cls, buf, max);
    return n ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

/* The client is gone or the stream ended: the job need not go on. */
static void end_stream(void *cls)
{
    vc_job_cancel(cls);
    vc_job_release(cls);
}

static enum MHD_Result answer_job(server *s, struct MHD_Connection *c, vc_job *job, bool stream)
{
    int status = vc_job_wait_start(job);
    if (stream && status == 200) {
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, read_stream, job,
                                                                   end_stream);
        if (!r) {
            vc_job_cancel(job);
            vc_job_release(job);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        enum MHD_Result ok = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        count_status(s, 200);
        return ok;
    }
    vc_buf body = { 0 };
    char chunk[STREAM_BLOCK];
    size_t n;
    while ((n = vc_job_read(job, chunk, sizeof chunk)) > 0)
        vc_buf_append(&body, chunk, n);
    vc_buf_putc(&body, 0);
    vc_job_release(job);
    char *text = vc_buf_take(&body, NULL);
    if (status == 499)   /* cancelled before it ran: the server is stopping */
        return free(text), send_error(s, c, 503, "the server is shutting down");
    return send_body(s, c, status, text, "application/json", NULL, NULL);
}

static enum MHD_Result chat(server *s, struct MHD_Connection *c, request *rq)
{
    vc_api_request req;
    if (vc_api_parse_chat(rq->body.data ? rq->body.data : "", rq->body.len, &req) != 0)
        return send_error(s, c, 400, "%s", vc_error());
    vc_image images[VC_API_MAX_IMAGES] = { 0 };
    int status = load_images(s, &req, images);
    if (status) {
        for (int i = 0; i < VC_API_MAX_IMAGES; i++)
            vc_image_free(&images[i]);
        vc_api_request_free(&req);
        return send_error(s, c, status, "%s", vc_error());
    }
    bool stream = req.stream;
    vc_job *job = vc_job_new(&req, images);
    if (!job)
        return send_error(s, c, 503, "out of memory");
    switch (vc_engine_submit(s->engine, job)) {
    case VC_SUBMIT_FULL:
        vc_job_release(job);
        return send_error(s, c, 429, "the server is busy: %d requests are waiting; retry later",
                          s->opt->engine.max_queue);
    case VC_SUBMIT_CLOSED:
        vc_job_release(job);
        return send_error(s, c, 503, "the server is shutting down");
    case VC_SUBMIT_OK:
        break;
    }
    return answer_job(s, c, job, stream);
}

/* ---- routing ---- */

static bool authorized(const server *s, struct MHD_Connection *c)
{
    if (!s->opt->api_key)
        return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    const char *given = h + 7, *key = s->opt->api_key;
    size_t gl = strlen(given), kl = strlen(key);
    unsigned char diff = gl != kl;
    for (size_t i = 0; i < kl; i++)   /* the same time whatever the first wrong byte */
        diff |= (unsigned char)(key[i] ^ given[i < gl ? i : 0]);
    return diff == 0;
}

/* Answers a request whose body (if any) has arrived. */
static enum MHD_Result route(server *s, struct MHD_Connection *c, const char *url, const char *method, request *rq)
{
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    if (strcmp(url, "/health") == 0)
        return get ? health(s, c) : send_error(s, c, 405, "use GET for %s", url);
    if (!authorized(s, c))
        return send_error(s, c, 401, "a valid API key is needed (Authorization: Bearer KEY)");
    if (strcmp(url, "/v1/chat/completions") == 0)
        return post ? chat(s, c, rq) : send_error(s, c, 405, "use POST for %s", url);
    if (strcmp(url, "/v1/models") == 0)
        return get ? models(s, c) : send_error(s, c, 405, "use GET for %s", url);
    if (strncmp(url, "/v1/models/", 11) == 0 && get) {
        if (strcmp(url + 11, model_name(s)) != 0)
            return send_error(s, c, 404, "no model '%.100s' here; this server has '%s'", url + 11, model_name(s));
        return send_json(s, c, 200, model_object(s));
    }
    if (strcmp(url, "/stats") == 0)
        return get ? stats(s, c) : send_error(s, c, 405, "use GET for %s", url);
    return send_error(s, c, 404, "no such endpoint: %s %.100s", method, url);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **state)
{
    server *s = cls;
    request *rq = current = *state;
    if (!rq) {   /* headers are in: the body, if any, comes in the next calls */
        if (!(rq = current = vc_calloc(1, sizeof *rq)))
            return MHD_NO;
        rq->t0 = vc_now_ms();
        snprintf(rq->method, sizeof rq->method, "%s", method);
        snprintf(rq->url, sizeof rq->url, "%s", url);
        *state = rq;
        pthread_mutex_lock(&s->mu);
        s->requests++;
        pthread_mutex_unlock(&s->mu);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->opt->max_body) {
            rq->answered = true;
            return send_error(s, c, 413, "the request body is %s bytes; the limit is %zu", cl, s->opt->max_body);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (rq->body.len + *upload_size > s->opt->max_body)
            rq->too_big = true;
        else
            vc_buf_append(&rq->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (rq->answered)
        return MHD_YES;
    rq->answered = true;
    if (rq->too_big)
        return send_error(s, c, 413, "the request body is over the %zu-byte limit", s->opt->max_body);
    if (!vc_buf_ok(&rq->body))
        return send_error(s, c, 503, "out of memory reading the request");
    return route(s, c, url, method, rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode why)
{
    (void)cls, (void)why;
    request *rq = *state;
    current = NULL;
    if (rq) {
        log_request(c, rq);
        vc_buf_free(&rq->body);
        free(rq);
        *state = NULL;
    }
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = 0;
    fprintf(stderr, "vlmchat: http: %s\n", line);
}

/* ---- start and stop ---- */

int vc_serve_parse_listen(const char *listen, char *host, size_t host_cap, int *port)
{
    const char *colon = strrchr(listen, ':'), *p = colon ? colon + 1 : listen;
    size_t hl = colon ? (size_t)(colon - listen) : 0;
    const char *h = listen;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
        h++, hl -= 2;
    else if (colon && memchr(listen, ':', hl))
        return vc_fail_code(VC_EXIT_USAGE, "--serve: write an IPv6 address in brackets, e.g. [::1]:8080");
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (!*p || *end || errno || v < 0 || v > 65535)
        return vc_fail_code(VC_EXIT_USAGE, "--serve expects [HOST:]PORT with a port in 0..65535, got '%s'", listen);
    if (colon && hl == 0)
        return vc_fail_code(VC_EXIT_USAGE, "--serve: empty host in '%s'", listen);
    if (hl + 1 > host_cap)
        return vc_fail_code(VC_EXIT_USAGE, "--serve: host name too long");
    if (colon) {
        memcpy(host, h, hl);
        host[hl] = 0;
    } else {
        snprintf(host, host_cap, "127.0.0.1");
    }
    *port = (int)v;
    return 0;
}

static struct MHD_Daemon *start_daemon(server *s, const char *host, int port)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV }, *ai;
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    int gai = getaddrinfo(host, service, &hints, &ai);
    if (gai != 0) {
        vc_fail_code(VC_EXIT_USAGE, "--serve: cannot resolve '%s': %s", host, gai_strerror(gai));
        return NULL;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
                     MHD_USE_ERROR_LOG | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_log, s,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!d)
        vc_fail("--serve: cannot listen on %s port %d (%s)", host, port, errno ? strerror(errno) : "in use?");
    return d;
}

/* Gives the answers already queued (the 503s of a shutdown, the ends of
 * streams) up to 3 seconds to reach their clients: MHD_stop_daemon would
 * close their connections at once. Idle keep-alive connections hold on
 * until the timeout ends. */
static void drain(struct MHD_Daemon *d)
{
    for (int i = 0; i < 60; i++) {
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if (!info || info->num_connections == 0)
            return;
        struct timespec nap = { 0, 50 * 1000 * 1000 };
        nanosleep(&nap, NULL);
    }
}

int vc_serve(vc_model *m, const vc_serve_options *opt, volatile sig_atomic_t *stop)
{
    char host[256];
    int port;
    if (vc_serve_parse_listen(opt->listen, host, sizeof host, &port) != 0)
        return -1;
    server s = { .opt = opt, .stop = stop, .started_ms = vc_now_ms() };
    if (opt->allow_files && !realpath(opt->allow_files, s.allow_dir))
        return vc_fail_code(VC_EXIT_USAGE, "--allow-files %s: %s", opt->allow_files, strerror(errno));
    pthread_mutex_init(&s.mu, NULL);
    if (vc_engine_start(m, &opt->engine, &s.engine) != 0)
        return -1;
    struct MHD_Daemon *d = start_daemon(&s, host, port);
    if (!d) {
        vc_engine_stop(s.engine);
        vc_engine_free(s.engine);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    bool v6 = strchr(host, ':') != NULL;
    fprintf(stderr, "vlmchat: serving %s on http://%s%s%s:%u%s\n", opt->engine.model_name, v6 ? "[" : "", host,
            v6 ? "]" : "", info ? info->port : (unsigned)port, opt->api_key ? " (API key required)" : "");
    while (!*stop) {
        struct timespec nap = { 0, 100 * 1000 * 1000 };
        nanosleep(&nap, NULL);
    }
    fprintf(stderr, "vlmchat: stopping the server\n");
    MHD_quiesce_daemon(d);        /* no new connections */
    vc_engine_stop(s.engine);     /* cancels the running job, answers the queued ones */
    drain(d);
    MHD_stop_daemon(d);           /* closes what is left, joins the connection threads */
    vc_engine_free(s.engine);     /* only now: a late connection may still have submitted (and been refused) */
    pthread_mutex_destroy(&s.mu);
    return 0;
}
