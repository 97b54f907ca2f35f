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

/* Row r's 16 nibble bytes of a stored Q4_0 / Q5_0 / Q5_1 block (columns
 * 0-15 low, 16-31 high) into the 4 x 32 bytes of an x8 block (dtype.h): the
 * byte for the row's quads p (columns 8p..8p+3 low, 8p+4..8p+7 high) comes
 * from byte 8(p%2)+i of the stored block, low nibbles for p < 2, high ones
 * after. Four bytes at a time (the masks keep each byte's nibbles in it):
 * quad p = 0, 1 takes the low nibbles of bytes 8p..8p+7, p = 2, 3 the high
 * ones of bytes 8(p-2).. */
static void put_nibbles(const uint8_t qs[16], int r, uint8_t out[128])
{
    uint32_t q[4], lo = 0x0f0f0f0fu, quad[4];
    memcpy(q, qs, sizeof q);
    quad[0] = (q[0] & lo) | (q[1] & lo) << 4;
    quad[1] = (q[2] & lo) | (q[3] & lo) << 4;
    quad[2] = (q[0] >> 4 & lo) | (q[1] & ~lo);
    quad[3] = (q[2] >> 4 & lo) | (q[3] & ~lo);
    for (int p = 0; p < 4; p++)
        memcpy(out + 32 * p + 4 * r, &quad[p], 4);
}

/* Row r's fifth bits, bit e of a stored block's qh (a little-endian uint32)
 * for column e, into a Q5_0_X8 / Q5_1_X8 block's qh: byte 4r+i gets bits i,
 * i+4, ..., i+28 as its bits 0..7 (columns 4j+i). The bits 4 apart close up
 * in three steps: pairs into each byte's bits 0-1, fours into each 16 bits'
 * bits 0-3, then the eight into bits 0-7. */
static void put_high_bits(const uint8_t qh[4], int r, uint8_t out[32])
{
    uint32_t h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
    for (int i = 0; i < 4; i++) {
        uint32_t v = (h >> i) & 0x11111111u;
        v = (v | v >> 3) & 0x03030303u;
        v = (v | v >> 6) & 0x000f000fu;
        out[4 * r + i] = (uint8_t)(v | v >> 12);
    }
}

/* Block b of the 8 rows of group g of a Q4_0 or Q8_0 matrix into the
 * interleaved layout: the scales in row order, then the quads. */
