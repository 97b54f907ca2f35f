/* resize.h - resampling and pixel normalization as the reference image
 * processors do them.
 *
 * vc_image_resize reproduces PIL's Image.resize on RGB images bit for bit:
 * separable convolution (horizontal pass first, over the rows the vertical
 * pass needs), the filter support widened by the scale when shrinking
 * (antialiasing), coefficients in 22-bit fixed point, and rounding/clipping
 * to 8 bits after each pass.  Filter numbers are PIL's, as processors store
 * them in their "resample" field.
 */
#ifndef VC_IMAGE_RESIZE_H
#define VC_IMAGE_RESIZE_H

#include "image/image.h"

typedef enum {
    VC_RESAMPLE_NEAREST = 0,
    VC_RESAMPLE_LANCZOS = 1,
    VC_RESAMPLE_BILINEAR = 2,
    VC_RESAMPLE_BICUBIC = 3,
    VC_RESAMPLE_BOX = 4,
    VC_RESAMPLE_HAMMING = 5
} vc_resample;

/* Resizes to width x height. Fails for sizes < 1 or an unknown filter. */
int vc_image_resize(const vc_image *in, int width, int height, vc_resample filter, vc_image *out);

/* Writes planar float pixels (3 x height x width) as transformers' rescale
 * then normalize: v = float(u8 * scale); out = (v - mean[c]) / std[c]. */
void vc_image_normalize(const vc_image *img, double scale, const float mean[3], const float std[3], float *chw);

/* torch.nn.functional.interpolate(x, size=(out_h, out_w), mode='bicubic',
 * align_corners=False) on planar floats (channels x height x width), as ATen's
 * CPU kernel computes it: source x = (in/out) * (dst + 0.5) - 0.5, the cubic
 * convolution weights with A = -0.75, taps clamped at the borders, sums in
 * float. out holds channels x out_h x out_w. */
int vc_planes_resize_bicubic(const float *in, int channels, int width, int height, int out_w, int out_h, float *out);

#endif
