/* kernels.c - see include/core/kernels.h
 *
 * The matrix-product dispatcher: splits the rows over the pool and sends
 * each share to the row dots (core/dot.h), the GEMM (core/gemm.h) or the
 * integer kernels (core/int8dot.h).
 */
#include "core/kernels.h"

#include <math.h>
#include <stdlib.h>

#include "core/common.h"
#include "core/gemm.h"
#include "core/int8dot.h"
#include "core/threads.h"
#include "dot_avx512.h"

#ifdef VC_HAVE_BLAS
#include <cblas.h>
#endif

/* Rows [r0, r0 + nr) of w as floats, transposed: out[c * ld + r]. Rows
 * of other types than F32 are expanded first (into rows, nr x cols), then
 * turned by vc_transpose. Used where vc_gemm_nn is preferred (AVX-512). */
static void expand_transposed(const vc_matrix *w, int64_t r0, int nr, float *rows, float *out, int ld)
{
    int64_t cols = w->cols;
    const float *src = (const float *)((const uint8_t *)w->data + (size_t)r0 * w->row_bytes);
    size_t lds = w->row_bytes / sizeof(float);
    if (w->type != VC_F32) {
        for (int r = 0; r < nr; r++)
            vc_dequantize_row_avx512(w->type, (const uint8_t *)w->data + (size_t)(r0 + r) * w->row_bytes,
                                     rows + (size_t)r * cols, cols);
        src = rows;
        lds = (size_t)cols;
    }
    vc_transpose(nr, (int)cols, src, (int)lds, out, ld);
}

/* Rows [begin, end) of one matrix product. One token: a dot product per row,
 * integer (xq set) or float. Several: blocks of rows expanded to f32 once,
 * then multiplied with all the tokens: during prefill and in the vision
 * tower the weights, not the activations, are the traffic, and the FMAs the
 * limit. The block is laid out for the faster GEMM here: transposed for
 * vc_gemm_nn (AVX-512), as rows for vc_gemm_nt (F32 rows used in place). */
static void product_rows(const vc_matrix *w, const float *x, const vc_block_q8_act *xq, vc_dot_act_fn dot_act,
                         int n, float *y, int64_t begin, int64_t end)
{
    int64_t cols = w->cols;
    if (xq && n == 1) {
        for (int64_t r = begin; r < end; r++)
            y[r] = dot_act(w->type, (const uint8_t *)w->data + (size_t)r * w->row_bytes, xq, cols);
        return;
    }
    if (xq) {   /* K-quants, a few tokens: rows as stored, four tokens at a time */
        vc_int8dot_rows(w, begin, end, xq, n, y + begin, (int)w->rows);
        return;
    }
    if (n == 1) {
        for (int64_t r = begin; r < end; r++)
            y[r] = vc_dot_row(w->type, (const uint8_t *)w->data + (size_t)r * w->row_bytes, x, cols);
        return;
    }
    bool nn = vc_gemm_nn_preferred() && !(n >= VC_BLAS_MIN_TOKENS && vc_gemm_use_blas());
    int block = nn ? 64 : 48;   /* NN: four 16-float vectors; NT: 48 rows of K floats stay in L2 */
    float *expanded = NULL, *rows = NULL;   /* NN: rows holds the block's rows expanded, before transposing */
    bool expand = nn || w->type != VC_F32;
    if (expand && (!(expanded = malloc((size_t)block * cols * sizeof(float))) ||
                   (nn && w->type != VC_F32 && !(rows = malloc((size_t)block * cols * sizeof(float)))))) {
        /* no scratch (out of memory): slower, same result class */
        free(expanded);
        for (int64_t r = begin; r < end; r++)
            for (int i = 0; i < n; i++)
                y[(size_t)i * w->rows + r] = vc_dot_row(w->type, (const uint8_t *)w->data + (size_t)r * w->row_bytes,
                                                        x + (size_t)i * cols, cols);
        return;
    }
    for (int64_t r0 = begin; r0 < end; r0 += block) {
        int nr = (int)VC_MIN((int64_t)block, end - r0);
        if (nn) {
            expand_transposed(w, r0, nr, rows, expanded, block);
            vc_gemm_nn(n, nr, (int)cols, x, (int)cols, expanded, block, y + r0, (int)w->rows);
            continue;
        }
        const float *wr = (const float *)((const uint8_t *)w->data + (size_t)r0 * w->row_bytes);
        int ldb = (int)(w->row_bytes / sizeof(float));
        if (expanded) {
            for (int r = 0; r < nr; r++)
                vc_dequantize_row(w->type, (const uint8_t *)w->data + (size_t)(r0 + r) * w->row_bytes,
                                  expanded + (size_t)r * cols, cols);
            wr = expanded;
            ldb = (int)cols;
        }
        vc_gemm_nt(n, nr, (int)cols, x, (int)cols, wr, ldb, y + r0, (int)w->rows);
    }
    free(expanded);
    free(rows);
}

