/* family.c - see include/vision/family.h: the table of families and what
 * they share (processor settings, the placeholder token, prompt expansion). */
#include "vision/family.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/buf.h"
#include "core/common.h"
#include "core/json.h"

extern const vc_vision_family vc_family_llava_next, vc_family_idefics3, vc_family_phi3v, vc_family_moondream;

/* Adding a family: its file in src/vision/ and one row here. */
static const vc_vision_family *const families[] = { &vc_family_llava_next, &vc_family_idefics3, &vc_family_phi3v,
                                                    &vc_family_moondream };

const vc_vision_family *vc_vision_family_of(json_t *config)
{
    const char *type = json_string_value(json_object_get(config, "model_type"));
    for (size_t i = 0; type && i < sizeof families / sizeof *families; i++)
        for (const char *const *t = families[i]->model_types; *t; t++)
            if (strcmp(type, *t) == 0)
                return families[i];
    return NULL;
}

bool vc_vision_is_multimodal(json_t *config) { return vc_vision_family_of(config) != NULL; }

void vc_image_embd_free(vc_image_embd *e)
{
    free(e->embd);
    memset(e, 0, sizeof *e);
}

/* The processor settings: transformers 5 writes processor_config.json with
 * the image processor nested in it; older checkpoints have
 * preprocessor_config.json (image processor) beside processor_config.json. */
static json_t *load_optional(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0 ? json_load_file(path, 0, NULL) : NULL;
}

static json_t *image_processor_config(const char *dir, json_t *root)
{
    json_t *ip = json_incref(json_object_get(root, "image_processor"));
    if (ip)
        return ip;
    ip = load_optional(dir, "preprocessor_config.json");
    if (!ip)
        vc_fail_code(VC_EXIT_MODEL, "%s: no image processor settings (processor_config.json or "
                     "preprocessor_config.json)", dir);
    return ip;
}

/* config.json's image_token_index (or image_token_id), else "<image>". */
static int placeholder_token(vc_vision *v, json_t *config, const char *dir)
{
    const char *key = vc_json_has(config, "image_token_index") ? "image_token_index" : "image_token_id";
    int id;
    if (vc_json_get_int(config, key, 0, INT32_MAX, -1, &id) != 0)
        return vc_fail_ctx("%s", dir);
    v->image_token_id = id >= 0 ? id : vc_tokenizer_find(v->tok, "<image>");
    const char *piece = vc_tokenizer_piece(v->tok, v->image_token_id);
    if (!piece || !*piece || strlen(piece) >= sizeof v->image_token)
        return vc_fail_code(VC_EXIT_MODEL, "%s: image token %d is not in the tokenizer", dir, v->image_token_id);
    snprintf(v->image_token, sizeof v->image_token, "%s", piece);
    return 0;
}

/* Everything a family loads from, already read: the HF directory's files or
 * what an mmproj file stands for. */
static int load_source(const vc_vision_family *f, const vc_vision_source *src, vc_vision **out)
{
    vc_vision *v = vc_calloc(1, sizeof *v);
    void *state = v ? vc_calloc(1, f->state_size) : NULL;
    if (!state) {
        free(v);
        return -1;
    }
    v->family = f;
    v->tok = src->tok;
    v->state = state;
    v->suppress_after_first = v->bos_id = v->eos_id = -1;
    /* numbered placeholders and families with their own prompt settings name no placeholder token */
    int rc = f->numbered_images || f->own_settings ? 0 : placeholder_token(v, src->config, src->dir);
    if (rc == 0)
        rc = f->load(state, src, v);
    if (rc == 0 && f->numbered_images)
        snprintf(v->prompt_text, sizeof v->prompt_text, "%s", f->message_image_fmt);
    else if (rc == 0)
        snprintf(v->prompt_text, sizeof v->prompt_text, f->message_image_fmt, v->image_token);
    if (rc != 0) {
        vc_fail_ctx("%s", src->dir);
        vc_vision_free(v);
        return -1;
    }
    *out = v;
    return 0;
}

