/* llm.c - forward pass of the decoder; see include/model/llm.h
 *
 * Activations are float32 and laid out token-major ([n][width]).  A prompt
 * is processed in chunks so scratch stays bounded, but every chunk uses the
 * rotary table of the whole call, as one transformers forward would.
 */
#include "model/llm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/act.h"
#include "core/common.h"
#include "core/dot.h"
#include "core/int8dot.h"
#include "core/threads.h"

#define CHUNK 256
#define VC_PI 3.14159265358979323846

/* ---- elementwise pieces ---------------------------------------------------- */

static void rmsnorm(float *out, const float *x, const float *w, int dim, float eps)
{
    double ss = 0;
    for (int i = 0; i < dim; i++)
        ss += (double)x[i] * x[i];
    float scale = 1.0f / sqrtf((float)(ss / dim) + eps);
    for (int i = 0; i < dim; i++)
        out[i] = w[i] * (x[i] * scale);
}


/* LayerNorm (with bias) for Phi-style decoders, in the same float32 steps as
 * torch's layer_norm: mean, biased variance, (x - mean) * rsqrt(var + eps). */
static void layernorm(float *out, const float *x, const float *w, const float *b, int dim, float eps)
{
    double mean = 0, var = 0;
    for (int i = 0; i < dim; i++)
        mean += x[i];
    mean /= dim;
    for (int i = 0; i < dim; i++)
        var += (x[i] - mean) * (x[i] - mean);
    float inv = 1.0f / sqrtf((float)(var / dim) + eps);
    for (int i = 0; i < dim; i++)
        out[i] = (float)(x[i] - mean) * inv * w[i] + (b ? b[i] : 0.0f);
}

/* The config's norm over one row. */
static void norm_row(const vc_llm_config *c, float *out, const float *x, const float *w, const float *b)
{
    if (c->layer_norm)
        layernorm(out, x, w, b, c->dim, c->norm_eps);
    else
        rmsnorm(out, x, w, c->dim, c->norm_eps);
}

/* n rows' norms on the pool, a row a work item (each row as norm_row, or
 * rmsnorm where `rms`: the same floats however the rows are shared out). */
typedef struct {
    const vc_llm_config *c;
    float *out;
    const float *x, *w, *b;
    bool rms;
} norm_job;

static void norm_items(void *ctx, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const norm_job *j = ctx;
    size_t dim = (size_t)j->c->dim;
    for (int64_t t = begin; t < end; t++) {
        if (j->rms)
            rmsnorm(j->out + (size_t)t * dim, j->x + (size_t)t * dim, j->w, j->c->dim, j->c->norm_eps);
        else
            norm_row(j->c, j->out + (size_t)t * dim, j->x + (size_t)t * dim, j->w, j->b);
    }
}

static void norm_rows(const vc_llm_config *c, float *out, const float *x, const float *w, const float *b, int n, bool rms)
{
    norm_job j = { c, out, x, w, b, rms };
    vc_parallel_for(n, norm_items, &j);
}

/* Float32 operations one at a time, as torch evaluates them on tensors: a
 * Python scalar meets a float32 tensor as a float, and `scalar / tensor` is
 * tensor.reciprocal() * scalar. */
static float f32_rdiv(double scalar, float t) { return (1.0f / t) * (float)scalar; }

/* base^(2i/d) for i < d/2, as torch: arange(0, d, 2).float() / d, then pow. */
static float rope_pos_freq(float base, int i, int dim)
{
    float expo = (float)(2 * i) / (float)dim;
    return powf(base, expo);
}

/* Llama 3.x: wavelengths past low_freq_wavelen are divided by factor, those
 * between the two wavelengths interpolated (_compute_llama3_parameters). */
