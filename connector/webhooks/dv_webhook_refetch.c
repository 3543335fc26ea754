/*
 * dv_webhook_refetch — the durable re-fetch queue (dv_webhook.h note 7):
 * rows a webhook only hinted at, read again by id through
 * dataverse_get_row() and mirrored as the poller would.
 *
 * Runs outside any request (optsync serve, its own thread and cache
 * connection): a GET is never made inside a transaction, and each row is
 * applied and dequeued in one transaction of its own.
 */
#include "dv_webhook_p.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "configurations.h"
#include "err.h"
#include "jsonutil.h"
#include "log.h"
#include "xalloc.h"

int dv_webhook_refetch_queue(cache *c, enum dv_entity e, const char *id,
                             const char *reason, int64_t delay_ms)
{
    /* A newer hint bumps the generation (note 7) and never brings a row
     * forward: a delayed one must not be read before Dataverse commits,
     * a backed-off one waits out its failure. */
    sqlite3_stmt *st = cache_stmt(
        c, "INSERT INTO dv_refetch(entity, dv_id, reason, queued_at, "
           "next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5) "
           "ON CONFLICT(entity, dv_id) DO UPDATE SET reason = "
           "excluded.reason, queued_at = excluded.queued_at, generation = "
           "generation + 1, next_attempt_at = max(next_attempt_at, "
           "excluded.next_attempt_at)");
    int64_t now = clock_now_ms();

    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, dv_webhook__entity_name(e));
    cache_bind_text(st, 2, id);
    cache_bind_text(st, 3, reason);
    cache_bind_int(st, 4, now);
    cache_bind_int(st, 5, now + delay_ms);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

int dv_webhook_refetch_pending(int *count, int64_t *next_at, cache *c)
{
    sqlite3_stmt *st = cache_stmt(c, "SELECT count(*), min(next_attempt_at) "
                                     "FROM dv_refetch");

    if (!st || cache_step(st) != SQLITE_ROW)
        return ERR_FAIL;
    *count = sqlite3_column_int(st, 0);
    *next_at = sqlite3_column_int64(st, 1);
    sqlite3_reset(st);
    return 0;
}

/* ---- reading the queue ------------------------------------------------------
 */

struct queued {
    enum dv_entity e;
    char id[MAPPING_GUID_LEN + 1];
    int64_t generation;
    int64_t attempts;
};

/* Due rows, Configurations first (a number's region comes from its
 * Configuration).  *out is malloc'd. */
static int due_rows(struct queued **out, size_t *n, cache *c, int max_rows)
{
    sqlite3_stmt *st = cache_stmt(
        c, "SELECT entity, dv_id, generation, attempts FROM dv_refetch "
           "WHERE next_attempt_at <= ?1 ORDER BY entity = 'number', "
           "next_attempt_at LIMIT ?2");
    struct queued *rows = NULL;
    int rc;

    *n = 0;
    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, clock_now_ms());
    cache_bind_int(st, 2, max_rows > 0 ? max_rows : -1);
    while ((rc = cache_step(st)) == SQLITE_ROW) {
        rows = xrealloc(rows, (*n + 1) * sizeof(*rows));
        rows[*n].e = strcmp(cache_col_text(st, 0), "number") == 0
                         ? DV_NUMBER
                         : DV_CONFIGURATION;
        snprintf(rows[*n].id, sizeof(rows[*n].id), "%s", cache_col_text(st, 1));
        rows[*n].generation = sqlite3_column_int64(st, 2);
        rows[(*n)++].attempts = sqlite3_column_int64(st, 3);
    }
    if (rc != SQLITE_DONE) {
        free(rows);
        return ERR_FAIL;
    }
    *out = rows;
    return 0;
}

/* Dequeues the row unless a newer hint came meanwhile (note 7). */
static int dequeue(cache *c, const struct queued *q)
{
    sqlite3_stmt *st = cache_stmt(c, "DELETE FROM dv_refetch WHERE "
                                     "entity = ?1 AND dv_id = ?2 AND "
                                     "generation = ?3");

    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, dv_webhook__entity_name(q->e));
    cache_bind_text(st, 2, q->id);
    cache_bind_int(st, 3, q->generation);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

static int64_t backoff_ms(int64_t attempts)
{
    int64_t d = DV_REFETCH_FIRST_BACKOFF_MS;

    while (attempts-- > 0 && d < DV_REFETCH_MAX_BACKOFF_MS)
        d *= 2;
    return d < DV_REFETCH_MAX_BACKOFF_MS ? d : DV_REFETCH_MAX_BACKOFF_MS;
}

/* Backs the row off after a failure, in its own transaction. */
static int defer(cache *c, const struct queued *q, const char *error)
{
    sqlite3_stmt *st;
    int rc = cache_begin(c);

    if (rc)
        return rc;
    st = cache_stmt(c, "UPDATE dv_refetch SET attempts = attempts + 1, "
                       "next_attempt_at = ?3, last_error = ?4 "
                       "WHERE entity = ?1 AND dv_id = ?2");
    rc = st ? 0 : ERR_FAIL;
    if (rc == 0) {
        cache_bind_text(st, 1, dv_webhook__entity_name(q->e));
        cache_bind_text(st, 2, q->id);
        cache_bind_int(st, 3, clock_now_ms() + backoff_ms(q->attempts));
        cache_bind_text(st, 4, error);
        rc = cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
    }
    rc = rc ? rc : cache_commit(c);
    if (rc)
        cache_rollback(c);
    return rc;
}

