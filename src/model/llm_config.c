/* llm_config.c - see include/model/llm_config.h */
#include "model/llm_config.h"

#include <float.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/json.h"

void vc_llm_config_add_eos(vc_llm_config *c, int32_t id)
{
    if (id < 0)
        return;
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_ids[i] == id)
            return;
    if (c->n_eos < VC_MAX_EOS)
        c->eos_ids[c->n_eos++] = id;
}

int vc_llm_config_check(const vc_llm_config *c)
{
    if (c->dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 || c->head_dim <= 0 ||
        c->ffn_dim <= 0 || c->n_vocab <= 0 || c->max_pos <= 0)
        return vc_fail_code(VC_EXIT_MODEL, "model config has a missing or non-positive size");
    if (c->dim > 65536 || c->n_layers > 1024 || c->n_heads > 1024 || c->head_dim > 512 || c->ffn_dim > 1 << 20 ||
        c->n_vocab > 1 << 24)
        return vc_fail_code(VC_EXIT_MODEL, "model config sizes are implausibly large");
    if (c->n_heads % c->n_kv_heads != 0)
        return vc_fail_code(VC_EXIT_MODEL, "%d attention heads cannot be grouped over %d key/value heads",
                            c->n_heads, c->n_kv_heads);
    if (c->rope_dim <= 0 || c->rope_dim > c->head_dim || c->rope_dim % 2 != 0)
        return vc_fail_code(VC_EXIT_MODEL, "rotary dimension %d does not fit head size %d", c->rope_dim, c->head_dim);
    if (!(c->rope_theta > 0) || !(c->norm_eps >= 0))
        return vc_fail_code(VC_EXIT_MODEL, "model config has a bad rope_theta or norm epsilon");
    if (c->rope == VC_ROPE_LONGROPE && (!c->rope_short || !c->rope_long || c->rope_orig_max_pos <= 0))
        return vc_fail_code(VC_EXIT_MODEL, "longrope needs short_factor, long_factor and original_max_position_embeddings");
    if (c->sliding_window < 0)
        return vc_fail_code(VC_EXIT_MODEL, "negative sliding_window");
    return 0;
}

/* ---- HF ---- */

static int factor_list(json_t *arr, int n, float **out, const char *origin, const char *name)
{
    if (!json_is_array(arr) || (int)json_array_size(arr) != n)
        return vc_fail_code(VC_EXIT_MODEL, "%s: rope %s must list %d numbers", origin, name, n);
    *out = vc_malloc((size_t)n * sizeof **out);
    size_t got;
    if (!*out)
        return -1;
    if (vc_json_float_list(arr, name, FLT_MIN, FLT_MAX, *out, (size_t)n, &got) != 0)
        return vc_fail_ctx("%s: rope", origin);
    return 0;
}

/* transformers' default LongRoPE attention factor, from the context ratio. */
static float longrope_attn_factor(double factor, int orig_max)
{
    if (factor <= 1.0)
        return 1.0f;
    return (float)sqrt(1.0 + log(factor) / log((double)orig_max));
}

/* A number the rope dict must have (transformers indexes it: KeyError). */
static int rope_number(json_t *rp, const char *key, const char *type, const char *origin, double *out)
{
    if (vc_json_check_num(json_object_get(rp, key), -DBL_MAX, DBL_MAX, out) != VC_JSON_OK)
        return vc_fail_code(VC_EXIT_MODEL, "%s: rope type '%s' needs a number '%s'", origin, type, key);
    return 0;
}

/* YaRN's get_mscale. */
static double yarn_mscale(double scale, double mscale)
{
    return scale <= 1 ? 1.0 : 0.1 * mscale * log(scale) + 1.0;
}

/* The rules of transformers 5 (modeling_rope_utils.py, the decoders' rotary
 * classes and configs): rope_parameters, else the legacy rope_scaling, with
 * rope_type or "type"; rope_theta and partial_rotary_factor from the dict,
 * else the top level; original_max_position_embeddings for llama3, yarn and
 * longrope from the top level when the config has one (Phi-3's always does,
 * 4096 by default), else the dict, else max_position_embeddings. */
