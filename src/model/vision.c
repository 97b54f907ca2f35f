/* vision.c - see include/model/vision.h */
#include "model/vision.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/buf.h"
#include "core/common.h"

static int kind_of(json_t *config)
{
    const char *type = json_string_value(json_object_get(config, "model_type"));
    if (!type)
        return -1;
    if (strcmp(type, "llava_next") == 0)
        return VC_VISION_LLAVA_NEXT;
    if (strcmp(type, "idefics3") == 0 || strcmp(type, "smolvlm") == 0)
        return VC_VISION_IDEFICS3;
    return -1;
}

bool vc_vision_is_multimodal(json_t *config) { return kind_of(config) >= 0; }

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

int vc_vision_load(const char *dir, json_t *config, const vc_tensor_set *w, const vc_tokenizer *tok, int text_dim,
                   vc_vision **out)
{
    vc_vision *v = vc_calloc(1, sizeof *v);
    json_t *root = load_optional(dir, "processor_config.json");
    json_t *proc = v ? image_processor_config(dir, root) : NULL;
    if (!v || !proc) {
        free(v);
        json_decref(root);
        return -1;
    }
    v->kind = (vc_vision_kind)kind_of(config);
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
        /* LLaVA's template writes "<image>\n" per image, Idefics3's "<image>" */
        snprintf(v->prompt_text, sizeof v->prompt_text, v->kind == VC_VISION_LLAVA_NEXT ? "%s\n" : "%s", piece);
        rc = v->kind == VC_VISION_LLAVA_NEXT ? vc_llava_next_load(&v->u.llava_next, config, proc, w, text_dim)
                                             : vc_idefics3_load(&v->u.idefics3, config, proc, root, w, text_dim);
    }
    json_decref(proc);
    json_decref(root);
    if (rc != 0) {
        vc_fail_ctx("%s", dir);
        vc_vision_free(v);
        return -1;
    }
    *out = v;
    return 0;
}

int vc_vision_encode(const vc_vision *v, const vc_image *img, float **embd, int *n_tokens, int *rows, int *cols)
{
    *rows = *cols = 0;
    if (v->kind == VC_VISION_IDEFICS3)
        return vc_idefics3_encode(&v->u.idefics3, img, embd, n_tokens, rows, cols);
    return vc_llava_next_encode(&v->u.llava_next, img, embd, n_tokens);
}

int vc_vision_count(const vc_vision *v, int width, int height)
{
    if (v->kind == VC_VISION_IDEFICS3) {
        int rows, cols;
        vc_idefics3_grid(&v->u.idefics3, width, height, &rows, &cols);
        return (rows * cols + 1) * v->u.idefics3.image_seq_len;
    }
    return vc_llava_next_count(&v->u.llava_next, width, height);
}

static void repeat(vc_buf *b, const char *s, int n)
{
    for (int i = 0; i < n; i++)
        vc_buf_puts(b, s);
}

char *vc_vision_prompt(const vc_vision *v, int n_tokens, int rows, int cols)
{
    vc_buf b = { 0 };
    if (v->kind == VC_VISION_LLAVA_NEXT) {
        repeat(&b, v->image_token, n_tokens);
        return vc_buf_take(&b, NULL);
    }
    /* Idefics3: tiles as <fake><row_r_col_c><image>*N, a newline after each
     * row, then a blank line and <fake><global-img><image>*N<fake> */
    int per = v->u.idefics3.image_seq_len;
    const char *fake = "<fake_token_around_image>";
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) {
            vc_buf_printf(&b, "%s<row_%d_col_%d>", fake, r + 1, c + 1);
            repeat(&b, v->image_token, per);
        }
        vc_buf_putc(&b, '\n');
    }
    if (rows > 0)
        vc_buf_putc(&b, '\n');
    vc_buf_printf(&b, "%s<global-img>", fake);
    repeat(&b, v->image_token, per);
    vc_buf_puts(&b, fake);
    return vc_buf_take(&b, NULL);
}

void vc_vision_fewer_tiles(vc_vision *v)
{
    if (v->kind == VC_VISION_IDEFICS3) {
        v->u.idefics3.do_split = false;
        return;
    }
    vc_llava_next *ln = &v->u.llava_next;
    int best = 0;
    for (int i = 1; i < ln->n_pinpoints; i++)
        if ((long)ln->pinpoints[i][0] * ln->pinpoints[i][1] < (long)ln->pinpoints[best][0] * ln->pinpoints[best][1])
            best = i;
    ln->pinpoints[0][0] = ln->pinpoints[best][0];
    ln->pinpoints[0][1] = ln->pinpoints[best][1];
    ln->n_pinpoints = 1;
}

void vc_vision_free(vc_vision *v)
{
    if (!v)
        return;
    if (v->kind == VC_VISION_IDEFICS3)
        vc_idefics3_free(&v->u.idefics3);
    else
        vc_llava_next_free(&v->u.llava_next);
    free(v);
}
