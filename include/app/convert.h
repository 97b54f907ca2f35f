/* convert.h - `vlmchat convert`: an HF model directory to a GGUF file.
 *
 * The file follows llama.cpp's conventions (keys, tensor names, q/k row order
 * for "llama", fused tensors and rope factor tensors for "phi3"), so
 * llama.cpp can read it too, and it also embeds the source tokenizer.json
 * ("vlmchat.tokenizer_json") so vlmchat tokenizes exactly as HF does. */
#ifndef VC_APP_CONVERT_H
#define VC_APP_CONVERT_H

#include "core/dtype.h"
#include "core/kernels.h"
#include "loader/gguf.h"
#include "vision/vit.h"

/* Converts `model_dir` to `out_path`, storing 2-D weights as `type` (rows
 * that are not a whole number of blocks fall back to q8_0, then f16). */
int vc_convert_to_gguf(const char *model_dir, const char *out_path, vc_dtype type);

/* llama.cpp's per-tensor K-quant mixes (llama-quantize's Q4_K_M, Q5_K_M):
 * Q4_K or Q5_K for most matrices, Q6_K for output.weight and for attn_v /
 * attn_qkv and ffn_down in some layers (the rule is in convert.c), norms
 * F32; rows that are no whole number of 256-blocks fall back as llama.cpp's
 * do (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, then F16). */
typedef enum { VC_MIX_NONE, VC_MIX_Q4_K_M, VC_MIX_Q5_K_M } vc_convert_mix;
/* "q4_k_m" / "q5_k_m" (any case) -> the mix; VC_MIX_NONE for other names. */
vc_convert_mix vc_convert_mix_from_name(const char *name);
/* As vc_convert_to_gguf with the mix's types (type is ignored unless mix is
 * VC_MIX_NONE; the vision side takes the mix's base type). */
int vc_convert_to_gguf_mix(const char *model_dir, const char *out_path, vc_dtype type, vc_convert_mix mix);
/* A vision-language model's image side goes to "mmproj-<name of out_path>" in
 * the same directory (include/app/convert_mmproj.h), where vlmchat pairs it
 * with the text file automatically. */

/* The general.name a converted file gets: the last component of the source
 * path, without a trailing "/" or ".gguf" ("/models/Phi-3.5-vision-instruct/"
 * -> "Phi-3.5-vision-instruct"), so that no local path is written into the
 * file. Into buf (cap bytes, truncated to fit); returns buf. */
const char *vc_convert_model_name(const char *path, char *buf, size_t cap);

/* For the mmproj writer: a matrix stored as `type` (fallbacks as above), and
 * floats of an n_dims shape ne (ggml order) as F32. */
int vc_convert_add_matrix(vc_gguf_writer *w, const char *name, const vc_matrix *m, vc_dtype type);
int vc_convert_add_f32(vc_gguf_writer *w, const char *name, const float *v, int n_dims, const int64_t *ne);
/* A vision tower's first `layers` blocks under llama.cpp's clip names (v.*):
 * the patch convolution [hidden][3][p][p] in ggml order (f32 when type is
 * F32, else f16) and its bias, class and position embeddings, the
 * pre-LayerNorm where the tower has one, each block's matrices as type with
 * f32 biases and norms, and post_ln when post_norm. Returns 0 or -1. */
int vc_convert_add_vit(vc_gguf_writer *w, const vc_vit *v, int layers, vc_dtype type, bool post_norm);

#endif
