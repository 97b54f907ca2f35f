/* repl_skills.c - see include/app/repl_skills.h */
#include "app/repl_skills.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "model/skills.h"
#include "tui/overlay.h"

bool vc_repl_is_skill(const char *cmd)
{
    return strcmp(cmd, "/caption") == 0 || strcmp(cmd, "/detect") == 0 || strcmp(cmd, "/point") == 0;
}

static int on_text(void *ctx, const char *text, size_t len)
{
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

/* The image again, with the regions drawn over it, as a preview. */
static void show(const vc_repl_skill_ctx *c, const vc_region *r, int n)
{
    vc_image img;
    if (c->preview == VC_PREVIEW_NONE || vc_image_load(c->image_path, NULL, &img) != 0)
        return;
    vc_overlay_regions(&img, r, n, vc_overlay_width(&img, c->cols, c->cell_w));
    vc_preview_show(stdout, &img, c->preview, c->cols, 12, c->cell_w, c->cell_h);
    vc_image_free(&img);
}

static void list(const vc_region *r, int n, int w, int h, const char *object)
{
    if (n == 0)
        printf("no %s found\n", object);
    for (int i = 0; i < n; i++) {
        unsigned char rgb[3];
        vc_overlay_color(i, rgb);
        /* the colour swatch matches the drawing */
        printf("\033[38;2;%d;%d;%dm\u25a0\033[0m %d: ", rgb[0], rgb[1], rgb[2], i + 1);
        if (r[i].box)
            printf("box %.3f,%.3f to %.3f,%.3f (pixels %.0f,%.0f to %.0f,%.0f)\n", r[i].x_min, r[i].y_min, r[i].x_max,
                   r[i].y_max, r[i].x_min * w, r[i].y_min * h, r[i].x_max * w, r[i].y_max * h);
        else
            printf("point %.3f,%.3f (pixels %.0f,%.0f)\n", r[i].x, r[i].y, r[i].x * w, r[i].y * h);
    }
}

int vc_repl_skill(const vc_repl_skill_ctx *c, const char *cmd, const char *args)
{
    if (!vc_skill_supported(c->m))
        return vc_fail_code(VC_EXIT_USAGE, "%s is for models with skills (Moondream2)", cmd);
    if (!c->image)
        return vc_fail_code(VC_EXIT_USAGE, "%s needs an image: /image PATH first", cmd);
    bool caption = strcmp(cmd, "/caption") == 0;
    if (!caption && !*args)
        return vc_fail_code(VC_EXIT_USAGE, "%s OBJECT: what to look for", cmd);
    int prefix;
    if (vc_skill_prefix(c->m, c->image, &prefix) != 0)
        return -1;
    int rc;
    if (caption) {
        vc_gen_options opt = { .max_tokens = c->max_tokens, .sampling = c->sampling, .on_text = on_text,
                               .interrupt = c->interrupt };
        vc_gen_result r;
        rc = vc_skill_text(c->m, prefix, "caption", *args ? args : "normal", &opt, &r);
        printf("\n");
        vc_gen_result_free(&r);
    } else {
        vc_region *r;
        int n;
        rc = vc_skill_regions(c->m, prefix, cmd + 1, args, 50, &r, &n);
        if (rc == 0) {
            vc_image img;
            int w = 0, h = 0;
            if (vc_image_load(c->image_path, NULL, &img) == 0) {
                w = img.width;
                h = img.height;
                vc_image_free(&img);
            }
            show(c, r, n);
            list(r, n, w, h, args);
            free(r);
        }
    }
    vc_llm_truncate(&c->m->llm, 0);   /* the conversation re-reads its prompt next time */
    return rc;
}
