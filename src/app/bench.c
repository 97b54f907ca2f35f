/* bench.c - see include/app/bench.h */
#define _GNU_SOURCE
#include "app/bench.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/locate.h"
#include "core/buf.h"
#include "core/cpu.h"
#include "core/common.h"
#include "core/dtype.h"
#include "core/gemm.h"
#include "core/kernels.h"
#include "core/meminfo.h"
#include "core/int8dot.h"
#include "core/threads.h"
#include "model/conversation.h"
#include "model/generate.h"
#include "model/prompt.h"
#include "model/skills.h"
#include "vision/moondream.h"
#include "vision/phi3v.h"

/* Dimensions of a benchmark model: the text decoder (Llama layout) and, for
 * a VLM, an Idefics3/SigLIP vision tower with one 512-pixel tile; or
 * (moondream) Moondream2's own layout, at config.py's default dimensions,
 * measured on a 640x480 image (2x4 tiles: 9 crops). */
typedef struct {
    const char *name, *like;
    int dim, inter, layers, heads, kv_heads, vocab;
    bool vision;
    int v_dim, v_inter, v_layers, v_heads, v_patch, v_image, scale;
    bool moondream;
    bool phi3v;        /* Phi-3-V: Phi-3 decoder (fused qkv, gate_up), CLIP tower, num_crops 4, 1024x768 image */
    int head_dim;      /* 0: dim / heads */
    bool gelu_mlp;     /* two MLP matrices (up, down), not three */
} bench_arch;

static const bench_arch ARCHS[] = {
    { "smolvlm-256m", "SmolVLM-256M-Instruct", 576, 1536, 30, 9, 3, 49280, true, 768, 3072, 12, 12, 16, 512, 4,
      false, false, 0, false },
    { "smolvlm-2b", "SmolVLM-Instruct (2.2B)", 2048, 8192, 24, 32, 32, 49155, true, 1152, 4304, 27, 16, 14, 384, 3,
      false, false, 0, false },
    { "phi3-mini", "Phi-3-mini text dimensions (3.8B)", 3072, 8192, 32, 32, 32, 32064, false, 0, 0, 0, 0, 0, 0, 0,
      false, false, 0, false },
    { "moondream2", "Moondream2 2025-06-21 (1.9B)", 2048, 8192, 24, 32, 32, 51200, true, 1152, 4304, 27, 16, 14, 378,
      1, true, false, 0, false },
    { "phi3.5-vision", "Phi-3.5-vision-instruct (4.2B)", 3072, 8192, 32, 32, 32, 32064, true, 1024, 4096, 24, 16, 14,
      336, 0, false, true, 0, false },
};

const char *vc_bench_arch_names(void) { return "smolvlm-256m, smolvlm-2b, phi3-mini, moondream2, phi3.5-vision"; }

/* Phi-3.5-vision: the processor's num_crops, the benchmark image, and the
 * tower's hidden_states index (img_processor.layer_idx -2 of 24 layers). */
#define PHI3V_CROPS 4
#define PHI3V_IMAGE_W 1024
#define PHI3V_IMAGE_H 768
#define PHI3V_FEATURE_LAYERS 23

static const bench_arch *find_arch(const char *name)
{
    for (size_t i = 0; i < VC_ARRAY_LEN(ARCHS); i++)
        if (strcmp(ARCHS[i].name, name) == 0)
            return &ARCHS[i];
    return NULL;
}

/* ---- writing the random model ---- */

typedef struct {
    char name[128];
    int64_t shape[4];
    int n_dims;
    enum { FILL_RANDOM, FILL_ONE, FILL_ZERO } fill;
} tensor_spec;

typedef struct {
    tensor_spec *items;
    size_t n, cap;
} spec_list;

