/* test_moondream.c - Moondream2 (revision 2025-06-21) against its torch code.
 *
 * tests/fixtures/vision/moondream (tools/make_moondream_fixtures.py) holds a
 * tiny random model and what github vikhyat/moondream 44146f1 computed with
 * it (PIL resize path, float32): for two images the uint8 crops
 * (crops_<case>.png, stacked), the 729 image embeddings, and for captions of
 * three lengths, two questions, detect and point: the prompt ids, greedy ids,
 * first-step logits and the objects. Also select_tiling on many sizes and
 * config.py's default templates.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "harness.h"
#include "model/conversation.h"
#include "model/generate.h"
#include "model/prompt.h"
#include "model/skills.h"
#include "vision/moondream.h"

static unsigned char *blob;
static size_t blob_len;

static bool ids_equal(json_t *want, const int32_t *got, size_t n)
{
    size_t nw;
    int32_t *w = json_ids(want, &nw);
    bool eq = w && nw == n && (n == 0 || memcmp(w, got, n * sizeof *got) == 0);
    free(w);
    return eq;
}

static void check_crops(const vc_moondream *md, const char *label, const vc_image *img, json_t *c)
{
    uint8_t *rgb;
    int n;
    char rel[256];
    snprintf(rel, sizeof rel, "vision/moondream/%s", json_string_value(json_object_get(c, "crops_png")));
    vc_image want;
    int th, tw;
    vc_moondream_tiling(md, img->width, img->height, &th, &tw);
    json_t *tiling = json_object_get(c, "tiling");
    CHECK(th == json_integer_value(json_array_get(tiling, 0)) && tw == json_integer_value(json_array_get(tiling, 1)),
          "%s: tiling %dx%d", label, th, tw);
    if (vc_moondream_crops(md, img, &rgb, &n) != 0 || vc_image_load(fixture(rel), NULL, &want) != 0) {
        CHECK(0, "%s: crops: %s", label, vc_error());
        return;
    }
    size_t bytes = (size_t)n * md->crop * md->crop * 3, diff = 0;
    CHECK(n == json_integer_value(json_object_get(c, "n_crops")) && want.width == md->crop &&
          (size_t)want.width * want.height * 3 == bytes, "%s: %d crops", label, n);
    for (size_t i = 0; (size_t)want.width * want.height * 3 == bytes && i < bytes; i++)
        diff += rgb[i] != want.rgb[i];
    CHECK(diff == 0, "%s: %zu crop bytes differ from PIL's", label, diff);
    free(rgb);
    vc_image_free(&want);
}

static void check_regions(vc_model *m, int prefix, const char *label, json_t *t)
{
    const char *task = json_string_value(json_object_get(t, "task"));
    vc_region *r;
    int n;
    int max = (int)json_integer_value(json_object_get(t, "max_objects"));
    int rc = vc_skill_regions(m, prefix, task, json_string_value(json_object_get(t, "text_in")), max, &r, &n);
    CHECK(rc == 0, "%s %s: %s", label, task, vc_error());
    if (rc != 0)
        return;
    json_t *objs = json_object_get(t, "objects");
    CHECK((size_t)n == json_array_size(objs), "%s %s: %d objects, reference %zu", label, task, n, json_array_size(objs));
    double worst = 0;
    for (int i = 0; i < n && (size_t)i < json_array_size(objs); i++) {
        json_t *o = json_array_get(objs, (size_t)i);
        if (r[i].box) {
            double got[4] = { r[i].x_min, r[i].y_min, r[i].x_max, r[i].y_max };
            const char *keys[4] = { "x_min", "y_min", "x_max", "y_max" };
            for (int k = 0; k < 4; k++)
                worst = fmax(worst, fabs(got[k] - json_number_value(json_object_get(o, keys[k]))));
        } else {
            worst = fmax(worst, fabs(r[i].x - json_number_value(json_object_get(o, "x"))));
            worst = fmax(worst, fabs(r[i].y - json_number_value(json_object_get(o, "y"))));
        }
    }
    /* coordinates are bins k/coord_out (exact); sizes 2^(...) may differ in the last float bit */
    CHECK(worst <= 1e-6, "%s %s: objects differ by %g", label, task, worst);
    free(r);
}

