/* openai.c - see include/serve/openai.h */
#include "serve/openai.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/common.h"
#include "core/json.h"

static int bad(const char *fmt, const char *field)
{
    return vc_fail_code(VC_EXIT_INPUT, fmt, field);
}

/* ---- images ---- */

/* "data:image/png;base64,...." -> bytes. Only base64 data URLs carry images. */
static int parse_data_url(const char *url, size_t len, vc_api_image *img)
{
    const char *comma = memchr(url, ',', len);
    if (!comma)
        return bad("%s: a data: URL needs a comma before its data", "image_url.url");
    size_t head = (size_t)(comma - url);
    if (head < 7 || memcmp(comma - 7, ";base64", 7) != 0)
        return bad("%s: only base64 data: URLs are accepted", "image_url.url");
    const char *b64 = comma + 1;
    size_t n = len - head - 1;
    uint8_t *data = vc_malloc(vc_base64_max_decoded(n) + 1);
    if (!data)
        return -1;
    size_t got;
    if (vc_base64_decode(b64, n, data, &got) != 0) {
        free(data);
        return vc_fail_ctx("image_url.url");
    }
    if (got == 0) {
        free(data);
        return bad("%s: the data: URL holds no bytes", "image_url.url");
    }
    img->data = data;
    img->len = got;
    return 0;
}

static int parse_image_part(json_t *part, vc_api_request *req)
{
    json_t *iu = json_object_get(part, "image_url");
    json_t *url = json_is_object(iu) ? json_object_get(iu, "url") : iu;   /* some clients send the string */
    if (!json_is_string(url))
        return bad("%s must be a string (or an object with a url)", "image_url");
    if (req->n_images >= VC_API_MAX_IMAGES)
        return vc_fail_code(VC_EXIT_INPUT, "at most %d images in a request", VC_API_MAX_IMAGES);
    const char *s = json_string_value(url);
    size_t len = json_string_length(url);
    vc_api_image *img = &req->images[req->n_images];
    memset(img, 0, sizeof *img);
    if (len >= 5 && strncmp(s, "data:", 5) == 0) {
        if (parse_data_url(s, len, img) != 0)
            return -1;
    } else if (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0) {
        return bad("%s: remote URLs are not fetched; send the image as a data: URL", "image_url.url");
    } else {
        if (strncmp(s, "file://", 7) == 0)
            s += 7, len -= 7;
        if (len == 0 || strlen(s) != len)
            return bad("%s: not a data: URL or a file path", "image_url.url");
        if (!(img->path = vc_strdup(s)))
            return -1;
    }
    req->n_images++;
    return 0;
}

/* ---- messages ---- */

/* JSON strings may hold \u0000, which C text cannot. */
static bool has_nul(json_t *s) { return strlen(json_string_value(s)) != json_string_length(s); }

static int parse_content(json_t *content, vc_api_request *req, vc_api_message *msg)
{
    if (json_is_string(content) && has_nul(content))
        return bad("%s contains a NUL character", "messages[].content");
    if (json_is_string(content))
        return (msg->content = vc_strndup(json_string_value(content), json_string_length(content))) ? 0 : -1;
    if (json_is_null(content)) {   /* an assistant turn that only called tools */
        return (msg->content = vc_strdup("")) ? 0 : -1;
    }
    if (!json_is_array(content))
        return bad("%s must be a string or an array of parts", "messages[].content");
    vc_buf text = { 0 };
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part) {
        const char *type = json_string_value(json_object_get(part, "type"));
        if (!type) {
            vc_buf_free(&text);
            return bad("%s needs a type", "messages[].content[]");
        }
        if (strcmp(type, "text") == 0) {
            json_t *t = json_object_get(part, "text");
            if (!json_is_string(t) || has_nul(t)) {
                vc_buf_free(&text);
                return bad("%s must be a string without NUL characters", "messages[].content[].text");
            }
            if (text.len)
                vc_buf_putc(&text, '\n');
            vc_buf_append(&text, json_string_value(t), json_string_length(t));
        } else if (strcmp(type, "image_url") == 0) {
            if (strcmp(msg->role, "user") != 0) {
                vc_buf_free(&text);
                return bad("%s: only user messages may hold images", "messages[].content[]");
            }
            if (parse_image_part(part, req) != 0) {
                vc_buf_free(&text);
                return -1;
            }
            msg->n_images++;
        } else {
            vc_buf_free(&text);
            return vc_fail_code(VC_EXIT_INPUT, "messages[].content[]: unsupported part type '%.40s'", type);
        }
    }
    vc_buf_putc(&text, 0);
    msg->content = vc_buf_take(&text, NULL);
    return msg->content ? 0 : -1;
}

