/*
 * test_cache — migrations from empty, reopen, WAL, statements, and the
 * fault seam: a failure injected at any step of the migration or of a
 * transaction leaves nothing half-written.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "err.h"
#include "fault.h"
#include "testutil.h"
#include "xalloc.h"

struct fixture {
    char *dir;
    char *path;
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));

    f->dir = testutil_tmpdir();
    f->path = xasprintf("%s/cache.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    fault_disarm_all();
    testutil_rmtree(f->dir);
    free(f->dir);
    free(f->path);
    free(f);
    return 0;
}

static const char *const expected_tables[] = {
    "configurations", "numbers", "sync_state",   "sync_runs",  "ledger",
    "ledger_head",    "outbox",  "inbound_seen", "quarantine",
};

static void test_cache__migrates_from_empty(void **state)
{
    struct fixture *f = *state;
    cache *c = NULL;
    size_t i;

    assert_int_equal(cache_open(&c, f->path, 0), 0);
    assert_int_equal(cache_schema_version(c), cache_schema_latest());
    assert_true(cache_schema_latest() >= 1);
    for (i = 0; i < sizeof(expected_tables) / sizeof(*expected_tables); i++) {
        sqlite3_stmt *st = cache_stmt(
            c, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' "
               "AND name = ?1");

        cache_bind_text(st, 1, expected_tables[i]);
        assert_int_equal(cache_step(st), SQLITE_ROW);
        if (sqlite3_column_int(st, 0) != 1)
            fail_msg("table %s missing", expected_tables[i]);
    }
    assert_int_equal(testutil_query_int(c, "SELECT count FROM ledger_head"), 0);
    assert_int_equal(testutil_query_int(c, "SELECT count(*) FROM sync_state"),
                     2);
    cache_close(c);
}

static void test_cache__wal_and_reopen(void **state)
{
    struct fixture *f = *state;
    cache *c = NULL;
    sqlite3_stmt *st;
    char *wal = xasprintf("%s-wal", f->path);

    assert_int_equal(cache_open(&c, f->path, 0), 0);
    st = cache_stmt(c, "PRAGMA journal_mode");
    assert_int_equal(cache_step(st), SQLITE_ROW);
    assert_string_equal(cache_col_text(st, 0), "wal");
    assert_int_equal(testutil_query_int(c, "PRAGMA synchronous"), 2); /* FULL */
    assert_int_equal(cache_begin(c), 0);
    st = cache_stmt(c, "INSERT INTO configurations(id, name) "
                       "VALUES (?1, ?2)");
    cache_bind_text(st, 1, "6a1c0d6e-0000-0000-0000-000000000001");
    cache_bind_text(st, 2, "WA Main");
    assert_int_equal(cache_step(st), SQLITE_DONE);
    assert_int_equal(cache_commit(c), 0);
    assert_int_equal(access(wal, F_OK), 0);
    cache_close(c);

    /* Reopen: the row is there and no migration runs again. */
    c = NULL;
    assert_int_equal(cache_open(&c, f->path, 0), 0);
    assert_int_equal(
        testutil_query_int(c, "SELECT count(*) FROM configurations"), 1);
    assert_int_equal(cache_schema_version(c), cache_schema_latest());
    cache_close(c);

    /* Read-only open works on an up-to-date file. */
    c = NULL;
    assert_int_equal(cache_open(&c, f->path, CACHE_OPEN_READONLY), 0);
    assert_int_equal(
        testutil_query_int(c, "SELECT count(*) FROM configurations"), 1);
    cache_close(c);
    free(wal);
}

static void test_cache__statements_are_cached_and_reset(void **state)
{
    struct fixture *f = *state;
    static const char sql[] = "SELECT ?1 + 1";
    cache *c = NULL;
    sqlite3_stmt *a, *b;

    assert_int_equal(cache_open(&c, f->path, 0), 0);
    a = cache_stmt(c, sql);
    cache_bind_int(a, 1, 41);
    assert_int_equal(cache_step(a), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(a, 0), 42);
    b = cache_stmt(c, sql);
    assert_ptr_equal(a, b);
    /* Bindings were cleared: NULL + 1 is NULL. */
    assert_int_equal(cache_step(b), SQLITE_ROW);
    assert_int_equal(sqlite3_column_type(b, 0), SQLITE_NULL);
    assert_null(cache_stmt(c, "SELEC nonsense"));
    assert_non_null(strstr(err_message(), "syntax error"));
    cache_close(c);
}

/* The gate, /readyz and `status` share this rule: the boundary itself
 * is fresh, one millisecond more is stale, and no sync is never fresh. */
static void test_cache__freshness_boundary(void **state)
{
    (void)state;
    assert_true(cache_sync_is_fresh(1000, 1000 + 60000, 60000));
    assert_false(cache_sync_is_fresh(1000, 1000 + 60001, 60000));
    assert_true(cache_sync_is_fresh(1000, 1000, 60000));
    assert_false(cache_sync_is_fresh(0, 5, 60000));
}

