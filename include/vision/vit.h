/* vit.h - the vision transformer behind CLIP and SigLIP image encoders.
 *
 * Patch embedding (a stride-p convolution, here a matrix over flattened
 * patches), an optional class token (CLIP), learned position embeddings, an
 * optional pre-LayerNorm (CLIP), pre-norm encoder layers with biased
 * attention and an MLP (quick_gelu for CLIP, gelu_tanh for SigLIP), and a
 * post-LayerNorm.  vc_vit_encode returns the hidden states after a chosen
 * layer, as transformers' hidden_states[i] (0 = the embeddings), and stops
 * there: layers past the one a model reads are never computed.
 */
#ifndef VC_VISION_VIT_H
#define VC_VISION_VIT_H

#include <jansson.h>
#include <stdbool.h>

#include "core/act.h"
#include "core/kernels.h"
#include "loader/tensors.h"

typedef struct {
    int hidden, ffn, layers, heads, image_size, patch_size;
    float norm_eps;
    vc_act act;
    bool class_token, pre_norm;
    bool bucketed_positions;   /* Idefics3/NaViT: position ids from fractional coordinates */
} vc_vit_config;

typedef struct {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b, *q_b, *k_b, *v_b, *o_b, *fc1_b, *fc2_b;
    vc_matrix q, k, v, o, fc1, fc2;
} vc_vit_layer;

typedef struct {
    vc_vit_config cfg;
    vc_matrix patch;             /* hidden rows x (3 * p * p) */
    const float *patch_b, *class_emb, *pos_emb, *pre_w, *pre_b, *post_w, *post_b;
    vc_vit_layer *layers;
    float *floats;               /* owned copies of all small vectors */
    float *patch_owned;          /* the patch weights, reordered from MLX's layout */
    void **int8_owned;           /* --int8-dot: the layers' weights as interleaved Q8_0 */
    int n_int8_owned;
} vc_vit;

/* Binds tensors under `prefix` (e.g. "vision_tower.vision_model."):
 * embeddings.*, pre_layrnorm.*, encoder.layers.N.*, post_layernorm.*. */
int vc_vit_bind(vc_vit *v, const vc_tensor_set *w, const char *prefix, const vc_vit_config *cfg);
void vc_vit_free(vc_vit *v);
/* A CLIP tower's settings from a CLIPVisionConfig object (vision_config),
 * its absent fields as CLIP ViT-L/14-336's (1024 wide, 24 layers of 16
 * heads, MLP 4096, 336-pixel images in 14-pixel patches, quick_gelu,
 * LayerNorm eps 1e-5); class token and pre-LayerNorm on. */
int vc_vit_read_clip_config(json_t *vc, vc_vit_config *c);
/* Tokens per image: patches, plus one for the class token. */
int vc_vit_tokens(const vc_vit *v);
/* Encodes one image (3 x S x S floats, already normalized) and writes
 * hidden_states[layer] (negative counts from the end, as in Python) to out
 * (tokens x hidden). post_norm applies the final LayerNorm to it (fails if the
 * tower was bound without one: post_layernorm.* is optional at bind). */
int vc_vit_encode(const vc_vit *v, const float *pixels, int layer, bool post_norm, float *out);
/* vc_vit_encode for n images laid end to end (n x 3 x S x S floats): out
 * gets n x tokens x hidden, each image's rows as vc_vit_encode writes them
 * (the same arithmetic: the images' tokens share each matrix product, a few
 * thousand tokens at a time, so the weights are read once for all of them). */
int vc_vit_encode_batch(const vc_vit *v, const float *pixels, int n, int layer, bool post_norm, float *out);

/* LayerNorm over rows of n floats (shared with projectors). */
void vc_layernorm(float *out, const float *x, const float *w, const float *b, int n, float eps);
/* y = W x + b over `tokens` rows (b may be NULL). */
void vc_linear(const vc_matrix *w, const float *b, const float *x, int tokens, float *y);
/* y[t][r] += b[r] for `tokens` rows of `width` (nothing where b is NULL),
 * on the thread pool when there is enough of it; not from inside a pool job. */
void vc_add_bias(float *y, const float *b, int tokens, int64_t width);

#endif
