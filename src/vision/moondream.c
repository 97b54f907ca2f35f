/* moondream.c - see include/vision/moondream.h */
#include "vision/moondream.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/act.h"
#include "core/buf.h"
#include "core/common.h"
#include "core/json.h"
#include "image/resize.h"
#include "model/llm_config.h"
#include "vision/family.h"
#include "vision/processor.h"

/* The image prefix's placeholder ids: MD_IMAGE_ID and below, outside every
 * vocabulary, never embedded (family.h's image_ids_by_content). */
#define MD_IMAGE_ID (-2)

/* ---- configuration (config.py's defaults, overridden by config.json's "config") ---- */

static int read_ids(json_t *arr, const vc_md_ids *dflt, vc_md_ids *out, const char *what)
{
    if (!arr) {
        *out = *dflt;
        return 0;
    }
    int ids[VC_MD_MAX_TEMPLATE];
    size_t n;
    if (!json_is_array(arr))
        return vc_fail_code(VC_EXIT_MODEL, "config.json: template %s is not a list of at most %d ids", what,
                            VC_MD_MAX_TEMPLATE);
    if (vc_json_int_list(arr, what, 0, INT32_MAX, ids, VC_MD_MAX_TEMPLATE, &n) != 0)
        return vc_fail_ctx("config.json: template");
    for (size_t i = 0; i < n; i++)
        out->ids[i] = ids[i];
    out->n = (int)n;
    return 0;
}

static int read_templates(vc_moondream *m, json_t *t)
{
    static const vc_md_ids caption[3] = { { { 1, 32708, 2, 12492, 3 }, 5 }, { { 1, 32708, 2, 6382, 3 }, 5 },
                                          { { 1, 32708, 2, 4059, 3 }, 5 } };
    static const vc_md_ids qp = { { 1, 15381, 2 }, 3 }, dp = { { 1, 7235, 476, 2 }, 4 }, pp = { { 1, 2581, 2 }, 3 },
                           suffix = { { 3 }, 1 };
    json_t *cap = json_object_get(t, "caption"), *q = json_object_get(t, "query"), *d = json_object_get(t, "detect"),
           *p = json_object_get(t, "point");
    if ((t && json_object_get(t, "caption") && json_is_null(cap)) || (q && json_is_null(q)) || (d && json_is_null(d)) ||
        (p && json_is_null(p)))
        return vc_fail_code(VC_EXIT_MODEL, "config.json: a model without one of the caption, query, detect and point "
                            "templates is not supported");
    const char *lengths[3] = { "short", "normal", "long" };
    for (int i = 0; i < 3; i++)
        if (read_ids(json_object_get(cap, lengths[i]), &caption[i], &m->caption[i], lengths[i]) != 0)
            return -1;
    return read_ids(json_object_get(q, "prefix"), &qp, &m->query_pre, "query prefix") ||
                   read_ids(json_object_get(q, "suffix"), &suffix, &m->query_suf, "query suffix") ||
                   read_ids(json_object_get(d, "prefix"), &dp, &m->detect_pre, "detect prefix") ||
                   read_ids(json_object_get(d, "suffix"), &suffix, &m->detect_suf, "detect suffix") ||
                   read_ids(json_object_get(p, "prefix"), &pp, &m->point_pre, "point prefix") ||
                   read_ids(json_object_get(p, "suffix"), &suffix, &m->point_suf, "point suffix")
               ? -1
               : 0;
}

static json_t *section(json_t *config, const char *name)
{
    return json_object_get(json_object_get(config, "config"), name);
}

/* A quantized variant (group_size set) stores packed int4 weights vlmchat does not read. */
static int refuse_quantized(json_t *s, const char *name, const char *origin)
{
    json_t *g = json_object_get(s, "group_size");
    if (g && !json_is_null(g))
        return vc_fail_code(VC_EXIT_MODEL, "%s: config.%s.group_size is set: the int4-packed Moondream variant is not "
                            "supported (use the bf16 model.safetensors)", origin, name);
    return 0;
}

