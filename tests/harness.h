/* harness.h - a minimal test harness: CHECK records a failure and goes on.
 * Each test binary prints "N passed, N failed" and exits non-zero on failure. */
#ifndef VC_TESTS_HARNESS_H
#define VC_TESTS_HARNESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

extern int harness_passed, harness_failed;

#define CHECK(cond, ...)                                                                 \
    do {                                                                                 \
        if (cond) {                                                                      \
            harness_passed++;                                                            \
        } else {                                                                         \
            harness_failed++;                                                            \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);              \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
        }                                                                                \
    } while (0)

/* Path of a file under tests/fixtures (static buffer). */
const char *fixture(const char *relative);
/* A JSON array of integers as a malloc'd id array; *n gets its length. */
int32_t *json_ids(json_t *arr, size_t *n);
/* n floats of a reference blob at loc, a JSON [offset, length] pair, as a
 * malloc'd copy (the offset need not be aligned); NULL when the length is not
 * n floats, the range leaves the blob, or memory runs out. */
float *blob_floats(const unsigned char *blob, size_t blob_len, json_t *loc, size_t n);
/* Opens `path` for writing and writes a safetensors header: header's JSON
 * (compact; header is released), padded with spaces to 8 bytes as the
 * safetensors library writes it, after its little-endian length. Returns the
 * file positioned at the tensor data, or NULL (nothing left open). */
FILE *safetensors_begin(const char *path, json_t *header);
/* Copies the file `from` to `to` (created or truncated): 0, or -1 when
 * either cannot be read or written whole. */
int copy_file(const char *from, const char *to);
/* Prints the summary line and returns the exit status. */
int harness_finish(const char *name);

#endif
