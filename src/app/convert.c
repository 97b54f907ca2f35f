/* convert.c - see include/app/convert.h */
#include "app/convert.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/convert_mmproj.h"
#include "core/common.h"
#include "loader/gguf.h"
#include "model/model.h"

/* Matrices are stored in the requested type where their rows allow it. */
static vc_dtype fit_type(vc_dtype want, int64_t cols)
{
    vc_dtype order[] = { want, VC_Q8_0, VC_F16 };
    for (size_t i = 0; i < VC_ARRAY_LEN(order); i++)
        if (cols % vc_dtype_block_elems(order[i]) == 0)
            return order[i];
    return VC_F32;
}

/* llama.cpp's q/k row order for rope on adjacent pairs: within each head,
 * row (s * half + j) moves to (2 * j + s). */
static int64_t permuted_row(int64_t r, int head_dim)
{
    int64_t h = r / head_dim, i = r % head_dim, half = head_dim / 2;
    int64_t s = i / half, j = i % half;
    return h * head_dim + 2 * j + s;
}

static int add_matrix(vc_gguf_writer *w, const char *name, const vc_matrix *m, vc_dtype type, int permute_head_dim)
{
    vc_dtype t = fit_type(type, m->cols);
    size_t row_bytes;
    uint8_t *out = vc_matrix_requantize(m, t, permute_head_dim ? permuted_row : NULL, permute_head_dim, &row_bytes);
    if (!out)
        return -1;
    int64_t ne[2] = { m->cols, m->rows };
    return vc_gguf_add_tensor(w, name, t, 2, ne, out, (size_t)m->rows * row_bytes);
}

static int add_f32(vc_gguf_writer *w, const char *name, const float *v, int64_t n)
{
    float *copy = vc_malloc((size_t)n * sizeof *copy);
    if (!copy)
        return -1;
    memcpy(copy, v, (size_t)n * sizeof *copy);
    return vc_gguf_add_tensor(w, name, VC_F32, 1, &n, copy, (size_t)n * sizeof *copy);
}

static int write_hparams(vc_gguf_writer *w, const vc_model *m, const char *arch, vc_dtype type)
{
    const vc_llm_config *c = &m->llm.cfg;
    char key[128];
    int rc = vc_gguf_set_str(w, "general.architecture", arch);
    rc |= vc_gguf_set_str(w, "general.name", m->path);
    rc |= vc_gguf_set_u32(w, "general.file_type", type == VC_F32 ? 0 : type == VC_F16 ? 1 : type == VC_Q8_0 ? 7 : type == VC_Q4_0 ? 2 : type == VC_Q4_K ? 15 : type == VC_Q6_K ? 18 : 32);
#define KEY(k) (snprintf(key, sizeof key, "%s." k, arch), key)
    rc |= vc_gguf_set_u32(w, KEY("context_length"), (uint32_t)c->max_pos);
    rc |= vc_gguf_set_u32(w, KEY("embedding_length"), (uint32_t)c->dim);
    rc |= vc_gguf_set_u32(w, KEY("feed_forward_length"), (uint32_t)c->ffn_dim);
    rc |= vc_gguf_set_u32(w, KEY("block_count"), (uint32_t)c->n_layers);
    rc |= vc_gguf_set_u32(w, KEY("attention.head_count"), (uint32_t)c->n_heads);
    rc |= vc_gguf_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->n_kv_heads);
    rc |= vc_gguf_set_u32(w, KEY("attention.key_length"), (uint32_t)c->head_dim);
    rc |= vc_gguf_set_u32(w, KEY("attention.value_length"), (uint32_t)c->head_dim);
    rc |= vc_gguf_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), c->norm_eps);
    rc |= vc_gguf_set_u32(w, KEY("rope.dimension_count"), (uint32_t)c->rope_dim);
    rc |= vc_gguf_set_f32(w, KEY("rope.freq_base"), (float)c->rope_theta);
    rc |= vc_gguf_set_u32(w, KEY("vocab_size"), (uint32_t)c->n_vocab);
    if (c->sliding_window > 0)
        rc |= vc_gguf_set_u32(w, KEY("attention.sliding_window"), (uint32_t)c->sliding_window);
    if (c->rope == VC_ROPE_LINEAR) {
        rc |= vc_gguf_set_str(w, KEY("rope.scaling.type"), "linear");
        rc |= vc_gguf_set_f32(w, KEY("rope.scaling.factor"), c->rope_linear_factor);
    }
    if (c->rope == VC_ROPE_LONGROPE) {
        rc |= vc_gguf_set_u32(w, KEY("rope.scaling.original_context_length"), (uint32_t)c->rope_orig_max_pos);
        rc |= vc_gguf_set_f32(w, KEY("rope.scaling.attn_factor"), c->rope_attn_factor);
    }
