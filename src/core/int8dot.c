/* int8dot.c - see include/core/int8dot.h
 *
 * The 256-bit SIMD kernels live in int8dot_simd.inc, compiled three times
 * here: with AVX2's maddubs/madd pair, with AVX-VNNI's dpbusd and with AVX-512
 * VNNI's (256-bit, VL) dpbusd; the AVX-512 variant adds 512-bit tiles for
 * interleaved matrices. The level in effect (core/cpu.h) picks one.
 */
#include "core/int8dot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/cpu.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define VC_HAVE_X86 1
#endif

void vc_quantize_act_ref(const float *x, vc_block_q8_act *out, int64_t n)
{
    for (int64_t b = 0; b < n / VC_QK8_ACT; b++, x += VC_QK8_ACT) {
        float amax = 0;
        for (int j = 0; j < VC_QK8_ACT; j++) {
            float a = fabsf(x[j]);
            amax = a > amax ? a : amax;
        }
        float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
        int sum = 0, sum16 = 0;
        for (int j = 0; j < VC_QK8_ACT; j++) {
            if (j == 16)
                sum16 = sum;
            /* round to nearest, ties to even, without a libm call: adding
             * 1.5 * 2^23 leaves no fraction bits; exact for |v| < 2^22 */
            float v = x[j] * id;
            float q = (v + 12582912.0f) - 12582912.0f;
            q = q > 127 ? 127 : q < -127 ? -127 : q == q ? q : 0;   /* NaN (from NaN or inf input): 0 */
            out[b].qs[j] = (int8_t)q;
            sum += (int)q;
        }
        out[b].d = d;
        out[b].qsum = (int16_t)sum;
        out[b].qsum16 = (int16_t)sum16;
    }
}

bool vc_int8dot_supports(vc_dtype t)
{
    return t == VC_Q8_0 || t == VC_Q4_0 || t == VC_Q5_0 || t == VC_Q5_1 || t == VC_Q4_K || t == VC_Q5_K || t == VC_Q6_K ||
           t == VC_MLX4_G32 || t == VC_MLX4_G64 || t == VC_MLX4_G128;
}

static bool enabled;
void vc_int8dot_enable(bool on) { enabled = on; }
bool vc_int8dot_enabled(void) { return enabled; }

static bool requantize_float;
void vc_int8dot_requantize_float(bool on) { requantize_float = on; }
bool vc_int8dot_requantizes_float(void) { return requantize_float; }

float vc_dot_row_act_ref(vc_dtype t, const void *row, const vc_block_q8_act *x, int64_t n)
{
    float w[VC_QK_K];
    int be = vc_dtype_block_elems(t);
    int chunk = be > VC_QK8_ACT ? be : VC_QK8_ACT;   /* whole weight blocks, whole activation blocks */
    size_t chunk_bytes = (size_t)(chunk / be) * vc_dtype_block_bytes(t);
    const uint8_t *p = row;
    double sum = 0;
    for (int64_t i = 0; i < n; i += chunk, p += chunk_bytes) {
        vc_dequantize_row(t, p, w, chunk);
        for (int j = 0; j < chunk; j++) {
            const vc_block_q8_act *a = &x[(i + j) / VC_QK8_ACT];
            sum += (double)w[j] * ((double)a->d * a->qs[(i + j) % VC_QK8_ACT]);
        }
    }
    return (float)sum;
}

/* ---- x86 kernels ---- */

#ifdef VC_HAVE_X86
#include "int8dot_amx.h"
#include "int8dot_x8.h"

#define TARGET_AVX2 VC_TARGET_AVX2
#define TARGET_AVXVNNI __attribute__((target("avx2,fma,f16c,avxvnni")))
#define TARGET_AVX512VNNI VC_TARGET_AVX512VNNI

/* Q4_K's eight 6-bit scales and mins from their 12 bytes (as dtype.c reads them). */
static inline void q4k_unpack_scales(const uint8_t *q, uint8_t sc[8], uint8_t m[8])
{
    for (int j = 0; j < 4; j++) {
        sc[j] = q[j] & 63;
        m[j] = q[j + 4] & 63;
        sc[j + 4] = (uint8_t)((q[j + 8] & 0xf) | ((q[j] >> 6) << 4));
        m[j + 4] = (uint8_t)((q[j + 8] >> 4) | ((q[j + 4] >> 6) << 4));
    }
}

/* 4 activation bytes, as one int32 to broadcast */
static inline int32_t quad_at(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Each takes 32 unsigned and 32 signed bytes, sums their products in fours
 * and adds the sums to acc's eight int32 lanes (the kernels' MULSUM is this
 * on zero). maddubs saturates its int16 pairs, which the operands here never
 * reach: |u| <= 128 and |s| <= 127. */
TARGET_AVX2 static inline __m256i mulacc_avx2(__m256i acc, __m256i u, __m256i s)
{
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}
TARGET_AVXVNNI static inline __m256i mulacc_avxvnni(__m256i acc, __m256i u, __m256i s)
{
    return _mm256_dpbusd_avx_epi32(acc, u, s);
}
TARGET_AVX512VNNI static inline __m256i mulacc_avx512vnni(__m256i acc, __m256i u, __m256i s)
{
    return _mm256_dpbusd_epi32(acc, u, s);
}

