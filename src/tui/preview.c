/* preview.c - see include/tui/preview.h */
#define _POSIX_C_SOURCE 200809L
#include "tui/preview.h"

#include <poll.h>
#include <sixel.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "core/common.h"
#include "image/resize.h"

int vc_preview_from_name(const char *name)
{
    if (!name || strcmp(name, "auto") == 0)
        return -1;
    if (strcmp(name, "none") == 0 || strcmp(name, "off") == 0)
        return VC_PREVIEW_NONE;
    if (strcmp(name, "blocks") == 0)
        return VC_PREVIEW_BLOCKS;
    if (strcmp(name, "sixel") == 0)
        return VC_PREVIEW_SIXEL;
    return -2;
}

/* Sends a query and reads the reply up to `end` (raw mode, with a timeout). */
static int query(int in_fd, int out_fd, const char *q, char end, char *buf, size_t size, int timeout_ms)
{
    struct termios old, raw;
    if (tcgetattr(in_fd, &old) != 0)
        return -1;
    raw = old;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    tcsetattr(in_fd, TCSANOW, &raw);
    size_t n = 0;
    if (write(out_fd, q, strlen(q)) == (ssize_t)strlen(q)) {
        struct pollfd p = { in_fd, POLLIN, 0 };
        while (n + 1 < size && poll(&p, 1, timeout_ms) > 0) {
            char c;
            if (read(in_fd, &c, 1) != 1)
                break;
            buf[n++] = c;
            if (c == end)
                break;
        }
    }
    buf[n] = 0;
    tcsetattr(in_fd, TCSANOW, &old);
    return n > 0 && buf[n - 1] == end ? 0 : -1;
}

vc_preview_mode vc_preview_detect(int in_fd, int out_fd, int timeout_ms, int *cell_w, int *cell_h)
{
    *cell_w = 10;
    *cell_h = 20;
    const char *nc = getenv("NO_COLOR");
    if ((nc && *nc) || !isatty(in_fd) || !isatty(out_fd))
        return VC_PREVIEW_NONE;
    const char *term = getenv("TERM");
    if (!term || strcmp(term, "dumb") == 0)
        return VC_PREVIEW_NONE;
    char buf[128];
    vc_preview_mode mode = VC_PREVIEW_BLOCKS;
    /* DA1: ESC [ ? attrs c; attribute 4 means sixel graphics */
    if (query(in_fd, out_fd, "\033[c", 'c', buf, sizeof buf, timeout_ms) == 0) {
        char *p = strchr(buf, '?');
        for (char *tok = p ? strtok(p + 1, ";c") : NULL; tok; tok = strtok(NULL, ";c"))
            if (strcmp(tok, "4") == 0)
                mode = VC_PREVIEW_SIXEL;
    }
    /* cell size: ESC [ 16 t -> ESC [ 6 ; height ; width t */
    int h, w;
    if (mode == VC_PREVIEW_SIXEL && query(in_fd, out_fd, "\033[16t", 't', buf, sizeof buf, timeout_ms) == 0 &&
        sscanf(buf, "\033[6;%d;%dt", &h, &w) == 2 && h > 0 && w > 0) {
        *cell_w = w;
        *cell_h = h;
    }
    return mode;
}

static int write_out(char *data, int size, void *priv)
{
    return fwrite(data, 1, (size_t)size, priv) == (size_t)size ? 0 : -1;
}

static int show_sixel(FILE *out, const vc_image *img)
{
    sixel_output_t *output = NULL;
    sixel_dither_t *dither = NULL;
    int rc = -1;
    if (SIXEL_SUCCEEDED(sixel_output_new(&output, write_out, out, NULL)) &&
        SIXEL_SUCCEEDED(sixel_dither_new(&dither, 256, NULL)) &&
        SIXEL_SUCCEEDED(sixel_dither_initialize(dither, img->rgb, img->width, img->height, SIXEL_PIXELFORMAT_RGB888,
                                                SIXEL_LARGE_AUTO, SIXEL_REP_AUTO, SIXEL_QUALITY_AUTO)) &&
        SIXEL_SUCCEEDED(sixel_encode(img->rgb, img->width, img->height, 0, dither, output)))
        rc = 0;
    if (dither)
        sixel_dither_unref(dither);
    if (output)
        sixel_output_unref(output);
    fputc('\n', out);
    return rc == 0 ? 0 : vc_fail("sixel encoding failed");
}

static void show_blocks(FILE *out, const vc_image *img)
{
    for (int y = 0; y + 1 < img->height || y == img->height - 1; y += 2) {
        for (int x = 0; x < img->width; x++) {
            const uint8_t *top = img->rgb + 3 * ((size_t)y * img->width + x);
            const uint8_t *bot = y + 1 < img->height ? top + 3 * (size_t)img->width : top;
            fprintf(out, "\033[38;2;%d;%d;%dm\033[48;2;%d;%d;%dm\xE2\x96\x80", top[0], top[1], top[2], bot[0], bot[1],
                    bot[2]);
        }
        fputs("\033[0m\n", out);
        if (y + 1 >= img->height)
            break;
    }
}

int vc_preview_show(FILE *out, const vc_image *img, vc_preview_mode mode, int max_cols, int max_rows, int cell_w,
                    int cell_h)
{
    if (mode == VC_PREVIEW_NONE)
        return 0;
    /* fit into the cell box, never enlarging pixels past the original */
    double px_w = mode == VC_PREVIEW_SIXEL ? (double)max_cols * cell_w : max_cols;
    double px_h = mode == VC_PREVIEW_SIXEL ? (double)max_rows * cell_h : 2.0 * max_rows;
    double scale = VC_MIN(px_w / img->width, px_h / img->height);
    if (mode == VC_PREVIEW_SIXEL && scale > 1)
        scale = 1;
    int w = VC_MAX(1, (int)(img->width * scale)), h = VC_MAX(1, (int)(img->height * scale));
    vc_image small;
    if (vc_image_resize(img, w, h, w < img->width ? VC_RESAMPLE_BOX : VC_RESAMPLE_NEAREST, &small) != 0)
        return -1;
    int rc = 0;
    if (mode == VC_PREVIEW_SIXEL)
        rc = show_sixel(out, &small);
    else
        show_blocks(out, &small);
    fflush(out);
    vc_image_free(&small);
    return rc;
}
