/* test_quant.c - element types and GGML block formats.
 *
 * Byte layouts are checked on hand-built blocks (values worked out from the
 * GGML format), quantization on random data (error bounds per type), and the
 * SIMD kernels against the plain-C reference.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "core/act.h"
#include "core/cpu.h"
#include "core/dot.h"
#include "core/dtype.h"
#include "core/int8dot.h"
#include "core/kernels.h"
#include "core/threads.h"
#include "harness.h"

static float frand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return ((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void test_half(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
            continue;   /* NaN payloads need not survive */
        if (vc_f32_to_f16(vc_f16_to_f32((uint16_t)h)) != h)
            bad++;
    }
    CHECK(bad == 0, "%d halves do not round-trip", bad);
    CHECK(vc_f16_to_f32(0x3c00) == 1.0f && vc_f16_to_f32(0xc000) == -2.0f, "basic halves");
    CHECK(vc_f16_to_f32(0x0001) == ldexpf(1, -24), "smallest subnormal");
    /* ties go to even: 1 + 2^-11 lies halfway between 1 and 1 + 2^-10 */
    CHECK(vc_f32_to_f16(1.0f + ldexpf(1, -11)) == 0x3c00, "tie to even (down)");
    CHECK(vc_f32_to_f16(1.0f + 3 * ldexpf(1, -11)) == 0x3c02, "tie to even (up)");
    CHECK(vc_f32_to_f16(70000.0f) == 0x7c00, "overflow to inf");
    CHECK(vc_f32_to_bf16(1.0f) == 0x3f80 && vc_bf16_to_f32(0x4049) == 3.140625f, "bf16");
    CHECK(vc_f32_to_bf16(1.0f + ldexpf(1, -8)) == 0x3f80, "bf16 tie to even");
}

/* The row conversions (the KV cache's halves): every half to its float and
 * back, and floats around the rounding edges, as the scalar functions give
 * them, on each level; row lengths that leave a tail past the vectors. */
static void test_half_rows(void)
{
    static uint16_t h[65536 + 3], back[65536 + 3];
    static float f[65536 + 3], g[4096 + 5];
    for (uint32_t i = 0; i < 65536 + 3; i++)
        h[i] = (uint16_t)(i * 40503u);   /* every half once in the first 65536 (40503 is odd) */
    unsigned seed = 5;
    for (int i = 0; i < 4096 + 5; i++) {
        float x = frand(&seed);
        int k = i % 8;   /* magnitudes from subnormal halves to past the largest, and exact ties */
        g[i] = k == 0 ? x * 1e-6f : k == 1 ? x * 70000.0f : k == 2 ? 65520.0f * (x < 0 ? -1 : 1)
               : k == 3 ? 1.0f + ldexpf(1, -11) * (float)(i % 5) : k == 4 ? ldexpf(x, -20) : x * 300.0f;
    }
    static const vc_isa isas[] = { VC_ISA_GENERIC, VC_ISA_AVX2 };
    for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
        if (vc_isa_set(isas[k]) != isas[k])
            continue;
        vc_f16_rows_to_f32(h, 65536 + 3, 1, 65536 + 3, f);
        int bad = 0;
        for (int i = 0; i < 65536 + 3; i++) {
            float want = vc_f16_to_f32(h[i]);
            bad += want == want ? memcmp(&want, &f[i], sizeof want) != 0 : f[i] == f[i];
        }
        vc_f32_to_f16_row(g, back, 4096 + 5);
        int bad_back = 0;
        for (int i = 0; i < 4096 + 5; i++)
            bad_back += back[i] != vc_f32_to_f16(g[i]);
        CHECK(bad == 0 && bad_back == 0, "%s: half rows to floats %d differ, floats to halves %d differ",
              vc_isa_name(isas[k]), bad, bad_back);
        /* strided rows (a head's cached keys): 7 rows of 21 halves, 40 apart, packed */
        static float packed[7 * 21];
        vc_f16_rows_to_f32(h + 3, 40, 7, 21, packed);
        int bad_rows = 0;
        for (int p = 0; p < 7; p++)
            for (int i = 0; i < 21; i++) {
                float want = vc_f16_to_f32(h[3 + p * 40 + i]), got = packed[p * 21 + i];
                bad_rows += want == want ? memcmp(&want, &got, sizeof want) != 0 : got == got;
            }
        CHECK(bad_rows == 0, "%s: strided half rows to floats: %d differ", vc_isa_name(isas[k]), bad_rows);
    }
    vc_isa_set(VC_ISA_DEFAULT);
}

static void test_layouts(void)
{
    float y[256];
    vc_block_q8_0 q8 = { .d = 0x3800 /* 0.5 */ };
    q8.qs[0] = -128;
    q8.qs[31] = 7;
    vc_dequantize_row(VC_Q8_0, &q8, y, 32);
    CHECK(y[0] == -64.0f && y[31] == 3.5f && y[1] == 0.0f, "q8_0 layout: %g %g", y[0], y[31]);

    vc_block_q4_0 q4 = { .d = 0x3c00 };
    memset(q4.qs, 0x88, sizeof q4.qs);
    q4.qs[0] = 0x1f;   /* low nibble -> element 0, high nibble -> element 16 */
    vc_dequantize_row(VC_Q4_0, &q4, y, 32);
    CHECK(y[0] == 7.0f && y[16] == -7.0f && y[1] == 0.0f, "q4_0 layout: %g %g", y[0], y[16]);

    vc_block_q4_k k4;
    memset(&k4, 0, sizeof k4);
    k4.d = 0x3c00;
    k4.dmin = 0x3c00;
    k4.scales[0] = 5;          /* sub-block 0: scale 5 */
    k4.scales[4] = 2;          /* sub-block 0: min 2 */
    k4.scales[8] = 0x13;       /* sub-block 4: scale 3 (low nibble), min 1 (high nibble) */
    k4.qs[0] = 0x03;
    k4.qs[64] = 0x02;          /* sub-block 4 starts the third 64-chunk, low nibbles */
    vc_dequantize_row(VC_Q4_K, &k4, y, 256);
    CHECK(y[0] == 13.0f && y[32] == 0.0f && y[128] == 5.0f && y[129] == -1.0f, "q4_K layout: %g %g %g %g", y[0],
          y[32], y[128], y[129]);

    vc_block_q6_k k6;
    memset(&k6, 0, sizeof k6);
    k6.d = 0x3c00;
    k6.scales[0] = 2;
    k6.scales[2] = -1;
    k6.ql[0] = 0x05;
    k6.qh[0] = 0x01;           /* q1 = (5 | 1 << 4) - 32 = -11 */
    k6.ql[32] = 0x01;          /* q2 = 1 - 32 = -31 (scale index 2) */
    vc_dequantize_row(VC_Q6_K, &k6, y, 256);
    CHECK(y[0] == -22.0f && y[32] == 31.0f, "q6_K layout: %g %g", y[0], y[32]);

    /* Q5_0: element e's fifth bit is bit e of qh (little-endian), w = d (q - 16) */
    vc_block_q5_0 q50;
    memset(&q50, 0, sizeof q50);
    q50.d = 0x3c00;
    q50.qs[0] = 0x1f;          /* element 0: nibble 0xf, element 16: nibble 1 */
    q50.qh[0] = 0x01;          /* element 0's fifth bit */
    q50.qh[2] = 0x01;          /* element 16's */
    q50.qh[3] = 0x80;          /* element 31's */
    vc_dequantize_row(VC_Q5_0, &q50, y, 32);
    CHECK(y[0] == 15.0f && y[16] == 1.0f && y[1] == -16.0f && y[31] == 0.0f, "q5_0 layout: %g %g %g %g", y[0], y[16],
          y[1], y[31]);
    CHECK(vc_dtype_block_bytes(VC_Q5_0) == 22 && vc_dtype_from_name("q5_0") == VC_Q5_0, "q5_0 is GGML's type 6");

    /* Q5_1: the same bits, w = d q + m */
    vc_block_q5_1 q51;
    memset(&q51, 0, sizeof q51);
    q51.d = 0x3800;            /* 0.5 */
    q51.m = 0xbc00;            /* -1 */
    q51.qs[0] = 0x1f;
    q51.qh[0] = 0x01;
    q51.qh[3] = 0x80;
    vc_dequantize_row(VC_Q5_1, &q51, y, 32);
    CHECK(y[0] == 14.5f && y[16] == -0.5f && y[31] == 7.0f && y[1] == -1.0f, "q5_1 layout: %g %g %g %g", y[0], y[16],
          y[31], y[1]);
    CHECK(vc_dtype_block_bytes(VC_Q5_1) == 24 && vc_dtype_from_name("Q5_1") == VC_Q5_1, "q5_1 is GGML's type 7");

    /* Q5_K: Q4_K's scales and nibbles, the fifth bit of sub-block s's element l is bit s of qh[l] */
    vc_block_q5_k k5;
    memset(&k5, 0, sizeof k5);
    k5.d = 0x3c00;
    k5.dmin = 0x3c00;
    k5.scales[0] = 5;          /* sub-block 0: scale 5 */
    k5.scales[4] = 2;          /* sub-block 0: min 2 */
    k5.scales[1] = 1;          /* sub-block 1: scale 1, min 0 */
    k5.scales[8] = 0x13;       /* sub-block 4: scale 3, min 1 */
    k5.qs[0] = 0x03;
    k5.qs[64] = 0x02;
    k5.qh[0] = 0x13;           /* fifth bits of sub-blocks 0, 1 and 4, element 0 */
    vc_dequantize_row(VC_Q5_K, &k5, y, 256);
    CHECK(y[0] == 93.0f && y[32] == 16.0f && y[128] == 53.0f && y[129] == -1.0f && y[1] == -2.0f,
          "q5_K layout: %g %g %g %g %g", y[0], y[32], y[128], y[129], y[1]);
    CHECK(vc_dtype_block_bytes(VC_Q5_K) == 176 && vc_dtype_is_ggml(13), "q5_K is GGML's type 13");

    /* MLX: element j is nibble j % 2 of byte j / 2, w = scale * q + bias */
    _Alignas(float) uint8_t mlx[VC_MLX4_BLOCK_BYTES(32)];
    memset(mlx, 0, sizeof mlx);
    vc_block_mlx4 *mb = (vc_block_mlx4 *)mlx;
    mb->scale = 0.5f;
    mb->bias = -1.0f;
    mb->qs[0] = 0x31;
    mb->qs[15] = 0xf0;
    vc_dequantize_row(VC_MLX4_G32, mlx, y, 32);
    CHECK(y[0] == -0.5f && y[1] == 0.5f && y[2] == -1.0f && y[30] == -1.0f && y[31] == 6.5f,
          "mlx4 layout: %g %g %g %g %g", y[0], y[1], y[2], y[30], y[31]);
    CHECK(!vc_dtype_is_ggml(VC_MLX4_G64) && vc_dtype_is_ggml(VC_Q6_K) && vc_dtype_mlx4(64) == VC_MLX4_G64 &&
          vc_dtype_mlx4(48) < 0, "MLX types are vlmchat's own");
}

