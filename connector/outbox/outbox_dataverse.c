/*
 * outbox_dataverse — the outbox kind "dataverse": a claimed row becomes
 * a write of its number row (mapping_number_body), many go out as one
 * $batch, and each answer is classified and committed: the number row's
 * id, status and version on success (outbox.h notes 4 and 5), a read
 * back mirrored through the consent engine on 412/404 (note 3).
 */
#include "outbox_p.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "configurations.h"
#include "err.h"
#include "log.h"
#include "xalloc.h"

/* ---- sending ---------------------------------------------------------------
 */

/* The JSON body of an item's write (malloc'd); NULL: nothing writable. */
static char *item_body(const outbox *ob, const struct outbox__item *it)
{
    struct number_change ch;

    memset(&ch, 0, sizeof(ch));
    ch.create = it->dv_id[0] == '\0';
    ch.configuration_id = it->configuration_id;
    ch.phone = it->e164;
    ch.status = it->status;
    ch.consent_at = it->status_at;
    ch.source = it->source;
    if (ob->consent.write_preferences) {
        ch.topics = it->topics ? it->topics : "";
        ch.set_paused_until = 1;
        ch.paused_until = it->paused_until;
    }
    return mapping_number_body(ob->m, &ch);
}

static void item_write(struct dv_number_write *w, const struct outbox__item *it,
                       const char *body)
{
    memset(w, 0, sizeof(*w));
    w->id = it->dv_id[0] ? it->dv_id : NULL;
    w->version = it->version;
    w->configuration_id = it->configuration_id;
    w->e164 = it->e164;
    w->body = body;
}

static void set_error(struct outbox__item *it, const struct dv_write_result *r)
{
    const struct dv_error *e = &r->error;

    free(it->error);
    if (r->status)
        it->error = xasprintf(
            "HTTP %ld%s%s%s%s%s", r->status, e->code[0] ? " (" : "", e->code,
            e->code[0] ? ")" : "", e->message[0] ? ": " : "", e->message);
    else
        it->error = xstrdup(e->message[0] ? e->message : "no answer");
}

/* An answer → what to do with the row (outbox.h note 6). */
static void classify(struct outbox__item *it, const struct dv_write_result *r)
{
    long s = r->status;

    it->result = *r;
    it->retry_after_ms = r->retry_after_ms;
    if (s >= 200 && s < 300) {
        it->outcome = OUTBOX__DONE;
        return;
    }
    set_error(it, r);
    if (s == 412 || (s == 404 && it->dv_id[0]))
        it->outcome = OUTBOX__REFRESH;
    else if (s == 429)
        it->outcome = OUTBOX__THROTTLE;
    else if (s == 0 || s == 408 || s >= 500)
        it->outcome = OUTBOX__RETRY;
    else
        it->outcome = OUTBOX__DEAD;
}

/* 412/404: the row as Dataverse has it now (no transaction open). */
static int read_back(outbox *ob, struct outbox__item *it,
                     const struct dv_number_write *w)
{
    int rc = dataverse_read_number(&it->fresh, ob->dv, w);

    if (rc == ERR_NOTFOUND && it->dv_id[0]) {
        it->gone = 1; /* deleted in Dynamics meanwhile */
        return 0;
    }
    if (rc == ERR_AUTH)
        return rc;
    if (rc) {
        free(it->error);
        it->error = xasprintf("reading the row back: %s", err_message());
        it->outcome = OUTBOX__RETRY;
    }
    return 0;
}

/* Sends the writes `w` of `todo` items, one $batch or one by one. */
static int send_writes(outbox *ob, struct outbox__item **todo,
                       const struct dv_number_write *w, size_t n,
                       int64_t *requests)
{
    struct dv_write_result *res = xcalloc(n, sizeof(*res));
    size_t i;
    int rc = 0;

    if (ob->o.single_requests || n == 1) {
        for (i = 0; rc == 0 && i < n; i++, (*requests)++)
            rc = dataverse_write_number(&res[i], ob->dv, &w[i]);
    } else {
        rc = dataverse_write_batch(res, ob->dv, w, n);
        (*requests)++;
    }
    for (i = 0; rc == 0 && i < n; i++)
        classify(todo[i], &res[i]);
    for (i = 0; rc == 0 && i < n; i++)
        if (todo[i]->outcome == OUTBOX__REFRESH)
            rc = read_back(ob, todo[i], &w[i]);
    free(res);
    return rc;
}