int vc_moondream_text_config(json_t *config, const char *origin, vc_llm_config *c)
{
    memset(c, 0, sizeof *c);
    json_t *t = section(config, "text"), *v = section(config, "vision"), *tk = section(config, "tokenizer");
    if (refuse_quantized(t, "text", origin) != 0)
        return -1;
    c->arch = VC_ARCH_MOONDREAM;
    bool bad = false;
    c->dim = vc_json_int_or(t, "dim", 2048, &bad);
    c->ffn_dim = vc_json_int_or(t, "ff_dim", 8192, &bad);
    c->n_layers = vc_json_int_or(t, "n_layers", 24, &bad);
    c->n_vocab = vc_json_int_or(t, "vocab_size", 51200, &bad);
    c->max_pos = vc_json_int_or(t, "max_context", 2048, &bad);
    c->n_heads = vc_json_int_or(t, "n_heads", 32, &bad);
    c->n_kv_heads = vc_json_int_or(t, "n_kv_heads", 32, &bad);
    if (bad)
        return vc_fail_ctx("%s", origin);
    c->head_dim = c->n_heads > 0 ? c->dim / c->n_heads : 0;
    /* rope.py: rot_dim 32 rotated as (x[i], x[i+16]) pairs, frequencies over 32 dimensions */
    if (c->head_dim != 64 || c->dim % c->n_heads != 0)
        return vc_fail_code(VC_EXIT_MODEL, "%s: Moondream's rotary embedding needs a head size of 64 (dim %d, %d heads)",
                            origin, c->dim, c->n_heads);
    c->rope = VC_ROPE_DEFAULT;
    c->rope_layout = VC_ROPE_NEOX;
    c->rope_theta = 10000.0;
    c->rope_dim = 32;
    c->rope_attn_factor = 1.0f;
    c->norm_eps = 1e-5f;
    c->layer_norm = c->parallel_block = c->gelu_mlp = true;
    int crop = vc_json_int_or(v, "crop_size", 378, &bad), patch = vc_json_int_or(v, "enc_patch_size", 14, &bad);
    if (bad || patch <= 0 || crop < patch)
        return bad ? vc_fail_ctx("%s", origin) : vc_fail_code(VC_EXIT_MODEL, "%s: bad crop_size/enc_patch_size", origin);
    c->prefix_bidirectional = 1 + (crop / patch) * (crop / patch);   /* BOS and the image */
    c->bos_id = vc_json_int_or(tk, "bos_id", 0, &bad);
    vc_llm_config_add_eos(c, vc_json_int_or(tk, "eos_id", 0, &bad));
    return bad ? vc_fail_ctx("%s", origin) : vc_llm_config_check(c);
}

static int read_config(vc_moondream *m, json_t *config, int text_dim)
{
    json_t *v = section(config, "vision"), *r = section(config, "region"), *tk = section(config, "tokenizer");
    if (refuse_quantized(r, "region", "config.json") != 0)
        return -1;
    bool bad = false;
    m->enc_dim = vc_json_int_or(v, "enc_dim", 1152, &bad);
    m->patch = vc_json_int_or(v, "enc_patch_size", 14, &bad);
    m->layers = vc_json_int_or(v, "enc_n_layers", 27, &bad);
    m->ff = vc_json_int_or(v, "enc_ff_dim", 4304, &bad);
    m->heads = vc_json_int_or(v, "enc_n_heads", 16, &bad);
    m->crop = vc_json_int_or(v, "crop_size", 378, &bad);
    m->max_crops = vc_json_int_or(v, "max_crops", 12, &bad);
    m->margin = vc_json_int_or(v, "overlap_margin", 4, &bad);
    m->proj_inner = vc_json_int_or(v, "proj_inner_dim", 8192, &bad);
    m->proj_out = vc_json_int_or(v, "proj_out_dim", 2048, &bad);
    m->region_dim = vc_json_int_or(r, "dim", 2048, &bad);
    m->coord_feat = vc_json_int_or(r, "coord_feat_dim", 256, &bad);
    m->coord_out = vc_json_int_or(r, "coord_out_dim", 1024, &bad);
    m->size_feat = vc_json_int_or(r, "size_feat_dim", 512, &bad);
    m->size_out = vc_json_int_or(r, "size_out_dim", 2048, &bad);
    m->region_inner = vc_json_int_or(r, "inner_dim", 8192, &bad);
    m->bos = vc_json_int_or(tk, "bos_id", 0, &bad);
    m->eos = vc_json_int_or(tk, "eos_id", 0, &bad);
    m->answer = vc_json_int_or(tk, "answer_id", 3, &bad);
    m->coord = vc_json_int_or(tk, "coord_id", 5, &bad);
    m->size = vc_json_int_or(tk, "size_id", 6, &bad);
    if (bad)
        return vc_fail_ctx("config.json");
    int g = m->patch > 0 ? m->crop / m->patch : 0;
    if (m->patch <= 0 || m->crop % m->patch || g <= 2 * m->margin || m->margin < 0 || m->max_crops < 1 ||
        m->max_crops > 64 || m->enc_dim <= 0 || m->enc_dim > 8192 || m->heads <= 0 || m->enc_dim % m->heads ||
        m->layers <= 0 || m->layers > 256 || m->ff <= 0 || m->proj_inner <= 0 || m->coord_feat < 2 ||
        m->coord_feat % 2 || m->size_feat < 2 || m->size_feat % 2 || m->coord_out <= 0 || m->size_out < 2 ||
        m->size_out % 2 || m->region_inner <= 0 || m->crop > 4096)
        return vc_fail_code(VC_EXIT_MODEL, "config.json: Moondream vision or region sizes are invalid");
    if (m->proj_out != text_dim || m->region_dim != text_dim)
        return vc_fail_code(VC_EXIT_MODEL, "config.json: proj_out_dim %d and region dim %d must equal the text dim %d",
                            m->proj_out, m->region_dim, text_dim);
    return read_templates(m, json_object_get(tk, "templates"));
}

