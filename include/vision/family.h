/* family.h - the image side of a multimodal model: one ops table per family.
 *
 * A vision-language family (LLaVA-NeXT, Idefics3/SmolVLM, ...) is one file in
 * src/vision/ that fills a vc_vision_family and one row in the table of
 * src/vision/family.c.  Everything outside src/vision/ goes through the
 * functions below and never names a family:
 *
 *   image --preprocess--> tiles of pixels --encode--> rows of embeddings in the
 *   language model's space, and the prompt text (or token ids) that stands
 *   for them, as the family's reference processor writes it.
 *
 * A family's state is its own struct; vc_vision keeps it behind a pointer.
 */
#ifndef VC_VISION_FAMILY_H
#define VC_VISION_FAMILY_H

#include <jansson.h>
#include <stdbool.h>

#include "image/image.h"
#include "loader/tensors.h"
#include "model/llm.h"
#include "text/tokenizer.h"

/* One encoded image: its feature rows in the language model's space. */
typedef struct {
    float *embd;        /* n_tokens x dim */
    int n_tokens;
    int rows, cols;     /* tile grid, for families whose prompt spells it out (else 0) */
} vc_image_embd;

void vc_image_embd_free(vc_image_embd *e);

/* What a family loads from: the HF directory's files, already parsed. */
typedef struct {
    const char *dir;              /* for messages and extra files */
    json_t *config;               /* config.json */
    json_t *processor;            /* the image processor settings */
    json_t *processor_root;       /* processor_config.json, or NULL */
    const vc_tensor_set *weights;
    const vc_tokenizer *tok;
    int text_dim;                 /* the language model's width */
} vc_vision_source;

typedef struct vc_vision vc_vision;

typedef struct vc_vision_family {
    const char *name;                  /* e.g. "llava_next" */
    const char *const *model_types;    /* config.json model_type values it takes, NULL-terminated */
    size_t state_size;                 /* bytes of the family's state (zeroed before load) */
    /* How a chat message writes one image when the template itself does not
     * (printf format of the placeholder token text), e.g. "%s\n". */
    const char *message_image_fmt;
    /* True if reference pixel values put every image's tiles in one row
     * (Idefics3's (1, tiles, ...)) rather than one padded row per image. */
    bool pixels_packed;
    /* True if images are numbered in the prompt (Phi-3-V's "<|image_1|>\n"):
     * message_image_fmt then holds one %d, the image's 1-based number in the
     * conversation, and is not given the token text. Such a family has no
     * placeholder token in the vocabulary: its load sets image_token_id. */
    bool numbered_images;

    /* Fills state from src; may set v->image_token_id / v->image_token where
     * the family's placeholder is not config.json's image_token_index. */
    int (*load)(void *state, const vc_vision_source *src, vc_vision *v);
    void (*free)(void *state);
    /* The processor's pixel values: n_tiles x 3 x S x S floats (malloc'd). */
    int (*preprocess)(const void *state, const vc_image *img, float **pixels, int *n_tiles);
    /* Features of one image, n_tokens x text_dim (malloc'd into out->embd). */
    int (*encode)(const void *state, const vc_image *img, vc_image_embd *out);
    /* Image tokens a width x height image takes. */
    int (*count)(const void *state, int width, int height);
    /* The prompt text that stands for one encoded image (malloc'd): what the
     * placeholder in the rendered prompt is replaced with. May be NULL for a
     * family with its own tokenize. */
    char *(*expand)(const vc_vision *v, const vc_image_embd *e);
    /* Optional: token ids of a rendered prompt with its images, where the
     * family does not tokenize the expanded text as one piece. NULL: the
     * placeholders are replaced by expand() and the text is tokenized whole. */
    int (*tokenize)(const vc_vision *v, const char *text, bool special, const vc_image_embd *images, int n_images,
                    int32_t **ids, size_t *n_ids);
    /* Low memory: fewer tiles per image (answers then differ from the reference). */
    void (*fewer_tiles)(void *state);

    /* Optional (NULL/false for the families whose decoder is a transformers
     * text_config and whose settings sit in processor files): */
    /* Settings come from config.json alone, and load sets v->image_token_id
     * itself (a value outside the vocabulary where prompts are token ids). */
    bool own_settings;
    /* The decoder's configuration and tensor names, from config.json. */
    int (*text_config)(json_t *config, const char *origin, vc_llm_config *c);
    const vc_llm_names *text_names;
    /* Token ids of a skill's prompt after the image prefix: task "caption"
     * (arg "short", "normal" or "long"), "query" (arg the question),
     * "detect" or "point" (arg the object). NULL: the family has no skills. */
    int (*task_ids)(const vc_vision *v, const char *task, const char *arg, int32_t **ids, size_t *n_ids);
    /* Region heads on a decoder hidden state (text_dim floats): a coordinate
     * in [0, 1), a size (w, h); and their encodings back to an input row. */
    int (*coord_decode)(const void *state, const float *hidden, float *value);
    int (*coord_encode)(const void *state, float value, float *row);
    int (*size_decode)(const void *state, const float *hidden, float *w, float *h);
    int (*size_encode)(const void *state, float w, float h, float *row);
} vc_vision_family;