static void interleave_block(const vc_matrix *w, int64_t g, int64_t b, uint8_t *dst)
{
    const uint8_t *rows = (const uint8_t *)w->data + (size_t)g * 8 * w->row_bytes;
    if (w->type == VC_Q4_0) {
        vc_block_q4_0x8 *out = (vc_block_q4_0x8 *)dst;
        for (int r = 0; r < 8; r++) {
            const vc_block_q4_0 *blk = (const vc_block_q4_0 *)(rows + (size_t)r * w->row_bytes) + b;
            out->d[r] = blk->d;
            put_nibbles(blk->qs, r, out->qs);
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

/* Block b of the 8 rows of group g of a Q5_0 / Q5_1 matrix into Q5_0_X8 /
 * Q5_1_X8: the scales (and mins) in row order, then the nibbles (stored as
 * Q4_0's are) and the fifth bits. */
static void interleave_q5(const vc_matrix *w, int64_t g, int64_t b, uint8_t *dst)
{
    const uint8_t *rows = (const uint8_t *)w->data + (size_t)g * 8 * w->row_bytes;
    vc_block_q5_0x8 *o0 = (vc_block_q5_0x8 *)dst;
    vc_block_q5_1x8 *o1 = (vc_block_q5_1x8 *)dst;
    for (int r = 0; r < 8; r++) {
        const uint8_t *row = rows + (size_t)r * w->row_bytes;
        if (w->type == VC_Q5_1) {
            const vc_block_q5_1 *blk = (const vc_block_q5_1 *)row + b;
            o1->d[r] = blk->d;
            o1->m[r] = blk->m;
            put_nibbles(blk->qs, r, o1->qs);
            put_high_bits(blk->qh, r, o1->qh);
        } else {
            const vc_block_q5_0 *blk = (const vc_block_q5_0 *)row + b;
            o0->d[r] = blk->d;
            put_nibbles(blk->qs, r, o0->qs);
            put_high_bits(blk->qh, r, o0->qh);
        }
    }
}

/* ---- K-quants: their 6-bit values (0..15, 0..31, 0..63) and scales ---- */

/* Sub-block s's 6-bit scale and min of a Q4_K / Q5_K block (as dtype.c reads them). */
static void k4_scale_min(const uint8_t q[12], int s, uint8_t *sc, uint8_t *m)
{
    if (s < 4) {
        *sc = q[s] & 63;
        *m = q[s + 4] & 63;
    } else {
        *sc = (uint8_t)((q[s + 4] & 0xf) | ((q[s - 4] >> 6) << 4));
        *m = (uint8_t)((q[s + 4] >> 4) | ((q[s] >> 6) << 4));
    }
}

/* The 256 values of a stored super-block, unsigned (w = d sc q - dmin m, or
 * d sc (q - 32) for Q6_K), in column order. */
static void kquant_values(vc_dtype t, const uint8_t *blk, uint8_t q[VC_QK_K])
{
    if (t == VC_Q6_K) {
        const vc_block_q6_k *b = (const vc_block_q6_k *)blk;
        for (int h = 0; h < 2; h++)   /* dtype.c's q1..q4 of half h */
            for (int l = 0; l < 32; l++) {
                const uint8_t *ql = b->ql + 64 * h, hb = b->qh[32 * h + l];
                uint8_t *o = q + 128 * h + l;
                o[0] = (uint8_t)((ql[l] & 0xf) | (hb & 3) << 4);
                o[32] = (uint8_t)((ql[l + 32] & 0xf) | ((hb >> 2) & 3) << 4);
                o[64] = (uint8_t)((ql[l] >> 4) | ((hb >> 4) & 3) << 4);
                o[96] = (uint8_t)((ql[l + 32] >> 4) | ((hb >> 6) & 3) << 4);
            }
        return;
    }
    /* Q4_K / Q5_K: sub-block 2j in the low nibbles of qs[32j..], 2j+1 in the high ones */
    const uint8_t *qs = t == VC_Q4_K ? ((const vc_block_q4_k *)blk)->qs : ((const vc_block_q5_k *)blk)->qs;
    for (int j = 0; j < 4; j++)
        for (int l = 0; l < 32; l++) {
            q[64 * j + l] = qs[32 * j + l] & 0xf;
            q[64 * j + 32 + l] = qs[32 * j + l] >> 4;
        }
    if (t == VC_Q5_K) {
        const uint8_t *qh = ((const vc_block_q5_k *)blk)->qh;
        for (int s = 0; s < 8; s++)
            for (int l = 0; l < 32; l++)
                q[32 * s + l] |= (uint8_t)(((qh[l] >> s) & 1) << 4);
    }
}

/* Super-block k of the 8 rows of group g into the K-quant x8 layout (dtype.h). */
static void interleave_kquant(const vc_matrix *w, int64_t g, int64_t k, uint8_t *dst)
{
    const uint8_t *rows = (const uint8_t *)w->data + (size_t)g * 8 * w->row_bytes;
    size_t bb = vc_dtype_block_bytes(w->type);
    bool q5 = w->type == VC_Q5_K, q6 = w->type == VC_Q6_K;
    vc_block_q4_kx8 *o4 = (vc_block_q4_kx8 *)dst;   /* Q5_K_X8 has Q4_K_X8's header */
    vc_block_q5_kx8 *o5 = (vc_block_q5_kx8 *)dst;
    vc_block_q6_kx8 *o6 = (vc_block_q6_kx8 *)dst;
    for (int r = 0; r < 8; r++) {
        const uint8_t *blk = rows + (size_t)r * w->row_bytes + (size_t)k * bb;
        if (q6) {
            const vc_block_q6_k *b = (const vc_block_q6_k *)blk;
            o6->d[r] = b->d;
            for (int h = 0; h < 16; h++)
                o6->sc[h][r] = b->scales[h];
        } else {
            const vc_block_q4_k *b = (const vc_block_q4_k *)blk;   /* Q5_K: the same d, dmin, scales */
            o4->d[r] = b->d;
            o4->dmin[r] = b->dmin;
            for (int s = 0; s < 8; s++)
                k4_scale_min(b->scales, s, &o4->sc[s][r], &o4->m[s][r]);
        }
        uint8_t q[VC_QK_K];
        kquant_values(w->type, blk, q);
        for (int s = 0; s < 8; s++) {
            const uint8_t *v = q + 32 * s;   /* column c = 4j + i of the sub-block */
            uint8_t *nib = q6 ? o6->sub[s].ql : q5 ? o5->sub[s].qs : o4->qs[s];
            for (int p = 0; p < 4; p++)   /* quads 2p (low nibbles) and 2p+1 (high) */
                for (int i = 0; i < 4; i++)
                    nib[32 * p + 4 * r + i] = (uint8_t)((v[8 * p + i] & 0xf) | (v[8 * p + 4 + i] & 0xf) << 4);
            for (int i = 0; q5 && i < 4; i++) {
                unsigned bits = 0;
                for (int j = 0; j < 8; j++)
                    bits |= (unsigned)((v[4 * j + i] >> 4) & 1) << j;
                o5->sub[s].qh[4 * r + i] = (uint8_t)bits;
            }
            for (int h = 0; q6 && h < 2; h++)
                for (int i = 0; i < 4; i++) {
                    unsigned bits = 0;
                    for (int j = 0; j < 4; j++)
                        bits |= (unsigned)((v[4 * (4 * h + j) + i] >> 4) & 3) << (2 * j);
                    o6->sub[s].qh[32 * h + 4 * r + i] = (uint8_t)bits;
                }
        }
    }
}

static bool is_kquant(vc_dtype t) { return t == VC_Q4_K || t == VC_Q5_K || t == VC_Q6_K; }

/* A Q4_0, Q5_0, Q5_1, Q8_0 or K-quant matrix of whole groups interleaved
 * into a new buffer (*owned), *w describing it; 0, or -1 (no memory; *w
 * unchanged). */
static int interleave(vc_matrix *w, void **owned)
{
    bool kq = is_kquant(w->type), q5 = w->type == VC_Q5_0 || w->type == VC_Q5_1;
    size_t unit = w->type == VC_Q4_0   ? sizeof(vc_block_q4_0x8)
                  : w->type == VC_Q5_0 ? sizeof(vc_block_q5_0x8)
                  : w->type == VC_Q5_1 ? sizeof(vc_block_q5_1x8)
                  : w->type == VC_Q8_0 ? sizeof(vc_block_q8_0x8)
                  : w->type == VC_Q4_K ? sizeof(vc_block_q4_kx8)
                  : w->type == VC_Q5_K ? sizeof(vc_block_q5_kx8)
                                       : sizeof(vc_block_q6_kx8);
    int64_t nb = w->cols / (kq ? VC_QK_K : VC_QK8_0);
    size_t row_bytes = unit / 8 * (size_t)nb, bytes;
    if (!vc_mul_size((size_t)w->rows, row_bytes, &bytes))
        return -1;
    uint8_t *out = vc_malloc(bytes);
    if (!out)
        return -1;
#ifdef MADV_POPULATE_WRITE
    /* its pages in one call rather than a fault each, as huge pages where the
     * kernel's THP mode is madvise (advice only): a one-token product streams
     * the whole copy, and 2 MiB pages gave 3.8B Q4_0 decode about 5% on a
     * 2-core Xeon VM and back-to-back loads of 0.75-0.85 s instead of 0.9-1.5;
     * on that VM, whose host takes freed memory back (free page reporting), a
     * load after 20 s idle took 3.3-4.1 s with them against 1.3-1.5 s in one
     * series without */
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t first = ((uintptr_t)out + page - 1) / page * page, last = ((uintptr_t)out + bytes) / page * page;
    if (last > first) {
#ifdef MADV_HUGEPAGE
        madvise((void *)first, last - first, MADV_HUGEPAGE);
#endif
        madvise((void *)first, last - first, MADV_POPULATE_WRITE);
    }
#endif
    for (int64_t g = 0; g < w->rows / 8; g++)
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *dst = out + (size_t)g * 8 * row_bytes + (size_t)b * unit;
            if (kq)
                interleave_kquant(w, g, b, dst);
            else if (q5)
                interleave_q5(w, g, b, dst);
            else
                interleave_block(w, g, b, dst);
        }
    w->type = w->type == VC_Q4_0   ? VC_Q4_0_X8
              : w->type == VC_Q5_0 ? VC_Q5_0_X8
              : w->type == VC_Q5_1 ? VC_Q5_1_X8
              : w->type == VC_Q8_0 ? VC_Q8_0_X8
              : w->type == VC_Q4_K ? VC_Q4_K_X8
              : w->type == VC_Q5_K ? VC_Q5_K_X8
                                   : VC_Q6_K_X8;
    w->row_bytes = row_bytes;
    w->data = out;
    *owned = out;
    return 0;
}

int vc_matrix_prepare_int8(vc_matrix *w, vc_int8_prepare how, void **owned)
{
    if (!whole_groups(w))
        return 0;
    if (w->type == VC_Q4_0 || w->type == VC_Q5_0 || w->type == VC_Q5_1 || w->type == VC_Q8_0 ||
        (is_kquant(w->type) && w->cols % VC_QK_K == 0))
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
