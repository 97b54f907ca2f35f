/* tokenizer.c - the encode/decode pipeline; see include/text/tokenizer.h
 *
 * encode: split the text on added tokens -> for each plain segment:
 *         normalizers -> pre-tokenizers (a list of words) -> BPE per word
 *         -> post-processor (special tokens around the sequence).
 * decode: ids -> token strings -> decoder steps -> text.
 * The order and the edge cases follow HF `tokenizers`, which the tests
 * compare against on a varied text set.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/common.h"
#include "text/tokenizer_impl.h"
#include "text/utf8.h"

const char *const TOK_GPT2_PATTERN =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const char *const TOK_LLAMA3_PATTERN =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* ---- small containers ---------------------------------------------------- */

typedef struct {
    int32_t *v;
    size_t n, cap;
} idvec;

static int ids_push(idvec *a, int32_t id)
{
    if (vc_reserve((void **)&a->v, &a->cap, a->n + 1, sizeof *a->v) != 0)
        return -1;
    a->v[a->n++] = id;
    return 0;
}

/* A list of owned strings; `first` marks a word at offset 0 of the input. */
typedef struct {
    char *s;
    size_t len;
    bool first;
} word;

typedef struct {
    word *w;
    size_t n, cap;
} wordlist;

static int words_push(wordlist *l, const char *s, size_t len, bool first)
{
    if (vc_reserve((void **)&l->w, &l->cap, l->n + 1, sizeof *l->w) != 0)
        return -1;
    char *copy = vc_strndup(s, len);
    if (!copy)
        return -1;
    l->w[l->n++] = (word){ copy, len, first };
    return 0;
}

/* Extends the last word by s[0..len) (delimiters merged into a neighbour). */
static int words_extend_last(wordlist *l, const char *s, size_t len)
{
    word *prev = &l->w[l->n - 1];
    char *joined = vc_realloc(prev->s, prev->len + len + 1);
    if (!joined)
        return -1;
    memcpy(joined + prev->len, s, len);
    prev->len += len;
    joined[prev->len] = 0;
    prev->s = joined;
    return 0;
}

static void words_free(wordlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->w[i].s);
    free(l->w);
    memset(l, 0, sizeof *l);
}

/* ---- construction helpers used by the loaders ---------------------------- */

vc_tokenizer *tok_new(int32_t n_ids)
{
    vc_tokenizer *t = vc_calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->n_ids = n_ids;
    t->pieces = vc_calloc((size_t)n_ids, sizeof *t->pieces);
    t->piece_lens = vc_calloc((size_t)n_ids, sizeof *t->piece_lens);
    t->special = vc_calloc((size_t)n_ids, sizeof *t->special);
    t->unk_id = t->bos_id = t->eos_id = -1;
    if (!t->pieces || !t->piece_lens || !t->special) {
        vc_tokenizer_free(t);
        return NULL;
    }
    return t;
}

int tok_set_piece(vc_tokenizer *t, int32_t id, const char *s, size_t len)
{
    if (id < 0 || id >= t->n_ids)
        return vc_fail_code(VC_EXIT_MODEL, "token id %d out of range", id);
    free(t->pieces[id]);
    t->pieces[id] = vc_strndup(s, len);
    t->piece_lens[id] = (uint32_t)len;
    return t->pieces[id] ? 0 : -1;
}

int tok_add_token(vc_tokenizer *t, int32_t id, const char *s, size_t len, bool special, bool lstrip, bool rstrip)
{
    if (len == 0)
        return vc_fail_code(VC_EXIT_MODEL, "added token %d is empty", id);
    if (tok_set_piece(t, id, s, len) != 0)
        return -1;
    added_token *a = vc_realloc(t->added, (size_t)(t->n_added + 1) * sizeof *a);
    if (!a)
        return -1;
    t->added = a;
    a[t->n_added] = (added_token){ id, vc_strndup(s, len), len, special, lstrip, rstrip };
    if (!a[t->n_added].content)
        return -1;
    t->n_added++;
    t->special[id] = special;
    return 0;
}

pcre2_code *tok_compile_regex(const char *pattern, size_t len)
{
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        vc_fail_code(VC_EXIT_MODEL, "tokenizer regex does not compile at offset %zu: %s", (size_t)off,
                     (const char *)msg);
    }
    return re;
}

