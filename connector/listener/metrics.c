/*
 * metrics — see metrics.h for the design notes and the names.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "err.h"
#include "mapping.h"
#include "xalloc.h"

/* Upper bounds of the latency buckets, in microseconds (+Inf follows). */
static const int64_t bucket_us[] = { 100,    250,    500,     1000,   2500,
                                     5000,   10000,  25000,   50000,  100000,
                                     250000, 500000, 1000000, 2500000 };
#define N_BUCKETS (sizeof(bucket_us) / sizeof(bucket_us[0]) + 1)

/* Status codes with their own series; the rest count as "other". */
static const int codes[] = { 200, 204, 400, 401, 403, 404, 405, 413, 500, 503 };
#define N_CODES (sizeof(codes) / sizeof(codes[0]) + 1)

static const char *const webhook_routes[METRICS_WEBHOOK_ROUTE_COUNT] = {
    "whatsapp",
    "dataverse",
};

static const char *const webhook_results[METRICS_RESULT_COUNT] = {
    "applied",      "unchanged", "duplicate", "quarantined", "ignored",
    "unauthorized", "malformed", "failed",    "queued",
};

struct route_series {
    _Atomic uint64_t buckets[N_BUCKETS];
    _Atomic uint64_t codes[N_CODES];
    _Atomic uint64_t sum_ns;
};

static struct {
    _Atomic uint64_t webhook[METRICS_WEBHOOK_ROUTE_COUNT][METRICS_RESULT_COUNT];
    _Atomic uint64_t duplicates;
    _Atomic uint64_t quarantined;
    _Atomic uint64_t near_misses;
    _Atomic uint64_t pruned[3]; /* outbox, quarantine, sync_runs */
    _Atomic uint64_t gate[GATE_REASON_COUNT];
    _Atomic uint64_t writer_groups, writer_items, writer_failures;
    _Atomic int64_t connections;
    _Atomic uint64_t rejected;
    struct route_series routes[METRICS_ROUTES_MAX + 1]; /* last: other */
} m;

/* Route patterns by slot; written under the lock, read after. */
static const char *route_names[METRICS_ROUTES_MAX];
static _Atomic int n_routes;
static pthread_mutex_t routes_mu = PTHREAD_MUTEX_INITIALIZER;

#define ADD(field, n)                                                          \
    atomic_fetch_add_explicit(&(field), (n), memory_order_relaxed)
#define GET(field) atomic_load_explicit(&(field), memory_order_relaxed)

void metrics_webhook_delivery(enum metrics_webhook_route route,
                              enum metrics_webhook_result result)
{
    if ((unsigned)route < METRICS_WEBHOOK_ROUTE_COUNT &&
        (unsigned)result < METRICS_RESULT_COUNT)
        ADD(m.webhook[route][result], 1);
}

const char *metrics_webhook_result_name(enum metrics_webhook_result result)
{
    return (unsigned)result < METRICS_RESULT_COUNT ? webhook_results[result]
                                                   : "unknown";
}

void metrics_duplicates_add(uint64_t n)
{
    ADD(m.duplicates, n);
}

void metrics_quarantined_add(uint64_t n)
{
    ADD(m.quarantined, n);
}

void metrics_near_misses_add(uint64_t n)
{
    ADD(m.near_misses, n);
}

void metrics_pruned_add(const struct cache_pruned *p)
{
    ADD(m.pruned[0], (uint64_t)p->outbox);
    ADD(m.pruned[1], (uint64_t)p->quarantine);
    ADD(m.pruned[2], (uint64_t)p->sync_runs);
}

void metrics_gate_decisions_add(enum gate_reason reason, uint64_t n)
{
    if ((unsigned)reason < GATE_REASON_COUNT && n)
        ADD(m.gate[reason], n);
}

int metrics_route_register(const char *pattern)
{
    int i, slot = METRICS_ROUTES_MAX;

    pthread_mutex_lock(&routes_mu);
    for (i = 0; i < n_routes; i++)
        if (strcmp(route_names[i], pattern) == 0)
            slot = i;
    if (slot == METRICS_ROUTES_MAX && n_routes < METRICS_ROUTES_MAX) {
        /* Kept for the life of the process (the registry is static). */
        route_names[n_routes] = xstrdup(pattern);
        slot = n_routes;
        atomic_store(&n_routes, n_routes + 1);
    }
    pthread_mutex_unlock(&routes_mu);
    return slot;
}

void metrics_request_observe(int route, int status, int64_t ns)
{
    struct route_series *s = &m.routes[route >= 0 && route < METRICS_ROUTES_MAX
                                           ? route
                                           : METRICS_ROUTES_MAX];
    size_t b = 0, c = 0;
    int64_t us = ns / 1000;

    while (b + 1 < N_BUCKETS && us > bucket_us[b])
        b++;
    while (c + 1 < N_CODES && codes[c] != status)
        c++;
    ADD(s->buckets[b], 1);
    ADD(s->codes[c], 1);
    ADD(s->sum_ns, ns > 0 ? (uint64_t)ns : 0);
}

