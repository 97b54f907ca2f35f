/* prompt.h - from a conversation (text and images) to the model's input.
 *
 * Shared by scripted mode, the REPL and the server: render the chat format,
 * expand each image placeholder to as many image tokens as the image takes
 * (as the reference processors do in the text), tokenize, and build input
 * embeddings in which image tokens take the image features' rows in order.
 */
#ifndef VC_MODEL_PROMPT_H
#define VC_MODEL_PROMPT_H

#include "model/model.h"

/* Loads and encodes an image file for the model (fails if the model takes no images). */
int vc_model_encode_image(const vc_model *m, const char *path, vc_image_embd *out);
/* Encodes an image already decoded. */
int vc_model_encode_pixels(const vc_model *m, const vc_image *img, vc_image_embd *out);

/* Token ids of a conversation. images[] are the encoded images of all
 * messages, in order; their count must match the messages' n_images. */
int vc_model_prompt_ids(const vc_model *m, const vc_chat_msg *msgs, size_t n, const vc_image_embd *images,
                        int n_images, bool add_generation_prompt, int32_t **ids, size_t *n_ids);
/* The same with per-message fields and tool schemas for the chat template
 * (vc_chat_render_tools; NULL: none). */
int vc_model_prompt_ids_tools(const vc_model *m, const vc_chat_msg *msgs, size_t n, json_t *const *fields,
                              const json_t *tools,
                              const vc_image_embd *images, int n_images, bool add_generation_prompt, int32_t **ids,
                              size_t *n_ids);
/* Token ids of a raw prompt (no chat template; the tokenizer's special
 * tokens are added) with n_images images. Where the text holds the model's
 * own placeholders (e.g. "<image>"), the images go there, in order, and their
 * count must equal n_images (VC_EXIT_INPUT otherwise); where it holds none,
 * each image's placeholder text as a chat message would write it (e.g.
 * "<image>\n") is put before the text, images in order. */
int vc_model_raw_prompt_ids(const vc_model *m, const char *text, const vc_image_embd *images, int n_images,
                            int32_t **ids, size_t *n_ids);

/* Token ids of a rendered prompt: each image token of the text expanded for
 * its image (images[] in order; the counts must match), tokenized with the
 * special tokens the chat format calls for (vc_chat_add_special). */
int vc_model_prompt_encode(const vc_model *m, const char *text, const vc_image_embd *images, int n_images,
                           int32_t **ids, size_t *n_ids);
/* Input embeddings for ids: token embeddings, with image tokens replaced by
 * the images' rows in order (n x dim floats, malloc'd). */
int vc_model_prompt_embd(const vc_model *m, const int32_t *ids, size_t n, const vc_image_embd *images, int n_images,
                         float **embd);

#endif
