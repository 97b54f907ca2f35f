/* mmproj.c - see include/loader/mmproj.h */
#define _POSIX_C_SOURCE 200809L
#include "loader/mmproj.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/common.h"
#include "loader/gguf.h"

#define MAX_PINPOINTS 64

/* ---- typed metadata (the exact GGUF type, as clip.cpp's getters) ---- */

typedef struct {
    const vc_gguf *g;
    const char *path;
} meta;

/* 1: found, 0: absent, -1: present with the wrong type (error recorded). */
static int find_typed(const meta *m, const char *key, uint32_t type, const vc_gguf_kv **out)
{
    const vc_gguf_kv *kv = vc_gguf_find(m->g, key);
    if (!kv)
        return 0;
    if (kv->type != type)
        return vc_fail_code(VC_EXIT_MODEL, "%s: mmproj key %s has GGUF type %u, expected %u", m->path, key,
                            kv->type, type);
    *out = kv;
    return 1;
}

/* A u32 in [lo, hi]; dflt < 0 makes it required. */
static int get_u32(const meta *m, const char *key, int64_t dflt, int64_t lo, int64_t hi, int *out)
{
    const vc_gguf_kv *kv = NULL;
    int r = find_typed(m, key, VC_GGUF_U32, &kv);
    if (r < 0)
        return -1;
    if (r == 0) {
        if (dflt < 0)
            return vc_fail_code(VC_EXIT_MODEL, "%s: mmproj file has no %s", m->path, key);
        *out = (int)dflt;
        return 0;
    }
    if ((int64_t)kv->v.u < lo || (int64_t)kv->v.u > hi)
        return vc_fail_code(VC_EXIT_MODEL, "%s: mmproj %s = %llu is out of range [%lld, %lld]", m->path, key,
                            (unsigned long long)kv->v.u, (long long)lo, (long long)hi);
    *out = (int)kv->v.u;
    return 0;
}

static int get_bool(const meta *m, const char *key, bool dflt, bool *out)
{
    const vc_gguf_kv *kv = NULL;
    int r = find_typed(m, key, VC_GGUF_BOOL, &kv);
    if (r < 0)
        return -1;
    *out = r ? kv->v.u != 0 : dflt;
    return 0;
}

/* A numeric array of elem_type with n in [min_n, max_n] elements; *kv NULL if absent. */
static int get_array(const meta *m, const char *key, uint32_t elem_type, uint64_t min_n, uint64_t max_n,
                     const vc_gguf_kv **kv)
{
    *kv = NULL;
    int r = find_typed(m, key, VC_GGUF_ARRAY, kv);
    if (r <= 0) {
        *kv = NULL;
        return r;
    }
    if ((*kv)->arr_type != elem_type || (*kv)->arr_n < min_n || (*kv)->arr_n > max_n) {
        int rc = vc_fail_code(VC_EXIT_MODEL, "%s: mmproj %s must be an array of %llu to %llu elements of GGUF type "
                              "%u (has %llu of type %u)", m->path, key, (unsigned long long)min_n,
                              (unsigned long long)max_n, elem_type, (unsigned long long)(*kv)->arr_n,
                              (*kv)->arr_type);
        *kv = NULL;
        return rc;
    }
    return 1;
}

static int get_string(const meta *m, const char *key, char *buf, size_t cap)
{
    const vc_gguf_kv *kv = NULL;
    int r = find_typed(m, key, VC_GGUF_STRING, &kv);
    if (r <= 0)
        return r;
    if (kv->v.s.len >= cap)
        return vc_fail_code(VC_EXIT_MODEL, "%s: mmproj %s is too long", m->path, key);
    memcpy(buf, kv->v.s.ptr, (size_t)kv->v.s.len);
    buf[kv->v.s.len] = 0;
    return 1;
}

/* ---- tensors: llama.cpp names to the HF names the families bind ---- */

typedef struct {
    const char *gguf, *hf;
} name_pair;

