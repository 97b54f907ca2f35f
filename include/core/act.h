/* act.h - activation functions over arrays: the vision towers' MLPs and
 * projectors, and the language model's SwiGLU.
 *
 * The _ref functions are the plain-C definitions (expf, erff); the others
 * run AVX2 (with core's own exponential) where the CPU has it, on the
 * thread pool when there is enough to share, and agree with the reference
 * to a few float roundings (tests/test_quant.c). GELU with erf stays plain C.
 * The pool-running ones must not be called from inside vc_parallel_for.
 */
#ifndef VC_CORE_ACT_H
#define VC_CORE_ACT_H

#include <stddef.h>

typedef enum { VC_ACT_QUICK_GELU, VC_ACT_GELU, VC_ACT_GELU_TANH, VC_ACT_SILU } vc_act;

/* By HF name ("quick_gelu", "gelu", "gelu_pytorch_tanh", "silu", ...); -1 if unknown. */
int vc_act_from_name(const char *name);

/* x[i] = act(x[i]) for i < n. */
void vc_act_apply(vc_act act, float *x, size_t n);
void vc_act_apply_ref(vc_act act, float *x, size_t n);

/* gate[i] = silu(gate[i]) * up[i] for i < n (the MLP of Llama-style models). */
void vc_swiglu(float *gate, const float *up, size_t n);
void vc_swiglu_ref(float *gate, const float *up, size_t n);

#endif