/* ---- weights ---- */

typedef struct {
    const vc_tensor_set *w;
    float *pool;
    size_t used, cap;
} pool_t;

static const vc_tensor *need(const vc_tensor_set *w, const char *name)
{
    const vc_tensor *t = vc_tensors_find(w, name);
    if (!t)
        vc_fail_code(VC_EXIT_MODEL, "model has no tensor '%s'", name);
    return t;
}

static const float *vec(pool_t *p, const char *name, int64_t n)
{
    const vc_tensor *t = need(p->w, name);
    if (!t)
        return NULL;
    if (p->used + (size_t)n > p->cap) {
        vc_fail_code(VC_EXIT_MODEL, "'%s' is larger than expected", name);
        return NULL;
    }
    float *dst = p->pool + p->used;
    if (vc_tensor_to_f32(t, n, dst) != 0)
        return NULL;
    p->used += (size_t)n;
    return dst;
}

static int mat(const vc_tensor_set *w, const char *name, int64_t cols, int64_t rows, vc_matrix *out)
{
    const vc_tensor *t = need(w, name);
    return t ? vc_tensor_matrix(t, cols, rows, out) : -1;
}

/* A Linear: "<name>.weight" (rows x cols) and "<name>.bias". */
static int linear(const vc_tensor_set *w, pool_t *p, const char *name, int64_t cols, int64_t rows, vc_matrix *out,
                  const float **bias)
{
    char n[256];
    snprintf(n, sizeof n, "%s.weight", name);
    if (mat(w, n, cols, rows, out) != 0)
        return -1;
    snprintf(n, sizeof n, "%s.bias", name);
    return (*bias = vec(p, n, rows)) ? 0 : -1;
}

static int bind_vit(vc_moondream *m, const vc_tensor_set *w, pool_t *p)
{
    vc_vit *v = &m->vit;
    int h = m->enc_dim, g = m->crop / m->patch;
    v->cfg = (vc_vit_config){ .hidden = h, .ffn = m->ff, .layers = m->layers, .heads = m->heads,
                              .image_size = m->crop, .patch_size = m->patch, .norm_eps = 1e-5f,
                              .act = VC_ACT_GELU_TANH };
    v->layers = vc_calloc((size_t)m->layers, sizeof *v->layers);
    if (!v->layers)
        return -1;
    int64_t pp = 3 * (int64_t)m->patch * m->patch;
    if (linear(w, p, "model.vision.patch_emb", pp, h, &v->patch, &v->patch_b) != 0 ||
        !(v->pos_emb = vec(p, "model.vision.pos_emb", (int64_t)g * g * h)) ||
        !(v->post_w = vec(p, "model.vision.post_ln.weight", h)) || !(v->post_b = vec(p, "model.vision.post_ln.bias", h)))
        return -1;
    for (int l = 0; l < m->layers; l++) {
        vc_vit_layer *L = &v->layers[l];
        char n[256];
        vc_matrix qkv;
        const float *qkv_b;
#define NAME(s) (snprintf(n, sizeof n, "model.vision.blocks.%d." s, l), n)
        if (!(L->ln1_w = vec(p, NAME("ln1.weight"), h)) || !(L->ln1_b = vec(p, NAME("ln1.bias"), h)) ||
            !(L->ln2_w = vec(p, NAME("ln2.weight"), h)) || !(L->ln2_b = vec(p, NAME("ln2.bias"), h)) ||
            linear(w, p, NAME("attn.qkv"), h, 3 * (int64_t)h, &qkv, &qkv_b) != 0 ||
            linear(w, p, NAME("attn.proj"), h, h, &L->o, &L->o_b) != 0 ||
            linear(w, p, NAME("mlp.fc1"), h, m->ff, &L->fc1, &L->fc1_b) != 0 ||
            linear(w, p, NAME("mlp.fc2"), m->ff, h, &L->fc2, &L->fc2_b) != 0)
            return vc_fail_ctx("vision block %d", l);
#undef NAME
        L->q = vc_matrix_rows(&qkv, 0, h);   /* chunk(3): q, k, v */
        L->k = vc_matrix_rows(&qkv, h, h);
        L->v = vc_matrix_rows(&qkv, 2 * (int64_t)h, h);
        L->q_b = qkv_b;
        L->k_b = qkv_b + h;
        L->v_b = qkv_b + 2 * h;
    }
    return 0;
}

