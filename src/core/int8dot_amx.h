/* int8dot_amx.h - the interleaved integer products on Intel AMX tiles
 * (private to src/core; int8dot.c calls it where vc_isa_has(VC_ISA_AMX)).
 *
 * Computes what the AVX-512 VNNI pair tiles compute (int8dot.c), the same
 * integer sums per block and the same float steps in the same order, so the
 * two give the same floats; only the multiply-adds move to the tile unit,
 * 16 tokens x 16 rows x 32 columns an instruction, 32 tokens x 32 rows a step.
 */
#ifndef VC_CORE_INT8DOT_AMX_H
#define VC_CORE_INT8DOT_AMX_H

#include <stdbool.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/int8dot.h"
#include "core/matrix.h"

/* Whether vc_int8dot_amx takes matrices of interleaved type t. */
bool vc_int8dot_amx_has(vc_dtype t);

/* y[i * ldy + r] for tokens i < n and rows r in [8 * g0, 8 * g1) of an
 * interleaved matrix of a type vc_int8dot_amx_has accepts, rows numbered
 * from 0 in y, as vc_int8dot_interleaved. n must be a multiple of 16 and
 * g1 - g0 of 4 (32 rows at a time); callers send the rest elsewhere.
 * Returns 0, or -1 (y untouched) when it has no memory for its scratch:
 * the tokens' activations packed for the tiles (16 tokens' 32 bytes of a
 * block side by side, 40 bytes a token and block for up to 256 tokens and
 * 64 blocks: 640 KiB) and the weights unpacked (80 KiB). */
int vc_int8dot_amx(const vc_matrix *w, int64_t g0, int64_t g1, const vc_block_q8_act *x, int n, float *y, int ldy);

/* vc_int8dot_peak_run's count for the tile unit: `iters` rounds of four
 * independent 16 x 16 x 64 tile multiply-adds on the calling thread;
 * returns the byte multiply-adds done. */
int64_t vc_int8dot_amx_peak_run(int64_t iters);

#endif
