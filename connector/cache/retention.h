/*
 * retention — how long the cache keeps rows that are finished: the
 * retention rule for what grows with every event and is read by nobody
 * once it is done.
 *
 * Pipeline position: cache only.  Run by the listener's housekeeping
 * thread (connector/listener/housekeeping.c: `serve` and `listen`), with
 * `[outbox] keep_done`.  It decides nothing about consent.
 *
 * Design notes
 *  (1) What goes, once older than keep_ms:
 *      - outbox rows `done` or `superseded` (by updated_at, the time they
 *        finished).  Every consent change leaves one or two.
 *      - quarantined events resolved (by resolved_at).
 *      - sync runs (by started_at), except the newest run of each kind
 *        and outcome (ok or not): the gate's staleness and `status` read
 *        only those.
 *  (2) What stays, whatever its age:
 *      - the ledger: the hash-chained audit log is never pruned;
 *      - outbox rows pending, inflight (echo suppression reads their
 *        sent_mask: outbox.h note 5) and dead (they wait for `optsync
 *        outbox retry` or an operator);
 *      - quarantined events not resolved (replayed after every sync),
 *        near-misses (`optsync review --all` lists the reviewed ones).
 *      Tables pruned elsewhere: inbound_seen (whatsapp.h, dv_webhook.h),
 *      dv_webhook_tombstones, wa_status_early (wa_messages.h), sends
 *      (gate.c, per number), gate_journal (its triggers).
 *  (3) keep_ms is never below CACHE_KEEP_MIN_MS, 7 days: a consent
 *      message's outbox row takes Meta's late status webhooks (Meta
 *      retries for 7 days, wa_messages.h), and the double opt-in request
 *      must be seen by "never twice within double_opt_in_window"
 *      (consent.h note 8): the caller passes at least that window.
 *  (4) Small batches: each transaction deletes at most
 *      CACHE_PRUNE_BATCH rows, so the write lock is held briefly and the
 *      writer's group commits (webhook replies waiting) get it between
 *      batches.  A partial index on the finished outbox rows keeps each
 *      batch from reading the whole table (migration 8).
 */
#ifndef OPTSYNC_RETENTION_H
#define OPTSYNC_RETENTION_H

#include <stdint.h>

#include "cache.h"

#define CACHE_KEEP_MIN_MS (7 * 24 * 3600 * 1000LL)
#define CACHE_PRUNE_BATCH 1000

/* Rows removed, by table. */
struct cache_pruned {
    int64_t outbox;     /* done and superseded */
    int64_t quarantine; /* resolved */
    int64_t sync_runs;
};

/*
 * Removes at most `max_rows` finished rows (note 1) older than
 * now - keep_ms (keep_ms raised to CACHE_KEEP_MIN_MS), in the caller's
 * transaction, adding the counts to *out.  Returns 0 or ERR_FAIL.
 */
int cache_prune_finished_locked(struct cache_pruned *out, cache *c, int64_t now,
                                int64_t keep_ms, int max_rows);

/*
 * The same for every finished row, a batch of CACHE_PRUNE_BATCH per
 * transaction (note 4); *out holds the counts (also of the batches
 * committed before a failure).  Logs what it removed.  Returns 0, or
 * ERR_FAIL / ERR_CONFLICT (busy) with err_set.
 */
int cache_prune_finished(struct cache_pruned *out, cache *c, int64_t now,
                         int64_t keep_ms);

#endif
