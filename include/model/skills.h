/* skills.h - a vision model's skills beyond chat: captions, questions,
 * detection (boxes) and pointing, for families that define them with
 * token-level prompts and region heads (Moondream2; include/vision/family.h's
 * task_ids and coord/size ops).
 *
 * The image prefix (BOS and the image's rows) is run once into the cache
 * (vc_skill_prefix); each skill then truncates the cache back to it and runs
 * its prompt, as the reference reuses its encoded image.
 */
#ifndef VC_MODEL_SKILLS_H
#define VC_MODEL_SKILLS_H

#include <stdbool.h>

#include "model/generate.h"

/* One detected object (normalized to [0, 1] of the image): a box when
 * `box`, else a point (x, y). */
typedef struct {
    bool box;
    double x, y;                       /* points */
    double x_min, y_min, x_max, y_max; /* boxes */
} vc_region;

/* True if the model has skills (caption, query, detect, point). */
bool vc_skill_supported(const vc_model *m);
/* Empties the cache and runs BOS and the image's rows into it; *prefix
 * receives the positions they take. */
int vc_skill_prefix(vc_model *m, const vc_image_embd *image, int *prefix);
/* Token ids of a skill's prompt (after the prefix), malloc'd. */
int vc_skill_prompt(const vc_model *m, const char *task, const char *arg, int32_t **ids, size_t *n);
/* caption (arg: short, normal, long) or query (arg: the question): generates
 * after the prefix as vc_generate does (greedy when opt->sampling says so). */
int vc_skill_text(vc_model *m, int prefix, const char *task, const char *arg, const vc_gen_options *opt,
                  vc_gen_result *r);
/* detect (boxes) or point: objects until the model ends its list or
 * max_objects (the reference's default is 50); *out malloc'd. */
int vc_skill_regions(vc_model *m, int prefix, const char *task, const char *object, int max_objects,
                     vc_region **out, int *n);

/* The regions as a JSON array (malloc'd text): boxes {x_min, y_min, x_max,
 * y_max, pixels {...}}, points {x, y, pixels {x, y}}, pixels of a w x h image. */
char *vc_skill_regions_json(const vc_region *r, int n, int w, int h);

#endif
