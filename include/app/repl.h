/* repl.h - the interactive chat: readline prompt, commands, streaming
 * replies, image previews and a live status bar.
 *
 * Commands: /image PATH..., /images, /clear, /stats, /set [KEY VALUE],
 * /system [TEXT], /save FILE, /load FILE, /model, /help, /quit.  A line
 * ending in a backslash continues on the next line.  Ctrl-C stops a reply
 * (or clears the line); Ctrl-D quits.  History is kept in
 * $XDG_STATE_HOME/vlmchat/history (~/.local/state/vlmchat/history).
 */
#ifndef VC_APP_REPL_H
#define VC_APP_REPL_H

#include <signal.h>

#include "app/cli.h"
#include "model/model.h"

/* Chats until /quit, Ctrl-D or SIGTERM (errors within the chat are shown
 * and the chat goes on). 0, or -1 with VC_EXIT_INTERRUPTED recorded after
 * SIGTERM. */
int vc_run_repl(vc_model *m, const vc_cli *cli, volatile sig_atomic_t *interrupt);

#endif
