/* session.c - see include/model/session.h */
#define _GNU_SOURCE   /* malloc_trim */
#include "model/session.h"

#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/meminfo.h"

void vc_session_init(vc_session *s, vc_model *m, size_t mem_budget)
{
    memset(s, 0, sizeof *s);
    s->m = m;
    s->mem_budget = mem_budget;
    s->cache_budget = VC_SESSION_CACHE_BYTES;
}

static void drop_prompt(vc_session *s)
{
    free(s->embd);
    s->embd = NULL;
    s->ids = NULL;
    s->keys = NULL;
    s->n_ids = s->keep = 0;
    s->n_keys = 0;
}

/* Drops cached images (pinned ones too if all); returns how many. */
static int drop_images(vc_session *s, bool all)
{
    int dropped = 0;
    for (size_t i = 0; i < s->n_cache;) {
        if (!all && s->cache[i].pinned) {
            i++;
            continue;
        }
        vc_image_embd_free(&s->cache[i].embd);
        s->cache[i] = s->cache[--s->n_cache];
        dropped++;
    }
    return dropped;
}

void vc_session_free(vc_session *s)
{
    drop_prompt(s);
    drop_images(s, true);
    free(s->cache);
    free(s->fed);
    free(s->fed_keys);
    memset(s, 0, sizeof *s);
}

void vc_session_forget(vc_session *s)
{
    s->n_fed = 0;
    s->n_fed_keys = 0;
}

void vc_session_reset(vc_session *s)
{
    drop_prompt(s);
    drop_images(s, true);
    vc_session_forget(s);
    vc_llm_truncate(&s->m->llm, 0);
}

void vc_session_event(vc_session *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->event, sizeof s->event, fmt, ap);
    va_end(ap);
    s->events++;
    if (s->on_event)
        s->on_event(s->event_ctx, s->event);
}

/* ---- the image cache ---- */

