/*
 * outbox — the write-back worker: the only code that writes to Dataverse,
 * and the only one that sends consent messages to WhatsApp.  It sends
 * what consent_apply() queued (table outbox, one row per number row and
 * kind) and records each answer in the cache.
 *
 * Pipeline position: cache (outbox rows, number rows) → outbox worker →
 * dataverse.c (writes, $batch) → Dataverse; the answers come back into
 * the cache (number rows, ledger through consent_apply_locked MIRROR).
 * It never decides consent itself: conflicts go through the consent
 * engine.  Rows carry a `kind` naming their sender (outbox_p.h: struct
 * outbox__kind): "dataverse" (outbox_dataverse.c, notes 1-7 below) and
 * "whatsapp", the consent messages (outbox_whatsapp.c, its own notes:
 * checked again before sending, paced per phone number, a refused token
 * pauses every message).  The queue, its states, recovery, backoff and
 * dead letters are the same for both; notes 3-5 are Dataverse's only.
 *
 * Design notes
 *  (1) A row holds no payload: the worker writes the number row's state
 *      at send time (status, consent time, source, preferences), so any
 *      number of queued events collapses to one write of the latest
 *      state (consent.h note 6).  At most one `pending` row per number
 *      row and kind (a unique index); rows that meet (a recovered one and
 *      a newer one) merge into the newer, keeping the larger backoff.
 *  (2) Only one worker per cache (an flock on <cache>.outbox.lock, freed
 *      by the kernel even on kill -9).  So whoever takes the lock knows
 *      every `inflight` row belongs to a dead worker and puts it back to
 *      `pending` (outbox_recover): a row is inflight only while its
 *      worker lives.
 *  (3) A resend never duplicates: creates are create-only upserts on a
 *      key that is the same every time (dataverse.h note 5), updates
 *      carry If-Match.  A 412 or 404 means "look again": the row is read
 *      back and mirrored through consent_apply_locked (MIRROR) in the
 *      same transaction that puts the outbox row back to pending.  The
 *      consent engine then applies the rule (docs/design.md: newest wins, an
 *      opt-out wins a tie, an older opt-in never beats an opt-out): when
 *      Dataverse wins, the pending write is superseded and the ledger
 *      records the transition; when it loses, the write goes out again
 *      (corrective) with the version just read.
 *  (4) Success records what Dataverse now holds: the number row gets its
 *      dv_id (creates), dv_status = the status written and the returned
 *      version, unless a newer version is already cached; its
 *      pending_writeback clears when nothing newer waits.
 *  (5) Echo suppression: our own write coming back through the next
 *      delta or the Dataverse webhook is no consent expression.  Settled
 *      writes are recognised by dv_status and version (note 4); a write
 *      still in flight or of unknown outcome (crash) by outbox.sent_mask,
 *      which consent_mirror.c consults.  Either way: no transition, no
 *      ledger entry.
 *  (6) Failures say how far they reach.  A write: 4xx other than 404/
 *      412/429 → `dead` at once, with Dataverse's error (a create whose
 *      Configuration is gone is a 404 and dead too).  The endpoint: 429
 *      pauses every sender of the identity (the http_throttle shared with
 *      the poller) and costs no attempt; 5xx and transport errors back
 *      off exponentially with jitter up to max_backoff, and after
 *      max_attempts the row is `dead`; 401 stops the run (ERR_AUTH) and
 *      costs nothing.  Dead rows wait for `optsync outbox retry`.
 *  (7) One SQLite transaction per step: the claim; the answers of a
 *      batch.  No transaction is open while a request is on the wire, so
 *      consent_apply() never waits for Dataverse.
 *
 * States of an outbox row and the function that makes each transition
 * (outbox.c unless named otherwise):
 *
 *               consent__queue_writeback() (consent_store.c)
 *                                |
 *                                v
 *     +--------------------> pending ----------------------> superseded
 *     | outbox_recover()      |    ^   consent__cancel_writeback()
 *     | (lock taken after     |    |   (Dataverse overtook it);
 *     |  a crash: inflight)   |    |   claim_batch() (number row gone);
 *     | outbox_retry_dead()   |    |   requeue() (merged into a newer
 *     | (from dead)           |    |   pending row of the same number)
 *     |         claim_batch() |    | retry_later(): 5xx, network, 429
 *     |                       v    | refresh(): 412/404, row read back
 *     |                   inflight |   and mirrored (MIRROR)
 *     |                    |  |  | |
 *     |                    |  |  +-+
 *     |  commit_one(): 2xx |  | bury(): refused (4xx), or
 *     |                    v  v max_attempts used up
 *     |                  done dead
 *     |                        |
 *     +------------------------+
 */
