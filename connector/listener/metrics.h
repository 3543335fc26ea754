/*
 * metrics — the listener's counters and their Prometheus text exposition
 * (GET /metrics).
 *
 * Pipeline position: beside the listener.  Request handlers (the gate
 * API, later the WhatsApp and Dataverse webhook routes) count what they
 * did through the functions below; the /metrics handler renders them and
 * adds what lives in the database (rows by status, open quarantine,
 * outbox pending / dead, open near-misses, sync lag), read at scrape
 * time.  It never logs and never changes consent.
 *
 * Design notes
 *  (1) One process-wide set of relaxed atomics (like a Prometheus client
 *      library's default registry): any thread may count at any time
 *      without a lock or a handle; a scrape reads each value once and
 *      may see one counter a step ahead of another, never a torn value.
 *  (2) Counters only grow (reset only by metrics_reset(), for tests);
 *      histogram buckets are stored per bucket and rendered cumulative.
 *  (3) Label values are fixed enums or registered route patterns, so the
 *      number of series is bounded whatever the clients send.
 *
 * Names (all optsync_*, units in the name):
 *   optsync_http_requests_total{route,code}   (routes registered here)
 *   optsync_http_request_duration_seconds{route}   histogram
 *   optsync_webhook_deliveries_total{route,result}
 *   optsync_webhook_duplicates_total, optsync_quarantined_events_total,
 *   optsync_near_misses_total, optsync_gate_decisions_total{reason},
 *   optsync_pruned_rows_total{table} (outbox, quarantine, sync_runs),
 *   optsync_writer_transactions_total, optsync_writer_items_total,
 *   optsync_writer_commit_failures_total,
 *   optsync_listener_connections, optsync_listener_connections_rejected_total
 *   from the database: optsync_sync_lag_seconds,
 *   optsync_sync_last_success_timestamp_seconds, optsync_numbers{status},
 *   optsync_quarantine_open_events, optsync_outbox_rows{state},
 *   optsync_near_misses_open
 */
#ifndef OPTSYNC_METRICS_H
#define OPTSYNC_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "gate.h"
#include "retention.h"
#include "xalloc.h"

/* Webhook routes (the label route="whatsapp" / "dataverse"). */
enum metrics_webhook_route {
    METRICS_WEBHOOK_WHATSAPP = 0,
    METRICS_WEBHOOK_DATAVERSE,
    METRICS_WEBHOOK_ROUTE_COUNT,
};

/* What became of one delivery (one POST), the label result=... */
enum metrics_webhook_result {
    METRICS_RESULT_APPLIED = 0,  /* 200 after commit; something changed */
    METRICS_RESULT_UNCHANGED,    /* 200 after commit; nothing to change */
    METRICS_RESULT_DUPLICATE,    /* 200; every event seen before */
    METRICS_RESULT_QUARANTINED,  /* 200; kept in quarantine */
    METRICS_RESULT_IGNORED,      /* 200; no consent meaning (statuses) */
    METRICS_RESULT_UNAUTHORIZED, /* 401 / 403 / 404: signature or key
                                    wrong, or the route has no key */
    METRICS_RESULT_MALFORMED,    /* 400 / 413: does not parse, too many
                                    items */
    METRICS_RESULT_FAILED,       /* 503: could not commit */
    METRICS_RESULT_QUEUED,       /* 200; a Dataverse hint queued for
                                    re-fetch (dv_webhook.h note 4) */
    METRICS_RESULT_COUNT,
};

/* Most routes with their own series (more share the label "other"). */
#define METRICS_ROUTES_MAX 32

/* ---- counting (any thread) ---------------------------------------------- */

void metrics_webhook_delivery(enum metrics_webhook_route route,
                              enum metrics_webhook_result result);
/* The label of a result ("applied", ...; "unknown" out of range). */
const char *metrics_webhook_result_name(enum metrics_webhook_result result);
/* Inbound events skipped because their id was seen before. */
void metrics_duplicates_add(uint64_t n);
/* Events put into quarantine (the open count comes from the database). */
void metrics_quarantined_add(uint64_t n);
/* Replies recorded as near-misses. */
void metrics_near_misses_add(uint64_t n);
/* Finished rows the housekeeping thread pruned (retention.h). */
void metrics_pruned_add(const struct cache_pruned *p);
/* Gate decisions with `reason` (n of them: a bulk call counts each). */
void metrics_gate_decisions_add(enum gate_reason reason, uint64_t n);

/*
 * A label slot for a route `pattern` ("/v1/gate"); the same pattern gets
 * the same slot.  Past METRICS_ROUTES_MAX the slot of "other".  The
 * pattern is copied.
 */
int metrics_route_register(const char *pattern);
/* One request answered: route slot (-1: no route matched), HTTP status,
 * time from the handler's start to the reply, in nanoseconds. */
void metrics_request_observe(int route, int status, int64_t ns);

/* The group-commit writer: one transaction of `items` items. */
void metrics_writer_group(uint64_t items, int committed);
/* Connections admitted (+1 / -1) and refused for max_connections. */
void metrics_connections_add(int delta);
void metrics_connection_rejected(void);

/* Monotonic nanoseconds, for request durations. */
int64_t metrics_now_ns(void);

/* ---- reading ------------------------------------------------------------ */

/*
 * Appends the Prometheus text exposition (format 0.0.4) of every metric
 * to `out`: the counters above, then the database values read through
 * `c` (a connection outside any transaction) at clock_now_ms().
 * `sending` is 0 when [whatsapp] send = off: a pause the database still
 * holds from when sending was on is then not reported (nothing is sent,
 * so nothing is paused).
 * Returns 0; ERR_FAIL when the database could not be read (the counters
 * are in `out` all the same); ERR_TOOBIG when `out`'s cap was reached.
 */
int metrics_render(struct strbuf *out, cache *c, int sending);

/* Counter values for tests: the total of one webhook label pair, and of
 * one gate reason. */
uint64_t metrics_webhook_count(enum metrics_webhook_route route,
                               enum metrics_webhook_result result);
uint64_t metrics_gate_decisions(enum gate_reason reason);

/* Zeroes every counter (tests). */
void metrics_reset(void);

#endif
