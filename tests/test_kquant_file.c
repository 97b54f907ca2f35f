/* test_kquant_file.c - K-quant GGUF files as vlmchat convert writes them.
 *
 * The fixture models are 64 wide, so their K-quant conversions fall back to
 * Q5_0 / Q5_1 / Q8_0 everywhere. Here a small random Llama model whose row
 * widths are whole 256-blocks (hidden 256, intermediate 512, 8 layers, the
 * llama fixture's 560-token tokenizer, untied output head) is written at
 * test time and converted with q4_k_m, q5_k_m, q4_k, q5_k and q6_k (and, for
 * comparison, q8_0 and q4_0, interleaved at load for 8-bit activations).
 * For each file:
 *  - its tensor types are the ones llama.cpp's rule gives (convert.c's
 *    mix_type: Q6_K for output.weight and for attn_v / ffn_down of the layers
 *    use_more_bits picks, the base type elsewhere, F32 norms);
 *  - an F32 copy of it (every tensor dequantized, the metadata the same) is
 *    the reference: with float activations (--float-act) the file's logits
 *    are within 1e-4 of the copy's (relative to the logit scale) and its
 *    greedy ids are the copy's;
 *  - with 8-bit activations (the default) its first logits are within 2% of
 *    the copy's (test_gguf's bound for Q8_0 files), and along the copy's
 *    greedy path each step's argmax is the copy's wherever the copy's top two
 *    logits are further apart than the int8 error can move them.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/convert.h"
#include "core/common.h"
#include "core/int8dot.h"
#include "harness.h"
#include "loader/gguf.h"
#include "model/generate.h"
#include "model/model.h"

#define HIDDEN 256
#define INTER 512
#define LAYERS 8
#define HEADS 4
#define KV_HEADS 2
#define HEAD_DIM (HIDDEN / HEADS)
#define VOCAB 560
#define N_GEN 12
#define INT8_TOL 2e-2f
/* matrices uniform in +-WSCALE (o_proj, down_proj half that): at twice it
 * the random model turns chaotic enough that 8-bit activations move its
 * logits by over 2% on Q8_0 weights too */
#define WSCALE 0.06

/* ---- the random HF model ---- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

typedef struct {
    char name[96];
    int64_t rows, cols;   /* cols 0: a vector of rows elements */
    double scale, offset; /* uniform in offset +- scale */
} spec;

static int n_specs(spec *s)
{
    int n = 0;
#define ADD(r, c, sc, off, ...)                                          \
    do {                                                                 \
        snprintf(s[n].name, sizeof s[n].name, __VA_ARGS__);              \
        s[n].rows = (r), s[n].cols = (c), s[n].scale = (sc), s[n].offset = (off); \
        n++;                                                             \
    } while (0)
    ADD(VOCAB, HIDDEN, 1.0, 0, "model.embed_tokens.weight");
    ADD(VOCAB, HIDDEN, WSCALE, 0, "lm_head.weight");
    ADD(HIDDEN, 0, 0.1, 1.0, "model.norm.weight");
    for (int i = 0; i < LAYERS; i++) {
        ADD(HIDDEN, 0, 0.1, 1.0, "model.layers.%d.input_layernorm.weight", i);
        ADD(HIDDEN, 0, 0.1, 1.0, "model.layers.%d.post_attention_layernorm.weight", i);
        ADD(HIDDEN, HIDDEN, WSCALE, 0, "model.layers.%d.self_attn.q_proj.weight", i);
        ADD(KV_HEADS * HEAD_DIM, HIDDEN, WSCALE, 0, "model.layers.%d.self_attn.k_proj.weight", i);
        ADD(KV_HEADS * HEAD_DIM, HIDDEN, WSCALE, 0, "model.layers.%d.self_attn.v_proj.weight", i);
        ADD(HIDDEN, HIDDEN, WSCALE / 2, 0, "model.layers.%d.self_attn.o_proj.weight", i);
        ADD(INTER, HIDDEN, WSCALE, 0, "model.layers.%d.mlp.gate_proj.weight", i);
        ADD(INTER, HIDDEN, WSCALE, 0, "model.layers.%d.mlp.up_proj.weight", i);
        ADD(HIDDEN, INTER, WSCALE / 2, 0, "model.layers.%d.mlp.down_proj.weight", i);
    }
#undef ADD
    return n;
}

