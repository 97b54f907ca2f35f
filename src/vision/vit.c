/* vit.c - see include/vision/vit.h */
#include "vision/vit.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/json.h"
#include "core/int8dot.h"
#include "core/kernels.h"
#include "core/threads.h"


void vc_layernorm(float *out, const float *x, const float *w, const float *b, int n, float eps)
{
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++)
        mean += x[i];
    mean /= n;
    for (int i = 0; i < n; i++)
        var += (x[i] - mean) * (x[i] - mean);
    float inv = 1.0f / sqrtf((float)(var / n) + eps);
    for (int i = 0; i < n; i++)
        out[i] = (float)(x[i] - mean) * inv * w[i] + b[i];
}

typedef struct {
    float *y;
    const float *b;
    int64_t width;
} bias_job;

static void bias_rows(void *ctx, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const bias_job *j = ctx;
    for (int64_t t = begin; t < end; t++)
        for (int64_t r = 0; r < j->width; r++)
            j->y[t * j->width + r] += j->b[r];
}

void vc_add_bias(float *y, const float *b, int tokens, int64_t width)
{
    if (!b)
        return;
    bias_job job = { y, b, width };
    if ((int64_t)tokens * width < 65536)   /* too little to share out */
        bias_rows(&job, 0, tokens, 0);
    else
        vc_parallel_for(tokens, bias_rows, &job);
}

void vc_linear(const vc_matrix *w, const float *b, const float *x, int tokens, float *y)
{
    vc_matmul(w, x, tokens, y);
    vc_add_bias(y, b, tokens, w->rows);
}

/* ---- binding ---- */

typedef struct {
    const vc_tensor_set *w;
    const char *prefix;
    float *pool;        /* floats copied so far go here */
    size_t used, cap;
} binder;

static const vc_tensor *need(binder *b, const char *leaf)
{
    char name[512];
    snprintf(name, sizeof name, "%s%s", b->prefix, leaf);
    const vc_tensor *t = vc_tensors_find(b->w, name);
    if (!t)
        vc_fail_code(VC_EXIT_MODEL, "model has no tensor '%s'", name);
    return t;
}

/* Copies a small tensor of n floats into the pool. */
static const float *vec(binder *b, const char *leaf, int64_t n)
{
    const vc_tensor *t = need(b, leaf);
    if (!t || b->used + (size_t)n > b->cap) {
        if (t)
            vc_fail_code(VC_EXIT_MODEL, "vision tensors larger than expected at '%s%s'", b->prefix, leaf);
        return NULL;
    }
    float *dst = b->pool + b->used;
    if (vc_tensor_to_f32(t, n, dst) != 0)
        return NULL;
    b->used += (size_t)n;
    return dst;
}

static int mat(binder *b, const char *leaf, int64_t cols, int64_t rows, vc_matrix *out)
{
    const vc_tensor *t = need(b, leaf);
    return t ? vc_tensor_matrix(t, cols, rows, out) : -1;
}

static int bind_layer(binder *b, int l, const vc_vit_config *c, vc_vit_layer *L)
{
    char n[128];
    int h = c->hidden, f = c->ffn;
#define LEAF(s) (snprintf(n, sizeof n, "encoder.layers.%d." s, l), n)
    if (!(L->ln1_w = vec(b, LEAF("layer_norm1.weight"), h)) || !(L->ln1_b = vec(b, LEAF("layer_norm1.bias"), h)) ||
        !(L->ln2_w = vec(b, LEAF("layer_norm2.weight"), h)) || !(L->ln2_b = vec(b, LEAF("layer_norm2.bias"), h)) ||
        !(L->q_b = vec(b, LEAF("self_attn.q_proj.bias"), h)) || !(L->k_b = vec(b, LEAF("self_attn.k_proj.bias"), h)) ||
        !(L->v_b = vec(b, LEAF("self_attn.v_proj.bias"), h)) ||
        !(L->o_b = vec(b, LEAF("self_attn.out_proj.bias"), h)) || !(L->fc1_b = vec(b, LEAF("mlp.fc1.bias"), f)) ||
        !(L->fc2_b = vec(b, LEAF("mlp.fc2.bias"), h)))
        return -1;
    if (mat(b, LEAF("self_attn.q_proj.weight"), h, h, &L->q) || mat(b, LEAF("self_attn.k_proj.weight"), h, h, &L->k) ||
        mat(b, LEAF("self_attn.v_proj.weight"), h, h, &L->v) || mat(b, LEAF("self_attn.out_proj.weight"), h, h, &L->o) ||
        mat(b, LEAF("mlp.fc1.weight"), h, f, &L->fc1) || mat(b, LEAF("mlp.fc2.weight"), f, h, &L->fc2))
        return -1;
#undef LEAF
    return 0;
}