static void rope_llama3(const vc_llm_config *c, float *inv, int half)
{
    float factor = (float)c->rope_factor, lo = (float)c->rope_low_freq, hi = (float)c->rope_high_freq;
    double old_ctx = c->rope_orig_max_pos;
    float low_wavelen = (float)(old_ctx / c->rope_low_freq), high_wavelen = (float)(old_ctx / c->rope_high_freq);
    for (int i = 0; i < half; i++) {
        float wavelen = f32_rdiv(2 * VC_PI, inv[i]);
        float scaled = wavelen > low_wavelen ? inv[i] / factor : inv[i];
        float smooth = (f32_rdiv(old_ctx, wavelen) - lo) / (hi - lo);
        float smoothed = (1.0f - smooth) * scaled / factor + smooth * scaled;
        bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
        inv[i] = medium ? smoothed : scaled;
    }
}

/* YaRN: interpolated and extrapolated frequencies blended by a linear ramp
 * over the dimensions between two rotation counts (_compute_yarn_parameters). */
static void rope_yarn(const vc_llm_config *c, float *inv, int half)
{
    int dim = c->rope_dim;
    double base = c->rope_theta, orig = c->rope_orig_max_pos;
    double low = dim * log(orig / (c->yarn_beta_fast * 2 * VC_PI)) / (2 * log(base));
    double high = dim * log(orig / (c->yarn_beta_slow * 2 * VC_PI)) / (2 * log(base));
    if (c->yarn_truncate) {
        low = floor(low);
        high = ceil(high);
    }
    low = fmax(low, 0);
    high = fmin(high, dim - 1);
    if (low == high)
        high += 0.001;
    float factor = (float)c->rope_factor;
    for (int i = 0; i < half; i++) {
        float pos = rope_pos_freq((float)base, i, dim);
        float extra = f32_rdiv(1.0, pos), inter = f32_rdiv(1.0, factor * pos);
        float ramp = ((float)i - (float)low) / (float)(high - low);
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        float ext_factor = 1.0f - ramp;
        inv[i] = inter * (1.0f - ext_factor) + extra * ext_factor;
    }
}

/* Dynamic NTK: the base grows with the sequence length once it passes
 * max_position_embeddings. transformers recomputes it from a 0-d int tensor
 * (max(position_ids) + 1), so the arithmetic is float32. */
static float rope_dynamic_base(const vc_llm_config *c, int seq_len)
{
    if (seq_len <= c->max_pos)
        return (float)c->rope_theta;
    int dim = c->rope_dim;
    float factor = (float)c->rope_factor;
    float g = factor * (float)seq_len / (float)c->max_pos - (float)(c->rope_factor - 1);
    g = powf(g, (float)((double)dim / (dim - 2)));
    return (float)c->rope_theta * g;
}

/* inv_freq as transformers computes it in float32 for a forward call whose
 * last position is seq_len - 1. */
static void rope_inv_freq(const vc_llm_config *c, int seq_len, float *inv)
{
    int half = c->rope_dim / 2;
    bool use_long = c->rope == VC_ROPE_LONGROPE && seq_len > c->rope_orig_max_pos;
    float base = c->rope == VC_ROPE_DYNAMIC ? rope_dynamic_base(c, seq_len) : (float)c->rope_theta;
    if (c->rope == VC_ROPE_YARN) {
        rope_yarn(c, inv, half);
        return;
    }
    for (int i = 0; i < half; i++) {
        float f = rope_pos_freq(base, i, c->rope_dim);
        if (c->rope == VC_ROPE_LONGROPE)
            f = (use_long ? c->rope_long[i] : c->rope_short[i]) * f;
        inv[i] = 1.0f / f;
        if (c->rope == VC_ROPE_LINEAR)
            inv[i] /= c->rope_linear_factor;
    }
    if (c->rope == VC_ROPE_LLAMA3)
        rope_llama3(c, inv, half);
}

/* Rotates each head of vec (n_heads x head_dim) for position pos. */
static void rope_apply(const vc_llm_config *c, const float *inv, float *vec, int n_heads, int pos)
{
    int half = c->rope_dim / 2;
    float cs[512], sn[512];
    for (int i = 0; i < half; i++) {
        float angle = inv[i] * (float)pos;
        cs[i] = cosf(angle) * c->rope_attn_factor;
        sn[i] = sinf(angle) * c->rope_attn_factor;
    }
    for (int h = 0; h < n_heads; h++) {
        float *v = vec + (size_t)h * c->head_dim;
        for (int i = 0; i < half; i++) {
            int a = c->rope_layout == VC_ROPE_NEOX ? i : 2 * i;
            int b = c->rope_layout == VC_ROPE_NEOX ? i + half : 2 * i + 1;
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * cs[i] - x1 * sn[i];
            v[b] = x1 * cs[i] + x0 * sn[i];
        }
    }
}

