/*
 * test_writer — the group-commit writer: items submitted while a commit
 * is under way share the next transaction (counted, not timed), a failing
 * item is rolled back alone, a failed COMMIT fails every item of its
 * group and nothing of them is on disk, an item that loses the whole
 * transaction takes down only the items before it in that transaction,
 * and writer_stop() commits whatever is queued.  Nothing here sleeps:
 * a "gate" item holds the writer on a condition variable until the test
 * has queued what it wants.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "err.h"
#include "fault.h"
#include "testutil.h"
#include "writer.h"
#include "xalloc.h"

#define DEADLINE_S 120 /* a guard against hanging, not a timing check */

struct fixture {
    char *dir;
    char *path;
    writer *w;
    cache *reader;

    pthread_mutex_t mu;
    pthread_cond_t cond;
    int holding; /* the hold item is running */
    int release; /* let it return */
    int completed;
    int commits;           /* on_commit calls */
    int completed_at_hook; /* completions seen by the last on_commit */
};

struct item {
    struct writer_item wi;
    struct fixture *f;
    int id;
    int mode; /* MODE_* */
    int rc, committed, done;
};

enum { MODE_INSERT, MODE_FAIL, MODE_HOLD, MODE_KILL_TX, MODE_ARM_COMMIT };

static int insert_row(cache *c, int id)
{
    sqlite3_stmt *st = cache_stmt(c, "INSERT INTO sends(configuration_id, "
                                     "e164, at) VALUES ('w', ?1, 1)");
    char key[32];

    snprintf(key, sizeof(key), "+49151%08d", id);
    cache_bind_text(st, 1, key);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

static void hold(struct fixture *f)
{
    pthread_mutex_lock(&f->mu);
    f->holding = 1;
    pthread_cond_broadcast(&f->cond);
    while (!f->release)
        pthread_cond_wait(&f->cond, &f->mu);
    pthread_mutex_unlock(&f->mu);
}

static int item_fn(cache *c, void *payload)
{
    struct item *it = payload;
    int rc = insert_row(c, it->id);

    switch (it->mode) {
    case MODE_FAIL: return rc ? rc : ERR_BADINPUT; /* after writing */
    case MODE_HOLD: hold(it->f); break;
    case MODE_KILL_TX: cache_rollback(c); break; /* the whole transaction */
    case MODE_ARM_COMMIT:
        /* The rest of this group: RELEASE (1), COMMIT (2). */
        fault_arm(FAULT_SQLITE_STEP, 2, SQLITE_FULL, 0);
        break;
    default: break;
    }
    return rc;
}

static void item_complete(struct writer_item *wi, void *arg)
{
    struct item *it = arg;
    struct fixture *f = it->f;

    pthread_mutex_lock(&f->mu);
    it->rc = wi->rc;
    it->committed = wi->committed;
    it->done = 1;
    f->completed++;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
}

static void submit(struct fixture *f, struct item *it, int id, int mode)
{
    memset(it, 0, sizeof(*it));
    it->f = f;
    it->id = id;
    it->mode = mode;
    it->wi.fn = item_fn;
    it->wi.payload = it;
    it->wi.complete = item_complete;
    it->wi.complete_arg = it;
    assert_int_equal(writer_submit(f->w, &it->wi), 0);
}

static void wait_until(struct fixture *f, int *flag_or_null, int completed)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += DEADLINE_S;
    pthread_mutex_lock(&f->mu);
    while (flag_or_null ? !*flag_or_null : f->completed < completed)
        assert_int_equal(pthread_cond_timedwait(&f->cond, &f->mu, &until), 0);
    pthread_mutex_unlock(&f->mu);
}

static void let_go(struct fixture *f)
{
    pthread_mutex_lock(&f->mu);
    f->release = 1;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
}

static long long rows(struct fixture *f)
{
    return testutil_query_int(f->reader, "SELECT count(*) FROM sends");
}

static int row_exists(struct fixture *f, int id)
{
    char sql_key[32];
    sqlite3_stmt *st = cache_stmt(f->reader, "SELECT count(*) FROM sends "
                                             "WHERE e164 = ?1");
    int n;

    snprintf(sql_key, sizeof(sql_key), "+49151%08d", id);
    cache_bind_text(st, 1, sql_key);
    assert_int_equal(cache_step(st), SQLITE_ROW);
    n = sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    return n;
}

static void on_commit(void *payload)
{
    struct fixture *f = payload;

    pthread_mutex_lock(&f->mu);
    f->commits++;
    f->completed_at_hook = f->completed;
    pthread_mutex_unlock(&f->mu);
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    struct writer_options opts = WRITER_OPTIONS_INIT;

    opts.on_commit = on_commit;
    opts.on_commit_payload = f;

    f->dir = testutil_tmpdir();
    f->path = xasprintf("%s/cache.db", f->dir);
    assert_int_equal(cache_open(&f->reader, f->path, 0), 0);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cond, NULL);
    assert_int_equal(writer_new(&f->w, f->path, &opts), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    fault_disarm_all();
    writer_free(f->w);
    cache_close(f->reader);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->mu);
    testutil_rmtree(f->dir);
    free(f->path);
    free(f->dir);
    free(f);
    return 0;
}

