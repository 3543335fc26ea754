/*
 * gate — the send-gate: "may this Configuration send this number a
 * marketing message (about this topic), now?"  Answers allow or deny, one
 * reason and the number's consent status, singly or in bulk, in process.
 *
 * Pipeline position: the last reader.  cache (numbers, configurations,
 * sync_runs, sends) → gate → journeys (CLI `optsync gate`, the HTTP API,
 * or C callers).  It never writes consent and never talks to Dataverse;
 * the only row it writes is a send (gate_record_send, for the caps).
 *
 * Deny reasons, in the order they are checked (the first that applies is
 * the one reported):
 *
 *    1 cache_stale             no successful sync within max_staleness
 *                              (or none yet): global, before any input
 *    2 unknown_configuration   no such Configuration, several with that
 *                              name, or an inactive one
 *    3 invalid_phone           the phone does not parse
 *    4 opted_out               withdrawals first ...
 *    5 no_consent              ... then missing consent (no active row,
 *                              or an active row with an empty status)
 *    6 double_opt_in_required  single opt-in where DOI is required
 *    7 topic_opted_out         then preferences: the asked topic is off
 *    8 paused                  paused_until lies in the future
 *    9 frequency_capped        last, the caps: the only rule that counts
 *                              rows (sends) at decision time
 *
 * Design notes
 *  (1) Never allow on an error.  A result starts as deny/cache_stale and
 *      becomes allow only at the end of a decision that read everything
 *      it needed.  Any error it cannot classify makes the gate BROKEN:
 *      every answer is a deny until its state has been reloaded from
 *      the cache, which the next call tries first (SQLite's pager does
 *      the same with its sticky error state).
 *  (2) Never answer from a state older than the database.  Every call
 *      (one per bulk call) first checks whether anything was committed
 *      since it last looked, by any connection or process, its own
 *      included: it compares the WAL-index header (the shared-memory
 *      header every WAL commit rewrites; format in SQLite's walformat
 *      documentation), read through the VFS's own mapping, about 10 ns.
 *      Without a WAL mapping it falls back to PRAGMA data_version plus
 *      SQLITE_FCNTL_DATA_VERSION (about 1 µs).
 *  (3) The in-memory index catches up, it is not rebuilt.  Migration 2's
 *      triggers append (configuration, e164) to gate_journal when a
 *      gate-relevant column of a number changes or a row is deleted, and
 *      a Configuration change appends its id; the gate reloads just those
 *      numbers (one point query each).  Inserted rows are not journaled
 *      (the sync's first load stays free): the gate reads the rows above
 *      the highest local_id it has seen and folds them in, which an
 *      insert allows because it can only add to a number's state; a
 *      deletion records the highest local_id left, so a reused rowid is
 *      read again.  It rebuilds fully only at start, after an error, when
 *      the journal was pruned past its position, or when the journal
 *      holds more changes than a rebuild costs.  Catching up and
 *      rebuilding read one snapshot (one read transaction).
 *  (4) The state of a number is the strictest status (consent.h note 1)
 *      among the active rows of its E.164 key and of its aliases
 *      (phone_aliases); rows without an E.164 key never match; inactive
 *      rows count as no record.  Topic opt-outs are the union of those
 *      rows' topic lists, the pause is the latest paused_until.
 *  (5) Staleness is global: last successful sync = max(started_at) of
 *      sync_runs with ok = 1; fresh while now - that <= max_staleness.
 *  (6) A gate handle belongs to one thread, like its cache connection,
 *      and answers only outside that connection's transactions (inside
 *      one, what is committed cannot be told apart: it fails closed).
 *
 *   gate_new() --rebuild--> CURRENT --a commit is seen (note 2)--+
 *                             ^  ^                              |
 *                             |  +--- catch up (note 3) <--------+
 *                             |                                  |
 *         rebuild at the next call                         any error
 *                             |                                  |
 *                           BROKEN <-----------------------------+
 */
#ifndef OPTSYNC_GATE_H
#define OPTSYNC_GATE_H

#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "config.h"
#include "mapping.h" /* enum consent_status */
#include "phone.h"   /* PHONE_E164_MAX */

typedef struct gate gate;

enum gate_decision {
    GATE_DENY = 0, /* zero: a result nobody filled in denies */
    GATE_ALLOW,
};

