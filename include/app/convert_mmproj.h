/* convert_mmproj.h - `vlmchat convert` for a vision-language model: the image
 * side as an mmproj GGUF in llama.cpp's layout, beside the text GGUF.
 *
 * LLaVA-NeXT becomes projector "mlp" (clip.vision.image_grid_pinpoints,
 * clip.vision.feature_layer = the non-negative HF vision_feature_layer with
 * only the layers it reads stored, v.image_newline, fc1 as ffn_up), Idefics3 /
 * SmolVLM projector "idefics3" (scale_factor, preproc_image_size). What an
 * mmproj file cannot say (include/loader/mmproj.h lists the defaults a reader
 * takes) must equal those defaults, else the conversion fails rather than
 * write a file that runs differently. Matrices are stored as `type` where
 * their rows allow (else q8_0, f16, f32); vectors, the position embedding and,
 * unless type is f32, the patch embedding (f16) as llama.cpp's converters do. */
#ifndef VC_APP_CONVERT_MMPROJ_H
#define VC_APP_CONVERT_MMPROJ_H

#include "core/dtype.h"
#include "model/model.h"

/* Writes m->vision (which must be loaded) to out_path. */
int vc_convert_mmproj(const vc_model *m, const char *out_path, vc_dtype type);

#endif