/* An assistant's tool_calls (an array) and a tool message's tool_call_id
 * and name (strings), kept for the chat template as they are. */
static int tool_fields(json_t *m, vc_api_message *msg)
{
    static const char *const keys[] = { "tool_calls", "tool_call_id", "name" };
    for (size_t k = 0; k < VC_ARRAY_LEN(keys); k++) {
        json_t *v = json_object_get(m, keys[k]);
        if (!v || json_is_null(v))
            continue;
        if (k == 0 ? !json_is_array(v) : !json_is_string(v))
            return bad(k == 0 ? "%s must be an array" : "%s must be a string",
                       k == 0 ? "messages[].tool_calls" : k == 1 ? "messages[].tool_call_id" : "messages[].name");
        if (!msg->fields && !(msg->fields = json_object()))
            return -1;
        if (json_object_set(msg->fields, keys[k], v) != 0)
            return -1;
    }
    return 0;
}

static int parse_messages(json_t *messages, vc_api_request *req)
{
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return bad("%s must be a non-empty array", "messages");
    size_t n = json_array_size(messages);
    if (!(req->msgs = vc_calloc(n, sizeof *req->msgs)))
        return -1;
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(messages, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!role)
            return bad("%s needs a role", "messages[]");
        if (strcmp(role, "developer") == 0)   /* newer clients' name for the system message */
            role = "system";
        if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "tool"))
            return vc_fail_code(VC_EXIT_INPUT, "messages[]: unsupported role '%.40s'", role);
        vc_api_message *msg = &req->msgs[req->n_msgs++];
        if (!(msg->role = vc_strdup(role)) || parse_content(json_object_get(m, "content"), req, msg) != 0 ||
            tool_fields(m, msg) != 0)
            return -1;
    }
    if (strcmp(req->msgs[n - 1].role, "assistant") == 0)
        return bad("%s: the last message must not be the assistant's", "messages");
    return 0;
}

/* ---- parameters ---- */

/* Request fields through core/json's checks, in the API's words (a wrong
 * kind is "must be a number", a value outside the range "must be in"). */
static int get_number(json_t *root, const char *key, double lo, double hi, bool *has, double *out)
{
    switch (vc_json_check_num(json_object_get(root, key), lo, hi, out)) {
    case VC_JSON_ABSENT: return 0;
    case VC_JSON_OK: *has = true; return 0;
    case VC_JSON_KIND: return bad("%s must be a number", key);
    default: return vc_fail_code(VC_EXIT_INPUT, "%s must be in %g..%g", key, lo, hi);
    }
}

/* Strict: 2.0 is not an integer here. */
static int get_integer(json_t *root, const char *key, long long lo, long long hi, bool *has, long long *out)
{
    int64_t x;
    switch (vc_json_check_int(json_object_get(root, key), lo, hi, true, &x)) {
    case VC_JSON_ABSENT: return 0;
    case VC_JSON_OK: *has = true; *out = x; return 0;
    case VC_JSON_KIND: return bad("%s must be an integer", key);
    default: return vc_fail_code(VC_EXIT_INPUT, "%s must be in %lld..%lld", key, lo, hi);
    }
}

static int parse_stop(json_t *stop, vc_api_request *req)
{
    if (!stop || json_is_null(stop))
        return 0;
    json_t *one[1] = { stop };
    json_t **items = one;
    size_t n = 1;
    json_t *arr[VC_API_MAX_STOP];
    if (json_is_array(stop)) {
        n = json_array_size(stop);
        if (n > VC_API_MAX_STOP)
            return vc_fail_code(VC_EXIT_INPUT, "stop takes at most %d sequences", VC_API_MAX_STOP);
        for (size_t i = 0; i < n; i++)
            arr[i] = json_array_get(stop, i);
        items = arr;
    }
    for (size_t i = 0; i < n; i++) {
        if (!json_is_string(items[i]) || json_string_length(items[i]) == 0 || json_string_length(items[i]) > 256)
            return bad("%s must be a string of 1..256 bytes or an array of them", "stop");
        if (!(req->stop[req->n_stop++] = vc_strdup(json_string_value(items[i]))))
            return -1;
    }
    return 0;
}

