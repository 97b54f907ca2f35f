/* llm.h - the decoder-only transformer shared by Llama, Mistral and Phi-3.
 *
 * One forward pass covers all three: RMSNorm, rotary attention with grouped
 * query heads, an optional sliding window, and a SwiGLU MLP.  Phi-3's fused
 * qkv and gate_up weights are bound as row slices of one matrix.  Weights
 * stay where the loader mapped them; the KV cache and scratch are owned here.
 *
 * Positions follow transformers exactly, including LongRoPE: the short or
 * long factors are chosen per forward call from its last position, and the
 * first call that crosses original_max_position_embeddings recomputes the
 * whole cache under the long factors, as Phi-3's generate() does.  For that
 * a LongRoPE model keeps the input embedding of every cached position.
 */
#ifndef VC_MODEL_LLM_H
#define VC_MODEL_LLM_H

#include <stdbool.h>
#include <stdint.h>

#include "core/kernels.h"
#include "loader/tensors.h"

typedef enum { VC_ARCH_LLAMA, VC_ARCH_MISTRAL, VC_ARCH_PHI3, VC_ARCH_MOONDREAM } vc_arch;
/* transformers' rope types (modeling_rope_utils.py): DYNAMIC's frequencies
 * depend on the sequence length of each forward call, LONGROPE's factors on
 * whether it passes original_max_position_embeddings; the others are fixed. */
typedef enum {
    VC_ROPE_DEFAULT,
    VC_ROPE_LINEAR,
    VC_ROPE_LONGROPE,
    VC_ROPE_DYNAMIC,
    VC_ROPE_YARN,
    VC_ROPE_LLAMA3
} vc_rope_kind;
/* NEOX: rotate first half against second half (HF); PAIRS: adjacent pairs
 * (GGUF "llama" files, whose q/k rows llama.cpp's converter permuted). */
typedef enum { VC_ROPE_NEOX, VC_ROPE_PAIRS } vc_rope_layout;

#define VC_MAX_EOS 8

typedef struct {
    vc_arch arch;
    int n_vocab, dim, n_layers, n_heads, n_kv_heads, head_dim, ffn_dim;
    int max_pos;               /* max_position_embeddings */
    float norm_eps;
    bool tie_embeddings;
    int sliding_window;        /* 0: full causal attention */

    vc_rope_kind rope;
    vc_rope_layout rope_layout;
    double rope_theta;
    int rope_dim;              /* rotated dimensions per head (partial rotary) */
    float rope_linear_factor;
    double rope_factor;        /* dynamic, yarn, llama3: the rope dict's factor */
    int rope_orig_max_pos;     /* LongRoPE, yarn, llama3: original_max_position_embeddings */
    double rope_low_freq, rope_high_freq;   /* llama3: low_freq_factor, high_freq_factor */
    double yarn_beta_fast, yarn_beta_slow;  /* yarn: rotation bounds of the ramp */
    bool yarn_truncate;        /* yarn: floor/ceil the ramp bounds */
    float rope_attn_factor;    /* scales cos/sin */
    float *rope_short, *rope_long;   /* rope_dim/2 factors each */

    bool attn_bias, mlp_bias;  /* q/k/v/o and gate/up/down have biases (Llama's attention_bias, mlp_bias) */

    int32_t bos_id;
    int32_t eos_ids[VC_MAX_EOS];
    int n_eos;

    /* Phi-style blocks (Moondream's decoder); all off for Llama/Mistral/Phi-3: */
    bool layer_norm;           /* LayerNorm with bias instead of RMSNorm (each norm) */
    bool parallel_block;       /* x += attn(norm(x)) + mlp(norm(x)): one norm per layer */
    bool gelu_mlp;             /* up, GELU(tanh), down instead of SwiGLU (no gate) */
    int prefix_bidirectional;  /* leading positions that attend to each other both ways (0: none);
                                * they must all be in the first forward call */
} vc_llm_config;

typedef struct {
    const float *attn_norm, *ffn_norm;   /* point into `norms` */
    vc_matrix wq, wk, wv, wo, gate, up, down;
    /* biases (into `biases`), NULL where the config has none */
    const float *attn_norm_b, *bq, *bk, *bv, *bo, *bgate, *bup, *bdown;
} vc_llm_layer;

