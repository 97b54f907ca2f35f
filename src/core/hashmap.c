/* hashmap.c - see include/core/hashmap.h (linear probing, load <= 1/2). */
#include "core/hashmap.h"

#include <stdlib.h>
#include <string.h>

#include "core/common.h"

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;          /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33;                                   /* murmur3 finalizer */
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static size_t str_slot(const vc_strmap *m, const char *key, size_t len)
{
    size_t i = hash_bytes(key, len) & (m->cap - 1);
    while (m->keys[i] && !(m->key_lens[i] == len && memcmp(m->keys[i], key, len) == 0))
        i = (i + 1) & (m->cap - 1);
    return i;
}

static int str_grow(vc_strmap *m)
{
    vc_strmap bigger = { 0 };
    bigger.cap = m->cap ? m->cap * 2 : 64;
    bigger.keys = vc_calloc(bigger.cap, sizeof *bigger.keys);
    bigger.key_lens = vc_calloc(bigger.cap, sizeof *bigger.key_lens);
    bigger.values = vc_calloc(bigger.cap, sizeof *bigger.values);
    if (!bigger.keys || !bigger.key_lens || !bigger.values) {
        free(bigger.keys);
        free(bigger.key_lens);
        free(bigger.values);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        size_t j = str_slot(&bigger, m->keys[i], m->key_lens[i]);
        bigger.keys[j] = m->keys[i];
        bigger.key_lens[j] = m->key_lens[i];
        bigger.values[j] = m->values[i];
    }
    bigger.count = m->count;
    free(m->keys);
    free(m->key_lens);
    free(m->values);
    *m = bigger;
    return 0;
}

int vc_strmap_put(vc_strmap *m, const char *key, size_t len, int32_t value)
{
    if ((m->count + 1) * 2 > m->cap && str_grow(m) != 0)
        return -1;
    size_t i = str_slot(m, key, len);
    if (!m->keys[i]) {
        m->keys[i] = vc_strndup(key, len);
        if (!m->keys[i])
            return -1;
        m->key_lens[i] = (uint32_t)len;
        m->count++;
    }
    m->values[i] = value;
    return 0;
}

bool vc_strmap_get(const vc_strmap *m, const char *key, size_t len, int32_t *value)
{
    if (!m->cap)
        return false;
    size_t i = str_slot(m, key, len);
    if (!m->keys[i])
        return false;
    *value = m->values[i];
    return true;
}

void vc_strmap_free(vc_strmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->key_lens);
    free(m->values);
    memset(m, 0, sizeof *m);
}

static size_t u64_slot(const vc_u64map *m, uint64_t key)
{
    size_t i = hash_u64(key) & (m->cap - 1);
    while (m->used[i] && m->keys[i] != key)
        i = (i + 1) & (m->cap - 1);
    return i;
}

static int u64_grow(vc_u64map *m)
{
    vc_u64map bigger = { 0 };
    bigger.cap = m->cap ? m->cap * 2 : 64;
    bigger.keys = vc_calloc(bigger.cap, sizeof *bigger.keys);
    bigger.values = vc_calloc(bigger.cap, sizeof *bigger.values);
    bigger.used = vc_calloc(bigger.cap, sizeof *bigger.used);
    if (!bigger.keys || !bigger.values || !bigger.used) {
        free(bigger.keys);
        free(bigger.values);
        free(bigger.used);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->used[i])
            continue;
        size_t j = u64_slot(&bigger, m->keys[i]);
        bigger.used[j] = true;
        bigger.keys[j] = m->keys[i];
        bigger.values[j] = m->values[i];
    }
    bigger.count = m->count;
    vc_u64map_free(m);
    *m = bigger;
    return 0;
}

int vc_u64map_put(vc_u64map *m, uint64_t key, uint64_t value)
{
    if ((m->count + 1) * 2 > m->cap && u64_grow(m) != 0)
        return -1;
    size_t i = u64_slot(m, key);
    if (!m->used[i]) {
        m->used[i] = true;
        m->keys[i] = key;
        m->count++;
    }
    m->values[i] = value;
    return 0;
}

bool vc_u64map_get(const vc_u64map *m, uint64_t key, uint64_t *value)
{
    if (!m->cap)
        return false;
    size_t i = u64_slot(m, key);
    if (!m->used[i])
        return false;
    *value = m->values[i];
    return true;
}

void vc_u64map_free(vc_u64map *m)
{
    free(m->keys);
    free(m->values);
    free(m->used);
    memset(m, 0, sizeof *m);
}