uint64_t vc_session_pixel_hash(const vc_image *img)
{
    uint64_t h = 1469598103934665603ULL;   /* FNV-1a */
    int dims[2] = { img->width, img->height };
    const uint8_t *p = (const uint8_t *)dims;
    for (size_t i = 0; i < sizeof dims; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    size_t n = (size_t)img->width * img->height * 3;
    for (size_t i = 0; i < n; i++)
        h = (h ^ img->rgb[i]) * 1099511628211ULL;
    return h;
}

static size_t slot_bytes(const vc_session *s, const vc_session_slot *c)
{
    return (size_t)c->embd.n_tokens * s->m->llm.cfg.dim * sizeof(float);
}

size_t vc_session_image_bytes(const vc_session *s)
{
    size_t bytes = 0;
    for (size_t i = 0; i < s->n_cache; i++)
        bytes += slot_bytes(s, &s->cache[i]);
    return bytes;
}

static void use_slot(vc_session *s, vc_session_slot *c, vc_image_embd *out)
{
    c->last_use = ++s->use_clock;
    c->pinned = true;
    *out = c->embd;
}

bool vc_session_find_image(vc_session *s, uint64_t key, vc_image_embd *out)
{
    for (size_t i = 0; i < s->n_cache; i++)
        if (s->cache[i].key == key) {
            use_slot(s, &s->cache[i], out);
            s->image_cache_hits++;
            return true;
        }
    return false;
}

int vc_session_image(vc_session *s, const vc_image *pixels, uint64_t key, vc_image_embd *out)
{
    memset(out, 0, sizeof *out);
    if (vc_session_find_image(s, key, out))
        return 0;
    if (vc_reserve((void **)&s->cache, &s->cap_cache, s->n_cache + 1, sizeof *s->cache) != 0)
        return -1;
    vc_session_slot *c = &s->cache[s->n_cache];
    if (vc_model_encode_pixels(s->m, pixels, &c->embd) != 0)
        return -1;
    c->key = key;
    s->n_cache++;
    s->images_encoded++;
    use_slot(s, c, out);
    return 0;
}

void vc_session_end_turn(vc_session *s)
{
    for (size_t i = 0; i < s->n_cache; i++)
        s->cache[i].pinned = false;
    while (vc_session_image_bytes(s) > s->cache_budget) {
        size_t oldest = 0;
        for (size_t i = 1; i < s->n_cache; i++)
            if (s->cache[i].last_use < s->cache[oldest].last_use)
                oldest = i;
        vc_image_embd_free(&s->cache[oldest].embd);
        s->cache[oldest] = s->cache[--s->n_cache];
    }
}

bool vc_session_check_pressure(vc_session *s)
{
    if (!vc_mem_under_pressure(s->mem_budget))
        return false;
    size_t before = vc_session_image_bytes(s);
    int dropped = drop_images(s, false);
    malloc_trim(0);
    if (dropped)
        vc_session_event(s, "dropped %d cached images (%.1f MiB) under memory pressure, RSS now %.1f MiB", dropped,
                         (before - vc_session_image_bytes(s)) / 1048576.0, vc_mem_rss() / 1048576.0);
    return true;
}

/* ---- the KV cache ---- */

/* Which tokens of ids the KV cache already holds: the common prefix with
 * the record, cut before the first image whose pixels differ from those of
 * the image recorded in its place. */
static size_t reusable_prefix(const vc_session *s, const int32_t *ids, size_t n, const vc_image_embd *images,
                              const uint64_t *keys, int n_images)
{
    size_t keep = 0;
    while (keep < n && keep < s->n_fed && ids[keep] == s->fed[keep])
        keep++;
    int32_t image_token = s->m->vision ? s->m->vision->image_token_id : -1;
    int k = 0, row = 0;
    for (size_t i = 0; i < keep; i++) {
        if (ids[i] != image_token)
            continue;
        if (k >= n_images || (row == 0 && ((size_t)k >= s->n_fed_keys || s->fed_keys[k] != keys[k])))
            return i;
        if (++row == images[k].n_tokens)
            k++, row = 0;
    }
    return keep;
}

int vc_session_prepare(vc_session *s, const int32_t *ids, size_t n, const vc_image_embd *images,
                       const uint64_t *keys, int n_images, size_t *reused)
{
    drop_prompt(s);
    *reused = 0;
    if (n == 0) {
        vc_session_forget(s);
        return vc_fail("empty prompt");
    }
    size_t keep = reusable_prefix(s, ids, n, images, keys, n_images);
    if (keep == n)
        keep = n - 1;   /* the last position must run to give logits */
    vc_llm_truncate(&s->m->llm, (int)keep);
    if ((size_t)s->m->llm.n_past != keep)   /* the cache is shorter than recorded: start over */
        vc_llm_truncate(&s->m->llm, (int)(keep = 0));
    s->n_fed = keep;
    s->n_fed_keys = 0;   /* recorded again once the turn has run */
    if (n_images > 0 && vc_model_prompt_embd(s->m, ids, n, images, n_images, &s->embd) != 0) {
        vc_session_forget(s);
        return -1;
    }
    s->ids = ids;
    s->n_ids = n;
    s->keep = keep;
    s->keys = keys;
    s->n_keys = n_images;
    *reused = keep;
    return 0;
}

/* Records the prompt and the fed-back part of the reply as the KV cache's
 * contents; out of memory, forgets the record instead. */
static void record(vc_session *s, const vc_gen_result *res)
{
    size_t n = s->n_ids, n_past = (size_t)s->m->llm.n_past;
    /* whatever the cache holds beyond the prompt is the part of the reply
     * that was fed back (the last sampled token may not have been) */
    size_t fed_reply = VC_MIN(n_past > n ? n_past - n : 0, res->n_tokens);
    if (vc_reserve((void **)&s->fed, &s->cap_fed, n + fed_reply, sizeof *s->fed) != 0 ||
        vc_reserve((void **)&s->fed_keys, &s->cap_fed_keys, (size_t)s->n_keys, sizeof *s->fed_keys) != 0) {
        vc_session_forget(s);
        vc_session_event(s, "out of memory: forgot the KV cache (the next turn runs its whole prompt)");
        return;
    }
    memcpy(s->fed + s->keep, s->ids + s->keep, (n - s->keep) * sizeof *s->fed);
    if (fed_reply)
        memcpy(s->fed + n, res->tokens, fed_reply * sizeof *s->fed);
    s->n_fed = n + fed_reply;
    if (s->n_keys)
        memcpy(s->fed_keys, s->keys, (size_t)s->n_keys * sizeof *s->fed_keys);
    s->n_fed_keys = (size_t)s->n_keys;
}

int vc_session_run(vc_session *s, const vc_gen_options *opt, vc_gen_result *res)
{
    memset(res, 0, sizeof *res);
    if (!s->ids)
        return vc_fail("vc_session_run without a prepared prompt");
    vc_gen_options o = *opt;
    o.prompt_embd = s->embd ? s->embd + s->keep * (size_t)s->m->llm.cfg.dim : NULL;
    int rc = vc_generate(s->m, s->ids + s->keep, s->n_ids - s->keep, &o, res);
    if (rc == 0 || res->n_tokens > 0) {
        record(s, res);
    } else {
        vc_session_forget(s);
        vc_llm_truncate(&s->m->llm, 0);
    }
    drop_prompt(s);
    return rc;
}