#define ISA avx2
#define TARGET TARGET_AVX2
#define VNNI 0
#include "int8dot_simd.inc"
#define ISA avxvnni
#define TARGET TARGET_AVXVNNI
#define VNNI 1
#include "int8dot_simd.inc"
#define ISA avx512vnni
#define TARGET TARGET_AVX512VNNI
#define VNNI 1
#include "int8dot_simd.inc"

/* acc + the products of u's bytes with the 4 bytes at p, broadcast: the
 * broadcast folded into the instruction's memory operand, which GCC does
 * not do for the intrinsic. */
__attribute__((always_inline)) TARGET_AVX512VNNI static inline __m512i dpbusd_bcst(__m512i acc, __m512i u, const int8_t *p)
{
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(u), "m"(*(const int32_t *)p));
    return acc;
}

/* AVX-512: two neighbouring groups (16 rows) in one 512-bit vector and 8
 * tokens at a time, which the 32 vector registers hold: 8 integer and 8
 * float accumulators. The bytes are the 8-row layout; each 512-bit load
 * joins the same 32 bytes of the two groups. dpbusd wants one operand
 * unsigned: the weights, Q4_0's nibbles as stored (0..15, the weight + 8),
 * Q5_0's and Q5_1's 5-bit q (0..31; Q5_0's weight + 16) and Q8_0's bytes
 * with the sign bit flipped (the weight + 128); each block's integer sums
 * start from -offset * sum(x), so the broadcast activations need no work
 * per token and the sums no subtraction (the 256-bit Q8_0 kernels move the
 * weights' signs onto x instead: AVX2's maddubs would saturate on 255 * 127
 * pairs). Q5_1 has no offset: its min m goes in as m xd qsum, in float.
 * The broadcasts ride in dpbusd's memory operand (dpbusd_bcst). Zen 4
 * measured (one thread, 2048x3072 Q4_0 against 256 tokens): a block's 64
 * dpbusd and its 8 multiplies and 8 FMAs share the same two pipes, so 80%
 * of the dpbusd peak is this tile's ceiling; it reaches about 71%. */
/* x[t * xs + b] is token t's block b; type is VC_Q4_0_X8, VC_Q5_0_X8,
 * VC_Q5_1_X8 or VC_Q8_0_X8. Inlined once per weight type, so that the loop
 * over a block's column quads unrolls without branches. */
