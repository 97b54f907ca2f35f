/* buf.c - see include/core/buf.h */
#include "core/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

static bool reserve(vc_buf *b, size_t extra)
{
    if (b->failed)
        return false;
    size_t need;
    if (!vc_add_size(b->len, extra, &need) || !vc_add_size(need, 1, &need)) {
        b->failed = true;
        return false;
    }
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *d = vc_realloc(b->data, cap);
    if (!d) {
        b->failed = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

void vc_buf_append(vc_buf *b, const void *p, size_t n)
{
    if (!reserve(b, n))
        return;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}

void vc_buf_puts(vc_buf *b, const char *s) { vc_buf_append(b, s, strlen(s)); }
void vc_buf_putc(vc_buf *b, char c) { vc_buf_append(b, &c, 1); }

void vc_buf_printf(vc_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void vc_buf_json_string(vc_buf *b, const char *s, size_t n)
{
    vc_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': vc_buf_puts(b, "\\\""); break;
        case '\\': vc_buf_puts(b, "\\\\"); break;
        case '\n': vc_buf_puts(b, "\\n"); break;
        case '\r': vc_buf_puts(b, "\\r"); break;
        case '\t': vc_buf_puts(b, "\\t"); break;
        default:
            if (c < 0x20)
                vc_buf_printf(b, "\\u%04x", c);
            else
                vc_buf_putc(b, (char)c);
        }
    }
    vc_buf_putc(b, '"');
}

bool vc_buf_ok(const vc_buf *b) { return !b->failed; }

char *vc_buf_take(vc_buf *b, size_t *len)
{
    if (b->failed) {
        vc_buf_free(b);
        return NULL;
    }
    if (!b->data && !reserve(b, 0))
        return NULL;
    if (b->len == 0)
        b->data[0] = 0;
    char *d = b->data;
    if (len)
        *len = b->len;
    memset(b, 0, sizeof *b);
    return d;
}

void vc_buf_free(vc_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}
