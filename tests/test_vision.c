/* test_vision.c - vision-language models against transformers.
 *
 * tests/fixtures/vision/<model> (tools/make_vision_fixtures.py) holds a tiny
 * random model with its processor, and for several images (landscape,
 * portrait after EXIF rotation, two images in one prompt) the processor's
 * pixel values and input ids, greedy generate() ids and first-step logits.
 * token_counts.json has the reference processors' image-token counts for
 * real model configurations.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "core/int8dot.h"
#include "app/convert.h"
#include "harness.h"
#include "loader/gguf.h"
#include "loader/mmproj.h"
#include "model/generate.h"
#include "model/prompt.h"
#include "vision/idefics3.h"
#include "loader/safetensors.h"
#include "vision/llava_next.h"
#include "vision/vit.h"

static unsigned char *blob;
static size_t blob_len;

/* LLaVA's pixel values are (images, max tiles, ...) padded per image;
 * Idefics3's put every image's tiles in one row: (1, all tiles, ...). */
static void check_pixels(const vc_model *m, const char *label, json_t *c)
{
    json_t *shape = json_object_get(c, "pixel_values_shape"), *files = json_object_get(c, "images");
    size_t rows = (size_t)json_integer_value(json_array_get(shape, 0));
    size_t per_row = (size_t)json_integer_value(json_array_get(shape, 1));
    size_t S = (size_t)json_integer_value(json_array_get(shape, 3)), tile = 3 * S * S;
    size_t n_img = json_array_size(files), next = 0;
    bool packed = m->vision->family->pixels_packed;
    float *want = blob_floats(blob, blob_len, json_object_get(c, "pixel_values"), rows * per_row * tile);
    CHECK(want != NULL, "%s: reference pixel values", label);
    for (size_t i = 0; want && i < n_img; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "images/%s", json_string_value(json_array_get(files, i)));
        vc_image img;
        float *px;
        int n_tiles;
        if (vc_image_load(fixture(rel), NULL, &img) != 0 || vc_vision_preprocess(m->vision, &img, &px, &n_tiles) != 0) {
            CHECK(0, "%s: %s", label, vc_error());
            continue;
        }
        size_t first = packed ? next : i * per_row;
        bool fits = first + (size_t)n_tiles <= (packed ? per_row : (i + 1) * per_row);
        CHECK(fits, "%s: %d tiles do not fit the reference's %zu", label, n_tiles, per_row);
        float worst = 0;
        for (size_t k = 0; fits && k < (size_t)n_tiles * tile; k++)
            worst = fmaxf(worst, fabsf(px[k] - want[first * tile + k]));
        next = first + (size_t)n_tiles;
        CHECK(worst <= 1e-4f, "%s image %zu: pixel values differ from the processor by %g", label, i, worst);
        free(px);
        vc_image_free(&img);
    }
    free(want);
}

/* int8: the model was opened with --int8-dot, so logits need only stay
 * within 5% of transformers' (and must move), and greedy ids may differ. */
static void check_case(vc_model *m, json_t *c, bool int8)
{
    const char *label = json_string_value(json_object_get(c, "name"));
    check_pixels(m, label, c);
    json_t *files = json_object_get(c, "images");
    int n_img = (int)json_array_size(files);
    vc_image_embd images[4] = { 0 };
    for (int i = 0; i < n_img && i < 4; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "images/%s", json_string_value(json_array_get(files, (size_t)i)));
        CHECK(vc_model_encode_image(m, fixture(rel), &images[i]) == 0, "%s: encode: %s", label, vc_error());
    }
    vc_chat_msg msg = { "user", json_string_value(json_object_get(c, "question")), n_img };
    int32_t *ids = NULL;
    size_t n = 0, nw;
    int32_t *want = json_ids(json_object_get(c, "input_ids"), &nw);
    int rc = vc_model_prompt_ids(m, &msg, 1, images, n_img, true, &ids, &n);
    CHECK(rc == 0 && n == nw && memcmp(ids, want, n * sizeof *ids) == 0, "%s: input ids differ (%zu vs %zu): %s",
          label, n, nw, rc ? vc_error() : "");
    float *embd = NULL;
    if (rc == 0 && vc_model_prompt_embd(m, ids, n, images, n_img, &embd) == 0) {
        size_t ng;
        int32_t *gen = json_ids(json_object_get(c, "generated_ids"), &ng);
        vc_llm_truncate(&m->llm, 0);
        float *logits = malloc((size_t)m->llm.cfg.n_vocab * sizeof *logits);
        CHECK(vc_llm_forward_embd(&m->llm, embd, (int)n, logits) == 0, "%s: forward", label);
        json_t *wl = json_object_get(c, "first_logits");
        float worst = 0, scale = 1;
        for (int k = 0; k < m->llm.cfg.n_vocab; k++) {
            float w = (float)json_number_value(json_array_get(wl, (size_t)k));
            worst = fmaxf(worst, fabsf(logits[k] - w));
            scale = fmaxf(scale, fabsf(w));
        }
        if (int8)
            CHECK(worst > 0 && worst <= 5e-2f * scale, "%s with int8 dot: first logits differ by %g (scale %g)", label,
                  worst, scale);
        else
            CHECK(worst <= 1e-4f * scale, "%s: first logits differ by %g (scale %g)", label, worst, scale);
        vc_llm_truncate(&m->llm, 0);
        vc_gen_options opt = { .max_tokens = (int)ng, .ignore_eos = true, .sampling = vc_sampler_defaults(),
                               .prompt_embd = embd };
        opt.sampling.temperature = 0;
        vc_gen_result r;
        CHECK(vc_generate(m, ids, n, &opt, &r) == 0, "%s: generate: %s", label, vc_error());
        CHECK(r.n_tokens == ng && (int8 || memcmp(r.tokens, gen, ng * sizeof *gen) == 0), "%s: greedy ids differ",
              label);
        vc_gen_result_free(&r);
        free(logits);
        free(gen);
        free(embd);
    }
    free(ids);
    free(want);
    for (int i = 0; i < n_img && i < 4; i++)
        vc_image_embd_free(&images[i]);
}

