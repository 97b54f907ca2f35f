/* llava_next.c - see include/vision/llava_next.h */
#include "vision/llava_next.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/common.h"
#include "core/json.h"
#include "vision/family.h"
#include "vision/processor.h"

/* ---- configuration ---- */

static int read_processor(vc_llava_next *m, json_t *p)
{
    json_t *size = json_object_get(p, "size"), *crop = json_object_get(p, "crop_size");
    int resample;
    if (vc_json_get_int(size, "shortest_edge", INT_MIN, INT_MAX, 0, &m->shortest_edge) != 0)
        return vc_fail_ctx("image processor");
    if (m->shortest_edge <= 0) {
        if (vc_json_get_int(size, "height", INT_MIN, INT_MAX, m->vit.cfg.image_size, &m->size_h) != 0 ||
            vc_json_get_int(size, "width", INT_MIN, INT_MAX, m->size_h, &m->size_w) != 0)
            return vc_fail_ctx("image processor");
        m->shortest_edge = VC_MIN(m->size_h, m->size_w);
        if (m->size_h <= 0 || m->size_w <= 0 || m->size_h > 4096 || m->size_w > 4096)
            return vc_fail_code(VC_EXIT_MODEL, "image processor sizes are invalid");
    }
    if (vc_json_get_int(crop, "height", INT_MIN, INT_MAX, m->shortest_edge, &m->crop_h) != 0 ||
        vc_json_get_int(crop, "width", INT_MIN, INT_MAX, m->crop_h, &m->crop_w) != 0 ||
        vc_json_get_int(p, "resample", INT_MIN, INT_MAX, VC_RESAMPLE_BICUBIC, &resample) != 0)
        return vc_fail_ctx("image processor");
    m->resample = (vc_resample)resample;
    static const float clip_mean[3] = { 0.48145466f, 0.4578275f, 0.40821073f };
    static const float clip_std[3] = { 0.26862954f, 0.26130258f, 0.27577711f };
    if (vc_read_normalization(p, clip_mean, clip_std, &m->rescale, m->mean, m->std) != 0)
        return -1;
    if (m->shortest_edge <= 0 || m->crop_h <= 0 || m->crop_w <= 0 || m->shortest_edge > 4096 || m->crop_h > 4096 ||
        m->crop_w > 4096)
        return vc_fail_code(VC_EXIT_MODEL, "image processor sizes are invalid");
    if (m->crop_h != m->vit.cfg.image_size || m->crop_w != m->vit.cfg.image_size)
        return vc_fail_code(VC_EXIT_MODEL, "crop size %dx%d does not match the vision tower's %d", m->crop_w,
                            m->crop_h, m->vit.cfg.image_size);
    return 0;
}

static const char *first_existing(const vc_tensor_set *w, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (vc_tensors_find(w, names[i]))
            return names[i];
    return names[0];
}