typedef struct {
    const vc_matrix *w;          /* count matrices, their rows numbered one after another */
    int count;
    const float *x;
    const vc_block_q8_act *xq;   /* x quantized, for the integer kernels; NULL: float */
    vc_dot_act_fn dot_act;
    float *const *y;
    int n;
} matmul_job;

static bool interleaved(vc_dtype t) { return vc_int8dot_is_interleaved(t); }

/* What vc_parallel_for shares out: rows, or groups of 8 for interleaved matrices. */
static int64_t work_units(const vc_matrix *w) { return interleaved(w->type) ? w->rows / 8 : w->rows; }

/* Most tokens for which stored K-quant rows take the integer row kernels;
 * past it the float GEMM, which expands a block of rows once for all the
 * tokens, was faster (3072 x 8192 Q4_K/Q6_K, 1 thread, loaded machine:
 * about 2x slower at 256 tokens, mixed at 64, faster at 16). Prepared
 * K-quant matrices (Q4_K_X8 ...: the loaders' whenever rows come in groups
 * of 8) take the interleaved integer tiles for any count; this is for the
 * others (an output head of a vocabulary not a multiple of 8, a matrix left
 * as stored when memory ran out). */
#define KQUANT_INT8_MAX_TOKENS 32

/* Whether a stored (not interleaved) matrix takes integer dots row by row
 * with the integer path on: one token; up to KQUANT_INT8_MAX_TOKENS for
 * K-quants; the other tokens stay on the float GEMM. */
static bool int8_rows(const vc_matrix *w, int n)
{
    return vc_int8dot_enabled() && vc_int8dot_supports(w->type) &&
           (n == 1 || ((w->type == VC_Q4_K || w->type == VC_Q5_K || w->type == VC_Q6_K) && n <= KQUANT_INT8_MAX_TOKENS));
}

/* Work units a thread takes at a time: about a quarter of its share, so that
 * one held up by the host (2-vCPU VMs: the caller spun 12% of a 3.8B decode
 * waiting on a static half) leaves the rest to the others; even where units
 * are groups of 8 rows, so that the 512-bit kernels' pairs of groups stay
 * whole, and whole 16 rows otherwise. */
static int64_t matmul_chunk(int64_t units, bool groups)
{
    int64_t parts = 4 * (int64_t)vc_threads_count(), align = groups ? 2 : 16;
    int64_t c = (units + parts - 1) / parts;
    return (c + align - 1) / align * align;
}

