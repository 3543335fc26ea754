/*
 * test_retention — the retention rule for finished rows (retention.h):
 * old done and superseded outbox rows, resolved quarantined events and
 * old sync runs go; recent ones stay, and so do pending, inflight and
 * dead outbox rows, open quarantined events, the newest sync run of each
 * kind and outcome, and the ledger whatever its age; keep_ms never goes
 * below 7 days; a batch deletes at most its limit (and, through
 * INDEXED BY, reads the finished rows by their index: the statement
 * fails without it), and the whole prune goes through every batch.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>

#include "cache.h"
#include "clock.h"
#include "retention.h"
#include "testutil.h"
#include "xalloc.h"

#define T0 1800000000000LL
#define DAY_MS (24 * 3600 * 1000LL)
#define KEEP (30 * DAY_MS)
#define OLD (T0 - 31 * DAY_MS)
#define RECENT (T0 - 29 * DAY_MS)

static int setup(void **state)
{
    *state = testutil_cache_new(T0);
    return 0;
}

static int teardown(void **state)
{
    testutil_cache_free(*state);
    return 0;
}

/* An outbox row `id` in `state` that last changed at `at`.  Pending rows
 * need distinct number rows (one pending row per number and kind). */
static void outbox_row(cache *c, int id, const char *kind, const char *state,
                       long long at)
{
    char *sql = xasprintf(
        "INSERT INTO outbox(id, number_local_id, configuration_id, e164, "
        "status, event_at, reason, state, created_at, updated_at, kind, "
        "sent_mask) VALUES (%d, %d, 'cfg', '+4915100000%03d', 3, %lld, "
        "'local_change', '%s', %lld, %lld, '%s', %d)",
        id, id, id, at, state, at, at, kind, state[0] == 'i' ? 8 : 0);

    assert_int_equal(cache_exec(c, sql), 0);
    free(sql);
}

static void quarantine_row(cache *c, int id, long long resolved_at)
{
    char *sql = xasprintf(
        "INSERT INTO quarantine(id, received_at, source, reason, payload, "
        "resolved_at) VALUES (%d, %lld, 'whatsapp', 'unknown_number', '{}', "
        "nullif(%lld, 0))",
        id, (long long)OLD, resolved_at);

    assert_int_equal(cache_exec(c, sql), 0);
    free(sql);
}

static void sync_run(cache *c, int id, const char *kind, int ok, long long at)
{
    char *sql = xasprintf("INSERT INTO sync_runs(id, kind, started_at, "
                          "finished_at, ok) VALUES (%d, '%s', %lld, %lld, %d)",
                          id, kind, at, at, ok);

    assert_int_equal(cache_exec(c, sql), 0);
    free(sql);
}

static void ledger_row(cache *c, int seq, long long at)
{
    char *sql = xasprintf(
        "INSERT INTO ledger(seq, at, recorded_at, configuration_id, phone, "
        "from_status, to_status, source, evidence, hash) VALUES (%d, %lld, "
        "%lld, 'cfg', '+4915100000001', 0, 3, 'whatsapp', '{}', 'h%d')",
        seq, at, at, seq);

    assert_int_equal(cache_exec(c, sql), 0);
    free(sql);
}

/* Counts rows; prepared here, as cache_stmt() caches by the address of
 * its SQL and these strings are built per call. */
