/* tokenizer_json.c - builds a tokenizer from HF tokenizer.json (jansson).
 *
 * Every component type that is not reproduced exactly is refused with its
 * name, so an unsupported tokenizer fails at load instead of mis-tokenizing.
 */
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/json.h"
#include "text/tokenizer_impl.h"

static int unsupported(const char *what, const char *type)
{
    return vc_fail_code(VC_EXIT_MODEL, "tokenizer %s '%s' is not supported", what, type ? type : "(untyped)");
}

/* A tokenizers Pattern: {"String": literal} or {"Regex": pattern}. */
static pcre2_code *compile_pattern(json_t *pattern, char **literal)
{
    const char *s;
    if ((s = vc_json_str(pattern, "Regex")))
        return tok_compile_regex(s, strlen(s));
    if ((s = vc_json_str(pattern, "String"))) {
        if (literal)
            *literal = vc_strdup(s);
        int err;
        PCRE2_SIZE off;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)s, strlen(s), PCRE2_UTF | PCRE2_LITERAL, &err, &off, NULL);
        if (!re)
            vc_fail_code(VC_EXIT_MODEL, "tokenizer pattern '%s' does not compile", s);
        return re;
    }
    vc_fail_code(VC_EXIT_MODEL, "tokenizer pattern is neither String nor Regex");
    return NULL;
}

static int prepend_scheme(json_t *o)
{
    const char *s = vc_json_str(o, "prepend_scheme");
    if (s)
        return strcmp(s, "first") == 0 ? PREPEND_FIRST : strcmp(s, "never") == 0 ? PREPEND_NEVER : PREPEND_ALWAYS;
    return vc_json_flag(o, "add_prefix_space", true) ? PREPEND_ALWAYS : PREPEND_NEVER;
}

/* ---- normalizers ---- */

static int parse_normalizer(vc_tokenizer *t, json_t *o)
{
    if (json_is_null(o) || !o)
        return 0;
    const char *type = vc_json_str(o, "type");
    if (type && strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(o, "normalizers"), *item;
        size_t i;
        json_array_foreach(list, i, item)
            if (parse_normalizer(t, item) != 0)
                return -1;
        return 0;
    }
    if (type && strcmp(type, "Prepend") == 0) {
        const char *p = vc_json_str(o, "prepend");
        if (!p)
            return unsupported("normalizer", "Prepend without text");
        norm_step s = { NORM_PREPEND, vc_strdup(p), NULL, NULL };
        return s.a ? tok_add_norm(t, s) : -1;
    }
    if (type && strcmp(type, "Replace") == 0) {
        const char *content = vc_json_str(o, "content");
        norm_step s = { NORM_REPLACE, NULL, NULL, NULL };
        json_t *pat = json_object_get(o, "pattern");
        if (!content || !pat)
            return unsupported("normalizer", "Replace without pattern");
        if (vc_json_str(pat, "String")) {
            s.a = vc_strdup(vc_json_str(pat, "String"));
        } else if (!(s.re = compile_pattern(pat, NULL))) {
            return -1;
        }
        s.b = vc_strdup(content);
        return tok_add_norm(t, s);
    }
    return unsupported("normalizer", type);
}

/* ---- pre-tokenizers ---- */

