/* dot_avx512.c - see dot_avx512.h
 *
 * One token's product is a dot product per weight row, which decode runs
 * for every row of every matrix: the weights stream from memory once, and
 * the work per byte (widening to float, one FMA per weight) must keep up.
 * Sixteen lanes halve the instructions per weight of the AVX2 versions;
 * two accumulators (two blocks or two vectors per step) keep the FMA
 * latency off the critical path.
 */
#include "dot_avx512.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include "simd_x86.h"
#define AVX512 VC_TARGET_AVX512

bool vc_dot_avx512_has(vc_dtype t)
{
    return t == VC_F32 || t == VC_F16 || t == VC_BF16 || t == VC_Q8_0 || t == VC_Q4_0;
}

AVX512 static inline __m512 f16x16(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }

AVX512 static inline __m512 bf16x16(const uint16_t *p)
{
    __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}

AVX512 static inline __m512 f32x16(const float *p) { return _mm512_loadu_ps(p); }

/* Dense rows: 32 elements a step, the last partial step with zeros past n. */
#define DENSE_DOT(name, T, load, scalar)                                                                             \
    AVX512 static float name(const T *a, const float *b, int64_t n)                                                 \
    {                                                                                                                \
        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();                                                   \
        int64_t i = 0;                                                                                               \
        for (; i + 32 <= n; i += 32) {                                                                               \
            s0 = _mm512_fmadd_ps(load(a + i), _mm512_loadu_ps(b + i), s0);                                           \
            s1 = _mm512_fmadd_ps(load(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);                                 \
        }                                                                                                            \
        float s = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));                                                       \
        for (; i < n; i++)                                                                                           \
            s += scalar(a[i]) * b[i];                                                                                \
        return s;                                                                                                    \
    }

static inline float same(float v) { return v; }
DENSE_DOT(dot_f32, float, f32x16, same)
DENSE_DOT(dot_f16, uint16_t, f16x16, vc_f16_to_f32)
DENSE_DOT(dot_bf16, uint16_t, bf16x16, vc_bf16_to_f32)

/* 16 signed bytes as 16 floats. */
AVX512 static inline __m512 i8x16(__m128i v) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(v)); }

/* One Q8_0 block (32 weights): d * sum(q x) added to acc. */
AVX512 static inline __m512 q8_0_block(const vc_block_q8_0 *w, const float *x, __m512 acc)
{
    __m512 s = _mm512_mul_ps(i8x16(_mm_loadu_si128((const __m128i *)w->qs)), _mm512_loadu_ps(x));
    s = _mm512_fmadd_ps(i8x16(_mm_loadu_si128((const __m128i *)(w->qs + 16))), _mm512_loadu_ps(x + 16), s);
    return _mm512_fmadd_ps(_mm512_set1_ps(_cvtsh_ss(w->d)), s, acc);
}

/* One Q4_0 block: low nibbles are elements 0-15, high ones 16-31, each the weight + 8. */
AVX512 static inline __m512 q4_0_block(const vc_block_q4_0 *w, const float *x, __m512 acc)
{
    const __m128i low = _mm_set1_epi8(0xf), eight = _mm_set1_epi8(8);
    __m128i q = _mm_loadu_si128((const __m128i *)w->qs);
    __m128i lo = _mm_sub_epi8(_mm_and_si128(q, low), eight);
    __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), low), eight);
    __m512 s = _mm512_mul_ps(i8x16(lo), _mm512_loadu_ps(x));
    s = _mm512_fmadd_ps(i8x16(hi), _mm512_loadu_ps(x + 16), s);
    return _mm512_fmadd_ps(_mm512_set1_ps(_cvtsh_ss(w->d)), s, acc);
}

