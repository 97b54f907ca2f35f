/* model.c - see include/model/model.h */
#define _POSIX_C_SOURCE 200809L
#include "model/model.h"

#include <float.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/common.h"
#include "core/json.h"
#include "core/meminfo.h"
#include "loader/gguf.h"
#include "loader/gguf_phi3v.h"
#include "loader/mmproj.h"
#include "loader/safetensors.h"
#include "model/llm_config.h"

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static json_t *load_json(const char *dir, const char *name, bool required)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!is_file(path)) {
        if (required)
            vc_fail_code(VC_EXIT_MODEL, "%s: missing %s", dir, name);
        return NULL;
    }
    json_error_t err;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    /* HF writes integers such as model_max_length = 1e30 that overflow
     * jansson's int64: read those files with integers as reals. */
    if (!j && strstr(err.text, "too big"))
        j = json_load_file(path, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &err);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        vc_fail_code(VC_EXIT_MODEL, "%s: invalid JSON at line %d: %s", path, err.line, j ? "not an object" : err.text);
        return NULL;
    }
    return j;
}

/* tokenizer_config.json writes tokens as "x" or {"content": "x", ...}. */
static const char *token_text(json_t *v)
{
    if (json_is_string(v))
        return json_string_value(v);
    return json_string_value(json_object_get(v, "content"));
}

/* The chat template where transformers finds it: chat_template.jinja (the
 * processor's and the tokenizer's), chat_template.json (the processor's),
 * or the tokenizer_config.json field (a string, or a list of named
 * templates, "default" used). */
static char *find_template(const char *dir, json_t *tok_cfg)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    if (is_file(path))
        return vc_read_file(path, NULL);
    json_t *tj = load_json(dir, "chat_template.json", false);
    json_t *t = json_object_get(tj, "chat_template");
    if (!t)
        t = json_object_get(tok_cfg, "chat_template");
    char *out = NULL;
    if (json_is_string(t)) {
        out = vc_strdup(json_string_value(t));
    } else if (json_is_array(t)) {
        size_t i;
        json_t *e;
        json_array_foreach(t, i, e)
            if (json_is_string(json_object_get(e, "name")) &&
                strcmp(json_string_value(json_object_get(e, "name")), "default") == 0)
                out = vc_strdup(json_string_value(json_object_get(e, "template")));
    }
    json_decref(tj);
    return out;
}

/* generation_config.json: extra eos ids and the sampling defaults (HF's
 * ranges: temperature >= 0, top_p in 0..1, top_k >= 0, a positive
 * repetition_penalty). */
static int generation_defaults(vc_model *m, json_t *gen)
{
    if (vc_llm_config_eos_from_json(&m->llm.cfg, json_object_get(gen, "eos_token_id")) != 0)
        return -1;
    if (!gen)
        return 0;
    vc_sampler_params p = vc_sampler_defaults();
    double temp = p.temperature, top_p = p.top_p, penalty = p.repeat_penalty;
    if ((json_is_true(json_object_get(gen, "do_sample")) &&
         vc_json_get_num(gen, "temperature", 0, FLT_MAX, temp, &temp) != 0) ||
        vc_json_get_num(gen, "top_p", 0, 1, top_p, &top_p) != 0 ||
        vc_json_get_int(gen, "top_k", 0, INT_MAX, p.top_k, &p.top_k) != 0 ||
        vc_json_get_num(gen, "repetition_penalty", FLT_MIN, FLT_MAX, penalty, &penalty) != 0)
        return -1;
    p.temperature = json_is_true(json_object_get(gen, "do_sample")) ? (float)temp : 0;
    p.top_p = (float)top_p;
    p.repeat_penalty = (float)penalty;
    m->sampling = p;
    m->has_sampling_defaults = true;
    return 0;
}

/* Where a multimodal checkpoint keeps its language model: the Hub layout
 * (language_model.model.*) or transformers 5's (model.language_model.*). */
static vc_llm_names text_names(const vc_tensor_set *w, bool multimodal)
{
    if (!multimodal)
        return VC_LLM_NAMES_HF;
    if (vc_tensors_find(w, "model.language_model.embed_tokens.weight"))
        return (vc_llm_names){ false, "model.language_model.", "lm_head.weight", false };
    if (vc_tensors_find(w, "model.text_model.embed_tokens.weight"))
        return (vc_llm_names){ false, "model.text_model.", "lm_head.weight", false };
    if (vc_tensors_find(w, "model.embed_tokens.weight"))    /* Phi-3-V: the decoder at the top */
        return VC_LLM_NAMES_HF;
    return (vc_llm_names){ false, "language_model.model.", "language_model.lm_head.weight", false };
}

