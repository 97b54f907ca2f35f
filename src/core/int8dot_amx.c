/* int8dot_amx.c - see int8dot_amx.h
 *
 * AMX: eight tile registers of up to 16 rows of 64 bytes, shaped by a
 * 64-byte configuration, and TDPBSSD, which adds to a 16 x 16 int32 tile C
 * the products of a 16 x K signed byte tile A (K bytes a row) and a
 * K/4 x 64 signed byte tile B laid out in fours:
 *     C[m][n] += sum over k < K of A[m][k] * B[k / 4][4 n + k % 4].
 * A is 16 tokens' activation bytes of one block of 32 columns (16 for Q6_K,
 * whose scales change every 16), loaded straight from the vc_block_q8_act
 * array with a token's stride. B is the same columns of 16 rows, two
 * neighbouring groups of the interleaved layout: there the j-th column quad
 * of a group is 32 bytes, byte 4r+i row r's column 4j+i, so B's row j is
 * the two groups' quads side by side, the weights less the type's offset
 * (8 for Q4_0, 16 for Q5_0, 32 for Q6_K) as signed bytes. A panel of up to PANEL blocks
 * is unpacked once and serves all the tokens.
 *
 * Each block's sums go through memory to AVX-512, which scales and adds
 * them as the VNNI pair tiles do (int8dot.c), in the same order:
 *     acc[t] += float(C[t]) * (d_w * d_x[t])     per block (Q6_K: per half)
 *     acc[t] -= (dmin m) * (d_x[t] * qsum[t])     Q4_K, Q5_K
 *     acc[t] += m * (d_x[t] * qsum[t])            Q5_1
 * with d_w the 16 rows' scale of the block (Q4_0, Q8_0: d; K-quants: d sc).
 * The tile unit works on the next block while the vectors scale this one.
 */
#include "int8dot_amx.h"

#include <stdlib.h>
#include <string.h>

bool vc_int8dot_amx_has(vc_dtype type)
{
    return type == VC_Q4_0_X8 || type == VC_Q8_0_X8 || type == VC_Q5_0_X8 || type == VC_Q5_1_X8 || type == VC_Q4_K_X8 ||
           type == VC_Q5_K_X8 || type == VC_Q6_K_X8;
}

#if defined(__x86_64__)
#include "int8dot_x8.h"

#define TARGET_AMX __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni,amx-tile,amx-int8")))

enum {
    PANEL = 64,    /* blocks a panel: 32 KiB of B tiles and 8 KiB of scales a pair of groups */
    TOKENS = 256   /* tokens a pass: a panel's activations, 640 KiB, in L2 */
};

/* Palette 1's configuration: the bytes a row and the rows of tiles 0..15. */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* Tiles 0-3: C (two a block for Q6_K's halves, two blocks in flight);
 * 4, 5: A, 16 rows of ka bytes; 6, 7: B, ka / 4 rows of 64 bytes. */
TARGET_AMX static void configure(int ka)
{
    tile_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) {
        c.rows[t] = (uint8_t)(t >= 6 ? ka / 4 : 16);
        c.colsb[t] = (uint16_t)(t == 4 || t == 5 ? ka : 64);
    }
    __asm__ volatile("" : : "m"(c) : "memory");   /* gcc 12 drops the stores otherwise: ldtilecfg's read is not seen */
    _tile_loadconfig(&c);
}

/* One panel: block i's B tiles (8 rows of 64 bytes; Q6_K: its two halves'
 * tiles of 4 rows, one after the other) and its 16 rows' scales: sc[i][0]
 * d_w, sc[i][1] the mins (Q4_K, Q5_K: dmin m; Q5_1: m) or the second half's d_w
 * (Q6_K). */
typedef struct {
    _Alignas(64) int8_t b[PANEL][512];
    _Alignas(64) float sc[PANEL][2][16];
} panel;

