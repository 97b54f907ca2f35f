/* threads.h - a fixed pool of worker threads for data-parallel loops.
 *
 * vc_parallel_for splits [0, count) into contiguous ranges, one per thread,
 * and runs fn on each; the calling thread takes the first range.  Calls must
 * not nest.  Before vc_threads_init (or with 1 thread) everything runs inline.
 */
#ifndef VC_CORE_THREADS_H
#define VC_CORE_THREADS_H

#include <stdint.h>

/* `worker` is in [0, vc_threads_count()): an index for per-thread scratch. */
typedef void (*vc_range_fn)(void *ctx, int64_t begin, int64_t end, int worker);

/* Starts n-1 workers (n <= 0: one per online CPU). Returns 0 or -1. */
int vc_threads_init(int n);
/* Number of threads taking part in vc_parallel_for (>= 1). */
int vc_threads_count(void);
void vc_parallel_for(int64_t count, vc_range_fn fn, void *ctx);
/* As vc_parallel_for, but [0, count) in ranges of `chunk` items (the last
 * one shorter; chunk >= 1) that the threads take in order as each gets free,
 * so that a thread held up (a busy host, a slower core) does fewer: fn may
 * run several times on one worker, and the items must be independent. Which
 * ranges there are does not depend on the threads, only on count and chunk. */
void vc_parallel_chunks(int64_t count, int64_t chunk, vc_range_fn fn, void *ctx);
/* Stops and joins the workers. */
void vc_threads_shutdown(void);

#endif