__attribute__((always_inline)) TARGET_AVX512VNNI static inline void pair_tile8(vc_dtype type, const uint8_t *ga, const uint8_t *gb,
                                                                               const vc_block_q8_act *x, int64_t xs,
                                                                               int64_t nb, float *y, int ldy)
{
    const int offset = vc_x8_offset(type);   /* what the unsigned weights carry: sum(x) times it comes off */
    size_t block_bytes = vc_x8_block_bytes(type), qs_at = vc_x8_values_at(type);
    __m512 acc[8];
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++)
        acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++, ga += block_bytes, gb += block_bytes) {
        const uint8_t *qa = ga + qs_at, *qb = gb + qs_at;
        __m512i s[8];
#pragma GCC unroll 8
        for (int t = 0; t < 8; t++)
            s[t] = _mm512_set1_epi32(-offset * x[t * xs + b].qsum);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {   /* quads of columns 4j .. 4j+3 */
            __m512i u = vc_x8_quad16(type, qa, qb, j);
#pragma GCC unroll 8
            for (int t = 0; t < 8; t++)
                s[t] = dpbusd_bcst(s[t], u, x[t * xs + b].qs + 4 * j);
        }
        __m512 d = vc_x8_join_scales((const uint16_t *)ga, (const uint16_t *)gb);
#pragma GCC unroll 8
        for (int t = 0; t < 8; t++) {
            const vc_block_q8_act *xt = &x[t * xs + b];
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[t]), _mm512_mul_ps(d, _mm512_set1_ps(xt->d)), acc[t]);
        }
        if (type == VC_Q5_1_X8) {   /* m xd qsum */
            __m512 m = vc_x8_join_scales(((const vc_block_q5_1x8 *)ga)->m, ((const vc_block_q5_1x8 *)gb)->m);
#pragma GCC unroll 8
            for (int t = 0; t < 8; t++)
                acc[t] = _mm512_fmadd_ps(m, _mm512_set1_ps(x[t * xs + b].d * x[t * xs + b].qsum), acc[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++)
        _mm512_storeu_ps(y + (size_t)t * ldy, acc[t]);
}

#define PAIR_TILE(name, type)                                                                                         \
    TARGET_AVX512VNNI static void name(const uint8_t *ga, const uint8_t *gb, const vc_block_q8_act *x, int64_t xs,    \
                                       int64_t nb, float *y, int ldy)                                                 \
    {                                                                                                                 \
        pair_tile8(type, ga, gb, x, xs, nb, y, ldy);                                                                  \
    }
PAIR_TILE(pair_tile8_q4, VC_Q4_0_X8)
PAIR_TILE(pair_tile8_q5_0, VC_Q5_0_X8)
PAIR_TILE(pair_tile8_q5_1, VC_Q5_1_X8)
PAIR_TILE(pair_tile8_q8, VC_Q8_0_X8)
#undef PAIR_TILE

/* Where a Q6_K half's integer sums start (half 0: columns 0..15 of the
 * block, 1: 16..31): its offset of 32 times those columns' sum(x), taken off. */
TARGET_AVX512VNNI static inline __m512i q6_half_start(const vc_block_q8_act *x, int half)
{
    return _mm512_set1_epi32(-32 * (half ? x->qsum - x->qsum16 : x->qsum16));
}

/* nt tokens (x + t xs; nt is 1 or 8) against two groups (16 rows) of a
 * K-quant x8 matrix (kind 4, 5 or 6) of nsb super-blocks: kx8_tile's sums
 * and float steps on 16 rows an instruction, so the same floats row by
 * row; acc[t] gets token t's 16 products. For one token the sums take
 * KX8_SUM's four integer accumulators and both groups' streams are
 * prefetched 1 KiB ahead (3.8B Q4_K_M decode on the 2-core Xeon 9.5 ->
 * 10.8 tok/s against the 256-bit kernel). Q6_K's sums start from each
 * half's offset, -32 times its 16 columns' sum(x), instead of having it
 * subtracted after (one thread, 2048x3072 Q6_K against 256 tokens on Zen 4:
 * 106-115 -> 121-123 GMAC/s); the broadcasts stay separate loads here (in
 * dpbusd's operand this tile was slower, 112-115). */
__attribute__((always_inline)) TARGET_AVX512VNNI static inline void kx8_pair(int kind, int nt, const uint8_t *ga, const uint8_t *gb,
                                                                             const vc_block_q8_act *x, int64_t xs,
                                                                             int64_t nsb, __m512 *acc)
{
    size_t unit = vc_kx8_unit(kind);
#pragma GCC unroll 8
    for (int t = 0; t < nt; t++)
        acc[t] = _mm512_setzero_ps();
    for (int64_t k = 0; k < nsb; k++, ga += unit, gb += unit) {
        const vc_block_q4_kx8 *a4 = (const vc_block_q4_kx8 *)ga, *b4 = (const vc_block_q4_kx8 *)gb;   /* Q5_K's header too */
        const vc_block_q6_kx8 *a6 = (const vc_block_q6_kx8 *)ga, *b6 = (const vc_block_q6_kx8 *)gb;
        __m512 d = kind == 6 ? vc_x8_join_scales(a6->d, b6->d) : vc_x8_join_scales(a4->d, b4->d);
        __m512 dmin = kind == 6 ? d : vc_x8_join_scales(a4->dmin, b4->dmin);
        for (int s = 0; s < 8; s++) {
            const uint8_t *qa = vc_kx8_values(kind, ga, s), *qb = vc_kx8_values(kind, gb, s);
            const uint8_t *ha = vc_kx8_high(kind, ga, s), *hb = vc_kx8_high(kind, gb, s);
            int64_t b = 8 * k + s;
            if (nt == 1) {
                _mm_prefetch((const char *)qa + 1024, _MM_HINT_T0);
                _mm_prefetch((const char *)qb + 1024, _MM_HINT_T0);
            }
            __m512i sum[8];
#pragma GCC unroll 8
            for (int t = 0; t < 8; t++)
                sum[t] = kind == 6 && t < nt ? q6_half_start(&x[t * xs + b], 0) : _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {   /* constant j: fixed shifts; Q6_K closes a half after 4 quads */
                __m512i u = vc_x8_kquad16(kind, qa, qb, ha, hb, j);
#pragma GCC unroll 8
                for (int t = 0; t < nt; t++)
                    sum[KX8_SUM(nt, t, j)] = _mm512_dpbusd_epi32(sum[KX8_SUM(nt, t, j)], u,
                                                                 _mm512_set1_epi32(quad_at(x[t * xs + b].qs + 4 * j)));
                bool closes = kind == 6 ? j % 4 == 3 : j == 7;
                if (!closes)
                    continue;
                if (nt == 1) {
                    sum[0] = _mm512_add_epi32(_mm512_add_epi32(sum[0], sum[1]), _mm512_add_epi32(sum[2], sum[3]));
                    sum[1] = sum[2] = sum[3] = _mm512_setzero_si512();
                }
                int half = j / 4;
                __m512 sc = kind == 6 ? _mm512_mul_ps(d, vc_x8_join_bytes_ps(a6->sc[2 * s + half], b6->sc[2 * s + half], true))
                                      : _mm512_mul_ps(d, vc_x8_join_bytes_ps(a4->sc[s], b4->sc[s], false));
                __m512 m = kind == 6 ? _mm512_setzero_ps() : _mm512_mul_ps(dmin, vc_x8_join_bytes_ps(a4->m[s], b4->m[s], false));
#pragma GCC unroll 8
                for (int t = 0; t < nt; t++) {
                    const vc_block_q8_act *xb = &x[t * xs + b];
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[t]), _mm512_mul_ps(sc, _mm512_set1_ps(xb->d)), acc[t]);
                    if (kind != 6)
                        acc[t] = _mm512_fnmadd_ps(m, _mm512_set1_ps(xb->d * xb->qsum), acc[t]);
                    sum[t] = kind == 6 && !half ? q6_half_start(xb, 1) : _mm512_setzero_si512();
                }
            }
        }
    }
}

#define KX8_PAIR(kind)                                                                                                \
    TARGET_AVX512VNNI static void kx8_pair_##kind(const uint8_t *ga, const uint8_t *gb, const vc_block_q8_act *x,      \
                                                  int64_t xs, int64_t nb, float *y, int ldy)                          \
    {                                                                                                                 \
        __m512 acc[8];                                                                                                \
        kx8_pair(kind, 8, ga, gb, x, xs, nb / 8, acc);                                                                \
        for (int t = 0; t < 8; t++)                                                                                   \
            _mm512_storeu_ps(y + (size_t)t * ldy, acc[t]);                                                            \
    }