#undef KEY
    return rc ? -1 : 0;
}

/* The tokenizer as llama.cpp keys (so llama.cpp can use the file) plus the
 * exact tokenizer.json for vlmchat. */
/* Byte-level BPE as llama.cpp reads it: the merges in rank order and the
 * name of the pre-tokenizer (without them llama.cpp refuses the file). */
static int write_bpe_merges(vc_gguf_writer *w, const vc_tokenizer *t)
{
    char **merges;
    size_t n;
    if (vc_tokenizer_merges(t, &merges, &n) != 0)
        return -1;
    int rc = vc_gguf_set_arr_str(w, "tokenizer.ggml.merges", (const char **)merges, (uint64_t)n);
    const char *pre = vc_tokenizer_ggml_pre(t);
    rc |= vc_gguf_set_str(w, "tokenizer.ggml.pre", pre ? pre : "gpt2");
    for (size_t i = 0; i < n; i++)
        free(merges[i]);
    free(merges);
    return rc;
}

static int write_tokenizer(vc_gguf_writer *w, const vc_model *m)
{
    const vc_tokenizer *t = m->tok;
    int32_t n = vc_tokenizer_size(t);
    const char **tokens = vc_malloc((size_t)n * sizeof *tokens);
    int32_t *types = vc_malloc((size_t)n * sizeof *types);
    if (!tokens || !types) {
        free(tokens);
        free(types);
        return -1;
    }
    bool spm = vc_tokenizer_find(t, "<0x0A>") >= 0;
    for (int32_t i = 0; i < n; i++) {
        tokens[i] = vc_tokenizer_piece(t, i);
        types[i] = vc_tokenizer_is_special(t, i) ? 3 : 1;
        if (spm && strlen(tokens[i]) == 6 && strncmp(tokens[i], "<0x", 3) == 0)
            types[i] = 6;
    }
    int rc = vc_gguf_set_str(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2");
    rc |= vc_gguf_set_arr_str(w, "tokenizer.ggml.tokens", tokens, (uint64_t)n);
    rc |= vc_gguf_set_arr_i32(w, "tokenizer.ggml.token_type", types, (uint64_t)n);
    if (spm) {
        float *scores = vc_malloc((size_t)n * sizeof *scores);
        if (!scores)
            rc = -1;
        for (int32_t i = 0; scores && i < n; i++)
            scores[i] = types[i] == 1 ? -(float)i : 0.0f;
        if (scores)
            rc |= vc_gguf_set_arr_f32(w, "tokenizer.ggml.scores", scores, (uint64_t)n);
        free(scores);
    }
    if (!spm)
        rc |= write_bpe_merges(w, t);
    if (vc_tokenizer_bos(t) >= 0)
        rc |= vc_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)vc_tokenizer_bos(t));
    if (vc_tokenizer_eos(t) >= 0)
        rc |= vc_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)vc_tokenizer_eos(t));
    if (m->chat_template)
        rc |= vc_gguf_set_str(w, "tokenizer.chat_template", m->chat_template);
    if (vc_tokenizer_json_text(t))
        rc |= vc_gguf_set_str(w, "vlmchat.tokenizer_json", vc_tokenizer_json_text(t));
    free(tokens);
    free(types);
    return rc ? -1 : 0;
}