static int parse_rope_hf(json_t *cfg, const char *origin, vc_llm_config *c)
{
    json_t *rp = json_object_get(cfg, "rope_parameters");
    if (!json_is_object(rp) || json_object_size(rp) == 0)
        rp = json_object_get(cfg, "rope_scaling");
    if (!json_is_object(rp))
        rp = NULL;
    bool bad = false;
    c->rope_theta = vc_json_num_or(rp, "rope_theta", vc_json_num_or(cfg, "rope_theta", 10000.0, &bad), &bad);
    double partial;   /* a fraction of head_dim (past 1, head_dim * partial could pass INT_MAX) */
    if (vc_json_get_num(cfg, "partial_rotary_factor", 0, 1, 1.0, &partial) != 0 ||
        vc_json_get_num(rp, "partial_rotary_factor", 0, 1, partial, &partial) != 0)
        return vc_fail_ctx("%s", origin);
    if (bad)
        return vc_fail_ctx("%s", origin);
    const char *type = rp ? json_string_value(json_object_get(rp, "rope_type")) : NULL;
    if (!type && rp)
        type = json_string_value(json_object_get(rp, "type"));
    if (!type)
        type = "default";
    bool phi3 = c->arch == VC_ARCH_PHI3;
    if (phi3 && (strcmp(type, "su") == 0 || strcmp(type, "yarn") == 0))
        type = "longrope";   /* Phi3Config's backward compatibility */
    if (phi3 && strcmp(type, "default") != 0 && strcmp(type, "longrope") != 0)
        return vc_fail_code(VC_EXIT_MODEL, "%s: Phi-3 takes rope type default or longrope, not '%s'", origin, type);
    /* Phi-3 rotates head_dim * partial dimensions; Llama's and Mistral's
     * default rotary embedding ignores partial_rotary_factor, and their other
     * rope types compute fewer frequencies than the head has (transformers
     * then fails on the shapes) */
    bool is_default = strcmp(type, "default") == 0;
    c->rope_dim = phi3 || !is_default ? (int)(c->head_dim * partial) : c->head_dim;
    if (!phi3 && c->rope_dim != c->head_dim)
        return vc_fail_code(VC_EXIT_MODEL, "%s: partial_rotary_factor %g with rope type '%s' does not fit %s's "
                            "rotary embedding (transformers fails on it too)", origin, partial, type,
                            c->arch == VC_ARCH_LLAMA ? "Llama" : "Mistral");
    int top_orig = vc_json_int_or(cfg, "original_max_position_embeddings", phi3 ? 4096 : -1, &bad);
    int orig = top_orig > 0 ? top_orig : vc_json_int_or(rp, "original_max_position_embeddings", c->max_pos, &bad);
    if (bad)
        return vc_fail_ctx("%s", origin);
    double factor = 1.0;
    if (is_default) {
        c->rope = VC_ROPE_DEFAULT;
    } else if (strcmp(type, "linear") == 0) {
        c->rope = VC_ROPE_LINEAR;
        if (rope_number(rp, "factor", type, origin, &factor) != 0)
            return -1;
        if (!(factor > 0))
            return vc_fail_code(VC_EXIT_MODEL, "%s: linear rope factor must be positive", origin);
        c->rope_linear_factor = (float)factor;
    } else if (strcmp(type, "dynamic") == 0) {
        c->rope = VC_ROPE_DYNAMIC;
        if (rope_number(rp, "factor", type, origin, &factor) != 0)
            return -1;
        if (c->rope_dim <= 2)
            return vc_fail_code(VC_EXIT_MODEL, "%s: dynamic rope needs more than 2 rotary dimensions", origin);
        c->rope_factor = factor;
    } else if (strcmp(type, "yarn") == 0) {
        c->rope = VC_ROPE_YARN;
        json_t *f = json_object_get(rp, "factor");
        if (!f)
            return vc_fail_code(VC_EXIT_MODEL, "%s: rope type 'yarn' needs a number 'factor'", origin);
        factor = vc_json_num_or(rp, "factor", (double)c->max_pos / orig, &bad);
        c->rope_factor = factor;
        c->rope_orig_max_pos = orig;
        double mscale = vc_json_num_or(rp, "mscale", 0, &bad), mscale_all = vc_json_num_or(rp, "mscale_all_dim", 0, &bad);
        c->rope_attn_factor = (float)vc_json_num_or(rp, "attention_factor",
                                                    mscale != 0 && mscale_all != 0
                                                        ? yarn_mscale(factor, mscale) / yarn_mscale(factor, mscale_all)
                                                        : yarn_mscale(factor, 1),
                                                    &bad);
        /* `get("beta_fast") or 32`: a missing, null or zero value takes the default */
        c->yarn_beta_fast = vc_json_num_or(rp, "beta_fast", 0, &bad) != 0 ? vc_json_num_or(rp, "beta_fast", 0, &bad) : 32;
        c->yarn_beta_slow = vc_json_num_or(rp, "beta_slow", 0, &bad) != 0 ? vc_json_num_or(rp, "beta_slow", 0, &bad) : 1;
        json_t *tr = json_object_get(rp, "truncate");
        c->yarn_truncate = !json_is_boolean(tr) || json_is_true(tr);
        if (!(factor > 0) || orig <= 0 || !(c->rope_theta > 1))
            return vc_fail_code(VC_EXIT_MODEL, "%s: yarn needs a positive factor, original context and theta > 1",
                                origin);
    } else if (strcmp(type, "llama3") == 0) {
        c->rope = VC_ROPE_LLAMA3;
        if (rope_number(rp, "factor", type, origin, &c->rope_factor) != 0 ||
            rope_number(rp, "low_freq_factor", type, origin, &c->rope_low_freq) != 0 ||
            rope_number(rp, "high_freq_factor", type, origin, &c->rope_high_freq) != 0)
            return -1;
        c->rope_orig_max_pos = orig;
        if (!(c->rope_factor > 0) || !(c->rope_low_freq > 0) || !(c->rope_high_freq > 0) || orig <= 0 ||
            c->rope_high_freq == c->rope_low_freq)
            return vc_fail_code(VC_EXIT_MODEL, "%s: llama3 rope needs positive factors (low and high different) and "
                                "original_max_position_embeddings", origin);
    } else if (strcmp(type, "longrope") == 0) {
        c->rope = VC_ROPE_LONGROPE;
        c->rope_orig_max_pos = orig;
        if (c->rope_orig_max_pos <= 0)
            return vc_fail_code(VC_EXIT_MODEL, "%s: bad original_max_position_embeddings", origin);
        if (factor_list(json_object_get(rp, "short_factor"), c->rope_dim / 2, &c->rope_short, origin,
                        "short_factor") != 0 ||
            factor_list(json_object_get(rp, "long_factor"), c->rope_dim / 2, &c->rope_long, origin,
                        "long_factor") != 0)
            return -1;
        factor = vc_json_num_or(rp, "factor", (double)c->max_pos / c->rope_orig_max_pos, &bad);
        c->rope_attn_factor = (float)vc_json_num_or(rp, "attention_factor", longrope_attn_factor(factor, c->rope_orig_max_pos),
                                              &bad);
    } else {
        return vc_fail_code(VC_EXIT_MODEL, "%s: rope type '%s' is not supported (default, linear, dynamic, yarn, "
                            "longrope, llama3 are)", origin, type);
    }
    return bad ? vc_fail_ctx("%s", origin) : 0;
}