KX8_PAIR(4)
KX8_PAIR(5)
KX8_PAIR(6)
#undef KX8_PAIR

/* One token against two groups (16 rows) of a Q5_0_X8 or Q5_1_X8 matrix,
 * as kx8_pair for one token: the 256-bit one-token kernel's (q5x8_tile
 * with one token) steps on 16 rows an instruction, the same floats row by
 * row. */
__attribute__((always_inline)) TARGET_AVX512VNNI static inline __m512 q5_pair_one(bool q51, const uint8_t *ga, const uint8_t *gb,
                                                                                  const vc_block_q8_act *x, int64_t nb)
{
    vc_dtype type = q51 ? VC_Q5_1_X8 : VC_Q5_0_X8;
    size_t unit = vc_x8_block_bytes(type), at = vc_x8_values_at(type);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++, ga += unit, gb += unit, x++) {
        _mm_prefetch((const char *)ga + 1024, _MM_HINT_T0);
        _mm_prefetch((const char *)gb + 1024, _MM_HINT_T0);
        __m512i sum[4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
            sum[i] = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            sum[j & 3] = _mm512_dpbusd_epi32(sum[j & 3], vc_x8_quad16(type, ga + at, gb + at, j),
                                             _mm512_set1_epi32(quad_at(x->qs + 4 * j)));
        __m512i st = _mm512_add_epi32(_mm512_add_epi32(sum[0], sum[1]), _mm512_add_epi32(sum[2], sum[3]));
        if (!q51)
            st = _mm512_sub_epi32(st, _mm512_set1_epi32(16 * x->qsum));
        __m512 d = vc_x8_join_scales((const uint16_t *)ga, (const uint16_t *)gb);   /* d[8] leads both layouts */
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(st), _mm512_mul_ps(d, _mm512_set1_ps(x->d)), acc);
        if (q51)
            acc = _mm512_fmadd_ps(vc_x8_join_scales(((const vc_block_q5_1x8 *)ga)->m, ((const vc_block_q5_1x8 *)gb)->m),
                                  _mm512_set1_ps(x->d * x->qsum), acc);
    }
    return acc;
}

TARGET_AVX512VNNI static __m512 q5_0_one(const uint8_t *ga, const uint8_t *gb, const vc_block_q8_act *x, int64_t nb)
{
    return q5_pair_one(false, ga, gb, x, nb);
}

TARGET_AVX512VNNI static __m512 q5_1_one(const uint8_t *ga, const uint8_t *gb, const vc_block_q8_act *x, int64_t nb)
{
    return q5_pair_one(true, ga, gb, x, nb);
}

#define KX8_ONE(kind)                                                                                                 \
    TARGET_AVX512VNNI static __m512 kx8_one_##kind(const uint8_t *ga, const uint8_t *gb, const vc_block_q8_act *x,    \
                                                   int64_t nb)                                                        \
    {                                                                                                                 \
        __m512 acc;                                                                                                   \
        kx8_pair(kind, 1, ga, gb, x, 0, nb / 8, &acc);                                                                \
        return acc;                                                                                                   \
    }
KX8_ONE(4)
KX8_ONE(5)
KX8_ONE(6)
#undef KX8_ONE

/* One token against two neighbouring groups (16 rows) of a Q4_0_X8 or
 * Q8_0_X8 matrix: pair_tile8's sums for one token, the column quads split
 * over two integer accumulators, the weights prefetched 1 KiB ahead in
 * both groups' streams. Where 512-bit instructions run at full width
 * (vc_cpu_full_width_512): a 3.8B Q4_0 decode on a 2-core Xeon 11.6 ->
 * 12.0 tok/s, one token over 1.4 GB of Q4_0 27 -> 31 GB/s; on a Zen 4 an
 * earlier version was slower than the 256-bit kernels. The two groups are
 * half a thread's range apart, so that each stream runs on over many
 * groups (neighbouring groups, two streams restarting every 13.8 KB on a
 * 3072-column matrix: 12.0 -> 12.6 tok/s). */
__attribute__((always_inline)) TARGET_AVX512VNNI static inline __m512 pair_one(vc_dtype type, const uint8_t *ga, const uint8_t *gb,
                                                                               const vc_block_q8_act *x, int64_t nb)
{
    size_t block_bytes = vc_x8_block_bytes(type), qs_at = vc_x8_values_at(type);
    __m512 acc = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++, ga += block_bytes, gb += block_bytes, x++) {
        _mm_prefetch((const char *)ga + 1024, _MM_HINT_T0);
        _mm_prefetch((const char *)gb + 1024, _MM_HINT_T0);
        __m512i s = _mm512_setzero_si512(), s2 = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            __m512i u = vc_x8_quad16(type, ga + qs_at, gb + qs_at, j);
            __m512i xb = _mm512_set1_epi32(quad_at(x->qs + 4 * j));
            if (j & 1)
                s2 = _mm512_dpbusd_epi32(s2, u, xb);
            else
                s = _mm512_dpbusd_epi32(s, u, xb);
        }
        __m512i st = _mm512_sub_epi32(_mm512_add_epi32(s, s2), _mm512_set1_epi32(vc_x8_offset(type) * x->qsum));
        __m512 d = _mm512_mul_ps(vc_x8_join_scales((const uint16_t *)ga, (const uint16_t *)gb), _mm512_set1_ps(x->d));
        if (b & 1)
            acc2 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(st), d, acc2);
        else
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(st), d, acc);
    }
    return _mm512_add_ps(acc, acc2);
}

