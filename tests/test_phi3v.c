/* test_phi3v.c - Phi-3-V (model_type phi3_v) against the published code.
 *
 * tests/fixtures/vision/phi3v* (tools/make_phi3v_fixtures.py, which runs the
 * published modeling/processing_phi3_v.py under transformers 5) hold tiny
 * random models: phi3v (num_crops 4, su rope with its attention factor),
 * phi3v_crops16 (num_crops 16, grouped kv heads, prompts past
 * original_max_position_embeddings: long factors), phi3v_crops1, and
 * phi3v_mlx4 (phi3v quantized in mlx-community's layout, referenced on the
 * dequantized weights). For each case (landscape, portrait, tiny images, EXIF
 * rotation, one and two images, a multi-turn conversation, text only): the
 * rendered prompt, input ids (the processor's -k image positions are vlmchat's
 * image_token_id), image token counts, pixel values of every real crop (every
 * stride-th value within 1e-4, each row's sum within 1e-2), first logits within
 * 1e-4 of their scale and greedy ids. phi3v_token_counts.json has the
 * processor's counts for real image sizes at num_crops 4 and 16.
 */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/convert.h"
#include "core/common.h"
#include "harness.h"
#include "model/generate.h"
#include "model/prompt.h"
#include "vision/phi3v.h"

#define MAX_IMAGES 4
#define MAX_MSGS 8

static unsigned char *blob;
static size_t blob_len;

static void check_pixels(const vc_model *m, const char *label, json_t *c, int stride)
{
    json_t *files = json_object_get(c, "images"), *crops = json_object_get(c, "crops");
    size_t tile = 3 * (size_t)VC_PHI3V_CROP * VC_PHI3V_CROP;
    for (size_t i = 0; i < json_array_size(files); i++) {
        json_t *cr = json_array_get(crops, i);
        int want_n = (int)json_integer_value(json_object_get(cr, "n_crops"));
        size_t ns = (size_t)json_integer_value(json_object_get(cr, "n_samples"));
        CHECK(ns == (tile + (size_t)stride - 1) / (size_t)stride, "%s: %zu samples per crop", label, ns);
        float *samples = blob_floats(blob, blob_len, json_object_get(cr, "samples"), (size_t)want_n * ns);
        float *rows = blob_floats(blob, blob_len, json_object_get(cr, "row_sums"), (size_t)want_n * 3 * VC_PHI3V_CROP);
        vc_image img;
        float *px = NULL;
        int n_tiles = 0;
        if (!samples || !rows || vc_image_load(fixture(json_string_value(json_array_get(files, i))), NULL, &img) != 0) {
            CHECK(0, "%s: reference pixels or image: %s", label, vc_error());
            free(samples);
            free(rows);
            continue;
        }
        CHECK(vc_vision_preprocess(m->vision, &img, &px, &n_tiles) == 0, "%s: preprocess: %s", label, vc_error());
        CHECK(n_tiles == want_n, "%s image %zu: %d crops, the processor has %d", label, i, n_tiles, want_n);
        float worst = 0;
        double worst_row = 0;
        for (int t = 0; px && n_tiles == want_n && t < n_tiles; t++) {
            const float *p = px + (size_t)t * tile;
            for (size_t s = 0; s < ns; s++)
                worst = fmaxf(worst, fabsf(p[s * (size_t)stride] - samples[(size_t)t * ns + s]));
            for (int r = 0; r < 3 * VC_PHI3V_CROP; r++) {
                double sum = 0;
                for (int x = 0; x < VC_PHI3V_CROP; x++)
                    sum += p[(size_t)r * VC_PHI3V_CROP + x];
                worst_row = fmax(worst_row, fabs(sum - rows[(size_t)t * 3 * VC_PHI3V_CROP + r]));
            }
        }
        CHECK(worst <= 1e-4f, "%s image %zu: pixel values differ from the processor by %g", label, i, worst);
        CHECK(worst_row <= 1e-2, "%s image %zu: a row sum differs from the processor's by %g", label, i, worst_row);
        free(px);
        free(samples);
        free(rows);
        vc_image_free(&img);
    }
}

/* How close a case must come to the reference: first logits within
 * logit_tol of their scale, and (exact_greedy) the greedy ids equal. */
typedef struct {
    float logit_tol;
    bool exact_greedy;
    float *worst;         /* if set, the largest logit difference / scale seen */
} accuracy;

static const accuracy EXACT = { 1e-4f, true, NULL };