/* ---- attention ------------------------------------------------------------- */

typedef struct {
    const vc_llm *m;
    int layer, n, pos0;
    const float *q;   /* [n][n_heads*head_dim] */
    float *out;       /* same shape */
    float *scores;    /* per worker: n_ctx floats (one query), or ATTN_QBLOCK x (pos0 + n) (blocks) */
    float *kt;        /* blocks: the layer's K, transposed: [n_kv_heads*head_dim][pos0 + n] */
    const float *k, *v;   /* blocks: the layer's K and V as floats, [pos0 + n][kv_dim] */
} attn_job;

/* Queries per block when several tokens are processed together. */
#define ATTN_QBLOCK 32

/* One (token, head) pair per work item: softmax(q.K / sqrt(d)) V over the
 * visible cache positions. */
static void attention_items(void *ctx, int64_t begin, int64_t end, int worker)
{
    const attn_job *job = ctx;
    const vc_llm *m = job->m;
    const vc_llm_config *c = &m->cfg;
    int kv_dim = c->n_kv_heads * c->head_dim, group = c->n_heads / c->n_kv_heads;
    size_t layer_off = (size_t)job->layer * m->n_ctx * kv_dim;
    float scale = 1.0f / sqrtf((float)c->head_dim);
    float *scores = job->scores + (size_t)worker * m->n_ctx;
    for (int64_t item = begin; item < end; item++) {
        int t = (int)(item / c->n_heads), h = (int)(item % c->n_heads), kvh = h / group;
        int pos = job->pos0 + t;
        int lo = c->sliding_window > 0 && pos - c->sliding_window + 1 > 0 ? pos - c->sliding_window + 1 : 0;
        const float *q = job->q + (size_t)t * c->n_heads * c->head_dim + (size_t)h * c->head_dim;
        size_t at = layer_off + (size_t)lo * kv_dim + (size_t)kvh * c->head_dim;   /* head kvh at position lo */
        if (m->kv_half)
            vc_dot_rows_f16(q, m->k_half + at, kv_dim, pos - lo + 1, c->head_dim, scores + lo);
        else
            vc_dot_rows_f32(q, m->k_cache + at, kv_dim, pos - lo + 1, c->head_dim, scores + lo);
        for (int p = lo; p <= pos; p++)
            scores[p] *= scale;
        vc_softmax(scores + lo, pos - lo + 1);
        float *o = job->out + (size_t)t * c->n_heads * c->head_dim + (size_t)h * c->head_dim;
        memset(o, 0, (size_t)c->head_dim * sizeof *o);
        if (m->kv_half)
            vc_axpy_rows_f16(scores + lo, m->v_half + at, kv_dim, pos - lo + 1, o, c->head_dim);
        else
            vc_axpy_rows_f32(scores + lo, m->v_cache + at, kv_dim, pos - lo + 1, o, c->head_dim);
    }
}

/* The layer's cached K columns as rows ([column][position]), so that the
 * scores Q K^T are a product with an N-contiguous B (vc_gemm_nn: nothing
 * summed across a vector, which a head's 64 dimensions would make costly). */
static void transpose_k(void *ctx, int64_t begin, int64_t end, int worker)
{
    const attn_job *job = ctx;
    const vc_llm *m = job->m;
    int kv_dim = m->cfg.n_kv_heads * m->cfg.head_dim, P = job->pos0 + job->n;
    vc_transpose(P, (int)(end - begin), job->k + begin, kv_dim, job->kt + (size_t)begin * P, P);
}

