/* test_amx.c - the AMX level (core/cpu.h) and its tile products
 * (src/core/int8dot_amx.c): on every interleaved type, shapes that take
 * the tiles, their edges (a fifth group, tokens past a multiple of 16, more
 * than one pass of 256 tokens, more than one panel of 64 blocks) give the
 * same floats as the AVX-512 VNNI level, bit for bit, and stay within
 * float rounding of the plain-C reference; vc_matmul on two threads too.
 * On a CPU (or OS) without AMX the level is checked to be absent and the
 * products are skipped, said so on stderr. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "core/int8dot.h"
#include "core/kernels.h"
#include "core/matrix.h"
#include "core/threads.h"
#include "harness.h"

static float frand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return ((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void test_level(void)
{
    vc_isa got = vc_isa_set(VC_ISA_AMX);
    CHECK(got == vc_isa_level() && (got == VC_ISA_AMX) == vc_isa_has(VC_ISA_AMX), "cap amx gives %s", vc_isa_name(got));
    if (got == VC_ISA_AMX)
        CHECK(strcmp(vc_int8dot_isa(), "amx") == 0, "the amx level runs the amx integer kernels, not %s", vc_int8dot_isa());
    vc_isa_set(VC_ISA_AVX512_VNNI);
    CHECK(!vc_isa_has(VC_ISA_AMX), "cap avx512-vnni leaves out amx");
    vc_isa l;
    CHECK(vc_isa_parse("amx", &l) == 0 && l == VC_ISA_AMX && strcmp(vc_isa_name(VC_ISA_AMX), "amx") == 0,
          "amx parses and names back");
    vc_isa_set(VC_ISA_DEFAULT);
}

/* Rows of type t (random weights; for the K-quants random bytes past the
 * f16 scales too, so that every 6-bit scale and min occurs) into q. */
static void random_rows(vc_dtype t, int rows, int cols, uint8_t *q, size_t rb, unsigned *seed)
{
    float *w = malloc((size_t)cols * sizeof *w);
    for (int r = 0; w && r < rows; r++) {
        for (int c = 0; c < cols; c++)
            w[c] = frand(seed) * (1 + (r + c / 32) % 7);
        vc_quantize_row(t, w, q + (size_t)r * rb, cols);
        if (vc_dtype_block_elems(t) != VC_QK_K)
            continue;
        size_t bb = vc_dtype_block_bytes(t), from = t == VC_Q6_K ? 0 : 4, to = t == VC_Q6_K ? bb - 2 : bb;
        for (int k = 0; k < cols / VC_QK_K; k++)
            for (size_t i = from; i < to; i++) {
                *seed = *seed * 1103515245u + 12345u;
                q[(size_t)r * rb + (size_t)k * bb + i] = (uint8_t)(*seed >> 16);
            }
    }
    free(w);
}

