/*
 * consent_mirror — the MIRROR half of consent_apply(): a Dataverse number
 * row (from the poller or the Dataverse webhook) becomes a cache row,
 * under notes (2) and (3) of consent.h, and deletions in Dataverse.
 *
 * This is the poller's hot path (a million rows on a first sync), so an
 * unchanged row (same version) costs one indexed lookup, and a phone is
 * parsed only when it is new or its text changed.
 */
#include "consent_p.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "configurations.h"
#include "err.h"
#include "jsonutil.h"
#include "log.h"
#include "xalloc.h"

/* What the cache holds for a Dataverse id. */
struct existing {
    int found;
    int64_t local_id;
    char configuration_id[MAPPING_GUID_LEN + 1];
    char *raw_phone;     /* owned */
    char *e164;          /* owned; NULL when unparseable */
    char *phone_error;   /* owned */
    char *phone_warning; /* owned */
    int phone_checked;   /* parsed under the current rule (migration 6) */
    enum consent_status status;
    int has_dv_status;
    enum consent_status dv_status;
    int64_t status_at;
    char *source; /* owned */
    int64_t version;
    int active;
    int pending;
    int echo; /* the Dataverse row shows our own unconfirmed write */
};

static char *dup_text(sqlite3_stmt *st, int idx)
{
    const char *s = cache_col_text(st, idx);

    return s ? xstrdup(s) : NULL;
}

static void existing_dispose(struct existing *x)
{
    free(x->raw_phone);
    free(x->e164);
    free(x->phone_error);
    free(x->phone_warning);
    free(x->source);
}

/* Loads the row `st` selects (bound by the caller); x->found = 0 when
 * there is none. */
static int existing_load(struct existing *x, sqlite3_stmt *st)
{
    int rc;

    memset(x, 0, sizeof(*x));
    if (!st)
        return ERR_FAIL;
    rc = cache_step(st);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW)
        return ERR_FAIL;
    x->found = 1;
    x->local_id = sqlite3_column_int64(st, 0);
    snprintf(x->configuration_id, sizeof(x->configuration_id), "%s",
             cache_col_text(st, 1));
    x->raw_phone = dup_text(st, 2);
    x->e164 = dup_text(st, 3);
    x->phone_error = dup_text(st, 4);
    x->status = (enum consent_status)sqlite3_column_int(st, 5);
    x->has_dv_status = sqlite3_column_type(st, 6) != SQLITE_NULL;
    x->dv_status = (enum consent_status)sqlite3_column_int(st, 6);
    x->status_at = sqlite3_column_int64(st, 7);
    x->source = dup_text(st, 8);
    x->version = sqlite3_column_int64(st, 9);
    x->active = sqlite3_column_int(st, 10);
    x->pending = sqlite3_column_int(st, 11);
    x->phone_warning = dup_text(st, 12);
    x->phone_checked = sqlite3_column_int(st, 13);
    sqlite3_reset(st);
    return 0;
}

#define EXISTING_COLUMNS                                                       \
    "SELECT local_id, configuration_id, raw_phone, e164, phone_error, "        \
    "status, dv_status, status_at, source, version, active, "                  \
    "pending_writeback, phone_warning, phone_checked FROM numbers "

static int existing_by_dv_id(struct existing *x, cache *c, const char *dv_id)
{
    sqlite3_stmt *st = cache_stmt(c, EXISTING_COLUMNS "WHERE dv_id = ?1");

    if (st)
        cache_bind_text(st, 1, dv_id);
    return existing_load(x, st);
}

/*
 * A row Dataverse does not know yet (a number first expressed here, whose
 * write-back creates its record) for the same number: a new Dataverse row
 * for that number is that record (our create, read back before the
 * outbox committed its id) or one made meanwhile in Dynamics.  Either
 * way the local row adopts it, so a number is never held twice and its
 * pending write-back becomes an update of that record.
 */
static int existing_local_only(struct existing *x, cache *c, const char *cfg,
                               const char *e164)
{
    sqlite3_stmt *st = cache_stmt(
        c, EXISTING_COLUMNS "WHERE dv_id IS NULL AND configuration_id = ?1 "
                            "AND e164 = ?2 AND active = 1 "
                            "ORDER BY local_id LIMIT 1");

    if (st) {
        cache_bind_text(st, 1, cfg);
        cache_bind_text(st, 2, e164);
    }
    return existing_load(x, st);
}

