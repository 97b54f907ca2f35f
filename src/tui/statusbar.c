/* statusbar.c - see include/tui/statusbar.h */
#define _POSIX_C_SOURCE 200809L
#include "tui/statusbar.h"

#include <curses.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <term.h>
#include <unistd.h>

static int put(int c) { return putchar(c); }

static void emit(const char *cap) { if (cap && cap != (char *)-1) tputs(cap, 1, put); }

static void set_region(vc_statusbar *s, int bottom)
{
    char *csr = tigetstr("csr");
    emit(tparm(csr, 0, bottom, 0, 0, 0, 0, 0, 0, 0));
}

void vc_statusbar_resize(vc_statusbar *s)
{
    struct winsize ws;
    if (!s->active)
        return;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 2 && ws.ws_col > 10) {
        s->rows = ws.ws_row;
        s->cols = ws.ws_col;
    }
    emit(tigetstr("sc"));
    set_region(s, s->rows - 2);
    emit(tigetstr("rc"));
    vc_statusbar_draw(s, s->last);
}

void vc_statusbar_init(vc_statusbar *s)
{
    memset(s, 0, sizeof *s);
    int err;
    if (!isatty(STDOUT_FILENO) || setupterm(NULL, STDOUT_FILENO, &err) != OK)
        return;
    char *csr = tigetstr("csr"), *cup = tigetstr("cup");
    if (!csr || csr == (char *)-1 || !cup || cup == (char *)-1)
        return;
    s->active = true;
    s->rows = 24;
    s->cols = 80;
    /* make room: scroll the screen up one line so the cursor is not on the bar */
    putchar('\n');
    emit(tigetstr("cuu1"));
    vc_statusbar_resize(s);
    fflush(stdout);
}

void vc_statusbar_draw(vc_statusbar *s, const char *text)
{
    if (!s->active)
        return;
    if (text != s->last)
        snprintf(s->last, sizeof s->last, "%s", text);
    emit(tigetstr("sc"));
    emit(tparm(tigetstr("cup"), s->rows - 1, 0, 0, 0, 0, 0, 0, 0, 0));
    emit(tigetstr("rev"));
    int width = s->cols - 1;
    printf("%-*.*s", width, width, s->last);
    emit(tigetstr("sgr0"));
    emit(tigetstr("rc"));
    fflush(stdout);
}

void vc_statusbar_end(vc_statusbar *s)
{
    if (!s->active)
        return;
    emit(tigetstr("sc"));
    set_region(s, s->rows - 1);
    emit(tparm(tigetstr("cup"), s->rows - 1, 0, 0, 0, 0, 0, 0, 0, 0));
    emit(tigetstr("el"));
    emit(tigetstr("rc"));
    fflush(stdout);
    s->active = false;
}
