/* bench_int8.c - GMAC/s of the integer matrix products (not a test: nothing
 * is asserted; `make build/bench_int8`).
 *
 *   build/bench_int8 [rows cols [threads...]]     (default 3072 8192, 1 and 2 threads)
 *
 * For Q4_0, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K: vc_matmul with the integer
 * path on over the matrix interleaved at load (vc_matrix_prepare_int8) and,
 * for the K-quants, Q5_0 and Q5_1, over the stored rows (the integer row
 * kernels for one token, and for the K-quants up to 32; the float GEMM past
 * that), for 1, 8, 64 and 256 tokens; and the time
 * vc_matrix_prepare_int8 takes. Random weights (a few distinct rows
 * repeated), random activations; the best of a few runs.
 *
 * On the 2-core AVX-512 VNNI development machine (shared: load average
 * about 1.2 during the run, figures vary by 20-30% run to run), 3072 x 8192,
 * GMAC/s at 1 / 8 / 64 / 256 tokens, interleaved (stored rows):
 *   1 thread   Q4_0  35 / 101 / 151 / 154
 *              Q4_K  31 / 121 / 127 / 129   (14 / 21 / 28 / 42)
 *              Q5_K  17 /  71 / 111 / 125   (12 / 21 / 28 / 45)
 *              Q6_K  20 /  77 / 113 / 119   (17 / 22 / 26 / 40)
 *   2 threads  Q4_0  63 / 250 / 297 / 286
 *              Q4_K  84 / 202 / 190 / 210   (21 / 34 / 55 / 83)
 *              Q5_K  64 / 188 / 209 / 237   (15 / 29 / 41 / 77)
 *              Q6_K  42 / 124 / 162 / 121   (15 / 25 / 50 / 78)
 * A later run, 1 thread, with Q5_0 / Q5_1 interleaved (Q4_0 beside them, as
 * the load differed):
 *              Q4_0  46 / 195 / 206 / 196
 *              Q5_0  36 / 174 / 181 / 176   (15 /  4 / 21 / 39)
 *              Q5_1  36 / 162 / 154 / 153   (11 /  4 / 21 / 39)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/int8dot.h"
#include "core/kernels.h"
#include "core/matrix.h"
#include "core/threads.h"

static float frand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return ((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* Best-of GMAC/s of vc_matmul(w, x, n). */
static double gmacs(const vc_matrix *w, const float *x, int n, float *y)
{
    double macs = (double)w->rows * (double)w->cols * n, best = 1e30;
    int reps = n >= 64 ? 3 : 8;
    vc_matmul(w, x, n, y);   /* warm */
    for (int r = 0; r < reps; r++) {
        double t0 = vc_now_ms();
        vc_matmul(w, x, n, y);
        double t = vc_now_ms() - t0;
        best = t < best ? t : best;
    }
    return macs / (best * 1e-3) / 1e9;
}

int main(int argc, char **argv)
{
    int64_t rows = argc > 2 ? atoll(argv[1]) : 3072, cols = argc > 2 ? atoll(argv[2]) : 8192;
    int threads[8] = { 1, 2 }, n_threads = 2;
    if (argc > 3) {
        n_threads = 0;
        for (int i = 3; i < argc && n_threads < 8; i++)
            threads[n_threads++] = atoi(argv[i]);
    }
    enum { DISTINCT = 64, MAXTOK = 256 };
    static const int toks[] = { 1, 8, 64, 256 };
    const vc_dtype types[] = { VC_Q4_0, VC_Q5_0, VC_Q5_1, VC_Q4_K, VC_Q5_K, VC_Q6_K };
    float *wf = malloc((size_t)DISTINCT * cols * sizeof *wf), *x = malloc((size_t)MAXTOK * cols * sizeof *x);
    float *y = malloc((size_t)MAXTOK * rows * sizeof *y);
    uint8_t *q = malloc((size_t)rows * cols);   /* a byte a weight: more than any type here needs */
    if (!wf || !x || !y || !q) {
        fprintf(stderr, "bench_int8: out of memory\n");
        return 1;
    }
    unsigned seed = 1;
    for (int64_t i = 0; i < DISTINCT * cols; i++)
        wf[i] = frand(&seed);
    for (int64_t i = 0; i < MAXTOK * cols; i++)
        x[i] = frand(&seed);
    vc_int8dot_enable(true);
    printf("%lld x %lld, int8 kernels %s\n", (long long)rows, (long long)cols, vc_int8dot_isa());
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        size_t rb;
        if (vc_dtype_row_bytes(types[t], cols, &rb) != 0)
            continue;
        for (int r = 0; r < DISTINCT; r++)
            vc_quantize_row(types[t], wf + (size_t)r * cols, q + (size_t)r * rb, cols);
        for (int64_t r = DISTINCT; r < rows; r++)
            memcpy(q + (size_t)r * rb, q + (size_t)(r % DISTINCT) * rb, rb);
        vc_matrix stored = { types[t], cols, rows, rb, q }, il = stored;
        void *owned = NULL;
        double t0 = vc_now_ms();
        int rc = vc_matrix_prepare_int8(&il, VC_INT8_AS_STORED, &owned);
        double prep = vc_now_ms() - t0;
        if (rc != 1) {
            fprintf(stderr, "bench_int8: %s does not interleave\n", vc_dtype_name(types[t]));
            return 1;
        }
        printf("%s: interleaved in %.1f ms (%zu -> %zu bytes a row)\n", vc_dtype_name(types[t]), prep, rb, il.row_bytes);
        bool stored_rows = types[t] != VC_Q4_0;   /* the path before the interleaved one, to compare */
        for (int k = 0; k < n_threads; k++) {
            vc_threads_init(threads[k]);
            printf("  %d thread%s  interleaved:", threads[k], threads[k] > 1 ? "s" : " ");
            for (size_t i = 0; i < sizeof toks / sizeof *toks; i++)
                printf(" %4d tok %6.1f", toks[i], gmacs(&il, x, toks[i], y));
            printf(" GMAC/s\n");
            if (stored_rows) {
                printf("  %d thread%s  stored rows:", threads[k], threads[k] > 1 ? "s" : " ");
                for (size_t i = 0; i < sizeof toks / sizeof *toks; i++)
                    printf(" %4d tok %6.1f", toks[i], gmacs(&stored, x, toks[i], y));
                printf(" GMAC/s\n");
            }
            vc_threads_shutdown();
        }
        fflush(stdout);
        free(owned);
    }
    free(wf);
    free(x);
    free(y);
    free(q);
    return 0;
}
