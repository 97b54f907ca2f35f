/* phi3v.c - see include/vision/phi3v.h */
#include "vision/phi3v.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/json.h"
#include "image/resize.h"
#include "vision/family.h"
#include "vision/processor.h"

#define CROP VC_PHI3V_CROP
#define MERGED 12                 /* 24x24 patches merged 2x2 */
#define PER_CROP (MERGED * MERGED)

/* ---- geometry (HD_transform / calc_hd_transform_size) ---- */

int vc_phi3v_geometry(int num_crops, int width, int height, int *out_w, int *out_h, int *h_crop, int *w_crop)
{
    if (num_crops < 1 || width < 1 || height < 1)
        return vc_fail_code(VC_EXIT_INPUT, "phi3_v: invalid image size %dx%d", width, height);
    bool trans = width < height;            /* portrait: img.transpose(Image.TRANSPOSE) */
    int w = trans ? height : width, h = trans ? width : height;
    double ratio = (double)w / h;
    int scale = 1;                          /* while scale*np.ceil(scale/ratio) <= hd_num: scale += 1 */
    while (scale <= num_crops && scale * ceil(scale / ratio) <= num_crops)
        scale++;
    scale--;
    int new_w = scale * CROP;
    double nh = new_w / ratio;              /* int(new_w / ratio) */
    if (!(nh >= 1) || nh > 1e6)
        return vc_fail_code(VC_EXIT_INPUT, "phi3_v: a %dx%d image is too narrow for the HD transform", width, height);
    int new_h = (int)nh;
    int padded_h = (new_h + CROP - 1) / CROP * CROP;   /* padding_336 */
    *out_w = trans ? padded_h : new_w;
    *out_h = trans ? new_w : padded_h;
    *h_crop = *out_h / CROP;
    *w_crop = *out_w / CROP;
    return 0;
}

int vc_phi3v_count(int num_crops, int width, int height)
{
    int W, H, hc, wc;
    if (vc_phi3v_geometry(num_crops, width, height, &W, &H, &hc, &wc) != 0)
        return -1;
    return (hc * wc + 1) * PER_CROP + 1 + (hc + 1) * MERGED;
}

/* ---- loading ---- */

/* config.json's vision_config (tiny test towers), else CLIP ViT-L/14-336,
 * which the published code hard-codes. */
static int read_tower(json_t *vc, vc_vit_config *c)
{
    if (vc_vit_read_clip_config(vc, c) != 0)
        return vc_fail_ctx("phi3_v");
    /* the 24x24 grid, its 12x12 merge and the 336-pixel crops are wired into the published code */
    if (c->image_size != CROP || c->patch_size != 14)
        return vc_fail_code(VC_EXIT_MODEL, "phi3_v: the vision tower must take 336-pixel images in 14-pixel patches "
                            "(got %d and %d)", c->image_size, c->patch_size);
    return 0;
}

static const char *str_field(json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : dflt;
}

/* The embedding layout the published code implements: HD transform, learnable
 * separators, "sub_glb" order, the two-layer MLP projection, patch features. */
static int check_layout(json_t *cfg)
{
    json_t *embd = json_object_get(cfg, "embd_layer"), *ip = json_object_get(cfg, "img_processor");
    if (!json_is_object(embd) || !json_is_object(ip))
        return vc_fail_code(VC_EXIT_MODEL, "phi3_v: config.json needs embd_layer and img_processor objects");
    if (!vc_json_flag(embd, "use_hd_transform", false) || !vc_json_flag(embd, "with_learnable_separator", false) ||
        strcmp(str_field(embd, "hd_transform_order", "glb_sub"), "sub_glb") != 0 ||
        strcmp(str_field(embd, "projection_cls", "linear"), "mlp") != 0)
        return vc_fail_code(VC_EXIT_MODEL, "phi3_v: only the HD transform with learnable separators, order sub_glb "
                            "and an MLP projection is supported (Phi-3-vision, Phi-3.5-vision)");
    if (strcmp(str_field(ip, "name", ""), "clip_vision_model") != 0 ||
        strcmp(str_field(ip, "type_feature", "patch"), "patch") != 0)
        return vc_fail_code(VC_EXIT_MODEL, "phi3_v: img_processor must be clip_vision_model with patch features");
    return 0;
}

static const vc_tensor *need(const vc_tensor_set *w, const char *name)
{
    const vc_tensor *t = vc_tensors_find(w, name);
    if (!t)
        vc_fail_code(VC_EXIT_MODEL, "model has no tensor '%s'", name);
    return t;
}

