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
    return vc_vision_encode(m->vision, img, out);
}

int vc_model_prompt_ids(const vc_model *m, const vc_chat_msg *msgs, size_t n, const vc_image_embd *images,
                        int n_images, bool gen, int32_t **ids, size_t *n_ids)
{
    return vc_model_prompt_ids_tools(m, msgs, n, NULL, NULL, images, n_images, gen, ids, n_ids);
}

int vc_model_prompt_ids_tools(const vc_model *m, const vc_chat_msg *msgs, size_t n, json_t *const *fields,
                              const json_t *tools,
                              const vc_image_embd *images, int n_images, bool gen, int32_t **ids, size_t *n_ids)
{
    if (n_images > 0 && !m->vision)
        return vc_fail_code(VC_EXIT_USAGE, "%s: this model takes no images", m->path);
    if (m->vision && m->vision->image_ids_by_content) {   /* the last question about the latest image */
        size_t u = n;
        while (u > 0 && strcmp(msgs[u - 1].role, "user") != 0)
            u--;
        if (u == 0)
            return vc_fail_code(VC_EXIT_INPUT, "no user message to answer");
        msgs += u - 1;
        n = 1;
        images += n_images > 0 ? n_images - 1 : 0;
        n_images = n_images > 0 ? 1 : 0;
    }
    char *text = vc_chat_render_tools(&m->chat, msgs, n, fields, tools, gen);
    if (!text)
        return -1;
    int rc = vc_model_prompt_encode(m, text, images, n_images, ids, n_ids);
    free(text);
    return rc;
}

int vc_model_raw_prompt_ids(const vc_model *m, const char *text, const vc_image_embd *images, int n_images,
                            int32_t **ids, size_t *n_ids)
{
    if (n_images == 0)
        return vc_tokenizer_encode(m->tok, text, strlen(text), true, ids, n_ids);
    if (!m->vision)
        return vc_fail_code(VC_EXIT_USAGE, "%s: this model takes no images", m->path);
    int found = vc_vision_count_placeholders(m->vision, text);
    if (found > 0 && found != n_images)
        return vc_fail_code(VC_EXIT_INPUT, "%d images but %d image placeholders ('%s') in the prompt", n_images,
                            found, m->vision->image_token);
    if (found > 0)
        return vc_vision_tokenize(m->vision, text, true, images, n_images, ids, n_ids);
    vc_buf b = { 0 };
    for (int i = 0; i < n_images; i++)
        vc_buf_puts(&b, m->vision->prompt_text);
    vc_buf_puts(&b, text);
    char *full = vc_buf_take(&b, NULL);
    if (!full)
        return -1;
    int rc = vc_vision_tokenize(m->vision, full, true, images, n_images, ids, n_ids);
    free(full);
    return rc;
}

int vc_model_prompt_encode(const vc_model *m, const char *text, const vc_image_embd *images, int n_images,
                           int32_t **ids, size_t *n_ids)
{
    if (n_images > 0 && !m->vision)
        return vc_fail_code(VC_EXIT_USAGE, "%s: this model takes no images", m->path);
    bool special = vc_chat_add_special(&m->chat, text);
    int rc = m->vision ? vc_vision_tokenize(m->vision, text, special, images, n_images, ids, n_ids)
                       : vc_tokenizer_encode(m->tok, text, strlen(text), special, ids, n_ids);
    return rc;
}

int vc_model_prompt_embd(const vc_model *m, const int32_t *ids, size_t n, const vc_image_embd *images, int n_images,
                         float **embd)
{
    int dim = m->llm.cfg.dim;
    bool by_content = m->vision && m->vision->image_ids_by_content;
    if (by_content && n_images > 1) {   /* the latest image is the one in the prompt */
        images += n_images - 1;
        n_images = 1;
    }
    float *out = vc_malloc(n * (size_t)dim * sizeof *out);
    if (!out)
        return -1;
    int k = 0, row = 0, rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        float *dst = out + i * (size_t)dim;
        if (m->vision && (by_content ? ids[i] < 0 : ids[i] == m->vision->image_token_id)) {
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
