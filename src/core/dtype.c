/* dtype.c - plain-C reference for element types and GGML block formats. */
#include "core/dtype.h"

#include <math.h>
#include <string.h>

#include "core/common.h"

_Static_assert(sizeof(vc_block_q8_0) == 34, "q8_0 block layout");
_Static_assert(sizeof(vc_block_q4_0) == 18, "q4_0 block layout");
_Static_assert(sizeof(vc_block_q4_k) == 144, "q4_K block layout");
_Static_assert(sizeof(vc_block_q6_k) == 210, "q6_K block layout");
_Static_assert(sizeof(vc_block_q5_0) == 22, "q5_0 block layout");
_Static_assert(sizeof(vc_block_q5_1) == 24, "q5_1 block layout");
_Static_assert(sizeof(vc_block_q5_k) == 176, "q5_K block layout");

static const struct {
    vc_dtype type;
    const char *name;
    int block_elems;
    size_t block_bytes;
} types[] = {
    { VC_F32, "f32", 1, 4 },
    { VC_F16, "f16", 1, 2 },
    { VC_BF16, "bf16", 1, 2 },
    { VC_Q8_0, "q8_0", VC_QK8_0, sizeof(vc_block_q8_0) },
    { VC_Q4_0, "q4_0", VC_QK4_0, sizeof(vc_block_q4_0) },
    { VC_Q5_0, "q5_0", VC_QK5_0, sizeof(vc_block_q5_0) },
    { VC_Q5_1, "q5_1", VC_QK5_1, sizeof(vc_block_q5_1) },
    { VC_Q4_K, "q4_k", VC_QK_K, sizeof(vc_block_q4_k) },
    { VC_Q5_K, "q5_k", VC_QK_K, sizeof(vc_block_q5_k) },
    { VC_Q6_K, "q6_k", VC_QK_K, sizeof(vc_block_q6_k) },
    { VC_MLX4_G32, "mlx4_g32", 32, VC_MLX4_BLOCK_BYTES(32) },
    { VC_MLX4_G64, "mlx4_g64", 64, VC_MLX4_BLOCK_BYTES(64) },
    { VC_MLX4_G128, "mlx4_g128", 128, VC_MLX4_BLOCK_BYTES(128) },
};

static int type_index(uint32_t t)
{
    for (size_t i = 0; i < VC_ARRAY_LEN(types); i++)
        if ((uint32_t)types[i].type == t)
            return (int)i;
    return -1;
}

bool vc_dtype_valid(uint32_t t) { return type_index(t) >= 0; }

bool vc_dtype_is_ggml(uint32_t t) { return vc_dtype_valid(t) && t < 128; }

int vc_dtype_mlx4(int group_size)
{
    switch (group_size) {
    case 32: return VC_MLX4_G32;
    case 64: return VC_MLX4_G64;
    case 128: return VC_MLX4_G128;
    default: return -1;
    }
}

const char *vc_dtype_name(vc_dtype t)
{
    int i = type_index(t);
    return i < 0 ? "?" : types[i].name;
}

int vc_dtype_from_name(const char *name)
{
    for (size_t i = 0; i < VC_ARRAY_LEN(types); i++) {
        const char *a = types[i].name, *b = name;
        while (*a && (*a == *b || *a == (*b | 0x20)))
            a++, b++;
        if (!*a && !*b)
            return (int)types[i].type;
    }
    return -1;
}

int vc_dtype_block_elems(vc_dtype t)
{
    int i = type_index(t);
    return i < 0 ? 0 : types[i].block_elems;
}

size_t vc_dtype_block_bytes(vc_dtype t)
{
    int i = type_index(t);
    return i < 0 ? 0 : types[i].block_bytes;
}

int vc_dtype_row_bytes(vc_dtype t, int64_t n, size_t *out)
{
    int i = type_index(t);
    if (i < 0)
        return vc_fail_code(VC_EXIT_MODEL, "unsupported tensor type %u", (unsigned)t);
    if (n < 0 || n % types[i].block_elems != 0)
        return vc_fail_code(VC_EXIT_MODEL, "row of %lld elements is not a whole number of %s blocks",
                            (long long)n, types[i].name);
    return vc_mul_size((size_t)(n / types[i].block_elems), types[i].block_bytes, out) ? 0 : -1;
}