enum gate_reason {
    GATE_CACHE_STALE = 0, /* zero: fail closed by default */
    GATE_UNKNOWN_CONFIGURATION,
    GATE_INVALID_PHONE,
    GATE_OPTED_OUT,
    GATE_NO_CONSENT,
    GATE_DOUBLE_OPT_IN_REQUIRED,
    GATE_TOPIC_OPTED_OUT,
    GATE_PAUSED,
    GATE_FREQUENCY_CAPPED,
    GATE_ALLOWED,
};
#define GATE_REASON_COUNT 10

struct gate_result {
    enum gate_decision decision;
    enum gate_reason reason;
    enum consent_status status; /* CONSENT_NONE unless looked up */
    char e164[PHONE_E164_MAX];  /* the key; "" when the phone is invalid */
};

struct gate_options {
    int64_t max_staleness_ms;    /* [sync] max_staleness */
    int64_t frequency_cap;       /* sends per number per period; 0 off */
    int64_t topic_frequency_cap; /* sends per number and topic; 0 off */
    int64_t frequency_period_ms; /* [gate] frequency_period */
    const char *default_region;  /* [consent] default_region; copied */
    int index;                   /* 1: in-memory index (serve, bulk);
                                    0: read SQLite per decision (CLI) */
};

#define GATE_OPTIONS_INIT                                                      \
    {                                                                          \
        15 * 60 * 1000LL, 0, 0, 7 * 24 * 3600 * 1000LL, NULL, 1                \
    }

/* Options from the config ([sync], [gate], [consent]); index = 1. */
void gate_options_from_config(struct gate_options *out,
                              const struct optsync_config *cfg);

/*
 * A gate over `c` (borrowed; must outlive the gate).  With opts->index it
 * builds the index now (about half a second and 16 MiB per million
 * numbers).  Returns 0, or ERR_FAIL when the cache cannot be read.
 */
int gate_new(gate **out, cache *c, const struct gate_options *opts);
void gate_free(gate *g); /* NULL is a no-op */

/*
 * Decides for `phone` (E.164, or national with the Configuration's
 * default_region, else [consent] default_region) under `configuration`
 * (Dataverse id or exact name), about `topic` (NULL: none), at
 * clock_now_ms().  Bad input is a deny with a reason, not an error.
 * Returns 0; or ERR_FAIL when the cache could not be read, and then *out
 * is still written: a deny (cache_stale), never an allow.
 */
int gate_decide(struct gate_result *out, gate *g, const char *configuration,
                const char *phone, const char *topic);

/*
 * The same for phones[0..n) into out[0..n), in input order, with one
 * freshness check and one clock reading for the whole call.  Returns 0,
 * or ERR_FAIL with every result a deny (cache_stale).
 */
int gate_decide_bulk(struct gate_result *out, gate *g,
                     const char *configuration, const char *const *phones,
                     size_t n, const char *topic);

/*
 * Records a marketing send (for the frequency caps) at `at` (ms; 0: now)
 * in its own transaction, and drops that number's sends older than the
 * frequency period.  Returns 0; ERR_NOTFOUND for an unknown
 * configuration; ERR_BADINPUT for an invalid phone; ERR_CONFLICT when the
 * database stayed locked; ERR_FAIL.
 */
int gate_record_send(gate *g, const char *configuration, const char *phone,
                     const char *topic, int64_t at);

/*
 * The same inside the caller's open transaction on `c`, for a
 * configuration id and E.164 key already resolved (the listener's
 * group-commit writer): inserts the send and drops that number's sends
 * older than `period_ms`.  Returns 0 or ERR_FAIL.
 */
int gate_send_record_locked(cache *c, const char *configuration_id,
                            const char *e164, const char *topic, int64_t at,
                            int64_t period_ms);

/*
 * Brings the gate level with the database now (note 2, 3): what the next
 * decision would do first.  A long-lived caller (the listener) calls it
 * on a timer so that the index follows other processes' commits while
 * nobody asks.  Returns 0, or ERR_FAIL (the gate is BROKEN, note 1).
 */
int gate_refresh(gate *g);

/* "allowed", "opted_out", ... (docs/design.md); "allow" / "deny". */
const char *gate_reason_name(enum gate_reason r);
const char *gate_decision_name(enum gate_decision d);

/* What the gate did so far (for metrics and `status`). */
struct gate_stats {
    uint64_t decisions[GATE_REASON_COUNT]; /* per reason */
    uint64_t catch_ups; /* commits seen and caught up with (note 3) */
    uint64_t rebuilds;  /* full index builds, gate_new's included */
    uint64_t failures;  /* calls that failed closed (note 1) */
    size_t numbers;     /* index entries (0 without the index) */
};

void gate_stats(struct gate_stats *out, const gate *g);

#endif
