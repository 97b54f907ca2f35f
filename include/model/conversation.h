/* conversation.h - a multi-turn conversation over one model's KV cache.
 *
 * The conversation keeps the turns and the images' files and renders the
 * whole conversation with the chat format each turn; its session
 * (model/session.h) keeps the longest prefix of tokens already in the KV
 * cache and feeds only the rest, so earlier turns and images cost nothing
 * again (no re-encoding, no re-prefill).  Encoded images live in the
 * session's cache, keyed by their pixels; images it no longer holds are
 * loaded from their files and encoded again when the conversation is
 * rendered (after memory pressure dropped them, or when the oldest turns
 * must leave a full context).  Leaving a full context is reported as a
 * session event, as is dropping images under memory pressure.
 */
#ifndef VC_MODEL_CONVERSATION_H
#define VC_MODEL_CONVERSATION_H

#include "model/generate.h"
#include "model/prompt.h"
#include "model/session.h"

typedef struct {
    char *role, *content;
    int n_images;
} vc_turn;

typedef struct {
    uint64_t key;               /* pixel hash: the image in the session's cache */
    int n_tokens;
} vc_conv_image;

typedef struct {
    vc_model *m;
    vc_session session;         /* KV cache, image cache, memory/context events */
    char *system;
    vc_turn *turns;
    size_t n_turns, cap_turns;
    vc_conv_image *images;      /* every image of the conversation, in order */
    char **image_paths;
    int n_images, cap_images, used_images;   /* used: attached to a sent message */
} vc_conversation;

/* An empty conversation; its session's memory budget is m->budget. */
void vc_conv_init(vc_conversation *c, vc_model *m);
/* Frees the conversation after clearing it as vc_conv_clear does. */
void vc_conv_free(vc_conversation *c);
/* Forgets everything: turns, images, the KV cache, the image cache. */
void vc_conv_clear(vc_conversation *c);
/* Sets (or with NULL removes) the system message; takes effect next turn. */
int vc_conv_set_system(vc_conversation *c, const char *text);
/* Loads and encodes an image for the next user message (kept in the
 * session's cache, pinned until the message has been sent). */
int vc_conv_attach(vc_conversation *c, const char *path);
/* Images attached but not yet sent. */
int vc_conv_pending(const vc_conversation *c);
/* Adds a turn without generating (restoring a saved conversation); the
 * last n_images attached images belong to it. */
int vc_conv_add_turn(vc_conversation *c, const char *role, const char *content, int n_images);
/* Replaces the conversation with a saved one (the /save format:
 * {"system": TEXT, "turns": [{"role", "content", "images": [PATHS]}]}),
 * re-encoding its images. Fails on a malformed document. */
int vc_conv_load_json(vc_conversation *c, const char *text, size_t len, const char *origin);
/* Sends a user message (with the pending images) and generates the reply,
 * which is appended as the assistant turn (also when interrupted). When the
 * conversation outgrows the context the oldest exchanges are dropped (an
 * event). On failure the message is taken back and its images are pending
 * again. */
int vc_conv_turn(vc_conversation *c, const char *text, const vc_gen_options *opt, vc_gen_result *res);

#endif
