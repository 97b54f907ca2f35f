/* llava_next.h - LLaVA-1.6 (llava_next): anyres image tiling over a CLIP
 * tower, a two-layer projector, and the unpadded, newline-separated layout
 * of image features, as transformers' LlavaNext processor and model do it.
 *
 * An image becomes: the whole image resized to the tower's size, plus the
 * tiles of the image resized (aspect kept) and padded to the best of the
 * grid pinpoints.  Features of the tiles are stitched back into one grid,
 * the padding rows/columns are cut away again, and image_newline ends each
 * row.  The token count depends only on the image size (vc_llava_next_count).
 */
#ifndef VC_VISION_LLAVA_NEXT_H
#define VC_VISION_LLAVA_NEXT_H

#include <jansson.h>

#include "image/resize.h"
#include "vision/vit.h"

#define VC_MAX_PINPOINTS 64
#define VC_MAX_FEATURE_LAYERS 8

typedef struct {
    vc_vit vit;
    /* vision_feature_layer: one hidden state, or several concatenated per token */
    int feature_layers[VC_MAX_FEATURE_LAYERS];
    int n_feature_layers;
    bool drop_cls;                 /* vision_feature_select_strategy "default" (transformers packs no other) */
    vc_matrix proj1, proj2;
    const float *proj1_b, *proj2_b, *newline;
    vc_act proj_act;
    int pinpoints[VC_MAX_PINPOINTS][2];   /* (height, width) */
    int n_pinpoints;
    /* image processor settings */
    int shortest_edge, crop_h, crop_w;
    int size_h, size_w;            /* size {height, width} instead of shortest_edge (0: not given) */
    vc_resample resample;
    double rescale;
    float mean[3], std[3];
    int text_dim;
    float *owned;
} vc_llava_next;

/* Reads config.json (root object) and the image processor settings, binds
 * tensors (Hub and transformers-5 names). */
int vc_llava_next_load(vc_llava_next *m, json_t *config, json_t *processor, const vc_tensor_set *w, int text_dim);
void vc_llava_next_free(vc_llava_next *m);

/* The processor's pixel values: n_tiles x 3 x S x S floats (malloc'd),
 * the base image first. */
int vc_llava_next_preprocess(const vc_llava_next *m, const vc_image *img, float **pixels, int *n_tiles);
/* Image features in the language model's space: n_tokens x text_dim (malloc'd). */
int vc_llava_next_encode(const vc_llava_next *m, const vc_image *img, float **embd, int *n_tokens);
/* The number of image tokens for a width x height image (the processor's formula). */
int vc_llava_next_count(const vc_llava_next *m, int width, int height);

#endif
