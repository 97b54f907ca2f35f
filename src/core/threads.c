/* threads.c - see include/core/threads.h
 *
 * A decode step publishes a few hundred small jobs (one per matrix product),
 * each taking tens of microseconds, so waking sleeping threads through the
 * kernel for every one of them would cost as much as the work. Workers and the
 * caller therefore spin briefly on atomics first and only sleep on the
 * condition variables when nothing arrives for a while (between turns, while
 * the user types).
 *
 * Publishing: the caller stores the job, then increments `generation`. A worker
 * that goes to sleep increments `sleepers` under the lock and re-checks the
 * generation before waiting; the caller, after incrementing the generation,
 * broadcasts only if it sees sleepers. Both are sequentially consistent, so one
 * of the two always sees the other and no wake-up is lost.
 */
#define _POSIX_C_SOURCE 200809L
#include "core/threads.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/common.h"

#define MAX_THREADS 256
#define SPIN_ROUNDS 20000      /* up to about a millisecond of polling before sleeping */

static struct {
    int n;
    pthread_t tid[MAX_THREADS];
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    atomic_ulong generation;
    atomic_int pending;        /* workers still running the current job */
    atomic_int sleepers;       /* workers waiting on `wake` */
    atomic_bool caller_sleeps; /* the caller waits on `done` */
    atomic_bool stop;
    vc_range_fn fn;
    void *ctx;
    int64_t count;
    int64_t chunk;             /* 0: a range per thread; else chunks of it, taken from `next` */
    atomic_llong next;
    unsigned long first_seen;  /* the generation when the workers started */
} pool = { .n = 1, .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER,
           .done = PTHREAD_COND_INITIALIZER };

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void run_slice(int index)
{
    if (pool.chunk > 0) {   /* chunks in order, to whichever thread is free */
        for (;;) {
            int64_t begin = atomic_fetch_add(&pool.next, pool.chunk);
            if (begin >= pool.count)
                return;
            pool.fn(pool.ctx, begin, begin + pool.chunk < pool.count ? begin + pool.chunk : pool.count, index);
        }
    }
    int64_t per = (pool.count + pool.n - 1) / pool.n;
    int64_t begin = per * index, end = begin + per;
    if (end > pool.count)
        end = pool.count;
    if (begin < end)
        pool.fn(pool.ctx, begin, end, index);
}

/* Waits until the generation differs from `seen`: spinning, then sleeping. */
static unsigned long await_job(unsigned long seen)
{
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        if (atomic_load(&pool.generation) != seen || atomic_load(&pool.stop))
            return atomic_load(&pool.generation);
        cpu_relax();
    }
    pthread_mutex_lock(&pool.lock);
    atomic_fetch_add(&pool.sleepers, 1);
    while (atomic_load(&pool.generation) == seen && !atomic_load(&pool.stop))
        pthread_cond_wait(&pool.wake, &pool.lock);
    atomic_fetch_sub(&pool.sleepers, 1);
    pthread_mutex_unlock(&pool.lock);
    return atomic_load(&pool.generation);
}

static void *worker(void *arg)
{
    int index = (int)(intptr_t)arg;
    unsigned long seen = pool.first_seen;   /* jobs before this one are not ours */
    for (;;) {
        seen = await_job(seen);
        if (atomic_load(&pool.stop))
            break;
        run_slice(index);
        if (atomic_fetch_sub(&pool.pending, 1) == 1 && atomic_load(&pool.caller_sleeps)) {
            pthread_mutex_lock(&pool.lock);
            pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.lock);
        }
    }
    return NULL;
}

int vc_threads_init(int n)
{
    if (n <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (int)cpus : 1;
    }
    if (n > MAX_THREADS)
        n = MAX_THREADS;
    vc_threads_shutdown();
    atomic_store(&pool.stop, false);
    pool.first_seen = atomic_load(&pool.generation);
    for (int i = 1; i < n; i++) {
        int err = pthread_create(&pool.tid[i], NULL, worker, (void *)(intptr_t)i);
        if (err != 0) {
            pool.n = i;
            vc_threads_shutdown();
            /* EAGAIN: no memory (or address space, under ulimit -v) for its stack */
            return vc_fail_code(err == EAGAIN || err == ENOMEM ? VC_EXIT_NOMEM : VC_EXIT_RUNTIME,
                                "could not start worker thread %d: %s", i, strerror(err));
        }
        pool.n = i + 1;
    }
    return 0;
}

int vc_threads_count(void) { return pool.n; }

/* Wakes sleeping workers; spinning ones see the new generation by themselves. */
static void publish(void)
{
    atomic_fetch_add(&pool.generation, 1);
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.lock);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.lock);
    }
}

/* Waits for the workers to finish the current job: spinning, then sleeping
 * (a worker may have been descheduled on a busy machine). */
static void await_workers(void)
{
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        if (atomic_load(&pool.pending) == 0)
            return;
        cpu_relax();
    }
    pthread_mutex_lock(&pool.lock);
    atomic_store(&pool.caller_sleeps, true);
    while (atomic_load(&pool.pending) > 0)
        pthread_cond_wait(&pool.done, &pool.lock);
    atomic_store(&pool.caller_sleeps, false);
    pthread_mutex_unlock(&pool.lock);
}

static void run(int64_t count, int64_t chunk, vc_range_fn fn, void *ctx)
{
    if (pool.n <= 1 || count < 2 || (chunk > 0 && chunk >= count)) {   /* inline, the same ranges */
        int64_t step = chunk > 0 ? chunk : count;
        for (int64_t begin = 0; begin < count; begin += step)
            fn(ctx, begin, begin + step < count ? begin + step : count, 0);
        return;
    }
    pool.fn = fn;
    pool.ctx = ctx;
    pool.count = count;
    pool.chunk = chunk;
    atomic_store(&pool.next, 0);
    atomic_store(&pool.pending, pool.n - 1);
    publish();
    run_slice(0);
    await_workers();
}

void vc_parallel_for(int64_t count, vc_range_fn fn, void *ctx) { run(count, 0, fn, ctx); }

void vc_parallel_chunks(int64_t count, int64_t chunk, vc_range_fn fn, void *ctx)
{
    run(count, chunk > 0 ? chunk : 1, fn, ctx);
}

void vc_threads_shutdown(void)
{
    if (pool.n <= 1)
        return;
    atomic_store(&pool.stop, true);
    pthread_mutex_lock(&pool.lock);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 1; i < pool.n; i++)
        pthread_join(pool.tid[i], NULL);
    pool.n = 1;
    atomic_store(&pool.stop, false);
}