static void test_roundtrip(void)
{
    const struct { vc_dtype t; float max_rel_rms; } cases[] = {
        { VC_F16, 1e-3f }, { VC_BF16, 8e-3f }, { VC_Q8_0, 1e-2f }, { VC_Q6_K, 4e-2f }, { VC_Q5_K, 0.05f }, { VC_Q5_0, 0.055f },
        { VC_Q5_1, 0.05f }, { VC_Q4_K, 0.12f }, { VC_Q4_0, 0.15f },
        { VC_MLX4_G32, 0.12f }, { VC_MLX4_G64, 0.13f }, { VC_MLX4_G128, 0.14f },
    };
    enum { N = 4096 };
    static float x[N], y[N];
    static uint8_t q[N * 4];
    unsigned seed = 7;
    for (int i = 0; i < N; i++)
        x[i] = frand(&seed) * (1 + (i % 97) / 10.0f);
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        vc_quantize_row(cases[c].t, x, q, N);
        vc_dequantize_row(cases[c].t, q, y, N);
        double err = 0, ref = 0;
        for (int i = 0; i < N; i++) {
            err += (double)(x[i] - y[i]) * (x[i] - y[i]);
            ref += (double)x[i] * x[i];
        }
        float rel = (float)sqrt(err / ref);
        CHECK(rel < cases[c].max_rel_rms, "%s relative RMS error %g", vc_dtype_name(cases[c].t), rel);
        /* quantizing what was dequantized must be (nearly) a fixed point */
        static uint8_t q2[N * 4];
        static float y2[N];
        vc_quantize_row(cases[c].t, y, q2, N);
        vc_dequantize_row(cases[c].t, q2, y2, N);
        double drift = 0;
        for (int i = 0; i < N; i++)
            drift = fmax(drift, fabs(y2[i] - y[i]));
        CHECK(drift < 0.05, "%s re-quantization drifts by %g", vc_dtype_name(cases[c].t), drift);
    }
    size_t rb;
    CHECK(vc_dtype_row_bytes(VC_Q4_K, 100, &rb) != 0, "q4_K row of 100 accepted");
    CHECK(vc_dtype_row_bytes(VC_Q8_0, 64, &rb) == 0 && rb == 68, "q8_0 row bytes %zu", rb);
}

/* The one instruction-set level: names both ways, a cap never above what
 * the CPU has, the kernels following it, and the start's level back. */
static void test_isa(void)
{
    vc_isa start = vc_isa_level(), l;
    CHECK(vc_isa_has(VC_ISA_GENERIC) && vc_isa_has(start) && !vc_isa_has(VC_ISA_DEFAULT),
          "level %s: generic and the level itself are there", vc_isa_name(start));
    for (int k = 0; k < VC_ISA_COUNT; k++)
        CHECK(vc_isa_parse(vc_isa_name((vc_isa)k), &l) == 0 && l == (vc_isa)k, "name %s parses back",
              vc_isa_name((vc_isa)k));
    CHECK(vc_isa_parse(NULL, &l) == -1 && vc_isa_parse("AVX2", &l) == -1 && strcmp(vc_isa_name(VC_ISA_COUNT), "?") == 0,
          "names are exact");
    for (int k = 0; k < VC_ISA_COUNT; k++) {
        vc_isa got = vc_isa_set((vc_isa)k);
        CHECK(got <= (vc_isa)k && got == vc_isa_level(), "cap %s gives %s", vc_isa_name((vc_isa)k), vc_isa_name(got));
        for (int f = k + 1; f < VC_ISA_COUNT; f++)
            CHECK(!vc_isa_has((vc_isa)f), "cap %s leaves out %s", vc_isa_name((vc_isa)k), vc_isa_name((vc_isa)f));
    }
    vc_isa_set(VC_ISA_GENERIC);
    CHECK(strcmp(vc_kernels_dot_isa(), "generic") == 0 && strcmp(vc_gemm_isa(), "generic") == 0 &&
          strcmp(vc_int8dot_isa(), "generic") == 0 && !vc_gemm_use_blas(), "the generic level reaches every kernel");
    CHECK(vc_isa_set(VC_ISA_DEFAULT) == start, "the start's level comes back");
}

/* Both GEMM shapes, with every variant the CPU has, against the plain
 * loops, on sizes that leave every kind of remainder (NT: rows of A past a
 * multiple of 4, of B past 3, K past 8 and 16; NN: rows past 6, columns
 * past 8, 16 and 64; strided B of K >= 1024, which goes in blocks of 256:
 * whole blocks, one row past them, a short tail), and with leading
 * dimensions wider than the rows; NN also with B's rows packed (ldb = N:
 * the one pass over K of a panel as wide as the tile, 16 or 64 columns). */
static void test_gemm(void)
{
    const int sizes[][3] = { { 1, 1, 1 },    { 4, 3, 8 },    { 5, 7, 13 },  { 9, 50, 37 },  { 17, 101, 64 },
                             { 64, 97, 300 }, { 6, 64, 64 }, { 13, 83, 5 }, { 32, 64, 130 }, { 7, 129, 64 },
                             { 13, 64, 1024 }, { 19, 70, 1025 }, { 25, 131, 600 }, { 8, 16, 521 }, { 31, 64, 1030 } };
    const vc_isa isas[] = { VC_ISA_AVX512, VC_ISA_AVX2, VC_ISA_GENERIC };
    unsigned seed = 5;
    for (size_t v = 0; v < sizeof isas / sizeof *isas; v++) {
        if (vc_isa_set(isas[v]) != isas[v])
            continue;   /* not on this CPU */
        for (size_t c = 0; c < sizeof sizes / sizeof *sizes; c++)
            for (int nn = 0; nn < 3; nn++) {   /* 0: NT, 1: NN, 2: NN with B packed */
                int M = sizes[c][0], N = sizes[c][1], K = sizes[c][2], lda = K + 3, ldc = N + 2;
                int ldb = nn == 2 ? N : nn ? N + 5 : K + 1, b_rows = nn ? K : N;
                float *A = malloc(sizeof(float) * (size_t)M * lda), *B = malloc(sizeof(float) * (size_t)b_rows * ldb);
                float *C = malloc(sizeof(float) * (size_t)M * ldc), *R = malloc(sizeof(float) * (size_t)M * ldc);
                for (int i = 0; i < M * lda; i++)
                    A[i] = frand(&seed);
                for (int i = 0; i < b_rows * ldb; i++)
                    B[i] = frand(&seed);
                for (int i = 0; i < M * ldc; i++)
                    C[i] = R[i] = -7.0f;            /* the gaps between rows must stay untouched */
                (nn ? vc_gemm_nn : vc_gemm_nt)(M, N, K, A, lda, B, ldb, C, ldc);
                (nn ? vc_gemm_nn_ref : vc_gemm_nt_ref)(M, N, K, A, lda, B, ldb, R, ldc);
                float worst = 0;
                for (int i = 0; i < M * ldc; i++)
                    worst = fmaxf(worst, fabsf(C[i] - R[i]));
                CHECK(worst <= 1e-5f * K, "gemm_%s %dx%dx%d ldb %d (%s): differs from the reference by %g",
                      nn ? "nn" : "nt", M, N, K, ldb, vc_gemm_isa(), worst);
                free(A), free(B), free(C), free(R);
            }
    }
    /* vc_transpose: 8x8 tiles and the rows and columns they leave, with gaps between rows */
    for (size_t v = 0; v < sizeof isas / sizeof *isas; v++) {
        if (vc_isa_set(isas[v]) != isas[v])
            continue;
        const int shapes[][2] = { { 1, 1 }, { 8, 8 }, { 13, 21 }, { 64, 37 } };
        for (size_t c = 0; c < sizeof shapes / sizeof *shapes; c++) {
            int rows = shapes[c][0], cols = shapes[c][1], lds = cols + 3, ldd = rows + 2;
            float *src = malloc(sizeof(float) * (size_t)rows * lds), *dst = malloc(sizeof(float) * (size_t)cols * ldd);
            for (int i = 0; i < rows * lds; i++)
                src[i] = (float)i;
            for (int i = 0; i < cols * ldd; i++)
                dst[i] = -7.0f;
            vc_transpose(rows, cols, src, lds, dst, ldd);
            int wrong = 0;
            for (int i = 0; i < cols; i++)
                for (int j = 0; j < ldd; j++)
                    wrong += dst[i * ldd + j] != (j < rows ? src[j * lds + i] : -7.0f);
            CHECK(wrong == 0, "transpose %dx%d (%s): %d values wrong", rows, cols, vc_gemm_isa(), wrong);
            free(src), free(dst);
        }
    }
    vc_isa_set(VC_ISA_DEFAULT);
    vc_isa unknown;
    CHECK(vc_isa_parse("no-such-isa", &unknown) == -1, "an unknown instruction set is refused");
}

