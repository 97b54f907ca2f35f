/* test_serve.c - the server's parts that need no network: base64, the
 * chat-completions request parser, the response builders, stop sequences,
 * the --serve address parser and the model name. */
#include <stdlib.h>
#include <string.h>

#include "app/serve.h"
#include "core/base64.h"
#include "core/common.h"
#include "harness.h"
#include "serve/openai.h"
#include "serve/server.h"

static int decode(const char *text, char *out, size_t *len)
{
    return vc_base64_decode(text, strlen(text), (uint8_t *)out, len);
}

static void test_base64(void)
{
    char out[64];
    size_t len;
    CHECK(decode("aGVsbG8=", out, &len) == 0 && len == 5 && memcmp(out, "hello", 5) == 0, "padded");
    CHECK(decode("aGVsbG8", out, &len) == 0 && len == 5, "unpadded");
    CHECK(decode("aGk-_w==", out, &len) == 0 && len == 4 && (uint8_t)out[3] == 0xff, "url-safe alphabet");
    CHECK(decode("", out, &len) == 0 && len == 0, "empty");
    CHECK(decode("aGVs bG8=", out, &len) != 0, "space refused");
    CHECK(decode("aGVsbG8==", out, &len) != 0, "bad padding refused");
    CHECK(decode("a", out, &len) != 0, "one character refused");
    CHECK(decode("aGVsbG9=", out, &len) != 0, "non-zero trailing bits refused");
    CHECK(decode("aG=sbG8=", out, &len) != 0, "padding inside refused");
    /* every length round-trips through the size bound */
    static const char *b64[] = { "", "QQ==", "QUI=", "QUJD", "QUJDRA==" };
    for (size_t i = 0; i < 5; i++)
        CHECK(decode(b64[i], out, &len) == 0 && len == i && len <= vc_base64_max_decoded(strlen(b64[i])), "%zu", i);
}

static int parse(const char *json, vc_api_request *r) { return vc_api_parse_chat(json, strlen(json), r); }

static void test_parse_ok(void)
{
    vc_api_request r;
    int rc = parse("{\"model\":\"demo\",\"max_tokens\":12,\"temperature\":0.5,\"top_p\":0.9,\"seed\":42,"
                   "\"stop\":[\"\\n\",\"END\"],\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                   "\"messages\":[{\"role\":\"developer\",\"content\":\"Be brief.\"},"
                   "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"What is\"},"
                   "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,aGVsbG8=\"}},"
                   "{\"type\":\"text\",\"text\":\"this?\"}]},"
                   "{\"role\":\"assistant\",\"content\":\"A cat.\"},"
                   "{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":\"file:///tmp/x.png\"}]}]}",
                   &r);
    CHECK(rc == 0, "%s", vc_error());
    if (rc != 0)
        return;
    CHECK(strcmp(r.model, "demo") == 0 && r.max_tokens == 12 && r.has_temperature && r.temperature == 0.5f &&
              r.has_top_p && r.has_seed && r.seed == 42 && r.stream && r.include_usage, "parameters");
    CHECK(r.n_stop == 2 && strcmp(r.stop[1], "END") == 0, "stop list");
    CHECK(r.n_msgs == 4 && strcmp(r.msgs[0].role, "system") == 0, "developer becomes system");
    CHECK(strcmp(r.msgs[1].content, "What is\nthis?") == 0 && r.msgs[1].n_images == 1, "text parts joined");
    CHECK(r.msgs[3].n_images == 1 && strcmp(r.msgs[3].content, "") == 0, "image-only message");
    CHECK(r.n_images == 2 && r.images[0].len == 5 && memcmp(r.images[0].data, "hello", 5) == 0, "data URL decoded");
    CHECK(r.images[1].path && strcmp(r.images[1].path, "/tmp/x.png") == 0, "file URL path");
    vc_api_request_free(&r);

    CHECK(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stop\":\"x\",\"max_completion_tokens\":3}",
                &r) == 0 && r.n_stop == 1 && r.max_tokens == 3 && !r.has_temperature && !r.stream,
          "stop string, newer max name, defaults");
    vc_api_request_free(&r);
    CHECK(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":null}", &r) == 0 &&
              !r.has_temperature, "null means unset");
    vc_api_request_free(&r);
}

