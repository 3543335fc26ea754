/*
 * listener — the HTTP listener: libevent's evhttp on one event loop per
 * worker thread, optional TLS (OpenSSL bufferevents), limits on body
 * size, connections and idle time, the route table (route.h), the
 * group-commit writer (writer.h) and graceful shutdown.
 *
 * Pipeline position: the real-time entry.  Journeys ask the gate over
 * HTTP (listener_api.c); webhook routes turn deliveries into consent
 * events applied through the writer; /healthz, /readyz and /metrics
 * serve operators.  It parses no HTTP itself (evhttp does), and it never
 * answers 200 to a write before that write committed (writer.h note 1).
 *
 * Design notes
 *  (1) Threads: `[listener] threads` workers, each with its own
 *      event_base, evhttp, cache connection and gate handle (a gate
 *      belongs to one thread, gate.h note 6).  One listening socket is
 *      shared: each worker accepts on its own dup() of it, so the kernel
 *      hands each connection to one waiting worker and every worker can
 *      close its copy alone.  Handlers never block; writes go to the one
 *      writer thread and come back to the request's own loop
 *      (route_req_write).
 *  (2) Limits: evhttp enforces max_body on Content-Length before it reads
 *      the body and on each chunk's size as it comes (413, connection
 *      closed); headers are capped (caps.h).  idle_timeout is evhttp's
 *      per-connection timeout.  max_connections counts connections from
 *      their first request until they close (evhttp 2.1 offers no hook
 *      at accept): a request on a connection over the limit gets 503 and
 *      the connection is closed; silent connections are closed by
 *      idle_timeout.
 *  (3) Coherence: before each decision the gate checks for commits of
 *      any process (gate.h note 2); a timer per worker also refreshes
 *      it once a second, so the index stays warm while no one asks.
 *  (4) Shutdown (listener_stop): every worker stops accepting, answers
 *      what it started (requests waiting for the writer included; new
 *      requests on open connections get 503 and Connection: close),
 *      then leaves its loop; the writer then commits whatever is
 *      queued.  Nothing in flight is dropped unanswered.
 *
 *   listener_new --> listener_start (bind, threads) --> RUNNING
 *       --> listener_stop (drain, join, writer_stop) --> STOPPED
 *       --> listener_free
 */
#ifndef OPTSYNC_LISTENER_H
#define OPTSYNC_LISTENER_H

#include "config.h"
#include "mapping.h"
#include "route.h"

typedef struct listener listener;

/*
 * A listener configured by `cfg` ([listener], [cache], [sync], [gate],
 * [consent]; borrowed, must outlive it) and `m` (the mapping, borrowed,
 * may be NULL), with the built-in routes (gate API, health, metrics)
 * registered.  Nothing is bound yet.  Returns 0, or ERR_FAIL (TLS files
 * unreadable or not matching) with err_set.
 */
int listener_new(listener **out, const struct optsync_config *cfg,
                 const struct mapping *m);

/* Adds a route (route.h); only before listener_start.  Returns 0 or
 * ERR_BADINPUT. */
int listener_route_add(listener *l, unsigned methods, const char *pattern,
                       route_fn fn, void *arg, unsigned flags);

/*
 * Binds address:port, opens the worker connections and gates, starts the
 * writer and the worker threads, and logs event=listening port=N.
 * Returns 0; ERR_FAIL (cannot bind, cache cannot be opened) with
 * err_set, and then nothing is left running.
 */
int listener_start(listener *l);

/* The bound port (after listener_start; useful with port = 0). */
int listener_port(const listener *l);

/* Design note 4; blocks until done; idempotent; any thread but a
 * worker's. */
void listener_stop(listener *l);

void listener_free(listener *l); /* stops first; NULL is a no-op */

/* The writer (for stats and tests); NULL before listener_start. */
writer *listener_writer(listener *l);

#endif
