/* image.c - see include/image/image.h */
#include "image/image.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/common.h"
#include "image/image_impl.h"

vc_image_limits vc_image_default_limits(void)
{
    return (vc_image_limits){ .max_side = 16384, .max_pixels = 64ll << 20, .max_file_bytes = (size_t)256 << 20 };
}

int img_check_size(const char *name, int64_t w, int64_t h, const vc_image_limits *lim)
{
    if (w <= 0 || h <= 0)
        return vc_fail_code(VC_EXIT_INPUT, "%s: image has no pixels (%lldx%lld)", name, (long long)w, (long long)h);
    if (w > lim->max_side || h > lim->max_side || w * h > lim->max_pixels)
        return vc_fail_code(VC_EXIT_INPUT, "%s: image is %lldx%lld, over the limit of %d per side and %lld pixels",
                            name, (long long)w, (long long)h, lim->max_side, (long long)lim->max_pixels);
    return 0;
}

int vc_image_alloc(vc_image *img, int width, int height)
{
    img->width = width;
    img->height = height;
    img->rgb = vc_calloc((size_t)width * (size_t)height, 3);
    return img->rgb ? 0 : -1;
}

void vc_image_free(vc_image *img)
{
    free(img->rgb);
    memset(img, 0, sizeof *img);
}

/* Orientation values as EXIF defines them; PIL's exif_transpose maps
 * 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 270 (clockwise 90),
 * 7 transverse, 8 rotate 90. */
int img_apply_orientation(vc_image *img, int o)
{
    if (o < 2 || o > 8)
        return 0;
    int w = img->width, h = img->height;
    bool swap = o >= 5;
    int ow = swap ? h : w, oh = swap ? w : h;
    vc_image out;
    if (vc_image_alloc(&out, ow, oh) != 0)
        return -1;
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            int sx, sy;
            switch (o) {
            case 2: sx = w - 1 - x; sy = y; break;
            case 3: sx = w - 1 - x; sy = h - 1 - y; break;
            case 4: sx = x; sy = h - 1 - y; break;
            case 5: sx = y; sy = x; break;
            case 6: sx = y; sy = h - 1 - x; break;
            case 7: sx = w - 1 - y; sy = h - 1 - x; break;
            default: sx = w - 1 - y; sy = x; break;   /* 8 */
            }
            memcpy(out.rgb + 3 * ((size_t)y * ow + x), img->rgb + 3 * ((size_t)sy * w + sx), 3);
        }
    vc_image_free(img);
    *img = out;
    return 0;
}

static uint32_t rd16(const uint8_t *p, bool le) { return le ? p[0] | p[1] << 8 : p[0] << 8 | p[1]; }
static uint32_t rd32(const uint8_t *p, bool le)
{
    return le ? (uint32_t)p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24
              : (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

int img_exif_orientation(const uint8_t *d, size_t len)
{
    if (len < 14 || memcmp(d, "Exif\0\0", 6) != 0)
        return 1;
    const uint8_t *t = d + 6;     /* TIFF header */
    size_t n = len - 6;
    bool le = t[0] == 'I' && t[1] == 'I';
    if (!le && !(t[0] == 'M' && t[1] == 'M'))
        return 1;
    uint32_t ifd = rd32(t + 4, le);
    if (ifd > n - 2 || ifd < 8)
        return 1;
    uint32_t count = rd16(t + ifd, le);
    for (uint32_t i = 0; i < count; i++) {
        size_t e = ifd + 2 + 12 * (size_t)i;
        if (e + 12 > n)
            break;
        if (rd16(t + e, le) == 0x0112 && rd16(t + e + 2, le) == 3) {   /* Orientation, SHORT */
            uint32_t v = rd16(t + e + 8, le);
            return v >= 1 && v <= 8 ? (int)v : 1;
        }
    }
    return 1;
}

int vc_image_decode(const uint8_t *data, size_t len, const char *name, const vc_image_limits *limits, vc_image *out)
{
    vc_image_limits lim = limits ? *limits : vc_image_default_limits();
    memset(out, 0, sizeof *out);
    if (len >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) {
        int orientation = 1;
        if (img_decode_jpeg(data, len, name, &lim, out, &orientation) != 0)
            return -1;
        if (img_apply_orientation(out, orientation) != 0) {
            vc_image_free(out);
            return -1;
        }
        return 0;
    }
    if (len >= 8 && memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0)
        return img_decode_png(data, len, name, &lim, out);
    return vc_fail_code(VC_EXIT_INPUT, "%s: not a JPEG or PNG image", name);
}

int vc_image_load(const char *path, const vc_image_limits *limits, vc_image *out)
{
    vc_image_limits lim = limits ? *limits : vc_image_default_limits();
    struct stat st;
    if (stat(path, &st) != 0)
        return vc_fail_code(VC_EXIT_INPUT, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return vc_fail_code(VC_EXIT_INPUT, "%s: not a regular file", path);
    if ((uint64_t)st.st_size > lim.max_file_bytes)
        return vc_fail_code(VC_EXIT_INPUT, "%s: file of %lld bytes is over the %zu-byte limit", path,
                            (long long)st.st_size, lim.max_file_bytes);
    size_t len;
    char *data = vc_read_file(path, &len);
    if (!data)
        return vc_fail_code(VC_EXIT_INPUT, "%s", vc_error());
    int rc = vc_image_decode((const uint8_t *)data, len, path, &lim, out);
    free(data);
    return rc;
}