/*
 * Our own write coming back (outbox.h note 5): an outbox row of this
 * number row carried `status` to Dataverse and its outcome is not known
 * yet (in flight, or recovered after a crash).  Such a row is what we
 * wrote, not an admin's expression, even though its modifiedon is newer
 * than the local change it carries.
 */
static int own_write(int *out, cache *c, int64_t local_id,
                     enum consent_status status)
{
    sqlite3_stmt *st =
        cache_stmt(c, "SELECT 1 FROM outbox WHERE number_local_id = ?1 AND "
                      "kind = 'dataverse' AND (sent_mask >> ?2) & 1 AND "
                      "state IN ('inflight', 'pending') LIMIT 1");
    int rc;

    *out = 0;
    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, local_id);
    cache_bind_int(st, 2, status);
    rc = cache_step(st);
    *out = rc == SQLITE_ROW;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : ERR_FAIL;
}

/* The row as it will be written. */
struct row_plan {
    char e164[PHONE_E164_MAX]; /* "" when unparseable */
    const char *phone_error;   /* static phrase or borrowed */
    const char *phone_warning; /* static phrase or borrowed; NULL none */
    enum consent_status status;
    int64_t status_at;
    const char *source;
    int corrective; /* Dataverse lost: write the local state back */
    int cancel;     /* Dataverse overtook a pending local change */
};

static int is_local_source(const char *source)
{
    return source && strcmp(source, CONSENT_SOURCE_DATAVERSE) != 0 &&
           strcmp(source, CONSENT_SOURCE_DATAVERSE_WEBHOOK) != 0;
}

/* Phone text → key and warning, reusing the cached parse when the text
 * is the same and was parsed under the current rule. */
static void plan_phone(struct row_plan *p, const struct existing *x,
                       const struct consent_row *row)
{
    const char *raw = row->rec->raw_phone;
    const char *why = NULL;

    p->e164[0] = '\0';
    p->phone_error = NULL;
    p->phone_warning = NULL;
    if (x->found && x->phone_checked && raw && x->raw_phone &&
        strcmp(raw, x->raw_phone) == 0) {
        if (x->e164)
            snprintf(p->e164, sizeof(p->e164), "%s", x->e164);
        p->phone_error = x->phone_error;
        p->phone_warning = x->phone_warning;
        return;
    }
    if (!raw) {
        p->phone_error = "no phone number";
        return;
    }
    if (row->parsed) {
        snprintf(p->e164, sizeof(p->e164), "%s", row->parsed_e164);
        p->phone_error = row->parsed_error;
    } else if (phone_parse(p->e164, raw, row->region, &why) != 0) {
        p->e164[0] = '\0';
        p->phone_error = why ? why : "cannot be parsed";
    }
    if (p->e164[0])
        p->phone_warning = phone_warning(p->e164);
}

/*
 * Which status the row gets (notes 2 and 3).  `local` is the local
 * expression to weigh against: the row's own, or for a new row the
 * number's.
 */
static void plan_status(struct row_plan *p, const struct existing *x,
                        const struct consent__state *number,
                        const struct number_record *rec, int64_t t)
{
    int dv_changed =
        !x->found || !x->has_dv_status || rec->status != x->dv_status;
    int local = x->found ? is_local_source(x->source)
                         : (number->rows > 0 && number->local);
    enum consent_status ls = x->found ? x->status : number->status;
    int64_t lat = x->found ? x->status_at : number->status_at;

    p->status = rec->status;
    p->status_at = t;
    p->source = CONSENT_SOURCE_DATAVERSE;
    if (x->found && (!dv_changed || x->echo)) {
        /* Not a new expression: keep what we have (note 3). */
        p->status = x->status;
        p->status_at = x->status_at;
        p->source = x->source ? x->source : CONSENT_SOURCE_DATAVERSE;
        p->corrective = x->status != rec->status && !x->pending;
        return;
    }
    if (local && ls != rec->status && consent__loses(t, rec->status, lat, ls)) {
        p->status = ls;
        p->status_at = lat;
        p->source = x->found && x->source ? x->source : "local";
        p->corrective = 1;
        return;
    }
    p->cancel = x->found && x->pending;
}

