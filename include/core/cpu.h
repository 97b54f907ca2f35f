/* cpu.h - what the x86 CPU (and the OS, which must save the wider
 * registers) lets the kernels use. Asked once through CPUID and XGETBV;
 * every answer is false off x86-64. The kernel modules decide from these
 * which of their variants to run (kernels.c, gemm.c, int8dot.c). With
 * VLMCHAT_NO_AVX512 set in the environment, AVX-512 counts as absent. */
#ifndef VC_CORE_CPU_H
#define VC_CORE_CPU_H

#include <stdbool.h>

/* AVX2 with FMA and F16C, and YMM state saved by the OS. */
bool vc_cpu_avx2(void);
/* AVX-VNNI (dpbusd on 256-bit vectors without AVX-512), on top of AVX2. */
bool vc_cpu_avxvnni(void);
/* AVX-512 F, BW, DQ and VL, with opmask and ZMM state saved by the OS, on top of AVX2. */
bool vc_cpu_avx512(void);
/* AVX-512 VNNI, on top of vc_cpu_avx512(). */
bool vc_cpu_avx512vnni(void);

#endif