#define BLOCK_DOT(name, T, block)                                                                                    \
    AVX512 static float name(const T *w, const float *x, int64_t nb)                                                \
    {                                                                                                                \
        __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();                                               \
        int64_t b = 0;                                                                                               \
        for (; b + 2 <= nb; b += 2) {                                                                                \
            acc0 = block(&w[b], x + 32 * b, acc0);                                                                   \
            acc1 = block(&w[b + 1], x + 32 * b + 32, acc1);                                                          \
        }                                                                                                            \
        if (b < nb)                                                                                                  \
            acc0 = block(&w[b], x + 32 * b, acc0);                                                                   \
        return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));                                                      \
    }

BLOCK_DOT(dot_q8_0, vc_block_q8_0, q8_0_block)
BLOCK_DOT(dot_q4_0, vc_block_q4_0, q4_0_block)

/* vc_dequantize_row for the same types (the same values: widening and one
 * multiply by the block scale are exact in float as in plain C). */
AVX512 static void dequantize_q8_0(const vc_block_q8_0 *w, float *out, int64_t nb)
{
    for (int64_t b = 0; b < nb; b++, out += 32) {
        __m512 d = _mm512_set1_ps(_cvtsh_ss(w[b].d));
        _mm512_storeu_ps(out, _mm512_mul_ps(d, i8x16(_mm_loadu_si128((const __m128i *)w[b].qs))));
        _mm512_storeu_ps(out + 16, _mm512_mul_ps(d, i8x16(_mm_loadu_si128((const __m128i *)(w[b].qs + 16)))));
    }
}

AVX512 static void dequantize_q4_0(const vc_block_q4_0 *w, float *out, int64_t nb)
{
    const __m128i low = _mm_set1_epi8(0xf), eight = _mm_set1_epi8(8);
    for (int64_t b = 0; b < nb; b++, out += 32) {
        __m512 d = _mm512_set1_ps(_cvtsh_ss(w[b].d));
        __m128i q = _mm_loadu_si128((const __m128i *)w[b].qs);
        __m128i lo = _mm_sub_epi8(_mm_and_si128(q, low), eight);
        __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), low), eight);
        _mm512_storeu_ps(out, _mm512_mul_ps(d, i8x16(lo)));
        _mm512_storeu_ps(out + 16, _mm512_mul_ps(d, i8x16(hi)));
    }
}

AVX512 static void dequantize_16bit(bool bf16, const uint16_t *w, float *out, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(out + i, bf16 ? bf16x16(w + i) : f16x16(w + i));
    for (; i < n; i++)
        out[i] = bf16 ? vc_bf16_to_f32(w[i]) : vc_f16_to_f32(w[i]);
}

void vc_dequantize_row_avx512(vc_dtype t, const void *row, float *out, int64_t n)
{
    switch (t) {
    case VC_F16: dequantize_16bit(false, row, out, n); return;
    case VC_BF16: dequantize_16bit(true, row, out, n); return;
    case VC_Q8_0: dequantize_q8_0(row, out, n / VC_QK8_0); return;
    case VC_Q4_0: dequantize_q4_0(row, out, n / VC_QK4_0); return;
    default: vc_dequantize_row(t, row, out, n); return;
    }
}

float vc_dot_row_avx512(vc_dtype t, const void *row, const float *x, int64_t n)
{
    switch (t) {
    case VC_F32: return dot_f32(row, x, n);
    case VC_F16: return dot_f16(row, x, n);
    case VC_BF16: return dot_bf16(row, x, n);
    case VC_Q8_0: return dot_q8_0(row, x, n / VC_QK8_0);
    case VC_Q4_0: return dot_q4_0(row, x, n / VC_QK4_0);
    default: return vc_dot_row_ref(t, row, x, n);
    }
}

#else
bool vc_dot_avx512_has(vc_dtype t)
{
    (void)t;
    return false;
}

float vc_dot_row_avx512(vc_dtype t, const void *row, const float *x, int64_t n) { return vc_dot_row_ref(t, row, x, n); }

void vc_dequantize_row_avx512(vc_dtype t, const void *row, float *out, int64_t n) { vc_dequantize_row(t, row, out, n); }
#endif
