/* vision.h - the image side of a multimodal model, whatever its family.
 *
 * A model directory whose config.json describes a vision-language model gets
 * a vc_vision: it turns an image into rows of input embeddings for the
 * language model, and says which placeholder token stands for them.
 */
#ifndef VC_MODEL_VISION_H
#define VC_MODEL_VISION_H

#include <jansson.h>

#include "image/image.h"
#include "loader/tensors.h"
#include "text/tokenizer.h"
#include "vision/idefics3.h"
#include "vision/llava_next.h"

typedef enum { VC_VISION_LLAVA_NEXT, VC_VISION_IDEFICS3 } vc_vision_kind;

typedef struct {
    vc_vision_kind kind;
    int32_t image_token_id;
    char image_token[64];     /* the placeholder token text, e.g. "<image>" */
    char prompt_text[80];     /* what a user message gets per image, e.g. "<image>\n" */
    union {
        vc_llava_next llava_next;
        vc_idefics3 idefics3;
    } u;
} vc_vision;

/* True if config.json's model_type is a vision-language model vlmchat knows. */
bool vc_vision_is_multimodal(json_t *config);
/* Loads the vision side of an HF model directory. */
int vc_vision_load(const char *dir, json_t *config, const vc_tensor_set *w, const vc_tokenizer *tok, int text_dim,
                   vc_vision **out);
/* Embeddings for one image: n_tokens x text_dim floats (malloc'd); rows and
 * cols get the tile grid where the family has one (else 0). */
int vc_vision_encode(const vc_vision *v, const vc_image *img, float **embd, int *n_tokens, int *rows, int *cols);
/* Image tokens a width x height image will take. */
int vc_vision_count(const vc_vision *v, int width, int height);
/* The prompt text that stands for one encoded image, as the reference
 * processor expands it (malloc'd). */
char *vc_vision_prompt(const vc_vision *v, int n_tokens, int rows, int cols);
void vc_vision_free(vc_vision *v);
/* Low memory: fewer tiles per image (Idefics3: no splitting, only the global
 * image; LLaVA-NeXT: only the smallest grid). Answers then differ from the
 * reference processor's full tiling. */
void vc_vision_fewer_tiles(vc_vision *v);

#endif