/* MLX checkpoints say how their weights are packed in config.json's
 * "quantization" (mlx-lm also copies it to "quantization_config"; other
 * tools' quantization_config names a quant_method vlmchat does not read). */
static int unpack_mlx(json_t *cfg, const char *dir, vc_tensor_set *weights)
{
    json_t *q = json_object_get(cfg, "quantization");
    if (!q && (q = json_object_get(cfg, "quantization_config")) && json_object_get(q, "quant_method"))
        return vc_fail_code(VC_EXIT_MODEL, "%s: quantization method '%s' is not supported (MLX 4-bit is)", dir,
                            json_is_string(json_object_get(q, "quant_method"))
                                ? json_string_value(json_object_get(q, "quant_method")) : "?");
    if (!q)
        return 0;
    int gs, bits;
    if (!vc_json_has(q, "group_size") || !vc_json_has(q, "bits"))
        return vc_fail_code(VC_EXIT_MODEL, "%s/config.json: quantization needs integer group_size and bits", dir);
    if (vc_json_get_int(q, "group_size", 1, 4096, 0, &gs) != 0 || vc_json_get_int(q, "bits", 1, 64, 0, &bits) != 0)
        return vc_fail_ctx("%s/config.json: quantization", dir);
    return vc_tensors_unpack_mlx(weights, gs, bits);
}

/* Weights of the language model, bound under the names the checkpoint uses. */
static int load_text_weights(const char *dir, json_t *cfg, bool multimodal, const vc_llm_names *family_names,
                             int quant, vc_model *m)
{
    vc_tensor_set weights = { 0 };
    int rc = vc_safetensors_load_dir(dir, &weights);
    if (rc == 0)
        rc = unpack_mlx(cfg, dir, &weights);
    if (rc == 0 && quant > 0)
        rc = vc_tensors_quantize(&weights, (vc_dtype)quant);
    if (rc == 0) {
        vc_llm_names names = family_names ? *family_names : text_names(&weights, multimodal);
        rc = vc_llm_bind(&m->llm, &weights, &names);
    }
    vc_tensors_free(&weights);    /* empty once bound */
    return rc;
}

/* Tokenizer, its bos/eos, the chat template and generation defaults. */
static int load_text_side(const char *dir, vc_model *m)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (!is_file(path))
        return vc_fail_code(VC_EXIT_MODEL, "%s: missing tokenizer.json", dir);
    if (vc_tokenizer_load_json(path, &m->tok) != 0)
        return -1;
    json_t *tok_cfg = load_json(dir, "tokenizer_config.json", false);
    json_t *gen = load_json(dir, "generation_config.json", false);
    const char *bos = token_text(json_object_get(tok_cfg, "bos_token"));
    const char *eos = token_text(json_object_get(tok_cfg, "eos_token"));
    if (bos && vc_tokenizer_find(m->tok, bos) >= 0)
        vc_tokenizer_set_bos(m->tok, vc_tokenizer_find(m->tok, bos));
    if (eos && vc_tokenizer_find(m->tok, eos) >= 0)
        vc_tokenizer_set_eos(m->tok, vc_tokenizer_find(m->tok, eos));
    m->chat_template = find_template(dir, tok_cfg);
    int rc = vc_chat_init(&m->chat, m->chat_template, bos, eos);
    if (rc == 0)
        rc = vc_chat_set_tokens(&m->chat, token_text(json_object_get(tok_cfg, "unk_token")),
                                token_text(json_object_get(tok_cfg, "pad_token")));
    if (rc == 0 && generation_defaults(m, gen) != 0)
        rc = vc_fail_ctx("%s/generation_config.json", dir);
    json_decref(tok_cfg);
    json_decref(gen);
    return rc;
}

/* The chat side of a loaded vision half: messages are rendered as
 * processor.apply_chat_template renders them, with content parts, or, for
 * families whose processor numbers its placeholders (Phi-3-V), with the
 * numbered placeholder text inside string content. */
static int chat_takes_images(vc_model *m)
{
    bool numbered = m->vision->family->numbered_images;
    m->chat.parts = !numbered;
    m->chat.image_numbered = numbered;
    return vc_chat_set_image_text(&m->chat, m->vision->prompt_text);
}