static int add(spec_list *l, int fill, int n_dims, int64_t a, int64_t b, int64_t c, int64_t d, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));
static int add(spec_list *l, int fill, int n_dims, int64_t a, int64_t b, int64_t c, int64_t d, const char *fmt, ...)
{
    if (vc_reserve((void **)&l->items, &l->cap, l->n + 1, sizeof *l->items) != 0)
        return -1;
    tensor_spec *t = &l->items[l->n++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    int64_t s[4] = { a, b, c, d };
    memcpy(t->shape, s, sizeof s);
    t->n_dims = n_dims;
    t->fill = fill;
    return 0;
}

#define W(l, r, c, ...) add(l, FILL_RANDOM, 2, r, c, 0, 0, __VA_ARGS__)
#define NORM(l, n, ...) add(l, FILL_ONE, 1, n, 0, 0, 0, __VA_ARGS__)
#define BIAS(l, n, ...) add(l, FILL_ZERO, 1, n, 0, 0, 0, __VA_ARGS__)

static int text_tensors(const bench_arch *a, spec_list *l, const char *p)
{
    int hd = a->dim / a->heads, rc = 0;
    rc |= W(l, a->vocab, a->dim, "%sembed_tokens.weight", p);
    for (int i = 0; i < a->layers; i++) {
        rc |= NORM(l, a->dim, "%slayers.%d.input_layernorm.weight", p, i);
        rc |= NORM(l, a->dim, "%slayers.%d.post_attention_layernorm.weight", p, i);
        rc |= W(l, a->heads * hd, a->dim, "%slayers.%d.self_attn.q_proj.weight", p, i);
        rc |= W(l, a->kv_heads * hd, a->dim, "%slayers.%d.self_attn.k_proj.weight", p, i);
        rc |= W(l, a->kv_heads * hd, a->dim, "%slayers.%d.self_attn.v_proj.weight", p, i);
        rc |= W(l, a->dim, a->heads * hd, "%slayers.%d.self_attn.o_proj.weight", p, i);
        rc |= W(l, a->inter, a->dim, "%slayers.%d.mlp.gate_proj.weight", p, i);
        rc |= W(l, a->inter, a->dim, "%slayers.%d.mlp.up_proj.weight", p, i);
        rc |= W(l, a->dim, a->inter, "%slayers.%d.mlp.down_proj.weight", p, i);
    }
    rc |= NORM(l, a->dim, "%snorm.weight", p);
    return rc ? -1 : 0;
}

static int vision_tensors(const bench_arch *a, spec_list *l)
{
    const char *p = "model.vision_model.";
    int n_pos = (a->v_image / a->v_patch) * (a->v_image / a->v_patch), rc = 0;
    rc |= add(l, FILL_RANDOM, 4, a->v_dim, 3, a->v_patch, a->v_patch, "%sembeddings.patch_embedding.weight", p);
    rc |= BIAS(l, a->v_dim, "%sembeddings.patch_embedding.bias", p);
    rc |= W(l, n_pos, a->v_dim, "%sembeddings.position_embedding.weight", p);
    for (int i = 0; i < a->v_layers; i++) {
        static const char *attn[] = { "q_proj", "k_proj", "v_proj", "out_proj" };
        for (int k = 0; k < 4; k++) {
            rc |= W(l, a->v_dim, a->v_dim, "%sencoder.layers.%d.self_attn.%s.weight", p, i, attn[k]);
            rc |= BIAS(l, a->v_dim, "%sencoder.layers.%d.self_attn.%s.bias", p, i, attn[k]);
        }
        rc |= NORM(l, a->v_dim, "%sencoder.layers.%d.layer_norm1.weight", p, i);
        rc |= BIAS(l, a->v_dim, "%sencoder.layers.%d.layer_norm1.bias", p, i);
        rc |= NORM(l, a->v_dim, "%sencoder.layers.%d.layer_norm2.weight", p, i);
        rc |= BIAS(l, a->v_dim, "%sencoder.layers.%d.layer_norm2.bias", p, i);
        rc |= W(l, a->v_inter, a->v_dim, "%sencoder.layers.%d.mlp.fc1.weight", p, i);
        rc |= BIAS(l, a->v_inter, "%sencoder.layers.%d.mlp.fc1.bias", p, i);
        rc |= W(l, a->v_dim, a->v_inter, "%sencoder.layers.%d.mlp.fc2.weight", p, i);
        rc |= BIAS(l, a->v_dim, "%sencoder.layers.%d.mlp.fc2.bias", p, i);
    }
    rc |= NORM(l, a->v_dim, "%spost_layernorm.weight", p);
    rc |= BIAS(l, a->v_dim, "%spost_layernorm.bias", p);
    rc |= W(l, a->dim, a->v_dim * a->scale * a->scale, "model.connector.modality_projection.proj.weight");
    return rc ? -1 : 0;
}

/* Phi-3.5-vision's tensors as the Hub checkpoint names them: the Phi-3
 * decoder at the top (fused qkv_proj and gate_up_proj, an untied lm_head),
 * CLIP ViT-L/14-336 under model.vision_embed_tokens.img_processor, the
 * separators and the two-layer projection. */
static int phi3v_tensors(const bench_arch *a, spec_list *l)
{
    int rc = 0, D = a->dim, d = a->v_dim, g = a->v_image / a->v_patch;
    rc |= W(l, a->vocab, D, "model.embed_tokens.weight");
    for (int i = 0; i < a->layers; i++) {
        const char *p = "model.layers.";
        rc |= NORM(l, D, "%s%d.input_layernorm.weight", p, i) | NORM(l, D, "%s%d.post_attention_layernorm.weight", p, i);
        rc |= W(l, 3 * D, D, "%s%d.self_attn.qkv_proj.weight", p, i) | W(l, D, D, "%s%d.self_attn.o_proj.weight", p, i);
        rc |= W(l, 2 * a->inter, D, "%s%d.mlp.gate_up_proj.weight", p, i);
        rc |= W(l, D, a->inter, "%s%d.mlp.down_proj.weight", p, i);
    }
    rc |= NORM(l, D, "model.norm.weight") | W(l, a->vocab, D, "lm_head.weight");
    const char *v = "model.vision_embed_tokens.img_processor.vision_model.";
    rc |= add(l, FILL_RANDOM, 4, d, 3, a->v_patch, a->v_patch, "%sembeddings.patch_embedding.weight", v);
    rc |= add(l, FILL_RANDOM, 1, d, 0, 0, 0, "%sembeddings.class_embedding", v);
    rc |= W(l, g * g + 1, d, "%sembeddings.position_embedding.weight", v);
    rc |= NORM(l, d, "%spre_layrnorm.weight", v) | BIAS(l, d, "%spre_layrnorm.bias", v);
    for (int i = 0; i < a->v_layers; i++) {
        static const char *attn[] = { "q_proj", "k_proj", "v_proj", "out_proj" };
        for (int k = 0; k < 4; k++)
            rc |= W(l, d, d, "%sencoder.layers.%d.self_attn.%s.weight", v, i, attn[k]) |
                  BIAS(l, d, "%sencoder.layers.%d.self_attn.%s.bias", v, i, attn[k]);
        rc |= NORM(l, d, "%sencoder.layers.%d.layer_norm1.weight", v, i) |
              BIAS(l, d, "%sencoder.layers.%d.layer_norm1.bias", v, i);
        rc |= NORM(l, d, "%sencoder.layers.%d.layer_norm2.weight", v, i) |
              BIAS(l, d, "%sencoder.layers.%d.layer_norm2.bias", v, i);
        rc |= W(l, a->v_inter, d, "%sencoder.layers.%d.mlp.fc1.weight", v, i) |
              BIAS(l, a->v_inter, "%sencoder.layers.%d.mlp.fc1.bias", v, i);
        rc |= W(l, d, a->v_inter, "%sencoder.layers.%d.mlp.fc2.weight", v, i) |
              BIAS(l, d, "%sencoder.layers.%d.mlp.fc2.bias", v, i);
    }
    rc |= NORM(l, d, "%spost_layernorm.weight", v) | BIAS(l, d, "%spost_layernorm.bias", v);
    const char *e = "model.vision_embed_tokens.";
    rc |= add(l, FILL_RANDOM, 3, 1, 1, 4 * d, 0, "%sglb_GN", e);
    rc |= add(l, FILL_RANDOM, 4, 1, 1, 1, 4 * d, "%ssub_GN", e);
    rc |= W(l, D, 4 * d, "%simg_projection.0.weight", e) | BIAS(l, D, "%simg_projection.0.bias", e);
    rc |= W(l, D, D, "%simg_projection.2.weight", e) | BIAS(l, D, "%simg_projection.2.bias", e);
    return rc ? -1 : 0;
}

/* Phi-3.5-vision's config.json (text settings at the top, the CLIP tower
 * left to the published code's defaults: ViT-L/14-336), its image processor
 * and its chat template (the demo tokenizer has no <|user|> tokens, which
 * changes nothing a speed measurement sees). */
static int write_phi3v_configs(const bench_arch *a, const char *dir)
{
    char path[4200];
    int rope_half = a->dim / a->heads / 2;
    json_t *shortf = json_array(), *longf = json_array();
    for (int i = 0; shortf && longf && i < rope_half; i++) {
        json_array_append_new(shortf, json_real(1.0));
        json_array_append_new(longf, json_real(1.0 + i));
    }
    json_t *c = json_pack("{s:[s],s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:s,s:i,s:i,s:f,s:f,s:i,s:i,s:i,s:b,"
                          "s:{s:s,s:o,s:o},s:{s:s,s:s,s:s,s:b,s:b},s:{s:i,s:s,s:s,s:i}}",
                          "architectures", "Phi3VForCausalLM", "model_type", "phi3_v", "vocab_size", a->vocab,
                          "hidden_size", a->dim, "intermediate_size", a->inter, "num_hidden_layers", a->layers,
                          "num_attention_heads", a->heads, "num_key_value_heads", a->kv_heads, "hidden_act", "silu",
                          "max_position_embeddings", 131072, "original_max_position_embeddings", 4096,
                          "rms_norm_eps", 1e-5, "rope_theta", 10000.0, "bos_token_id", 1, "eos_token_id", 2,
                          "sliding_window", 262144, "tie_word_embeddings", 0,
                          "rope_scaling", "type", "su", "short_factor", shortf, "long_factor", longf,
                          "embd_layer", "embedding_cls", "image", "hd_transform_order", "sub_glb", "projection_cls",
                          "mlp", "use_hd_transform", 1, "with_learnable_separator", 1,
                          "img_processor", "image_dim_out", a->v_dim, "model_name", "openai/clip-vit-large-patch14-336",
                          "name", "clip_vision_model", "num_img_tokens", 144);
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = c ? json_dump_file(c, path, JSON_INDENT(2)) : -1;
    json_decref(c);
    if (rc != 0)
        return vc_fail("%s: cannot write", path);
    json_t *p = json_pack("{s:i,s:[f,f,f],s:[f,f,f]}", "num_crops", PHI3V_CROPS, "image_mean", 0.48145466, 0.4578275,
                          0.40821073, "image_std", 0.26862954, 0.26130258, 0.27577711);
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    rc = p ? json_dump_file(p, path, JSON_INDENT(2)) : -1;
    json_decref(p);
    if (rc != 0)
        return vc_fail("%s: cannot write", path);
    static const char tpl[] = "{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + "
                              "message['content'] + '<|end|>\n' }}{% endfor %}{% if add_generation_prompt and "
                              "messages[-1]['role'] != 'assistant' %}{{- '<|assistant|>\n' -}}{% endif %}";
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    return vc_write_file_atomic(path, tpl, sizeof tpl - 1);
}

/* Moondream2's tensors (model.vision.*, model.text.*, model.region.*), config.py's sizes. */
static int moondream_tensors(const bench_arch *a, spec_list *l)
{
    int rc = 0, d = a->v_dim, g = a->v_image / a->v_patch, pp = 3 * a->v_patch * a->v_patch, D = a->dim;
    const char *v = "model.vision.", *t = "model.text.", *r = "model.region.";
    rc |= W(l, d, pp, "%spatch_emb.weight", v);
    rc |= BIAS(l, d, "%spatch_emb.bias", v);
    rc |= add(l, FILL_RANDOM, 3, 1, (int64_t)g * g, d, 0, "%spos_emb", v);
    for (int i = 0; i < a->v_layers; i++) {
        rc |= NORM(l, d, "%sblocks.%d.ln1.weight", v, i) | BIAS(l, d, "%sblocks.%d.ln1.bias", v, i);
        rc |= W(l, 3 * d, d, "%sblocks.%d.attn.qkv.weight", v, i) | BIAS(l, 3 * d, "%sblocks.%d.attn.qkv.bias", v, i);
        rc |= W(l, d, d, "%sblocks.%d.attn.proj.weight", v, i) | BIAS(l, d, "%sblocks.%d.attn.proj.bias", v, i);
        rc |= NORM(l, d, "%sblocks.%d.ln2.weight", v, i) | BIAS(l, d, "%sblocks.%d.ln2.bias", v, i);
        rc |= W(l, a->v_inter, d, "%sblocks.%d.mlp.fc1.weight", v, i) |
              BIAS(l, a->v_inter, "%sblocks.%d.mlp.fc1.bias", v, i);
        rc |= W(l, d, a->v_inter, "%sblocks.%d.mlp.fc2.weight", v, i) | BIAS(l, d, "%sblocks.%d.mlp.fc2.bias", v, i);
    }
    rc |= NORM(l, d, "%spost_ln.weight", v) | BIAS(l, d, "%spost_ln.bias", v);
    rc |= W(l, 8192, 2 * d, "%sproj_mlp.fc1.weight", v) | BIAS(l, 8192, "%sproj_mlp.fc1.bias", v);
    rc |= W(l, D, 8192, "%sproj_mlp.fc2.weight", v) | BIAS(l, D, "%sproj_mlp.fc2.bias", v);
    rc |= W(l, a->vocab, D, "%swte", t);
    for (int i = 0; i < a->layers; i++) {
        rc |= NORM(l, D, "%sblocks.%d.ln.weight", t, i) | BIAS(l, D, "%sblocks.%d.ln.bias", t, i);
        rc |= W(l, 3 * D, D, "%sblocks.%d.attn.qkv.weight", t, i) | BIAS(l, 3 * D, "%sblocks.%d.attn.qkv.bias", t, i);
        rc |= W(l, D, D, "%sblocks.%d.attn.proj.weight", t, i) | BIAS(l, D, "%sblocks.%d.attn.proj.bias", t, i);
        rc |= W(l, a->inter, D, "%sblocks.%d.mlp.fc1.weight", t, i) |
              BIAS(l, a->inter, "%sblocks.%d.mlp.fc1.bias", t, i);
        rc |= W(l, D, a->inter, "%sblocks.%d.mlp.fc2.weight", t, i) | BIAS(l, D, "%sblocks.%d.mlp.fc2.bias", t, i);
    }
    rc |= NORM(l, D, "%spost_ln.weight", t) | BIAS(l, D, "%spost_ln.bias", t);
    rc |= W(l, a->vocab, D, "%slm_head.weight", t) | BIAS(l, a->vocab, "%slm_head.bias", t);
    static const struct { const char *name; int in, out; } heads[] = {
        { "coord_encoder", 256, 0 }, { "coord_decoder.fc1", 0, 8192 }, { "coord_decoder.fc2", 8192, 1024 },
        { "size_encoder", 512, 0 },  { "size_decoder.fc1", 0, 8192 },  { "size_decoder.fc2", 8192, 2048 },
    };
    for (size_t i = 0; i < VC_ARRAY_LEN(heads); i++) {
        int in = heads[i].in ? heads[i].in : D, out = heads[i].out ? heads[i].out : D;
        rc |= W(l, out, in, "%s%s.weight", r, heads[i].name) | BIAS(l, out, "%s%s.bias", r, heads[i].name);
    }
    rc |= W(l, 1, 128, "%scoord_features", r) | W(l, 2, 256, "%ssize_features", r);
    return rc ? -1 : 0;
}

static int64_t spec_elems(const tensor_spec *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->n_dims; i++)
        n *= t->shape[i];
    return n;
}

