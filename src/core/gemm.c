/* gemm.c - see include/core/gemm.h
 *
 * Two shapes of micro-kernel:
 *  - NT (dot products, AVX2): a 4x3 block of C in 12 vector accumulators,
 *    each loaded vector feeding three or four FMAs; the sums across a vector
 *    come once per element of C, which long K pays for. (An AVX-512 twin
 *    ran at 3/4 of its speed: 16-lane sums, and loads split across cache
 *    lines; where AVX-512 is, NN is used instead, see vc_gemm_nn_preferred.)
 *  - NN (outer products, AVX2 and AVX-512): a 6-row block of C, 2 or 4
 *    vectors wide; per k, the B vectors are loaded once and each A element
 *    is broadcast into one FMA per vector. Nothing is summed across a
 *    vector, so short K costs nothing extra.
 * The edge tiles are the same functions with smaller constant sizes,
 * inlined per size, with masked loads for the last columns.
 */
#include "core/gemm.h"

#include <stdbool.h>
#include <stddef.h>

#include "core/cpu.h"
#include "core/meminfo.h"

#ifdef VC_HAVE_BLAS
#include <cblas.h>
#endif

#if defined(__x86_64__)
#include <immintrin.h>
#define VC_HAVE_X86 1
#endif

typedef enum { GEMM_GENERIC, GEMM_AVX2, GEMM_AVX512 } gemm_isa;
static const char *const gemm_isa_names[] = { "generic", "avx2", "avx512" };

/* Per call, so that a level set for tests (core/cpu.h) reaches here too. */
static gemm_isa current(void)
{
    return vc_isa_has(VC_ISA_AVX512) ? GEMM_AVX512 : vc_isa_has(VC_ISA_AVX2) ? GEMM_AVX2 : GEMM_GENERIC;
}

bool vc_gemm_use_blas(void)
{
#ifdef VC_HAVE_BLAS
    /* OpenBLAS maps a 128 MiB buffer per thread and retries forever when the
     * mapping fails, which a tight `ulimit -v` makes happen: there, stay off. */
    static int room = -1;
    if (room < 0) {
        size_t left = vc_mem_address_space_left();
        room = left == 0 || left > ((size_t)2 << 30);
    }
    return room && vc_isa_has(VC_ISA_AVX2);   /* the generic level also turns BLAS off */
#else
    return false;
#endif
}

const char *vc_gemm_isa(void) { return gemm_isa_names[current()]; }

bool vc_gemm_nn_preferred(void) { return current() == GEMM_AVX512; }

void vc_gemm_nt_ref(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc)
{
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            float t = 0;
            for (int k = 0; k < K; k++)
                t += A[(size_t)m * lda + k] * B[(size_t)n * ldb + k];
            C[(size_t)m * ldc + n] = t;
        }
}

void vc_gemm_nn_ref(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc)
{
    for (int m = 0; m < M; m++) {
        float *c = C + (size_t)m * ldc;
        for (int n = 0; n < N; n++)
            c[n] = 0;
        for (int k = 0; k < K; k++) {
            float a = A[(size_t)m * lda + k];
            const float *b = B + (size_t)k * ldb;
            for (int n = 0; n < N; n++)
                c[n] += a * b[n];
        }
    }
}

#ifdef VC_HAVE_X86
#include "simd_x86.h"

/* The tiles are inlined into each driver with constant sizes; the drivers
 * are named per instruction set for NN_DRIVER. */
#define INLINE_avx2 VC_TARGET_AVX2 __attribute__((always_inline)) static inline
#define INLINE_avx512 VC_TARGET_AVX512 __attribute__((always_inline)) static inline
#define FN_avx2 VC_TARGET_AVX2 static
#define FN_avx512 VC_TARGET_AVX512 static

/* ---- NT ---- */

/* An mr x nr block (mr <= 4, nr <= 3) of C = A B^T; the tail of K past
 * the last whole vector in plain C. */