static void test_products(void)
{
    enum { MAXTOK = 272 };
    /* rows: 4 groups (the tiles only), 5 (one left to the vectors), 12; cols:
     * one panel, a panel and 8 blocks (K-quants: whole super-blocks) */
    static const int shapes[][2] = { { 32, 256 }, { 40, 2304 }, { 96, 768 } };
    static const int counts[] = { 16, 17, 31, 32, 48, 63, MAXTOK };
    const vc_dtype types[] = { VC_Q4_0, VC_Q8_0, VC_Q5_0, VC_Q5_1, VC_Q4_K, VC_Q5_K, VC_Q6_K };
    unsigned seed = 7;
    for (size_t sh = 0; sh < sizeof shapes / sizeof *shapes; sh++) {
        int rows = shapes[sh][0], cols = shapes[sh][1];
        float *x = malloc((size_t)MAXTOK * cols * sizeof *x), *y = malloc((size_t)MAXTOK * rows * sizeof *y),
              *y_vnni = malloc((size_t)MAXTOK * rows * sizeof *y), *y_ref = malloc((size_t)MAXTOK * rows * sizeof *y);
        vc_block_q8_act *xq = malloc((size_t)MAXTOK * cols / VC_QK8_ACT * sizeof *xq);
        uint8_t *q = malloc((size_t)rows * cols * 2);
        if (!x || !y || !y_vnni || !y_ref || !xq || !q) {
            CHECK(0, "memory for the %dx%d shape", rows, cols);
            return;
        }
        for (int i = 0; i < MAXTOK * cols; i++)
            x[i] = frand(&seed) * (1 + i % 5);
        vc_quantize_act(x, xq, (int64_t)MAXTOK * cols);
        for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
            size_t rb;
            vc_dtype_row_bytes(types[t], cols, &rb);
            random_rows(types[t], rows, cols, q, rb, &seed);
            vc_matrix il = { types[t], cols, rows, rb, q };
            void *owned = NULL;
            CHECK(vc_matrix_prepare_int8(&il, VC_INT8_AS_STORED, &owned) == 1 && vc_int8dot_is_interleaved(il.type),
                  "%s %dx%d interleaves", vc_dtype_name(types[t]), rows, cols);
            if (!owned)
                continue;
            vc_isa_set(VC_ISA_GENERIC);
            vc_int8dot_interleaved(&il, 0, rows / 8, xq, MAXTOK, y_ref, rows);
            float scale = 0;
            for (int i = 0; i < MAXTOK * rows; i++)
                scale = fmaxf(scale, fabsf(y_ref[i]));
            for (size_t c = 0; c < sizeof counts / sizeof *counts; c++) {
                int n = counts[c];
                vc_isa_set(VC_ISA_AVX512_VNNI);
                vc_int8dot_interleaved(&il, 0, rows / 8, xq, n, y_vnni, rows);
                vc_isa_set(VC_ISA_AMX);
                for (int i = 0; i < n * rows; i++)
                    y[i] = NAN;
                vc_int8dot_interleaved(&il, 0, rows / 8, xq, n, y, rows);
                float worst = 0;
                for (int i = 0; i < n * rows; i++) {
                    float d = fabsf(y[i] - y_ref[i]) / (1 + scale);
                    worst = d > worst || d != d ? d : worst;
                }
                CHECK(memcmp(y, y_vnni, (size_t)n * rows * sizeof *y) == 0,
                      "%s %dx%d, %d tokens: amx and avx512-vnni give the same floats", vc_dtype_name(types[t]), rows, cols, n);
                CHECK(worst <= 1e-5f, "%s %dx%d, %d tokens: amx %g from the reference (of the scale %g)",
                      vc_dtype_name(types[t]), rows, cols, n, worst, scale);
            }
            /* vc_matmul, two threads sharing out the groups: the same split at both levels */
            vc_threads_init(2);
            vc_int8dot_enable(true);
            vc_isa_set(VC_ISA_AVX512_VNNI);
            vc_matmul(&il, x, 64, y_vnni);
            vc_isa_set(VC_ISA_AMX);
            vc_matmul(&il, x, 64, y);
            vc_int8dot_enable(false);
            vc_threads_shutdown();
            CHECK(memcmp(y, y_vnni, (size_t)64 * rows * sizeof *y) == 0, "%s %dx%d: vc_matmul of 64 tokens, amx as avx512-vnni",
                  vc_dtype_name(types[t]), rows, cols);
            free(owned);
        }
        vc_isa_set(VC_ISA_DEFAULT);
        free(x);
        free(y);
        free(y_vnni);
        free(y_ref);
        free(xq);
        free(q);
    }
}

static void test_peak(void)
{
    vc_isa_set(VC_ISA_AMX);
    CHECK(vc_int8dot_peak_run(3) == 3 * 4 * 16 * 16 * 64, "the tile peak loop counts four 16x16x64 products a round");
    vc_isa_set(VC_ISA_DEFAULT);
}

int main(void)
{
    test_level();
    if (vc_isa_set(VC_ISA_AMX) != VC_ISA_AMX) {
        fprintf(stderr, "test_amx: this CPU or OS offers no AMX; the tile products are not run\n");
    } else {
        test_products();
        test_peak();
    }
    vc_isa_set(VC_ISA_DEFAULT);
    return harness_finish("test_amx");
}