static int parse_params(json_t *root, vc_api_request *req)
{
    bool has = false;
    double d;
    long long x;
    json_t *model = json_object_get(root, "model");
    if (model && !json_is_string(model))
        return bad("%s must be a string", "model");
    if (model && !(req->model = vc_strdup(json_string_value(model))))
        return -1;
    req->max_tokens = -1;
    for (int k = 0; k < 2; k++) {   /* max_completion_tokens is the newer name */
        has = false;
        if (get_integer(root, k ? "max_completion_tokens" : "max_tokens", 1, 1 << 20, &has, &x) != 0)
            return -1;
        if (has)
            req->max_tokens = (int)x;
    }
    if (get_number(root, "temperature", 0, 2, &req->has_temperature, &d) != 0)
        return -1;
    req->temperature = (float)d;
    if (get_number(root, "top_p", 0, 1, &req->has_top_p, &d) != 0)
        return -1;
    req->top_p = (float)d;
    if (get_integer(root, "seed", 0, INT64_MAX, &req->has_seed, &x) != 0)
        return -1;
    req->seed = (uint64_t)x;
    has = false;
    if (get_integer(root, "n", 1, 1, &has, &x) != 0)
        return vc_fail_code(VC_EXIT_INPUT, "n: only one choice per request is generated");
    json_t *stream = json_object_get(root, "stream");
    if (stream && !json_is_boolean(stream) && !json_is_null(stream))
        return bad("%s must be a boolean", "stream");
    req->stream = json_is_true(stream);
    json_t *ie = json_object_get(root, "ignore_eos");
    if (ie && !json_is_boolean(ie) && !json_is_null(ie))
        return bad("%s must be a boolean", "ignore_eos");
    req->ignore_eos = json_is_true(ie);
    json_t *task = json_object_get(root, "task");
    if (task && !json_is_null(task)) {
        const char *t = json_string_value(task);
        if (!t || (strcmp(t, "caption") && strcmp(t, "query") && strcmp(t, "detect") && strcmp(t, "point")))
            return bad("%s must be caption, query, detect or point", "task");
        if (!(req->task = vc_strdup(t)))
            return -1;
    }
    json_t *so = json_object_get(root, "stream_options");
    req->include_usage = json_is_object(so) && json_is_true(json_object_get(so, "include_usage"));
    return parse_stop(json_object_get(root, "stop"), req);
}

/* "tools": an array of objects (function schemas), kept as given. */
static int parse_tools(json_t *tools, vc_api_request *req)
{
    if (!tools || json_is_null(tools))
        return 0;
    size_t i;
    json_t *t;
    if (!json_is_array(tools))
        return bad("%s must be an array", "tools");
    json_array_foreach(tools, i, t)
        if (!json_is_object(t))
            return bad("%s must be objects", "tools[]");
    req->tools = json_incref(tools);
    return 0;
}

int vc_api_parse_chat(const char *body, size_t len, vc_api_request *req)
{
    memset(req, 0, sizeof *req);
    json_error_t err;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return vc_fail_code(VC_EXIT_INPUT, "the body is not valid JSON: %s (line %d, column %d)", err.text, err.line,
                            err.column);
    int rc = json_is_object(root) ? 0 : bad("%s must be a JSON object", "the body");
    if (rc == 0)
        rc = parse_params(root, req);
    if (rc == 0)
        rc = parse_messages(json_object_get(root, "messages"), req);
    if (rc == 0)
        rc = parse_tools(json_object_get(root, "tools"), req);
    json_decref(root);
    if (rc != 0)
        vc_api_request_free(req);
    return rc;
}

void vc_api_request_free(vc_api_request *req)
{
    free(req->task);
    for (size_t i = 0; i < req->n_msgs; i++) {
        free(req->msgs[i].role);
        free(req->msgs[i].content);
        json_decref(req->msgs[i].fields);
    }
    json_decref(req->tools);
    free(req->msgs);
    for (int i = 0; i < req->n_images; i++) {
        free(req->images[i].data);
        free(req->images[i].path);
    }
    for (int i = 0; i < req->n_stop; i++)
        free(req->stop[i]);
    free(req->model);
    memset(req, 0, sizeof *req);
}

/* ---- responses ---- */

static char *dump(json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s)
        vc_fail_code(VC_EXIT_NOMEM, "out of memory");
    return s;
}

static json_t *usage(size_t prompt_tokens, size_t completion_tokens)
{
    return json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t)prompt_tokens, "completion_tokens",
                     (json_int_t)completion_tokens, "total_tokens", (json_int_t)(prompt_tokens + completion_tokens));
}