int tok_add_norm(vc_tokenizer *t, norm_step step)
{
    size_t cap = (size_t)t->n_norms;
    if (vc_reserve((void **)&t->norms, &cap, (size_t)t->n_norms + 1, sizeof *t->norms) != 0) {
        free(step.a);
        free(step.b);
        pcre2_code_free(step.re);
        return -1;
    }
    t->norms[t->n_norms++] = step;
    return 0;
}

int tok_add_pre(vc_tokenizer *t, pre_step step)
{
    size_t cap = (size_t)t->n_pres;
    if (vc_reserve((void **)&t->pres, &cap, (size_t)t->n_pres + 1, sizeof *t->pres) != 0) {
        free(step.replacement);
        pcre2_code_free(step.re);
        return -1;
    }
    t->pres[t->n_pres++] = step;
    return 0;
}

int tok_add_dec(vc_tokenizer *t, dec_step step)
{
    size_t cap = (size_t)t->n_decs;
    if (vc_reserve((void **)&t->decs, &cap, (size_t)t->n_decs + 1, sizeof *t->decs) != 0) {
        free(step.a);
        free(step.b);
        free(step.replacement);
        return -1;
    }
    t->decs[t->n_decs++] = step;
    return 0;
}

static int longest_first(const void *a, const void *b)
{
    const added_token *x = a, *y = b;
    return x->len < y->len ? 1 : x->len > y->len ? -1 : 0;
}

int tok_finish(vc_tokenizer *t)
{
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        int32_t id;
        t->byte_ids[b] = vc_strmap_get(&t->vocab, name, 6, &id) ? id : -1;
    }
    for (int32_t i = 0; i < t->n_ids; i++)
        if (!t->pieces[i] && tok_set_piece(t, i, "", 0) != 0)   /* holes decode to nothing */
            return -1;
    if (t->n_added > 1)   /* qsort takes no NULL array, even of 0 items */
        qsort(t->added, (size_t)t->n_added, sizeof *t->added, longest_first);
    return 0;
}

/* ---- public accessors ----------------------------------------------------- */

int32_t vc_tokenizer_size(const vc_tokenizer *t) { return t->n_ids; }

const char *vc_tokenizer_piece(const vc_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_ids ? t->pieces[id] : NULL;
}

int32_t vc_tokenizer_find(const vc_tokenizer *t, const char *piece)
{
    size_t len = strlen(piece);
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].len == len && memcmp(t->added[i].content, piece, len) == 0)
            return t->added[i].id;
    int32_t id;
    return vc_strmap_get(&t->vocab, piece, len, &id) ? id : -1;
}

bool vc_tokenizer_is_special(const vc_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_ids && t->special[id];
}

int32_t vc_tokenizer_bos(const vc_tokenizer *t) { return t->bos_id; }
int32_t vc_tokenizer_eos(const vc_tokenizer *t) { return t->eos_id; }
void vc_tokenizer_set_bos(vc_tokenizer *t, int32_t id) { t->bos_id = id; }
void vc_tokenizer_set_eos(vc_tokenizer *t, int32_t id) { t->eos_id = id; }
const char *vc_tokenizer_json_text(const vc_tokenizer *t) { return t->json_text; }

const char *vc_tokenizer_ggml_pre(const vc_tokenizer *t)
{
    if (t->ggml_pre)
        return t->ggml_pre;
    for (int i = 0; i < t->n_decs; i++)
        if (t->decs[i].kind == DEC_BYTELEVEL)
            return "gpt2";
    return NULL;
}

typedef struct {
    uint64_t rank;
    int32_t left, right;
} merge_entry;

static int by_rank(const void *a, const void *b)
{
    uint64_t x = ((const merge_entry *)a)->rank, y = ((const merge_entry *)b)->rank;
    return x < y ? -1 : x > y;
}

int vc_tokenizer_merges(const vc_tokenizer *t, char ***merges, size_t *n)
{
    *merges = NULL;
    *n = 0;
    if (t->merges.count == 0)
        return 0;
    merge_entry *e = vc_malloc(t->merges.count * sizeof *e);
    char **out = vc_calloc(t->merges.count, sizeof *out);
    if (!e || !out) {
        free(e);
        free(out);
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < t->merges.cap; i++)
        if (t->merges.used[i])
            e[k++] = (merge_entry){ t->merges.values[i] >> 32, (int32_t)(t->merges.keys[i] >> 32),
                                    (int32_t)(uint32_t)t->merges.keys[i] };
    qsort(e, k, sizeof *e, by_rank);
    for (size_t i = 0; i < k; i++) {
        size_t ll = t->piece_lens[e[i].left], rl = t->piece_lens[e[i].right];
        if (!(out[i] = vc_malloc(ll + rl + 2))) {
            for (size_t j = 0; j < i; j++)
                free(out[j]);
            free(out);
            free(e);
            return -1;
        }
        memcpy(out[i], t->pieces[e[i].left], ll);
        out[i][ll] = ' ';
        memcpy(out[i] + ll + 1, t->pieces[e[i].right], rl);
        out[i][ll + rl + 1] = 0;
    }
    free(e);
    *merges = out;
    *n = k;
    return 0;
}

