/* locate.h - finding a model from what --model says.
 *
 * An existing file or directory is used as given.  Otherwise the value is a
 * name, looked up as a directory NAME in, in order: ./configs, the XDG config
 * dir ($XDG_CONFIG_HOME/vlmchat or ~/.config/vlmchat), the configs folder
 * beside the program (build/../configs, for a checkout), and the installed
 * share dir.  No --model means the bundled demo model, "demo".
 */
#ifndef VC_APP_LOCATE_H
#define VC_APP_LOCATE_H

#include <stddef.h>

#define VC_DEFAULT_MODEL "demo"

/* Writes the model's path to out. On failure records a message listing the
 * places searched (exit class VC_EXIT_MODEL). */
int vc_locate_model(const char *arg, char *out, size_t out_size);

#endif