/* Several tokens: a block of ATTN_QBLOCK queries of one head per work item
 * (items: heads x blocks). scores = Q K^T over the keys any query of the
 * block sees, each row masked to its own causal (and sliding) window, softmax,
 * out = scores V: both products through vc_gemm_nn (V as cached), each key
 * and value read once per block instead of once per query. */
static void attention_blocks(void *ctx, int64_t begin, int64_t end, int worker)
{
    const attn_job *job = ctx;
    const vc_llm *m = job->m;
    const vc_llm_config *c = &m->cfg;
    int hd = c->head_dim, kv_dim = c->n_kv_heads * hd, qd = c->n_heads * hd, group = c->n_heads / c->n_kv_heads;
    int P = job->pos0 + job->n, n_blocks = (job->n + ATTN_QBLOCK - 1) / ATTN_QBLOCK;
    const float *v = job->v;
    float *s = job->scores + (size_t)worker * ATTN_QBLOCK * P;
    float scale = 1.0f / sqrtf((float)hd);
    for (int64_t item = begin; item < end; item++) {
        int h = (int)(item / n_blocks), t0 = (int)(item % n_blocks) * ATTN_QBLOCK, kvh = h / group;
        int nq = VC_MIN(ATTN_QBLOCK, job->n - t0), first = job->pos0 + t0, last = first + nq - 1;
        int pre = c->prefix_bidirectional;   /* queries in the prefix see all of it */
        int last_key = first < pre ? VC_MIN(VC_MAX(last, pre - 1), P - 1) : last;
        int lo = c->sliding_window > 0 ? VC_MAX(0, first - c->sliding_window + 1) : 0, nk = last_key - lo + 1;
        const float *q = job->q + (size_t)t0 * qd + (size_t)h * hd;
        vc_gemm_nn(nq, nk, hd, q, qd, job->kt + (size_t)kvh * hd * P + lo, P, s, nk);
        for (int i = 0; i < nq; i++) {
            float *row = s + (size_t)i * nk;
            int pos = first + i, from = c->sliding_window > 0 ? VC_MAX(0, pos - c->sliding_window + 1) : 0;
            int to = pos < pre ? pre - 1 : pos;
            for (int p = lo; p <= last_key; p++)
                row[p - lo] = p < from || p > to ? -INFINITY : row[p - lo] * scale;
            vc_softmax(row, nk);
        }
        float *o = job->out + (size_t)t0 * qd + (size_t)h * hd;
        vc_gemm_nn(nq, hd, nk, s, nk, v + (size_t)lo * kv_dim + (size_t)kvh * hd, kv_dim, o, qd);
    }
}

/* ---- the pass ---------------------------------------------------------------- */

typedef struct {
    float *xb, *q, *k, *v, *att, *gate, *up, *scores, *kt;
    float *kf, *vf;   /* blocks on a half cache: the layer's K and V as floats, [positions][kv_dim] */
    float *mlp;       /* parallel blocks: the MLP's output beside the attention's */
} scratch;

static void scratch_free(scratch *s)
{
    free(s->xb);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->att);
    free(s->gate);
    free(s->up);
    free(s->scores);
    free(s->kt);
    free(s->kf);
    free(s->vf);
    free(s->mlp);
}