void vc_tokenizer_free(vc_tokenizer *t)
{
    if (!t)
        return;
    for (int32_t i = 0; t->pieces && i < t->n_ids; i++)
        free(t->pieces[i]);
    free(t->pieces);
    free(t->piece_lens);
    free(t->special);
    vc_strmap_free(&t->vocab);
    vc_u64map_free(&t->merges);
    free(t->scores);
    for (int i = 0; i < t->n_norms; i++) {
        free(t->norms[i].a);
        free(t->norms[i].b);
        pcre2_code_free(t->norms[i].re);
    }
    free(t->norms);
    for (int i = 0; i < t->n_pres; i++) {
        free(t->pres[i].replacement);
        pcre2_code_free(t->pres[i].re);
    }
    free(t->pres);
    for (int i = 0; i < t->n_decs; i++) {
        free(t->decs[i].a);
        free(t->decs[i].b);
        free(t->decs[i].replacement);
    }
    free(t->decs);
    for (int i = 0; i < t->n_added; i++)
        free(t->added[i].content);
    free(t->added);
    free(t->post_prefix);
    free(t->post_suffix);
    free(t->json_text);
    free(t);
}

/* ---- byte-level alphabet (GPT-2's bytes_to_unicode) ----------------------- */

static uint32_t byte_to_cp[256];
static int16_t cp_to_byte[512];   /* every mapped code point is < 512 */

static void init_byte_level(void)
{
    if (byte_to_cp['!'])
        return;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
        byte_to_cp[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
    }
    for (int i = 0; i < 512; i++)
        cp_to_byte[i] = -1;
    for (int b = 0; b < 256; b++)
        cp_to_byte[byte_to_cp[b]] = (int16_t)b;
}

static void byte_level_encode(vc_buf *out, const char *s, size_t len)
{
    init_byte_level();
    for (size_t i = 0; i < len; i++) {
        char u[4];
        vc_buf_append(out, u, vc_utf8_encode(byte_to_cp[(uint8_t)s[i]], u));
    }
}

/* ---- normalizers ---------------------------------------------------------- */

static void replace_all(vc_buf *out, const char *s, size_t len, const char *a, const char *b)
{
    size_t alen = strlen(a), blen = strlen(b);
    for (size_t i = 0; i < len;) {
        if (alen && i + alen <= len && memcmp(s + i, a, alen) == 0) {
            vc_buf_append(out, b, blen);
            i += alen;
        } else {
            vc_buf_putc(out, s[i++]);
        }
    }
}

static int regex_replace(vc_buf *out, pcre2_code *re, const char *s, size_t len, const char *with)
{
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md)
        return vc_fail_code(VC_EXIT_NOMEM, "out of memory");
    size_t pos = 0;
    while (pos <= len) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, len, pos, 0, md, NULL);
        if (rc < 0)
            break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        vc_buf_append(out, s + pos, ov[0] - pos);
        vc_buf_puts(out, with);
        if (ov[1] == ov[0]) {                 /* empty match: copy one char and go on */
            size_t step = ov[0] < len ? VC_MAX(vc_utf8_seq_len(s + ov[0], len - ov[0]), 1) : 1;
            if (ov[0] < len)
                vc_buf_append(out, s + ov[0], step);
            pos = ov[0] + step;
        } else {
            pos = ov[1];
        }
    }
    if (pos < len)
        vc_buf_append(out, s + pos, len - pos);
    pcre2_match_data_free(md);
    return 0;
}