INLINE_avx2 void nt_tile_avx2(int mr, int nr, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc)
{
    __m256 acc[4][3];
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 3
        for (int j = 0; j < nr; j++)
            acc[i][j] = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 w[3];
#pragma GCC unroll 3
        for (int j = 0; j < nr; j++)
            w[j] = _mm256_loadu_ps(B + (size_t)j * ldb + k);
#pragma GCC unroll 4
        for (int i = 0; i < mr; i++) {
            __m256 x = _mm256_loadu_ps(A + (size_t)i * lda + k);
#pragma GCC unroll 3
            for (int j = 0; j < nr; j++)
                acc[i][j] = _mm256_fmadd_ps(x, w[j], acc[i][j]);
        }
    }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float t = vc_hsum256(acc[i][j]);
            for (int kk = k; kk < K; kk++)
                t += A[(size_t)i * lda + kk] * B[(size_t)j * ldb + kk];
            C[(size_t)i * ldc + j] = t;
        }
}

/* Passes of 48 rows of B (48 rows of K floats stay in L2 while every block
 * of A goes by); 4x3 blocks, then 4x1 and 1x3, 1x1 at the edges. */
FN_avx2 void gemm_nt_avx2(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc)
{
    enum { NB = 48 };
    for (int n0 = 0; n0 < N; n0 += NB) {
        int n1 = n0 + NB < N ? n0 + NB : N;
        for (int m = 0; m < M; m += 4) {
            const float *a = A + (size_t)m * lda;
            float *c = C + (size_t)m * ldc;
            bool full = m + 4 <= M;
            int n = n0;
            for (; n + 3 <= n1; n += 3)
                if (full)
                    nt_tile_avx2(4, 3, K, a, lda, B + (size_t)n * ldb, ldb, c + n, ldc);
                else
                    for (int i = m; i < M; i++)
                        nt_tile_avx2(1, 3, K, A + (size_t)i * lda, lda, B + (size_t)n * ldb, ldb, C + (size_t)i * ldc + n,
                                     ldc);
            for (; n < n1; n++)
                if (full)
                    nt_tile_avx2(4, 1, K, a, lda, B + (size_t)n * ldb, ldb, c + n, ldc);
                else
                    for (int i = m; i < M; i++)
                        nt_tile_avx2(1, 1, K, A + (size_t)i * lda, lda, B + (size_t)n * ldb, ldb, C + (size_t)i * ldc + n,
                                     ldc);
        }
    }
}

/* ---- NN ---- */

/* An mr x (8 nv) block (mr <= 6, nv <= 2) of C = A B, or of C += A B
 * where `add` (a later block of K); the last vector's columns are `last`
 * (1..8), loaded and stored under a mask. `next`: the next tile's A, to
 * prefetch (AVX-512 only; NULL: none). */
INLINE_avx2 void nn_tile_avx2(int mr, int nv, int last, bool add, int K, const float *A, int lda, const float *B,
                              int ldb, float *C, int ldc, const float *next)
{
    (void)next;
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(last), lanes);
    __m256 acc[6][2];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 2
        for (int j = 0; j < nv; j++) {
            const float *c = C + (size_t)i * ldc + 8 * j;
            acc[i][j] = !add ? _mm256_setzero_ps() : j + 1 < nv ? _mm256_loadu_ps(c) : _mm256_maskload_ps(c, mask);
        }
    for (int k = 0; k < K; k++) {
        const float *b = B + (size_t)k * ldb;
        __m256 w[2];
#pragma GCC unroll 2
        for (int j = 0; j < nv; j++)
            w[j] = j + 1 < nv ? _mm256_loadu_ps(b + 8 * j) : _mm256_maskload_ps(b + 8 * j, mask);
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            __m256 x = _mm256_broadcast_ss(A + (size_t)i * lda + k);
#pragma GCC unroll 2
            for (int j = 0; j < nv; j++)
                acc[i][j] = _mm256_fmadd_ps(x, w[j], acc[i][j]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 2
        for (int j = 0; j < nv; j++) {
            float *c = C + (size_t)i * ldc + 8 * j;
            if (j + 1 < nv)
                _mm256_storeu_ps(c, acc[i][j]);
            else
                _mm256_maskstore_ps(c, mask, acc[i][j]);
        }
}

INLINE_avx512 void nn_tile_avx512(int mr, int nv, int last, bool add, int K, const float *A, int lda, const float *B,
                                  int ldb, float *C, int ldc, const float *next)
{
    __mmask16 mask = (__mmask16)((1u << last) - 1);
    __m512 acc[6][4];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++) {
            const float *c = C + (size_t)i * ldc + 16 * j;
            acc[i][j] = !add ? _mm512_setzero_ps() : j + 1 < nv ? _mm512_loadu_ps(c) : _mm512_maskz_loadu_ps(mask, c);
        }
    for (int k = 0; k < K; k++) {
        if ((k & 15) == 0 && next)   /* a line of each of the next tile's rows of A every 16 k */
#pragma GCC unroll 6
            for (int i = 0; i < 6; i++)
                _mm_prefetch((const char *)(next + (size_t)i * lda + k), _MM_HINT_T0);
        const float *b = B + (size_t)k * ldb;
        __m512 w[4];
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++)
            w[j] = j + 1 < nv ? _mm512_loadu_ps(b + 16 * j) : _mm512_maskz_loadu_ps(mask, b + 16 * j);
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            __m512 x = _mm512_set1_ps(A[(size_t)i * lda + k]);
#pragma GCC unroll 4
            for (int j = 0; j < nv; j++)
                acc[i][j] = _mm512_fmadd_ps(x, w[j], acc[i][j]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++) {
            float *c = C + (size_t)i * ldc + 16 * j;
            if (j + 1 < nv)
                _mm512_storeu_ps(c, acc[i][j]);
            else
                _mm512_mask_storeu_ps(c, mask, acc[i][j]);
        }
}

