/* convert_mmproj.c - see include/app/convert_mmproj.h */
#include "app/convert_mmproj.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/convert.h"
#include "core/common.h"
#include "loader/gguf.h"
#include "vision/idefics3.h"
#include "vision/llava_next.h"

static int add_vec(vc_gguf_writer *w, const char *name, const float *v, int64_t n)
{
    return vc_convert_add_f32(w, name, v, 1, &n);
}

/* The patch convolution [hidden][3][p][p] in ggml order (p, p, 3, hidden). */
static int add_patch(vc_gguf_writer *w, const vc_vit *v, vc_dtype type)
{
    int p = v->cfg.patch_size;
    int64_t ne[4] = { p, p, 3, v->cfg.hidden };
    vc_dtype t = type == VC_F32 ? VC_F32 : VC_F16;
    size_t row_bytes;
    uint8_t *data = vc_matrix_requantize(&v->patch, t, NULL, 0, &row_bytes);
    if (!data)
        return -1;
    return vc_gguf_add_tensor(w, "v.patch_embd.weight", t, 4, ne, data, (size_t)v->patch.rows * row_bytes);
}

int vc_convert_add_vit(vc_gguf_writer *w, const vc_vit *v, int layers, vc_dtype type, bool post_norm)
{
    const vc_vit_config *c = &v->cfg;
    int h = c->hidden, n_pos = vc_vit_tokens(v);
    int64_t pos_ne[2] = { h, n_pos };
    int rc = add_patch(w, v, type);
    if (v->patch_b)
        rc |= add_vec(w, "v.patch_embd.bias", v->patch_b, h);
    if (v->class_emb)
        rc |= add_vec(w, "v.class_embd", v->class_emb, h);
    rc |= vc_convert_add_f32(w, "v.position_embd.weight", v->pos_emb, 2, pos_ne);
    if (c->pre_norm) {
        rc |= add_vec(w, "v.pre_ln.weight", v->pre_w, h);
        rc |= add_vec(w, "v.pre_ln.bias", v->pre_b, h);
    }
    char name[96];
    for (int l = 0; rc == 0 && l < layers; l++) {
        const vc_vit_layer *L = &v->layers[l];
        struct { const char *leaf; const vc_matrix *m; const float *b; int64_t nb; } parts[] = {
            { "attn_q", &L->q, L->q_b, h },     { "attn_k", &L->k, L->k_b, h },  { "attn_v", &L->v, L->v_b, h },
            { "attn_out", &L->o, L->o_b, h },   { "ffn_up", &L->fc1, L->fc1_b, c->ffn },
            { "ffn_down", &L->fc2, L->fc2_b, h },
        };
        for (size_t i = 0; i < VC_ARRAY_LEN(parts); i++) {
            snprintf(name, sizeof name, "v.blk.%d.%s.weight", l, parts[i].leaf);
            rc |= vc_convert_add_matrix(w, name, parts[i].m, type);
            snprintf(name, sizeof name, "v.blk.%d.%s.bias", l, parts[i].leaf);
            rc |= add_vec(w, name, parts[i].b, parts[i].nb);
        }
        const float *norms[4] = { L->ln1_w, L->ln1_b, L->ln2_w, L->ln2_b };
        const char *norm_names[4] = { "ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias" };
        for (int i = 0; i < 4; i++) {
            snprintf(name, sizeof name, "v.blk.%d.%s", l, norm_names[i]);
            rc |= add_vec(w, name, norms[i], h);
        }
    }
    if (post_norm) {
        rc |= add_vec(w, "v.post_ln.weight", v->post_w, h);
        rc |= add_vec(w, "v.post_ln.bias", v->post_b, h);
    }
    return rc ? -1 : 0;
}

static int write_common(vc_gguf_writer *w, const vc_model *m, const vc_vit *v, int layers, const char *projector,
                        const float mean[3], const float std[3])
{
    const vc_vit_config *c = &v->cfg;
    char name[256];
    int rc = vc_gguf_set_str(w, "general.architecture", "clip");
    rc |= vc_gguf_set_str(w, "general.type", "mmproj");
    rc |= vc_gguf_set_str(w, "general.name", vc_convert_model_name(m->path, name, sizeof name));
    rc |= vc_gguf_set_str(w, "clip.projector_type", projector);
    rc |= vc_gguf_set_bool(w, "clip.has_vision_encoder", true);
    rc |= vc_gguf_set_u32(w, "clip.vision.image_size", (uint32_t)c->image_size);
    rc |= vc_gguf_set_u32(w, "clip.vision.patch_size", (uint32_t)c->patch_size);
    rc |= vc_gguf_set_u32(w, "clip.vision.embedding_length", (uint32_t)c->hidden);
    rc |= vc_gguf_set_u32(w, "clip.vision.feed_forward_length", (uint32_t)c->ffn);
    rc |= vc_gguf_set_u32(w, "clip.vision.block_count", (uint32_t)layers);
    rc |= vc_gguf_set_u32(w, "clip.vision.attention.head_count", (uint32_t)c->heads);
    rc |= vc_gguf_set_u32(w, "clip.vision.projection_dim", (uint32_t)m->llm.cfg.dim);
    rc |= vc_gguf_set_f32(w, "clip.vision.attention.layer_norm_epsilon", c->norm_eps);
    rc |= vc_gguf_set_arr_f32(w, "clip.vision.image_mean", mean, 3);
    rc |= vc_gguf_set_arr_f32(w, "clip.vision.image_std", std, 3);
    return rc ? -1 : 0;
}