int vc_llm_config_eos_from_json(vc_llm_config *c, json_t *v)
{
    int ids[64];
    size_t n;
    if (vc_json_int_list(v, "eos_token_id", INT_MIN, INT_MAX, ids, VC_ARRAY_LEN(ids), &n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        vc_llm_config_add_eos(c, ids[i]);
    return 0;
}

int vc_llm_config_from_hf(json_t *cfg, const char *origin, vc_llm_config *c)
{
    memset(c, 0, sizeof *c);
    const char *type = json_string_value(json_object_get(cfg, "model_type"));
    if (!type)
        return vc_fail_code(VC_EXIT_MODEL, "%s: no model_type", origin);
    if (strcmp(type, "llama") == 0)
        c->arch = VC_ARCH_LLAMA;
    else if (strcmp(type, "mistral") == 0)
        c->arch = VC_ARCH_MISTRAL;
    else if (strcmp(type, "phi3") == 0 || strcmp(type, "phi3_v") == 0)
        c->arch = VC_ARCH_PHI3;
    else
        return vc_fail_code(VC_EXIT_MODEL, "%s: model_type '%s' is not supported (llama, mistral, phi3 are)", origin,
                            type);
    const char *act = json_string_value(json_object_get(cfg, "hidden_act"));
    if (act && strcmp(act, "silu") != 0)
        return vc_fail_code(VC_EXIT_MODEL, "%s: hidden_act '%s' is not supported (silu is)", origin, act);
    /* the defaults are those of LlamaConfig, MistralConfig and Phi3Config */
    bool mistral = c->arch == VC_ARCH_MISTRAL, phi3 = c->arch == VC_ARCH_PHI3, bad = false;
    c->dim = vc_json_int_or(cfg, "hidden_size", 0, &bad);
    c->n_layers = vc_json_int_or(cfg, "num_hidden_layers", 0, &bad);
    c->n_heads = vc_json_int_or(cfg, "num_attention_heads", 0, &bad);
    c->n_kv_heads = vc_json_int_or(cfg, "num_key_value_heads", mistral ? 8 : c->n_heads, &bad);
    c->head_dim = vc_json_int_or(cfg, "head_dim", 0, &bad);
    if (c->head_dim <= 0 && c->n_heads > 0)
        c->head_dim = c->dim / c->n_heads;   /* `head_dim or hidden_size // num_attention_heads` */
    c->ffn_dim = vc_json_int_or(cfg, "intermediate_size", 0, &bad);
    c->n_vocab = vc_json_int_or(cfg, "vocab_size", 0, &bad);
    c->max_pos = vc_json_int_or(cfg, "max_position_embeddings", mistral ? 4096 * 32 : phi3 ? 4096 : 2048, &bad);
    c->norm_eps = (float)vc_json_num_or(cfg, "rms_norm_eps", phi3 ? 1e-5 : 1e-6, &bad);
    json_t *tie = json_object_get(cfg, "tie_word_embeddings");
    c->tie_embeddings = json_is_boolean(tie) && json_is_true(tie);
    /* Mistral and Phi-3 only (Llama has no sliding window); Mistral's default is 4096, null is none */
    json_t *sw = json_object_get(cfg, "sliding_window");
    c->sliding_window = mistral && !sw ? 4096 : (mistral || phi3) ? vc_json_int_or(cfg, "sliding_window", 0, &bad) : 0;
    if (c->arch == VC_ARCH_LLAMA) {
        c->attn_bias = json_is_true(json_object_get(cfg, "attention_bias"));
        c->mlp_bias = json_is_true(json_object_get(cfg, "mlp_bias"));
        if (c->n_heads > 0 && c->dim % c->n_heads != 0)   /* LlamaConfig.validate_architecture */
            return vc_fail_code(VC_EXIT_MODEL, "%s: hidden_size %d is not a multiple of num_attention_heads %d", origin,
                                c->dim, c->n_heads);
    }
    c->rope_layout = VC_ROPE_NEOX;
    c->rope_attn_factor = 1.0f;
    c->bos_id = vc_json_int_or(cfg, "bos_token_id", -1, &bad);
    if (bad)
        return vc_fail_ctx("%s", origin);
    if (vc_llm_config_eos_from_json(c, json_object_get(cfg, "eos_token_id")) != 0)
        return vc_fail_ctx("%s", origin);
    if (parse_rope_hf(cfg, origin, c) != 0)
        return -1;
    if (vc_llm_config_check(c) != 0)
        return vc_fail_ctx("%s", origin);
    return 0;
}

/* ---- GGUF ---- */

static bool gguf_int(const vc_gguf *g, const char *arch, const char *key, int64_t *out)
{
    char name[256];
    snprintf(name, sizeof name, "%s.%s", arch, key);
    return vc_gguf_get_int(g, name, out);
}

static bool gguf_float(const vc_gguf *g, const char *arch, const char *key, double *out)
{
    char name[256];
    snprintf(name, sizeof name, "%s.%s", arch, key);
    return vc_gguf_get_float(g, name, out);
}

static int require_int(const vc_gguf *g, const char *arch, const char *key, int *out)
{
    int64_t v;
    if (!gguf_int(g, arch, key, &v))
        return vc_fail_code(VC_EXIT_MODEL, "%s: missing metadata %s.%s", g->path, arch, key);
    if (v <= 0 || v > INT32_MAX)
        return vc_fail_code(VC_EXIT_MODEL, "%s: metadata %s.%s = %lld is out of range", g->path, arch, key,
                            (long long)v);
    *out = (int)v;
    return 0;
}

/* Phi-3 GGUF files carry the LongRoPE factors as tensors. */
static int gguf_factors(const vc_gguf *g, const char *name, int n, float **out)
{
    const vc_tensor *t = vc_tensors_find(&g->tensors, name);
    if (!t)
        return vc_fail_code(VC_EXIT_MODEL, "%s: missing tensor %s", g->path, name);
    *out = vc_malloc((size_t)n * sizeof **out);
    return *out ? vc_tensor_to_f32(t, n, *out) : -1;
}

int vc_llm_config_from_gguf(const vc_gguf *g, vc_llm_config *c)
{
    memset(c, 0, sizeof *c);
    char *arch = vc_gguf_get_string(g, "general.architecture");
    if (!arch)
        return vc_fail_code(VC_EXIT_MODEL, "%s: no general.architecture", g->path);
    int rc = 0;
    if (strcmp(arch, "llama") == 0) {
        c->arch = VC_ARCH_LLAMA;
        c->rope_layout = VC_ROPE_PAIRS;   /* llama.cpp's converter permuted q/k for this */
    } else if (strcmp(arch, "phi3") == 0) {
        c->arch = VC_ARCH_PHI3;
        c->rope_layout = VC_ROPE_NEOX;
    } else {
        rc = vc_fail_code(VC_EXIT_MODEL, "%s: architecture '%s' is not supported (llama, phi3 are)", g->path, arch);
    }
    int64_t v;
    double f;
    if (rc == 0)
        rc = require_int(g, arch, "embedding_length", &c->dim) || require_int(g, arch, "block_count", &c->n_layers) ||
             require_int(g, arch, "attention.head_count", &c->n_heads) ||
             require_int(g, arch, "feed_forward_length", &c->ffn_dim) ? -1 : 0;
    if (rc == 0) {
        c->n_kv_heads = gguf_int(g, arch, "attention.head_count_kv", &v) ? (int)v : c->n_heads;
        c->head_dim = gguf_int(g, arch, "attention.key_length", &v) ? (int)v : c->dim / c->n_heads;
        c->rope_dim = gguf_int(g, arch, "rope.dimension_count", &v) ? (int)v : c->head_dim;
        c->max_pos = gguf_int(g, arch, "context_length", &v) ? (int)v : 4096;
        c->norm_eps = gguf_float(g, arch, "attention.layer_norm_rms_epsilon", &f) ? (float)f : 1e-5f;
        c->rope_theta = gguf_float(g, arch, "rope.freq_base", &f) ? f : 10000.0;
        c->sliding_window = gguf_int(g, arch, "attention.sliding_window", &v) ? (int)v : 0;
        c->rope_attn_factor = 1.0f;
        const vc_gguf_kv *tokens = vc_gguf_find(g, "tokenizer.ggml.tokens");
        c->n_vocab = gguf_int(g, arch, "vocab_size", &v) ? (int)v : tokens ? (int)tokens->arr_n : 0;
        const vc_tensor *emb = vc_tensors_find(&g->tensors, "token_embd.weight");
        if (emb && emb->n_dims == 2)
            c->n_vocab = (int)emb->ne[1];
        c->tie_embeddings = vc_tensors_find(&g->tensors, "output.weight") == NULL;
        c->bos_id = vc_gguf_get_int(g, "tokenizer.ggml.bos_token_id", &v) ? (int32_t)v : -1;
        if (vc_gguf_get_int(g, "tokenizer.ggml.eos_token_id", &v))
            vc_llm_config_add_eos(c, (int32_t)v);
        if (vc_gguf_get_int(g, "tokenizer.ggml.eot_token_id", &v))
            vc_llm_config_add_eos(c, (int32_t)v);
    }
    if (rc == 0 && gguf_int(g, arch, "rope.scaling.original_context_length", &v) &&
        vc_tensors_find(&g->tensors, "rope_factors_long.weight")) {
        c->rope = VC_ROPE_LONGROPE;
        c->rope_orig_max_pos = (int)v;
        rc = gguf_factors(g, "rope_factors_short.weight", c->rope_dim / 2, &c->rope_short);
        if (rc == 0)
            rc = gguf_factors(g, "rope_factors_long.weight", c->rope_dim / 2, &c->rope_long);
        c->rope_attn_factor = gguf_float(g, arch, "rope.scaling.attn_factor", &f)
                                  ? (float)f
                                  : longrope_attn_factor((double)c->max_pos / v, (int)v);
    } else if (rc == 0 && gguf_float(g, arch, "rope.scaling.factor", &f) && f > 0 && f != 1.0) {
        c->rope = VC_ROPE_LINEAR;
        c->rope_linear_factor = (float)f;
    }
    free(arch);
    if (rc == 0)
        rc = vc_llm_config_check(c);
    if (rc != 0 && !strstr(vc_error(), g->path))
        vc_fail_ctx("%s", g->path);
    return rc;
}
