/* kernels.c - see include/core/kernels.h
 *
 * Each SIMD function has its plain-C twin in dtype.c (vc_dot_row_ref); the
 * dispatcher chooses once, from what the CPU reports.
 */
#include "core/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/cpu.h"
#include "core/int8dot.h"
#include "core/meminfo.h"
#include "core/threads.h"
#include "dot_avx512.h"

#ifdef VC_HAVE_BLAS
#include <cblas.h>
#endif

#if defined(__x86_64__)
#include <immintrin.h>
#define VC_HAVE_X86 1
#endif

static bool avx2_enabled(void) { return vc_isa_has(VC_ISA_AVX2); }
static bool avx512_enabled(void) { return vc_isa_has(VC_ISA_AVX512); }

const char *vc_kernels_isa(void) { return avx2_enabled() ? "avx2" : "generic"; }

const char *vc_kernels_dot_isa(void) { return avx512_enabled() ? "avx512" : vc_kernels_isa(); }

bool vc_kernels_use_blas(void)
{
#ifdef VC_HAVE_BLAS
    /* OpenBLAS maps a 128 MiB buffer per thread and retries forever when the
     * mapping fails, which a tight `ulimit -v` makes happen: there, stay off. */
    static int room = -1;
    if (room < 0) {
        size_t left = vc_mem_address_space_left();
        room = left == 0 || left > ((size_t)2 << 30);
    }
    return room && avx2_enabled();   /* the generic level also turns BLAS off */
#else
    return false;
#endif
}

#ifdef VC_HAVE_X86
#include "simd_x86.h"
#define AVX2 VC_TARGET_AVX2

AVX2 static float dot_f32_avx2(const float *a, const float *b, int64_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    float s = vc_hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

AVX2 static void axpy_f32_avx2(float a, const float *x, float *y, int64_t n)
{
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * x[i];
}

AVX2 static float dot_f16_avx2(const uint16_t *a, const float *b, int64_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i)));
        __m256 a1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i + 8)));
        s0 = _mm256_fmadd_ps(a0, _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(a1, _mm256_loadu_ps(b + i + 8), s1);
    }
    float s = vc_hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++)
        s += vc_f16_to_f32(a[i]) * b[i];
    return s;
}

AVX2 static inline __m256 bf16x8_to_ps(const uint16_t *p)
{
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

AVX2 static float dot_bf16_avx2(const uint16_t *a, const float *b, int64_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(bf16x8_to_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(bf16x8_to_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    float s = vc_hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++)
        s += vc_bf16_to_f32(a[i]) * b[i];
    return s;
}

AVX2 static inline __m256 i8x8_to_ps(const int8_t *p)
{
    __m128i v = _mm_loadl_epi64((const __m128i *)p);
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
}

AVX2 static float dot_q8_0_avx2(const vc_block_q8_0 *w, const float *x, int64_t n)
{
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / VC_QK8_0; b++, x += VC_QK8_0) {
        __m256 s = _mm256_mul_ps(i8x8_to_ps(w[b].qs), _mm256_loadu_ps(x));
        s = _mm256_fmadd_ps(i8x8_to_ps(w[b].qs + 8), _mm256_loadu_ps(x + 8), s);
        s = _mm256_fmadd_ps(i8x8_to_ps(w[b].qs + 16), _mm256_loadu_ps(x + 16), s);
        s = _mm256_fmadd_ps(i8x8_to_ps(w[b].qs + 24), _mm256_loadu_ps(x + 24), s);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(w[b].d)), s, acc);
    }
    return vc_hsum256(acc);
}

AVX2 static float dot_q4_0_avx2(const vc_block_q4_0 *w, const float *x, int64_t n)
{
    __m256 acc = _mm256_setzero_ps();
    const __m128i low = _mm_set1_epi8(0xf), eight = _mm_set1_epi8(8);
    for (int64_t b = 0; b < n / VC_QK4_0; b++, x += VC_QK4_0) {
        __m128i q = _mm_loadu_si128((const __m128i *)w[b].qs);
        __m128i lo = _mm_sub_epi8(_mm_and_si128(q, low), eight);
        __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), low), eight);
        __m256 s = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), _mm256_loadu_ps(x));
        s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))),
                            _mm256_loadu_ps(x + 8), s);
        s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), _mm256_loadu_ps(x + 16), s);
        s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))),
                            _mm256_loadu_ps(x + 24), s);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(w[b].d)), s, acc);
    }
    return vc_hsum256(acc);
}

