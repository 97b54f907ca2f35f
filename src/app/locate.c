/* locate.c - see include/app/locate.h */
#define _POSIX_C_SOURCE 200809L
#include "app/locate.h"

#include <float.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/common.h"
#include "core/json.h"

#ifndef VLMCHAT_DATADIR
#define VLMCHAT_DATADIR "/usr/local/share/vlmchat"
#endif

#define MAX_PLACES 4

static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The directory holding the running program. */
static bool exe_dir(char *out, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", out, size - 1);
    if (n <= 0)
        return false;
    out[n] = 0;
    char *slash = strrchr(out, '/');
    if (!slash)
        return false;
    *slash = 0;
    return true;
}

/* The folders names are looked up in, in order. */
static int config_dirs(char dirs[MAX_PLACES][1024])
{
    int n = 0;
    snprintf(dirs[n++], 1024, "configs");
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(dirs[n++], 1024, "%s/vlmchat", xdg);
    else if (home && *home)
        snprintf(dirs[n++], 1024, "%s/.config/vlmchat", home);
    char exe[900];
    if (exe_dir(exe, sizeof exe))
        snprintf(dirs[n++], 1024, "%s/../configs", exe);
    snprintf(dirs[n++], 1024, "%s/configs", VLMCHAT_DATADIR);
    return n;
}

/* Where preset weights live: $XDG_DATA_HOME/vlmchat/models or ~/.local/share/vlmchat/models. */
static void models_dir(char *out, size_t size)
{
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(out, size, "%s/vlmchat/models", xdg);
    else
        snprintf(out, size, "%s/.local/share/vlmchat/models", home && *home ? home : ".");
}

static int use_preset(const char *name, const char *file, vc_model_ref *ref)
{
    json_error_t err;
    json_t *p = json_load_file(file, 0, &err);
    const char *path = json_string_value(json_object_get(p, "path"));
    if (!p || !path || !*path) {
        json_decref(p);
        return vc_fail_code(VC_EXIT_MODEL, "%s: not a valid preset (%s)", file, p ? "no \"path\"" : err.text);
    }
    char base[PATH_MAX];
    models_dir(base, sizeof base);
    if (path[0] == '/')
        snprintf(ref->path, sizeof ref->path, "%s", path);
    else
        snprintf(ref->path, sizeof ref->path, "%.2000s/%.2000s", base, path);
    const char *tpl = json_string_value(json_object_get(p, "template"));
    if (tpl)
        snprintf(ref->template_name, sizeof ref->template_name, "%s", tpl);
    json_t *gen = json_object_get(p, "generation");
    double temp;
    if (vc_json_get_int(json_object_get(p, "memory"), "ctx", 0, INT_MAX, 0, &ref->n_ctx) != 0 ||
        vc_json_get_num(gen, "temperature", 0, DBL_MAX, 0, &temp) != 0) {
        json_decref(p);
        return vc_fail_ctx("%s", file);
    }
    ref->has_temperature = vc_json_has(gen, "temperature");
    ref->temperature = (float)temp;
    json_t *stop = json_object_get(gen, "stop"), *st;
    size_t si;
    ref->n_stop = 0;
    json_array_foreach(stop, si, st)
        if (json_is_string(st) && ref->n_stop < 4 && strlen(json_string_value(st)) < sizeof ref->stop[0])
            snprintf(ref->stop[ref->n_stop++], sizeof ref->stop[0], "%s", json_string_value(st));
    int rc = 0;
    if (!exists(ref->path)) {
        vc_buf files = { 0 };
        json_t *f;
        size_t i;
        json_array_foreach(json_object_get(p, "files"), i, f)
            vc_buf_printf(&files, "%s%s", i ? ", " : "", json_string_value(f) ? json_string_value(f) : "?");
        const char *src = json_string_value(json_object_get(p, "source"));
        const char *note = json_string_value(json_object_get(p, "note"));
        rc = vc_fail_code(VC_EXIT_MODEL, "model '%s' is not downloaded: get %s from %s and put them in %s%s%s", name,
                          files.data ? files.data : "its files", src ? src : "its source", ref->path, note ? ". " : "",
                          note ? note : "");
        vc_buf_free(&files);
    }
    json_decref(p);
    return rc;
}

int vc_locate_model(const char *arg, vc_model_ref *ref)
{
    memset(ref, 0, sizeof *ref);
    const char *name = arg ? arg : VC_DEFAULT_MODEL;
    if (arg && (exists(arg) || strchr(arg, '/'))) {
        if (!exists(arg))
            return vc_fail_code(VC_EXIT_MODEL, "%s: no such file or directory", arg);
        snprintf(ref->path, sizeof ref->path, "%s", arg);
        return 0;
    }
    char dirs[MAX_PLACES][1024], candidate[2048];
    int n = config_dirs(dirs);
    for (int i = 0; i < n; i++) {
        snprintf(candidate, sizeof candidate, "%.1024s/%.900s", dirs[i], name);
        if (is_dir(candidate)) {
            snprintf(ref->path, sizeof ref->path, "%s", candidate);
            return 0;
        }
        snprintf(candidate, sizeof candidate, "%.1024s/%.900s.json", dirs[i], name);
        if (exists(candidate))
            return use_preset(name, candidate, ref);
    }
    vc_buf b = { 0 };
    for (int i = 0; i < n; i++)
        vc_buf_printf(&b, "%s%s/%s", i ? ", " : "", dirs[i], name);
    vc_fail_code(VC_EXIT_MODEL, "model '%s' not found (looked for a model folder or preset in %s); pass --model with a "
                 "GGUF file or an HF model directory", name, b.data ? b.data : "");
    vc_buf_free(&b);
    return -1;
}
