/* resize.c - see include/image/resize.h. The arithmetic follows Pillow's
 * libImaging/Resample.c so that results match it exactly. */
#include "image/resize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

#define PRECISION_BITS (32 - 8 - 2)
#define PI 3.14159265358979323846

typedef struct {
    double (*fn)(double x);
    double support;
} filter;

static double box_filter(double x) { return x > -0.5 && x <= 0.5 ? 1.0 : 0.0; }

static double bilinear_filter(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double hamming_filter(double x)
{
    x = fabs(x);
    if (x == 0.0)
        return 1.0;
    if (x >= 1.0)
        return 0.0;
    x *= PI;
    return sin(x) / x * (0.54f + 0.46f * cos(x));   /* float constants, as in Pillow */
}

static double bicubic_filter(double x)
{
    const double a = -0.5;
    x = fabs(x);
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static double sinc(double x)
{
    if (x == 0.0)
        return 1.0;
    x *= PI;
    return sin(x) / x;
}

static double lanczos_filter(double x) { return -3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0; }

/* Per output pixel: the first input index, the count, and ksize fixed-point weights. */
typedef struct {
    int ksize;
    int *bounds;     /* 2 per output pixel: start, count */
    int32_t *k;      /* ksize per output pixel */
} coeffs;

static int precompute(int in_size, int out_size, const filter *f, coeffs *c)
{
    double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = f->support * filterscale;
    c->ksize = (int)ceil(support) * 2 + 1;
    c->bounds = vc_malloc((size_t)out_size * 2 * sizeof *c->bounds);
    c->k = vc_calloc((size_t)out_size * c->ksize, sizeof *c->k);
    double *w = vc_malloc((size_t)c->ksize * sizeof *w);
    if (!c->bounds || !c->k || !w) {
        free(c->bounds);
        free(c->k);
        free(w);
        return -1;
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5), xmax;
        if (xmin < 0)
            xmin = 0;
        xmax = (int)(center + support + 0.5);
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            w[x] = f->fn((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        for (int x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? w[x] / ww : w[x];
            c->k[(size_t)xx * c->ksize + x] =
                v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS)) : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        c->bounds[2 * xx] = xmin;
        c->bounds[2 * xx + 1] = xmax;
    }
    free(w);
    return 0;
}

static void coeffs_free(coeffs *c)
{
    free(c->bounds);
    free(c->k);
}

/* Pillow's clip8: the accumulator shifted down (floor), clamped to 0..255. */
static uint8_t clip8(int32_t v)
{
    int32_t s = v >> PRECISION_BITS;
    return (uint8_t)(s < 0 ? 0 : s > 255 ? 255 : s);
}

/* Horizontal pass over `rows` source rows starting at `first_row`. */
static void pass_horizontal(const vc_image *in, int first_row, int rows, const coeffs *c, vc_image *out)
{
    for (int y = 0; y < rows; y++) {
        const uint8_t *src = in->rgb + (size_t)(y + first_row) * in->width * 3;
        uint8_t *dst = out->rgb + (size_t)y * out->width * 3;
        for (int xx = 0; xx < out->width; xx++) {
            int xmin = c->bounds[2 * xx], n = c->bounds[2 * xx + 1];
            const int32_t *k = c->k + (size_t)xx * c->ksize;
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < n; x++) {
                const uint8_t *p = src + 3 * (x + xmin);
                s0 += p[0] * k[x];
                s1 += p[1] * k[x];
                s2 += p[2] * k[x];
            }
            dst[3 * xx] = clip8(s0);
            dst[3 * xx + 1] = clip8(s1);
            dst[3 * xx + 2] = clip8(s2);
        }
    }
}

static void pass_vertical(const vc_image *in, const coeffs *c, int row_shift, vc_image *out)
{
    for (int yy = 0; yy < out->height; yy++) {
        int ymin = c->bounds[2 * yy] - row_shift, n = c->bounds[2 * yy + 1];
        const int32_t *k = c->k + (size_t)yy * c->ksize;
        uint8_t *dst = out->rgb + (size_t)yy * out->width * 3;
        for (int xx = 0; xx < out->width; xx++) {
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int y = 0; y < n; y++) {
                const uint8_t *p = in->rgb + ((size_t)(y + ymin) * in->width + xx) * 3;
                s0 += p[0] * k[y];
                s1 += p[1] * k[y];
                s2 += p[2] * k[y];
            }
            dst[3 * xx] = clip8(s0);
            dst[3 * xx + 1] = clip8(s1);
            dst[3 * xx + 2] = clip8(s2);
        }
    }
}

