/* gguf_phi3v.c - see include/loader/gguf_phi3v.h */
#include "loader/gguf_phi3v.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

#define NS "vlmchat.phi3v."
#define EMBD "model.vision_embed_tokens."
#define TOWER EMBD "img_processor.vision_model."

bool vc_gguf_phi3v_present(const vc_gguf *g)
{
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && strncmp(g->kv[i].key, NS, sizeof NS - 1) == 0)
            return true;
    return false;
}

/* ---- keys, each with its exact GGUF type ---- */

static const vc_gguf_kv *need(const vc_gguf *g, const char *path, const char *key, uint32_t type)
{
    const vc_gguf_kv *kv = vc_gguf_find(g, key);
    if (!kv)
        vc_fail_code(VC_EXIT_MODEL, "%s: Phi-3-V GGUF file has no %s", path, key);
    else if (kv->type != type)
        vc_fail_code(VC_EXIT_MODEL, "%s: %s has GGUF type %u, expected %u", path, key, kv->type, type);
    return kv && kv->type == type ? kv : NULL;
}

static int get_u32(const vc_gguf *g, const char *path, const char *key, int lo, int hi, int *out)
{
    const vc_gguf_kv *kv = need(g, path, key, VC_GGUF_U32);
    if (!kv)
        return -1;
    if (kv->v.u < (uint64_t)lo || kv->v.u > (uint64_t)hi)
        return vc_fail_code(VC_EXIT_MODEL, "%s: %s = %llu is out of range [%d, %d]", path, key,
                            (unsigned long long)kv->v.u, lo, hi);
    *out = (int)kv->v.u;
    return 0;
}

/* image_mean / image_std: three finite f32 (std positive). */
static json_t *triple(const vc_gguf *g, const char *path, const char *key, bool positive)
{
    const vc_gguf_kv *kv = need(g, path, key, VC_GGUF_ARRAY);
    if (!kv)
        return NULL;
    if (kv->arr_type != VC_GGUF_F32 || kv->arr_n != 3) {
        vc_fail_code(VC_EXIT_MODEL, "%s: %s must be an array of 3 f32", path, key);
        return NULL;
    }
    json_t *a = json_array();
    for (uint64_t i = 0; a && i < 3; i++) {
        double x = vc_gguf_arr_float(kv, i);
        if (!isfinite(x) || (positive && !(x > 0))) {
            json_decref(a);
            vc_fail_code(VC_EXIT_MODEL, "%s: %s holds %g (finite%s values only)", path, key, x,
                         positive ? ", positive" : "");
            return NULL;
        }
        json_array_append_new(a, json_real(x));
    }
    if (!a)
        vc_fail_code(VC_EXIT_NOMEM, "out of memory");
    return a;
}

typedef struct {
    int image_size, patch_size, hidden, ffn, layers, heads, layer_idx, num_crops;
    double eps;
    char act[32];
} settings;

static int read_settings(const vc_gguf *g, const char *path, settings *s)
{
    memset(s, 0, sizeof *s);
    if (get_u32(g, path, NS "image_size", 1, 4096, &s->image_size) ||
        get_u32(g, path, NS "patch_size", 1, 4096, &s->patch_size) ||
        get_u32(g, path, NS "embedding_length", 1, 16384, &s->hidden) ||
        get_u32(g, path, NS "feed_forward_length", 1, 1 << 18, &s->ffn) ||
        get_u32(g, path, NS "block_count", 0, 256, &s->layers) ||
        get_u32(g, path, NS "attention.head_count", 1, 16384, &s->heads) ||
        get_u32(g, path, NS "num_crops", 1, 64, &s->num_crops))
        return -1;
    if (s->hidden % s->heads != 0)
        return vc_fail_code(VC_EXIT_MODEL, "%s: %sembedding_length %d is not a multiple of the %d heads", path, NS,
                            s->hidden, s->heads);
    const vc_gguf_kv *kv = need(g, path, NS "layer_idx", VC_GGUF_I32);
    if (!kv)
        return -1;
    if (kv->v.i < 0 || kv->v.i > s->layers)
        return vc_fail_code(VC_EXIT_MODEL, "%s: %slayer_idx %lld is not a stored layer (0..%d)", path, NS,
                            (long long)kv->v.i, s->layers);
    s->layer_idx = (int)kv->v.i;
    if (!(kv = need(g, path, NS "attention.layer_norm_epsilon", VC_GGUF_F32)))
        return -1;
    s->eps = kv->v.f;
    if (!(s->eps > 0 && s->eps < 1))
        return vc_fail_code(VC_EXIT_MODEL, "%s: %sattention.layer_norm_epsilon %g is invalid", path, NS, s->eps);
    if (!(kv = need(g, path, NS "hidden_act", VC_GGUF_STRING)))
        return -1;
    if (kv->v.s.len == 0 || kv->v.s.len >= sizeof s->act)
        return vc_fail_code(VC_EXIT_MODEL, "%s: %shidden_act has an invalid length", path, NS);
    memcpy(s->act, kv->v.s.ptr, (size_t)kv->v.s.len);
    s->act[kv->v.s.len] = 0;
    return 0;
}

