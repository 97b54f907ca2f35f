/* test_text.c - streaming detokenization, sampling, chat formats. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "harness.h"
#include "text/chat.h"
#include "text/sampler.h"
#include "text/stream.h"
#include "text/tokenizer.h"

/* Pushes ids one by one; returns the concatenated releases, "|"-separated. */
static char *stream_releases(const vc_tokenizer *tok, const int32_t *ids, size_t n)
{
    vc_text_stream s;
    vc_stream_init(&s, tok);
    static char out[512];
    out[0] = 0;
    const char *piece;
    size_t len;
    for (size_t i = 0; i <= n; i++) {
        int rc = i < n ? vc_stream_push(&s, ids[i], &piece, &len) : vc_stream_finish(&s, &piece, &len);
        if (rc != 0)
            break;
        strncat(out, piece, len < sizeof out - strlen(out) - 2 ? len : 0);
        strcat(out, "|");
    }
    vc_stream_free(&s);
    return out;
}

static void test_stream(void)
{
    vc_tokenizer *sp, *bl;
    if (vc_tokenizer_load_json(fixture("tokenizers/sp_legacy/tokenizer.json"), &sp) != 0 ||
        vc_tokenizer_load_json(fixture("tokenizers/bytelevel_smollm/tokenizer.json"), &bl) != 0) {
        CHECK(0, "load: %s", vc_error());
        return;
    }
    /* SentencePiece byte fallback: é arrives as <0xC3><0xA9> */
    int32_t ids[] = { vc_tokenizer_find(sp, "\xE2\x96\x81" "s"), vc_tokenizer_find(sp, "<0xC3>"),
                      vc_tokenizer_find(sp, "<0xA9>"), vc_tokenizer_find(sp, "<0x21>") };
    CHECK(ids[0] >= 0 && ids[1] >= 0 && ids[2] >= 0 && ids[3] >= 0, "fixture pieces exist");
    const char *got = stream_releases(sp, ids, 4);
    CHECK(strcmp(got, "s||\xC3\xA9|!||") == 0, "byte fallback stream: [%s]", got);
    /* an unfinished character at the end becomes U+FFFD */
    int32_t cut[] = { ids[0], vc_tokenizer_find(sp, "<0xE2>") };
    got = stream_releases(sp, cut, 2);
    CHECK(strcmp(got, "s||\xEF\xBF\xBD|") == 0, "unfinished character: [%s]", got);
    /* byte-level: é is the two pieces "Ã" (0xC3) and "©" (0xA9) */
    int32_t bids[] = { vc_tokenizer_find(bl, "\xC3\x83"), vc_tokenizer_find(bl, "\xC2\xA9"), vc_tokenizer_find(bl, "x") };
    CHECK(bids[0] >= 0 && bids[1] >= 0 && bids[2] >= 0, "byte-level pieces exist");
    got = stream_releases(bl, bids, 3);
    CHECK(strcmp(got, "|\xC3\xA9|x||") == 0, "byte-level stream: [%s]", got);
    vc_tokenizer_free(sp);
    vc_tokenizer_free(bl);
}

static vc_sampler_params params(float temp)
{
    vc_sampler_params p = vc_sampler_defaults();
    p.temperature = temp;
    p.top_p = 1.0f;
    return p;
}

static int pick(vc_sampler *s, const float *logits, int n, const int32_t *hist, size_t nh)
{
    float copy[16];
    memcpy(copy, logits, (size_t)n * sizeof *copy);
    return vc_sampler_pick(s, copy, hist, nh);
}

static void test_sampler(void)
{
    vc_sampler s;
    float l[4] = { 0.5f, 2.0f, 2.0f, -1.0f };
    vc_sampler_params p = params(0);
    vc_sampler_init(&s, &p, 4);
    CHECK(pick(&s, l, 4, NULL, 0) == 1, "greedy takes the first maximum");
    vc_sampler_free(&s);

    p = params(1.0f);
    p.top_k = 1;
    vc_sampler_init(&s, &p, 4);
    int ok = 1;
    for (int i = 0; i < 50; i++)
        ok &= pick(&s, l, 4, NULL, 0) == 1;
    CHECK(ok, "top-k 1 is greedy");
    vc_sampler_free(&s);

    /* p = [0.25, 0.75] */
    float two[2] = { 0.0f, logf(3.0f) };
    p = params(1.0f);
    p.seed = 42;
    vc_sampler_init(&s, &p, 2);
    int ones = 0, first[20];
    for (int i = 0; i < 4000; i++) {
        int t = pick(&s, two, 2, NULL, 0);
        ones += t;
        if (i < 20)
            first[i] = t;
    }
    CHECK(fabs(ones / 4000.0 - 0.75) < 0.03, "sampling frequency %g, want 0.75", ones / 4000.0);
    vc_sampler_free(&s);
    vc_sampler_init(&s, &p, 2);
    int same = 1;
    for (int i = 0; i < 20; i++)
        same &= pick(&s, two, 2, NULL, 0) == first[i];
    CHECK(same, "same seed, same draws");
    vc_sampler_free(&s);

    p = params(1.0f);
    p.top_p = 0.5f;
    vc_sampler_init(&s, &p, 2);
    ok = 1;
    for (int i = 0; i < 200; i++)
        ok &= pick(&s, two, 2, NULL, 0) == 1;
    CHECK(ok, "top-p 0.5 keeps only the 0.75 token");
    vc_sampler_free(&s);

    float three[3] = { logf(0.6f), logf(0.3f), logf(0.1f) };
    p = params(1.0f);
    p.min_p = 0.2f;
    vc_sampler_init(&s, &p, 3);
    int saw[3] = { 0 };
    for (int i = 0; i < 2000; i++)
        saw[pick(&s, three, 3, NULL, 0)]++;
    CHECK(saw[2] == 0 && saw[0] > 0 && saw[1] > 0, "min-p 0.2 drops the 0.1 token (%d %d %d)", saw[0], saw[1], saw[2]);
    vc_sampler_free(&s);

    /* repetition penalty, as transformers applies it: divide positives, multiply negatives */
    int32_t hist[1] = { 0 };
    float pos[2] = { 2.0f, 1.9f }, neg[2] = { -1.0f, -1.2f };
    p = params(0);
    p.repeat_penalty = 1.5f;
    vc_sampler_init(&s, &p, 2);
    CHECK(pick(&s, pos, 2, hist, 1) == 1, "penalty on a positive logit");
    CHECK(pick(&s, neg, 2, hist, 1) == 1, "penalty on a negative logit");
    CHECK(pick(&s, pos, 2, NULL, 0) == 0, "no history, no penalty");
    vc_sampler_free(&s);
}

