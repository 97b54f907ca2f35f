/* matrix.h - a 2-D weight and the conversions of its layout: a block of its
 * rows, its rows requantized to another type, and the layout the integer
 * kernels (core/int8dot.h) read, rows interleaved in groups of 8 (dtype.h).
 *
 * Only data here: no kernel, no instruction-set choice. The kernels above
 * (core/dot.h, core/int8dot.h, core/kernels.h) take these matrices.
 */
#ifndef VC_CORE_MATRIX_H
#define VC_CORE_MATRIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"

/* A 2-D weight: `rows` rows of `cols` elements, rows contiguous. */
typedef struct {
    vc_dtype type;
    int64_t cols, rows;
    size_t row_bytes;
    const void *data;
} vc_matrix;

/* Returns the matrix holding rows [first, first+count) of m. */
vc_matrix vc_matrix_rows(const vc_matrix *m, int64_t first, int64_t count);

/* m's rows as type t, each expanded to floats and quantized again; row r
 * lands at row dst_row(r, arg) (at r where dst_row is NULL). Returns a new
 * buffer of m->rows rows of *row_bytes bytes each, or NULL where t cannot
 * hold rows of m->cols elements, the size overflows, or memory runs out. */
uint8_t *vc_matrix_requantize(const vc_matrix *m, vc_dtype t, int64_t (*dst_row)(int64_t r, int arg), int arg,
                              size_t *row_bytes);

/* Which matrices vc_matrix_prepare_int8 lays out for the integer kernels. */
typedef enum {
    /* Q4_0, Q5_0, Q5_1, Q8_0 and the K-quants (Q4_K, Q5_K, Q6_K) only,
     * their values and scales as they are; any other type stays as stored
     * (the decoder: MLX 4-bit keeps its row-wise integer dots). */
    VC_INT8_AS_STORED,
    /* Those as they are, the other quantized types (MLX 4-bit) requantized
     * to Q8_0 first; float ones stay as stored (a vision tower by default:
     * its float weights stay exact) */
    VC_INT8_QUANTIZED,
    /* Every stored type, requantized to Q8_0 first where it is not one of
     * those (a vision tower, whose weights are often kept in float). */
    VC_INT8_REQUANTIZE
} vc_int8_prepare;

/* Prepares w for the integer kernels: when it qualifies under
 * `how` and has whole groups of 8 rows of whole 32-column blocks, writes its
 * rows in the layout those kernels read into a new buffer, *owned (malloc'd,
 * for the caller to free), makes *w describe it (its row_bytes that of the
 * layout: a group of 8 rows is 8 * row_bytes bytes) and returns 1. Returns 0,
 * w and *owned untouched, for a matrix that does not qualify (an already
 * prepared one included), and -1, w unchanged, when memory runs out. */
int vc_matrix_prepare_int8(vc_matrix *w, vc_int8_prepare how, void **owned);

#endif
