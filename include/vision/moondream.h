/* moondream.h - Moondream2 (vikhyatk/moondream2, revision 2025-06-21).
 *
 * As the reference code (github vikhyat/moondream 44146f1, moondream/torch)
 * computes it:
 *  - crops: a global 378x378 resize of the image, and up to max_crops 378x378
 *    crops at stride 266 of the image resized (aspect ignored, PIL LANCZOS)
 *    to tiles x 266 + 112 pixels, tiles from select_tiling;
 *  - a SigLIP-shaped encoder over every crop (fused qkv, GELU(tanh), post
 *    LayerNorm), the local crops' 27x27 grids stitched without their inner
 *    4-patch margins, adaptive-average-pooled to 27x27, concatenated with the
 *    global crop's features and projected (fc1, GELU(tanh), fc2): 729 rows;
 *  - the decoder sees BOS, the 729 rows (both ways), then token-level
 *    templates (include/vision/family.h's task_ids);
 *  - region heads: coordinates (x, y) and sizes decoded from the decoder's
 *    hidden state and encoded back as Fourier features.
 * Settings come from config.json's "config" object (MoondreamConfig.from_dict),
 * with config.py's defaults.
 */
#ifndef VC_VISION_MOONDREAM_H
#define VC_VISION_MOONDREAM_H

#include <jansson.h>
#include <stdint.h>

#include "model/llm.h"
#include "image/image.h"
#include "vision/vit.h"

#define VC_MD_MAX_TEMPLATE 16

typedef struct {
    int32_t ids[VC_MD_MAX_TEMPLATE];
    int n;
} vc_md_ids;

typedef struct {
    int enc_dim, patch, layers, ff, heads, crop, max_crops, margin, proj_inner, proj_out;
    int coord_feat, coord_out, size_feat, size_out, region_inner, region_dim;
    int32_t bos, eos, answer, coord, size;
    vc_md_ids caption[3];     /* short, normal, long */
    vc_md_ids query_pre, query_suf, detect_pre, detect_suf, point_pre, point_suf;

    vc_vit vit;
    vc_matrix proj1, proj2;
    const float *proj1_b, *proj2_b;
    vc_matrix coord_enc, coord_fc1, coord_fc2, size_enc, size_fc1, size_fc2;
    const float *coord_enc_b, *coord_fc1_b, *coord_fc2_b, *size_enc_b, *size_fc1_b, *size_fc2_b;
    const float *coord_freq, *size_freq;   /* coord_feat/2, and 2 x size_feat/2 */
    float *owned;
} vc_moondream;

/* The decoder's configuration from config.json (its "config" object). */
int vc_moondream_text_config(json_t *config, const char *origin, vc_llm_config *c);
/* select_tiling on the image less its margins: *th x *tw tiles. */
void vc_moondream_tiling(const vc_moondream *m, int width, int height, int *th, int *tw);
/* The crops as uint8 RGB (n x crop x crop x 3, malloc'd): global first. */
int vc_moondream_crops(const vc_moondream *m, const vc_image *img, uint8_t **rgb, int *n);

#endif