static const name_pair tower_names[] = {
    { "v.patch_embd.weight", "embeddings.patch_embedding.weight" },
    { "v.patch_embd.bias", "embeddings.patch_embedding.bias" },
    { "v.class_embd", "embeddings.class_embedding" },
    { "v.position_embd.weight", "embeddings.position_embedding.weight" },
    { "v.pre_ln.weight", "pre_layrnorm.weight" },
    { "v.pre_ln.bias", "pre_layrnorm.bias" },
    { "v.post_ln.weight", "post_layernorm.weight" },
    { "v.post_ln.bias", "post_layernorm.bias" },
};

static const name_pair layer_names[] = {
    { "attn_q", "self_attn.q_proj" },   { "attn_k", "self_attn.k_proj" }, { "attn_v", "self_attn.v_proj" },
    { "attn_out", "self_attn.out_proj" }, { "ln1", "layer_norm1" },     { "ln2", "layer_norm2" },
};

static const name_pair mlp_names[] = {
    { "mm.0.weight", "multi_modal_projector.linear_1.weight" },
    { "mm.0.bias", "multi_modal_projector.linear_1.bias" },
    { "mm.2.weight", "multi_modal_projector.linear_2.weight" },
    { "mm.2.bias", "multi_modal_projector.linear_2.bias" },
    { "v.image_newline", "image_newline" },
    { "model.image_newline", "image_newline" },
};

static const name_pair idefics3_names[] = {
    { "mm.model.fc.weight", "model.connector.modality_projection.proj.weight" },
};

typedef struct {
    int hidden, ffn, layers;
    bool legacy;        /* written by the legacy LLaVA converter (fc1 named ffn_down) */
    const char *tower;  /* HF prefix of the tower */
} tower_info;

/* Which of a layer's ffn_up / ffn_down is HF's fc1 (hidden -> ffn): by shape;
 * only when hidden == ffn does the converter's naming decide. */
static bool up_is_fc1(const vc_tensor_set *s, int layer, const tower_info *ti)
{
    char name[64];
    snprintf(name, sizeof name, "v.blk.%d.ffn_up.weight", layer);
    const vc_tensor *up = vc_tensors_find(s, name);
    snprintf(name, sizeof name, "v.blk.%d.ffn_down.weight", layer);
    const vc_tensor *down = vc_tensors_find(s, name);
    if (ti->hidden != ti->ffn) {
        if (up && up->n_dims == 2 && up->ne[0] == ti->hidden && up->ne[1] == ti->ffn)
            return true;
        if (down && down->n_dims == 2 && down->ne[0] == ti->hidden && down->ne[1] == ti->ffn)
            return false;
    }
    return !ti->legacy;
}

/* The HF name of one file tensor, or "" to keep its own. */
static int hf_name(const vc_tensor_set *s, const char *n, const tower_info *ti, const name_pair *proj, size_t n_proj,
                   char *out, size_t cap)
{
    out[0] = 0;
    for (size_t i = 0; i < VC_ARRAY_LEN(tower_names); i++)
        if (strcmp(n, tower_names[i].gguf) == 0)
            return snprintf(out, cap, "%s%s", ti->tower, tower_names[i].hf) >= (int)cap ? -1 : 0;
    for (size_t i = 0; i < n_proj; i++)
        if (strcmp(n, proj[i].gguf) == 0)
            return snprintf(out, cap, "%s", proj[i].hf) >= (int)cap ? -1 : 0;
    int layer, used = 0;
    if (sscanf(n, "v.blk.%d.%n", &layer, &used) != 1 || used == 0 || layer < 0 || layer >= ti->layers)
        return 0;
    const char *rest = n + used, *dot = strrchr(rest, '.');
    if (!dot || (strcmp(dot, ".weight") != 0 && strcmp(dot, ".bias") != 0))
        return 0;
    size_t part_len = (size_t)(dot - rest);
    const char *hf = NULL;
    for (size_t i = 0; i < VC_ARRAY_LEN(layer_names); i++)
        if (strlen(layer_names[i].gguf) == part_len && strncmp(rest, layer_names[i].gguf, part_len) == 0)
            hf = layer_names[i].hf;
    bool up = part_len == 6 && strncmp(rest, "ffn_up", 6) == 0, down = part_len == 8 && strncmp(rest, "ffn_down", 8) == 0;
    if (up || down)
        hf = up == up_is_fc1(s, layer, ti) ? "mlp.fc1" : "mlp.fc2";
    if (!hf)
        return 0;
    return snprintf(out, cap, "%sencoder.layers.%d.%s%s", ti->tower, layer, hf, dot) >= (int)cap ? -1 : 0;
}

