/* harness.c - see harness.h */
#include "harness.h"

#include "core/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int harness_passed, harness_failed;

const char *fixture(const char *relative)
{
    static char path[4096];
    const char *root = getenv("VLMCHAT_FIXTURES");
    snprintf(path, sizeof path, "%s/%s", root ? root : "tests/fixtures", relative);
    return path;
}

int32_t *json_ids(json_t *arr, size_t *n)
{
    *n = json_array_size(arr);
    int32_t *ids = malloc((*n ? *n : 1) * sizeof *ids);
    for (size_t i = 0; ids && i < *n; i++)
        ids[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return ids;
}

int harness_finish(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, harness_passed, harness_failed);
    return harness_failed ? 1 : 0;
}

float *blob_floats(const unsigned char *blob, size_t blob_len, json_t *loc, size_t n)
{
    size_t off = (size_t)json_integer_value(json_array_get(loc, 0)), len = (size_t)json_integer_value(json_array_get(loc, 1));
    if (len != n * sizeof(float) || off > blob_len || len > blob_len - off)
        return NULL;
    float *out = malloc(len);
    if (out)
        memcpy(out, blob + off, len);
    return out;
}

int copy_file(const char *from, const char *to)
{
    size_t len;
    char *data = vc_read_file(from, &len);
    if (!data)
        return -1;
    FILE *f = fopen(to, "wb");
    int rc = f && fwrite(data, 1, len, f) == len ? 0 : -1;
    if (f && fclose(f) != 0)
        rc = -1;
    free(data);
    return rc;
}

FILE *safetensors_begin(const char *path, json_t *header)
{
    char *h = json_dumps(header, JSON_COMPACT);
    json_decref(header);
    FILE *f = h ? fopen(path, "wb") : NULL;
    if (!f) {
        free(h);
        return NULL;
    }
    uint64_t len = strlen(h), hl = (len + 7) / 8 * 8;
    bool ok = fwrite(&hl, 8, 1, f) == 1 && fwrite(h, 1, len, f) == len && fwrite("        ", 1, hl - len, f) == hl - len;
    free(h);
    if (!ok) {
        fclose(f);
        return NULL;
    }
    return f;
}