/* The activations (SIMD, on the pool past one chunk) against their plain-C
 * definitions, over values from far negative to far positive (where e^x
 * overflows or underflows) and a length that leaves a tail past 8. */
static void test_activations(void)
{
    enum { N = 3 * 4096 + 13 };
    static float x[N], r[N], up[N];
    unsigned seed = 17;
    const vc_act acts[] = { VC_ACT_QUICK_GELU, VC_ACT_GELU, VC_ACT_GELU_TANH, VC_ACT_SILU };
    for (size_t a = 0; a <= sizeof acts / sizeof *acts; a++) {   /* the last round: SwiGLU */
        for (int i = 0; i < N; i++) {
            x[i] = r[i] = i % 101 == 0 ? (float)(i % 2 ? 120 : -120) : frand(&seed) * 12.0f;
            up[i] = frand(&seed);
        }
        bool swiglu = a == sizeof acts / sizeof *acts;
        if (swiglu) {
            vc_swiglu(x, up, N);
            vc_swiglu_ref(r, up, N);
        } else {
            vc_act_apply(acts[a], x, N);
            vc_act_apply_ref(acts[a], r, N);
        }
        float worst = 0;
        for (int i = 0; i < N; i++)
            worst = fmaxf(worst, fabsf(x[i] - r[i]) / (fabsf(r[i]) + 1.0f));   /* absolute near 0: GELU-tanh cancels there */
        CHECK(worst <= 2e-6f, "%s %zu (%s): difference %g from the reference", swiglu ? "swiglu" : "activation", a,
              vc_kernels_isa(), worst);
    }
    CHECK(vc_act_from_name("gelu_pytorch_tanh") == VC_ACT_GELU_TANH && vc_act_from_name("relu6") == -1,
          "activation names");
}

static void test_kernels(void)
{
    enum { N = 1024 };
    static float x[N], w[N];
    static uint8_t q[N * 4];
    unsigned seed = 11;
    for (int i = 0; i < N; i++) {
        x[i] = frand(&seed);
        w[i] = frand(&seed) * 2;
    }
    vc_dtype types[] = { VC_F32, VC_F16, VC_BF16, VC_Q8_0, VC_Q4_0, VC_Q5_0, VC_Q5_1, VC_Q4_K, VC_Q5_K, VC_Q6_K,
                         VC_MLX4_G32, VC_MLX4_G64, VC_MLX4_G128 };
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        vc_quantize_row(types[t], w, q, N);
        float ref = vc_dot_row_ref(types[t], q, x, N);
        vc_isa_set(VC_ISA_DEFAULT);
        float fast = vc_dot_row(types[t], q, x, N);
        const char *fast_isa = vc_kernels_dot_isa();
        vc_isa_set(VC_ISA_AVX2);
        float avx2 = vc_dot_row(types[t], q, x, N);
        const char *avx2_isa = vc_kernels_dot_isa();
        vc_isa_set(VC_ISA_GENERIC);
        float generic = vc_dot_row(types[t], q, x, N);
        vc_isa_set(VC_ISA_DEFAULT);
        CHECK(fabsf(fast - ref) <= 1e-4f * (1 + fabsf(ref)), "%s: %s dot %g vs reference %g", vc_dtype_name(types[t]),
              fast_isa, fast, ref);
        CHECK(fabsf(avx2 - ref) <= 1e-4f * (1 + fabsf(ref)), "%s: %s dot %g vs reference %g", vc_dtype_name(types[t]),
              avx2_isa, avx2, ref);
        CHECK(fabsf(generic - ref) <= 1e-4f * (1 + fabsf(ref)), "%s: generic dot %g vs reference %g",
              vc_dtype_name(types[t]), generic, ref);
        /* shorter rows: dense ones with a tail past whole vectors, 32-blocks an odd count of blocks */
        int be = vc_dtype_block_elems(types[t]);
        int64_t n2 = be == 1 ? N - 5 : be == 32 && types[t] != VC_MLX4_G32 ? N - 32 : be == VC_QK_K ? N - VC_QK_K : 0;
        if (n2) {
            float r2 = vc_dot_row_ref(types[t], q, x, n2), f2 = vc_dot_row(types[t], q, x, n2);
            CHECK(fabsf(f2 - r2) <= 1e-4f * (1 + fabsf(r2)), "%s, %lld elements: %s dot %g vs reference %g",
                  vc_dtype_name(types[t]), (long long)n2, vc_kernels_dot_isa(), f2, r2);
        }
    }
    /* axpy: the fused AVX2 loop and its tail against the plain loop */
    static float ya[N - 3], yb[N - 3];
    for (int i = 0; i < N - 3; i++)
        ya[i] = yb[i] = w[i];
    vc_axpy_f32(0.37f, x, ya, N - 3);
    vc_axpy_f32_ref(0.37f, x, yb, N - 3);
    float worst_axpy = 0;
    for (int i = 0; i < N - 3; i++)
        worst_axpy = fmaxf(worst_axpy, fabsf(ya[i] - yb[i]));
    CHECK(worst_axpy <= 1e-6f, "%s axpy differs from the reference by %g", vc_kernels_isa(), worst_axpy);

    /* one query's attention rows (keys or values `stride` apart): the four-row dot and the register
     * axpy give what the one-row kernels give row by row, bit for bit, and the reference to rounding,
     * for head sizes with and without tails and row counts around the four-row step */
    {
        enum { STRIDE = 300, ROWS = 9 };
        static float rows[ROWS * STRIDE], ya2[160], yb2[160], yc2[160];
        for (int i = 0; i < ROWS * STRIDE; i++)
            rows[i] = w[i % N] * 0.5f + x[(i * 7) % N];
        const int dims[] = { 64, 80, 96, 100, 128, 160, 7 };
        int bad_dot = 0, bad_axpy = 0;
        float worst_ref = 0;
        for (size_t d = 0; d < sizeof dims / sizeof *dims; d++)
            for (int count = 1; count <= ROWS; count++) {
                int n = dims[d];
                float out[ROWS];
                vc_dot_rows_f32(x, rows + 3, STRIDE, count, n, out);
                for (int p = 0; p < count; p++)
                    bad_dot += out[p] != vc_dot_f32(x, rows + 3 + p * STRIDE, n);
                for (int i = 0; i < n; i++)
                    ya2[i] = yb2[i] = yc2[i] = w[i];
                vc_axpy_rows_f32(out, rows + 3, STRIDE, count, ya2, n);
                for (int p = 0; p < count; p++)
                    vc_axpy_f32(out[p], rows + 3 + p * STRIDE, yb2, n);
                vc_axpy_rows_f32_ref(out, rows + 3, STRIDE, count, yc2, n);
                for (int i = 0; i < n; i++) {
                    bad_axpy += ya2[i] != yb2[i];
                    worst_ref = fmaxf(worst_ref, fabsf(ya2[i] - yc2[i]) / (1 + fabsf(yc2[i])));
                }
            }
        CHECK(bad_dot == 0, "%s: %d four-row dots differ from vc_dot_f32", vc_kernels_isa(), bad_dot);
        /* the same rows as halves (a half KV cache), read as they are: what widening them to packed
         * floats first and the float kernels give, bit for bit (an infinity among them) */
        static uint16_t halves[ROWS * STRIDE];
        static float widened[ROWS * 160];
        for (int i = 0; i < ROWS * STRIDE; i++)
            halves[i] = vc_f32_to_f16(rows[i] * (i % 37 == 0 ? 3000.0f : 1.0f));
        halves[3 + 5 * STRIDE + 2] = 0x7c00;   /* +inf, in row 5 */
        for (int level = 0; level < 2; level++) {   /* the SIMD kernels, then the plain loops */
            vc_isa_set(level ? VC_ISA_GENERIC : VC_ISA_DEFAULT);
            int bad_half_dot = 0, bad_half_axpy = 0;
            for (size_t d = 0; d < sizeof dims / sizeof *dims; d++)
                for (int count = 1; count <= ROWS; count++) {
                    int n = dims[d];
                    float got[ROWS], want[ROWS];
                    vc_f16_rows_to_f32(halves + 3, STRIDE, count, n, widened);
                    vc_dot_rows_f16(x, halves + 3, STRIDE, count, n, got);
                    vc_dot_rows_f32(x, widened, n, count, n, want);
                    for (int p = 0; p < count; p++)
                        bad_half_dot += memcmp(&got[p], &want[p], sizeof got[p]) != 0;
                    for (int p = 0; p < count; p++)   /* finite weights: the scores' place in attention */
                        got[p] = want[p] == want[p] && fabsf(want[p]) < 1e30f ? want[p] * 1e-3f : 0.5f;
                    for (int i = 0; i < n; i++)
                        ya2[i] = yb2[i] = w[i];
                    vc_axpy_rows_f16(got, halves + 3, STRIDE, count, ya2, n);
                    vc_axpy_rows_f32(got, widened, n, count, yb2, n);
                    for (int i = 0; i < n; i++)
                        bad_half_axpy += memcmp(&ya2[i], &yb2[i], sizeof ya2[i]) != 0;
                }
            CHECK(bad_half_dot == 0, "%s: %d dots of half rows differ from the widened rows' dots", vc_kernels_isa(),
                  bad_half_dot);
            CHECK(bad_half_axpy == 0, "%s: %d axpy values over half rows differ from the widened rows'", vc_kernels_isa(),
                  bad_half_axpy);
        }
        vc_isa_set(VC_ISA_DEFAULT);
        CHECK(bad_axpy == 0, "%s: %d register-axpy values differ from repeated vc_axpy_f32", vc_kernels_isa(), bad_axpy);
        CHECK(worst_ref <= 1e-5f, "%s: row axpy differs from the reference by %g", vc_kernels_isa(), worst_ref);
    }

    /* softmax: masked entries become 0, the rest sum to 1 in the right proportions */
    float sm[4] = { 1.0f, 2.0f, -INFINITY, 3.0f };
    vc_softmax(sm, 4);
    double z = exp(1.0) + exp(2.0) + exp(3.0);
    CHECK(sm[2] == 0 && fabs(sm[0] - exp(1.0) / z) < 1e-6 && fabs(sm[1] - exp(2.0) / z) < 1e-6 &&
          fabs(sm[3] - exp(3.0) / z) < 1e-6, "softmax %g %g %g %g", sm[0], sm[1], sm[2], sm[3]);

    /* the AVX2 softmax (its own exponential) against the plain-C one, masked entries and tails included */
    static float sa[1024], sb[1024];
    const int lens[] = { 1, 7, 16, 100, 1024 };
    float worst_sm = 0;
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
        for (int i = 0; i < lens[li]; i++)
            sa[i] = sb[i] = i % 13 == 5 && lens[li] > 1 ? -INFINITY : frand(&seed) * 40.0f;
        vc_softmax(sa, lens[li]);
        vc_softmax_ref(sb, lens[li]);
        for (int i = 0; i < lens[li]; i++)
            worst_sm = fmaxf(worst_sm, fabsf(sa[i] - sb[i]) / fmaxf(sb[i], 1e-30f) * (sb[i] > 1e-30f));
    }
    CHECK(worst_sm <= 2e-6f, "%s softmax differs from the reference by %g (relative)", vc_kernels_isa(), worst_sm);

    /* matmul over several tokens equals one token at a time, on the pool */
    vc_threads_init(3);
    enum { ROWS = 37, COLS = 256, TOK = 5 };
    static float wm[ROWS * COLS], xs[TOK * COLS], y1[TOK * ROWS], y2[ROWS];
    static uint8_t wq[ROWS * COLS * 4];
    for (int i = 0; i < ROWS * COLS; i++)
        wm[i] = frand(&seed);
    for (int i = 0; i < TOK * COLS; i++)
        xs[i] = frand(&seed);
    /* several tokens go to sgemm (BLAS builds) or row-by-row dots (generic): both equal one token at a time */
    vc_dtype mtypes[] = { VC_F32, VC_BF16, VC_Q8_0, VC_Q4_0 };
    for (size_t t = 0; t < sizeof mtypes / sizeof *mtypes; t++) {
        size_t rb;
        vc_dtype_row_bytes(mtypes[t], COLS, &rb);
        for (int r = 0; r < ROWS; r++)
            vc_quantize_row(mtypes[t], wm + r * COLS, wq + r * rb, COLS);
        vc_matrix m = { mtypes[t], COLS, ROWS, rb, wq };
        for (int generic = 0; generic < 2; generic++) {
            vc_isa_set(generic ? VC_ISA_GENERIC : VC_ISA_DEFAULT);
            vc_matmul(&m, xs, TOK, y1);
            float worst = 0;
            for (int k = 0; k < TOK; k++) {
                vc_matmul(&m, xs + k * COLS, 1, y2);
                for (int r = 0; r < ROWS; r++)
                    worst = fmaxf(worst, fabsf(y2[r] - y1[k * ROWS + r]));
            }
            CHECK(worst < 1e-4f, "%s %s: batched matmul differs from single-token by %g", vc_dtype_name(mtypes[t]),
                  generic ? "generic" : vc_gemm_use_blas() ? "blas" : vc_kernels_isa(), worst);
        }
        vc_isa_set(VC_ISA_DEFAULT);
    }
    vc_threads_shutdown();
}