/* ---- one row ---------------------------------------------------------------
 */

struct run {
    const dv_webhook *wh;
    cache *c;
    dataverse *dv;
    struct dv_refetch_result *res;
};

/* Applies what the GET said (row, or NULL for 404) and dequeues. */
static int commit_row(struct run *r, const struct queued *q, const cJSON *row)
{
    struct dv_webhook_result res;
    int rc = cache_begin(r->c);

    if (rc)
        return rc;
    memset(&res, 0, sizeof(res));
    if (row)
        rc = dv_webhook__mirror_row(&res, r->wh, r->c, q->e, row, 0,
                                    DV_WEBHOOK__REFETCH);
    else
        rc = dv_webhook__remove_row(r->c, q->e, q->id, clock_now_ms());
    if (rc == 0)
        rc = dequeue(r->c, q);
    rc = rc ? rc : cache_commit(r->c);
    if (rc) {
        cache_rollback(r->c);
        return rc;
    }
    if (!row)
        r->res->removed++;
    else if (res.outcome == DV_WEBHOOK_APPLIED)
        r->res->applied++;
    else if (res.outcome == DV_WEBHOOK_STALE)
        r->res->stale++;
    else {
        r->res->skipped++;
        log_warn("dv_refetch_row_skipped entity=%s dv_id=%s reason=%s",
                 dv_webhook__entity_name(q->e), q->id, log_q(res.reason));
    }
    return 0;
}

/* The poller's fetch_missing_configurations for one number: its
 * Configuration is read and stored first.  A missing one is logged and
 * the number mirrored with the default region, as the poller does. */
static int ensure_configuration(struct run *r, const cJSON *row)
{
    struct queued q = { DV_CONFIGURATION, { 0 }, 0, 0 };
    struct configuration_info info;
    const char *v = jsonutil_str(row, r->wh->m->number.configuration_value);
    cJSON *got = NULL;
    int rc;

    if (!v || mapping_guid_normalize(q.id, v) != 0)
        return 0;
    rc = configurations_get(&info, r->c, q.id);
    if (rc == 0)
        configuration_info_dispose(&info);
    if (rc != ERR_NOTFOUND)
        return rc;
    rc = dataverse_get_row(&got, r->dv, DV_CONFIGURATION, q.id);
    if (rc == ERR_NOTFOUND) {
        log_warn("dv_refetch_configuration_missing id=%s", q.id);
        return 0;
    }
    if (rc == 0) {
        r->res->fetched++;
        rc = commit_row(r, &q, got);
    }
    cJSON_Delete(got);
    return rc;
}

/* Remote failures that end the run (the endpoint, not the row). */
static int endpoint_failure(int rc)
{
    return rc == ERR_AUTH || rc == ERR_THROTTLED || rc == ERR_FAIL;
}

static int refetch_one(struct run *r, const struct queued *q)
{
    cJSON *row = NULL;
    int rc = dataverse_get_row(&row, r->dv, q->e, q->id);

    if (rc == 0) {
        r->res->fetched++;
        if (q->e == DV_NUMBER)
            rc = ensure_configuration(r, row);
        if (rc == 0)
            rc = commit_row(r, q, row);
    } else if (rc == ERR_NOTFOUND) {
        rc = commit_row(r, q, NULL);
    } else if (!endpoint_failure(rc)) {
        /* This row only (a 4xx, an answer over the cap): back it off. */
        log_warn("dv_refetch_failed entity=%s dv_id=%s error=%s",
                 dv_webhook__entity_name(q->e), q->id, log_q(err_message()));
        r->res->deferred++;
        rc = defer(r->c, q, err_message());
    }
    cJSON_Delete(row);
    return rc;
}

/* ---- the run ---------------------------------------------------------------
 */

/* Dataverse could not be reached: back the row off, end the run, and
 * hand the remote error up unchanged. */
static int stop_run(struct run *r, const struct queued *q, int rc)
{
    enum err_class cls = err_class_last();
    char error[256];

    snprintf(error, sizeof(error), "%s", err_message());
    log_warn("dv_refetch_stopped entity=%s dv_id=%s error=%s",
             dv_webhook__entity_name(q->e), q->id, log_q(error));
    r->res->deferred++;
    if (defer(r->c, q, error) != 0)
        return ERR_FAIL;
    err_set(cls, "%s", error);
    return rc;
}

static int finish(struct dv_refetch_result *out, cache *c)
{
    return dv_webhook_refetch_pending(&out->remaining, &out->next_at, c);
}

int dv_webhook_refetch_run(struct dv_refetch_result *out, const dv_webhook *wh,
                           cache *c, dataverse *dv,
                           const struct dv_refetch_options *opts)
{
    struct run r = { wh, c, dv, out };
    struct queued *rows = NULL;
    size_t n = 0, i;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = due_rows(&rows, &n, c, opts ? opts->max_rows : 0);
    for (i = 0; rc == 0 && i < n; i++) {
        rc = refetch_one(&r, &rows[i]);
        if (rc && err_class_last() != ERR_CLASS_DB && endpoint_failure(rc))
            rc = stop_run(&r, &rows[i], rc);
    }
    free(rows);
    if (finish(out, c) != 0 && rc == 0)
        rc = ERR_FAIL;
    return rc;
}
