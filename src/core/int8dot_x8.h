/* int8dot_x8.h - reading two neighbouring groups (16 rows) of the
 * interleaved layouts (include/core/dtype.h) into 512-bit vectors; shared by
 * the AVX-512 VNNI pair tiles (int8dot.c) and the AMX tiles
 * (int8dot_amx.c); private to src/core. Include only where VC_HAVE_X86 is
 * set, and call only where vc_isa_has(VC_ISA_AVX512_VNNI) holds. */
#ifndef VC_CORE_INT8DOT_X8_H
#define VC_CORE_INT8DOT_X8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "simd_x86.h"

#define VC_TARGET_AVX512VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")))

/* The same 32 bytes of two groups, a's in the low half: byte 4r+i of the
 * result is row r (0..15, b's rows 8..15) of the column quad they hold. */
VC_TARGET_AVX512VNNI static inline __m512i vc_x8_join_groups(const uint8_t *a, const uint8_t *b)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                              _mm256_loadu_si256((const __m256i *)b), 1);
}

/* The 16 rows' f16 scales (8 at a and 8 at b), widened to float. */
VC_TARGET_AVX512VNNI static inline __m512 vc_x8_join_scales(const uint16_t *a, const uint16_t *b)
{
    return _mm512_cvtph_ps(_mm256_set_m128i(_mm_loadu_si128((const __m128i *)b), _mm_loadu_si128((const __m128i *)a)));
}

/* The 16 rows' 8-bit sub-block scales (or mins) of the K-quant layouts,
 * widened to float. */
VC_TARGET_AVX512VNNI static inline __m512 vc_x8_join_bytes_ps(const void *a, const void *b, bool is_signed)
{
    __m128i v = _mm_unpacklo_epi64(_mm_loadl_epi64((const __m128i *)a), _mm_loadl_epi64((const __m128i *)b));
    return _mm512_cvtepi32_ps(is_signed ? _mm512_cvtepi8_epi32(v) : _mm512_cvtepu8_epi32(v));
}

/* A K-quant x8 super-block's bytes (kind 4, 5 or 6: Q4_K_X8, Q5_K_X8,
 * Q6_K_X8), and where sub-block s of it keeps its values (the nibbles; Q6_K:
 * the low four bits) and high bits (NULL for Q4_K). */
static inline size_t vc_kx8_unit(int kind)
{
    return kind == 4 ? sizeof(vc_block_q4_kx8) : kind == 5 ? sizeof(vc_block_q5_kx8) : sizeof(vc_block_q6_kx8);
}
static inline const uint8_t *vc_kx8_values(int kind, const uint8_t *sb, int s)
{
    return kind == 6 ? ((const vc_block_q6_kx8 *)sb)->sub[s].ql
           : kind == 5 ? ((const vc_block_q5_kx8 *)sb)->sub[s].qs : ((const vc_block_q4_kx8 *)sb)->qs[s];
}
static inline const uint8_t *vc_kx8_high(int kind, const uint8_t *sb, int s)
{
    return kind == 5 ? ((const vc_block_q5_kx8 *)sb)->sub[s].qh : kind == 6 ? ((const vc_block_q6_kx8 *)sb)->sub[s].qh : NULL;
}

/* The j-th column quad (columns 4j..4j+3) of a K-quant sub-block of 16
 * rows, kind 4, 5 or 6 (Q4_K_X8, Q5_K_X8, Q6_K_X8), as the unsigned values
 * q: qa, qb the two groups' nibbles, ha, hb their high bits (NULL for Q4_K). */
__attribute__((always_inline)) VC_TARGET_AVX512VNNI static inline __m512i vc_x8_kquad16(int kind, const uint8_t *qa,
                                                                                     const uint8_t *qb, const uint8_t *ha,
                                                                                     const uint8_t *hb, int j)
{
    __m512i v = vc_x8_join_groups(qa + 32 * (j / 2), qb + 32 * (j / 2));
    __m512i u = _mm512_and_si512(j & 1 ? _mm512_srli_epi16(v, 4) : v, _mm512_set1_epi8(0xf));
    if (kind == 5) {
        __m512i h = vc_x8_join_groups(ha, hb);
        h = j <= 4 ? _mm512_slli_epi16(h, 4 - j) : _mm512_srli_epi16(h, j - 4);
        u = _mm512_ternarylogic_epi32(u, h, _mm512_set1_epi8(0x10), 0xf8);   /* u | (h & 0x10) */
    } else if (kind == 6) {
        __m512i h = vc_x8_join_groups(ha + 32 * (j / 4), hb + 32 * (j / 4));
        int k = j % 4;
        h = 2 * k <= 4 ? _mm512_slli_epi16(h, 4 - 2 * k) : _mm512_srli_epi16(h, 2 * k - 4);
        u = _mm512_ternarylogic_epi32(u, h, _mm512_set1_epi8(0x30), 0xf8);
    }
    return u;
}

/* ---- Q4_0_X8, Q5_0_X8, Q5_1_X8, Q8_0_X8 (t below is one of them) ---- */

/* A block's bytes, and where its values start (past d[8], and Q5_1's m[8]). */
static inline size_t vc_x8_block_bytes(vc_dtype t)
{
    return t == VC_Q4_0_X8 ? sizeof(vc_block_q4_0x8) : t == VC_Q5_0_X8 ? sizeof(vc_block_q5_0x8)
           : t == VC_Q5_1_X8 ? sizeof(vc_block_q5_1x8) : sizeof(vc_block_q8_0x8);
}
static inline size_t vc_x8_values_at(vc_dtype t)
{
    return t == VC_Q5_1_X8 ? offsetof(vc_block_q5_1x8, qs) : offsetof(vc_block_q4_0x8, qs);
}

/* What vc_x8_quad16's unsigned bytes carry beyond the weight (Q5_1's min
 * is apart, in float). */
static inline int vc_x8_offset(vc_dtype t)
{
    return t == VC_Q4_0_X8 ? 8 : t == VC_Q5_0_X8 ? 16 : t == VC_Q5_1_X8 ? 0 : 128;
}

/* The j-th column quad of 16 rows of a block (qa, qb: the two groups'
 * values, at vc_x8_values_at) as unsigned bytes: Q4_0's nibbles, Q5's 5-bit
 * q (the nibbles and the 32 bytes of fifth bits after them), Q8_0's bytes
 * with the sign bit flipped; each the weight plus vc_x8_offset. */
__attribute__((always_inline)) VC_TARGET_AVX512VNNI static inline __m512i vc_x8_quad16(vc_dtype t, const uint8_t *qa,
                                                                                    const uint8_t *qb, int j)
{
    if (t == VC_Q8_0_X8)
        return _mm512_xor_si512(vc_x8_join_groups(qa + 32 * j, qb + 32 * j), _mm512_set1_epi8((char)0x80));
    if (t == VC_Q4_0_X8) {
        __m512i v = vc_x8_join_groups(qa + 32 * (j / 2), qb + 32 * (j / 2));
        return _mm512_and_si512(j & 1 ? _mm512_srli_epi16(v, 4) : v, _mm512_set1_epi8(0xf));
    }
    return vc_x8_kquad16(5, qa, qb, qa + 128, qb + 128, j);
}

#endif