static void check_render(const char *label, const vc_chat *chat, const vc_chat_msg *m, size_t n, const char *want)
{
    char *got = vc_chat_render(chat, m, n, true);
    CHECK(got && strcmp(got, want) == 0, "%s:\n got  [%s]\n want [%s]", label, got, want);
    free(got);
}

static void test_chat(void)
{
    const char *smollm = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                         "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
                         "Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + "
                         "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
                         "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    CHECK(vc_chat_detect(smollm) == VC_CHAT_CHATML, "detect chatml");
    CHECK(vc_chat_detect("{{ '<|user|>' }}...<|end|>") == VC_CHAT_PHI3, "detect phi3");
    CHECK(vc_chat_detect("[INST] {{ m }} [/INST]") == VC_CHAT_MISTRAL, "detect mistral");
    CHECK(vc_chat_detect("[INST] <<SYS>>\\n") == VC_CHAT_LLAMA2, "detect llama2");
    CHECK(vc_chat_detect("<|start_header_id|>") == VC_CHAT_LLAMA3, "detect llama3");
    CHECK(vc_chat_detect("{{ messages }}") == VC_CHAT_RAW && vc_chat_detect(NULL) == VC_CHAT_RAW, "unknown is raw");
    CHECK(vc_chat_format_from_name("llama3") == VC_CHAT_LLAMA3 && vc_chat_format_from_name("x") < 0, "names");

    vc_chat chat;
    vc_chat_msg user[] = { { "user", "Hi", 0 } };
    vc_chat_msg conv[] = { { "system", "Be brief.", 0 }, { "user", "Hi", 0 }, { "assistant", "Hello!", 0 }, { "user", "Bye", 0 } };
    vc_chat_init(&chat, smollm, "<|im_start|>", "<|im_end|>");
    check_render("chatml default system", &chat, user, 1,
                 "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                 "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    check_render("chatml given system", &chat, conv, 2,
                 "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    vc_chat_free(&chat);

    vc_chat_init(&chat, NULL, "<|begin_of_text|>", "<|eot_id|>");
    vc_chat_set_format(&chat, VC_CHAT_LLAMA3);   /* the built-in format (no template) */
    check_render("llama3", &chat, conv, 4,
                 "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                 "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>"
                 "\n\nHello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
                 "<|start_header_id|>assistant<|end_header_id|>\n\n");
    CHECK(strcmp(vc_chat_end_of_turn(&chat), "<|eot_id|>") == 0, "llama3 end of turn");
    vc_chat_free(&chat);

    vc_chat_init(&chat, NULL, "<s>", "</s>");
    vc_chat_set_format(&chat, VC_CHAT_LLAMA2);   /* the built-in format (no template) */
    check_render("llama2", &chat, conv, 4,
                 "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST]");
    vc_chat_free(&chat);

    vc_chat_init(&chat, NULL, "<s>", "</s>");
    vc_chat_set_format(&chat, VC_CHAT_MISTRAL);   /* the built-in format (no template) */
    check_render("mistral with system", &chat, conv, 4, "<s>[INST] Be brief.\n\nHi [/INST]Hello!</s>[INST] Bye [/INST]");
    vc_chat_free(&chat);

    vc_chat_init(&chat, NULL, "<s>", "<|endoftext|>");
    vc_chat_set_format(&chat, VC_CHAT_PHI3);   /* the built-in format (no template) */
    check_render("phi3", &chat, conv, 2, "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\n");
    vc_chat_free(&chat);
}

int main(void)
{
    test_stream();
    test_sampler();
    test_chat();
    return harness_finish("test_text");
}
