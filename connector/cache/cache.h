/*
 * cache — the SQLite cache: connection, migrations, transactions, prepared
 * statements, and the fault seam around sqlite3_step().
 *
 * Pipeline position: the hub.  Sources write consent through
 * consent_apply(); the gate and the outbox read it.  Stages talk through
 * these tables, never through shared globals.  Each module keeps its own
 * SQL next to its logic, but always through cache_stmt() (prepared,
 * parameters bound: no SQL is ever built from input) and cache_step()
 * (the fault seam; scripts/check-style.sh rejects direct sqlite3_step).
 *
 * Design notes
 *  (1) WAL journal, synchronous=FULL: a transaction that returned from
 *      cache_commit() survives kill -9 and power loss; readers (the gate)
 *      never block the writer.
 *  (2) The schema is versioned with PRAGMA user_version; cache_open()
 *      applies every missing migration, each in its own transaction, and
 *      refuses a file written by a newer optsync.
 *  (3) busy_timeout lets a CLI command and `serve` share the file.
 */
#ifndef OPTSYNC_CACHE_H
#define OPTSYNC_CACHE_H

#include <sqlite3.h>
#include <stdint.h>

typedef struct cache cache;

#define CACHE_OPEN_READONLY 0x1u /* no migrations; fails on an old file */

/*
 * Opens (creating when needed) the cache at `path` and brings its schema
 * up to date.  Returns 0 and *out, or ERR_FAIL (err_set says why: cannot
 * open, newer schema, migration failed).
 */
int cache_open(cache **out, const char *path, unsigned flags);
void cache_close(cache *c); /* NULL is a no-op */

/* The connection, for modules that need sqlite3_* beyond the helpers. */
sqlite3 *cache_db(cache *c);
const char *cache_path(const cache *c);

/* Schema version of the file, and the one this build writes. */
int cache_schema_version(cache *c);
int cache_schema_latest(void);

/*
 * Transactions.  cache_begin() takes the write lock at once (BEGIN
 * IMMEDIATE) so a transaction never fails half-way for lock reasons.
 * Returns 0, or ERR_CONFLICT when the database stayed busy past the busy
 * timeout, or ERR_FAIL.
 */
int cache_begin(cache *c);
int cache_commit(cache *c);
void cache_rollback(cache *c); /* safe when no transaction is open */

/*
 * A prepared statement for `sql`, reset with bindings cleared, owned by
 * the cache (do not finalize).  Statements are cached by the address of
 * `sql`, so pass string literals.  Returns NULL with err_set on a
 * preparation error (a programming error in the SQL, or a closed db).
 */
sqlite3_stmt *cache_stmt(cache *c, const char *sql);

/*
 * sqlite3_step() behind the fault seam.  Returns SQLITE_ROW, SQLITE_DONE
 * or an error code; on an error, err_set() names it and the statement.
 */
int cache_step(sqlite3_stmt *st);

/*
 * A first load (sync.c) appends a million rows: the number indexes are
 * dropped before it and built once at the end, which costs a fraction of
 * keeping them up to date row by row.  Both run in the caller's open
 * transaction.  _ensure is idempotent and cheap when they exist; when two
 * rows carry one Dataverse id (a page repeated across a crash), the older
 * row goes before the unique index is built.
 */
int cache_numbers_indexes_drop(cache *c);
int cache_numbers_indexes_ensure(cache *c);

/*
 * synchronous = FULL (every commit survives power loss; the default) or
 * NORMAL (commits survive a process crash; a power loss may undo the last
 * ones, never corrupt).  Call outside a transaction.
 */
int cache_durability(cache *c, int full);

/* Runs one statement without parameters and without rows (DDL). */
int cache_exec(cache *c, const char *sql);

/* Last insert rowid / rows changed by the last statement. */
int64_t cache_last_rowid(cache *c);
int cache_changes(cache *c);

/* Binding helpers: NULL (or 0 for _opt_int) binds SQL NULL. */
void cache_bind_text(sqlite3_stmt *st, int idx, const char *s);
void cache_bind_int(sqlite3_stmt *st, int idx, int64_t v);
void cache_bind_opt_int(sqlite3_stmt *st, int idx, int64_t v);

/*
 * Start time (ms) of the last successful sync (sync.h note 7), 0 when
 * there was none: what the gate's staleness and `status` count from.
 * The poller writes sync_runs; its readers ask here, not the poller.
 */
int cache_last_sync_success(int64_t *out, cache *c);

/*
 * The freshness rule, in one place for the gate, /readyz and `status`:
 * fresh while a successful sync started at most max_staleness_ms ago
 * (the boundary is still fresh); never fresh before the first one.
 */
static inline int cache_sync_is_fresh(int64_t last_success_ms, int64_t now_ms,
                                      int64_t max_staleness_ms)
{
    return last_success_ms > 0 && now_ms - last_success_ms <= max_staleness_ms;
}

/* Column helper: text or NULL. */
const char *cache_col_text(sqlite3_stmt *st, int idx);

#endif
