/* test_tokenizer.c - vlmchat's tokenizers against HF `tokenizers` output.
 *
 * tests/fixtures/tokenizer_vectors.json holds, for five tokenizers of the two
 * families, the ids `tokenizers` produced for a varied text set (unicode,
 * emoji, whitespace runs, digits, special tokens inside text) with and without
 * special tokens, and the decoded strings.  Every one must match exactly.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "harness.h"
#include "text/tokenizer.h"

static bool same_ids(const int32_t *ids, size_t n, json_t *want)
{
    if (json_array_size(want) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (json_integer_value(json_array_get(want, i)) != ids[i])
            return false;
    return true;
}

static void print_ids(const char *label, const int32_t *ids, size_t n, json_t *want)
{
    fprintf(stderr, "  %s got:  ", label);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "%d ", ids[i]);
    fprintf(stderr, "\n  %s want: ", label);
    for (size_t i = 0; i < json_array_size(want); i++)
        fprintf(stderr, "%lld ", (long long)json_integer_value(json_array_get(want, i)));
    fputc('\n', stderr);
}

static void check_case(const char *name, vc_tokenizer *tok, json_t *c)
{
    const char *text = json_string_value(json_object_get(c, "text"));
    size_t len = json_string_length(json_object_get(c, "text"));
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = vc_tokenizer_encode(tok, text, len, false, &ids, &n);
    CHECK(rc == 0, "%s: encode failed: %s", name, vc_error());
    if (rc != 0)
        return;
    json_t *want = json_object_get(c, "ids");
    bool ok = same_ids(ids, n, want);
    CHECK(ok, "%s: ids differ for \"%s\"", name, text);
    if (!ok)
        print_ids("plain", ids, n, want);

    char *out;
    size_t out_len;
    const char *want_text = json_string_value(json_object_get(c, "decoded"));
    const char *want_skip = json_string_value(json_object_get(c, "decoded_skip_special"));
    /* decode the reference ids, so a decode bug is not hidden by an encode bug */
    size_t nw = json_array_size(want);
    int32_t *wids = malloc((nw ? nw : 1) * sizeof *wids);
    for (size_t i = 0; i < nw; i++)
        wids[i] = (int32_t)json_integer_value(json_array_get(want, i));
    rc = vc_tokenizer_decode(tok, wids, nw, false, &out, &out_len);
    CHECK(rc == 0 && strcmp(out, want_text) == 0, "%s: decode of \"%s\" gave \"%s\", want \"%s\"", name, text,
          rc == 0 ? out : "(error)", want_text);
    if (rc == 0)
        free(out);
    rc = vc_tokenizer_decode(tok, wids, nw, true, &out, &out_len);
    CHECK(rc == 0 && strcmp(out, want_skip) == 0, "%s: decode(skip special) of \"%s\" gave \"%s\", want \"%s\"",
          name, text, rc == 0 ? out : "(error)", want_skip);
    if (rc == 0)
        free(out);
    free(wids);
    free(ids);

    rc = vc_tokenizer_encode(tok, text, len, true, &ids, &n);
    want = json_object_get(c, "ids_with_special");
    ok = rc == 0 && same_ids(ids, n, want);
    CHECK(ok, "%s: ids with special tokens differ for \"%s\"", name, text);
    if (!ok && rc == 0)
        print_ids("special", ids, n, want);
    free(ids);
}

static void test_vectors(void)
{
    json_error_t err;
    json_t *root = json_load_file(fixture("tokenizer_vectors.json"), 0, &err);
    CHECK(root != NULL, "tokenizer_vectors.json: %s", err.text);
    const char *name;
    json_t *cases;
    json_object_foreach(root, name, cases)
    {
        char rel[256];
        snprintf(rel, sizeof rel, "tokenizers/%s/tokenizer.json", name);
        vc_tokenizer *tok;
        int rc = vc_tokenizer_load_json(fixture(rel), &tok);
        CHECK(rc == 0, "%s: load failed: %s", name, vc_error());
        if (rc != 0)
            continue;
        json_t *c;
        size_t i;
        json_array_foreach(cases, i, c)
            check_case(name, tok, c);
        vc_tokenizer_free(tok);
    }
    json_decref(root);
}

static void test_bad_input(void)
{
    vc_tokenizer *tok;
    if (vc_tokenizer_load_json(fixture("tokenizers/sp_legacy/tokenizer.json"), &tok) != 0)
        return;
    int32_t *ids;
    size_t n;
    const char bad[] = "ok \xff\xfe bad";
    CHECK(vc_tokenizer_encode(tok, bad, sizeof bad - 1, false, &ids, &n) != 0, "invalid UTF-8 accepted");
    CHECK(vc_error_code() == VC_EXIT_INPUT, "invalid UTF-8 error class %d", vc_error_code());
    CHECK(strstr(vc_error(), "UTF-8") != NULL, "message: %s", vc_error());
    int32_t out_of_range = 1 << 30;
    char *text;
    size_t len;
    CHECK(vc_tokenizer_decode(tok, &out_of_range, 1, false, &text, &len) != 0, "bad id decoded");
    vc_tokenizer_free(tok);

    const char *broken[] = {
        "{", "[]", "{\"model\": {\"type\": \"Unigram\", \"vocab\": {}}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"normalizer\": {\"type\": \"NFKC\"}}",
    };
    for (size_t i = 0; i < sizeof broken / sizeof *broken; i++) {
        CHECK(vc_tokenizer_load_json_text(broken[i], strlen(broken[i]), "case", &tok) != 0, "broken %zu loaded", i);
        CHECK(vc_error_code() == VC_EXIT_MODEL, "broken %zu: class %d (%s)", i, vc_error_code(), vc_error());
    }
}

int main(void)
{
    test_vectors();
    test_bad_input();
    return harness_finish("test_tokenizer");
}
