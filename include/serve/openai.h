/* openai.h - the OpenAI chat-completions wire format, without the HTTP.
 *
 * vc_api_parse_chat() turns a POST /v1/chat/completions body into messages,
 * images and generation parameters, checking every field it uses (types,
 * ranges, data: URLs) so that the server can answer 400 with a message that
 * names the field.  The builders produce the response bodies and the SSE
 * chunks of a streamed answer.  Nothing here touches the model, so it is
 * unit-tested and fuzzed on its own.
 */
#ifndef VC_SERVE_OPENAI_H
#define VC_SERVE_OPENAI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VC_API_MAX_STOP 4
#define VC_API_MAX_IMAGES 16

struct json_t;

typedef struct {
    char *role;            /* "system", "user", "assistant" or "tool" */
    char *content;         /* its text parts, joined by newlines */
    int n_images;          /* image parts, taken from the request's images in order */
    struct json_t *fields; /* tool_calls (an assistant's), tool_call_id and name (a tool's) as given, for the
                            * chat template; NULL: none */
} vc_api_message;

typedef struct {
    uint8_t *data;         /* decoded bytes of a data: URL, or NULL */
    size_t len;
    char *path;            /* a local file path (file:// or plain), or NULL */
} vc_api_image;

typedef struct {
    char *model;
    struct json_t *tools;  /* the "tools" array as given (function schemas for the chat template); NULL: none */
    vc_api_message *msgs;
    size_t n_msgs;
    vc_api_image images[VC_API_MAX_IMAGES];
    int n_images;
    int max_tokens;        /* -1: as much as the context allows */
    bool has_temperature, has_top_p, has_seed;
    float temperature, top_p;
    uint64_t seed;
    char *stop[VC_API_MAX_STOP];
    int n_stop;
    bool stream, include_usage;
    bool ignore_eos;       /* extension (as llama.cpp's server has it): generate max_tokens */
    char *task;            /* extension: "caption", "query", "detect" or "point" (Moondream2's skills) on the one
                            * image; the last user message's text is the caption length, question or object */
} vc_api_request;

/* Parses a request body. On failure returns -1 with a message naming the
 * offending field (class VC_EXIT_INPUT) and leaves *req empty. */
int vc_api_parse_chat(const char *body, size_t len, vc_api_request *req);
void vc_api_request_free(vc_api_request *req);

/* Response bodies (malloc'd JSON text, NULL when out of memory). */
char *vc_api_completion_json(const char *id, long created, const char *model, const char *text, size_t text_len,
                             const char *finish_reason, size_t prompt_tokens, size_t completion_tokens);
/* One chat.completion.chunk as an SSE event ("data: {...}\n\n"). role and
 * finish_reason may be NULL; with usage the chunk carries token counts and
 * no choice (the stream_options.include_usage chunk). */
char *vc_api_chunk_sse(const char *id, long created, const char *model, const char *role, const char *text,
                       size_t text_len, const char *finish_reason);
char *vc_api_usage_sse(const char *id, long created, const char *model, size_t prompt_tokens,
                       size_t completion_tokens);
/* {"error": {"message", "type", "param", "code"}}; code may be NULL. */
char *vc_api_error_json(const char *message, const char *type, const char *code);

/* Stop sequences over streamed text.  Text is pushed as it arrives; what
 * may be shown is what can no longer turn out to be the start of a stop
 * sequence.  Once a stop sequence is complete, `stopped` is set and the
 * text ends just before it. */
typedef struct {
    char *const *stops;
    int n_stops;
    char *text;            /* everything pushed, up to the stop if one matched */
    size_t len, cap;
    size_t shown;          /* bytes handed out by vc_stopper_ready */
    bool stopped;
} vc_stopper;

void vc_stopper_init(vc_stopper *s, char *const *stops, int n_stops);
/* Appends text; returns 0, or -1 when out of memory. */
int vc_stopper_push(vc_stopper *s, const char *text, size_t len);
/* The text that is now safe to show and was not shown yet (pointer into
 * s->text, *len bytes); marks it shown. With `final` (no more text will come)
 * everything left is safe. */
const char *vc_stopper_ready(vc_stopper *s, bool final, size_t *len);
void vc_stopper_free(vc_stopper *s);

#endif
