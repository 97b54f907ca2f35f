/* common.h - error reporting, checked allocation and overflow-safe sizes.
 *
 * Every fallible function in vlmchat returns 0 (or a valid pointer) on
 * success and -1 (or NULL) on failure after recording a one-line message
 * with vc_fail().  The caller decides whether to add context (vc_fail_ctx)
 * or to report it; main() prints it once as "vlmchat: <message>".
 * The error state is per thread.
 */
#ifndef VC_CORE_COMMON_H
#define VC_CORE_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* Exit codes, documented in the man page (EXIT STATUS). */
enum {
    VC_EXIT_OK = 0,
    VC_EXIT_RUNTIME = 1,   /* generation or I/O failed */
    VC_EXIT_USAGE = 2,     /* bad command line */
    VC_EXIT_MODEL = 3,     /* model missing, corrupt or unsupported */
    VC_EXIT_INPUT = 4,     /* bad prompt/image/messages: invalid UTF-8, too long for the context, a chat template
                              that fails on the conversation */
    VC_EXIT_NOMEM = 5,     /* out of memory or over the memory budget */
    VC_EXIT_INTERRUPTED = 130
};

/* Records a printf-style message as the current error; returns -1. */
int vc_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Same, but also sets the exit-code class that main() should use. */
int vc_fail_code(int exit_code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes the current error with "context: ", e.g. a file name. Returns -1. */
int vc_fail_ctx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The current error message ("" if none) and its exit code class. */
const char *vc_error(void);
int vc_error_code(void);
void vc_error_clear(void);

/* Allocation that records "out of memory" on failure (returns NULL). */
void *vc_malloc(size_t n);
void *vc_calloc(size_t count, size_t size);
void *vc_realloc(void *p, size_t n);
char *vc_strdup(const char *s);
char *vc_strndup(const char *s, size_t n);

/* Grows *items (elements of elem_size bytes, capacity *cap) to hold at least
 * `need` elements, doubling. Returns 0, or -1 (out of memory) leaving it as is. */
int vc_reserve(void **items, size_t *cap, size_t need, size_t elem_size);

/* Overflow-checked arithmetic: return false (and record an error) on overflow. */
bool vc_mul_size(size_t a, size_t b, size_t *out);
bool vc_add_size(size_t a, size_t b, size_t *out);

/* Reads a whole file into a NUL-terminated buffer; *len gets its size. */
char *vc_read_file(const char *path, size_t *len);
/* Writes a file atomically (temp file + rename). */
int vc_write_file_atomic(const char *path, const void *data, size_t len);

/* Monotonic clock in milliseconds. */
double vc_now_ms(void);

#define VC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define VC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define VC_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
