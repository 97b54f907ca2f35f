/* hashmap.h - open-addressing hash maps for the tokenizer's tables.
 *
 * vc_strmap: byte string (not NUL-terminated, may contain any byte) -> int32.
 * vc_u64map: uint64 key -> uint64 value.  Keys are copied/owned by the map.
 * Both grow by doubling and never shrink.
 */
#ifndef VC_CORE_HASHMAP_H
#define VC_CORE_HASHMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char **keys;
    uint32_t *key_lens;
    int32_t *values;
    size_t cap, count;
} vc_strmap;

typedef struct {
    uint64_t *keys;
    uint64_t *values;
    bool *used;
    size_t cap, count;
} vc_u64map;

/* Inserts or overwrites. Returns 0, or -1 on allocation failure. */
int vc_strmap_put(vc_strmap *m, const char *key, size_t len, int32_t value);
/* Returns true and sets *value if present. */
bool vc_strmap_get(const vc_strmap *m, const char *key, size_t len, int32_t *value);
void vc_strmap_free(vc_strmap *m);

int vc_u64map_put(vc_u64map *m, uint64_t key, uint64_t value);
bool vc_u64map_get(const vc_u64map *m, uint64_t key, uint64_t *value);
void vc_u64map_free(vc_u64map *m);

#endif
