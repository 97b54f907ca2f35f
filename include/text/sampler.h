/* sampler.h - choosing the next token from logits.
 *
 * Order as in transformers: repetition penalty, then (when sampling)
 * temperature, top-k, top-p, min-p, then a draw.  temperature <= 0 is greedy:
 * the first index of the largest logit, like torch.argmax.
 */
#ifndef VC_TEXT_SAMPLER_H
#define VC_TEXT_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    float temperature;      /* <= 0: greedy */
    int top_k;              /* <= 0: off */
    float top_p;            /* >= 1: off */
    float min_p;            /* <= 0: off */
    float repeat_penalty;   /* 1: off */
    int repeat_last_n;      /* tokens of history the penalty looks at; < 0: all */
    uint64_t seed;
} vc_sampler_params;

typedef struct {
    vc_sampler_params p;
    uint64_t rng;
    int32_t *order;         /* scratch: candidate ids */
    float *probs;
    int n_vocab;
} vc_sampler;

/* Defaults: greedy off (temperature 0.7, top-p 0.9), no penalty, seed 0. */
vc_sampler_params vc_sampler_defaults(void);
int vc_sampler_init(vc_sampler *s, const vc_sampler_params *p, int n_vocab);
void vc_sampler_free(vc_sampler *s);
/* Picks a token. logits (n_vocab) are modified in place. history is the
 * token sequence so far (prompt and generated) for the repetition penalty. */
int32_t vc_sampler_pick(vc_sampler *s, float *logits, const int32_t *history, size_t n_history);
/* Index of the largest value (first on ties). */
int32_t vc_argmax(const float *v, int n);

#endif
