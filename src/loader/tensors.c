/* tensors.c - see include/loader/tensors.h */
#define _POSIX_C_SOURCE 200809L
#include "loader/tensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/common.h"
#include "core/matrix.h"
#include "core/threads.h"

int vc_map_file(const char *path, vc_mapped_file *out)
{
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return vc_fail_code(VC_EXIT_MODEL, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return vc_fail_code(VC_EXIT_MODEL, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return vc_fail_code(VC_EXIT_MODEL, "%s: file is empty", path);
    }
    void *addr = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (addr == MAP_FAILED)
        return errno == ENOMEM ? vc_fail_code(VC_EXIT_NOMEM, "%s: not enough memory (address space) to map it", path)
                               : vc_fail_code(VC_EXIT_MODEL, "%s: cannot map: %s", path, strerror(errno));
    out->path = vc_strdup(path);
    if (!out->path) {
        munmap(addr, (size_t)st.st_size);
        return -1;
    }
    out->addr = addr;
    out->size = (size_t)st.st_size;
    return 0;
}

void vc_unmap_file(vc_mapped_file *m)
{
    if (m->addr)
        munmap(m->addr, m->size);
    free(m->path);
    memset(m, 0, sizeof *m);
}

int vc_tensors_adopt_file(vc_tensor_set *set, vc_mapped_file *m)
{
    vc_mapped_file *files = vc_realloc(set->files, (set->n_files + 1) * sizeof *files);
    if (!files)
        return -1;
    set->files = files;
    set->files[set->n_files++] = *m;
    memset(m, 0, sizeof *m);
    return 0;
}

int64_t vc_tensor_nelements(const vc_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->n_dims; i++) {
        if (t->ne[i] < 0 || (t->ne[i] && n > INT64_MAX / t->ne[i]))
            return -1;
        n *= t->ne[i];
    }
    return n;
}

int vc_tensors_add(vc_tensor_set *set, const vc_tensor *t, const vc_mapped_file *map)
{
    const char *file = map ? map->path : "?";
    if (t->n_dims < 1 || t->n_dims > VC_MAX_DIMS)
        return vc_fail_code(VC_EXIT_MODEL, "%s: tensor '%s' has %d dimensions (1..%d supported)", file,
                            t->name, t->n_dims, VC_MAX_DIMS);
    int64_t n = vc_tensor_nelements(t);
    if (n < 0)
        return vc_fail_code(VC_EXIT_MODEL, "%s: tensor '%s' has an invalid shape", file, t->name);
    if (t->type != VC_DTYPE_UNSUPPORTED) {
        size_t row, want;
        if (vc_dtype_row_bytes((vc_dtype)t->type, t->ne[0], &row) != 0)
            return vc_fail_ctx("%s: tensor '%s'", file, t->name);
        if (!vc_mul_size(row, (size_t)(t->ne[0] ? n / t->ne[0] : 0), &want))
            return vc_fail_ctx("%s: tensor '%s'", file, t->name);
        if (want != t->nbytes)
            return vc_fail_code(VC_EXIT_MODEL, "%s: tensor '%s' holds %zu bytes but its shape needs %zu", file,
                                t->name, t->nbytes, want);
    }
    if (map) {
        const uint8_t *lo = map->addr, *p = t->data;
        if (p < lo || (size_t)(p - lo) > map->size || t->nbytes > map->size - (size_t)(p - lo))
            return vc_fail_code(VC_EXIT_MODEL, "%s: tensor '%s' lies past the end of the file", file, t->name);
    }
    if (vc_reserve((void **)&set->items, &set->cap, set->count + 1, sizeof *set->items) != 0)
        return -1;
    vc_tensor *dst = &set->items[set->count];
    *dst = *t;
    dst->name = vc_strdup(t->name);
    dst->type_name = vc_strdup(t->type_name ? t->type_name : vc_dtype_name((vc_dtype)t->type));
    dst->file = file;
    if (!dst->name || !dst->type_name) {
        free(dst->name);
        free(dst->type_name);
        return -1;
    }
    set->count++;
    return 0;
}

static int by_address(const void *a, const void *b)
{
    const vc_tensor *x = a, *y = b;
    uintptr_t p = (uintptr_t)x->data, q = (uintptr_t)y->data;
    return p < q ? -1 : p > q;
}

