/* fuzz_mmproj.c - mmproj files (llama.cpp's vision half): metadata, tensor
 * renaming and the vision family's load from what they stand for, beside the
 * fixture SmolVLM text GGUF's tokenizer (run from the repository root). */
#define _GNU_SOURCE   /* memfd_create, in fuzz_common.h */

#include "fuzz_common.h"
#include "loader/gguf.h"
#include "loader/mmproj.h"
#include "vision/family.h"

static vc_tokenizer *text_tokenizer(void)
{
    static vc_tokenizer *tok;
    static bool tried;
    if (!tried) {
        tried = true;
        vc_gguf g;
        if (vc_gguf_open("tests/fixtures/vision/smolvlm_gguf/smolvlm-f32.gguf", &g) == 0) {
            if (vc_tokenizer_load_gguf(&g, &tok) != 0)
                tok = NULL;
            vc_gguf_close(&g);
        }
    }
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vc_tokenizer *tok = text_tokenizer();
    char path[64];
    int fd = fuzz_memfile(data, size, path, sizeof path);
    if (fd < 0 || !tok)
        return 0;
    vc_mmproj mp;
    if (vc_mmproj_open(path, 64, &mp) == 0) {
        vc_tensor_set *w = mp.weights;
        mp.weights = NULL;
        vc_vision *v = NULL;
        if (vc_vision_load_owned(path, mp.config, mp.processor, mp.processor_root, w, tok, 64, &v) == 0)
            vc_vision_free(v);
        vc_mmproj_free(&mp);
    }
    close(fd);
    return 0;
}
