/* messages.h - a conversation from an OpenAI-style messages file (--messages).
 *
 * The file is a JSON array of {"role", "content"} objects; content is a
 * string or a list of parts: {"type": "text", "text"}, {"type": "image_url",
 * "image_url": {"url"}} (or "image_url": URL) with a file path, a file://
 * URL or a base64 data: URL, and {"type": "image"} with "image", "path" or
 * "url".  Other fields (tool_calls, tool_call_id, name, ...) pass through to
 * the chat template.  The REPL's /save writes this format, so a saved chat
 * replays with --messages.
 */
#ifndef VC_APP_MESSAGES_H
#define VC_APP_MESSAGES_H

#include <jansson.h>

#include "model/prompt.h"

typedef struct {
    json_t *messages;      /* as the template sees them: image parts as {"type": "image"} */
    vc_image_embd *images; /* every image part, encoded, in order */
    int n_images;
} vc_messages;

/* Reads and checks the file, then loads and encodes its images for m (with
 * no model, m NULL, images are only checked for a source). Errors have exit
 * class VC_EXIT_INPUT and name the message. */
int vc_messages_load(const char *path, const vc_model *m, vc_messages *out);
void vc_messages_free(vc_messages *msgs);

#endif
