/* conversation.c - see include/model/conversation.h */
#include "model/conversation.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

#include <jansson.h>

void vc_conv_init(vc_conversation *c, vc_model *m)
{
    memset(c, 0, sizeof *c);
    c->m = m;
}

static void set_event(vc_conversation *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_event(vc_conversation *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->event, sizeof c->event, fmt, ap);
    va_end(ap);
    c->events++;
}

static void free_turns(vc_conversation *c)
{
    for (size_t i = 0; i < c->n_turns; i++) {
        free(c->turns[i].role);
        free(c->turns[i].content);
    }
    c->n_turns = 0;
}

static void free_images(vc_conversation *c)
{
    for (int i = 0; i < c->n_images; i++) {
        vc_image_embd_free(&c->images[i]);
        free(c->image_paths[i]);
    }
    c->n_images = c->used_images = 0;
}

void vc_conv_clear(vc_conversation *c)
{
    free_turns(c);
    free_images(c);
    c->n_fed = 0;
    vc_llm_truncate(&c->m->llm, 0);
}

void vc_conv_free(vc_conversation *c)
{
    vc_conv_clear(c);
    free(c->turns);
    free(c->images);
    free(c->image_paths);
    free(c->fed);
    free(c->system);
    memset(c, 0, sizeof *c);
}

int vc_conv_set_system(vc_conversation *c, const char *text)
{
    char *s = text ? vc_strdup(text) : NULL;
    if (text && !s)
        return -1;
    free(c->system);
    c->system = s;
    return 0;
}

int vc_conv_attach(vc_conversation *c, const char *path)
{
    size_t cap = (size_t)c->cap_images;
    if (vc_reserve((void **)&c->images, &cap, (size_t)c->n_images + 1, sizeof *c->images) != 0)
        return -1;
    size_t cap2 = (size_t)c->cap_images;
    if (vc_reserve((void **)&c->image_paths, &cap2, (size_t)c->n_images + 1, sizeof *c->image_paths) != 0)
        return -1;
    c->cap_images = (int)VC_MIN(cap, cap2);
    char *p = vc_strdup(path);
    if (!p || vc_model_encode_image(c->m, path, &c->images[c->n_images]) != 0) {
        free(p);
        return -1;
    }
    c->image_paths[c->n_images++] = p;
    return 0;
}

int vc_conv_pending(const vc_conversation *c) { return c->n_images - c->used_images; }

size_t vc_conv_image_bytes(const vc_conversation *c)
{
    size_t total = 0;
    for (int i = 0; i < c->n_images; i++)
        if (c->images[i].embd)
            total += (size_t)c->images[i].n_tokens * c->m->llm.cfg.dim * sizeof(float);
    return total;
}

void vc_conv_drop_image_cache(vc_conversation *c)
{
    size_t bytes = vc_conv_image_bytes(c);
    int dropped = 0;
    for (int i = 0; i < c->used_images; i++)
        if (c->images[i].embd) {
            free(c->images[i].embd);
            c->images[i].embd = NULL;
            dropped++;
        }
    if (dropped)
        set_event(c, "dropped %d cached images (%.1f MiB)", dropped, (bytes - vc_conv_image_bytes(c)) / 1048576.0);
}

/* Re-encodes images whose features were dropped from the cache. */
static int ensure_images(vc_conversation *c, int upto)
{
    for (int i = 0; i < upto; i++)
        if (!c->images[i].embd) {
            vc_image_embd fresh;
            if (vc_model_encode_image(c->m, c->image_paths[i], &fresh) != 0)
                return -1;
            c->images[i] = fresh;
        }
    return 0;
}

static int add_turn(vc_conversation *c, const char *role, const char *content, int n_images)
{
    if (vc_reserve((void **)&c->turns, &c->cap_turns, c->n_turns + 1, sizeof *c->turns) != 0)
        return -1;
    vc_turn *t = &c->turns[c->n_turns];
    t->role = vc_strdup(role);
    t->content = vc_strdup(content);
    t->n_images = n_images;
    if (!t->role || !t->content) {
        free(t->role);
        free(t->content);
        return -1;
    }
    c->n_turns++;
    return 0;
}

/* The whole conversation as prompt ids (with the assistant header). */
static int render(vc_conversation *c, int32_t **ids, size_t *n)
{
    size_t k = 0;
    vc_chat_msg *msgs = vc_calloc(c->n_turns + 1, sizeof *msgs);
    if (!msgs)
        return -1;
    if (c->system)
        msgs[k++] = (vc_chat_msg){ "system", c->system, 0 };
    for (size_t i = 0; i < c->n_turns; i++)
        msgs[k++] = (vc_chat_msg){ c->turns[i].role, c->turns[i].content, c->turns[i].n_images };
    int rc = ensure_images(c, c->used_images);
    if (rc == 0)
        rc = vc_model_prompt_ids(c->m, msgs, k, c->images, c->used_images, true, ids, n);
    free(msgs);
    return rc;
}

/* Drops the oldest user/assistant exchange (and its images). */
static void drop_oldest_exchange(vc_conversation *c)
{
    size_t drop = 0;
    int images = 0;
    while (drop < c->n_turns && (drop == 0 || strcmp(c->turns[drop].role, "user") != 0)) {
        images += c->turns[drop].n_images;
        drop++;
    }
    for (size_t i = 0; i < drop; i++) {
        free(c->turns[i].role);
        free(c->turns[i].content);
    }
    memmove(c->turns, c->turns + drop, (c->n_turns - drop) * sizeof *c->turns);
    c->n_turns -= drop;
    for (int i = 0; i < images; i++) {
        vc_image_embd_free(&c->images[i]);
        free(c->image_paths[i]);
    }
    memmove(c->images, c->images + images, (size_t)(c->n_images - images) * sizeof *c->images);
    memmove(c->image_paths, c->image_paths + images, (size_t)(c->n_images - images) * sizeof *c->image_paths);
    c->n_images -= images;
    c->used_images -= images;
}

