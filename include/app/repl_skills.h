/* repl_skills.h - the REPL's skill commands (Moondream2):
 *
 *   /caption [short|normal|long]   caption the latest image
 *   /detect OBJECT                 boxes, drawn over the image's preview and listed
 *   /point OBJECT                  points, the same
 *
 * They run on the conversation's latest image (its encoded rows), outside the
 * conversation: nothing is added to it, and the cache is emptied afterwards
 * so the next chat message re-reads its prompt.
 */
#ifndef VC_APP_REPL_SKILLS_H
#define VC_APP_REPL_SKILLS_H

#include <signal.h>
#include <stdbool.h>

#include "model/generate.h"
#include "tui/preview.h"

typedef struct {
    vc_model *m;
    const char *image_path;          /* the latest image, for drawing */
    const vc_image_embd *image;      /* its rows */
    vc_sampler_params sampling;
    int max_tokens;
    vc_preview_mode preview;
    int cols, cell_w, cell_h;
    volatile sig_atomic_t *interrupt;
} vc_repl_skill_ctx;

/* True if cmd ("/caption", ...) is a skill command. */
bool vc_repl_is_skill(const char *cmd);
/* Runs one; messages for the user go to stdout. Returns 0, or -1 with the
 * error set (the REPL reports it and goes on). */
int vc_repl_skill(const vc_repl_skill_ctx *ctx, const char *cmd, const char *args);

#endif
