/* fuzz_tokenizer_json.c - tokenizer.json parsing, then a round trip of the
 * input text through whatever tokenizer was built. */
#define _GNU_SOURCE   /* memfd_create, in fuzz_common.h */

#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "text/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vc_tokenizer *t;
    if (vc_tokenizer_load_json_text((const char *)data, size, "fuzz", &t) != 0)
        return 0;
    static const char text[] = "Hello wörld 123 <s> \xF0\x9F\x98\x80 end";
    int32_t *ids;
    size_t n;
    if (vc_tokenizer_encode(t, text, sizeof text - 1, true, &ids, &n) == 0) {
        char *out;
        size_t len;
        if (vc_tokenizer_decode(t, ids, n, false, &out, &len) == 0)
            free(out);
        free(ids);
    }
    vc_tokenizer_free(t);
    return 0;
}
