/* model.h - a loaded model: decoder, tokenizer, chat format, defaults.
 *
 * vc_model_open() takes an HF model directory (config.json, safetensors,
 * tokenizer.json, tokenizer_config.json, chat template, generation_config.json)
 * or a GGUF file, and fills everything the generation loop needs.  A GGUF
 * text model gets its image side from an mmproj file (include/loader/mmproj.h):
 * the one named in the options, else the single "*mmproj*.gguf" beside it;
 * a Phi-3-V GGUF holds both halves in one file (include/loader/gguf_phi3v.h)
 * and takes no mmproj.
 */
#ifndef VC_MODEL_MODEL_H
#define VC_MODEL_MODEL_H

#include <stdbool.h>

#include "model/llm.h"
#include "text/chat.h"
#include "text/sampler.h"
#include "text/tokenizer.h"
#include "vision/family.h"

typedef struct {
    int n_ctx;                 /* 0: min(max_position_embeddings, 4096) */
    const char *template_name; /* NULL: detect from the model's template */
    int quant;                 /* a vc_dtype to quantize float matrices to at load (an HF directory's, a GGUF
                                  file's and its mmproj file's); 0 (f32): keep */
    size_t mem_limit;          /* memory budget in bytes; 0: the cgroup limit, else available memory */
    const char *mmproj;        /* a GGUF text model's vision half (llama.cpp mmproj file); NULL: the one
                                  "*mmproj*.gguf" beside it, if there is exactly one */
    bool no_mmproj;            /* a GGUF text model opens text only, no mmproj paired (not with mmproj) */
} vc_model_options;

typedef struct {
    vc_llm llm;
    vc_tokenizer *tok;
    vc_vision *vision;         /* NULL for text-only models */
    vc_chat chat;
    char *chat_template;       /* the model's Jinja text, if any */
    vc_sampler_params sampling;/* generation_config.json defaults */
    bool has_sampling_defaults;
    char *path;
    const char *format;        /* "hf" or "gguf" */
    double load_ms;
    size_t budget;             /* the memory budget the context was sized for */
    char note[256];            /* what loading had to change (e.g. a smaller context), or "" */
} vc_model;

int vc_model_open(const char *path, const vc_model_options *opt, vc_model *m);
void vc_model_close(vc_model *m);
/* Bytes of the weights the model holds: the decoder's (an HF model's vision
 * tower among them) and an mmproj file's; what the memory budget counts. */
size_t vc_model_weight_bytes(const vc_model *m);
/* True if id ends generation (eos of config, generation config, tokenizer or turn). */
bool vc_model_is_eos(const vc_model *m, int32_t id);

#endif