int vc_llava_next_load(vc_llava_next *m, json_t *cfg, json_t *proc, const vc_tensor_set *w, int text_dim)
{
    memset(m, 0, sizeof *m);
    m->text_dim = text_dim;
    vc_vit_config vc;
    if (vc_vit_read_clip_config(json_object_get(cfg, "vision_config"), &vc) != 0)
        return -1;
    /* the tower under its Hub name, or as transformers 5 saves it */
    const char *towers[] = { "vision_tower.vision_model.", "vision_tower.", "model.vision_tower.vision_model.",
                             "model.vision_tower." };
    const char *tower = towers[0];
    for (size_t i = 0; i < VC_ARRAY_LEN(towers); i++) {
        char probe[256];
        snprintf(probe, sizeof probe, "%sembeddings.patch_embedding.weight", towers[i]);
        if (vc_tensors_find(w, probe)) {
            tower = towers[i];
            break;
        }
    }
    if (vc_vit_bind(&m->vit, w, tower, &vc) != 0)
        return -1;
    /* an int, or a list whose hidden states are concatenated along the features */
    json_t *layer = json_object_get(cfg, "vision_feature_layer");
    size_t n_layers;
    if (vc_json_int_list(layer, "vision_feature_layer", INT_MIN, INT_MAX, m->feature_layers, VC_MAX_FEATURE_LAYERS,
                         &n_layers) != 0)
        return -1;
    if (!layer || json_is_null(layer))
        m->feature_layers[n_layers++] = -2;
    if (n_layers == 0)
        return vc_fail_code(VC_EXIT_MODEL, "vision_feature_layer must be an integer or a list of 1 to %d integers",
                            VC_MAX_FEATURE_LAYERS);
    m->n_feature_layers = (int)n_layers;
    for (int k = 0; k < m->n_feature_layers; k++) {
        int fl = m->feature_layers[k];
        if (fl < -(vc.layers + 1) || fl > vc.layers)
            return vc_fail_code(VC_EXIT_MODEL, "vision feature layer %d does not exist (%d layers)", fl, vc.layers);
    }
    /* "full" keeps the class token, whose extra row per tile LLaVA-NeXT's
     * pack_image_features cannot lay out on the patch grid (transformers fails) */
    const char *strategy = json_string_value(json_object_get(cfg, "vision_feature_select_strategy"));
    if (strategy && strcmp(strategy, "default") != 0)
        return vc_fail_code(VC_EXIT_MODEL, "vision_feature_select_strategy '%s' does not fit LLaVA-NeXT's feature "
                            "grid (only 'default' does; transformers fails on it too)", strategy);
    m->drop_cls = true;
    const char *act = json_string_value(json_object_get(cfg, "projector_hidden_act"));
    int a = vc_act_from_name(act ? act : "gelu");
    if (a < 0)
        return vc_fail_code(VC_EXIT_MODEL, "projector activation '%s' is not supported", act);
    m->proj_act = (vc_act)a;
    json_t *pins = json_object_get(cfg, "image_grid_pinpoints"), *pin;
    size_t i;
    json_array_foreach(pins, i, pin)
    {
        if (i >= VC_MAX_PINPOINTS)
            return vc_fail_code(VC_EXIT_MODEL, "too many image_grid_pinpoints");
        size_t n_pin;
        if (vc_json_int_list(pin, "image_grid_pinpoints[]", 1, 8192, m->pinpoints[i], 2, &n_pin) != 0 || n_pin != 2)
            return vc_fail_code(VC_EXIT_MODEL, "image_grid_pinpoints has an invalid entry");
        m->n_pinpoints++;
    }
    if (m->n_pinpoints == 0)
        return vc_fail_code(VC_EXIT_MODEL, "config.json has no image_grid_pinpoints");
    /* projector and newline */
    const char *l1[] = { "multi_modal_projector.linear_1.weight", "model.multi_modal_projector.linear_1.weight" };
    const char *p1 = first_existing(w, l1, 2);
    bool modern = strncmp(p1, "model.", 6) == 0;
    const char *pre = modern ? "model." : "";
    char name[256];
    const vc_tensor *t;
    int h = vc.hidden;
    m->owned = vc_malloc((size_t)(3 * text_dim) * sizeof(float));
    if (!m->owned)
        return -1;
    struct { const char *leaf; int64_t cols, rows; vc_matrix *mat; float *bias; } parts[] = {
        { "multi_modal_projector.linear_1", (int64_t)h * m->n_feature_layers, text_dim, &m->proj1, m->owned },
        { "multi_modal_projector.linear_2", text_dim, text_dim, &m->proj2, m->owned + text_dim },
    };
    for (size_t k = 0; k < 2; k++) {
        snprintf(name, sizeof name, "%s%s.weight", pre, parts[k].leaf);
        if (!(t = vc_tensors_find(w, name)))
            return vc_fail_code(VC_EXIT_MODEL, "model has no tensor '%s'", name);
        if (vc_tensor_matrix(t, parts[k].cols, parts[k].rows, parts[k].mat) != 0)
            return -1;
        snprintf(name, sizeof name, "%s%s.bias", pre, parts[k].leaf);
        if ((t = vc_tensors_find(w, name))) {
            if (vc_tensor_to_f32(t, text_dim, parts[k].bias) != 0)
                return -1;
            if (k == 0)
                m->proj1_b = parts[k].bias;
            else
                m->proj2_b = parts[k].bias;
        }
    }
    snprintf(name, sizeof name, "%simage_newline", pre);
    if (!(t = vc_tensors_find(w, name)))
        return vc_fail_code(VC_EXIT_MODEL, "model has no tensor '%s'", name);
    if (vc_tensor_to_f32(t, text_dim, m->owned + 2 * text_dim) != 0)
        return -1;
    m->newline = m->owned + 2 * text_dim;
    return read_processor(m, proc);
}

