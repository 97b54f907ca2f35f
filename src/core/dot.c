/* dot.c - see include/core/dot.h
 *
 * Each SIMD function has its plain-C twin in dtype.c (vc_dot_row_ref) or
 * here; the level in effect (core/cpu.h) chooses per call.
 */
#include "core/dot.h"

#include <math.h>

#include "core/cpu.h"
#include "dot_avx512.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define VC_HAVE_X86 1
#endif

static bool avx2_enabled(void) { return vc_isa_has(VC_ISA_AVX2); }
static bool avx512_enabled(void) { return vc_isa_has(VC_ISA_AVX512); }

const char *vc_kernels_isa(void) { return avx2_enabled() ? "avx2" : "generic"; }

const char *vc_kernels_dot_isa(void) { return avx512_enabled() ? "avx512" : vc_kernels_isa(); }

/* Element i of a row of floats, or of halves (half) widened exactly. */
static inline float row1(bool half, const void *r, int64_t i)
{
    return half ? vc_f16_to_f32(((const uint16_t *)r)[i]) : ((const float *)r)[i];
}

#ifdef VC_HAVE_X86
#include "simd_x86.h"
#define AVX2 VC_TARGET_AVX2

AVX2 static void axpy_f32_avx2(float a, const float *x, float *y, int64_t n)
{
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * x[i];
}

/* Eight floats of a row at element i: floats as they are, or halves
 * (half) widened exactly (row1, above, is one element). */
__attribute__((always_inline)) AVX2 static inline __m256 row8(bool half, const void *r, int64_t i)
{
    return half ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)r + i)))
                : _mm256_loadu_ps((const float *)r + i);
}

/* Rows r[0] .. r[3] (floats or halves) dotted with a as dot_f32_avx2 dots
 * each (two sums over alternate 8-float chunks, added, summed across, then
 * the tail). */
__attribute__((always_inline)) AVX2 static inline void dot4_avx2(bool half, const float *a, const void *const r[4],
                                                                 int64_t n, float *out)
{
    __m256 s0[4], s1[4];
    for (int k = 0; k < 4; k++)
        s0[k] = s1[k] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 x0 = _mm256_loadu_ps(a + i), x1 = _mm256_loadu_ps(a + i + 8);
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            s0[k] = _mm256_fmadd_ps(x0, row8(half, r[k], i), s0[k]);
            s1[k] = _mm256_fmadd_ps(x1, row8(half, r[k], i + 8), s1[k]);
        }
    }
    for (int k = 0; k < 4; k++) {
        float s = vc_hsum256(_mm256_add_ps(s0[k], s1[k]));
        for (int64_t j = i; j < n; j++)
            s += a[j] * row1(half, r[k], j);
        out[k] = s;
    }
}

/* One row as dot_f32_avx2 dots it (floats or halves). */
__attribute__((always_inline)) AVX2 static inline float dot1_avx2(bool half, const float *a, const void *r, int64_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), row8(half, r, i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), row8(half, r, i + 8), s1);
    }
    float s = vc_hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++)
        s += a[i] * row1(half, r, i);
    return s;
}

AVX2 static float dot_f32_avx2(const float *a, const float *b, int64_t n) { return dot1_avx2(false, a, b, n); }

/* rows: count rows `stride` elements apart, floats or halves. */
__attribute__((always_inline)) AVX2 static inline void dot_rows_avx2(bool half, const float *a, const void *rows,
                                                                     int64_t stride, int64_t count, int64_t n, float *out)
{
    size_t row_bytes = (size_t)stride * (half ? 2 : 4);
    const uint8_t *base = rows;
    int64_t p = 0;
    for (; p + 4 <= count; p += 4) {
        const uint8_t *r = base + (size_t)p * row_bytes;
        const void *const r4[4] = { r, r + row_bytes, r + 2 * row_bytes, r + 3 * row_bytes };
        dot4_avx2(half, a, r4, n, out + p);
    }
    for (; p < count; p++)
        out[p] = dot1_avx2(half, a, base + (size_t)p * row_bytes, n);
}

AVX2 static void dot_rows_f32_avx2(const float *a, const float *rows, int64_t stride, int64_t count, int64_t n, float *out)
{
    dot_rows_avx2(false, a, rows, stride, count, n, out);
}

AVX2 static void dot_rows_f16_avx2(const float *a, const uint16_t *rows, int64_t stride, int64_t count, int64_t n,
                                   float *out)
{
    dot_rows_avx2(true, a, rows, stride, count, n, out);
}

