/* test_models.c - vlmchat's decoder against transformers, token for token.
 *
 * For each tiny random model in tests/fixtures/models (Llama with a byte-level
 * tokenizer and ChatML, Mistral with a SentencePiece tokenizer and a sliding
 * window, Phi-3 with LongRoPE and prompts on both sides of
 * original_max_position_embeddings), reference.json holds what transformers
 * produced: the chat-templated prompt ids, greedy generate() ids, and the
 * logits of the first and last generation steps.
 */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "harness.h"
#include "model/generate.h"
#include "model/model.h"

static const char *MODELS[] = { "llama", "mistral", "phi3" };

static float max_abs_diff(const float *got, json_t *want, int n, float *scale)
{
    float worst = 0, big = 0;
    for (int i = 0; i < n; i++) {
        float w = (float)json_number_value(json_array_get(want, (size_t)i));
        worst = fmaxf(worst, fabsf(got[i] - w));
        big = fmaxf(big, fabsf(w));
    }
    *scale = big;
    return worst;
}

static void check_prompt(vc_model *m, const char *name, json_t *c)
{
    json_t *msgs = json_object_get(c, "messages");
    size_t n = json_array_size(msgs);
    vc_chat_msg *cm = calloc(n, sizeof *cm);
    for (size_t i = 0; i < n; i++) {
        cm[i].role = json_string_value(json_object_get(json_array_get(msgs, i), "role"));
        cm[i].content = json_string_value(json_object_get(json_array_get(msgs, i), "content"));
    }
    char *text = vc_chat_render(&m->chat, cm, n, true);
    const char *want_text = json_string_value(json_object_get(c, "prompt_text"));
    CHECK(text && strcmp(text, want_text) == 0, "%s: chat text differs:\n got  [%s]\n want [%s]", name, text,
          want_text);
    int32_t *ids;
    size_t n_ids, n_want;
    int32_t *want = json_ids(json_object_get(c, "prompt_ids"), &n_want);
    CHECK(vc_tokenizer_encode(m->tok, text, strlen(text), false, &ids, &n_ids) == 0, "%s: encode", name);
    bool same = n_ids == n_want && memcmp(ids, want, n_ids * sizeof *ids) == 0;
    CHECK(same, "%s: prompt ids differ (%zu vs %zu tokens)", name, n_ids, n_want);
    free(ids);
    free(want);
    free(text);
    free(cm);
}

static void check_generation(vc_model *m, const char *name, json_t *c)
{
    size_t n_prompt, n_gen;
    int32_t *prompt = json_ids(json_object_get(c, "prompt_ids"), &n_prompt);
    int32_t *want = json_ids(json_object_get(c, "generated_ids"), &n_gen);
    vc_llm_truncate(&m->llm, 0);
    vc_gen_options opt = { .max_tokens = (int)n_gen, .ignore_eos = true, .sampling = vc_sampler_defaults() };
    opt.sampling.temperature = 0;
    vc_gen_result r;
    int rc = vc_generate(m, prompt, n_prompt, &opt, &r);
    CHECK(rc == 0, "%s: generate failed: %s", name, vc_error());
    size_t same = 0;
    while (same < r.n_tokens && same < n_gen && r.tokens[same] == want[same])
        same++;
    CHECK(r.n_tokens == n_gen && same == n_gen, "%s: greedy ids differ from transformers at step %zu of %zu", name,
          same, n_gen);
    vc_gen_result_free(&r);

    /* logits of the first and the last step */
    int nv = m->llm.cfg.n_vocab;
    float *logits = malloc((size_t)nv * sizeof *logits), scale;
    vc_llm_truncate(&m->llm, 0);
    CHECK(vc_llm_forward(&m->llm, prompt, (int)n_prompt, logits) == 0, "%s: forward", name);
    float d = max_abs_diff(logits, json_object_get(c, "first_logits"), nv, &scale);
    CHECK(d <= 1e-4f * fmaxf(scale, 1.0f), "%s: first-step logits differ by %g (scale %g)", name, d, scale);
    for (size_t i = 0; i + 1 < n_gen; i++)
        vc_llm_forward(&m->llm, &want[i], 1, logits);
    d = max_abs_diff(logits, json_object_get(c, "last_logits"), nv, &scale);
    CHECK(d <= 1e-4f * fmaxf(scale, 1.0f), "%s: last-step logits differ by %g (scale %g)", name, d, scale);
    free(logits);
    free(prompt);
    free(want);
}

