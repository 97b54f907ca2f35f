/* engine.h - the server's model worker: one request at a time, in order.
 *
 * HTTP connection threads parse and decode a request, wrap it in a job and
 * submit it; the single worker thread owns the model and runs jobs from a
 * bounded queue.  Its session (model/session.h) keeps the KV cache between
 * requests and compares the next prompt with it (token ids and, for image
 * tokens, which image they came from), so a client that resends the
 * conversation with one more message pays only for the new part; encoded
 * images are cached by their pixels, so a follow-up about the same image
 * costs no image encoding.  Before each request the worker checks memory
 * pressure (the session drops the image cache); cleanup events are counted
 * and shown in the statistics.
 *
 * A job's answer is bytes the connection thread reads as they come: SSE
 * events for a streamed request, one JSON body otherwise.
 */
#ifndef VC_SERVE_ENGINE_H
#define VC_SERVE_ENGINE_H

#include <jansson.h>
#include <stdbool.h>

#include "image/image.h"
#include "model/model.h"
#include "serve/openai.h"

typedef struct vc_engine vc_engine;
typedef struct vc_job vc_job;

typedef struct {
    const char *model_name;     /* the id clients see in "model" */
    int max_queue;              /* jobs waiting beyond the running one */
    vc_sampler_params sampling; /* defaults where a request sets none */
    int max_tokens;             /* default per request; 0: up to the context */
    size_t budget;              /* memory budget (for pressure checks); 0: none */
    bool verbose;
} vc_engine_options;

/* Starts the worker thread on a loaded model. */
int vc_engine_start(vc_model *m, const vc_engine_options *opt, vc_engine **out);
/* Cancels the running job, answers queued ones 503, joins the worker;
 * later submissions are refused (VC_SUBMIT_CLOSED). */
void vc_engine_stop(vc_engine *e);
/* Frees a stopped engine. */
void vc_engine_free(vc_engine *e);

/* A job for a parsed request and its decoded images (both taken over, also
 * on failure). NULL when out of memory. */
vc_job *vc_job_new(vc_api_request *req, vc_image *images);
/* Drops the caller's reference. */
void vc_job_release(vc_job *j);

typedef enum { VC_SUBMIT_OK, VC_SUBMIT_FULL, VC_SUBMIT_CLOSED } vc_submit_result;
/* Queues a job (the engine takes its own reference). */
vc_submit_result vc_engine_submit(vc_engine *e, vc_job *j);

/* Blocks until the job has failed, finished, or (when streamed) started
 * producing. Returns the HTTP status it answers with. */
int vc_job_wait_start(vc_job *j);
/* Copies up to cap bytes of answer not yet read into buf, blocking until
 * there are some. Returns the count, 0 at the end of the answer. */
size_t vc_job_read(vc_job *j, char *buf, size_t cap);
/* Asks the worker to stop generating for this job (the client is gone). */
void vc_job_cancel(vc_job *j);

/* Statistics as a JSON object (new reference): requests, tokens, queue,
 * caches, memory and the latest cleanup events. */
json_t *vc_engine_stats(vc_engine *e);

#endif
