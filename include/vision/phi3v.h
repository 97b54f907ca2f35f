/* phi3v.h - Phi-3-vision and Phi-3.5-vision (model_type "phi3_v").
 *
 * What the published processing_phi3_v.py and modeling_phi3_v.py
 * (Phi3VImageProcessor, Phi3ImageEmbedding) do, step by step:
 *
 *   HD transform: a portrait image is transposed first (and back at the end);
 *   ratio = w / h; scale = the largest s with s * ceil(s / ratio) <= num_crops;
 *   resize to (int(scale*336), int(new_w / ratio)) with PIL's bilinear filter;
 *   pad the height to a multiple of 336 with 255 (top int(pad/2), rest below);
 *   ToTensor + Normalize (CLIP mean and std); the global image is torch's
 *   bicubic interpolation of that normalized tensor to 336x336; the crops are
 *   its 336x336 tiles, row-major: tiles = [global, crops...].
 *
 *   Each tile goes through the CLIP tower (ViT-L/14-336 unless config.json
 *   describes another in "vision_config"); hidden_states[layer_idx] (-2)
 *   without the class token is a 24x24 grid, merged 2x2 into 12x12 rows of
 *   4*C channels ((dy*2+dx)*C + c). The sequence is: the crops tiled into a
 *   (12*h_crop) x (12*w_crop) grid, sub_GN after every row; glb_GN; the global
 *   tile's 12 rows of 12, sub_GN after each. img_projection
 *   (Linear -> GELU -> Linear) maps every row, separators included, to the
 *   language model's width. Token count:
 *       (h_crop*w_crop + 1)*144 + 1 + (h_crop + 1)*12.
 *
 *   Prompt: "<|image_k|>" placeholders (k = 1..n, each once); the text between
 *   them is tokenized chunk by chunk, each chunk with the tokenizer's special
 *   tokens (BOS), and each placeholder becomes the image's tokens. The
 *   processor writes -k there; vlmchat writes image_token_id = the tokenizer's
 *   size (one past its last token, never produced by tokenizing, and the same
 *   id for every image, so prompts compare as plain ids for KV-cache reuse).
 *   Image rows are taken in order, as the model's index_put fills them.
 */
#ifndef VC_VISION_PHI3V_H
#define VC_VISION_PHI3V_H

#include <jansson.h>
#include <stdbool.h>

#include "image/image.h"
#include "vision/vit.h"

#define VC_PHI3V_CROP 336

typedef struct {
    vc_vit vit;
    int feature_layer;          /* img_processor.layer_idx (-2) */
    int num_crops;              /* the processor's num_crops (hd_num) */
    float mean[3], std[3];
    int text_dim;
    vc_matrix proj1, proj2;     /* img_projection.0 (4C -> D) and .2 (D -> D) */
    const float *proj1_b, *proj2_b, *glb_gn, *sub_gn;
    float *owned;
} vc_phi3v;

/* The HD transform's geometry for a width x height image: the padded size
 * (both multiples of 336) and the crop grid. Fails (VC_EXIT_INPUT) for an
 * image the transform cannot resize (a side that would round to 0 pixels). */
int vc_phi3v_geometry(int num_crops, int width, int height, int *out_w, int *out_h, int *h_crop, int *w_crop);
/* Image tokens of a width x height image at num_crops, or -1 (see above). */
int vc_phi3v_count(int num_crops, int width, int height);

int vc_phi3v_load(vc_phi3v *m, json_t *cfg, json_t *proc, const vc_tensor_set *w, int text_dim);
void vc_phi3v_free(vc_phi3v *m);
/* The processor's pixel values without its zero padding crops:
 * (1 + h_crop*w_crop) x 3 x 336 x 336 floats, the global image first. */
int vc_phi3v_preprocess(const vc_phi3v *m, const vc_image *img, float **pixels, int *n_tiles);
/* The image's rows in the language model's space: n_tokens x text_dim. */
int vc_phi3v_encode(const vc_phi3v *m, const vc_image *img, float **embd, int *n_tokens);

#endif
