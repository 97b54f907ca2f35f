/* tokenizer_gguf.c - a tokenizer from GGUF metadata (tokenizer.ggml.*).
 *
 * A file written by vlmchat also carries the source tokenizer.json under
 * "vlmchat.tokenizer_json"; that one is preferred because it reproduces HF
 * exactly.  Otherwise the llama.cpp keys are mapped onto the same pipeline:
 *   "llama": SentencePiece BPE merged by piece score, byte fallback, "▁";
 *   "gpt2":  byte-level BPE with merges and a pre-tokenizer chosen by
 *            tokenizer.ggml.pre.
 */
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "loader/gguf.h"
#include "text/tokenizer_impl.h"

enum { TYPE_NORMAL = 1, TYPE_UNKNOWN = 2, TYPE_CONTROL = 3, TYPE_USER = 4, TYPE_UNUSED = 5, TYPE_BYTE = 6 };

static int add_pre_regex(vc_tokenizer *t, const char *pattern, enum pre_kind kind, int behavior, bool use_regex)
{
    pre_step s = { .kind = kind, .behavior = behavior, .use_regex = use_regex };
    if ((kind == PRE_SPLIT || use_regex) && !(s.re = tok_compile_regex(pattern, strlen(pattern))))
        return -1;
    return tok_add_pre(t, s);
}

static int add_norm(vc_tokenizer *t, enum norm_kind kind, const char *a, const char *b)
{
    return tok_add_norm(t, (norm_step){ kind, vc_strdup(a), b ? vc_strdup(b) : NULL, NULL });
}

static int setup_spm(vc_tokenizer *t, const vc_gguf *g)
{
    const vc_gguf_kv *scores = vc_gguf_find(g, "tokenizer.ggml.scores");
    if (!scores || scores->type != VC_GGUF_ARRAY || scores->arr_type != VC_GGUF_F32 ||
        scores->arr_n != (uint64_t)t->n_ids)
        return vc_fail_code(VC_EXIT_MODEL, "%s: tokenizer.ggml.scores is missing or has the wrong length", g->path);
    t->scores = vc_malloc((size_t)t->n_ids * sizeof *t->scores);
    if (!t->scores)
        return -1;
    for (int32_t i = 0; i < t->n_ids; i++)
        t->scores[i] = (float)vc_gguf_arr_float(scores, (uint64_t)i);
    t->byte_fallback = true;
    bool prefix = true;
    vc_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &prefix);
    if ((prefix && add_norm(t, NORM_PREPEND, "\xE2\x96\x81", NULL) != 0) ||
        add_norm(t, NORM_REPLACE, " ", "\xE2\x96\x81") != 0)
        return -1;
    if (tok_add_dec(t, (dec_step){ .kind = DEC_REPLACE, .a = vc_strdup("\xE2\x96\x81"), .b = vc_strdup(" ") }) != 0 ||
        tok_add_dec(t, (dec_step){ .kind = DEC_BYTEFALLBACK }) != 0 || tok_add_dec(t, (dec_step){ .kind = DEC_FUSE }) != 0)
        return -1;
    if (prefix && tok_add_dec(t, (dec_step){ .kind = DEC_STRIP, .a = vc_strdup(" "), .start = 1 }) != 0)
        return -1;
    return 0;
}

static int setup_bpe(vc_tokenizer *t, const vc_gguf *g)
{
    const vc_gguf_kv *merges = vc_gguf_find(g, "tokenizer.ggml.merges");
    if (!merges || merges->type != VC_GGUF_ARRAY || merges->arr_type != VC_GGUF_STRING)
        return vc_fail_code(VC_EXIT_MODEL, "%s: tokenizer.ggml.merges is missing", g->path);
    for (uint64_t i = 0; i < merges->arr_n; i++) {
        const char *s = merges->arr_str[i].ptr;
        size_t len = (size_t)merges->arr_str[i].len;
        const char *sp = memchr(s, ' ', len);
        int32_t a = -1, b = -1, r = -1;
        if (!sp || sp == s || sp + 1 == s + len)
            return vc_fail_code(VC_EXIT_MODEL, "%s: merge %llu is malformed", g->path, (unsigned long long)i);
        size_t alen = (size_t)(sp - s), blen = len - alen - 1;
        char *joined = vc_malloc(alen + blen);
        if (!joined)
            return -1;
        memcpy(joined, s, alen);
        memcpy(joined + alen, sp + 1, blen);
        bool ok = vc_strmap_get(&t->vocab, s, alen, &a) && vc_strmap_get(&t->vocab, sp + 1, blen, &b) &&
                  vc_strmap_get(&t->vocab, joined, alen + blen, &r);
        free(joined);
        uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b, old;
        if (ok && !vc_u64map_get(&t->merges, key, &old) &&
            vc_u64map_put(&t->merges, key, i << 32 | (uint32_t)r) != 0)
            return -1;
    }
    char *pre = vc_gguf_get_string(g, "tokenizer.ggml.pre");
    int rc;
    if (pre && (strcmp(pre, "llama-bpe") == 0 || strcmp(pre, "llama3") == 0)) {
        t->ggml_pre = "llama-bpe";
        rc = add_pre_regex(t, TOK_LLAMA3_PATTERN, PRE_SPLIT, SPLIT_ISOLATED, false);
        if (rc == 0)
            rc = add_pre_regex(t, NULL, PRE_BYTELEVEL, 0, false);
    } else {
        rc = 0;
        t->ggml_pre = "gpt2";
        if (pre && strcmp(pre, "smollm") == 0) {
            t->ggml_pre = "smollm";
            rc = add_pre_regex(t, "\\p{N}", PRE_SPLIT, SPLIT_ISOLATED, false);
        }
        if (rc == 0)
            rc = add_pre_regex(t, TOK_GPT2_PATTERN, PRE_BYTELEVEL, 0, true);
    }
    free(pre);
    return rc == 0 ? tok_add_dec(t, (dec_step){ .kind = DEC_BYTELEVEL }) : -1;
}