/* The vlmchat program's default: the integer path on, float towers left
 * float (a float model then computes as with the path off, exactly), and
 * quantized ones requantized to Q8_0. */
static bool program_default;

/* model: the path under fixtures/ to open (the HF directory, or a text GGUF
 * that pairs with the mmproj beside it); name: the HF fixture whose
 * transformers reference it must reproduce. */
static void test_path_mmproj(const char *path, const char *mmproj, const char *name, vc_chat_format format,
                             bool int8)
{
    vc_model m;
    char rel[256];
    vc_int8dot_enable(int8 || program_default);   /* at load: the weights are interleaved, */
    vc_int8dot_requantize_float(int8 && !program_default);   /* the float tower's requantized (--int8-dot) */
    int rc = vc_model_open(path, &(vc_model_options){ .n_ctx = 512, .mmproj = mmproj }, &m);
    CHECK(rc == 0, "%s: %s", name, vc_error());
    if (rc != 0)
        return;
    CHECK(m.vision != NULL && m.chat.format == format, "%s is multimodal with its chat format", name);
    snprintf(rel, sizeof rel, "vision/%s/reference.json", name);
    json_t *ref = json_load_file(fixture(rel), 0, NULL), *c;
    snprintf(rel, sizeof rel, "vision/%s/reference.bin", name);
    blob = (unsigned char *)vc_read_file(fixture(rel), &blob_len);
    size_t i;
    json_array_foreach(json_object_get(ref, "cases"), i, c)
        check_case(&m, c, int8);
    /* the count the processor puts in the prompt is the count the encoder produces */
    for (int w = 20; w <= 300; w += 37)
        for (int h = 15; h <= 300; h += 41) {
            vc_image img;
            if (vc_image_alloc(&img, w, h) != 0)
                continue;
            vc_image_embd e;
            if (vc_vision_encode(m.vision, &img, &e) == 0) {
                CHECK(e.n_tokens == vc_vision_count(m.vision, w, h), "%dx%d: %d tokens, count says %d", w, h,
                      e.n_tokens, vc_vision_count(m.vision, w, h));
                vc_image_embd_free(&e);
            }
            vc_image_free(&img);
        }
    free(blob);
    json_decref(ref);
    vc_model_close(&m);
    vc_int8dot_enable(false);
    vc_int8dot_requantize_float(false);
}

static void test_path(const char *path, const char *name, vc_chat_format format, bool int8)
{
    test_path_mmproj(path, NULL, name, format, int8);
}

static void test_path_opt(const char *path, const char *mmproj, const char *name, vc_chat_format format)
{
    test_path_mmproj(path, mmproj, name, format, false);
}

static void test_model(const char *model, const char *name, vc_chat_format format, bool int8)
{
    test_path(fixture(model), name, format, int8);
}

/* vlmchat convert: the HF fixture to a text GGUF + mmproj pair (as llama.cpp
 * users have them), opened through automatic pairing, against the same
 * transformers references. */
static void test_converted(const char *name, vc_chat_format format)
{
    char dir[] = "/tmp/vlmchat-mmproj-XXXXXX", out[512], mp[512], model_dir[512];
    if (!mkdtemp(dir))
        return;
    snprintf(model_dir, sizeof model_dir, "%.300s/%.100s", fixture("vision"), name);
    snprintf(out, sizeof out, "%s/%s-f32.gguf", dir, name);
    snprintf(mp, sizeof mp, "%s/mmproj-%s-f32.gguf", dir, name);
    int rc = vc_convert_to_gguf(model_dir, out, VC_F32);
    CHECK(rc == 0, "convert %s: %s", name, vc_error());
    CHECK(rc != 0 || vc_mmproj_sniff(mp), "convert %s wrote the mmproj file %s", name, mp);
    if (rc == 0)
        test_path(out, name, format, false);
    unlink(out);
    unlink(mp);
    rmdir(dir);
}

