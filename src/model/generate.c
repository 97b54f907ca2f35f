/* generate.c - see include/model/generate.h */
#include "model/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "text/stream.h"

const char *vc_stop_reason_name(vc_stop_reason r)
{
    static const char *names[] = { "eos", "length", "context", "interrupted", "output_closed" };
    return names[r];
}

void vc_gen_result_free(vc_gen_result *r)
{
    free(r->tokens);
    free(r->text);
    memset(r, 0, sizeof *r);
}

static int push_token(vc_gen_result *r, size_t *cap, int32_t id)
{
    if (vc_reserve((void **)&r->tokens, cap, r->n_tokens + 1, sizeof *r->tokens) != 0)
        return -1;
    r->tokens[r->n_tokens++] = id;
    return 0;
}

/* Hands new text to the callback; 1 if the callback asked to stop. */
static int deliver(const vc_gen_options *opt, const char *text, size_t len)
{
    if (!len || !opt->on_text)
        return 0;
    return opt->on_text(opt->ctx, text, len) != 0;
}

/* Why a callback asked to stop: one that saw the interrupt flag (a server
 * job whose client went away) stops for it, not for its output. */
static vc_stop_reason callback_stop(const vc_gen_options *opt)
{
    return opt->interrupt && *opt->interrupt ? VC_STOP_INTERRUPT : VC_STOP_OUTPUT;
}

/* NaN logits mean corrupt weights (or an overflow); scanning the logits is
 * cheap, unlike scanning every weight at load. */
static bool logits_broken(const float *logits, int n)
{
    for (int i = 0; i < n; i++)
        if (isnan(logits[i]))
            return true;
    return false;
}

int vc_generate(vc_model *m, const int32_t *prompt, size_t n_prompt, const vc_gen_options *opt, vc_gen_result *r)
{
    memset(r, 0, sizeof *r);
    r->prompt_tokens = n_prompt;
    vc_llm *llm = &m->llm;
    int n_vocab = llm->cfg.n_vocab;
    if (n_prompt == 0)
        return vc_fail_code(VC_EXIT_INPUT, "the prompt is empty");
    if (llm->cfg.prefix_bidirectional > 0 && llm->n_past < llm->cfg.prefix_bidirectional && !opt->prompt_embd)
        return vc_fail_code(VC_EXIT_USAGE, "this model reads one image before each question: attach one image per "
                            "question (--image, /image)");
    if (n_prompt > (size_t)(llm->n_ctx - llm->n_past))
        return vc_fail_code(VC_EXIT_INPUT, "the prompt is %zu tokens but only %d of the %d-token context are free "
                            "(use --ctx to enlarge it)", n_prompt, llm->n_ctx - llm->n_past, llm->n_ctx);
    float *logits = vc_malloc((size_t)n_vocab * sizeof *logits);
    /* the repetition penalty looks at prompt and reply together */
    int32_t *history = vc_malloc((n_prompt + (size_t)VC_MAX(opt->max_tokens, 0) + 1) * sizeof *history);
    vc_sampler sampler;
    if (!logits || !history || vc_sampler_init(&sampler, &opt->sampling, n_vocab) != 0) {
        free(logits);
        free(history);
        return -1;
    }
    memcpy(history, prompt, n_prompt * sizeof *prompt);
    size_t n_history = n_prompt, cap = 0;
    bool callback_stopped = false;
    vc_text_stream stream;
    vc_stream_init(&stream, m->tok);
    const char *piece;
    size_t piece_len;
    double t0 = vc_now_ms();
    int rc = opt->prompt_embd ? vc_llm_forward_embd(llm, opt->prompt_embd, (int)n_prompt, logits)
                              : vc_llm_forward(llm, prompt, (int)n_prompt, logits);
    r->prefill_ms = vc_now_ms() - t0;
    if (rc == 0 && logits_broken(logits, n_vocab))
        rc = vc_fail_code(VC_EXIT_MODEL, "the model produced NaN logits: its weights are corrupt");
    t0 = vc_now_ms();
    r->stop = VC_STOP_LENGTH;
    while (rc == 0 && (int)r->n_tokens < opt->max_tokens) {
        if (opt->interrupt && *opt->interrupt) {
            r->stop = VC_STOP_INTERRUPT;
            break;
        }
        if (opt->ignore_eos)
            for (int i = 0; i < llm->cfg.n_eos; i++)
                if (llm->cfg.eos_ids[i] >= 0 && llm->cfg.eos_ids[i] < n_vocab)
                    logits[llm->cfg.eos_ids[i]] = -INFINITY;
        /* Moondream masks its answer token at every step after the first */
        int32_t suppress = m->vision ? m->vision->suppress_after_first : -1;
        if (r->n_tokens > 0 && suppress >= 0 && suppress < n_vocab)
            logits[suppress] = -INFINITY;
        int32_t next = vc_sampler_pick(&sampler, logits, history, n_history);
        if (!opt->ignore_eos && vc_model_is_eos(m, next)) {
            r->stop = VC_STOP_EOS;
            break;
        }
        if ((rc = push_token(r, &cap, next)) != 0)
            break;
        history[n_history++] = next;
        /* an id the model has but the tokenizer lacks decodes to nothing, as in `tokenizers` */
        piece_len = 0;
        if (next < vc_tokenizer_size(m->tok) && (rc = vc_stream_push(&stream, next, &piece, &piece_len)) != 0)
            break;
        if (deliver(opt, piece, piece_len)) {
            r->stop = callback_stop(opt);
            callback_stopped = true;
            break;
        }
        if ((int)r->n_tokens == opt->max_tokens)
            break;
        if (llm->n_past >= llm->n_ctx) {
            r->stop = VC_STOP_CONTEXT;
            break;
        }
        rc = vc_llm_forward(llm, &next, 1, logits);
        if (rc == 0 && logits_broken(logits, n_vocab))
            rc = vc_fail_code(VC_EXIT_MODEL, "the model produced NaN logits: its weights are corrupt");
    }
    r->decode_ms = vc_now_ms() - t0;
    /* the stream's held-back bytes, unless the callback wants no more */
    if (rc == 0 && vc_stream_finish(&stream, &piece, &piece_len) == 0 && !callback_stopped &&
        deliver(opt, piece, piece_len) && r->stop != VC_STOP_INTERRUPT)
        r->stop = callback_stop(opt);
    /* the reply text is the stream's decoded text */
    r->text = stream.text ? stream.text : vc_strdup("");
    r->text_len = stream.text ? stream.len : 0;
    stream.text = NULL;
    vc_stream_free(&stream);
    vc_sampler_free(&sampler);
    free(logits);
    free(history);
    return rc;
}
