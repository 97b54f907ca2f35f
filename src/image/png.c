/* png.c - PNG decoding with libpng, matching what PIL produces.
 *
 * Every PNG is expanded to 8-bit RGB the way PIL's convert("RGB") sees it
 * (transformers' load_image and convert_rgb do exactly that): palette and
 * low-bit gray expanded, 16-bit reduced to its high byte, alpha dropped.
 */
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "image/image_impl.h"

typedef struct {
    const uint8_t *data;
    size_t len, pos;
} reader;

static void read_bytes(png_structp png, png_bytep out, png_size_t n)
{
    reader *r = png_get_io_ptr(png);
    if (n > r->len - r->pos)
        png_error(png, "file is truncated");
    memcpy(out, r->data + r->pos, n);
    r->pos += n;
}

static char png_message[256];

static void on_error(png_structp png, png_const_charp msg)
{
    snprintf(png_message, sizeof png_message, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

int img_decode_png(const uint8_t *data, size_t len, const char *name, const vc_image_limits *lim, vc_image *out)
{
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *volatile rows = NULL;
    volatile int rc = -1;
    reader r = { data, len, 0 };
    if (!png || !info) {
        png_destroy_read_struct(&png, &info, NULL);
        return vc_fail_code(VC_EXIT_NOMEM, "out of memory");
    }
    if (setjmp(png_jmpbuf(png))) {
        vc_fail_code(VC_EXIT_INPUT, "%s: corrupt PNG: %s", name, png_message);
        goto done;
    }
    png_set_read_fn(png, &r, read_bytes);
    /* libpng's own ceiling stays as a safety net; our limits (checked below,
     * after reading the header) give the clearer message */
    png_set_user_limits(png, 1000000, 1000000);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (img_check_size(name, w, h, lim) != 0)
        goto done;
    int color = png_get_color_type(png, info);
    if (color == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);          /* no tRNS expansion: transparency is dropped */
    if (color == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    png_set_strip_16(png);                    /* 16-bit: keep the high byte */
    png_set_strip_alpha(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA)
        png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3) {
        snprintf(png_message, sizeof png_message, "unexpected pixel layout");
        vc_fail_code(VC_EXIT_INPUT, "%s: corrupt PNG: %s", name, png_message);
        goto done;
    }
    rows = vc_malloc((size_t)h * sizeof *rows);
    if (!rows || vc_image_alloc(out, (int)w, (int)h) != 0)
        goto done;
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = out->rgb + (size_t)y * w * 3;
    png_read_image(png, rows);
    rc = 0;
done:
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    if (rc != 0)
        vc_image_free(out);
    return rc;
}
