/* eval.h - `vlmchat eval FILE.jsonl`: accuracy, latency and speed on a set
 * of questions.
 *
 * Each line of the file is {"image": PATH (relative to the file), "question":
 * TEXT, "answers": [TEXT, ...]} ("answer": TEXT also works; "image" may be
 * left out).  Answers are compared after VQA-style normalization (case,
 * punctuation, articles, number words).  With three or more reference
 * answers the score is VQA's min(1, matches / 3); otherwise a match with any
 * of them scores 1.  The report is a table, or one JSON object with --json.
 */
#ifndef VC_APP_EVAL_H
#define VC_APP_EVAL_H

#include <signal.h>

#include "app/cli.h"
#include "model/model.h"

/* Runs every question and prints the table (or JSON). Fails (-1, the exit
 * class recorded) on a bad file or a failed question, and with
 * --min-accuracy when the accuracy is below it (VC_EXIT_RUNTIME, after the
 * results are printed). */
int vc_run_eval(vc_model *m, const vc_cli *cli, volatile sig_atomic_t *interrupt);
/* Normalizes an answer in place (lowercase, no punctuation or articles,
 * number words as digits, single spaces). */
void vc_eval_normalize(char *s);

#endif
