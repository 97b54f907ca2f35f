/* stream.c - see include/text/stream.h */
#include "text/stream.h"

#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "text/utf8.h"

void vc_stream_init(vc_text_stream *s, const vc_tokenizer *tok)
{
    memset(s, 0, sizeof *s);
    s->tok = tok;
}

void vc_stream_free(vc_text_stream *s)
{
    free(s->ids);
    free(s->text);
    memset(s, 0, sizeof *s);
}

static int release(vc_text_stream *s, int final, const char **out, size_t *out_len)
{
    char *text;
    size_t len;
    if (vc_tokenizer_decode(s->tok, s->ids, s->n_ids, true, &text, &len) != 0)
        return -1;
    free(s->text);
    s->text = text;
    s->len = len;
    size_t ready = len;
    if (!final) {
        /* decoders show unfinished byte sequences as U+FFFD: wait for more */
        while (ready >= 3 && memcmp(text + ready - 3, "\xEF\xBF\xBD", 3) == 0)
            ready -= 3;
        ready -= vc_utf8_incomplete_tail(text, ready);
    }
    /* Earlier text can change only in what was held back; never re-emit. */
    if (ready < s->emitted)
        ready = s->emitted;
    *out = text + s->emitted;
    *out_len = ready - s->emitted;
    s->emitted = ready;
    return 0;
}

int vc_stream_push(vc_text_stream *s, int32_t id, const char **out, size_t *out_len)
{
    if (vc_reserve((void **)&s->ids, &s->cap, s->n_ids + 1, sizeof *s->ids) != 0)
        return -1;
    s->ids[s->n_ids++] = id;
    return release(s, 0, out, out_len);
}

int vc_stream_finish(vc_text_stream *s, const char **out, size_t *out_len)
{
    return release(s, 1, out, out_len);
}

void vc_reply_trim_start(bool *started, const char **text, size_t *len)
{
    if (*started)
        return;
    while (*len && (**text == ' ' || **text == '\n'))
        (*text)++, (*len)--;
    *started = *len > 0;
}