static int write_safetensors(const char *path)
{
    spec s[3 + 9 * LAYERS];
    int n = n_specs(s);
    json_t *header = json_object();
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        size_t elems = (size_t)s[i].rows * (size_t)(s[i].cols ? s[i].cols : 1);
        json_t *shape = s[i].cols ? json_pack("[I,I]", (json_int_t)s[i].rows, (json_int_t)s[i].cols)
                                  : json_pack("[I]", (json_int_t)s[i].rows);
        json_object_set_new(header, s[i].name, json_pack("{s:s,s:o,s:[I,I]}", "dtype", "F32", "shape", shape,
                                                         "data_offsets", (json_int_t)total,
                                                         (json_int_t)(total + 4 * elems)));
        total += 4 * elems;
    }
    FILE *f = safetensors_begin(path, header);
    if (!f)
        return -1;
    int rc = 0;
    uint64_t seed = 20;
    for (int i = 0; rc == 0 && i < n; i++) {
        size_t elems = (size_t)s[i].rows * (size_t)(s[i].cols ? s[i].cols : 1);
        for (size_t k = 0; rc == 0 && k < elems; k++) {
            double u = ((double)(splitmix(&seed) >> 40) + 0.5) * 0x1p-24;
            float v = (float)(s[i].offset + s[i].scale * (2 * u - 1));
            rc = fwrite(&v, sizeof v, 1, f) == 1 ? 0 : -1;
        }
    }
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

static int make_model(const char *dir)
{
    char path[600], from[600];
    static const char *const copied[] = { "tokenizer.json", "tokenizer_config.json" };
    for (size_t i = 0; i < 2; i++) {
        snprintf(from, sizeof from, "%.400s/llama/%s", fixture("models"), copied[i]);
        snprintf(path, sizeof path, "%.400s/%s", dir, copied[i]);
        if (copy_file(from, path) != 0)
            return -1;
    }
    json_t *cfg = json_pack("{s:[s],s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:f,s:f,s:b,s:s,s:i,s:i}",
                            "architectures", "LlamaForCausalLM", "model_type", "llama", "hidden_size", HIDDEN,
                            "intermediate_size", INTER, "num_hidden_layers", LAYERS, "num_attention_heads", HEADS,
                            "num_key_value_heads", KV_HEADS, "head_dim", HEAD_DIM, "vocab_size", VOCAB,
                            "max_position_embeddings", 256, "rms_norm_eps", 1e-5, "rope_theta", 10000.0,
                            "tie_word_embeddings", 0, "hidden_act", "silu", "bos_token_id", 1, "eos_token_id", 2);
    snprintf(path, sizeof path, "%.400s/config.json", dir);
    int rc = cfg && json_dump_file(cfg, path, 0) == 0 ? 0 : -1;
    json_decref(cfg);
    snprintf(path, sizeof path, "%.400s/model.safetensors", dir);
    return rc == 0 ? write_safetensors(path) : -1;
}

/* ---- the file's tensor types ---- */

static bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* What llama.cpp's rule (or a plain type) stores tensor `name` as. */
static vc_dtype expected_type(const char *name, int n_dims, vc_convert_mix mix, vc_dtype plain)
{
    if (n_dims == 1)
        return VC_F32;
    if (mix == VC_MIX_NONE)
        return plain;
    vc_dtype base = mix == VC_MIX_Q4_K_M ? VC_Q4_K : VC_Q5_K;
    if (strcmp(name, "output.weight") == 0)
        return VC_Q6_K;
    int layer;
    char rest[64];
    if (sscanf(name, "blk.%d.%63s", &layer, rest) == 2 &&
        (strcmp(rest, "attn_v.weight") == 0 || strcmp(rest, "ffn_down.weight") == 0) && use_more_bits(layer, LAYERS))
        return VC_Q6_K;
    return base;
}

