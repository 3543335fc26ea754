/*
 * gate_refresh — keeps the send-gate level with the database: notices
 * commits (gate.h note 2), catches the index up from gate_journal and new
 * rows (note 3), rebuilds it when it must, and reads the Configurations
 * and the last successful sync.  Only reads the cache.
 */
#include "gate_p.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "xalloc.h"

/* WAL-index header (SQLite's walformat.html, "the wal-index header"):
 * two copies of a 48-byte struct at offsets 0 and 48 of region 0 of the
 * shared memory; a commit writes the second copy, then the first.  Word
 * 0 is the format version, 3007000. */
#define HDR_WORDS 12
#define WALINDEX_REGION 32768
#define WALINDEX_VERSION 3007000u

/* Catching up costs one point query per journaled change; past this
 * many (plus an eighth of the index) a rebuild is cheaper. */
#define CATCH_UP_MAX 10000

/* ---- noticing commits ------------------------------------------------- */

void gate__watch_init(gate *g)
{
    sqlite3_file *f = NULL;
    volatile void *region = NULL;
    const volatile uint32_t *hdr;
    sqlite3_stmt *st = cache_stmt(g->c, "PRAGMA journal_mode");
    int wal = 0;

    g->wal_hdr = NULL;
    if (st && cache_step(st) == SQLITE_ROW)
        wal = strcmp(cache_col_text(st, 0), "wal") == 0;
    if (st)
        sqlite3_reset(st);
    if (!wal ||
        sqlite3_file_control(cache_db(g->c), "main", SQLITE_FCNTL_FILE_POINTER,
                             &f) != SQLITE_OK)
        goto fallback;
    if (!f || !f->pMethods || f->pMethods->iVersion < 2 ||
        !f->pMethods->xShmMap ||
        f->pMethods->xShmMap(f, 0, WALINDEX_REGION, 0, &region) != SQLITE_OK ||
        !region)
        goto fallback;
    hdr = (const volatile uint32_t *)region;
    if (hdr[0] != WALINDEX_VERSION)
        goto fallback;
    g->wal_hdr = hdr;
    return;
fallback:
    log_notice("gate_watch mode=data_version wal=%d", wal);
}

/* Fallback: the data version of "main", as of a fresh read. */
static int data_version(unsigned int *out, gate *g)
{
    sqlite3_stmt *st = cache_stmt(g->c, "PRAGMA data_version");
    int v = 0;

    /* Order matters: the pragma starts a read, which is when the pager
     * learns of other connections' commits; the file control then also
     * counts this connection's own. */
    if (!st || cache_step(st) != SQLITE_ROW)
        return ERR_FAIL;
    sqlite3_reset(st);
    if (sqlite3_file_control(cache_db(g->c), "main", SQLITE_FCNTL_DATA_VERSION,
                             &v) != SQLITE_OK)
        return ERR_FAIL;
    *out = (unsigned int)v;
    return 0;
}

/*
 * 1 when something may have been committed since the last call (and
 * remembers what it saw), 0 when not, ERR_FAIL.
 */
static int changed(gate *g)
{
    uint32_t a[HDR_WORDS], diff = 0;
    unsigned int v;
    int i;

    if (!g->wal_hdr) {
        if (data_version(&v, g) != 0)
            return ERR_FAIL;
        diff = v != g->seen_version;
        g->seen_version = v;
        return diff != 0;
    }
    for (i = 0; i < HDR_WORDS; i++)
        a[i] = g->wal_hdr[i];
    atomic_thread_fence(memory_order_acquire);
    /* Copies that differ: a commit is being published right now. */
    for (i = 0; i < HDR_WORDS; i++)
        diff |= (a[i] ^ g->wal_hdr[HDR_WORDS + i]) | (a[i] ^ g->seen_hdr[i]);
    if (!diff)
        return 0;
    memcpy(g->seen_hdr, a, sizeof(a));
    return 1;
}

/* ---- reading ---------------------------------------------------------- */

/* One read transaction around a refresh: the journal, the rows and the
 * positions all come from one snapshot.  (gate.c never calls this inside
 * a caller's transaction: uncommitted journal entries could be rolled
 * back and their seqs reused.) */
