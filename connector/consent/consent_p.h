/*
 * consent_p — shared between the pieces of the consent engine only
 * (consent.c, consent_mirror.c, consent_reply.c, consent_quarantine.c,
 * consent_store.c).
 *
 * Layering: consent.c (local expressions, consent_apply) and
 * consent_mirror.c (Dataverse rows) both stand on consent_store.c (state,
 * ledger, outbox); consent.c hands MIRROR events down to consent_mirror.c.
 * Nothing below calls back up.
 */
#ifndef OPTSYNC_CONSENT_P_H
#define OPTSYNC_CONSENT_P_H

#include "consent.h"
#include "phone.h"

/* ---- consent_store.c ------------------------------------------------------
 */

/* The state of one (configuration, phone): note (1) in consent.h. */
struct consent__state {
    enum consent_status status; /* strictest among active rows */
    int64_t status_at;          /* newest event time of that status */
    const char *source;         /* NULL unless rows exist (static) */
    int local;                  /* some row's status is a local
                                   expression (not from Dataverse) */
    int rows;                   /* active rows */
};

/* Keys the phone may be stored under: itself and its aliases. */
struct consent__keys {
    char key[1 + PHONE_ALIASES_MAX][PHONE_E164_MAX];
    size_t count;
};

void consent__keys_init(struct consent__keys *k, const char *e164);

/* The SQL condition matching a number's keys, bound to ?2..?6 by
 * consent__bind_keys (unused ones NULL). */
#define CONSENT__KEYS_IN "e164 IN (?2, ?3, ?4, ?5, ?6)"
void consent__bind_keys(sqlite3_stmt *st, const struct consent__keys *k);

int consent__state_load(struct consent__state *out, cache *c,
                        const char *configuration_id,
                        const struct consent__keys *keys);

/* Ledger entry for a change of state (caller's transaction). */
int consent__ledger(cache *c, const char *configuration_id, const char *phone,
                    enum consent_status from, enum consent_status to,
                    int64_t at, const char *source, const char *evidence);

/*
 * Marks number row `local_id` as needing a write-back (note 6): one
 * pending outbox row per number row, refreshed when it exists.
 */
int consent__queue_writeback(cache *c, int64_t local_id,
                             const char *configuration_id, const char *e164,
                             enum consent_status status, int64_t event_at,
                             const char *reason);

/* Drops pending write-backs of a row Dataverse has overtaken. */
int consent__cancel_writeback(cache *c, int64_t local_id);

/* True (1) when a later or opt-out-tie expression keeps `current`. */
int consent__loses(int64_t event_at, enum consent_status next,
                   int64_t current_at, enum consent_status current);

/* ---- consent_messages.c ---------------------------------------------------
 */

/*
 * Queues the message transition `t` of (configuration, e164) calls for,
 * if any (note 8), in the caller's transaction.  No-op when none or when
 * the number has no active row.
 */
int consent__queue_message(cache *c, const struct consent_options *opts,
                           const char *configuration_id, const char *e164,
                           const struct consent_transition *t, int64_t at);

/* ---- consent_mirror.c -----------------------------------------------------
 */

/* The MIRROR half of consent_apply_locked. */
int consent__mirror(struct consent_result *out, cache *c,
                    const struct consent_options *opts,
                    const struct consent_event *ev);

#endif