/* Floats i .. i + 8 W - 1 of y, W vectors in registers over all the rows
 * (floats or halves, row_bytes apart). */
__attribute__((always_inline)) AVX2 static inline void axpy_rows_block_avx2(int W, bool half, const float *w,
                                                                            const uint8_t *rows, size_t row_bytes,
                                                                            int64_t count, float *y)
{
    __m256 acc[8];
#pragma GCC unroll 8
    for (int k = 0; k < W; k++)
        acc[k] = _mm256_loadu_ps(y + 8 * k);
    for (int64_t p = 0; p < count; p++) {
        __m256 wp = _mm256_set1_ps(w[p]);
        const uint8_t *r = rows + (size_t)p * row_bytes;
#pragma GCC unroll 8
        for (int k = 0; k < W; k++)
            acc[k] = _mm256_fmadd_ps(wp, row8(half, r, 8 * k), acc[k]);
    }
#pragma GCC unroll 8
    for (int k = 0; k < W; k++)
        _mm256_storeu_ps(y + 8 * k, acc[k]);
}

__attribute__((always_inline)) AVX2 static inline void axpy_rows_avx2(bool half, const float *w, const void *rows,
                                                                      int64_t stride, int64_t count, float *y, int64_t n)
{
    size_t es = half ? 2 : 4, row_bytes = (size_t)stride * es;
    const uint8_t *base = rows;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64)
        axpy_rows_block_avx2(8, half, w, base + i * es, row_bytes, count, y + i);
    if (i + 32 <= n) {
        axpy_rows_block_avx2(4, half, w, base + i * es, row_bytes, count, y + i);
        i += 32;
    }
    if (i + 16 <= n) {
        axpy_rows_block_avx2(2, half, w, base + i * es, row_bytes, count, y + i);
        i += 16;
    }
    if (i + 8 <= n) {
        axpy_rows_block_avx2(1, half, w, base + i * es, row_bytes, count, y + i);
        i += 8;
    }
    for (; i < n; i++)   /* as axpy_f32_avx2's tail: the product rounded, then added */
        for (int64_t p = 0; p < count; p++)
            y[i] += w[p] * row1(half, base + (size_t)p * row_bytes, i);
}

AVX2 static void axpy_rows_f32_avx2(const float *w, const float *rows, int64_t stride, int64_t count, float *y, int64_t n)
{
    axpy_rows_avx2(false, w, rows, stride, count, y, n);
}

AVX2 static void axpy_rows_f16_avx2(const float *w, const uint16_t *rows, int64_t stride, int64_t count, float *y,
                                    int64_t n)
{
    axpy_rows_avx2(true, w, rows, stride, count, y, n);
}

AVX2 static float dot_f16_avx2(const uint16_t *a, const float *b, int64_t n) { return dot1_avx2(true, b, a, n); }

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

/* K-quants and Q5_0 / Q5_1: expand up to 256 elements (whole blocks) with
 * the plain-C dequantization, then a float dot product. */
AVX2 static float dot_kquant_avx2(vc_dtype t, const void *row, const float *x, int64_t n)
{
    float buf[VC_QK_K];
    int be = vc_dtype_block_elems(t);
    size_t bb = vc_dtype_block_bytes(t);
    const uint8_t *p = row;
    float s = 0;
    for (int64_t i = 0; i < n; i += VC_QK_K) {
        int m = (int)(n - i < VC_QK_K ? n - i : VC_QK_K);
        vc_dequantize_row(t, p, buf, m);
        p += (size_t)(m / be) * bb;
        s += dot_f32_avx2(buf, x + i, m);
    }
    return s;
}
#endif

#ifdef VC_HAVE_X86
AVX2 static void f16_rows_to_f32_avx2(const uint16_t *rows, int64_t stride, int64_t count, int64_t n, float *dst)
{
    for (int64_t p = 0; p < count; p++, rows += stride, dst += n) {
        int64_t i = 0;
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(rows + i))));
        for (; i < n; i++)
            dst[i] = vc_f16_to_f32(rows[i]);
    }
}

AVX2 static void f32_to_f16_avx2(const float *src, uint16_t *dst, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        dst[i] = vc_f32_to_f16(src[i]);
}
#endif