int vc_phi3v_load(vc_phi3v *m, json_t *cfg, json_t *proc, const vc_tensor_set *w, int text_dim)
{
    memset(m, 0, sizeof *m);
    m->text_dim = text_dim;
    vc_vit_config vc;
    if (check_layout(cfg) != 0 || read_tower(json_object_get(cfg, "vision_config"), &vc) != 0)
        return -1;
    json_t *ip = json_object_get(cfg, "img_processor");
    int dim_out;
    if (vc_json_get_int(ip, "image_dim_out", INT_MIN, INT_MAX, vc.hidden, &dim_out) != 0 ||
        vc_json_get_int(ip, "layer_idx", INT_MIN, INT_MAX, -2, &m->feature_layer) != 0)
        return vc_fail_ctx("phi3_v: img_processor");
    if (dim_out != vc.hidden)
        return vc_fail_code(VC_EXIT_MODEL, "phi3_v: img_processor.image_dim_out %d differs from the tower's width %d",
                            dim_out, vc.hidden);
    /* the tower under its Hub name, or without the vision_model level */
    const char *tower = "model.vision_embed_tokens.img_processor.vision_model.";
    if (!vc_tensors_find(w, "model.vision_embed_tokens.img_processor.vision_model.embeddings.patch_embedding.weight"))
        tower = "model.vision_embed_tokens.img_processor.";
    if (vc_vit_bind(&m->vit, w, tower, &vc) != 0)
        return -1;
    int64_t c4 = 4 * (int64_t)vc.hidden;
    m->owned = vc_malloc((size_t)(2 * text_dim + 2 * c4) * sizeof(float));
    if (!m->owned)
        return -1;
    float *b1 = m->owned, *b2 = b1 + text_dim, *glb = b2 + text_dim, *sub = glb + c4;
    const vc_tensor *t;
    if (!(t = need(w, "model.vision_embed_tokens.img_projection.0.weight")) ||
        vc_tensor_matrix(t, c4, text_dim, &m->proj1) != 0 ||
        !(t = need(w, "model.vision_embed_tokens.img_projection.0.bias")) || vc_tensor_to_f32(t, text_dim, b1) != 0 ||
        !(t = need(w, "model.vision_embed_tokens.img_projection.2.weight")) ||
        vc_tensor_matrix(t, text_dim, text_dim, &m->proj2) != 0 ||
        !(t = need(w, "model.vision_embed_tokens.img_projection.2.bias")) || vc_tensor_to_f32(t, text_dim, b2) != 0 ||
        !(t = need(w, "model.vision_embed_tokens.glb_GN")) || vc_tensor_to_f32(t, c4, glb) != 0 ||
        !(t = need(w, "model.vision_embed_tokens.sub_GN")) || vc_tensor_to_f32(t, c4, sub) != 0)
        return -1;
    m->proj1_b = b1;
    m->proj2_b = b2;
    m->glb_gn = glb;
    m->sub_gn = sub;
    /* Phi3VImageProcessor(num_crops=1, OPENAI_CLIP_MEAN/STD) unless the processor config says otherwise */
    if (vc_json_get_int(proc, "num_crops", INT_MIN, INT_MAX, 1, &m->num_crops) != 0)
        return vc_fail_ctx("phi3_v: image processor");
    if (m->num_crops < 1 || m->num_crops > 64)
        return vc_fail_code(VC_EXIT_MODEL, "phi3_v: num_crops %d is out of range (1..64)", m->num_crops);
    static const float clip_mean[3] = { 0.48145466f, 0.4578275f, 0.40821073f };
    static const float clip_std[3] = { 0.26862954f, 0.26130258f, 0.27577711f };
    double rescale;
    return vc_read_normalization(proc, clip_mean, clip_std, &rescale, m->mean, m->std);
}

void vc_phi3v_free(vc_phi3v *m)
{
    vc_vit_free(&m->vit);
    free(m->owned);
    memset(m, 0, sizeof *m);
}

/* ---- preprocessing (Phi3VImageProcessor.preprocess) ---- */

/* PIL's Image.TRANSPOSE: out(x, y) = in(y, x). */
static int transpose_image(const vc_image *in, vc_image *out)
{
    if (vc_image_alloc(out, in->height, in->width) != 0)
        return -1;
    for (int y = 0; y < in->height; y++)
        for (int x = 0; x < in->width; x++)
            memcpy(out->rgb + 3 * ((size_t)x * out->width + y), in->rgb + 3 * ((size_t)y * in->width + x), 3);
    return 0;
}