int vc_vision_load(const char *dir, json_t *config, const vc_tensor_set *w, const vc_tokenizer *tok, int text_dim,
                   vc_vision **out)
{
    const vc_vision_family *f = vc_vision_family_of(config);
    if (!f)
        return vc_fail_code(VC_EXIT_MODEL, "%s: not a vision-language model vlmchat knows", dir);
    /* a family whose settings are all in config.json reads no processor files */
    json_t *root = f->own_settings ? NULL : load_optional(dir, "processor_config.json");
    json_t *proc = f->own_settings ? json_object() : image_processor_config(dir, root);
    int rc = -1;
    if (proc) {
        vc_vision_source src = { dir, config, proc, root, w, tok, text_dim };
        rc = load_source(f, &src, out);
    }
    json_decref(proc);
    json_decref(root);
    return rc;
}

int vc_vision_load_settings(const char *label, json_t *config, json_t *processor, json_t *processor_root,
                            const vc_tensor_set *w, const vc_tokenizer *tok, int text_dim, vc_vision **out)
{
    const vc_vision_family *f = vc_vision_family_of(config);
    if (!f)
        return vc_fail_code(VC_EXIT_MODEL, "%s: not a vision-language model vlmchat knows", label);
    vc_vision_source src = { label, config, processor, processor_root, w, tok, text_dim };
    return load_source(f, &src, out);
}

int vc_vision_load_owned(const char *label, json_t *config, json_t *processor, json_t *processor_root,
                         vc_tensor_set *w, const vc_tokenizer *tok, int text_dim, vc_vision **out)
{
    int rc = vc_vision_load_settings(label, config, processor, processor_root, w, tok, text_dim, out);
    if (rc == 0) {
        (*out)->owned_weights = w;
    } else {
        vc_tensors_free(w);
        free(w);
    }
    return rc;
}

void vc_vision_free(vc_vision *v)
{
    if (!v)
        return;
    if (v->state)
        v->family->free(v->state);
    free(v->state);
    if (v->owned_weights) {
        vc_tensors_free(v->owned_weights);
        free(v->owned_weights);
    }
    free(v);
}

int vc_vision_preprocess(const vc_vision *v, const vc_image *img, float **pixels, int *n_tiles)
{
    return v->family->preprocess(v->state, img, pixels, n_tiles);
}

int vc_vision_encode(const vc_vision *v, const vc_image *img, vc_image_embd *out)
{
    memset(out, 0, sizeof *out);
    return v->family->encode(v->state, img, out);
}

int vc_vision_count(const vc_vision *v, int width, int height) { return v->family->count(v->state, width, height); }

void vc_vision_fewer_tiles(vc_vision *v) { v->family->fewer_tiles(v->state); }

int vc_vision_count_placeholders(const vc_vision *v, const char *text)
{
    size_t tl = strlen(v->image_token);
    int n = 0;
    for (const char *p = text; tl && (p = strstr(p, v->image_token)); p += tl)
        n++;
    return n;
}

char *vc_vision_repeat(const char *s, int n)
{
    if (n <= 0)
        return vc_strdup("");
    vc_buf b = { 0 };
    for (int i = 0; i < n; i++)
        vc_buf_puts(&b, s);
    return vc_buf_take(&b, NULL);
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
        char *expansion = v->family->expand ? v->family->expand(v, &images[k]) : NULL;
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

int vc_vision_tokenize(const vc_vision *v, const char *text, bool special, const vc_image_embd *images, int n_images,
                       int32_t **ids, size_t *n_ids)
{
    if (v->family->tokenize)
        return v->family->tokenize(v, text, special, images, n_images, ids, n_ids);
    char *expanded = expand_images(v, text, images, n_images);
    if (!expanded)
        return -1;
    int rc = vc_tokenizer_encode(v->tok, expanded, strlen(expanded), special, ids, n_ids);
    free(expanded);
    return rc;
}
