/* base64.h - decoding the base64 of data: URLs (RFC 4648).
 *
 * Strict: only the standard alphabet (and, for clients that send it, the
 * URL-safe one), padding optional but never inside the text, whitespace
 * refused.  Malformed input is an error, not a best guess.
 */
#ifndef VC_CORE_BASE64_H
#define VC_CORE_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Largest number of bytes `len` characters can decode to. */
size_t vc_base64_max_decoded(size_t len);
/* Decodes text[0..len) into out (room for vc_base64_max_decoded(len) bytes);
 * *out_len gets the count. Returns 0, or -1 with an error (class VC_EXIT_INPUT). */
int vc_base64_decode(const char *text, size_t len, uint8_t *out, size_t *out_len);

#endif
