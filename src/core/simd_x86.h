/* simd_x86.h - x86 helpers shared by the kernel files (kernels.c,
 * int8dot.c); private to src/core. Include only where VC_HAVE_X86 is set. */
#ifndef VC_CORE_SIMD_X86_H
#define VC_CORE_SIMD_X86_H

#include <immintrin.h>

/* What the AVX2 kernels need; callers check the CPU before calling them. */
#define VC_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))

/* The sum of a vector's eight floats. */
VC_TARGET_AVX2 static inline float vc_hsum256(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

#endif
