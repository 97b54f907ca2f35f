/* idefics3.c - see include/vision/idefics3.h */
#include "vision/idefics3.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/common.h"
#include "vision/family.h"
#include "vision/processor.h"

#include <limits.h>

#include "core/json.h"

#define MAX_IMAGE_SIZE 4096   /* the processor's absolute limit after resizing */

int vc_idefics3_load(vc_idefics3 *m, json_t *cfg, json_t *proc, json_t *proc_root, const vc_tensor_set *w, int text_dim)
{
    memset(m, 0, sizeof *m);
    m->text_dim = text_dim;
    json_t *vc = json_object_get(cfg, "vision_config");
    vc_vit_config c = { 0 };
    if (vc_json_get_int(vc, "hidden_size", INT_MIN, INT_MAX, 1152, &c.hidden) != 0 ||
        vc_json_get_int(vc, "intermediate_size", INT_MIN, INT_MAX, 4304, &c.ffn) != 0 ||
        vc_json_get_int(vc, "num_hidden_layers", INT_MIN, INT_MAX, 27, &c.layers) != 0 ||
        vc_json_get_int(vc, "num_attention_heads", INT_MIN, INT_MAX, 16, &c.heads) != 0 ||
        vc_json_get_int(vc, "image_size", INT_MIN, INT_MAX, 384, &c.image_size) != 0 ||
        vc_json_get_int(vc, "patch_size", INT_MIN, INT_MAX, 14, &c.patch_size) != 0)
        return vc_fail_ctx("vision_config");
    double eps;
    if (vc_json_get_num(vc, "layer_norm_eps", 0, 1, 1e-6, &eps) != 0)
        return vc_fail_ctx("vision_config");
    c.norm_eps = (float)eps;
    const char *act = json_string_value(json_object_get(vc, "hidden_act"));
    int a = vc_act_from_name(act ? act : "gelu_pytorch_tanh");
    if (a < 0)
        return vc_fail_code(VC_EXIT_MODEL, "vision activation '%s' is not supported", act);
    c.act = (vc_act)a;
    c.bucketed_positions = true;
    if (vc_vit_bind(&m->vit, w, "model.vision_model.", &c) != 0)
        return -1;
    if (vc_json_get_int(cfg, "scale_factor", INT_MIN, INT_MAX, 2, &m->scale) != 0)
        return -1;
    int g = c.image_size / c.patch_size;
    if (m->scale <= 0 || g % m->scale != 0)
        return vc_fail_code(VC_EXIT_MODEL, "scale_factor %d does not divide the %d-patch grid", m->scale, g);
    const vc_tensor *t = vc_tensors_find(w, "model.connector.modality_projection.proj.weight");
    if (!t)
        return vc_fail_code(VC_EXIT_MODEL, "model has no tensor 'model.connector.modality_projection.proj.weight'");
    if (vc_tensor_matrix(t, (int64_t)c.hidden * m->scale * m->scale, text_dim, &m->proj) != 0)
        return -1;
    /* processor */
    int resample;
    if (vc_json_get_int(json_object_get(proc, "size"), "longest_edge", INT_MIN, INT_MAX, 4 * c.image_size,
                        &m->longest_edge) != 0 ||
        vc_json_get_int(json_object_get(proc, "max_image_size"), "longest_edge", INT_MIN, INT_MAX, c.image_size,
                        &m->tile) != 0 ||
        vc_json_get_int(proc, "resample", INT_MIN, INT_MAX, VC_RESAMPLE_LANCZOS, &resample) != 0)
        return vc_fail_ctx("image processor");
    m->do_resize = vc_json_flag(proc, "do_resize", true);
    m->do_split = vc_json_flag(proc, "do_image_splitting", true);
    m->resample = (vc_resample)resample;
    static const float half[3] = { 0.5f, 0.5f, 0.5f };
    if (vc_read_normalization(proc, half, half, &m->rescale, m->mean, m->std) != 0)
        return -1;
    if (vc_json_get_int(proc_root, "image_seq_len", INT_MIN, INT_MAX, g * g / (m->scale * m->scale),
                        &m->image_seq_len) != 0)
        return vc_fail_ctx("image processor");
    if (m->tile != c.image_size)
        return vc_fail_code(VC_EXIT_MODEL, "max_image_size %d differs from the vision tower's %d", m->tile, c.image_size);
    if (m->image_seq_len != g * g / (m->scale * m->scale))
        return vc_fail_code(VC_EXIT_MODEL, "image_seq_len %d does not match the tower (%d)", m->image_seq_len,
                            g * g / (m->scale * m->scale));
    if (m->longest_edge <= 0 || m->longest_edge > MAX_IMAGE_SIZE)
        return vc_fail_code(VC_EXIT_MODEL, "image processor size is invalid");
    return 0;
}

void vc_idefics3_free(vc_idefics3 *m)
{
    vc_vit_free(&m->vit);
    memset(m, 0, sizeof *m);
}

