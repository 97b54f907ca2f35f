/* fuzz_gguf.c - GGUF files: header, metadata, tensor infos, and building a
 * model (config, tokenizer, weights) from whatever loads. */
#define _GNU_SOURCE   /* memfd_create, in fuzz_common.h */

#include "fuzz_common.h"
#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_memfile(data, size, path, sizeof path);
    if (fd < 0)
        return 0;
    vc_model m;
    if (vc_model_open(path, &(vc_model_options){ .n_ctx = 16, .mem_limit = (size_t)1 << 30 }, &m) == 0) {
        float logits[1];
        (void)logits;
        vc_model_close(&m);
    }
    close(fd);
    return 0;
}