/* ---- half precision ---------------------------------------------------- */

float vc_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    union { uint32_t u; float f; } v;
    if (exp == 0) {
        /* zero or subnormal: value = mant * 2^-24 */
        float f = ldexpf((float)mant, -24);
        return sign ? -f : f;
    }
    if (exp == 31)
        v.u = sign | 0x7f800000u | (mant << 13);
    else
        v.u = sign | ((exp + 112) << 23) | (mant << 13);
    return v.f;
}

uint16_t vc_f32_to_f16(float f)
{
    union { float f; uint32_t u; } v = { f };
    uint32_t sign = (v.u >> 16) & 0x8000;
    uint32_t abs = v.u & 0x7fffffffu;
    if (abs > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00);          /* NaN */
    if (abs >= 0x477ff000u)                         /* rounds to >= 65536: inf */
        return (uint16_t)(sign | 0x7c00);
    if (abs < 0x38800000u) {                        /* below the smallest normal half */
        /* subnormal half: round(abs_value * 2^24) to nearest even */
        float a = fabsf(f) * 16777216.0f;
        float r = nearbyintf(a);                    /* default rounding mode: nearest even */
        return (uint16_t)(sign | (uint32_t)r);
    }
    uint32_t exp = ((abs >> 23) - 112) << 10;
    uint32_t mant = (abs >> 13) & 0x3ff;
    uint32_t rest = abs & 0x1fff;
    uint32_t h = exp | mant;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
        h++;                                        /* may carry into the exponent: correct */
    return (uint16_t)(sign | h);
}

uint16_t vc_f32_to_bf16(float f)
{
    union { float f; uint32_t u; } v = { f };
    if ((v.u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((v.u >> 16) | 0x40);      /* quiet NaN */
    uint32_t rounding = 0x7fff + ((v.u >> 16) & 1);
    return (uint16_t)((v.u + rounding) >> 16);
}

/* ---- block formats: dequantization -------------------------------------- */

static void dequant_q8_0(const vc_block_q8_0 *b, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        float d = vc_f16_to_f32(b[i].d);
        for (int j = 0; j < VC_QK8_0; j++)
            y[i * VC_QK8_0 + j] = d * b[i].qs[j];
    }
}

static void dequant_q4_0(const vc_block_q4_0 *b, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        float d = vc_f16_to_f32(b[i].d);
        for (int j = 0; j < VC_QK4_0 / 2; j++) {
            y[i * VC_QK4_0 + j] = d * ((b[i].qs[j] & 0xf) - 8);
            y[i * VC_QK4_0 + j + 16] = d * ((b[i].qs[j] >> 4) - 8);
        }
    }
}

/* Q4_K packs eight 6-bit scales and eight 6-bit mins into 12 bytes. */
static void q4k_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

static void dequant_q4_k(const vc_block_q4_k *b, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        float d = vc_f16_to_f32(b[i].d), dmin = vc_f16_to_f32(b[i].dmin);
        const uint8_t *q = b[i].qs;
        for (int j = 0; j < VC_QK_K; j += 64) {
            uint8_t sc, m;
            q4k_scale_min(j / 32, b[i].scales, &sc, &m);
            float d1 = d * sc, m1 = dmin * m;
            q4k_scale_min(j / 32 + 1, b[i].scales, &sc, &m);
            float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++) {
                *y++ = d1 * (q[l] & 0xf) - m1;
            }
            for (int l = 0; l < 32; l++) {
                *y++ = d2 * (q[l] >> 4) - m2;
            }
            q += 32;
        }
    }
}

