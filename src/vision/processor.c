/* processor.c - see include/vision/processor.h */
#include "vision/processor.h"

#include <float.h>

#include "core/common.h"
#include "core/json.h"

int vc_read_normalization(json_t *proc, const float dflt_mean[3], const float dflt_std[3], double *rescale,
                          float mean[3], float std[3])
{
    if (vc_json_get_num(proc, "rescale_factor", -DBL_MAX, DBL_MAX, 1.0 / 255, rescale) != 0)
        return -1;
    const char *keys[2] = { "image_mean", "image_std" };
    const float *dflt[2] = { dflt_mean, dflt_std };
    float *dst[2] = { mean, std };
    for (int k = 0; k < 2; k++) {
        float v[3];
        size_t n;
        if (vc_json_float_list(json_object_get(proc, keys[k]), keys[k], -FLT_MAX, FLT_MAX, v, 3, &n) != 0)
            return -1;
        if (n != 0 && n != 1 && n != 3)
            return vc_fail_code(VC_EXIT_MODEL, "%s must list 3 numbers (or one for all channels), not %zu", keys[k], n);
        for (int c = 0; c < 3; c++)   /* one number stands for every channel, as in transformers */
            dst[k][c] = n == 0 ? dflt[k][c] : v[n == 1 ? 0 : c];
    }
    for (int c = 0; c < 3; c++)
        if (!(std[c] > 0))
            return vc_fail_code(VC_EXIT_MODEL, "image_std must be positive");
    return 0;
}
