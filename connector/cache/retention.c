/*
 * retention — see retention.h.
 */
#include "retention.h"

#include "cache_p.h"
#include "err.h"
#include "log.h"

/* Note 1: one bounded DELETE per table, each reading a batch of ids
 * through an index (?1 cutoff, ?2 rows left in the batch). */
static const char *const prune_sql[] = {
    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox INDEXED BY "
    "outbox_finished WHERE state IN ('done', 'superseded') AND "
    "updated_at < ?1 LIMIT ?2)",
    "DELETE FROM quarantine WHERE id IN (SELECT id FROM quarantine WHERE "
    "resolved_at IS NOT NULL AND resolved_at < ?1 LIMIT ?2)",
    "DELETE FROM sync_runs WHERE id IN (SELECT id FROM sync_runs WHERE "
    "started_at < ?1 AND id NOT IN (SELECT max(id) FROM sync_runs "
    "GROUP BY kind, ok) LIMIT ?2)",
};

static int64_t *counter(struct cache_pruned *out, size_t table)
{
    return table == 0   ? &out->outbox
           : table == 1 ? &out->quarantine
                        : &out->sync_runs;
}

int cache_prune_finished_locked(struct cache_pruned *out, cache *c, int64_t now,
                                int64_t keep_ms, int max_rows)
{
    int64_t cutoff =
        now - (keep_ms < CACHE_KEEP_MIN_MS ? CACHE_KEEP_MIN_MS : keep_ms);
    int left = max_rows, n;
    size_t i;
    sqlite3_stmt *st;

    for (i = 0; i < sizeof(prune_sql) / sizeof(prune_sql[0]) && left > 0; i++) {
        st = cache_stmt(c, prune_sql[i]);
        if (!st)
            return ERR_FAIL;
        cache_bind_int(st, 1, cutoff);
        cache_bind_int(st, 2, left);
        if (cache_step(st) != SQLITE_DONE)
            return ERR_FAIL;
        n = cache_changes(c);
        *counter(out, i) += n;
        left -= n;
    }
    return 0;
}

static int64_t total(const struct cache_pruned *p)
{
    return p->outbox + p->quarantine + p->sync_runs;
}

/* One batch in its own transaction; *batch counts it once committed. */
static int prune_batch(struct cache_pruned *batch, cache *c, int64_t now,
                       int64_t keep_ms)
{
    int rc = cache_begin(c);

    *batch = (struct cache_pruned){ 0 };
    if (rc == 0)
        rc = cache_prune_finished_locked(batch, c, now, keep_ms,
                                         CACHE_PRUNE_BATCH);
    if (rc == 0)
        rc = cache_commit(c);
    if (rc) {
        cache_rollback(c);
        *batch = (struct cache_pruned){ 0 };
    }
    return rc;
}

int cache_prune_finished(struct cache_pruned *out, cache *c, int64_t now,
                         int64_t keep_ms)
{
    struct cache_pruned batch;
    int rc;

    *out = (struct cache_pruned){ 0 };
    do {
        rc = prune_batch(&batch, c, now, keep_ms);
        out->outbox += batch.outbox;
        out->quarantine += batch.quarantine;
        out->sync_runs += batch.sync_runs;
    } while (rc == 0 && total(&batch) == CACHE_PRUNE_BATCH);
    if (total(out))
        log_info("cache_pruned outbox=%lld quarantine=%lld sync_runs=%lld",
                 (long long)out->outbox, (long long)out->quarantine,
                 (long long)out->sync_runs);
    return rc;
}
