/* fuzz_chat_request.c - POST /v1/chat/completions bodies: the request parser
 * (JSON, messages, parts, data: URLs and their base64) and, for requests it
 * accepts, the response builders fed with the parsed text. */
#define _GNU_SOURCE   /* memfd_create, in fuzz_common.h */

#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "serve/openai.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vc_api_request req;
    if (vc_api_parse_chat((const char *)data, size, &req) != 0)
        return 0;
    const char *text = req.msgs[req.n_msgs - 1].content;
    vc_stopper s;
    vc_stopper_init(&s, req.stop, req.n_stop);
    for (const char *p = text; *p; p++) {   /* byte by byte: every hold-back path */
        size_t n;
        vc_stopper_push(&s, p, 1);
        vc_stopper_ready(&s, false, &n);
    }
    size_t n;
    vc_stopper_ready(&s, true, &n);
    free(vc_api_completion_json("id", 0, req.model ? req.model : "m", s.text ? s.text : "", s.len, "stop", 1, 1));
    free(vc_api_chunk_sse("id", 0, "m", "assistant", text, strlen(text), NULL));
    vc_stopper_free(&s);
    vc_api_request_free(&req);
    return 0;
}