/* The 32 fifth bits of a Q5_0 / Q5_1 block, element e's at bit e. */
static uint32_t q5_high_bits(const uint8_t qh[4])
{
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

static void dequant_q5_0(const vc_block_q5_0 *b, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += VC_QK5_0) {
        float d = vc_f16_to_f32(b[i].d);
        uint32_t qh = q5_high_bits(b[i].qh);
        for (int j = 0; j < VC_QK5_0 / 2; j++) {
            int q0 = (b[i].qs[j] & 0xf) | (int)((qh >> j) & 1) << 4;
            int q1 = (b[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            y[j] = d * (q0 - 16);
            y[j + 16] = d * (q1 - 16);
        }
    }
}

static void dequant_q5_1(const vc_block_q5_1 *b, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += VC_QK5_1) {
        float d = vc_f16_to_f32(b[i].d), m = vc_f16_to_f32(b[i].m);
        uint32_t qh = q5_high_bits(b[i].qh);
        for (int j = 0; j < VC_QK5_1 / 2; j++) {
            int q0 = (b[i].qs[j] & 0xf) | (int)((qh >> j) & 1) << 4;
            int q1 = (b[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            y[j] = d * q0 + m;
            y[j + 16] = d * q1 + m;
        }
    }
}

static void dequant_q5_k(const vc_block_q5_k *b, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        float d = vc_f16_to_f32(b[i].d), dmin = vc_f16_to_f32(b[i].dmin);
        const uint8_t *q = b[i].qs, *qh = b[i].qh;
        for (int s = 0; s < 8; s += 2, q += 32) {
            uint8_t sc, m;
            q4k_scale_min(s, b[i].scales, &sc, &m);
            float d1 = d * sc, m1 = dmin * m;
            q4k_scale_min(s + 1, b[i].scales, &sc, &m);
            float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * ((q[l] & 0xf) | ((qh[l] >> s) & 1) << 4) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * ((q[l] >> 4) | ((qh[l] >> (s + 1)) & 1) << 4) - m2;
        }
    }
}

static void dequant_q6_k(const vc_block_q6_k *b, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        float d = vc_f16_to_f32(b[i].d);
        const uint8_t *ql = b[i].ql, *qh = b[i].qh;
        const int8_t *sc = b[i].scales;
        for (int n = 0; n < VC_QK_K; n += 128) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * sc[is + 0] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}

static void dequant_mlx4(const uint8_t *p, float *y, int64_t n, int group)
{
    size_t bb = VC_MLX4_BLOCK_BYTES(group);
    for (int64_t i = 0; i < n; i += group, p += bb) {
        const vc_block_mlx4 *b = (const vc_block_mlx4 *)p;
        for (int j = 0; j < group; j++)
            *y++ = b->scale * (float)((b->qs[j / 2] >> (4 * (j & 1))) & 0xf) + b->bias;
    }
}

void vc_dequantize_row(vc_dtype t, const void *src, float *dst, int64_t n)
{
    switch (t) {
    case VC_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        break;
    case VC_F16:
        for (int64_t i = 0; i < n; i++)
            dst[i] = vc_f16_to_f32(((const uint16_t *)src)[i]);
        break;
    case VC_BF16:
        for (int64_t i = 0; i < n; i++)
            dst[i] = vc_bf16_to_f32(((const uint16_t *)src)[i]);
        break;
    case VC_Q8_0: dequant_q8_0(src, dst, n / VC_QK8_0); break;
    case VC_Q4_0: dequant_q4_0(src, dst, n / VC_QK4_0); break;
    case VC_Q5_0: dequant_q5_0(src, dst, n / VC_QK5_0); break;
    case VC_Q5_1: dequant_q5_1(src, dst, n / VC_QK5_1); break;
    case VC_Q4_K: dequant_q4_k(src, dst, n / VC_QK_K); break;
    case VC_Q5_K: dequant_q5_k(src, dst, n / VC_QK_K); break;
    case VC_Q6_K: dequant_q6_k(src, dst, n / VC_QK_K); break;
    case VC_MLX4_G32:
    case VC_MLX4_G64:
    case VC_MLX4_G128: dequant_mlx4(src, dst, n, vc_dtype_block_elems(t)); break;
    case VC_Q4_0_X8:
    case VC_Q5_0_X8:
    case VC_Q5_1_X8:
    case VC_Q8_0_X8:
    case VC_Q4_K_X8:
    case VC_Q5_K_X8:
    case VC_Q6_K_X8:   /* interleaved rows are no rows: only core/int8dot reads them; NaN shows a misuse */
        for (int64_t i = 0; i < n; i++)
            dst[i] = NAN;
        break;
    }
}

/* ---- block formats: quantization ---------------------------------------- */

static void quant_q8_0(const float *x, vc_block_q8_0 *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += VC_QK8_0) {
        float amax = 0;
        for (int j = 0; j < VC_QK8_0; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
        b[i].d = vc_f32_to_f16(d);
        for (int j = 0; j < VC_QK8_0; j++)
            b[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

static void quant_q4_0(const float *x, vc_block_q4_0 *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += VC_QK4_0) {
        /* The value of largest magnitude maps to -8, so it keeps its sign exactly. */
        float amax = 0, max = 0;
        for (int j = 0; j < VC_QK4_0; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        float d = max / -8.0f, id = d ? 1.0f / d : 0.0f;
        b[i].d = vc_f32_to_f16(d);
        for (int j = 0; j < VC_QK4_0 / 2; j++) {
            int q0 = (int)(x[j] * id + 8.5f), q1 = (int)(x[j + 16] * id + 8.5f);
            q0 = q0 < 0 ? 0 : q0 > 15 ? 15 : q0;
            q1 = q1 < 0 ? 0 : q1 > 15 ? 15 : q1;
            b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

static void quant_q4_k(const float *x, vc_block_q4_k *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += VC_QK_K) {
        float scale[8], minv[8], max_scale = 0, max_min = 0;
        for (int s = 0; s < 8; s++) {
            float lo = 0, hi = 0;       /* the range always includes 0 */
            for (int l = 0; l < 32; l++) {
                lo = fminf(lo, x[s * 32 + l]);
                hi = fmaxf(hi, x[s * 32 + l]);
            }
            scale[s] = (hi - lo) / 15.0f;
            minv[s] = -lo;
            max_scale = fmaxf(max_scale, scale[s]);
            max_min = fmaxf(max_min, minv[s]);
        }
        float d = max_scale / 63.0f, dmin = max_min / 63.0f;
        b[i].d = vc_f32_to_f16(d);
        b[i].dmin = vc_f32_to_f16(dmin);
        d = vc_f16_to_f32(b[i].d);
        dmin = vc_f16_to_f32(b[i].dmin);
        uint8_t ls[8], lm[8];
        for (int s = 0; s < 8; s++) {
            ls[s] = (uint8_t)clampi(d ? (int)lroundf(scale[s] / d) : 0, 0, 63);
            lm[s] = (uint8_t)clampi(dmin ? (int)lroundf(minv[s] / dmin) : 0, 0, 63);
        }
        memset(b[i].scales, 0, sizeof b[i].scales);
        for (int j = 0; j < 8; j++) {
            if (j < 4) {
                b[i].scales[j] = ls[j];
                b[i].scales[j + 4] = lm[j];
            } else {
                b[i].scales[j + 4] = (uint8_t)((ls[j] & 0xf) | ((lm[j] & 0xf) << 4));
                b[i].scales[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
                b[i].scales[j] |= (uint8_t)((lm[j] >> 4) << 6);
            }
        }
        /* Quantize against the scales as they were stored, not as computed. */
        for (int s = 0; s < 8; s++) {
            float ds = d * ls[s], dm = dmin * lm[s];
            for (int l = 0; l < 32; l++) {
                int q = ds ? (int)lroundf((x[s * 32 + l] + dm) / ds) : 0;
                q = clampi(q, 0, 15);
                uint8_t *byte = &b[i].qs[(s / 2) * 32 + l];
                if (s % 2 == 0)
                    *byte = (uint8_t)q;
                else
                    *byte |= (uint8_t)(q << 4);
            }
        }
    }
}

/* Q5_0 as llama.cpp's reference quantizer: the value of largest magnitude
 * maps to -16 (keeping its sign exactly), q = floor(x / d + 16.5) up to 31. */
static void quant_q5_0(const float *x, vc_block_q5_0 *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += VC_QK5_0) {
        float amax = 0, max = 0;
        for (int j = 0; j < VC_QK5_0; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        float d = max / -16.0f, id = d ? 1.0f / d : 0.0f;
        b[i].d = vc_f32_to_f16(d);
        uint32_t qh = 0;
        for (int j = 0; j < VC_QK5_0 / 2; j++) {
            int q0 = clampi((int)floorf(x[j] * id + 16.5f), 0, 31), q1 = clampi((int)floorf(x[j + 16] * id + 16.5f), 0, 31);
            b[i].qs[j] = (uint8_t)((q0 & 0xf) | (q1 & 0xf) << 4);
            qh |= (uint32_t)(q0 >> 4) << j | (uint32_t)(q1 >> 4) << (j + 16);
        }
        for (int k = 0; k < 4; k++)
            b[i].qh[k] = (uint8_t)(qh >> (8 * k));
    }
}

/* Q5_1 as llama.cpp's reference quantizer: the block's minimum is m and its
 * range spans the 32 levels, q = floor((x - m) / d + 0.5). */
static void quant_q5_1(const float *x, vc_block_q5_1 *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += VC_QK5_1) {
        float lo = x[0], hi = x[0];
        for (int j = 1; j < VC_QK5_1; j++) {
            lo = fminf(lo, x[j]);
            hi = fmaxf(hi, x[j]);
        }
        float d = (hi - lo) / 31.0f, id = d ? 1.0f / d : 0.0f;
        b[i].d = vc_f32_to_f16(d);
        b[i].m = vc_f32_to_f16(lo);
        uint32_t qh = 0;
        for (int j = 0; j < VC_QK5_1 / 2; j++) {
            int q0 = clampi((int)floorf((x[j] - lo) * id + 0.5f), 0, 31);
            int q1 = clampi((int)floorf((x[j + 16] - lo) * id + 0.5f), 0, 31);
            b[i].qs[j] = (uint8_t)((q0 & 0xf) | (q1 & 0xf) << 4);
            qh |= (uint32_t)(q0 >> 4) << j | (uint32_t)(q1 >> 4) << (j + 16);
        }
        for (int k = 0; k < 4; k++)
            b[i].qh[k] = (uint8_t)(qh >> (8 * k));
    }
}

/* Q4_K's 6-bit scales and mins packed into 12 bytes (Q5_K shares them). */
static void pack_k_scales(uint8_t out[12], const uint8_t ls[8], const uint8_t lm[8])
{
    memset(out, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            out[j] = ls[j];
            out[j + 4] = lm[j];
        } else {
            out[j + 4] = (uint8_t)((ls[j] & 0xf) | ((lm[j] & 0xf) << 4));
            out[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            out[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

/* One sub-block of n values, w ~ scale * L - min with L = 0..nmax and a
 * min >= 0, fitted as llama.cpp's make_qkx2_quants does: from the range,
 * try nstep + 1 grid densities around nmax / range, fit scale and min to
 * each one's levels by weighted least squares, keep the least weighted
 * squared error. */
static float fit_scale_min(int n, int nmax, const float *x, const float *wt, uint8_t *L, float *the_min)
{
    float lo = x[0], hi = x[0], sum_w = wt[0], sum_x = wt[0] * x[0];
    for (int i = 1; i < n; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
        sum_w += wt[i];
        sum_x += wt[i] * x[i];
    }
    if (lo > 0)
        lo = 0;
    if (hi <= lo) {
        memset(L, 0, (size_t)n);
        *the_min = -lo;
        return 0;
    }
    float iscale = nmax / (hi - lo), scale = 1 / iscale, best = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi((int)lroundf(iscale * (x[i] - lo)), 0, nmax);
        float e = scale * L[i] + lo - x[i];
        best += wt[i] * e * e;
    }
    uint8_t aux[32];
    /* llama.cpp's 16 densities (nmax - 0.5 .. nmax + 1 levels over the
     * range), then, vlmchat's addition, whole spans of nmax - 1 down to
     * nmax / 2 levels: values dequantized from a sub-block whose levels did
     * not reach nmax fit exactly again (re-quantization is a fixed point). */
    for (int step = 0; step <= 15 + nmax - nmax / 2; step++) {
        float levels = step <= 15 ? -0.5f + 0.1f * step + nmax : (float)(nmax - (step - 15));
        float is = levels / (hi - lo);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi((int)lroundf(is * (x[i] - lo)), 0, nmax);
            aux[i] = (uint8_t)l;
            sum_l += wt[i] * l;
            sum_l2 += wt[i] * l * l;
            sum_xl += wt[i] * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D <= 0)
            continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D, this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) {
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float err = 0;
        for (int i = 0; i < n; i++) {
            float e = this_scale * aux[i] + this_min - x[i];
            err += wt[i] * e * e;
        }
        if (err < best) {
            memcpy(L, aux, (size_t)n);
            best = err;
            scale = this_scale;
            lo = this_min;
        }
    }
    *the_min = -lo;
    return scale;
}

/* Q5_K as llama.cpp's reference quantizer: per sub-block of 32 a scale and
 * a min (fit_scale_min, weights rms + |x|), both quantized to 6 bits against
 * the super-block's d = largest scale / 63 and dmin = largest min / 63; then
 * the 5-bit values against the scales as stored. */
static void quant_q5_k(const float *x, vc_block_q5_k *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += VC_QK_K) {
        float scale[8], minv[8], max_scale = 0, max_min = 0, wt[32];
        uint8_t L[32];
        for (int s = 0; s < 8; s++) {
            const float *xs = x + s * 32;
            float sum_x2 = 0;
            for (int l = 0; l < 32; l++)
                sum_x2 += xs[l] * xs[l];
            float av_x = sqrtf(sum_x2 / 32);
            for (int l = 0; l < 32; l++)
                wt[l] = av_x + fabsf(xs[l]);
            scale[s] = fit_scale_min(32, 31, xs, wt, L, &minv[s]);
            max_scale = fmaxf(max_scale, scale[s]);
            max_min = fmaxf(max_min, minv[s]);
        }
        float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f, inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
        uint8_t ls[8], lm[8];
        for (int s = 0; s < 8; s++) {
            ls[s] = (uint8_t)clampi((int)lroundf(inv_scale * scale[s]), 0, 63);
            lm[s] = (uint8_t)clampi((int)lroundf(inv_min * minv[s]), 0, 63);
        }
        pack_k_scales(b[i].scales, ls, lm);
        b[i].d = vc_f32_to_f16(max_scale / 63.0f);
        b[i].dmin = vc_f32_to_f16(max_min / 63.0f);
        float d = vc_f16_to_f32(b[i].d), dmin = vc_f16_to_f32(b[i].dmin);
        memset(b[i].qh, 0, sizeof b[i].qh);
        memset(b[i].qs, 0, sizeof b[i].qs);
        for (int s = 0; s < 8; s++) {
            float ds = d * ls[s], dm = dmin * lm[s];
            for (int l = 0; l < 32; l++) {
                int v = ds ? clampi((int)lroundf((x[s * 32 + l] + dm) / ds), 0, 31) : 0;
                b[i].qs[(s / 2) * 32 + l] |= (uint8_t)((v & 0xf) << (4 * (s & 1)));
                b[i].qh[l] |= (uint8_t)((v >> 4) << s);
            }
        }
    }
}

static void quant_q6_k(const float *x, vc_block_q6_k *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += VC_QK_K) {
        float scale[16], max_scale = 0;
        for (int s = 0; s < 16; s++) {
            float amax = 0;
            for (int l = 0; l < 16; l++)
                amax = fmaxf(amax, fabsf(x[s * 16 + l]));
            scale[s] = amax / 31.0f;
            max_scale = fmaxf(max_scale, scale[s]);
        }
        float d = max_scale / 127.0f;
        b[i].d = vc_f32_to_f16(d);
        d = vc_f16_to_f32(b[i].d);
        uint8_t q[VC_QK_K];
        for (int s = 0; s < 16; s++) {
            int sc = clampi(d ? (int)lroundf(scale[s] / d) : 0, -128, 127);
            b[i].scales[s] = (int8_t)sc;
            float ds = d * sc;
            for (int l = 0; l < 16; l++) {
                int v = ds ? (int)lroundf(x[s * 16 + l] / ds) : 0;
                q[s * 16 + l] = (uint8_t)(clampi(v, -32, 31) + 32);
            }
        }
        memset(b[i].ql, 0, sizeof b[i].ql);
        memset(b[i].qh, 0, sizeof b[i].qh);
        for (int n = 0; n < 2; n++) {
            uint8_t *ql = b[i].ql + n * 64, *qh = b[i].qh + n * 32;
            const uint8_t *qq = q + n * 128;
            for (int l = 0; l < 32; l++) {
                ql[l] = (uint8_t)((qq[l] & 0xf) | ((qq[l + 64] & 0xf) << 4));
                ql[l + 32] = (uint8_t)((qq[l + 32] & 0xf) | ((qq[l + 96] & 0xf) << 4));
                qh[l] = (uint8_t)((qq[l] >> 4) | ((qq[l + 32] >> 4) << 2) | ((qq[l + 64] >> 4) << 4) |
                                  ((qq[l + 96] >> 4) << 6));
            }
        }
    }
}

/* Affine: the group's minimum is the bias and its range spans the 16 levels. */
static void quant_mlx4(const float *x, uint8_t *p, int64_t n, int group)
{
    size_t bb = VC_MLX4_BLOCK_BYTES(group);
    for (int64_t i = 0; i < n; i += group, x += group, p += bb) {
        vc_block_mlx4 *b = (vc_block_mlx4 *)p;
        float lo = x[0], hi = x[0];
        for (int j = 1; j < group; j++) {
            lo = fminf(lo, x[j]);
            hi = fmaxf(hi, x[j]);
        }
        b->scale = (hi - lo) / 15.0f;
        b->bias = lo;
        memset(b->qs, 0, (size_t)group / 2);
        for (int j = 0; j < group; j++) {
            int q = b->scale > 0 ? clampi((int)lroundf((x[j] - lo) / b->scale), 0, 15) : 0;
            b->qs[j / 2] |= (uint8_t)(q << (4 * (j & 1)));
        }
    }
}

void vc_quantize_row(vc_dtype t, const float *src, void *dst, int64_t n)
{
    switch (t) {
    case VC_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        break;
    case VC_F16:
        for (int64_t i = 0; i < n; i++)
            ((uint16_t *)dst)[i] = vc_f32_to_f16(src[i]);
        break;
    case VC_BF16:
        for (int64_t i = 0; i < n; i++)
            ((uint16_t *)dst)[i] = vc_f32_to_bf16(src[i]);
        break;
    case VC_Q8_0: quant_q8_0(src, dst, n / VC_QK8_0); break;
    case VC_Q4_0: quant_q4_0(src, dst, n / VC_QK4_0); break;
    case VC_Q5_0: quant_q5_0(src, dst, n / VC_QK5_0); break;
    case VC_Q5_1: quant_q5_1(src, dst, n / VC_QK5_1); break;
    case VC_Q4_K: quant_q4_k(src, dst, n / VC_QK_K); break;
    case VC_Q5_K: quant_q5_k(src, dst, n / VC_QK_K); break;
    case VC_Q6_K: quant_q6_k(src, dst, n / VC_QK_K); break;
    case VC_MLX4_G32:
    case VC_MLX4_G64:
    case VC_MLX4_G128: quant_mlx4(src, dst, n, vc_dtype_block_elems(t)); break;
    case VC_Q4_0_X8:
    case VC_Q5_0_X8:
    case VC_Q5_1_X8:
    case VC_Q8_0_X8:
    case VC_Q4_K_X8:
    case VC_Q5_K_X8:
    case VC_Q6_K_X8: break;   /* made by vc_matrix_prepare_int8 only */
    }
}

float vc_dot_row_ref(vc_dtype t, const void *row, const float *x, int64_t n)
{
    /* Block at a time through a small buffer: simple and exact to define. */
    float buf[VC_QK_K];
    int be = vc_dtype_block_elems(t);
    int chunk = t == VC_F32 || t == VC_F16 || t == VC_BF16 ? VC_QK_K : be;
    size_t chunk_bytes = (size_t)(chunk / be) * vc_dtype_block_bytes(t);
    const uint8_t *p = row;
    double sum = 0;
    for (int64_t i = 0; i < n; i += chunk, p += chunk_bytes) {
        int m = (int)(n - i < chunk ? n - i : chunk);
        vc_dequantize_row(t, p, buf, m);
        for (int j = 0; j < m; j++)
            sum += (double)buf[j] * x[i + j];
    }
    return (float)sum;
}