/* Uniform random bf16 in [-0.03, 0.03): activations stay in range through
 * the layers, which is all a speed measurement needs. */
static int write_tensor_data(FILE *f, const tensor_spec *t, uint64_t *rng)
{
    uint16_t buf[8192];
    int64_t left = spec_elems(t);
    while (left > 0) {
        int n = left < 8192 ? (int)left : 8192;
        for (int i = 0; i < n; i++) {
            float v = t->fill == FILL_ONE ? 1.0f : 0.0f;
            if (t->fill == FILL_RANDOM) {
                *rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17;
                v = ((float)(*rng >> 40) / (float)(1 << 24) - 0.5f) * 0.06f;
            }
            buf[i] = vc_f32_to_bf16(v);
        }
        if (fwrite(buf, 2, (size_t)n, f) != (size_t)n)
            return -1;
        left -= n;
    }
    return 0;
}

static int write_safetensors(const char *path, const spec_list *l)
{
    json_t *h = json_object();
    size_t off = 0;
    for (size_t i = 0; i < l->n; i++) {
        json_t *shape = json_array();
        for (int d = 0; d < l->items[i].n_dims; d++)
            json_array_append_new(shape, json_integer(l->items[i].shape[d]));
        size_t bytes = (size_t)spec_elems(&l->items[i]) * 2;
        json_object_set_new(h, l->items[i].name, json_pack("{s:s,s:o,s:[I,I]}", "dtype", "BF16", "shape", shape,
                                                           "data_offsets", (json_int_t)off, (json_int_t)(off + bytes)));
        off += bytes;
    }
    char *text = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    FILE *f = text ? fopen(path, "wb") : NULL;
    if (!f) {
        free(text);
        return vc_fail("%s: %s", path, strerror(errno));
    }
    size_t len = strlen(text), padded = (len + 7) / 8 * 8;
    uint64_t hl = padded;
    int rc = fwrite(&hl, 8, 1, f) == 1 && fwrite(text, 1, len, f) == len ? 0 : -1;
    for (size_t i = len; rc == 0 && i < padded; i++)
        rc = fputc(' ', f) == EOF ? -1 : 0;
    free(text);
    uint64_t rng = 0x9E3779B97F4A7C15ULL;
    for (size_t i = 0; rc == 0 && i < l->n; i++)
        rc = write_tensor_data(f, &l->items[i], &rng);
    if (fclose(f) != 0 || rc != 0)
        return vc_fail("%s: write failed (disk full?)", path);
    return 0;
}

