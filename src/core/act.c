/* act.c - see include/core/act.h */
#include "core/act.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/common.h"
#include "core/cpu.h"
#include "core/threads.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define VC_HAVE_X86 1
#include "simd_x86.h"
#endif

int vc_act_from_name(const char *name)
{
    if (!name)
        return -1;
    if (strcmp(name, "quick_gelu") == 0)
        return VC_ACT_QUICK_GELU;
    if (strcmp(name, "gelu") == 0)
        return VC_ACT_GELU;
    if (strcmp(name, "gelu_pytorch_tanh") == 0 || strcmp(name, "gelu_new") == 0 || strcmp(name, "gelu_fast") == 0)
        return VC_ACT_GELU_TANH;
    if (strcmp(name, "silu") == 0)
        return VC_ACT_SILU;
    return -1;
}

static float silu(float v) { return v / (1.0f + expf(-v)); }

void vc_act_apply_ref(vc_act act, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        switch (act) {
        case VC_ACT_QUICK_GELU: x[i] = v / (1.0f + expf(-1.702f * v)); break;
        case VC_ACT_GELU: x[i] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); break;
        case VC_ACT_GELU_TANH: {
            /* 1 + tanh(u) = 2 - 2 / (1 + e^2u): one expf instead of tanhf's expm1f and more; the
             * difference is a few 1e-8, far inside the fidelity bound */
            float u = 0.79788456080286536f * (v + 0.044715f * v * v * v);
            x[i] = 0.5f * v * (2.0f - 2.0f / (1.0f + expf(2.0f * u)));
            break;
        }
        case VC_ACT_SILU: x[i] = silu(v); break;
        }
    }
}

void vc_swiglu_ref(float *gate, const float *up, size_t n)
{
    for (size_t i = 0; i < n; i++)
        gate[i] = silu(gate[i]) * up[i];
}

#ifdef VC_HAVE_X86
/* The same formulas eight at a time: v / (1 + e^(-a v)) for QUICK_GELU (a =
 * 1.702) and SILU (a = 1), the e^2u form for GELU_TANH. e^x overflowing to
 * +inf gives v / inf = -0 or 2 - 2/inf = 2, as expf does. */
VC_TARGET_AVX2 static inline __m256 act8(vc_act act, __m256 v)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    if (act == VC_ACT_GELU_TANH) {
        __m256 v3 = _mm256_mul_ps(_mm256_mul_ps(v, v), v);
        __m256 u = _mm256_mul_ps(_mm256_set1_ps(0.79788456080286536f),
                                 _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), v3, v));
        __m256 e = vc_exp256(_mm256_mul_ps(_mm256_set1_ps(2.0f), u));
        __m256 t = _mm256_sub_ps(_mm256_set1_ps(2.0f), _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(one, e)));
        return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v), t);
    }
    __m256 a = _mm256_set1_ps(act == VC_ACT_QUICK_GELU ? -1.702f : -1.0f);
    return _mm256_div_ps(v, _mm256_add_ps(one, vc_exp256(_mm256_mul_ps(a, v))));
}

VC_TARGET_AVX2 static void act_avx2(vc_act act, float *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, act8(act, _mm256_loadu_ps(x + i)));
    vc_act_apply_ref(act, x + i, n - i);
}

VC_TARGET_AVX2 static void swiglu_avx2(float *gate, const float *up, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(act8(VC_ACT_SILU, _mm256_loadu_ps(gate + i)), _mm256_loadu_ps(up + i)));
    vc_swiglu_ref(gate + i, up + i, n - i);
}
#endif

typedef struct {
    vc_act act;
    float *x;
    const float *up;   /* set: SwiGLU */
    size_t n;
} act_job;

/* Work items of this many values (a multiple of 8: whole vectors until the end). */
enum { ACT_CHUNK = 4096 };

/* A prefill or a vision tower's MLP holds millions of values, one token's
 * a few thousand: each chunk on its own (vc_parallel_for runs a single one
 * on the caller), so the split does not change the result. */
static void act_chunks(void *ctx, int64_t begin, int64_t end, int worker)
{
    const act_job *j = ctx;
    size_t from = (size_t)begin * ACT_CHUNK, n = VC_MIN((size_t)end * ACT_CHUNK, j->n) - from;
    float *x = j->x + from;
#ifdef VC_HAVE_X86
    if (j->act != VC_ACT_GELU && vc_isa_has(VC_ISA_AVX2)) {
        if (j->up)
            swiglu_avx2(x, j->up + from, n);
        else
            act_avx2(j->act, x, n);
        return;
    }
#endif
    if (j->up)
        vc_swiglu_ref(x, j->up + from, n);
    else
        vc_act_apply_ref(j->act, x, n);
}

static void run(act_job *j) { vc_parallel_for((int64_t)((j->n + ACT_CHUNK - 1) / ACT_CHUNK), act_chunks, j); }

void vc_act_apply(vc_act act, float *x, size_t n)
{
    act_job j = { act, x, NULL, n };
    run(&j);
}

void vc_swiglu(float *gate, const float *up, size_t n)
{
    act_job j = { VC_ACT_SILU, gate, up, n };
    run(&j);
}