/* MLX stores convolutions channels-last, [h][ky][kx][c]; the encoder gathers
 * patches as [c][ky][kx], so the weights are reordered once, to f32. */
static int bind_mlx_patch(vc_vit *v, const vc_tensor *pt)
{
    int p = v->cfg.patch_size, h = v->cfg.hidden;
    size_t pp = 3 * (size_t)p * p, src_row;
    float *row = vc_malloc(pp * sizeof *row);
    v->patch_owned = vc_malloc(pp * (size_t)h * sizeof(float));
    if (!row || !v->patch_owned || vc_dtype_row_bytes((vc_dtype)pt->type, (int64_t)pp, &src_row) != 0) {
        free(row);
        return -1;
    }
    for (int o = 0; o < h; o++) {
        vc_dequantize_row((vc_dtype)pt->type, (const uint8_t *)pt->data + (size_t)o * src_row, row, (int64_t)pp);
        float *dst = v->patch_owned + (size_t)o * pp;
        for (int ky = 0; ky < p; ky++)
            for (int kx = 0; kx < p; kx++)
                for (int ch = 0; ch < 3; ch++)
                    dst[((size_t)ch * p + ky) * p + kx] = row[((size_t)ky * p + kx) * 3 + ch];
    }
    free(row);
    v->patch = (vc_matrix){ VC_F32, (int64_t)pp, h, pp * sizeof(float), v->patch_owned };
    return 0;
}

/* Each layer's matrices laid out for the integer kernels (an image's
 * 1000-odd patches are one long prefill): the Q4_0/Q5_0/Q5_1/Q8_0/K-quant ones
 * interleaved, the other quantized ones requantized to Q8_0 first, and, with how
 * VC_INT8_REQUANTIZE (--int8-dot), the float ones too. Out of memory it stops: the rest stay as stored. */
static void requantize_layers(vc_vit *v, vc_int8_prepare how)
{
    v->int8_owned = vc_calloc((size_t)v->cfg.layers * 6, sizeof *v->int8_owned);
    for (int l = 0; v->int8_owned && l < v->cfg.layers; l++) {
        vc_vit_layer *L = &v->layers[l];
        vc_matrix *all[] = { &L->q, &L->k, &L->v, &L->o, &L->fc1, &L->fc2 };
        for (int i = 0; i < 6; i++) {
            int rc = vc_matrix_prepare_int8(all[i], how, &v->int8_owned[v->n_int8_owned]);
            if (rc < 0)
                return;
            v->n_int8_owned += rc;
        }
    }
}