static int copy_file(const char *from, const char *to)
{
    size_t len;
    char *data = vc_read_file(from, &len);
    if (!data)
        return -1;
    int rc = vc_write_file_atomic(to, data, len);
    free(data);
    return rc;
}

/* Sets every field of `fields` in obj (a config section), taking fields over. */
static void set_fields(json_t *obj, json_t *fields)
{
    json_object_update(obj, fields);
    json_decref(fields);
}

/* config.json and processor_config.json: the demo model's, resized. */
static int write_configs(const bench_arch *a, const char *demo, const char *dir)
{
    char path[4200];
    if (a->moondream) {   /* config.py's defaults are the real dimensions */
        snprintf(path, sizeof path, "%s/config.json", dir);
        json_t *c = json_pack("{s:[s],s:s,s:{}}", "architectures", "HfMoondream", "model_type", "moondream1", "config");
        int rc = c ? json_dump_file(c, path, JSON_INDENT(2)) : -1;
        json_decref(c);
        return rc == 0 ? 0 : vc_fail("%s: cannot write", path);
    }
    snprintf(path, sizeof path, "%s/config.json", demo);
    json_t *c = json_load_file(path, 0, NULL);
    if (!c)
        return vc_fail("%s: cannot read", path);
    json_t *t = json_object_get(c, "text_config");
    set_fields(t, json_pack("{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i}", "hidden_size", a->dim, "intermediate_size", a->inter,
                            "num_hidden_layers", a->layers, "num_attention_heads", a->heads, "num_key_value_heads",
                            a->kv_heads, "head_dim", a->dim / a->heads, "vocab_size", a->vocab,
                            "max_position_embeddings", 4096));
    if (a->vision) {
        set_fields(json_object_get(c, "vision_config"),
                   json_pack("{s:i,s:i,s:i,s:i,s:i,s:i}", "hidden_size", a->v_dim, "intermediate_size", a->v_inter,
                             "num_hidden_layers", a->v_layers, "num_attention_heads", a->v_heads, "patch_size",
                             a->v_patch, "image_size", a->v_image));
        json_object_set_new(c, "scale_factor", json_integer(a->scale));
    } else {   /* a plain Llama-layout text model */
        json_incref(t);
        json_decref(c);
        c = t;
        json_object_set_new(c, "architectures", json_pack("[s]", "LlamaForCausalLM"));
    }
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = json_dump_file(c, path, JSON_INDENT(2));
    json_decref(c);
    if (rc != 0)
        return vc_fail("%s: cannot write", path);
    if (!a->vision)
        return 0;
    snprintf(path, sizeof path, "%s/processor_config.json", demo);
    json_t *p = json_load_file(path, 0, NULL);
    json_t *ip = json_object_get(p, "image_processor");
    if (!ip)
        return json_decref(p), vc_fail("%s: no image_processor", path);
    int tokens = (a->v_image / a->v_patch) * (a->v_image / a->v_patch) / (a->scale * a->scale);
    json_object_set_new(json_object_get(ip, "size"), "longest_edge", json_integer(a->v_image));
    json_object_set_new(json_object_get(ip, "max_image_size"), "longest_edge", json_integer(a->v_image));
    json_object_set_new(p, "image_seq_len", json_integer(tokens));
    snprintf(path, sizeof path, "%s/processor_config.json", dir);
    rc = json_dump_file(p, path, JSON_INDENT(2));
    json_decref(p);
    return rc == 0 ? 0 : vc_fail("%s: cannot write", path);
}

/* A smooth colour image of the tower's input size, as a PNG file. */
static int write_image(const char *path, int w, int h)
{
    FILE *f = fopen(path, "wb");
    png_structp png = f ? png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL) : NULL;
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *row = malloc((size_t)w * 3);
    int rc = -1;
    if (info && row && !setjmp(png_jmpbuf(png))) {
        png_init_io(png, f);
        png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        png_write_info(png, info);
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                row[x * 3] = (uint8_t)(x * 255 / w);
                row[x * 3 + 1] = (uint8_t)(y * 255 / h);
                row[x * 3 + 2] = (uint8_t)((x + y) & 255);
            }
            png_write_row(png, row);
        }
        png_write_end(png, NULL);
        rc = 0;
    }
    if (png)
        png_destroy_write_struct(&png, info ? &info : NULL);
    free(row);
    if (f && fclose(f) != 0)
        rc = -1;
    return rc == 0 ? 0 : vc_fail("%s: cannot write the benchmark image", path);
}

/* The demo tokenizer with its vocabulary filled up to the model's size, so
 * that every id the random model may produce decodes. */
static int write_tokenizer(const bench_arch *a, const char *demo, const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.json", demo);
    json_t *t = json_load_file(path, 0, NULL);
    json_t *vocab = json_object_get(json_object_get(t, "model"), "vocab");
    if (!vocab) {
        json_decref(t);
        return vc_fail("%s: no model.vocab", path);
    }
    for (int id = (int)json_object_size(vocab); id < a->vocab; id++) {
        char piece[32];
        snprintf(piece, sizeof piece, "\u0120w%d", id);   /* "Ġw123": a word with its leading space */
        json_object_set_new(vocab, piece, json_integer(id));
    }
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    int rc = json_dump_file(t, path, JSON_COMPACT);
    json_decref(t);
    return rc == 0 ? 0 : vc_fail("%s: cannot write", path);
}

static int make_model(const bench_arch *a, const char *dir)
{
    char path[4200], marker[4200];
    snprintf(marker, sizeof marker, "%s/.complete", dir);
    if (access(marker, F_OK) == 0)
        return 0;
    vc_model_ref demo;
    if (vc_locate_model("demo", &demo) != 0)
        return -1;
    fprintf(stderr, "vlmchat: writing the %s benchmark model (random weights) to %s\n", a->name, dir);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "%s", dir);
    for (char *p = cmd + 1; *p; p++)   /* mkdir -p */
        if (*p == '/') {
            *p = 0;
            mkdir(cmd, 0755);
            *p = '/';
        }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return vc_fail("%s: %s", dir, strerror(errno));
    spec_list l = { 0 };
    int rc = a->moondream ? moondream_tensors(a, &l) : a->phi3v ? phi3v_tensors(a, &l)
             : text_tensors(a, &l, a->vision ? "model.text_model." : "model.");
    if (rc == 0 && a->vision && !a->moondream && !a->phi3v)
        rc = vision_tensors(a, &l);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (rc == 0)
        rc = write_safetensors(path, &l);
    free(l.items);
    if (rc == 0)
        rc = write_tokenizer(a, demo.path, dir);
    static const char *copied[] = { "tokenizer_config.json", "generation_config.json", "chat_template.jinja" };
    /* Phi-3-V writes its own template */
    for (size_t i = 0; rc == 0 && !a->moondream && i < VC_ARRAY_LEN(copied) - a->phi3v; i++) {
        char from[4200];
        snprintf(from, sizeof from, "%s/%s", demo.path, copied[i]);
        snprintf(path, sizeof path, "%s/%s", dir, copied[i]);
        rc = copy_file(from, path);
    }
    if (rc == 0)
        rc = a->phi3v ? write_phi3v_configs(a, dir) : write_configs(a, demo.path, dir);
    snprintf(path, sizeof path, "%s/image.png", dir);
    /* Moondream2: 640x480, the 9 crops; Phi-3.5-vision: 1024x768, 2x2 crops and the global image */
    if (rc == 0 && a->vision)
        rc = a->moondream ? write_image(path, 640, 480) : a->phi3v ? write_image(path, PHI3V_IMAGE_W, PHI3V_IMAGE_H)
             : write_image(path, a->v_image, a->v_image * 3 / 4);
    return rc == 0 ? vc_write_file_atomic(marker, "", 0) : -1;
}