static int write_row(int64_t *local_id, cache *c, const struct existing *x,
                     const struct consent_event *ev, const struct row_plan *p)
{
    const struct number_record *r = ev->row->rec;
    sqlite3_stmt *st = cache_stmt(
        c, "INSERT INTO numbers(local_id, dv_id, configuration_id, "
           "raw_phone, e164, phone_error, status, dv_status, active, "
           "status_at, source, topics, paused_until, modified_on, version, "
           "sweep_mark, phone_warning, phone_checked) VALUES (?1, ?2, ?3, "
           "?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, "
           "1) ON CONFLICT(local_id) DO UPDATE "
           "SET dv_id = ?2, configuration_id = ?3, raw_phone = ?4, e164 = ?5, "
           "phone_error = ?6, status = ?7, dv_status = ?8, active = ?9, "
           "status_at = ?10, source = ?11, topics = coalesce(?12, topics), "
           "paused_until = coalesce(?13, paused_until), modified_on = ?14, "
           "version = ?15, sweep_mark = max(sweep_mark, ?16), "
           "phone_warning = ?17, phone_checked = 1");

    if (!st)
        return ERR_FAIL;
    if (x->found)
        cache_bind_int(st, 1, x->local_id);
    cache_bind_text(st, 2, r->id);
    cache_bind_text(st, 3, r->configuration_id);
    cache_bind_text(st, 4, r->raw_phone);
    cache_bind_text(st, 5, p->e164[0] ? p->e164 : NULL);
    cache_bind_text(st, 6, p->e164[0] ? NULL : p->phone_error);
    cache_bind_int(st, 7, p->status);
    cache_bind_int(st, 8, r->status);
    cache_bind_int(st, 9, r->active);
    cache_bind_int(st, 10, p->status_at);
    cache_bind_text(st, 11, p->source);
    cache_bind_text(st, 12, r->topics);
    cache_bind_opt_int(st, 13, r->paused_until);
    cache_bind_opt_int(st, 14, r->modified_on);
    cache_bind_opt_int(st, 15, r->version);
    cache_bind_int(st, 16, ev->row->sweep_mark);
    cache_bind_text(st, 17, p->e164[0] ? p->phone_warning : NULL);
    if (cache_step(st) != SQLITE_DONE)
        return ERR_FAIL;
    *local_id = x->found ? x->local_id : cache_last_rowid(c);
    return 0;
}

/* What a Dataverse-caused ledger entry cites: the row (when read) or
 * just its id, and a note.  Built only when an entry is written. */
struct dv_evidence {
    const char *dv_id;
    const struct number_record *rec; /* NULL for a deletion */
    const char *note;                /* NULL: none */
};

static char *evidence_text(const struct dv_evidence *e)
{
    const struct number_record *r = e->rec;
    cJSON *o = cJSON_CreateObject();
    char at[32], *text;

    cJSON_AddStringToObject(o, "dv_id", e->dv_id);
    if (r) {
        cJSON_AddNumberToObject(o, "version", (double)r->version);
        if (r->modified_on) {
            mapping_time_format(at, r->modified_on);
            cJSON_AddStringToObject(o, "modified_on", at);
        }
        if (r->raw_phone)
            cJSON_AddStringToObject(o, "phone_as_typed", r->raw_phone);
    }
    if (e->note)
        cJSON_AddStringToObject(o, "note", e->note);
    text = jsonutil_canonical(o);
    cJSON_Delete(o);
    return text;
}

/* A Dataverse-caused transition's message (consent.h note 8): the
 * double opt-in request after a row created or changed in Dynamics. */
static int queue_message(cache *c, const struct consent_options *opts,
                         const char *cfg, const char *e164,
                         enum consent_status from, enum consent_status to,
                         const char *source, int64_t t)
{
    struct configuration_info info;
    struct consent_transition tr;
    int rc;

    memset(&tr, 0, sizeof(tr));
    tr.from = from;
    tr.to = to;
    tr.source = source;
    tr.double_opt_in = 1; /* the only message Dynamics can cause */
    if (!opts || consent_message_for(opts, &tr) == CONSENT_MSG_NONE)
        return 0;
    rc = configurations_get(&info, c, cfg);
    if (rc)
        return rc == ERR_NOTFOUND ? 0 : rc;
    tr.double_opt_in = info.double_opt_in;
    configuration_info_dispose(&info);
    return consent__queue_message(c, opts, cfg, e164, &tr, t);
}

