/*
 * serve — `optsync serve` as one process: the stages of the pipeline that
 * run by themselves, each on its own thread with its own cache
 * connection, sharing one Entra token (auth) and one throttle (a 429
 * pauses every sender of the identity).
 *
 *   poller    sync_run() every [sync] interval           (sync.h)
 *   listener  gate API, webhooks, health, metrics         (listener.h)
 *   outbox    outbox_run(): every kind of outbox row      (outbox.h)
 *   refetch   dv_webhook_refetch_run() on the hint queue  (dv_webhook.h)
 *
 * Pipeline position: none of its own.  It only wires the stages: they
 * talk through the cache tables (outbox, dv_refetch, sync_state), and
 * serve passes wake-ups along so a row queued by one stage is taken by
 * the next at once instead of at its next look at the cache.
 *
 * Design notes
 *  (1) Wake-ups: every commit of the listener's writer wakes the outbox
 *      worker (listener_on_commit; a WhatsApp STOP's write-back leaves
 *      while its 200 is being answered); a committed Dataverse hint
 *      wakes the refetch runner (listener_on_refetch); a finished sync
 *      wakes the outbox (a conflict may have queued a corrective write).
 *      Each stage also looks at the cache on its own (the outbox once a
 *      second, the refetch runner when the next backed-off row is due,
 *      at least once a minute), so a missed wake-up only delays.
 *  (2) Readiness: /readyz is 200 while the last successful sync is
 *      younger than [sync] max_staleness, the same rule the gate uses;
 *      the poller keeps it so, and a failing Dataverse turns it 503.
 *  (3) Stopping (serve_stop): the listener first (it stops accepting,
 *      answers what is in flight and commits it), then the other stages
 *      end after the step in hand: the outbox after committing the
 *      batch it holds, the refetch runner after its row, the poller
 *      after its page.  A request on the wire is abandoned and a
 *      backoff wait ends (http_options.stop): a Dataverse that holds a
 *      request does not hold the stop.  Everything committed stays
 *      committed (an abandoned write is resent from the cache, which
 *      never duplicates, outbox.h note 3; a sync goes on from its last
 *      committed page); queued outbox and refetch rows wait for the
 *      next start.
 *  (4) A stage never stops the process: a failure is logged and tried
 *      again at its next turn.  Only start-up fails: the listener cannot
 *      bind, the cache cannot be opened, Entra refuses the credentials.
 *
 *   serve_new --> serve_start (auth, stages, threads) --> RUNNING
 *       --> serve_stop (listener drained; stages joined) --> serve_free
 */
#ifndef OPTSYNC_SERVE_H
#define OPTSYNC_SERVE_H

#include <stdint.h>

#include "config.h"
#include "mapping.h"

typedef struct serve serve;

struct serve_options {
    int64_t sync_interval_ms;    /* between the starts of two syncs */
    long outbox_test_stop_after; /* tests: _exit(99) after N outbox steps */
};

#define SERVE_OPTIONS_INIT                                                     \
    {                                                                          \
        60000, 0                                                               \
    }

/* cfg and m borrowed for serve's lifetime.  Returns 0 or ERR_FAIL (TLS
 * files, an unusable keyword: the listener's config) with err_set. */
int serve_new(serve **out, const struct optsync_config *cfg,
              const struct mapping *m, const struct serve_options *opts);

/*
 * Checks the credentials with a token request, starts the listener and
 * the stage threads.  Returns 0; ERR_AUTH when Entra refuses the
 * credentials; ERR_FAIL (cannot bind, cache cannot be opened) with
 * err_set, and then nothing is left running.  A Dataverse that cannot be
 * reached is no start-up failure (the stages retry; /readyz says 503).
 */
int serve_start(serve *s);

/* The listener's bound port (after serve_start). */
int serve_port(const serve *s);

/* Design note 3; blocks until done; idempotent. */
void serve_stop(serve *s);

void serve_free(serve *s); /* stops first; NULL is a no-op */

#endif
