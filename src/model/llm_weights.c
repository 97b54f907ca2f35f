/* llm_weights.c - binds named tensors to the decoder's matrices.
 *
 * Two naming schemes: HF (model.layers.N.self_attn.q_proj.weight, ...) and
 * llama.cpp's GGUF names (blk.N.attn_q.weight, ...).  Every shape is checked
 * against the config; a wrong or missing tensor names itself in the error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/int8dot.h"
#include "core/threads.h"
#include "model/llm.h"

const vc_llm_names VC_LLM_NAMES_HF = { false, "model.", "lm_head.weight", false };
const vc_llm_names VC_LLM_NAMES_GGUF = { true, NULL, NULL, false };
const vc_llm_names VC_LLM_NAMES_MOONDREAM = { false, "model.text.", NULL, true };

typedef struct {
    const vc_tensor_set *set;
    const vc_llm_names *names;
} namer;

static const vc_tensor *find(const namer *nm, const char *name)
{
    const vc_tensor *t = vc_tensors_find(nm->set, name);
    if (!t)
        vc_fail_code(VC_EXIT_MODEL, "model has no tensor '%s'", name);
    return t;
}

static int matrix(const namer *nm, const char *name, int64_t cols, int64_t rows, vc_matrix *out)
{
    const vc_tensor *t = find(nm, name);
    return t ? vc_tensor_matrix(t, cols, rows, out) : -1;
}

/* Splits a fused matrix into consecutive row blocks. */
static int fused(const namer *nm, const char *name, int64_t cols, const int64_t *rows, vc_matrix **outs, int n)
{
    int64_t total = 0;
    for (int i = 0; i < n; i++)
        total += rows[i];
    vc_matrix whole;
    if (matrix(nm, name, cols, total, &whole) != 0)
        return -1;
    int64_t first = 0;
    for (int i = 0; i < n; i++) {
        *outs[i] = vc_matrix_rows(&whole, first, rows[i]);
        first += rows[i];
    }
    return 0;
}

static int norm(const namer *nm, const char *name, int dim, float *out)
{
    const vc_tensor *t = find(nm, name);
    return t ? vc_tensor_to_f32(t, dim, out) : -1;
}

/* Floats of the layer's projection biases: q, k, v, o, then gate, up, down. */
static size_t layer_bias_floats(const vc_llm_config *c)
{
    size_t qd = (size_t)c->n_heads * c->head_dim, kd = (size_t)c->n_kv_heads * c->head_dim;
    return (c->attn_bias ? qd + 2 * kd + (size_t)c->dim : 0) + (c->mlp_bias ? 2 * (size_t)c->ffn_dim + c->dim : 0);
}

static int bias(const namer *nm, const char *name, int64_t n, float **cursor, const float **out)
{
    const vc_tensor *t = find(nm, name);
    if (!t || vc_tensor_to_f32(t, n, *cursor) != 0)
        return -1;
    *out = *cursor;
    *cursor += n;
    return 0;
}

static int bind_biases(vc_llm *m, const namer *nm, int l, float *at)
{
    const vc_llm_config *c = &m->cfg;
    vc_llm_layer *L = &m->layers[l];
    int64_t qd = (int64_t)c->n_heads * c->head_dim, kd = (int64_t)c->n_kv_heads * c->head_dim;
    char name[256];
#define BNAME(leaf) (snprintf(name, sizeof name, "%slayers.%d." leaf ".bias", nm->names->body, l), name)
    if (c->attn_bias && (bias(nm, BNAME("self_attn.q_proj"), qd, &at, &L->bq) != 0 ||
                         bias(nm, BNAME("self_attn.k_proj"), kd, &at, &L->bk) != 0 ||
                         bias(nm, BNAME("self_attn.v_proj"), kd, &at, &L->bv) != 0 ||
                         bias(nm, BNAME("self_attn.o_proj"), c->dim, &at, &L->bo) != 0))
        return -1;
    if (c->mlp_bias && (bias(nm, BNAME("mlp.gate_proj"), c->ffn_dim, &at, &L->bgate) != 0 ||
                        bias(nm, BNAME("mlp.up_proj"), c->ffn_dim, &at, &L->bup) != 0 ||
                        bias(nm, BNAME("mlp.down_proj"), c->dim, &at, &L->bdown) != 0))
        return -1;
#undef BNAME
    return 0;
}

