/* safetensors.h - HF safetensors files (single or sharded with an index). */
#ifndef VC_LOADER_SAFETENSORS_H
#define VC_LOADER_SAFETENSORS_H

#include "loader/tensors.h"

/* Maps one .safetensors file and adds all its tensors to `set`. Validates the
 * header size, JSON, dtypes, shapes, offsets and overlaps. */
int vc_safetensors_load(const char *path, vc_tensor_set *set);

/* Loads every safetensors file of an HF model directory: model.safetensors, or
 * the shards listed by model.safetensors.index.json. */
int vc_safetensors_load_dir(const char *dir, vc_tensor_set *set);

#endif
