/* serve.c - see include/app/serve.h */
#include "app/serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/locate.h"
#include "app/scripted.h"
#include "core/common.h"
#include "serve/server.h"

void vc_serve_model_name(const char *arg, char *name, size_t cap)
{
    const char *s = arg ? arg : VC_DEFAULT_MODEL;
    size_t len = strlen(s);
    while (len > 1 && s[len - 1] == '/')
        len--;
    size_t start = len;
    while (start > 0 && s[start - 1] != '/')
        start--;
    snprintf(name, cap, "%.*s", (int)(len - start), s + start);
}

int vc_run_serve(vc_model *m, const vc_cli *cli, volatile sig_atomic_t *interrupt)
{
    char name[256];
    vc_serve_model_name(cli->model, name, sizeof name);
    vc_image_limits limits = vc_image_default_limits();
    if ((int64_t)cli->max_image_pixels < limits.max_pixels)
        limits.max_pixels = (int64_t)cli->max_image_pixels;
    const char *key = cli->api_key ? cli->api_key : getenv("VLMCHAT_API_KEY");
    vc_serve_options opt = {
        .listen = cli->serve,
        .api_key = key && *key ? key : NULL,
        .allow_files = cli->allow_files,
        .max_body = cli->max_body,
        .image_limits = limits,
        .engine = { .model_name = name, .max_queue = cli->queue, .sampling = vc_effective_sampling(m, cli),
                    .max_tokens = cli->set_max_tokens ? cli->max_tokens : 0, .budget = m->budget,
                    .verbose = cli->verbose },
    };
    return vc_serve(m, &opt, interrupt);
}