/* The K-quant layouts (a block of 32 is a sub-block of a super-block). */
static inline bool kquant(vc_dtype type) { return type == VC_Q4_K_X8 || type == VC_Q5_K_X8 || type == VC_Q6_K_X8; }

/* Blocks b0 .. b0 + count - 1 of groups ga, gb (16 rows) into p. */
__attribute__((always_inline)) TARGET_AMX static inline void unpack(vc_dtype type, const uint8_t *ga, const uint8_t *gb,
                                                                    int64_t b0, int64_t count, panel *p)
{
    for (int64_t i = 0; i < count; i++) {
        int64_t b = b0 + i;
        int8_t *dst = p->b[i];
        if (!kquant(type)) {   /* Q4_0, Q5_0, Q5_1, Q8_0: the unsigned quads less their offset, signed */
            size_t bytes = vc_x8_block_bytes(type), at = vc_x8_values_at(type);
            const uint8_t *a = ga + (size_t)b * bytes, *c = gb + (size_t)b * bytes;
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++)
                _mm512_store_si512(dst + 64 * j, _mm512_sub_epi8(vc_x8_quad16(type, a + at, c + at, j),
                                                                 _mm512_set1_epi8((char)vc_x8_offset(type))));
            _mm512_store_ps(p->sc[i][0], vc_x8_join_scales((const uint16_t *)a, (const uint16_t *)c));
            if (type == VC_Q5_1_X8)
                _mm512_store_ps(p->sc[i][1], vc_x8_join_scales(((const vc_block_q5_1x8 *)a)->m, ((const vc_block_q5_1x8 *)c)->m));
            continue;
        }
        int kind = type == VC_Q4_K_X8 ? 4 : type == VC_Q5_K_X8 ? 5 : 6;   /* vc_x8_kquad16's */
        size_t unit = vc_kx8_unit(kind);
        int s = (int)(b % 8);
        const uint8_t *sa = ga + (size_t)(b / 8) * unit, *sb = gb + (size_t)(b / 8) * unit;
        const vc_block_q4_kx8 *a4 = (const vc_block_q4_kx8 *)sa, *b4 = (const vc_block_q4_kx8 *)sb;   /* Q5_K's header too */
        const vc_block_q6_kx8 *a6 = (const vc_block_q6_kx8 *)sa, *b6 = (const vc_block_q6_kx8 *)sb;
        const uint8_t *qa = vc_kx8_values(kind, sa, s), *qb = vc_kx8_values(kind, sb, s);
        const uint8_t *ha = vc_kx8_high(kind, sa, s), *hb = vc_kx8_high(kind, sb, s);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            __m512i u = vc_x8_kquad16(kind, qa, qb, ha, hb, j);
            if (kind == 6)
                u = _mm512_sub_epi8(u, _mm512_set1_epi8(32));
            _mm512_store_si512(dst + 64 * j, u);
        }
        if (kind == 6) {
            __m512 d = vc_x8_join_scales(a6->d, b6->d);
            for (int h = 0; h < 2; h++)
                _mm512_store_ps(p->sc[i][h], _mm512_mul_ps(d, vc_x8_join_bytes_ps(a6->sc[2 * s + h], b6->sc[2 * s + h], true)));
        } else {
            __m512 d = vc_x8_join_scales(a4->d, b4->d), dmin = vc_x8_join_scales(a4->dmin, b4->dmin);
            _mm512_store_ps(p->sc[i][0], _mm512_mul_ps(d, vc_x8_join_bytes_ps(a4->sc[s], b4->sc[s], false)));
            _mm512_store_ps(p->sc[i][1], _mm512_mul_ps(dmin, vc_x8_join_bytes_ps(a4->m[s], b4->m[s], false)));
        }
    }
}

/* A pass's activations, tile by tile: for token tile tt (16 tokens) and
 * panel block i, q[tt][i] the 16 tokens' 32 bytes one after another (what
 * a tile loads with a stride of 32), d[tt][i] their scales d_x and dq[tt][i]
 * d_x * qsum (Q4_K, Q5_K). Up to TOKENS tokens and PANEL blocks. */