/* Copies metadata key i of g into w, renamed (NULL: same key). */
static int copy_kv(vc_gguf_writer *w, const vc_gguf_kv *kv, const char *key)
{
    key = key ? key : kv->key;
    char buf[256];
    switch (kv->type) {
    case VC_GGUF_STRING:
        snprintf(buf, sizeof buf, "%.*s", (int)kv->v.s.len, kv->v.s.ptr);
        return vc_gguf_set_str(w, key, buf);
    case VC_GGUF_U32: return vc_gguf_set_u32(w, key, (uint32_t)kv->v.u);
    case VC_GGUF_F32: return vc_gguf_set_f32(w, key, (float)kv->v.f);
    case VC_GGUF_BOOL: return vc_gguf_set_bool(w, key, kv->v.u != 0);
    case VC_GGUF_ARRAY: {
        int32_t iv[64];
        float fv[64];
        for (uint64_t i = 0; i < kv->arr_n && i < 64; i++) {
            iv[i] = (int32_t)vc_gguf_arr_int(kv, i);
            fv[i] = (float)vc_gguf_arr_float(kv, i);
        }
        return kv->arr_type == VC_GGUF_F32 ? vc_gguf_set_arr_f32(w, key, fv, kv->arr_n)
                                           : vc_gguf_set_arr_i32(w, key, iv, kv->arr_n);
    }
    default: return -1;
    }
}

/* Rewrites a vlmchat-written LLaVA mmproj the way llama.cpp's legacy
 * convert_image_encoder_to_gguf.py lays out the same model (read from its
 * source): clip.has_llava_projector, no feature_layer key (the last layer
 * dropped instead, which the vlmchat file already did), fc1 named ffn_down
 * and fc2 ffn_up, model.image_newline, and the patch embedding and projector
 * matrices in F16 (the script forces them), everything else F32 (--use-f32). */
static int write_legacy_llava(const char *from, const char *to)
{
    vc_gguf g;
    if (vc_gguf_open(from, &g) != 0)
        return -1;
    vc_gguf_writer *w = vc_gguf_writer_new();
    int rc = w ? 0 : -1;
    for (uint64_t i = 0; rc == 0 && i < g.n_kv; i++)
        if (strcmp(g.kv[i].key, "clip.vision.feature_layer") != 0 && strcmp(g.kv[i].key, "general.type") != 0)
            rc = copy_kv(w, &g.kv[i], NULL);
    if (rc == 0)
        rc = vc_gguf_set_bool(w, "clip.has_llava_projector", true) | vc_gguf_set_bool(w, "clip.has_text_encoder", false);
    for (size_t i = 0; rc == 0 && i < g.tensors.count; i++) {
        const vc_tensor *t = &g.tensors.items[i];
        char name[128];
        snprintf(name, sizeof name, "%s", t->name);
        char *up = strstr(name, "ffn_up"), *down = strstr(name, "ffn_down");
        if (up)
            snprintf(name, sizeof name, "%.*sffn_down%s", (int)(up - name), t->name, t->name + (up - name) + 6);
        else if (down)
            snprintf(name, sizeof name, "%.*sffn_up%s", (int)(down - name), t->name, t->name + (down - name) + 8);
        else if (strcmp(name, "v.image_newline") == 0)
            snprintf(name, sizeof name, "model.image_newline");
        bool f16 = strcmp(t->name, "v.patch_embd.weight") == 0 || strcmp(t->name, "mm.0.weight") == 0 ||
                   strcmp(t->name, "mm.2.weight") == 0;
        int64_t rows = t->n_dims == 4 ? t->ne[3] : t->n_dims == 2 ? t->ne[1] : 1;
        int64_t cols = vc_tensor_nelements(t) / rows;
        vc_matrix m = { VC_F32, cols, rows, (size_t)cols * sizeof(float), t->data };
        size_t row_bytes;
        uint8_t *data = vc_matrix_requantize(&m, f16 ? VC_F16 : VC_F32, NULL, 0, &row_bytes);
        rc = data ? vc_gguf_add_tensor(w, name, f16 ? VC_F16 : VC_F32, t->n_dims, t->ne, data,
                                       (size_t)rows * row_bytes) : -1;
    }
    if (rc == 0)
        rc = vc_gguf_write(w, to);
    vc_gguf_writer_free(w);
    vc_gguf_close(&g);
    return rc;
}

