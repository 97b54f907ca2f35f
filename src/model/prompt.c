/* prompt.c - see include/model/prompt.h */
#include "model/prompt.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/common.h"

int vc_model_encode_image(const vc_model *m, const char *path, vc_image_embd *out)
{
    memset(out, 0, sizeof *out);
    if (!m->vision)
        return vc_fail_code(VC_EXIT_USAGE, "%s: this model takes no images", m->path);
    vc_image img;
    if (vc_image_load(path, NULL, &img) != 0)
        return -1;
    int rc = vc_model_encode_pixels(m, &img, out);
    vc_image_free(&img);
    return rc;
}

int vc_model_encode_pixels(const vc_model *m, const vc_image *img, vc_image_embd *out)
{
    memset(out, 0, sizeof *out);
    if (!m->vision)
        return vc_fail_code(VC_EXIT_USAGE, "%s: this model takes no images", m->path);
    return vc_vision_encode(m->vision, img, &out->embd, &out->n_tokens, &out->rows, &out->cols);
}

void vc_image_embd_free(vc_image_embd *e)
{
    free(e->embd);
    memset(e, 0, sizeof *e);
}

/* Replaces the k-th occurrence of the image token with the k-th image's
 * expansion (its image tokens, and its layout tokens where the family has them). */
static char *expand_images(const vc_vision *v, const char *text, const vc_image_embd *images, int n_images)
{
    const char *token = v->image_token;
    vc_buf b = { 0 };
    size_t tl = strlen(token);
    int k = 0;
    for (const char *p = text; *p;) {
        const char *hit = tl ? strstr(p, token) : NULL;
        if (!hit) {
            vc_buf_puts(&b, p);
            break;
        }
        vc_buf_append(&b, p, (size_t)(hit - p));
        if (k >= n_images) {
            vc_buf_free(&b);
            vc_fail_code(VC_EXIT_INPUT, "the prompt has more image placeholders than images");
            return NULL;
        }
        char *expansion = vc_vision_prompt(v, images[k].n_tokens, images[k].rows, images[k].cols);
        if (!expansion) {
            vc_buf_free(&b);
            return NULL;
        }
        vc_buf_puts(&b, expansion);
        free(expansion);
        k++;
        p = hit + tl;
    }
    if (k != n_images) {
        vc_buf_free(&b);
        vc_fail_code(VC_EXIT_INPUT, "%d images but %d image placeholders in the prompt", n_images, k);
        return NULL;
    }
    return vc_buf_take(&b, NULL);
}

int vc_model_prompt_ids(const vc_model *m, const vc_chat_msg *msgs, size_t n, const vc_image_embd *images,
                        int n_images, bool gen, int32_t **ids, size_t *n_ids)
{
    if (n_images > 0 && !m->vision)
        return vc_fail_code(VC_EXIT_USAGE, "%s: this model takes no images", m->path);
    char *text = vc_chat_render(&m->chat, msgs, n, gen);
    if (!text)
        return -1;
    int rc = vc_model_prompt_encode(m, text, images, n_images, ids, n_ids);
    free(text);
    return rc;
}

int vc_model_prompt_encode(const vc_model *m, const char *text, const vc_image_embd *images, int n_images,
                           int32_t **ids, size_t *n_ids)
{
    if (n_images > 0 && !m->vision)
        return vc_fail_code(VC_EXIT_USAGE, "%s: this model takes no images", m->path);
    bool special = vc_chat_add_special(&m->chat, text);
    char *expanded = NULL;
    if (m->vision && !(expanded = expand_images(m->vision, text, images, n_images)))
        return -1;
    const char *t = expanded ? expanded : text;
    int rc = vc_tokenizer_encode(m->tok, t, strlen(t), special, ids, n_ids);
    free(expanded);
    return rc;
}

int vc_model_prompt_embd(const vc_model *m, const int32_t *ids, size_t n, const vc_image_embd *images, int n_images,
                         float **embd)
{
    int dim = m->llm.cfg.dim;
    float *out = vc_malloc(n * (size_t)dim * sizeof *out);
    if (!out)
        return -1;
    int k = 0, row = 0, rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        float *dst = out + i * (size_t)dim;
        if (m->vision && ids[i] == m->vision->image_token_id) {
            while (k < n_images && row >= images[k].n_tokens)
                k++, row = 0;
            if (k >= n_images) {
                rc = vc_fail_code(VC_EXIT_INPUT, "more image tokens in the prompt than image features");
                break;
            }
            memcpy(dst, images[k].embd + (size_t)row * dim, (size_t)dim * sizeof *dst);
            row++;
        } else {
            rc = vc_llm_embed(&m->llm, ids[i], dst);
        }
    }
    if (rc == 0 && n_images > 0 && (k != n_images - 1 || row != images[n_images - 1].n_tokens))
        rc = vc_fail_code(VC_EXIT_INPUT, "image tokens in the prompt do not match the images' features");
    if (rc != 0) {
        free(out);
        return -1;
    }
    *embd = out;
    return 0;
}
