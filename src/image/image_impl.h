/* image_impl.h - shared by the decoders (jpeg.c, png.c) and image.c. */
#ifndef VC_IMAGE_IMPL_H
#define VC_IMAGE_IMPL_H

#include "image/image.h"

/* Fails with a clear message if the dimensions exceed the limits. */
int img_check_size(const char *name, int64_t width, int64_t height, const vc_image_limits *limits);
/* Applies an EXIF orientation (1..8) in place (may swap width/height). */
int img_apply_orientation(vc_image *img, int orientation);
/* Orientation from a JPEG APP1 "Exif" payload; 1 if absent or unreadable. */
int img_exif_orientation(const uint8_t *app1, size_t len);

int img_decode_jpeg(const uint8_t *data, size_t len, const char *name, const vc_image_limits *limits,
                    vc_image *out, int *orientation);
int img_decode_png(const uint8_t *data, size_t len, const char *name, const vc_image_limits *limits, vc_image *out);

#endif