static int bind_layer(vc_llm *m, const namer *nm, int l, float *norms)
{
    const vc_llm_config *c = &m->cfg;
    vc_llm_layer *L = &m->layers[l];
    int64_t qd = (int64_t)c->n_heads * c->head_dim, kd = (int64_t)c->n_kv_heads * c->head_dim;
    char name[256];
#define NAME(hf, gg)                                                                                       \
    (nm->names->gguf ? snprintf(name, sizeof name, "blk.%d." gg ".weight", l)                              \
                     : snprintf(name, sizeof name, "%slayers.%d." hf ".weight", nm->names->body, l),        \
     name)
    L->attn_norm = norms;
    L->ffn_norm = norms + c->dim;
    if (norm(nm, NAME("input_layernorm", "attn_norm"), c->dim, norms) != 0 ||
        norm(nm, NAME("post_attention_layernorm", "ffn_norm"), c->dim, norms + c->dim) != 0)
        return -1;
    if (c->arch == VC_ARCH_PHI3) {
        int64_t qkv_rows[3] = { qd, kd, kd }, gu_rows[2] = { c->ffn_dim, c->ffn_dim };
        vc_matrix *qkv[3] = { &L->wq, &L->wk, &L->wv }, *gu[2] = { &L->gate, &L->up };
        if (fused(nm, NAME("self_attn.qkv_proj", "attn_qkv"), c->dim, qkv_rows, qkv, 3) != 0 ||
            fused(nm, NAME("mlp.gate_up_proj", "ffn_up"), c->dim, gu_rows, gu, 2) != 0)
            return -1;
    } else if (matrix(nm, NAME("self_attn.q_proj", "attn_q"), c->dim, qd, &L->wq) != 0 ||
               matrix(nm, NAME("self_attn.k_proj", "attn_k"), c->dim, kd, &L->wk) != 0 ||
               matrix(nm, NAME("self_attn.v_proj", "attn_v"), c->dim, kd, &L->wv) != 0 ||
               matrix(nm, NAME("mlp.gate_proj", "ffn_gate"), c->dim, c->ffn_dim, &L->gate) != 0 ||
               matrix(nm, NAME("mlp.up_proj", "ffn_up"), c->dim, c->ffn_dim, &L->up) != 0) {
        return -1;
    }
    if (matrix(nm, NAME("self_attn.o_proj", "attn_output"), qd, c->dim, &L->wo) != 0 ||
        matrix(nm, NAME("mlp.down_proj", "ffn_down"), c->ffn_dim, c->dim, &L->down) != 0)
        return -1;
#undef NAME
    return 0;
}

/* An HF tensor name under the body prefix. */
/* --int8-dot: the Q4_0, Q5_0, Q5_1, Q8_0 and K-quant matrices that decode and prefill multiply
 * with, laid out for the integer kernels (copies: the file's pages of the
 * stored rows are released, and a tied embedding table reads its rows back),
 * the matrices spread over the thread pool. */
typedef struct {
    vc_llm *m;
    vc_matrix **w;
    vc_matrix *stored;
    void **owned;
    int *rc;               /* vc_matrix_prepare_int8's */
} interleave_job;

static void interleave_range(void *ctx, int64_t begin, int64_t end, int worker)
{
    interleave_job *j = ctx;
    for (int64_t i = begin; i < end; i++) {
        j->stored[i] = *j->w[i];
        j->rc[i] = vc_matrix_prepare_int8(j->w[i], VC_INT8_AS_STORED, &j->owned[i]);
        if (j->rc[i] > 0)   /* madvise: safe beside the other threads */
            vc_tensors_drop_pages(&j->m->weights, j->stored[i].data, (size_t)j->stored[i].rows * j->stored[i].row_bytes);
    }
}