int vc_vit_bind(vc_vit *v, const vc_tensor_set *w, const char *prefix, const vc_vit_config *c)
{
    memset(v, 0, sizeof *v);
    v->cfg = *c;
    if (c->hidden <= 0 || c->ffn <= 0 || c->layers <= 0 || c->heads <= 0 || c->hidden % c->heads ||
        c->patch_size <= 0 || c->image_size < c->patch_size || c->image_size % c->patch_size || c->hidden > 16384 ||
        c->layers > 256 || c->image_size > 4096)
        return vc_fail_code(VC_EXIT_MODEL, "vision config has invalid sizes");
    int n_pos = vc_vit_tokens(v), h = c->hidden;
    binder b = { w, prefix, NULL, 0, 0 };
    b.cap = (size_t)h * (n_pos + 8) + (size_t)c->layers * (9 * h + c->ffn);
    b.pool = v->floats = vc_malloc(b.cap * sizeof(float));
    v->layers = vc_calloc((size_t)c->layers, sizeof *v->layers);
    if (!b.pool || !v->layers)
        return -1;
    const vc_tensor *pt = need(&b, "embeddings.patch_embedding.weight");
    int64_t pp = 3 * (int64_t)c->patch_size * c->patch_size;
    if (!pt)
        return -1;
    if (pt->n_dims != 4 || vc_tensor_nelements(pt) != pp * h)
        return vc_fail_code(VC_EXIT_MODEL, "%s: patch embedding has the wrong shape", pt->name);
    int p = c->patch_size;
    vc_tensor flat = *pt;    /* [h, 3, p, p] seen as h rows of 3*p*p */
    flat.n_dims = 2;
    flat.ne[0] = pp;
    flat.ne[1] = h;
    bool channels_last = pt->ne[0] == 3 && pt->ne[1] == p && pt->ne[2] == p && p != 3;
    if (channels_last ? bind_mlx_patch(v, pt) != 0 : vc_tensor_matrix(&flat, pp, h, &v->patch) != 0)
        return -1;
    char name[512];
    snprintf(name, sizeof name, "%sembeddings.patch_embedding.bias", prefix);
    if (vc_tensors_find(w, name) && !(v->patch_b = vec(&b, "embeddings.patch_embedding.bias", h)))
        return -1;
    if (c->class_token && !(v->class_emb = vec(&b, "embeddings.class_embedding", h)))
        return -1;
    if (!(v->pos_emb = vec(&b, "embeddings.position_embedding.weight", (int64_t)n_pos * h)))
        return -1;
    if (c->pre_norm && (!(v->pre_w = vec(&b, "pre_layrnorm.weight", h)) || !(v->pre_b = vec(&b, "pre_layrnorm.bias", h))))
        return -1;
    for (int l = 0; l < c->layers; l++)
        if (bind_layer(&b, l, c, &v->layers[l]) != 0)
            return -1;
    /* optional: towers read before it (LLaVA) may come without it (llama.cpp's legacy mmproj files) */
    snprintf(name, sizeof name, "%spost_layernorm.weight", prefix);
    if (vc_tensors_find(w, name) &&
        (!(v->post_w = vec(&b, "post_layernorm.weight", h)) || !(v->post_b = vec(&b, "post_layernorm.bias", h))))
        return -1;
    if (vc_int8dot_enabled())   /* float towers stay exact unless --int8-dot asks for Q8_0 */
        requantize_layers(v, vc_int8dot_requantizes_float() ? VC_INT8_REQUANTIZE : VC_INT8_QUANTIZED);
    return 0;
}

void vc_vit_free(vc_vit *v)
{
    for (int i = 0; i < v->n_int8_owned; i++)
        free(v->int8_owned[i]);
    free(v->int8_owned);
    free(v->floats);
    free(v->patch_owned);
    free(v->layers);
    memset(v, 0, sizeof *v);
}

int vc_vit_tokens(const vc_vit *v)
{
    int g = v->cfg.image_size / v->cfg.patch_size;
    return g * g + (v->cfg.class_token ? 1 : 0);
}

/* ---- forward ---- */

typedef struct {
    const float *q, *k, *v;
    float *kt;                  /* K transposed per head: [heads][head_dim][tokens] */
    float *out, *scores;
    int tokens, heads, head_dim, hidden;
} attn_job;

/* Queries per block of the attention. */
#define ATTN_QBLOCK 32

/* Each head's K columns as rows ([d][token]), so the scores Q K^T are a
 * product with B N-contiguous (vc_gemm_nn: outer products, nothing summed
 * across a vector, which a head's 64 dimensions would make costly). */
