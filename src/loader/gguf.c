/* gguf.c - GGUF reader; see include/loader/gguf.h
 *
 * Layout: "GGUF", u32 version, u64 n_tensors, u64 n_kv, the key/value pairs,
 * the tensor infos (name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset),
 * padding to the alignment, then tensor data at data_start + offset.
 * All reads go through a bounds-checked cursor.
 */
#define _POSIX_C_SOURCE 200809L
#include "loader/gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

#define GGUF_MAGIC 0x46554747u   /* "GGUF" little-endian */
#define MAX_STRING (1u << 30)

typedef struct {
    const uint8_t *base;
    size_t size, pos;
    const char *path;
} cursor;

static int truncated(cursor *c, const char *what)
{
    return vc_fail_code(VC_EXIT_MODEL, "%s: truncated or corrupt GGUF (reading %s at byte %zu of %zu)", c->path,
                        what, c->pos, c->size);
}

static int take(cursor *c, size_t n, const void **out, const char *what)
{
    if (n > c->size - c->pos)
        return truncated(c, what);
    *out = c->base + c->pos;
    c->pos += n;
    return 0;
}

static int read_u32(cursor *c, uint32_t *v, const char *what)
{
    const void *p = NULL;
    if (take(c, 4, &p, what))
        return -1;
    memcpy(v, p, 4);
    return 0;
}

static int read_u64(cursor *c, uint64_t *v, const char *what)
{
    const void *p = NULL;
    if (take(c, 8, &p, what))
        return -1;
    memcpy(v, p, 8);
    return 0;
}

static int read_str(cursor *c, vc_gguf_str *s, const char *what)
{
    const void *p = NULL;
    if (read_u64(c, &s->len, what))
        return -1;
    if (s->len > MAX_STRING)
        return vc_fail_code(VC_EXIT_MODEL, "%s: string of %llu bytes in %s is implausible", c->path,
                            (unsigned long long)s->len, what);
    if (take(c, (size_t)s->len, &p, what))
        return -1;
    s->ptr = p;
    return 0;
}

static size_t scalar_size(uint32_t type)
{
    switch (type) {
    case VC_GGUF_U8: case VC_GGUF_I8: case VC_GGUF_BOOL: return 1;
    case VC_GGUF_U16: case VC_GGUF_I16: return 2;
    case VC_GGUF_U32: case VC_GGUF_I32: case VC_GGUF_F32: return 4;
    case VC_GGUF_U64: case VC_GGUF_I64: case VC_GGUF_F64: return 8;
    default: return 0;
    }
}

/* Reads one scalar of `type` at p into the u/i/f fields, each converted. */
static void decode_scalar(uint32_t type, const uint8_t *p, vc_gguf_kv *kv)
{
    uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; float f32;
    uint64_t u64; int64_t i64; double f64 = 0;
    bool is_float = false, is_unsigned64 = false;
    switch (type) {
    case VC_GGUF_U8: case VC_GGUF_BOOL: u8 = p[0]; i64 = u8; break;
    case VC_GGUF_I8: memcpy(&i8, p, 1); i64 = i8; break;
    case VC_GGUF_U16: memcpy(&u16, p, 2); i64 = u16; break;
    case VC_GGUF_I16: memcpy(&i16, p, 2); i64 = i16; break;
    case VC_GGUF_U32: memcpy(&u32, p, 4); i64 = u32; break;
    case VC_GGUF_I32: memcpy(&i32, p, 4); i64 = i32; break;
    case VC_GGUF_U64: memcpy(&u64, p, 8); i64 = (int64_t)u64; is_unsigned64 = true; break;
    case VC_GGUF_I64: memcpy(&i64, p, 8); break;
    case VC_GGUF_F32: memcpy(&f32, p, 4); f64 = f32; is_float = true; i64 = 0; break;
    case VC_GGUF_F64: memcpy(&f64, p, 8); is_float = true; i64 = 0; break;
    default: i64 = 0; break;
    }
    if (is_float) {
        kv->v.f = f64;
        kv->v.i = f64 > -9.2e18 && f64 < 9.2e18 ? (int64_t)f64 : 0;
        kv->v.u = (uint64_t)kv->v.i;
    } else {
        kv->v.i = i64;
        kv->v.u = (uint64_t)i64;
        kv->v.f = is_unsigned64 ? (double)(uint64_t)i64 : (double)i64;
    }
}

