/* kernels.h - the hot loops: row dot products and matrix products.
 *
 * vc_dot_row() picks an AVX-512 or AVX2/FMA/F16C implementation at run time
 * where the level in effect (core/cpu.h) allows it and falls back to the
 * plain-C reference in dtype.c otherwise.  All accumulate in float; results agree to rounding
 * (tests/test_quant.c).
 */
#ifndef VC_CORE_KERNELS_H
#define VC_CORE_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/gemm.h"

/* A 2-D weight: `rows` rows of `cols` elements, rows contiguous. */
typedef struct {
    vc_dtype type;
    int64_t cols, rows;
    size_t row_bytes;
    const void *data;
} vc_matrix;

/* The instruction sets below follow the one level core/cpu.h decides. */
/* The float vector kernels' instruction set (axpy, softmax, activations):
 * "avx2" or "generic". */
const char *vc_kernels_isa(void);
/* True when multi-token products go to OpenBLAS (built with BLAS=1 and the
 * level not generic). */
bool vc_kernels_use_blas(void);
/* The row dots' instruction set: "avx512" (F32, F16, BF16, Q8_0 and Q4_0
 * rows; AVX2 for the others), "avx2" or "generic". */
const char *vc_kernels_dot_isa(void);

/* Dot product of a row of type t (n elements, whole blocks) with n floats. */
float vc_dot_row(vc_dtype t, const void *row, const float *x, int64_t n);
/* Plain float dot product. */
float vc_dot_f32(const float *a, const float *b, int64_t n);
/* y[i] += a * x[i] for i < n (attention's weighted sum of values); the
 * AVX2 version fuses the multiply-add, so the two differ by rounding. */
void vc_axpy_f32(float a, const float *x, float *y, int64_t n);
void vc_axpy_f32_ref(float a, const float *x, float *y, int64_t n);

/* Softmax of n values in place (the largest subtracted first); -INFINITY
 * entries (masked) become 0. At least one must be finite. The AVX2 version
 * (its own exponential, float sums) agrees with the plain-C reference (expf,
 * the sum in double) to about 1e-6 relative. */
void vc_softmax(float *x, int n);
void vc_softmax_ref(float *x, int n);

/* Y[i][r] = sum_c X[i][c] * W[r][c] for i < n tokens, r < W->rows.
 * X is n x W->cols, Y is n x W->rows (row-major). Runs on the thread pool.
 * One token: a dot product per row (vc_dot_row), or, with vc_int8dot_enable
 * on and Q8_0/Q4_0/MLX 4-bit weights, x quantized once to 8 bits and an
 * integer dot product per row (core/int8dot.h). Several: rows expanded to
 * f32 in blocks, then vc_gemm_nt. The float paths agree to float rounding (the
 * order of the sums differs). Matrices interleaved for the integer kernels
 * (VC_Q4_0_X8, VC_Q8_0_X8) always take the integer path, for any n. */
void vc_matmul(const vc_matrix *w, const float *x, int n, float *y);
/* vc_matmul for count matrices with the same cols and the same X (q/k/v,
 * gate/up) in one dispatch to the pool: Y[k] = X W[k]^T. */
void vc_matmul_multi(int count, const vc_matrix *w, const float *x, int n, float *const *y);

/* Returns the matrix holding rows [first, first+count) of m. */
vc_matrix vc_matrix_rows(const vc_matrix *m, int64_t first, int64_t count);

/* m's rows as type t, each expanded to floats and quantized again; row r
 * lands at row dst_row(r, arg) (at r where dst_row is NULL). Returns a new
 * buffer of m->rows rows of *row_bytes bytes each, or NULL where t cannot
 * hold rows of m->cols elements, the size overflows, or memory runs out. */
uint8_t *vc_matrix_requantize(const vc_matrix *m, vc_dtype t, int64_t (*dst_row)(int64_t r, int arg), int arg,
                              size_t *row_bytes);

#endif