static void transpose_k(void *ctx, int64_t begin, int64_t end, int worker)
{
    const attn_job *j = ctx;
    /* columns [begin, end) of K, each head * head_dim + d */
    vc_transpose(j->tokens, (int)(end - begin), j->k + begin, j->hidden, j->kt + (size_t)begin * j->tokens, j->tokens);
}

/* Softmax of each of n rows of T scores, scaled first. */
static void softmax_rows(float *s, int n, int T, float scale)
{
    for (int i = 0; i < n; i++) {
        float *row = s + (size_t)i * T;
        for (int p = 0; p < T; p++)
            row[p] *= scale;
        vc_softmax(row, T);
    }
}

/* Full (bidirectional) attention, a block of ATTN_QBLOCK queries of one head
 * at a time (items: heads x query blocks): scores = Q K^T, softmax, out =
 * scores V, both through vc_gemm_nn, V on the head's strided columns. */
static void attention_blocks(void *ctx, int64_t begin, int64_t end, int worker)
{
    const attn_job *j = ctx;
    int n_blocks = (j->tokens + ATTN_QBLOCK - 1) / ATTN_QBLOCK, T = j->tokens, hd = j->head_dim;
    float *s = j->scores + (size_t)worker * ATTN_QBLOCK * T;
    float scale = 1.0f / sqrtf((float)hd);
    for (int64_t item = begin; item < end; item++) {
        int h = (int)(item / n_blocks), t0 = (int)(item % n_blocks) * ATTN_QBLOCK;
        int nq = VC_MIN(ATTN_QBLOCK, T - t0);
        size_t col = (size_t)h * hd;
        const float *q = j->q + (size_t)t0 * j->hidden + col;
        float *o = j->out + (size_t)t0 * j->hidden + col;
        vc_gemm_nn(nq, T, hd, q, j->hidden, j->kt + col * T, T, s, T);
        softmax_rows(s, nq, T, scale);
        vc_gemm_nn(nq, hd, T, s, T, j->v + col, j->hidden, o, j->hidden);
    }
}

/* Idefics3's position ids for a full g x g grid: each coordinate i/g is
 * bucketized against arange(1/g, 1, 1/g), in transformers' float32 math. */
static int bucket_index(int i, int g)
{
    float step = 1.0f / (float)g, frac = (float)i * step;
    if (frac > 1.0f - 1e-6f)
        frac = 1.0f - 1e-6f;
    int n = (int)ceil((1.0 - 1.0 / g) / (1.0 / g)), bucket = 0;
    for (int k = 0; k < n; k++)
        if ((float)(1.0 / g + k * (1.0 / g)) <= frac)   /* right=True: boundaries <= x */
            bucket++;
    return bucket;
}

/* Gathers patch (py, px) of a 3 x S x S image as [c][ky][kx]. */
static void patch_vector(const float *pixels, int S, int p, int py, int px, float *out)
{
    for (int c = 0; c < 3; c++)
        for (int ky = 0; ky < p; ky++)
            memcpy(out + ((size_t)c * p + ky) * p, pixels + ((size_t)c * S + py * p + ky) * S + px * p,
                   (size_t)p * sizeof(float));
}

/* Row-wise work over the tokens, on the pool: LayerNorm of x into y, and
 * for RESIDUAL first x += y (the block's output added to the stream). */
typedef struct {
    float *x, *y;
    const float *w, *b;
    int h;
    float eps;
    bool residual;
} rows_job;

static void norm_rows(void *ctx, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const rows_job *j = ctx;
    for (int64_t t = begin; t < end; t++) {
        float *x = j->x + (size_t)t * j->h, *y = j->y + (size_t)t * j->h;
        if (j->residual)
            for (int d = 0; d < j->h; d++)
                x[d] += y[d];
        if (j->w)
            vc_layernorm(y, x, j->w, j->b, j->h, j->eps);
    }
}

static void norm_tokens(float *x, float *y, const float *w, const float *b, int h, float eps, bool residual,
                        int64_t tokens)
{
    rows_job job = { x, y, w, b, h, eps, residual };
    vc_parallel_for(tokens, norm_rows, &job);
}