/* A range of the work units of all the matrices: each matrix's share of it. */
static void matmul_rows(void *ctx, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const matmul_job *job = ctx;
    int64_t first = 0;
    for (int k = 0; k < job->count && first < end; first += work_units(&job->w[k]), k++) {
        const vc_matrix *w = &job->w[k];
        int64_t lo = VC_MAX(begin, first) - first, hi = VC_MIN(end, first + work_units(w)) - first;
        if (lo >= hi)
            continue;
        if (interleaved(w->type)) {
            if (job->xq)
                vc_int8dot_interleaved(w, lo, hi, job->xq, job->n, job->y[k] + 8 * lo, (int)w->rows);
            else   /* no memory even for one token's activations: NaN, reported as broken logits */
                for (int i = 0; i < job->n; i++)
                    for (int64_t r = 8 * lo; r < 8 * hi; r++)
                        job->y[k][(size_t)i * w->rows + r] = NAN;
            continue;
        }
        product_rows(w, job->x, job->xq && int8_rows(w, job->n) ? job->xq : NULL, job->dot_act, job->n, job->y[k],
                     lo, hi);
    }
}

/* Tokens' activations quantized, a token a work item. */
typedef struct {
    const float *x;
    vc_block_q8_act *xq;
    int64_t cols;
} quant_job;

static void quantize_items(void *ctx, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const quant_job *j = ctx;
    int64_t nb = j->cols / VC_QK8_ACT;
    for (int64_t i = begin; i < end; i++)
        vc_quantize_act(j->x + (size_t)i * (size_t)j->cols, j->xq + (size_t)i * (size_t)nb, j->cols);
}

/* The tokens' activations quantized (n x cols/32 blocks): malloc'd, or in
 * `spare` (one token) when that fails. NULL when no matrix needs them. */
static vc_block_q8_act *quantize_tokens(const vc_matrix *w, int count, const float *x, int n, vc_block_q8_act *spare,
                                        int64_t spare_blocks)
{
    bool needed = false;
    for (int k = 0; k < count; k++)
        needed = needed || interleaved(w[k].type) || int8_rows(&w[k], n);
    int64_t cols = w[0].cols, nb = cols / VC_QK8_ACT;
    if (!needed || cols % VC_QK8_ACT != 0)
        return NULL;
    vc_block_q8_act *xq = malloc((size_t)n * (size_t)nb * sizeof *xq);
    if (!xq && n == 1 && nb <= spare_blocks)
        xq = spare;
    if (xq) {
        quant_job j = { x, xq, cols };
        vc_parallel_for(n, quantize_items, &j);
    }
    return xq;
}

void vc_matmul_multi(int count, const vc_matrix *w, const float *x, int n, float *const *y)
{
#ifdef VC_HAVE_BLAS
    static int blas_ready;
    if (!blas_ready) {   /* parallelism comes from our pool: one BLAS thread per caller. Set here, on the
                          * caller's thread, before any pool thread reaches vc_gemm_nt */
        openblas_set_num_threads(1);
        blas_ready = 1;
    }
#endif
    enum { SPARE = 512, MAX_MATRICES = 8 };   /* SPARE: one token of up to 16384 columns, on the stack */
    vc_block_q8_act spare[SPARE];
    int64_t units = 0;
    bool needs_x8 = false;
    for (int k = 0; k < count; k++) {
        units += work_units(&w[k]);
        needs_x8 = needs_x8 || interleaved(w[k].type);
    }
    vc_block_q8_act *xq = quantize_tokens(w, count, x, n, spare, SPARE);
    if (!xq && needs_x8 && n > 1 && count <= MAX_MATRICES) {
        /* no memory for all the tokens' activations: one token at a time, from the stack */
        float *yi[MAX_MATRICES];
        for (int i = 0; i < n; i++) {
            for (int k = 0; k < count; k++)
                yi[k] = y[k] + (size_t)i * w[k].rows;
            vc_matmul_multi(count, w, x + (size_t)i * w[0].cols, 1, yi);
        }
        return;
    }
    matmul_job job = { .w = w, .count = count, .x = x, .xq = xq, .dot_act = xq ? vc_int8dot_kernel() : NULL,
                       .y = y, .n = n };
    vc_parallel_chunks(units, matmul_chunk(units, needs_x8), matmul_rows, &job);
    if (xq != spare)
        free(xq);
}

void vc_matmul(const vc_matrix *w, const float *x, int n, float *y)
{
    vc_matmul_multi(1, w, x, n, &y);
}