static char *normalize(const vc_tokenizer *t, const char *s, size_t len, size_t *out_len)
{
    char *cur = vc_strndup(s, len);
    size_t cur_len = len;
    for (int i = 0; cur && i < t->n_norms; i++) {
        const norm_step *n = &t->norms[i];
        vc_buf b = { 0 };
        if (n->kind == NORM_PREPEND) {
            if (cur_len)                      /* tokenizers prepends to non-empty text only */
                vc_buf_puts(&b, n->a);
            vc_buf_append(&b, cur, cur_len);
        } else if (n->re) {
            regex_replace(&b, n->re, cur, cur_len, n->b);
        } else {
            replace_all(&b, cur, cur_len, n->a, n->b);
        }
        free(cur);
        cur = vc_buf_take(&b, &cur_len);
    }
    *out_len = cur_len;
    return cur;
}

/* ---- pre-tokenizers ------------------------------------------------------- */

typedef struct {
    size_t start, end;
    bool match;
} span;

/* Cuts s into alternating non-matching / matching spans covering it all. */
static int regex_spans(pcre2_code *re, const char *s, size_t len, span **out, size_t *n_out)
{
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    size_t cap = 16, n = 0, pos = 0, last = 0;
    span *sp = vc_malloc(cap * sizeof *sp);
    if (!md || !sp) {
        pcre2_match_data_free(md);
        free(sp);
        return vc_fail_code(VC_EXIT_NOMEM, "out of memory");
    }
    while (pos < len) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, len, pos, 0, md, NULL);
        if (rc < 0)
            break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] == ov[0]) {                 /* empty match: not a split point */
            pos = ov[0] + VC_MAX(vc_utf8_seq_len(s + ov[0], len - ov[0]), 1);
            continue;
        }
        if (n + 2 > cap) {
            cap *= 2;
            span *bigger = vc_realloc(sp, cap * sizeof *sp);
            if (!bigger) {
                free(sp);
                pcre2_match_data_free(md);
                return -1;
            }
            sp = bigger;
        }
        if (ov[0] > last)
            sp[n++] = (span){ last, ov[0], false };
        sp[n++] = (span){ ov[0], ov[1], true };
        last = pos = ov[1];
    }
    if (last < len) {
        span *bigger = vc_realloc(sp, (n + 1) * sizeof *sp);
        if (!bigger) {
            free(sp);
            pcre2_match_data_free(md);
            return -1;
        }
        sp = bigger;
        sp[n++] = (span){ last, len, false };
    }
    pcre2_match_data_free(md);
    *out = sp;
    *n_out = n;
    return 0;
}

/* Splits one word by a regex with a tokenizers SplitDelimiterBehavior. */
static int split_word(const word *w, pcre2_code *re, int behavior, bool invert, wordlist *out)
{
    span *sp = NULL;
    size_t n = 0;
    if (regex_spans(re, w->s, w->len, &sp, &n) != 0)
        return -1;
    if (invert)
        for (size_t i = 0; i < n; i++)
            sp[i].match = !sp[i].match;
    int rc = 0;
    size_t pending_start = SIZE_MAX;          /* MERGED_NEXT: start of a carried delimiter */
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t a = sp[i].start, b = sp[i].end;
        bool first = w->first && a == 0;
        switch (behavior) {
        case SPLIT_REMOVED:
            if (!sp[i].match)
                rc = words_push(out, w->s + a, b - a, first);
            break;
        case SPLIT_MERGED_PREV:
            if (sp[i].match && out->n > 0 && i > 0 && !sp[i - 1].match)
                rc = words_extend_last(out, w->s + a, b - a);
            else
                rc = words_push(out, w->s + a, b - a, first);
            break;
        case SPLIT_MERGED_NEXT:
            if (sp[i].match) {
                if (pending_start != SIZE_MAX)
                    rc = words_push(out, w->s + pending_start, a - pending_start, w->first && pending_start == 0);
                pending_start = a;
            } else {
                size_t from = pending_start != SIZE_MAX ? pending_start : a;
                rc = words_push(out, w->s + from, b - from, w->first && from == 0);
                pending_start = SIZE_MAX;
            }
            break;
        case SPLIT_CONTIGUOUS:
            if (sp[i].match && i > 0 && sp[i - 1].match && out->n > 0)
                rc = words_extend_last(out, w->s + a, b - a);
            else
                rc = words_push(out, w->s + a, b - a, first);
            break;
        default:                              /* ISOLATED */
            rc = words_push(out, w->s + a, b - a, first);
        }
    }
    if (rc == 0 && pending_start != SIZE_MAX)
        rc = words_push(out, w->s + pending_start, w->len - pending_start, w->first && pending_start == 0);
    free(sp);
    return rc;
}

