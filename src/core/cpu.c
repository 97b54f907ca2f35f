/* cpu.c - see include/core/cpu.h */
#include "core/cpu.h"

#include <stdlib.h>
#include <string.h>

#include "core/common.h"

#if defined(__x86_64__)
#include <cpuid.h>
#ifdef __linux__
#include <sys/syscall.h>
#include <unistd.h>
#endif

static unsigned xcr0(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return lo;
}

/* Asks the OS for the AMX tile data state (ARCH_REQ_XCOMP_PERM for
 * XFEATURE_XTILEDATA, 18); true when granted. */
static bool amx_permitted(void)
{
#if defined(__linux__) && defined(SYS_arch_prctl)
    return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
#else
    return false;
#endif
}

/* Bit (1 << level) for each level the CPU has. Leaf 1 ECX: FMA bit 12,
 * OSXSAVE 27, AVX 28, F16C 29. Leaf 7.0 EBX: AVX2 bit 5, AVX-512 F 16, DQ
 * 17, BW 30, VL 31; ECX: AVX-512 VNNI bit 11. Leaf 7.1 EAX: AVX-VNNI bit 4.
 * XCR0: XMM and YMM bits 1-2, opmask and ZMM 5-7. AMX: leaf 7.0 EDX bits 24
 * (AMX-TILE) and 25 (AMX-INT8), XCR0 bits 17-18 (tile configuration and
 * data); Linux also wants the process to ask for the tile data state (8 KiB
 * more per thread to save) before any thread touches a tile. */
static unsigned detect(void)
{
    unsigned a, b, c, d, found = 1u << VC_ISA_GENERIC;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return found;
    unsigned want1 = 1u << 12 | 1u << 27 | 1u << 28 | 1u << 29;
    if ((c & want1) != want1 || (xcr0() & 6) != 6 || !__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & (1u << 5)))
        return found;
    found |= 1u << VC_ISA_AVX2;
    unsigned want512 = 1u << 16 | 1u << 17 | 1u << 30 | 1u << 31;
    if ((b & want512) == want512 && (xcr0() & 0xe6) == 0xe6) {
        found |= 1u << VC_ISA_AVX512;
        if (c & (1u << 11))
            found |= 1u << VC_ISA_AVX512_VNNI;
    }
    unsigned want_amx = 1u << 24 | 1u << 25;
    if ((found & (1u << VC_ISA_AVX512_VNNI)) && (d & want_amx) == want_amx && (xcr0() & 0x60000) == 0x60000 &&
        amx_permitted())
        found |= 1u << VC_ISA_AMX;
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 4)))
        found |= 1u << VC_ISA_AVX_VNNI;
    return found;
}
#else
static unsigned detect(void) { return 1u << VC_ISA_GENERIC; }
#endif

#if defined(__x86_64__)
/* Intel, or AMD from family 0x1A (leaf 0's vendor string; leaf 1 EAX:
 * base family bits 8-11, extended family bits 20-27 added when base is 15). */
static bool full_width_cpu(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d))
        return false;
    bool intel = b == 0x756e6547 && d == 0x49656e69 && c == 0x6c65746e;   /* "GenuineIntel" */
    bool amd = b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163;     /* "AuthenticAMD" */
    if (!(intel || amd) || !__get_cpuid(1, &a, &b, &c, &d))
        return false;
    unsigned family = (a >> 8) & 0xf;
    if (family == 0xf)
        family += (a >> 20) & 0xff;
    return intel || family >= 0x1a;
}
#else
static bool full_width_cpu(void) { return false; }
#endif

static int full_width = -1;   /* vc_cpu_set_full_width_512's setting; -1: the CPU's */

bool vc_cpu_full_width_512(void)
{
    static int cpu = -1;   /* racing first calls store the same value */
    if (!vc_isa_has(VC_ISA_AVX512))
        return false;
    if (full_width >= 0)
        return full_width;
    if (cpu < 0)
        cpu = full_width_cpu();
    return cpu;
}

void vc_cpu_set_full_width_512(int on) { full_width = on < 0 ? -1 : on != 0; }

static const char *const names[VC_ISA_COUNT] = { "generic", "avx2", "avx-vnni", "avx512", "avx512-vnni", "amx" };

/* Decided at the first call; racing first calls store the same values. */
static int features = -1;   /* detect()'s bits */
static int level = -1;      /* the level in effect */

/* The highest level the CPU has at most cap. */
static vc_isa highest(vc_isa cap)
{
    int l = cap;
    while (l > VC_ISA_GENERIC && !(features & (1 << l)))
        l--;
    return (vc_isa)l;
}

/* The cap VLMCHAT_ISA names (for comparing kernels, or where 512-bit work
 * lowers the clock); no cap when unset, empty or unknown. */
static vc_isa env_cap(void)
{
    const char *s = getenv("VLMCHAT_ISA");
    for (int l = 0; s && l < VC_ISA_COUNT; l++)
        if (strcmp(s, names[l]) == 0)
            return (vc_isa)l;
    return VC_ISA_AMX;
}

static void decide(void)
{
    if (features < 0)
        features = (int)detect();
    level = highest(env_cap());
}

vc_isa vc_isa_level(void)
{
    if (level < 0)
        decide();
    return (vc_isa)level;
}

bool vc_isa_has(vc_isa feature)
{
    if (level < 0)
        decide();
    return feature >= VC_ISA_GENERIC && feature <= level && (features & (1 << feature));
}

const char *vc_isa_name(vc_isa l) { return l >= 0 && l < VC_ISA_COUNT ? names[l] : "?"; }

int vc_isa_parse(const char *name, vc_isa *out)
{
    for (int l = 0; name && l < VC_ISA_COUNT; l++)
        if (strcmp(name, names[l]) == 0) {
            *out = (vc_isa)l;
            return 0;
        }
    return vc_fail("unknown instruction set '%s' (generic, avx2, avx-vnni, avx512, avx512-vnni or amx)",
                   name ? name : "(none)");
}

vc_isa vc_isa_set(vc_isa cap)
{
    decide();
    if (cap != VC_ISA_DEFAULT)
        level = highest(cap < VC_ISA_GENERIC ? VC_ISA_GENERIC : cap >= VC_ISA_COUNT ? VC_ISA_AMX : cap);
    return (vc_isa)level;
}