/* For chunks of n tokens, the last of them at position positions - 1. */
static int scratch_alloc(scratch *s, const vc_llm_config *c, int n, int n_ctx, int positions, bool half)
{
    memset(s, 0, sizeof *s);
    size_t qd = (size_t)c->n_heads * c->head_dim, kd = (size_t)c->n_kv_heads * c->head_dim;
    s->xb = vc_calloc((size_t)n * VC_MAX((size_t)c->dim, qd), sizeof(float));
    s->q = vc_calloc((size_t)n * qd, sizeof(float));
    s->k = vc_calloc((size_t)n * kd, sizeof(float));
    s->v = vc_calloc((size_t)n * kd, sizeof(float));
    s->att = vc_calloc((size_t)n * VC_MAX(qd, (size_t)c->dim), sizeof(float));
    s->gate = vc_calloc((size_t)n * c->ffn_dim, sizeof(float));
    s->up = vc_calloc((size_t)n * c->ffn_dim, sizeof(float));
    /* one query: n_ctx scores per worker; blocks: ATTN_QBLOCK rows over the positions in use, and K transposed */
    s->scores = n == 1 ? vc_calloc((size_t)vc_threads_count() * n_ctx, sizeof(float))
                       : vc_malloc((size_t)vc_threads_count() * ATTN_QBLOCK * (size_t)positions * sizeof(float));
    s->kt = n == 1 ? NULL : vc_malloc(kd * (size_t)positions * sizeof(float));
    s->mlp = c->parallel_block ? vc_malloc((size_t)n * c->dim * sizeof(float)) : NULL;
    bool floats = n > 1 && half;
    s->kf = floats ? vc_malloc(kd * (size_t)positions * sizeof(float)) : NULL;
    s->vf = floats ? vc_malloc(kd * (size_t)positions * sizeof(float)) : NULL;
    if (!s->scores || !s->xb || !s->q || !s->k || !s->v || !s->att || !s->gate || !s->up || (n > 1 && !s->kt) ||
        (c->parallel_block && !s->mlp) || (floats && (!s->kf || !s->vf))) {
        scratch_free(s);
        return -1;
    }
    return 0;
}

/* rows[t] += bias for n rows of width w (no-op without a bias). */
static void add_bias(float *rows, const float *bias, int n, int w)
{
    if (!bias)
        return;
    for (int t = 0; t < n; t++)
        for (int i = 0; i < w; i++)
            rows[(size_t)t * w + i] += bias[i];
}

/* Tokens' rotations and their keys and values into the cache, a token a
 * work item. */
typedef struct {
    vc_llm *m;
    const float *inv;
    float *q, *k, *v;
    size_t layer_off;
    int pos0;
} rope_job;

static void rope_items(void *ctx, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const rope_job *j = ctx;
    const vc_llm_config *c = &j->m->cfg;
    int qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    for (int64_t t = begin; t < end; t++) {
        int pos = j->pos0 + (int)t;
        rope_apply(c, j->inv, j->q + (size_t)t * qd, c->n_heads, pos);
        rope_apply(c, j->inv, j->k + (size_t)t * kd, c->n_kv_heads, pos);
        size_t at = j->layer_off + (size_t)pos * kd;
        if (j->m->kv_half) {
            vc_f32_to_f16_row(j->k + (size_t)t * kd, j->m->k_half + at, kd);
            vc_f32_to_f16_row(j->v + (size_t)t * kd, j->m->v_half + at, kd);
        } else {
            memcpy(j->m->k_cache + at, j->k + (size_t)t * kd, (size_t)kd * sizeof(float));
            memcpy(j->m->v_cache + at, j->v + (size_t)t * kd, (size_t)kd * sizeof(float));
        }
    }
}

/* A half cache's positions as floats (blocks of queries), a position a work item. */
typedef struct {
    const uint16_t *k, *v;
    float *kf, *vf;
    int kd;
} half_job;

static void half_positions(void *ctx, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const half_job *j = ctx;
    size_t at = (size_t)begin * j->kd, len = (size_t)(end - begin) * j->kd;
    vc_f16_rows_to_f32(j->k + at, (int64_t)len, 1, (int64_t)len, j->kf + at);
    vc_f16_rows_to_f32(j->v + at, (int64_t)len, 1, (int64_t)len, j->vf + at);
}