void vc_llm_layer_matrices(vc_llm_layer *L, vc_matrix *out[VC_LLM_LAYER_MATRICES])
{
    vc_matrix *w[VC_LLM_LAYER_MATRICES] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down };
    memcpy(out, w, sizeof w);
}

/* Whether the embedding table or any of the n matrices reads inside t's data. */
static bool reads_inside(const vc_llm *m, vc_matrix *const *w, size_t n, const vc_tensor *t)
{
    uintptr_t lo = (uintptr_t)t->data, hi = lo + t->nbytes;
    if ((uintptr_t)m->embed.data >= lo && (uintptr_t)m->embed.data < hi)
        return true;
    for (size_t i = 0; i < n; i++)
        if ((uintptr_t)w[i]->data >= lo && (uintptr_t)w[i]->data < hi)
            return true;
    return false;
}

/* The output head and every layer's matrices. A matrix whose copy finds no
 * memory works as stored (row-wise integer dots), only slower. */
static void interleave_matrices(vc_llm *m)
{
    size_t n = 1 + (size_t)m->cfg.n_layers * VC_LLM_LAYER_MATRICES;
    interleave_job j = { m, vc_calloc(n, sizeof *j.w), vc_calloc(n, sizeof *j.stored), vc_calloc(n, sizeof *j.owned),
                         vc_calloc(n, sizeof *j.rc) };
    if (j.w && j.stored && j.owned && j.rc) {
        j.w[0] = &m->lm_head;
        for (int l = 0; l < m->cfg.n_layers; l++)
            vc_llm_layer_matrices(&m->layers[l], j.w + 1 + (size_t)l * VC_LLM_LAYER_MATRICES);
        vc_parallel_for((int64_t)n, interleave_range, &j);
        for (size_t i = 0; i < n; i++) {
            if (j.rc[i] <= 0)
                continue;
            if (vc_tensors_own(&m->weights, j.owned[i]) != 0)   /* freed it: back to the stored rows */
                *j.w[i] = j.stored[i];
            else
                m->n_interleaved++;
        }
        /* rows quantized at load (heap, not a file's pages) that were copied
         * and that no matrix reads any more (a tied embedding table does):
         * freed, so that --quant holds one copy (3.8B Q4_0: 2 GiB less) */
        for (size_t i = 0; i < n; i++) {
            const vc_tensor *t = j.rc[i] > 0 ? vc_tensors_owned_holding(&m->weights, j.stored[i].data) : NULL;
            if (t && !reads_inside(m, j.w, n, t))
                vc_tensors_release(&m->weights, t);
        }
    }
    free(j.w);
    free(j.stored);
    free(j.owned);
    free(j.rc);
}

/* ---- Moondream's decoder: Phi-style blocks with biases ---- */

static const vc_tensor *md_find(const namer *nm, char *name, size_t size, const char *fmt, int l, const char *leaf)
{
    char rel[160];
    snprintf(rel, sizeof rel, fmt, l, leaf);
    snprintf(name, size, "%s%s", nm->names->body, rel);
    return find(nm, name);
}

/* n floats of a vector tensor into *pool (advanced). */
static int md_vec(const namer *nm, const char *fmt, int l, const char *leaf, int64_t n, float **pool, const float **out)
{
    char name[256];
    const vc_tensor *t = md_find(nm, name, sizeof name, fmt, l, leaf);
    if (!t || vc_tensor_to_f32(t, n, *pool) != 0)
        return -1;
    *out = *pool;
    *pool += n;
    return 0;
}

static int md_mat(const namer *nm, const char *fmt, int l, const char *leaf, int64_t cols, int64_t rows, vc_matrix *out)
{
    char name[256];
    const vc_tensor *t = md_find(nm, name, sizeof name, fmt, l, leaf);
    return t ? vc_tensor_matrix(t, cols, rows, out) : -1;
}