static void check_types(const char *label, const vc_gguf *g, vc_convert_mix mix, vc_dtype plain)
{
    int count[64] = { 0 }, wrong = 0;   /* the file types are below 64 */
    for (size_t i = 0; i < g->tensors.count; i++) {
        const vc_tensor *t = &g->tensors.items[i];
        vc_dtype want = expected_type(t->name, t->n_dims, mix, plain);
        if (t->type != (int)want || t->type < 0 || t->type >= 64) {
            wrong++;
            CHECK(0, "%s: %s is %s, want %s", label, t->name, t->type_name, vc_dtype_name(want));
        } else {
            count[want]++;
        }
    }
    /* 9 matrices a layer and the two 560 x 256 tables; Q6_K where the rule says */
    int q6 = mix == VC_MIX_NONE ? (plain == VC_Q6_K ? 2 + 7 * LAYERS : 0) : 1 + 2 * 4;   /* layers 0, 3, 6, 7 */
    CHECK(wrong == 0 && (size_t)(count[VC_F32] + 2 + 7 * LAYERS) == g->tensors.count && count[VC_Q6_K] == q6,
          "%s: %d wrong tensor types, %d F32 of %zu, %d Q6_K (want %d)", label, wrong, count[VC_F32],
          g->tensors.count, count[VC_Q6_K], q6);
    printf("%s:", label);
    for (int t = 0; t < 64; t++)
        if (count[t])
            printf(" %d %s", count[t], vc_dtype_name((vc_dtype)t));
    printf("\n");
}

/* ---- the F32 copy: every tensor dequantized, the metadata as it was ---- */

static char *dup_str(vc_gguf_str s)
{
    char *p = malloc(s.len + 1);
    if (p) {
        memcpy(p, s.ptr, s.len);
        p[s.len] = 0;
    }
    return p;
}

static int copy_kv(vc_gguf_writer *w, const vc_gguf_kv *kv)
{
    if (strcmp(kv->key, "general.file_type") == 0)
        return vc_gguf_set_u32(w, kv->key, 0);   /* all F32 */
    switch (kv->type) {
    case VC_GGUF_U32: return vc_gguf_set_u32(w, kv->key, (uint32_t)kv->v.u);
    case VC_GGUF_I32: return vc_gguf_set_i32(w, kv->key, (int32_t)kv->v.i);
    case VC_GGUF_F32: return vc_gguf_set_f32(w, kv->key, (float)kv->v.f);
    case VC_GGUF_BOOL: return vc_gguf_set_bool(w, kv->key, kv->v.u != 0);
    case VC_GGUF_STRING: {
        char *s = dup_str(kv->v.s);
        int rc = s ? vc_gguf_set_str(w, kv->key, s) : -1;
        free(s);
        return rc;
    }
    case VC_GGUF_ARRAY: break;
    default: return -1;
    }
    int rc = -1;
    if (kv->arr_type == VC_GGUF_STRING) {
        char **v = calloc(kv->arr_n ? kv->arr_n : 1, sizeof *v);
        uint64_t i = 0;
        for (; v && i < kv->arr_n && (v[i] = dup_str(kv->arr_str[i])); i++) {}
        if (v && i == kv->arr_n)
            rc = vc_gguf_set_arr_str(w, kv->key, (const char *const *)v, kv->arr_n);
        for (uint64_t k = 0; v && k < i; k++)
            free(v[k]);
        free(v);
    } else if (kv->arr_type == VC_GGUF_F32 || kv->arr_type == VC_GGUF_I32) {
        bool f = kv->arr_type == VC_GGUF_F32;
        void *v = malloc((kv->arr_n ? kv->arr_n : 1) * 4);
        for (uint64_t i = 0; v && i < kv->arr_n; i++) {
            if (f)
                ((float *)v)[i] = (float)vc_gguf_arr_float(kv, i);
            else
                ((int32_t *)v)[i] = (int32_t)vc_gguf_arr_int(kv, i);
        }
        if (v)
            rc = f ? vc_gguf_set_arr_f32(w, kv->key, v, kv->arr_n) : vc_gguf_set_arr_i32(w, kv->key, v, kv->arr_n);
        free(v);
    }
    return rc;
}

static int write_f32_copy(const vc_gguf *g, const char *path)
{
    vc_gguf_writer *w = vc_gguf_writer_new();
    int rc = w ? 0 : -1;
    for (uint64_t i = 0; rc == 0 && i < g->n_kv; i++)
        if ((rc = copy_kv(w, &g->kv[i])) != 0)
            vc_fail("copy key %s", g->kv[i].key);
    for (size_t i = 0; rc == 0 && i < g->tensors.count; i++) {
        const vc_tensor *t = &g->tensors.items[i];
        int64_t n = vc_tensor_nelements(t), cols = t->ne[0];
        size_t row_bytes;
        float *out = n > 0 ? malloc((size_t)n * sizeof *out) : NULL;
        if (!out || vc_dtype_row_bytes((vc_dtype)t->type, cols, &row_bytes) != 0) {
            free(out);
            rc = -1;
            break;
        }
        for (int64_t r = 0; r < n / cols; r++)
            vc_dequantize_row((vc_dtype)t->type, (const uint8_t *)t->data + (size_t)r * row_bytes, out + r * cols, cols);
        rc = vc_gguf_add_tensor(w, t->name, VC_F32, t->n_dims, t->ne, out, (size_t)n * sizeof *out);
    }
    if (rc == 0)
        rc = vc_gguf_write(w, path);
    vc_gguf_writer_free(w);
    return rc;
}