static int metaspace_word(const pre_step *p, const word *w, wordlist *out)
{
    vc_buf b = { 0 };
    size_t rlen = strlen(p->replacement);
    bool starts = w->len >= 1 && (w->s[0] == ' ' || (w->len >= rlen && memcmp(w->s, p->replacement, rlen) == 0));
    if (!starts && (p->prepend_scheme == PREPEND_ALWAYS || (p->prepend_scheme == PREPEND_FIRST && w->first)))
        vc_buf_puts(&b, p->replacement);
    replace_all(&b, w->s, w->len, " ", p->replacement);
    size_t len;
    char *s = vc_buf_take(&b, &len);
    if (!s)
        return -1;
    int rc = 0;
    if (!p->split) {
        rc = words_push(out, s, len, w->first);
    } else {                                  /* split before each replacement char */
        size_t start = 0;
        for (size_t i = rlen; i + rlen <= len; i++)
            if (memcmp(s + i, p->replacement, rlen) == 0 && rc == 0) {
                rc = words_push(out, s + start, i - start, w->first && start == 0);
                start = i;
            }
        if (rc == 0 && start < len)
            rc = words_push(out, s + start, len - start, w->first && start == 0);
    }
    free(s);
    return rc;
}

static int byte_level_word(const pre_step *p, const word *w, wordlist *out)
{
    wordlist parts = { 0 };
    word src = *w;
    char *prefixed = NULL;
    int rc = 0;
    if (p->add_prefix_space && (w->len == 0 || w->s[0] != ' ')) {
        prefixed = vc_malloc(w->len + 2);
        if (!prefixed)
            return -1;
        prefixed[0] = ' ';
        memcpy(prefixed + 1, w->s, w->len + 1);
        src.s = prefixed;
        src.len = w->len + 1;
    }
    if (p->use_regex)
        rc = split_word(&src, p->re, SPLIT_ISOLATED, false, &parts);
    else
        rc = words_push(&parts, src.s, src.len, src.first);
    for (size_t i = 0; rc == 0 && i < parts.n; i++) {
        vc_buf b = { 0 };
        byte_level_encode(&b, parts.w[i].s, parts.w[i].len);
        size_t len;
        char *s = vc_buf_take(&b, &len);
        rc = s ? words_push(out, s, len, parts.w[i].first) : -1;
        free(s);
    }
    words_free(&parts);
    free(prefixed);
    return rc;
}

static int pre_tokenize(const vc_tokenizer *t, const char *s, size_t len, bool first, wordlist *out)
{
    wordlist cur = { 0 };
    if (words_push(&cur, s, len, first) != 0)
        return -1;
    for (int i = 0; i < t->n_pres; i++) {
        const pre_step *p = &t->pres[i];
        wordlist next = { 0 };
        int rc = 0;
        for (size_t j = 0; rc == 0 && j < cur.n; j++) {
            if (p->kind == PRE_METASPACE)
                rc = metaspace_word(p, &cur.w[j], &next);
            else if (p->kind == PRE_BYTELEVEL)
                rc = byte_level_word(p, &cur.w[j], &next);
            else
                rc = split_word(&cur.w[j], p->re, p->behavior, p->invert, &next);
        }
        words_free(&cur);
        if (rc != 0) {
            words_free(&next);
            return -1;
        }
        cur = next;
    }
    *out = cur;
    return 0;
}

/* ---- BPE ------------------------------------------------------------------ */

typedef struct {
    double rank;
    int32_t left, right, result;
    uint32_t len;           /* combined byte length when queued: detects stale entries */
} candidate;

typedef struct {
    candidate *v;
    size_t n, cap;
} heap;

static bool cand_before(const candidate *a, const candidate *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static int heap_push(heap *h, candidate c)
{
    if (vc_reserve((void **)&h->v, &h->cap, h->n + 1, sizeof *h->v) != 0)
        return -1;
    size_t i = h->n++;
    h->v[i] = c;
    while (i > 0 && cand_before(&h->v[i], &h->v[(i - 1) / 2])) {
        candidate tmp = h->v[i];
        h->v[i] = h->v[(i - 1) / 2];
        h->v[(i - 1) / 2] = tmp;
        i = (i - 1) / 2;
    }
    return 0;
}

static candidate heap_pop(heap *h)
{
    candidate top = h->v[0];
    h->v[0] = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && cand_before(&h->v[l], &h->v[m]))
            m = l;
        if (r < h->n && cand_before(&h->v[r], &h->v[m]))
            m = r;
        if (m == i)
            break;
        candidate tmp = h->v[i];
        h->v[i] = h->v[m];
        h->v[m] = tmp;
        i = m;
    }
    return top;
}

