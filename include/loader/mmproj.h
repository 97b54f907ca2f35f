/* mmproj.h - llama.cpp's multimodal projector files (mmproj GGUF) as a vision source.
 *
 * An mmproj file (general.architecture "clip") holds the image encoder and
 * projector of a vision-language model whose text half is a separate GGUF.
 * vc_mmproj_open reads one and produces what the HF families load from: the
 * tensors under the names of an HF checkpoint (data stays in the file's map)
 * and a synthesized config.json / image processor JSON built from the clip.*
 * metadata plus the family's defaults for what the file does not say.
 *
 * Projector types: "mlp" (LLaVA-1.6 with image_grid_pinpoints -> family
 * llava_next) and "idefics3" (SmolVLM, SmolVLM2, Idefics3 -> family idefics3).
 * Every key is read with its exact GGUF type (as clip.cpp does) and every
 * size is bounded before use; a malformed file fails with VC_EXIT_MODEL.
 *
 * What comes from where (the rest is transformers' processor default):
 *   llava_next: vision_config from clip.vision.* (hidden_act "gelu" when
 *     clip.use_gelu, "silu" when clip.use_silu, else "quick_gelu");
 *     image_grid_pinpoints from clip.vision.image_grid_pinpoints (flattened
 *     pairs in the HF order); vision_feature_layer = max(clip.vision.feature_layer)
 *     when present, else the file is taken as the legacy converter writes it
 *     (last layer already dropped: features after the last stored block, HF's
 *     -2); strategy "default"; projector GELU (erf) as transformers;
 *     processor: shortest_edge = crop = image_size, bicubic, 1/255,
 *     image_mean/std from the file. image_newline: v.image_newline or
 *     model.image_newline.
 *   idefics3: vision hidden_act gelu_pytorch_tanh (SigLIP), scale_factor from
 *     clip.vision.projector.scale_factor (default 2), processor size
 *     longest_edge = clip.vision.preproc_image_size (default 4 x image_size),
 *     max_image_size = image_size, LANCZOS, splitting on, 1/255, mean/std from
 *     the file; image_seq_len = (grid / scale_factor)^2.
 * Tower MLP fc1/fc2 are told apart by shape (the legacy converter names fc1
 * ffn_down, the new one ffn_up).
 */
#ifndef VC_LOADER_MMPROJ_H
#define VC_LOADER_MMPROJ_H

#include <jansson.h>
#include <stdbool.h>

#include "loader/tensors.h"

typedef struct {
    vc_tensor_set *weights;   /* HF-named tensors (malloc'd set owning the map) */
    json_t *config;           /* synthesized config.json */
    json_t *processor;        /* synthesized image processor settings */
    json_t *processor_root;   /* synthesized processor_config.json root */
    char projector[32];       /* clip.projector_type */
} vc_mmproj;

/* True if path is a GGUF file whose general.architecture is "clip". */
bool vc_mmproj_sniff(const char *path);
/* Reads and validates an mmproj file for a text model of width text_dim. On
 * failure nothing needs freeing. */
int vc_mmproj_open(const char *path, int text_dim, vc_mmproj *out);
/* Frees what vc_mmproj_open made (weights too, unless taken: set to NULL). */
void vc_mmproj_free(vc_mmproj *m);
/* Automatic pairing: the one mmproj GGUF (a "*mmproj*.gguf" file that sniffs
 * as clip) in the directory of text_gguf, or, of several, the one whose name
 * holds the text file's name less ".gguf" (mmproj-NAME.gguf beside
 * NAME.gguf). Returns a malloc'd path, or NULL when there is none; fails
 * (NULL with *ambiguous set) when there are several and not exactly one
 * names the text file. */
char *vc_mmproj_find_beside(const char *text_gguf, bool *ambiguous);

#endif
