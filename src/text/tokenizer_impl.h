/* tokenizer_impl.h - the tokenizer's data, shared by the pipeline
 * (tokenizer.c) and the two loaders (tokenizer_json.c, tokenizer_gguf.c). */
#ifndef VC_TEXT_TOKENIZER_IMPL_H
#define VC_TEXT_TOKENIZER_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/hashmap.h"
#include "text/tokenizer.h"

enum norm_kind { NORM_PREPEND, NORM_REPLACE };
enum pre_kind { PRE_METASPACE, PRE_BYTELEVEL, PRE_SPLIT };
enum dec_kind { DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE, DEC_BYTELEVEL };
enum split_behavior { SPLIT_ISOLATED, SPLIT_REMOVED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS };
enum prepend_scheme { PREPEND_NEVER, PREPEND_FIRST, PREPEND_ALWAYS };

typedef struct {
    enum norm_kind kind;
    char *a, *b;          /* Prepend: a; Replace: a -> b (literal) */
    pcre2_code *re;       /* Replace with a regex pattern */
} norm_step;

typedef struct {
    enum pre_kind kind;
    char *replacement;    /* Metaspace */
    int prepend_scheme;
    bool split;
    bool add_prefix_space, use_regex;  /* ByteLevel */
    pcre2_code *re;       /* Split (and ByteLevel with use_regex) */
    int behavior;
    bool invert;
} pre_step;

typedef struct {
    enum dec_kind kind;
    char *a, *b;          /* Replace a -> b; Strip: a is the character */
    int start, stop;      /* Strip */
    int prepend_scheme;   /* Metaspace */
    char *replacement;
} dec_step;

typedef struct {
    int32_t id;
    char *content;
    size_t len;
    bool special, lstrip, rstrip;
} added_token;

struct vc_tokenizer {
    int32_t n_ids;
    char **pieces;             /* id -> token string (model vocab or added content) */
    uint32_t *piece_lens;
    bool *special;             /* id -> skipped by decode(skip_special) */
    vc_strmap vocab;           /* model vocabulary: piece -> id */
    vc_u64map merges;          /* (left << 32 | right) -> (rank << 32 | result) */
    float *scores;             /* SentencePiece scores: merges by score when set */
    int32_t byte_ids[256];     /* <0xXX> tokens, -1 if absent */
    bool byte_fallback, fuse_unk, ignore_merges;
    int32_t unk_id, bos_id, eos_id;

    norm_step *norms;
    int n_norms;
    pre_step *pres;
    int n_pres;
    dec_step *decs;
    int n_decs;
    bool join_with_space;      /* no decoder: tokens joined with " " */

    added_token *added;        /* sorted longest first, for matching */
    int n_added;

    int32_t *post_prefix, *post_suffix;
    int n_post_prefix, n_post_suffix;

    char *json_text;           /* source tokenizer.json, if any */
    const char *ggml_pre;      /* tokenizer.ggml.pre that describes the pre-tokenizers (static) */
};

/* Allocates an empty tokenizer with n_ids slots. */
vc_tokenizer *tok_new(int32_t n_ids);
/* Sets the string for an id (copied). */
int tok_set_piece(vc_tokenizer *t, int32_t id, const char *s, size_t len);
/* Registers an added token (content matched in text). */
int tok_add_token(vc_tokenizer *t, int32_t id, const char *s, size_t len, bool special, bool lstrip,
                  bool rstrip);
/* Compiles a pattern with UTF and Unicode properties. */
pcre2_code *tok_compile_regex(const char *pattern, size_t len);
/* The GPT-2 pre-tokenization pattern. */
extern const char *const TOK_GPT2_PATTERN;
extern const char *const TOK_LLAMA3_PATTERN;
/* Append a pipeline step (the step is taken over; on failure it is freed). */
int tok_add_norm(vc_tokenizer *t, norm_step step);
int tok_add_pre(vc_tokenizer *t, pre_step step);
int tok_add_dec(vc_tokenizer *t, dec_step step);
/* Finishes loading: byte-token table, sorted added tokens, checks. */
int tok_finish(vc_tokenizer *t);

#endif