/* ---- measuring ---- */

typedef struct {
    const uint64_t *data;
    uint64_t sums[256];
} bw_job;

static void sum_range(void *ctx, int64_t begin, int64_t end, int worker)
{
    bw_job *j = ctx;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int64_t i = begin; i + 4 <= end; i += 4)
        s0 += j->data[i], s1 += j->data[i + 1], s2 += j->data[i + 2], s3 += j->data[i + 3];
    j->sums[worker & 255] += s0 + s1 + s2 + s3;
}

/* Read bandwidth (bytes/s) of all threads over a buffer well past the caches. */
static double read_bandwidth(void)
{
    size_t bytes = (size_t)512 << 20;
    uint64_t *data = vc_malloc(bytes);
    if (!data)
        return 0;
    memset(data, 1, bytes);
    bw_job j = { .data = data };
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = vc_now_ms();
        vc_parallel_for((int64_t)(bytes / 8), sum_range, &j);
        double ms = vc_now_ms() - t0;
        if (ms > 0 && bytes / (ms / 1e3) > best)
            best = bytes / (ms / 1e3);
    }
    free(data);
    return best;
}

/* ---- the machine's FP32 FMA peak ----
 * Independent multiply-adds on every thread, on the vector width the GEMM
 * uses (core/gemm.h's variant): enough accumulators to cover the FMA
 * latency on two pipes, nothing loaded or stored in the loop. */

typedef struct {
    int64_t iters;
    double sums[256];
} peak_job;

/* The accumulators are named variables, not an array, so that they stay in
 * registers; each iteration updates every one once. */
#define ACC_DECL(T, set) T a0 = set(0), a1 = set(1), a2 = set(2), a3 = set(3), a4 = set(4), a5 = set(5), \
                         a6 = set(6), a7 = set(7), a8 = set(8), a9 = set(9), a10 = set(10), a11 = set(11)
#define ACC_STEP(f) (a0 = f(a0), a1 = f(a1), a2 = f(a2), a3 = f(a3), a4 = f(a4), a5 = f(a5), a6 = f(a6), \
                     a7 = f(a7), a8 = f(a8), a9 = f(a9), a10 = f(a10), a11 = f(a11))
#define ACC_SUM(add) add(add(add(add(a0, a1), add(a2, a3)), add(add(a4, a5), add(a6, a7))), \
                         add(add(a8, a9), add(a10, a11)))
#define ACC_N 12

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2,fma,avx512f"))) static double fma_avx512(int64_t iters)
{
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
#define SET(i) _mm512_set1_ps((float)(i))
#define F(x) _mm512_fmadd_ps(x, m, c)
    ACC_DECL(__m512, SET);
    for (int64_t n = 0; n < iters; n++)
        ACC_STEP(F);
    return _mm512_reduce_add_ps(ACC_SUM(_mm512_add_ps));
#undef SET
#undef F
}

__attribute__((target("avx2,fma"))) static double fma_avx2(int64_t iters)
{
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
#define SET(i) _mm256_set1_ps((float)(i))
#define F(x) _mm256_fmadd_ps(x, m, c)
    ACC_DECL(__m256, SET);
    for (int64_t n = 0; n < iters; n++)
        ACC_STEP(F);
    float out[8];
    _mm256_storeu_ps(out, ACC_SUM(_mm256_add_ps));
    return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
#undef SET
#undef F
}
#endif

static float add_f(float x, float y) { return x + y; }

static double fma_generic(int64_t iters)
{
#define SET(i) ((float)(i))
#define F(x) fmaf(x, 0.999999f, 1e-7f)
    ACC_DECL(float, SET);
    for (int64_t n = 0; n < iters; n++)
        ACC_STEP(F);
    return ACC_SUM(add_f);
#undef SET
#undef F
}

/* FLOPs one call of the loop does per iteration, and the loop itself. */
static int fma_flops_per_iter(void)
{
    const char *isa = vc_gemm_isa();
    return ACC_N * 2 * (strcmp(isa, "avx512") == 0 ? 16 : strcmp(isa, "avx2") == 0 ? 8 : 1);
}

static void peak_range(void *ctx, int64_t begin, int64_t end, int worker)
{
    peak_job *j = ctx;
    const char *isa = vc_gemm_isa();
    for (int64_t i = begin; i < end; i++) {
#if defined(__x86_64__)
        if (strcmp(isa, "avx512") == 0)
            j->sums[worker & 255] += fma_avx512(j->iters);
        else if (strcmp(isa, "avx2") == 0)
            j->sums[worker & 255] += fma_avx2(j->iters);
        else
#endif
            j->sums[worker & 255] += fma_generic(j->iters);
    }
}

/* FP32 FLOP/s of all threads: the best of five runs of about 0.2 s. */
static double fma_peak(void)
{
    int chunks = 16 * vc_threads_count();
    peak_job j = { .iters = 1000 };
    double best = 0;
    for (int rep = 0; rep < 8; rep++) {
        double t0 = vc_now_ms();
        vc_parallel_for(chunks, peak_range, &j);
        double ms = vc_now_ms() - t0;
        double flops = (double)chunks * (double)j.iters * fma_flops_per_iter();
        if (ms < 50 && j.iters < ((int64_t)1 << 30)) {   /* too short to time: longer, and again */
            j.iters *= ms > 1 ? (int64_t)(200 / ms) + 1 : 64;
            rep--;
            continue;
        }
        if (flops / (ms / 1e3) > best)
            best = flops / (ms / 1e3);
        if (rep >= 4)
            break;
    }
    return best;
}

/* ---- the machine's int8 multiply-add peak, and prefill's share of it ---- */

typedef struct {
    int64_t iters;
    int64_t macs[256];
} int8_peak_job;

static void int8_peak_range(void *ctx, int64_t begin, int64_t end, int worker)
{
    int8_peak_job *j = ctx;
    for (int64_t i = begin; i < end; i++)
        j->macs[worker & 255] += vc_int8dot_peak_run(j->iters);
}

/* Byte multiply-adds per second of all threads together, with the kind of
 * instruction the integer kernels use at the level in effect; the best of 5. */
