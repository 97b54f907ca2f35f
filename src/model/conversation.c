/* conversation.c - see include/model/conversation.h */
#include "model/conversation.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

#include <jansson.h>

void vc_conv_init(vc_conversation *c, vc_model *m)
{
    memset(c, 0, sizeof *c);
    c->m = m;
    vc_session_init(&c->session, m, m->budget);
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
    for (int i = 0; i < c->n_images; i++)
        free(c->image_paths[i]);
    c->n_images = c->used_images = 0;
}

void vc_conv_clear(vc_conversation *c)
{
    free_turns(c);
    free_images(c);
    vc_session_reset(&c->session);
}

void vc_conv_free(vc_conversation *c)
{
    vc_conv_clear(c);
    vc_session_free(&c->session);
    free(c->turns);
    free(c->images);
    free(c->image_paths);
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

/* Loads an image file and gets it encoded through the session's cache;
 * img gets its identity and size. */
static int encode_file(vc_conversation *c, const char *path, vc_conv_image *img, vc_image_embd *out)
{
    vc_image pixels;
    if (vc_image_load(path, NULL, &pixels) != 0)
        return -1;
    img->key = vc_session_pixel_hash(&pixels);
    int rc = vc_session_image(&c->session, &pixels, img->key, out);
    vc_image_free(&pixels);
    if (rc == 0)
        img->n_tokens = out->n_tokens;
    return rc;
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
    vc_image_embd embd;
    if (!p || encode_file(c, path, &c->images[c->n_images], &embd) != 0) {
        free(p);
        return -1;
    }
    c->image_paths[c->n_images++] = p;
    return 0;
}

int vc_conv_pending(const vc_conversation *c) { return c->n_images - c->used_images; }

/* The encoded images of the sent messages, pinned in the session's cache
 * (those it no longer holds are encoded again from their files). */
static int sent_images(vc_conversation *c, vc_image_embd *out)
{
    for (int i = 0; i < c->used_images; i++)
        if (!vc_session_find_image(&c->session, c->images[i].key, &out[i]) &&
            encode_file(c, c->image_paths[i], &c->images[i], &out[i]) != 0)
            return -1;
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

/* The whole conversation as prompt ids (with the assistant header);
 * images[] gets the sent images' encodings. */
static int render(vc_conversation *c, vc_image_embd *images, int32_t **ids, size_t *n)
{
    size_t k = 0;
    vc_chat_msg *msgs = vc_calloc(c->n_turns + 1, sizeof *msgs);
    if (!msgs)
        return -1;
    if (c->system)
        msgs[k++] = (vc_chat_msg){ "system", c->system, 0 };
    for (size_t i = 0; i < c->n_turns; i++)
        msgs[k++] = (vc_chat_msg){ c->turns[i].role, c->turns[i].content, c->turns[i].n_images };
    int rc = sent_images(c, images);
    if (rc == 0)
        rc = vc_model_prompt_ids(c->m, msgs, k, images, c->used_images, true, ids, n);
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
    for (int i = 0; i < images; i++)
        free(c->image_paths[i]);
    memmove(c->images, c->images + images, (size_t)(c->n_images - images) * sizeof *c->images);
    memmove(c->image_paths, c->image_paths + images, (size_t)(c->n_images - images) * sizeof *c->image_paths);
    c->n_images -= images;
    c->used_images -= images;
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
    vc_session_end_turn(&c->session);   /* the loaded images are sent ones: unpinned, like after a turn */
    json_decref(doc);
    if (rc != 0)
        vc_conv_clear(c);
    return rc;
}

/* Takes back the last (user) turn and its images after a failed turn. */
static void take_back(vc_conversation *c, int pending)
{
    c->used_images -= pending;
    free(c->turns[--c->n_turns].role);
    free(c->turns[c->n_turns].content);
}

int vc_conv_turn(vc_conversation *c, const char *text, const vc_gen_options *opt, vc_gen_result *res)
{
    memset(res, 0, sizeof *res);
    int pending = vc_conv_pending(c);
    vc_image_embd *images = vc_calloc((size_t)c->n_images + 1, sizeof *images);
    uint64_t *keys = vc_calloc((size_t)c->n_images + 1, sizeof *keys);
    if (!images || !keys || add_turn(c, "user", text, pending) != 0) {
        free(images);
        free(keys);
        return -1;
    }
    c->used_images += pending;
    int32_t *ids = NULL;
    size_t n = 0, keep = 0;
    int rc = render(c, images, &ids, &n);
    int room = c->m->llm.n_ctx - opt->max_tokens / 4;   /* keep some room to answer */
    int dropped = 0;
    while (rc == 0 && (int)n > VC_MAX(room, c->m->llm.n_ctx / 2) && c->n_turns > 1) {
        free(ids);
        ids = NULL;
        drop_oldest_exchange(c);
        dropped++;
        rc = render(c, images, &ids, &n);
    }
    if (dropped) {
        vc_session_event(&c->session, "context full: moved the %d oldest exchange%s out of the KV cache", dropped,
                         dropped > 1 ? "s" : "");
        vc_session_forget(&c->session);   /* positions shift: rebuild the cache */
    }
    for (int i = 0; i < c->used_images; i++)
        keys[i] = c->images[i].key;
    if (rc == 0)
        rc = vc_session_prepare(&c->session, ids, n, images, keys, c->used_images, &keep);
    if (rc == 0) {
        rc = vc_session_run(&c->session, opt, res);
        if (rc == 0 || res->n_tokens > 0) {
            const char *reply = res->text ? res->text : "";
            add_turn(c, "assistant", reply + strspn(reply, " "), 0);   /* as the template expects it */
        } else {
            take_back(c, pending);
        }
    } else {
        take_back(c, pending);
    }
    vc_session_end_turn(&c->session);
    free(ids);
    free(images);
    free(keys);
    return rc;
}