static int open_hf(const char *dir, int quant, vc_model *m)
{
    char path[4096];
    json_t *cfg = load_json(dir, "config.json", true);
    if (!cfg)
        return -1;
    snprintf(path, sizeof path, "%s/config.json", dir);
    bool multimodal = vc_vision_is_multimodal(cfg);
    const vc_vision_family *fam = vc_vision_family_of(cfg);
    /* Phi-3-V keeps its language model's settings at the top level */
    json_t *text_cfg = multimodal && json_object_get(cfg, "text_config") ? json_object_get(cfg, "text_config") : cfg;
    /* a family whose decoder is not a transformers text_config describes it */
    int rc = fam && fam->text_config ? fam->text_config(cfg, path, &m->llm.cfg)
                                     : vc_llm_config_from_hf(text_cfg, path, &m->llm.cfg);
    /* A composite model ties (or not) by its own top-level tie_word_embeddings
     * (False by default in LlavaNextConfig, Idefics3Config, SmolVLMConfig):
     * PreTrainedModel.get_expanded_tied_weights_keys reads the config of the
     * model that owns lm_head, and the text config's value plays no part. */
    if (rc == 0 && multimodal)
        m->llm.cfg.tie_embeddings = json_is_true(json_object_get(cfg, "tie_word_embeddings"));
    if (rc == 0)
        rc = load_text_weights(dir, cfg, multimodal, fam ? fam->text_names : NULL, quant, m);
    if (rc == 0)
        rc = load_text_side(dir, m);
    if (rc == 0 && multimodal) {
        rc = vc_vision_load(dir, cfg, &m->llm.weights, m->tok, m->llm.cfg.dim, &m->vision);
        if (rc == 0)
            rc = chat_takes_images(m);
    }
    m->format = json_object_get(cfg, "quantization") ? "mlx 4-bit" : "hf";
    json_decref(cfg);
    return rc;
}

/* The image side of a GGUF text model from an mmproj file; quant > 0: its
 * float matrices re-encoded as an HF model's vision tower is (--quant). */
static int open_mmproj(const char *file, int quant, vc_model *m)
{
    vc_mmproj mp;
    if (vc_mmproj_open(file, m->llm.cfg.dim, &mp) != 0)
        return -1;
    if (quant > 0 && vc_tensors_quantize(mp.weights, (vc_dtype)quant) != 0) {
        vc_fail_ctx("%s", file);
        vc_mmproj_free(&mp);
        return -1;
    }
    vc_tensor_set *w = mp.weights;
    mp.weights = NULL;
    int rc = vc_vision_load_owned(file, mp.config, mp.processor, mp.processor_root, w, m->tok, m->llm.cfg.dim,
                                  &m->vision);
    vc_mmproj_free(&mp);
    if (rc == 0)
        rc = chat_takes_images(m);
    return rc;
}

/* --mmproj, else the one mmproj file beside the text GGUF. */
static int pair_mmproj(const char *file, const char *given, int quant, vc_model *m)
{
    if (given)
        return open_mmproj(given, quant, m);
    bool ambiguous;
    char *found = vc_mmproj_find_beside(file, &ambiguous);
    if (ambiguous)
        return -1;
    int rc = found ? open_mmproj(found, quant, m) : 0;
    free(found);
    return rc;
}

/* quant > 0: the file's float matrices re-encoded at load, as an HF model's
 * are (quantized ones stay as stored). */