static int read_begin(gate *g)
{
    sqlite3_stmt *st = cache_stmt(g->c, "BEGIN");

    return st && cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

static int read_end(gate *g, int rc)
{
    sqlite3_stmt *st;

    if (rc) {
        cache_rollback(g->c); /* keeps the first error's message */
        return rc;
    }
    st = cache_stmt(g->c, "COMMIT");
    if (!st || cache_step(st) != SQLITE_DONE) {
        cache_rollback(g->c);
        return ERR_FAIL;
    }
    return 0;
}

int gate__conf_slot(gate *g, const char *id)
{
    uint32_t i;

    if (!id)
        return -1;
    /* A rebuild asks once per row, mostly for the same few. */
    if (g->last_slot < g->n_confs && strcmp(g->confs[g->last_slot].id, id) == 0)
        return (int)g->last_slot;
    for (i = 0; i < g->n_confs; i++)
        if (strcmp(g->confs[i].id, id) == 0)
            return (int)(g->last_slot = i);
    if (g->n_confs >= GATE_CONF_MAX || strlen(id) > MAPPING_GUID_LEN)
        return -1;
    if (g->n_confs == g->cap_confs) {
        g->cap_confs = g->cap_confs ? g->cap_confs * 2 : 8;
        g->confs = xrealloc(g->confs, g->cap_confs * sizeof(*g->confs));
    }
    memset(&g->confs[g->n_confs], 0, sizeof(*g->confs));
    snprintf(g->confs[g->n_confs].id, sizeof(g->confs->id), "%s", id);
    return (int)g->n_confs++;
}

static void conf_forget(struct gate__conf *cf)
{
    free(cf->name);
    free(cf->region);
    cf->name = cf->region = NULL;
    cf->known = cf->active = cf->double_opt_in = 0;
}

static int load_confs(gate *g)
{
    sqlite3_stmt *st =
        cache_stmt(g->c, "SELECT id, name, double_opt_in, default_region, "
                         "active FROM configurations");
    struct gate__conf *cf;
    const char *region;
    uint32_t i;
    int rc, slot;

    if (!st)
        return ERR_FAIL;
    for (i = 0; i < g->n_confs; i++)
        conf_forget(&g->confs[i]);
    g->conf_gen++;
    while ((rc = cache_step(st)) == SQLITE_ROW) {
        slot = gate__conf_slot(g, cache_col_text(st, 0));
        if (slot < 0) { /* never matches: unknown_configuration */
            log_warn("gate_configuration_skipped id=%s max=%u",
                     log_q(cache_col_text(st, 0)), GATE_CONF_MAX);
            continue;
        }
        cf = &g->confs[slot];
        cf->name = xstrdup(cache_col_text(st, 1) ? cache_col_text(st, 1) : "");
        cf->double_opt_in = sqlite3_column_int(st, 2);
        region = cache_col_text(st, 3);
        cf->region = region && *region ? xstrdup(region) : NULL;
        cf->active = sqlite3_column_int(st, 4);
        cf->known = 1;
    }
    return rc == SQLITE_DONE ? 0 : ERR_FAIL;
}

int gate__rows_agg(struct gate__agg *out, gate *g, const char *conf_id,
                   char (*keys)[PHONE_E164_MAX], size_t n_keys)
{
    sqlite3_stmt *st = cache_stmt(
        g->c, "SELECT status, topics, paused_until FROM numbers "
              "WHERE configuration_id = ?1 AND e164 IN (?2, ?3, ?4, ?5, ?6) "
              "AND active = 1");
    size_t i;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, conf_id);
    for (i = 0; i < 1 + PHONE_ALIASES_MAX; i++)
        cache_bind_text(st, (int)i + 2, i < n_keys ? keys[i] : NULL);
    while ((rc = cache_step(st)) == SQLITE_ROW)
        gate__agg_add(out, (enum consent_status)sqlite3_column_int(st, 0),
                      cache_col_text(st, 1), sqlite3_column_int64(st, 2));
    if (rc != SQLITE_DONE) {
        gate__agg_dispose(out);
        return ERR_FAIL;
    }
    return 0;
}

/* ---- the index -------------------------------------------------------- */

/* The index key of (configuration id, e164); 0 when either cannot be
 * keyed (such a row can never match a decision either). */
static uint64_t key_of(gate *g, const char *conf_id, const char *e164)
{
    uint64_t number = e164 ? gate__number(e164) : 0;
    int slot = number ? gate__conf_slot(g, conf_id) : -1;

    return slot < 0 ? 0 : (uint64_t)slot << GATE_NUMBER_BITS | number;
}

