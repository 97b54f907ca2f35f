/* utf8.h - UTF-8 validation and stepping. */
#ifndef VC_TEXT_UTF8_H
#define VC_TEXT_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True if s[0..n) is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF).
 * On false, *bad_offset (if given) gets the offset of the first bad byte. */
bool vc_utf8_valid(const char *s, size_t n, size_t *bad_offset);
/* Length of the well-formed sequence starting at s (n bytes available), or 0. */
size_t vc_utf8_seq_len(const char *s, size_t n);
/* Number of trailing bytes of s[0..n) that form an incomplete (but so far
 * valid) sequence, which a streaming printer should hold back. */
size_t vc_utf8_incomplete_tail(const char *s, size_t n);
/* Encodes code point cp into out (>= 4 bytes); returns the byte count. */
size_t vc_utf8_encode(uint32_t cp, char *out);
/* Decodes the well-formed sequence at s; returns its length (0 if bad). */
size_t vc_utf8_decode(const char *s, size_t n, uint32_t *cp);

#endif