/* PIL's NEAREST resize is an affine scale (Geometry.c, ImagingScaleAffine):
 * the source coordinate starts at scale/2 and grows by adding the scale once
 * per pixel, in double, then truncates -- accumulated, not (x + 0.5) * scale,
 * which differs at exact boundaries. */
static int resize_nearest(const vc_image *in, int w, int h, vc_image *out)
{
    if (vc_image_alloc(out, w, h) != 0)
        return -1;
    double sx = (double)in->width / w, sy = (double)in->height / h;
    int *xin = vc_malloc((size_t)w * sizeof *xin);
    if (!xin) {
        vc_image_free(out);
        return -1;
    }
    double xo = sx * 0.5, yo = sy * 0.5;
    for (int x = 0; x < w; x++, xo += sx)
        xin[x] = VC_MIN((int)xo, in->width - 1);
    for (int y = 0; y < h; y++, yo += sy) {
        int iy = VC_MIN((int)yo, in->height - 1);
        for (int x = 0; x < w; x++)
            memcpy(out->rgb + 3 * ((size_t)y * w + x), in->rgb + 3 * ((size_t)iy * in->width + xin[x]), 3);
    }
    free(xin);
    return 0;
}

int vc_image_resize(const vc_image *in, int w, int h, vc_resample f, vc_image *out)
{
    static const filter filters[] = {
        [VC_RESAMPLE_LANCZOS] = { lanczos_filter, 3.0 }, [VC_RESAMPLE_BILINEAR] = { bilinear_filter, 1.0 },
        [VC_RESAMPLE_BICUBIC] = { bicubic_filter, 2.0 }, [VC_RESAMPLE_BOX] = { box_filter, 0.5 },
        [VC_RESAMPLE_HAMMING] = { hamming_filter, 1.0 },
    };
    memset(out, 0, sizeof *out);
    if (w < 1 || h < 1 || w > 65536 || h > 65536)
        return vc_fail_code(VC_EXIT_INPUT, "cannot resize to %dx%d", w, h);
    if (f == VC_RESAMPLE_NEAREST)
        return resize_nearest(in, w, h, out);
    if ((unsigned)f > VC_RESAMPLE_HAMMING)
        return vc_fail_code(VC_EXIT_MODEL, "unknown resampling filter %d", (int)f);
    if (w == in->width && h == in->height) {
        if (vc_image_alloc(out, w, h) != 0)
            return -1;
        memcpy(out->rgb, in->rgb, (size_t)w * h * 3);
        return 0;
    }
    coeffs ch = { 0 }, cv = { 0 };
    vc_image tmp = { 0 };
    int rc = -1;
    if (precompute(in->width, w, &filters[f], &ch) != 0 || precompute(in->height, h, &filters[f], &cv) != 0)
        goto done;
    bool horizontal = w != in->width, vertical = h != in->height;
    int first = cv.bounds[0], last = cv.bounds[2 * h - 2] + cv.bounds[2 * h - 1];
    const vc_image *src = in;
    int shift = 0;
    if (horizontal) {
        /* only the rows the vertical pass will read */
        if (vc_image_alloc(&tmp, w, vertical ? last - first : in->height) != 0)
            goto done;
        pass_horizontal(in, vertical ? first : 0, tmp.height, &ch, &tmp);
        src = &tmp;
        shift = vertical ? first : 0;
    }
    if (vertical) {
        if (vc_image_alloc(out, w, h) != 0)
            goto done;
        pass_vertical(src, &cv, shift, out);
    } else {
        *out = tmp;
        tmp.rgb = NULL;
    }
    rc = 0;
done:
    coeffs_free(&ch);
    coeffs_free(&cv);
    vc_image_free(&tmp);
    return rc;
}

