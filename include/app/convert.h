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

/* Converts `model_dir` to `out_path`, storing 2-D weights as `type` (rows
 * that are not a whole number of blocks fall back to q8_0, then f16). */
int vc_convert_to_gguf(const char *model_dir, const char *out_path, vc_dtype type);
/* A vision-language model's image side goes to "mmproj-<name of out_path>" in
 * the same directory (include/app/convert_mmproj.h), where vlmchat pairs it
 * with the text file automatically. */

/* For the mmproj writer: a matrix stored as `type` (fallbacks as above), and
 * floats of an n_dims shape ne (ggml order) as F32. */
int vc_convert_add_matrix(vc_gguf_writer *w, const char *name, const vc_matrix *m, vc_dtype type);
int vc_convert_add_f32(vc_gguf_writer *w, const char *name, const float *v, int n_dims, const int64_t *ne);

#endif
