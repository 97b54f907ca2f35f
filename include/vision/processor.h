/* processor.h - reading image-processor settings shared by the model
 * families (processor_config.json / preprocessor_config.json fields). */
#ifndef VC_VISION_PROCESSOR_H
#define VC_VISION_PROCESSOR_H

#include <jansson.h>
#include <stdbool.h>

/* rescale_factor, image_mean and image_std, with the family's defaults;
 * a list of one number stands for every channel; fails if a std is not
 * positive or a list has another length. */
int vc_read_normalization(json_t *proc, const float dflt_mean[3], const float dflt_std[3], double *rescale,
                          float mean[3], float std[3]);

#endif