/* One call of the mr x nv tile for mr = 1..6. */
#define NN_TILE(ISA, mr, nv, last, add, K, A, lda, B, ldb, C, ldc, next)                                             \
    switch (mr) {                                                                                                    \
    case 6: nn_tile_##ISA(6, nv, last, add, K, A, lda, B, ldb, C, ldc, next); break;                                 \
    case 5: nn_tile_##ISA(5, nv, last, add, K, A, lda, B, ldb, C, ldc, next); break;                                 \
    case 4: nn_tile_##ISA(4, nv, last, add, K, A, lda, B, ldb, C, ldc, next); break;                                 \
    case 3: nn_tile_##ISA(3, nv, last, add, K, A, lda, B, ldb, C, ldc, next); break;                                 \
    case 2: nn_tile_##ISA(2, nv, last, add, K, A, lda, B, ldb, C, ldc, next); break;                                 \
    default: nn_tile_##ISA(1, nv, last, add, K, A, lda, B, ldb, C, ldc, next); break;                                \
    }

/* Panels of WIDE vectors of VL floats, each K rows of B read from cache by
 * every 6-row block of A in turn; the columns past the last whole panel go
 * one vector at a time, the very last one masked.
 *
 * Where B's rows are a packed panel (ldb = VL * WIDE, as the prefill and
 * vision matmuls lay out their weights) the panel streams from L2 or L3 in
 * one pass over K, the prefetchers following it and the rows of A. Where
 * they are strided (a whole matrix, V's columns of one head) a panel of
 * long K falls out of cache between the blocks of A (1 thread, M = 577,
 * K = 1024, N = 4096: about half the speed of a packed panel): there, from
 * K = 4 NN_KC on, K goes in blocks of NN_KC rows, which stay in L2 while
 * every block of A goes by, the tiles after the first block adding to C
 * (the same FMAs in the same order over k as one pass), each tile
 * prefetching the next one's rows of A for its block. Blocking the packed panels too measured 3-8% slower,
 * and strided ones of shorter K (a ViT's 577 keys, 32 queries) about 5%:
 * the rows of A then come in short pieces that the prefetchers miss. */
