/* conversation.h - a multi-turn conversation over one model's KV cache.
 *
 * Each turn renders the whole conversation with the chat format, keeps the
 * longest prefix of tokens already in the KV cache and feeds only the rest,
 * so earlier turns and images cost nothing again (no re-encoding, no
 * re-prefill).  Encoded images are kept in an image cache so that the
 * conversation can be rebuilt when the oldest turns must leave a full
 * context; that, and dropping the cache, are reported as events.
 */
#ifndef VC_MODEL_CONVERSATION_H
#define VC_MODEL_CONVERSATION_H

#include "model/generate.h"
#include "model/prompt.h"

#define VC_EVENT_LEN 160

typedef struct {
    char *role, *content;
    int n_images;
} vc_turn;

typedef struct {
    vc_model *m;
    char *system;
    vc_turn *turns;
    size_t n_turns, cap_turns;
    vc_image_embd *images;      /* every image of the conversation, in order */
    char **image_paths;
    int n_images, cap_images, used_images;   /* used: attached to a sent message */
    int32_t *fed;               /* tokens in the KV cache, in order */
    size_t n_fed, cap_fed;
    char event[VC_EVENT_LEN];   /* the latest memory/context event ("" if none) */
    unsigned events;            /* how many events so far */
} vc_conversation;

void vc_conv_init(vc_conversation *c, vc_model *m);
void vc_conv_free(vc_conversation *c);
/* Forgets everything: turns, images, the KV cache. */
void vc_conv_clear(vc_conversation *c);
/* Sets (or with NULL removes) the system message; takes effect next turn. */
int vc_conv_set_system(vc_conversation *c, const char *text);
/* Loads and encodes an image for the next user message. */
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
 * which is appended as the assistant turn (also when interrupted). */
int vc_conv_turn(vc_conversation *c, const char *text, const vc_gen_options *opt, vc_gen_result *res);
/* Bytes held by encoded images. */
size_t vc_conv_image_bytes(const vc_conversation *c);
/* Drops cached image features no longer needed for the KV cache as it is
 * (they are re-encoded from their files if the conversation is rebuilt). */
void vc_conv_drop_image_cache(vc_conversation *c);

#endif
