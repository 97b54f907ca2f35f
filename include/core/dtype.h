/* dtype.h - tensor element types, f16/bf16 conversion, block quantization.
 *
 * Type ids are GGML's, so a GGUF tensor's type field maps directly.  All
 * quantized formats are laid out byte for byte as GGML stores them; the
 * functions here are the plain-C reference that SIMD kernels are tested
 * against (tests/test_quant.c).
 */
#ifndef VC_CORE_DTYPE_H
#define VC_CORE_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    VC_F32 = 0,
    VC_F16 = 1,
    VC_Q4_0 = 2,
    VC_Q5_0 = 6,
    VC_Q5_1 = 7,
    VC_Q8_0 = 8,
    VC_Q4_K = 12,
    VC_Q5_K = 13,
    VC_Q6_K = 14,
    VC_BF16 = 30,
    /* Not GGML's: MLX's affine 4-bit layout (w = scale * q + bias per group of
     * 32, 64 or 128), repacked into blocks when an MLX checkpoint loads. */
    VC_MLX4_G32 = 232,
    VC_MLX4_G64 = 264,
    VC_MLX4_G128 = 328,
    /* Not in any file: Q4_0 / Q5_0 / Q5_1 / Q8_0 / K-quant matrices whose
     * rows are interleaved in groups of 8 for the integer kernels (laid out
     * below; written by core/matrix.h, read by core/int8dot.h). vc_dtype_valid
     * and the functions here do not know them. */
    VC_Q4_0_X8 = 1002,
    VC_Q5_0_X8 = 1006,
    VC_Q5_1_X8 = 1007,
    VC_Q8_0_X8 = 1008,
    VC_Q4_K_X8 = 1012,
    VC_Q5_K_X8 = 1013,
    VC_Q6_K_X8 = 1014
} vc_dtype;

#define VC_QK8_0 32
#define VC_QK4_0 32
#define VC_QK5_0 32
#define VC_QK5_1 32
#define VC_QK_K 256

typedef struct { uint16_t d; int8_t qs[VC_QK8_0]; } vc_block_q8_0;
typedef struct { uint16_t d; uint8_t qs[VC_QK4_0 / 2]; } vc_block_q4_0;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[VC_QK_K / 2]; } vc_block_q4_k;
/* Q5_0: w = d (q - 16), q = 5 bits: element j < 16 in the low nibble of
 * qs[j], element j + 16 in its high nibble, element e's fifth bit is bit e
 * of qh (read as a little-endian uint32). Q5_1: the same q, w = d q + m. */
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[VC_QK5_0 / 2]; } vc_block_q5_0;
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[VC_QK5_1 / 2]; } vc_block_q5_1;
/* Q5_K: Q4_K's scales, mins and nibbles (sub-block 2j in the low nibbles of
 * qs[32j..32j+31], 2j+1 in the high ones) plus a fifth bit: bit s of qh[l]
 * for element l of sub-block s; w = d sc q - dmin m, q = 0..31. */
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[VC_QK_K / 8]; uint8_t qs[VC_QK_K / 2]; } vc_block_q5_k;
/* One MLX group: scale and bias widened to float (exact for MLX's f16/bf16),
 * then the group's 4-bit values as MLX packs them: element j in byte j/2, the
 * low nibble for even j (little-endian uint32 words of eight). */
typedef struct { float scale, bias; uint8_t qs[]; } vc_block_mlx4;
#define VC_MLX4_BLOCK_BYTES(group) (sizeof(vc_block_mlx4) + (size_t)(group) / 2)

typedef struct { uint8_t ql[VC_QK_K / 2]; uint8_t qh[VC_QK_K / 4]; int8_t scales[VC_QK_K / 16]; uint16_t d; } vc_block_q6_k;