/* Activation quantization on a hand-built block: scale, rounding, sum. */
static void test_quantize_act(void)
{
    float x[64];
    for (int j = 0; j < 32; j++)
        x[j] = (j - 16) * 0.25f;       /* max |x| = 4 at j = 0: d = 4/127 */
    memset(x + 32, 0, 32 * sizeof *x); /* an all-zero block */
    x[33] = 0;
    vc_block_q8_act b[2];
    vc_quantize_act(x, b, 64);
    CHECK(fabsf(b[0].d - 4.0f / 127) < 1e-9f, "act scale %g, want %g", b[0].d, 4.0f / 127);
    CHECK(b[0].qs[0] == -127 && b[0].qs[16] == 0 && b[0].qs[17] == 8 && b[0].qs[31] == 119,
          "act values %d %d %d %d, want -127 0 8 119", b[0].qs[0], b[0].qs[16], b[0].qs[17], b[0].qs[31]);
    int sum = 0;
    float worst = 0;
    for (int j = 0; j < 32; j++) {
        sum += b[0].qs[j];
        worst = fmaxf(worst, fabsf(x[j] - b[0].d * b[0].qs[j]));
    }
    CHECK(b[0].qsum == sum, "act qsum %d, want %d", b[0].qsum, sum);
    int sum16 = 0;
    for (int j = 0; j < 16; j++)
        sum16 += b[0].qs[j];
    CHECK(b[0].qsum16 == sum16 && sum16 != sum, "act qsum16 %d, want %d", b[0].qsum16, sum16);
    CHECK(worst <= b[0].d / 2 * 1.0001f, "act rounding error %g above half a step %g", worst, b[0].d / 2);
    bool zero = b[1].d == 0 && b[1].qsum == 0;
    for (int j = 0; j < 32; j++)
        zero = zero && b[1].qs[j] == 0;
    CHECK(zero, "an all-zero block quantizes to zeros with scale 0");

    /* the AVX2 version writes the reference's bytes, odd values included */
    enum { NB = 64 };
    static float r[NB * 32];
    static vc_block_q8_act fast[NB], ref[NB];
    unsigned seed = 3;
    for (int i = 0; i < NB * 32; i++)
        r[i] = frand(&seed) * (float)(1 << (i / 32 % 16)) * 1e-3f;
    for (int j = 0; j < 32; j++)   /* exact halves, to check ties go to even */
        r[32 + j] = (j - 16) * 127.0f / 16.0f * 0.5f;
    r[100] = NAN, r[200] = INFINITY, r[300] = -INFINITY, r[400] = 3e38f, r[401] = -3e38f;
    vc_quantize_act(r, fast, NB * 32);
    vc_quantize_act_ref(r, ref, NB * 32);
    bool same = true;
    for (int k = 0; k < NB; k++)
        same = same && memcmp(fast[k].qs, ref[k].qs, 32) == 0 && fast[k].qsum == ref[k].qsum &&
               fast[k].qsum16 == ref[k].qsum16 &&
               (fast[k].d == ref[k].d || (fast[k].d != fast[k].d && ref[k].d != ref[k].d));
    CHECK(same, "%s activation quantization writes the reference's blocks", vc_int8dot_isa());
}

/* The integer kernels of every instruction set this CPU has against the
 * reference; the reference against the float product within the error the
 * activation rounding allows; vc_matmul's integer path against both. */
