/* tokenizer.h - BPE tokenizers as HF `tokenizers` and llama.cpp define them.
 *
 * Two families are supported, both by one BPE engine:
 *  - SentencePiece-style BPE with byte fallback (Llama, Mistral, Phi-3):
 *    "▁" for spaces, <0xXX> tokens for bytes outside the vocabulary;
 *  - GPT-2 byte-level BPE (SmolLM2, Llama 3, ...): bytes mapped to printable
 *    code points, regex pre-tokenization (PCRE2).
 * Loading follows tokenizer.json's normalizer / pre_tokenizer / model /
 * post_processor / decoder pipeline; anything it cannot reproduce exactly is
 * refused at load with a message naming the component.
 */
#ifndef VC_TEXT_TOKENIZER_H
#define VC_TEXT_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct vc_tokenizer vc_tokenizer;
struct vc_gguf;

/* Loads tokenizer.json (path to the file). */
int vc_tokenizer_load_json(const char *path, vc_tokenizer **out);
/* Same from JSON text in memory; `origin` names it in errors. */
int vc_tokenizer_load_json_text(const char *json, size_t len, const char *origin, vc_tokenizer **out);
/* Builds a tokenizer from GGUF metadata: the embedded tokenizer.json that
 * vlmchat's writer stores when there is one, else tokenizer.ggml.*. */
int vc_tokenizer_load_gguf(const struct vc_gguf *g, vc_tokenizer **out);
/* The same from tokenizer.ggml.* alone, as llama.cpp reads a file. */
int vc_tokenizer_load_gguf_ggml(const struct vc_gguf *g, vc_tokenizer **out);
void vc_tokenizer_free(vc_tokenizer *t);

/* Encodes UTF-8 text. Special/added tokens written in the text are
 * recognized. add_special applies the post-processor (e.g. a leading <s>).
 * Invalid UTF-8 is refused (exit class VC_EXIT_INPUT). *ids is malloc'd. */
int vc_tokenizer_encode(const vc_tokenizer *t, const char *text, size_t len, bool add_special, int32_t **ids,
                        size_t *n_ids);
/* Decodes ids to UTF-8 text (malloc'd, NUL-terminated). Bytes that do not
 * form valid UTF-8 become U+FFFD, as in `tokenizers`. */
int vc_tokenizer_decode(const vc_tokenizer *t, const int32_t *ids, size_t n, bool skip_special, char **text,
                        size_t *len);

/* Number of ids (model vocabulary plus added tokens). */
int32_t vc_tokenizer_size(const vc_tokenizer *t);
/* The token's string as stored (e.g. "▁Hello", "<|end|>"); NULL if out of range. */
const char *vc_tokenizer_piece(const vc_tokenizer *t, int32_t id);
/* Id of a token string, or -1. */
int32_t vc_tokenizer_find(const vc_tokenizer *t, const char *piece);
bool vc_tokenizer_is_special(const vc_tokenizer *t, int32_t id);
/* Ids of bos/eos/unk/pad as the tokenizer knows them (-1 if none). */
int32_t vc_tokenizer_bos(const vc_tokenizer *t);
int32_t vc_tokenizer_eos(const vc_tokenizer *t);
/* Sets the ids (from config files that override the tokenizer's own). */
void vc_tokenizer_set_bos(vc_tokenizer *t, int32_t id);
void vc_tokenizer_set_eos(vc_tokenizer *t, int32_t id);
/* The original tokenizer.json text if loaded from one (for embedding in GGUF). */
const char *vc_tokenizer_json_text(const vc_tokenizer *t);
/* For GGUF writers, a byte-level BPE tokenizer's llama.cpp description:
 * tokenizer.ggml.pre ("gpt2", "smollm" for a digit split before the GPT-2
 * regex, "llama-bpe" for Llama 3's regex; NULL for SentencePiece-style), and
 * its merges as "left right" strings in rank order (*merges malloc'd, each
 * string too; 0 merges for SentencePiece-style). Returns 0 or -1. */
const char *vc_tokenizer_ggml_pre(const vc_tokenizer *t);
int vc_tokenizer_merges(const vc_tokenizer *t, char ***merges, size_t *n);

#endif