static int open_gguf(const char *file, int quant, vc_model *m)
{
    if (vc_mmproj_sniff(file))
        return vc_fail_code(VC_EXIT_MODEL, "%s is an mmproj file (a model's vision half): open the text GGUF and "
                            "pass this one with --mmproj", file);
    vc_gguf g;
    if (vc_gguf_open(file, &g) != 0)
        return -1;
    int rc = vc_llm_config_from_gguf(&g, &m->llm.cfg);
    if (rc == 0)
        rc = vc_tokenizer_load_gguf(&g, &m->tok);
    /* the file's bos/eos, also where the tokenizer comes from the embedded tokenizer.json (which names none) */
    int64_t id;
    if (rc == 0 && vc_gguf_get_int(&g, "tokenizer.ggml.bos_token_id", &id) && id >= 0 && id < vc_tokenizer_size(m->tok))
        vc_tokenizer_set_bos(m->tok, (int32_t)id);
    if (rc == 0 && vc_gguf_get_int(&g, "tokenizer.ggml.eos_token_id", &id) && id >= 0 && id < vc_tokenizer_size(m->tok))
        vc_tokenizer_set_eos(m->tok, (int32_t)id);
    if (rc == 0) {
        m->chat_template = vc_gguf_get_string(&g, "tokenizer.chat_template");
        int32_t bos = vc_tokenizer_bos(m->tok), eos = vc_tokenizer_eos(m->tok);
        rc = vc_chat_init(&m->chat, m->chat_template, bos >= 0 ? vc_tokenizer_piece(m->tok, bos) : "",
                          eos >= 0 ? vc_tokenizer_piece(m->tok, eos) : "");
    }
    /* Phi-3-V's single file: its image side's settings, and its tensors under the HF names */
    json_t *vcfg = NULL, *vproc = NULL;
    if (rc == 0 && vc_gguf_phi3v_present(&g))
        rc = vc_gguf_phi3v_read(&g, file, &vcfg, &vproc);
    if (rc == 0 && quant > 0)
        rc = vc_tensors_quantize(&g.tensors, (vc_dtype)quant);
    /* the weights (and the mapping the metadata points into) move to the model */
    if (rc == 0)
        rc = vc_llm_bind(&m->llm, &g.tensors, &VC_LLM_NAMES_GGUF);
    vc_gguf_close(&g);
    if (rc == 0 && vcfg) {   /* bound from the model's weights, as a model directory's */
        rc = vc_vision_load_settings(file, vcfg, vproc, NULL, &m->llm.weights, m->tok, m->llm.cfg.dim, &m->vision);
        if (rc == 0)
            rc = chat_takes_images(m);
    }
    json_decref(vcfg);
    json_decref(vproc);
    m->format = "gguf";
    return rc;
}

/* --template: a Jinja file replaces the model's template; a built-in format's
 * name forces that format. */
static int override_template(vc_model *m, const char *name)
{
    if (is_file(name)) {
        char *text = vc_read_file(name, NULL);
        if (!text)
            return vc_fail_code(VC_EXIT_USAGE, "--template: %s", vc_error());
        int rc = vc_chat_set_template(&m->chat, text);
        if (rc != 0)
            vc_fail_ctx("%s", name);
        free(m->chat_template);
        m->chat_template = text;
        return rc;
    }
    int f = vc_chat_format_from_name(name);
    if (f < 0)
        return vc_fail_code(VC_EXIT_USAGE,
                            "--template '%s' is neither a file nor a built-in format (chatml, phi3, mistral, llama2, "
                            "llama3, llava-mistral, idefics3, raw)", name);
    vc_chat_set_format(&m->chat, (vc_chat_format)f);
    return 0;
}

/* The turn-ending token of the chat format also stops generation. */
static void add_turn_end(vc_model *m)
{
    const char *eot = vc_chat_end_of_turn(&m->chat);
    if (eot)
        vc_llm_config_add_eos(&m->llm.cfg, vc_tokenizer_find(m->tok, eot));
    vc_llm_config_add_eos(&m->llm.cfg, vc_tokenizer_eos(m->tok));
}

size_t vc_model_weight_bytes(const vc_model *m)
{
    size_t n = vc_tensors_bytes(&m->llm.weights);
    if (m->vision && m->vision->owned_weights)
        n += vc_tensors_bytes(m->vision->owned_weights);
    return n;
}

/* Sizes the context to the memory budget: weights (mapped, but they become
 * resident; an mmproj file's too), the KV cache and scratch must fit. A
 * context that does not fit is made smaller, down to 64 tokens; below that
 * the model cannot run. */