typedef struct {
    uint32_t start, len;
    int32_t id, prev, next;
} symbol;

/* Looks up whether symbols a and b merge: by merge rank (tokenizer.json) or by
 * the score of the joined piece (SentencePiece vocabularies in GGUF). */
static bool find_merge(const vc_tokenizer *t, const char *w, const symbol *a, const symbol *b, candidate *c)
{
    if (t->scores) {
        int32_t id;
        if (!vc_strmap_get(&t->vocab, w + a->start, a->len + b->len, &id))
            return false;
        c->rank = -(double)t->scores[id];
        c->result = id;
        return true;
    }
    uint64_t v;
    if (a->id < 0 || b->id < 0 || !vc_u64map_get(&t->merges, (uint64_t)(uint32_t)a->id << 32 | (uint32_t)b->id, &v))
        return false;
    c->rank = (double)(v >> 32);
    c->result = (int32_t)(uint32_t)v;
    return true;
}

static int queue_pair(const vc_tokenizer *t, const char *w, symbol *sym, int32_t left, heap *h)
{
    if (left < 0 || sym[left].next < 0)
        return 0;
    candidate c;
    int32_t right = sym[left].next;
    if (!find_merge(t, w, &sym[left], &sym[right], &c))
        return 0;
    c.left = left;
    c.right = right;
    c.len = sym[left].len + sym[right].len;
    return heap_push(h, c);
}

static int emit_symbol(const vc_tokenizer *t, const char *w, const symbol *s, idvec *out, bool *last_unk)
{
    if (s->id >= 0) {
        *last_unk = false;
        return ids_push(out, s->id);
    }
    if (t->byte_fallback) {
        bool all = true;
        for (uint32_t i = 0; i < s->len; i++)
            all = all && t->byte_ids[(uint8_t)w[s->start + i]] >= 0;
        if (all) {
            for (uint32_t i = 0; i < s->len; i++)
                if (ids_push(out, t->byte_ids[(uint8_t)w[s->start + i]]) != 0)
                    return -1;
            *last_unk = false;
            return 0;
        }
    }
    if (t->unk_id < 0)
        return vc_fail_code(VC_EXIT_INPUT, "text contains a character the tokenizer cannot represent");
    if (t->fuse_unk && *last_unk)
        return 0;
    *last_unk = true;
    return ids_push(out, t->unk_id);
}

static int bpe_word(const vc_tokenizer *t, const char *w, size_t len, idvec *out)
{
    int32_t whole;
    if (len == 0)
        return 0;
    if (t->ignore_merges && vc_strmap_get(&t->vocab, w, len, &whole))
        return ids_push(out, whole);
    symbol *sym = vc_malloc(len * sizeof *sym);
    heap h = { 0 };
    if (!sym)
        return -1;
    int32_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t cl = VC_MAX(vc_utf8_seq_len(w + i, len - i), 1);
        int32_t id;
        sym[n] = (symbol){ (uint32_t)i, (uint32_t)cl, vc_strmap_get(&t->vocab, w + i, cl, &id) ? id : -1, n - 1,
                           -1 };
        if (n > 0)
            sym[n - 1].next = n;
        n++;
        i += cl;
    }
    int rc = 0;
    for (int32_t i = 0; rc == 0 && i < n; i++)
        rc = queue_pair(t, w, sym, i, &h);
    while (rc == 0 && h.n > 0) {
        candidate c = heap_pop(&h);
        symbol *l = &sym[c.left];
        if (l->len == 0 || l->next != c.right || l->len + sym[c.right].len != c.len)
            continue;                         /* stale: one side already merged */
        symbol *r = &sym[c.right];
        l->len += r->len;
        l->id = c.result;
        l->next = r->next;
        if (r->next >= 0)
            sym[r->next].prev = c.left;
        r->len = 0;
        rc = queue_pair(t, w, sym, l->prev, &h);
        if (rc == 0)
            rc = queue_pair(t, w, sym, c.left, &h);
    }
    bool last_unk = false;
    for (int32_t i = 0; rc == 0 && i >= 0 && n > 0; i = sym[i].next)
        rc = emit_symbol(t, w, &sym[i], out, &last_unk);
    free(h.v);
    free(sym);
    return rc;
}