/* Images encoded together: their tokens go through each matrix product as
 * one block (the weights expanded once for all of them), attention stays
 * per image. About 4096 tokens at a time bounds the scratch memory. */
#define VIT_BATCH_TOKENS 4096

/* Encodes n images (n <= the group size) whose tokens are laid end to end. */
static int encode_group(const vc_vit *v, const float *pixels, int n, int stop, bool post_norm, float *out)
{
    const vc_vit_config *c = &v->cfg;
    int T = vc_vit_tokens(v), h = c->hidden, g = c->image_size / c->patch_size, first = c->class_token ? 1 : 0;
    size_t NT = (size_t)n * T, th = NT * h, tf = NT * c->ffn, pp = 3 * (size_t)c->patch_size * c->patch_size;
    size_t per_image = 3 * (size_t)c->image_size * c->image_size, gg = (size_t)g * g;
    float *x = out, *xb = vc_malloc(th * sizeof(float)), *q = vc_malloc(th * sizeof(float));
    float *k = vc_malloc(th * sizeof(float)), *vv = vc_malloc(th * sizeof(float)), *att = vc_malloc(th * sizeof(float));
    float *f = vc_malloc(tf * sizeof(float)), *patches = vc_malloc((size_t)n * gg * pp * sizeof(float));
    float *scores = vc_malloc((size_t)vc_threads_count() * ATTN_QBLOCK * T * sizeof(float));
    float *kt = vc_malloc((size_t)T * h * sizeof(float));
    int rc = xb && q && k && vv && att && f && patches && scores && kt ? 0 : -1;
    if (rc == 0) {
        for (int i = 0; i < n; i++)
            for (int py = 0; py < g; py++)
                for (int px = 0; px < g; px++)
                    patch_vector(pixels + i * per_image, c->image_size, c->patch_size, py, px,
                                 patches + ((size_t)i * gg + (size_t)py * g + px) * pp);
        /* the patch embeddings land in q (n * g * g rows), then move to their tokens */
        vc_linear(&v->patch, v->patch_b, patches, n * g * g, q);
        for (int i = 0; i < n; i++) {
            float *xi = x + (size_t)i * T * h;
            memcpy(xi + (size_t)first * h, q + (size_t)i * gg * h, gg * h * sizeof(float));
            if (first)
                memcpy(xi, v->class_emb, (size_t)h * sizeof(float));
            for (int t = first; t < T; t++) {
                int p = t - first, pos = t;
                if (c->bucketed_positions)
                    pos = bucket_index(p / g, g) * g + bucket_index(p % g, g);
                for (int d = 0; d < h; d++)
                    xi[(size_t)t * h + d] += v->pos_emb[(size_t)pos * h + d];
            }
            if (first)
                for (int d = 0; d < h; d++)
                    xi[d] += v->pos_emb[d];
        }
        if (c->pre_norm)
            norm_tokens(x, x, v->pre_w, v->pre_b, h, c->norm_eps, false, (int64_t)NT);
        for (int l = 0; l < stop; l++) {
            const vc_vit_layer *L = &v->layers[l];
            if (l == 0)
                norm_tokens(x, xb, L->ln1_w, L->ln1_b, h, c->norm_eps, false, (int64_t)NT);
            /* (later layers: the previous layer's last step left ln1(x) in xb) */
            vc_matrix qkv[3] = { L->q, L->k, L->v };
            float *const y3[3] = { q, k, vv };
            const float *b3[3] = { L->q_b, L->k_b, L->v_b };
            vc_matmul_multi(3, qkv, xb, (int)NT, y3);
            for (int m = 0; m < 3; m++)
                vc_add_bias(y3[m], b3[m], (int)NT, h);
            for (int i = 0; i < n; i++) {
                size_t o = (size_t)i * T * h;
                attn_job job = { q + o, k + o, vv + o, kt, att + o, scores, T, c->heads, h / c->heads, h };
                vc_parallel_for(h, transpose_k, &job);
                vc_parallel_for((int64_t)c->heads * ((T + ATTN_QBLOCK - 1) / ATTN_QBLOCK), attention_blocks, &job);
            }
            vc_linear(&L->o, L->o_b, att, (int)NT, xb);
            norm_tokens(x, xb, L->ln2_w, L->ln2_b, h, c->norm_eps, true, (int64_t)NT);
            vc_linear(&L->fc1, L->fc1_b, xb, (int)NT, f);
            vc_act_apply(c->act, f, tf);
            vc_linear(&L->fc2, L->fc2_b, f, (int)NT, xb);
            /* x += mlp; then the next layer's ln1(x) into xb (or nothing after the last) */
            const float *nw = l + 1 < stop ? v->layers[l + 1].ln1_w : NULL;
            const float *nb = l + 1 < stop ? v->layers[l + 1].ln1_b : NULL;
            norm_tokens(x, xb, nw, nb, h, c->norm_eps, true, (int64_t)NT);
        }
        if (post_norm)
            norm_tokens(x, x, v->post_w, v->post_b, h, c->norm_eps, false, (int64_t)NT);
    }
    free(xb);
    free(q);
    free(k);
    free(vv);
    free(att);
    free(f);
    free(patches);
    free(scores);
    free(kt);
    return rc;
}