void vc_llava_next_free(vc_llava_next *m)
{
    vc_vit_free(&m->vit);
    free(m->owned);
    memset(m, 0, sizeof *m);
}

/* ---- geometry, as transformers computes it ---- */

/* select_best_resolution: most effective pixels, then least waste. */
static void best_resolution(const vc_llava_next *m, int h, int w, int *bh, int *bw)
{
    long best_eff = 0, best_waste = 0;
    bool have = false;
    for (int i = 0; i < m->n_pinpoints; i++) {
        int ph = m->pinpoints[i][0], pw = m->pinpoints[i][1];
        double scale = fmin((double)pw / w, (double)ph / h);
        long dw = (long)(w * scale), dh = (long)(h * scale);
        long eff = VC_MIN(dw * dh, (long)w * h), waste = (long)pw * ph - eff;
        if (!have || eff > best_eff || (eff == best_eff && waste < best_waste)) {
            best_eff = eff;
            best_waste = waste;
            *bh = ph;
            *bw = pw;
            have = true;
        }
    }
}

/* get_patch_output_size: fit inside the target, keeping the aspect ratio. */
static void fit_size(int h, int w, int th, int tw, int *nh, int *nw)
{
    double sw = (double)tw / w, sh = (double)th / h;
    if (sw < sh) {
        *nw = tw;
        *nh = VC_MIN((int)ceil(h * sw), th);
    } else {
        *nh = th;
        *nw = VC_MIN((int)ceil(w * sh), tw);
    }
}

/* Python's int(round(x, 7)). */
static int round7(double x) { return (int)(nearbyint(x * 1e7) / 1e7); }

/* unpad_image on a (grid_h x grid_w) feature grid of an h x w image:
 * the rows or columns to keep. */
static void unpad(int h, int w, int gh, int gw, int *r0, int *r1, int *c0, int *c1)
{
    *r0 = 0, *r1 = gh, *c0 = 0, *c1 = gw;
    if ((double)w / h > (double)gw / gh) {
        int nh = round7(h * ((double)gw / w)), pad = (gh - nh) / 2;
        *r0 = pad;
        *r1 = gh - pad;
    } else {
        int nw = round7(w * ((double)gh / h)), pad = (gw - nw) / 2;
        *c0 = pad;
        *c1 = gw - pad;
    }
}

int vc_llava_next_count(const vc_llava_next *m, int width, int height)
{
    int bh, bw, g = m->vit.cfg.image_size / m->vit.cfg.patch_size;
    best_resolution(m, height, width, &bh, &bw);
    int gh = bh / m->vit.cfg.image_size * g, gw = bw / m->vit.cfg.image_size * g, r0, r1, c0, c1;
    unpad(height, width, gh, gw, &r0, &r1, &c0, &c1);
    int base = g * g + (m->drop_cls ? 0 : 1);
    return base + (r1 - r0) * (c1 - c0 + 1);
}

/* ---- preprocessing ---- */

/* The processor's per-patch resize: to size {height, width} when given,
 * else the shortest edge to `se` (aspect kept), as get_resize_output_image_size. */
static int resize_shortest(const vc_llava_next *m, const vc_image *in, vc_image *out)
{
    if (m->size_h > 0)
        return vc_image_resize(in, m->size_w, m->size_h, m->resample, out);
    int w = in->width, h = in->height, nw, nh;
    if (w <= h) {
        nw = m->shortest_edge;
        nh = (int)((double)m->shortest_edge * h / w);
    } else {
        nh = m->shortest_edge;
        nw = (int)((double)m->shortest_edge * w / h);
    }
    return vc_image_resize(in, nw, nh, m->resample, out);
}

/* Center crop (zero padding where the image is smaller), then rescale and normalize. */
static void crop_normalize(const vc_llava_next *m, const vc_image *img, float *out)
{
    vc_image crop;
    if (vc_image_alloc(&crop, m->crop_w, m->crop_h) != 0)
        return;
    int top = (img->height - m->crop_h) / 2, left = (img->width - m->crop_w) / 2;
    for (int y = 0; y < m->crop_h; y++)
        for (int x = 0; x < m->crop_w; x++) {
            int sy = y + top, sx = x + left;
            if (sy >= 0 && sy < img->height && sx >= 0 && sx < img->width)
                memcpy(crop.rgb + 3 * ((size_t)y * m->crop_w + x), img->rgb + 3 * ((size_t)sy * img->width + sx), 3);
        }
    vc_image_normalize(&crop, m->rescale, m->mean, m->std, out);
    vc_image_free(&crop);
}

