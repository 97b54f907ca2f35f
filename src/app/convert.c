/* convert.c - see include/app/convert.h */
#include "app/convert.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app/convert_mmproj.h"
#include "core/common.h"
#include "loader/gguf.h"
#include "model/model.h"
#include "vision/phi3v.h"

/* The mix being written (vc_convert_to_gguf_mix); fallbacks follow it. */
static vc_convert_mix current_mix;

/* Matrices are stored in the requested type where their rows allow it;
 * otherwise Q8_0, or, in a K-quant mix, llama.cpp's fallback
 * (tensor_type_fallback in src/llama-quant.cpp: Q4_K -> Q5_0, Q5_K -> Q5_1,
 * Q6_K -> Q8_0); then F16. */
static vc_dtype fit_type(vc_dtype want, int64_t cols)
{
    vc_dtype fallback = VC_Q8_0;
    if (current_mix != VC_MIX_NONE)
        fallback = want == VC_Q4_K ? VC_Q5_0 : want == VC_Q5_K ? VC_Q5_1 : VC_Q8_0;
    vc_dtype order[] = { want, fallback, VC_F16 };
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

const char *vc_convert_model_name(const char *path, char *buf, size_t cap)
{
    size_t end = strlen(path);
    while (end > 1 && path[end - 1] == '/')
        end--;
    size_t start = end;
    while (start > 0 && path[start - 1] != '/')
        start--;
    if (end - start > 5 && memcmp(path + end - 5, ".gguf", 5) == 0)
        end -= 5;
    snprintf(buf, cap, "%.*s", (int)(end - start), path + start);
    return buf;
}

static int write_hparams(vc_gguf_writer *w, const vc_model *m, const char *arch, vc_dtype type)
{
    const vc_llm_config *c = &m->llm.cfg;
    char key[128];
    char name[256];
    int rc = vc_gguf_set_str(w, "general.architecture", arch);
    rc |= vc_gguf_set_str(w, "general.name", vc_convert_model_name(m->path, name, sizeof name));
    /* llama.cpp's llama_ftype: Q4_K_M 15, Q5_K_M 17 for the mixes */
    uint32_t ftype = current_mix == VC_MIX_Q4_K_M ? 15 : current_mix == VC_MIX_Q5_K_M ? 17
                     : type == VC_F32 ? 0 : type == VC_F16 ? 1 : type == VC_Q8_0 ? 7 : type == VC_Q4_0 ? 2
                     : type == VC_Q5_0 ? 8 : type == VC_Q5_1 ? 9 : type == VC_Q4_K ? 15 : type == VC_Q5_K ? 17
                     : type == VC_Q6_K ? 18 : 32;
    rc |= vc_gguf_set_u32(w, "general.file_type", ftype);
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

/* The type of one tensor in a mix, as llama.cpp's llama_tensor_get_type
 * (src/llama-quant.cpp) picks it for LLAMA_FTYPE_MOSTLY_Q4_K_M and Q5_K_M
 * on the architectures vlmchat writes (no experts, not Falcon, not the 70B
 * rule, no imatrix or overrides): the base type (Q4_K, Q5_K) everywhere,
 * except
 *  - output.weight: Q6_K; with tied embeddings token_embd.weight, which
 *    then serves as the output, too;
 *  - attn_v (and Phi-3's fused attn_qkv, which llama.cpp counts as attn_v)
 *    and ffn_down of layer i of n: Q6_K where use_more_bits(i, n), i.e.
 *    i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2.
 * Row widths that are no whole number of 256-blocks fall back (fit_type). */
typedef enum { T_OTHER, T_OUTPUT, T_ATTN_V, T_FFN_DOWN } tensor_role;

static bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static vc_dtype mix_type(vc_dtype base, tensor_role role, int layer, int n_layers)
{
    if (current_mix == VC_MIX_NONE)
        return base;
    base = current_mix == VC_MIX_Q4_K_M ? VC_Q4_K : VC_Q5_K;
    if (role == T_OUTPUT)
        return VC_Q6_K;
    if ((role == T_ATTN_V || role == T_FFN_DOWN) && use_more_bits(layer, n_layers))
        return VC_Q6_K;
    return base;
}

static int write_weights(vc_gguf_writer *w, const vc_model *m, vc_dtype type, bool llama)
{
    const vc_llm *l = &m->llm;
    const vc_llm_config *c = &l->cfg;
    char name[128];
    bool tied = c->tie_embeddings || l->lm_head.data == l->embed.data;
    int nl = c->n_layers;
    int rc = add_matrix(w, "token_embd.weight", &l->embed, mix_type(type, tied ? T_OUTPUT : T_OTHER, 0, nl), 0);
    if (!tied)
        rc |= add_matrix(w, "output.weight", &l->lm_head, mix_type(type, T_OUTPUT, 0, nl), 0);
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
        vc_dtype base = mix_type(type, T_OTHER, i, nl), more = mix_type(type, T_ATTN_V, i, nl);
        rc |= add_matrix(w, NAME("attn_output"), &L->wo, base, 0);
        rc |= add_matrix(w, NAME("ffn_down"), &L->down, mix_type(type, T_FFN_DOWN, i, nl), 0);
        if (llama) {
            rc |= add_matrix(w, NAME("attn_q"), &L->wq, base, c->head_dim);
            rc |= add_matrix(w, NAME("attn_k"), &L->wk, base, c->head_dim);
            rc |= add_matrix(w, NAME("attn_v"), &L->wv, more, 0);
            rc |= add_matrix(w, NAME("ffn_gate"), &L->gate, base, 0);
            rc |= add_matrix(w, NAME("ffn_up"), &L->up, base, 0);
        } else {
            /* Phi-3 keeps its fused tensors: the bound slices are consecutive rows */
            vc_matrix qkv = L->wq, gate_up = L->gate;
            qkv.rows = L->wq.rows + L->wk.rows + L->wv.rows;
            gate_up.rows = L->gate.rows + L->up.rows;
            rc |= add_matrix(w, NAME("attn_qkv"), &qkv, more, 0);
            rc |= add_matrix(w, NAME("ffn_up"), &gate_up, base, 0);
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

/* ---- Phi-3-V: its image side in the same file (include/loader/gguf_phi3v.h) ---- */

static const char *act_name(vc_act a)
{
    return a == VC_ACT_QUICK_GELU ? "quick_gelu" : a == VC_ACT_GELU ? "gelu" : a == VC_ACT_GELU_TANH
           ? "gelu_pytorch_tanh" : "silu";
}

static int add_vec(vc_gguf_writer *w, const char *name, const float *v, int64_t n)
{
    return vc_convert_add_f32(w, name, v, 1, &n);
}

static int write_phi3v(vc_gguf_writer *w, const vc_model *m, const vc_phi3v *p, vc_dtype type)
{
    const vc_vit_config *c = &p->vit.cfg;
    /* hidden_states[k] is the output of the first k blocks: only those are stored */
    int layers = p->feature_layer < 0 ? c->layers + 1 + p->feature_layer : p->feature_layer;
    if (layers < 0 || layers > c->layers || !p->vit.class_emb || !p->vit.pre_w)
        return vc_fail_code(VC_EXIT_MODEL, "%s: Phi-3-V layer_idx %d or tower not expressible in GGUF", m->path,
                            p->feature_layer);
#define KEY(k) "vlmchat.phi3v." k
    int rc = vc_gguf_set_u32(w, KEY("image_size"), (uint32_t)c->image_size);
    rc |= vc_gguf_set_u32(w, KEY("patch_size"), (uint32_t)c->patch_size);
    rc |= vc_gguf_set_u32(w, KEY("embedding_length"), (uint32_t)c->hidden);
    rc |= vc_gguf_set_u32(w, KEY("feed_forward_length"), (uint32_t)c->ffn);
    rc |= vc_gguf_set_u32(w, KEY("block_count"), (uint32_t)layers);
    rc |= vc_gguf_set_u32(w, KEY("attention.head_count"), (uint32_t)c->heads);
    rc |= vc_gguf_set_f32(w, KEY("attention.layer_norm_epsilon"), c->norm_eps);
    rc |= vc_gguf_set_str(w, KEY("hidden_act"), act_name(c->act));
    rc |= vc_gguf_set_i32(w, KEY("layer_idx"), layers);
    rc |= vc_gguf_set_u32(w, KEY("num_crops"), (uint32_t)p->num_crops);
    rc |= vc_gguf_set_arr_f32(w, KEY("image_mean"), p->mean, 3);
    rc |= vc_gguf_set_arr_f32(w, KEY("image_std"), p->std, 3);
#undef KEY
    if (rc == 0)
        rc = vc_convert_add_vit(w, &p->vit, layers, type, false);   /* features before post_layernorm */
    int64_t c4 = 4 * (int64_t)c->hidden;
    rc |= add_vec(w, "v.glb_GN", p->glb_gn, c4);
    rc |= add_vec(w, "v.sub_GN", p->sub_gn, c4);
    rc |= add_matrix(w, "mm.0.weight", &p->proj1, type, 0);
    rc |= add_vec(w, "mm.0.bias", p->proj1_b, p->text_dim);
    rc |= add_matrix(w, "mm.2.weight", &p->proj2, type, 0);
    rc |= add_vec(w, "mm.2.bias", p->proj2_b, p->text_dim);
    return rc ? -1 : 0;
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
    return vc_convert_to_gguf_mix(model_dir, out_path, type, VC_MIX_NONE);
}

static int convert(const char *model_dir, const char *out_path, vc_dtype type);

vc_convert_mix vc_convert_mix_from_name(const char *name)
{
    if (!name)
        return VC_MIX_NONE;
    return strcasecmp(name, "q4_k_m") == 0 ? VC_MIX_Q4_K_M : strcasecmp(name, "q5_k_m") == 0 ? VC_MIX_Q5_K_M : VC_MIX_NONE;
}

int vc_convert_to_gguf_mix(const char *model_dir, const char *out_path, vc_dtype type, vc_convert_mix mix)
{
    /* a mix's other tensors (vision tower, projector) take its base type */
    if (mix != VC_MIX_NONE)
        type = mix == VC_MIX_Q4_K_M ? VC_Q4_K : VC_Q5_K;
    current_mix = mix;
    int rc = convert(model_dir, out_path, type);
    current_mix = VC_MIX_NONE;
    return rc;
}

static int convert(const char *model_dir, const char *out_path, vc_dtype type)
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
    /* Phi-3-V, which llama.cpp has no mmproj layout for: both halves in one file */
    bool one_file = m.vision && strcmp(m.vision->family->name, "phi3_v") == 0;
    if (rc == 0 && one_file)
        rc = write_phi3v(w, &m, m.vision->state, type);
    if (rc == 0)
        rc = vc_gguf_write(w, out_path);
    vc_gguf_writer_free(w);
    if (rc == 0 && m.vision && !one_file) {     /* the image side beside it, as llama.cpp's pair of files */
        char *mp = mmproj_path(out_path);
        rc = mp ? vc_convert_mmproj(&m, mp, type) : -1;
        free(mp);
    }
    vc_model_close(&m);
    return rc;
}