/* MLX affine 4-bit: per group, scale * sum(q * x) + bias * sum(x). Sixteen
 * bytes unpack to 32 values in order: the low nibble of byte k is element 2k. */
AVX2 static float dot_mlx4_avx2(const uint8_t *p, const float *x, int64_t n, int group)
{
    __m256 acc_q = _mm256_setzero_ps(), acc_x = _mm256_setzero_ps();
    const __m128i low = _mm_set1_epi8(0xf);
    size_t bb = VC_MLX4_BLOCK_BYTES(group);
    for (int64_t i = 0; i < n; i += group, p += bb) {
        const vc_block_mlx4 *b = (const vc_block_mlx4 *)p;
        __m256 sq = _mm256_setzero_ps(), sx = _mm256_setzero_ps();
        for (int j = 0; j < group; j += 32, x += 32) {
            __m128i q = _mm_loadu_si128((const __m128i *)(b->qs + j / 2));
            __m128i lo = _mm_and_si128(q, low), hi = _mm_and_si128(_mm_srli_epi16(q, 4), low);
            __m128i e0 = _mm_unpacklo_epi8(lo, hi), e1 = _mm_unpackhi_epi8(lo, hi);
            __m256 x0 = _mm256_loadu_ps(x), x1 = _mm256_loadu_ps(x + 8);
            __m256 x2 = _mm256_loadu_ps(x + 16), x3 = _mm256_loadu_ps(x + 24);
            sq = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(e0)), x0, sq);
            sq = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(e0, 8))), x1, sq);
            sq = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(e1)), x2, sq);
            sq = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(e1, 8))), x3, sq);
            sx = _mm256_add_ps(_mm256_add_ps(x0, x1), _mm256_add_ps(_mm256_add_ps(x2, x3), sx));
        }
        acc_q = _mm256_fmadd_ps(_mm256_set1_ps(b->scale), sq, acc_q);
        acc_x = _mm256_fmadd_ps(_mm256_set1_ps(b->bias), sx, acc_x);
    }
    return vc_hsum256(_mm256_add_ps(acc_q, acc_x));
}

/* vc_softmax_ref eight at a time: the sum in float partial lanes, and the
 * exponential above; the two agree to about 1e-6 relative. */
AVX2 static void softmax_avx2(float *x, int n)
{
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    float maxv = _mm_cvtss_f32(h);
    for (; i < n; i++)
        maxv = x[i] > maxv ? x[i] : maxv;
    __m256 m = _mm256_set1_ps(maxv), s0 = _mm256_setzero_ps(), s1 = s0;
    for (i = 0; i + 16 <= n; i += 16) {
        __m256 e0 = vc_exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
        __m256 e1 = vc_exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), m));
        _mm256_storeu_ps(x + i, e0);
        _mm256_storeu_ps(x + i + 8, e1);
        s0 = _mm256_add_ps(s0, e0);
        s1 = _mm256_add_ps(s1, e1);
    }
    float sum = vc_hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++)
        sum += (x[i] = expf(x[i] - maxv));
    __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (; i < n; i++)
        x[i] *= 1.0f / sum;
}

/* K-quants: expand one 256-element block, then a float dot product. */
AVX2 static float dot_kquant_avx2(vc_dtype t, const void *row, const float *x, int64_t n)
{
    float buf[VC_QK_K];
    size_t bb = vc_dtype_block_bytes(t);
    const uint8_t *p = row;
    float s = 0;
    for (int64_t i = 0; i < n; i += VC_QK_K, p += bb) {
        vc_dequantize_row(t, p, buf, VC_QK_K);
        s += dot_f32_avx2(buf, x + i, VC_QK_K);
    }
    return s;
}
#endif

