/*
 * writer — durable writes with group commit: one thread, with its own
 * cache connection (WAL, synchronous = FULL), runs the work items request
 * handlers submit, many of them in ONE transaction, commits once, then
 * completes each item.  This is what makes "HTTP 200 only after a
 * durable commit" affordable: the fsync is paid per group, not per
 * request.
 *
 * Pipeline position: between the listener's request handlers (gate API
 * sends and preferences; the WhatsApp and Dataverse webhooks) and the
 * cache.  Items call the *_locked functions of the modules below
 * (consent_apply_locked, gate_send_record_locked, whatsapp_apply_locked):
 * the transaction is the writer's, never the item's.  It knows nothing of
 * HTTP; the listener turns a completion into a reply on the request's
 * own event loop.
 *
 * Design notes (numbered invariants)
 *  (1) An item is reported committed only when the COMMIT of the
 *      transaction that ran it returned: its changes are on disk
 *      (synchronous = FULL) before complete() is called.
 *  (2) One group = one BEGIN IMMEDIATE ... COMMIT.  Each item runs inside
 *      its own SAVEPOINT: an item whose fn fails is rolled back to that
 *      savepoint and reports its own rc, and the group goes on; the
 *      items before and after it keep their changes.
 *  (3) When the group's transaction is lost (COMMIT fails, or an item's
 *      error made SQLite roll the whole transaction back), every item
 *      of that transaction is reported not committed; the items not run
 *      yet start a new transaction.  Nothing is ever reported committed
 *      that a later rollback undid.
 *  (4) A group is whatever was queued when the previous one finished (up
 *      to max_group items): under load, requests pile up during a
 *      commit's fsync and share the next one; an idle writer commits a
 *      single item at once.  No timer delays anything.
 *  (5) Items run in submission order; complete() is called for every
 *      submitted item exactly once, in order, from the writer thread.
 *  (6) writer_stop() stops taking items, runs and commits every queued
 *      item (invariant 5 holds for them), then ends the thread.
 *
 *   writer_submit() --> QUEUED --group taken--> RUNNING (savepoint)
 *        |                                         |  fn ok / fn failed
 *   (stopping: refused)                            v
 *                                   DONE: committed=1 (rc = fn's) or
 *                                         committed=0 (transaction lost)
 *                                         --> complete(item)
 */
#ifndef OPTSYNC_WRITER_H
#define OPTSYNC_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "cache.h"

typedef struct writer writer;

/* Runs inside the writer's transaction (under a savepoint).  Returns 0,
 * or a negative ERR_* code: the item's changes are then rolled back. */
typedef int (*writer_fn)(cache *c, void *payload);

struct writer_item {
    writer_fn fn;  /* required */
    void *payload; /* borrowed; handed to fn */
    /* Called once on the writer thread after the item's transaction
     * ended (invariant 5): must be quick and must not submit to this
     * writer; hand the result to another thread. */
    void (*complete)(struct writer_item *item, void *arg);
    void *complete_arg;

    /* Set by the writer before complete(). */
    int rc;        /* fn's return (0: ok) when committed */
    int committed; /* 1: the transaction that ran it committed */

    struct writer_item *next; /* the writer's queue link */
};

struct writer_options {
    size_t max_group; /* most items in one transaction */
    /* Called on the writer thread after each COMMIT that succeeded, before
     * the items hear of it (serve wakes its outbox worker: the rows the
     * group queued go out while the replies are being answered).  Must be
     * quick and must not block.  May be NULL. */
    void (*on_commit)(void *payload);
    void *on_commit_payload;
};

#define WRITER_OPTIONS_INIT                                                    \
    {                                                                          \
        512, NULL, NULL                                                        \
    }

/*
 * Opens its own connection to the cache at `path` (WAL, synchronous =
 * FULL) and starts the thread.  Returns 0, or ERR_FAIL (cache cannot be
 * opened, thread cannot start).
 */
int writer_new(writer **out, const char *path,
               const struct writer_options *opts);

/*
 * Queues `item` (owned by the caller, which keeps it alive until
 * complete() was called).  Returns 0, or ERR_FAIL when the writer is
 * stopping: then the item was not taken and complete() is not called.
 */
int writer_submit(writer *w, struct writer_item *item);

/* Invariant 6; idempotent.  Call from any thread but the writer's. */
void writer_stop(writer *w);
void writer_free(writer *w); /* stops first; NULL is a no-op */

struct writer_stats {
    uint64_t transactions; /* groups begun (each ended in one COMMIT or a
                              rollback) */
    uint64_t items;        /* items run */
    uint64_t failed;       /* transactions lost (invariant 3) */
    uint64_t largest;      /* most items in one transaction */
};

/* Thread-safe. */
void writer_stats(struct writer_stats *out, writer *w);

#endif
