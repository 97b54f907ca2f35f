/* serve.h - `vlmchat --serve`: the command-line side of the HTTP server. */
#ifndef VC_APP_SERVE_H
#define VC_APP_SERVE_H

#include <signal.h>

#include "app/cli.h"
#include "model/model.h"

/* The name clients see for --model ARG: a preset's name, or the file or
 * directory name of a path (written into name). */
void vc_serve_model_name(const char *arg, char *name, size_t cap);
/* Serves until SIGINT/SIGTERM; 0 then, -1 (the exit class recorded) if
 * the server cannot start or fails. */
int vc_run_serve(vc_model *m, const vc_cli *cli, volatile sig_atomic_t *interrupt);

#endif