static long long rows(cache *c, const char *table, const char *where)
{
    char *sql = xasprintf("SELECT count(*) FROM %s WHERE %s", table, where);
    sqlite3_stmt *st = NULL;
    long long n = -1;

    assert_int_equal(sqlite3_prepare_v2(cache_db(c), sql, -1, &st, NULL),
                     SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    free(sql);
    return n;
}

static void test_retention__finished_old_rows_go(void **state)
{
    struct testutil_cache *f = *state;
    struct cache_pruned p;

    outbox_row(f->c, 1, "dataverse", "done", OLD);
    outbox_row(f->c, 2, "whatsapp", "done", OLD);
    outbox_row(f->c, 3, "dataverse", "superseded", OLD);
    outbox_row(f->c, 4, "dataverse", "done", RECENT);
    outbox_row(f->c, 5, "whatsapp", "superseded", RECENT);
    outbox_row(f->c, 6, "dataverse", "pending", OLD);
    outbox_row(f->c, 7, "dataverse", "inflight", OLD);
    outbox_row(f->c, 8, "dataverse", "dead", OLD);
    outbox_row(f->c, 9, "whatsapp", "dead", OLD);
    quarantine_row(f->c, 1, OLD);
    quarantine_row(f->c, 2, RECENT);
    quarantine_row(f->c, 3, 0); /* open, received long ago */
    sync_run(f->c, 1, "full", 1, OLD - 2);
    sync_run(f->c, 2, "full", 1, OLD - 1); /* newest ok full run */
    sync_run(f->c, 3, "delta", 1, OLD - 3);
    sync_run(f->c, 4, "delta", 0, OLD - 2);
    sync_run(f->c, 5, "delta", 0, OLD - 1); /* newest failed delta */
    sync_run(f->c, 6, "delta", 1, OLD);
    sync_run(f->c, 7, "delta", 1, RECENT); /* newest ok delta */
    ledger_row(f->c, 1, OLD - 10 * DAY_MS);
    ledger_row(f->c, 2, OLD);

    assert_int_equal(cache_prune_finished(&p, f->c, T0, KEEP), 0);
    assert_int_equal(p.outbox, 3);
    assert_int_equal(p.quarantine, 1);
    assert_int_equal(p.sync_runs, 4);
    assert_int_equal(rows(f->c, "outbox", "id IN (1, 2, 3)"), 0);
    assert_int_equal(rows(f->c, "outbox", "id BETWEEN 4 AND 9"), 6);
    assert_int_equal(rows(f->c, "quarantine", "id IN (2, 3)"), 2);
    assert_int_equal(rows(f->c, "sync_runs", "id IN (2, 5, 7)"), 3);
    assert_int_equal(rows(f->c, "sync_runs", "1"), 3);
    assert_int_equal(rows(f->c, "ledger", "1"), 2);

    /* Nothing more to do: a second run removes nothing. */
    assert_int_equal(cache_prune_finished(&p, f->c, T0, KEEP), 0);
    assert_int_equal(p.outbox + p.quarantine + p.sync_runs, 0);
}

/* Meta's late status webhooks and the double opt-in window need a week
 * of finished consent messages, whatever keep_ms says. */
static void test_retention__keeps_a_week_at_least(void **state)
{
    struct testutil_cache *f = *state;
    struct cache_pruned p;

    outbox_row(f->c, 1, "whatsapp", "done", T0 - 6 * DAY_MS);
    outbox_row(f->c, 2, "whatsapp", "done", T0 - 8 * DAY_MS);
    assert_int_equal(cache_prune_finished(&p, f->c, T0, DAY_MS), 0);
    assert_int_equal(p.outbox, 1);
    assert_int_equal(rows(f->c, "outbox", "id = 1"), 1);
}

static void test_retention__batches(void **state)
{
    struct testutil_cache *f = *state;
    struct cache_pruned p = { 0 };
    int n = 2 * CACHE_PRUNE_BATCH + 7, i;

    assert_int_equal(cache_begin(f->c), 0);
    for (i = 1; i <= n; i++)
        outbox_row(f->c, i, "dataverse", i % 2 ? "done" : "superseded", OLD);
    assert_int_equal(cache_commit(f->c), 0);

    /* One batch removes at most its limit, in the caller's transaction. */
    assert_int_equal(cache_begin(f->c), 0);
    assert_int_equal(cache_prune_finished_locked(&p, f->c, T0, KEEP, 10), 0);
    assert_int_equal(cache_commit(f->c), 0);
    assert_int_equal(p.outbox, 10);
    assert_int_equal(rows(f->c, "outbox", "1"), n - 10);

    assert_int_equal(cache_prune_finished(&p, f->c, T0, KEEP), 0);
    assert_int_equal(p.outbox, n - 10);
    assert_int_equal(rows(f->c, "outbox", "1"), 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_retention__finished_old_rows_go),
        T(test_retention__keeps_a_week_at_least),
        T(test_retention__batches),
    };

    return cmocka_run_group_tests_name("retention", tests, NULL, NULL);
}