/* Each bad request fails with a message containing `want`. */
static void bad(const char *json, const char *want)
{
    vc_api_request r;
    int rc = parse(json, &r);
    CHECK(rc != 0 && strstr(vc_error(), want) && vc_error_code() == VC_EXIT_INPUT, "%s -> '%s'", json, vc_error());
    CHECK(r.msgs == NULL && r.n_images == 0, "left empty: %s", json);
}

static void test_parse_errors(void)
{
    bad("", "not valid JSON");
    bad("[1]", "JSON object");
    bad("{\"messages\":[]}", "messages");
    bad("{\"messages\":\"hi\"}", "messages");
    bad("{\"messages\":[{\"content\":\"hi\"}]}", "role");
    bad("{\"messages\":[{\"role\":\"robot\",\"content\":\"hi\"}]}", "unsupported role");
    bad("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":{}}", "tools must be an array");
    bad("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[1]}", "tools[] must be objects");
    bad("{\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":{}},"
        "{\"role\":\"user\",\"content\":\"hi\"}]}", "messages[].tool_calls must be an array");
    bad("{\"messages\":[{\"role\":\"tool\",\"content\":\"5\",\"tool_call_id\":7}]}",
        "messages[].tool_call_id must be a string");
    bad("{\"messages\":[{\"role\":\"user\",\"content\":5}]}", "content");
    bad("{\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}]}", "NUL");
    bad("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"audio\"}]}]}", "unsupported part type");
    bad("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"x\"}]}",
        "last message");
    bad("{\"messages\":[{\"role\":\"assistant\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]},"
        "{\"role\":\"user\",\"content\":\"hi\"}]}", "only user messages");
    bad("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":3}", "temperature must be in");
    bad("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":\"hot\"}", "temperature must be a number");
    bad("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":0}", "max_tokens");
    bad("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":1.5}", "max_tokens must be an integer");
    bad("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"n\":2}", "one choice");
    bad("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"seed\":-1}", "seed");
    bad("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "at most 4");
    bad("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stop\":[\"\"]}", "stop");
    bad("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":\"yes\"}", "stream must be a boolean");
    bad("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"a\":1,\"a\":2}", "duplicate");
    const char *img = "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"%s\"}}]}]}";
    static const struct { const char *url, *want; } urls[] = {
        { "https://example.com/a.png", "not fetched" },
        { "data:image/png,notbase64", "base64" },
        { "data:image/png;base64,@@@@", "malformed base64" },
        { "data:image/png;base64,", "no bytes" },
        { "data:image/png;base64", "comma" },
        { "", "file path" },
    };
    for (size_t i = 0; i < VC_ARRAY_LEN(urls); i++) {
        char json[512];
        snprintf(json, sizeof json, img, urls[i].url);
        bad(json, urls[i].want);
    }
    /* 17 images: one over the limit */
    char json[4096] = "{\"messages\":[{\"role\":\"user\",\"content\":[";
    for (int i = 0; i < VC_API_MAX_IMAGES + 1; i++)
        strcat(json, i ? ",{\"type\":\"image_url\",\"image_url\":\"/a.png\"}" : "{\"type\":\"image_url\",\"image_url\":\"/a.png\"}");
    strcat(json, "]}]}");
    bad(json, "at most 16 images");
}

static void test_responses(void)
{
    char *s = vc_api_completion_json("id1", 5, "demo", "hi \"you\"", 8, "stop", 3, 2);
    json_t *j = s ? json_loads(s, 0, NULL) : NULL;
    CHECK(j && strcmp(json_string_value(json_object_get(j, "object")), "chat.completion") == 0, "object");
    json_t *choice = json_array_get(json_object_get(j, "choices"), 0);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(choice, "message"), "content")), "hi \"you\"") == 0,
          "content escaped and back");
    CHECK(json_integer_value(json_object_get(json_object_get(j, "usage"), "total_tokens")) == 5, "usage total");
    json_decref(j);
    free(s);

    s = vc_api_chunk_sse("id1", 5, "demo", NULL, "a\nb", 3, NULL);
    CHECK(s && strncmp(s, "data: {", 7) == 0 && strcmp(s + strlen(s) - 2, "\n\n") == 0 && strchr(s, '\n') == s + strlen(s) - 2,
          "one SSE event: %s", s);
    j = json_loads(s + 6, JSON_DISABLE_EOF_CHECK, NULL);
    choice = json_array_get(json_object_get(j, "choices"), 0);
    CHECK(json_is_null(json_object_get(choice, "finish_reason")) &&
              strcmp(json_string_value(json_object_get(json_object_get(choice, "delta"), "content")), "a\nb") == 0,
          "delta chunk");
    json_decref(j);
    free(s);

    s = vc_api_error_json("bad thing", "invalid_request_error", "context_length_exceeded");
    j = json_loads(s, 0, NULL);
    json_t *e = json_object_get(j, "error");
    CHECK(strcmp(json_string_value(json_object_get(e, "message")), "bad thing") == 0 &&
              strcmp(json_string_value(json_object_get(e, "code")), "context_length_exceeded") == 0 &&
              json_is_null(json_object_get(e, "param")), "error body");
    json_decref(j);
    free(s);
}