TARGET_AVX512VNNI static __m512 q4_0_one(const uint8_t *ga, const uint8_t *gb, const vc_block_q8_act *x, int64_t nb)
{
    return pair_one(VC_Q4_0_X8, ga, gb, x, nb);
}

TARGET_AVX512VNNI static __m512 q8_0_one(const uint8_t *ga, const uint8_t *gb, const vc_block_q8_act *x, int64_t nb)
{
    return pair_one(VC_Q8_0_X8, ga, gb, x, nb);
}

/* interleaved_avx512vnni, with pairs of groups and 8 tokens at a time where
 * they fit, and a call for one token on pair_one (Q4_0, Q8_0), q5_pair_one
 * (Q5_0, Q5_1) or kx8_pair (K-quants) where vc_cpu_full_width_512 and `pair_one_ok`
 * (the AMX path's last tokens keep the other kernels, so that it gives the
 * floats this level gives). */
TARGET_AVX512VNNI static void interleaved_avx512(const vc_matrix *w, int64_t g0, int64_t g1, const vc_block_q8_act *x,
                                                 int n, float *y, int ldy, bool pair_one_ok)
{
    int64_t nb = w->cols / VC_QK8_ACT;
    size_t group_bytes = 8 * w->row_bytes;
    int tiled = n / 8 * 8;
    int64_t g = g0;
    void (*tile)(const uint8_t *, const uint8_t *, const vc_block_q8_act *, int64_t, int64_t, float *, int) =
        w->type == VC_Q4_0_X8   ? pair_tile8_q4
        : w->type == VC_Q5_0_X8 ? pair_tile8_q5_0
        : w->type == VC_Q5_1_X8 ? pair_tile8_q5_1
        : w->type == VC_Q8_0_X8 ? pair_tile8_q8
        : w->type == VC_Q4_K_X8 ? kx8_pair_4
        : w->type == VC_Q5_K_X8 ? kx8_pair_5
                                : kx8_pair_6;
    __m512 (*one)(const uint8_t *, const uint8_t *, const vc_block_q8_act *, int64_t) =
        w->type == VC_Q4_0_X8   ? q4_0_one
        : w->type == VC_Q8_0_X8 ? q8_0_one
        : w->type == VC_Q5_0_X8 ? q5_0_one
        : w->type == VC_Q5_1_X8 ? q5_1_one
        : w->type == VC_Q4_K_X8 ? kx8_one_4
        : w->type == VC_Q5_K_X8 ? kx8_one_5
                                : kx8_one_6;
    if (n == 1 && pair_one_ok && vc_cpu_full_width_512()) {
        /* group g0 + i with g0 + half + i: two long forward streams, each over half the groups */
        int64_t half = (g1 - g0) / 2;
        for (int64_t i = 0; i < half; i++) {
            const uint8_t *ga = (const uint8_t *)w->data + (size_t)(g0 + i) * group_bytes, *gb = ga + (size_t)half * group_bytes;
            __m512 r = one(ga, gb, x, nb);
            _mm256_storeu_ps(y + (size_t)i * 8, _mm512_castps512_ps256(r));
            _mm256_storeu_ps(y + (size_t)(half + i) * 8, _mm256_castsi256_ps(_mm512_extracti64x4_epi64(_mm512_castps_si512(r), 1)));
        }
        g = g0 + 2 * half;
    }
    for (; tiled && g + 2 <= g1; g += 2) {
        const uint8_t *ga = (const uint8_t *)w->data + (size_t)g * group_bytes;
        for (int i = 0; i < tiled; i += 8)
            tile(ga, ga + group_bytes, x + (size_t)i * nb, nb, nb, y + (size_t)i * ldy + (size_t)(g - g0) * 8, ldy);
        if (tiled < n)   /* the last tokens of these two groups */
            interleaved_avx512vnni(w, g, g + 2, x + (size_t)tiled * nb, n - tiled,
                                   y + (size_t)tiled * ldy + (size_t)(g - g0) * 8, ldy);
    }
    if (g < g1)
        interleaved_avx512vnni(w, g, g1, x, n, y + (size_t)(g - g0) * 8, ldy);
}

/* interleaved_avx512, with 16 tokens and 4 groups at a time on AMX
 * (int8dot_amx.c) where at least 16 tokens are there. */
static void interleaved_amx(const vc_matrix *w, int64_t g0, int64_t g1, const vc_block_q8_act *x, int n, float *y,
                            int ldy)
{
    int tiled = n / 16 * 16;
    int64_t paired = g0 + (g1 - g0) / 4 * 4, nb = w->cols / VC_QK8_ACT;
    if (!vc_int8dot_amx_has(w->type) || !tiled || paired == g0 || vc_int8dot_amx(w, g0, paired, x, tiled, y, ldy) != 0) {
        interleaved_avx512(w, g0, g1, x, n, y, ldy, true);
        return;
    }
    if (paired < g1)   /* the last groups */
        interleaved_avx512(w, paired, g1, x, tiled, y + (size_t)(paired - g0) * 8, ldy, false);
    if (tiled < n)     /* the last tokens */
        interleaved_avx512(w, g0, g1, x + (size_t)tiled * nb, n - tiled, y + (size_t)tiled * ldy, ldy, false);
}

/* ---- the machine's int8 multiply-add peak (vc_int8dot_peak_run) ----
 * Twelve independent accumulators, so that the multiply-adds' latency
 * hides behind their throughput; the result goes to a volatile sink so
 * that none of it is optimized away. */
