/* common.c - see include/core/common.h */
#define _POSIX_C_SOURCE 200809L
#include "core/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Per thread: the server parses requests on connection threads while the
 * model runs on its worker, and each must see its own error. */
static _Thread_local char error_message[1024];
static _Thread_local int error_code = VC_EXIT_RUNTIME;

static void set_message(const char *fmt, va_list ap)
{
    /* format into a scratch buffer first: callers may pass vc_error() itself
     * as an argument (re-classifying an error), which must not alias the output */
    char scratch[sizeof error_message];
    vsnprintf(scratch, sizeof scratch, fmt, ap);
    memcpy(error_message, scratch, sizeof error_message);
    /* Errors are one line: fold any newline a message might carry. */
    for (char *p = error_message; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

int vc_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_message(fmt, ap);
    va_end(ap);
    error_code = VC_EXIT_RUNTIME;
    return -1;
}

int vc_fail_code(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_message(fmt, ap);
    va_end(ap);
    error_code = code;
    return -1;
}

int vc_fail_ctx(const char *fmt, ...)
{
    char prefix[512], old[sizeof error_message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, error_message, sizeof old);
    /* compose by hand: the result is deliberately truncated to the buffer */
    size_t n = strlen(prefix);
    if (n > sizeof error_message - 3)
        n = sizeof error_message - 3;
    memcpy(error_message, prefix, n);
    memcpy(error_message + n, ": ", 2);
    size_t rest = sizeof error_message - n - 3;
    size_t m = strlen(old) < rest ? strlen(old) : rest;
    memcpy(error_message + n + 2, old, m);
    error_message[n + 2 + m] = 0;
    return -1;
}

const char *vc_error(void) { return error_message; }
int vc_error_code(void) { return error_code; }
void vc_error_clear(void) { error_message[0] = 0; error_code = VC_EXIT_RUNTIME; }

static void *out_of_memory(size_t n)
{
    vc_fail_code(VC_EXIT_NOMEM, "out of memory (allocating %zu bytes)", n);
    return NULL;
}

void *vc_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    return p ? p : out_of_memory(n);
}

void *vc_calloc(size_t count, size_t size)
{
    size_t total;
    if (!vc_mul_size(count, size, &total))
        return NULL;
    void *p = calloc(total ? total : 1, 1);
    return p ? p : out_of_memory(total);
}

void *vc_realloc(void *old, size_t n)
{
    void *p = realloc(old, n ? n : 1);
    return p ? p : out_of_memory(n);
}

char *vc_strndup(const char *s, size_t n)
{
    char *p = vc_malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

char *vc_strdup(const char *s) { return vc_strndup(s, strlen(s)); }

int vc_reserve(void **items, size_t *cap, size_t need, size_t elem_size)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 16, bytes;
    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2;
    if (!vc_mul_size(n, elem_size, &bytes))
        return -1;
    void *p = vc_realloc(*items, bytes);
    if (!p)
        return -1;
    *items = p;
    *cap = n;
    return 0;
}

bool vc_mul_size(size_t a, size_t b, size_t *out)
{
    if (b && a > SIZE_MAX / b) {
        vc_fail_code(VC_EXIT_NOMEM, "size overflow (%zu x %zu)", a, b);
        return false;
    }
    *out = a * b;
    return true;
}

bool vc_add_size(size_t a, size_t b, size_t *out)
{
    if (a > SIZE_MAX - b) {
        vc_fail_code(VC_EXIT_NOMEM, "size overflow (%zu + %zu)", a, b);
        return false;
    }
    *out = a + b;
    return true;
}

char *vc_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        vc_fail("%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = vc_malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
        if (cap - n - 1 == 0) {
            if (cap > SIZE_MAX / 2) {
                free(buf);
                buf = NULL;
                vc_fail("%s: file too large", path);
                break;
            }
            char *bigger = vc_realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    if (buf && ferror(f)) {
        vc_fail("%s: read error: %s", path, strerror(errno));
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        if (len)
            *len = n;
    }
    return buf;
}

int vc_write_file_atomic(const char *path, const void *data, size_t len)
{
    size_t plen = strlen(path);
    char *tmp = vc_malloc(plen + 16);
    if (!tmp)
        return -1;
    snprintf(tmp, plen + 16, "%s.tmp%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        vc_fail("%s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            vc_fail("%s: write failed: %s", path, strerror(errno));
            close(fd);
            unlink(tmp);
            free(tmp);
            return -1;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        vc_fail("%s: could not be saved: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

double vc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
