/* test_session.c - the session shared by the REPL and the server (on the
 * idefics3 fixture): KV-prefix reuse by token ids and image identity,
 * answers equal with and without reuse, text-only turns, the image cache (hits, pins, the
 * byte budget) and cleanup under memory pressure. */
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "harness.h"
#include "model/conversation.h"
#include "model/session.h"

typedef struct {
    vc_model *m;
    vc_session s;
    vc_image px[2];
    uint64_t key[2];
} fixture_t;

static vc_gen_options greedy(int n)
{
    vc_gen_options o = { .max_tokens = n, .ignore_eos = true, .sampling = vc_sampler_defaults() };
    o.sampling.temperature = 0;
    return o;
}

/* One user message with image `which`, as ids. */
static int prompt(fixture_t *f, int which, const char *text, vc_image_embd *img, int32_t **ids, size_t *n)
{
    if (vc_session_image(&f->s, &f->px[which], f->key[which], img) != 0)
        return -1;
    vc_chat_msg msg = { "user", text, 1 };
    return vc_model_prompt_ids(f->m, &msg, 1, img, 1, true, ids, n);
}

/* Runs ids through the session; *reused and the reply's tokens come back. */
static int turn(fixture_t *f, const int32_t *ids, size_t n, const vc_image_embd *img, uint64_t key, size_t *reused,
                vc_gen_result *res)
{
    vc_gen_options o = greedy(4);
    int rc = vc_session_prepare(&f->s, ids, n, img, &key, 1, reused);
    if (rc == 0)
        rc = vc_session_run(&f->s, &o, res);
    vc_session_end_turn(&f->s);
    return rc;
}

static void test_reuse(fixture_t *f)
{
    vc_image_embd img;
    int32_t *ids = NULL;
    size_t n = 0, reused = 99;
    vc_gen_result a = { 0 }, b = { 0 }, c = { 0 };
    CHECK(prompt(f, 0, "What is this?", &img, &ids, &n) == 0, "%s", vc_error());
    CHECK(turn(f, ids, n, &img, f->key[0], &reused, &a) == 0, "%s", vc_error());
    CHECK(reused == 0, "first turn reuses nothing (%zu)", reused);
    CHECK(f->s.images_encoded == 1 && f->s.image_cache_hits == 0, "one encoding");
    /* the same prompt again: everything but the last position comes from the KV cache */
    vc_image_embd again;
    CHECK(vc_session_find_image(&f->s, f->key[0], &again) && again.embd == img.embd, "cached by pixel hash");
    CHECK(f->s.image_cache_hits == 1, "a hit");
    CHECK(turn(f, ids, n, &again, f->key[0], &reused, &b) == 0, "%s", vc_error());
    CHECK(reused == n - 1, "reused %zu of %zu", reused, n);
    CHECK(a.n_tokens == b.n_tokens && memcmp(a.tokens, b.tokens, a.n_tokens * sizeof *a.tokens) == 0,
          "same answer from the KV cache");
    /* the same ids with another image's identity: reuse stops before the image */
    int32_t image_token = f->m->vision->image_token_id;
    size_t first_image = 0;
    while (first_image < n && ids[first_image] != image_token)
        first_image++;
    CHECK(turn(f, ids, n, &again, f->key[1], &reused, &c) == 0, "%s", vc_error());
    CHECK(first_image < n && reused == first_image, "reused %zu, first image token at %zu", reused, first_image);
    CHECK(a.n_tokens == c.n_tokens && memcmp(a.tokens, c.tokens, a.n_tokens * sizeof *a.tokens) == 0,
          "same answer after a partial reuse");
    /* a forgotten record runs the whole prompt */
    vc_session_forget(&f->s);
    vc_gen_result d = { 0 };
    CHECK(turn(f, ids, n, &again, f->key[0], &reused, &d) == 0 && reused == 0, "forget: reused %zu", reused);
    vc_gen_result_free(&a);
    vc_gen_result_free(&b);
    vc_gen_result_free(&c);
    vc_gen_result_free(&d);
    free(ids);
}

/* Text alone: no images, no keys. */
static void test_text_only(fixture_t *f)
{
    vc_session_reset(&f->s);
    vc_chat_msg msg = { "user", "Hello there.", 0 };
    int32_t *ids = NULL;
    size_t n = 0, reused = 99;
    CHECK(vc_model_prompt_ids(f->m, &msg, 1, NULL, 0, true, &ids, &n) == 0, "%s", vc_error());
    vc_gen_options o = greedy(3);
    for (int round = 0; round < 2 && ids; round++) {
        vc_gen_result r = { 0 };
        CHECK(vc_session_prepare(&f->s, ids, n, NULL, NULL, 0, &reused) == 0, "%s", vc_error());
        CHECK(vc_session_run(&f->s, &o, &r) == 0, "%s", vc_error());
        vc_session_end_turn(&f->s);
        CHECK(reused == (round ? n - 1 : 0), "round %d reused %zu of %zu", round, reused, n);
        vc_gen_result_free(&r);
    }
    free(ids);
}