static int read_value(cursor *c, vc_gguf_kv *kv)
{
    const void *p = NULL;
    if (kv->type == VC_GGUF_STRING)
        return read_str(c, &kv->v.s, kv->key);
    if (kv->type == VC_GGUF_ARRAY) {
        if (read_u32(c, &kv->arr_type, kv->key) || read_u64(c, &kv->arr_n, kv->key))
            return -1;
        if (kv->arr_type == VC_GGUF_STRING) {
            /* each string needs at least its 8-byte length: bound n by what is left */
            if (kv->arr_n > (c->size - c->pos) / 8)
                return truncated(c, kv->key);
            kv->arr_str = vc_calloc((size_t)kv->arr_n, sizeof *kv->arr_str);
            if (!kv->arr_str)
                return -1;
            for (uint64_t i = 0; i < kv->arr_n; i++)
                if (read_str(c, &kv->arr_str[i], kv->key))
                    return -1;
            return 0;
        }
        size_t es = scalar_size(kv->arr_type);
        if (!es)
            return vc_fail_code(VC_EXIT_MODEL, "%s: key '%s' is an array of unsupported type %u", c->path, kv->key,
                                kv->arr_type);
        if (kv->arr_n > (c->size - c->pos) / es)
            return truncated(c, kv->key);
        kv->arr_data = c->base + c->pos;
        c->pos += (size_t)kv->arr_n * es;
        return 0;
    }
    size_t es = scalar_size(kv->type);
    if (!es)
        return vc_fail_code(VC_EXIT_MODEL, "%s: key '%s' has unknown value type %u", c->path, kv->key, kv->type);
    if (take(c, es, &p, kv->key))
        return -1;
    decode_scalar(kv->type, p, kv);
    return 0;
}

bool vc_gguf_sniff(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint32_t magic = 0;
    bool ok = f && fread(&magic, 4, 1, f) == 1 && magic == GGUF_MAGIC;
    if (f)
        fclose(f);
    return ok;
}

static int read_kvs(cursor *c, vc_gguf *g)
{
    g->kv = vc_calloc((size_t)g->n_kv, sizeof *g->kv);
    if (!g->kv)
        return -1;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        vc_gguf_str key;
        if (read_str(c, &key, "metadata key"))
            return -1;
        g->kv[i].key = vc_strndup(key.ptr, (size_t)key.len);
        if (!g->kv[i].key || read_u32(c, &g->kv[i].type, g->kv[i].key) || read_value(c, &g->kv[i]))
            return -1;
    }
    return 0;
}

static int read_tensor_infos(cursor *c, vc_gguf *g, uint64_t n_tensors, vc_tensor *infos, uint64_t *offsets)
{
    for (uint64_t i = 0; i < n_tensors; i++) {
        vc_gguf_str name;
        uint32_t nd, type;
        if (read_str(c, &name, "tensor name"))
            return -1;
        infos[i].name = vc_strndup(name.ptr, (size_t)name.len);
        if (!infos[i].name || read_u32(c, &nd, infos[i].name))
            return -1;
        if (nd < 1 || nd > VC_MAX_DIMS)
            return vc_fail_code(VC_EXIT_MODEL, "%s: tensor '%s' has %u dimensions", g->path, infos[i].name, nd);
        infos[i].n_dims = (int)nd;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t ne;
            if (read_u64(c, &ne, infos[i].name))
                return -1;
            if (ne > (uint64_t)INT64_MAX)
                return vc_fail_code(VC_EXIT_MODEL, "%s: tensor '%s' dimension overflows", g->path, infos[i].name);
            infos[i].ne[d] = (int64_t)ne;
        }
        if (read_u32(c, &type, infos[i].name) || read_u64(c, &offsets[i], infos[i].name))
            return -1;
        if (!vc_dtype_is_ggml(type))
            return vc_fail_code(VC_EXIT_MODEL, "%s: tensor '%s' has GGML type %u, which vlmchat does not support",
                                g->path, infos[i].name, type);
        infos[i].type = (int)type;
    }
    return 0;
}

