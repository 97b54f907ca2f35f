/* vision.c - see include/model/vision.h */
#include "model/vision.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/common.h"

bool vc_vision_is_multimodal(json_t *config)
{
    const char *type = json_string_value(json_object_get(config, "model_type"));
    return type && strcmp(type, "llava_next") == 0;
}

/* The image processor settings: transformers 5 nests them in
 * processor_config.json, older checkpoints have preprocessor_config.json. */
static json_t *image_processor_config(const char *dir)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/processor_config.json", dir);
    if (stat(path, &st) == 0) {
        json_t *p = json_load_file(path, 0, NULL);
        json_t *ip = json_incref(json_object_get(p, "image_processor"));
        json_decref(p);
        if (ip)
            return ip;
    }
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    json_error_t err;
    json_t *p = json_load_file(path, 0, &err);
    if (!p)
        vc_fail_code(VC_EXIT_MODEL, "%s: missing or invalid (%s)", path, err.text);
    return p;
}

int vc_vision_load(const char *dir, json_t *config, const vc_tensor_set *w, const vc_tokenizer *tok, int text_dim,
                   vc_vision **out)
{
    vc_vision *v = vc_calloc(1, sizeof *v);
    json_t *proc = v ? image_processor_config(dir) : NULL;
    if (!v || !proc) {
        free(v);
        return -1;
    }
    v->kind = VC_VISION_LLAVA_NEXT;
    json_t *id = json_object_get(config, "image_token_index");
    if (!json_is_integer(id))
        id = json_object_get(config, "image_token_id");
    v->image_token_id = json_is_integer(id) ? (int32_t)json_integer_value(id) : vc_tokenizer_find(tok, "<image>");
    const char *piece = vc_tokenizer_piece(tok, v->image_token_id);
    int rc = 0;
    if (!piece || !*piece || strlen(piece) >= sizeof v->image_token)
        rc = vc_fail_code(VC_EXIT_MODEL, "%s: image token %d is not in the tokenizer", dir, v->image_token_id);
    if (rc == 0) {
        snprintf(v->image_token, sizeof v->image_token, "%s", piece);
        snprintf(v->prompt_text, sizeof v->prompt_text, "%s\n", piece);
        rc = vc_llava_next_load(&v->u.llava_next, config, proc, w, text_dim);
    }
    json_decref(proc);
    if (rc != 0) {
        vc_fail_ctx("%s", dir);
        vc_vision_free(v);
        return -1;
    }
    *out = v;
    return 0;
}

int vc_vision_encode(const vc_vision *v, const vc_image *img, float **embd, int *n_tokens)
{
    return vc_llava_next_encode(&v->u.llava_next, img, embd, n_tokens);
}

int vc_vision_count(const vc_vision *v, int width, int height)
{
    return vc_llava_next_count(&v->u.llava_next, width, height);
}

void vc_vision_free(vc_vision *v)
{
    if (!v)
        return;
    vc_llava_next_free(&v->u.llava_next);
    free(v);
}