static void test_model(const char *name, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/reference.json", dir);
    json_error_t err;
    json_t *ref = json_load_file(path, 0, &err);
    CHECK(ref != NULL, "%s: %s", path, err.text);
    vc_model m;
    int rc = vc_model_open(dir, &(vc_model_options){ .n_ctx = 256 }, &m);
    CHECK(rc == 0, "%s: load failed: %s", name, vc_error());
    if (rc == 0) {
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(ref, "cases"), i, c)
        {
            char label[128];
            snprintf(label, sizeof label, "%s/%s", name, json_string_value(json_object_get(c, "conversation")));
            check_prompt(&m, label, c);
            check_generation(&m, label, c);
        }
        vc_model_close(&m);
    }
    json_decref(ref);
}

/* The same model with the older rope_theta/rope_scaling config keys: a
 * directory of links to the fixture's files with legacy_config.json as config.json. */
static void test_legacy_config(const char *name)
{
    static const char *files[] = { "tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                                   "generation_config.json", "model.safetensors", "model.safetensors.index.json",
                                   "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                                   "model-00003-of-00003.safetensors", "reference.json", "config.json" };
    char tmp[] = "/tmp/vlmchat-legacy-XXXXXX", cwd[1024], src[2048], dst[2048];
    if (!mkdtemp(tmp) || !getcwd(cwd, sizeof cwd))
        return;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        bool config = strcmp(files[i], "config.json") == 0;
        snprintf(src, sizeof src, "%.1000s/%.500s/%.100s/%.100s", cwd, fixture("models"), name,
                 config ? "legacy_config.json" : files[i]);
        snprintf(dst, sizeof dst, "%.100s/%.100s", tmp, files[i]);
        if (access(src, F_OK) == 0)
            CHECK(symlink(src, dst) == 0, "symlink %s", dst);
    }
    char label[64];
    snprintf(label, sizeof label, "%s(legacy config)", name);
    test_model(label, tmp);
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(dst, sizeof dst, "%.100s/%.100s", tmp, files[i]);
        unlink(dst);
    }
    rmdir(tmp);
}

/* Why generation stopped: the interrupt flag wins over the callback's own
 * "stop" when the callback stopped because it saw the flag (a server job whose
 * client went away); a callback stopping on its own is VC_STOP_OUTPUT. */
typedef struct {
    int calls, stop_at;
    volatile sig_atomic_t *flag;   /* set at call stop_at, or NULL: just return 1 */
} stop_probe;

static int probe_text(void *ctx, const char *text, size_t len)
{
    (void)text, (void)len;
    stop_probe *p = ctx;
    if (++p->calls < p->stop_at)
        return 0;
    if (p->flag)
        *p->flag = 1;
    return 1;
}

static void test_stop_reasons(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/reference.json", dir);
    json_t *ref = json_load_file(path, 0, NULL);
    size_t n_prompt = 0;
    int32_t *prompt = ref ? json_ids(json_object_get(json_array_get(json_object_get(ref, "cases"), 0), "prompt_ids"),
                                     &n_prompt) : NULL;
    json_decref(ref);
    vc_model m;
    if (!prompt || vc_model_open(dir, &(vc_model_options){ .n_ctx = 256 }, &m) != 0) {
        CHECK(0, "stop reasons: load %s: %s", dir, vc_error());
        free(prompt);
        return;
    }
    volatile sig_atomic_t flag = 0;
    for (int interrupting = 0; interrupting < 2; interrupting++) {
        stop_probe p = { .stop_at = 3, .flag = interrupting ? &flag : NULL };
        flag = 0;
        vc_gen_options opt = { .max_tokens = 20, .ignore_eos = true, .sampling = vc_sampler_defaults(),
                               .on_text = probe_text, .ctx = &p, .interrupt = &flag };
        opt.sampling.temperature = 0;
        vc_gen_result r;
        vc_llm_truncate(&m.llm, 0);
        CHECK(vc_generate(&m, prompt, n_prompt, &opt, &r) == 0, "stop reasons: generate: %s", vc_error());
        vc_stop_reason want = interrupting ? VC_STOP_INTERRUPT : VC_STOP_OUTPUT;
        CHECK(r.stop == want, "callback stop %s: got %s, want %s", interrupting ? "with interrupt" : "alone",
              vc_stop_reason_name(r.stop), vc_stop_reason_name(want));
        CHECK(r.n_tokens < 20, "callback stop ends generation early (%zu tokens)", r.n_tokens);
        vc_gen_result_free(&r);
    }
    vc_model_close(&m);
    free(prompt);
}

int main(void)
{
    for (size_t i = 0; i < sizeof MODELS / sizeof *MODELS; i++) {
        char dir[2048];
        snprintf(dir, sizeof dir, "%.1000s/%.100s", fixture("models"), MODELS[i]);
        test_model(MODELS[i], dir);
    }
    test_legacy_config("phi3");
    test_legacy_config("mistral");
    char dir[2048];
    snprintf(dir, sizeof dir, "%.1000s/%.100s", fixture("models"), "mistral");
    test_stop_reasons(dir);
    return harness_finish("test_models");
}
