/* cpu.h - the one decision of which instructions the kernels may use.
 *
 * What the x86 CPU (and the OS, which must save the wider registers) offers
 * is asked once through CPUID and XGETBV; off x86-64 it offers nothing past
 * plain C. The levels below are sets of features, each on top of the ones
 * before it; the level in effect is the highest one the CPU has, capped by
 * VLMCHAT_ISA (one of the names vc_isa_name gives; an unknown name is
 * ignored) or, in tests, by vc_isa_set. The kernel modules (dot.c, gemm.c,
 * int8dot.c, act.c) ask vc_isa_has() when they run and take their best
 * variant the answer allows, so every decision follows this one.
 */
#ifndef VC_CORE_CPU_H
#define VC_CORE_CPU_H

#include <stdbool.h>

typedef enum {
    VC_ISA_DEFAULT = -1,   /* for vc_isa_set: the level chosen at start */
    VC_ISA_GENERIC = 0,    /* "generic": the plain-C reference kernels */
    VC_ISA_AVX2,           /* "avx2": AVX2 with FMA and F16C, YMM state saved by the OS */
    VC_ISA_AVX_VNNI,       /* "avx-vnni": dpbusd on 256-bit vectors without AVX-512 */
    VC_ISA_AVX512,         /* "avx512": AVX-512 F, BW, DQ and VL, opmask and ZMM state saved */
    VC_ISA_AVX512_VNNI,    /* "avx512-vnni": AVX-512 VNNI */
    VC_ISA_AMX             /* "amx": AMX-TILE and AMX-INT8 on top of AVX-512 VNNI, tile data
                            * state granted to the process by the OS (Linux: arch_prctl) */
} vc_isa;

#define VC_ISA_COUNT (VC_ISA_AMX + 1)

/* The level in effect: the highest level the CPU has that is at most the
 * cap. (A CPU may have a level without the ones before it, e.g. AVX-512
 * VNNI without AVX-VNNI: a cap of avx-vnni is then avx2 there.) */
vc_isa vc_isa_level(void);

/* Whether the kernels may use `feature` now: it is at most the level in
 * effect and the CPU has it (AVX-VNNI under an AVX-512 level only where it
 * is there). False for VC_ISA_DEFAULT and out-of-range values; always true
 * for VC_ISA_GENERIC. */
bool vc_isa_has(vc_isa feature);

/* The name of a level ("generic", "avx2", "avx-vnni", "avx512",
 * "avx512-vnni"); "?" for anything else. */
const char *vc_isa_name(vc_isa level);

/* The level named `name` into *out; -1 (vc_fail naming the value and the
 * names there are) for NULL or an unknown name. */
int vc_isa_parse(const char *name, vc_isa *out);

/* For tests and comparisons: caps the level at `cap` from now on
 * (VC_ISA_DEFAULT: the cap from VLMCHAT_ISA again, or none). Returns the
 * level now in effect, which is below `cap` where the CPU lacks it. Not
 * for use while other threads run kernels. */
vc_isa vc_isa_set(vc_isa cap);

/* Whether the CPU runs 512-bit vector instructions at full width (Intel's
 * AVX-512 cores; AMD's from Zen 5, family 0x1A, where Zen 4 splits each in
 * two halves): the kernels that gain from 512-bit vectors only there (the
 * one-token interleaved products, memory-bound) ask this, once per call.
 * False without AVX-512 at the level in effect. */
bool vc_cpu_full_width_512(void);

/* For tests and comparisons: 1 or 0 sets vc_cpu_full_width_512's answer
 * (still false without AVX-512), -1 gives it back to the CPU. */
void vc_cpu_set_full_width_512(int on);

#endif
