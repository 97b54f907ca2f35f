/* bench.h - `vlmchat bench`: speed and memory on realistic-size models.
 *
 * No real weights can be assumed on the machine, so the benchmark writes a
 * model of the real architecture and dimensions with random weights once (an
 * HF directory: config.json, bf16 model.safetensors, and the demo model's
 * tokenizer and templates), and measures on it:
 *   load time, image encode time, prefill and decode tokens/s, peak RSS,
 *   time to first token of an image question and of a follow-up (which
 *   reuses the KV cache and costs no image encoding), and the machine's
 *   memory read bandwidth, with decode speed as a share of the bound it sets.
 * Printed as a table, or as one JSON object with --json.
 */
#ifndef VC_APP_BENCH_H
#define VC_APP_BENCH_H

#include <signal.h>

#include "app/cli.h"

/* Names of the built-in benchmark architectures, comma-separated. */
const char *vc_bench_arch_names(void);
/* Runs the benchmark for cli->bench_arch and prints its table (or JSON).
 * Fails (-1, the exit class recorded) on a bad --bench model or --quant, or
 * when making, loading or running the model fails. */
int vc_run_bench(const vc_cli *cli, volatile sig_atomic_t *interrupt);

#endif
