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
    for (int c = 0; c < 3; c++) {
        json_t *mv = json_array_get(json_object_get(proc, "image_mean"), (size_t)c);
        json_t *sv = json_array_get(json_object_get(proc, "image_std"), (size_t)c);
        mean[c] = json_is_number(mv) ? (float)json_number_value(mv) : dflt_mean[c];
        std[c] = json_is_number(sv) ? (float)json_number_value(sv) : dflt_std[c];
        if (!(std[c] > 0))
            return vc_fail_code(VC_EXIT_MODEL, "image_std must be positive");
    }
    return 0;
}