static int encode_plain(const vc_tokenizer *t, const char *s, size_t len, bool at_start, idvec *out)
{
    if (len == 0)
        return 0;
    size_t nlen;
    char *norm = normalize(t, s, len, &nlen);
    if (!norm)
        return -1;
    wordlist words = { 0 };
    int rc = pre_tokenize(t, norm, nlen, at_start, &words);
    free(norm);
    for (size_t i = 0; rc == 0 && i < words.n; i++)
        rc = bpe_word(t, words.w[i].s, words.w[i].len, out);
    words_free(&words);
    return rc;
}

/* ---- added tokens --------------------------------------------------------- */

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

static const added_token *match_added(const vc_tokenizer *t, const char *s, size_t len, size_t pos)
{
    for (int i = 0; i < t->n_added; i++) {
        const added_token *a = &t->added[i];
        if (a->len <= len - pos && s[pos] == a->content[0] && memcmp(s + pos, a->content, a->len) == 0)
            return a;
    }
    return NULL;
}

int vc_tokenizer_encode(const vc_tokenizer *t, const char *text, size_t len, bool add_special, int32_t **ids,
                        size_t *n_ids)
{
    size_t bad;
    if (!vc_utf8_valid(text, len, &bad))
        return vc_fail_code(VC_EXIT_INPUT, "input is not valid UTF-8 (bad byte at offset %zu)", bad);
    idvec out = { 0 };
    int rc = 0;
    if (add_special)
        for (int i = 0; rc == 0 && i < t->n_post_prefix; i++)
            rc = ids_push(&out, t->post_prefix[i]);
    size_t seg = 0, pos = 0;
    while (rc == 0 && pos < len) {
        const added_token *a = match_added(t, text, len, pos);
        if (!a) {
            pos++;
            continue;
        }
        size_t seg_end = pos, next = pos + a->len;
        if (a->lstrip)
            while (seg_end > seg && is_space(text[seg_end - 1]))
                seg_end--;
        if (a->rstrip)
            while (next < len && is_space(text[next]))
                next++;
        rc = encode_plain(t, text + seg, seg_end - seg, seg == 0, &out);
        if (rc == 0)
            rc = ids_push(&out, a->id);
        seg = pos = next;
    }
    if (rc == 0)
        rc = encode_plain(t, text + seg, len - seg, seg == 0, &out);
    if (add_special)
        for (int i = 0; rc == 0 && i < t->n_post_suffix; i++)
            rc = ids_push(&out, t->post_suffix[i]);
    if (rc != 0) {
        free(out.v);
        return -1;
    }
    if (!out.v && !(out.v = vc_malloc(sizeof(int32_t))))
        return -1;
    *ids = out.v;
    *n_ids = out.n;
    return 0;
}

/* ---- decoding ------------------------------------------------------------- */

typedef struct {
    vc_buf *items;
    size_t n;
} toklist;

static int byte_token_value(const char *s, size_t len)
{
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Appends bytes as text: valid UTF-8 as is, otherwise one U+FFFD per byte. */
static void bytes_as_text(vc_buf *out, const char *bytes, size_t n)
{
    if (vc_utf8_valid(bytes, n, NULL)) {
        vc_buf_append(out, bytes, n);
        return;
    }
    for (size_t i = 0; i < n; i++)
        vc_buf_puts(out, "\xEF\xBF\xBD");
}

/* Like Rust's from_utf8_lossy: each maximal invalid prefix becomes one U+FFFD. */
static void lossy_utf8(vc_buf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t l = vc_utf8_seq_len(s + i, n - i);
        if (l) {
            vc_buf_append(out, s + i, l);
            i += l;
            continue;
        }
        /* skip the longest prefix of a would-be sequence, at least one byte */
        size_t skip = 1;
        uint8_t c = (uint8_t)s[i];
        size_t want = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 1;
        while (skip < want && i + skip < n && ((uint8_t)s[i + skip] & 0xc0) == 0x80)
            skip++;
        vc_buf_puts(out, "\xEF\xBF\xBD");
        i += skip;
    }
}