static int bind_region(vc_moondream *m, const vc_tensor_set *w, pool_t *p)
{
    int d = m->region_dim;
    if (linear(w, p, "model.vision.proj_mlp.fc1", 2 * (int64_t)m->enc_dim, m->proj_inner, &m->proj1, &m->proj1_b) ||
        linear(w, p, "model.vision.proj_mlp.fc2", m->proj_inner, m->proj_out, &m->proj2, &m->proj2_b) ||
        linear(w, p, "model.region.coord_encoder", m->coord_feat, d, &m->coord_enc, &m->coord_enc_b) ||
        linear(w, p, "model.region.coord_decoder.fc1", d, m->region_inner, &m->coord_fc1, &m->coord_fc1_b) ||
        linear(w, p, "model.region.coord_decoder.fc2", m->region_inner, m->coord_out, &m->coord_fc2, &m->coord_fc2_b) ||
        linear(w, p, "model.region.size_encoder", m->size_feat, d, &m->size_enc, &m->size_enc_b) ||
        linear(w, p, "model.region.size_decoder.fc1", d, m->region_inner, &m->size_fc1, &m->size_fc1_b) ||
        linear(w, p, "model.region.size_decoder.fc2", m->region_inner, m->size_out, &m->size_fc2, &m->size_fc2_b))
        return -1;
    /* (1, F/2) and (2, F/2), as the reference's transposed parameters are saved */
    const vc_tensor *cf = need(w, "model.region.coord_features"), *sf = need(w, "model.region.size_features");
    if (!cf || !sf)
        return -1;
    if (cf->n_dims != 2 || cf->ne[0] != m->coord_feat / 2 || cf->ne[1] != 1 || sf->n_dims != 2 ||
        sf->ne[0] != m->size_feat / 2 || sf->ne[1] != 2)
        return vc_fail_code(VC_EXIT_MODEL, "model.region.coord_features/size_features must be (1, %d) and (2, %d)",
                            m->coord_feat / 2, m->size_feat / 2);
    if (!(m->coord_freq = vec(p, "model.region.coord_features", m->coord_feat / 2)) ||
        !(m->size_freq = vec(p, "model.region.size_features", m->size_feat)))
        return -1;
    return 0;
}

/* The tokenizer must be moondream/starmie-v1's: revisions before 2025-06-21
 * ship GPT-2's, and so does the 2025-06-21 repository (a stale copy the code
 * does not read). */
static int check_tokenizer(const vc_moondream *m, const vc_tokenizer *tok, const char *dir)
{
    const char *eos = vc_tokenizer_piece(tok, m->eos);
    if (eos && strcmp(eos, "<|endoftext|>") == 0)
        return 0;
    int32_t gpt2 = vc_tokenizer_find(tok, "<|endoftext|>");
    if (gpt2 == 50256)
        return vc_fail_code(VC_EXIT_MODEL,
                            "%s/tokenizer.json is GPT-2's (<|endoftext|> = 50256). Moondream2 2025-06-21 reads the "
                            "tokenizer of moondream/starmie-v1: download https://huggingface.co/moondream/starmie-v1/"
                            "resolve/main/tokenizer.json into %s. (Revisions up to 2025-04-14 do use GPT-2's tokenizer "
                            "but are not supported: their prompts are text templates such as \"\\n\\nQuestion:\" and "
                            "2025-01-09's size head differs.)", dir, dir);
    return vc_fail_code(VC_EXIT_MODEL, "%s/tokenizer.json: token %d is '%s', not <|endoftext|>: it is not "
                        "moondream/starmie-v1's tokenizer, which Moondream2 2025-06-21 needs", dir, m->eos,
                        eos ? eos : "(none)");
}

static int md_load(vc_moondream *m, const vc_vision_source *src)
{
    if (read_config(m, src->config, src->text_dim) != 0 || check_tokenizer(m, src->tok, src->dir) != 0)
        return -1;
    int g = m->crop / m->patch, h = m->enc_dim;
    size_t cap = (size_t)g * g * h + 8 * (size_t)h + (size_t)m->layers * (9 * (size_t)h + m->ff) + m->proj_inner +
                 m->proj_out + 4 * (size_t)m->region_dim + 2 * (size_t)m->region_inner + m->coord_out + m->size_out +
                 m->coord_feat + m->size_feat + 64;
    pool_t p = { src->weights, NULL, 0, cap };
    p.pool = m->vit.floats = m->owned = vc_malloc(cap * sizeof(float));
    if (!p.pool)
        return -1;
    m->owned = NULL;   /* the pool is freed with the encoder */
    if (bind_vit(m, src->weights, &p) != 0 || bind_region(m, src->weights, &p) != 0)
        return -1;
    return 0;
}