void vc_f16_rows_to_f32(const uint16_t *rows, int64_t stride, int64_t count, int64_t n, float *dst)
{
#ifdef VC_HAVE_X86
    if (avx2_enabled()) {
        f16_rows_to_f32_avx2(rows, stride, count, n, dst);
        return;
    }
#endif
    for (int64_t p = 0; p < count; p++)
        for (int64_t i = 0; i < n; i++)
            dst[p * n + i] = vc_f16_to_f32(rows[p * stride + i]);
}

void vc_f32_to_f16_row(const float *src, uint16_t *dst, int64_t n)
{
#ifdef VC_HAVE_X86
    if (avx2_enabled()) {
        f32_to_f16_avx2(src, dst, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++)
        dst[i] = vc_f32_to_f16(src[i]);
}

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

/* The attention rows over floats or halves (half): the AVX2 kernels, or
 * the plain loops (vc_dot_f32's, and vc_axpy_f32_ref's row after row). */
static void dot_rows(bool half, const float *a, const void *rows, int64_t stride, int64_t count, int64_t n, float *out)
{
#ifdef VC_HAVE_X86
    if (avx2_enabled()) {
        if (half)
            dot_rows_f16_avx2(a, rows, stride, count, n, out);
        else
            dot_rows_f32_avx2(a, rows, stride, count, n, out);
        return;
    }
#endif
    size_t row_bytes = (size_t)stride * (half ? 2 : 4);
    for (int64_t p = 0; p < count; p++) {
        const uint8_t *r = (const uint8_t *)rows + (size_t)p * row_bytes;
        float s = 0;
        for (int64_t i = 0; i < n; i++)
            s += a[i] * row1(half, r, i);
        out[p] = s;
    }
}

static void axpy_rows_plain(bool half, const float *w, const void *rows, int64_t stride, int64_t count, float *y,
                            int64_t n)
{
    size_t row_bytes = (size_t)stride * (half ? 2 : 4);
    for (int64_t p = 0; p < count; p++) {
        const uint8_t *r = (const uint8_t *)rows + (size_t)p * row_bytes;
        for (int64_t i = 0; i < n; i++)
            y[i] += w[p] * row1(half, r, i);
    }
}

static void axpy_rows(bool half, const float *w, const void *rows, int64_t stride, int64_t count, float *y, int64_t n)
{
#ifdef VC_HAVE_X86
    if (avx2_enabled()) {
        if (half)
            axpy_rows_f16_avx2(w, rows, stride, count, y, n);
        else
            axpy_rows_f32_avx2(w, rows, stride, count, y, n);
        return;
    }
#endif
    axpy_rows_plain(half, w, rows, stride, count, y, n);
}

void vc_dot_rows_f32(const float *a, const float *rows, int64_t stride, int64_t count, int64_t n, float *out)
{
    dot_rows(false, a, rows, stride, count, n, out);
}

void vc_dot_rows_f16(const float *a, const uint16_t *rows, int64_t stride, int64_t count, int64_t n, float *out)
{
    dot_rows(true, a, rows, stride, count, n, out);
}

void vc_axpy_rows_f32(const float *w, const float *rows, int64_t stride, int64_t count, float *y, int64_t n)
{
    axpy_rows(false, w, rows, stride, count, y, n);
}

void vc_axpy_rows_f16(const float *w, const uint16_t *rows, int64_t stride, int64_t count, float *y, int64_t n)
{
    axpy_rows(true, w, rows, stride, count, y, n);
}

void vc_axpy_rows_f32_ref(const float *w, const float *rows, int64_t stride, int64_t count, float *y, int64_t n)
{
    axpy_rows_plain(false, w, rows, stride, count, y, n);
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
        case VC_Q5_0:
        case VC_Q5_1:
        case VC_Q4_K:
        case VC_Q5_K:
        case VC_Q6_K: return dot_kquant_avx2(t, row, x, n);
        case VC_MLX4_G32:
        case VC_MLX4_G64:
        case VC_MLX4_G128: return dot_mlx4_avx2(row, x, n, vc_dtype_block_elems(t));
        case VC_Q4_0_X8:
        case VC_Q5_0_X8:
        case VC_Q5_1_X8:
        case VC_Q8_0_X8:
        case VC_Q4_K_X8:
        case VC_Q5_K_X8:
        case VC_Q6_K_X8: break;   /* no rows to dot: vc_matmul sends them to core/int8dot */
        }
    }
#endif
    return vc_dot_row_ref(t, row, x, n);
}

