/* threads.c - see include/core/threads.h
 *
 * One generation counter under a mutex: the caller publishes a job and bumps
 * the generation, workers wake, run their slice and count themselves done.
 * Simple enough to be obviously correct; the job granularity (a whole matrix
 * product) keeps the locking cost negligible.
 */
#define _POSIX_C_SOURCE 200809L
#include "core/threads.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/common.h"

#define MAX_THREADS 256

static struct {
    int n;
    pthread_t tid[MAX_THREADS];
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    unsigned long generation;
    int pending;
    bool stop;
    vc_range_fn fn;
    void *ctx;
    int64_t count;
} pool = { .n = 1, .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER,
           .done = PTHREAD_COND_INITIALIZER };

static void run_slice(int index)
{
    int64_t per = (pool.count + pool.n - 1) / pool.n;
    int64_t begin = per * index, end = begin + per;
    if (end > pool.count)
        end = pool.count;
    if (begin < end)
        pool.fn(pool.ctx, begin, end, index);
}

static void *worker(void *arg)
{
    int index = (int)(intptr_t)arg;
    unsigned long seen = 0;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (!pool.stop && pool.generation == seen)
            pthread_cond_wait(&pool.wake, &pool.lock);
        if (pool.stop)
            break;
        seen = pool.generation;
        pthread_mutex_unlock(&pool.lock);
        run_slice(index);
        pthread_mutex_lock(&pool.lock);
        if (--pool.pending == 0)
            pthread_cond_signal(&pool.done);
    }
    pthread_mutex_unlock(&pool.lock);
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
    pool.stop = false;
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

void vc_parallel_for(int64_t count, vc_range_fn fn, void *ctx)
{
    if (pool.n <= 1 || count < 2) {
        if (count > 0)
            fn(ctx, 0, count, 0);
        return;
    }
    pthread_mutex_lock(&pool.lock);
    pool.fn = fn;
    pool.ctx = ctx;
    pool.count = count;
    pool.pending = pool.n - 1;
    pool.generation++;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    run_slice(0);
    pthread_mutex_lock(&pool.lock);
    while (pool.pending > 0)
        pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
}

void vc_threads_shutdown(void)
{
    if (pool.n <= 1)
        return;
    pthread_mutex_lock(&pool.lock);
    pool.stop = true;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 1; i < pool.n; i++)
        pthread_join(pool.tid[i], NULL);
    pool.n = 1;
    pool.stop = false;
}
