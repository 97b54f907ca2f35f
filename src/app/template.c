/* template.c - see include/app/template.h */
#include <jansson.h>

#include "app/template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "text/chat.h"
#include "text/jinja.h"

json_t *vc_read_json_array(const char *path, const char *what)
{
    json_error_t err;
    json_t *j = json_load_file(path, JSON_DECODE_ANY, &err);
    if (!j) {
        vc_fail_code(VC_EXIT_INPUT, "%s %s: %s (line %d)", what, path, err.text, err.line);
        return NULL;
    }
    if (!json_is_array(j)) {
        json_decref(j);
        vc_fail_code(VC_EXIT_INPUT, "%s %s: expected a JSON array", what, path);
        return NULL;
    }
    return j;
}

/* --var NAME=JSON into vars. */
static int set_var(json_t *vars, const char *spec)
{
    const char *eq = strchr(spec, '=');
    char name[256];
    size_t n = (size_t)(eq - spec);
    if (n >= sizeof name)
        return vc_fail_code(VC_EXIT_USAGE, "--var: name too long");
    memcpy(name, spec, n);
    name[n] = 0;
    json_error_t err;
    json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, &err);
    if (!v)
        return vc_fail_code(VC_EXIT_USAGE, "--var %s: not JSON: %s", name, err.text);
    if (json_object_set_new(vars, name, v) != 0)
        return vc_fail("out of memory");
    return 0;
}

int vc_run_template(const vc_cli *cli)
{
    size_t len;
    char *src = vc_read_file(cli->template_file, &len);
    if (!src)
        return vc_fail_code(VC_EXIT_INPUT, "%s", vc_error());
    vc_jinja *t = NULL;
    json_t *messages = cli->messages ? vc_read_json_array(cli->messages, "--messages") : json_array();
    json_t *tools = cli->tools ? vc_read_json_array(cli->tools, "--tools") : NULL;
    json_t *vars = NULL;
    int rc = messages && (tools || !cli->tools) ? 0 : -1;
    if (rc == 0 && vc_jinja_parse(src, len, &t) != 0)
        rc = vc_fail_ctx("%s", cli->template_file);
    if (rc == 0) {
        vars = vc_chat_template_vars(messages, tools, !cli->no_gen_prompt, cli->bos, cli->eos, NULL, NULL);
        messages = NULL;   /* taken over */
        rc = vars ? 0 : -1;
    }
    for (int i = 0; rc == 0 && i < cli->n_vars; i++)
        rc = set_var(vars, cli->vars[i]);
    char *out = NULL;
    size_t out_len = 0;
    if (rc == 0)
        rc = vc_jinja_render(t, vars, &out, &out_len);
    if (rc == 0 && ((out_len && fwrite(out, 1, out_len, stdout) != out_len) || fflush(stdout) != 0))
        rc = vc_fail("writing standard output failed");
    free(out);
    json_decref(vars);
    json_decref(messages);
    json_decref(tools);
    vc_jinja_free(t);
    free(src);
    return rc;
}
