/* fuzz_config.c - config.json of a text model (both rope key styles) and of
 * a multimodal one (text_config inside). */
#define _GNU_SOURCE   /* memfd_create, in fuzz_common.h */

#include <jansson.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "model/llm_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *root = json_loadb((const char *)data, size, JSON_DECODE_INT_AS_REAL, NULL);
    if (!root)
        root = json_loadb((const char *)data, size, 0, NULL);
    if (!root)
        return 0;
    json_t *parts[2] = { root, json_object_get(root, "text_config") };
    for (int i = 0; i < 2; i++) {
        vc_llm_config c;
        if (!parts[i])
            continue;
        vc_llm_config_from_hf(parts[i], "fuzz", &c);   /* success or not, it may have allocated factors */
        free(c.rope_short);
        free(c.rope_long);
    }
    json_decref(root);
    return 0;
}