static void layer_forward(vc_llm *m, int l, float *x, int n, int pos0, const float *inv, scratch *s)
{
    const vc_llm_config *c = &m->cfg;
    const vc_llm_layer *L = &m->layers[l];
    int qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;

    norm_rows(c, s->xb, x, L->attn_norm, L->attn_norm_b, n, false);
    /* q, k and v (and below gate and up) in one dispatch: decode runs a few
     * hundred of them per token, each a few tens of microseconds */
    vc_matmul_multi(3, (vc_matrix[]){ L->wq, L->wk, L->wv }, s->xb, n, (float *[]){ s->q, s->k, s->v });
    add_bias(s->q, L->bq, n, qd);
    add_bias(s->k, L->bk, n, kd);
    add_bias(s->v, L->bv, n, kd);
    if (c->parallel_block) {   /* the MLP reads the same normalized input */
        vc_matmul(&L->up, s->xb, n, s->up);
        add_bias(s->up, L->bup, n, c->ffn_dim);
        vc_act_apply(VC_ACT_GELU_TANH, s->up, (size_t)n * c->ffn_dim);
        vc_matmul(&L->down, s->up, n, s->mlp);
        add_bias(s->mlp, L->bdown, n, c->dim);
    }
    size_t layer_off = (size_t)l * m->n_ctx * kd;
    rope_job rj = { m, inv, s->q, s->k, s->v, layer_off, pos0 };
    vc_parallel_for(n, rope_items, &rj);
    attn_job job = { m, l, n, pos0, s->q, s->att, s->scores, s->kt, m->kv_half ? NULL : m->k_cache + layer_off,
                     m->kv_half ? NULL : m->v_cache + layer_off };
    if (!s->kt) {   /* one token at a time */
        vc_parallel_for(c->n_heads, attention_items, &job);
    } else {
        if (m->kv_half) {   /* the positions so far as floats, for the blocks' products */
            half_job hj = { m->k_half + layer_off, m->v_half + layer_off, s->kf, s->vf, kd };
            vc_parallel_for(pos0 + n, half_positions, &hj);
            job.k = s->kf;
            job.v = s->vf;
        }
        vc_parallel_for(kd, transpose_k, &job);
        vc_parallel_for((int64_t)c->n_heads * ((n + ATTN_QBLOCK - 1) / ATTN_QBLOCK), attention_blocks, &job);
    }
    vc_matmul(&L->wo, s->att, n, s->xb);
    add_bias(s->xb, L->bo, n, c->dim);
    if (c->parallel_block) {   /* x + attn + mlp, summed in that order */
        for (size_t i = 0; i < (size_t)n * c->dim; i++)
            x[i] = x[i] + s->xb[i] + s->mlp[i];
        return;
    }
    for (size_t i = 0; i < (size_t)n * c->dim; i++)
        x[i] += s->xb[i];

    norm_rows(c, s->xb, x, L->ffn_norm, NULL, n, true);
    if (c->gelu_mlp) {
        vc_matmul(&L->up, s->xb, n, s->gate);
        add_bias(s->gate, L->bup, n, c->ffn_dim);
        vc_act_apply(VC_ACT_GELU_TANH, s->gate, (size_t)n * c->ffn_dim);
    } else {
        vc_matmul_multi(2, (vc_matrix[]){ L->gate, L->up }, s->xb, n, (float *[]){ s->gate, s->up });
        add_bias(s->gate, L->bgate, n, c->ffn_dim);
        add_bias(s->up, L->bup, n, c->ffn_dim);
        vc_swiglu(s->gate, s->up, (size_t)n * c->ffn_dim);
    }
    vc_matmul(&L->down, s->gate, n, s->xb);
    add_bias(s->xb, L->bdown, n, c->dim);
    for (size_t i = 0; i < (size_t)n * c->dim; i++)
        x[i] += s->xb[i];
}

/* LongRoPE: the first call that takes the sequence past the original
 * context recomputes everything cached so far under the long factors. */
static int longrope_recompute(vc_llm *m, const float *embd, int n, float *logits)
{
    const vc_llm_config *c = &m->cfg;
    int total = m->n_past + n;
    float *all = vc_malloc((size_t)total * c->dim * sizeof(float));
    if (!all)
        return -1;
    memcpy(all, m->embd_history, (size_t)m->n_past * c->dim * sizeof(float));
    memcpy(all + (size_t)m->n_past * c->dim, embd, (size_t)n * c->dim * sizeof(float));
    m->n_past = 0;
    int rc = vc_llm_forward_embd(m, all, total, logits);
    free(all);
    return rc;
}