int vc_tensors_check_overlap(const vc_tensor_set *set)
{
    if (set->count < 2)
        return 0;
    vc_tensor *sorted = vc_malloc(set->count * sizeof *sorted);
    if (!sorted)
        return -1;
    memcpy(sorted, set->items, set->count * sizeof *sorted);
    qsort(sorted, set->count, sizeof *sorted, by_address);
    int rc = 0;
    for (size_t i = 1; i < set->count; i++) {
        const vc_tensor *a = &sorted[i - 1], *b = &sorted[i];
        if (a->nbytes && b->nbytes && (const uint8_t *)a->data + a->nbytes > (const uint8_t *)b->data) {
            rc = vc_fail_code(VC_EXIT_MODEL, "%s: tensors '%s' and '%s' overlap", a->file, a->name, b->name);
            break;
        }
    }
    free(sorted);
    return rc;
}

const vc_tensor *vc_tensors_find(const vc_tensor_set *set, const char *name)
{
    for (size_t i = 0; i < set->count; i++)
        if (strcmp(set->items[i].name, name) == 0)
            return &set->items[i];
    return NULL;
}

size_t vc_tensors_bytes(const vc_tensor_set *set)
{
    size_t total = 0;
    for (size_t i = 0; i < set->count; i++)
        total += set->items[i].nbytes;
    return total;
}

void vc_tensors_free(vc_tensor_set *set)
{
    for (size_t i = 0; i < set->count; i++) {
        free(set->items[i].name);
        free(set->items[i].type_name);
    }
    for (size_t i = 0; i < set->n_files; i++)
        vc_unmap_file(&set->files[i]);
    for (size_t i = 0; i < set->n_owned; i++)
        free(set->owned[i]);
    free(set->owned);
    free(set->items);
    free(set->files);
    memset(set, 0, sizeof *set);
}

void vc_tensors_drop_pages(const vc_tensor_set *set, const void *data, size_t bytes)
{
    uintptr_t lo = (uintptr_t)data, hi = lo + bytes;
    for (size_t i = 0; i < set->n_files; i++) {
        uintptr_t start = (uintptr_t)set->files[i].addr, end = start + set->files[i].size;
        if (lo < start || hi > end)
            continue;
        uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        uintptr_t first = (lo + page - 1) / page * page, last = hi / page * page;   /* whole pages inside */
        if (first < last)
            madvise((void *)first, last - first, MADV_DONTNEED);   /* advice only: failure changes nothing */
        return;
    }
}

int vc_tensors_own(vc_tensor_set *set, void *buf)
{
    if (vc_reserve((void **)&set->owned, &set->owned_cap, set->n_owned + 1, sizeof(void *))) {
        free(buf);
        return -1;
    }
    set->owned[set->n_owned++] = buf;
    return 0;
}

const vc_tensor *vc_tensors_owned_holding(const vc_tensor_set *set, const void *p)
{
    uintptr_t at = (uintptr_t)p;
    for (size_t i = 0; i < set->count; i++) {
        const vc_tensor *t = &set->items[i];
        uintptr_t lo = (uintptr_t)t->data;
        if (!t->data || at < lo || at >= lo + t->nbytes)
            continue;
        for (size_t k = 0; k < set->n_owned; k++)
            if (set->owned[k] == t->data)
                return t;
        return NULL;   /* in a mapped file */
    }
    return NULL;
}

void vc_tensors_release(vc_tensor_set *set, const vc_tensor *t)
{
    const void *buf = t->data;
    for (size_t k = 0; k < set->n_owned; k++)
        if (set->owned[k] == buf) {
            free(set->owned[k]);
            set->owned[k] = set->owned[--set->n_owned];
            break;
        }
    for (size_t i = 0; i < set->count; i++)
        if (set->items[i].data == buf)
            set->items[i].data = NULL;
}

/* Gives tensor t new contents of `type` in `buf` (taken over by the set). */
static int replace_data(vc_tensor_set *set, vc_tensor *t, vc_dtype type, void *buf, size_t nbytes)
{
    char *type_name = vc_strdup(vc_dtype_name(type));
    if (!type_name || vc_tensors_own(set, buf) != 0) {
        free(type_name);
        if (!type_name)
            free(buf);
        return -1;
    }
    free(t->type_name);
    t->type_name = type_name;
    t->type = (int)type;
    t->data = buf;
    t->nbytes = nbytes;
    return 0;
}

/* One tensor's rows re-encoded, a range of rows a work item, each worker
 * expanding a row into its own slice of `rows`. */
