/* base64.c - see include/core/base64.h */
#include "core/base64.h"

#include "core/common.h"

size_t vc_base64_max_decoded(size_t len) { return len / 4 * 3 + 3; }

/* 0..63, or -1 for a character outside both alphabets. */
static int sextet(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

int vc_base64_decode(const char *text, size_t len, uint8_t *out, size_t *out_len)
{
    size_t pad = 0;
    while (pad < 2 && len > pad && text[len - 1 - pad] == '=')
        pad++;
    size_t n = len - pad;
    if ((pad && len % 4) || n % 4 == 1)
        return vc_fail_code(VC_EXIT_INPUT, "malformed base64: %zu characters", len);
    uint32_t acc = 0;
    size_t bits = 0, o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = sextet((unsigned char)text[i]);
        if (v < 0)
            return vc_fail_code(VC_EXIT_INPUT, "malformed base64: unexpected character at offset %zu", i);
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0)   /* leftover bits must be zero in canonical base64 */
        return vc_fail_code(VC_EXIT_INPUT, "malformed base64: trailing bits");
    *out_len = o;
    return 0;
}
