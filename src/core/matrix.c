/* matrix.c - see include/core/matrix.h */
#include "core/matrix.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/common.h"

vc_matrix vc_matrix_rows(const vc_matrix *m, int64_t first, int64_t count)
{
    vc_matrix r = *m;
    r.rows = count;
    r.data = (const uint8_t *)m->data + (size_t)first * m->row_bytes;
    return r;
}

uint8_t *vc_matrix_requantize(const vc_matrix *m, vc_dtype t, int64_t (*dst_row)(int64_t r, int arg), int arg,
                              size_t *row_bytes)
{
    size_t rb, total;
    if (vc_dtype_row_bytes(t, m->cols, &rb) != 0 || !vc_mul_size(rb, (size_t)m->rows, &total))
        return NULL;
    uint8_t *out = vc_malloc(total);
    float *row = vc_malloc((size_t)m->cols * sizeof *row);
    if (!out || !row) {
        free(out);
        free(row);
        return NULL;
    }
    for (int64_t r = 0; r < m->rows; r++) {
        vc_dequantize_row(m->type, (const uint8_t *)m->data + (size_t)r * m->row_bytes, row, m->cols);
        vc_quantize_row(t, row, out + (size_t)(dst_row ? dst_row(r, arg) : r) * rb, m->cols);
    }
    free(row);
    *row_bytes = rb;
    return out;
}

/* ---- rows interleaved in groups of 8 (the layout in dtype.h) ---- */

/* Whole groups of 8 rows of whole 32-column blocks. */
static bool whole_groups(const vc_matrix *w) { return w->rows % 8 == 0 && w->cols % VC_QK8_0 == 0 && w->cols > 0; }

/* Block b of the 8 rows of group g into the interleaved layout: the scales
 * in row order, then the quads. Q4_0 keeps its nibbles: the byte for rows'
 * quads p (columns 8p..8p+3 low, 8p+4..8p+7 high) comes from byte 8(p%2)+i
 * of the stored block, low nibbles for p < 2, high ones after (the stored
 * block holds columns 0-15 low, 16-31 high). */
static void interleave_block(const vc_matrix *w, int64_t g, int64_t b, uint8_t *dst)
{
    const uint8_t *rows = (const uint8_t *)w->data + (size_t)g * 8 * w->row_bytes;
    if (w->type == VC_Q4_0) {
        vc_block_q4_0x8 *out = (vc_block_q4_0x8 *)dst;
        for (int r = 0; r < 8; r++) {
            const vc_block_q4_0 *blk = (const vc_block_q4_0 *)(rows + (size_t)r * w->row_bytes) + b;
            out->d[r] = blk->d;
            /* four bytes at a time (the masks keep each byte's nibbles in it):
             * quad p = 0, 1 takes the low nibbles of bytes 8p..8p+7, p = 2, 3
             * the high ones of bytes 8(p-2).. */
            uint32_t q[4], lo = 0x0f0f0f0fu, quad[4];
            memcpy(q, blk->qs, sizeof q);
            quad[0] = (q[0] & lo) | (q[1] & lo) << 4;
            quad[1] = (q[2] & lo) | (q[3] & lo) << 4;
            quad[2] = (q[0] >> 4 & lo) | (q[1] & ~lo);
            quad[3] = (q[2] >> 4 & lo) | (q[3] & ~lo);
            for (int p = 0; p < 4; p++)
                memcpy(out->qs + 32 * p + 4 * r, &quad[p], 4);
        }
    } else {
        vc_block_q8_0x8 *out = (vc_block_q8_0x8 *)dst;
        for (int r = 0; r < 8; r++) {
            const vc_block_q8_0 *blk = (const vc_block_q8_0 *)(rows + (size_t)r * w->row_bytes) + b;
            out->d[r] = blk->d;
            for (int j = 0; j < 8; j++)
                memcpy(out->qs + 32 * j + 4 * r, blk->qs + 4 * j, 4);
        }
    }
}

/* A Q4_0 or Q8_0 matrix of whole groups interleaved into a new buffer
 * (*owned), *w describing it; 0, or -1 (no memory; *w unchanged). */
static int interleave(vc_matrix *w, void **owned)
{
    size_t bytes;
    if (!vc_mul_size((size_t)w->rows, w->row_bytes, &bytes))
        return -1;
    uint8_t *out = vc_malloc(bytes);
    if (!out)
        return -1;
#ifdef MADV_POPULATE_WRITE
    /* its pages in one call rather than a fault each (advice only) */
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t first = ((uintptr_t)out + page - 1) / page * page, last = ((uintptr_t)out + bytes) / page * page;
    if (last > first)
        madvise((void *)first, last - first, MADV_POPULATE_WRITE);
#endif
    int64_t nb = w->cols / VC_QK8_0;
    bool q4 = w->type == VC_Q4_0;
    size_t block_bytes = q4 ? sizeof(vc_block_q4_0x8) : sizeof(vc_block_q8_0x8);
    for (int64_t g = 0; g < w->rows / 8; g++)
        for (int64_t b = 0; b < nb; b++)
            interleave_block(w, g, b, out + (size_t)g * 8 * w->row_bytes + (size_t)b * block_bytes);
    w->type = q4 ? VC_Q4_0_X8 : VC_Q8_0_X8;
    w->data = out;
    *owned = out;
    return 0;
}

int vc_matrix_prepare_int8(vc_matrix *w, vc_int8_prepare how, void **owned)
{
    if (!whole_groups(w))
        return 0;
    if (w->type == VC_Q4_0 || w->type == VC_Q8_0)
        return interleave(w, owned) == 0 ? 1 : -1;
    /* every stored type; not an interleaved one */
    if (how == VC_INT8_AS_STORED || !vc_dtype_valid((uint32_t)w->type))
        return 0;
    bool is_float = w->type == VC_F32 || w->type == VC_F16 || w->type == VC_BF16;
    if (how == VC_INT8_QUANTIZED && is_float)
        return 0;
    size_t rb;
    uint8_t *q8 = vc_matrix_requantize(w, VC_Q8_0, NULL, 0, &rb);
    if (!q8)
        return -1;
    vc_matrix q = { VC_Q8_0, w->cols, w->rows, rb, q8 };
    int rc = interleave(&q, owned);
    free(q8);
    if (rc != 0)
        return -1;
    *w = q;
    return 1;
}