int vc_vit_encode_batch(const vc_vit *v, const float *pixels, int n, int layer, bool post_norm, float *out)
{
    const vc_vit_config *c = &v->cfg;
    int stop = layer < 0 ? c->layers + 1 + layer : layer;
    if (stop < 0 || stop > c->layers)
        return vc_fail_code(VC_EXIT_MODEL, "vision feature layer %d does not exist (%d layers)", layer, c->layers);
    if (post_norm && !v->post_w)
        return vc_fail_code(VC_EXIT_MODEL, "the vision tower has no post_layernorm");
    int T = vc_vit_tokens(v), group = VC_MAX(1, VIT_BATCH_TOKENS / T);
    size_t per_image = 3 * (size_t)c->image_size * c->image_size;
    for (int i = 0; i < n; i += group) {
        int m = VC_MIN(group, n - i);
        if (encode_group(v, pixels + (size_t)i * per_image, m, stop, post_norm, out + (size_t)i * T * c->hidden) != 0)
            return -1;
    }
    return 0;
}

int vc_vit_encode(const vc_vit *v, const float *pixels, int layer, bool post_norm, float *out)
{
    return vc_vit_encode_batch(v, pixels, 1, layer, post_norm, out);
}

int vc_vit_read_clip_config(json_t *vc, vc_vit_config *c)
{
    memset(c, 0, sizeof *c);
    if (vc_json_get_int(vc, "hidden_size", INT_MIN, INT_MAX, 1024, &c->hidden) != 0 ||
        vc_json_get_int(vc, "intermediate_size", INT_MIN, INT_MAX, 4096, &c->ffn) != 0 ||
        vc_json_get_int(vc, "num_hidden_layers", INT_MIN, INT_MAX, 24, &c->layers) != 0 ||
        vc_json_get_int(vc, "num_attention_heads", INT_MIN, INT_MAX, 16, &c->heads) != 0 ||
        vc_json_get_int(vc, "image_size", INT_MIN, INT_MAX, 336, &c->image_size) != 0 ||
        vc_json_get_int(vc, "patch_size", INT_MIN, INT_MAX, 14, &c->patch_size) != 0)
        return vc_fail_ctx("vision_config");
    double eps;
    if (vc_json_get_num(vc, "layer_norm_eps", 0, 1, 1e-5, &eps) != 0)
        return vc_fail_ctx("vision_config");
    c->norm_eps = (float)eps;
    const char *act = json_string_value(json_object_get(vc, "hidden_act"));
    int a = vc_act_from_name(act ? act : "quick_gelu");
    if (a < 0)
        return vc_fail_code(VC_EXIT_MODEL, "vision activation '%s' is not supported", act);
    c->act = (vc_act)a;
    c->class_token = c->pre_norm = true;    /* CLIP */
    return 0;
}