/* ---- rows interleaved in groups of 8 (VC_Q4_0_X8, VC_Q5_0_X8, VC_Q5_1_X8,
 * VC_Q8_0_X8) ----
 * One 32-byte vector holds 4 consecutive weights of each of 8 rows: a
 * broadcast of 4 activation bytes then feeds 8 rows in one multiply-add, the
 * 8 row sums stay in the vector's lanes (no horizontal sums), and one vector
 * of 8 row scales scales them. Per group of 8 rows and block of 32 columns:
 *   Q4_0_X8: uint16 d[8] (f16), then 4 x 32 bytes; in the p-th 32 bytes,
 *            byte 4r+i holds row r's weight 8p+i (low nibble) and 8p+4+i
 *            (high nibble), as unsigned 0..15 (the weight + 8);
 *   Q5_0_X8: uint16 d[8], then Q4_0_X8's 4 x 32 bytes of nibbles (the low
 *            4 bits of q = 0..31) and 32 bytes qh: bit j of byte 4r+i is
 *            the fifth bit (16) of row r's weight 4j+i (w = d (q - 16));
 *   Q5_1_X8: uint16 d[8], m[8] (f16, the rows' scales and mins), then
 *            Q5_0_X8's nibbles and qh (w = d q + m);
 *   Q8_0_X8: uint16 d[8], then 8 x 32 bytes; in the j-th, byte 4r+i is row
 *            r's weight 4j+i.
 * So column quad j (weights 4j..4j+3; j = 2p + high for the nibbles) of the
 * 8 rows is one vector, and a block's high bits follow its nibbles: one
 * forward stream a group. The same bytes as the 8 rows' blocks, so
 * row_bytes is unchanged: a group of 8 rows is 8 * row_bytes bytes, block
 * b of it at b * sizeof(block). */
typedef struct { uint16_t d[8]; uint8_t qs[128]; } vc_block_q4_0x8;
typedef struct { uint16_t d[8]; uint8_t qs[128], qh[32]; } vc_block_q5_0x8;
typedef struct { uint16_t d[8], m[8]; uint8_t qs[128], qh[32]; } vc_block_q5_1x8;
typedef struct { uint16_t d[8]; int8_t qs[256]; } vc_block_q8_0x8;
_Static_assert(sizeof(vc_block_q4_0x8) == 8 * sizeof(vc_block_q4_0), "q4_0x8: the bytes of 8 blocks");
_Static_assert(sizeof(vc_block_q5_0x8) == 8 * sizeof(vc_block_q5_0), "q5_0x8: the bytes of 8 blocks");
_Static_assert(sizeof(vc_block_q5_1x8) == 8 * sizeof(vc_block_q5_1), "q5_1x8: the bytes of 8 blocks");
_Static_assert(sizeof(vc_block_q8_0x8) == 8 * sizeof(vc_block_q8_0), "q8_0x8: the bytes of 8 blocks");

