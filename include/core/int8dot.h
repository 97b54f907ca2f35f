/* int8dot.h - integer dot products with 8-bit activations.
 *
 * A product over quantized weights can expand each weight to float and
 * multiply with float activations (--float-act), which keeps vlmchat's
 * logits within 1e-4 of transformers running the same (dequantized)
 * weights.  This module is the other way, llama.cpp's and the vlmchat
 * program's default: activations are
 * quantized to 8 bits in blocks of 32, and the products are integer
 * multiply-adds (AVX2 maddubs, or VNNI's dpbusd where the CPU has it) with one
 * float scale per block: row by row, or, for matrices interleaved at load in
 * groups of 8 rows, 8 or 16 rows and up to 8 tokens at a time.  About twice
 * as fast; it moves logits by up to about 2% of their scale.
 *
 * vc_dot_row_act_ref() is the plain-C definition the SIMD kernels are tested
 * against (tests/test_quant.c).
 */
#ifndef VC_CORE_INT8DOT_H
#define VC_CORE_INT8DOT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/matrix.h"

#define VC_QK8_ACT 32

/* 32 activations: x[i] ~ d * qs[i] with |qs[i]| <= 127; qsum is the sum of qs
 * (the kernels need it for 4-bit weights stored with an offset or a bias),
 * qsum16 that of qs[0..15] (for Q6_K_X8's offset of 32 on scales per 16). */
typedef struct {
    float d;
    int16_t qsum, qsum16;
    int8_t qs[VC_QK8_ACT];
} vc_block_q8_act;

/* Quantizes n floats (a multiple of 32): d = max|x| / 127 per block, and
 * qs = x / d rounded to nearest, ties to even. */
void vc_quantize_act(const float *x, vc_block_q8_act *out, int64_t n);
/* Its plain-C definition; vc_quantize_act (AVX2 where there is) writes the same bytes. */
void vc_quantize_act_ref(const float *x, vc_block_q8_act *out, int64_t n);

/* True for the weight types with an integer kernel: Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, MLX 4-bit. */
bool vc_int8dot_supports(vc_dtype t);

/* Turns the integer path on or off for vc_matmul and the loaders (off at
 * start; the vlmchat program turns it on unless --float-act). On, quantized
 * weights compute with 8-bit activations; float weights stay float. */
void vc_int8dot_enable(bool on);
bool vc_int8dot_enabled(void);

/* With the integer path on, whether a vision tower's float matrices are
 * also requantized to Q8_0 for the integer kernels at load (--int8-dot;
 * off at start). Its quantized matrices take the integer kernels anyway. */
void vc_int8dot_requantize_float(bool on);
bool vc_int8dot_requantizes_float(void);

/* The instruction set the integer kernels use, the best the level in effect
 * (core/cpu.h) allows: "amx" (AMX tiles for 16 tokens or more on
 * interleaved matrices, AVX-512 VNNI for the rest), "avx512-vnni",
 * "avx-vnni", "avx2" or "generic" (the plain-C reference). */
const char *vc_int8dot_isa(void);

/* Dot product of a row of type t (n elements, whole blocks; t must be one
 * vc_int8dot_supports accepts) with quantized activations. */
float vc_dot_row_act(vc_dtype t, const void *row, const vc_block_q8_act *x, int64_t n);

/* For measuring the machine's int8 peak (vlmchat bench): `iters` rounds of
 * independent multiply-adds of the kind the integer kernels use at the
 * level in effect (AMX's 16x16x64 tile products, AVX-512 VNNI's 512-bit
 * dpbusd, AVX-VNNI's 256-bit one, AVX2's maddubs/madd pair, plain C), on
 * the calling thread. Returns the count of byte multiply-adds done. */
int64_t vc_int8dot_peak_run(int64_t iters);

/* The kernel vc_dot_row_act would call now (decided once per matrix
 * product instead of per row). */
typedef float (*vc_dot_act_fn)(vc_dtype t, const void *row, const vc_block_q8_act *x, int64_t n);
vc_dot_act_fn vc_int8dot_kernel(void);

/* y[i * ldy + r] for tokens i < n and rows r in [r0, r1) of a stored
 * matrix of a type vc_int8dot_supports accepts, from the tokens' quantized
 * activations (w->cols / 32 blocks each); rows are numbered from r0 in y.
 * K-quant rows go four tokens at a time (each weight unpacked once for
 * them); the generic level is the reference, vc_dot_row_act_ref per token. */
void vc_int8dot_rows(const vc_matrix *w, int64_t r0, int64_t r1, const vc_block_q8_act *x, int n, float *y, int ldy);

/* ---- rows interleaved in groups of 8 ----
 * Matrices prepared by vc_matrix_prepare_int8 (core/matrix.h; the layouts in
 * dtype.h, VC_Q4_0_X8, VC_Q5_0_X8, VC_Q5_1_X8, VC_Q8_0_X8, VC_Q4_K_X8,
 * VC_Q5_K_X8, VC_Q6_K_X8) go 8 or 16 rows and up to 8 tokens at a time
 * (with AMX, 32 rows and 32 tokens: the same floats as AVX-512 VNNI's).
 * Q5_0_X8 / Q5_1_X8 compute what vc_int8dot_rows computes on the stored
 * rows (the same integer sums per block, the offset 16 qsum or the min
 * m xd qsum), up to the order of the float sums. The K-quant ones compute what
 * vc_int8dot_rows computes on the stored rows (the same integer sums per
 * block of 32, or 16 for Q6_K, the same float scales d sc and mins dmin m),
 * up to the order of the float sums. */

/* True for the interleaved types (VC_Q4_0_X8, VC_Q5_0_X8, VC_Q5_1_X8, VC_Q8_0_X8, the K-quant x8). */
bool vc_int8dot_is_interleaved(vc_dtype t);

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