typedef struct vc_llm {
    vc_llm_config cfg;
    vc_tensor_set weights;
    const vc_tensor *tok_embd;
    vc_matrix embed, lm_head;
    float *norms;                /* all norm weights as floats */
    float *biases;               /* all bias vectors as floats, or NULL where the checkpoint has none */
    const float *final_norm;
    const float *final_norm_b, *lm_head_b;   /* optional biases (NULL: none) */
    vc_llm_layer *layers;
    int n_interleaved;           /* matrices interleaved for --int8-dot at load */

    int n_ctx;                   /* KV cache capacity in positions */
    int n_past;                  /* positions filled */
    /* [layer][n_ctx][n_kv_heads*head_dim]: floats, or halves (kv_half) where
     * the decoder's matrices are quantized and take the integer kernels, as
     * llama.cpp keeps its cache (half the memory and the reads a token) */
    bool kv_half;
    float *k_cache, *v_cache;
    uint16_t *k_half, *v_half;
    float *embd_history;         /* [n_ctx][dim], LongRoPE models only */
} vc_llm;

/* Where the decoder's tensors live in a checkpoint. */
typedef struct {
    bool gguf;                 /* llama.cpp names: token_embd, blk.N.attn_q, ... */
    const char *body;          /* HF: prefix of layers/embed_tokens/norm, e.g. "model." */
    const char *head;          /* HF: the output projection, e.g. "lm_head.weight" */
    /* Moondream's names under `body` (e.g. "model.text."): wte, blocks.N.{ln, attn.qkv, attn.proj,
     * mlp.fc1, mlp.fc2} with biases, post_ln, lm_head */
    bool moondream;
} vc_llm_names;

extern const vc_llm_names VC_LLM_NAMES_HF, VC_LLM_NAMES_GGUF, VC_LLM_NAMES_MOONDREAM;

/* A layer's matrices into out, in the order wq, wk, wv, wo, gate, up, down
 * (one the config has none of has no data). */
#define VC_LLM_LAYER_MATRICES 7
void vc_llm_layer_matrices(vc_llm_layer *L, vc_matrix *out[VC_LLM_LAYER_MATRICES]);

/* Checks the config for consistency (sizes positive, heads divide, ...). */
int vc_llm_config_check(const vc_llm_config *c);
/* Binds weights by name. Takes ownership of *weights. */
int vc_llm_bind(vc_llm *m, vc_tensor_set *weights, const vc_llm_names *names);
/* Bytes a position of context costs: in the cache, every layer's keys and
 * values in the element type vc_llm_alloc_cache picks (halves for a decoder
 * of quantized matrices on the integer kernels, vc_int8dot_enabled; floats
 * otherwise, the exact path) and a LongRoPE model's input row; and in a
 * prefill's scratch at that position, a layer's keys as floats, transposed
 * (and with halves its keys and values as floats too). What the memory
 * budget sizes the context by. */
size_t vc_llm_position_bytes(const vc_llm *m);
/* Allocates the KV cache for n_ctx positions (<= max_pos is not required). */
int vc_llm_alloc_cache(vc_llm *m, int n_ctx);
void vc_llm_free(vc_llm *m);

/* Runs tokens[0..n) at positions n_past.. and appends them to the cache.
 * If logits is not NULL it receives n_vocab floats for the last token.
 * Fails (VC_EXIT_INPUT) if the cache would overflow. */
int vc_llm_forward(vc_llm *m, const int32_t *tokens, int n, float *logits);
/* Same with input embeddings (n x dim floats) instead of token ids. */
int vc_llm_forward_embd(vc_llm *m, const float *embd, int n, float *logits);
/* Same, and if hidden is not NULL it receives the last token's hidden state
 * before the final norm (dim floats), what Moondream's region heads read. */
int vc_llm_forward_embd_hidden(vc_llm *m, const float *embd, int n, float *logits, float *hidden);
/* Forgets the cached positions from `keep` on; with a two-way prefix, a
 * keep inside it forgets everything (callers compare n_past with keep). */
void vc_llm_truncate(vc_llm *m, int keep);
/* Writes token `id`'s embedding row (dim floats). */
int vc_llm_embed(const vc_llm *m, int32_t id, float *out);

/* Bytes used by the KV cache. */
size_t vc_llm_kv_bytes(const vc_llm *m);

#endif
