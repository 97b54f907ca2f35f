/* preview.h - showing an image in the terminal.
 *
 * Sixel (libsixel) when the terminal says it speaks it (DA1 attribute 4),
 * otherwise coloured half-blocks (each character cell shows two pixels with
 * "▀": foreground above, background below), and nothing when output is not a
 * terminal or NO_COLOR is set.
 */
#ifndef VC_TUI_PREVIEW_H
#define VC_TUI_PREVIEW_H

#include <stdio.h>

#include "image/image.h"

typedef enum { VC_PREVIEW_NONE, VC_PREVIEW_BLOCKS, VC_PREVIEW_SIXEL } vc_preview_mode;

/* Asks the terminal on in_fd/out_fd (DA1) whether it shows sixels; also
 * reads the character cell size in pixels (defaults 10x20). Waits at most
 * timeout_ms for an answer. */
vc_preview_mode vc_preview_detect(int in_fd, int out_fd, int timeout_ms, int *cell_w, int *cell_h);
/* Parses a preview mode name: "auto" (-1), "none", "blocks", "sixel". -2 if unknown. */
int vc_preview_from_name(const char *name);
/* Draws img scaled to fit max_cols x max_rows character cells. */
int vc_preview_show(FILE *out, const vc_image *img, vc_preview_mode mode, int max_cols, int max_rows, int cell_w,
                    int cell_h);

#endif
