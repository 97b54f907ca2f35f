/* overlay.c - see include/tui/overlay.h */
#include "tui/overlay.h"

#include <math.h>

#include "core/common.h"

static const unsigned char PALETTE[6][3] = { { 255, 40, 40 },  { 40, 220, 40 },  { 40, 120, 255 },
                                             { 255, 200, 0 },  { 255, 0, 255 },  { 0, 230, 230 } };

void vc_overlay_color(int i, unsigned char rgb[3])
{
    for (int c = 0; c < 3; c++)
        rgb[c] = PALETTE[(i % 6 + 6) % 6][c];
}

int vc_overlay_width(const vc_image *img, int max_cols, int cell_w)
{
    int shown = VC_MAX(1, max_cols * VC_MAX(1, cell_w));
    int w = (int)ceil(2.0 * img->width / shown);
    return VC_MAX(1, VC_MIN(w, 64));
}

static void fill(vc_image *img, int x0, int y0, int x1, int y1, const unsigned char rgb[3])
{
    x0 = VC_MAX(x0, 0);
    y0 = VC_MAX(y0, 0);
    x1 = VC_MIN(x1, img->width - 1);
    y1 = VC_MIN(y1, img->height - 1);
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            unsigned char *p = img->rgb + 3 * ((size_t)y * img->width + x);
            p[0] = rgb[0], p[1] = rgb[1], p[2] = rgb[2];
        }
}

static void disc(vc_image *img, int cx, int cy, int radius, const unsigned char rgb[3])
{
    for (int y = cy - radius; y <= cy + radius; y++)
        for (int x = cx - radius; x <= cx + radius; x++)
            if (x >= 0 && y >= 0 && x < img->width && y < img->height &&
                (x - cx) * (x - cx) + (y - cy) * (y - cy) <= radius * radius) {
                unsigned char *p = img->rgb + 3 * ((size_t)y * img->width + x);
                p[0] = rgb[0], p[1] = rgb[1], p[2] = rgb[2];
            }
}

/* A normalized coordinate as a pixel index along a side of n pixels. */
static int px(double v, int n)
{
    double p = floor(v * n);
    return p < -1e6 ? -1000000 : p > 1e6 ? 1000000 : (int)p;
}

void vc_overlay_regions(vc_image *img, const vc_region *r, int n, int width)
{
    static const unsigned char dark[3] = { 0, 0, 0 };
    int lw = VC_MAX(1, width);
    for (int i = 0; i < n; i++) {
        unsigned char c[3];
        vc_overlay_color(i, c);
        if (r[i].box) {
            int x0 = px(r[i].x_min, img->width), y0 = px(r[i].y_min, img->height);
            int x1 = VC_MAX(x0, px(r[i].x_max, img->width)), y1 = VC_MAX(y0, px(r[i].y_max, img->height));
            fill(img, x0, y0, x1, y0 + lw - 1, c);   /* top, bottom, left, right */
            fill(img, x0, y1 - lw + 1, x1, y1, c);
            fill(img, x0, y0, x0 + lw - 1, y1, c);
            fill(img, x1 - lw + 1, y0, x1, y1, c);
        } else {
            int cx = px(r[i].x, img->width), cy = px(r[i].y, img->height);
            disc(img, cx, cy, 3 * lw, dark);
            disc(img, cx, cy, 2 * lw, c);
        }
    }
}