typedef struct {
    int8_t (*q)[PANEL][16][32];
    float (*d)[PANEL][16];
    float (*dq)[PANEL][16];
} packed_act;

/* Tokens m0 .. m0 + 16 * tiles - 1, blocks b0 .. b0 + count - 1 of x into a. */
static void pack_act(const vc_block_q8_act *x, int64_t nb, int m0, int tiles, int64_t b0, int64_t count, packed_act *a)
{
    for (int tt = 0; tt < tiles; tt++)
        for (int t = 0; t < 16; t++) {
            const vc_block_q8_act *xt = x + (size_t)(m0 + 16 * tt + t) * nb + b0;
            for (int64_t i = 0; i < count; i++) {
                memcpy(a->q[tt][i][t], xt[i].qs, 32);
                a->d[tt][i][t] = xt[i].d;
                a->dq[tt][i][t] = xt[i].d * xt[i].qsum;
            }
        }
}

/* One step's tile products: token tile tt's (and tt + 1's where nt is 2)
 * bytes of panel block i from `off` (Q6_K's second half: 16), times the
 * two pairs' B tiles b0, b1, into C tiles 0, 1 (first 16 tokens) and 2, 3. */
__attribute__((always_inline)) TARGET_AMX static inline void products(int nt, const packed_act *a, int tt, int64_t i,
                                                                      int off, const int8_t *b0, const int8_t *b1)
{
    _tile_zero(0);
    _tile_zero(1);
    _tile_loadd(4, a->q[tt][i][0] + off, 32);
    _tile_loadd(6, b0, 64);
    _tile_loadd(7, b1, 64);
    _tile_dpbssd(0, 4, 6);
    _tile_dpbssd(1, 4, 7);
    if (nt == 2) {
        _tile_zero(2);
        _tile_zero(3);
        _tile_loadd(5, a->q[tt + 1][i][0] + off, 32);
        _tile_dpbssd(2, 5, 6);
        _tile_dpbssd(3, 5, 7);
    }
}

/* Tiles 0 .. 2 nt - 1 into c[0 .. 2 nt - 1]. */
__attribute__((always_inline)) TARGET_AMX static inline void store_products(int nt, int32_t (*c)[256])
{
    _tile_stored(0, c[0], 64);
    _tile_stored(1, c[1], 64);
    if (nt == 2) {
        _tile_stored(2, c[2], 64);
        _tile_stored(3, c[3], 64);
    }
}

/* One tile's sums c (16 tokens x 16 rows) scaled into acc (token t's 16
 * rows at acc + 32 t): sc the rows' d_w, mn their mins (Q4_K, Q5_K), d and
 * dq the tokens' d_x and d_x * qsum. */
__attribute__((always_inline)) TARGET_AMX static inline void scale_add(vc_dtype type, const int32_t *c, const float *sc,
                                                                       const float *mn, const float *d, const float *dq,
                                                                       float *acc)
{
    __m512 s = _mm512_load_ps(sc);
#pragma GCC unroll 16
    for (int t = 0; t < 16; t++) {
        float *at = acc + 32 * t;
        __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c + 16 * t)), _mm512_mul_ps(s, _mm512_set1_ps(d[t])),
                                   _mm512_load_ps(at));
        if (type == VC_Q4_K_X8 || type == VC_Q5_K_X8)
            v = _mm512_fnmadd_ps(_mm512_load_ps(mn), _mm512_set1_ps(dq[t]), v);
        else if (type == VC_Q5_1_X8)
            v = _mm512_fmadd_ps(_mm512_load_ps(mn), _mm512_set1_ps(dq[t]), v);
        _mm512_store_ps(at, v);
    }
}