static void check_case(vc_model *m, json_t *c, int stride, const accuracy *acc)
{
    const char *label = json_string_value(json_object_get(c, "name"));
    json_t *files = json_object_get(c, "images"), *jm = json_object_get(c, "messages");
    int n_img = (int)json_array_size(files);
    size_t n_msgs = json_array_size(jm);
    if (n_img > MAX_IMAGES || n_msgs > MAX_MSGS) {
        CHECK(0, "%s: too many images or messages for this test", label);
        return;
    }
    if (n_img > 0)
        check_pixels(m, label, c, stride);
    vc_image_embd images[MAX_IMAGES] = { 0 };
    for (int i = 0; i < n_img; i++) {
        CHECK(vc_model_encode_image(m, fixture(json_string_value(json_array_get(files, (size_t)i))), &images[i]) == 0,
              "%s: encode: %s", label, vc_error());
        int want = (int)json_integer_value(json_array_get(json_object_get(c, "n_image_tokens"), (size_t)i));
        CHECK(images[i].n_tokens == want, "%s image %d: %d rows, the processor writes %d tokens", label, i,
              images[i].n_tokens, want);
    }
    vc_chat_msg msgs[MAX_MSGS];
    for (size_t i = 0; i < n_msgs; i++) {
        json_t *e = json_array_get(jm, i);
        msgs[i] = (vc_chat_msg){ json_string_value(json_object_get(e, "role")),
                                 json_string_value(json_object_get(e, "content")),
                                 (int)json_integer_value(json_object_get(e, "n_images")) };
    }
    char *text = vc_chat_render(&m->chat, msgs, n_msgs, true);
    const char *want_text = json_string_value(json_object_get(c, "prompt_text"));
    CHECK(text && strcmp(text, want_text) == 0, "%s: prompt text differs:\n%s\nvs\n%s", label, text ? text : "",
          want_text);
    free(text);
    int32_t *ids = NULL;
    size_t n = 0, nw;
    int32_t *want = json_ids(json_object_get(c, "input_ids"), &nw);
    for (size_t i = 0; i < nw; i++)   /* the processor's -k: vlmchat's image id */
        if (want[i] < 0)
            want[i] = m->vision->image_token_id;
    int rc = vc_model_prompt_ids(m, msgs, n_msgs, images, n_img, true, &ids, &n);
    size_t first_diff = 0;
    while (rc == 0 && first_diff < n && first_diff < nw && ids[first_diff] == want[first_diff])
        first_diff++;
    CHECK(rc == 0 && n == nw && first_diff == n, "%s: input ids differ (%zu vs %zu, first at %zu): %s", label, n, nw,
          first_diff, rc ? vc_error() : "");
    float *embd = NULL;
    if (rc == 0 && vc_model_prompt_embd(m, ids, n, images, n_img, &embd) == 0) {
        size_t ng;
        int32_t *gen = json_ids(json_object_get(c, "generated_ids"), &ng);
        vc_llm_truncate(&m->llm, 0);
        float *logits = malloc((size_t)m->llm.cfg.n_vocab * sizeof *logits);
        CHECK(vc_llm_forward_embd(&m->llm, embd, (int)n, logits) == 0, "%s: forward: %s", label, vc_error());
        json_t *wl = json_object_get(c, "first_logits");
        CHECK(json_array_size(wl) == (size_t)m->llm.cfg.n_vocab, "%s: %zu reference logits", label, json_array_size(wl));
        float worst = 0, scale = 1;
        for (int k = 0; k < m->llm.cfg.n_vocab; k++) {
            float w = (float)json_number_value(json_array_get(wl, (size_t)k));
            worst = fmaxf(worst, fabsf(logits[k] - w));
            scale = fmaxf(scale, fabsf(w));
        }
        CHECK(worst <= acc->logit_tol * scale, "%s: first logits differ by %g (scale %g)", label, worst, scale);
        if (acc->worst)
            *acc->worst = fmaxf(*acc->worst, worst / scale);
        vc_llm_truncate(&m->llm, 0);
        vc_gen_options opt = { .max_tokens = (int)ng, .ignore_eos = true, .sampling = vc_sampler_defaults(),
                               .prompt_embd = embd };
        opt.sampling.temperature = 0;
        vc_gen_result r;
        CHECK(vc_generate(m, ids, n, &opt, &r) == 0, "%s: generate: %s", label, vc_error());
        CHECK(r.n_tokens == ng, "%s: %zu greedy tokens, want %zu", label, r.n_tokens, ng);
        if (acc->exact_greedy)
            CHECK(r.n_tokens == ng && memcmp(r.tokens, gen, ng * sizeof *gen) == 0,
                  "%s: greedy ids differ (%zu tokens, first %d, want %d)", label, r.n_tokens,
                  r.n_tokens ? r.tokens[0] : -1, gen[0]);
        vc_gen_result_free(&r);
        free(logits);
        free(gen);
        free(embd);
    } else {
        CHECK(0, "%s: prompt embeddings: %s", label, vc_error());
    }
    free(ids);
    free(want);
    for (int i = 0; i < n_img; i++)
        vc_image_embd_free(&images[i]);
}