void metrics_writer_group(uint64_t items, int committed)
{
    ADD(m.writer_groups, 1);
    ADD(m.writer_items, items);
    if (!committed)
        ADD(m.writer_failures, 1);
}

void metrics_connections_add(int delta)
{
    ADD(m.connections, delta);
}

void metrics_connection_rejected(void)
{
    ADD(m.rejected, 1);
}

int64_t metrics_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

uint64_t metrics_webhook_count(enum metrics_webhook_route route,
                               enum metrics_webhook_result result)
{
    return GET(m.webhook[route][result]);
}

uint64_t metrics_gate_decisions(enum gate_reason reason)
{
    return GET(m.gate[reason]);
}

void metrics_reset(void)
{
    /* Tests only: no concurrent counting while this runs. */
    memset((void *)&m, 0, sizeof(m));
}

/* ---- rendering ---------------------------------------------------------- */

static int head(struct strbuf *out, const char *name, const char *type,
                const char *help)
{
    return strbuf_addf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                       type);
}

static int counter(struct strbuf *out, const char *name, const char *help,
                   uint64_t v)
{
    int rc = head(out, name, "counter", help);

    return rc ? rc : strbuf_addf(out, "%s %llu\n", name, (unsigned long long)v);
}

static const char *route_label(int i)
{
    return i < METRICS_ROUTES_MAX ? route_names[i] : "other";
}

static int render_route(struct strbuf *out, int i, int histogram)
{
    const struct route_series *s = &m.routes[i];
    uint64_t total = 0, v;
    size_t b;
    int rc = 0;

    for (b = 0; rc == 0 && histogram && b < N_BUCKETS; b++) {
        total += GET(s->buckets[b]);
        if (b + 1 < N_BUCKETS)
            rc = strbuf_addf(out,
                             "optsync_http_request_duration_seconds_bucket"
                             "{route=\"%s\",le=\"%g\"} %llu\n",
                             route_label(i), (double)bucket_us[b] / 1e6,
                             (unsigned long long)total);
        else
            rc = strbuf_addf(out,
                             "optsync_http_request_duration_seconds_bucket"
                             "{route=\"%s\",le=\"+Inf\"} %llu\n"
                             "optsync_http_request_duration_seconds_sum"
                             "{route=\"%s\"} %.9f\n"
                             "optsync_http_request_duration_seconds_count"
                             "{route=\"%s\"} %llu\n",
                             route_label(i), (unsigned long long)total,
                             route_label(i), (double)GET(s->sum_ns) / 1e9,
                             route_label(i), (unsigned long long)total);
    }
    for (b = 0; rc == 0 && !histogram && b < N_CODES; b++) {
        v = GET(s->codes[b]);
        if (!v)
            continue;
        if (b + 1 < N_CODES)
            rc = strbuf_addf(out,
                             "optsync_http_requests_total{route=\"%s\","
                             "code=\"%d\"} %llu\n",
                             route_label(i), codes[b], (unsigned long long)v);
        else
            rc = strbuf_addf(out,
                             "optsync_http_requests_total{route=\"%s\","
                             "code=\"other\"} %llu\n",
                             route_label(i), (unsigned long long)v);
    }
    return rc;
}

static int render_http(struct strbuf *out)
{
    int i, n = atomic_load(&n_routes), rc;

    rc = head(out, "optsync_http_requests_total", "counter",
              "HTTP requests answered, by route pattern and status code");
    for (i = 0; rc == 0 && i <= METRICS_ROUTES_MAX; i++)
        if (i < n || i == METRICS_ROUTES_MAX)
            rc = render_route(out, i, 0);
    if (rc == 0)
        rc = head(out, "optsync_http_request_duration_seconds", "histogram",
                  "time from a request's handler to its reply");
    for (i = 0; rc == 0 && i <= METRICS_ROUTES_MAX; i++)
        if (i < n || (i == METRICS_ROUTES_MAX && GET(m.routes[i].sum_ns)))
            rc = render_route(out, i, 1);
    return rc;
}

/* Finished rows the housekeeping thread removed (retention.h). */
static int render_pruned(struct strbuf *out)
{
    static const char *const tables[] = { "outbox", "quarantine", "sync_runs" };
    size_t i;
    int rc = head(out, "optsync_pruned_rows_total", "counter",
                  "finished cache rows removed by the retention rule");

    for (i = 0; rc == 0 && i < sizeof(tables) / sizeof(tables[0]); i++)
        rc = strbuf_addf(out, "optsync_pruned_rows_total{table=\"%s\"} %llu\n",
                         tables[i], (unsigned long long)GET(m.pruned[i]));
    return rc;
}