static void test_int8dot(void)
{
    enum { N = 1024 };
    static float x[N], w[N], xd[N];
    static uint8_t q[N * 4];
    static vc_block_q8_act xq[N / VC_QK8_ACT];
    unsigned seed = 23;
    for (int i = 0; i < N; i++) {
        x[i] = frand(&seed) * 3;
        w[i] = frand(&seed);
    }
    vc_quantize_act(x, xq, N);
    for (int i = 0; i < N; i++)
        xd[i] = xq[i / 32].d * xq[i / 32].qs[i % 32];
    static const vc_isa isas[] = { VC_ISA_GENERIC, VC_ISA_AVX2, VC_ISA_AVX_VNNI, VC_ISA_AVX512_VNNI };
    vc_dtype types[] = { VC_Q8_0, VC_Q4_0, VC_Q5_0, VC_Q5_1, VC_Q4_K, VC_Q5_K, VC_Q6_K, VC_MLX4_G32, VC_MLX4_G64, VC_MLX4_G128 };
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        CHECK(vc_int8dot_supports(types[t]), "%s has an integer kernel", vc_dtype_name(types[t]));
        vc_quantize_row(types[t], w, q, N);
        if (types[t] == VC_Q8_0)   /* GGML's -128, which its own quantizer never writes: |w| is 128 */
            ((vc_block_q8_0 *)q)[0].qs[5] = -128;
        float ref = vc_dot_row_act_ref(types[t], q, xq, N);
        float on_dequantized_x = vc_dot_row_ref(types[t], q, xd, N);
        CHECK(fabsf(ref - on_dequantized_x) <= 1e-4f * (1 + fabsf(ref)),
              "%s: act reference %g vs float reference on the same values %g", vc_dtype_name(types[t]), ref,
              on_dequantized_x);
        /* the activation rounding moves the product by at most sum |w| d/2 */
        float wd[N], bound = 0;
        vc_dequantize_row(types[t], q, wd, N);
        for (int i = 0; i < N; i++)
            bound += fabsf(wd[i]) * xq[i / 32].d / 2;
        float exact = vc_dot_row_ref(types[t], q, x, N);
        CHECK(fabsf(ref - exact) <= bound * 1.001f, "%s: int8 product %g is %g from the float one, bound %g",
              vc_dtype_name(types[t]), ref, fabsf(ref - exact), bound);
        int tried = 0;
        for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
            if (vc_isa_set(isas[k]) != isas[k])
                continue;
            tried++;
            CHECK(strcmp(vc_int8dot_isa(), vc_isa_name(isas[k])) == 0, "level %s runs the %s integer kernels",
                  vc_isa_name(isas[k]), vc_int8dot_isa());
            float fast = vc_dot_row_act(types[t], q, xq, N);
            CHECK(fabsf(fast - ref) <= 1e-4f * (1 + fabsf(ref)), "%s: %s int8 dot %g vs reference %g",
                  vc_dtype_name(types[t]), vc_isa_name(isas[k]), fast, ref);
            /* one block fewer: an odd count of blocks (of super-blocks for K-quants) */
            int64_t odd = N - vc_dtype_block_elems(types[t]);
            float ref_odd = vc_dot_row_act_ref(types[t], q, xq, odd), fast_odd = vc_dot_row_act(types[t], q, xq, odd);
            CHECK(fabsf(fast_odd - ref_odd) <= 1e-4f * (1 + fabsf(ref_odd)),
                  "%s: %s int8 dot over %lld elements %g vs reference %g", vc_dtype_name(types[t]),
                  vc_isa_name(isas[k]), (long long)odd, fast_odd, ref_odd);
        }
        vc_isa_set(VC_ISA_DEFAULT);
        CHECK(tried >= 1, "at least the generic integer kernel runs");
    }
    printf("int8 dot kernels: %s (best here)\n", vc_int8dot_isa());

    /* vc_matmul, one token: the integer path when enabled and only then */
    vc_threads_init(2);
    enum { ROWS = 19, COLS = 256 };
    static float wm[ROWS * COLS], y_float[ROWS], y_int[ROWS];
    static uint8_t wq[ROWS * COLS];
    static vc_block_q8_act xm[COLS / VC_QK8_ACT];
    for (int i = 0; i < ROWS * COLS; i++)
        wm[i] = frand(&seed);
    size_t rb;
    vc_dtype_row_bytes(VC_Q4_0, COLS, &rb);
    for (int r = 0; r < ROWS; r++)
        vc_quantize_row(VC_Q4_0, wm + r * COLS, wq + r * rb, COLS);
    vc_matrix m = { VC_Q4_0, COLS, ROWS, rb, wq };
    vc_matmul(&m, x, 1, y_float);
    vc_int8dot_enable(true);
    vc_matmul(&m, x, 1, y_int);
    vc_int8dot_enable(false);
    vc_quantize_act(x, xm, COLS);
    bool same_as_kernel = true, float_path = true;
    for (int r = 0; r < ROWS; r++) {
        same_as_kernel = same_as_kernel && y_int[r] == vc_dot_row_act(VC_Q4_0, wq + r * rb, xm, COLS);
        float_path = float_path && y_float[r] == vc_dot_row(VC_Q4_0, wq + r * rb, x, COLS);
    }
    CHECK(same_as_kernel, "matmul with --int8-dot uses the integer kernel");
    CHECK(float_path, "matmul without it stays on float activations");
    vc_threads_shutdown();
}

/* K-quant rows with several tokens (prefill): vc_int8dot_rows on every
 * instruction set here against the reference (per token vc_dot_row_act_ref),
 * four-token tiles and the rest, an odd number of super-blocks; and
 * vc_matmul with the integer path on takes it. */
static void test_int8_rows(void)
{
    enum { ROWS = 5, COLS = 768, TOK = 7 };
    static float w[ROWS * COLS], x[TOK * COLS], y_ref[TOK * ROWS], y[TOK * ROWS];
    static uint8_t q[ROWS * COLS];
    static vc_block_q8_act xq[TOK * COLS / VC_QK8_ACT];
    static const vc_isa isas[] = { VC_ISA_AVX2, VC_ISA_AVX_VNNI, VC_ISA_AVX512_VNNI };
    const vc_dtype types[] = { VC_Q4_K, VC_Q5_K, VC_Q6_K, VC_Q5_0, VC_Q5_1 };
    unsigned seed = 41;
    for (int i = 0; i < ROWS * COLS; i++)
        w[i] = frand(&seed);
    for (int i = 0; i < TOK * COLS; i++)
        x[i] = frand(&seed) * 2;
    vc_quantize_act(x, xq, (int64_t)TOK * COLS);
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        size_t rb;
        vc_dtype_row_bytes(types[t], COLS, &rb);
        for (int r = 0; r < ROWS; r++)
            vc_quantize_row(types[t], w + r * COLS, q + r * rb, COLS);
        vc_matrix m = { types[t], COLS, ROWS, rb, q };
        vc_isa_set(VC_ISA_GENERIC);
        vc_int8dot_rows(&m, 0, ROWS, xq, TOK, y_ref, ROWS);
        bool ref_ok = true;
        for (int i = 0; i < TOK; i++)
            for (int r = 0; r < ROWS; r++)
                ref_ok = ref_ok && y_ref[i * ROWS + r] == vc_dot_row_act_ref(types[t], q + r * rb, xq + i * (COLS / 32), COLS);
        CHECK(ref_ok, "%s: generic rows are the reference's dots", vc_dtype_name(types[t]));
        for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
            if (vc_isa_set(isas[k]) != isas[k])
                continue;
            memset(y, 0, sizeof y);
            vc_int8dot_rows(&m, 1, ROWS, xq, TOK, y, ROWS);   /* rows 1.. numbered from 0 */
            float worst = 0, scale = 0;
            for (int i = 0; i < TOK; i++)
                for (int r = 1; r < ROWS; r++) {
                    worst = fmaxf(worst, fabsf(y[i * ROWS + r - 1] - y_ref[i * ROWS + r]));
                    scale = fmaxf(scale, fabsf(y_ref[i * ROWS + r]));
                }
            CHECK(worst <= 1e-4f * (1 + scale), "%s: %s rows of %d tokens differ from the reference by %g (scale %g)",
                  vc_dtype_name(types[t]), vc_isa_name(isas[k]), TOK, worst, scale);
        }
        vc_isa_set(VC_ISA_DEFAULT);
        /* vc_matmul, several tokens, integer path on: these rows for the
         * K-quants. Stored Q5_0 / Q5_1 rows (5 here: no whole groups of 8)
         * take the float GEMM for prefill; interleaved at load they take
         * the interleaved kernels (test_interleaved_q5). */
        if (vc_dtype_block_elems(types[t]) != VC_QK_K)
            continue;
        vc_threads_init(2);
        vc_int8dot_enable(true);
        vc_matmul(&m, x, TOK, y);
        vc_int8dot_enable(false);
        float worst = 0, scale = 0;
        for (int i = 0; i < TOK * ROWS; i++) {
            worst = fmaxf(worst, fabsf(y[i] - y_ref[i]));
            scale = fmaxf(scale, fabsf(y_ref[i]));
        }
        CHECK(worst <= 1e-4f * (1 + scale), "%s: matmul of %d tokens with the integer path differs by %g", vc_dtype_name(types[t]),
              TOK, worst);
        vc_threads_shutdown();
    }
}

/* vc_matmul_multi: matrices of different types and sizes in one dispatch
 * give what separate vc_matmul calls give, with and without --int8-dot. */
/* vc_parallel_chunks: every item once, in ranges that begin at multiples of
 * the chunk, whatever the pool; and a thread held up takes fewer of them. */
typedef struct {
    int64_t count, chunk;
    atomic_int seen[1200];
    atomic_int bad_range, by_worker[4];
    bool hold_up;   /* worker 1 sleeps 50 ms a range */
} chunks_job;

static void chunk_items(void *ctx, int64_t begin, int64_t end, int worker)
{
    chunks_job *j = ctx;
    if (begin % j->chunk != 0 || end != (begin + j->chunk < j->count ? begin + j->chunk : j->count))
        atomic_fetch_add(&j->bad_range, 1);
    for (int64_t i = begin; i < end; i++)
        atomic_fetch_add(&j->seen[i], 1);
    atomic_fetch_add(&j->by_worker[worker], 1);
    if (j->hold_up && worker == 1)
        nanosleep(&(struct timespec){ 0, 50 * 1000 * 1000 }, NULL);
}

static void test_parallel_chunks(void)
{
    static chunks_job j;
    const int64_t counts[] = { 0, 1, 5, 100, 1001 }, chunks[] = { 1, 7, 64, 5000 };
    for (int threads = 1; threads <= 3; threads++) {
        vc_threads_init(threads);
        bool ok = true;
        for (size_t a = 0; a < sizeof counts / sizeof *counts; a++)
            for (size_t b = 0; b < sizeof chunks / sizeof *chunks; b++) {
                memset(&j, 0, sizeof j);
                j.count = counts[a];
                j.chunk = chunks[b];
                vc_parallel_chunks(j.count, j.chunk, chunk_items, &j);
                for (int64_t i = 0; i < j.count; i++)
                    ok = ok && atomic_load(&j.seen[i]) == 1;
                ok = ok && atomic_load(&j.bad_range) == 0;
            }
        CHECK(ok, "vc_parallel_chunks, %d threads: every item once, ranges at multiples of the chunk", threads);
    }
    vc_threads_init(2);
    memset(&j, 0, sizeof j);
    j.count = 40;
    j.chunk = 1;
    j.hold_up = true;
    vc_parallel_chunks(j.count, j.chunk, chunk_items, &j);
    int w0 = atomic_load(&j.by_worker[0]), w1 = atomic_load(&j.by_worker[1]);
    CHECK(w0 + w1 == 40 && w0 > 30, "vc_parallel_chunks: the caller took %d of 40 ranges beside a worker held up (%d)", w0,
          w1);
    vc_threads_shutdown();
}

