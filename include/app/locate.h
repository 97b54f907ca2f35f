/* locate.h - finding a model from what --model says.
 *
 * An existing file or directory is used as given.  Otherwise the value is a
 * name, looked up in ./configs, the XDG config dir ($XDG_CONFIG_HOME/vlmchat
 * or ~/.config/vlmchat), the configs folder beside the program (for a
 * checkout) and the installed share dir, in that order, as either
 *  - a directory NAME holding the model itself (the bundled "demo"), or
 *  - a preset NAME.json: where the weights live ("path", relative to
 *    $XDG_DATA_HOME/vlmchat/models, ~/.local/share/vlmchat/models), where
 *    to get them ("source", "files"), and defaults ("template",
 *    "generation.temperature", "memory.ctx").
 * No --model means "demo".  A preset whose weights are missing fails with
 * the files to download, from where, and the directory to put them in.
 */
#ifndef VC_APP_LOCATE_H
#define VC_APP_LOCATE_H

#include <stdbool.h>
#include <stddef.h>

#define VC_DEFAULT_MODEL "demo"

typedef struct {
    char path[4096];
    char template_name[32];    /* "" if the preset names none */
    int n_ctx;                 /* 0 if none */
    float temperature;
    bool has_temperature;
    char stop[4][32];          /* "generation": {"stop": [...]}: token texts that end a reply */
    int n_stop;
} vc_model_ref;

/* Fills ref. On failure records a one-line message (exit class VC_EXIT_MODEL). */
int vc_locate_model(const char *arg, vc_model_ref *ref);

#endif
