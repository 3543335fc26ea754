/*
 * route — the listener's route table and the request / reply abstraction
 * every handler uses: the gate API and health routes today, the WhatsApp
 * and Dataverse webhook routes next.
 *
 * Pipeline position: between evhttp (which parses HTTP; nothing here
 * does) and the handlers.  A handler reads its request through the
 * accessors below, answers it exactly once with a route_reply*()
 * function, either at once or after a durable commit (route_req_write).
 * It never sees libevent types.
 *
 * Adding a route
 *   1. Write a handler:  static void on_x(struct route_req *r, void *arg)
 *      It must answer exactly once: route_reply_json(), route_reply() or
 *      route_reply_error(), now or from its route_req_write() completion.
 *   2. Register it before listener_start():
 *        listener_route_add(l, ROUTE_POST,
 * "/webhooks/whatsapp/{configuration}", on_x, ctx, 0); Patterns are literal
 * segments and {name} segments (one path segment each, percent-decoded, read
 * with route_req_param()).  The first registered route whose pattern and method
 * match wins; a path that matches only with other methods gets 405 (with
 * Allow), no match 404.  ROUTE_API_KEY requires [listener] api_key (401 without
 * it); webhook routes check their own secrets instead.
 *   3. Count what it did (metrics.h); request counts and latency per
 *      route pattern are counted for you.
 *
 * Handlers run on a worker thread's event loop: they must not block
 * (no commits: submit them with route_req_write) and must not keep the
 * request after answering.
 */
#ifndef OPTSYNC_ROUTE_H
#define OPTSYNC_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "cache.h"
#include "config.h"
#include "consent.h"
#include "gate.h"
#include "writer.h"

struct route_req; /* one request, valid from the handler until its reply */

typedef void (*route_fn)(struct route_req *r, void *arg);

enum route_method {
    ROUTE_GET = 1u << 0, /* HEAD is answered as GET without the body */
    ROUTE_POST = 1u << 1,
    ROUTE_PUT = 1u << 2,
    ROUTE_DELETE = 1u << 3,
    ROUTE_PATCH = 1u << 4,
    ROUTE_OPTIONS = 1u << 5,
    ROUTE_OTHER = 1u << 6, /* any other method: never routed */
};

#define ROUTE_API_KEY 0x1u /* flags: needs [listener] api_key */

#define ROUTE_SEGMENTS_MAX 16 /* path segments in a pattern */
#define ROUTE_PARAMS_MAX 4    /* {name} segments in a pattern */

struct route {
    unsigned methods; /* ROUTE_* mask */
    char *pattern;    /* owned */
    char **segs;      /* owned: pattern split at '/' */
    size_t n_segs;
    route_fn fn;
    void *arg; /* borrowed; handed to fn */
    unsigned flags;
    int metrics_slot; /* metrics_route_register(pattern) */
};

struct route_table {
    struct route *items; /* owned */
    size_t n, cap;
};

void route_table_init(struct route_table *t);
void route_table_dispose(struct route_table *t);

/*
 * Adds a route.  Returns 0, or ERR_BADINPUT for a pattern that does not
 * start with '/', has an empty segment, too many segments or parameters,
 * or an unterminated {name}.
 */
int route_table_add(struct route_table *t, unsigned methods,
                    const char *pattern, route_fn fn, void *arg,
                    unsigned flags);

/* A matched route's parameters: names borrowed from the route, values
 * owned (percent-decoded). */
struct route_params {
    const char *names[ROUTE_PARAMS_MAX];
    char *values[ROUTE_PARAMS_MAX];
    size_t n;
};

void route_params_dispose(struct route_params *p);

/*
 * The route for `method` and `path` (raw, still percent-encoded), or
 * NULL; then *allowed holds the methods of the routes whose pattern
 * matches (0: none, a 404).  On a match *params is filled (dispose it).
 */
const struct route *route_table_match(const struct route_table *t,
                                      unsigned method, const char *path,
                                      struct route_params *params,
                                      unsigned *allowed);

/* ---- the request -------------------------------------------------------- */

unsigned route_req_method(const struct route_req *r);
const char *route_req_path(const struct route_req *r); /* raw */

/* A request header, case-insensitively; the first of that name; NULL. */
const char *route_req_header(const struct route_req *r, const char *name);

/*
 * The body exactly as received (for an HMAC over the exact bytes) and
 * its length; not NUL-terminated.  NULL and 0 when there is none.
 * Valid until the reply.  Its size is at most [listener] max_body.
 */
const char *route_req_body(struct route_req *r, size_t *len);

/* A query parameter, percent-decoded ('+' stays '+'); the first of that
 * name; NULL when absent. */
const char *route_req_query(const struct route_req *r, const char *name);

/* A {name} path parameter, percent-decoded; NULL when the route has none
 * of that name. */
const char *route_req_param(const struct route_req *r, const char *name);

/* What the worker thread that runs the handler owns (borrowed; only for
 * use on that thread, outside any transaction). */
cache *route_req_cache(const struct route_req *r);
gate *route_req_gate(const struct route_req *r);
const struct optsync_config *route_req_config(const struct route_req *r);
const struct consent_options *
route_req_consent_options(const struct route_req *r);

/* ---- the reply (exactly one per request) -------------------------------- */

/* Adds a response header (before the reply). */
void route_reply_header(struct route_req *r, const char *name,
                        const char *value);

/* Answers with `status`, a Content-Type (NULL: none) and `len` bytes. */
void route_reply(struct route_req *r, int status, const char *content_type,
                 const void *body, size_t len);

/* Answers with `json` printed unformatted (application/json); `json` is
 * not taken (the caller deletes it). */
void route_reply_json(struct route_req *r, int status, const cJSON *json);

/* Answers {"error": code, "message": message} (message may be NULL). */
void route_reply_error(struct route_req *r, int status, const char *code,
                       const char *message);

/* ---- durable writes ----------------------------------------------------- */

/*
 * Called on the request's own event loop once the item's transaction
 * ended.  committed = 1: the writer's COMMIT returned (on disk), and rc is
 * fn's own result: 0, its changes are in; < 0, they were rolled back to
 * the item's savepoint (answer by rc: 400 / 404 / 503).  committed = 0:
 * nothing of the item was written (the transaction was lost, or the
 * listener is stopping): answer 503.  The handler answers the request
 * here (or later); `payload` is the one given to route_req_write.
 */
typedef void (*route_write_done)(struct route_req *r, int rc, int committed,
                                 void *payload);

/*
 * Runs fn(c, payload) in the writer's next group transaction (writer.h),
 * then done(r, ...) on this request's event loop.  `payload` stays the
 * caller's: it must live until done() (free it there).
 */
void route_req_write(struct route_req *r, writer_fn fn, void *payload,
                     route_write_done done);

#endif