int vc_llm_forward_embd(vc_llm *m, const float *embd, int n, float *logits)
{
    return vc_llm_forward_embd_hidden(m, embd, n, logits, NULL);
}

int vc_llm_forward_embd_hidden(vc_llm *m, const float *embd, int n, float *logits, float *hidden)
{
    const vc_llm_config *c = &m->cfg;
    if (n <= 0)
        return vc_fail_code(VC_EXIT_INPUT, "nothing to process");
    if (c->prefix_bidirectional > 0 && m->n_past < c->prefix_bidirectional &&
        (m->n_past > 0 || n < c->prefix_bidirectional))
        return vc_fail_code(VC_EXIT_INPUT, "the model's first %d positions (its image) attend both ways and must be "
                            "given in one call (%d cached, %d given)", c->prefix_bidirectional, m->n_past, n);
    if (n > m->n_ctx - m->n_past)
        return vc_fail_code(VC_EXIT_INPUT, "context is full: %d positions used, %d more needed, %d available",
                            m->n_past, n, m->n_ctx);
    if (c->rope == VC_ROPE_LONGROPE) {
        if (m->n_past > 0 && m->n_past <= c->rope_orig_max_pos && m->n_past + n > c->rope_orig_max_pos)
            return longrope_recompute(m, embd, n, logits);
        memcpy(m->embd_history + (size_t)m->n_past * c->dim, embd, (size_t)n * c->dim * sizeof(float));
    }
    /* one table for the whole call, from its last position (LongRoPE's
     * factors, dynamic NTK's base) */
    float inv[256];
    rope_inv_freq(c, m->n_past + n, inv);

    int chunk = n < CHUNK ? n : CHUNK;
    if (m->n_past < c->prefix_bidirectional)   /* the first chunk holds the whole two-way prefix */
        chunk = VC_MIN(n, VC_MAX(CHUNK, c->prefix_bidirectional));
    scratch s;
    float *x = vc_malloc((size_t)chunk * c->dim * sizeof(float));
    if (!x || scratch_alloc(&s, c, chunk, m->n_ctx, m->n_past + n, m->kv_half) != 0) {
        free(x);
        return -1;
    }
    for (int done = 0; done < n; done += chunk) {
        int len = n - done < chunk ? n - done : chunk;
        memcpy(x, embd + (size_t)done * c->dim, (size_t)len * c->dim * sizeof(float));
        for (int l = 0; l < c->n_layers; l++)
            layer_forward(m, l, x, len, m->n_past + done, inv, &s);
        if (done + len == n && hidden)
            memcpy(hidden, x + (size_t)(len - 1) * c->dim, (size_t)c->dim * sizeof(float));
        if (done + len == n && logits) {
            norm_row(c, s.xb, x + (size_t)(len - 1) * c->dim, m->final_norm, m->final_norm_b);
            vc_matmul(&m->lm_head, s.xb, 1, logits);
            add_bias(logits, m->lm_head_b, 1, (int)m->lm_head.rows);
        }
    }
    m->n_past += n;
    free(x);
    scratch_free(&s);
    return 0;
}

int vc_llm_embed(const vc_llm *m, int32_t id, float *out)
{
    if (id < 0 || id >= m->embed.rows)
        return vc_fail_code(VC_EXIT_INPUT, "token id %d is outside the embedding table (%lld rows)", id,
                            (long long)m->embed.rows);
    vc_dequantize_row(m->embed.type, (const uint8_t *)m->embed.data + (size_t)id * m->embed.row_bytes, out,
                      m->embed.cols);
    return 0;
}

int vc_llm_forward(vc_llm *m, const int32_t *tokens, int n, float *logits)
{
    if (n <= 0)
        return vc_fail_code(VC_EXIT_INPUT, "nothing to process");
    float *embd = vc_malloc((size_t)n * m->cfg.dim * sizeof(float));
    if (!embd)
        return -1;
    int rc = 0;
    for (int i = 0; rc == 0 && i < n; i++)
        rc = vc_llm_embed(m, tokens[i], embd + (size_t)i * m->cfg.dim);
    if (rc == 0)
        rc = vc_llm_forward_embd(m, embd, n, logits);
    free(embd);
    return rc;
}