/* ---- crops (image_crops.py, PIL path) ---- */

void vc_moondream_tiling(const vc_moondream *m, int width, int height, int *th, int *tw)
{
    int margin_px = m->patch * m->margin, window = (m->crop / m->patch - 2 * m->margin) * m->patch;
    int h = height - 2 * margin_px, w = width - 2 * margin_px, mc = m->max_crops;
    *th = *tw = 1;
    if (h <= window || w <= window)
        return;
    int min_h = (h + window - 1) / window, min_w = (w + window - 1) / window;
    if (min_h * min_w > mc) {
        double ratio = sqrt((double)mc / (min_h * min_w));
        *th = VC_MAX(1, (int)floor(min_h * ratio));
        *tw = VC_MAX(1, (int)floor(min_w * ratio));
        return;
    }
    int ht = (int)floor(sqrt((double)mc * h / w)), wt = (int)floor(sqrt((double)mc * w / h));
    ht = VC_MAX(ht, min_h);
    wt = VC_MAX(wt, min_w);
    if (ht * wt > mc) {
        if (wt > ht)
            wt = (int)floor((double)mc / ht);
        else
            ht = (int)floor((double)mc / wt);
    }
    *th = VC_MAX(1, ht);
    *tw = VC_MAX(1, wt);
}

int vc_moondream_crops(const vc_moondream *m, const vc_image *img, uint8_t **rgb, int *n_out)
{
    int th, tw, S = m->crop, margin_px = m->patch * m->margin;
    int window = (S / m->patch - 2 * m->margin) * m->patch;
    vc_moondream_tiling(m, img->width, img->height, &th, &tw);
    int n = th * tw + 1, W = tw * window + 2 * margin_px, H = th * window + 2 * margin_px;
    size_t crop_bytes = 3 * (size_t)S * S;
    uint8_t *out = vc_calloc((size_t)n, crop_bytes);
    vc_image resized = { 0 }, global = { 0 };
    if (!out)
        return -1;
    if (vc_image_resize(img, W, H, VC_RESAMPLE_LANCZOS, &resized) != 0 ||
        vc_image_resize(img, S, S, VC_RESAMPLE_LANCZOS, &global) != 0) {
        free(out);
        vc_image_free(&resized);
        return -1;
    }
    memcpy(out, global.rgb, crop_bytes);
    for (int i = 0; i < th; i++)
        for (int j = 0; j < tw; j++) {
            int y0 = i * window, x0 = j * window;
            int y_end = VC_MIN(y0 + S, H), x_end = VC_MIN(x0 + S, W);
            uint8_t *dst = out + (size_t)(1 + i * tw + j) * crop_bytes;
            for (int y = y0; y < y_end; y++)
                memcpy(dst + 3 * (size_t)(y - y0) * S, resized.rgb + 3 * ((size_t)y * W + x0), 3 * (size_t)(x_end - x0));
        }
    vc_image_free(&resized);
    vc_image_free(&global);
    *rgb = out;
    *n_out = n;
    return 0;
}

/* Pixel values: HWC uint8 to CHW floats, /255, -0.5, /0.5 (each step in float32). */
static void normalize_crop(const uint8_t *rgb, int S, float *chw)
{
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < (size_t)S * S; i++)
            chw[(size_t)c * S * S + i] = ((float)rgb[3 * i + c] / 255.0f - 0.5f) / 0.5f;
}

static int md_preprocess(const vc_moondream *m, const vc_image *img, float **pixels, int *n_tiles)
{
    uint8_t *rgb;
    int n, S = m->crop;
    if (vc_moondream_crops(m, img, &rgb, &n) != 0)
        return -1;
    size_t per = 3 * (size_t)S * S;
    float *out = vc_malloc((size_t)n * per * sizeof(float));
    if (!out) {
        free(rgb);
        return -1;
    }
    for (int i = 0; i < n; i++)
        normalize_crop(rgb + (size_t)i * per, S, out + (size_t)i * per);
    free(rgb);
    *pixels = out;
    *n_tiles = n;
    return 0;
}

/* ---- features ---- */

/* reconstruct_from_crops(patch_size=1): the local crops' g x g grids into one
 * (g - 2M) * th + 2M by (g - 2M) * tw + 2M grid, inner margins dropped. */
static void reconstruct(const float *local, int th, int tw, int g, int M, int d, float *out, int OW)
{
    int step = g - 2 * M;
    for (int i = 0; i < th * tw; i++) {
        int ty = i / tw, tx = i % tw;
        int x0 = tx == 0 ? 0 : M, x1 = tx == tw - 1 ? g : g - M;
        int y0 = ty == 0 ? 0 : M, y1 = ty == th - 1 ? g : g - M;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++)
                memcpy(out + ((size_t)(ty * step + y) * OW + tx * step + x) * d,
                       local + ((size_t)i * g * g + (size_t)y * g + x) * d, (size_t)d * sizeof(float));
    }
}