/* Pushes pieces one by one and collects what is shown. */
static void stop_case(const char *const *pieces, char *const *stops, int n_stops, const char *want, bool stopped)
{
    vc_stopper s;
    vc_stopper_init(&s, stops, n_stops);
    char shown[256] = "";
    for (int i = 0; pieces[i] && !s.stopped; i++) {
        vc_stopper_push(&s, pieces[i], strlen(pieces[i]));
        size_t n;
        const char *t = vc_stopper_ready(&s, false, &n);
        strncat(shown, t, n);
    }
    size_t n;
    const char *t = vc_stopper_ready(&s, true, &n);
    strncat(shown, t, n);
    CHECK(strcmp(shown, want) == 0 && s.stopped == stopped, "got '%s' stopped %d, want '%s'", shown, s.stopped, want);
    vc_stopper_free(&s);
}

static void test_stopper(void)
{
    char *stops[] = { "END", "\n\n" };
    stop_case((const char *[]){ "hello ", "wor", "ld", NULL }, stops, 2, "hello world", false);
    stop_case((const char *[]){ "one E", "N", "D two", NULL }, stops, 2, "one ", true);
    stop_case((const char *[]){ "a\n", "\nb", NULL }, stops, 2, "a", true);
    stop_case((const char *[]){ "EN", "X", NULL }, stops, 2, "ENX", false);
    stop_case((const char *[]){ "xEND", NULL }, stops, 2, "x", true);
    stop_case((const char *[]){ "abc", NULL }, NULL, 0, "abc", false);
    /* text that could still become a stop sequence is held back */
    vc_stopper s;
    vc_stopper_init(&s, stops, 2);
    vc_stopper_push(&s, "ok E", 4);
    size_t n;
    vc_stopper_ready(&s, false, &n);
    CHECK(n == 3, "'E' held back: %zu", n);
    vc_stopper_free(&s);
}

static void test_listen_and_name(void)
{
    char host[64];
    int port;
    CHECK(vc_serve_parse_listen("8080", host, sizeof host, &port) == 0 && strcmp(host, "127.0.0.1") == 0 &&
              port == 8080, "port only is loopback");
    CHECK(vc_serve_parse_listen("0.0.0.0:80", host, sizeof host, &port) == 0 && strcmp(host, "0.0.0.0") == 0, "host");
    CHECK(vc_serve_parse_listen("[::1]:0", host, sizeof host, &port) == 0 && strcmp(host, "::1") == 0 && port == 0,
          "IPv6");
    CHECK(vc_serve_parse_listen("::1:80", host, sizeof host, &port) != 0, "IPv6 without brackets");
    CHECK(vc_serve_parse_listen("70000", host, sizeof host, &port) != 0, "port range");
    CHECK(vc_serve_parse_listen("host:", host, sizeof host, &port) != 0, "empty port");
    CHECK(vc_serve_parse_listen(":80", host, sizeof host, &port) != 0, "empty host");
    char name[64];
    vc_serve_model_name(NULL, name, sizeof name);
    CHECK(strcmp(name, "demo") == 0, "default name");
    vc_serve_model_name("/models/llava-v1.6/", name, sizeof name);
    CHECK(strcmp(name, "llava-v1.6") == 0, "directory name: %s", name);
    vc_serve_model_name("smolvlm", name, sizeof name);
    CHECK(strcmp(name, "smolvlm") == 0, "preset name");
}

int main(void)
{
    test_base64();
    test_parse_ok();
    test_parse_errors();
    test_responses();
    test_stopper();
    test_listen_and_name();
    return harness_finish("test_serve");
}