float vc_dot_f32(const float *a, const float *b, int64_t n)
{
#ifdef VC_HAVE_X86
    if (avx2_enabled())
        return dot_f32_avx2(a, b, n);
#endif
    float s = 0;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

void vc_axpy_f32(float a, const float *x, float *y, int64_t n)
{
#ifdef VC_HAVE_X86
    if (avx2_enabled()) {
        axpy_f32_avx2(a, x, y, n);
        return;
    }
#endif
    vc_axpy_f32_ref(a, x, y, n);
}

void vc_axpy_f32_ref(float a, const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

void vc_softmax_ref(float *x, int n)
{
    float maxv = -INFINITY;
    for (int i = 0; i < n; i++)
        maxv = x[i] > maxv ? x[i] : maxv;   /* not fmaxf: a libm call per value */
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += (x[i] = expf(x[i] - maxv));
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++)
        x[i] *= inv;
}

void vc_softmax(float *x, int n)
{
#ifdef VC_HAVE_X86
    if (avx2_enabled()) {
        softmax_avx2(x, n);
        return;
    }
#endif
    vc_softmax_ref(x, n);
}

float vc_dot_row(vc_dtype t, const void *row, const float *x, int64_t n)
{
#ifdef VC_HAVE_X86
    if (avx512_enabled() && vc_dot_avx512_has(t))
        return vc_dot_row_avx512(t, row, x, n);
    if (avx2_enabled()) {
        switch (t) {
        case VC_F32: return dot_f32_avx2(row, x, n);
        case VC_F16: return dot_f16_avx2(row, x, n);
        case VC_BF16: return dot_bf16_avx2(row, x, n);
        case VC_Q8_0: return dot_q8_0_avx2(row, x, n);
        case VC_Q4_0: return dot_q4_0_avx2(row, x, n);
        case VC_Q4_K:
        case VC_Q6_K: return dot_kquant_avx2(t, row, x, n);
        case VC_MLX4_G32:
        case VC_MLX4_G64:
        case VC_MLX4_G128: return dot_mlx4_avx2(row, x, n, vc_dtype_block_elems(t));
        case VC_Q4_0_X8:
        case VC_Q8_0_X8: break;   /* no rows to dot: vc_matmul sends them to core/int8dot */
        }
    }
#endif
    return vc_dot_row_ref(t, row, x, n);
}

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
    if (xq) {
        for (int64_t r = begin; r < end; r++)
            y[r] = dot_act(w->type, (const uint8_t *)w->data + (size_t)r * w->row_bytes, xq, cols);
        return;
    }
    if (n == 1) {
        for (int64_t r = begin; r < end; r++)
            y[r] = vc_dot_row(w->type, (const uint8_t *)w->data + (size_t)r * w->row_bytes, x, cols);
        return;
    }
    bool nn = vc_gemm_nn_preferred() && !(n >= VC_BLAS_MIN_TOKENS && vc_kernels_use_blas());
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

static bool interleaved(vc_dtype t) { return t == VC_Q4_0_X8 || t == VC_Q8_0_X8; }

/* What vc_parallel_for shares out: rows, or groups of 8 for interleaved matrices. */
static int64_t work_units(const vc_matrix *w) { return interleaved(w->type) ? w->rows / 8 : w->rows; }

/* Whether a stored (not interleaved) matrix takes integer dots row by row:
 * one token with --int8-dot on; several tokens stay on the float GEMM. */
static bool int8_rows(const vc_matrix *w, int n)
{
    return n == 1 && vc_int8dot_enabled() && vc_int8dot_supports(w->type);
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
    for (int i = 0; xq && i < n; i++)
        vc_quantize_act(x + (size_t)i * cols, xq + (size_t)i * nb, cols);
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
    vc_parallel_for(units, matmul_rows, &job);
    if (xq != spare)
        free(xq);
}

void vc_matmul(const vc_matrix *w, const float *x, int n, float *y)
{
    vc_matmul_multi(1, w, x, n, &y);
}