static double measure_int8_peak(void)
{
    int n = vc_threads_count();
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        int8_peak_job j = { .iters = 1 << 22 };
        double t0 = vc_now_ms();
        vc_parallel_for(n, int8_peak_range, &j);
        double ms = vc_now_ms() - t0;
        double macs = 0;
        for (int k = 0; k < 256; k++)
            macs += (double)j.macs[k];
        if (ms > 0 && macs / (ms / 1e3) > best)
            best = macs / (ms / 1e3);
    }
    return best;
}

/* Phi-3.5-vision's image encode in FLOPs (a multiply-add is two): per crop,
 * the patch embedding, then per tower layer the q/k/v/out projections,
 * attention's two products (scores and the weighted values, all heads) and
 * the MLP, over the layers the features are read after; the crops of the
 * benchmark image (num_crops 4 on 1024x768: 2x2 and the global image). The
 * projection to the text width, the 2x2 merge and preprocessing are not
 * counted (they are in the measured time: the share is a lower bound). */
static double phi3v_encode_flops(const bench_arch *a, int *crops)
{
    int W, H, hc, wc;
    if (vc_phi3v_geometry(PHI3V_CROPS, PHI3V_IMAGE_W, PHI3V_IMAGE_H, &W, &H, &hc, &wc) != 0)
        return 0;
    *crops = 1 + hc * wc;
    double g = a->v_image / a->v_patch, T = g * g + 1, d = a->v_dim, f = a->v_inter;
    double patch = 2 * g * g * (3.0 * a->v_patch * a->v_patch) * d;
    double layer = 2 * 4 * T * d * d + 2 * 2 * T * T * d + 2 * 2 * T * d * f;
    return *crops * (patch + PHI3V_FEATURE_LAYERS * layer);
}

/* Multiply-adds per token of a prefill of n tokens: the decoder's matrices
 * (attention's and the MLP's; the output head runs for the last token only)
 * and attention's scores and weighted sums over the n/2 earlier tokens an
 * average token sees. */
static double prefill_macs_per_token(const bench_arch *a, int n)
{
    double hd = a->head_dim ? a->head_dim : a->dim / a->heads, kv = hd * a->kv_heads, q = hd * a->heads;
    double matrices = (double)a->layers * (2.0 * a->dim * q + 2.0 * a->dim * kv +
                                           (a->moondream || a->gelu_mlp ? 2.0 : 3.0) * a->dim * a->inter);
    double attention = (double)a->layers * 2.0 * a->dim * (n / 2.0);
    return matrices + attention + (double)a->vocab * a->dim / n;
}


typedef struct {
    double load_ms, encode_ms, prefill_tok_s, prefill_first_tok_s, decode_tok_s, ttft1_ms, ttft2_ms, bandwidth, bound_tok_s;
    int image_tokens, prefill_tokens, decode_tokens;
    size_t weights_bytes, peak_rss;
    size_t decode_bytes;              /* what a decode step reads (decode_bytes) */
    int crops;                 /* Moondream2, Phi-3.5-vision: crops encoded (global + tiles) */
    double fma_peak;           /* FP32 FLOP/s of all threads (fma_peak) */
    double encode_flops;       /* Phi-3.5-vision: the image encode's FLOPs (phi3v_encode_flops), else 0 */
    double int8_peak, prefill_macs;   /* int8 multiply-adds/s of all threads; per prefill token (measure_int8_peak) */
    double int8_vector_peak;          /* with AMX in effect, AVX-512 VNNI's peak beside the tiles'; else int8_peak */
} bench_result;

static int measure_text(vc_model *m, volatile sig_atomic_t *interrupt, bench_result *r)
{
    int n = VC_MIN(256, m->llm.n_ctx / 2);
    int32_t *ids = vc_malloc((size_t)n * sizeof *ids);
    float *logits = vc_malloc((size_t)m->llm.cfg.n_vocab * sizeof *logits);
    if (!ids || !logits) {
        free(ids);
        free(logits);
        return -1;
    }
    for (int i = 0; i < n; i++)
        ids[i] = 10 + i % 300;   /* ordinary tokens of the demo vocabulary */
    /* The first prefill after load also faults in its KV cache and scratch
     * pages (on a VM whose host takes freed memory back, 12% of a 3.8B
     * prefill): it is reported apart, and the rate is the mean of the two
     * runs after it, as llama-bench times its runs after a warm-up */
    int rc = 0;
    double ms[3];
    for (int run = 0; run < 3 && rc == 0; run++) {
        vc_llm_truncate(&m->llm, 0);
        double t0 = vc_now_ms();
        rc = vc_llm_forward(&m->llm, ids, n, logits);
        ms[run] = vc_now_ms() - t0;
    }
    r->prefill_tokens = n;
    r->prefill_first_tok_s = n / (ms[0] / 1e3);
    r->prefill_tok_s = n / ((ms[1] + ms[2]) / 2 / 1e3);
    vc_gen_options o = { .max_tokens = 64, .ignore_eos = true, .sampling = vc_sampler_defaults(),
                         .interrupt = interrupt };
    o.sampling.temperature = 0;
    vc_gen_result res;
    vc_llm_truncate(&m->llm, 0);
    if (rc == 0 && (rc = vc_generate(m, ids, 16, &o, &res)) == 0) {
        r->decode_tokens = (int)res.n_tokens;
        r->decode_tok_s = res.decode_ms > 0 ? (res.n_tokens - 1) / (res.decode_ms / 1e3) : 0;
    }
    if (rc == 0)
        vc_gen_result_free(&res);
    free(ids);
    free(logits);
    return rc;
}

/* An image question and a follow-up, as the chat runs them: time to the
 * first token of each (turn 2 reuses the KV cache and the encoded image). */
static int measure_turns(vc_model *m, const char *image, volatile sig_atomic_t *interrupt, bench_result *r)
{
    vc_conversation c;
    vc_conv_init(&c, m);
    vc_gen_options o = { .max_tokens = 1, .ignore_eos = true, .sampling = vc_sampler_defaults(),
                         .interrupt = interrupt };
    o.sampling.temperature = 0;
    vc_gen_result res;
    double t0 = vc_now_ms();
    int rc = vc_conv_attach(&c, image);
    r->encode_ms = vc_now_ms() - t0;
    r->image_tokens = rc == 0 ? c.images[0].n_tokens : 0;
    if (rc == 0 && (rc = vc_conv_turn(&c, "Describe the image.", &o, &res)) == 0) {
        r->ttft1_ms = vc_now_ms() - t0;
        vc_gen_result_free(&res);
        t0 = vc_now_ms();
        if ((rc = vc_conv_turn(&c, "What color is the shape?", &o, &res)) == 0) {
            r->ttft2_ms = vc_now_ms() - t0;
            vc_gen_result_free(&res);
        }
    }
    vc_conv_free(&c);
    return rc;
}

/* Moondream2 as --task runs it: crops and vision (image encode), the
 * 730-position two-way prefix (prefill), a question (time to first token,
 * and again reusing the prefix), then a long caption (decode). */