static int dv_send(outbox *ob, struct outbox__item *items, size_t n)
{
    struct dv_number_write *w = xcalloc(n, sizeof(*w));
    struct outbox__item **todo = xcalloc(n, sizeof(*todo));
    char **bodies = xcalloc(n, sizeof(*bodies));
    struct outbox_stats add;
    size_t i, k = 0;
    int rc;

    memset(&add, 0, sizeof(add));
    for (i = 0; i < n; i++) {
        if (items[i].outcome == OUTBOX__SKIP)
            continue;
        bodies[i] = item_body(ob, &items[i]);
        if (!bodies[i]) {
            items[i].outcome = OUTBOX__DEAD;
            items[i].error = xasprintf("nothing to write: status %s",
                                       consent_status_name(items[i].status));
            continue;
        }
        item_write(&w[k], &items[i], bodies[i]);
        todo[k++] = &items[i];
    }
    rc = k ? send_writes(ob, todo, w, k, &add.requests) : 0;
    outbox__count(ob, &add);
    for (i = 0; i < n; i++)
        free(bodies[i]);
    free(bodies);
    free(todo);
    free(w);
    return rc;
}

/* ---- committing ------------------------------------------------------------
 */

/* The cache row that already holds Dataverse id `dv_id`; 0: none. */
static int row_by_dv_id(int64_t *out, cache *c, const char *dv_id)
{
    sqlite3_stmt *st =
        cache_stmt(c, "SELECT local_id FROM numbers WHERE dv_id = ?1");
    int rc;

    *out = 0;
    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, dv_id);
    rc = cache_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : ERR_FAIL;
}

/*
 * Our created row is already cached under another local row (read by a
 * sync before this commit, and not adopted): that row takes our state
 * (it is what Dataverse now holds) and our history, ours goes.
 */
static int merge_duplicate(cache *c, int64_t keep, int64_t drop)
{
    static const char *const sql[] = {
        /* Parenthesised: one statement each, split over lines. */
        ("UPDATE numbers SET (status, status_at, source) = (SELECT status, "
         "status_at, source FROM numbers WHERE local_id = ?2) "
         "WHERE local_id = ?1"),
        /* The write's own kind is covered by the kept row's state; a
         * waiting message moves with the row unless the kept row has
         * one of its own (one pending row per number row and kind). */
        ("UPDATE outbox SET state = 'superseded' WHERE number_local_id = ?2 "
         "AND state = 'pending' AND (kind = 'dataverse' OR EXISTS (SELECT 1 "
         "FROM outbox AS k WHERE k.number_local_id = ?1 AND k.kind = "
         "outbox.kind AND k.state = 'pending'))"),
        "UPDATE outbox SET number_local_id = ?1 WHERE number_local_id = ?2",
        "DELETE FROM numbers WHERE local_id = ?2",
    };
    sqlite3_stmt *st;
    size_t i;

    for (i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
        st = cache_stmt(c, sql[i]);
        if (!st)
            return ERR_FAIL;
        cache_bind_int(st, 1, keep);
        cache_bind_int(st, 2, drop);
        if (cache_step(st) != SQLITE_DONE)
            return ERR_FAIL;
    }
    log_notice("outbox_merged local_id=%lld into=%lld", (long long)drop,
               (long long)keep);
    return 0;
}

/* A create's new id on the local row; *target = the row now holding it. */
static int adopt_id(int64_t *target, cache *c, const struct outbox__item *it)
{
    sqlite3_stmt *st;
    int64_t holder = 0;
    int rc;

    *target = it->number_local_id;
    if (it->dv_id[0] || !it->result.id[0])
        return 0;
    rc = row_by_dv_id(&holder, c, it->result.id);
    if (rc || holder == it->number_local_id)
        return rc;
    if (holder) {
        *target = holder;
        return merge_duplicate(c, holder, it->number_local_id);
    }
    /* Marked as seen by the full read that may be running (serve's
     * poller): that read may have passed the new row's page before the
     * create, and its sweep must not take the row for one deleted in
     * Dataverse (sync.h note 2).  The mark is one past the stored one,
     * which is the running read's or, before its first page, the last. */
    st = cache_stmt(c, "UPDATE numbers SET dv_id = ?2, sweep_mark = "
                       "max(sweep_mark, (SELECT coalesce(max(sweep_mark), "
                       "0) + 1 FROM sync_state)) WHERE local_id = ?1 AND "
                       "dv_id IS NULL");
    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, it->number_local_id);
    cache_bind_text(st, 2, it->result.id);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