/* Step s's sums (in c) into acc: its block and half, both pairs' scales. */
__attribute__((always_inline)) TARGET_AMX static inline void scale_step(vc_dtype type, int nt, int64_t s, int32_t (*c)[256],
                                                                        const panel *p, const packed_act *a, int tt,
                                                                        float *acc)
{
    int64_t i = type == VC_Q6_K_X8 ? s / 2 : s;
    int h = type == VC_Q6_K_X8 ? (int)(s % 2) : 0;
    for (int k = 0; k < nt; k++)
        for (int pp = 0; pp < 2; pp++)
            scale_add(type, c[2 * k + pp], p[pp].sc[i][h], p[pp].sc[i][1], a->d[tt + k][i], a->dq[tt + k][i],
                      acc + 16 * 32 * k + 16 * pp);
}

/* Token tiles tt .. tt + nt - 1 times the panel's 32 rows (pairs p[0],
 * p[1]) added into acc (token t's 32 rows at acc + 32 t). The tile unit
 * multiplies step s + 1 while the vectors scale step s. */
__attribute__((always_inline)) TARGET_AMX static inline void panel_tokens(vc_dtype type, int nt, const panel *p, int64_t count,
                                                                          const packed_act *a, int tt, float *acc)
{
    _Alignas(64) int32_t c[2][4][256];
    int64_t steps = type == VC_Q6_K_X8 ? 2 * count : count;
    for (int64_t s = 0; s < steps; s++) {
        int64_t i = type == VC_Q6_K_X8 ? s / 2 : s;
        int h = type == VC_Q6_K_X8 ? (int)(s % 2) : 0;
        products(nt, a, tt, i, 16 * h, p[0].b[i] + 256 * h, p[1].b[i] + 256 * h);
        if (s > 0)
            scale_step(type, nt, s - 1, c[(s - 1) & 1], p, a, tt, acc);
        store_products(nt, c[s & 1]);
    }
    scale_step(type, nt, steps - 1, c[(steps - 1) & 1], p, a, tt, acc);
}

__attribute__((always_inline)) TARGET_AMX static inline void amx_type(vc_dtype type, const vc_matrix *w, int64_t g0,
                                                                      int64_t g1, const vc_block_q8_act *x, int n,
                                                                      float *y, int ldy, packed_act *a, panel *p)
{
    int64_t nb = w->cols / VC_QK8_ACT;
    size_t group_bytes = 8 * w->row_bytes;
    configure(type == VC_Q6_K_X8 ? 16 : 32);
    /* a pass: up to TOKENS tokens' activations of one panel, packed, in L2
     * while every four groups go over them */
    for (int m0 = 0; m0 < n; m0 += TOKENS) {
        int tiles = (n - m0 < TOKENS ? n - m0 : TOKENS) / 16;
        for (int64_t b0 = 0; b0 < nb; b0 += PANEL) {
            int64_t count = nb - b0 < PANEL ? nb - b0 : PANEL;
            pack_act(x, nb, m0, tiles, b0, count, a);
            for (int64_t g = g0; g + 4 <= g1; g += 4) {
                const uint8_t *ga = (const uint8_t *)w->data + (size_t)g * group_bytes;
                unpack(type, ga, ga + group_bytes, b0, count, &p[0]);
                unpack(type, ga + 2 * group_bytes, ga + 3 * group_bytes, b0, count, &p[1]);
                for (int tt = 0; tt < tiles; tt += 2) {
                    int nt = tiles - tt >= 2 ? 2 : 1;
                    float *ym = y + (size_t)(m0 + 16 * tt) * ldy + (size_t)(g - g0) * 8;
                    /* the sums in acc, token t's 32 rows at 32 t (rows of y a multiple of 4 KiB apart
                     * would share L1 sets), from those so far on a later panel */
                    _Alignas(64) float acc[32 * 32];
                    for (int t = 0; t < 16 * nt; t++)
                        for (int k = 0; k < 2; k++)
                            _mm512_store_ps(acc + 32 * t + 16 * k,
                                            b0 == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(ym + (size_t)t * ldy + 16 * k));
                    if (nt == 2)
                        panel_tokens(type, 2, p, count, a, tt, acc);
                    else
                        panel_tokens(type, 1, p, count, a, tt, acc);
                    for (int t = 0; t < 16 * nt; t++)
                        for (int k = 0; k < 2; k++)
                            _mm512_storeu_ps(ym + (size_t)t * ldy + 16 * k, _mm512_load_ps(acc + 32 * t + 16 * k));
                }
            }
        }
    }
    _tile_release();
}

