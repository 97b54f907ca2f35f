/* image.h - decoding image files into 8-bit RGB.
 *
 * The result is what the reference pipelines see: transformers' load_image
 * applies the EXIF orientation (PIL's exif_transpose) and then PIL's
 * convert("RGB"), which drops any alpha channel.  JPEG (baseline, progressive,
 * grayscale, CMYK/YCCK) goes through libjpeg-turbo, PNG (gray, gray+alpha,
 * palette with transparency, RGB(A), 16-bit, interlaced) through libpng.
 * Dimensions are checked against limits from the file header, before any
 * pixel memory is allocated, so a decompression bomb is refused cheaply.
 */
#ifndef VC_IMAGE_IMAGE_H
#define VC_IMAGE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int width, height;
    uint8_t *rgb;          /* width * height * 3 bytes, rows top to bottom */
} vc_image;

typedef struct {
    int max_side;          /* largest width or height accepted */
    int64_t max_pixels;    /* largest width * height accepted */
    size_t max_file_bytes;
} vc_image_limits;

/* 16384 per side, 64 megapixels, 256 MiB files. */
vc_image_limits vc_image_default_limits(void);

/* Loads a file (format from its magic bytes). Errors have exit class
 * VC_EXIT_INPUT and name the file. */
int vc_image_load(const char *path, const vc_image_limits *limits, vc_image *out);
/* Decodes bytes in memory; `name` is used in messages. */
int vc_image_decode(const uint8_t *data, size_t len, const char *name, const vc_image_limits *limits,
                    vc_image *out);
/* Allocates a width x height image (contents undefined). */
int vc_image_alloc(vc_image *img, int width, int height);
void vc_image_free(vc_image *img);

#endif
