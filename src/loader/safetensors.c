/* safetensors.c - see include/loader/safetensors.h
 *
 * Format: u64 little-endian header length N, N bytes of JSON mapping tensor
 * names to {dtype, shape, data_offsets:[begin,end]}, then the data; offsets
 * are relative to the first byte after the header.
 */
#define _POSIX_C_SOURCE 200809L
#include "loader/safetensors.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/common.h"

#define MAX_HEADER_BYTES (100u << 20)

static int dtype_from_safetensors(const char *s)
{
    if (strcmp(s, "F32") == 0)
        return VC_F32;
    if (strcmp(s, "F16") == 0)
        return VC_F16;
    if (strcmp(s, "BF16") == 0)
        return VC_BF16;
    return VC_DTYPE_UNSUPPORTED;
}

/* Element size of dtypes we do not compute with, so their sizes can still be checked. */
static size_t other_dtype_size(const char *s)
{
    static const struct { const char *name; size_t size; } sizes[] = {
        { "F64", 8 }, { "I64", 8 }, { "U64", 8 }, { "I32", 4 }, { "U32", 4 }, { "I16", 2 },
        { "U16", 2 }, { "I8", 1 }, { "U8", 1 }, { "BOOL", 1 }, { "F8_E4M3", 1 }, { "F8_E5M2", 1 },
    };
    for (size_t i = 0; i < VC_ARRAY_LEN(sizes); i++)
        if (strcmp(s, sizes[i].name) == 0)
            return sizes[i].size;
    return 0;
}

static int parse_entry(const char *path, const char *name, json_t *info, const uint8_t *data, size_t data_size,
                       vc_tensor *t)
{
    json_t *jt = json_object_get(info, "dtype"), *shape = json_object_get(info, "shape");
    json_t *offs = json_object_get(info, "data_offsets");
    if (!json_is_string(jt) || !json_is_array(shape) || !json_is_array(offs) || json_array_size(offs) != 2)
        return vc_fail_code(VC_EXIT_MODEL, "%s: tensor '%s' has a malformed header entry", path, name);
    const char *dt = json_string_value(jt);
    memset(t, 0, sizeof *t);
    t->name = (char *)name;
    t->type = dtype_from_safetensors(dt);
    t->type_name = (char *)dt;
    size_t nd = json_array_size(shape);
    if (nd > VC_MAX_DIMS)
        return vc_fail_code(VC_EXIT_MODEL, "%s: tensor '%s' has %zu dimensions", path, name, nd);
    t->n_dims = nd ? (int)nd : 1;
    t->ne[0] = 1;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(shape, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return vc_fail_code(VC_EXIT_MODEL, "%s: tensor '%s' has a bad shape", path, name);
        t->ne[nd - 1 - i] = json_integer_value(d);   /* safetensors is outermost-first */
    }
    json_t *b = json_array_get(offs, 0), *e = json_array_get(offs, 1);
    if (!json_is_integer(b) || !json_is_integer(e) || json_integer_value(b) < 0 ||
        json_integer_value(e) < json_integer_value(b) || (uint64_t)json_integer_value(e) > data_size)
        return vc_fail_code(VC_EXIT_MODEL, "%s: tensor '%s' has data offsets outside the file", path, name);
    t->data = data + json_integer_value(b);
    t->nbytes = (size_t)(json_integer_value(e) - json_integer_value(b));
    if (t->type == VC_DTYPE_UNSUPPORTED) {
        size_t es = other_dtype_size(dt), want;
        int64_t n = vc_tensor_nelements(t);
        if (!es)
            return vc_fail_code(VC_EXIT_MODEL, "%s: tensor '%s' has unknown dtype '%s'", path, name, dt);
        if (n < 0 || !vc_mul_size((size_t)n, es, &want) || want != t->nbytes)
            return vc_fail_code(VC_EXIT_MODEL, "%s: tensor '%s' size does not match its shape", path, name);
    }
    return 0;
}