/* One tile: the processor's per-patch resize (shortest edge), crop, normalize. */
static int finish_tile(const vc_llava_next *m, const vc_image *tile, float *out)
{
    vc_image r;
    if (resize_shortest(m, tile, &r) != 0)
        return -1;
    crop_normalize(m, &r, out);
    vc_image_free(&r);
    return 0;
}

int vc_llava_next_preprocess(const vc_llava_next *m, const vc_image *img, float **pixels, int *n_tiles)
{
    int bh, bw, nh, nw, S = m->crop_h;
    best_resolution(m, img->height, img->width, &bh, &bw);
    fit_size(img->height, img->width, bh, bw, &nh, &nw);
    int rows = bh / S, cols = bw / S, n = 1 + rows * cols;
    size_t tile = 3 * (size_t)S * S;
    float *out = vc_malloc((size_t)n * tile * sizeof(float));
    vc_image base = { 0 }, fitted = { 0 }, padded = { 0 }, piece = { 0 };
    int rc = -1;
    if (!out)
        return -1;
    /* the whole image, squashed to the processor's size (shortest_edge square,
     * or height x width), then resized and cropped like every patch */
    int base_w = m->size_h > 0 ? m->size_w : m->shortest_edge, base_h = m->size_h > 0 ? m->size_h : m->shortest_edge;
    if (vc_image_resize(img, base_w, base_h, m->resample, &base) != 0 || finish_tile(m, &base, out) != 0)
        goto done;
    /* aspect-preserving fit into the best resolution, zero-padded around the center */
    if (vc_image_resize(img, nw, nh, m->resample, &fitted) != 0 || vc_image_alloc(&padded, bw, bh) != 0 ||
        vc_image_alloc(&piece, S, S) != 0)
        goto done;
    int top = (bh - nh) / 2, left = (bw - nw) / 2;
    for (int y = 0; y < nh; y++)
        memcpy(padded.rgb + 3 * ((size_t)(y + top) * bw + left), fitted.rgb + 3 * (size_t)y * nw, 3 * (size_t)nw);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            for (int y = 0; y < S; y++)
                memcpy(piece.rgb + 3 * (size_t)y * S, padded.rgb + 3 * ((size_t)(r * S + y) * bw + c * S), 3 * (size_t)S);
            if (finish_tile(m, &piece, out + (size_t)(1 + r * cols + c) * tile) != 0)
                goto done;
        }
    rc = 0;
done:
    vc_image_free(&base);
    vc_image_free(&fitted);
    vc_image_free(&padded);
    vc_image_free(&piece);
    if (rc != 0) {
        free(out);
        return -1;
    }
    *pixels = out;
    *n_tiles = n;
    return 0;
}

/* ---- features ---- */

/* Tower features of one tile, projected to the text model: g*g x text_dim. */
static int tile_features(const vc_llava_next *m, const float *pixels, float *hidden, float *mid, float *out)
{
    int T = vc_vit_tokens(&m->vit), first = m->drop_cls ? 1 : 0, n = T - first, h = m->vit.cfg.hidden;
    int nl = m->n_feature_layers;
    if (nl == 1) {
        if (vc_vit_encode(&m->vit, pixels, m->feature_layers[0], false, hidden) != 0)
            return -1;
    } else {
        /* torch.cat(hidden_states[l] for l in layers, dim=-1): rows of nl * h */
        float *one = vc_malloc((size_t)T * h * sizeof(float));
        if (!one)
            return -1;
        for (int k = 0; k < nl; k++) {
            if (vc_vit_encode(&m->vit, pixels, m->feature_layers[k], false, one) != 0) {
                free(one);
                return -1;
            }
            for (int t = 0; t < T; t++)
                memcpy(hidden + ((size_t)t * nl + k) * h, one + (size_t)t * h, (size_t)h * sizeof(float));
        }
        free(one);
    }
    vc_linear(&m->proj1, m->proj1_b, hidden + (size_t)first * h * nl, n, mid);
    vc_act_apply(m->proj_act, mid, (size_t)n * m->text_dim);
    vc_linear(&m->proj2, m->proj2_b, mid, n, out);
    return 0;
}