static void decode_step(const dec_step *d, toklist *l)
{
    if (d->kind == DEC_FUSE || d->kind == DEC_BYTELEVEL) {
        vc_buf all = { 0 };
        for (size_t i = 0; i < l->n; i++) {
            if (d->kind == DEC_FUSE) {
                vc_buf_append(&all, l->items[i].data, l->items[i].len);
                continue;
            }
            vc_buf raw = { 0 };
            const char *s = l->items[i].data;
            size_t n = l->items[i].len;
            init_byte_level();
            for (size_t j = 0; j < n;) {
                uint32_t cp;
                size_t cl = vc_utf8_decode(s + j, n - j, &cp);
                if (!cl)
                    cl = 1, cp = 0xfffd;
                if (cp < 512 && cp_to_byte[cp] >= 0)
                    vc_buf_putc(&raw, (char)cp_to_byte[cp]);
                else
                    vc_buf_append(&raw, s + j, cl);
                j += cl;
            }
            vc_buf_append(&all, raw.data, raw.len);
            vc_buf_free(&raw);
        }
        if (d->kind == DEC_BYTELEVEL) {
            vc_buf fixed = { 0 };
            lossy_utf8(&fixed, all.data ? all.data : "", all.len);
            vc_buf_free(&all);
            all = fixed;
        }
        for (size_t i = 0; i < l->n; i++)
            vc_buf_free(&l->items[i]);
        l->items[0] = all;
        l->n = l->n ? 1 : 0;
        return;
    }
    if (d->kind == DEC_BYTEFALLBACK) {
        /* a run of <0xXX> tokens becomes one token of text */
        size_t w = 0;
        vc_buf bytes = { 0 };
        for (size_t i = 0; i <= l->n; i++) {
            int v = i < l->n ? byte_token_value(l->items[i].data, l->items[i].len) : -1;
            if (v >= 0) {
                vc_buf_putc(&bytes, (char)v);
                vc_buf_free(&l->items[i]);
                continue;
            }
            if (bytes.len) {
                vc_buf out = { 0 };
                bytes_as_text(&out, bytes.data, bytes.len);
                vc_buf_free(&bytes);
                l->items[w++] = out;
            }
            if (i < l->n)
                l->items[w++] = l->items[i];
        }
        l->n = w;
        return;
    }
    for (size_t i = 0; i < l->n; i++) {
        vc_buf *tok = &l->items[i];
        vc_buf out = { 0 };
        const char *s = tok->data ? tok->data : "";
        size_t n = tok->len;
        if (d->kind == DEC_REPLACE) {
            replace_all(&out, s, n, d->a, d->b);
        } else if (d->kind == DEC_METASPACE) {
            replace_all(&out, s, n, d->replacement, " ");
            if (i == 0 && d->prepend_scheme != PREPEND_NEVER && out.len && out.data[0] == ' ') {
                memmove(out.data, out.data + 1, out.len);
                out.len--;
            }
        } else {                                /* STRIP */
            size_t cl = strlen(d->a), a = 0, b = n;
            for (int k = 0; k < d->start && b - a >= cl && cl && memcmp(s + a, d->a, cl) == 0; k++)
                a += cl;
            for (int k = 0; k < d->stop && b - a >= cl && cl && memcmp(s + b - cl, d->a, cl) == 0; k++)
                b -= cl;
            vc_buf_append(&out, s + a, b - a);
        }
        vc_buf_free(tok);
        *tok = out;
    }
}

int vc_tokenizer_decode(const vc_tokenizer *t, const int32_t *ids, size_t n, bool skip_special, char **text,
                        size_t *len)
{
    toklist l = { vc_calloc(n ? n : 1, sizeof(vc_buf)), 0 };
    if (!l.items)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_ids) {
            for (size_t j = 0; j < l.n; j++)
                vc_buf_free(&l.items[j]);
            free(l.items);
            return vc_fail("token id %d is outside the vocabulary (%d ids)", ids[i], t->n_ids);
        }
        if (skip_special && t->special[ids[i]])
            continue;
        vc_buf_append(&l.items[l.n++], t->pieces[ids[i]], t->piece_lens[ids[i]]);
    }
    for (int i = 0; i < t->n_decs; i++)
        decode_step(&t->decs[i], &l);
    vc_buf out = { 0 };
    for (size_t i = 0; i < l.n; i++) {
        if (i && t->join_with_space)
            vc_buf_putc(&out, ' ');
        vc_buf_append(&out, l.items[i].data, l.items[i].len);
        vc_buf_free(&l.items[i]);
    }
    free(l.items);
    *text = vc_buf_take(&out, len);
    return *text ? 0 : -1;
}