void vc_image_normalize(const vc_image *img, double scale, const float mean[3], const float std[3], float *chw)
{
    size_t plane = (size_t)img->width * img->height;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < plane; i++) {
            float v = (float)(img->rgb[3 * i + c] * scale);
            chw[c * plane + i] = (v - mean[c]) / std[c];
        }
}

/* ---- torch.nn.functional.interpolate(mode='bicubic', align_corners=False) ---- */

/* get_cubic_upsample_coefficients (A = -0.75), in float as ATen computes them. */
static void torch_cubic_coeffs(float t, float w[4])
{
    const float A = -0.75f;
    float x1 = t + 1.0f, x2 = 1.0f - t, x3 = x2 + 1.0f;
    w[0] = ((A * x1 - 5.0f * A) * x1 + 8.0f * A) * x1 - 4.0f * A;   /* cubic_convolution2(t + 1) */
    w[1] = ((A + 2.0f) * t - (A + 3.0f)) * t * t + 1.0f;           /* cubic_convolution1(t) */
    w[2] = ((A + 2.0f) * x2 - (A + 3.0f)) * x2 * x2 + 1.0f;        /* cubic_convolution1(1 - t) */
    w[3] = ((A * x3 - 5.0f * A) * x3 + 8.0f * A) * x3 - 4.0f * A;   /* cubic_convolution2(2 - t) */
}

/* For each output index: the four clamped source indices and their weights
 * (HelperInterpCubic::compute_indices_weights). */
static int torch_cubic_taps(int in, int out, int **idx, float **wt)
{
    *idx = vc_malloc((size_t)out * 4 * sizeof **idx);
    *wt = vc_malloc((size_t)out * 4 * sizeof **wt);
    if (!*idx || !*wt)
        return -1;
    float scale = (float)in / (float)out;      /* area_pixel_compute_scale */
    for (int i = 0; i < out; i++) {
        float real = scale * ((float)i + 0.5f) - 0.5f;   /* area_pixel_compute_source_index, cubic: no clamp */
        int64_t base = (int64_t)floorf(real);
        if (base > in - 1)
            base = in - 1;
        float t = real - (float)base;                     /* guard_index_and_lambda */
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        torch_cubic_coeffs(t, *wt + 4 * (size_t)i);
        for (int j = 0; j < 4; j++) {
            int64_t s = base - 1 + j;
            (*idx)[4 * (size_t)i + j] = (int)(s < 0 ? 0 : s > in - 1 ? in - 1 : s);
        }
    }
    return 0;
}

int vc_planes_resize_bicubic(const float *in, int channels, int width, int height, int out_w, int out_h, float *out)
{
    if (channels < 1 || width < 1 || height < 1 || out_w < 1 || out_h < 1)
        return vc_fail_code(VC_EXIT_INPUT, "bicubic resize: invalid size %dx%d -> %dx%d", width, height, out_w, out_h);
    int *ix = NULL, *iy = NULL;
    float *wx = NULL, *wy = NULL;
    int rc = torch_cubic_taps(width, out_w, &ix, &wx) == 0 && torch_cubic_taps(height, out_h, &iy, &wy) == 0 ? 0 : -1;
    for (int c = 0; rc == 0 && c < channels; c++) {
        const float *src = in + (size_t)c * width * height;
        float *dst = out + (size_t)c * out_w * out_h;
        for (int y = 0; y < out_h; y++)
            for (int x = 0; x < out_w; x++) {
                /* the outer sum runs over rows, each row's sum over columns,
                 * each started from its first term (Interpolate<2, ...>) */
                const int *ry = iy + 4 * (size_t)y, *cx = ix + 4 * (size_t)x;
                const float *vy = wy + 4 * (size_t)y, *vx = wx + 4 * (size_t)x;
                float acc = 0;
                for (int j = 0; j < 4; j++) {
                    const float *row = src + (size_t)ry[j] * width;
                    float t = row[cx[0]] * vx[0];
                    for (int i = 1; i < 4; i++)
                        t += row[cx[i]] * vx[i];
                    acc = j == 0 ? t * vy[0] : acc + t * vy[j];
                }
                dst[(size_t)y * out_w + x] = acc;
            }
    }
    free(ix);
    free(iy);
    free(wx);
    free(wy);
    return rc;
}