static void test_matmul_multi(void)
{
    vc_threads_init(3);
    enum { COLS = 128, TOK = 5 };
    const int rows[3] = { 19, 7, 50 };
    const vc_dtype types[3] = { VC_Q8_0, VC_F32, VC_Q4_0 };
    static uint8_t data[3][50 * COLS * 4];
    static float x[TOK * COLS], y_multi[3][TOK * 50], y_single[TOK * 50];
    unsigned seed = 5;
    vc_matrix w[3];
    for (int k = 0; k < 3; k++) {
        size_t rb;
        vc_dtype_row_bytes(types[k], COLS, &rb);
        float row[COLS];
        for (int r = 0; r < rows[k]; r++) {
            for (int c = 0; c < COLS; c++)
                row[c] = frand(&seed);
            vc_quantize_row(types[k], row, data[k] + r * rb, COLS);
        }
        w[k] = (vc_matrix){ types[k], COLS, rows[k], rb, data[k] };
    }
    for (int i = 0; i < TOK * COLS; i++)
        x[i] = frand(&seed);
    for (int int8 = 0; int8 < 2; int8++)
        for (int n = 1; n <= TOK; n += TOK - 1) {
            vc_int8dot_enable(int8);
            vc_matmul_multi(3, w, x, n, (float *[]){ y_multi[0], y_multi[1], y_multi[2] });
            float worst = 0;
            for (int k = 0; k < 3; k++) {
                vc_matmul(&w[k], x, n, y_single);
                for (int i = 0; i < n * rows[k]; i++)
                    worst = fmaxf(worst, fabsf(y_multi[k][i] - y_single[i]));
            }
            CHECK(worst <= 1e-5f, "matmul_multi (%d tokens%s) differs from separate products by %g", n,
                  int8 ? ", int8 dot" : "", worst);
        }
    vc_int8dot_enable(false);
    vc_threads_shutdown();
}

/* Rows interleaved in groups of 8 (--int8-dot at load): vc_matmul over them,
 * one token and several (tiles of 4 and the rest), on every instruction set
 * here, equals the integer reference on the original rows. */
static void test_interleaved(void)
{
    vc_threads_init(2);
    enum { ROWS = 88, COLS = 256, TOK = 11 };   /* 11 groups of 8 rows; tiles of 8 and 4 tokens and a rest */
    static float w[ROWS * COLS], x[TOK * COLS], y[TOK * ROWS];
    static uint8_t q[ROWS * COLS * 2];
    static vc_block_q8_act xq[TOK * COLS / VC_QK8_ACT];
    unsigned seed = 77;
    for (int i = 0; i < ROWS * COLS; i++)
        w[i] = frand(&seed);
    for (int i = 0; i < TOK * COLS; i++)
        x[i] = frand(&seed) * 2;
    for (int i = 0; i < TOK; i++)
        vc_quantize_act(x + i * COLS, xq + i * (COLS / VC_QK8_ACT), COLS);
    static const vc_isa isas[] = { VC_ISA_GENERIC, VC_ISA_AVX2, VC_ISA_AVX_VNNI, VC_ISA_AVX512_VNNI };
    const vc_dtype types[] = { VC_Q4_0, VC_Q8_0 };
    for (size_t t = 0; t < 2; t++) {
        size_t rb;
        vc_dtype_row_bytes(types[t], COLS, &rb);
        for (int r = 0; r < ROWS; r++)
            vc_quantize_row(types[t], w + r * COLS, q + r * rb, COLS);
        if (types[t] == VC_Q8_0)
            ((vc_block_q8_0 *)q)[1].qs[7] = -128;   /* |w| = 128 must survive the sign trick */
        vc_matrix plain = { types[t], COLS, ROWS, rb, q }, il = plain;
        void *owned = NULL;
        CHECK(vc_matrix_prepare_int8(&il, VC_INT8_AS_STORED, &owned) == 1, "%s interleaves", vc_dtype_name(types[t]));
        CHECK(il.type == (types[t] == VC_Q4_0 ? VC_Q4_0_X8 : VC_Q8_0_X8) && il.row_bytes == rb && il.data != q,
              "%s: the interleaved matrix is a copy of the same size", vc_dtype_name(types[t]));
        for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
            if (vc_isa_set(isas[k]) != isas[k])
                continue;
            /* AVX-512: one token takes the 512-bit pair kernel where 512-bit runs at full width */
            for (int wide = 0; wide < (isas[k] == VC_ISA_AVX512_VNNI ? 2 : 1); wide++) {
                vc_cpu_set_full_width_512(wide);
                for (int n = 1; n <= TOK; n += TOK - 1) {
                    vc_matmul(&il, x, n, y);
                    float worst = 0;
                    for (int i = 0; i < n; i++)
                        for (int r = 0; r < ROWS; r++) {
                            float want = vc_dot_row_act_ref(types[t], q + r * rb, xq + i * (COLS / VC_QK8_ACT), COLS);
                            float d = fabsf(y[i * ROWS + r] - want) / (1 + fabsf(want));
                            worst = d > worst || d != d ? d : worst;
                        }
                    CHECK(worst <= 1e-4f, "%s interleaved, %s%s, %d tokens: %g from the reference (relative)",
                          vc_dtype_name(types[t]), vc_isa_name(isas[k]), wide ? " (full width)" : "", n, worst);
                }
            }
            vc_cpu_set_full_width_512(-1);
        }
        vc_isa_set(VC_ISA_DEFAULT);
        free(owned);
    }
    vc_matrix odd = { VC_Q4_0, COLS, 12, 18 * COLS / 32, q }, f32 = { VC_F32, COLS, 8, 4 * COLS, w };
    vc_matrix odd_was = odd, f32_was = f32;
    void *none = NULL;
    CHECK(vc_matrix_prepare_int8(&odd, VC_INT8_AS_STORED, &none) == 0 &&
              vc_matrix_prepare_int8(&f32, VC_INT8_AS_STORED, &none) == 0 && none == NULL &&
              memcmp(&odd, &odd_was, sizeof odd) == 0 && memcmp(&f32, &f32_was, sizeof f32) == 0,
          "only Q4_0/Q8_0 matrices of whole groups of 8 rows interleave");
    /* a vision tower's float matrix: requantized to Q8_0, then interleaved; the
     * products equal the integer reference on the Q8_0 rows */
    static uint8_t q8[ROWS * COLS * 2];
    size_t rb8;
    vc_dtype_row_bytes(VC_Q8_0, COLS, &rb8);
    for (int r = 0; r < ROWS; r++)
        vc_quantize_row(VC_Q8_0, w + r * COLS, q8 + r * rb8, COLS);
    vc_matrix fl = { VC_F32, COLS, ROWS, 4 * COLS, w }, il8 = fl;
    void *owned8 = NULL;
    CHECK(vc_matrix_prepare_int8(&il8, VC_INT8_REQUANTIZE, &owned8) == 1 && il8.type == VC_Q8_0_X8 &&
              il8.row_bytes == rb8 && il8.data == owned8,
          "a float matrix is requantized to interleaved Q8_0");
    vc_matrix again = il8;
    CHECK(vc_matrix_prepare_int8(&again, VC_INT8_REQUANTIZE, &none) == 0 && again.data == il8.data,
          "a prepared matrix is left as it is");
    if (owned8) {
        vc_matmul(&il8, x, TOK, y);
        float worst = 0;
        for (int i = 0; i < TOK; i++)
            for (int r = 0; r < ROWS; r++) {
                float want = vc_dot_row_act_ref(VC_Q8_0, q8 + r * rb8, xq + i * (COLS / VC_QK8_ACT), COLS);
                float d = fabsf(y[i * ROWS + r] - want) / (1 + fabsf(want));
                worst = d > worst || d != d ? d : worst;
            }
        CHECK(worst <= 1e-4f, "requantized float matrix, %d tokens: %g from the reference (relative)", TOK, worst);
    }
    free(owned8);
    vc_threads_shutdown();
}

/* The generic interleaved products y_ref against the stored rows' reference
 * y_rows (n values): within 1e-6 of the products' scale. */
static void check_generic_interleaved(vc_dtype t, int rows, int cols, const float *y_ref, const float *y_rows, int n,
                                      float scale)
{
    float worst = 0;
    for (int i = 0; i < n; i++) {
        float d = fabsf(y_ref[i] - y_rows[i]) / (1 + scale);
        worst = d > worst || d != d ? d : worst;
    }
    CHECK(worst <= 1e-6f, "%s %dx%d: generic interleaved vs the stored rows' reference: %g (of the scale %g)",
          vc_dtype_name(t), rows, cols, worst, scale);
}

/* The vision tower's setting (VC_INT8_QUANTIZED) lays 8 rows of type t
 * (cols columns of w, quantized into q) out as `want`, of the stored size. */
