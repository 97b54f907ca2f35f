/* task.c - see include/app/task.h */
#include "app/task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/scripted.h"
#include "core/buf.h"
#include "core/common.h"
#include "model/prompt.h"
#include "model/skills.h"

static int emit(const char *s, size_t n)
{
    if ((n && fwrite(s, 1, n, stdout) != n) || fflush(stdout) != 0)
        return -1;
    return 0;
}

static int on_text(void *ctx, const char *text, size_t len) { return emit(text, len) == 0 ? 0 : 1; }

static int print_regions(const vc_cli *cli, const char *arg, const vc_region *r, int n, int w, int h, double ms)
{
    vc_buf b = { 0 };
    if (cli->json) {
        vc_buf_printf(&b, "{\"task\":\"%s\",\"object\":", cli->task);
        vc_buf_json_string(&b, arg, strlen(arg));
        char *list = vc_skill_regions_json(r, n, w, h);
        if (!list) {
            vc_buf_free(&b);
            return -1;
        }
        vc_buf_printf(&b, ",\"image\":{\"width\":%d,\"height\":%d},\"%s\":%s", w, h,
                      strcmp(cli->task, "detect") == 0 ? "objects" : "points", list);
        free(list);
        vc_buf_printf(&b, ",\"timings\":{\"task_ms\":%.3f}}\n", ms);
    } else {
        for (int i = 0; i < n; i++) {
            if (r[i].box)
                vc_buf_printf(&b, "%d: box %.4f %.4f %.4f %.4f (pixels %.0f,%.0f to %.0f,%.0f)\n", i + 1, r[i].x_min,
                              r[i].y_min, r[i].x_max, r[i].y_max, r[i].x_min * w, r[i].y_min * h, r[i].x_max * w,
                              r[i].y_max * h);
            else
                vc_buf_printf(&b, "%d: point %.4f %.4f (pixels %.0f,%.0f)\n", i + 1, r[i].x, r[i].y, r[i].x * w,
                              r[i].y * h);
        }
        if (n == 0)
            vc_buf_printf(&b, "no %s found\n", arg);
    }
    size_t len;
    char *s = vc_buf_take(&b, &len);
    int rc = s ? emit(s, len) : -1;
    free(s);
    return rc;
}

static int print_text_json(const vc_cli *cli, const char *arg, const vc_gen_result *r, double encode_ms)
{
    vc_buf b = { 0 };
    vc_buf_printf(&b, "{\"task\":\"%s\",\"%s\":", cli->task, strcmp(cli->task, "caption") == 0 ? "length" : "question");
    vc_buf_json_string(&b, arg, strlen(arg));
    vc_buf_puts(&b, ",\"text\":");
    vc_buf_json_string(&b, r->text, r->text_len);
    vc_buf_puts(&b, ",\"tokens\":[");
    for (size_t i = 0; i < r->n_tokens; i++)
        vc_buf_printf(&b, "%s%d", i ? "," : "", r->tokens[i]);
    vc_buf_printf(&b, "],\"stop_reason\":\"%s\",\"timings\":{\"image_ms\":%.3f,\"prefill_ms\":%.3f,\"decode_ms\":%.3f}}\n",
                  vc_stop_reason_name(r->stop), encode_ms, r->prefill_ms, r->decode_ms);
    size_t len;
    char *s = vc_buf_take(&b, &len);
    int rc = s ? emit(s, len) : -1;
    free(s);
    return rc;
}

int vc_run_task(vc_model *m, const vc_cli *cli, volatile sig_atomic_t *interrupt)
{
    if (!vc_skill_supported(m))
        return vc_fail_code(VC_EXIT_USAGE, "%s: --task needs a model with skills (Moondream2)", m->path);
    bool caption = strcmp(cli->task, "caption") == 0, text = caption || strcmp(cli->task, "query") == 0;
    const char *arg = cli->prompt ? cli->prompt : caption ? "normal" : NULL;
    if (!arg)
        return vc_fail_code(VC_EXIT_USAGE, "--task %s needs --prompt (%s)", cli->task,
                            text ? "the question" : "the object");
    vc_image img;
    if (vc_image_load(cli->images[0], NULL, &img) != 0)
        return -1;
    vc_image_embd e;
    double t0 = vc_now_ms();
    int prefix, rc = vc_model_encode_pixels(m, &img, &e);
    if (rc == 0)
        rc = vc_skill_prefix(m, &e, &prefix);
    double encode_ms = vc_now_ms() - t0;
    if (rc == 0 && cli->verbose)
        fprintf(stderr, "vlmchat: %s: %d image rows and the prefix in %.1f ms\n", cli->images[0], e.n_tokens, encode_ms);
    if (rc == 0 && text) {
        vc_gen_options opt = { .max_tokens = cli->set_max_tokens ? cli->max_tokens : 768,   /* DEFAULT_MAX_TOKENS */
                               .sampling = vc_effective_sampling(m, cli), .on_text = cli->json ? NULL : on_text,
                               .interrupt = interrupt };
        vc_gen_result r;
        rc = vc_skill_text(m, prefix, cli->task, arg, &opt, &r);
        if (rc == 0)
            rc = cli->json ? print_text_json(cli, arg, &r, encode_ms) : emit("\n", 1);
        vc_gen_result_free(&r);
    } else if (rc == 0) {
        vc_region *regions;
        int n;
        t0 = vc_now_ms();
        rc = vc_skill_regions(m, prefix, cli->task, arg, cli->max_objects, &regions, &n);
        if (rc == 0) {
            rc = print_regions(cli, arg, regions, n, img.width, img.height, vc_now_ms() - t0);
            free(regions);
        }
    }
    vc_image_embd_free(&e);
    vc_image_free(&img);
    return rc;
}
