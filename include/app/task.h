/* task.h - scripted skills: `vlmchat --task caption|query|detect|point`.
 *
 * One image (--image), one skill: caption (--prompt short, normal or long;
 * default normal), query (--prompt the question), detect or point (--prompt
 * the object). Text skills stream their text; detect and point list one
 * object a line, normalized to [0, 1] and in pixels of the original image.
 * --json prints one object with the same and timings.
 */
#ifndef VC_APP_TASK_H
#define VC_APP_TASK_H

#include <signal.h>

#include "app/cli.h"
#include "model/model.h"

/* Returns 0, or -1 with the error recorded (vc_fail_code). */
int vc_run_task(vc_model *m, const vc_cli *cli, volatile sig_atomic_t *interrupt);

#endif