/* Placeholders that do not name each image once are refused, as the
 * processor's asserts refuse them. */
static void check_placeholders(vc_model *m)
{
    vc_image img;
    vc_image_embd e;
    if (vc_image_load(fixture("images/photo.jpg"), NULL, &img) != 0 || vc_model_encode_pixels(m, &img, &e) != 0) {
        CHECK(0, "placeholders: %s", vc_error());
        return;
    }
    vc_image_embd two[2] = { e, e };
    const char *bad[] = { "<|user|>\nno tag<|end|>\n", "<|image_2|>\nx", "<|image_0|>\nx", "<|image_1|><|image_1|>x" };
    for (size_t i = 0; i < VC_ARRAY_LEN(bad); i++) {
        vc_chat_msg msg = { "user", bad[i], 0 };
        vc_chat_format f = m->chat.format;
        vc_jinja *tpl = m->chat.jinja;   /* the raw built-in format, not the model's template */
        m->chat.format = VC_CHAT_RAW;
        m->chat.jinja = NULL;
        int32_t *ids = NULL;
        size_t n = 0;
        int rc = vc_model_prompt_ids(m, &msg, 1, &e, 1, false, &ids, &n);
        m->chat.format = f;
        m->chat.jinja = tpl;
        CHECK(rc != 0 && vc_error_code() == VC_EXIT_INPUT, "placeholders '%s' are refused", bad[i]);
        free(ids);
    }
    /* two images, tags in order, text after the last: BOS starts every chunk */
    vc_chat_msg msg = { "user", "<|image_1|>a<|image_2|>", 0 };
    vc_jinja *tpl = m->chat.jinja;
    vc_chat_format f = m->chat.format;
    m->chat.format = VC_CHAT_RAW;
    m->chat.jinja = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = vc_model_prompt_ids(m, &msg, 1, two, 2, false, &ids, &n);
    m->chat.format = f;
    m->chat.jinja = tpl;
    int32_t bos = vc_tokenizer_bos(m->tok), img_id = m->vision->image_token_id;
    CHECK(rc == 0 && n > (size_t)(2 * e.n_tokens + 3) && ids[0] == bos && ids[1] == img_id && ids[n - 1] == bos &&
              ids[n - 2] == img_id,
          "chunked tokenization: BOS before each chunk, also the empty last one");
    free(ids);
    vc_image_embd_free(&e);
    vc_image_free(&img);
}

/* The model at path (NULL: the fixture directory itself) against the
 * fixture's references. */
static void test_model_at(const char *name, const char *path, int n_ctx, const accuracy *acc)
{
    vc_model m;
    char rel[256];
    snprintf(rel, sizeof rel, "vision/%s", name);
    int rc = vc_model_open(path ? path : fixture(rel), &(vc_model_options){ .n_ctx = n_ctx }, &m);
    CHECK(rc == 0, "%s: %s", name, vc_error());
    if (rc != 0)
        return;
    CHECK(m.vision != NULL && m.chat.format == VC_CHAT_PHI3 && m.chat.image_numbered,
          "%s is multimodal with the Phi-3 format and numbered images", name);
    CHECK(m.vision->image_token_id == vc_tokenizer_size(m.tok) && m.vision->image_token_id < m.llm.cfg.n_vocab,
          "%s: image id one past the tokenizer, inside the padded vocabulary", name);
    snprintf(rel, sizeof rel, "vision/%s/reference.json", name);
    json_t *ref = json_load_file(fixture(rel), 0, NULL), *c;
    snprintf(rel, sizeof rel, "vision/%s/reference.bin", name);
    blob = (unsigned char *)vc_read_file(fixture(rel), &blob_len);
    CHECK(ref && blob, "%s: reference files", name);
    int stride = (int)json_integer_value(json_object_get(ref, "stride"));
    size_t i;
    json_array_foreach(json_object_get(ref, "cases"), i, c)
        check_case(&m, c, stride, acc);
    CHECK(json_array_size(json_object_get(ref, "cases")) >= 2, "%s: cases", name);
    if (strcmp(name, "phi3v") == 0) {
        check_placeholders(&m);
        /* the count the prompt gets is the count the encoder produces */
        const int sizes[][2] = { { 1, 1 }, { 5, 900 }, { 700, 90 }, { 336, 336 }, { 400, 1000 } };
        for (size_t k = 0; k < VC_ARRAY_LEN(sizes); k++) {
            vc_image img;
            vc_image_embd e;
            if (vc_image_alloc(&img, sizes[k][0], sizes[k][1]) != 0)
                continue;
            memset(img.rgb, 90, 3 * (size_t)img.width * img.height);
            CHECK(vc_vision_encode(m.vision, &img, &e) == 0 && e.n_tokens == vc_vision_count(m.vision, img.width,
                                                                                             img.height),
                  "%dx%d: encoder rows and count agree", img.width, img.height);
            vc_image_embd_free(&e);
            vc_image_free(&img);
        }
    }
    free(blob);
    json_decref(ref);
    vc_model_close(&m);
}

