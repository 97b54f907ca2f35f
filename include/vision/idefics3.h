/* idefics3.h - SmolVLM and SmolVLM2 (the Idefics3 architecture).
 *
 * The processor resizes an image so its longest edge is `size`, then up to
 * whole multiples of the tile size, and cuts it into tiles (row-major) plus
 * a global image (the whole image at tile size); a small image is a single
 * tile.  Each tile goes through a SigLIP tower (NaViT position ids, final
 * LayerNorm), a pixel shuffle that folds scale x scale neighbouring patches
 * into one token, and a linear projection.  In the prompt every tile is
 * <fake_token_around_image><row_r_col_c> followed by image_seq_len image
 * tokens, rows end with a newline, and the global image comes last.
 */
#ifndef VC_VISION_IDEFICS3_H
#define VC_VISION_IDEFICS3_H

#include <jansson.h>

#include "image/resize.h"
#include "vision/vit.h"

typedef struct {
    vc_vit vit;
    int scale;                 /* pixel shuffle factor */
    vc_matrix proj;            /* (hidden * scale^2) -> text_dim, no bias */
    int longest_edge, tile;    /* processor: size.longest_edge, max_image_size.longest_edge */
    bool do_resize, do_split;
    vc_resample resample;
    double rescale;
    float mean[3], std[3];
    int image_seq_len, text_dim;
} vc_idefics3;

int vc_idefics3_load(vc_idefics3 *m, json_t *config, json_t *processor, json_t *processor_root,
                     const vc_tensor_set *w, int text_dim);
void vc_idefics3_free(vc_idefics3 *m);
/* Tiles (row-major, then the global image) as n x 3 x tile x tile floats. */
int vc_idefics3_preprocess(const vc_idefics3 *m, const vc_image *img, float **pixels, int *n_tiles, int *rows,
                           int *cols);
/* Features of all tiles in order: n_tokens x text_dim (malloc'd). */
int vc_idefics3_encode(const vc_idefics3 *m, const vc_image *img, float **embd, int *n_tokens, int *rows, int *cols);
/* Tile grid for a width x height image (rows = cols = 0: a single tile). */
void vc_idefics3_grid(const vc_idefics3 *m, int width, int height, int *rows, int *cols);

#endif