static int rename_tensors(vc_tensor_set *s, const tower_info *ti, const name_pair *proj, size_t n_proj,
                          const char *path)
{
    char **names = vc_calloc(s->count ? s->count : 1, sizeof *names);
    if (!names)
        return -1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < s->count; i++) {
        char buf[256];
        if (hf_name(s, s->items[i].name, ti, proj, n_proj, buf, sizeof buf) != 0)
            rc = vc_fail_code(VC_EXIT_MODEL, "%s: tensor name '%s' is too long", path, s->items[i].name);
        else if (buf[0] && !(names[i] = vc_strdup(buf)))
            rc = -1;
    }
    for (size_t i = 0; i < s->count; i++) {
        if (rc == 0 && names[i]) {
            free(s->items[i].name);
            s->items[i].name = names[i];
        } else {
            free(names[i]);
        }
    }
    free(names);
    for (size_t i = 0; rc == 0 && i < s->count; i++)
        for (size_t j = i + 1; rc == 0 && j < s->count; j++)
            if (strcmp(s->items[i].name, s->items[j].name) == 0)
                rc = vc_fail_code(VC_EXIT_MODEL, "%s: two mmproj tensors both stand for '%s'", path,
                                  s->items[i].name);
    return rc;
}

/* ---- the synthesized HF configuration ---- */

static json_t *float_array(const vc_gguf_kv *kv, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        json_array_append_new(a, json_real(vc_gguf_arr_float(kv, (uint64_t)i)));
    return a;
}

static int check_normalization(const meta *m, const vc_gguf_kv *mean, const vc_gguf_kv *std)
{
    for (int c = 0; c < 3; c++) {
        double mu = vc_gguf_arr_float(mean, (uint64_t)c), sd = vc_gguf_arr_float(std, (uint64_t)c);
        if (!isfinite(mu) || !isfinite(sd) || !(sd > 0))
            return vc_fail_code(VC_EXIT_MODEL, "%s: mmproj image_mean/image_std must be finite, std positive",
                                m->path);
    }
    return 0;
}

typedef struct {
    int image_size, patch_size, hidden, ffn, layers, heads, projection_dim;
    double eps;
    bool have_eps, use_gelu, use_silu, legacy;
    const vc_gguf_kv *mean, *std;
} clip_vision;

