/*
 * sync — the poller: mirror every Configuration and every Opt-In /
 * Opt-Out Number from Dataverse into the cache, a full read first, then
 * change tracking, through faults.
 *
 * Pipeline position: Dataverse (dataverse.c) → mapping → consent_apply()
 * (MIRROR) → cache.  It writes sync_state and sync_runs, which the gate
 * and `status` read for staleness.
 *
 * Design notes
 *  (1) One page, one transaction: the rows of a page, the link to go on
 *      from, and (on the last page) the new deltaLink commit together.  A
 *      crash loses at most the page in flight, and the rerun either goes
 *      on from the stored link or repeats idempotent work.
 *  (2) A full read marks every row it sees with a new sweep mark; when
 *      the last page is committed, rows with an older mark no longer
 *      exist in Dataverse and are removed (the ledger keeps their past).
 *  (3) The deltaLink is stored only when a whole read is committed, so
 *      nothing changed during a long full read is lost: the link
 *      Dataverse hands out at the end covers changes made meanwhile.
 *  (4) A delta token Dataverse no longer accepts (0x80044352, any 4xx)
 *      means a full read, by itself, with one log line.
 *  (5) Only one process advances the links: an exclusive flock on
 *      <cache>.sync.lock (released by the kernel, even on kill -9).
 *  (6) A read is a pipeline of three threads (sync_fetch.c): one GETs
 *      the pages back to back on its own connection, each request going
 *      out as soon as the answer before it is in; one maps the rows and
 *      parses their phones; the calling thread stores the pages in order
 *      (notes 1-3 hold as for a page at a time).  Bounded queues between
 *      them bound memory.
 *  (7) A successful sync (docs/design.md) is both tables read to their final
 *      deltaLink and committed; its start time is what staleness counts
 *      from.  Quarantined events are replayed after every sync.
 *  (8) Rows whose phone was not parsed under the current rule (migration
 *      3: an upgrade, or rows written by code that parses no phones) are
 *      parsed again before the numbers are read, delta or full, in
 *      batches of one transaction each (consent_phones_recheck), so a
 *      delta needs no change in Dataverse to fix a key, and a full read
 *      finds them checked.
 *
 *     idle --sync_run()--> [no delta links] --full read--> delta links
 *      ^                                                       |
 *      +--------------- delta read (expired: full read) <------+
 */
#ifndef OPTSYNC_SYNC_H
#define OPTSYNC_SYNC_H

#include <stdint.h>

#include "auth.h"
#include "cache.h"
#include "config.h"
#include "consent.h"
#include "mapping.h"

typedef struct syncer syncer;

struct sync_progress {
    const char *entity; /* "configurations" / "numbers" */
    int full;
    int64_t pages, rows;
    int64_t elapsed_ms;
};

typedef void (*sync_progress_fn)(const struct sync_progress *p, void *payload);

struct sync_options {
    int force_full;
    sync_progress_fn progress; /* after each committed page; may be NULL */
    void *progress_payload;
    long stop_after_pages; /* tests: _exit(99) after N committed pages */
};

struct sync_result {
    int full;               /* a full read happened */
    int64_t started_at;     /* ms */
    int64_t finished_at;    /* ms */
    int64_t configurations; /* rows read */
    int64_t numbers;        /* rows read */
    int64_t pages;
    int64_t deleted;          /* removed (delta deletes and sweeps) */
    int64_t unparseable;      /* rows whose phone did not parse */
    int64_t phone_warnings;   /* rows whose key is no valid number */
    int64_t phones_rechecked; /* rows parsed again (note 8) */
    int quarantine_applied, quarantine_waiting;
};

/*
 * All borrowed for the syncer's lifetime.  Creates its HTTP handles (two:
 * one for prefetching) sharing `throttle` and `a`.
 */
int syncer_new(syncer **out, const struct optsync_config *cfg,
               const struct mapping *m, cache *c, auth *a,
               struct http_throttle *throttle);
void syncer_free(syncer *s);

/*
 * For `optsync serve`: once *stop is set, the syncer's waits end and a
 * request in progress is abandoned, so the sync in hand fails at once
 * (ERR_FAIL) instead of running out its retries.  The pages committed
 * so far stay (note 1); the next sync goes on from there.  Set before
 * sync_run, not during it.
 */
void syncer_set_stop(syncer *s, const volatile int *stop);

/*
 * One sync: full when forced or when no delta link is stored, delta
 * otherwise (falling back to full, note 4).  Returns 0; ERR_CONFLICT
 * when another process holds the sync lock; ERR_AUTH / ERR_FAIL /
 * ERR_THROTTLED / ERR_BADINPUT from Dataverse (exit 3); ERR_FAIL from the
 * cache (err_class says which).
 */
int sync_run(struct sync_result *out, syncer *s,
             const struct sync_options *opts);

#endif