static int post_ids(vc_tokenizer *t, const vc_gguf *g)
{
    bool add_bos = t->scores != NULL, add_eos = false;   /* llama.cpp's defaults per model kind */
    vc_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos);
    vc_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &add_eos);
    if (add_bos && t->bos_id >= 0) {
        if (!(t->post_prefix = vc_malloc(sizeof(int32_t))))
            return -1;
        t->post_prefix[0] = t->bos_id;
        t->n_post_prefix = 1;
    }
    if (add_eos && t->eos_id >= 0) {
        if (!(t->post_suffix = vc_malloc(sizeof(int32_t))))
            return -1;
        t->post_suffix[0] = t->eos_id;
        t->n_post_suffix = 1;
    }
    return 0;
}

/* GGUF has no lstrip/rstrip flags. llama.cpp restores Phi-3's: its special
 * tokens strip whitespace to their right, except <unk>, <s> and <|endoftext|>. */
static bool phi3_rstrip(const vc_gguf *g, const char *s, size_t len)
{
    const vc_gguf_kv *arch = vc_gguf_find(g, "general.architecture");
    if (!arch || arch->type != VC_GGUF_STRING || arch->v.s.len != 4 || memcmp(arch->v.s.ptr, "phi3", 4) != 0)
        return false;
    static const char *const keep[] = { "<unk>", "<s>", "<|endoftext|>" };
    for (size_t i = 0; i < VC_ARRAY_LEN(keep); i++)
        if (len == strlen(keep[i]) && memcmp(s, keep[i], len) == 0)
            return false;
    return true;
}

static int load_vocab(vc_tokenizer *t, const vc_gguf *g, const vc_gguf_kv *tokens)
{
    const vc_gguf_kv *types = vc_gguf_find(g, "tokenizer.ggml.token_type");
    bool have_types = types && types->type == VC_GGUF_ARRAY && types->arr_n == tokens->arr_n &&
                      types->arr_type != VC_GGUF_STRING;
    for (int32_t i = 0; i < t->n_ids; i++) {
        const char *s = tokens->arr_str[i].ptr;
        size_t len = (size_t)tokens->arr_str[i].len;
        int64_t type = have_types ? vc_gguf_arr_int(types, (uint64_t)i) : TYPE_NORMAL;
        int rc;
        if (type == TYPE_CONTROL || type == TYPE_USER)
            rc = len ? tok_add_token(t, i, s, len, type == TYPE_CONTROL, false,
                                     type == TYPE_CONTROL && phi3_rstrip(g, s, len))
                     : tok_set_piece(t, i, s, len);
        else
            rc = tok_set_piece(t, i, s, len) || vc_strmap_put(&t->vocab, s, len, i) ? -1 : 0;
        if (rc != 0)
            return -1;
    }
    return 0;
}

int vc_tokenizer_load_gguf(const vc_gguf *g, vc_tokenizer **out)
{
    const vc_gguf_kv *json = vc_gguf_find(g, "vlmchat.tokenizer_json");
    if (json && json->type == VC_GGUF_STRING)
        return vc_tokenizer_load_json_text(json->v.s.ptr, (size_t)json->v.s.len, g->path, out);
    return vc_tokenizer_load_gguf_ggml(g, out);
}

int vc_tokenizer_load_gguf_ggml(const vc_gguf *g, vc_tokenizer **out)
{
    const vc_gguf_kv *tokens = vc_gguf_find(g, "tokenizer.ggml.tokens");
    char *model = vc_gguf_get_string(g, "tokenizer.ggml.model");
    if (!tokens || tokens->type != VC_GGUF_ARRAY || tokens->arr_type != VC_GGUF_STRING || !model ||
        tokens->arr_n == 0 || tokens->arr_n > (1u << 24)) {
        free(model);
        return vc_fail_code(VC_EXIT_MODEL, "%s: no usable tokenizer (tokenizer.ggml.model / tokens)", g->path);
    }
    bool spm = strcmp(model, "llama") == 0, bpe = strcmp(model, "gpt2") == 0;
    if (!spm && !bpe) {
        vc_fail_code(VC_EXIT_MODEL, "%s: tokenizer model '%s' is not supported (llama, gpt2 are)", g->path, model);
        free(model);
        return -1;
    }
    free(model);
    vc_tokenizer *t = tok_new((int32_t)tokens->arr_n);
    if (!t)
        return -1;
    int64_t v;
    if (vc_gguf_get_int(g, "tokenizer.ggml.unknown_token_id", &v) && v >= 0 && v < t->n_ids)
        t->unk_id = (int32_t)v;
    if (vc_gguf_get_int(g, "tokenizer.ggml.bos_token_id", &v) && v >= 0 && v < t->n_ids)
        t->bos_id = (int32_t)v;
    if (vc_gguf_get_int(g, "tokenizer.ggml.eos_token_id", &v) && v >= 0 && v < t->n_ids)
        t->eos_id = (int32_t)v;
    int rc = load_vocab(t, g, tokens);
    if (rc == 0)
        rc = spm ? setup_spm(t, g) : setup_bpe(t, g);
    if (rc == 0)
        rc = post_ids(t, g);
    if (rc == 0)
        rc = tok_finish(t);
    if (rc != 0) {
        vc_tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}