static int read_clip_vision(const meta *m, clip_vision *v)
{
    memset(v, 0, sizeof *v);
    const vc_gguf_kv *kv = NULL;
    if (get_u32(m, "clip.vision.image_size", -1, 1, 4096, &v->image_size) ||
        get_u32(m, "clip.vision.patch_size", -1, 1, 4096, &v->patch_size) ||
        get_u32(m, "clip.vision.embedding_length", -1, 1, 16384, &v->hidden) ||
        get_u32(m, "clip.vision.feed_forward_length", -1, 1, 1 << 18, &v->ffn) ||
        get_u32(m, "clip.vision.block_count", -1, 1, 256, &v->layers) ||
        get_u32(m, "clip.vision.attention.head_count", -1, 1, 16384, &v->heads) ||
        get_u32(m, "clip.vision.projection_dim", 0, 0, 1 << 20, &v->projection_dim))
        return -1;
    int r = find_typed(m, "clip.vision.attention.layer_norm_epsilon", VC_GGUF_F32, &kv);
    if (r < 0)
        return -1;
    if (r == 1) {
        v->eps = kv->v.f;
        v->have_eps = true;
        if (!(v->eps > 0 && v->eps < 1))
            return vc_fail_code(VC_EXIT_MODEL, "%s: mmproj layer_norm_epsilon %g is invalid", m->path, v->eps);
    }
    if (get_bool(m, "clip.use_gelu", false, &v->use_gelu) || get_bool(m, "clip.use_silu", false, &v->use_silu))
        return -1;
    if (v->use_gelu && v->use_silu)
        return vc_fail_code(VC_EXIT_MODEL, "%s: mmproj sets both clip.use_gelu and clip.use_silu", m->path);
    if (v->image_size % v->patch_size != 0 || v->hidden % v->heads != 0)
        return vc_fail_code(VC_EXIT_MODEL, "%s: mmproj image_size %d / patch_size %d or embedding_length %d / "
                            "head_count %d do not divide", m->path, v->image_size, v->patch_size, v->hidden, v->heads);
    int rm = get_array(m, "clip.vision.image_mean", VC_GGUF_F32, 3, 16, &v->mean);
    int rs = rm < 0 ? -1 : get_array(m, "clip.vision.image_std", VC_GGUF_F32, 3, 16, &v->std);
    if (rm < 0 || rs < 0)
        return -1;
    if (rm == 0 || rs == 0)
        return vc_fail_code(VC_EXIT_MODEL, "%s: mmproj file lacks the float arrays clip.vision.image_mean and "
                            "image_std", m->path);
    return check_normalization(m, v->mean, v->std);
}

static json_t *vision_config(const clip_vision *v, const char *act, double dflt_eps)
{
    json_t *c = json_object();
    if (!c)
        return NULL;
    json_object_set_new(c, "hidden_size", json_integer(v->hidden));
    json_object_set_new(c, "intermediate_size", json_integer(v->ffn));
    json_object_set_new(c, "num_hidden_layers", json_integer(v->layers));
    json_object_set_new(c, "num_attention_heads", json_integer(v->heads));
    json_object_set_new(c, "image_size", json_integer(v->image_size));
    json_object_set_new(c, "patch_size", json_integer(v->patch_size));
    json_object_set_new(c, "layer_norm_eps", json_real(v->have_eps ? v->eps : dflt_eps));
    json_object_set_new(c, "hidden_act", json_string(act));
    return c;
}

static json_t *normalization(json_t *p, const clip_vision *v)
{
    if (!p)
        return NULL;
    json_object_set_new(p, "image_mean", float_array(v->mean, 3));
    json_object_set_new(p, "image_std", float_array(v->std, 3));
    json_object_set_new(p, "rescale_factor", json_real(1.0 / 255));
    return p;
}

