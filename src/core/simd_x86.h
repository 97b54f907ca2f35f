/* simd_x86.h - x86 helpers shared by the kernel files (dot.c,
 * dot_avx512.c, int8dot.c, gemm.c, act.c); private to src/core. Include only where VC_HAVE_X86 is set. */
#ifndef VC_CORE_SIMD_X86_H
#define VC_CORE_SIMD_X86_H

#include <immintrin.h>

/* What the AVX2 kernels need; callers check the CPU before calling them. */
#define VC_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
/* What the AVX-512 ones need (vc_isa_has(VC_ISA_AVX512)), on top of AVX2's. */
#define VC_TARGET_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512dq,avx512bw,avx512vl")))

/* The sum of a vector's eight floats. */
VC_TARGET_AVX2 static inline float vc_hsum256(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

/* e^x for 8 floats: x = k ln2 + r with |r| <= ln2/2, a degree-6 polynomial
 * for e^r (Taylor; its error there is under 2e-7, near float rounding), then
 * 2^k put into the exponent. Below -87.3 (where expf is subnormal or 0) it
 * gives 0, above 88.7 +inf, and -inf gives 0. */
VC_TARGET_AVX2 static inline __m256 vc_exp256(__m256 x)
{
    const __m256 hi = _mm256_set1_ps(88.7f), lo = _mm256_set1_ps(-87.3f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_max_ps(_mm256_min_ps(x, hi), lo);
    __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    /* r = x - k ln2, with ln2 in two parts so that k ln2 is exact enough */
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    /* 2^k: k + 127 in the exponent bits; k <= 128 only at the clamp, where +inf is wanted */
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    __m256 two_k = _mm256_castsi256_ps(e);
    __m256 big = _mm256_cmp_ps(k, _mm256_set1_ps(127.5f), _CMP_GT_OQ);   /* k = 128: 2^k overflows the field */
    __m256 y = _mm256_mul_ps(p, _mm256_blendv_ps(two_k, _mm256_set1_ps(1.70141183e38f), big));
    y = _mm256_blendv_ps(y, _mm256_mul_ps(y, _mm256_set1_ps(2.0f)), big);
    return _mm256_andnot_ps(under, y);
}

#endif