static size_t common_prefix(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i])
        i++;
    return i;
}

static int remember(vc_conversation *c, const int32_t *ids, size_t n)
{
    if (vc_reserve((void **)&c->fed, &c->cap_fed, c->n_fed + n, sizeof *c->fed) != 0)
        return -1;
    memcpy(c->fed + c->n_fed, ids, n * sizeof *ids);
    c->n_fed += n;
    return 0;
}

int vc_conv_add_turn(vc_conversation *c, const char *role, const char *content, int n_images)
{
    if (n_images > vc_conv_pending(c))
        return vc_fail("turn claims more images than are attached");
    if (add_turn(c, role, content, n_images) != 0)
        return -1;
    c->used_images += n_images;
    return 0;
}

int vc_conv_load_json(vc_conversation *c, const char *text, size_t len, const char *origin)
{
    json_error_t err;
    json_t *doc = json_loadb(text, len, 0, &err);
    json_t *turns = json_object_get(doc, "turns"), *t;
    if (!json_is_array(turns)) {
        json_decref(doc);
        return vc_fail_code(VC_EXIT_INPUT, "%s: not a conversation file (%s)", origin, doc ? "no turns" : err.text);
    }
    vc_conv_clear(c);
    json_t *system = json_object_get(doc, "system");
    int rc = vc_conv_set_system(c, json_string_value(system));
    size_t i;
    json_array_foreach(turns, i, t)
    {
        const char *role = json_string_value(json_object_get(t, "role"));
        const char *content = json_string_value(json_object_get(t, "content"));
        if (rc != 0 || !role || !content || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0)) {
            rc = rc ? rc : vc_fail_code(VC_EXIT_INPUT, "%s: turn %zu is malformed", origin, i + 1);
            break;
        }
        json_t *paths = json_object_get(t, "images"), *p;
        size_t k;
        int before = c->n_images;
        json_array_foreach(paths, k, p)
            if (rc == 0 && (!json_is_string(p) || vc_conv_attach(c, json_string_value(p)) != 0))
                rc = json_is_string(p) ? -1 : vc_fail_code(VC_EXIT_INPUT, "%s: turn %zu: bad image entry", origin, i + 1);
        if (rc == 0)
            rc = vc_conv_add_turn(c, role, content, c->n_images - before);
    }
    json_decref(doc);
    if (rc != 0)
        vc_conv_clear(c);
    return rc;
}

int vc_conv_turn(vc_conversation *c, const char *text, const vc_gen_options *opt, vc_gen_result *res)
{
    memset(res, 0, sizeof *res);
    int pending = vc_conv_pending(c);
    if (add_turn(c, "user", text, pending) != 0)
        return -1;
    c->used_images += pending;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = render(c, &ids, &n);
    int room = c->m->llm.n_ctx - opt->max_tokens / 4;   /* keep some room to answer */
    int dropped = 0;
    while (rc == 0 && (int)n > VC_MAX(room, c->m->llm.n_ctx / 2) && c->n_turns > 1) {
        free(ids);
        drop_oldest_exchange(c);
        dropped++;
        rc = render(c, &ids, &n);
    }
    if (dropped) {
        set_event(c, "context full: moved the %d oldest exchange%s out of the KV cache", dropped, dropped > 1 ? "s" : "");
        c->n_fed = 0;   /* positions shift: rebuild the cache */
    }
    if (rc != 0) {
        c->used_images -= pending;
        free(c->turns[--c->n_turns].role);
        free(c->turns[c->n_turns].content);
        return -1;
    }
    /* keep what the cache already holds, feed the rest */
    size_t keep = common_prefix(c->fed, c->n_fed, ids, n);
    if (keep == n)
        keep = n - 1;   /* the last position must be run to get logits */
    vc_llm_truncate(&c->m->llm, (int)keep);
    if ((size_t)c->m->llm.n_past != keep) {   /* cache shorter than we thought: start over */
        keep = 0;
        vc_llm_truncate(&c->m->llm, 0);
    }
    c->n_fed = keep;
    float *embd = NULL;
    if (c->used_images > 0 && (rc = vc_model_prompt_embd(c->m, ids, n, c->images, c->used_images, &embd)) != 0) {
        free(ids);
        return -1;
    }
    vc_gen_options o = *opt;
    o.prompt_embd = embd ? embd + keep * (size_t)c->m->llm.cfg.dim : NULL;
    rc = vc_generate(c->m, ids + keep, n - keep, &o, res);
    if (rc == 0 || res->n_tokens > 0) {
        remember(c, ids + keep, n - keep);
        /* whatever the cache holds beyond the prompt is the part of the reply
         * that was fed back (the last sampled token may not have been) */
        size_t fed_reply = (size_t)c->m->llm.n_past > n ? (size_t)c->m->llm.n_past - n : 0;
        remember(c, res->tokens, VC_MIN(fed_reply, res->n_tokens));
        const char *reply = res->text ? res->text : "";
        add_turn(c, "assistant", reply + strspn(reply, " "), 0);   /* as the template expects it */
    }
    free(ids);
    free(embd);
    return rc;
}
