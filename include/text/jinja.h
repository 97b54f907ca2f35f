/* jinja.h - a Jinja2 interpreter for chat templates.
 *
 * Renders a template as transformers' apply_chat_template does: jinja2's
 * ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and the
 * loopcontrols extension, the `{% generation %}` tag (renders its body),
 * `tojson` as Python's json.dumps(ensure_ascii=False, ...), and the globals
 * raise_exception(msg) and strftime_now(fmt).  Values print as Python prints
 * them (str() of lists, dicts, floats, True and None), undefined names follow
 * jinja2's default Undefined, and mutating methods (list.append, dict.pop)
 * fail as the immutable sandbox makes them fail.
 *
 * Out of scope: template inheritance and includes (no loader), autoescaping,
 * the i18n extension.  A template using them fails to parse, as a real
 * environment without a loader fails.
 *
 * Errors (syntax errors, raise_exception, type errors, undefined access, the
 * resource limits below) are recorded with vc_fail_code(VC_EXIT_INPUT, ...)
 * as one line, and the function returns -1.
 */
#ifndef VC_TEXT_JINJA_H
#define VC_TEXT_JINJA_H

#include <jansson.h>
#include <stddef.h>

typedef struct vc_jinja vc_jinja;

/* Parses a template (len bytes, NUL bytes allowed). On success *out is the
 * compiled template (free with vc_jinja_free); unknown filters and tests
 * outside conditional branches are errors here, as jinja2 reports them at
 * compile time. */
int vc_jinja_parse(const char *src, size_t len, vc_jinja **out);
void vc_jinja_free(vc_jinja *t);

/* Renders with the members of the JSON object vars as the template's
 * variables (JSON null is None, arrays lists, objects dicts in their order).
 * *out gets the malloc'd, NUL-terminated text and *len its length (the text
 * may contain NUL bytes).  Rendering is bounded: about 256 MiB of values,
 * 64 MiB of output and a nesting of 256 macro calls; past them it fails. */
int vc_jinja_render(const vc_jinja *t, const json_t *vars, char **out, size_t *len);

#endif