/* The legacy LLaVA-1.6 layout: the text GGUF vlmchat writes with the legacy
 * mmproj beside it, against transformers run on the weights as that file
 * stores them (llava_next_f16proj: reference of tools/convert_mmproj_fixtures.py,
 * the LLaVA-NeXT fixture with its patch embedding and projector rounded to F16). */
static void test_legacy_llava(void)
{
    char dir[] = "/tmp/vlmchat-legacy-XXXXXX", out[512], mp[512], legacy[512], model_dir[512];
    if (!mkdtemp(dir))
        return;
    snprintf(model_dir, sizeof model_dir, "%.300s/llava_next", fixture("vision"));
    snprintf(out, sizeof out, "%s/llava-f32.gguf", dir);
    snprintf(mp, sizeof mp, "%s/mmproj-llava-f32.gguf", dir);
    snprintf(legacy, sizeof legacy, "%s/legacy-mmproj-model-f32.gguf", dir);
    int rc = vc_convert_to_gguf(model_dir, out, VC_F32);
    CHECK(rc == 0, "convert llava_next: %s", vc_error());
    rc = rc ? rc : write_legacy_llava(mp, legacy);
    CHECK(rc == 0, "legacy layout: %s", vc_error());
    unlink(mp);
    if (rc == 0)
        test_path_opt(out, legacy, "llava_next_f16proj", VC_CHAT_LLAVA_MISTRAL);
    unlink(out);
    unlink(legacy);
    rmdir(dir);
}

/* LLaVA-1.6 through llama.cpp's own legacy converters (llava_surgery_v2.py,
 * convert_image_encoder_to_gguf.py --clip-model-is-vision, run by
 * tools/convert_mmproj_fixtures.py on the llava_next fixture): the files in
 * vision/llava_next_mmproj beside the text GGUF vlmchat writes (llama.cpp's
 * text converter splits the tiny tokenizer's words differently from HF).
 * The script stores the patch embedding and the projector matrices in F16
 * always, and with its default (no --use-f32) every 2-D tower matrix too, so
 * each file is held to transformers run on the weights rounded as it stores
 * them: llava_next_f16proj for the --use-f32 files (one with the
 * clip.vision.feature_layer the config's vision_feature_layer -2 gives, one
 * without: the last layer dropped), llava_next_f16tower for the default. */
static void test_llamacpp_llava(void)
{
    static const char *const files[][2] = {
        { "mmproj-model-f32.gguf", "llava_next_f16proj" },
        { "mmproj-model-f32-feature-layer.gguf", "llava_next_f16proj" },
        { "mmproj-model-f16.gguf", "llava_next_f16tower" },
    };
    char dir[] = "/tmp/vlmchat-llamacpp-llava-XXXXXX", out[512], mp[4096], model_dir[512], rel[256];
    if (!mkdtemp(dir))
        return;
    snprintf(model_dir, sizeof model_dir, "%.300s/llava_next", fixture("vision"));
    snprintf(out, sizeof out, "%s/llava-f32.gguf", dir);
    snprintf(mp, sizeof mp, "%s/mmproj-llava-f32.gguf", dir);
    int rc = vc_convert_to_gguf(model_dir, out, VC_F32);
    CHECK(rc == 0, "convert llava_next: %s", vc_error());
    unlink(mp);   /* vlmchat's own mmproj: not the one under test */
    for (size_t i = 0; rc == 0 && i < sizeof files / sizeof files[0]; i++) {
        snprintf(rel, sizeof rel, "vision/llava_next_mmproj/%s", files[i][0]);
        snprintf(mp, sizeof mp, "%s", fixture(rel));   /* fixture() returns one static buffer */
        CHECK(vc_mmproj_sniff(mp), "%s sniffs as an mmproj", files[i][0]);
        test_path_opt(out, mp, files[i][1], VC_CHAT_LLAVA_MISTRAL);
    }
    unlink(out);
    rmdir(dir);
}

/* First logits of reference case c (n_vocab floats, malloc'd), or NULL. */
static float *case_logits(vc_model *m, json_t *c)
{
    json_t *files = json_object_get(c, "images");
    int n_img = (int)json_array_size(files), ok = 0;
    vc_image_embd images[4] = { 0 };
    for (int i = 0; i < n_img && i < 4; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "images/%s", json_string_value(json_array_get(files, (size_t)i)));
        ok += vc_model_encode_image(m, fixture(rel), &images[i]) == 0;
    }
    vc_chat_msg msg = { "user", json_string_value(json_object_get(c, "question")), n_img };
    int32_t *ids = NULL;
    size_t n = 0;
    float *embd = NULL, *logits = malloc((size_t)m->llm.cfg.n_vocab * sizeof *logits);
    vc_llm_truncate(&m->llm, 0);
    bool done = logits && ok == n_img && vc_model_prompt_ids(m, &msg, 1, images, n_img, true, &ids, &n) == 0 &&
                vc_model_prompt_embd(m, ids, n, images, n_img, &embd) == 0 &&
                vc_llm_forward_embd(&m->llm, embd, (int)n, logits) == 0;
    vc_llm_truncate(&m->llm, 0);
    for (int i = 0; i < n_img && i < 4; i++)
        vc_image_embd_free(&images[i]);
    free(ids);
    free(embd);
    if (!done) {
        free(logits);
        return NULL;
    }
    return logits;
}