static int bind_moondream(vc_llm *m, const namer *nm)
{
    const vc_llm_config *c = &m->cfg;
    int64_t qd = (int64_t)c->n_heads * c->head_dim, kd = (int64_t)c->n_kv_heads * c->head_dim, d = c->dim;
    size_t per_layer = (size_t)(d + qd + 2 * kd + d + c->ffn_dim + d);
    m->biases = vc_calloc(per_layer * c->n_layers + (size_t)d + (size_t)c->n_vocab + 64, sizeof(float));
    if (!m->biases)
        return -1;
    float *pool = m->biases;
    if (vc_tensors_find(nm->set, "text_model.transformer.embd.wte.weight"))
        return vc_fail_code(VC_EXIT_MODEL, "the tensors use the layout of Moondream2 revisions before 2025-06-21 "
                            "(vision_encoder.*, text_model.*); vlmchat runs revision 2025-06-21 (model.vision.*, "
                            "model.text.*, model.region.*)");
    if (md_mat(nm, "%.0dwte", 0, "", d, -1, &m->embed) != 0)
        return -1;
    if (m->embed.rows != c->n_vocab)
        return vc_fail_code(VC_EXIT_MODEL, "%swte has %lld rows, not vocab_size %d", nm->names->body,
                            (long long)m->embed.rows, c->n_vocab);
    if (md_mat(nm, "%.0dlm_head.weight", 0, "", d, c->n_vocab, &m->lm_head) != 0 ||
        md_vec(nm, "%.0dlm_head.bias", 0, "", c->n_vocab, &pool, &m->lm_head_b) != 0 ||
        md_vec(nm, "%.0dpost_ln.bias", 0, "", d, &pool, &m->final_norm_b) != 0)
        return -1;
    for (int l = 0; l < c->n_layers; l++) {
        vc_llm_layer *L = &m->layers[l];
        const char *f = "blocks.%d.%s";
        const float *qkv_b;
        char name[256];
        vc_matrix whole;
        L->attn_norm = L->ffn_norm = m->norms + (size_t)2 * l * d;
        const vc_tensor *t = md_find(nm, name, sizeof name, f, l, "ln.weight");
        if (!t || vc_tensor_to_f32(t, d, m->norms + (size_t)2 * l * d) != 0 ||
            md_vec(nm, f, l, "ln.bias", d, &pool, &L->attn_norm_b) != 0 ||
            md_mat(nm, f, l, "attn.qkv.weight", d, qd + 2 * kd, &whole) != 0 ||
            md_vec(nm, f, l, "attn.qkv.bias", qd + 2 * kd, &pool, &qkv_b) != 0 ||
            md_mat(nm, f, l, "attn.proj.weight", qd, d, &L->wo) != 0 ||
            md_vec(nm, f, l, "attn.proj.bias", d, &pool, &L->bo) != 0 ||
            md_mat(nm, f, l, "mlp.fc1.weight", d, c->ffn_dim, &L->up) != 0 ||
            md_vec(nm, f, l, "mlp.fc1.bias", c->ffn_dim, &pool, &L->bup) != 0 ||
            md_mat(nm, f, l, "mlp.fc2.weight", c->ffn_dim, d, &L->down) != 0 ||
            md_vec(nm, f, l, "mlp.fc2.bias", d, &pool, &L->bdown) != 0)
            return vc_fail_ctx("layer %d", l);
        L->wq = vc_matrix_rows(&whole, 0, qd);
        L->wk = vc_matrix_rows(&whole, qd, kd);
        L->wv = vc_matrix_rows(&whole, qd + kd, kd);
        L->bq = qkv_b;
        L->bk = qkv_b + qd;
        L->bv = qkv_b + qd + kd;
    }
    float *final = m->norms + (size_t)2 * c->n_layers * d;
    m->final_norm = final;
    char name[256];
    const vc_tensor *t = md_find(nm, name, sizeof name, "%.0dpost_ln.weight", 0, "");
    return t ? vc_tensor_to_f32(t, d, final) : -1;
}