/* Places each tensor in the data section and checks it fits and is aligned. */
static int place_tensors(vc_gguf *g, vc_mapped_file *map, size_t data_start, uint64_t n, vc_tensor *infos,
                         const uint64_t *offsets)
{
    for (uint64_t i = 0; i < n; i++) {
        vc_tensor *t = &infos[i];
        int64_t ne = vc_tensor_nelements(t);
        size_t row;
        if (ne < 0)
            return vc_fail_code(VC_EXIT_MODEL, "%s: tensor '%s' element count overflows", g->path, t->name);
        if (vc_dtype_row_bytes((vc_dtype)t->type, t->ne[0], &row) != 0)
            return vc_fail_ctx("%s: tensor '%s'", g->path, t->name);
        if (!vc_mul_size(row, (size_t)(t->ne[0] ? ne / t->ne[0] : 0), &t->nbytes))
            return vc_fail_ctx("%s: tensor '%s'", g->path, t->name);
        if (offsets[i] % g->alignment != 0)
            return vc_fail_code(VC_EXIT_MODEL, "%s: tensor '%s' data offset is not aligned", g->path, t->name);
        if (offsets[i] > map->size - data_start || t->nbytes > map->size - data_start - offsets[i])
            return vc_fail_code(VC_EXIT_MODEL, "%s: tensor '%s' data lies past the end of the file", g->path,
                                t->name);
        t->data = (const uint8_t *)map->addr + data_start + offsets[i];
        if (vc_tensors_add(&g->tensors, t, map) != 0)
            return -1;
    }
    return vc_tensors_check_overlap(&g->tensors);
}

int vc_gguf_open(const char *path, vc_gguf *g)
{
    memset(g, 0, sizeof *g);
    vc_mapped_file map;
    if (vc_map_file(path, &map) != 0)
        return -1;
    cursor c = { map.addr, map.size, 0, path };
    g->path = path;
    uint32_t magic = 0;
    uint64_t n_tensors = 0;
    vc_tensor *infos = NULL;
    uint64_t *offsets = NULL;
    int rc = -1;
    if (read_u32(&c, &magic, "magic") || read_u32(&c, &g->version, "version"))
        goto done;
    if (magic != GGUF_MAGIC) {
        vc_fail_code(VC_EXIT_MODEL, "%s: not a GGUF file (bad magic)", path);
        goto done;
    }
    if (g->version < 2 || g->version > 3) {
        vc_fail_code(VC_EXIT_MODEL, "%s: GGUF version %u is not supported (2 and 3 are)", path, g->version);
        goto done;
    }
    if (read_u64(&c, &n_tensors, "tensor count") || read_u64(&c, &g->n_kv, "metadata count"))
        goto done;
    /* every kv needs >= 12 bytes and every tensor info >= 28: bound counts by the file size */
    if (g->n_kv > map.size / 12 || n_tensors > map.size / 28) {
        vc_fail_code(VC_EXIT_MODEL, "%s: implausible counts (%llu tensors, %llu keys)", path,
                     (unsigned long long)n_tensors, (unsigned long long)g->n_kv);
        goto done;
    }
    if (read_kvs(&c, g))
        goto done;
    g->alignment = 32;
    int64_t align;
    if (vc_gguf_get_int(g, "general.alignment", &align)) {
        if (align <= 0 || align > 65536 || (align & (align - 1))) {
            vc_fail_code(VC_EXIT_MODEL, "%s: bad general.alignment %lld", path, (long long)align);
            goto done;
        }
        g->alignment = (uint64_t)align;
    }
    infos = vc_calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *infos);
    offsets = vc_calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *offsets);
    if (!infos || !offsets || read_tensor_infos(&c, g, n_tensors, infos, offsets))
        goto done;
    size_t data_start = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
    if (data_start > map.size && n_tensors > 0) {
        truncated(&c, "data section");
        goto done;
    }
    if (place_tensors(g, &map, data_start, n_tensors, infos, offsets))
        goto done;
    rc = vc_tensors_adopt_file(&g->tensors, &map);
    g->path = g->tensors.files[0].path;
