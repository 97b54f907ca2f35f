/* overlay.h - drawing detected objects over an image before it is previewed.
 *
 * Boxes are outlined and points drawn as filled discs with a dark ring, each
 * object in the next colour of a fixed palette, with a line width that stays
 * visible once the preview scales the image to a few dozen character cells.
 * Drawing into the pixels serves both previews (sixel and half-blocks).
 */
#ifndef VC_TUI_OVERLAY_H
#define VC_TUI_OVERLAY_H

#include "image/image.h"
#include "model/skills.h"

/* Line width (pixels) for an image shown max_cols cells wide with cells of
 * cell_w pixels: about two pixels of the preview, at least one. */
int vc_overlay_width(const vc_image *img, int max_cols, int cell_w);
/* Colour of object i (RGB). */
void vc_overlay_color(int i, unsigned char rgb[3]);
/* Draws regions (normalized to [0, 1] of img) with lines `width` pixels wide;
 * parts outside the image are clipped. */
void vc_overlay_regions(vc_image *img, const vc_region *r, int n, int width);

#endif
