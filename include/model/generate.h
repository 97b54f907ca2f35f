/* generate.h - the token loop: prefill, then sample/forward until a stop.
 *
 * Text is streamed through a callback as soon as it is complete UTF-8
 * (a token that ends inside a multi-byte character is held back until the
 * character is finished).  The loop stops at an end-of-sequence token (unless
 * ignore_eos), after max_tokens, when the context is full, when *interrupt
 * becomes non-zero, or when the callback returns non-zero.
 */
#ifndef VC_MODEL_GENERATE_H
#define VC_MODEL_GENERATE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

typedef int (*vc_text_fn)(void *ctx, const char *text, size_t len);

typedef struct {
    int max_tokens;
    bool ignore_eos;               /* mask end-of-sequence/turn logits */
    vc_sampler_params sampling;
    vc_text_fn on_text;            /* may be NULL */
    void *ctx;
    volatile sig_atomic_t *interrupt;   /* may be NULL */
    const float *prompt_embd;      /* n_prompt x dim input embeddings (images); NULL: embed the ids */
} vc_gen_options;

/* INTERRUPT: *interrupt was set (also when on_text returned nonzero because
 * of it); OUTPUT: on_text asked to stop for its own reason (a closed pipe, a
 * stop string). */
typedef enum { VC_STOP_EOS, VC_STOP_LENGTH, VC_STOP_CONTEXT, VC_STOP_INTERRUPT, VC_STOP_OUTPUT } vc_stop_reason;

typedef struct {
    int32_t *tokens;               /* generated ids (malloc'd) */
    size_t n_tokens;
    char *text;                    /* decoded reply, special tokens skipped (malloc'd) */
    size_t text_len;
    size_t prompt_tokens;
    double prefill_ms, decode_ms;
    vc_stop_reason stop;
} vc_gen_result;

const char *vc_stop_reason_name(vc_stop_reason r);

/* Appends prompt[0..n) to the model's context (after what is cached) and
 * generates. On error the result holds what was produced so far. */
int vc_generate(vc_model *m, const int32_t *prompt, size_t n_prompt, const vc_gen_options *opt, vc_gen_result *res);
void vc_gen_result_free(vc_gen_result *r);

#endif