#ifndef OPTSYNC_OUTBOX_H
#define OPTSYNC_OUTBOX_H

#include <stdint.h>

#include "auth.h"
#include "cache.h"
#include "config.h"
#include "http.h"
#include "mapping.h"

typedef struct outbox outbox;

/* Kinds of outbox rows. */
#define OUTBOX_KIND_DATAVERSE "dataverse"
#define OUTBOX_KIND_WHATSAPP "whatsapp" /* consent messages */

/* Called after a write was committed (benchmarks, metrics). */
typedef void (*outbox_written_fn)(const char *configuration_id,
                                  const char *e164, int status, void *payload);

struct outbox_options {
    int64_t batch_size;           /* writes per $batch (and per claim) */
    int64_t max_attempts;         /* failed sends before a row is dead */
    int64_t max_backoff_ms;       /* longest wait between two attempts */
    int64_t base_backoff_ms;      /* the first wait */
    int single_requests;          /* one request per write (the baseline of
                                     scripts/bench writeback), no $batch */
    int64_t drain_wait_ms;        /* outbox_drain: wait this long at most for
                                     rows backing off; 0: return */
    long test_stop_after;         /* tests: _exit(99) after N steps (claim,
                                     answer, commit), 0: never */
    outbox_written_fn on_written; /* may be NULL */
    void *payload;
};

#define OUTBOX_OPTIONS_INIT                                                    \
    {                                                                          \
        100, 12, 3600000, 1000, 0, 0, 0, NULL, NULL                            \
    }

/* The [outbox] keys: batch_size, max_attempts, max_backoff. */
void outbox_options_from_config(struct outbox_options *out,
                                const struct optsync_config *cfg);

struct outbox_stats {
    int64_t written;    /* rows done */
    int64_t retried;    /* sends that will be tried again */
    int64_t conflicts;  /* 412/404 answers resolved through the rule */
    int64_t dead;       /* rows that went dead */
    int64_t superseded; /* rows with nothing left to write */
    int64_t requests;   /* HTTP write requests ($batch or single) */
    int64_t waiting;    /* after a drain: rows still pending (backoff) */
};

/*
 * A worker on cache `c`, writing with `a` and `throttle` (the poller's:
 * a 429 pauses both).  Borrowed for the worker's lifetime: cfg, m, c, a,
 * throttle.  `c` must be used by no other thread while the worker runs
 * (serve gives it its own connection).  Returns 0 or ERR_FAIL.
 */
int outbox_new(outbox **out, const struct optsync_config *cfg,
               const struct mapping *m, cache *c, auth *a,
               struct http_throttle *throttle,
               const struct outbox_options *opts);
void outbox_free(outbox *ob); /* NULL is a no-op; releases the lock */

/*
 * Sends everything due now, batch after batch, until nothing is due
 * (then waits up to drain_wait_ms for rows backing off).  Takes the lock
 * and recovers inflight rows first (note 2).  Returns 0 (see *out: rows
 * may have gone dead or still wait); ERR_CONFLICT when another worker
 * holds the lock; ERR_AUTH when Dataverse refuses the credentials;
 * ERR_FAIL on a cache error.  Without a daemon: `optsync outbox flush`,
 * and `optsync sync` after a successful sync.
 */
int outbox_drain(struct outbox_stats *out, outbox *ob);

/*
 * The stage `serve` runs on its own thread: drains, then sleeps until
 * outbox_wake(), the next row's next_attempt_at, or a commit by another
 * process (PRAGMA data_version, checked every second), and again, until
 * outbox_stop().  Holds the lock throughout.  ERR_AUTH backs off and
 * goes on (logged); a cache error holds every row, waits, reloads the
 * queue from the cache (inflight rows back to pending) and goes on.
 * Returns 0 after a stop; ERR_CONFLICT when another worker holds the
 * lock; ERR_FAIL when the cache fails at start.
 */
int outbox_run(outbox *ob);

/* New rows were queued (call after consent_apply).  Thread-safe. */
void outbox_wake(outbox *ob);

/* Ends outbox_run after the batch in hand is committed; waits on the
 * wire and in backoffs end early.  Thread-safe, async-signal-unsafe. */
void outbox_stop(outbox *ob);

/* Counters so far (thread-safe). */
void outbox_stats_get(struct outbox_stats *out, outbox *ob);

/* ---- for operators (any process, no worker needed) ---------------------- */

/*
 * `optsync outbox retry`: dead row `id` (0: every dead row) back to
 * pending with a fresh count of attempts, due now (merged into a newer
 * pending row of the same number when there is one).  *count says how
 * many.  Returns 0; ERR_NOTFOUND when `id` is not a dead row; ERR_FAIL.
 */
int outbox_retry_dead(int *count, cache *c, int64_t id);

#endif