/* adaptive_avg_pool2d of an H x W x d grid to g x g (torch's bins and sums). */
static void adaptive_pool(const float *in, int H, int W, int d, int g, float *out)
{
    for (int oy = 0; oy < g; oy++) {
        int y0 = (int)floor((double)oy * H / g), y1 = (int)ceil((double)(oy + 1) * H / g);
        for (int ox = 0; ox < g; ox++) {
            int x0 = (int)floor((double)ox * W / g), x1 = (int)ceil((double)(ox + 1) * W / g);
            float *o = out + ((size_t)oy * g + ox) * d;
            for (int c = 0; c < d; c++) {
                float sum = 0;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++)
                        sum += in[((size_t)y * W + x) * d + c];
                o[c] = sum / (float)(y1 - y0) / (float)(x1 - x0);
            }
        }
    }
}

static int md_encode(const vc_moondream *m, const vc_image *img, float **embd, int *n_tokens)
{
    float *pixels;
    int n, th, tw, g = m->crop / m->patch, d = m->enc_dim, T = g * g, M = m->margin;
    if (md_preprocess(m, img, &pixels, &n) != 0)
        return -1;
    vc_moondream_tiling(m, img->width, img->height, &th, &tw);
    int OH = (g - 2 * M) * th + 2 * M, OW = (g - 2 * M) * tw + 2 * M;
    float *feats = vc_malloc((size_t)n * T * d * sizeof(float));
    float *grid = vc_calloc((size_t)OH * OW * d, sizeof(float));
    float *cat = vc_malloc((size_t)T * 2 * d * sizeof(float));
    float *mid = vc_malloc((size_t)T * m->proj_inner * sizeof(float));
    float *out = vc_malloc((size_t)T * m->proj_out * sizeof(float));
    int rc = feats && grid && cat && mid && out ? 0 : -1;
    if (rc == 0)
        rc = vc_vit_encode_batch(&m->vit, pixels, n, -1, true, feats);
    if (rc == 0) {
        reconstruct(feats + (size_t)T * d, th, tw, g, M, d, grid, OW);
        float *tmp = vc_malloc((size_t)T * d * sizeof(float));
        if (!tmp) {
            rc = -1;
        } else {
            adaptive_pool(grid, OH, OW, d, g, tmp);
            for (int t = 0; t < T; t++) {
                memcpy(cat + (size_t)t * 2 * d, feats + (size_t)t * d, (size_t)d * sizeof(float));
                memcpy(cat + (size_t)t * 2 * d + d, tmp + (size_t)t * d, (size_t)d * sizeof(float));
            }
            free(tmp);
            vc_linear(&m->proj1, m->proj1_b, cat, T, mid);
            vc_act_apply(VC_ACT_GELU_TANH, mid, (size_t)T * m->proj_inner);
            vc_linear(&m->proj2, m->proj2_b, mid, T, out);
        }
    }
    free(pixels);
    free(feats);
    free(grid);
    free(cat);
    free(mid);
    if (rc != 0) {
        free(out);
        return -1;
    }
    *embd = out;
    *n_tokens = T;
    return 0;
}

/* ---- region heads (region.py) ---- */

/* mlp(): fc1, GELU(tanh), fc2 on one row. */
static int head_mlp(const vc_moondream *m, const vc_matrix *fc1, const float *b1, const vc_matrix *fc2,
                    const float *b2, const float *hidden, float *out)
{
    float *mid = vc_malloc((size_t)m->region_inner * sizeof(float));
    if (!mid)
        return -1;
    vc_linear(fc1, b1, hidden, 1, mid);
    vc_act_apply(VC_ACT_GELU_TANH, mid, (size_t)m->region_inner);
    vc_linear(fc2, b2, mid, 1, out);
    free(mid);
    return 0;
}