int vc_llava_next_encode(const vc_llava_next *m, const vc_image *img, float **embd, int *n_tokens)
{
    float *pixels;
    int n_tiles;
    if (vc_llava_next_preprocess(m, img, &pixels, &n_tiles) != 0)
        return -1;
    int g = m->vit.cfg.image_size / m->vit.cfg.patch_size, T = vc_vit_tokens(&m->vit), D = m->text_dim;
    int per = m->drop_cls ? g * g : T, S = m->crop_h;
    size_t tile = 3 * (size_t)S * S;
    float *hidden = vc_malloc((size_t)T * m->vit.cfg.hidden * m->n_feature_layers * sizeof(float));
    float *mid = vc_malloc((size_t)T * D * sizeof(float));
    float *feats = vc_malloc((size_t)n_tiles * per * D * sizeof(float));
    int total = vc_llava_next_count(m, img->width, img->height);
    float *out = vc_malloc((size_t)total * D * sizeof(float));
    int rc = hidden && mid && feats && out ? 0 : -1;
    for (int t = 0; rc == 0 && t < n_tiles; t++)
        rc = tile_features(m, pixels + (size_t)t * tile, hidden, mid, feats + (size_t)t * per * D);
    if (rc == 0) {
        /* base tile, then the stitched grid without padding, a newline after each row */
        memcpy(out, feats, (size_t)per * D * sizeof(float));
        int bh, bw;
        best_resolution(m, img->height, img->width, &bh, &bw);
        int tiles_h = bh / S, tiles_w = bw / S, gh = tiles_h * g, gw = tiles_w * g, r0, r1, c0, c1;
        unpad(img->height, img->width, gh, gw, &r0, &r1, &c0, &c1);
        float *o = out + (size_t)per * D;
        for (int r = r0; r < r1; r++) {
            for (int c = c0; c < c1; c++) {
                int tile_index = 1 + (r / g) * tiles_w + c / g, within = (r % g) * g + c % g;
                memcpy(o, feats + ((size_t)tile_index * per + within) * D, (size_t)D * sizeof(float));
                o += D;
            }
            memcpy(o, m->newline, (size_t)D * sizeof(float));
            o += D;
        }
        if (o != out + (size_t)total * D)
            rc = vc_fail("llava_next feature count mismatch");
    }
    free(pixels);
    free(hidden);
    free(mid);
    free(feats);
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
    return vc_llava_next_load(state, src->config, src->processor, src->weights, src->text_dim);
}

static void ops_free(void *state) { vc_llava_next_free(state); }

static int ops_preprocess(const void *state, const vc_image *img, float **pixels, int *n_tiles)
{
    return vc_llava_next_preprocess(state, img, pixels, n_tiles);
}

static int ops_encode(const void *state, const vc_image *img, vc_image_embd *out)
{
    return vc_llava_next_encode(state, img, &out->embd, &out->n_tokens);
}

static int ops_count(const void *state, int width, int height) { return vc_llava_next_count(state, width, height); }

/* The processor writes one placeholder token per feature row. */
static char *ops_expand(const vc_vision *v, const vc_image_embd *e)
{
    return vc_vision_repeat(v->image_token, e->n_tokens);
}

/* Low memory: only the smallest grid pinpoint remains. */
static void ops_fewer_tiles(void *state)
{
    vc_llava_next *ln = state;
    int best = 0;
    for (int i = 1; i < ln->n_pinpoints; i++)
        if ((long)ln->pinpoints[i][0] * ln->pinpoints[i][1] < (long)ln->pinpoints[best][0] * ln->pinpoints[best][1])
            best = i;
    ln->pinpoints[0][0] = ln->pinpoints[best][0];
    ln->pinpoints[0][1] = ln->pinpoints[best][1];
    ln->n_pinpoints = 1;
}

static const char *const model_types[] = { "llava_next", NULL };

const vc_vision_family vc_family_llava_next = {
    .name = "llava_next",
    .model_types = model_types,
    .state_size = sizeof(vc_llava_next),
    .message_image_fmt = "%s\n",   /* LLaVA's template writes "<image>\n" per image */
    .pixels_packed = false,
    .load = ops_load,
    .free = ops_free,
    .preprocess = ops_preprocess,
    .encode = ops_encode,
    .count = ops_count,
    .expand = ops_expand,
    .tokenize = NULL,
    .fewer_tiles = ops_fewer_tiles,
};