typedef struct {
    const vc_tensor *t;
    vc_dtype type;
    size_t src_row, row;
    uint8_t *out;
    float *rows;   /* vc_threads_count() x t->ne[0] */
} quantize_job;

static void quantize_rows(void *ctx, int64_t begin, int64_t end, int worker)
{
    const quantize_job *j = ctx;
    float *row = j->rows + (size_t)worker * (size_t)j->t->ne[0];
    for (int64_t r = begin; r < end; r++) {
        vc_dequantize_row((vc_dtype)j->t->type, (const uint8_t *)j->t->data + (size_t)r * j->src_row, row, j->t->ne[0]);
        vc_quantize_row(j->type, row, j->out + (size_t)r * j->row, j->t->ne[0]);
    }
}

int vc_tensors_quantize(vc_tensor_set *set, vc_dtype type)
{
    int be = vc_dtype_block_elems(type);
    if (be <= 0)
        return vc_fail_code(VC_EXIT_USAGE, "cannot quantize to type %d", (int)type);
    int64_t max_cols = 0;
    for (size_t i = 0; i < set->count; i++)
        max_cols = VC_MAX(max_cols, set->items[i].ne[0]);
    float *rows = vc_malloc((size_t)vc_threads_count() * (size_t)max_cols * sizeof *rows);
    int rc = rows ? 0 : -1;
    for (size_t i = 0; i < set->count && rc == 0; i++) {
        vc_tensor *t = &set->items[i];
        bool is_float = t->type == VC_F32 || t->type == VC_F16 || t->type == VC_BF16;
        if (!is_float || t->n_dims != 2 || t->type == (int)type || t->ne[0] % be != 0)
            continue;
        quantize_job j = { t, type, 0, 0, NULL, rows };
        size_t total;
        if (vc_dtype_row_bytes((vc_dtype)t->type, t->ne[0], &j.src_row) != 0 ||
            vc_dtype_row_bytes(type, t->ne[0], &j.row) != 0 || !vc_mul_size(j.row, (size_t)t->ne[1], &total)) {
            rc = -1;
            break;
        }
        if (!(j.out = vc_malloc(total))) {
            rc = -1;
            break;
        }
        vc_parallel_for(t->ne[1], quantize_rows, &j);
        /* the float rows are not read again: their file pages leave the
         * process as it goes, so that its peak is about the new copy, not
         * both (3.8B to Q4_0: 11.3 GiB before) */
        vc_tensors_drop_pages(set, t->data, j.src_row * (size_t)t->ne[1]);
        rc = replace_data(set, t, type, j.out, total);
    }
    free(rows);
    return rc;
}

/* The sibling of `scales_name` ("X.scales") called "X.<suffix>". */
static vc_tensor *mlx_sibling(vc_tensor_set *set, const char *scales_name, const char *suffix)
{
    char name[512];
    size_t stem = strlen(scales_name) - strlen("scales");
    if (stem + strlen(suffix) >= sizeof name)
        return NULL;
    memcpy(name, scales_name, stem);
    strcpy(name + stem, suffix);
    return (vc_tensor *)vc_tensors_find(set, name);
}

/* Repacks one MLX triple: weight (uint32 [rows][cols/8]), scales and biases
 * ([rows][cols/group], float) into rows of vc_block_mlx4. */