done:
    for (uint64_t i = 0; infos && i < n_tensors; i++)
        free(infos[i].name);
    free(infos);
    free(offsets);
    if (rc != 0) {
        vc_gguf_close(g);
        vc_unmap_file(&map);
    }
    return rc;
}

void vc_gguf_close(vc_gguf *g)
{
    for (uint64_t i = 0; g->kv && i < g->n_kv; i++) {
        free(g->kv[i].key);
        free(g->kv[i].arr_str);
    }
    free(g->kv);
    vc_tensors_free(&g->tensors);
    memset(g, 0, sizeof *g);
}

const vc_gguf_kv *vc_gguf_find(const vc_gguf *g, const char *key)
{
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && strcmp(g->kv[i].key, key) == 0)
            return &g->kv[i];
    return NULL;
}

static bool is_int_type(uint32_t t)
{
    return t == VC_GGUF_U8 || t == VC_GGUF_I8 || t == VC_GGUF_U16 || t == VC_GGUF_I16 || t == VC_GGUF_U32 ||
           t == VC_GGUF_I32 || t == VC_GGUF_U64 || t == VC_GGUF_I64 || t == VC_GGUF_BOOL;
}

bool vc_gguf_get_int(const vc_gguf *g, const char *key, int64_t *out)
{
    const vc_gguf_kv *kv = vc_gguf_find(g, key);
    if (!kv || !is_int_type(kv->type))
        return false;
    *out = kv->v.i;
    return true;
}

bool vc_gguf_get_float(const vc_gguf *g, const char *key, double *out)
{
    const vc_gguf_kv *kv = vc_gguf_find(g, key);
    if (!kv || !(is_int_type(kv->type) || kv->type == VC_GGUF_F32 || kv->type == VC_GGUF_F64))
        return false;
    *out = kv->v.f;
    return true;
}

bool vc_gguf_get_bool(const vc_gguf *g, const char *key, bool *out)
{
    int64_t i;
    if (!vc_gguf_get_int(g, key, &i))
        return false;
    *out = i != 0;
    return true;
}

char *vc_gguf_get_string(const vc_gguf *g, const char *key)
{
    const vc_gguf_kv *kv = vc_gguf_find(g, key);
    if (!kv || kv->type != VC_GGUF_STRING)
        return NULL;
    return vc_strndup(kv->v.s.ptr, (size_t)kv->v.s.len);
}

static vc_gguf_kv arr_elem(const vc_gguf_kv *kv, uint64_t i)
{
    vc_gguf_kv e = { 0 };
    e.type = kv->arr_type;
    decode_scalar(kv->arr_type, kv->arr_data + i * scalar_size(kv->arr_type), &e);
    return e;
}

double vc_gguf_arr_float(const vc_gguf_kv *kv, uint64_t i) { return arr_elem(kv, i).v.f; }

int64_t vc_gguf_arr_int(const vc_gguf_kv *kv, uint64_t i) { return arr_elem(kv, i).v.i; }
