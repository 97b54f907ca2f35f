/* dot.h - the row kernels: a row of any stored type dotted with floats,
 * and the float vector loops of attention (dot, axpy, softmax).
 *
 * vc_dot_row() picks an AVX-512 or AVX2/FMA/F16C implementation at run time
 * where the level in effect (core/cpu.h) allows it and falls back to the
 * plain-C reference in dtype.c otherwise.  All accumulate in float; results
 * agree to rounding (tests/test_quant.c).
 */
#ifndef VC_CORE_DOT_H
#define VC_CORE_DOT_H

#include <stdint.h>

#include "core/dtype.h"

/* The instruction sets below follow the one level core/cpu.h decides. */
/* The float vector kernels' instruction set (axpy, softmax, activations):
 * "avx2" or "generic". */
const char *vc_kernels_isa(void);
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

/* count rows of n halves, `stride` halves apart, to count x n packed floats
 * (a head's cached keys or values for the float kernels), and n floats to
 * halves rounded to nearest even: what vc_f16_to_f32 and vc_f32_to_f16
 * (dtype.h) give element by element, eight at a time with F16C where there
 * is (a NaN stays a NaN, its payload bits aside). */
void vc_f16_rows_to_f32(const uint16_t *rows, int64_t stride, int64_t count, int64_t n, float *dst);
void vc_f32_to_f16_row(const float *src, uint16_t *dst, int64_t n);

/* Attention over cached positions, one query: `count` rows of n floats
 * `stride` floats apart (one head's keys or values, position after position).
 *
 * vc_dot_rows_f32: out[p] = a . rows[p] for p < count, each the float that
 * vc_dot_f32(a, rows[p], n) gives (the same sums, in the same order), four
 * rows at a time. */
void vc_dot_rows_f32(const float *a, const float *rows, int64_t stride, int64_t count, int64_t n, float *out);
/* vc_axpy_rows_f32: y[i] += w[p] * rows[p][i] for p = 0 .. count - 1 in
 * turn, i < n: what count calls vc_axpy_f32(w[p], rows[p], y, n) give, bit
 * for bit, with y held in registers across the rows instead of stored and
 * reloaded for each. vc_axpy_rows_f32_ref is count vc_axpy_f32_ref calls. */
void vc_axpy_rows_f32(const float *w, const float *rows, int64_t stride, int64_t count, float *y, int64_t n);
void vc_axpy_rows_f32_ref(const float *w, const float *rows, int64_t stride, int64_t count, float *y, int64_t n);
/* The same over rows of halves (a half KV cache), read as they are: what
 * vc_f16_rows_to_f32 then vc_dot_rows_f32 / vc_axpy_rows_f32 give, bit
 * for bit, without the float copy. */
void vc_dot_rows_f16(const float *a, const uint16_t *rows, int64_t stride, int64_t count, int64_t n, float *out);
void vc_axpy_rows_f16(const float *w, const uint16_t *rows, int64_t stride, int64_t count, float *y, int64_t n);

/* Softmax of n values in place (the largest subtracted first); -INFINITY
 * entries (masked) become 0. At least one must be finite. The AVX2 version
 * (its own exponential, float sums) agrees with the plain-C reference (expf,
 * the sum in double) to about 1e-6 relative. */
void vc_softmax(float *x, int n);
void vc_softmax_ref(float *x, int n);

#endif