static int repack_mlx4(vc_tensor_set *set, vc_tensor *w, const vc_tensor *sc, const vc_tensor *bi, int group)
{
    bool is_float = sc->type == VC_F32 || sc->type == VC_F16 || sc->type == VC_BF16;
    if (!w->type_name || strcmp(w->type_name, "U32") != 0 || w->n_dims != 2 || sc->n_dims != 2 || !is_float ||
        bi->type != sc->type || bi->n_dims != 2 || bi->ne[0] != sc->ne[0] || bi->ne[1] != sc->ne[1] ||
        sc->ne[1] != w->ne[1] || w->ne[0] > INT64_MAX / 8 || sc->ne[0] * group != w->ne[0] * 8)
        return vc_fail_code(VC_EXIT_MODEL, "%s: '%s' is not an MLX 4-bit weight of group size %d with its scales "
                            "and biases", w->file, w->name, group);
    int64_t rows = w->ne[1], cols = w->ne[0] * 8, groups = sc->ne[0];
    vc_dtype type = (vc_dtype)vc_dtype_mlx4(group);
    size_t row_bytes, total;
    if (vc_dtype_row_bytes(type, cols, &row_bytes) != 0 || !vc_mul_size(row_bytes, (size_t)rows, &total))
        return -1;
    uint8_t *buf = vc_malloc(total);
    float *s = vc_malloc((size_t)groups * sizeof *s), *b = vc_malloc((size_t)groups * sizeof *b);
    if (!buf || !s || !b) {
        free(buf), free(s), free(b);
        return -1;
    }
    size_t float_row = (size_t)groups * (sc->type == VC_F32 ? 4 : 2);
    for (int64_t r = 0; r < rows; r++) {
        vc_dequantize_row((vc_dtype)sc->type, (const uint8_t *)sc->data + (size_t)r * float_row, s, groups);
        vc_dequantize_row((vc_dtype)bi->type, (const uint8_t *)bi->data + (size_t)r * float_row, b, groups);
        const uint8_t *q = (const uint8_t *)w->data + (size_t)r * (size_t)(cols / 2);
        uint8_t *out = buf + (size_t)r * row_bytes;
        for (int64_t g = 0; g < groups; g++, out += VC_MLX4_BLOCK_BYTES(group), q += group / 2) {
            vc_block_mlx4 *blk = (vc_block_mlx4 *)out;
            blk->scale = s[g];
            blk->bias = b[g];
            memcpy(blk->qs, q, (size_t)group / 2);
        }
    }
    free(s);
    free(b);
    w->ne[0] = cols;
    return replace_data(set, w, type, buf, total);
}

int vc_tensors_unpack_mlx(vc_tensor_set *set, int group_size, int bits)
{
    if (bits != 4)
        return vc_fail_code(VC_EXIT_MODEL, "MLX %d-bit weights are not supported (4-bit are)", bits);
    if (vc_dtype_mlx4(group_size) < 0)
        return vc_fail_code(VC_EXIT_MODEL, "MLX group size %d is not supported (32, 64 and 128 are)", group_size);
    size_t n = set->count;      /* replace_data never adds tensors, so the items stay put */
    for (size_t i = 0; i < n; i++) {
        const vc_tensor *sc = &set->items[i];
        size_t len = strlen(sc->name);
        if (len < 7 || strcmp(sc->name + len - 7, ".scales") != 0)
            continue;
        vc_tensor *w = mlx_sibling(set, sc->name, "weight"), *bi = mlx_sibling(set, sc->name, "biases");
        if (!w || !bi)
            return vc_fail_code(VC_EXIT_MODEL, "%s: '%s' has no weight or biases beside it", sc->file, sc->name);
        if (repack_mlx4(set, w, sc, bi, group_size) != 0)
            return -1;
    }
    return 0;
}

static int check_supported(const vc_tensor *t)
{
    if (t->type == VC_DTYPE_UNSUPPORTED)
        return vc_fail_code(VC_EXIT_MODEL, "%s: tensor '%s' has type %s, which vlmchat cannot compute with",
                            t->file, t->name, t->type_name);
    return 0;
}

int vc_tensor_matrix(const vc_tensor *t, int64_t cols, int64_t rows, vc_matrix *out)
{
    if (check_supported(t) != 0)
        return -1;
    if (t->n_dims != 2 || (cols >= 0 && t->ne[0] != cols) || (rows >= 0 && t->ne[1] != rows))
        return vc_fail_code(VC_EXIT_MODEL,
                            "%s: tensor '%s' has shape [%lld, %lld] (rows, cols) but the config implies [%lld, %lld]",
                            t->file, t->name, (long long)(t->n_dims > 1 ? t->ne[1] : 1), (long long)t->ne[0],
                            (long long)rows, (long long)cols);
    out->type = (vc_dtype)t->type;
    out->cols = t->ne[0];
    out->rows = t->ne[1];
    out->data = t->data;
    return vc_dtype_row_bytes(out->type, out->cols, &out->row_bytes);
}

int vc_tensor_to_f32(const vc_tensor *t, int64_t n, float *out)
{
    if (check_supported(t) != 0)
        return -1;
    if (vc_tensor_nelements(t) != n)
        return vc_fail_code(VC_EXIT_MODEL, "%s: tensor '%s' has %lld elements, expected %lld", t->file, t->name,
                            (long long)vc_tensor_nelements(t), (long long)n);
    vc_dequantize_row((vc_dtype)t->type, t->data, out, n);
    return 0;
}
