/* buf.h - a growable byte buffer that remembers allocation failure.
 *
 * Appends after a failure are ignored, so a sequence of appends can be
 * checked once at the end (vc_buf_ok).  The data is always NUL-terminated.
 */
#ifndef VC_CORE_BUF_H
#define VC_CORE_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *data;
    size_t len, cap;
    bool failed;
} vc_buf;

void vc_buf_append(vc_buf *b, const void *p, size_t n);
void vc_buf_puts(vc_buf *b, const char *s);
void vc_buf_putc(vc_buf *b, char c);
void vc_buf_printf(vc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal (quotes and escapes included). */
void vc_buf_json_string(vc_buf *b, const char *s, size_t n);
bool vc_buf_ok(const vc_buf *b);
/* Hands over the data (caller frees); the buffer is reset. NULL on failure. */
char *vc_buf_take(vc_buf *b, size_t *len);
void vc_buf_free(vc_buf *b);

#endif
