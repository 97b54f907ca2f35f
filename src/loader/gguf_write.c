/* gguf_write.c - GGUF v3 writer; see include/loader/gguf.h
 *
 * Everything is collected in memory first (keys, tensor infos, data owned by
 * the writer), then serialized into one buffer with offsets padded to 32
 * bytes, and written atomically.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/common.h"
#include "loader/gguf.h"

#define ALIGNMENT 32

typedef struct {
    char *name;
    vc_dtype type;
    int n_dims;
    int64_t ne[VC_MAX_DIMS];
    void *data;
    size_t nbytes;
} pending_tensor;

struct vc_gguf_writer {
    vc_buf kv;          /* serialized key/value pairs */
    size_t tensor_cap;
    uint64_t n_kv;
    pending_tensor *tensors;
    size_t n_tensors;
};

static void put_u32(vc_buf *b, uint32_t v) { vc_buf_append(b, &v, 4); }
static void put_u64(vc_buf *b, uint64_t v) { vc_buf_append(b, &v, 8); }
static void put_str(vc_buf *b, const char *s)
{
    put_u64(b, strlen(s));
    vc_buf_append(b, s, strlen(s));
}

vc_gguf_writer *vc_gguf_writer_new(void) { return vc_calloc(1, sizeof(vc_gguf_writer)); }

void vc_gguf_writer_free(vc_gguf_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_tensors; i++) {
        free(w->tensors[i].name);
        free(w->tensors[i].data);
    }
    free(w->tensors);
    vc_buf_free(&w->kv);
    free(w);
}

static int key_header(vc_gguf_writer *w, const char *key, uint32_t type)
{
    put_str(&w->kv, key);
    put_u32(&w->kv, type);
    w->n_kv++;
    return vc_buf_ok(&w->kv) ? 0 : -1;
}

int vc_gguf_set_str(vc_gguf_writer *w, const char *key, const char *value)
{
    key_header(w, key, VC_GGUF_STRING);
    put_str(&w->kv, value);
    return vc_buf_ok(&w->kv) ? 0 : -1;
}

int vc_gguf_set_u32(vc_gguf_writer *w, const char *key, uint32_t value)
{
    key_header(w, key, VC_GGUF_U32);
    put_u32(&w->kv, value);
    return vc_buf_ok(&w->kv) ? 0 : -1;
}

int vc_gguf_set_i32(vc_gguf_writer *w, const char *key, int32_t value)
{
    key_header(w, key, VC_GGUF_I32);
    vc_buf_append(&w->kv, &value, 4);
    return vc_buf_ok(&w->kv) ? 0 : -1;
}

int vc_gguf_set_f32(vc_gguf_writer *w, const char *key, float value)
{
    key_header(w, key, VC_GGUF_F32);
    vc_buf_append(&w->kv, &value, 4);
    return vc_buf_ok(&w->kv) ? 0 : -1;
}

int vc_gguf_set_bool(vc_gguf_writer *w, const char *key, bool value)
{
    uint8_t v = value;
    key_header(w, key, VC_GGUF_BOOL);
    vc_buf_append(&w->kv, &v, 1);
    return vc_buf_ok(&w->kv) ? 0 : -1;
}

static int array_header(vc_gguf_writer *w, const char *key, uint32_t type, uint64_t n)
{
    key_header(w, key, VC_GGUF_ARRAY);
    put_u32(&w->kv, type);
    put_u64(&w->kv, n);
    return vc_buf_ok(&w->kv) ? 0 : -1;
}

int vc_gguf_set_arr_str(vc_gguf_writer *w, const char *key, const char *const *values, uint64_t n)
{
    array_header(w, key, VC_GGUF_STRING, n);
    for (uint64_t i = 0; i < n; i++)
        put_str(&w->kv, values[i]);
    return vc_buf_ok(&w->kv) ? 0 : -1;
}

int vc_gguf_set_arr_f32(vc_gguf_writer *w, const char *key, const float *values, uint64_t n)
{
    array_header(w, key, VC_GGUF_F32, n);
    vc_buf_append(&w->kv, values, (size_t)n * 4);
    return vc_buf_ok(&w->kv) ? 0 : -1;
}

int vc_gguf_set_arr_i32(vc_gguf_writer *w, const char *key, const int32_t *values, uint64_t n)
{
    array_header(w, key, VC_GGUF_I32, n);
    vc_buf_append(&w->kv, values, (size_t)n * 4);
    return vc_buf_ok(&w->kv) ? 0 : -1;
}

int vc_gguf_add_tensor(vc_gguf_writer *w, const char *name, vc_dtype type, int n_dims, const int64_t *ne,
                       void *data, size_t nbytes)
{
    if (n_dims < 1 || n_dims > VC_MAX_DIMS) {
        free(data);
        return vc_fail("tensor '%s': %d dimensions", name, n_dims);
    }
    if (vc_reserve((void **)&w->tensors, &w->tensor_cap, w->n_tensors + 1, sizeof *w->tensors) != 0) {
        free(data);
        return -1;
    }
    pending_tensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    t->name = vc_strdup(name);
    if (!t->name) {
        free(data);
        return -1;
    }
    t->type = type;
    t->n_dims = n_dims;
    memcpy(t->ne, ne, (size_t)n_dims * sizeof *ne);
    t->data = data;
    t->nbytes = nbytes;
    w->n_tensors++;
    return 0;
}

static size_t align_up(size_t v) { return (v + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT; }

int vc_gguf_write(vc_gguf_writer *w, const char *path)
{
    vc_buf out = { 0 };
    static const uint8_t zeros[ALIGNMENT];
    put_u32(&out, 0x46554747u);
    put_u32(&out, 3);
    put_u64(&out, w->n_tensors);
    put_u64(&out, w->n_kv);
    vc_buf_append(&out, w->kv.data, w->kv.len);
    size_t offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const pending_tensor *t = &w->tensors[i];
        put_str(&out, t->name);
        put_u32(&out, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++)
            put_u64(&out, (uint64_t)t->ne[d]);
        put_u32(&out, (uint32_t)t->type);
        put_u64(&out, offset);
        offset = align_up(offset + t->nbytes);
    }
    vc_buf_append(&out, zeros, align_up(out.len) - out.len);
    for (size_t i = 0; i < w->n_tensors; i++) {
        vc_buf_append(&out, w->tensors[i].data, w->tensors[i].nbytes);
        vc_buf_append(&out, zeros, align_up(w->tensors[i].nbytes) - w->tensors[i].nbytes);
    }
    int rc = vc_buf_ok(&out) ? vc_write_file_atomic(path, out.data, out.len) : -1;
    vc_buf_free(&out);
    return rc;
}
