/* gemm.h - float matrix products: the prefill and vision-tower work once
 * weights are expanded to f32, and attention's two products.
 *
 * Single-threaded: callers split the work over the pool. Each has a plain-C
 * reference (the _ref functions) that tests/test_quant.c checks every SIMD
 * variant the CPU has against; they agree to float rounding (the order of
 * the sums differs). The variant is chosen per call from the level in
 * effect (core/cpu.h): AVX-512, else AVX2, else plain C.
 */
#ifndef VC_CORE_GEMM_H
#define VC_CORE_GEMM_H

#include <stdbool.h>

/* From this many rows of A on, vc_gemm_nt uses OpenBLAS's sgemm (when built with BLAS=1). */
#define VC_BLAS_MIN_TOKENS 4

/* C[m][n] = sum_k A[m][k] * B[n][k] for m < M, n < N: both operands
 * K-contiguous (tokens x weight rows). Row-major with leading dimensions
 * lda, ldb, ldc. Dot products, so best for long K. */
void vc_gemm_nt(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc);
void vc_gemm_nt_ref(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc);

/* C[m][n] = sum_k A[m][k] * B[k][n]: B is K x N, N-contiguous (keys
 * transposed for scores, or values as they are for scores x V). Outer
 * products, so no sums across a vector: best where K is short (a head's 64
 * dimensions) or N is. */
void vc_gemm_nn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc);
void vc_gemm_nn_ref(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc);

/* dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols: an operand
 * turned for the other shape (keys for scores, weights for vc_gemm_nn). */
void vc_transpose(int rows, int cols, const float *src, int lds, float *dst, int ldd);

/* Whether vc_gemm_nn is the faster of the two for a product that could be
 * laid out either way with long K (weights expanded for prefill): with
 * AVX-512, about twice; with AVX2 the NT dot products are ahead. */
bool vc_gemm_nn_preferred(void);

/* True when vc_gemm_nt sends products of VC_BLAS_MIN_TOKENS rows of A or
 * more to OpenBLAS: built with BLAS=1, the level (core/cpu.h) not generic,
 * and address space enough for OpenBLAS's buffers. */
bool vc_gemm_use_blas(void);

/* The variant in use: "avx512", "avx2" or "generic". */
const char *vc_gemm_isa(void);

#endif
