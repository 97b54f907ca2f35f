/* session.h - what one chat client keeps between turns: the KV cache's
 * contents and the encoded images.
 *
 * The REPL's conversation and the server's engine are both clients: they
 * render their messages to token ids and hand them here with the encoded
 * images and, for each image, its identity (a hash of its pixels).  The
 * session compares the prompt with what the KV cache holds (token ids and,
 * for image tokens, which image they came from), keeps the longest common
 * prefix and feeds only the rest, so a client that resends the conversation
 * with one more message pays only for the new part.
 *
 * Encoded images are cached by pixel hash, so a follow-up about the same
 * image costs no encoding.  Images fetched for a turn are pinned until
 * vc_session_end_turn; then the cache is trimmed (least recently used
 * first) to cache_budget bytes.  Under memory pressure the unpinned images
 * are dropped (they are encoded again when needed).
 *
 * Cleanup events (images dropped under pressure, a forgotten KV record,
 * and whatever the client reports through vc_session_event) are counted;
 * the latest text is kept and each is passed to on_event if set.
 *
 * Out of memory: when the record of what the KV cache holds cannot grow,
 * the session forgets it (the next turn starts the KV cache over) and
 * reports an event; the answer that was generated still stands.  Nothing
 * is ever trusted from a partial record.
 *
 * One thread at a time: a session belongs to whoever runs the model.
 */
#ifndef VC_MODEL_SESSION_H
#define VC_MODEL_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "image/image.h"
#include "model/generate.h"
#include "model/prompt.h"

#define VC_EVENT_LEN 160
#define VC_SESSION_CACHE_BYTES ((size_t)256 << 20)

typedef void (*vc_session_event_fn)(void *ctx, const char *text);

typedef struct {
    uint64_t key;               /* pixel hash */
    vc_image_embd embd;
    uint64_t last_use;
    bool pinned;
} vc_session_slot;

typedef struct {
    vc_model *m;
    size_t mem_budget;          /* for vc_mem_under_pressure; 0: system signals only */
    size_t cache_budget;        /* bytes of encoded images kept between turns */
    /* what the KV cache holds: ids, and the images of its image tokens in order */
    int32_t *fed;
    size_t n_fed, cap_fed;
    uint64_t *fed_keys;
    size_t n_fed_keys, cap_fed_keys;
    /* the image cache */
    vc_session_slot *cache;
    size_t n_cache, cap_cache;
    uint64_t use_clock;
    unsigned long long images_encoded, image_cache_hits;
    /* the prompt between vc_session_prepare and vc_session_run */
    const int32_t *ids;
    size_t n_ids, keep;
    const uint64_t *keys;
    int n_keys;
    float *embd;
    /* cleanup events */
    char event[VC_EVENT_LEN];   /* the latest ("" if none) */
    unsigned events;            /* how many so far */
    vc_session_event_fn on_event;   /* may be NULL; called with each event's text */
    void *event_ctx;
} vc_session;

/* An empty session over m (its KV cache is not touched); mem_budget as
 * for vc_mem_under_pressure, the image cache budget VC_SESSION_CACHE_BYTES. */
void vc_session_init(vc_session *s, vc_model *m, size_t mem_budget);
/* Frees the cache and the record (the model stays as it is). */
void vc_session_free(vc_session *s);
/* Forgets everything: the KV cache (truncated to 0) and every cached image,
 * pinned or not. Counters and events stay. */
void vc_session_reset(vc_session *s);
/* Forgets what the KV cache holds, so that the next turn feeds its whole
 * prompt (for a client whose earlier positions shifted). */
void vc_session_forget(vc_session *s);

/* The identity of an image: a hash of its size and pixels. */
uint64_t vc_session_pixel_hash(const vc_image *img);
/* The encoded image with this pixel hash if the cache holds it: *out gets a
 * shallow copy (valid while the entry is cached), the entry is pinned and
 * counted as a hit. False if not cached. */
bool vc_session_find_image(vc_session *s, uint64_t key, vc_image_embd *out);
/* The same, encoding pixels (whose hash is key) and caching the result on
 * a miss. Fails (-1) if encoding or caching fails. */
int vc_session_image(vc_session *s, const vc_image *pixels, uint64_t key, vc_image_embd *out);
/* Bytes held by cached images. */
size_t vc_session_image_bytes(const vc_session *s);

/* Lines the KV cache up with a prompt: keeps the longest prefix of ids it
 * holds (image tokens only where they come from the same image: keys[k] is
 * the pixel hash of images[k]), truncates the cache to it and builds the
 * input embeddings when images take part.  ids, images and keys must stay
 * valid until vc_session_run returns.  *reused gets the tokens kept (always
 * fewer than n: the last position runs to give logits).  On failure the
 * record of the KV cache is forgotten and nothing may run. */
int vc_session_prepare(vc_session *s, const int32_t *ids, size_t n, const vc_image_embd *images,
                       const uint64_t *keys, int n_images, size_t *reused);
/* Feeds the prompt that vc_session_prepare left over and generates with opt
 * (its prompt_embd is the session's). Then records what the KV cache holds:
 * the prompt and the part of the reply fed back, if anything was generated;
 * otherwise the KV cache is forgotten and truncated. Returns vc_generate's
 * result; res is filled as vc_generate fills it. */
int vc_session_run(vc_session *s, const vc_gen_options *opt, vc_gen_result *res);
/* Ends a turn (also a failed one): unpins every image and trims the cache
 * to cache_budget, least recently used first. */
void vc_session_end_turn(vc_session *s);

/* Under memory pressure (vc_mem_under_pressure(mem_budget)) drops every
 * unpinned cached image and returns freed memory to the system; reports
 * "dropped N cached images (X MiB) under memory pressure, RSS now Y MiB"
 * when any were dropped. Returns true if memory was short. */
bool vc_session_check_pressure(vc_session *s);
/* Reports a cleanup event (counted, kept as the latest, passed to on_event). */
void vc_session_event(vc_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