/* Ledger entry when the state of (cfg, e164) moved from `before`. */
static int record_if_changed(cache *c, const struct consent_options *opts,
                             const char *cfg, const char *e164,
                             const struct consent__state *before,
                             const char *source, int64_t t,
                             const struct dv_evidence *e)
{
    struct consent__keys keys;
    struct consent__state after;
    char *evidence;
    int rc;

    consent__keys_init(&keys, e164);
    rc = consent__state_load(&after, c, cfg, &keys);
    if (rc || after.status == before->status)
        return rc;
    evidence = evidence_text(e);
    rc = consent__ledger(c, cfg, e164, before->status, after.status,
                         after.rows ? after.status_at : t, source, evidence);
    free(evidence);
    if (rc == 0 && after.rows)
        rc = queue_message(c, opts, cfg, e164, before->status, after.status,
                           source, after.status_at);
    return rc;
}

/* Unchanged since last read: only the sweep mark moves. */
static int touch(cache *c, const struct existing *x, int64_t sweep_mark)
{
    sqlite3_stmt *st;

    if (!sweep_mark)
        return 0;
    st = cache_stmt(c, "UPDATE numbers SET sweep_mark = ?2 "
                       "WHERE local_id = ?1 AND sweep_mark < ?2");
    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, x->local_id);
    cache_bind_int(st, 2, sweep_mark);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

static int apply_plan(struct consent_result *out, cache *c,
                      const struct consent_options *opts,
                      const struct existing *x, const struct consent_event *ev,
                      struct row_plan *p, int64_t t)
{
    const struct number_record *r = ev->row->rec;
    struct consent__state old_before = { 0 }, new_before = { 0 };
    struct dv_evidence e = { r->id, r, NULL };
    struct consent__keys keys;
    int64_t local_id = 0;
    int rc = 0, same_key;

    old_before.status = new_before.status = CONSENT_NONE;
    same_key = x->found && x->e164 && p->e164[0] &&
               strcmp(x->e164, p->e164) == 0 &&
               strcmp(x->configuration_id, r->configuration_id) == 0;
    if (x->found && x->e164) {
        consent__keys_init(&keys, x->e164);
        rc = consent__state_load(&old_before, c, x->configuration_id, &keys);
    }
    if (rc == 0 && p->e164[0] && !same_key) {
        consent__keys_init(&keys, p->e164);
        rc = consent__state_load(&new_before, c, r->configuration_id, &keys);
    } else if (same_key) {
        new_before = old_before;
    }
    if (rc == 0 && !x->found)
        plan_status(p, x, &new_before, r, t);
    if (rc == 0)
        rc = write_row(&local_id, c, x, ev, p);
    if (rc == 0 && p->cancel)
        rc = consent__cancel_writeback(c, local_id);
    if (rc == 0 && p->corrective && p->e164[0])
        rc = consent__queue_writeback(c, local_id, r->configuration_id, p->e164,
                                      p->status, p->status_at, "corrective");
    e.note = p->corrective ? "dataverse lost: corrected" : NULL;
    if (rc == 0 && x->found && x->e164 && !same_key)
        rc = record_if_changed(c, opts, x->configuration_id, x->e164,
                               &old_before, ev->source, t, &e);
    if (rc == 0 && p->e164[0])
        rc = record_if_changed(c, opts, r->configuration_id, p->e164,
                               &new_before, ev->source, t, &e);
    out->from = new_before.status;
    out->to = p->status;
    out->outcome = p->corrective ? CONSENT_CORRECTED : CONSENT_CHANGED;
    return rc;
}

/* Finds the cache row for `r`: by its id, else a local-only row of the
 * same number (adopted); and whether the row is our own echo. */
static int find_existing(struct existing *x, struct row_plan *p, int *planned,
                         cache *c, const struct consent_row *row)
{
    const struct number_record *r = row->rec;
    int rc = existing_by_dv_id(x, c, r->id);

    *planned = 0;
    if (rc == 0 && !x->found) {
        plan_phone(p, x, row);
        *planned = 1;
        if (p->e164[0])
            rc = existing_local_only(x, c, r->configuration_id, p->e164);
    }
    if (rc == 0 && x->found && (!x->has_dv_status || x->dv_status != r->status))
        rc = own_write(&x->echo, c, x->local_id, r->status);
    return rc;
}