/* LLaVA-1.6 (projector "mlp" with anyres pinpoints). */
static int synth_llava_next(const meta *m, const clip_vision *v, vc_mmproj *out)
{
    const vc_gguf_kv *pins, *layers;
    char merge[64] = "";
    if (get_array(m, "clip.vision.image_grid_pinpoints", VC_GGUF_I32, 0, 2 * MAX_PINPOINTS, &pins) < 0 ||
        get_array(m, "clip.vision.feature_layer", VC_GGUF_I32, 1, 64, &layers) < 0 ||
        get_string(m, "clip.vision.mm_patch_merge_type", merge, sizeof merge) < 0)
        return -1;
    if (!pins || pins->arr_n == 0)
        return vc_fail_code(VC_EXIT_MODEL, "%s: an mlp mmproj without clip.vision.image_grid_pinpoints is LLaVA-1.5, "
                            "which vlmchat does not run (LLaVA-1.6 files carry the pinpoints)", m->path);
    if (pins->arr_n % 2)
        return vc_fail_code(VC_EXIT_MODEL, "%s: mmproj image_grid_pinpoints has an odd length", m->path);
    if (merge[0] && strcmp(merge, "spatial_unpad") != 0)
        return vc_fail_code(VC_EXIT_MODEL, "%s: mm_patch_merge_type '%s' is not LLaVA-NeXT's (spatial_unpad)",
                            m->path, merge);
    int feature = v->layers;    /* legacy: the last layer is already dropped; HF's -2 is the last stored one */
    if (layers) {
        feature = -1;
        for (uint64_t i = 0; i < layers->arr_n; i++) {
            int64_t f = vc_gguf_arr_int(layers, i);
            if (f < 0 || f > v->layers || (feature >= 0 && f != feature))
                return vc_fail_code(VC_EXIT_MODEL, "%s: mmproj feature_layer must be one layer in [0, %d]", m->path,
                                    v->layers);
            feature = (int)f;
        }
    }
    json_t *cfg = json_object(), *pl = json_array(), *vc = vision_config(v, v->use_gelu ? "gelu" : v->use_silu ? "silu"
                                                                          : "quick_gelu", 1e-5);
    if (!cfg || !pl || !vc) {
        json_decref(cfg);
        json_decref(pl);
        json_decref(vc);
        return vc_fail_code(VC_EXIT_NOMEM, "out of memory");
    }
    for (uint64_t i = 0; i + 1 < pins->arr_n; i += 2) {
        int64_t a = vc_gguf_arr_int(pins, i), b = vc_gguf_arr_int(pins, i + 1);
        json_array_append_new(pl, json_pack("[II]", (json_int_t)a, (json_int_t)b));
    }
    json_object_set_new(cfg, "model_type", json_string("llava_next"));
    json_object_set_new(cfg, "vision_config", vc);
    json_object_set_new(cfg, "image_grid_pinpoints", pl);
    json_object_set_new(cfg, "vision_feature_layer", json_integer(feature));
    json_object_set_new(cfg, "vision_feature_select_strategy", json_string("default"));
    json_object_set_new(cfg, "projector_hidden_act", json_string("gelu"));
    json_t *p = normalization(json_object(), v);
    if (p) {
        json_object_set_new(p, "size", json_pack("{si}", "shortest_edge", v->image_size));
        json_object_set_new(p, "crop_size", json_pack("{sisi}", "height", v->image_size, "width", v->image_size));
        json_object_set_new(p, "resample", json_integer(3));   /* bicubic, CLIPImageProcessor's */
    }
    out->config = cfg;
    out->processor = p;
    return p ? 0 : vc_fail_code(VC_EXIT_NOMEM, "out of memory");
}

/* SmolVLM / Idefics3 (projector "idefics3"). */
static int synth_idefics3(const meta *m, const clip_vision *v, int text_dim, vc_mmproj *out)
{
    int scale, longest;
    if (get_u32(m, "clip.vision.projector.scale_factor", 2, 1, 64, &scale) ||
        get_u32(m, "clip.vision.preproc_image_size", 4 * (int64_t)v->image_size, 1, 4096, &longest))
        return -1;
    int g = v->image_size / v->patch_size;
    if (g % scale != 0)
        return vc_fail_code(VC_EXIT_MODEL, "%s: mmproj scale_factor %d does not divide the %d-patch grid", m->path,
                            scale, g);
    if (v->projection_dim && v->projection_dim != text_dim)
        return vc_fail_code(VC_EXIT_MODEL, "%s: mmproj projects to %d but the text model is %d wide", m->path,
                            v->projection_dim, text_dim);
    json_t *cfg = json_object(), *vc = vision_config(v, v->use_silu ? "silu" : "gelu_pytorch_tanh", 1e-6);
    json_t *p = normalization(json_object(), v), *root = json_object();
    if (!cfg || !vc || !p || !root) {
        json_decref(cfg);
        json_decref(vc);
        json_decref(p);
        json_decref(root);
        return vc_fail_code(VC_EXIT_NOMEM, "out of memory");
    }
    json_object_set_new(cfg, "model_type", json_string("idefics3"));
    json_object_set_new(cfg, "vision_config", vc);
    json_object_set_new(cfg, "scale_factor", json_integer(scale));
    json_object_set_new(p, "size", json_pack("{si}", "longest_edge", longest));
    json_object_set_new(p, "max_image_size", json_pack("{si}", "longest_edge", v->image_size));
    json_object_set_new(p, "do_resize", json_true());
    json_object_set_new(p, "do_image_splitting", json_true());
    json_object_set_new(p, "resample", json_integer(1));     /* LANCZOS, the Idefics3 processor's */
    json_object_set_new(root, "image_seq_len", json_integer((g / scale) * (g / scale)));
    out->config = cfg;
    out->processor = p;
    out->processor_root = root;
    return 0;
}