static void check_tower_layout(vc_dtype t, int cols, vc_dtype want, const float *w, uint8_t *q)
{
    size_t rb;
    vc_dtype_row_bytes(t, cols, &rb);
    for (int r = 0; r < 8; r++)
        vc_quantize_row(t, w + r * cols, q + r * rb, cols);
    vc_matrix m = { t, cols, 8, rb, q };
    void *owned = NULL;
    CHECK(vc_matrix_prepare_int8(&m, VC_INT8_QUANTIZED, &owned) == 1 && m.type == want && m.row_bytes == rb,
          "VC_INT8_QUANTIZED lays a %s matrix out as its interleaved type, of the stored size", vc_dtype_name(t));
    free(owned);
}

/* K-quant matrices interleaved in groups of 8 (Q4_K_X8, Q5_K_X8, Q6_K_X8):
 * on random super-blocks (quantized rows whose value, scale and min bytes
 * are then made random, so every 6-bit value and Q6_K's negative scales
 * occur), several shapes and 1..17 tokens, every instruction set's
 * interleaved kernel against the plain-C one, and both against the row
 * kernels on the stored rows (the same integer sums and scales: equal up to
 * the order of the float sums); vc_matmul over the prepared matrix too. */
static void test_interleaved_k(void)
{
    enum { MAXR = 32, MAXC = 1024, TOK = 17 };
    static const int shapes[][2] = { { 8, 256 }, { 16, 512 }, { 24, 768 }, { 32, 1024 } };
    static float w[MAXR * MAXC], x[TOK * MAXC], y_rows[TOK * MAXR], y_ref[TOK * MAXR], y[TOK * MAXR];
    static uint8_t q[MAXR * MAXC];
    static vc_block_q8_act xq[TOK * MAXC / VC_QK8_ACT];
    static const vc_isa isas[] = { VC_ISA_AVX2, VC_ISA_AVX_VNNI, VC_ISA_AVX512_VNNI };
    const vc_dtype types[] = { VC_Q4_K, VC_Q5_K, VC_Q6_K };
    const vc_dtype x8[] = { VC_Q4_K_X8, VC_Q5_K_X8, VC_Q6_K_X8 };
    unsigned seed = 97;
    for (size_t sh = 0; sh < sizeof shapes / sizeof *shapes; sh++) {
        int rows = shapes[sh][0], cols = shapes[sh][1];
        for (int i = 0; i < rows * cols; i++)
            w[i] = frand(&seed);
        for (int i = 0; i < TOK * cols; i++)
            x[i] = frand(&seed) * (1 + i % 5);
        vc_quantize_act(x, xq, (int64_t)TOK * cols);
        for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
            size_t rb, bb = vc_dtype_block_bytes(types[t]);
            vc_dtype_row_bytes(types[t], cols, &rb);
            for (int r = 0; r < rows; r++)
                vc_quantize_row(types[t], w + r * cols, q + r * rb, cols);
            for (int r = 0; r < rows; r++)   /* random bytes past each super-block's f16 scale(s) */
                for (int k = 0; k < cols / VC_QK_K; k++) {
                    uint8_t *blk = q + r * rb + k * bb;
                    size_t from = types[t] == VC_Q6_K ? 0 : 4, to = types[t] == VC_Q6_K ? bb - 2 : bb;
                    for (size_t i = from; i < to; i++) {
                        seed = seed * 1103515245u + 12345u;
                        blk[i] = (uint8_t)(seed >> 16);
                    }
                }
            vc_matrix plain = { types[t], cols, rows, rb, q }, il = plain;
            void *owned = NULL;
            CHECK(vc_matrix_prepare_int8(&il, VC_INT8_AS_STORED, &owned) == 1 && il.type == x8[t] && il.data == owned &&
                      il.rows == rows && il.cols == cols,
                  "%s %dx%d interleaves", vc_dtype_name(types[t]), rows, cols);
            if (!owned)
                continue;
            size_t want_rb = (types[t] == VC_Q4_K ? sizeof(vc_block_q4_kx8) : types[t] == VC_Q5_K ? sizeof(vc_block_q5_kx8)
                                                                                  : sizeof(vc_block_q6_kx8)) / 8 * (cols / VC_QK_K);
            CHECK(il.row_bytes == want_rb, "%s x8 rows of %zu bytes, want %zu", vc_dtype_name(types[t]), il.row_bytes, want_rb);
            vc_isa_set(VC_ISA_GENERIC);
            vc_int8dot_rows(&plain, 0, rows, xq, TOK, y_rows, rows);
            vc_int8dot_interleaved(&il, 0, rows / 8, xq, TOK, y_ref, rows);
            float scale = 0;   /* differences relative to the products' scale */
            for (int i = 0; i < TOK * rows; i++)
                scale = fmaxf(scale, fabsf(y_rows[i]));
            check_generic_interleaved(types[t], rows, cols, y_ref, y_rows, TOK * rows, scale);
            for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
                if (vc_isa_set(isas[k]) != isas[k])
                    continue;
                vc_int8dot_rows(&plain, 0, rows, xq, TOK, y_rows, rows);
                float worst_ref = 0, worst_rows = 0;
                for (int n = 1; n <= TOK; n++) {
                    /* groups 1.. where there are several (numbered from 0 in y), all tokens n */
                    int64_t g0 = rows > 8 ? 1 : 0;
                    for (int i = 0; i < TOK * rows; i++)
                        y[i] = NAN;
                    vc_int8dot_interleaved(&il, g0, rows / 8, xq, n, y, rows);
                    for (int i = 0; i < n; i++)
                        for (int r = (int)g0 * 8; r < rows; r++) {
                            float got = y[i * rows + r - g0 * 8], ref = y_ref[i * rows + r], rw = y_rows[i * rows + r];
                            float d1 = fabsf(got - ref) / (1 + scale), d2 = fabsf(got - rw) / (1 + scale);
                            worst_ref = d1 > worst_ref || d1 != d1 ? d1 : worst_ref;
                            worst_rows = d2 > worst_rows || d2 != d2 ? d2 : worst_rows;
                        }
                }
                CHECK(worst_ref <= 1e-5f && worst_rows <= 1e-5f,
                      "%s %dx%d, %s, 1..%d tokens: interleaved %g from the reference, %g from the row kernel (of the scale)",
                      vc_dtype_name(types[t]), rows, cols, vc_isa_name(isas[k]), TOK, worst_ref, worst_rows);
                if (isas[k] == VC_ISA_AVX512_VNNI) {
                    /* one token where 512-bit runs at full width: the pair kernel (groups half the range
                     * apart, the odd one left to the 256-bit kernel) gives the 256-bit kernel's floats */
                    static float y_narrow[MAXR], y_wide[MAXR];
                    int64_t g0 = rows > 8 ? 1 : 0;
                    vc_cpu_set_full_width_512(0);
                    vc_int8dot_interleaved(&il, g0, rows / 8, xq, 1, y_narrow, rows);
                    vc_cpu_set_full_width_512(1);
                    vc_int8dot_interleaved(&il, g0, rows / 8, xq, 1, y_wide, rows);
                    vc_cpu_set_full_width_512(-1);
                    CHECK(memcmp(y_narrow, y_wide, (size_t)(rows - 8 * g0) * sizeof *y_wide) == 0,
                          "%s %dx%d, one token: the 512-bit pair kernel gives the 256-bit kernel's floats",
                          vc_dtype_name(types[t]), rows, cols);
                }
            }
            vc_isa_set(VC_ISA_DEFAULT);
            /* vc_matmul over the prepared matrix, every token count: the integer path */
            vc_threads_init(2);
            vc_int8dot_enable(true);
            float worst_mm = 0;
            for (int n = 1; n <= TOK; n += 4) {
                vc_matmul(&il, x, n, y);
                for (int i = 0; i < n * rows; i++) {
                    float d = fabsf(y[i] - y_ref[i]) / (1 + scale);
                    worst_mm = d > worst_mm || d != d ? d : worst_mm;
                }
            }
            vc_int8dot_enable(false);
            vc_threads_shutdown();
            CHECK(worst_mm <= 1e-5f, "%s %dx%d: matmul over the interleaved matrix %g from the reference (of the scale)",
                  vc_dtype_name(types[t]), rows, cols, worst_mm);
            free(owned);
        }
    }
    /* the vision tower's setting keeps K-quant values too (no Q8_0 requantization) */
    check_tower_layout(VC_Q6_K, 256, VC_Q6_K_X8, w, q);
}

/* The 5-bit value q (0..31) of row r, column c of a block: from a stored
 * Q5_0 / Q5_1 block (dtype.h: low nibbles then high ones, bit c of qh), and
 * from a Q5_0_X8 / Q5_1_X8 block as dtype.h lays it out (column quad j =
 * c / 4 in the (j / 2)-th 32 nibble bytes, high nibbles for odd j; bit j of
 * qh[4r + c % 4]). */
static int q5_stored_value(const uint8_t qs[16], const uint8_t qh[4], int c)
{
    uint32_t h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
    return ((c < 16 ? qs[c] : qs[c - 16] >> 4) & 0xf) | (int)((h >> c) & 1) << 4;
}

static int q5x8_value(const uint8_t qs[128], const uint8_t qh[32], int r, int c)
{
    int j = c / 4, i = c % 4;
    return ((qs[32 * (j / 2) + 4 * r + i] >> (4 * (j % 2))) & 0xf) | ((qh[4 * r + i] >> j) & 1) << 4;
}