static int measure_moondream(vc_model *m, const char *image, volatile sig_atomic_t *interrupt, bench_result *r)
{
    vc_image img;
    vc_image_embd e = { 0 };
    if (vc_image_load(image, NULL, &img) != 0)
        return -1;
    const vc_moondream *md = m->vision->state;
    int th, tw, prefix = 0;
    vc_moondream_tiling(md, img.width, img.height, &th, &tw);
    r->crops = 1 + th * tw;
    double t0 = vc_now_ms();
    int rc = vc_model_encode_pixels(m, &img, &e);
    r->encode_ms = vc_now_ms() - t0;
    r->image_tokens = e.n_tokens;
    double t1 = vc_now_ms();
    if (rc == 0)
        rc = vc_skill_prefix(m, &e, &prefix);
    double prefix_ms = vc_now_ms() - t1;
    r->prefill_tokens = prefix;
    r->prefill_tok_s = prefix_ms > 0 ? prefix / (prefix_ms / 1e3) : 0;
    vc_gen_options o = { .max_tokens = 1, .ignore_eos = true, .sampling = vc_sampler_defaults(),
                         .interrupt = interrupt };
    o.sampling.temperature = 0;
    vc_gen_result res;
    if (rc == 0 && (rc = vc_skill_text(m, prefix, "query", "Describe the image.", &o, &res)) == 0) {
        r->ttft1_ms = vc_now_ms() - t0;
        vc_gen_result_free(&res);
        t0 = vc_now_ms();
        if ((rc = vc_skill_text(m, prefix, "query", "What color is the shape?", &o, &res)) == 0) {
            r->ttft2_ms = vc_now_ms() - t0;
            vc_gen_result_free(&res);
        }
    }
    o.max_tokens = 32;
    if (rc == 0 && (rc = vc_skill_text(m, prefix, "caption", "long", &o, &res)) == 0) {
        r->decode_tokens = (int)res.n_tokens;
        r->decode_tok_s = res.decode_ms > 0 ? (res.n_tokens - 1) / (res.decode_ms / 1e3) : 0;
        vc_gen_result_free(&res);
    }
    vc_image_embd_free(&e);
    vc_image_free(&img);
    return rc;
}

static void print_int8_peak(const bench_result *r)
{
    double rate = r->prefill_tok_s * r->prefill_macs;
    printf("  %-28s %10.1f GMAC/s -> prefill at %.0f%% of it (%.2f GMAC per token)\n",
           r->int8_vector_peak != r->int8_peak ? "int8 peak, AMX tiles" : "int8 multiply-add peak", r->int8_peak / 1e9,
           r->int8_peak > 0 ? 100 * rate / r->int8_peak : 0, r->prefill_macs / 1e9);
    if (r->int8_vector_peak != r->int8_peak)   /* the tiles' 16x16x64 products; blocks of 32 use half of each */
        printf("  %-28s %10.1f GMAC/s -> prefill at %.0f%% of it\n", "int8 peak, AVX-512 VNNI", r->int8_vector_peak / 1e9,
               r->int8_vector_peak > 0 ? 100 * rate / r->int8_vector_peak : 0);
}

static void print_table(const bench_arch *a, const char *type, const bench_result *r)
{
    printf("vlmchat bench: %s (%s), %s weights, %d threads, %s kernels%s%s\n", a->name, a->like, type,
           vc_threads_count(), vc_kernels_dot_isa(), vc_int8dot_enabled() ? ", int8 dot " : "",
           vc_int8dot_enabled() ? vc_int8dot_isa() : "");
    printf("  %-28s %10.1f ms\n", "load", r->load_ms);
    if (a->moondream) {
        printf("  %-28s %10.1f ms   (640x480: %d crops, %d image rows)\n", "image encode", r->encode_ms, r->crops,
               r->image_tokens);
        printf("  %-28s %10.1f ms   (encode, prefix, question, first token)\n", "time to first token", r->ttft1_ms);
        printf("  %-28s %10.1f ms   (the image prefix reused)\n", "time to first token, again", r->ttft2_ms);
    } else if (a->phi3v) {
        printf("  %-28s %10.1f ms   (%dx%d: %d crops, %d image tokens)\n", "image encode", r->encode_ms,
               PHI3V_IMAGE_W, PHI3V_IMAGE_H, r->crops, r->image_tokens);
        printf("  %-28s %10.1f GFLOP/s (%.0f GFLOP in the tower: %.0f%% of the FP32 peak)\n", "image encode rate",
               r->encode_ms > 0 ? r->encode_flops / (r->encode_ms / 1e3) / 1e9 : 0, r->encode_flops / 1e9,
               r->encode_ms > 0 && r->fma_peak > 0 ? 100 * r->encode_flops / (r->encode_ms / 1e3) / r->fma_peak : 0);
        printf("  %-28s %10.1f ms\n", "time to first token, turn 1", r->ttft1_ms);
        printf("  %-28s %10.1f ms   (follow-up: no image encoding)\n", "time to first token, turn 2", r->ttft2_ms);
    } else if (a->vision) {
        printf("  %-28s %10.1f ms   (%d image tokens)\n", "image encode", r->encode_ms, r->image_tokens);
        printf("  %-28s %10.1f ms\n", "time to first token, turn 1", r->ttft1_ms);
        printf("  %-28s %10.1f ms   (follow-up: no image encoding)\n", "time to first token, turn 2", r->ttft2_ms);
    }
    if (r->prefill_first_tok_s > 0)
        printf("  %-28s %10.1f tok/s (%d tokens; the first after load: %.1f tok/s, its KV cache pages new)\n",
               "prefill", r->prefill_tok_s, r->prefill_tokens, r->prefill_first_tok_s);
    else
        printf("  %-28s %10.1f tok/s (%d tokens)\n", "prefill", r->prefill_tok_s, r->prefill_tokens);
    printf("  %-28s %10.2f tok/s (%d tokens)\n", "decode", r->decode_tok_s, r->decode_tokens);
    printf("  %-28s %10.1f GB/s  -> decode bound %.2f tok/s for %.1f MiB read a token (%.0f%% reached)\n",
           "memory read bandwidth", r->bandwidth / 1e9, r->bound_tok_s, r->decode_bytes / 1048576.0,
           r->bound_tok_s > 0 ? 100 * r->decode_tok_s / r->bound_tok_s : 0);
    printf("  %-28s %10.1f GFLOP/s (independent FMAs, %s, all threads)\n", "FP32 FMA peak", r->fma_peak / 1e9,
           vc_gemm_isa());
    printf("  %-28s %10.1f MiB\n", "peak RSS", r->peak_rss / 1048576.0);
}

