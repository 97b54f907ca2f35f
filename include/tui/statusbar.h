/* statusbar.h - one line kept at the bottom of the terminal.
 *
 * The lines above it become a scroll region (terminfo csr), so text streams
 * and scrolls normally while the status line stays put.  Drawing saves and
 * restores the cursor.  Inactive when output is not a terminal or the
 * terminal cannot set a scroll region.
 */
#ifndef VC_TUI_STATUSBAR_H
#define VC_TUI_STATUSBAR_H

#include <stdbool.h>

typedef struct {
    bool active;
    int rows, cols;
    char last[512];
} vc_statusbar;

/* Takes over the bottom line of the terminal on stdout. */
void vc_statusbar_init(vc_statusbar *s);
/* Redraws with text (truncated to the width). */
void vc_statusbar_draw(vc_statusbar *s, const char *text);
/* Re-reads the terminal size and restores the region (after SIGWINCH). */
void vc_statusbar_resize(vc_statusbar *s);
/* Gives the whole terminal back. */
void vc_statusbar_end(vc_statusbar *s);

#endif
