/* kernels.h - the matrix-product dispatcher, and the one header model code
 * includes for the hot loops (it brings core/dot.h, core/gemm.h and
 * core/matrix.h).
 *
 * Dependency order in core (each module includes only modules to its left;
 * common, threads and meminfo are utilities under all of them):
 *   cpu -> dtype -> matrix -> dot | gemm | int8dot | act -> kernels (this)
 * cpu.h decides the instruction-set level once; dtype.h holds the element
 * types and block layouts (the interleaved ones included); matrix.h the
 * weight descriptor and its layout conversions (requantizing, interleaving
 * for the integer kernels); dot.h, gemm.h and int8dot.h the kernels, each
 * picking its variant from the level; this header splits products over the
 * thread pool and chooses among those kernels.
 */
#ifndef VC_CORE_KERNELS_H
#define VC_CORE_KERNELS_H

#include "core/dot.h"
#include "core/gemm.h"
#include "core/matrix.h"

/* Y[i][r] = sum_c X[i][c] * W[r][c] for i < n tokens, r < W->rows.
 * X is n x W->cols, Y is n x W->rows (row-major). Runs on the thread pool.
 * One token: a dot product per row (vc_dot_row), or, with vc_int8dot_enable
 * on and Q8_0/Q4_0/Q5_0/Q5_1/K-quant/MLX 4-bit weights, x quantized once to 8 bits
 * and an integer dot product per row (core/int8dot.h); stored K-quant rows
 * so up to 32 tokens too (vc_int8dot_rows). Several: rows expanded to f32 in
 * blocks, then vc_gemm_nt. The float paths agree to float rounding (the
 * order of the sums differs). Matrices prepared for the integer kernels
 * (vc_matrix_prepare_int8: VC_Q4_0_X8, VC_Q5_0_X8, VC_Q5_1_X8, VC_Q8_0_X8,
 * VC_Q4_K_X8, VC_Q5_K_X8, VC_Q6_K_X8) always take the integer path, for any
 * n. */
void vc_matmul(const vc_matrix *w, const float *x, int n, float *y);
/* vc_matmul for count matrices with the same cols and the same X (q/k/v,
 * gate/up) in one dispatch to the pool: Y[k] = X W[k]^T. */
void vc_matmul_multi(int count, const vc_matrix *w, const float *x, int n, float *const *y);

#endif