static int split_behavior(const char *s)
{
    static const char *names[] = { "Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous" };
    for (int i = 0; i < 5; i++)
        if (s && strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

static int parse_pre(vc_tokenizer *t, json_t *o)
{
    if (!o || json_is_null(o))
        return 0;
    const char *type = vc_json_str(o, "type");
    pre_step s = { 0 };
    if (type && strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(o, "pretokenizers"), *item;
        size_t i;
        json_array_foreach(list, i, item)
            if (parse_pre(t, item) != 0)
                return -1;
        return 0;
    }
    if (type && strcmp(type, "Metaspace") == 0) {
        s.kind = PRE_METASPACE;
        s.replacement = vc_strdup(vc_json_str(o, "replacement") ? vc_json_str(o, "replacement") : "\xE2\x96\x81");
        s.prepend_scheme = prepend_scheme(o);
        s.split = vc_json_flag(o, "split", true);
        return s.replacement ? tok_add_pre(t, s) : -1;
    }
    if (type && strcmp(type, "ByteLevel") == 0) {
        s.kind = PRE_BYTELEVEL;
        s.add_prefix_space = vc_json_flag(o, "add_prefix_space", true);
        s.use_regex = vc_json_flag(o, "use_regex", true);
        if (s.use_regex && !(s.re = tok_compile_regex(TOK_GPT2_PATTERN, strlen(TOK_GPT2_PATTERN))))
            return -1;
        return tok_add_pre(t, s);
    }
    if (type && strcmp(type, "Split") == 0) {
        s.kind = PRE_SPLIT;
        s.behavior = split_behavior(vc_json_str(o, "behavior"));
        s.invert = vc_json_flag(o, "invert", false);
        if (s.behavior < 0)
            return unsupported("Split behavior", vc_json_str(o, "behavior"));
        if (!(s.re = compile_pattern(json_object_get(o, "pattern"), NULL)))
            return -1;
        const char *regex = vc_json_str(json_object_get(o, "pattern"), "Regex");
        if (regex && strcmp(regex, TOK_LLAMA3_PATTERN) == 0)
            t->ggml_pre = "llama-bpe";
        return tok_add_pre(t, s);
    }
    if (type && strcmp(type, "Digits") == 0) {
        bool single = vc_json_flag(o, "individual_digits", false);
        const char *pat = single ? "\\p{N}" : "\\p{N}+";
        if (single)
            t->ggml_pre = "smollm";
        s.kind = PRE_SPLIT;
        s.behavior = SPLIT_ISOLATED;
        if (!(s.re = tok_compile_regex(pat, strlen(pat))))
            return -1;
        return tok_add_pre(t, s);
    }
    if (type && strcmp(type, "Whitespace") == 0) {
        const char *pat = "\\w+|[^\\w\\s]+";
        s.kind = PRE_SPLIT;
        s.behavior = SPLIT_REMOVED;
        s.invert = true;
        if (!(s.re = tok_compile_regex(pat, strlen(pat))))
            return -1;
        return tok_add_pre(t, s);
    }
    return unsupported("pre-tokenizer", type);
}

/* ---- decoders ---- */

static int parse_decoder(vc_tokenizer *t, json_t *o)
{
    const char *type = vc_json_str(o, "type");
    dec_step s = { 0 };
    if (type && strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(o, "decoders"), *item;
        size_t i;
        json_array_foreach(list, i, item)
            if (parse_decoder(t, item) != 0)
                return -1;
        return 0;
    }
    if (type && strcmp(type, "Replace") == 0) {
        const char *from = vc_json_str(json_object_get(o, "pattern"), "String"), *to = vc_json_str(o, "content");
        if (!from || !to)
            return unsupported("decoder", "Replace with a regex pattern");
        s.kind = DEC_REPLACE;
        s.a = vc_strdup(from);
        s.b = vc_strdup(to);
        return tok_add_dec(t, s);
    }
    if (type && strcmp(type, "ByteFallback") == 0)
        return tok_add_dec(t, (dec_step){ .kind = DEC_BYTEFALLBACK });
    if (type && strcmp(type, "Fuse") == 0)
        return tok_add_dec(t, (dec_step){ .kind = DEC_FUSE });
    if (type && strcmp(type, "ByteLevel") == 0)
        return tok_add_dec(t, (dec_step){ .kind = DEC_BYTELEVEL });
    if (type && strcmp(type, "Strip") == 0) {
        s.kind = DEC_STRIP;
        if (vc_json_get_int(o, "start", 0, INT_MAX, 0, &s.start) != 0 ||
            vc_json_get_int(o, "stop", 0, INT_MAX, 0, &s.stop) != 0)
            return vc_fail_ctx("tokenizer Strip decoder");
        s.a = vc_strdup(vc_json_str(o, "content") ? vc_json_str(o, "content") : " ");
        return tok_add_dec(t, s);
    }
    if (type && strcmp(type, "Metaspace") == 0) {
        s.kind = DEC_METASPACE;
        s.replacement = vc_strdup(vc_json_str(o, "replacement") ? vc_json_str(o, "replacement") : "\xE2\x96\x81");
        s.prepend_scheme = prepend_scheme(o);
        return tok_add_dec(t, s);
    }
    return unsupported("decoder", type);
}

/* ---- post-processor ---- */

static int special_ids(json_t *specials, const char *name, int32_t **ids, int *n)
{
    json_t *entry = json_object_get(specials, name), *list = json_object_get(entry, "ids");
    if (!json_is_array(list))
        return vc_fail_code(VC_EXIT_MODEL, "tokenizer post-processor names unknown special token '%s'", name);
    size_t count = json_array_size(list), got;
    int *read = vc_malloc((count ? count : 1) * sizeof *read);
    int32_t *grown = read ? vc_realloc(*ids, ((size_t)*n + count + 1) * sizeof **ids) : NULL;
    if (!grown) {
        free(read);
        return -1;
    }
    *ids = grown;
    int rc = vc_json_int_list(list, name, 0, INT32_MAX, read, count, &got);
    for (size_t i = 0; rc == 0 && i < got; i++)
        (*ids)[(*n)++] = read[i];
    free(read);
    return rc != 0 ? vc_fail_ctx("tokenizer post-processor special token ids") : 0;
}

static int parse_post(vc_tokenizer *t, json_t *o)
{
    if (!o || json_is_null(o))
        return 0;
    const char *type = vc_json_str(o, "type");
    if (type && strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(o, "processors"), *item;
        size_t i;
        json_array_foreach(list, i, item)
            if (parse_post(t, item) != 0)
                return -1;
        return 0;
    }
    if (type && strcmp(type, "ByteLevel") == 0)
        return 0;                             /* only adjusts offsets */
    if (type && strcmp(type, "TemplateProcessing") == 0) {
        json_t *single = json_object_get(o, "single"), *specials = json_object_get(o, "special_tokens"), *item;
        bool after = false;
        size_t i;
        json_array_foreach(single, i, item)
        {
            json_t *sp = json_object_get(item, "SpecialToken");
            if (json_object_get(item, "Sequence")) {
                after = true;
            } else if (sp) {
                const char *id = vc_json_str(sp, "id");
                if (!id || special_ids(specials, id, after ? &t->post_suffix : &t->post_prefix,
                                       after ? &t->n_post_suffix : &t->n_post_prefix) != 0)
                    return -1;
            }
        }
        return 0;
    }
    if (type && (strcmp(type, "BertProcessing") == 0 || strcmp(type, "RobertaProcessing") == 0)) {
        /* cls and sep are [token, id] */
        int64_t cls, sep;
        if (vc_json_check_int(json_array_get(json_object_get(o, "cls"), 1), 0, INT32_MAX, false, &cls) != VC_JSON_OK ||
            vc_json_check_int(json_array_get(json_object_get(o, "sep"), 1), 0, INT32_MAX, false, &sep) != VC_JSON_OK)
            return vc_fail_code(VC_EXIT_MODEL, "tokenizer post-processor: cls and sep must be [token, id]");
        int32_t *pre = vc_malloc(sizeof *pre), *suf = vc_malloc(sizeof *suf);
        if (!pre || !suf) {
            free(pre);
            free(suf);
            return -1;
        }
        pre[0] = (int32_t)cls;
        suf[0] = (int32_t)sep;
        free(t->post_prefix);
        free(t->post_suffix);
        t->post_prefix = pre;
        t->post_suffix = suf;
        t->n_post_prefix = t->n_post_suffix = 1;
        return 0;
    }
    return unsupported("post-processor", type);
}

/* ---- model ---- */

static int32_t max_id(json_t *vocab, json_t *added)
{
    int64_t m = -1;
    const char *k;
    json_t *v;
    size_t i;
    int64_t id;
    /* entries that are not ids are refused when the vocabulary is read */
    json_object_foreach(vocab, k, v)
        if (vc_json_check_int(v, 0, INT32_MAX, false, &id) == VC_JSON_OK && id > m)
            m = id;
    json_array_foreach(added, i, v)
        if (vc_json_check_int(json_object_get(v, "id"), 0, INT32_MAX, false, &id) == VC_JSON_OK && id > m)
            m = id;
    return m > 0x7ffffff ? -1 : (int32_t)m;
}

/* A merge is ["a", "b"] (new format) or "a b" (old format). */
static int merge_parts(json_t *m, const char **a, size_t *alen, const char **b, size_t *blen)
{
    if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
        json_is_string(json_array_get(m, 1))) {
        *a = json_string_value(json_array_get(m, 0));
        *alen = json_string_length(json_array_get(m, 0));
        *b = json_string_value(json_array_get(m, 1));
        *blen = json_string_length(json_array_get(m, 1));
        return 0;
    }
    if (json_is_string(m)) {
        const char *s = json_string_value(m), *sp = strchr(s, ' ');
        if (sp && sp != s && sp[1] && !strchr(sp + 1, ' ')) {
            *a = s;
            *alen = (size_t)(sp - s);
            *b = sp + 1;
            *blen = strlen(sp + 1);
            return 0;
        }
    }
    return vc_fail_code(VC_EXIT_MODEL, "tokenizer merge entry is malformed");
}

static int load_merges(vc_tokenizer *t, json_t *merges)
{
    json_t *m;
    size_t i;
    json_array_foreach(merges, i, m)
    {
        const char *a = NULL, *b = NULL;
        size_t alen = 0, blen = 0;
        int32_t ia, ib, ir;
        if (merge_parts(m, &a, &alen, &b, &blen) != 0)
            return -1;
        char *joined = vc_malloc(alen + blen + 1);
        if (!joined)
            return -1;
        memcpy(joined, a, alen);
        memcpy(joined + alen, b, blen);
        bool ok = vc_strmap_get(&t->vocab, a, alen, &ia) && vc_strmap_get(&t->vocab, b, blen, &ib) &&
                  vc_strmap_get(&t->vocab, joined, alen + blen, &ir);
        free(joined);
        if (!ok)
            return vc_fail_code(VC_EXIT_MODEL, "tokenizer merge %zu uses a piece missing from the vocabulary", i);
        uint64_t key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib, old;
        if (!vc_u64map_get(&t->merges, key, &old) &&
            vc_u64map_put(&t->merges, key, (uint64_t)i << 32 | (uint32_t)ir) != 0)
            return -1;
    }
    return 0;
}

static int load_model(vc_tokenizer *t, json_t *model)
{
    json_t *vocab = json_object_get(model, "vocab");
    const char *piece;
    json_t *v;
    json_object_foreach(vocab, piece, v)
    {
        int64_t id;
        size_t len = strlen(piece);
        if (vc_json_check_int(v, 0, t->n_ids - 1, false, &id) != VC_JSON_OK)
            return vc_fail_code(VC_EXIT_MODEL, "tokenizer vocabulary entry has a bad id");
        if (tok_set_piece(t, (int32_t)id, piece, len) != 0 || vc_strmap_put(&t->vocab, piece, len, (int32_t)id))
            return -1;
    }
    const char *prefix = vc_json_str(model, "continuing_subword_prefix");
    const char *suffix = vc_json_str(model, "end_of_word_suffix");
    if ((prefix && *prefix) || (suffix && *suffix))
        return unsupported("BPE option", prefix && *prefix ? "continuing_subword_prefix" : "end_of_word_suffix");
    double dropout;
    if (vc_json_get_num(model, "dropout", 0, 1, 0, &dropout) != 0)
        return vc_fail_ctx("tokenizer model");
    if (dropout > 0)
        return unsupported("BPE option", "dropout");
    t->byte_fallback = vc_json_flag(model, "byte_fallback", false);
    t->fuse_unk = vc_json_flag(model, "fuse_unk", false);
    t->ignore_merges = vc_json_flag(model, "ignore_merges", false);
    const char *unk = vc_json_str(model, "unk_token");
    int32_t id;
    if (unk && vc_strmap_get(&t->vocab, unk, strlen(unk), &id))
        t->unk_id = id;
    return load_merges(t, json_object_get(model, "merges"));
}

static int load_added(vc_tokenizer *t, json_t *added)
{
    json_t *a;
    size_t i;
    json_array_foreach(added, i, a)
    {
        const char *content = vc_json_str(a, "content");
        int64_t id;
        if (!content || vc_json_check_int(json_object_get(a, "id"), 0, INT32_MAX, false, &id) != VC_JSON_OK)
            return vc_fail_code(VC_EXIT_MODEL, "tokenizer added_tokens entry %zu is malformed", i);
        if (tok_add_token(t, (int32_t)id, content, strlen(content), vc_json_flag(a, "special", false),
                          vc_json_flag(a, "lstrip", false), vc_json_flag(a, "rstrip", false)) != 0)
            return -1;
    }
    return 0;
}

static int build(vc_tokenizer **out, json_t *root)
{
    json_t *model = json_object_get(root, "model"), *added = json_object_get(root, "added_tokens");
    const char *type = vc_json_str(model, "type");
    if (!json_is_object(model) || !json_is_object(json_object_get(model, "vocab")))
        return vc_fail_code(VC_EXIT_MODEL, "no model.vocab object");
    if ((type && strcmp(type, "BPE") != 0) || (!type && !json_object_get(model, "merges")))
        return unsupported("model", type);
    int32_t m = max_id(json_object_get(model, "vocab"), added);
    if (m < 0)
        return vc_fail_code(VC_EXIT_MODEL, "vocabulary is empty or its ids are out of range");
    vc_tokenizer *t = tok_new(m + 1);
    if (!t)
        return -1;
    json_t *decoder = json_object_get(root, "decoder");
    int rc = load_model(t, model);
    if (rc == 0)
        rc = load_added(t, added);
    if (rc == 0)
        rc = parse_normalizer(t, json_object_get(root, "normalizer"));
    if (rc == 0)
        rc = parse_pre(t, json_object_get(root, "pre_tokenizer"));
    if (rc == 0 && (!decoder || json_is_null(decoder)))
        t->join_with_space = true;
    else if (rc == 0)
        rc = parse_decoder(t, decoder);
    if (rc == 0)
        rc = parse_post(t, json_object_get(root, "post_processor"));
    if (rc == 0)
        rc = tok_finish(t);
    if (rc != 0) {
        vc_tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int vc_tokenizer_load_json_text(const char *json, size_t len, const char *origin, vc_tokenizer **out)
{
    json_error_t err;
    json_t *root = json_loadb(json, len, 0, &err);
    if (!root)
        return vc_fail_code(VC_EXIT_MODEL, "%s: invalid JSON at line %d: %s", origin, err.line, err.text);
    int rc = build(out, root);
    json_decref(root);
    if (rc != 0)
        return vc_fail_ctx("%s", origin);
    (*out)->json_text = vc_strndup(json, len);
    return (*out)->json_text ? 0 : -1;
}

int vc_tokenizer_load_json(const char *path, vc_tokenizer **out)
{
    size_t len;
    char *text = vc_read_file(path, &len);
    if (!text)
        return vc_fail_code(VC_EXIT_MODEL, "%s", vc_error());
    int rc = vc_tokenizer_load_json_text(text, len, path, out);
    free(text);
    return rc;
}