static volatile int32_t peak_sink;

TARGET_AVX512VNNI static int64_t peak_avx512vnni(int64_t iters, int seed)
{
    __m512i a = _mm512_set1_epi32(0x01020304 + seed), b = _mm512_set1_epi32(0x05060708 - seed);
    __m512i acc[12];
    for (int k = 0; k < 12; k++)
        acc[k] = _mm512_set1_epi32(k);
    for (int64_t i = 0; i < iters; i++)
#pragma GCC unroll 12
        for (int k = 0; k < 12; k++)
            acc[k] = _mm512_dpbusd_epi32(acc[k], a, b);
    for (int k = 1; k < 12; k++)
        acc[0] = _mm512_add_epi32(acc[0], acc[k]);
    peak_sink = _mm_cvtsi128_si32(_mm512_castsi512_si128(acc[0]));   /* a lane: the sums wrap, which C's int may not */
    return iters * 12 * 64;
}

#define PEAK_256(name, target, mulacc)                                                                             \
    target static int64_t name(int64_t iters, int seed)                                                             \
    {                                                                                                              \
        __m256i a = _mm256_set1_epi32(0x01020304 + seed), b = _mm256_set1_epi32(0x05060708 - seed);                 \
        __m256i acc[12];                                                                                           \
        for (int k = 0; k < 12; k++)                                                                               \
            acc[k] = _mm256_set1_epi32(k);                                                                         \
        for (int64_t i = 0; i < iters; i++)                                                                        \
            _Pragma("GCC unroll 12") for (int k = 0; k < 12; k++) acc[k] = mulacc(acc[k], a, b);                   \
        for (int k = 1; k < 12; k++)                                                                               \
            acc[0] = _mm256_add_epi32(acc[0], acc[k]);                                                             \
        peak_sink = _mm256_extract_epi32(acc[0], 0);                                                               \
        return iters * 12 * 32;                                                                                    \
    }
PEAK_256(peak_avxvnni, TARGET_AVXVNNI, mulacc_avxvnni)
PEAK_256(peak_avx2, TARGET_AVX2, mulacc_avx2)
#undef PEAK_256

typedef enum { ISA_GENERIC, ISA_AVX2, ISA_AVXVNNI, ISA_AVX512VNNI, ISA_AMX } isa_kind;
static const char *const isa_names[] = { "generic", "avx2", "avx-vnni", "avx512-vnni", "amx" };

/* Per call, so that a level set for tests (core/cpu.h) reaches here too. */
static isa_kind current_isa(void)
{
    return vc_isa_has(VC_ISA_AMX)           ? ISA_AMX
           : vc_isa_has(VC_ISA_AVX512_VNNI) ? ISA_AVX512VNNI
           : vc_isa_has(VC_ISA_AVX_VNNI)  ? ISA_AVXVNNI
           : vc_isa_has(VC_ISA_AVX2)      ? ISA_AVX2
                                          : ISA_GENERIC;
}
#endif

const char *vc_int8dot_isa(void)
{
#ifdef VC_HAVE_X86
    return isa_names[current_isa()];
#else
    return "generic";
#endif
}

vc_dot_act_fn vc_int8dot_kernel(void)
{
#ifdef VC_HAVE_X86
    switch (current_isa()) {
    case ISA_AVXVNNI: return dot_act_avxvnni;
    case ISA_AVX512VNNI:
    case ISA_AMX: return dot_act_avx512vnni;
    case ISA_AVX2: return dot_act_avx2;
    case ISA_GENERIC: break;
    }
#endif
    return vc_dot_row_act_ref;
}

int64_t vc_int8dot_peak_run(int64_t iters)
{
#ifdef VC_HAVE_X86
    switch (current_isa()) {
    case ISA_AMX: return vc_int8dot_amx_peak_run(iters);
    case ISA_AVX512VNNI: return peak_avx512vnni(iters, (int)(iters & 1));
    case ISA_AVXVNNI: return peak_avxvnni(iters, (int)(iters & 1));
    case ISA_AVX2: return peak_avx2(iters, (int)(iters & 1));
    case ISA_GENERIC: break;
    }
#endif
    uint32_t acc[8] = { 0 };   /* plain C: what the compiler makes of 8 lanes of 4 byte products (wrapping) */
    for (int64_t i = 0; i < iters; i++)
        for (int k = 0; k < 8; k++)
            for (int j = 0; j < 4; j++)
                acc[k] += (uint32_t)((int32_t)(uint8_t)(k + j + i) * (int8_t)(j - k));
    peak_sink = (int32_t)(acc[0] + acc[7]);
    return iters * 32;
}

float vc_dot_row_act(vc_dtype t, const void *row, const vc_block_q8_act *x, int64_t n)
{
    return vc_int8dot_kernel()(t, row, x, n);
}

#ifdef VC_HAVE_X86
/* vc_quantize_act_ref eight floats at a time, to the same bytes: the scale
 * is computed as there, the rounding is the same (nearest, ties to even), NaN
 * becomes 0, and packing to bytes is put back in order afterwards. */