char *vc_api_completion_json(const char *id, long created, const char *model, const char *text, size_t text_len,
                             const char *finish_reason, size_t prompt_tokens, size_t completion_tokens)
{
    json_t *message = json_pack("{s:s,s:s%}", "role", "assistant", "content", text, text_len);
    json_t *choice = json_pack("{s:i,s:o,s:s,s:n}", "index", 0, "message", message, "finish_reason", finish_reason,
                               "logprobs");
    return dump(json_pack("{s:s,s:s,s:I,s:s,s:[o],s:o}", "id", id, "object", "chat.completion", "created",
                          (json_int_t)created, "model", model, "choices", choice, "usage",
                          usage(prompt_tokens, completion_tokens)));
}

static char *sse(json_t *j)
{
    char *s = dump(j);
    if (!s)
        return NULL;
    vc_buf b = { 0 };
    vc_buf_printf(&b, "data: %s\n\n", s);
    free(s);
    return vc_buf_take(&b, NULL);
}

char *vc_api_chunk_sse(const char *id, long created, const char *model, const char *role, const char *text,
                       size_t text_len, const char *finish_reason)
{
    json_t *delta = json_object();
    if (role)
        json_object_set_new(delta, "role", json_string(role));
    if (text)
        json_object_set_new(delta, "content", json_stringn(text, text_len));
    json_t *choice = json_pack("{s:i,s:o,s:s?,s:n}", "index", 0, "delta", delta, "finish_reason", finish_reason,
                               "logprobs");
    if (choice && !finish_reason)
        json_object_set_new(choice, "finish_reason", json_null());
    return sse(json_pack("{s:s,s:s,s:I,s:s,s:[o]}", "id", id, "object", "chat.completion.chunk", "created",
                         (json_int_t)created, "model", model, "choices", choice));
}

char *vc_api_usage_sse(const char *id, long created, const char *model, size_t prompt_tokens,
                       size_t completion_tokens)
{
    return sse(json_pack("{s:s,s:s,s:I,s:s,s:[],s:o}", "id", id, "object", "chat.completion.chunk", "created",
                         (json_int_t)created, "model", model, "choices", "usage",
                         usage(prompt_tokens, completion_tokens)));
}

char *vc_api_error_json(const char *message, const char *type, const char *code)
{
    return dump(json_pack("{s:{s:s,s:s,s:n,s:s?}}", "error", "message", message, "type", type, "param", "code",
                          code));
}

/* ---- stop sequences ---- */

void vc_stopper_init(vc_stopper *s, char *const *stops, int n_stops)
{
    memset(s, 0, sizeof *s);
    s->stops = stops;
    s->n_stops = n_stops;
}

/* Earliest complete stop sequence at or after `from`, or s->len. */
static size_t find_stop(const vc_stopper *s, size_t from)
{
    size_t best = s->len;
    for (int k = 0; k < s->n_stops; k++) {
        size_t sl = strlen(s->stops[k]);
        for (size_t i = from; i + sl <= s->len && i < best; i++)
            if (memcmp(s->text + i, s->stops[k], sl) == 0) {
                best = i;
                break;
            }
    }
    return best;
}

int vc_stopper_push(vc_stopper *s, const char *text, size_t len)
{
    if (s->stopped || len == 0)
        return 0;
    if (vc_reserve((void **)&s->text, &s->cap, s->len + len + 1, 1) != 0)
        return -1;
    size_t old = s->len;
    memcpy(s->text + s->len, text, len);
    s->len += len;
    s->text[s->len] = 0;
    size_t longest = 0;
    for (int k = 0; k < s->n_stops; k++)
        longest = VC_MAX(longest, strlen(s->stops[k]));
    size_t at = find_stop(s, old >= longest ? old - longest + 1 : 0);
    if (at < s->len) {
        s->len = at;
        s->text[at] = 0;
        s->stopped = true;
    }
    return 0;
}

/* Length of the longest suffix of the text that begins some stop sequence. */
static size_t held_back(const vc_stopper *s)
{
    size_t hold = 0;
    for (int k = 0; k < s->n_stops; k++) {
        size_t sl = strlen(s->stops[k]);
        for (size_t n = VC_MIN(sl - 1, s->len); n > hold; n--)
            if (memcmp(s->text + s->len - n, s->stops[k], n) == 0) {
                hold = n;
                break;
            }
    }
    return hold;
}

const char *vc_stopper_ready(vc_stopper *s, bool final, size_t *len)
{
    size_t safe = s->len - (final || s->stopped ? 0 : held_back(s));
    const char *from = s->text ? s->text + s->shown : "";
    *len = safe > s->shown ? safe - s->shown : 0;
    s->shown += *len;
    return from;
}

void vc_stopper_free(vc_stopper *s)
{
    free(s->text);
    memset(s, 0, sizeof *s);
}