static void check_case(vc_model *m, json_t *c)
{
    const char *label = json_string_value(json_object_get(c, "name"));
    const vc_moondream *md = m->vision->state;
    char rel[256];
    const char *file = json_string_value(json_object_get(c, "image"));
    snprintf(rel, sizeof rel, strcmp(label, "photo") == 0 ? "images/%s" : "vision/moondream/%s", file);
    vc_image img;
    if (vc_image_load(fixture(rel), NULL, &img) != 0) {
        CHECK(0, "%s: %s", label, vc_error());
        return;
    }
    check_crops(md, label, &img, c);
    vc_image_embd e;
    int rc = vc_model_encode_pixels(m, &img, &e);
    CHECK(rc == 0 && e.n_tokens == 729, "%s: encode: %s", label, rc ? vc_error() : "");
    vc_image_free(&img);
    if (rc != 0)
        return;
    float *want = blob_floats(blob, blob_len, json_object_get(c, "embd"), (size_t)729 * m->llm.cfg.dim);
    float worst = 0;
    for (size_t i = 0; want && i < (size_t)729 * m->llm.cfg.dim; i++)
        worst = fmaxf(worst, fabsf(e.embd[i] - want[i]));
    CHECK(want && worst <= 1e-4f, "%s: image embeddings differ by %g", label, worst);
    free(want);
    int prefix;
    CHECK(vc_skill_prefix(m, &e, &prefix) == 0 && prefix == 730, "%s: prefix: %s", label, vc_error());
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(c, "tasks"), i, t)
    {
        const char *task = json_string_value(json_object_get(t, "task"));
        const char *arg = json_string_value(json_object_get(t, strcmp(task, "caption") == 0 ? "length" : "text_in"));
        int32_t *ids;
        size_t n;
        char what[160];
        snprintf(what, sizeof what, "%s %s %s", label, task, arg);
        CHECK(vc_skill_prompt(m, task, arg, &ids, &n) == 0 && ids_equal(json_object_get(t, "prompt_ids"), ids, n),
              "%s: prompt ids differ", what);
        free(ids);
        if (strcmp(task, "detect") == 0 || strcmp(task, "point") == 0) {
            check_regions(m, prefix, what, t);
            continue;
        }
        vc_gen_options opt = { .max_tokens = (int)json_integer_value(json_object_get(t, "max_tokens")),
                               .sampling = vc_sampler_defaults() };
        opt.sampling.temperature = 0;
        vc_gen_result r;
        rc = vc_skill_text(m, prefix, task, arg, &opt, &r);
        CHECK(rc == 0, "%s: %s", what, vc_error());
        CHECK(rc == 0 && ids_equal(json_object_get(t, "generated_ids"), r.tokens, r.n_tokens),
              "%s: greedy ids differ (%zu tokens, first %d)", what, r.n_tokens, r.n_tokens ? r.tokens[0] : -1);
        vc_gen_result_free(&r);
        /* the first step's logits, for a closer look when ids differ */
        float *wl = blob_floats(blob, blob_len, json_object_get(t, "first_logits"), (size_t)m->llm.cfg.n_vocab);
        float *logits = malloc((size_t)m->llm.cfg.n_vocab * sizeof *logits);
        vc_skill_prompt(m, task, arg, &ids, &n);
        vc_llm_truncate(&m->llm, prefix);
        if (wl && logits && vc_llm_forward(&m->llm, ids, (int)n, logits) == 0) {
            float lw = 0, scale = 1;
            for (int k = 0; k < m->llm.cfg.n_vocab; k++) {
                lw = fmaxf(lw, fabsf(logits[k] - wl[k]));
                scale = fmaxf(scale, fabsf(wl[k]));
            }
            CHECK(lw <= 1e-4f * scale, "%s: first logits differ by %g (scale %g)", what, lw, scale);
        } else {
            CHECK(0, "%s: first logits", what);
        }
        free(ids);
        free(wl);
        free(logits);
    }
    vc_image_embd_free(&e);
}

/* select_tiling of the reference on sizes that take each of its branches. */
static void check_tiling(const vc_moondream *md, json_t *table)
{
    const char *size;
    json_t *v;
    int checked = 0;
    json_object_foreach(table, size, v)
    {
        int w, h, th, tw;
        if (sscanf(size, "%dx%d", &w, &h) != 2)
            continue;
        vc_moondream_tiling(md, w, h, &th, &tw);
        CHECK(th == json_integer_value(json_array_get(v, 0)) && tw == json_integer_value(json_array_get(v, 1)),
              "tiling %s: %dx%d", size, th, tw);
        checked++;
    }
    CHECK(checked >= 10, "tilings checked: %d", checked);
}

/* A copy of the fixture model without config.json's templates: vlmchat's
 * defaults must be config.py's (the fixture records them). */