static int write_weights(vc_gguf_writer *w, const vc_model *m, vc_dtype type, bool llama)
{
    const vc_llm *l = &m->llm;
    const vc_llm_config *c = &l->cfg;
    char name[128];
    int rc = add_matrix(w, "token_embd.weight", &l->embed, type, 0);
    if (!c->tie_embeddings && l->lm_head.data != l->embed.data)
        rc |= add_matrix(w, "output.weight", &l->lm_head, type, 0);
    rc |= add_f32(w, "output_norm.weight", l->final_norm, c->dim);
    if (c->rope == VC_ROPE_LONGROPE) {
        rc |= add_f32(w, "rope_factors_long.weight", c->rope_long, c->rope_dim / 2);
        rc |= add_f32(w, "rope_factors_short.weight", c->rope_short, c->rope_dim / 2);
    }
    for (int i = 0; rc == 0 && i < c->n_layers; i++) {
        const vc_llm_layer *L = &l->layers[i];
#define NAME(s) (snprintf(name, sizeof name, "blk.%d." s ".weight", i), name)
        rc |= add_f32(w, NAME("attn_norm"), L->attn_norm, c->dim);
        rc |= add_f32(w, NAME("ffn_norm"), L->ffn_norm, c->dim);
        rc |= add_matrix(w, NAME("attn_output"), &L->wo, type, 0);
        rc |= add_matrix(w, NAME("ffn_down"), &L->down, type, 0);
        if (llama) {
            rc |= add_matrix(w, NAME("attn_q"), &L->wq, type, c->head_dim);
            rc |= add_matrix(w, NAME("attn_k"), &L->wk, type, c->head_dim);
            rc |= add_matrix(w, NAME("attn_v"), &L->wv, type, 0);
            rc |= add_matrix(w, NAME("ffn_gate"), &L->gate, type, 0);
            rc |= add_matrix(w, NAME("ffn_up"), &L->up, type, 0);
        } else {
            /* Phi-3 keeps its fused tensors: the bound slices are consecutive rows */
            vc_matrix qkv = L->wq, gate_up = L->gate;
            qkv.rows = L->wq.rows + L->wk.rows + L->wv.rows;
            gate_up.rows = L->gate.rows + L->up.rows;
            rc |= add_matrix(w, NAME("attn_qkv"), &qkv, type, 0);
            rc |= add_matrix(w, NAME("ffn_up"), &gate_up, type, 0);
        }
#undef NAME
    }
    return rc ? -1 : 0;
}

int vc_convert_add_matrix(vc_gguf_writer *w, const char *name, const vc_matrix *m, vc_dtype type)
{
    return add_matrix(w, name, m, type, 0);
}

int vc_convert_add_f32(vc_gguf_writer *w, const char *name, const float *v, int n_dims, const int64_t *ne)
{
    int64_t n = 1;
    for (int i = 0; i < n_dims; i++)
        n *= ne[i];
    float *copy = vc_malloc((size_t)n * sizeof *copy);
    if (!copy)
        return -1;
    memcpy(copy, v, (size_t)n * sizeof *copy);
    return vc_gguf_add_tensor(w, name, VC_F32, n_dims, ne, copy, (size_t)n * sizeof *copy);
}

/* out_path's directory, "mmproj-" + its file name (malloc'd). */
static char *mmproj_path(const char *out_path)
{
    const char *slash = strrchr(out_path, '/');
    size_t dir = slash ? (size_t)(slash - out_path + 1) : 0, len = strlen(out_path) + 8;
    char *p = vc_malloc(len);
    if (p)
        snprintf(p, len, "%.*smmproj-%s", (int)dir, out_path, out_path + dir);
    return p;
}

int vc_convert_to_gguf(const char *model_dir, const char *out_path, vc_dtype type)
{
    vc_model m;
    if (vc_model_open(model_dir, &(vc_model_options){ .n_ctx = 1 }, &m) != 0)
        return -1;
    if (strcmp(m.format, "gguf") == 0) {    /* HF and MLX directories convert */
        vc_model_close(&m);
        return vc_fail_code(VC_EXIT_USAGE, "%s: convert reads an HF model directory", model_dir);
    }
    const vc_llm_config *c = &m.llm.cfg;
    if (c->rope == VC_ROPE_DYNAMIC || c->rope == VC_ROPE_YARN || c->rope == VC_ROPE_LLAMA3 || c->attn_bias ||
        c->mlp_bias) {
        /* the GGUF reader takes default, linear and longrope ropes and no biases */
        const char *what = c->attn_bias || c->mlp_bias ? "projection biases" : "rope type";
        vc_model_close(&m);
        return vc_fail_code(VC_EXIT_USAGE, "%s: convert cannot write this model's %s to GGUF", model_dir, what);
    }
    bool llama = m.llm.cfg.arch != VC_ARCH_PHI3;
    vc_gguf_writer *w = vc_gguf_writer_new();
    int rc = w ? 0 : -1;
    if (rc == 0)
        rc = write_hparams(w, &m, llama ? "llama" : "phi3", type);
    if (rc == 0)
        rc = write_tokenizer(w, &m);
    if (rc == 0)
        rc = write_weights(w, &m, type, llama);
    if (rc == 0)
        rc = vc_gguf_write(w, out_path);
    vc_gguf_writer_free(w);
    if (rc == 0 && m.vision) {     /* the image side beside it, as llama.cpp's pair of files */
        char *mp = mmproj_path(out_path);
        rc = mp ? vc_convert_mmproj(&m, mp, type) : -1;
        free(mp);
    }
    vc_model_close(&m);
    return rc;
}
