/* test_sweep.c - the randomized differential sweep against transformers.
 *
 * tests/fixtures/sweep/<family>.json (tools/make_sweep.py, run where
 * transformers is installed) holds, per random configuration, the files a
 * user's checkpoint would have (config.json, processor_config.json), the list
 * of its tensors with the PRNG seed, scale and offset of each, the images'
 * sizes and seeds, the conversation, and transformers' results: the input ids
 * of apply_chat_template(tokenize=True), the greedy ids of generate() with the
 * top-1/top-2 margin of each step, and the first step's logits.
 *
 * Each case is rebuilt here in a temporary directory -- weights and pixels
 * from the same splitmix64 PRNG as the generator, tokenizer and chat template
 * copied from the fixture the generator used -- and opened like any model:
 *   - a configuration transformers rejected must be refused;
 *   - otherwise the prompt ids must equal the reference, the first logits be
 *     within 1e-4 (relative to the largest, as the other fidelity tests), and
 *     the greedy ids equal up to the first step whose margin is below 1e-3
 *     (a tie that float rounding may break either way; counted, not hidden).
 * Prompt ids that differ because vlmchat's built-in chat formats cannot render
 * a conversation kind are counted as skipped (see template_unsupported) and
 * the numerics are still checked on the reference ids.
 *
 * `test_sweep FAMILY...` runs only those families; VLMCHAT_SWEEP_VERBOSE=1
 * prints every case.
 */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/base64.h"
#include "core/common.h"
#include "harness.h"
#include "model/prompt.h"

#define GAMMA 0x9E3779B97F4A7C15ULL
#define TIE_MARGIN 1e-3

/* ---- the generator's PRNG (tools/make_sweep.py: splitmix, tensor_values, image_pixels) ---- */