/* HD_transform: (transpose,) PIL bilinear resize, padding_336 with white, (transpose back). */
static int hd_transform(const vc_phi3v *m, const vc_image *img, vc_image *out)
{
    int W, H, hc, wc;
    if (vc_phi3v_geometry(m->num_crops, img->width, img->height, &W, &H, &hc, &wc) != 0)
        return -1;
    bool trans = img->width < img->height;
    int new_w = trans ? H : W, padded_h = trans ? W : H;
    vc_image t = { 0 }, r = { 0 }, p = { 0 };
    const vc_image *src = img;
    int rc = -1;
    if (trans) {
        if (transpose_image(img, &t) != 0)
            goto done;
        src = &t;
    }
    /* torchvision resize(img, [new_h, new_w]) on a PIL image: img.resize((new_w, new_h), BILINEAR) */
    int new_h = (int)(new_w / ((double)src->width / src->height));
    if (vc_image_resize(src, new_w, new_h, VC_RESAMPLE_BILINEAR, &r) != 0 || vc_image_alloc(&p, new_w, padded_h) != 0)
        goto done;
    int top = (padded_h - new_h) / 2;
    memset(p.rgb, 255, 3 * (size_t)new_w * padded_h);
    memcpy(p.rgb + 3 * (size_t)top * new_w, r.rgb, 3 * (size_t)new_w * new_h);
    if (trans) {
        rc = transpose_image(&p, out);
    } else {
        *out = p;
        p.rgb = NULL;
        rc = 0;
    }
done:
    vc_image_free(&t);
    vc_image_free(&r);
    vc_image_free(&p);
    return rc;
}

int vc_phi3v_preprocess(const vc_phi3v *m, const vc_image *img, float **pixels, int *n_tiles)
{
    vc_image hd;
    if (hd_transform(m, img, &hd) != 0)
        return -1;
    int W = hd.width, H = hd.height, hc = H / CROP, wc = W / CROP, n = 1 + hc * wc;
    size_t tile = 3 * (size_t)CROP * CROP, plane = (size_t)W * H;
    float *chw = vc_malloc(3 * plane * sizeof(float));
    float *out = vc_malloc((size_t)n * tile * sizeof(float));
    int rc = chw && out ? 0 : -1;
    if (rc == 0) {
        /* ToTensor (u8 / 255) then Normalize (x - mean) / std */
        vc_image_normalize(&hd, 1.0 / 255, m->mean, m->std, chw);
        /* the global image: F.interpolate(hd.unsqueeze(0), size=(336, 336), mode='bicubic') */
        rc = vc_planes_resize_bicubic(chw, 3, W, H, CROP, CROP, out);
    }
    /* the crops: reshape(1, 3, h//336, 336, w//336, 336).permute(0, 2, 4, 1, 3, 5) */
    for (int r = 0; rc == 0 && r < hc; r++)
        for (int c = 0; c < wc; c++) {
            float *dst = out + (size_t)(1 + r * wc + c) * tile;
            for (int ch = 0; ch < 3; ch++)
                for (int y = 0; y < CROP; y++)
                    memcpy(dst + ((size_t)ch * CROP + y) * CROP, chw + ch * plane + (size_t)(r * CROP + y) * W + c * CROP,
                           CROP * sizeof(float));
        }
    free(chw);
    vc_image_free(&hd);
    if (rc != 0) {
        free(out);
        return -1;
    }
    *pixels = out;
    *n_tiles = n;
    return 0;
}

/* ---- features (Phi3ImageEmbedding.hd_feature_transform) ---- */

/* reshape_hd_patches_2x2merge of one tile's hidden states (class token
 * first): merged[i*12 + j][(dy*2 + dx)*C + c] = patch (2i+dy, 2j+dx). */
static void merge_2x2(const float *hidden, int C, float *merged)
{
    int g = 2 * MERGED;
    for (int i = 0; i < MERGED; i++)
        for (int j = 0; j < MERGED; j++)
            for (int dy = 0; dy < 2; dy++)
                for (int dx = 0; dx < 2; dx++)
                    memcpy(merged + ((size_t)(i * MERGED + j) * 4 + dy * 2 + dx) * C,
                           hidden + (size_t)(1 + (2 * i + dy) * g + 2 * j + dx) * C, (size_t)C * sizeof(float));
}