TARGET_AVX2 static void quantize_act_avx2(const float *x, vc_block_q8_act *out, int64_t n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f), lim = _mm256_set1_ps(127.0f), nlim = _mm256_set1_ps(-127.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t b = 0; b < n / VC_QK8_ACT; b++, x += VC_QK8_ACT) {
        __m256 v[4], m = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(x + 8 * k);
            m = _mm256_max_ps(_mm256_andnot_ps(sign, v[k]), m);   /* NaN lanes keep m */
        }
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        float amax = _mm_cvtss_f32(h), d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
        __m256 vid = _mm256_set1_ps(id);
        __m256i q[4], sum = _mm256_setzero_si256();
        for (int k = 0; k < 4; k++) {
            __m256 r = _mm256_round_ps(_mm256_mul_ps(v[k], vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            r = _mm256_and_ps(r, _mm256_cmp_ps(r, r, _CMP_ORD_Q));     /* NaN -> 0 */
            q[k] = _mm256_cvtps_epi32(_mm256_max_ps(_mm256_min_ps(r, lim), nlim));
            sum = _mm256_add_epi32(sum, q[k]);
        }
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        _mm256_storeu_si256((__m256i *)out[b].qs, _mm256_permutevar8x32_epi32(p, order));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        out[b].d = d;
        out[b].qsum = (int16_t)_mm_cvtsi128_si32(s4);
        /* q[0], q[1]: the first 16 values */
        __m256i lo16 = _mm256_add_epi32(q[0], q[1]);
        __m128i h4 = _mm_add_epi32(_mm256_castsi256_si128(lo16), _mm256_extracti128_si256(lo16, 1));
        h4 = _mm_add_epi32(h4, _mm_shuffle_epi32(h4, 0x4e));
        h4 = _mm_add_epi32(h4, _mm_shuffle_epi32(h4, 0xb1));
        out[b].qsum16 = (int16_t)_mm_cvtsi128_si32(h4);
    }
}
#endif

void vc_quantize_act(const float *x, vc_block_q8_act *out, int64_t n)
{
#ifdef VC_HAVE_X86
    if (current_isa() != ISA_GENERIC) {
        quantize_act_avx2(x, out, n);
        return;
    }
#endif
    vc_quantize_act_ref(x, out, n);
}

/* ---- interleaved groups of 8 rows (the layout in dtype.h) ---- */

bool vc_int8dot_is_interleaved(vc_dtype t)
{
    return t == VC_Q4_0_X8 || t == VC_Q5_0_X8 || t == VC_Q5_1_X8 || t == VC_Q8_0_X8 || t == VC_Q4_K_X8 ||
           t == VC_Q5_K_X8 || t == VC_Q6_K_X8;
}

/* Plain C for the K-quant layouts: each row's 6-bit value q of column c of
 * sub-block s read back from the interleaved bytes, the integer sum of each
 * sub-block (of each 16 columns for Q6_K) scaled as the stored rows'
 * kernels scale it, in double. */
static int kx8_value(vc_dtype t, const uint8_t *sb, int s, int r, int c)
{
    int j = c / 4, i = c % 4;
    const uint8_t *qs = t == VC_Q6_K_X8   ? ((const vc_block_q6_kx8 *)sb)->sub[s].ql
                        : t == VC_Q5_K_X8 ? ((const vc_block_q5_kx8 *)sb)->sub[s].qs
                                          : ((const vc_block_q4_kx8 *)sb)->qs[s];
    int q = (qs[32 * (j / 2) + 4 * r + i] >> (4 * (j % 2))) & 0xf;
    if (t == VC_Q5_K_X8)
        q |= ((((const vc_block_q5_kx8 *)sb)->sub[s].qh[4 * r + i] >> j) & 1) << 4;
    else if (t == VC_Q6_K_X8)
        q |= ((((const vc_block_q6_kx8 *)sb)->sub[s].qh[32 * (j / 4) + 4 * r + i] >> (2 * (j % 4))) & 3) << 4;
    return q;
}

static void interleaved_k_ref(const vc_matrix *w, int64_t g0, int64_t g1, const vc_block_q8_act *x, int n, float *y,
                              int ldy)
{
    int64_t nb = w->cols / VC_QK8_ACT, nsb = w->cols / VC_QK_K;
    size_t unit = 8 * w->row_bytes / (size_t)nsb;
    for (int64_t g = g0; g < g1; g++)
        for (int i = 0; i < n; i++)
            for (int r = 0; r < 8; r++) {
                double sum = 0;
                for (int64_t k = 0; k < nsb; k++) {
                    const uint8_t *sb = (const uint8_t *)w->data + (size_t)g * 8 * w->row_bytes + (size_t)k * unit;
                    const vc_block_q4_kx8 *b4 = (const vc_block_q4_kx8 *)sb;
                    const vc_block_q6_kx8 *b6 = (const vc_block_q6_kx8 *)sb;
                    for (int s = 0; s < 8; s++) {
                        const vc_block_q8_act *a = &x[(size_t)i * nb + 8 * k + s];
                        long isum[2] = { 0, 0 };
                        for (int c = 0; c < 32; c++)
                            isum[c / 16] += (long)(kx8_value(w->type, sb, s, r, c) - (w->type == VC_Q6_K_X8 ? 32 : 0)) * a->qs[c];
                        if (w->type == VC_Q6_K_X8) {
                            double d = vc_f16_to_f32(b6->d[r]);
                            sum += d * b6->sc[2 * s][r] * a->d * (double)isum[0] + d * b6->sc[2 * s + 1][r] * a->d * (double)isum[1];
                        } else {
                            double d = vc_f16_to_f32(b4->d[r]), dmin = vc_f16_to_f32(b4->dmin[r]);
                            sum += d * b4->sc[s][r] * a->d * (double)(isum[0] + isum[1]) - dmin * b4->m[s][r] * a->d * a->qsum;
                        }
                    }
                }
                y[(size_t)i * ldy + (size_t)(g - g0) * 8 + r] = (float)sum;
            }
}