/* ---- tensor names: the file's to the HF checkpoint's ---- */

typedef struct {
    const char *gguf, *hf;
} name_pair;

static const name_pair fixed_names[] = {
    { "v.patch_embd.weight", TOWER "embeddings.patch_embedding.weight" },
    { "v.class_embd", TOWER "embeddings.class_embedding" },
    { "v.position_embd.weight", TOWER "embeddings.position_embedding.weight" },
    { "v.pre_ln.weight", TOWER "pre_layrnorm.weight" },
    { "v.pre_ln.bias", TOWER "pre_layrnorm.bias" },
    { "v.glb_GN", EMBD "glb_GN" },
    { "v.sub_GN", EMBD "sub_GN" },
    { "mm.0.weight", EMBD "img_projection.0.weight" },
    { "mm.0.bias", EMBD "img_projection.0.bias" },
    { "mm.2.weight", EMBD "img_projection.2.weight" },
    { "mm.2.bias", EMBD "img_projection.2.bias" },
};

static const name_pair layer_names[] = {
    { "attn_q", "self_attn.q_proj" }, { "attn_k", "self_attn.k_proj" },     { "attn_v", "self_attn.v_proj" },
    { "attn_out", "self_attn.out_proj" }, { "ffn_up", "mlp.fc1" },          { "ffn_down", "mlp.fc2" },
    { "ln1", "layer_norm1" },         { "ln2", "layer_norm2" },
};

/* The HF name of a file tensor into out, or "" when it is not the image side's. */
static void hf_name(const char *n, int layers, char *out, size_t cap)
{
    out[0] = 0;
    for (size_t i = 0; i < VC_ARRAY_LEN(fixed_names); i++)
        if (strcmp(n, fixed_names[i].gguf) == 0) {
            snprintf(out, cap, "%s", fixed_names[i].hf);
            return;
        }
    int layer, used = 0;
    if (sscanf(n, "v.blk.%d.%n", &layer, &used) != 1 || used == 0 || layer < 0 || layer >= layers)
        return;
    const char *rest = n + used, *dot = strrchr(rest, '.');
    if (!dot || (strcmp(dot, ".weight") != 0 && strcmp(dot, ".bias") != 0))
        return;
    size_t part = (size_t)(dot - rest);
    for (size_t i = 0; i < VC_ARRAY_LEN(layer_names); i++)
        if (strlen(layer_names[i].gguf) == part && strncmp(rest, layer_names[i].gguf, part) == 0)
            snprintf(out, cap, TOWER "encoder.layers.%d.%s%s", layer, layer_names[i].hf, dot);
}

static int rename_tensors(vc_tensor_set *s, int layers)
{
    for (size_t i = 0; i < s->count; i++) {
        char buf[160];
        hf_name(s->items[i].name, layers, buf, sizeof buf);
        if (!buf[0])
            continue;
        char *copy = vc_strdup(buf);
        if (!copy)
            return -1;
        free(s->items[i].name);
        s->items[i].name = copy;
    }
    return 0;
}

/* ---- the synthesized config.json and processor settings ---- */

int vc_gguf_phi3v_read(vc_gguf *g, const char *path, json_t **config, json_t **processor)
{
    *config = *processor = NULL;
    settings s;
    if (read_settings(g, path, &s) != 0)
        return -1;
    json_t *mean = triple(g, path, NS "image_mean", false);
    json_t *std = mean ? triple(g, path, NS "image_std", true) : NULL;
    if (!std) {
        json_decref(mean);
        return -1;
    }
    json_t *cfg = json_pack("{s:s, s:{s:b,s:b,s:s,s:s}, s:{s:s,s:s,s:i,s:i}, "
                            "s:{s:i,s:i,s:i,s:i,s:i,s:i,s:f,s:s}}",
                            "model_type", "phi3_v",
                            "embd_layer", "use_hd_transform", 1, "with_learnable_separator", 1, "hd_transform_order",
                            "sub_glb", "projection_cls", "mlp",
                            "img_processor", "name", "clip_vision_model", "type_feature", "patch", "image_dim_out",
                            s.hidden, "layer_idx", s.layer_idx,
                            "vision_config", "hidden_size", s.hidden, "intermediate_size", s.ffn, "num_hidden_layers",
                            s.layers, "num_attention_heads", s.heads, "image_size", s.image_size, "patch_size",
                            s.patch_size, "layer_norm_eps", s.eps, "hidden_act", s.act);
    json_t *proc = json_pack("{s:i,s:o,s:o}", "num_crops", s.num_crops, "image_mean", mean, "image_std", std);
    if (!cfg || !proc) {
        json_decref(cfg);
        json_decref(proc);
        return vc_fail_code(VC_EXIT_NOMEM, "out of memory");
    }
    if (rename_tensors(&g->tensors, s.layers) != 0) {
        json_decref(cfg);
        json_decref(proc);
        return -1;
    }
    *config = cfg;
    *processor = proc;
    return 0;
}