/* Q5_0 / Q5_1 matrices interleaved in groups of 8 (Q5_0_X8, Q5_1_X8): on
 * random blocks (quantized rows whose qh and qs bytes are then made random,
 * so every 5-bit value occurs), shapes of 1, 3 and 5 groups (rows not a
 * multiple of 16) and odd block counts:
 *  - vc_matrix_prepare_int8 takes them, of the stored size, and each
 *    row's scales, mins and 5-bit values read back from the layout as
 *    dtype.h documents it are the stored ones;
 *  - the plain-C interleaved product equals vc_dot_row_act_ref on the
 *    stored rows;
 *  - every instruction set's kernel, 1..17 tokens (the AVX-512 pair tiles
 *    at 8 and 16, the rest and one token beside them), all groups and
 *    groups 1.., equals the plain-C one;
 *  - vc_matmul with the integer path on takes the interleaved path for
 *    several tokens: its products are the integer ones, which the float
 *    GEMM on the stored rows is not. */
static void test_interleaved_q5(void)
{
    enum { MAXR = 40, MAXC = 256, TOK = 17 };
    static const int shapes[][2] = { { 8, 32 }, { 24, 96 }, { 40, 160 }, { 24, 256 } };
    static float w[MAXR * MAXC], x[TOK * MAXC], y_rows[TOK * MAXR], y_ref[TOK * MAXR], y[TOK * MAXR];
    static uint8_t q[MAXR * MAXC];
    static vc_block_q8_act xq[TOK * MAXC / VC_QK8_ACT];
    static const vc_isa isas[] = { VC_ISA_AVX2, VC_ISA_AVX_VNNI, VC_ISA_AVX512_VNNI };
    const vc_dtype types[] = { VC_Q5_0, VC_Q5_1 };
    unsigned seed = 131;
    for (size_t sh = 0; sh < sizeof shapes / sizeof *shapes; sh++) {
        int rows = shapes[sh][0], cols = shapes[sh][1], groups = rows / 8, nb = cols / 32;
        for (int i = 0; i < rows * cols; i++)
            w[i] = frand(&seed) * (1 + i % 3);
        for (int i = 0; i < TOK * cols; i++)
            x[i] = frand(&seed) * (1 + i % 5);
        vc_quantize_act(x, xq, (int64_t)TOK * cols);
        for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
            bool q51 = types[t] == VC_Q5_1;
            vc_dtype x8 = q51 ? VC_Q5_1_X8 : VC_Q5_0_X8;
            size_t rb, bb = vc_dtype_block_bytes(types[t]), from = q51 ? 4 : 2;   /* past d (and m) */
            vc_dtype_row_bytes(types[t], cols, &rb);
            for (int r = 0; r < rows; r++)
                vc_quantize_row(types[t], w + r * cols, q + r * rb, cols);
            for (int r = 0; r < rows; r++)
                for (int b = 0; b < nb; b++)
                    for (size_t i = from; i < bb; i++) {
                        seed = seed * 1103515245u + 12345u;
                        q[r * rb + b * bb + i] = (uint8_t)(seed >> 16);
                    }
            vc_matrix plain = { types[t], cols, rows, rb, q }, il = plain;
            void *owned = NULL;
            CHECK(vc_matrix_prepare_int8(&il, VC_INT8_AS_STORED, &owned) == 1 && il.type == x8 && il.data == owned &&
                      il.rows == rows && il.cols == cols && il.row_bytes == rb,
                  "%s %dx%d interleaves, of the stored size", vc_dtype_name(types[t]), rows, cols);
            if (!owned)
                continue;
            bool same = true;   /* the round trip, byte by byte */
            for (int g = 0; g < groups; g++)
                for (int b = 0; b < nb; b++) {
                    const uint8_t *xb = (const uint8_t *)owned + (size_t)g * 8 * rb + (size_t)b * bb * 8;
                    const vc_block_q5_0x8 *x0 = (const vc_block_q5_0x8 *)xb;
                    const vc_block_q5_1x8 *x1 = (const vc_block_q5_1x8 *)xb;
                    for (int r = 0; r < 8; r++) {
                        const uint8_t *sb = q + (size_t)(8 * g + r) * rb + (size_t)b * bb;
                        if (q51) {
                            const vc_block_q5_1 *s1 = (const vc_block_q5_1 *)sb;
                            same = same && x1->d[r] == s1->d && x1->m[r] == s1->m;
                            for (int c = 0; c < 32; c++)
                                same = same && q5x8_value(x1->qs, x1->qh, r, c) == q5_stored_value(s1->qs, s1->qh, c);
                        } else {
                            const vc_block_q5_0 *s0 = (const vc_block_q5_0 *)sb;
                            same = same && x0->d[r] == s0->d;
                            for (int c = 0; c < 32; c++)
                                same = same && q5x8_value(x0->qs, x0->qh, r, c) == q5_stored_value(s0->qs, s0->qh, c);
                        }
                    }
                }
            CHECK(same, "%s %dx%d: the interleaved scales and values are the stored ones", vc_dtype_name(types[t]), rows, cols);
            /* the reference: per token and row vc_dot_row_act_ref on the stored rows */
            for (int i = 0; i < TOK; i++)
                for (int r = 0; r < rows; r++)
                    y_rows[i * rows + r] = vc_dot_row_act_ref(types[t], q + r * rb, xq + i * nb, cols);
            vc_isa_set(VC_ISA_GENERIC);
            vc_int8dot_interleaved(&il, 0, groups, xq, TOK, y_ref, rows);
            float scale = 0;   /* differences relative to the products' scale */
            for (int i = 0; i < TOK * rows; i++)
                scale = fmaxf(scale, fabsf(y_rows[i]));
            check_generic_interleaved(types[t], rows, cols, y_ref, y_rows, TOK * rows, scale);
            for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
                if (vc_isa_set(isas[k]) != isas[k])
                    continue;
                float worst_isa = 0;
                for (int n = 1; n <= TOK; n++)
                    for (int64_t g0 = 0; g0 <= (groups > 1); g0++) {   /* all groups; groups 1.. (numbered from 0 in y) */
                        for (int i = 0; i < TOK * rows; i++)
                            y[i] = NAN;
                        vc_int8dot_interleaved(&il, g0, groups, xq, n, y, rows);
                        for (int i = 0; i < n; i++)
                            for (int r = (int)g0 * 8; r < rows; r++) {
                                float d = fabsf(y[i * rows + r - g0 * 8] - y_ref[i * rows + r]) / (1 + scale);
                                worst_isa = d > worst_isa || d != d ? d : worst_isa;
                            }
                    }
                CHECK(worst_isa <= 1e-5f, "%s %dx%d, %s, 1..%d tokens: interleaved %g from the reference (of the scale)",
                      vc_dtype_name(types[t]), rows, cols, vc_isa_name(isas[k]), TOK, worst_isa);
                if (isas[k] == VC_ISA_AVX512_VNNI) {
                    /* one token where 512-bit runs at full width: the pair kernel gives the 256-bit kernel's floats */
                    static float y_narrow[MAXR], y_wide[MAXR];
                    bool equal = true;
                    for (int64_t g0 = 0; g0 <= (groups > 1); g0++) {
                        vc_cpu_set_full_width_512(0);
                        vc_int8dot_interleaved(&il, g0, groups, xq, 1, y_narrow, rows);
                        vc_cpu_set_full_width_512(1);
                        vc_int8dot_interleaved(&il, g0, groups, xq, 1, y_wide, rows);
                        equal = equal && memcmp(y_narrow, y_wide, (size_t)(rows - 8 * g0) * sizeof *y_wide) == 0;
                    }
                    vc_cpu_set_full_width_512(-1);
                    CHECK(equal, "%s %dx%d, one token: the 512-bit pair kernel gives the 256-bit kernel's floats",
                          vc_dtype_name(types[t]), rows, cols);
                }
            }
            vc_isa_set(VC_ISA_DEFAULT);
            /* vc_matmul, integer path on: the interleaved kernels for 1, 8, 9 and 17 tokens */
            vc_threads_init(2);
            vc_int8dot_enable(true);
            float worst_mm = 0;
            static const int counts[] = { 1, 8, 9, 17 };
            for (size_t c = 0; c < sizeof counts / sizeof *counts; c++) {
                vc_matmul(&il, x, counts[c], y);
                for (int i = 0; i < counts[c] * rows; i++) {
                    float d = fabsf(y[i] - y_ref[i]) / (1 + scale);
                    worst_mm = d > worst_mm || d != d ? d : worst_mm;
                }
            }
            vc_int8dot_enable(false);
            vc_matmul(&plain, x, TOK, y);   /* the float GEMM over the stored rows: the activations unrounded */
            float float_off = 0;
            for (int i = 0; i < TOK * rows; i++)
                float_off = fmaxf(float_off, fabsf(y[i] - y_ref[i]) / (1 + scale));
            vc_threads_shutdown();
            CHECK(worst_mm <= 1e-5f && float_off > 1e-4f,
                  "%s %dx%d: matmul over the interleaved matrix %g from the integer reference (the float GEMM: %g)",
                  vc_dtype_name(types[t]), rows, cols, worst_mm, float_off);
            free(owned);
        }
    }
    /* the vision tower's setting interleaves Q5_0 as it is too (no Q8_0 requantization) */
    check_tower_layout(VC_Q5_0, 64, VC_Q5_0_X8, w, q);
}

int main(void)
{
    test_half();
    test_half_rows();
    test_layouts();
    test_roundtrip();
    test_isa();
    test_kernels();
    test_gemm();
    test_activations();
    test_quantize_act();
    test_int8dot();
    test_int8_rows();
    test_parallel_chunks();
    test_matmul_multi();
    test_interleaved();
    test_interleaved_k();
    test_interleaved_q5();
    return harness_finish("test_quant");
}