void vc_llm_truncate(vc_llm *m, int keep)
{
    if (keep >= 0 && keep < m->cfg.prefix_bidirectional)
        keep = 0;   /* a part of a two-way prefix depends on all of it: keep none */
    if (keep >= 0 && keep < m->n_past)
        m->n_past = keep;
}

/* Halves for a decoder of quantized matrices (its first layer's) on the
 * integer kernels, stored or interleaved alike. */
static bool cache_in_halves(const vc_llm *m)
{
    if (!vc_int8dot_enabled() || m->cfg.n_layers <= 0 || !m->layers)
        return false;
    vc_dtype t = m->layers[0].wo.type;
    return t != VC_F32 && t != VC_F16 && t != VC_BF16;
}

/* Bytes of a cached key or value element. */
static size_t kv_elem(bool half) { return half ? sizeof(uint16_t) : sizeof(float); }

size_t vc_llm_position_bytes(const vc_llm *m)
{
    bool half = cache_in_halves(m);
    size_t kd = (size_t)m->cfg.n_kv_heads * m->cfg.head_dim;
    size_t kv = 2 * (size_t)m->cfg.n_layers * kd * kv_elem(half);
    size_t blocks = kd * sizeof(float) * (half ? 3 : 1);   /* scratch_alloc's kt, and kf and vf */
    return kv + blocks + (m->cfg.rope == VC_ROPE_LONGROPE ? (size_t)m->cfg.dim * sizeof(float) : 0);
}

size_t vc_llm_kv_bytes(const vc_llm *m)
{
    size_t kv = 2 * (size_t)m->cfg.n_layers * m->n_ctx * m->cfg.n_kv_heads * m->cfg.head_dim * kv_elem(m->kv_half);
    return kv + (m->embd_history ? (size_t)m->n_ctx * m->cfg.dim * sizeof(float) : 0);
}

static void free_cache(vc_llm *m)
{
    free(m->k_cache);
    free(m->v_cache);
    free(m->k_half);
    free(m->v_half);
    free(m->embd_history);
    m->k_cache = m->v_cache = m->embd_history = NULL;
    m->k_half = m->v_half = NULL;
}

int vc_llm_alloc_cache(vc_llm *m, int n_ctx)
{
    if (n_ctx <= 0)
        return vc_fail_code(VC_EXIT_USAGE, "context size must be positive");
    free_cache(m);
    m->n_ctx = n_ctx;
    m->n_past = 0;
    m->kv_half = cache_in_halves(m);
    size_t per = (size_t)m->cfg.n_layers * n_ctx * m->cfg.n_kv_heads * m->cfg.head_dim;
    bool ok;
    if (m->kv_half) {
        m->k_half = vc_calloc(per, sizeof(uint16_t));
        m->v_half = vc_calloc(per, sizeof(uint16_t));
        ok = m->k_half && m->v_half;
    } else {
        m->k_cache = vc_calloc(per, sizeof(float));
        m->v_cache = vc_calloc(per, sizeof(float));
        ok = m->k_cache && m->v_cache;
    }
    m->embd_history = m->cfg.rope == VC_ROPE_LONGROPE ? vc_calloc((size_t)n_ctx * m->cfg.dim, sizeof(float)) : NULL;
    if (!ok || (m->cfg.rope == VC_ROPE_LONGROPE && !m->embd_history)) {
        free_cache(m);
        return vc_fail_code(VC_EXIT_NOMEM, "not enough memory for a KV cache of %d positions (%zu MiB); try --ctx",
                            n_ctx, 2 * per * kv_elem(m->kv_half) >> 20);
    }
    return 0;
}

void vc_llm_free(vc_llm *m)
{
    free_cache(m);
    free(m->norms);
    free(m->biases);
    free(m->layers);
    free(m->cfg.rope_short);
    free(m->cfg.rope_long);
    vc_tensors_free(&m->weights);
    memset(m, 0, sizeof *m);
}