static float max_diff(const float *a, const float *b, int n, float *scale)
{
    float worst = 0;
    *scale = 1;
    for (int k = 0; k < n; k++) {
        worst = fmaxf(worst, fabsf(a[k] - b[k]));
        *scale = fmaxf(*scale, fabsf(a[k]));
    }
    return worst;
}

/* Matrices of type `type` in a set, and float matrices whose rows are whole
 * blocks of it (what --quant re-encodes). */
static void count_types(const vc_tensor_set *w, vc_dtype type, int *quantized, int *float_left)
{
    *quantized = *float_left = 0;
    for (size_t i = 0; i < w->count; i++) {
        const vc_tensor *t = &w->items[i];
        bool is_float = t->type == VC_F32 || t->type == VC_F16 || t->type == VC_BF16;
        *quantized += t->type == (int)type;
        *float_left += is_float && t->n_dims == 2 && t->ne[0] % vc_dtype_block_elems(type) == 0;
    }
}

/* --quant on a GGUF pair: the text GGUF's and the mmproj file's float
 * matrices are re-encoded as the HF directory's (vision tower included) are,
 * so the pair vlmchat convert writes (F32) and the HF directory, both opened
 * with Q8_0, give the same first logits; unquantized, the pair is as far from
 * them as Q8_0 rounding moves logits. */
static void test_quant_pair(const char *name)
{
    char dir[] = "/tmp/vlmchat-quant-XXXXXX", out[512], mp[512], model_dir[512], rel[256];
    if (!mkdtemp(dir))
        return;
    snprintf(model_dir, sizeof model_dir, "%.300s/%.100s", fixture("vision"), name);
    snprintf(out, sizeof out, "%s/%s-f32.gguf", dir, name);
    snprintf(mp, sizeof mp, "%s/mmproj-%s-f32.gguf", dir, name);
    snprintf(rel, sizeof rel, "vision/%s/reference.json", name);
    json_t *ref = json_load_file(fixture(rel), 0, NULL), *c = json_array_get(json_object_get(ref, "cases"), 0);
    CHECK(c != NULL, "%s: a reference case", name);
    int rc = c ? vc_convert_to_gguf(model_dir, out, VC_F32) : -1;
    CHECK(rc == 0, "convert %s: %s", name, vc_error());
    vc_model hf, pair, plain;
    if (rc == 0 && vc_model_open(model_dir, &(vc_model_options){ .n_ctx = 512, .quant = VC_Q8_0 }, &hf) == 0) {
        /* the decoder's Q8_0 rows made at load were copied for the integer
         * kernels and freed; the embedding table (the head when tied) and
         * the vision tower's keep theirs */
        int released = 0, other = 0;
        for (size_t i = 0; i < hf.llm.weights.count; i++) {
            const vc_tensor *t = &hf.llm.weights.items[i];
            released += !t->data;
            other += !t->data && !strstr(t->name, "model.layers.") && !strstr(t->name, "lm_head");
        }
        CHECK(!vc_int8dot_enabled() || (released > 0 && other == 0),
              "%s --quant q8_0: %d decoder tensors freed after their copy, %d others", name, released, other);
        CHECK(hf.llm.embed.data && vc_tensors_owned_holding(&hf.llm.weights, hf.llm.embed.data),
              "%s --quant q8_0: the embedding rows are kept", name);
        if (vc_model_open(out, &(vc_model_options){ .n_ctx = 512, .quant = VC_Q8_0 }, &pair) == 0) {
            int q, left;
            CHECK(pair.vision && pair.vision->owned_weights, "%s: the pair has its mmproj", name);
            count_types(pair.vision->owned_weights, VC_Q8_0, &q, &left);
            CHECK(q > 0 && left == 0, "%s --quant q8_0: mmproj matrices %d Q8_0, %d float left", name, q, left);
            count_types(&pair.llm.weights, VC_Q8_0, &q, &left);
            CHECK(q > 0 && left == 0, "%s --quant q8_0: text GGUF matrices %d Q8_0, %d float left", name, q, left);
            float *a = case_logits(&hf, c), *b = case_logits(&pair, c), scale;
            CHECK(a && b, "%s: logits: %s", name, vc_error());
            float d = a && b ? max_diff(a, b, hf.llm.cfg.n_vocab, &scale) : 1e9f;
            CHECK(d <= 1e-5f * scale, "%s --quant q8_0: pair and HF directory differ by %g (scale %g)", name, d, scale);
            if (vc_model_open(out, &(vc_model_options){ .n_ctx = 512 }, &plain) == 0) {
                /* the quantized decoder on the integer kernels keeps its cache in halves, as llama.cpp;
                 * the float one in floats (the exact path) */
                CHECK(!vc_int8dot_enabled() || (hf.llm.kv_half && !plain.llm.kv_half &&
                                                2 * vc_llm_kv_bytes(&hf.llm) == vc_llm_kv_bytes(&plain.llm)),
                      "%s: KV cache %zu bytes quantized, %zu float", name, vc_llm_kv_bytes(&hf.llm),
                      vc_llm_kv_bytes(&plain.llm));
                float *p = case_logits(&plain, c);
                d = a && p ? max_diff(a, p, hf.llm.cfg.n_vocab, &scale) : 0;
                CHECK(d > 1e-3f * scale, "%s: Q8_0 moves the logits (by %g only)", name, d);
                free(p);
                vc_model_close(&plain);
            }
            free(a);
            free(b);
            vc_model_close(&pair);
        } else {
            CHECK(0, "%s pair --quant q8_0: %s", name, vc_error());
        }
        vc_model_close(&hf);
    } else if (rc == 0) {
        CHECK(0, "%s --quant q8_0: %s", name, vc_error());
    }
    json_decref(ref);
    unlink(out);
    unlink(mp);
    rmdir(dir);
}

