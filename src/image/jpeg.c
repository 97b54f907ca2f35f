/* jpeg.c - JPEG decoding with libjpeg-turbo, matching what PIL produces.
 *
 * libjpeg reports fatal errors through error_exit, which must not return:
 * we longjmp back with the message.  A truncated file (libjpeg's "premature
 * end" warning) is an error too, as in PIL.  CMYK/YCCK files are read the
 * way PIL reads them (Adobe-inverted CMYK, then PIL's cmyk2rgb).
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "core/common.h"
#include "image/image_impl.h"

#define MAX_SCANS 1000   /* progressive files with more scans are refused (CPU bomb) */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} error_mgr;

static void on_error(j_common_ptr cinfo)
{
    error_mgr *err = (error_mgr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, err->message);
    longjmp(err->jump, 1);
}

static void on_message(j_common_ptr cinfo, int level)
{
    error_mgr *err = (error_mgr *)cinfo->err;
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        snprintf(err->message, sizeof err->message, "file is truncated");
        longjmp(err->jump, 1);
    }
}

static void on_progress(j_common_ptr cinfo)
{
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number > MAX_SCANS) {
        error_mgr *err = (error_mgr *)cinfo->err;
        snprintf(err->message, sizeof err->message, "more than %d progressive scans", MAX_SCANS);
        longjmp(err->jump, 1);
    }
}

/* PIL: MULDIV255(a, b) = (t = a*b + 128, ((t >> 8) + t) >> 8) */
static uint8_t muldiv255(int a, int b)
{
    int t = a * b + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

static uint8_t clip8(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

static void cmyk_row_to_rgb(const uint8_t *in, uint8_t *out, int width)
{
    for (int x = 0; x < width; x++, in += 4, out += 3) {
        /* stored inverted (Adobe); PIL's cmyk2rgb with nk = 255 - k = stored k */
        int nk = in[3];
        for (int c = 0; c < 3; c++)
            out[c] = clip8(nk - muldiv255(255 - in[c], nk));
    }
}

int img_decode_jpeg(const uint8_t *data, size_t len, const char *name, const vc_image_limits *lim, vc_image *out,
                    int *orientation)
{
    struct jpeg_decompress_struct cinfo;
    struct jpeg_progress_mgr progress;
    error_mgr err;
    /* volatile: these change between setjmp and a possible longjmp */
    uint8_t *volatile row = NULL;
    volatile int rc = -1;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = on_error;
    err.pub.emit_message = on_message;
    err.message[0] = 0;
    if (setjmp(err.jump)) {
        vc_fail_code(VC_EXIT_INPUT, "%s: corrupt JPEG: %s", name, err.message);
        goto done;
    }
    jpeg_create_decompress(&cinfo);
    progress.progress_monitor = on_progress;
    cinfo.progress = &progress;
    cinfo.mem->max_memory_to_use = 1l << 30;
    jpeg_mem_src(&cinfo, data, (unsigned long)len);
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xffff);
    jpeg_read_header(&cinfo, TRUE);
    if (img_check_size(name, cinfo.image_width, cinfo.image_height, lim) != 0)
        goto done;
    *orientation = 1;
    for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && (*orientation = img_exif_orientation(m->data, m->data_length)) != 1)
            break;
    bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    if (vc_image_alloc(out, (int)cinfo.output_width, (int)cinfo.output_height) != 0)
        goto done;
    row = vc_malloc((size_t)cinfo.output_width * 4);
    if (!row)
        goto done;
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW rows[1] = { row };
        uint8_t *dst = out->rgb + (size_t)cinfo.output_scanline * out->width * 3;
        jpeg_read_scanlines(&cinfo, rows, 1);
        if (cmyk)
            cmyk_row_to_rgb(row, dst, out->width);
        else
            memcpy(dst, row, (size_t)out->width * 3);
    }
    jpeg_finish_decompress(&cinfo);
    rc = 0;
done:
    jpeg_destroy_decompress(&cinfo);
    free(row);
    if (rc != 0)
        vc_image_free(out);
    return rc;
}