static int fit_context(vc_model *m, const char *path, const vc_model_options *opt, int *n_ctx)
{
    size_t weights = vc_model_weight_bytes(m);
    size_t budget = opt && opt->mem_limit ? opt->mem_limit : vc_mem_cgroup_limit();
    if (!budget)
        budget = vc_mem_available();
    /* under ulimit -v the weights are already mapped: what is left of the
     * address space, plus the weights, is what the model can have */
    size_t as_left = vc_mem_address_space_left();
    if (as_left && as_left + weights < budget)
        budget = as_left + weights;
    m->budget = budget;
    if (!budget)
        return 0;
    const vc_llm_config *c = &m->llm.cfg;
    size_t per_pos = vc_llm_position_bytes(&m->llm);
    size_t scratch = ((size_t)2 << 20) + (size_t)256 * (4 * (size_t)c->dim + 2 * (size_t)c->ffn_dim) * sizeof(float);
    size_t fixed = weights + scratch;
    if (fixed + per_pos * 64 > budget)
        return vc_fail_code(VC_EXIT_NOMEM,
                            "not enough memory for %s: it needs about %.1f MiB (weights %.1f MiB and a minimal KV "
                            "cache) but the budget is %.1f MiB (--mem-limit, cgroup limit or available memory)",
                            path, (fixed + per_pos * 64) / 1048576.0, weights / 1048576.0,
                            budget / 1048576.0);
    size_t fits = (budget - fixed) / per_pos;
    if ((size_t)*n_ctx > fits) {
        int smaller = (int)(fits / 64 * 64);
        snprintf(m->note, sizeof m->note, "memory: context reduced from %d to %d tokens to fit the %.1f MiB budget",
                 *n_ctx, smaller, budget / 1048576.0);
        *n_ctx = smaller;
    }
    return 0;
}

int vc_model_open(const char *path, const vc_model_options *opt, vc_model *m)
{
    memset(m, 0, sizeof *m);
    double t0 = vc_now_ms();
    m->sampling = vc_sampler_defaults();
    int rc;
    if (opt && opt->mmproj && opt->no_mmproj)
        rc = vc_fail_code(VC_EXIT_USAGE, "--mmproj and --no-mmproj do not go together");
    else if (is_dir(path) && opt && opt->mmproj)
        rc = vc_fail_code(VC_EXIT_USAGE, "--mmproj goes with a GGUF text model, not a model directory");
    else if (is_dir(path))
        rc = open_hf(path, opt ? opt->quant : 0, m);
    else if (is_file(path) && vc_gguf_sniff(path)) {
        rc = open_gguf(path, opt ? opt->quant : 0, m);
        if (rc == 0 && m->vision && opt && opt->mmproj)
            rc = vc_fail_code(VC_EXIT_USAGE, "%s holds its own vision side: --mmproj does not go with it", path);
        else if (rc == 0 && !m->vision && !(opt && opt->no_mmproj))
            rc = pair_mmproj(path, opt ? opt->mmproj : NULL, opt ? opt->quant : 0, m);
    }
    else if (is_file(path))
        rc = vc_fail_code(VC_EXIT_MODEL, "%s: not a GGUF file or a model directory", path);
    else
        rc = vc_fail_code(VC_EXIT_MODEL, "%s: no such file or directory", path);
    if (rc == 0 && opt && opt->template_name)
        rc = override_template(m, opt->template_name);
    if (rc == 0) {
        add_turn_end(m);
        if (m->llm.cfg.n_vocab > vc_tokenizer_size(m->tok) + 4096 || m->llm.cfg.n_vocab <= 0)
            rc = vc_fail_code(VC_EXIT_MODEL, "%s: model has %d logits but the tokenizer %d tokens", path,
                              m->llm.cfg.n_vocab, vc_tokenizer_size(m->tok));
    }
    if (rc == 0) {
        int n_ctx = opt && opt->n_ctx > 0 ? opt->n_ctx : VC_MIN(m->llm.cfg.max_pos, 4096);
        rc = fit_context(m, path, opt, &n_ctx);
        if (rc == 0 && m->note[0] && m->vision) {
            vc_vision_fewer_tiles(m->vision);
            size_t len = strlen(m->note);
            snprintf(m->note + len, sizeof m->note - len, "; images use fewer tiles");
        }
        if (rc == 0)
            rc = vc_llm_alloc_cache(&m->llm, n_ctx);
    }
    if (rc == 0)
        m->path = vc_strdup(path);
    if (rc != 0 || !m->path) {
        vc_model_close(m);
        return -1;
    }
    m->load_ms = vc_now_ms() - t0;
    return 0;
}

void vc_model_close(vc_model *m)
{
    vc_vision_free(m->vision);
    vc_llm_free(&m->llm);
    vc_tokenizer_free(m->tok);
    vc_chat_free(&m->chat);
    free(m->chat_template);
    free(m->path);
    memset(m, 0, sizeof *m);
}

bool vc_model_is_eos(const vc_model *m, int32_t id)
{
    for (int i = 0; i < m->llm.cfg.n_eos; i++)
        if (m->llm.cfg.eos_ids[i] == id)
            return true;
    return false;
}