static void test_model(const char *name, int n_ctx) { test_model_at(name, NULL, n_ctx, &EXACT); }

/* `vlmchat convert` writes Phi-3-V as one GGUF (include/loader/gguf_phi3v.h):
 * F32 and F16 files give the references' pixels, ids, logits within 1e-4 and
 * greedy ids (the fixtures' bf16 weights are exact in both types). Q8_0
 * rounds every weight to 8 bits per block of 32 (a relative error up to
 * 1/254 of the block's largest): over the 3-layer tower, the 2x2 merge, the
 * projection and the 2-layer decoder the first logits must stay within 10%
 * of their scale: measured up to 7.1% here, and 7.4% when the HF checkpoint
 * itself is quantized at load (--quant q8_0), so that is what Q8_0 costs on
 * these 64-wide random models, not the file; a wrong tensor, order or
 * transpose is off by about the whole scale. The prompt, ids and pixels are
 * exact; greedy ids of a random tiny model may flip on near ties, so only
 * their count is checked. */
static void test_gguf(const char *name, int n_ctx)
{
    char dir[] = "/tmp/vlmchat-phi3v-gguf-XXXXXX", out[512], rel[256];
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    snprintf(rel, sizeof rel, "vision/%s", name);
    const vc_dtype types[] = { VC_F32, VC_F16, VC_Q8_0 };
    for (size_t t = 0; t < VC_ARRAY_LEN(types); t++) {
        snprintf(out, sizeof out, "%s/%s-%s.gguf", dir, name, vc_dtype_name(types[t]));
        int rc = vc_convert_to_gguf(fixture(rel), out, types[t]);
        CHECK(rc == 0, "convert %s to %s: %s", name, vc_dtype_name(types[t]), vc_error());
        float worst = 0;
        accuracy q8 = { 0.1f, false, &worst };
        if (rc == 0)
            test_model_at(name, out, n_ctx, types[t] == VC_Q8_0 ? &q8 : &EXACT);
        if (types[t] == VC_Q8_0)
            printf("%s q8_0: first logits within %.4f of their scale\n", name, worst);
        /* one file: no mmproj is written beside it */
        snprintf(out, sizeof out, "%s/mmproj-%s-%s.gguf", dir, name, vc_dtype_name(types[t]));
        CHECK(access(out, F_OK) != 0, "%s: no mmproj file beside the Phi-3-V GGUF", name);
        snprintf(out, sizeof out, "%s/%s-%s.gguf", dir, name, vc_dtype_name(types[t]));
        remove(out);
    }
    rmdir(dir);
}

/* The processor's counts for real sizes (calc_num_image_tokens_from_image_size,
 * checked there against the HD transform itself). */
static void test_token_counts(void)
{
    json_t *counts = json_load_file(fixture("vision/phi3v_token_counts.json"), 0, NULL);
    const char *size;
    json_t *v;
    int checked = 0;
    for (int n = 4; n <= 16; n += 12) {
        char key[32];
        snprintf(key, sizeof key, "num_crops_%d", n);
        json_object_foreach(json_object_get(counts, key), size, v)
        {
            int w, h;
            if (sscanf(size, "%dx%d", &w, &h) != 2)
                continue;
            int got = vc_phi3v_count(n, w, h);
            CHECK(got == json_integer_value(v), "num_crops %d, %s: %d tokens, the processor says %lld", n, size, got,
                  (long long)json_integer_value(v));
            checked++;
        }
    }
    CHECK(checked >= 16, "token counts checked: %d", checked);
    /* the headline sizes, as the README states them */
    CHECK(vc_phi3v_count(4, 1024, 768) == 757 && vc_phi3v_count(16, 1024, 768) == 1921 &&
              vc_phi3v_count(16, 768, 1024) == 1933 && vc_phi3v_count(16, 1920, 1080) == 2353 &&
              vc_phi3v_count(16, 336, 336) == 2509,
          "headline token counts");
    json_decref(counts);
}

int main(void)
{
    test_token_counts();
    test_model("phi3v", 4096);
    test_model("phi3v_crops16", 8192);
    test_model("phi3v_crops1", 4096);
    test_model("phi3v_mlx4", 4096);
    test_gguf("phi3v", 4096);
    test_gguf("phi3v_crops16", 8192);
    test_gguf("phi3v_crops1", 4096);
    return harness_finish("test_phi3v");
}