/* ---- K-quant rows interleaved in groups of 8 (VC_Q4_K_X8, VC_Q5_K_X8,
 * VC_Q6_K_X8) ----
 * The same values and scales as the stored super-blocks, rearranged so
 * that the 32 columns of one activation block (one sub-block) of 8 rows
 * are Q4_0_X8's 4 x 32 bytes of nibbles: in the p-th 32 bytes, byte 4r+i
 * holds row r's column 8p+i (low nibble) and 8p+4+i (high nibble), so the
 * j-th column quad (columns 4j..4j+3, j = 2p + high) of the 8 rows is one
 * vector. Per group of 8 rows and super-block of 256 columns:
 *   Q4_K_X8: uint16 d[8], dmin[8] (f16, the rows' d and dmin), uint8
 *            sc[8][8] and m[8][8] (sub-block s, row r at [s][r]: the 6-bit
 *            scales and mins unpacked), then qs[8][128], sub-block s's
 *            nibbles (q = 0..15, w = d sc q - dmin m);
 *   Q5_K_X8: Q4_K_X8's header, then per sub-block s its 128 bytes of
 *            nibbles and 32 of high bits, qh: bit j of byte 4r+i is the
 *            fifth bit (16) of row r's column 4j+i;
 *   Q6_K_X8: uint16 d[8], int8 sc[16][8] (the scale of 16 columns h of the
 *            super-block, row r at [h][r]), then per sub-block s its low 4
 *            bits (ql, 128 bytes, as Q4_K_X8's qs) and 64 bytes qh: bits
 *            2k, 2k+1 of byte 4r+i of qh[32 h'..] are bits 4, 5 of row r's
 *            column 4(4h'+k)+i (q = 0..63, w = d sc (q - 32)).
 * The high bits follow their sub-block's nibbles, so that a product reads
 * each super-block front to back, one stream (two interleaved forward
 * streams in a page, nibbles and high bits apart, defeat the hardware
 * prefetcher: less than half the speed at one token).
 * A group of 8 rows is 8 * row_bytes bytes (row_bytes: the structure's size
 * over 8 per super-block: for Q6_K the stored size, for Q4_K and Q5_K 4 bytes
 * more a row per 256 columns, the scales and mins unpacked), and
 * its super-block k is at k * sizeof(structure). */
typedef struct { uint16_t d[8], dmin[8]; uint8_t sc[8][8], m[8][8]; uint8_t qs[8][128]; } vc_block_q4_kx8;
typedef struct { uint16_t d[8], dmin[8]; uint8_t sc[8][8], m[8][8]; struct { uint8_t qs[128], qh[32]; } sub[8]; } vc_block_q5_kx8;
typedef struct { uint16_t d[8]; int8_t sc[16][8]; struct { uint8_t ql[128], qh[64]; } sub[8]; } vc_block_q6_kx8;
_Static_assert(sizeof(vc_block_q6_kx8) == 8 * sizeof(vc_block_q6_k), "q6_kx8: the bytes of 8 blocks");
_Static_assert(sizeof(vc_block_q4_kx8) % 8 == 0 && sizeof(vc_block_q5_kx8) % 8 == 0, "k x8: whole bytes a row");

/* True for the GGML type ids vlmchat can compute with. */
bool vc_dtype_valid(uint32_t type);
/* True for the ids GGML defines (what a GGUF file may hold). */
bool vc_dtype_is_ggml(uint32_t type);
/* The MLX 4-bit type for a group size, or -1 if MLX has none vlmchat reads. */
int vc_dtype_mlx4(int group_size);
/* "f32", "q8_0", ...; "?" for unknown ids. */
const char *vc_dtype_name(vc_dtype t);
/* Parses a name as printed by vc_dtype_name; returns -1 if unknown. */
int vc_dtype_from_name(const char *name);
/* Elements per block (1 for plain floats) and bytes per block. */
int vc_dtype_block_elems(vc_dtype t);
size_t vc_dtype_block_bytes(vc_dtype t);
/* Bytes of one row of n elements; fails if n is not a multiple of the block. */
int vc_dtype_row_bytes(vc_dtype t, int64_t n, size_t *out);

float vc_f16_to_f32(uint16_t h);
uint16_t vc_f32_to_f16(float f);         /* round to nearest even */
static inline float vc_bf16_to_f32(uint16_t h)
{
    union { uint32_t u; float f; } v = { (uint32_t)h << 16 };
    return v.f;
}
uint16_t vc_f32_to_bf16(float f);        /* round to nearest even, NaN kept */

/* Expands n elements (a whole number of blocks) of type t into floats. */
void vc_dequantize_row(vc_dtype t, const void *src, float *dst, int64_t n);
/* Encodes n floats (a whole number of blocks) as type t. */
void vc_quantize_row(vc_dtype t, const float *src, void *dst, int64_t n);
/* Reference dot product of a row of type t with n floats (plain C). */
float vc_dot_row_ref(vc_dtype t, const void *row, const float *x, int64_t n);

#endif
