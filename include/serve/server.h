/* server.h - vlmchat --serve: an OpenAI-compatible HTTP API (libmicrohttpd).
 *
 *   POST /v1/chat/completions   messages with text and image_url parts (data:
 *                               URLs; local paths under --allow-files), SSE
 *                               streaming, max_tokens, temperature, top_p,
 *                               stop, seed
 *   GET  /v1/models             the loaded model
 *   GET  /health                model, loaded, uptime (no key needed)
 *   GET  /stats                 requests, tokens, queue, memory, cleanup events
 *
 * Each connection has its own thread, which parses and decodes its request;
 * the model runs one request at a time on the engine's worker (engine.h).
 * A full queue answers 429, a server shutting down 503, a body over the
 * limit 413, a missing or wrong bearer token 401.
 */
#ifndef VC_SERVE_SERVER_H
#define VC_SERVE_SERVER_H

#include <signal.h>

#include "image/image.h"
#include "serve/engine.h"

typedef struct {
    const char *listen;          /* "[HOST:]PORT"; HOST defaults to 127.0.0.1 */
    const char *api_key;         /* NULL: no authentication */
    const char *allow_files;     /* directory local image paths may be under; NULL: none */
    size_t max_body;             /* request body limit in bytes */
    vc_image_limits image_limits;
    vc_engine_options engine;
} vc_serve_options;

/* Splits "[HOST:]PORT" ("8080", "0.0.0.0:8080", "[::1]:8080") into host
 * (127.0.0.1 when absent) and port. */
int vc_serve_parse_listen(const char *listen, char *host, size_t host_cap, int *port);

/* Serves until *stop becomes non-zero; prints the address it listens on
 * ("vlmchat: serving MODEL on http://HOST:PORT") on stderr once ready. */
int vc_serve(vc_model *m, const vc_serve_options *opt, volatile sig_atomic_t *stop);

#endif
