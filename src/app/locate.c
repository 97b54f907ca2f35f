/* locate.c - see include/app/locate.h */
#define _POSIX_C_SOURCE 200809L
#include "app/locate.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/common.h"

#ifndef VLMCHAT_DATADIR
#define VLMCHAT_DATADIR "/usr/local/share/vlmchat"
#endif

static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
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

int vc_locate_model(const char *arg, char *out, size_t out_size)
{
    const char *name = arg ? arg : VC_DEFAULT_MODEL;
    if (arg && (exists(arg) || strchr(arg, '/'))) {
        if (!exists(arg))
            return vc_fail_code(VC_EXIT_MODEL, "%s: no such file or directory", arg);
        snprintf(out, out_size, "%s", arg);
        return 0;
    }
    char places[5][PATH_MAX + 64];
    int n = 0;
    snprintf(places[n++], sizeof places[0], "configs/%s", name);
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(places[n++], sizeof places[0], "%s/vlmchat/%s", xdg, name);
    else if (home && *home)
        snprintf(places[n++], sizeof places[0], "%s/.config/vlmchat/%s", home, name);
    char dir[PATH_MAX];
    if (exe_dir(dir, sizeof dir))
        snprintf(places[n++], sizeof places[0], "%s/../configs/%s", dir, name);
    snprintf(places[n++], sizeof places[0], "%s/configs/%s", VLMCHAT_DATADIR, name);
    for (int i = 0; i < n; i++)
        if (exists(places[i])) {
            snprintf(out, out_size, "%s", places[i]);
            return 0;
        }
    vc_buf b = { 0 };
    for (int i = 0; i < n; i++)
        vc_buf_printf(&b, "%s%s", i ? ", " : "", places[i]);
    vc_fail_code(VC_EXIT_MODEL, "model '%s' not found (looked in %s); pass --model with a GGUF file or an HF model "
                 "directory", name, b.data ? b.data : "");
    vc_buf_free(&b);
    return -1;
}