static void test_cache__refuses_newer_schema(void **state)
{
    struct fixture *f = *state;
    cache *c = NULL;

    assert_int_equal(cache_open(&c, f->path, 0), 0);
    assert_int_equal(cache_exec(c, "PRAGMA user_version = 999"), 0);
    cache_close(c);
    c = NULL;
    assert_int_equal(cache_open(&c, f->path, 0), ERR_FAIL);
    assert_null(c);
    assert_non_null(strstr(err_message(), "newer than this optsync"));
}

/* user_version and the number of schema objects of the file at `path`. */
static void schema_of(const char *path, int *version, int *objects)
{
    sqlite3 *db;
    sqlite3_stmt *st;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT (SELECT user_version FROM "
                                        "pragma_user_version), (SELECT "
                                        "count(*) FROM sqlite_schema)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    *version = sqlite3_column_int(st, 0);
    *objects = sqlite3_column_int(st, 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/*
 * Fail the Nth step of opening a new cache, for every N until opening
 * succeeds.  Every failed attempt must leave the file at a whole
 * migration: version 0 holds nothing, and every failure that stopped at
 * the same version left exactly the same schema (a half-applied migration
 * would show as a different object count).
 */
static void test_cache__fault_during_migration_leaves_nothing(void **state)
{
    struct fixture *f = *state;
    int objects_at[16];
    int version, objects, failures = 0;
    cache *c = NULL;
    long n;

    memset(objects_at, -1, sizeof(objects_at));
    for (n = 1; n < 400; n++) {
        unlink(f->path);
        fault_arm(FAULT_SQLITE_STEP, n, SQLITE_FULL, 0);
        c = NULL;
        if (cache_open(&c, f->path, 0) == 0)
            break;
        fault_disarm_all();
        failures++;
        schema_of(f->path, &version, &objects);
        assert_true(version >= 0 && version < cache_schema_latest());
        if (version == 0)
            assert_int_equal(objects, 0);
        if (objects_at[version] < 0)
            objects_at[version] = objects;
        if (objects_at[version] != objects)
            fail_msg("step %ld left %d objects at version %d, not %d", n,
                     objects, version, objects_at[version]);
    }
    assert_non_null(c);
    assert_true(failures > 3); /* the seam really was in the path */
    fault_disarm_all();
    assert_int_equal(cache_schema_version(c), cache_schema_latest());
    cache_close(c);
}

static void test_cache__fault_in_transaction_rolls_back(void **state)
{
    struct fixture *f = *state;
    cache *c = NULL;
    sqlite3_stmt *st;

    assert_int_equal(cache_open(&c, f->path, 0), 0);
    assert_int_equal(cache_begin(c), 0);
    st = cache_stmt(c, "INSERT INTO configurations(id) VALUES ('a')");
    assert_int_equal(cache_step(st), SQLITE_DONE);
    /* The 2nd step from now fails: the first insert went through, the
     * second does not, and the caller rolls the whole thing back. */
    fault_arm(FAULT_SQLITE_STEP, 2, SQLITE_IOERR, 0);
    st = cache_stmt(c, "INSERT INTO configurations(id) VALUES ('b')");
    assert_int_equal(cache_step(st), SQLITE_DONE);
    st = cache_stmt(c, "INSERT INTO configurations(id) VALUES ('c')");
    assert_int_equal(cache_step(st), SQLITE_IOERR);
    assert_non_null(strstr(err_message(), "injected fault"));
    assert_int_equal(fault_calls(FAULT_SQLITE_STEP), 2);
    cache_rollback(c);
    fault_disarm_all();
    assert_int_equal(
        testutil_query_int(c, "SELECT count(*) FROM configurations"), 0);

    /* A failing COMMIT also leaves nothing behind. */
    assert_int_equal(cache_begin(c), 0);
    st = cache_stmt(c, "INSERT INTO configurations(id) VALUES ('d')");
    assert_int_equal(cache_step(st), SQLITE_DONE);
    fault_arm(FAULT_SQLITE_STEP, 1, SQLITE_FULL, 0);
    assert_int_not_equal(cache_commit(c), 0);
    fault_disarm_all();
    assert_int_equal(
        testutil_query_int(c, "SELECT count(*) FROM configurations"), 0);
    cache_close(c);
}

static void test_cache__second_writer_waits_then_conflicts(void **state)
{
    struct fixture *f = *state;
    cache *a = NULL, *b = NULL;
    sqlite3_stmt *st;

    assert_int_equal(cache_open(&a, f->path, 0), 0);
    assert_int_equal(cache_open(&b, f->path, 0), 0);
    sqlite3_busy_timeout(cache_db(b), 50);
    assert_int_equal(cache_begin(a), 0);
    assert_int_equal(cache_begin(b), ERR_CONFLICT);
    /* A reader is not blocked by the writer (WAL). */
    st = cache_stmt(b, "SELECT count(*) FROM numbers");
    assert_int_equal(cache_step(st), SQLITE_ROW);
    cache_rollback(a);
    cache_close(a);
    cache_close(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache__freshness_boundary),
        cmocka_unit_test_setup_teardown(test_cache__migrates_from_empty, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cache__wal_and_reopen, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_cache__statements_are_cached_and_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache__refuses_newer_schema, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_cache__fault_during_migration_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_cache__fault_in_transaction_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_cache__second_writer_waits_then_conflicts, setup, teardown),
    };

    return cmocka_run_group_tests_name("cache", tests, NULL, NULL);
}