int vc_phi3v_encode(const vc_phi3v *m, const vc_image *img, float **embd, int *n_tokens)
{
    float *pixels;
    int n_tiles;
    if (vc_phi3v_preprocess(m, img, &pixels, &n_tiles) != 0)
        return -1;
    int W, H, hc, wc;
    vc_phi3v_geometry(m->num_crops, img->width, img->height, &W, &H, &hc, &wc);
    int C = m->vit.cfg.hidden, T = vc_vit_tokens(&m->vit), D = m->text_dim;
    size_t c4 = 4 * (size_t)C;
    int total = (hc * wc + 1) * PER_CROP + 1 + (hc + 1) * MERGED;
    float *hidden = vc_malloc((size_t)n_tiles * T * C * sizeof(float));
    float *merged = vc_malloc((size_t)n_tiles * PER_CROP * c4 * sizeof(float));
    float *seq = vc_malloc((size_t)total * c4 * sizeof(float));
    float *mid = vc_malloc((size_t)total * D * sizeof(float));
    float *out = vc_malloc((size_t)total * D * sizeof(float));
    int rc = hidden && merged && seq && mid && out && n_tiles == 1 + hc * wc ? 0 : -1;
    /* img_processor(pixels).hidden_states[layer_idx] for every tile, 2x2-merged */
    if (rc == 0)
        rc = vc_vit_encode_batch(&m->vit, pixels, n_tiles, m->feature_layer, false, hidden);
    for (int t = 0; rc == 0 && t < n_tiles; t++)
        merge_2x2(hidden + (size_t)t * T * C, C, merged + (size_t)t * PER_CROP * c4);
    if (rc == 0) {
        float *o = seq;
        /* sub_image_features_hd_newline: the crops tiled (h_crop*12) x (w_crop*12), sub_GN after each row */
        for (int R = 0; R < hc * MERGED; R++) {
            for (int Cc = 0; Cc < wc * MERGED; Cc++, o += c4) {
                int t = 1 + (R / MERGED) * wc + Cc / MERGED, pos = (R % MERGED) * MERGED + Cc % MERGED;
                memcpy(o, merged + ((size_t)t * PER_CROP + pos) * c4, c4 * sizeof(float));
            }
            memcpy(o, m->sub_gn, c4 * sizeof(float));
            o += c4;
        }
        memcpy(o, m->glb_gn, c4 * sizeof(float));   /* glb_GN */
        o += c4;
        /* global_image_features_hd_newline: 12 rows of 12, sub_GN after each */
        for (int i = 0; i < MERGED; i++) {
            memcpy(o, merged + (size_t)i * MERGED * c4, MERGED * c4 * sizeof(float));
            o += MERGED * c4;
            memcpy(o, m->sub_gn, c4 * sizeof(float));
            o += c4;
        }
        if (o != seq + (size_t)total * c4)
            rc = vc_fail("phi3_v feature count mismatch");
    }
    if (rc == 0) {
        /* img_projection: Linear(4C, D) -> GELU -> Linear(D, D) */
        vc_linear(&m->proj1, m->proj1_b, seq, total, mid);
        vc_act_apply(VC_ACT_GELU, mid, (size_t)total * D);
        vc_linear(&m->proj2, m->proj2_b, mid, total, out);
    }
    free(pixels);
    free(hidden);
    free(merged);
    free(seq);
    free(mid);
    if (rc != 0) {
        free(out);
        return -1;
    }
    *embd = out;
    *n_tokens = total;
    return 0;
}

/* ---- the family's ops table (include/vision/family.h) ---- */

static int ops_load(void *state, const vc_vision_source *src, vc_vision *v)
{
    if (vc_phi3v_load(state, src->config, src->processor, src->weights, src->text_dim) != 0)
        return -1;
    v->image_token_id = vc_tokenizer_size(src->tok);   /* see phi3v.h: one id past the tokenizer's */
    snprintf(v->image_token, sizeof v->image_token, "<|image_k|>");
    return 0;
}

static void ops_free(void *state) { vc_phi3v_free(state); }

static int ops_preprocess(const void *state, const vc_image *img, float **pixels, int *n_tiles)
{
    return vc_phi3v_preprocess(state, img, pixels, n_tiles);
}

static int ops_encode(const void *state, const vc_image *img, vc_image_embd *out)
{
    return vc_phi3v_encode(state, img, &out->embd, &out->n_tokens);
}

static int ops_count(const void *state, int width, int height)
{
    return vc_phi3v_count(((const vc_phi3v *)state)->num_crops, width, height);
}