#define AMX_TYPE(name, type)                                                                                       \
    TARGET_AMX static void name(const vc_matrix *w, int64_t g0, int64_t g1, const vc_block_q8_act *x, int n, float *y, \
                                int ldy, packed_act *a, panel *p)                                                      \
    {                                                                                                              \
        amx_type(type, w, g0, g1, x, n, y, ldy, a, p);                                                             \
    }
AMX_TYPE(amx_q4_0, VC_Q4_0_X8)
AMX_TYPE(amx_q8_0, VC_Q8_0_X8)
AMX_TYPE(amx_q5_0, VC_Q5_0_X8)
AMX_TYPE(amx_q5_1, VC_Q5_1_X8)
AMX_TYPE(amx_q4_k, VC_Q4_K_X8)
AMX_TYPE(amx_q5_k, VC_Q5_K_X8)
AMX_TYPE(amx_q6_k, VC_Q6_K_X8)
#undef AMX_TYPE

int vc_int8dot_amx(const vc_matrix *w, int64_t g0, int64_t g1, const vc_block_q8_act *x, int n, float *y, int ldy)
{
    size_t tiles = (size_t)(n < TOKENS ? n : TOKENS) / 16;   /* all sizes multiples of 64, as aligned_alloc wants */
    packed_act a = { aligned_alloc(64, tiles * sizeof *a.q), aligned_alloc(64, tiles * sizeof *a.d),
                     aligned_alloc(64, tiles * sizeof *a.dq) };
    panel *p = aligned_alloc(64, 2 * sizeof *p);   /* the four groups' panel */
    void (*run)(const vc_matrix *, int64_t, int64_t, const vc_block_q8_act *, int, float *, int, packed_act *, panel *) =
        w->type == VC_Q4_0_X8   ? amx_q4_0
        : w->type == VC_Q8_0_X8 ? amx_q8_0
        : w->type == VC_Q5_0_X8 ? amx_q5_0
        : w->type == VC_Q5_1_X8 ? amx_q5_1
        : w->type == VC_Q4_K_X8 ? amx_q4_k
        : w->type == VC_Q5_K_X8 ? amx_q5_k
                                : amx_q6_k;
    int rc = a.q && a.d && a.dq && p ? 0 : -1;
    if (rc == 0)
        run(w, g0, g1, x, n, y, ldy, &a, p);
    free(a.q);
    free(a.d);
    free(a.dq);
    free(p);
    return rc;
}

static volatile int32_t peak_sink;

TARGET_AMX int64_t vc_int8dot_amx_peak_run(int64_t iters)
{
    _Alignas(64) int8_t a[1024], b[1024];
    _Alignas(64) int32_t out[256];
    for (int i = 0; i < 1024; i++) {
        a[i] = (int8_t)(i % 7 - 3 + (int)(iters & 1));
        b[i] = (int8_t)(i % 5 - 2);
    }
    configure(64);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, a, 64);
    _tile_loadd(5, a, 64);
    _tile_loadd(6, b, 64);
    _tile_loadd(7, b, 64);
    for (int64_t i = 0; i < iters; i++) {
        _tile_dpbssd(0, 4, 6);
        _tile_dpbssd(1, 4, 7);
        _tile_dpbssd(2, 5, 6);
        _tile_dpbssd(3, 5, 7);
    }
    _tile_stored(0, out, 64);
    _tile_release();
    peak_sink = out[0];
    return iters * 4 * 16 * 16 * 64;
}
#endif