int consent__mirror(struct consent_result *out, cache *c,
                    const struct consent_options *opts,
                    const struct consent_event *ev)
{
    const struct number_record *r = ev->row->rec;
    struct consent__state none = { 0 };
    struct existing x;
    struct row_plan p;
    int64_t t = r->modified_on  ? r->modified_on
                : r->consent_at ? r->consent_at
                                : clock_now_ms();
    int rc, planned;

    memset(&p, 0, sizeof(p));
    out->configurations = 1;
    if (!r->configuration_id[0]) {
        /* In no Configuration's Related view any more (its Configuration
         * was deleted, or the lookup cleared): like a deleted row. */
        log_debug(LOG_SUB_CONSENT, "mirror_unlinked dv_id=%s", r->id);
        out->outcome = CONSENT_UNCHANGED;
        return consent_row_deleted(c, r->id, t, ev->source);
    }
    rc = find_existing(&x, &p, &planned, c, ev->row);
    /* A row not parsed under the current rule goes the long way even when
     * unchanged (migration 6). */
    if (rc == 0 && x.found && r->version && x.version == r->version &&
        x.phone_checked &&
        strcmp(x.configuration_id, r->configuration_id) == 0) {
        out->outcome = CONSENT_UNCHANGED; /* the hot path of a re-sync */
        rc = touch(c, &x, ev->row->sweep_mark);
        existing_dispose(&x);
        return rc;
    }
    if (rc == 0) {
        if (!planned)
            plan_phone(&p, &x, ev->row);
        if (x.found)
            plan_status(&p, &x, &none, r, t);
        rc = apply_plan(out, c, opts, &x, ev, &p, t);
    }
    existing_dispose(&x);
    return rc;
}

/* ---- deletions ------------------------------------------------------------
 */

/*
 * A deleted row with a local change still waiting becomes a local row
 * again (its write-back now creates a record), so an opt-out accepted
 * here is never lost to a concurrent delete in Dynamics.
 */
static int orphan_or_delete(cache *c, const struct existing *x)
{
    sqlite3_stmt *st;

    if (x->pending && is_local_source(x->source)) {
        st = cache_stmt(c, "UPDATE numbers SET dv_id = NULL, "
                           "dv_status = NULL, version = NULL "
                           "WHERE local_id = ?1");
    } else {
        if (consent__cancel_writeback(c, x->local_id) != 0)
            return ERR_FAIL;
        st = cache_stmt(c, "DELETE FROM numbers WHERE local_id = ?1");
    }
    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, x->local_id);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

int consent_row_deleted(cache *c, const char *dv_id, int64_t event_at,
                        const char *source)
{
    struct consent__state before = { 0 };
    struct dv_evidence e = { dv_id, NULL, "deleted in Dataverse" };
    struct consent__keys keys;
    struct existing x;
    int rc = existing_by_dv_id(&x, c, dv_id);

    if (rc || !x.found)
        goto out;
    if (x.e164) {
        consent__keys_init(&keys, x.e164);
        rc = consent__state_load(&before, c, x.configuration_id, &keys);
    }
    if (rc == 0)
        rc = orphan_or_delete(c, &x);
    if (rc == 0 && x.e164)
        rc = record_if_changed(c, NULL, x.configuration_id, x.e164, &before,
                               source, event_at, &e);
out:
    existing_dispose(&x);
    return rc;
}

/* ---- phones parsed again (migration 6) ---------------------------------- */

struct recheck_row {
    int64_t local_id;
    char configuration_id[MAPPING_GUID_LEN + 1];
    char *raw_phone; /* owned */
    char *e164;      /* owned; NULL when unparseable */
    char *dv_id;     /* owned; NULL for a local row */
    char *region;    /* owned; the Configuration's; NULL: the default */
};

static void recheck_rows_free(struct recheck_row *rows, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        free(rows[i].raw_phone);
        free(rows[i].e164);
        free(rows[i].dv_id);
        free(rows[i].region);
    }
    free(rows);
}

/* Up to `max` rows still to check, oldest first (collected before any is
 * written: each write takes its row out of the index being read). */