/* "<|image_k|>" at p: its k, and where the tag ends; 0 if p holds none. */
static int image_tag(const char *p, const char **end)
{
    static const char open[] = "<|image_";
    if (strncmp(p, open, sizeof open - 1) != 0)
        return 0;
    const char *q = p + sizeof open - 1, *d = q;
    while (*d >= '0' && *d <= '9')
        d++;
    if (d == q || d - q > 9 || strncmp(d, "|>", 2) != 0)
        return 0;
    *end = d + 2;
    long k = strtol(q, NULL, 10);
    return k > 0 ? (int)k : -1;    /* <|image_0|> matches the pattern but is no image */
}

static int append_ids(int32_t **ids, size_t *n, size_t *cap, const int32_t *add, size_t k)
{
    if (vc_reserve((void **)ids, cap, *n + k + 1, sizeof **ids) != 0)
        return -1;
    memcpy(*ids + *n, add, k * sizeof **ids);
    *n += k;
    return 0;
}

static int append_chunk(const vc_vision *v, const char *s, size_t len, int32_t **ids, size_t *n, size_t *cap)
{
    int32_t *c;
    size_t nc;
    /* self.tokenizer(chunk).input_ids: every chunk with the tokenizer's special tokens */
    if (vc_tokenizer_encode(v->tok, s, len, true, &c, &nc) != 0)
        return -1;
    int rc = append_ids(ids, n, cap, c, nc);
    free(c);
    return rc;
}

/* Phi3VProcessor._convert_images_texts_to_inputs: re.split on <|image_\d+\|>,
 * each chunk tokenized with BOS, each tag replaced by its image's tokens. */
static int ops_tokenize(const vc_vision *v, const char *text, bool special, const vc_image_embd *images, int n_images,
                        int32_t **out, size_t *n_out)
{
    (void)special;   /* the processor always tokenizes with the tokenizer's special tokens */
    if (n_images == 0)   /* no images: the whole text through the tokenizer, tags as plain text */
        return vc_tokenizer_encode(v->tok, text, strlen(text), true, out, n_out);
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    int *seen = vc_calloc((size_t)n_images, sizeof *seen), rc = seen ? 0 : -1;
    const char *chunk = text;
    for (const char *p = text; rc == 0 && *p; p++) {
        const char *end;
        int k = image_tag(p, &end);
        if (k == 0)
            continue;
        if (k < 0 || k > n_images || seen[k - 1]++) {
            rc = vc_fail_code(VC_EXIT_INPUT, "phi3_v: image tag %.*s does not name one of the %d images once",
                              (int)(end - p), p, n_images);
            break;
        }
        rc = append_chunk(v, chunk, (size_t)(p - chunk), &ids, &n, &cap);
        if (rc == 0 && vc_reserve((void **)&ids, &cap, n + (size_t)images[k - 1].n_tokens + 1, sizeof *ids) != 0)
            rc = -1;
        for (int i = 0; rc == 0 && i < images[k - 1].n_tokens; i++)
            ids[n++] = v->image_token_id;
        chunk = end;
        p = end - 1;
    }
    for (int k = 0; rc == 0 && k < n_images; k++)
        if (!seen[k])
            rc = vc_fail_code(VC_EXIT_INPUT, "phi3_v: %d images but no <|image_%d|> in the prompt", n_images, k + 1);
    if (rc == 0)   /* the last chunk, also when empty (the tokenizer then gives BOS alone) */
        rc = append_chunk(v, chunk, strlen(chunk), &ids, &n, &cap);
    free(seen);
    if (rc != 0) {
        free(ids);
        return -1;
    }
    *out = ids;
    *n_out = n;
    return 0;
}

/* Low memory: one crop and the global image per picture. */
static void ops_fewer_tiles(void *state) { ((vc_phi3v *)state)->num_crops = 1; }

static const char *const model_types[] = { "phi3_v", NULL };

const vc_vision_family vc_family_phi3v = {
    .name = "phi3_v",
    .model_types = model_types,
    .state_size = sizeof(vc_phi3v),
    .message_image_fmt = "<|image_%d|>\n",   /* the model card's prompts: each image numbered, then a newline */
    .pixels_packed = false,
    .numbered_images = true,
    .load = ops_load,
    .free = ops_free,
    .preprocess = ops_preprocess,
    .encode = ops_encode,
    .count = ops_count,
    .expand = NULL,
    .tokenize = ops_tokenize,
    .fewer_tiles = ops_fewer_tiles,
};
