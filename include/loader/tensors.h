/* tensors.h - named weight tensors backed by read-only memory maps.
 *
 * A tensor set owns the maps of the files its tensors point into, so weights
 * are never copied: a tensor's data is a pointer into a MAP_PRIVATE mapping.
 * Shapes use GGML order: ne[0] is the innermost (contiguous) dimension, so an
 * HF Linear weight [out, in] has ne = {in, out}.
 */
#ifndef VC_LOADER_TENSORS_H
#define VC_LOADER_TENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/matrix.h"

#define VC_MAX_DIMS 4
#define VC_DTYPE_UNSUPPORTED (-1)

typedef struct {
    char *name;
    int type;                 /* vc_dtype, or VC_DTYPE_UNSUPPORTED */
    char *type_name;          /* as the file spells it, for messages */
    int n_dims;
    int64_t ne[VC_MAX_DIMS];
    const void *data;
    size_t nbytes;
    const char *file;         /* owning file's path, for messages */
} vc_tensor;

typedef struct {
    void *addr;
    size_t size;
    char *path;
} vc_mapped_file;

typedef struct {
    vc_tensor *items;
    size_t count, cap;
    vc_mapped_file *files;
    size_t n_files;
    void **owned;              /* heap buffers of tensors converted in memory */
    size_t n_owned, owned_cap;
} vc_tensor_set;

/* Maps a whole file read-only. Fails for empty files and directories. */
int vc_map_file(const char *path, vc_mapped_file *out);
void vc_unmap_file(vc_mapped_file *m);

/* Takes ownership of a mapped file (the set unmaps it when freed). */
int vc_tensors_adopt_file(vc_tensor_set *set, vc_mapped_file *m);
/* Appends a tensor (name copied). Checks data..data+nbytes lies inside `file_map`
 * and that nbytes matches the shape and type. */
int vc_tensors_add(vc_tensor_set *set, const vc_tensor *t, const vc_mapped_file *file_map);
/* Fails if any two tensors' byte ranges overlap. */
int vc_tensors_check_overlap(const vc_tensor_set *set);
const vc_tensor *vc_tensors_find(const vc_tensor_set *set, const char *name);
/* Re-encodes every 2-D float tensor (f32/f16/bf16) whose rows are whole
 * blocks of `type` into `type`, in memory owned by the set: quantization at
 * load time, each tensor's rows spread over the thread pool (not to be
 * called inside vc_parallel_for). The files are untouched; the pages of the
 * float rows re-encoded are released from the mapping as each is done. */
int vc_tensors_quantize(vc_tensor_set *set, vc_dtype type);

/* MLX quantized checkpoints: every "X.scales" with its "X.weight" (uint32
 * words of packed 4-bit values) and "X.biases" becomes one tensor "X.weight"
 * of type VC_MLX4_G<group_size>, repacked in memory owned by the set. Fails,
 * naming the tensor, on other bit widths or group sizes, missing siblings or
 * shapes that do not agree. */
int vc_tensors_unpack_mlx(vc_tensor_set *set, int group_size, int bits);

/* Total bytes of tensor data (what the mapped weights cost). */
size_t vc_tensors_bytes(const vc_tensor_set *set);
/* Lets the kernel drop the resident pages of [data, data + bytes) when that
 * lies in one of the set's mapped files (the data was copied elsewhere); a
 * later read maps them in again from the file. Heap data is left alone. */
void vc_tensors_drop_pages(const vc_tensor_set *set, const void *data, size_t bytes);
/* Takes over a heap buffer that tensors' data or matrices made from them
 * point into, to free with the set. Returns 0, or -1 having freed it. */
int vc_tensors_own(vc_tensor_set *set, void *buf);
/* The tensor whose data, a heap buffer of the set's (a tensor converted in
 * memory), holds the byte at p; NULL when p is in a mapped file or in no
 * tensor. */
const vc_tensor *vc_tensors_owned_holding(const vc_tensor_set *set, const void *p);
/* Frees t's heap buffer (t from vc_tensors_owned_holding) when nothing reads
 * it any more (its rows were copied elsewhere); every tensor whose data it
 * was gets NULL data, and keeps its nbytes (what the weights cost). */
void vc_tensors_release(vc_tensor_set *set, const vc_tensor *t);
void vc_tensors_free(vc_tensor_set *set);

/* Number of elements; -1 if it overflows. */
int64_t vc_tensor_nelements(const vc_tensor *t);
/* A 2-D tensor as a matrix (ne[0] columns, ne[1] rows). Fails, naming the
 * tensor, if it is not 2-D with `cols` columns and `rows` rows (either may be
 * -1 for "any") or if its type is not supported. */
int vc_tensor_matrix(const vc_tensor *t, int64_t cols, int64_t rows, vc_matrix *out);
/* Copies a 1-D tensor of n elements into floats. */
int vc_tensor_to_f32(const vc_tensor *t, int64_t n, float *out);

#endif