static bool unit_rescale(double r) { return fabs(r - 1.0 / 255) < 1e-9; }

static int write_llava_next(vc_gguf_writer *w, const vc_model *m, const vc_llava_next *ln, vc_dtype type)
{
    const vc_vit_config *c = &ln->vit.cfg;
    if (ln->n_feature_layers != 1)
        return vc_fail_code(VC_EXIT_MODEL, "%s: an mmproj file carries one vision feature layer, not %d", m->path,
                            ln->n_feature_layers);
    int fl = ln->feature_layers[0];
    int layers = fl < 0 ? c->layers + 1 + fl : fl;
    if (!ln->drop_cls || ln->proj_act != VC_ACT_GELU || (c->act != VC_ACT_QUICK_GELU && c->act != VC_ACT_GELU))
        return vc_fail_code(VC_EXIT_MODEL, "%s: an mmproj file cannot carry this LLaVA-NeXT's feature strategy or "
                            "activations", m->path);
    if (ln->size_h > 0 || ln->shortest_edge != c->image_size || ln->resample != VC_RESAMPLE_BICUBIC || !unit_rescale(ln->rescale))
        return vc_fail_code(VC_EXIT_MODEL, "%s: the image processor differs from the defaults an mmproj reader takes "
                            "(shortest_edge = image_size, bicubic, 1/255)", m->path);
    if (layers < 0 || layers > c->layers || !ln->proj1_b || !ln->proj2_b)
        return vc_fail_code(VC_EXIT_MODEL, "%s: LLaVA-NeXT layout not expressible as an mmproj file", m->path);
    int rc = write_common(w, m, &ln->vit, layers, "mlp", ln->mean, ln->std);
    if (c->act == VC_ACT_GELU)
        rc |= vc_gguf_set_bool(w, "clip.use_gelu", true);
    int32_t pins[2 * VC_MAX_PINPOINTS], feature = layers;
    for (int i = 0; i < ln->n_pinpoints; i++) {
        pins[2 * i] = ln->pinpoints[i][0];
        pins[2 * i + 1] = ln->pinpoints[i][1];
    }
    rc |= vc_gguf_set_arr_i32(w, "clip.vision.image_grid_pinpoints", pins, (uint64_t)(2 * ln->n_pinpoints));
    rc |= vc_gguf_set_arr_i32(w, "clip.vision.feature_layer", &feature, 1);
    rc |= vc_gguf_set_str(w, "clip.vision.mm_patch_merge_type", "spatial_unpad");
    if (rc == 0)
        rc = vc_convert_add_vit(w, &ln->vit, layers, type, false);
    int D = ln->text_dim;
    rc |= vc_convert_add_matrix(w, "mm.0.weight", &ln->proj1, type);
    rc |= add_vec(w, "mm.0.bias", ln->proj1_b, D);
    rc |= vc_convert_add_matrix(w, "mm.2.weight", &ln->proj2, type);
    rc |= add_vec(w, "mm.2.bias", ln->proj2_b, D);
    rc |= add_vec(w, "v.image_newline", ln->newline, D);
    return rc ? -1 : 0;
}

static int write_idefics3(vc_gguf_writer *w, const vc_model *m, const vc_idefics3 *id, vc_dtype type)
{
    const vc_vit_config *c = &id->vit.cfg;
    /* without splitting, an image goes to one tile; with it too when the longest edge is resized to a tile */
    bool split_equivalent = id->do_split || id->longest_edge <= id->tile;
    if (c->act != VC_ACT_GELU_TANH || !id->do_resize || !split_equivalent || id->resample != VC_RESAMPLE_LANCZOS ||
        !unit_rescale(id->rescale) || id->tile != c->image_size)
        return vc_fail_code(VC_EXIT_MODEL, "%s: the image processor or activation differs from the defaults an "
                            "mmproj reader takes (resize and split, LANCZOS, 1/255, tiles of image_size, "
                            "gelu_pytorch_tanh)", m->path);
    int rc = write_common(w, m, &id->vit, c->layers, "idefics3", id->mean, id->std);
    rc |= vc_gguf_set_bool(w, "clip.use_gelu", true);
    rc |= vc_gguf_set_u32(w, "clip.vision.projector.scale_factor", (uint32_t)id->scale);
    rc |= vc_gguf_set_u32(w, "clip.vision.preproc_image_size", (uint32_t)(id->do_split ? id->longest_edge : id->tile));
    if (rc == 0)
        rc = vc_convert_add_vit(w, &id->vit, c->layers, type, true);
    rc |= vc_convert_add_matrix(w, "mm.model.fc.weight", &id->proj, type);
    return rc ? -1 : 0;
}

int vc_convert_mmproj(const vc_model *m, const char *out_path, vc_dtype type)
{
    const vc_vision *v = m->vision;
    vc_gguf_writer *w = vc_gguf_writer_new();
    if (!w)
        return -1;
    int rc;
    if (strcmp(v->family->name, "llava_next") == 0)
        rc = write_llava_next(w, m, v->state, type);
    else if (strcmp(v->family->name, "idefics3") == 0)
        rc = write_idefics3(w, m, v->state, type);
    else
        rc = vc_fail_code(VC_EXIT_MODEL, "%s: no mmproj layout for the %s family", m->path, v->family->name);
    if (rc == 0)
        rc = vc_gguf_write(w, out_path);
    vc_gguf_writer_free(w);
    return rc;
}
