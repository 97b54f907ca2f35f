/* gguf.h - GGUF files as llama.cpp writes them (version 2 and 3).
 *
 * The reader maps the file, validates every count, length and offset against
 * the file size before use, and exposes metadata and tensors.  Tensor data
 * stays in the map.  The writer produces files with llama.cpp's layout
 * (32-byte alignment unless general.alignment says otherwise).
 */
#ifndef VC_LOADER_GGUF_H
#define VC_LOADER_GGUF_H

#include <stdbool.h>
#include <stdint.h>

#include "loader/tensors.h"

enum {
    VC_GGUF_U8 = 0, VC_GGUF_I8, VC_GGUF_U16, VC_GGUF_I16, VC_GGUF_U32, VC_GGUF_I32, VC_GGUF_F32,
    VC_GGUF_BOOL, VC_GGUF_STRING, VC_GGUF_ARRAY, VC_GGUF_U64, VC_GGUF_I64, VC_GGUF_F64
};

typedef struct {
    const char *ptr;
    uint64_t len;
} vc_gguf_str;

typedef struct {
    char *key;
    uint32_t type;
    struct {                    /* a scalar fills u, i and f alike (converted) */
        uint64_t u;
        int64_t i;
        double f;
        vc_gguf_str s;
    } v;
    uint32_t arr_type;          /* for VC_GGUF_ARRAY */
    uint64_t arr_n;
    const uint8_t *arr_data;    /* numeric arrays: raw little-endian values in the map */
    vc_gguf_str *arr_str;       /* string arrays: pointers into the map */
} vc_gguf_kv;

typedef struct vc_gguf {
    vc_tensor_set tensors;
    vc_gguf_kv *kv;
    uint64_t n_kv;
    uint32_t version;
    uint64_t alignment;
    const char *path;           /* points into tensors.files[0] */
} vc_gguf;

/* Opens and validates a GGUF file. On failure nothing needs freeing. */
int vc_gguf_open(const char *path, vc_gguf *g);
void vc_gguf_close(vc_gguf *g);
/* True if the file starts with the GGUF magic. */
bool vc_gguf_sniff(const char *path);

const vc_gguf_kv *vc_gguf_find(const vc_gguf *g, const char *key);
/* Typed getters: return true and set *out when the key exists with a
 * compatible scalar type; false otherwise (no error recorded). */
bool vc_gguf_get_int(const vc_gguf *g, const char *key, int64_t *out);
bool vc_gguf_get_float(const vc_gguf *g, const char *key, double *out);
bool vc_gguf_get_bool(const vc_gguf *g, const char *key, bool *out);
/* Returns a freshly allocated copy of a string value, or NULL. */
char *vc_gguf_get_string(const vc_gguf *g, const char *key);
/* Element i of a numeric array as double / int64 (caller checks bounds). */
double vc_gguf_arr_float(const vc_gguf_kv *kv, uint64_t i);
int64_t vc_gguf_arr_int(const vc_gguf_kv *kv, uint64_t i);

/* ---- writer ---- */
typedef struct vc_gguf_writer vc_gguf_writer;

vc_gguf_writer *vc_gguf_writer_new(void);
void vc_gguf_writer_free(vc_gguf_writer *w);
int vc_gguf_set_str(vc_gguf_writer *w, const char *key, const char *value);
int vc_gguf_set_u32(vc_gguf_writer *w, const char *key, uint32_t value);
int vc_gguf_set_i32(vc_gguf_writer *w, const char *key, int32_t value);
int vc_gguf_set_f32(vc_gguf_writer *w, const char *key, float value);
int vc_gguf_set_bool(vc_gguf_writer *w, const char *key, bool value);
/* Arrays: values are copied. */
int vc_gguf_set_arr_str(vc_gguf_writer *w, const char *key, const char *const *values, uint64_t n);
int vc_gguf_set_arr_f32(vc_gguf_writer *w, const char *key, const float *values, uint64_t n);
int vc_gguf_set_arr_i32(vc_gguf_writer *w, const char *key, const int32_t *values, uint64_t n);
/* Adds a tensor; `data` (nbytes, already in the target type) is taken over and freed by the writer. */
int vc_gguf_add_tensor(vc_gguf_writer *w, const char *name, vc_dtype type, int n_dims, const int64_t *ne,
                       void *data, size_t nbytes);
/* Writes the file atomically. */
int vc_gguf_write(vc_gguf_writer *w, const char *path);

#endif