static int recheck_rows_load(struct recheck_row **out, int *n, cache *c,
                             int max)
{
    sqlite3_stmt *st = cache_stmt(
        c, "SELECT n.local_id, n.configuration_id, n.raw_phone, n.e164, "
           "n.dv_id, nullif(g.default_region, '') FROM numbers n "
           "LEFT JOIN configurations g ON g.id = n.configuration_id "
           "WHERE n.phone_checked = 0 ORDER BY n.local_id LIMIT ?1");
    struct recheck_row *rows = xcalloc((size_t)max + 1, sizeof(*rows));
    int rc;

    *n = 0;
    if (!st) {
        free(rows);
        return ERR_FAIL;
    }
    cache_bind_int(st, 1, max);
    while ((rc = cache_step(st)) == SQLITE_ROW) {
        struct recheck_row *r = &rows[(*n)++];

        r->local_id = sqlite3_column_int64(st, 0);
        snprintf(r->configuration_id, sizeof(r->configuration_id), "%s",
                 cache_col_text(st, 1));
        r->raw_phone = dup_text(st, 2);
        r->e164 = dup_text(st, 3);
        r->dv_id = dup_text(st, 4);
        r->region = dup_text(st, 5);
    }
    if (rc != SQLITE_DONE) {
        recheck_rows_free(rows, *n);
        return ERR_FAIL;
    }
    *out = rows;
    return 0;
}

/* `rekey`: the key changed.  Otherwise e164 is left out of the SET, so
 * SQLite touches neither its indexes nor the gate's journal trigger (an
 * upgrade checks every row once). */
static int recheck_write(cache *c, const struct recheck_row *r,
                         const struct row_plan *p, int rekey)
{
    sqlite3_stmt *st =
        rekey ? cache_stmt(c, "UPDATE numbers SET e164 = ?2, phone_error = "
                              "?3, phone_warning = ?4, phone_checked = 1 "
                              "WHERE local_id = ?1")
              : cache_stmt(c, "UPDATE numbers SET phone_warning = ?4, "
                              "phone_checked = 1 WHERE local_id = ?1");

    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, r->local_id);
    if (rekey) {
        cache_bind_text(st, 2, p->e164[0] ? p->e164 : NULL);
        cache_bind_text(st, 3, p->e164[0] ? NULL : p->phone_error);
    }
    cache_bind_text(st, 4, p->e164[0] ? p->phone_warning : NULL);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

/* One row: its key under the current rule, and the ledger when the
 * state of the key it leaves or the key it gets changes. */
static int recheck_one(cache *c, const struct recheck_row *r,
                       const char *default_region, int64_t now, int *rekeyed)
{
    struct consent__state old_before = { 0 }, new_before = { 0 };
    struct dv_evidence e = { r->dv_id, NULL,
                             "phone parsed again: possible-number rule" };
    struct consent__keys keys;
    struct row_plan p;
    const char *why = NULL;
    int rc = 0;

    memset(&p, 0, sizeof(p));
    if (!r->dv_id || !r->raw_phone) {
        /* A local row keeps its key (a consent was given under it). */
        if (r->e164)
            snprintf(p.e164, sizeof(p.e164), "%s", r->e164);
        p.phone_error = r->raw_phone ? NULL : "no phone number";
    } else if (phone_parse(p.e164, r->raw_phone,
                           r->region ? r->region : default_region, &why) != 0) {
        p.e164[0] = '\0';
        p.phone_error = why ? why : "cannot be parsed";
    }
    p.phone_warning = p.e164[0] ? phone_warning(p.e164) : NULL;
    if (r->e164 ? strcmp(r->e164, p.e164) == 0 : !p.e164[0])
        return recheck_write(c, r, &p, 0); /* the same key */
    old_before.status = new_before.status = CONSENT_NONE;
    if (r->e164) {
        consent__keys_init(&keys, r->e164);
        rc = consent__state_load(&old_before, c, r->configuration_id, &keys);
    }
    if (rc == 0 && p.e164[0]) {
        consent__keys_init(&keys, p.e164);
        rc = consent__state_load(&new_before, c, r->configuration_id, &keys);
    }
    if (rc == 0)
        rc = recheck_write(c, r, &p, 1);
    if (rc == 0 && r->e164)
        rc = record_if_changed(c, NULL, r->configuration_id, r->e164,
                               &old_before, CONSENT_SOURCE_DATAVERSE, now, &e);
    if (rc == 0 && p.e164[0])
        rc = record_if_changed(c, NULL, r->configuration_id, p.e164,
                               &new_before, CONSENT_SOURCE_DATAVERSE, now, &e);
    (*rekeyed)++;
    return rc;
}