/* ---- geometry: the processor's arithmetic ---- */

/* Longest edge to `max_len`, the other edge even, then capped at 4096. */
static void resize_longest(int h, int w, int max_len, int *oh, int *ow)
{
    double aspect = (double)w / h;
    if (w >= h) {
        w = max_len;
        h = (int)(w / aspect);
        if (h % 2)
            h++;
    } else {
        h = max_len;
        w = (int)(h * aspect);
        if (w % 2)
            w++;
    }
    h = VC_MAX(h, 1);
    w = VC_MAX(w, 1);
    aspect = (double)w / h;
    if (w >= h && w > MAX_IMAGE_SIZE) {
        w = MAX_IMAGE_SIZE;
        h = (int)(w / aspect);
    } else if (h > w && h > MAX_IMAGE_SIZE) {
        h = MAX_IMAGE_SIZE;
        w = (int)(h * aspect);
    }
    *oh = VC_MAX(h, 1);
    *ow = VC_MAX(w, 1);
}

/* resize_for_vision_encoder: both edges up to whole tiles. */
static void tile_multiple(int h, int w, int tile, int *oh, int *ow)
{
    double aspect = (double)w / h;
    if (w >= h) {
        w = (int)ceil((double)w / tile) * tile;
        h = (int)(w / aspect);
        h = (int)ceil((double)h / tile) * tile;
    } else {
        h = (int)ceil((double)h / tile) * tile;
        w = (int)(h * aspect);
        w = (int)ceil((double)w / tile) * tile;
    }
    *oh = h;
    *ow = w;
}

/* The image size the tiles are cut from. */
static void working_size(const vc_idefics3 *m, int w, int h, int *ww, int *wh)
{
    if (m->do_resize)
        resize_longest(h, w, m->longest_edge, &h, &w);
    if (m->do_split)
        tile_multiple(h, w, m->tile, &h, &w);
    else
        h = w = m->tile;
    *ww = w;
    *wh = h;
}

void vc_idefics3_grid(const vc_idefics3 *m, int width, int height, int *rows, int *cols)
{
    int w, h;
    working_size(m, width, height, &w, &h);
    if (m->do_split && (h > m->tile || w > m->tile)) {
        *rows = (h - m->tile) / m->tile + 1;
        *cols = (w - m->tile) / m->tile + 1;
    } else {
        *rows = *cols = 0;
    }
}

/* ---- preprocessing ---- */

int vc_idefics3_preprocess(const vc_idefics3 *m, const vc_image *img, float **pixels, int *n_tiles, int *rows, int *cols)
{
    int T = m->tile, h = img->height, w = img->width, rh, rw;
    vc_image a = { 0 }, b = { 0 }, piece = { 0 }, global = { 0 };
    const vc_image *cur = img;
    float *out = NULL;
    int rc = -1;
    if (m->do_resize) {
        resize_longest(h, w, m->longest_edge, &rh, &rw);
        if (vc_image_resize(cur, rw, rh, m->resample, &a) != 0)
            goto done;
        cur = &a;
    }
    if (m->do_split)
        tile_multiple(cur->height, cur->width, T, &rh, &rw);
    else
        rh = rw = T;
    if (vc_image_resize(cur, rw, rh, m->resample, &b) != 0)
        goto done;
    vc_idefics3_grid(m, img->width, img->height, rows, cols);
    int n = *rows * *cols + 1;
    size_t tile = 3 * (size_t)T * T;
    out = vc_malloc((size_t)n * tile * sizeof(float));
    if (!out || vc_image_alloc(&piece, T, T) != 0)
        goto done;
    if (*rows == 0) {
        vc_image_normalize(&b, m->rescale, m->mean, m->std, out);     /* a single tile: the image itself */
    } else {
        for (int r = 0; r < *rows; r++)
            for (int c = 0; c < *cols; c++) {
                for (int y = 0; y < T; y++)
                    memcpy(piece.rgb + 3 * (size_t)y * T, b.rgb + 3 * ((size_t)(r * T + y) * b.width + c * T),
                           3 * (size_t)T);
                vc_image_normalize(&piece, m->rescale, m->mean, m->std, out + (size_t)(r * *cols + c) * tile);
            }
        if (vc_image_resize(&b, T, T, m->resample, &global) != 0)
            goto done;
        vc_image_normalize(&global, m->rescale, m->mean, m->std, out + (size_t)(n - 1) * tile);
    }
    *n_tiles = n;
    rc = 0;
done:
    vc_image_free(&a);
    vc_image_free(&b);
    vc_image_free(&piece);
    vc_image_free(&global);
    if (rc != 0) {
        free(out);
        return -1;
    }
    *pixels = out;
    return 0;
}

