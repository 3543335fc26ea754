/*
 * cache — see cache.h for the design notes.
 */
#include "cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache_p.h"
#include "err.h"
#include "fault.h"
#include "log.h"
#include "xalloc.h"

#define BUSY_TIMEOUT_MS 10000

struct stmt_slot {
    const char *sql;  /* borrowed: a string literal */
    sqlite3_stmt *st; /* owned */
};

struct cache {
    sqlite3 *db;             /* owned */
    char *path;              /* owned */
    struct stmt_slot *stmts; /* owned */
    size_t n_stmts, cap_stmts;
    int in_tx;
};

static int fail_db(cache *c, int rc, const char *what)
{
    err_set(ERR_CLASS_DB, "%s: %s (%s)", what,
            c && c->db ? sqlite3_errmsg(c->db) : "no database",
            sqlite3_errstr(rc));
    return rc == SQLITE_BUSY ? ERR_CONFLICT : ERR_FAIL;
}

int cache_step(sqlite3_stmt *st)
{
    int rc = fault_check(FAULT_SQLITE_STEP);

    if (rc) {
        err_set(ERR_CLASS_DB, "injected fault %s in: %.120s",
                sqlite3_errstr(rc), sqlite3_sql(st));
        return rc;
    }
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        err_set(ERR_CLASS_DB, "%s in: %.120s",
                sqlite3_errmsg(sqlite3_db_handle(st)), sqlite3_sql(st));
    return rc;
}

sqlite3 *cache_db(cache *c)
{
    return c->db;
}

const char *cache_path(const cache *c)
{
    return c->path;
}

sqlite3_stmt *cache_stmt(cache *c, const char *sql)
{
    size_t i;
    sqlite3_stmt *st = NULL;
    int rc;

    for (i = 0; i < c->n_stmts; i++) {
        if (c->stmts[i].sql == sql) {
            st = c->stmts[i].st;
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            return st;
        }
    }
    rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
                            NULL);
    if (rc != SQLITE_OK) {
        fail_db(c, rc, "prepare");
        return NULL;
    }
    if (c->n_stmts == c->cap_stmts) {
        c->cap_stmts = c->cap_stmts ? c->cap_stmts * 2 : 32;
        c->stmts = xrealloc(c->stmts, c->cap_stmts * sizeof(*c->stmts));
    }
    c->stmts[c->n_stmts].sql = sql;
    c->stmts[c->n_stmts].st = st;
    c->n_stmts++;
    return st;
}

/* Runs every statement of `sql` (several, separated by ';'). */
static int exec_all(cache *c, const char *sql)
{
    const char *tail = sql;
    sqlite3_stmt *st;
    int rc;

    while (tail && *tail) {
        rc = sqlite3_prepare_v2(c->db, tail, -1, &st, &tail);
        if (rc != SQLITE_OK)
            return fail_db(c, rc, "prepare");
        if (!st)
            break; /* only whitespace or comments left */
        do {
            rc = cache_step(st);
        } while (rc == SQLITE_ROW);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            return rc == SQLITE_BUSY ? ERR_CONFLICT : ERR_FAIL;
    }
    return 0;
}

int cache_exec(cache *c, const char *sql)
{
    return exec_all(c, sql);
}

int cache_begin(cache *c)
{
    size_t i;
    int rc;

    /* A statement left mid-result holds a read snapshot that would make
     * BEGIN IMMEDIATE fail: no row read before a transaction may leak
     * into it anyway. */
    for (i = 0; i < c->n_stmts; i++)
        sqlite3_reset(c->stmts[i].st);
    rc = exec_all(c, "BEGIN IMMEDIATE");

    if (rc == 0)
        c->in_tx = 1;
    return rc;
}

int cache_commit(cache *c)
{
    int rc = exec_all(c, "COMMIT");

    if (rc == 0) {
        c->in_tx = 0;
        return 0;
    }
    /* A failed COMMIT may leave the transaction open: roll it back so the
     * connection is usable and nothing half-done lingers. */
    cache_rollback(c);
    return rc;
}

