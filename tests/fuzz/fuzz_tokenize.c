/* fuzz_tokenize.c - encoding arbitrary bytes with real tokenizers of both
 * families, and decoding arbitrary id sequences. */
#define _GNU_SOURCE   /* memfd_create, in fuzz_common.h */

#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "text/tokenizer.h"

static vc_tokenizer *toks[2];

static void load(void)
{
    const char *files[2] = { "tests/fixtures/tokenizers/sp_phi3/tokenizer.json",
                             "tests/fixtures/tokenizers/bytelevel_llama3/tokenizer.json" };
    for (int i = 0; i < 2; i++)
        if (!toks[i] && vc_tokenizer_load_json(files[i], &toks[i]) != 0)
            abort();   /* run from the repository root */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    load();
    for (int i = 0; i < 2; i++) {
        int32_t *ids;
        size_t n;
        if (vc_tokenizer_encode(toks[i], (const char *)data, size, i == 0, &ids, &n) == 0) {
            char *out;
            size_t len;
            if (vc_tokenizer_decode(toks[i], ids, n, true, &out, &len) == 0)
                free(out);
            free(ids);
        }
        /* the same bytes read as token ids */
        size_t k = size / sizeof(int32_t);
        int32_t *raw = malloc((k ? k : 1) * sizeof *raw);
        memcpy(raw, data, k * sizeof *raw);
        for (size_t j = 0; j < k; j++)
            raw[j] = (int32_t)((uint32_t)raw[j] % (uint32_t)(vc_tokenizer_size(toks[i]) + 2));
        char *out;
        size_t len;
        if (vc_tokenizer_decode(toks[i], raw, k, false, &out, &len) == 0)
            free(out);
        free(raw);
    }
    return 0;
}
