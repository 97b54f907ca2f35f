/* int8dot.h - integer dot products with 8-bit activations (--int8-dot).
 *
 * A product over Q8_0, Q4_0 or MLX 4-bit weights normally expands each
 * weight to float and multiplies with float activations, which keeps
 * vlmchat's logits within 1e-4 of transformers running the same (dequantized)
 * weights.  This module is the other way, llama.cpp's: activations are
 * quantized to 8 bits in blocks of 32, and the products are integer
 * multiply-adds (AVX2 maddubs, or VNNI's dpbusd where the CPU has it) with one
 * float scale per block: row by row, or, for matrices interleaved at load in
 * groups of 8 rows, 8 or 16 rows and up to 8 tokens at a time.  About twice
 * as fast, and it moves logits by up to about 2% of their scale, so it is
 * opt-in (--int8-dot).
 *
 * vc_dot_row_act_ref() is the plain-C definition the SIMD kernels are tested
 * against (tests/test_quant.c).
 */
#ifndef VC_CORE_INT8DOT_H
#define VC_CORE_INT8DOT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/kernels.h"

#define VC_QK8_ACT 32

/* 32 activations: x[i] ~ d * qs[i] with |qs[i]| <= 127; qsum is the sum of qs
 * (the kernels need it for 4-bit weights stored with an offset or a bias). */
typedef struct {
    float d;
    int16_t qsum;
    int8_t qs[VC_QK8_ACT];
} vc_block_q8_act;

/* Quantizes n floats (a multiple of 32): d = max|x| / 127 per block, and
 * qs = x / d rounded to nearest, ties to even. */
void vc_quantize_act(const float *x, vc_block_q8_act *out, int64_t n);
/* Its plain-C definition; vc_quantize_act (AVX2 where there is) writes the same bytes. */
void vc_quantize_act_ref(const float *x, vc_block_q8_act *out, int64_t n);

/* True for the weight types with an integer kernel: Q8_0, Q4_0, MLX 4-bit. */
bool vc_int8dot_supports(vc_dtype t);

/* Turns the integer path on or off for vc_matmul (off at start). */
void vc_int8dot_enable(bool on);
bool vc_int8dot_enabled(void);

/* The instruction set the integer kernels use, the best the level in effect
 * (core/cpu.h) allows: "avx512-vnni", "avx-vnni", "avx2" or "generic" (the
 * plain-C reference). */
const char *vc_int8dot_isa(void);

/* Dot product of a row of type t (n elements, whole blocks; t must be one
 * vc_int8dot_supports accepts) with quantized activations. */
float vc_dot_row_act(vc_dtype t, const void *row, const vc_block_q8_act *x, int64_t n);

/* The kernel vc_dot_row_act would call now (decided once per matrix
 * product instead of per row). */
typedef float (*vc_dot_act_fn)(vc_dtype t, const void *row, const vc_block_q8_act *x, int64_t n);
vc_dot_act_fn vc_int8dot_kernel(void);

/* ---- rows interleaved in groups of 8 ----
 * With --int8-dot, Q4_0 and Q8_0 matrices are rewritten at load so that one
 * 32-byte vector holds 4 consecutive weights of each of 8 rows: a broadcast
 * of 4 activation bytes then feeds 8 rows in one multiply-add, the 8 row sums
 * stay in the vector's lanes (no horizontal sums), and one vector of 8 row
 * scales scales them. Per group of 8 rows and block of 32 columns:
 *   Q4_0_X8: uint16 d[8] (f16), then 4 x 32 bytes; in the p-th 32 bytes,
 *            byte 4r+i holds row r's weight 8p+i (low nibble) and 8p+4+i
 *            (high nibble), as unsigned 0..15 (the weight + 8);
 *   Q8_0_X8: uint16 d[8], then 8 x 32 bytes; in the j-th, byte 4r+i is row
 *            r's weight 4j+i.
 * The same bytes as the 8 rows' blocks, so row_bytes is unchanged. */

/* True if w can be interleaved: Q4_0 or Q8_0, a multiple of 8 rows, whole blocks. */
bool vc_int8dot_can_interleave(const vc_matrix *w);
/* Writes w's rows interleaved into a new buffer (*owned, malloc'd, for the
 * caller to free) and makes *w describe it. Returns 0 or -1 (no memory; *w
 * unchanged). */
int vc_int8dot_interleave(vc_matrix *w, void **owned);
/* The same for a matrix of any stored type (float, K-quants, MLX 4-bit),
 * requantized to Q8_0 on the way (Q4_0/Q8_0 are interleaved as they are):
 * for a vision tower, whose weights are often kept in float. */
bool vc_int8dot_can_requantize(const vc_matrix *w);
int vc_int8dot_requantize(vc_matrix *w, void **owned);
/* y[i * ldy + r] for tokens i < n and rows r in [8 * g0, 8 * g1) of an
 * interleaved matrix, from the tokens' quantized activations (w->cols / 32
 * blocks each); rows are numbered from 0 in y. The plain-C path is the
 * reference the SIMD ones are tested against. */
void vc_int8dot_interleaved(const vc_matrix *w, int64_t g0, int64_t g1, const vc_block_q8_act *x, int n, float *y,
                            int ldy);

/* The definition: sum over i of weight[i] * d * qs[i], the weights expanded
 * by vc_dequantize_row, accumulated in double. Any type t. */
float vc_dot_row_act_ref(vc_dtype t, const void *row, const vc_block_q8_act *x, int64_t n);

#endif
