/* sampler.c - see include/text/sampler.h */
#include "text/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

vc_sampler_params vc_sampler_defaults(void)
{
    return (vc_sampler_params){ .temperature = 0.7f, .top_k = 0, .top_p = 0.9f, .min_p = 0.0f,
                                .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 0 };
}

int vc_sampler_init(vc_sampler *s, const vc_sampler_params *p, int n_vocab)
{
    memset(s, 0, sizeof *s);
    s->p = *p;
    s->n_vocab = n_vocab;
    s->rng = p->seed ^ 0x9e3779b97f4a7c15ull;
    s->order = vc_malloc((size_t)n_vocab * sizeof *s->order);
    s->probs = vc_malloc((size_t)n_vocab * sizeof *s->probs);
    if (!s->order || !s->probs) {
        vc_sampler_free(s);
        return -1;
    }
    return 0;
}

void vc_sampler_free(vc_sampler *s)
{
    free(s->order);
    free(s->probs);
    memset(s, 0, sizeof *s);
}

int32_t vc_argmax(const float *v, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

/* splitmix64: small, fast, and reproducible across platforms. */
static double next_uniform(vc_sampler *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}

static const float *sort_logits;

static int by_logit_desc(const void *a, const void *b)
{
    float x = sort_logits[*(const int32_t *)a], y = sort_logits[*(const int32_t *)b];
    if (x != y)
        return x < y ? 1 : -1;
    return *(const int32_t *)a - *(const int32_t *)b;
}

/* transformers' RepetitionPenalty: each distinct earlier token's logit is
 * divided by the penalty if positive, multiplied if negative. */
static void apply_repetition_penalty(const vc_sampler *s, float *logits, const int32_t *h, size_t n)
{
    if (s->p.repeat_penalty == 1.0f || n == 0)
        return;
    size_t from = s->p.repeat_last_n >= 0 && (size_t)s->p.repeat_last_n < n ? n - (size_t)s->p.repeat_last_n : 0;
    unsigned char *seen = calloc((size_t)s->n_vocab, 1);
    for (size_t i = from; i < n; i++) {
        int32_t t = h[i];
        if (t < 0 || t >= s->n_vocab || (seen && seen[t]))
            continue;
        if (seen)
            seen[t] = 1;
        logits[t] = logits[t] > 0 ? logits[t] / s->p.repeat_penalty : logits[t] * s->p.repeat_penalty;
    }
    free(seen);
}

int32_t vc_sampler_pick(vc_sampler *s, float *logits, const int32_t *history, size_t n_history)
{
    int n = s->n_vocab;
    apply_repetition_penalty(s, logits, history, n_history);
    if (s->p.temperature <= 0)
        return vc_argmax(logits, n);
    for (int i = 0; i < n; i++) {
        logits[i] /= s->p.temperature;
        s->order[i] = i;
    }
    sort_logits = logits;
    qsort(s->order, (size_t)n, sizeof *s->order, by_logit_desc);
    int keep = n;
    if (s->p.top_k > 0 && s->p.top_k < keep)
        keep = s->p.top_k;
    float maxv = logits[s->order[0]];
    double sum = 0;
    for (int i = 0; i < keep; i++) {
        s->probs[i] = expf(logits[s->order[i]] - maxv);
        sum += s->probs[i];
    }
    for (int i = 0; i < keep; i++)
        s->probs[i] = (float)(s->probs[i] / sum);
    if (s->p.top_p < 1.0f) {                  /* smallest prefix with mass >= top_p */
        double cum = 0;
        for (int i = 0; i < keep; i++) {
            cum += s->probs[i];
            if (cum >= s->p.top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    if (s->p.min_p > 0) {                     /* drop tokens below min_p x the best */
        float floor_p = s->p.min_p * s->probs[0];
        int k = 1;
        while (k < keep && s->probs[k] >= floor_p)
            k++;
        keep = k;
    }
    double total = 0;
    for (int i = 0; i < keep; i++)
        total += s->probs[i];
    double r = next_uniform(s) * total;
    for (int i = 0; i < keep; i++) {
        r -= s->probs[i];
        if (r <= 0)
            return s->order[i];
    }
    return s->order[keep - 1];
}