/* ---- open ---- */

bool vc_mmproj_sniff(const char *path)
{
    if (!vc_gguf_sniff(path))
        return false;
    vc_gguf g;
    if (vc_gguf_open(path, &g) != 0) {
        vc_error_clear();
        return false;
    }
    char *arch = vc_gguf_get_string(&g, "general.architecture");
    bool clip = arch && strcmp(arch, "clip") == 0;
    free(arch);
    vc_gguf_close(&g);
    return clip;
}

static int open_checked(const char *path, int text_dim, vc_gguf *g, vc_mmproj *out)
{
    meta m = { g, path };
    char arch[32] = "";
    if (get_string(&m, "general.architecture", arch, sizeof arch) < 0)
        return -1;
    if (strcmp(arch, "clip") != 0)
        return vc_fail_code(VC_EXIT_MODEL, "%s: not an mmproj file (general.architecture is '%s', not 'clip')", path,
                            arch);
    bool has_vision, legacy;
    if (get_bool(&m, "clip.has_vision_encoder", true, &has_vision) ||
        get_bool(&m, "clip.has_llava_projector", false, &legacy))
        return -1;
    if (!has_vision)
        return vc_fail_code(VC_EXIT_MODEL, "%s: mmproj file has no vision encoder", path);
    legacy = vc_gguf_find(g, "clip.has_llava_projector") != NULL;
    int r = get_string(&m, "clip.projector_type", out->projector, sizeof out->projector);
    if (r == 0)
        r = get_string(&m, "clip.vision.projector_type", out->projector, sizeof out->projector);
    if (r < 0)
        return -1;
    if (r == 0) {
        if (!legacy)
            return vc_fail_code(VC_EXIT_MODEL, "%s: mmproj file has no clip.projector_type", path);
        snprintf(out->projector, sizeof out->projector, "mlp");
    }
    clip_vision v;
    if (read_clip_vision(&m, &v) != 0)
        return -1;
    v.legacy = legacy;
    tower_info ti = { v.hidden, v.ffn, v.layers, legacy, NULL };
    const name_pair *proj;
    size_t n_proj;
    if (strcmp(out->projector, "mlp") == 0) {
        ti.tower = "vision_tower.vision_model.";
        proj = mlp_names;
        n_proj = VC_ARRAY_LEN(mlp_names);
        r = synth_llava_next(&m, &v, out);
    } else if (strcmp(out->projector, "idefics3") == 0) {
        ti.tower = "model.vision_model.";
        proj = idefics3_names;
        n_proj = VC_ARRAY_LEN(idefics3_names);
        if (!vc_tensors_find(&g->tensors, "v.post_ln.weight") || !vc_tensors_find(&g->tensors, "v.post_ln.bias"))
            return vc_fail_code(VC_EXIT_MODEL, "%s: idefics3 mmproj file lacks v.post_ln", path);
        r = synth_idefics3(&m, &v, text_dim, out);
    } else {
        return vc_fail_code(VC_EXIT_MODEL, "%s: mmproj projector type '%s' is not supported (mlp and idefics3 are)",
                            path, out->projector);
    }
    if (r != 0)
        return -1;
    /* ggml order of a [hidden, 3, p, p] convolution; the towers also take MLX's channels-last, never stored here */
    const vc_tensor *pe = vc_tensors_find(&g->tensors, "v.patch_embd.weight");
    if (pe && (pe->n_dims != 4 || pe->ne[0] != v.patch_size || pe->ne[1] != v.patch_size || pe->ne[2] != 3 ||
               pe->ne[3] != v.hidden))
        return vc_fail_code(VC_EXIT_MODEL, "%s: mmproj patch embedding is not %d x %d x 3 x %d", path, v.patch_size,
                            v.patch_size, v.hidden);
    return rename_tensors(&g->tensors, &ti, proj, n_proj, path);
}