static void check_default_templates(json_t *ref)
{
    char dir[] = "/tmp/vc_md_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    json_t *cfg = json_load_file(fixture("vision/moondream/config.json"), 0, NULL);
    json_object_del(json_object_get(json_object_get(cfg, "config"), "tokenizer"), "templates");
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_dump_file(cfg, path, 0);
    json_decref(cfg);
    const char *files[] = { "model.safetensors", "tokenizer.json" };
    for (int i = 0; i < 2; i++) {
        char rel[128], *abs;
        snprintf(rel, sizeof rel, "vision/moondream/%s", files[i]);
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        abs = realpath(fixture(rel), NULL);
        CHECK(abs && symlink(abs, path) == 0, "symlink %s", path);
        free(abs);
    }
    vc_model m;
    int rc = vc_model_open(dir, &(vc_model_options){ .n_ctx = 64 }, &m);
    CHECK(rc == 0, "default templates: %s", vc_error());
    json_t *t = json_object_get(ref, "default_templates");
    if (rc == 0) {
        const char *lengths[3] = { "short", "normal", "long" };
        int32_t *ids;
        size_t n;
        for (int i = 0; i < 3; i++) {
            ids = NULL;
            CHECK(vc_skill_prompt(&m, "caption", lengths[i], &ids, &n) == 0 &&
                      ids_equal(json_object_get(json_object_get(t, "caption"), lengths[i]), ids, n),
                  "default caption %s template", lengths[i]);
            free(ids);
        }
        const vc_moondream *md = m.vision->state;
        const char *kinds[3] = { "query", "detect", "point" };
        const vc_md_ids *pre[3] = { &md->query_pre, &md->detect_pre, &md->point_pre };
        const vc_md_ids *suf[3] = { &md->query_suf, &md->detect_suf, &md->point_suf };
        for (int k = 0; k < 3; k++) {
            json_t *o = json_object_get(t, kinds[k]);
            CHECK(ids_equal(json_object_get(o, "prefix"), pre[k]->ids, (size_t)pre[k]->n) &&
                  ids_equal(json_object_get(o, "suffix"), suf[k]->ids, (size_t)suf[k]->n), "default %s template",
                  kinds[k]);
        }
        json_t *tokens = json_object_get(ref, "default_tokens");
        CHECK(md->bos == json_integer_value(json_object_get(tokens, "bos_id")) &&
              md->eos == json_integer_value(json_object_get(tokens, "eos_id")) &&
              md->answer == json_integer_value(json_object_get(tokens, "answer_id")), "default token ids");
        vc_model_close(&m);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    rmdir(dir);
}

/* The chat (vc_conversation, as the REPL runs it): each message is a query
 * about the latest image, as the reference answers query() on an encoded
 * image; follow-ups reuse the image's prefix in the cache, and a new image
 * is not confused with the previous one. */
static json_t *find_task(json_t *ref, const char *image, const char *task, const char *arg)
{
    size_t i, k;
    json_t *c, *t;
    json_array_foreach(json_object_get(ref, "cases"), i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "name")), image) != 0)
            continue;
        json_array_foreach(json_object_get(c, "tasks"), k, t)
        {
            const char *a = json_string_value(json_object_get(t, strcmp(task, "caption") == 0 ? "length" : "text_in"));
            if (strcmp(json_string_value(json_object_get(t, "task")), task) == 0 && a && strcmp(a, arg) == 0)
                return t;
        }
    }
    return NULL;
}

static void check_chat(vc_model *m, json_t *ref)
{
    vc_conversation c;
    vc_conv_init(&c, m);
    vc_gen_options o = { .max_tokens = 20, .sampling = vc_sampler_defaults() };
    o.sampling.temperature = 0;
    struct { const char *attach, *image, *question; } turns[] = {
        { "vision/moondream/scene_640x480.png", "scene", "What is in the picture?" },
        { NULL, "scene", "How many shapes are there?" },
        { "images/photo.jpg", "photo", "What is in the picture?" },
        { NULL, "photo", "How many shapes are there?" },
    };
    int last_past = 0;
    for (size_t i = 0; i < VC_ARRAY_LEN(turns); i++) {
        if (turns[i].attach && vc_conv_attach(&c, fixture(turns[i].attach)) != 0) {
            CHECK(0, "chat attach: %s", vc_error());
            break;
        }
        vc_gen_result r;
        int rc = vc_conv_turn(&c, turns[i].question, &o, &r);
        json_t *t = find_task(ref, turns[i].image, "query", turns[i].question);
        CHECK(rc == 0 && t && ids_equal(json_object_get(t, "generated_ids"), r.tokens, r.n_tokens),
              "chat turn %zu (%s, %s): ids differ from the reference's query: %s", i + 1, turns[i].image,
              turns[i].question, rc ? vc_error() : "");
        /* a follow-up about the same image starts from its prefix in the cache */
        if (i == 1 || i == 3)
            CHECK(r.prompt_tokens < 730, "chat turn %zu reuses the image prefix (%zu prompt tokens fed)", i + 1,
                  r.prompt_tokens);
        last_past = m->llm.n_past;
        vc_gen_result_free(&r);
    }
    CHECK(last_past > 730, "chat: the cache holds the last turn");
    vc_conv_free(&c);
}

int main(void)
{
    vc_model m;
    int rc = vc_model_open(fixture("vision/moondream"), &(vc_model_options){ .n_ctx = 2048 }, &m);
    CHECK(rc == 0, "moondream: %s", vc_error());
    if (rc != 0)
        return harness_finish("test_moondream");
    CHECK(m.vision && vc_skill_supported(&m) && m.llm.cfg.prefix_bidirectional == 730, "moondream skills");
    json_t *ref = json_load_file(fixture("vision/moondream/reference.json"), 0, NULL);
    blob = (unsigned char *)vc_read_file(fixture("vision/moondream/reference.bin"), &blob_len);
    CHECK(ref && blob, "reference files");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(ref, "cases"), i, c)
        check_case(&m, c);
    check_tiling(m.vision->state, json_object_get(ref, "tiling"));
    check_chat(&m, ref);
    vc_model_close(&m);
    check_default_templates(ref);
    free(blob);
    json_decref(ref);
    return harness_finish("test_moondream");
}