int vc_safetensors_load(const char *path, vc_tensor_set *set)
{
    vc_mapped_file map;
    if (vc_map_file(path, &map) != 0)
        return -1;
    const uint8_t *base = map.addr;
    uint64_t hlen = 0;
    if (map.size < 8) {
        vc_unmap_file(&map);
        return vc_fail_code(VC_EXIT_MODEL, "%s: too short to be a safetensors file", path);
    }
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | base[i];
    if (hlen < 2 || hlen > MAX_HEADER_BYTES || hlen > map.size - 8) {
        vc_unmap_file(&map);
        return vc_fail_code(VC_EXIT_MODEL, "%s: bad safetensors header length %llu (file is %zu bytes)", path,
                            (unsigned long long)hlen, map.size);
    }
    json_error_t jerr;
    json_t *root = json_loadb((const char *)base + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        vc_unmap_file(&map);
        return vc_fail_code(VC_EXIT_MODEL, "%s: safetensors header is not valid JSON (%s)", path,
                            root ? "not an object" : jerr.text);
    }
    const uint8_t *data = base + 8 + hlen;
    size_t data_size = map.size - 8 - (size_t)hlen;
    size_t first = set->count;
    const char *name;
    json_t *info;
    int rc = 0;
    json_object_foreach(root, name, info)
    {
        if (strcmp(name, "__metadata__") == 0)
            continue;
        vc_tensor t;
        if (!json_is_object(info) || parse_entry(path, name, info, data, data_size, &t) != 0) {
            if (!json_is_object(info))
                vc_fail_code(VC_EXIT_MODEL, "%s: tensor '%s' has a malformed header entry", path, name);
            rc = -1;
            break;
        }
        if (vc_tensors_add(set, &t, &map) != 0) {
            rc = -1;
            break;
        }
    }
    json_decref(root);
    if (rc == 0 && set->count == first)
        rc = vc_fail_code(VC_EXIT_MODEL, "%s: holds no tensors", path);
    if (rc == 0)
        rc = vc_tensors_adopt_file(set, &map);
    if (rc != 0) {
        /* drop what this file added: its pointers are about to dangle */
        for (size_t i = first; i < set->count; i++) {
            free(set->items[i].name);
            free(set->items[i].type_name);
        }
        set->count = first;
        vc_unmap_file(&map);
    }
    return rc;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Shard names come from a file we do not trust: no directories, no "..". */
static bool safe_shard_name(const char *s)
{
    return *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

int vc_safetensors_load_dir(const char *dir, vc_tensor_set *set)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (file_exists(path))
        return vc_safetensors_load(path, set);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (!file_exists(path))
        return vc_fail_code(VC_EXIT_MODEL, "%s: no model.safetensors or model.safetensors.index.json", dir);
    json_error_t jerr;
    json_t *index = json_load_file(path, 0, &jerr);
    json_t *map = index ? json_object_get(index, "weight_map") : NULL;
    if (!json_is_object(map)) {
        json_decref(index);
        return vc_fail_code(VC_EXIT_MODEL, "%s: %s", path, index ? "no weight_map object" : jerr.text);
    }
    /* Load each distinct shard once, in first-mention order. */
    json_t *done = json_object();
    const char *tensor;
    json_t *file;
    int rc = done ? 0 : vc_fail("out of memory");
    json_object_foreach(map, tensor, file)
    {
        if (rc != 0)
            break;
        if (!json_is_string(file) || !safe_shard_name(json_string_value(file))) {
            rc = vc_fail_code(VC_EXIT_MODEL, "%s: bad shard name for '%s'", path, tensor);
            break;
        }
        const char *shard = json_string_value(file);
        if (json_object_get(done, shard))
            continue;
        json_object_set_new(done, shard, json_true());
        char shard_path[4096];
        snprintf(shard_path, sizeof shard_path, "%s/%s", dir, shard);
        rc = vc_safetensors_load(shard_path, set);
    }
    /* Every tensor the index names must have arrived. */
    json_object_foreach(map, tensor, file)
    {
        if (rc != 0)
            break;
        if (!vc_tensors_find(set, tensor))
            rc = vc_fail_code(VC_EXIT_MODEL, "%s: tensor '%s' is listed but not in %s", path, tensor,
                              json_string_value(file));
    }
    json_decref(done);
    json_decref(index);
    return rc;
}