static void print_json(const bench_arch *a, const char *type, const bench_result *r)
{
    json_t *j = json_pack("{s:s,s:s,s:s,s:i,s:s,s:f,s:f,s:f,s:i,s:f,s:f,s:f,s:i,s:f,s:i,s:f,s:f,s:I,s:I}",
                          "model", a->name, "like", a->like, "weights", type, "threads", vc_threads_count(),
                          "kernels", vc_kernels_dot_isa(), "load_ms", r->load_ms, "image_encode_ms", r->encode_ms,
                          "ttft_turn1_ms", r->ttft1_ms, "image_tokens", r->image_tokens, "ttft_turn2_ms", r->ttft2_ms,
                          "prefill_tok_s", r->prefill_tok_s, "decode_tok_s", r->decode_tok_s, "decode_tokens",
                          r->decode_tokens, "bandwidth_gb_s", r->bandwidth / 1e9, "prefill_tokens", r->prefill_tokens,
                          "decode_bound_tok_s", r->bound_tok_s, "decode_share_of_bound",
                          r->bound_tok_s > 0 ? r->decode_tok_s / r->bound_tok_s : 0.0, "weights_bytes",
                          (json_int_t)r->weights_bytes, "peak_rss_bytes", (json_int_t)r->peak_rss);
    if (j && (a->moondream || a->phi3v))
        json_object_set_new(j, "crops", json_integer(r->crops));
    if (j)
        json_object_set_new(j, "decode_bytes", json_integer((json_int_t)r->decode_bytes));
    if (j && r->prefill_first_tok_s > 0)
        json_object_set_new(j, "prefill_first_tok_s", json_real(r->prefill_first_tok_s));
    if (j)
        json_object_set_new(j, "fma_peak_gflop_s", json_real(r->fma_peak / 1e9));
    if (j && a->phi3v) {
        double rate = r->encode_ms > 0 ? r->encode_flops / (r->encode_ms / 1e3) : 0;
        json_object_set_new(j, "image_encode_gflop", json_real(r->encode_flops / 1e9));
        json_object_set_new(j, "image_encode_gflop_s", json_real(rate / 1e9));
        json_object_set_new(j, "image_encode_share_of_peak", json_real(r->fma_peak > 0 ? rate / r->fma_peak : 0));
    }
    if (j) {   /* the int8 peak (multiply-adds/s) and prefill's share of it */
        json_object_set_new(j, "int8_peak_gmac_s", json_real(r->int8_peak / 1e9));
        json_object_set_new(j, "prefill_share_of_int8_peak",
                            json_real(r->int8_peak > 0 ? r->prefill_tok_s * r->prefill_macs / r->int8_peak : 0));
        json_object_set_new(j, "int8_vector_peak_gmac_s", json_real(r->int8_vector_peak / 1e9));
        json_object_set_new(j, "prefill_share_of_int8_vector_peak",
                            json_real(r->int8_vector_peak > 0 ? r->prefill_tok_s * r->prefill_macs / r->int8_vector_peak : 0));
    }
    if (j)   /* which integer kernels decoded, or null: float activations */
        json_object_set_new(j, "int8_dot", vc_int8dot_enabled() ? json_string(vc_int8dot_isa()) : json_null());
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (s)
        puts(s);
    free(s);
}

/* Bytes a decode step reads: every decoder matrix and the output head once
 * (the tied embedding table as the head; its one row per token and the
 * norms left out). */
static size_t decode_bytes(vc_llm *l)
{
    size_t b = (size_t)l->lm_head.rows * l->lm_head.row_bytes;
    for (int i = 0; i < l->cfg.n_layers; i++) {
        vc_matrix *w[VC_LLM_LAYER_MATRICES];
        vc_llm_layer_matrices(&l->layers[i], w);
        for (int k = 0; k < VC_LLM_LAYER_MATRICES; k++)
            b += w[k]->data ? (size_t)w[k]->rows * w[k]->row_bytes : 0;
    }
    return b;
}

/* A model file or directory's own dimensions, for the counts the figures
 * are set against. */
static bench_arch file_arch(const char *path, const vc_llm_config *c)
{
    return (bench_arch){ .name = path, .like = "its own weights", .dim = c->dim, .inter = c->ffn_dim,
                         .layers = c->n_layers, .heads = c->n_heads, .kv_heads = c->n_kv_heads, .vocab = c->n_vocab,
                         .head_dim = c->head_dim, .gelu_mlp = c->gelu_mlp || c->parallel_block };
}

static void bench_dir(const bench_arch *a, char *out, size_t cap)
{
    const char *cache = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (cache && *cache)
        snprintf(out, cap, "%s/vlmchat/bench/%s", cache, a->name);
    else
        snprintf(out, cap, "%s/.cache/vlmchat/bench/%s", home && *home ? home : "/tmp", a->name);
}

int vc_run_bench(const vc_cli *cli, volatile sig_atomic_t *interrupt)
{
    const char *name = cli->bench_arch ? cli->bench_arch : cli->model ? cli->model : "smolvlm-256m";
    const bench_arch *a = find_arch(name);
    /* not one of ours: a model of the user's (a file, directory or name, as
     * --model takes), its text side measured as it is (or with --quant) */
    vc_model_ref ref;
    bool own = !a;
    if (own && vc_locate_model(name, &ref) != 0)
        return vc_fail_code(VC_EXIT_USAGE, "unknown benchmark model '%s': not one of %s, nor a model (%s)", name,
                            vc_bench_arch_names(), vc_error());
    int quant = 0;
    if (cli->quant && (quant = vc_dtype_from_name(cli->quant)) < 0)
        return vc_fail_code(VC_EXIT_USAGE, "unknown --quant type '%s'", cli->quant);
    char dir[4096], image[4200];
    if (own)
        snprintf(dir, sizeof dir, "%s", ref.path);
    else
        bench_dir(a, dir, sizeof dir);
    if (!own && make_model(a, dir) != 0)
        return -1;
    bench_result r = { 0 };
    vc_model m;
    vc_model_options opt = { .n_ctx = 2048, .quant = quant == VC_BF16 ? 0 : quant, .no_mmproj = own };
    if (vc_model_open(dir, &opt, &m) != 0)
        return -1;
    bench_arch mine;
    if (own) {
        mine = file_arch(name, &m.llm.cfg);
        a = &mine;
    }
    r.load_ms = m.load_ms;
    r.weights_bytes = vc_tensors_bytes(&m.llm.weights);
    r.decode_bytes = decode_bytes(&m.llm);
    snprintf(image, sizeof image, "%s/image.png", dir);
    /* on a shared machine the rate the encode can get changes: the peak is
     * measured right before it and again at the end, and the higher one kept */
    r.fma_peak = a->phi3v ? fma_peak() : 0;
    int rc = a->moondream ? measure_moondream(&m, image, interrupt, &r)
             : a->vision  ? measure_turns(&m, image, interrupt, &r) : 0;
    if (rc == 0 && !a->moondream)
        rc = measure_text(&m, interrupt, &r);
    r.peak_rss = vc_mem_peak_rss();
    vc_model_close(&m);
    if (rc != 0)
        return -1;
    r.bandwidth = read_bandwidth();
    r.fma_peak = VC_MAX(r.fma_peak, fma_peak());
    if (a->phi3v)
        r.encode_flops = phi3v_encode_flops(a, &r.crops);
    r.bound_tok_s = r.decode_bytes ? r.bandwidth / r.decode_bytes : 0;
    r.int8_peak = measure_int8_peak();
    r.int8_vector_peak = r.int8_peak;
    if (vc_isa_level() == VC_ISA_AMX) {   /* the vectors' peak too: what the other kernels (decode, rows) reach for */
        vc_isa_set(VC_ISA_AVX512_VNNI);
        r.int8_vector_peak = measure_int8_peak();
        vc_isa_set(VC_ISA_DEFAULT);
    }
    r.prefill_macs = r.prefill_tokens ? prefill_macs_per_token(a, r.prefill_tokens) : 0;
    const char *type = quant > 0 ? vc_dtype_name((vc_dtype)quant) : own ? "stored" : "bf16";
    if (cli->json) {
        print_json(a, type, &r);
    } else {
        print_table(a, type, &r);
        print_int8_peak(&r);
    }
    return 0;
}
