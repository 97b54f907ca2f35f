/* llm_config.h - reading a decoder's hyper-parameters from HF config.json or
 * from GGUF metadata into vc_llm_config. */
#ifndef VC_MODEL_LLM_CONFIG_H
#define VC_MODEL_LLM_CONFIG_H

#include "loader/gguf.h"
#include "model/llm.h"

struct json_t;

/* Parses an HF config object (the text part of it for multimodal configs).
 * Accepts both rope_parameters and the older rope_theta/rope_scaling keys.
 * `origin` names the file in errors. */
int vc_llm_config_from_hf(struct json_t *cfg, const char *origin, vc_llm_config *out);
/* Reads general.architecture and the {arch}.* keys of a GGUF file. */
int vc_llm_config_from_gguf(const vc_gguf *g, vc_llm_config *out);
/* Adds an end-of-sequence id if not present (negative ids and those past
 * VC_MAX_EOS are left out). */
void vc_llm_config_add_eos(vc_llm_config *c, int32_t id);
/* Adds the ids of an eos_token_id value (an integer or a list of them, as
 * config.json and generation_config.json give it; NULL: none). Fails (-1,
 * VC_EXIT_MODEL) for a value of another kind. */
int vc_llm_config_eos_from_json(vc_llm_config *c, struct json_t *v);

#endif
