/* fuzz_image.c - JPEG and PNG decoding (limits kept small so that huge
 * declared sizes are refused rather than allocated), then a resize. */
#define _GNU_SOURCE   /* memfd_create, in fuzz_common.h */

#include "fuzz_common.h"
#include "image/resize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vc_image_limits lim = vc_image_default_limits();
    lim.max_side = 2048;
    lim.max_pixels = 1 << 20;
    vc_image img;
    if (vc_image_decode(data, size, "fuzz", &lim, &img) != 0)
        return 0;
    vc_image small;
    if (vc_image_resize(&img, 7, 5, VC_RESAMPLE_BICUBIC, &small) == 0)
        vc_image_free(&small);
    vc_image_free(&img);
    return 0;
}