static uint64_t splitmix_at(uint64_t seed, uint64_t i)
{
    uint64_t z = seed + (i + 1) * GAMMA;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static float tensor_value(uint64_t seed, uint64_t i, double scale, double offset)
{
    double u = ((double)(splitmix_at(seed, i) >> 40) + 0.5) * 0x1p-24;
    return (float)(offset + scale * (2.0 * u - 1.0));
}

static int make_image(int w, int h, uint64_t seed, vc_image *img)
{
    if (vc_image_alloc(img, w, h) != 0)
        return -1;
    int kx[3], ky[3], ph[3];
    for (int c = 0; c < 3; c++) {
        uint64_t v = splitmix_at(seed, (uint64_t)c);
        kx[c] = 1 + (int)(v % 5);
        ky[c] = 1 + (int)((v >> 8) % 5);
        ph[c] = (int)((v >> 16) % 512);
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                size_t k = ((size_t)y * w + x) * 3 + c;
                int t = (x * kx[c] + y * ky[c] + ph[c]) % 512;
                int v = (t < 256 ? t : 511 - t) + (int)(splitmix_at(seed, 3 + k) >> 60);
                img->rgb[k] = (uint8_t)(v > 255 ? 255 : v);
            }
    return 0;
}

/* ---- rebuilding a case's directory ---- */

/* model.safetensors with every tensor of the case's list, float32. */
static int write_weights(const char *path, json_t *tensors)
{
    json_t *header = json_object();
    size_t i, total = 0;
    json_t *t;
    json_array_foreach(tensors, i, t) {
        json_t *shape = json_array_get(t, 1), *d;
        size_t n = 1, k;
        json_array_foreach(shape, k, d) n *= (size_t)json_integer_value(d);
        json_object_set_new(header, json_string_value(json_array_get(t, 0)),
                            json_pack("{s:s,s:O,s:[I,I]}", "dtype", "F32", "shape", shape, "data_offsets",
                                      (json_int_t)total, (json_int_t)(total + 4 * n)));
        total += 4 * n;
    }
    json_object_set_new(header, "__metadata__", json_pack("{s:s}", "format", "pt"));
    FILE *f = safetensors_begin(path, header);
    if (!f)
        return -1;
    int rc = 0;
    json_array_foreach(tensors, i, t) {
        json_t *shape = json_array_get(t, 1), *d;
        size_t n = 1, k;
        json_array_foreach(shape, k, d) n *= (size_t)json_integer_value(d);
        uint64_t seed = (uint64_t)json_integer_value(json_array_get(t, 2));
        double scale = json_number_value(json_array_get(t, 3)), offset = json_number_value(json_array_get(t, 4));
        float buf[4096];
        for (size_t done = 0; rc == 0 && done < n; done += 4096) {
            size_t m = n - done < 4096 ? n - done : 4096;
            for (size_t j = 0; j < m; j++)
                buf[j] = tensor_value(seed, done + j, scale, offset);
            if (fwrite(buf, sizeof(float), m, f) != m)
                rc = -1;
        }
    }
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

static int build_dir(json_t *c, const char *dir)
{
    char src[4096], dst[4096];
    static const char *const copied[] = { "tokenizer.json", "tokenizer_config.json", "chat_template.jinja" };
    for (size_t i = 0; i < 3; i++) {
        snprintf(src, sizeof src, "%s/%s", fixture(json_string_value(json_object_get(c, "fixture"))), copied[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, copied[i]);
        if (access(src, R_OK) == 0 && copy_file(src, dst) != 0)
            return -1;
    }
    snprintf(dst, sizeof dst, "%s/config.json", dir);
    if (json_dump_file(json_object_get(c, "config"), dst, 0) != 0)
        return -1;
    json_t *proc = json_object_get(c, "processor_config");
    snprintf(dst, sizeof dst, "%s/processor_config.json", dir);
    if (proc && json_dump_file(proc, dst, 0) != 0)
        return -1;
    json_t *tensors = json_object_get(c, "tensors");
    snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
    return tensors ? write_weights(dst, tensors) : 0;
}

static void remove_dir(const char *dir)
{
    static const char *const files[] = { "tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                                         "config.json", "processor_config.json", "model.safetensors" };
    char p[4096];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* ---- checking ---- */

typedef struct {
    int cases, passed, refused, ids_skipped, tie_cut, failed;
} tally;

/* Conversation kinds the built-in chat format of a fixture cannot render as
 * its Jinja template does (filled in from the sweep's results; the numerics
 * of those cases still run on the reference ids). */
static bool template_unsupported(const char *fixture_name, const char *kind)
{
    /* The Mistral fixture's template drops system messages (it renders only
     * user and assistant turns); vlmchat's built-in mistral format puts the
     * system text into the first [INST] as Mistral's own templates do. */
    return strcmp(fixture_name, "models/mistral") == 0 && strncmp(kind, "system", 6) == 0;
}

static float *decode_floats(const char *b64, size_t *n)
{
    size_t len = strlen(b64), got;
    uint8_t *raw = malloc(vc_base64_max_decoded(len) + 4);
    if (!raw || vc_base64_decode(b64, len, raw, &got) != 0 || got % 4) {
        free(raw);
        return NULL;
    }
    *n = got / 4;
    return (float *)raw;   /* malloc'd memory is aligned for float */
}

static int argmax(const float *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

/* Messages as vlmchat takes them: a string content, or a list of images
 * (first) and texts. texts[] keeps joined list texts alive. */
static size_t messages(json_t *conv, vc_chat_msg *msgs, char **texts, size_t max)
{
    size_t i, n = 0;
    json_t *m;
    json_array_foreach(conv, i, m) {
        if (n >= max)
            break;
        json_t *content = json_object_get(m, "content");
        msgs[n].role = json_string_value(json_object_get(m, "role"));
        msgs[n].n_images = 0;
        texts[n] = NULL;
        if (json_is_string(content)) {
            msgs[n].content = json_string_value(content);
        } else {
            size_t k, len = 0;
            json_t *part;
            json_array_foreach(content, k, part) {
                const char *t = json_string_value(json_object_get(part, "text"));
                if (t)
                    len += strlen(t);
            }
            texts[n] = calloc(len + 1, 1);
            json_array_foreach(content, k, part) {
                const char *t = json_string_value(json_object_get(part, "text"));
                if (t && texts[n])
                    strcat(texts[n], t);
                else if (!t)
                    msgs[n].n_images++;
            }
            msgs[n].content = texts[n] ? texts[n] : "";
        }
        n++;
    }
    return n;
}

static bool verbose;

/* What the matching cases exercised: the sweep must keep covering the rules
 * issue #16 is about, whatever a regenerated sample happens to draw. */
enum { COV_LLAMA3, COV_YARN, COV_DYNAMIC, COV_LINEAR, COV_LONGROPE, COV_LEGACY_KEYS, COV_SPLIT_TIE, COV_STORED_HEAD,
       COV_BIAS, COV_LAYER_LIST, COV_SLIDING, COV_HEAD_DIM, COV_THREE_IMAGES, COV_N };
static const char *const cov_names[COV_N] = { "llama3 rope", "yarn rope", "dynamic rope", "linear rope", "longrope",
                                              "legacy rope_scaling keys", "text_config tie true, top-level false",
                                              "tied config with a stored lm_head", "attention/mlp bias",
                                              "vision_feature_layer list", "sliding window", "explicit head_dim",
                                              "three images" };
static int coverage[COV_N];

static void record_coverage(json_t *c)
{
    json_t *cfg = json_object_get(c, "config"), *text = json_object_get(cfg, "text_config");
    json_t *dc = text ? text : cfg;
    json_t *rp = json_object_get(dc, "rope_parameters");
    if (!json_is_object(rp) || !json_object_size(rp))
        rp = json_object_get(dc, "rope_scaling");
    const char *type = json_string_value(json_object_get(rp, "rope_type"));
    if (!type)
        type = json_string_value(json_object_get(rp, "type"));
    static const char *const types[] = { "llama3", "yarn", "dynamic", "linear", "longrope" };
    for (int i = 0; type && i < 5; i++)
        coverage[COV_LLAMA3 + i] += strcmp(type, types[i]) == 0 || (i == 4 && strcmp(type, "su") == 0);
    coverage[COV_LEGACY_KEYS] += json_object_get(dc, "rope_scaling") != NULL;
    coverage[COV_SPLIT_TIE] += text && json_is_true(json_object_get(text, "tie_word_embeddings")) &&
                               !json_is_true(json_object_get(cfg, "tie_word_embeddings"));
    coverage[COV_STORED_HEAD] += json_is_true(json_object_get(c, "extra_head"));
    coverage[COV_BIAS] += json_is_true(json_object_get(dc, "attention_bias")) || json_is_true(json_object_get(dc, "mlp_bias"));
    coverage[COV_LAYER_LIST] += json_is_array(json_object_get(cfg, "vision_feature_layer"));
    coverage[COV_SLIDING] += json_is_integer(json_object_get(dc, "sliding_window"));
    json_t *hd = json_object_get(dc, "head_dim");
    int heads = (int)json_integer_value(json_object_get(dc, "num_attention_heads"));
    coverage[COV_HEAD_DIM] += json_is_integer(hd) && heads > 0 &&
                              json_integer_value(hd) != json_integer_value(json_object_get(dc, "hidden_size")) / heads;
    coverage[COV_THREE_IMAGES] += json_array_size(json_object_get(c, "images")) == 3;
}

/* Runs one case; returns its outcome in t. */
static void run_case(json_t *c, tally *t)
{
    const char *name = json_string_value(json_object_get(c, "name"));
    bool rejected = strcmp(json_string_value(json_object_get(c, "status")), "rejected") == 0;
    char dir[] = "/tmp/vlmchat-sweep-XXXXXX";
    t->cases++;
    if (!mkdtemp(dir) || build_dir(c, dir) != 0) {
        CHECK(0, "%s: could not build the model directory", name);
        t->failed++;
        return;
    }
    json_t *img_specs = json_object_get(c, "images");
    int n_images = (int)json_array_size(img_specs);
    size_t n_want = 0;
    int32_t *want = json_ids(json_object_get(c, "input_ids"), &n_want);
    vc_model m;
    int rc = vc_model_open(dir, &(vc_model_options){ .n_ctx = (int)n_want + 64 }, &m);
    vc_image_embd images[4] = { 0 };
    for (int i = 0; rc == 0 && i < n_images && i < 4; i++) {
        json_t *s = json_array_get(img_specs, (size_t)i);
        vc_image img;
        rc = make_image((int)json_integer_value(json_array_get(s, 0)), (int)json_integer_value(json_array_get(s, 1)),
                        (uint64_t)json_integer_value(json_array_get(s, 2)), &img);
        if (rc == 0) {
            rc = vc_model_encode_pixels(&m, &img, &images[i]);
            vc_image_free(&img);
        }
    }
    if (rejected) {
        /* transformers refused it (at config, load or run time): so must vlmchat */
        bool refused = rc != 0;
        CHECK(refused, "%s: transformers rejected this configuration (%s) but vlmchat accepted it", name,
              json_string_value(json_object_get(c, "error")));
        if (verbose)
            fprintf(stderr, "%s: rejected by transformers; vlmchat: %s\n", name, refused ? vc_error() : "accepted");
        refused ? t->refused++ : t->failed++;
        goto done_nomodel;
    }
    if (rc != 0) {
        CHECK(0, "%s: %s", name, vc_error());
        t->failed++;
        goto done_nomodel;
    }
    bool ok = true;
    /* prompt ids from vlmchat's own rendering of the conversation */
    vc_chat_msg msgs[8];
    char *texts[8] = { 0 };
    size_t n_msgs = messages(json_object_get(c, "messages"), msgs, texts, 8);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    int prc = vc_model_prompt_ids(&m, msgs, n_msgs, images, n_images, true, &ids, &n_ids);
    bool ids_equal = prc == 0 && n_ids == n_want && memcmp(ids, want, n_ids * sizeof *ids) == 0;
    const char *kind = json_string_value(json_object_get(c, "conv_kind"));
    if (!ids_equal && template_unsupported(json_string_value(json_object_get(c, "fixture")), kind)) {
        t->ids_skipped++;
    } else if (!ids_equal) {
        if (verbose)
            for (int i = 0; i < n_images; i++)
                fprintf(stderr, "  image %d: %d tokens; reference total %lld\n", i, images[i].n_tokens,
                        (long long)json_integer_value(json_object_get(c, "n_image_tokens")));
        CHECK(0, "%s (%s): prompt ids differ from apply_chat_template (%zu vs %zu)%s%s", name, kind, n_ids, n_want,
              prc ? ": " : "", prc ? vc_error() : "");
        ok = false;
    }
    free(ids);
    for (size_t i = 0; i < n_msgs; i++)
        free(texts[i]);
    /* the numerics on the reference ids */
    size_t n_logits = 0;
    float *ref = decode_floats(json_string_value(json_object_get(c, "first_logits")), &n_logits);
    int V = m.llm.cfg.n_vocab;
    float *logits = malloc((size_t)V * sizeof *logits), *embd = NULL;
    if (!ref || !logits || (int)n_logits != V) {
        CHECK(0, "%s: %zu reference logits, model has %d", name, n_logits, V);
        ok = false;
    } else if ((n_images && vc_model_prompt_embd(&m, want, n_want, images, n_images, &embd) != 0) ||
               (n_images ? vc_llm_forward_embd(&m.llm, embd, (int)n_want, logits)
                         : vc_llm_forward(&m.llm, want, (int)n_want, logits)) != 0) {
        CHECK(0, "%s: forward: %s", name, vc_error());
        ok = false;
    } else {
        float worst = 0, scale = 1;
        for (int k = 0; k < V; k++) {
            worst = fmaxf(worst, fabsf(logits[k] - ref[k]));
            scale = fmaxf(scale, fabsf(ref[k]));
        }
        if (!(worst <= 1e-4f * scale)) {
            CHECK(0, "%s: first logits differ by %g (scale %g)", name, worst, scale);
            ok = false;
        }
        size_t n_gen;
        int32_t *gen = json_ids(json_object_get(c, "greedy_ids"), &n_gen);
        json_t *margins = json_object_get(c, "margins");
        for (size_t s = 0; s < n_gen; s++) {
            if (json_number_value(json_array_get(margins, s)) < TIE_MARGIN) {
                t->tie_cut++;   /* a near tie: later ids may legitimately differ */
                break;
            }
            int32_t next = argmax(logits, V);
            if (next != gen[s]) {
                CHECK(0, "%s: greedy id %zu is %d, transformers %d", name, s, next, gen[s]);
                ok = false;
                break;
            }
            if (s + 1 < n_gen && vc_llm_forward(&m.llm, &next, 1, logits) != 0) {
                CHECK(0, "%s: decode: %s", name, vc_error());
                ok = false;
                break;
            }
        }
        free(gen);
    }
    if (ok) {
        harness_passed++;
        t->passed++;
        record_coverage(c);
    } else {
        t->failed++;
    }
    if (verbose)
        fprintf(stderr, "%s: %s\n", name, ok ? "ok" : "FAILED");
    free(ref);
    free(logits);
    free(embd);
    vc_model_close(&m);
done_nomodel:
    for (int i = 0; i < 4; i++)
        vc_image_embd_free(&images[i]);
    free(want);
    remove_dir(dir);
}

static void check_prng(json_t *check, const char *family)
{
    json_t *values = json_object_get(check, "values"), *pixels = json_object_get(check, "pixels");
    bool same = json_array_size(values) == 6 && json_array_size(pixels) == 18;
    for (size_t i = 0; same && i < 6; i++)
        same = tensor_value(12345, i, 2.5, 1.0) == (float)json_number_value(json_array_get(values, i));
    vc_image img;
    if (same && make_image(3, 2, 99, &img) == 0) {
        for (size_t i = 0; i < 18; i++)
            same = same && img.rgb[i] == json_integer_value(json_array_get(pixels, i));
        vc_image_free(&img);
    }
    CHECK(same, "%s: the C PRNG differs from the generator's", family);
}

int main(int argc, char **argv)
{
    static const char *const all[] = { "llama", "mistral", "phi3", "llava_next", "idefics3", "smolvlm" };
    const char *const *families = argc > 1 ? (const char *const *)argv + 1 : all;
    int n_families = argc > 1 ? argc - 1 : (int)(sizeof all / sizeof *all);
    verbose = getenv("VLMCHAT_SWEEP_VERBOSE") != NULL;
    tally total = { 0 };
    for (int f = 0; f < n_families; f++) {
        char rel[256];
        snprintf(rel, sizeof rel, "sweep/%s.json", families[f]);
        json_error_t err;
        json_t *root = json_load_file(fixture(rel), 0, &err);
        CHECK(root != NULL, "%s: %s", rel, err.text);
        if (!root)
            continue;
        check_prng(json_object_get(root, "prng_check"), families[f]);
        tally t = { 0 };
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(root, "cases"), i, c) run_case(c, &t);
        CHECK(t.cases >= 40, "%s: only %d sweep cases", families[f], t.cases);
        printf("sweep %-10s %3d cases: %3d match, %2d refused as transformers does, %d failed; %d with prompt ids "
               "skipped (chat format), %d greedy runs cut at a near tie\n",
               families[f], t.cases, t.passed, t.refused, t.failed, t.ids_skipped, t.tie_cut);
        total.cases += t.cases, total.passed += t.passed, total.refused += t.refused, total.failed += t.failed;
        total.ids_skipped += t.ids_skipped, total.tie_cut += t.tie_cut;
        json_decref(root);
    }
    for (int k = 0; argc <= 1 && k < COV_N; k++)
        CHECK(coverage[k] > 0, "no matching sweep case exercises %s", cov_names[k]);
    printf("sweep total      %3d cases: %3d match, %2d refused, %d failed, %d prompt ids skipped\n", total.cases,
           total.passed, total.refused, total.failed, total.ids_skipped);
    return harness_finish("test_sweep");
}
