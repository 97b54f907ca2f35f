/* test_tui.c - terminal image previews: the sixel stream vlmchat writes
 * decodes (with libsixel's own decoder) to the image at the expected size
 * and colours; half-block previews carry the pixels as 24-bit colours. */
#define _GNU_SOURCE
#include <sixel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tui/overlay.h"
#include "image/image.h"
#include "tui/preview.h"

static void test_sixel(void)
{
    vc_image img;
    if (vc_image_load(fixture("images/photo.jpg"), NULL, &img) != 0) {
        CHECK(0, "load");
        return;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(vc_preview_show(f, &img, VC_PREVIEW_SIXEL, 80, 24, 10, 20) == 0, "sixel preview");
    fclose(f);
    CHECK(len > 10 && strncmp(buf, "\033P", 2) == 0, "sixel stream starts with DCS (%zu bytes)", len);
    unsigned char *pixels = NULL, *palette = NULL;
    int w = 0, h = 0, ncolors = 0;
    SIXELSTATUS st = sixel_decode_raw((unsigned char *)buf, (int)len, &pixels, &w, &h, &palette, &ncolors, NULL);
    CHECK(SIXEL_SUCCEEDED(st), "sixel stream decodes");
    /* fits 80x24 cells of 10x20 px without enlarging: the original 97x71 */
    CHECK(w == img.width && h == img.height, "decoded %dx%d, want %dx%d", w, h, img.width, img.height);
    if (SIXEL_SUCCEEDED(st) && w == img.width && h == img.height) {
        double err = 0;
        for (int i = 0; i < w * h; i++)
            for (int c = 0; c < 3; c++)
                err += abs(palette[3 * pixels[i] + c] - img.rgb[3 * i + c]);
        err /= (double)w * h * 3;
        CHECK(err < 12, "decoded colours are close to the image (mean error %.1f)", err);
    }
    free(pixels);
    free(palette);
    free(buf);
    vc_image_free(&img);
}

static void test_blocks(void)
{
    vc_image img;
    if (vc_image_alloc(&img, 4, 4) != 0)
        return;
    for (int i = 0; i < 16; i++) {
        img.rgb[3 * i] = (uint8_t)(i < 8 ? 255 : 0);     /* top half red, bottom half blue */
        img.rgb[3 * i + 2] = (uint8_t)(i < 8 ? 0 : 255);
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    vc_preview_show(f, &img, VC_PREVIEW_BLOCKS, 4, 2, 10, 20);
    fclose(f);
    CHECK(strstr(buf, "\033[38;2;255;0;0m\033[48;2;255;0;0m\xE2\x96\x80") != NULL, "top rows: red over red");
    CHECK(strstr(buf, "\033[38;2;0;0;255m\033[48;2;0;0;255m\xE2\x96\x80") != NULL, "bottom rows: blue over blue");
    int lines = 0;
    for (char *p = buf; *p; p++)
        lines += *p == '\n';
    CHECK(lines == 2, "two character rows for four pixel rows (%d)", lines);
    free(buf);
    buf = NULL;
    f = open_memstream(&buf, &len);
    vc_preview_show(f, &img, VC_PREVIEW_NONE, 4, 2, 10, 20);
    fclose(f);
    CHECK(len == 0, "no preview writes nothing");
    free(buf);
    vc_image_free(&img);
    CHECK(vc_preview_from_name("sixel") == VC_PREVIEW_SIXEL && vc_preview_from_name("bad") == -2, "names");
}

/* Boxes outlined and points drawn in the palette's colours, clipped to the image. */
static void test_overlay(void)
{
    vc_image img;
    if (vc_image_alloc(&img, 100, 80) != 0)
        return;
    memset(img.rgb, 100, 3 * 100 * 80);   /* grey: what drawing leaves alone */
    static const unsigned char grey[3] = { 100, 100, 100 }, black[3] = { 0, 0, 0 };
    vc_region r[3] = { { .box = true, .x_min = 0.1, .y_min = 0.2, .x_max = 0.5, .y_max = 0.6 },
                       { .box = false, .x = 0.8, .y = 0.8 },
                       { .box = true, .x_min = -0.5, .y_min = 0.9, .x_max = 1.7, .y_max = 3.0 } };
    vc_overlay_regions(&img, r, 3, 2);
    unsigned char c0[3], c1[3], c2[3];
    vc_overlay_color(0, c0);
    vc_overlay_color(1, c1);
    vc_overlay_color(2, c2);
#define AT(x, y) (img.rgb + 3 * ((size_t)(y) * 100 + (x)))
    CHECK(memcmp(AT(10, 16), c0, 3) == 0 && memcmp(AT(11, 17), c0, 3) == 0 && memcmp(AT(50, 48), c0, 3) == 0,
          "box corners drawn");
    CHECK(memcmp(AT(30, 40), grey, 3) == 0 && memcmp(AT(12, 18), grey, 3) == 0, "box inside untouched");
    CHECK(memcmp(AT(80, 64), c1, 3) == 0, "point drawn at its place");
    CHECK(memcmp(AT(80, 59), black, 3) == 0 && memcmp(AT(80, 58), black, 3) == 0 && memcmp(AT(80, 57), grey, 3) == 0,
          "point has a dark ring");
    CHECK(memcmp(AT(0, 72), c2, 3) == 0 && memcmp(AT(99, 72), c2, 3) == 0 && memcmp(AT(50, 75), c2, 3) != 0,
          "a box past the edges is clipped (only its top edge shows)");
    CHECK(memcmp(c0, c1, 3) != 0 && memcmp(c1, c2, 3) != 0, "objects take different colours");
    CHECK(vc_overlay_width(&img, 48, 10) == 1 && vc_overlay_width(&(vc_image){ .width = 4800 }, 48, 10) == 20,
          "line width follows the preview's scale");
#undef AT
    vc_image_free(&img);
}

int main(void)
{
    test_sixel();
    test_blocks();
    test_overlay();
    return harness_finish("test_tui");
}
