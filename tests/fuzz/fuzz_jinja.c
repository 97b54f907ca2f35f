/* fuzz_jinja.c - the chat template parser and renderer: the input is a
 * template, rendered with a conversation (system, user, assistant with a
 * tool call, tool, user with image parts) and one tool schema. */
#define _GNU_SOURCE   /* memfd_create, in fuzz_common.h */

#include <jansson.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "text/jinja.h"

static const char VARS[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
    " {\"role\": \"user\", \"content\": \"Hi \\u00e9\\u4e16 \\n\"},"
    " {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"type\": \"function\", \"id\": \"c1\","
    "  \"function\": {\"name\": \"f\", \"arguments\": {\"x\": 1.5, \"y\": [true, null]}}}]},"
    " {\"role\": \"tool\", \"content\": \"{\\\"ok\\\": 1}\", \"tool_call_id\": \"c1\"},"
    " {\"role\": \"user\", \"content\": [{\"type\": \"image\"}, {\"type\": \"text\", \"text\": \"and?\"}]}],"
    " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"object\"}}}],"
    " \"documents\": null, \"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_t *vars;
    if (!vars)
        vars = json_loads(VARS, 0, NULL);
    vc_jinja *t;
    if (vc_jinja_parse((const char *)data, size, &t) != 0)
        return 0;
    char *out;
    size_t len;
    if (vc_jinja_render(t, vars, &out, &len) == 0)
        free(out);
    vc_jinja_free(t);
    return 0;
}
