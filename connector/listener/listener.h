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
 *      belongs to one thread, gate.h note 6).  Each worker accepts on
 *      its own listening socket, all bound to one port with SO_REUSEPORT:
 *      the kernel spreads connections over the workers by their address
 *      (one shared socket let the first worker take every connection of
 *      a keep-alive client), and every worker closes its own socket
 *      alone.  Handlers never block; writes go to the one
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
 *  (5) Housekeeping: one more thread with its own cache connection,
 *      outside the writer's transactions, so no request ever waits for
 *      it: the quarantine replay a WhatsApp delivery asked for (it
 *      linked a new BSUID: waiting username-only events may now be
 *      keyed) and, at start and then hourly, the pruning of old
 *      de-duplication keys (WhatsApp: 8 days, Meta retries for 7;
 *      Dataverse: 7 days) and of finished rows (retention.h: done and
 *      superseded outbox rows, resolved quarantine, old sync runs, after
 *      `[outbox] keep_done`).  A failure is logged and tried again next
 *      time; it never stops the listener.
 *  (6) Webhook routes (listener_webhooks.c): GET /webhooks/whatsapp
 *      (handshake), POST /webhooks/whatsapp[/{configuration}] and
 *      POST /webhooks/dataverse.  Each checks its secret before parsing,
 *      parses on the worker, applies through the writer and answers 200
 *      only after the commit (whatsapp.h and dv_webhook.h give the
 *      status of every result).  A Dataverse hint is only queued
 *      (table dv_refetch); reading those rows back is `serve`'s job,
 *      woken by the listener_on_refetch() hook.
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
 * [consent], [whatsapp], [dataverse_webhook]; borrowed, must outlive it)
 * and `m` (the mapping, borrowed, may be NULL: then POST
 * /webhooks/dataverse answers 404 as if it had no key), with the
 * built-in routes (gate API, health, metrics, webhooks) registered.
 * Nothing is bound yet.  Returns 0, or ERR_FAIL (TLS files unreadable or
 * not matching, an unusable [consent] keyword) with err_set.
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

/*
 * The re-fetch hook, for `optsync serve`: fn(payload) is called each time
 * a POST /webhooks/dataverse delivery committed a hint (outcome
 * DV_WEBHOOK_QUEUED: the row waits in dv_refetch, see dv_webhook.h notes
 * 4 and 7).  serve then wakes the thread that runs
 * dv_webhook_refetch_run() with its own cache connection and Dataverse
 * client; rows a hook call was missed for still wait in the table, and
 * dv_webhook_refetch_pending() says when the next one is due.
 *
 * Called on a worker thread after the commit and before the 200 goes
 * out: it must be thread-safe, quick and must not block (signal a
 * condition variable, write to an eventfd).  Set it before
 * listener_start; fn NULL removes it.
 */
typedef void (*listener_refetch_fn)(void *payload);
void listener_on_refetch(listener *l, listener_refetch_fn fn, void *payload);

/*
 * The commit hook, for `optsync serve`: fn(payload) is called on the
 * writer thread after every committed group of writes (a WhatsApp reply,
 * a send, a preference: any of them may have queued outbox rows), before
 * the replies go out.  serve wakes its outbox worker with it
 * (outbox_wake), so a reply's write-back leaves at once instead of at
 * the worker's next look at the cache.  Same rules as the re-fetch hook:
 * thread-safe, quick, never blocking; set before listener_start.
 */
typedef void (*listener_commit_fn)(void *payload);
void listener_on_commit(listener *l, listener_commit_fn fn, void *payload);

#endif
