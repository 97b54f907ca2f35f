/* stream.h - turning generated token ids into text as they arrive.
 *
 * A token may end in the middle of a UTF-8 character (byte-fallback tokens
 * such as <0xC3>, or byte-level pieces).  The stream decodes everything so
 * far, as the tokenizer's decoder would for the whole reply, and releases only
 * the text that can no longer change: a trailing U+FFFD or incomplete
 * sequence is held back until the next token completes it, or until finish.
 */
#ifndef VC_TEXT_STREAM_H
#define VC_TEXT_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "text/tokenizer.h"

typedef struct {
    const vc_tokenizer *tok;
    int32_t *ids;
    size_t n_ids, cap;
    char *text;          /* decoded reply so far, special tokens skipped */
    size_t len;
    size_t emitted;      /* bytes of text already released */
} vc_text_stream;

void vc_stream_init(vc_text_stream *s, const vc_tokenizer *tok);
/* Adds a token; out and out_len receive the newly releasable text (possibly
 * empty), pointing into the stream's buffer until the next call. */
int vc_stream_push(vc_text_stream *s, int32_t id, const char **out, size_t *out_len);
/* Releases whatever is held back (incomplete bytes become U+FFFD). */
int vc_stream_finish(vc_text_stream *s, const char **out, size_t *out_len);
void vc_stream_free(vc_text_stream *s);

/* For callers showing a reply as it streams: drops the blanks (spaces and
 * newlines) it starts with, since the tokenizer's space before the first word
 * is not part of the answer. Advances *text and shrinks *len while *started
 * is false; sets *started at the first other byte. */
void vc_reply_trim_start(bool *started, const char **text, size_t *len);

#endif