void cache_rollback(cache *c)
{
    if (!sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    c->in_tx = 0;
}

int64_t cache_last_rowid(cache *c)
{
    return sqlite3_last_insert_rowid(c->db);
}

int cache_changes(cache *c)
{
    return sqlite3_changes(c->db);
}

void cache_bind_text(sqlite3_stmt *st, int idx, const char *s)
{
    if (s)
        sqlite3_bind_text(st, idx, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, idx);
}

void cache_bind_int(sqlite3_stmt *st, int idx, int64_t v)
{
    sqlite3_bind_int64(st, idx, v);
}

void cache_bind_opt_int(sqlite3_stmt *st, int idx, int64_t v)
{
    if (v)
        sqlite3_bind_int64(st, idx, v);
    else
        sqlite3_bind_null(st, idx);
}

const char *cache_col_text(sqlite3_stmt *st, int idx)
{
    return (const char *)sqlite3_column_text(st, idx);
}

/* ---- bulk loads ---------------------------------------------------------- */

int cache_numbers_indexes_drop(cache *c)
{
    return exec_all(c, "DROP INDEX IF EXISTS numbers_by_phone;"
                       "DROP INDEX IF EXISTS numbers_by_dv_id");
}

int cache_numbers_indexes_ensure(cache *c)
{
    static const char by_dv_id[] = "CREATE UNIQUE INDEX IF NOT EXISTS "
                                   "numbers_by_dv_id ON numbers(dv_id)";
    int rc = exec_all(c, "CREATE INDEX IF NOT EXISTS numbers_by_phone "
                         "ON numbers(configuration_id, e164)");

    if (rc == 0)
        rc = exec_all(c, by_dv_id);
    if (rc == 0 || sqlite3_extended_errcode(c->db) != SQLITE_CONSTRAINT_UNIQUE)
        return rc;
    log_warn("cache_duplicate_rows action=keep_newest");
    rc = exec_all(c, "DELETE FROM numbers WHERE dv_id IS NOT NULL AND "
                     "local_id NOT IN (SELECT max(local_id) FROM numbers "
                     "WHERE dv_id IS NOT NULL GROUP BY dv_id)");
    return rc ? rc : exec_all(c, by_dv_id);
}

int cache_durability(cache *c, int full)
{
    return exec_all(c, full ? "PRAGMA synchronous = FULL"
                            : "PRAGMA synchronous = NORMAL");
}

/* ---- schema ------------------------------------------------------------ */

int cache_schema_latest(void)
{
    return cache__migration_count;
}

int cache_schema_version(cache *c)
{
    sqlite3_stmt *st;
    int v = -1;

    if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL) !=
        SQLITE_OK)
        return -1;
    if (cache_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Applies migration `n` (1-based) in its own transaction. */
static int migrate_one(cache *c, int n)
{
    char pragma[64];
    size_t i;
    int rc;

    rc = cache_begin(c);
    if (rc)
        return rc;
    snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", n);
    for (i = 0; rc == 0 && cache__migrations[n - 1][i]; i++)
        rc = exec_all(c, cache__migrations[n - 1][i]);
    if (rc == 0)
        rc = exec_all(c, pragma);
    if (rc == 0)
        rc = cache_commit(c);
    if (rc) {
        cache_rollback(c);
        err_prefix("cache migration %d", n);
        return rc;
    }
    log_notice("cache_migrated path=%s version=%d", log_q(c->path), n);
    return 0;
}

static int migrate(cache *c, unsigned flags)
{
    int have = cache_schema_version(c), n, rc;

    if (have < 0)
        return fail_db(c, SQLITE_ERROR, "read schema version");
    if (have > cache__migration_count) {
        err_set(ERR_CLASS_DB,
                "%s has schema version %d, newer than this optsync "
                "knows (%d): upgrade optsync",
                c->path, have, cache__migration_count);
        return ERR_FAIL;
    }
    if (have < cache__migration_count && (flags & CACHE_OPEN_READONLY)) {
        err_set(ERR_CLASS_DB,
                "%s has schema version %d, expected %d; "
                "open it read-write once to migrate",
                c->path, have, cache__migration_count);
        return ERR_FAIL;
    }
    for (n = have + 1; n <= cache__migration_count; n++) {
        rc = migrate_one(c, n);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- open / close ---------------------------------------------------------
 */

static int configure(cache *c, unsigned flags)
{
    int rc;

    sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(c->db, 1);
    if (flags & CACHE_OPEN_READONLY)
        return exec_all(c, "PRAGMA foreign_keys = ON");
    /* Order matters: WAL must be set before any table is written. */
    rc = exec_all(c, "PRAGMA journal_mode = WAL");
    if (rc == 0)
        rc = exec_all(c, "PRAGMA synchronous = FULL");
    /* 12 MiB of page cache (SQLite's default is 2): the indexes of a
     * large first load spill and re-read pages otherwise (measured: 4x
     * the write syscalls at 100,000 rows with 2 MiB).  More would take
     * the sync past its 64 MiB budget when it builds those indexes. */
    if (rc == 0)
        rc = exec_all(c, "PRAGMA cache_size = -12288");
    if (rc == 0)
        rc = exec_all(c, "PRAGMA foreign_keys = ON");
    return rc;
}

static pthread_once_t sqlite_once = PTHREAD_ONCE_INIT;

/* Before SQLite starts: no allocation statistics (one global mutex taken
 * per malloc otherwise; we never read them). */
static void sqlite_configure(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int cache_open(cache **out, const char *path, unsigned flags)
{
    cache *c = xcalloc(1, sizeof(*c));
    int open_flags = (flags & CACHE_OPEN_READONLY)
                         ? SQLITE_OPEN_READONLY
                         : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int rc;

    pthread_once(&sqlite_once, sqlite_configure);
    c->path = xstrdup(path);
    rc = sqlite3_open_v2(path, &c->db, open_flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        err_set(ERR_CLASS_DB, "cannot open cache %s: %s", path,
                c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        cache_close(c);
        return ERR_FAIL;
    }
    rc = configure(c, flags);
    if (rc)
        err_prefix("cache %s", path);
    else
        rc = migrate(c, flags);
    if (rc) {
        cache_close(c);
        return ERR_FAIL;
    }
    *out = c;
    return 0;
}

void cache_close(cache *c)
{
    size_t i;

    if (!c)
        return;
    for (i = 0; i < c->n_stmts; i++)
        sqlite3_finalize(c->stmts[i].st);
    free(c->stmts);
    if (c->db)
        sqlite3_close(c->db);
    free(c->path);
    free(c);
}

int cache_last_sync_success(int64_t *out, cache *c)
{
    sqlite3_stmt *st = cache_stmt(c, "SELECT max(started_at) FROM sync_runs "
                                     "WHERE ok = 1");

    if (!st || cache_step(st) != SQLITE_ROW)
        return ERR_FAIL;
    *out = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return 0;
}
