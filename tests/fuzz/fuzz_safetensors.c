/* fuzz_safetensors.c - the safetensors header (length, JSON, dtypes,
 * shapes, offsets, overlaps). */
#define _GNU_SOURCE   /* memfd_create, in fuzz_common.h */

#include "fuzz_common.h"
#include "loader/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_memfile(data, size, path, sizeof path);
    if (fd < 0)
        return 0;
    vc_tensor_set set = { 0 };
    if (vc_safetensors_load(path, &set) == 0)
        vc_tensors_check_overlap(&set);
    vc_tensors_free(&set);
    close(fd);
    return 0;
}