static const char *body_name(const vc_llm_names *n, const char *leaf, char *buf, size_t size)
{
    snprintf(buf, size, "%s%s", n->body, leaf);
    return buf;
}

int vc_llm_bind(vc_llm *m, vc_tensor_set *weights, const vc_llm_names *names)
{
    bool gguf_names = names->gguf;
    char buf[256];
    m->weights = *weights;
    memset(weights, 0, sizeof *weights);
    const vc_llm_config *c = &m->cfg;
    namer nm = { &m->weights, names };
    if (vc_tensors_check_overlap(&m->weights) != 0)
        return -1;
    m->layers = vc_calloc((size_t)c->n_layers, sizeof *m->layers);
    m->norms = vc_calloc((size_t)(2 * c->n_layers + 1) * c->dim, sizeof(float));
    if (!m->layers || !m->norms)
        return -1;
    if (names->moondream) {
        if (bind_moondream(m, &nm) != 0)
            return -1;
        if (vc_int8dot_enabled())
            interleave_matrices(m);
        return 0;
    }
    size_t per_layer_bias = layer_bias_floats(c);
    if (per_layer_bias && (gguf_names || c->arch == VC_ARCH_PHI3))
        return vc_fail_code(VC_EXIT_MODEL, "projection biases are only read from HF Llama/Mistral checkpoints");
    if (per_layer_bias && !(m->biases = vc_malloc((size_t)c->n_layers * per_layer_bias * sizeof(float))))
        return -1;
    /* transformers' tie_weights at load: a head the checkpoint has is used as
     * stored even when the config ties (tied weights that differ are not
     * tied); a missing head takes the embeddings only when the config ties,
     * and a missing embedding table takes a tied head. GGUF files tie by
     * leaving output.weight out. */
    const char *embd_name = gguf_names ? "token_embd.weight" : body_name(names, "embed_tokens.weight", buf, sizeof buf);
    const char *head_name = gguf_names ? "output.weight" : names->head;
    bool has_head = vc_tensors_find(&m->weights, head_name) != NULL;
    bool has_embd = vc_tensors_find(&m->weights, embd_name) != NULL;
    if (matrix(&nm, !has_embd && has_head && c->tie_embeddings ? head_name : embd_name, c->dim, -1, &m->embed) != 0)
        return -1;
    if (m->embed.rows < c->n_vocab)
        return vc_fail_code(VC_EXIT_MODEL, "embedding table has %lld rows, fewer than vocab_size %d",
                            (long long)m->embed.rows, c->n_vocab);
    if (has_head) {
        if (matrix(&nm, head_name, c->dim, -1, &m->lm_head) != 0)
            return -1;
    } else if (c->tie_embeddings || gguf_names) {
        m->lm_head = m->embed;              /* tied: one table both ways */
    } else {
        return vc_fail_code(VC_EXIT_MODEL, "model has no tensor '%s' and tie_word_embeddings is false (transformers "
                            "would leave the output head randomly initialized)", head_name);
    }
    m->cfg.n_vocab = (int)m->lm_head.rows;  /* logits come from the head's rows */
    for (int l = 0; l < c->n_layers; l++)
        if (bind_layer(m, &nm, l, m->norms + (size_t)2 * l * c->dim) != 0 ||
            (per_layer_bias && bind_biases(m, &nm, l, m->biases + (size_t)l * per_layer_bias) != 0))
            return vc_fail_ctx("layer %d", l);
    float *final = m->norms + (size_t)2 * c->n_layers * c->dim;
    m->final_norm = final;
    if (norm(&nm, gguf_names ? "output_norm.weight" : body_name(names, "norm.weight", buf, sizeof buf), c->dim,
             final) != 0)
        return -1;
    if (vc_int8dot_enabled())
        interleave_matrices(m);
    return 0;
}