/* The memory budget counts the mmproj file's weights: the smallest budget the
 * text GGUF opens in alone, plus exactly the mmproj's weight bytes, is the
 * smallest the pair opens in. */
static void test_budget_counts_mmproj(void)
{
    char dir[] = "/tmp/vlmchat-budget-XXXXXX", out[512], mp[512], moved[512], model_dir[512];
    if (!mkdtemp(dir))
        return;
    snprintf(model_dir, sizeof model_dir, "%.300s/llava_next", fixture("vision"));
    snprintf(out, sizeof out, "%s/llava-f32.gguf", dir);
    snprintf(mp, sizeof mp, "%s/mmproj-llava-f32.gguf", dir);
    snprintf(moved, sizeof moved, "%s/vision-half.gguf", dir);   /* not paired automatically */
    int rc = vc_convert_to_gguf(model_dir, out, VC_F32);
    CHECK(rc == 0 && rename(mp, moved) == 0, "convert llava_next: %s", vc_error());
    vc_model m;
    size_t proj = 0;
    if (rc == 0 && vc_model_open(out, &(vc_model_options){ .n_ctx = 512, .mmproj = moved }, &m) == 0) {
        proj = vc_tensors_bytes(m.vision->owned_weights);
        CHECK(proj > 0 && vc_model_weight_bytes(&m) == vc_tensors_bytes(&m.llm.weights) + proj,
              "weight bytes count the mmproj's %zu", proj);
        vc_model_close(&m);
    }
    CHECK(proj > 0, "pair opens: %s", vc_error());
    /* the smallest budget the text model alone opens in (64 positions of KV cache at least) */
    size_t lo = 1, hi = (size_t)1 << 30;
    while (proj && lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (vc_model_open(out, &(vc_model_options){ .n_ctx = 512, .mem_limit = mid }, &m) == 0) {
            vc_model_close(&m);
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    if (proj) {
        CHECK(vc_model_open(out, &(vc_model_options){ .n_ctx = 512, .mem_limit = lo - 1 }, &m) != 0 &&
              vc_error_code() == VC_EXIT_NOMEM, "text alone fails below %zu bytes, for memory", lo);
        rc = vc_model_open(out, &(vc_model_options){ .n_ctx = 512, .mem_limit = lo + proj - 1, .mmproj = moved }, &m);
        CHECK(rc != 0 && vc_error_code() == VC_EXIT_NOMEM, "pair fails with %zu - 1 bytes (text %zu + mmproj %zu)",
              lo + proj, lo, proj);
        if (rc == 0)
            vc_model_close(&m);
        rc = vc_model_open(out, &(vc_model_options){ .n_ctx = 512, .mem_limit = lo + proj, .mmproj = moved }, &m);
        CHECK(rc == 0, "pair opens with %zu bytes (text %zu + mmproj %zu): %s", lo + proj, lo, proj, vc_error());
        if (rc == 0)
            vc_model_close(&m);
    }
    unlink(out);
    unlink(moved);
    rmdir(dir);
}

static void test_family(const char *name, vc_chat_format format, bool int8)
{
    char rel[256];
    snprintf(rel, sizeof rel, "vision/%s", name);
    test_model(rel, name, format, int8);
}

/* Real LLaVA-1.6-Mistral-7B geometry: 336px CLIP-L/14 tower and its pinpoints. */
static void test_token_counts(void)
{
    json_t *counts = json_load_file(fixture("vision/token_counts.json"), 0, NULL);
    vc_llava_next ln;
    memset(&ln, 0, sizeof ln);
    ln.vit.cfg.image_size = 336;
    ln.vit.cfg.patch_size = 14;
    ln.drop_cls = true;
    const int pins[5][2] = { { 336, 672 }, { 672, 336 }, { 672, 672 }, { 1008, 336 }, { 336, 1008 } };
    memcpy(ln.pinpoints, pins, sizeof pins);
    ln.n_pinpoints = 5;
    const char *size;
    json_t *v;
    int checked = 0;
    json_object_foreach(json_object_get(counts, "llava_next_mistral_7b"), size, v)
    {
        int w, h;
        if (sscanf(size, "%dx%d", &w, &h) != 2)
            continue;
        int got = vc_llava_next_count(&ln, w, h);
        CHECK(got == json_integer_value(v), "llava-next %s: %d tokens, processor says %lld", size, got,
              (long long)json_integer_value(v));
        checked++;
    }
    CHECK(checked >= 5, "token counts checked: %d", checked);
    /* SmolVLM checkpoints: (longest edge, tile, image_seq_len) from _geometry */
    const char *model_names[] = { "smolvlm_instruct", "smolvlm_256m" };
    for (size_t k = 0; k < 2; k++) {
        json_t *table = json_object_get(counts, model_names[k]), *geo = json_object_get(table, "_geometry");
        vc_idefics3 id;
        memset(&id, 0, sizeof id);
        id.longest_edge = (int)json_integer_value(json_array_get(geo, 0));
        id.tile = (int)json_integer_value(json_array_get(geo, 1));
        id.image_seq_len = (int)json_integer_value(json_array_get(geo, 2));
        id.do_resize = id.do_split = true;
        checked = 0;
        json_object_foreach(table, size, v)
        {
            int w, h, rows, cols;
            if (sscanf(size, "%dx%d", &w, &h) != 2)
                continue;
            vc_idefics3_grid(&id, w, h, &rows, &cols);
            int got = (rows * cols + 1) * id.image_seq_len;
            CHECK(got == json_integer_value(v), "%s %s: %d tokens, processor says %lld", model_names[k], size, got,
                  (long long)json_integer_value(v));
            checked++;
        }
        CHECK(checked >= 5, "%s token counts checked: %d", model_names[k], checked);
    }
    json_decref(counts);
}


/* Images encoded together (vc_vit_encode_batch: their tokens share each
 * matrix product, in groups of a few thousand tokens) give each image the
 * very floats it gets alone: 241 images of the LLaVA fixture's 17-token
 * tower span two groups. Also at the last layer with the post-LayerNorm. */
static void test_vit_batch(void)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", fixture("vision/llava_next"));
    char path[1100];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t jerr;
    json_t *cfg = json_load_file(path, 0, &jerr);
    vc_tensor_set w = { 0 };
    vc_vit v = { 0 };
    vc_vit_config c;
    int ok = cfg && vc_vit_read_clip_config(json_object_get(cfg, "vision_config"), &c) == 0 &&
             vc_safetensors_load_dir(dir, &w) == 0 && vc_vit_bind(&v, &w, "vision_tower.", &c) == 0;
    CHECK(ok, "vit batch: bind the llava_next fixture's tower: %s", vc_error());
    enum { N = 241 };
    int T = ok ? vc_vit_tokens(&v) : 0, h = c.hidden;
    size_t per = 3 * (size_t)c.image_size * c.image_size, rows = (size_t)T * h;
    float *pixels = ok ? malloc(N * per * sizeof(float)) : NULL;
    float *batch = ok ? malloc(N * rows * sizeof(float)) : NULL, *one = ok ? malloc(rows * sizeof(float)) : NULL;
    CHECK(!ok || (pixels && batch && one), "vit batch: memory");
    if (pixels && batch && one) {
        CHECK(N * T > 4096, "vit batch: %d images of %d tokens span more than one group", N, T);
        uint64_t s = 0x9e3779b97f4a7c15u;
        for (size_t i = 0; i < N * per; i++) {
            s = s * 6364136223846793005u + 1442695040888963407u;
            pixels[i] = (float)((s >> 40) & 0xffff) / 32768.0f - 1.0f;
        }
        for (int post = 0; post < 2; post++) {
            int layer = post ? -1 : -2;
            CHECK(vc_vit_encode_batch(&v, pixels, N, layer, post, batch) == 0, "vit batch: encode: %s", vc_error());
            int same = 0;
            for (int i = 0; i < N; i++) {
                if (vc_vit_encode(&v, pixels + (size_t)i * per, layer, post, one) != 0)
                    break;
                same += memcmp(one, batch + (size_t)i * rows, rows * sizeof(float)) == 0;
            }
            CHECK(same == N, "vit batch (layer %d): %d of %d images equal alone and together", layer, same, N);
        }
        /* a different image in the batch changes only its own rows */
        memcpy(one, batch + 7 * rows, rows * sizeof(float));
        for (size_t i = 0; i < per; i++)
            pixels[3 * per + i] = -pixels[3 * per + i];
        CHECK(vc_vit_encode_batch(&v, pixels, 8, -1, true, batch) == 0 &&
                  memcmp(one, batch + 7 * rows, rows * sizeof(float)) == 0,
              "vit batch: another image changed a neighbour's rows");
    }
    free(pixels);
    free(batch);
    free(one);
    vc_vit_free(&v);
    vc_tensors_free(&w);
    json_decref(cfg);
}

/* Pairing a text GGUF with the mmproj beside it (vc_mmproj_find_beside):
 * one candidate is taken whatever its name; of several, the one named for
 * the text file (mmproj-NAME.gguf beside NAME.gguf); several with none, or
 * more than one, naming it are an error. */
static void test_pairing(void)
{
    char dir[] = "/tmp/vlmchat-pair-XXXXXX", text[256], p[4][256];
    if (!mkdtemp(dir))
        return;
    const char *names[4] = { "mmproj-a.gguf", "mmproj-b.gguf", "mmproj-m-q4.gguf", "m-q4.mmproj.gguf" };
    for (int i = 0; i < 4; i++)
        snprintf(p[i], sizeof p[i], "%s/%s", dir, names[i]);
    snprintf(text, sizeof text, "%s/m-q4.gguf", dir);
    const char *src = fixture("vision/smolvlm_gguf/mmproj-smolvlm-f32.gguf");
    bool amb = true;
    char *got;
    CHECK(copy_file(src, p[0]) == 0, "copy %s", src);
    got = vc_mmproj_find_beside(text, &amb);
    CHECK(got && strcmp(got, p[0]) == 0 && !amb, "one candidate, another name: taken (%s)", got ? got : "none");
    free(got);
    CHECK(copy_file(src, p[1]) == 0, "copy %s", src);
    got = vc_mmproj_find_beside(text, &amb);
    CHECK(!got && amb && strstr(vc_error(), "several mmproj"), "two, neither named for the text file: an error");
    free(got);
    CHECK(copy_file(src, p[2]) == 0, "copy %s", src);
    got = vc_mmproj_find_beside(text, &amb);
    CHECK(got && strcmp(got, p[2]) == 0 && !amb, "three, one named for the text file: that one (%s)", got ? got : "none");
    free(got);
    CHECK(copy_file(src, p[3]) == 0, "copy %s", src);
    got = vc_mmproj_find_beside(text, &amb);
    CHECK(!got && amb, "two named for the text file: an error");
    free(got);
    for (int i = 0; i < 4; i++)
        unlink(p[i]);
    rmdir(dir);
}

int main(void)
{
    test_pairing();
    test_vit_batch();
    test_family("llava_next", VC_CHAT_LLAVA_MISTRAL, false);
    test_family("idefics3", VC_CHAT_IDEFICS3, false);
    test_family("smolvlm", VC_CHAT_IDEFICS3, false);
    test_family("smolvlm_mlx4", VC_CHAT_IDEFICS3, false);
    /* the program's default (8-bit activations on quantized weights) leaves a float model exact */
    program_default = true;
    test_family("smolvlm", VC_CHAT_IDEFICS3, false);
    test_family("smolvlm_mlx4", VC_CHAT_IDEFICS3, true);   /* MLX 4-bit: the quantized tower integer too */
    program_default = false;
    /* --int8-dot: integer products in the vision tower and the decoder, close to transformers */
    test_family("smolvlm", VC_CHAT_IDEFICS3, true);
    test_family("llava_next", VC_CHAT_LLAVA_MISTRAL, true);
    test_family("smolvlm_mlx4", VC_CHAT_IDEFICS3, true);   /* MLX 4-bit vision layers requantized to Q8_0 */   /* MLX 4-bit layout: reference is the dequantized model */
    /* llama.cpp's files: text GGUF + mmproj GGUF made by convert_hf_to_gguf.py (--mmproj) from the HF
     * fixtures (tools/convert_mmproj_fixtures.py), paired automatically; same transformers references */
    test_model("vision/smolvlm_gguf/smolvlm-f32.gguf", "smolvlm", VC_CHAT_IDEFICS3, false);
    test_model("vision/idefics3_gguf/idefics3-f32.gguf", "idefics3", VC_CHAT_IDEFICS3, false);
    test_converted("smolvlm", VC_CHAT_IDEFICS3);
    test_converted("idefics3", VC_CHAT_IDEFICS3);
    test_converted("llava_next", VC_CHAT_LLAVA_MISTRAL);
    test_legacy_llava();
    test_llamacpp_llava();
    test_quant_pair("llava_next");
    test_quant_pair("smolvlm");
    test_budget_counts_mmproj();
    test_token_counts();
    return harness_finish("test_vision");
}