/* Reloads one number from its rows. */
static int reload_number(gate *g, const char *conf_id, const char *e164)
{
    struct gate__agg a;
    uint64_t key = key_of(g, conf_id, e164);
    char keys[1][PHONE_E164_MAX];

    if (!key)
        return 0;
    snprintf(keys[0], sizeof(keys[0]), "%s", e164);
    if (gate__rows_agg(&a, g, conf_id, keys, 1) != 0)
        return ERR_FAIL;
    gate__index_set(&g->ix, key, &a);
    gate__agg_dispose(&a);
    return 0;
}

/* Every active keyed row into a cleared index. */
static int rebuild(gate *g)
{
    sqlite3_stmt *st = cache_stmt(
        g->c, "SELECT configuration_id, e164, status, topics, paused_until "
              "FROM numbers WHERE active = 1 AND e164 IS NOT NULL");
    uint64_t key;
    int rc;

    if (!st)
        return ERR_FAIL;
    gate__index_clear(&g->ix);
    while ((rc = cache_step(st)) == SQLITE_ROW) {
        key = key_of(g, cache_col_text(st, 0), cache_col_text(st, 1));
        if (key)
            gate__index_merge(
                &g->ix, key, (enum consent_status)sqlite3_column_int(st, 2),
                cache_col_text(st, 3), sqlite3_column_int64(st, 4));
    }
    return rc == SQLITE_DONE ? 0 : ERR_FAIL;
}

/* Where the journal and the numbers table end: (lo, hi] of the journal,
 * 0 when empty; the highest local_id. */
static int positions(gate *g, int64_t *lo, int64_t *hi, int64_t *top)
{
    sqlite3_stmt *st = cache_stmt(
        g->c, "SELECT (SELECT coalesce(min(seq), 0) FROM gate_journal), "
              "(SELECT coalesce(max(seq), 0) FROM gate_journal), "
              "(SELECT coalesce(max(local_id), 0) FROM numbers)");

    if (!st || cache_step(st) != SQLITE_ROW)
        return ERR_FAIL;
    *lo = sqlite3_column_int64(st, 0);
    *hi = sqlite3_column_int64(st, 1);
    *top = sqlite3_column_int64(st, 2);
    sqlite3_reset(st);
    return 0;
}

/* Journal kinds (cache_schema.c, migration 2). */
enum {
    J_ROW_CHANGED = 0,
    J_ROW_DELETED = 1,
    J_CONFIGURATION = 2,
    J_KEY_LEFT = 3,
};

/* Reloads the number row `local_id` now has (gone: its deletion has an
 * entry of its own). */
static int reload_row(gate *g, int64_t local_id)
{
    sqlite3_stmt *st =
        cache_stmt(g->c, "SELECT configuration_id, e164 FROM numbers "
                         "WHERE local_id = ?1");
    char conf_id[MAPPING_GUID_LEN + 1], e164[PHONE_E164_MAX];
    int rc;

    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, local_id);
    rc = cache_step(st);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW)
        return ERR_FAIL;
    /* Copied: reload_number() runs statements of its own. */
    snprintf(conf_id, sizeof(conf_id), "%s", cache_col_text(st, 0));
    snprintf(e164, sizeof(e164), "%s",
             cache_col_text(st, 1) ? cache_col_text(st, 1) : "");
    sqlite3_reset(st);
    return e164[0] ? reload_number(g, conf_id, e164) : 0;
}

/* Applies one journal entry (the current row of `st`). */
static int apply_entry(gate *g, sqlite3_stmt *st, int64_t *scan_from,
                       int *confs_changed)
{
    int64_t floor = sqlite3_column_int64(st, 4);

    switch (sqlite3_column_int(st, 0)) {
    case J_ROW_CHANGED: return reload_row(g, sqlite3_column_int64(st, 1));
    case J_CONFIGURATION: *confs_changed = 1; return 0;
    case J_ROW_DELETED:
        if (floor < *scan_from)
            *scan_from = floor;
        /* fall through */
    default: /* J_KEY_LEFT, and kinds a newer optsync may add */
        return reload_number(g, cache_col_text(st, 2), cache_col_text(st, 3));
    }
}

/* Applies journal entries after journal_pos; lowers *scan_from to the
 * highest local_id a deletion left (a rowid that may come back). */