/* Everything queued while a transaction runs goes into the next one. */
static void test_writer__groups_what_queued_during_a_commit(void **state)
{
    struct fixture *f = *state;
    struct item *items = xcalloc(101, sizeof(*items));
    struct writer_stats st;
    int i;

    submit(f, &items[0], 0, MODE_HOLD);
    wait_until(f, &f->holding, 0);
    for (i = 1; i <= 100; i++)
        submit(f, &items[i], i, MODE_INSERT);
    let_go(f);
    wait_until(f, NULL, 101);
    writer_stats(&st, f->w);
    assert_int_equal(st.items, 101);
    assert_int_equal(st.transactions, 2); /* the held one, then all 100 */
    assert_int_equal(st.largest, 100);
    assert_int_equal(st.failed, 0);
    for (i = 0; i <= 100; i++) {
        assert_true(items[i].committed);
        assert_int_equal(items[i].rc, 0);
    }
    assert_int_equal(rows(f), 101);
    free(items);
}

/* A failing item is rolled back to its savepoint; its neighbours stay. */
static void test_writer__failing_item_loses_only_itself(void **state)
{
    struct fixture *f = *state;
    struct item it[4];
    struct writer_stats st;

    submit(f, &it[0], 0, MODE_HOLD);
    wait_until(f, &f->holding, 0);
    submit(f, &it[1], 1, MODE_INSERT);
    submit(f, &it[2], 2, MODE_FAIL);
    submit(f, &it[3], 3, MODE_INSERT);
    let_go(f);
    wait_until(f, NULL, 4);
    writer_stats(&st, f->w);
    assert_int_equal(st.transactions, 2);
    assert_true(it[1].committed && it[2].committed && it[3].committed);
    assert_int_equal(it[1].rc, 0);
    assert_int_equal(it[2].rc, ERR_BADINPUT);
    assert_int_equal(it[3].rc, 0);
    assert_int_equal(row_exists(f, 1), 1);
    assert_int_equal(row_exists(f, 2), 0);
    assert_int_equal(row_exists(f, 3), 1);
}

/* A failed COMMIT: every item of the group hears "not committed", none is
 * on disk, and the writer goes on with the next group. */
static void test_writer__failed_commit_fails_the_group(void **state)
{
    struct fixture *f = *state;
    struct item it[4];
    struct writer_stats st;

    submit(f, &it[0], 0, MODE_HOLD);
    wait_until(f, &f->holding, 0);
    submit(f, &it[1], 1, MODE_INSERT);
    submit(f, &it[2], 2, MODE_ARM_COMMIT); /* its group's COMMIT fails */
    let_go(f);
    wait_until(f, NULL, 3);
    assert_true(it[0].committed);
    assert_false(it[1].committed);
    assert_false(it[2].committed);
    assert_int_equal(row_exists(f, 1), 0);
    assert_int_equal(row_exists(f, 2), 0);
    submit(f, &it[3], 3, MODE_INSERT);
    wait_until(f, NULL, 4);
    assert_true(it[3].committed);
    assert_int_equal(row_exists(f, 3), 1);
    writer_stats(&st, f->w);
    assert_int_equal(st.failed, 1);
    assert_int_equal(f->commits, 2); /* not for the lost group */
}

/* The commit hook (serve wakes its outbox with it) runs after the COMMIT
 * and before the items hear of it. */
static void test_writer__commit_hook_runs_before_completions(void **state)
{
    struct fixture *f = *state;
    struct item it;

    submit(f, &it, 0, MODE_INSERT);
    wait_until(f, NULL, 1);
    assert_true(it.committed);
    assert_int_equal(f->commits, 1);
    assert_int_equal(f->completed_at_hook, 0);
}

/* An item that loses the whole transaction: the items before it in that
 * transaction are reported lost, the ones after it commit anew. */
static void
test_writer__lost_transaction_is_never_reported_committed(void **state)
{
    struct fixture *f = *state;
    struct item it[4];

    submit(f, &it[0], 0, MODE_HOLD);
    wait_until(f, &f->holding, 0);
    submit(f, &it[1], 1, MODE_INSERT);
    submit(f, &it[2], 2, MODE_KILL_TX);
    submit(f, &it[3], 3, MODE_INSERT);
    let_go(f);
    wait_until(f, NULL, 4);
    assert_false(it[1].committed);
    assert_false(it[2].committed);
    assert_true(it[3].committed);
    assert_int_equal(row_exists(f, 1), 0);
    assert_int_equal(row_exists(f, 2), 0);
    assert_int_equal(row_exists(f, 3), 1);
}

/* writer_stop commits everything queued, then refuses more. */
static void test_writer__stop_commits_the_queue(void **state)
{
    struct fixture *f = *state;
    struct item *items = xcalloc(51, sizeof(*items));
    int i;

    submit(f, &items[0], 0, MODE_HOLD);
    wait_until(f, &f->holding, 0);
    for (i = 1; i <= 50; i++)
        submit(f, &items[i], i, MODE_INSERT);
    let_go(f);
    writer_stop(f->w);
    assert_int_equal(f->completed, 51);
    for (i = 0; i <= 50; i++)
        assert_true(items[i].committed);
    assert_int_equal(rows(f), 51);
    items[0].wi.fn = item_fn;
    assert_int_equal(writer_submit(f->w, &items[0].wi), ERR_FAIL);
    free(items);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_writer__groups_what_queued_during_a_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_writer__failing_item_loses_only_itself, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_writer__failed_commit_fails_the_group, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_writer__lost_transaction_is_never_reported_committed, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_writer__commit_hook_runs_before_completions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer__stop_commits_the_queue,
                                        setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
