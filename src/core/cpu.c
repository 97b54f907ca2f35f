/* cpu.c - see include/core/cpu.h */
#include "core/cpu.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <stdlib.h>

enum { HAVE_AVX2 = 1, HAVE_AVXVNNI = 2, HAVE_AVX512 = 4, HAVE_AVX512VNNI = 8 };

static unsigned xcr0(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return lo;
}

/* Leaf 1 ECX: FMA bit 12, OSXSAVE 27, AVX 28, F16C 29. Leaf 7.0 EBX: AVX2
 * bit 5, AVX-512 F 16, DQ 17, BW 30, VL 31; ECX: AVX-512 VNNI bit 11. Leaf
 * 7.1 EAX: AVX-VNNI bit 4. XCR0: XMM and YMM bits 1-2, opmask and ZMM 5-7. */
static unsigned detect(void)
{
    unsigned a, b, c, d, found = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    unsigned want1 = 1u << 12 | 1u << 27 | 1u << 28 | 1u << 29;
    if ((c & want1) != want1 || (xcr0() & 6) != 6 || !__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & (1u << 5)))
        return 0;
    found |= HAVE_AVX2;
    unsigned want512 = 1u << 16 | 1u << 17 | 1u << 30 | 1u << 31;
    bool refused = getenv("VLMCHAT_NO_AVX512") != NULL;   /* for comparing, or where 512-bit work lowers the clock */
    if (!refused && (b & want512) == want512 && (xcr0() & 0xe6) == 0xe6) {
        found |= HAVE_AVX512;
        if (c & (1u << 11))
            found |= HAVE_AVX512VNNI;
    }
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 4)))
        found |= HAVE_AVXVNNI;
    return found;
}

static unsigned features(void)
{
    static int known = -1;   /* the same answer for every thread: racing first calls store the same value */
    if (known < 0)
        known = (int)detect();
    return (unsigned)known;
}

bool vc_cpu_avx2(void) { return features() & HAVE_AVX2; }
bool vc_cpu_avxvnni(void) { return features() & HAVE_AVXVNNI; }
bool vc_cpu_avx512(void) { return features() & HAVE_AVX512; }
bool vc_cpu_avx512vnni(void) { return features() & HAVE_AVX512VNNI; }

#else
bool vc_cpu_avx2(void) { return false; }
bool vc_cpu_avxvnni(void) { return false; }
bool vc_cpu_avx512(void) { return false; }
bool vc_cpu_avx512vnni(void) { return false; }
#endif
