/* processor.c - see include/vision/processor.h */
#include "vision/processor.h"

#include "core/common.h"

int vc_json_int(json_t *o, const char *key, int dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int)json_integer_value(v) : json_is_real(v) ? (int)json_real_value(v) : dflt;
}

bool vc_json_flag(json_t *o, const char *key, bool dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

int vc_read_normalization(json_t *proc, const float dflt_mean[3], const float dflt_std[3], double *rescale,
                          float mean[3], float std[3])
{
    json_t *rs = json_object_get(proc, "rescale_factor");
    *rescale = json_is_number(rs) ? json_number_value(rs) : 1.0 / 255;
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
