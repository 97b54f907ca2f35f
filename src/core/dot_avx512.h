/* dot_avx512.h - AVX-512 row dot products for vc_dot_row (private to
 * src/core). Call only where vc_isa_has(VC_ISA_AVX512) holds. */
#ifndef VC_CORE_DOT_AVX512_H
#define VC_CORE_DOT_AVX512_H

#include <stdbool.h>
#include <stdint.h>

#include "core/dtype.h"

/* Whether vc_dot_row_avx512 takes rows of type t. */
bool vc_dot_avx512_has(vc_dtype t);
/* vc_dot_row_ref's sum for F32, F16, BF16, Q8_0 and Q4_0 rows, 16 lanes at a time. */
float vc_dot_row_avx512(vc_dtype t, const void *row, const float *x, int64_t n);
/* vc_dequantize_row, the same floats, 16 at a time for F16, BF16, Q8_0 and
 * Q4_0 (other types: vc_dequantize_row itself). */
void vc_dequantize_row_avx512(vc_dtype t, const void *row, float *out, int64_t n);

#endif
