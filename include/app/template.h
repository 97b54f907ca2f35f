/* template.h - `vlmchat template FILE`: a chat template's rendering.
 *
 * Renders FILE with the messages of --messages (a JSON array; [] without
 * it), the tool schemas of --tools, bos_token/eos_token from --bos/--eos,
 * add_generation_prompt (true unless --no-generation-prompt) and each
 * --var NAME=JSON, as transformers' apply_chat_template renders it, and
 * writes the text to stdout byte for byte, nothing added.  On any error
 * (a syntax error, raise_exception, a type error) nothing is written.
 */
#ifndef VC_APP_TEMPLATE_H
#define VC_APP_TEMPLATE_H

#include "app/cli.h"

/* Returns 0, or -1 with the error recorded (class VC_EXIT_INPUT for the
 * template and its inputs). */
int vc_run_template(const vc_cli *cli);
/* Reads a JSON file whose top level must be an array (what names it for errors). */
json_t *vc_read_json_array(const char *path, const char *what);

#endif