#define NN_KC 256
#define NN_DRIVER(ISA, VL, WIDE)                                                                                      \
    FN_##ISA void gemm_nn_##ISA(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,    \
                                int ldc)                                                                             \
    {                                                                                                                \
        int kb = ldb > (VL) * (WIDE) && K >= 4 * NN_KC ? NN_KC : K;                                                  \
        for (int n = 0; n < N;) {                                                                                    \
            bool whole = n + (VL) * (WIDE) <= N;                                                                     \
            int last = N - n < (VL) ? N - n : (VL);                                                                  \
            int k0 = 0;                                                                                              \
            do {                                                                                                     \
                int kc = K - k0 < kb ? K - k0 : kb;                                                                  \
                bool add = k0 > 0;                                                                                   \
                const float *b = B + (size_t)k0 * ldb + n;                                                           \
                for (int m = 0; m < M; m += 6) {                                                                     \
                    int mr = M - m < 6 ? M - m : 6;                                                                  \
                    const float *a = A + (size_t)m * lda + k0;                                                       \
                    float *c = C + (size_t)m * ldc + n;                                                              \
                    const float *next = kb < K && m + 12 <= M ? a + (size_t)6 * lda : NULL;                          \
                    if (whole)                                                                                       \
                        NN_TILE(ISA, mr, WIDE, VL, add, kc, a, lda, b, ldb, c, ldc, next)                            \
                    else                                                                                             \
                        NN_TILE(ISA, mr, 1, last, add, kc, a, lda, b, ldb, c, ldc, next)                             \
                }                                                                                                    \
                k0 += kc;                                                                                            \
            } while (k0 < K);                                                                                        \
            n += whole ? (VL) * (WIDE) : (VL);                                                                       \
        }                                                                                                            \
    }
NN_DRIVER(avx2, 8, 2)
NN_DRIVER(avx512, 16, 4)

/* dst[j * ldd + i] = src[i * lds + j] for an 8x8 tile: pairs interleaved,
 * then quads, then the 128-bit halves exchanged. */
FN_avx2 void transpose8_avx2(const float *src, size_t lds, float *dst, size_t ldd)
{
    __m256 r[8], t[8], q[8];
    for (int i = 0; i < 8; i++)
        r[i] = _mm256_loadu_ps(src + i * lds);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        q[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        q[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
        q[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        q[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
    for (int i = 0; i < 4; i++) {
        _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(q[i], q[i + 4], 0x20));
        _mm256_storeu_ps(dst + (i + 4) * ldd, _mm256_permute2f128_ps(q[i], q[i + 4], 0x31));
    }
}

#endif

void vc_transpose(int rows, int cols, const float *src, int lds, float *dst, int ldd)
{
    int r8 = 0, c8 = 0;
#ifdef VC_HAVE_X86
    if (current() != GEMM_GENERIC) {   /* 8x8 tiles: the stores run along dst instead of striding across it */
        r8 = rows / 8 * 8;
        c8 = cols / 8 * 8;
        for (int r = 0; r < r8; r += 8)
            for (int c = 0; c < c8; c += 8)
                transpose8_avx2(src + (size_t)r * lds + c, (size_t)lds, dst + (size_t)c * ldd + r, (size_t)ldd);
    }
#endif
    for (int c = 0; c < cols; c++)   /* what the tiles leave: the last rows and columns */
        for (int r = c < c8 ? r8 : 0; r < rows; r++)
            dst[(size_t)c * ldd + r] = src[(size_t)r * lds + c];
}

void vc_gemm_nt(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc)
{
#ifdef VC_HAVE_BLAS
    if (M >= VC_BLAS_MIN_TOKENS && vc_gemm_use_blas()) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
        return;
    }
#endif
#ifdef VC_HAVE_X86
    switch (current()) {
    case GEMM_AVX512:   /* AVX-512 dot products measured slower than these: the sums across 16 lanes */
    case GEMM_AVX2: gemm_nt_avx2(M, N, K, A, lda, B, ldb, C, ldc); return;
    case GEMM_GENERIC: break;
    }
#endif
    vc_gemm_nt_ref(M, N, K, A, lda, B, ldb, C, ldc);
}

void vc_gemm_nn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc)
{
#ifdef VC_HAVE_X86
    switch (current()) {
    case GEMM_AVX512: gemm_nn_avx512(M, N, K, A, lda, B, ldb, C, ldc); return;
    case GEMM_AVX2: gemm_nn_avx2(M, N, K, A, lda, B, ldb, C, ldc); return;
    case GEMM_GENERIC: break;
    }
#endif
    vc_gemm_nn_ref(M, N, K, A, lda, B, ldb, C, ldc);
}