/* ---- comparing ---- */

static const int32_t PROMPT[] = { 1, 17, 230, 45, 99, 310, 7, 402, 128, 55 };
#define N_PROMPT ((int)(sizeof PROMPT / sizeof *PROMPT))

static float max_diff(const float *a, const float *b, int n, float *scale)
{
    float worst = 0;
    *scale = 1;
    for (int i = 0; i < n; i++) {
        worst = fmaxf(worst, fabsf(a[i] - b[i]));
        *scale = fmaxf(*scale, fabsf(b[i]));
    }
    return worst;
}

static int argmax(const float *v, int n, float *margin)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    float second = -INFINITY;
    for (int i = 0; i < n; i++)
        if (i != best && v[i] > second)
            second = v[i];
    *margin = v[best] - second;
    return best;
}

static int open_model(const char *path, bool int8, vc_model *m)
{
    vc_int8dot_enable(int8);
    int rc = vc_model_open(path, &(vc_model_options){ .n_ctx = 64 }, m);
    return rc;
}

static int greedy(vc_model *m, int32_t *ids)
{
    vc_llm_truncate(&m->llm, 0);
    vc_gen_options opt = { .max_tokens = N_GEN, .ignore_eos = true, .sampling = vc_sampler_defaults() };
    opt.sampling.temperature = 0;
    vc_gen_result r;
    if (vc_generate(m, PROMPT, N_PROMPT, &opt, &r) != 0)
        return -1;
    int rc = r.n_tokens == N_GEN ? 0 : -1;
    if (rc == 0)
        memcpy(ids, r.tokens, N_GEN * sizeof *ids);
    vc_gen_result_free(&r);
    return rc;
}