static void test_cache(fixture_t *f)
{
    vc_session_reset(&f->s);
    CHECK(f->s.n_cache == 0 && f->m->llm.n_past == 0, "reset empties the cache and the KV cache");
    vc_image_embd e0, e1;
    CHECK(vc_session_image(&f->s, &f->px[0], f->key[0], &e0) == 0, "%s", vc_error());
    CHECK(vc_session_image(&f->s, &f->px[1], f->key[1], &e1) == 0, "%s", vc_error());
    size_t one = vc_session_image_bytes(&f->s) / 2;
    CHECK(one > 0 && vc_session_image_bytes(&f->s) == (size_t)(e0.n_tokens + e1.n_tokens) * f->m->llm.cfg.dim * 4,
          "bytes");
    /* pinned images are not dropped under pressure */
    f->s.mem_budget = 1;   /* any process is above 90% of one byte */
    unsigned events = f->s.events;
    CHECK(vc_session_check_pressure(&f->s), "pressure");
    CHECK(f->s.n_cache == 2 && f->s.events == events, "pinned images stay, no event");
    /* within the byte budget the least recently used goes first */
    vc_image_embd again;
    CHECK(vc_session_find_image(&f->s, f->key[0], &again), "hit");
    f->s.cache_budget = vc_session_image_bytes(&f->s) - 1;
    vc_session_end_turn(&f->s);
    CHECK(f->s.n_cache == 1 && vc_session_find_image(&f->s, f->key[0], &again), "least recently used evicted");
    vc_session_end_turn(&f->s);
    CHECK(vc_session_check_pressure(&f->s) && f->s.n_cache == 0, "unpinned images dropped under pressure");
    CHECK(f->s.events == events + 1 && strncmp(f->s.event, "dropped 1 cached images", 23) == 0 &&
              strstr(f->s.event, "memory pressure"),
          "event: %s", f->s.event);
    f->s.mem_budget = 0;
    f->s.cache_budget = VC_SESSION_CACHE_BYTES;
}

/* Images restored by /load are sent ones: not pinned, so memory pressure
 * may drop them (they are encoded again from their files when needed). */
static void test_load_unpins(fixture_t *f)
{
    vc_conversation c;
    vc_conv_init(&c, f->m);
    const char *doc = "{\"turns\": [{\"role\": \"user\", \"content\": \"<image>What is this?\", "
                      "\"images\": [\"examples/scene1.png\"]}, {\"role\": \"assistant\", \"content\": \"A scene.\"}]}";
    CHECK(vc_conv_load_json(&c, doc, strlen(doc), "test") == 0, "load: %s", vc_error());
    CHECK(c.session.n_cache == 1 && c.n_images == 1 && vc_conv_pending(&c) == 0, "one image, sent");
    c.session.mem_budget = 1;   /* any process is above 90% of one byte */
    CHECK(vc_session_check_pressure(&c.session) && c.session.n_cache == 0, "a loaded image is dropped under pressure");
    c.session.mem_budget = 0;
    vc_conv_free(&c);
}

static int events_seen;
static void count_event(void *ctx, const char *text)
{
    (void)text;
    (*(int *)ctx)++;
}

static void test_events(fixture_t *f)
{
    f->s.on_event = count_event;
    f->s.event_ctx = &events_seen;
    unsigned before = f->s.events;
    vc_session_event(&f->s, "context full: %d", 1);
    CHECK(events_seen == 1 && f->s.events == before + 1 && strcmp(f->s.event, "context full: 1") == 0, "event");
    f->s.on_event = NULL;
}

int main(void)
{
    vc_model m;
    fixture_t f = { .m = &m };
    if (vc_model_open(fixture("vision/idefics3"), &(vc_model_options){ .n_ctx = 512 }, &m) != 0) {
        CHECK(0, "open: %s", vc_error());
        return harness_finish("test_session");
    }
    vc_session_init(&f.s, &m, 0);
    const char *images[2] = { "examples/scene1.png", "examples/scene2.png" };
    for (int i = 0; i < 2; i++) {
        CHECK(vc_image_load(images[i], NULL, &f.px[i]) == 0, "%s", vc_error());
        f.key[i] = vc_session_pixel_hash(&f.px[i]);
    }
    CHECK(f.key[0] != f.key[1], "different pixels, different keys");
    test_reuse(&f);
    test_text_only(&f);
    test_cache(&f);
    test_events(&f);
    test_load_unpins(&f);
    vc_session_free(&f.s);
    for (int i = 0; i < 2; i++)
        vc_image_free(&f.px[i]);
    vc_model_close(&m);
    return harness_finish("test_session");
}