static int apply_journal(gate *g, int64_t *scan_from, int *confs_changed)
{
    sqlite3_stmt *st = cache_stmt(
        g->c, "SELECT kind, local_id, configuration_id, e164, rowid_floor "
              "FROM gate_journal WHERE seq > ?1 ORDER BY seq");
    int rc;

    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, g->journal_pos);
    while ((rc = cache_step(st)) == SQLITE_ROW)
        if (apply_entry(g, st, scan_from, confs_changed) != 0)
            return ERR_FAIL;
    return rc == SQLITE_DONE ? 0 : ERR_FAIL;
}

/*
 * Rows inserted since the last look (inserts are not journaled), folded
 * into their entries as they are: one insert can only add to a number's
 * state, and folding a row twice changes nothing, so no point query is
 * needed (during a first load the number indexes do not even exist).
 */
static int scan_new_rows(gate *g, int64_t scan_from)
{
    sqlite3_stmt *st = cache_stmt(
        g->c, "SELECT configuration_id, e164, status, topics, paused_until "
              "FROM numbers WHERE local_id > ?1 AND e164 IS NOT NULL "
              "AND active = 1");
    uint64_t key;
    int rc;

    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, scan_from);
    while ((rc = cache_step(st)) == SQLITE_ROW) {
        key = key_of(g, cache_col_text(st, 0), cache_col_text(st, 1));
        if (key)
            gate__index_merge(
                &g->ix, key, (enum consent_status)sqlite3_column_int(st, 2),
                cache_col_text(st, 3), sqlite3_column_int64(st, 4));
    }
    return rc == SQLITE_DONE ? 0 : ERR_FAIL;
}

/*
 * Whether catching up to journal position `hi` is impossible or dearer
 * than a rebuild: the journal was emptied or pruned past our position,
 * or it holds more changes (one point query each) than an eighth of the
 * index (a rebuild reads every row once).  New rows never force one:
 * reading them costs what a rebuild pays for them anyway.
 */
static int must_rebuild(const gate *g, int64_t lo, int64_t hi)
{
    if (hi < g->journal_pos)
        return 1;
    if (hi > g->journal_pos && lo > g->journal_pos + 1)
        return 1;
    return hi - g->journal_pos >
           CATCH_UP_MAX + (int64_t)(gate__index_count(&g->ix) / 8);
}

/* The index part of a refresh, inside its read transaction. */
static int index_refresh(gate *g, int full, int *confs_changed)
{
    int64_t lo, hi, top, scan_from = g->rows_seen;
    int rc = positions(g, &lo, &hi, &top);

    if (rc)
        return rc;
    if (full || must_rebuild(g, lo, hi)) {
        log_debug(LOG_SUB_GATE, "gate_rebuild journal=%lld rows=%lld",
                  (long long)hi, (long long)top);
        *confs_changed = 1;
        g->stats.rebuilds++;
        rc = rebuild(g);
    } else {
        g->stats.catch_ups++;
        rc = apply_journal(g, &scan_from, confs_changed);
        if (rc == 0)
            rc = scan_new_rows(g, scan_from);
    }
    if (rc == 0) {
        g->journal_pos = hi;
        g->rows_seen = top;
    }
    return rc;
}

/* ---- refreshing ------------------------------------------------------- */

/* Reads what changed (everything when `full`) in one read transaction. */
static int refresh_from_cache(gate *g, int full)
{
    int rc, confs_changed = full || !g->opts.index;

    rc = read_begin(g);
    if (rc == 0)
        rc = cache_last_sync_success(&g->last_sync, g->c);
    if (rc == 0 && g->opts.index)
        rc = index_refresh(g, full, &confs_changed);
    if (rc == 0 && confs_changed)
        rc = load_confs(g);
    return read_end(g, rc);
}

int gate__reload(gate *g)
{
    int rc = changed(g); /* remember the header before reading (note 2) */

    if (rc >= 0)
        rc = refresh_from_cache(g, 1);
    g->broken = rc < 0;
    if (g->broken) {
        err_prefix("send-gate reload");
        log_error("gate_broken msg=%s", log_q(err_message()));
    }
    return rc < 0 ? ERR_FAIL : 0;
}

int gate__refresh(gate *g)
{
    int rc;

    if (g->broken)
        return gate__reload(g);
    /* Order matters: the header is read (and remembered) before the
     * database, so a commit landing in between is seen next time. */
    rc = changed(g);
    if (rc == 0)
        return 0;
    if (rc > 0)
        rc = refresh_from_cache(g, 0);
    if (rc) {
        g->broken = 1;
        err_prefix("send-gate refresh");
        log_error("gate_broken msg=%s", log_q(err_message()));
        return ERR_FAIL;
    }
    return 0;
}