struct vc_vision {
    const vc_vision_family *family;
    const vc_tokenizer *tok;
    int32_t image_token_id;    /* the id whose positions take image rows */
    char image_token[64];      /* the placeholder token text, e.g. "<image>" */
    char prompt_text[80];      /* what a user message gets per image, e.g. "<image>\n" */
    void *state;
    vc_tensor_set *owned_weights; /* weights the vision side owns (an mmproj file's), or NULL */
    int32_t suppress_after_first;  /* a token masked at every step after the first (-1: none) */
    /* Skill families (task_ids): a chat prompt is the last user message about
     * the latest image, and its image positions carry negative ids derived
     * from the image's content (every id < 0 is an image row), so that caches
     * comparing ids tell images apart. */
    bool image_ids_by_content;
    int32_t bos_id, eos_id;        /* skills: the prefix's first token and the end of text */
};

/* True if config.json's model_type belongs to a family vlmchat knows. */
bool vc_vision_is_multimodal(json_t *config);
/* The family of config.json's model_type, or NULL. */
const vc_vision_family *vc_vision_family_of(json_t *config);
/* Loads the vision side of an HF model directory (processor settings from
 * processor_config.json or preprocessor_config.json). */
int vc_vision_load(const char *dir, json_t *config, const vc_tensor_set *w, const vc_tokenizer *tok, int text_dim,
                   vc_vision **out);
/* Loads from settings already read (an mmproj file's, include/loader/mmproj.h):
 * config / processor / processor_root as vc_vision_source has them, label for
 * messages. Takes over w (a malloc'd set) whatever the outcome: the vision
 * side frees it. */
int vc_vision_load_owned(const char *label, json_t *config, json_t *processor, json_t *processor_root,
                         vc_tensor_set *w, const vc_tokenizer *tok, int text_dim, vc_vision **out);
/* As vc_vision_load_owned, but binding weights that stay the
 * caller's (a single-file GGUF's, include/loader/gguf_phi3v.h): w must
 * outlive the vision side. */
int vc_vision_load_settings(const char *label, json_t *config, json_t *processor, json_t *processor_root,
                            const vc_tensor_set *w, const vc_tokenizer *tok, int text_dim, vc_vision **out);
void vc_vision_free(vc_vision *v);

/* The family's operations, for any loaded vc_vision (see vc_vision_family). */
int vc_vision_preprocess(const vc_vision *v, const vc_image *img, float **pixels, int *n_tiles);
int vc_vision_encode(const vc_vision *v, const vc_image *img, vc_image_embd *out);
int vc_vision_count(const vc_vision *v, int width, int height);
void vc_vision_fewer_tiles(vc_vision *v);
/* Token ids of a rendered prompt holding one placeholder per image, in
 * order; fails (VC_EXIT_INPUT) when placeholders and images disagree. */
int vc_vision_tokenize(const vc_vision *v, const char *text, bool special, const vc_image_embd *images, int n_images,
                       int32_t **ids, size_t *n_ids);

/* How many times the model's own placeholder (v->image_token, e.g. "<image>")
 * occurs in text. */
int vc_vision_count_placeholders(const vc_vision *v, const char *text);

/* For family files: repeats s n times into a new string (malloc'd). */
char *vc_vision_repeat(const char *s, int n);

#endif