/* Folds s x s neighbouring patches into one token: out[(h/s)*(g/s) + w/s]
 * gets A[h][w] at feature offset ((h%s)*s + w%s) * D, as transformers'
 * view/permute sequence lays it out. */
static void pixel_shuffle(const float *in, int g, int D, int s, float *out)
{
    int gs = g / s;
    for (int h = 0; h < g; h++)
        for (int w = 0; w < g; w++) {
            size_t t = (size_t)(h / s) * gs + w / s, off = ((size_t)(h % s) * s + w % s) * D;
            memcpy(out + t * (size_t)D * s * s + off, in + ((size_t)h * g + w) * D, (size_t)D * sizeof(float));
        }
}

int vc_idefics3_encode(const vc_idefics3 *m, const vc_image *img, float **embd, int *n_tokens, int *rows, int *cols)
{
    float *pixels;
    int n_tiles;
    if (vc_idefics3_preprocess(m, img, &pixels, &n_tiles, rows, cols) != 0)
        return -1;
    int g = m->vit.cfg.image_size / m->vit.cfg.patch_size, D = m->vit.cfg.hidden, T = g * g;
    int per = m->image_seq_len;
    float *hidden = vc_malloc((size_t)n_tiles * T * D * sizeof(float));
    float *shuffled = vc_malloc((size_t)n_tiles * T * D * sizeof(float));
    float *out = vc_malloc((size_t)n_tiles * per * m->text_dim * sizeof(float));
    int rc = hidden && shuffled && out ? 0 : -1;
    if (rc == 0)
        rc = vc_vit_encode_batch(&m->vit, pixels, n_tiles, -1, true, hidden);
    if (rc == 0) {   /* every tile's T x D shuffles to per rows of D * scale^2 */
        for (int t = 0; t < n_tiles; t++)
            pixel_shuffle(hidden + (size_t)t * T * D, g, D, m->scale, shuffled + (size_t)t * T * D);
        vc_linear(&m->proj, NULL, shuffled, n_tiles * per, out);
    }
    free(pixels);
    free(hidden);
    free(shuffled);
    if (rc != 0) {
        free(out);
        return -1;
    }
    *embd = out;
    *n_tokens = n_tiles * per;
    return 0;
}

/* ---- the family's ops table (include/vision/family.h) ---- */

static int ops_load(void *state, const vc_vision_source *src, vc_vision *v)
{
    return vc_idefics3_load(state, src->config, src->processor, src->processor_root, src->weights, src->text_dim);
}

static void ops_free(void *state) { vc_idefics3_free(state); }

static int ops_preprocess(const void *state, const vc_image *img, float **pixels, int *n_tiles)
{
    int rows, cols;
    return vc_idefics3_preprocess(state, img, pixels, n_tiles, &rows, &cols);
}

static int ops_encode(const void *state, const vc_image *img, vc_image_embd *out)
{
    return vc_idefics3_encode(state, img, &out->embd, &out->n_tokens, &out->rows, &out->cols);
}

static int ops_count(const void *state, int width, int height)
{
    const vc_idefics3 *m = state;
    int rows, cols;
    vc_idefics3_grid(m, width, height, &rows, &cols);
    return (rows * cols + 1) * m->image_seq_len;
}

/* Tiles as <fake><row_r_col_c><image>*N, a newline after each row, then a
 * blank line and <fake><global-img><image>*N<fake>. */
static char *ops_expand(const vc_vision *v, const vc_image_embd *e)
{
    const vc_idefics3 *m = v->state;
    const char *fake = "<fake_token_around_image>";
    char *tokens = vc_vision_repeat(v->image_token, m->image_seq_len);
    if (!tokens)
        return NULL;
    vc_buf b = { 0 };
    for (int r = 0; r < e->rows; r++) {
        for (int c = 0; c < e->cols; c++)
            vc_buf_printf(&b, "%s<row_%d_col_%d>%s", fake, r + 1, c + 1, tokens);
        vc_buf_putc(&b, '\n');
    }
    if (e->rows > 0)
        vc_buf_putc(&b, '\n');
    vc_buf_printf(&b, "%s<global-img>%s%s", fake, tokens, fake);
    free(tokens);
    return vc_buf_take(&b, NULL);
}

/* Low memory: no splitting, only the global image. */
static void ops_fewer_tiles(void *state) { ((vc_idefics3 *)state)->do_split = false; }

static const char *const model_types[] = { "idefics3", "smolvlm", NULL };

const vc_vision_family vc_family_idefics3 = {
    .name = "idefics3",
    .model_types = model_types,
    .state_size = sizeof(vc_idefics3),
    .message_image_fmt = "%s",    /* the template writes "<image>" per image */
    .pixels_packed = true,
    .load = ops_load,
    .free = ops_free,
    .preprocess = ops_preprocess,
    .encode = ops_encode,
    .count = ops_count,
    .expand = ops_expand,
    .tokenize = NULL,
    .fewer_tiles = ops_fewer_tiles,
};