/* Note 4: what Dataverse holds now, unless a newer version is cached. */
static int record_written(cache *c, int64_t local_id,
                          const struct outbox__item *it)
{
    static const char *const sql[] = {
        "UPDATE numbers SET dv_status = ?2, version = CASE WHEN ?3 > 0 THEN "
        "?3 ELSE version END, modified_on = CASE WHEN ?4 > 0 THEN ?4 ELSE "
        "modified_on END WHERE local_id = ?1 AND (?3 = 0 OR version IS NULL "
        "OR version <= ?3)",
        /* Dataverse holds our latest: older unknown sends no longer
         * matter for echo detection (note 5). */
        "UPDATE outbox SET sent_mask = 0 WHERE number_local_id = ?1 AND "
        "kind = 'dataverse'",
        "UPDATE numbers SET pending_writeback = EXISTS (SELECT 1 FROM outbox "
        "WHERE number_local_id = ?1 AND kind = 'dataverse' AND state = "
        "'pending') WHERE local_id = ?1",
    };
    sqlite3_stmt *st;
    size_t i;

    for (i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
        st = cache_stmt(c, sql[i]);
        if (!st)
            return ERR_FAIL;
        /* Parameters a statement does not use are ignored (RANGE). */
        cache_bind_int(st, 1, local_id);
        cache_bind_int(st, 2, it->status);
        cache_bind_int(st, 3, it->result.version);
        cache_bind_int(st, 4, it->result.modified_on);
        if (cache_step(st) != SQLITE_DONE)
            return ERR_FAIL;
    }
    return 0;
}

static int commit_written(outbox *ob, const struct outbox__item *it)
{
    int64_t target;
    int rc = adopt_id(&target, ob->c, it);

    if (rc == 0)
        rc = record_written(ob->c, target, it);
    if (rc == 0)
        log_debug(LOG_SUB_OUTBOX,
                  "outbox_written id=%lld phone=%s status=%s dv_id=%s "
                  "version=%lld",
                  (long long)it->id, log_phone(it->e164),
                  consent_status_name(it->status), it->result.id,
                  (long long)it->result.version);
    return rc;
}

/* The fresh row through the consent engine (MIRROR): the rule decides. */
static int mirror_fresh(outbox *ob, const struct outbox__item *it,
                        struct consent_result *res)
{
    struct configuration_info info;
    struct number_record rec;
    struct consent_row row;
    struct consent_event ev;
    const char *why = NULL;
    int rc;

    if (mapping_number_from_row(&rec, ob->m, it->fresh, &why) != 0) {
        log_warn("outbox_readback_unusable id=%lld why=%s", (long long)it->id,
                 log_q(why));
        return 0; /* stays pending; the next sync brings the row */
    }
    memset(&info, 0, sizeof(info));
    configurations_get(&info, ob->c, rec.configuration_id);
    memset(&row, 0, sizeof(row));
    row.rec = &rec;
    row.region = info.default_region ? info.default_region
                                     : ob->cfg->consent.default_region;
    memset(&ev, 0, sizeof(ev));
    ev.action = CONSENT_ACT_MIRROR;
    ev.source = CONSENT_SOURCE_DATAVERSE;
    ev.row = &row;
    rc = consent_apply_locked(res, ob->c, &ob->consent, &ev);
    configuration_info_dispose(&info);
    return rc;
}

static const char *outcome_name(const struct consent_result *r)
{
    if (r->outcome == CONSENT_CORRECTED)
        return "corrective"; /* Dataverse lost: written again */
    if (r->from != r->to)
        return "dataverse_won";
    return "retry"; /* same consent: written again with the new version */
}

/* Note 3: the outbox row is pending again; the rule decides the rest. */
static int commit_refresh(outbox *ob, const struct outbox__item *it)
{
    struct consent_result res;
    sqlite3_stmt *st;
    int rc = 0;

    memset(&res, 0, sizeof(res));
    if (it->fresh)
        rc = mirror_fresh(ob, it, &res);
    else if (it->gone)
        rc = consent_row_deleted(ob->c, it->dv_id, clock_now_ms(),
                                 CONSENT_SOURCE_DATAVERSE);
    st = rc ? NULL
            : cache_stmt(ob->c, "UPDATE outbox SET sent_mask = 0 WHERE "
                                "number_local_id = ?1 AND kind = "
                                "'dataverse' AND state = 'pending'");
    if (rc == 0 && !st)
        rc = ERR_FAIL;
    if (rc == 0) {
        cache_bind_int(st, 1, it->number_local_id);
        rc = cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
    }
    log_info("outbox_conflict id=%lld phone=%s answer=%s outcome=%s",
             (long long)it->id, log_phone(it->e164), log_q(it->error),
             it->gone ? "deleted" : outcome_name(&res));
    return rc;
}

static int dv_commit(outbox *ob, struct outbox__item *it)
{
    return it->outcome == OUTBOX__DONE ? commit_written(ob, it)
                                       : commit_refresh(ob, it);
}

const struct outbox__kind outbox__dataverse = {
    .name = OUTBOX_KIND_DATAVERSE,
    .send = dv_send,
    .commit = dv_commit,
};