static int argmax(const float *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

static int md_coord_decode(const void *state, const float *hidden, float *value)
{
    const vc_moondream *m = state;
    float *logits = vc_malloc((size_t)m->coord_out * sizeof(float));
    if (!logits || head_mlp(m, &m->coord_fc1, m->coord_fc1_b, &m->coord_fc2, m->coord_fc2_b, hidden, logits) != 0) {
        free(logits);
        return -1;
    }
    *value = (float)argmax(logits, m->coord_out) / (float)m->coord_out;
    free(logits);
    return 0;
}

static int md_size_decode(const void *state, const float *hidden, float *w, float *h)
{
    const vc_moondream *m = state;
    int bins = m->size_out / 2;
    float *logits = vc_malloc((size_t)m->size_out * sizeof(float));
    if (!logits || head_mlp(m, &m->size_fc1, m->size_fc1_b, &m->size_fc2, m->size_fc2_b, hidden, logits) != 0) {
        free(logits);
        return -1;
    }
    /* size = 2^((bin / 1023) * 10 - 10), in float32 as torch.pow computes it */
    float wb = (float)argmax(logits, bins), hb = (float)argmax(logits + bins, bins);
    *w = powf(2.0f, wb / 1023.0f * 10.0f - 10.0f);
    *h = powf(2.0f, hb / 1023.0f * 10.0f - 10.0f);
    free(logits);
    return 0;
}

/* fourier_features: f = 2 pi x @ w; [cos f, sin f] through the encoder. */
static int encode_features(const vc_matrix *enc, const float *bias, const float *f, int half, float *row)
{
    float *feat = vc_malloc(2 * (size_t)half * sizeof(float));
    if (!feat)
        return -1;
    for (int j = 0; j < half; j++) {
        feat[j] = cosf(f[j]);
        feat[half + j] = sinf(f[j]);
    }
    vc_linear(enc, bias, feat, 1, row);
    free(feat);
    return 0;
}

static int md_coord_encode(const void *state, float value, float *row)
{
    const vc_moondream *m = state;
    int half = m->coord_feat / 2;
    float *f = vc_malloc((size_t)half * sizeof(float));
    if (!f)
        return -1;
    float x = (float)(2 * M_PI) * value;
    for (int j = 0; j < half; j++)
        f[j] = x * m->coord_freq[j];
    int rc = encode_features(&m->coord_enc, m->coord_enc_b, f, half, row);
    free(f);
    return rc;
}

static int md_size_encode(const void *state, float w, float h, float *row)
{
    const vc_moondream *m = state;
    int half = m->size_feat / 2;
    float *f = vc_malloc((size_t)half * sizeof(float));
    if (!f)
        return -1;
    float a = (float)(2 * M_PI) * w, b = (float)(2 * M_PI) * h;
    for (int j = 0; j < half; j++)
        f[j] = a * m->size_freq[j] + b * m->size_freq[half + j];
    int rc = encode_features(&m->size_enc, m->size_enc_b, f, half, row);
    free(f);
    return rc;
}

/* ---- prompts ---- */

static int append(int32_t **ids, size_t *n, size_t *cap, const int32_t *src, size_t k)
{
    if (vc_reserve((void **)ids, cap, *n + k, sizeof **ids) != 0)
        return -1;
    memcpy(*ids + *n, src, k * sizeof *src);
    *n += k;
    return 0;
}

static int append_text(const vc_vision *v, int32_t **ids, size_t *n, size_t *cap, const char *text)
{
    int32_t *t;
    size_t k;
    if (vc_tokenizer_encode(v->tok, text, strlen(text), true, &t, &k) != 0)
        return -1;
    int rc = append(ids, n, cap, t, k);
    free(t);
    return rc;
}

/* moondream.py: caption templates; query prefix + encode(question) + suffix
 * + suffix (reasoning=False appends the suffix a second time); detect and
 * point prefix + encode(" " + object) + suffix. */
static int md_task_ids(const vc_vision *v, const char *task, const char *arg, int32_t **ids, size_t *n_ids)
{
    const vc_moondream *m = v->state;
    int32_t *out = NULL;
    size_t n = 0, cap = 0;
    int rc;
    if (strcmp(task, "caption") == 0) {
        const char *lengths[3] = { "short", "normal", "long" };
        int k = -1;
        for (int i = 0; i < 3; i++)
            if (strcmp(arg ? arg : "normal", lengths[i]) == 0)
                k = i;
        if (k < 0)
            return vc_fail_code(VC_EXIT_USAGE, "caption length '%s': short, normal or long", arg);
        rc = append(&out, &n, &cap, m->caption[k].ids, (size_t)m->caption[k].n);
    } else if (strcmp(task, "query") == 0) {
        rc = append(&out, &n, &cap, m->query_pre.ids, (size_t)m->query_pre.n);
        if (rc == 0)
            rc = append_text(v, &out, &n, &cap, arg ? arg : "");
        for (int twice = 0; rc == 0 && twice < 2; twice++)
            rc = append(&out, &n, &cap, m->query_suf.ids, (size_t)m->query_suf.n);
    } else if (strcmp(task, "detect") == 0 || strcmp(task, "point") == 0) {
        bool det = task[0] == 'd';
        const vc_md_ids *pre = det ? &m->detect_pre : &m->point_pre, *suf = det ? &m->detect_suf : &m->point_suf;
        char *spaced = vc_malloc(strlen(arg ? arg : "") + 2);
        if (!spaced)
            return -1;
        snprintf(spaced, strlen(arg ? arg : "") + 2, " %s", arg ? arg : "");
        rc = append(&out, &n, &cap, pre->ids, (size_t)pre->n);
        if (rc == 0)
            rc = append_text(v, &out, &n, &cap, spaced);
        if (rc == 0)
            rc = append(&out, &n, &cap, suf->ids, (size_t)suf->n);
        free(spaced);
    } else {
        return vc_fail_code(VC_EXIT_USAGE, "unknown task '%s' (caption, query, detect, point)", task);
    }
    if (rc != 0) {
        free(out);
        return -1;
    }
    *ids = out;
    *n_ids = n;
    return 0;
}

/* A chat prompt: BOS, the image's rows, then the query template around the
 * rendered text (the question: prompt.c passes the last user message and the
 * latest image). One image, required. */
static int md_tokenize(const vc_vision *v, const char *text, bool special, const vc_image_embd *images, int n_images,
                       int32_t **ids, size_t *n_ids)
{
    const vc_moondream *m = v->state;
    if (n_images != 1)
        return vc_fail_code(VC_EXIT_INPUT, "Moondream2 answers about one image per question (%d given)", n_images);
    int32_t *q;
    size_t nq;
    if (md_task_ids(v, "query", text, &q, &nq) != 0)
        return -1;
    size_t n = 1 + (size_t)images[0].n_tokens + nq;
    int32_t *out = vc_malloc(n * sizeof *out);
    if (!out) {
        free(q);
        return -1;
    }
    /* the image's positions: one negative id from a hash of its rows (FNV-1a) */
    uint64_t h = 1469598103934665603ULL;
    const unsigned char *bytes = (const unsigned char *)images[0].embd;
    for (size_t i = 0; i < (size_t)images[0].n_tokens * m->proj_out * sizeof(float); i++)
        h = (h ^ bytes[i]) * 1099511628211ULL;
    int32_t image_id = MD_IMAGE_ID - (int32_t)(h % 1000000007ULL);
    out[0] = m->bos;
    for (int i = 0; i < images[0].n_tokens; i++)
        out[1 + i] = image_id;
    memcpy(out + 1 + images[0].n_tokens, q, nq * sizeof *q);
    free(q);
    *ids = out;
    *n_ids = n;
    return 0;
}

/* ---- the family's ops table ---- */

static int ops_load(void *state, const vc_vision_source *src, vc_vision *v)
{
    vc_moondream *m = state;
    if (md_load(m, src) != 0)
        return -1;
    v->image_token_id = MD_IMAGE_ID;
    v->image_ids_by_content = true;
    snprintf(v->image_token, sizeof v->image_token, "<image>");
    v->suppress_after_first = m->answer;
    v->bos_id = m->bos;
    v->eos_id = m->eos;
    return 0;
}

static void ops_free(void *state)
{
    vc_moondream *m = state;
    vc_vit_free(&m->vit);
    free(m->owned);
}

static int ops_preprocess(const void *state, const vc_image *img, float **pixels, int *n_tiles)
{
    return md_preprocess(state, img, pixels, n_tiles);
}

static int ops_encode(const void *state, const vc_image *img, vc_image_embd *out)
{
    return md_encode(state, img, &out->embd, &out->n_tokens);
}

static int ops_count(const void *state, int width, int height)
{
    const vc_moondream *m = state;
    int g = m->crop / m->patch;
    return g * g;
}

static char *ops_expand(const vc_vision *v, const vc_image_embd *e) { return vc_vision_repeat(v->image_token, e->n_tokens); }

/* Low memory: the global crop and at most 4 local ones. */
static void ops_fewer_tiles(void *state)
{
    vc_moondream *m = state;
    m->max_crops = VC_MIN(m->max_crops, 4);
}

static const char *const model_types[] = { "moondream1", NULL };

const vc_vision_family vc_family_moondream = {
    .name = "moondream",
    .model_types = model_types,
    .state_size = sizeof(vc_moondream),
    .message_image_fmt = "%s",
    .pixels_packed = false,
    .load = ops_load,
    .free = ops_free,
    .preprocess = ops_preprocess,
    .encode = ops_encode,
    .count = ops_count,
    .expand = ops_expand,
    .tokenize = md_tokenize,
    .fewer_tiles = ops_fewer_tiles,
    .own_settings = true,
    .text_config = vc_moondream_text_config,
    .text_names = &VC_LLM_NAMES_MOONDREAM,
    .task_ids = md_task_ids,
    .coord_decode = md_coord_decode,
    .coord_encode = md_coord_encode,
    .size_decode = md_size_decode,
    .size_encode = md_size_encode,
};