int consent_phones_recheck(cache *c, const char *default_region, int max,
                           int *done, int *rekeyed)
{
    struct recheck_row *rows = NULL;
    int64_t now = clock_now_ms();
    int n = 0, i, rc;

    *done = *rekeyed = 0;
    rc = recheck_rows_load(&rows, &n, c, max > 0 ? max : 1);
    for (i = 0; rc == 0 && i < n; i++)
        rc = recheck_one(c, &rows[i], default_region, now, rekeyed);
    if (rc == 0)
        *done = n;
    if (rows)
        recheck_rows_free(rows, n);
    return rc;
}

/* ---- the first load (consent.h note 7) ---------------------------------- */

void consent_baseline_begin(struct consent_baseline *b)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();

    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        abort(); /* out of memory in OpenSSL */
    b->md = md;
    b->rows = 0;
}

void consent_baseline_dispose(struct consent_baseline *b)
{
    EVP_MD_CTX_free(b->md);
    b->md = NULL;
}

static int baseline_insert(cache *c, const struct consent_row *row,
                           const struct row_plan *p)
{
    const struct number_record *r = row->rec;
    sqlite3_stmt *st = cache_stmt(
        /* A plain append: the indexes are off during a first load and a
         * repeated row is sorted out when they are built (cache.h). */
        c, "INSERT INTO numbers(dv_id, configuration_id, raw_phone, e164, "
           "phone_error, status, dv_status, active, status_at, source, "
           "topics, paused_until, modified_on, version, sweep_mark, "
           "phone_warning, phone_checked) "
           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8, 'dataverse', ?9, "
           "?10, ?11, ?12, ?13, ?14, 1)");

    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, r->id);
    cache_bind_text(st, 2, r->configuration_id);
    cache_bind_text(st, 3, r->raw_phone);
    cache_bind_text(st, 4, p->e164[0] ? p->e164 : NULL);
    cache_bind_text(st, 5, p->e164[0] ? NULL : p->phone_error);
    cache_bind_int(st, 6, r->status);
    cache_bind_int(st, 7, r->active);
    cache_bind_int(st, 8, r->modified_on ? r->modified_on : r->consent_at);
    cache_bind_text(st, 9, r->topics);
    cache_bind_opt_int(st, 10, r->paused_until);
    cache_bind_opt_int(st, 11, r->modified_on);
    cache_bind_opt_int(st, 12, r->version);
    cache_bind_int(st, 13, row->sweep_mark);
    cache_bind_text(st, 14, p->e164[0] ? p->phone_warning : NULL);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

int consent_baseline_row(cache *c, struct consent_baseline *b,
                         const struct consent_row *row)
{
    const struct number_record *r = row->rec;
    struct existing none;
    struct row_plan p;
    char line[160];
    int n;

    if (!r->configuration_id[0])
        return 0; /* belongs to no configuration: not mirrored */
    memset(&none, 0, sizeof(none));
    memset(&p, 0, sizeof(p));
    plan_phone(&p, &none, row);
    n = snprintf(line, sizeof(line), "%s\t%s\t%s\t%d\t%lld\n", r->id,
                 r->configuration_id, p.e164, (int)r->status,
                 (long long)r->version);
    EVP_DigestUpdate(b->md, line, (size_t)n);
    b->rows++;
    return baseline_insert(c, row, &p);
}

int consent_baseline_end(cache *c, struct consent_baseline *b,
                         const char *entity, int64_t at)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0, i;
    char digest[65], *evidence;
    cJSON *o;
    int rc = 0;

    if (b->rows > 0 && EVP_DigestFinal_ex(b->md, md, &len) == 1) {
        for (i = 0; i < len && i < 32; i++) {
            digest[2 * i] = hex[md[i] >> 4];
            digest[2 * i + 1] = hex[md[i] & 15];
        }
        digest[64] = '\0';
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "kind", "baseline");
        cJSON_AddStringToObject(o, "entity", entity);
        cJSON_AddNumberToObject(o, "rows", (double)b->rows);
        cJSON_AddStringToObject(o, "sha256", digest);
        evidence = jsonutil_canonical(o);
        cJSON_Delete(o);
        rc = consent__ledger(c, "*", "*", CONSENT_NONE, CONSENT_NONE, at,
                             CONSENT_SOURCE_DATAVERSE, evidence);
        free(evidence);
    }
    consent_baseline_dispose(b);
    return rc;
}
