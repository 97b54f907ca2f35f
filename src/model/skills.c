/* skills.c - see include/model/skills.h; the detect/point loop is
 * moondream.py's _generate_points. */
#include "model/skills.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/common.h"

bool vc_skill_supported(const vc_model *m) { return m->vision && m->vision->family->task_ids; }

static int need_skills(const vc_model *m)
{
    if (!vc_skill_supported(m))
        return vc_fail_code(VC_EXIT_USAGE, "%s: this model has no caption/detect/point skills (Moondream2 has)",
                            m->path ? m->path : "model");
    return 0;
}

int vc_skill_prefix(vc_model *m, const vc_image_embd *image, int *prefix)
{
    if (need_skills(m) != 0)
        return -1;
    int dim = m->llm.cfg.dim, n = 1 + image->n_tokens;
    float *embd = vc_malloc((size_t)n * dim * sizeof(float));
    if (!embd)
        return -1;
    vc_llm_truncate(&m->llm, 0);
    int rc = vc_llm_embed(&m->llm, m->vision->bos_id, embd);
    if (rc == 0) {
        memcpy(embd + dim, image->embd, (size_t)image->n_tokens * dim * sizeof(float));
        rc = vc_llm_forward_embd(&m->llm, embd, n, NULL);
    }
    free(embd);
    if (rc == 0)
        *prefix = n;
    return rc;
}

int vc_skill_prompt(const vc_model *m, const char *task, const char *arg, int32_t **ids, size_t *n)
{
    if (need_skills(m) != 0)
        return -1;
    return m->vision->family->task_ids(m->vision, task, arg, ids, n);
}

int vc_skill_text(vc_model *m, int prefix, const char *task, const char *arg, const vc_gen_options *opt,
                  vc_gen_result *r)
{
    memset(r, 0, sizeof *r);
    if (strcmp(task, "caption") != 0 && strcmp(task, "query") != 0)
        return vc_fail_code(VC_EXIT_USAGE, "task '%s' is not a text skill (caption, query)", task);
    int32_t *ids;
    size_t n;
    if (vc_skill_prompt(m, task, arg, &ids, &n) != 0)
        return -1;
    vc_llm_truncate(&m->llm, prefix);
    int rc = m->llm.n_past == prefix ? vc_generate(m, ids, n, opt, r)
                                     : vc_fail("the image prefix is not in the cache (run vc_skill_prefix)");
    free(ids);
    return rc;
}

static int argmax(const float *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

typedef struct {
    vc_model *m;
    float *logits, *hidden, *row;
} loop_t;

/* One input row; the next hidden state (and logits). */
static int step(loop_t *L)
{
    if (L->m->llm.n_past >= L->m->llm.n_ctx)
        return vc_fail_code(VC_EXIT_INPUT, "context is full while listing objects");
    return vc_llm_forward_embd_hidden(&L->m->llm, L->row, 1, L->logits, L->hidden);
}

int vc_skill_regions(vc_model *m, int prefix, const char *task, const char *object, int max_objects,
                     vc_region **out, int *n_out)
{
    *out = NULL;
    *n_out = 0;
    bool det = strcmp(task, "detect") == 0;
    if (!det && strcmp(task, "point") != 0)
        return vc_fail_code(VC_EXIT_USAGE, "task '%s' is not a region skill (detect, point)", task);
    if (need_skills(m) != 0)
        return -1;
    const vc_vision_family *f = m->vision->family;
    const void *st = m->vision->state;
    int32_t *ids;
    size_t n;
    if (vc_skill_prompt(m, task, object, &ids, &n) != 0)
        return -1;
    int dim = m->llm.cfg.dim, V = m->llm.cfg.n_vocab, count = 0;
    size_t cap = 0;
    loop_t L = { m, vc_malloc((size_t)V * sizeof(float)), vc_malloc((size_t)dim * sizeof(float)),
                 vc_malloc((size_t)dim * sizeof(float)) };
    float *embd = vc_malloc(n * (size_t)dim * sizeof(float));
    vc_region *list = NULL;
    int rc = L.logits && L.hidden && L.row && embd ? 0 : -1;
    vc_llm_truncate(&m->llm, prefix);
    if (rc == 0 && m->llm.n_past != prefix)
        rc = vc_fail("the image prefix is not in the cache (run vc_skill_prefix)");
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = vc_llm_embed(&m->llm, ids[i], embd + i * dim);
    if (rc == 0)
        rc = vc_llm_forward_embd_hidden(&m->llm, embd, (int)n, L.logits, L.hidden);
    int32_t next = rc == 0 ? argmax(L.logits, V) : -1;
    while (rc == 0 && next != m->vision->eos_id && count < max_objects) {
        vc_region r = { .box = det };
        float x = 0, y = 0, w = 0, h = 0;
        rc = f->coord_decode(st, L.hidden, &x);
        if (rc == 0 && (rc = f->coord_encode(st, x, L.row)) == 0 && (rc = step(&L)) == 0)
            rc = f->coord_decode(st, L.hidden, &y);
        if (rc == 0)
            rc = f->coord_encode(st, y, L.row);
        if (rc == 0 && det) {
            if ((rc = step(&L)) == 0 && (rc = f->size_decode(st, L.hidden, &w, &h)) == 0)
                rc = f->size_encode(st, w, h, L.row);
            r.x_min = (double)x - (double)w / 2;
            r.y_min = (double)y - (double)h / 2;
            r.x_max = (double)x + (double)w / 2;
            r.y_max = (double)y + (double)h / 2;
        }
        r.x = x;
        r.y = y;
        if (rc == 0 && (rc = vc_reserve((void **)&list, &cap, (size_t)count + 1, sizeof *list)) == 0)
            list[count++] = r;
        if (rc == 0 && (rc = step(&L)) == 0)
            next = argmax(L.logits, V);
    }
    free(ids);
    free(embd);
    free(L.logits);
    free(L.hidden);
    free(L.row);
    if (rc != 0) {
        free(list);
        return -1;
    }
    *out = list;
    *n_out = count;
    return 0;
}

char *vc_skill_regions_json(const vc_region *r, int n, int w, int h)
{
    vc_buf b = { 0 };
    vc_buf_puts(&b, "[");
    for (int i = 0; i < n; i++) {
        if (i)
            vc_buf_puts(&b, ",");
        if (r[i].box)
            vc_buf_printf(&b, "{\"x_min\":%.6f,\"y_min\":%.6f,\"x_max\":%.6f,\"y_max\":%.6f,\"pixels\":{\"x_min\":%.1f,"
                              "\"y_min\":%.1f,\"x_max\":%.1f,\"y_max\":%.1f}}",
                          r[i].x_min, r[i].y_min, r[i].x_max, r[i].y_max, r[i].x_min * w, r[i].y_min * h,
                          r[i].x_max * w, r[i].y_max * h);
        else
            vc_buf_printf(&b, "{\"x\":%.6f,\"y\":%.6f,\"pixels\":{\"x\":%.1f,\"y\":%.1f}}", r[i].x, r[i].y,
                          r[i].x * w, r[i].y * h);
    }
    vc_buf_puts(&b, "]");
    return vc_buf_take(&b, NULL);
}
