/* scripted.h - the non-interactive mode: prompts in, answers out.
 *
 * Prompts come from --prompt, or from stdin (one per line, or all of it with
 * --whole-input).  Each prompt is a fresh conversation.  Plain output streams
 * the reply followed by a newline; --json prints one JSON object per prompt.
 */
#ifndef VC_APP_SCRIPTED_H
#define VC_APP_SCRIPTED_H

#include <signal.h>

#include "app/cli.h"
#include "model/model.h"

/* Answers every prompt. Fails (-1, the exit class recorded: VC_EXIT_INPUT
 * for bad input, VC_EXIT_INTERRUPTED when interrupted, ...) at the first
 * prompt that cannot be answered; main reports it. */
int vc_run_scripted(vc_model *m, const vc_cli *cli, volatile sig_atomic_t *interrupt);
/* Sampling settings: the model's generation_config defaults, overridden by
 * what the command line set. */
vc_sampler_params vc_effective_sampling(const vc_model *m, const vc_cli *cli);

#endif