/* Plain C: undoes the interleaving weight by weight. Per block, row r's
 * integer sum of q x (q the signed weight for Q4_0 and Q8_0, q - 16 for
 * Q5_0, the unsigned q for Q5_1) times d xd, and Q5_1's m xd qsum. */
static void interleaved_ref(const vc_matrix *w, int64_t g0, int64_t g1, const vc_block_q8_act *x, int n, float *y,
                            int ldy)
{
    vc_dtype t = w->type;
    if (t != VC_Q4_0_X8 && t != VC_Q5_0_X8 && t != VC_Q5_1_X8 && t != VC_Q8_0_X8) {
        interleaved_k_ref(w, g0, g1, x, n, y, ldy);
        return;
    }
    int64_t nb = w->cols / VC_QK8_ACT;
    size_t block_bytes = t == VC_Q4_0_X8   ? sizeof(vc_block_q4_0x8)
                         : t == VC_Q5_0_X8 ? sizeof(vc_block_q5_0x8)
                         : t == VC_Q5_1_X8 ? sizeof(vc_block_q5_1x8)
                                           : sizeof(vc_block_q8_0x8);
    for (int64_t g = g0; g < g1; g++)
        for (int i = 0; i < n; i++)
            for (int r = 0; r < 8; r++) {
                double sum = 0;
                for (int64_t b = 0; b < nb; b++) {
                    const uint8_t *blk = (const uint8_t *)w->data + (size_t)g * 8 * w->row_bytes + (size_t)b * block_bytes;
                    const vc_block_q4_0x8 *b4 = (const vc_block_q4_0x8 *)blk;
                    const vc_block_q5_0x8 *b50 = (const vc_block_q5_0x8 *)blk;
                    const vc_block_q5_1x8 *b51 = (const vc_block_q5_1x8 *)blk;
                    const vc_block_q8_act *a = &x[(size_t)i * nb + b];
                    long isum = 0;
                    for (int k = 0; k < 32; k++) {
                        /* column k = 4j + c: quad j, in the (j / 2)-th 32 nibble bytes, high nibbles for odd j */
                        int j = k / 4, c = k % 4, at = 32 * (j / 2) + 4 * r + c, q;
                        if (t == VC_Q4_0_X8) {
                            q = ((b4->qs[at] >> (4 * (j % 2))) & 0xf) - 8;
                        } else if (t == VC_Q5_0_X8) {
                            q = (((b50->qs[at] >> (4 * (j % 2))) & 0xf) | ((b50->qh[4 * r + c] >> j) & 1) << 4) - 16;
                        } else if (t == VC_Q5_1_X8) {
                            q = ((b51->qs[at] >> (4 * (j % 2))) & 0xf) | ((b51->qh[4 * r + c] >> j) & 1) << 4;
                        } else {
                            q = ((const vc_block_q8_0x8 *)blk)->qs[32 * j + 4 * r + c];
                        }
                        isum += (long)q * a->qs[k];
                    }
                    /* d[8] leads every one of these layouts */
                    sum += (double)vc_f16_to_f32(((const uint16_t *)blk)[r]) * a->d * (double)isum;
                    if (t == VC_Q5_1_X8)
                        sum += (double)vc_f16_to_f32(b51->m[r]) * a->d * a->qsum;
                }
                y[(size_t)i * ldy + (size_t)(g - g0) * 8 + r] = (float)sum;
            }
}

void vc_int8dot_rows(const vc_matrix *w, int64_t r0, int64_t r1, const vc_block_q8_act *x, int n, float *y, int ldy)
{
#ifdef VC_HAVE_X86
    switch (current_isa()) {
    case ISA_AVXVNNI: rows_avxvnni(w, r0, r1, x, n, y, ldy); return;
    case ISA_AVX512VNNI:
    case ISA_AMX: rows_avx512vnni(w, r0, r1, x, n, y, ldy); return;
    case ISA_AVX2: rows_avx2(w, r0, r1, x, n, y, ldy); return;
    case ISA_GENERIC: break;
    }
#endif
    int64_t nbx = w->cols / VC_QK8_ACT;
    for (int64_t r = r0; r < r1; r++)
        for (int i = 0; i < n; i++)
            y[(size_t)i * ldy + (r - r0)] = vc_dot_row_act_ref(w->type, (const uint8_t *)w->data + (size_t)r * w->row_bytes,
                                                               x + (size_t)i * nbx, w->cols);
}

void vc_int8dot_interleaved(const vc_matrix *w, int64_t g0, int64_t g1, const vc_block_q8_act *x, int n, float *y,
                            int ldy)
{
#ifdef VC_HAVE_X86
    switch (current_isa()) {
    case ISA_AVXVNNI: interleaved_avxvnni(w, g0, g1, x, n, y, ldy); return;
    case ISA_AVX512VNNI: interleaved_avx512(w, g0, g1, x, n, y, ldy, true); return;
    case ISA_AMX: interleaved_amx(w, g0, g1, x, n, y, ldy); return;
    case ISA_AVX2: interleaved_avx2(w, g0, g1, x, n, y, ldy); return;
    case ISA_GENERIC: break;
    }
#endif
    interleaved_ref(w, g0, g1, x, n, y, ldy);
}