static int render_counters(struct strbuf *out)
{
    int r, s, rc;

    rc = head(out, "optsync_webhook_deliveries_total", "counter",
              "webhook deliveries (POSTs) by route and result");
    for (r = 0; rc == 0 && r < METRICS_WEBHOOK_ROUTE_COUNT; r++)
        for (s = 0; rc == 0 && s < METRICS_RESULT_COUNT; s++)
            rc = strbuf_addf(out,
                             "optsync_webhook_deliveries_total{route=\"%s\","
                             "result=\"%s\"} %llu\n",
                             webhook_routes[r], webhook_results[s],
                             (unsigned long long)GET(m.webhook[r][s]));
    if (rc == 0)
        rc =
            counter(out, "optsync_webhook_duplicates_total",
                    "inbound events skipped as seen before", GET(m.duplicates));
    if (rc == 0)
        rc = counter(out, "optsync_quarantined_events_total",
                     "events put into quarantine", GET(m.quarantined));
    if (rc == 0)
        rc = counter(out, "optsync_near_misses_total",
                     "replies recorded as near-misses", GET(m.near_misses));
    if (rc == 0)
        rc = render_pruned(out);
    if (rc == 0)
        rc = head(out, "optsync_gate_decisions_total", "counter",
                  "send-gate decisions by reason");
    for (r = 0; rc == 0 && r < GATE_REASON_COUNT; r++)
        rc = strbuf_addf(out,
                         "optsync_gate_decisions_total{reason=\"%s\"} %llu\n",
                         gate_reason_name((enum gate_reason)r),
                         (unsigned long long)GET(m.gate[r]));
    return rc;
}

static int render_server(struct strbuf *out)
{
    int rc = counter(out, "optsync_writer_transactions_total",
                     "group-commit transactions", GET(m.writer_groups));

    if (rc == 0)
        rc = counter(out, "optsync_writer_items_total",
                     "work items run by the group-commit writer",
                     GET(m.writer_items));
    if (rc == 0)
        rc = counter(out, "optsync_writer_commit_failures_total",
                     "group transactions that did not commit",
                     GET(m.writer_failures));
    if (rc == 0)
        rc = head(out, "optsync_listener_connections", "gauge",
                  "client connections admitted and open");
    if (rc == 0)
        rc = strbuf_addf(out, "optsync_listener_connections %lld\n",
                         (long long)GET(m.connections));
    if (rc == 0)
        rc = counter(out, "optsync_listener_connections_rejected_total",
                     "connections refused (max_connections)", GET(m.rejected));
    return rc;
}

/* ---- from the database -------------------------------------------------- */

static int scalar(int64_t *out, cache *c, const char *sql)
{
    sqlite3_stmt *st = cache_stmt(c, sql);

    if (!st || cache_step(st) != SQLITE_ROW)
        return ERR_FAIL;
    *out = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return 0;
}

static int render_sync(struct strbuf *out, cache *c)
{
    int64_t last = 0, now = clock_now_ms();
    int rc;

    if (cache_last_sync_success(&last, c) != 0)
        return ERR_FAIL;
    rc = head(out, "optsync_sync_last_success_timestamp_seconds", "gauge",
              "start of the last successful sync (0: none yet)");
    if (rc == 0)
        rc = strbuf_addf(out,
                         "optsync_sync_last_success_timestamp_seconds "
                         "%.3f\n",
                         (double)last / 1000);
    if (rc == 0)
        rc = head(out, "optsync_sync_lag_seconds", "gauge",
                  "age of the last successful sync (+Inf: none yet)");
    if (rc == 0 && last)
        rc = strbuf_addf(out, "optsync_sync_lag_seconds %.3f\n",
                         (double)(now - last) / 1000);
    else if (rc == 0)
        rc = strbuf_adds(out, "optsync_sync_lag_seconds +Inf\n");
    return rc;
}

static int render_numbers(struct strbuf *out, cache *c)
{
    sqlite3_stmt *st = cache_stmt(c, "SELECT status, active, count(*) FROM "
                                     "numbers GROUP BY status, active");
    int64_t counts[5] = { 0 }; /* none, single, double, opted_out, inact. */
    int rc, s;

    if (!st)
        return ERR_FAIL;
    while ((rc = cache_step(st)) == SQLITE_ROW) {
        s = sqlite3_column_int(st, 0);
        if (!sqlite3_column_int(st, 1))
            s = 4;
        if (s >= 0 && s < 5)
            counts[s] += sqlite3_column_int64(st, 2);
    }
    if (rc != SQLITE_DONE)
        return ERR_FAIL;
    rc = head(out, "optsync_numbers", "gauge",
              "cached number rows by status (inactive rows apart)");
    for (s = 0; rc == 0 && s < 5; s++)
        rc = strbuf_addf(out, "optsync_numbers{status=\"%s\"} %lld\n",
                         s < 4 ? consent_status_name((enum consent_status)s)
                               : "inactive",
                         (long long)counts[s]);
    return rc;
}