int vc_mmproj_open(const char *path, int text_dim, vc_mmproj *out)
{
    memset(out, 0, sizeof *out);
    vc_gguf g;
    if (vc_gguf_open(path, &g) != 0)
        return -1;
    int rc = open_checked(path, text_dim, &g, out);
    if (rc == 0 && !(out->weights = vc_malloc(sizeof *out->weights)))
        rc = -1;
    if (rc == 0) {
        *out->weights = g.tensors;     /* the map moves with the tensors */
        memset(&g.tensors, 0, sizeof g.tensors);
    }
    vc_gguf_close(&g);
    if (rc != 0)
        vc_mmproj_free(out);
    return rc;
}

void vc_mmproj_free(vc_mmproj *m)
{
    if (m->weights) {
        vc_tensors_free(m->weights);
        free(m->weights);
    }
    json_decref(m->config);
    json_decref(m->processor);
    json_decref(m->processor_root);
    memset(m, 0, sizeof *m);
}

/* ---- pairing ---- */

static bool is_candidate(const char *name)
{
    size_t n = strlen(name);
    return strstr(name, "mmproj") && n > 5 && strcmp(name + n - 5, ".gguf") == 0;
}

/* Whether the file name `name` holds the text file's name less ".gguf"
 * (mmproj-NAME.gguf beside NAME.gguf, as vlmchat convert names it). */
static bool names_text(const char *name, const char *text_base)
{
    size_t n = strlen(text_base);
    if (n > 5 && strcmp(text_base + n - 5, ".gguf") == 0)
        n -= 5;
    for (const char *p = name; n && *p; p++)
        if (strncmp(p, text_base, n) == 0)
            return true;
    return false;
}

char *vc_mmproj_find_beside(const char *text_gguf, bool *ambiguous)
{
    *ambiguous = false;
    char *dir = vc_strdup(text_gguf);
    if (!dir)
        return NULL;
    char *slash = strrchr(dir, '/');
    const char *base = slash ? slash + 1 : text_gguf;
    if (slash)
        slash[slash == dir ? 1 : 0] = 0;
    else
        snprintf(dir, strlen(dir) + 1, ".");
    DIR *d = opendir(dir);
    /* the first candidate, another one, and the one naming the text file (NULL: none, or several) */
    char *found = NULL, *other = NULL, *named = NULL;
    int n_named = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!is_candidate(e->d_name) || strcmp(e->d_name, base) == 0)
            continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *p = vc_malloc(len);
        if (!p)
            break;
        snprintf(p, len, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) != 0 || !S_ISREG(st.st_mode) || !vc_gguf_sniff(p)) {
            free(p);
            continue;
        }
        if (names_text(e->d_name, base) && n_named++ == 0)
            named = vc_strdup(p);
        if (!found)
            found = p;
        else if (!other)
            other = p;
        else
            free(p);
    }
    if (d)
        closedir(d);
    free(dir);
    if (other && n_named == 1 && named) {   /* several, one of them named for this file */
        free(found);
        free(other);
        return named;
    }
    free(named);
    if (other) {
        *ambiguous = true;
        vc_fail_code(VC_EXIT_USAGE,
                     "several mmproj files beside %s (%s, %s): choose one with --mmproj, or --no-mmproj for text only",
                     text_gguf, found, other);
        free(found);
        free(other);
        return NULL;
    }
    return found;
}