static void check_file(const char *dir, const char *model_dir, const char *type_name)
{
    vc_convert_mix mix = vc_convert_mix_from_name(type_name);
    int plain = mix == VC_MIX_NONE ? vc_dtype_from_name(type_name) : 0;
    char path[600], f32_path[600], label[64];
    snprintf(path, sizeof path, "%.400s/%s.gguf", dir, type_name);
    snprintf(f32_path, sizeof f32_path, "%.400s/%s-dequantized.gguf", dir, type_name);
    snprintf(label, sizeof label, "%s", type_name);
    int rc = vc_convert_to_gguf_mix(model_dir, path, (vc_dtype)plain, mix);
    CHECK(rc == 0, "%s: convert: %s", label, vc_error());
    if (rc != 0)
        return;
    vc_gguf g;
    rc = vc_gguf_open(path, &g);
    CHECK(rc == 0, "%s: open: %s", label, vc_error());
    if (rc != 0)
        return;
    check_types(label, &g, mix, (vc_dtype)plain);
    rc = write_f32_copy(&g, f32_path);
    vc_gguf_close(&g);
    CHECK(rc == 0, "%s: F32 copy: %s", label, vc_error());

    vc_model ref, fl, i8;
    bool have_ref = rc == 0 && open_model(f32_path, false, &ref) == 0;
    CHECK(have_ref, "%s: load the F32 copy: %s", label, vc_error());
    bool have_fl = open_model(path, false, &fl) == 0;
    CHECK(have_fl, "%s: load (float activations): %s", label, vc_error());
    bool have_i8 = open_model(path, true, &i8) == 0;
    CHECK(have_i8, "%s: load (8-bit activations): %s", label, vc_error());
    vc_int8dot_enable(false);
    if (!have_ref || !have_fl || !have_i8)
        goto done;
    CHECK(ref.llm.cfg.n_vocab == VOCAB && fl.llm.cfg.n_vocab == VOCAB && ref.llm.cfg.dim == HIDDEN,
          "%s: vocab %d / %d, hidden %d", label, ref.llm.cfg.n_vocab, fl.llm.cfg.n_vocab, ref.llm.cfg.dim);

    float want[VOCAB], got[VOCAB], scale;
    /* float activations: the dequantized weights' logits, and their greedy ids */
    CHECK(vc_llm_forward(&ref.llm, PROMPT, N_PROMPT, want) == 0, "%s: forward (F32 copy)", label);
    CHECK(vc_llm_forward(&fl.llm, PROMPT, N_PROMPT, got) == 0, "%s: forward (float activations)", label);
    float d = max_diff(got, want, VOCAB, &scale);
    CHECK(d <= 1e-4f * scale, "%s: float-activation logits differ from the F32 copy's by %g (scale %g)", label, d,
          scale);
    int32_t ref_ids[N_GEN], ids[N_GEN];
    CHECK(greedy(&ref, ref_ids) == 0 && greedy(&fl, ids) == 0 && memcmp(ids, ref_ids, sizeof ids) == 0,
          "%s: greedy ids on float activations differ from the F32 copy's", label);

    /* 8-bit activations: first logits within 2%, then the copy's greedy path token by token */
    vc_int8dot_enable(true);
    float first[VOCAB];
    vc_llm_truncate(&i8.llm, 0);
    CHECK(vc_llm_forward(&i8.llm, PROMPT, N_PROMPT, first) == 0, "%s: forward (8-bit activations)", label);
    float d8 = max_diff(first, want, VOCAB, &scale);
    CHECK(d8 > 0 && d8 <= INT8_TOL * scale,
          "%s: 8-bit-activation logits differ from the F32 copy's by %g (scale %g), want more than 0 and at most 2%%",
          label, d8, scale);
    int decided = 0, agreed = 0;
    vc_llm_truncate(&ref.llm, 0);
    vc_int8dot_enable(false);
    vc_llm_forward(&ref.llm, PROMPT, N_PROMPT, want);
    memcpy(got, first, sizeof got);
    for (int s = 0; s < N_GEN; s++) {
        float margin, m8;
        int w = argmax(want, VOCAB, &margin), g8 = argmax(got, VOCAB, &m8);
        CHECK(w == ref_ids[s], "%s: step %d: the F32 copy's argmax %d is not its greedy id %d", label, s, w,
              ref_ids[s]);
        if (margin > 2 * INT8_TOL * scale) {   /* beyond what 8-bit activations can move */
            decided++;
            agreed += g8 == w;
            CHECK(g8 == w, "%s: step %d: 8-bit activations pick %d, the F32 copy %d (margin %g, scale %g)", label, s,
                  g8, w, margin, scale);
        }
        if (s + 1 < N_GEN) {
            vc_llm_forward(&ref.llm, &ref_ids[s], 1, want);
            vc_int8dot_enable(true);
            vc_llm_forward(&i8.llm, &ref_ids[s], 1, got);
            vc_int8dot_enable(false);
        }
    }
    CHECK(decided >= N_GEN / 3, "%s: only %d of %d steps have a clear argmax", label, decided, N_GEN);
    printf("%s: float-act %.2g, int8 %.2g of scale %.3g from the F32 copy; int8 greedy agrees on %d of %d clear "
           "steps\n", label, d, d8, scale, agreed, decided);
done:
    vc_int8dot_enable(false);
    if (have_ref)
        vc_model_close(&ref);
    if (have_fl)
        vc_model_close(&fl);
    if (have_i8)
        vc_model_close(&i8);
    unlink(path);
    unlink(f32_path);
}

int main(void)
{
    char dir[] = "/tmp/vlmchat-kquant-XXXXXX", model_dir[600];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(model_dir, sizeof model_dir, "%s/hf", dir);
    int rc = mkdir(model_dir, 0755) == 0 ? make_model(model_dir) : -1;
    CHECK(rc == 0, "write the random model");
    static const char *const types[] = { "q4_k_m", "q5_k_m", "q4_k", "q5_k", "q6_k", "q8_0", "q4_0" };
    for (size_t i = 0; rc == 0 && i < sizeof types / sizeof *types; i++)
        check_file(dir, model_dir, types[i]);
    static const char *const files[] = { "tokenizer.json", "tokenizer_config.json", "config.json", "model.safetensors" };
    char p[700];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", model_dir, files[i]);
        unlink(p);
    }
    rmdir(model_dir);
    rmdir(dir);
    return harness_finish("test_kquant_file");
}