static int render_queues(struct strbuf *out, cache *c)
{
    int64_t q = 0, pending = 0, dead = 0, near = 0;
    int rc = scalar(&q, c,
                    "SELECT count(*) FROM quarantine WHERE "
                    "resolved_at IS NULL");

    if (rc == 0)
        rc = scalar(&pending, c,
                    "SELECT count(*) FROM outbox WHERE state IN "
                    "('pending', 'inflight')");
    if (rc == 0)
        rc = scalar(&dead, c,
                    "SELECT count(*) FROM outbox WHERE "
                    "state = 'dead'");
    if (rc == 0)
        rc = scalar(&near, c,
                    "SELECT count(*) FROM near_misses WHERE "
                    "reviewed_at IS NULL");
    if (rc)
        return rc;
    rc = head(out, "optsync_quarantine_open_events", "gauge",
              "quarantined events waiting for a replay");
    if (rc == 0)
        rc = strbuf_addf(out, "optsync_quarantine_open_events %lld\n",
                         (long long)q);
    if (rc == 0)
        rc = head(out, "optsync_outbox_rows", "gauge",
                  "write-backs waiting (pending) or given up (dead)");
    if (rc == 0)
        rc = strbuf_addf(out,
                         "optsync_outbox_rows{state=\"pending\"} %lld\n"
                         "optsync_outbox_rows{state=\"dead\"} %lld\n",
                         (long long)pending, (long long)dead);
    if (rc == 0)
        rc = head(out, "optsync_near_misses_open", "gauge",
                  "near-miss replies not reviewed yet");
    if (rc == 0)
        rc = strbuf_addf(out, "optsync_near_misses_open %lld\n",
                         (long long)near);
    return rc;
}

/* Consent messages: the pause after a refused token says why (the
 * reason is our own fixed text), and the messages by state.  With
 * sending off the persisted pause is stale: 0, whatever it says. */
static int render_messages(struct strbuf *out, cache *c, int sending)
{
    static const char q[] =
        "SELECT sum(state IN ('pending', 'inflight')), sum(state = 'dead'), "
        "sum(state = 'done'), sum(delivery = 'delivered'), "
        "sum(delivery = 'read'), sum(delivery = 'failed') FROM outbox "
        "WHERE kind = 'whatsapp'";
    static const char *const names[] = { "pending",   "dead", "sent",
                                         "delivered", "read", "failed" };
    sqlite3_stmt *st = cache_stmt(c, "SELECT paused_reason FROM sender_state "
                                     "WHERE id = 1");
    const char *why;
    size_t i;
    int rc = head(out, "optsync_whatsapp_send_paused", "gauge",
                  "1 while WhatsApp refuses the token and no consent "
                  "message is sent (reason label says why)");

    if (!st || cache_step(st) != SQLITE_ROW)
        return ERR_FAIL;
    why = sending ? cache_col_text(st, 0) : NULL;
    if (rc == 0)
        rc = why ? strbuf_addf(out,
                               "optsync_whatsapp_send_paused{reason=\"%s\"} "
                               "1\n",
                               strchr(why, '"') ? "token refused" : why)
                 : strbuf_addf(out, "optsync_whatsapp_send_paused 0\n");
    sqlite3_reset(st);
    st = cache_stmt(c, q);
    if (rc || !st || cache_step(st) != SQLITE_ROW)
        return ERR_FAIL;
    rc = head(out, "optsync_whatsapp_messages", "gauge",
              "consent messages by state (queue, then Meta's statuses; "
              "finished ones for [outbox] keep_done)");
    for (i = 0; rc == 0 && i < sizeof(names) / sizeof(names[0]); i++)
        rc = strbuf_addf(out, "optsync_whatsapp_messages{state=\"%s\"} %lld\n",
                         names[i], (long long)sqlite3_column_int64(st, (int)i));
    sqlite3_reset(st);
    return rc;
}

int metrics_render(struct strbuf *out, cache *c, int sending)
{
    int rc = render_http(out);

    if (rc == 0)
        rc = render_counters(out);
    if (rc == 0)
        rc = render_server(out);
    if (rc)
        return rc;
    rc = render_sync(out, c);
    if (rc == 0)
        rc = render_numbers(out, c);
    if (rc == 0)
        rc = render_queues(out, c);
    if (rc == 0)
        rc = render_messages(out, c, sending);
    return rc;
}
