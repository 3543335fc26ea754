/*
 * consent — consent_apply(): the rule table, the state of a number, and
 * local expressions (WhatsApp replies, preferences, manual commands).
 * Dataverse rows are mirrored in consent_mirror.c.  See consent.h for the
 * design notes this file keeps.
 */
#include "consent_p.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "configurations.h"
#include "err.h"
#include "log.h"
#include "wa_users.h"
#include "xalloc.h"

void consent_options_init(struct consent_options *out,
                          const struct optsync_config *cfg,
                          const struct mapping *m)
{
    memset(out, 0, sizeof(*out));
    out->double_opt_in_window = cfg->consent.double_opt_in_window * 1000;
    out->write_preferences =
        m && (m->number.topics != NULL || m->number.paused_until != NULL);
    out->send_messages =
        cfg->whatsapp.send && strcmp(cfg->whatsapp.send, "off") != 0;
    out->opt_in_confirmation = cfg->messages.opt_in_confirmation_template ||
                               cfg->messages.opt_in_confirmation_text;
}

/* ---- the rule table ------------------------------------------------------ */

enum consent_status consent_next_status(enum consent_action action,
                                        enum consent_status current,
                                        int64_t current_at, int64_t event_at,
                                        int double_opt_in, int64_t window_ms)
{
    switch (action) {
    case CONSENT_ACT_OPT_OUT: return CONSENT_OPTED_OUT;
    case CONSENT_ACT_OPT_IN:
        if (current == CONSENT_NONE || current == CONSENT_OPTED_OUT)
            return CONSENT_SINGLE_OPT_IN;
        /* A second opt-in soon after the first confirms it (DOI only). */
        if (current == CONSENT_SINGLE_OPT_IN && double_opt_in &&
            event_at >= current_at && event_at - current_at <= window_ms)
            return CONSENT_DOUBLE_OPT_IN;
        return current;
    case CONSENT_ACT_CONFIRM:
        if (current == CONSENT_SINGLE_OPT_IN && double_opt_in)
            return CONSENT_DOUBLE_OPT_IN;
        return current;
    default: return current;
    }
}

/* ---- local expressions ------------------------------------------------------
 */

/* Local ids of the number's active rows (malloc'd). */
static int active_rows(int64_t **out, size_t *n, cache *c, const char *cfg,
                       const struct consent__keys *keys)
{
    sqlite3_stmt *st = cache_stmt(
        c, "SELECT local_id FROM numbers WHERE configuration_id = ?1 "
           "AND " CONSENT__KEYS_IN " AND active = 1 ORDER BY local_id");
    int64_t *ids = NULL;
    int rc;

    *n = 0;
    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, cfg);
    consent__bind_keys(st, keys);
    while ((rc = cache_step(st)) == SQLITE_ROW) {
        ids = xrealloc(ids, (*n + 1) * sizeof(*ids));
        ids[(*n)++] = sqlite3_column_int64(st, 0);
    }
    if (rc != SQLITE_DONE) {
        free(ids);
        return ERR_FAIL;
    }
    *out = ids;
    return 0;
}

/* A row for a number Dynamics does not have yet (created by write-back). */
static int insert_local_row(int64_t *out, cache *c, const char *cfg,
                            const char *e164)
{
    sqlite3_stmt *st = cache_stmt(
        c, "INSERT INTO numbers(configuration_id, raw_phone, e164, status, "
           "active) VALUES (?1, ?2, ?2, 0, 1)");

    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, cfg);
    cache_bind_text(st, 2, e164);
    if (cache_step(st) != SQLITE_DONE)
        return ERR_FAIL;
    *out = cache_last_rowid(c);
    return 0;
}

static int set_row_status(cache *c, int64_t local_id, enum consent_status s,
                          int64_t at, const char *source)
{
    sqlite3_stmt *st = cache_stmt(
        c, "UPDATE numbers SET status = ?2, status_at = ?3, source = ?4 "
           "WHERE local_id = ?1");

    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, local_id);
    cache_bind_int(st, 2, s);
    cache_bind_int(st, 3, at);
    cache_bind_text(st, 4, source);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

/* Sets every active row of the number (creating one when there is none)
 * to `next` and queues their write-backs. */
static int write_rows(cache *c, const char *cfg,
                      const struct consent__keys *keys,
                      const struct consent_event *ev, enum consent_status next)
{
    int64_t *ids = NULL, one;
    size_t n = 0, i;
    int rc = active_rows(&ids, &n, c, cfg, keys);

    if (rc == 0 && n == 0) {
        rc = insert_local_row(&one, c, cfg, ev->e164);
        if (rc == 0) {
            ids = xmalloc(sizeof(*ids));
            ids[n++] = one;
        }
    }
    for (i = 0; rc == 0 && i < n; i++) {
        rc = set_row_status(c, ids[i], next, ev->event_at, ev->source);
        if (rc == 0)
            rc = consent__queue_writeback(c, ids[i], cfg, ev->e164, next,
                                          ev->event_at, "local_change");
    }
    free(ids);
    return rc;
}

/* Preferences: topic opt-outs and pauses live on the rows, no state
 * change; recorded in the ledger with from == to. */
static int apply_preference(struct consent_result *out, cache *c,
                            const struct consent_options *opts, const char *cfg,
                            const struct consent__keys *keys,
                            const struct consent__state *st,
                            const struct consent_event *ev)
{
    int64_t *ids = NULL;
    size_t n = 0, i;
    sqlite3_stmt *upd;
    int rc = active_rows(&ids, &n, c, cfg, keys);

    for (i = 0; rc == 0 && i < n; i++) {
        upd = cache_stmt(
            c, "UPDATE numbers SET topics = CASE WHEN ?2 IS NULL THEN topics "
               "WHEN topics IS NULL OR topics = '' THEN ?2 "
               "WHEN instr(',' || topics || ',', ',' || ?2 || ',') > 0 "
               "THEN topics ELSE topics || ',' || ?2 END, "
               "paused_until = CASE WHEN ?3 IS NULL THEN paused_until "
               "ELSE ?3 END WHERE local_id = ?1");
        if (!upd)
            rc = ERR_FAIL;
        else {
            cache_bind_int(upd, 1, ids[i]);
            cache_bind_text(upd, 2, ev->topic);
            cache_bind_opt_int(upd, 3, ev->paused_until);
            rc = cache_step(upd) == SQLITE_DONE ? 0 : ERR_FAIL;
        }
        if (rc == 0 && opts->write_preferences)
            rc = consent__queue_writeback(c, ids[i], cfg, ev->e164, st->status,
                                          ev->event_at, "preference");
    }
    free(ids);
    if (rc == 0 && n == 0) {
        err_set(ERR_CLASS_INPUT,
                "%s has no record in configuration %s: "
                "a preference needs one",
                ev->e164, cfg);
        return ERR_NOTFOUND;
    }
    if (rc == 0)
        rc = consent__ledger(c, cfg, ev->e164, st->status, st->status,
                             ev->event_at, ev->source, ev->evidence);
    out->outcome = CONSENT_CHANGED;
    return rc;
}

/* The message the transition calls for (note 8), on the Configuration
 * the event came in on only. */
static int queue_message(cache *c, const struct consent_options *opts,
                         const char *cfg, const struct configuration_info *info,
                         const struct consent_event *ev,
                         enum consent_status from, enum consent_status to)
{
    struct consent_options o = *opts;
    struct consent_transition t;

    /* A Configuration's own opt-in confirmation template configures it. */
    if (info->opt_in_confirmation_template &&
        *info->opt_in_confirmation_template)
        o.opt_in_confirmation = 1;
    memset(&t, 0, sizeof(t));
    t.from = from;
    t.to = to;
    t.source = ev->source;
    t.double_opt_in = info->double_opt_in;
    return consent__queue_message(c, &o, cfg, ev->e164, &t, ev->event_at);
}

static int apply_expression(struct consent_result *out, cache *c,
                            const struct consent_options *opts, const char *cfg,
                            int origin, const struct consent_event *ev)
{
    struct configuration_info info;
    struct consent__keys keys;
    struct consent__state st;
    enum consent_status next;
    int rc;

    rc = configurations_get(&info, c, cfg);
    if (rc)
        return rc;
    consent__keys_init(&keys, ev->e164);
    rc = consent__state_load(&st, c, cfg, &keys);
    out->from = out->to = st.status;
    if (rc == 0 && (ev->action == CONSENT_ACT_TOPIC_OPT_OUT ||
                    ev->action == CONSENT_ACT_PAUSE))
        rc = apply_preference(out, c, opts, cfg, &keys, &st, ev);
    if (rc || ev->action == CONSENT_ACT_TOPIC_OPT_OUT ||
        ev->action == CONSENT_ACT_PAUSE)
        goto out;
    next =
        consent_next_status(ev->action, st.status, st.status_at, ev->event_at,
                            info.double_opt_in, opts->double_opt_in_window);
    if (next == st.status) {
        out->outcome = CONSENT_UNCHANGED;
    } else if (consent__loses(ev->event_at, next, st.status_at, st.status)) {
        out->outcome = CONSENT_STALE;
    } else {
        rc = write_rows(c, cfg, &keys, ev, next);
        if (rc == 0)
            rc = consent__ledger(c, cfg, ev->e164, st.status, next,
                                 ev->event_at, ev->source, ev->evidence);
        if (rc == 0 && origin)
            rc = queue_message(c, opts, cfg, &info, ev, st.status, next);
        out->outcome = CONSENT_CHANGED;
        out->to = next;
    }
out:
    configuration_info_dispose(&info);
    return rc;
}

/* ---- dedupe ------------------------------------------------------------ */

static int inbound_seen(int *seen, cache *c, const struct consent_event *ev)
{
    sqlite3_stmt *st;

    *seen = 0;
    if (!ev->inbound_source || !ev->inbound_id)
        return 0;
    st = cache_stmt(c, "INSERT INTO inbound_seen(source, id, seen_at) "
                       "VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING");
    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, ev->inbound_source);
    cache_bind_text(st, 2, ev->inbound_id);
    cache_bind_int(st, 3, clock_now_ms());
    if (cache_step(st) != SQLITE_DONE)
        return ERR_FAIL;
    *seen = cache_changes(c) == 0;
    return 0;
}

/* ---- entry points -----------------------------------------------------------
 */

/* The configurations an expression applies to (note: WABA-wide stops). */
static int targets(char (**ids)[MAPPING_GUID_LEN + 1], size_t *n, char *origin,
                   cache *c, const struct consent_event *ev)
{
    char id[MAPPING_GUID_LEN + 1];
    int rc;

    if (ev->configuration_id)
        rc = configurations_resolve(id, c, ev->configuration_id);
    else if (ev->phone_number_id)
        rc = configurations_find_by_phone_number_id(id, c, ev->phone_number_id);
    else {
        err_set(ERR_CLASS_INPUT, "event names no configuration");
        return ERR_NOTFOUND;
    }
    if (rc)
        return rc == ERR_CONFLICT ? ERR_BADINPUT : rc;
    memcpy(origin, id, sizeof(id));
    if (ev->waba_wide)
        return configurations_same_waba(ids, n, c, id);
    *ids = xmalloc(sizeof(**ids));
    memcpy((*ids)[0], id, sizeof(id));
    *n = 1;
    return 0;
}

static int check_event(const struct consent_event *ev)
{
    if (ev->action == CONSENT_ACT_MIRROR)
        return ev->row && ev->row->rec ? 0 : ERR_BADINPUT;
    if (ev->action == CONSENT_ACT_NONE || !ev->source) {
        err_set(ERR_CLASS_INPUT, "event without action or source");
        return ERR_BADINPUT;
    }
    if (!ev->e164 || !phone_is_canonical(ev->e164)) {
        err_set(ERR_CLASS_INPUT, "event without a phone key");
        return ERR_BADINPUT;
    }
    return 0;
}

/* Folds per-configuration results: CHANGED anywhere is CHANGED. */
static void merge(struct consent_result *out, const struct consent_result *r,
                  size_t i)
{
    if (i == 0) {
        *out = *r;
        return;
    }
    if (r->outcome == CONSENT_CHANGED && out->outcome != CONSENT_CHANGED)
        out->outcome = CONSENT_CHANGED;
}

/* An event of a WhatsApp username user (BSUID only) takes the number
 * last seen with that id; ERR_NOTFOUND (the caller quarantines or keeps
 * it waiting) until a delivery has linked the two. */
static int key_by_user_id(struct consent_event *keyed, char *e164, cache *c,
                          const struct consent_event *ev)
{
    int rc;

    *keyed = *ev;
    if (ev->e164 || !ev->user_id || ev->action == CONSENT_ACT_MIRROR)
        return 0;
    rc = wa_users_phone_find(e164, PHONE_E164_MAX, c, ev->user_id, NULL);
    if (rc == 0)
        keyed->e164 = e164;
    return rc;
}

int consent_apply_locked(struct consent_result *out, cache *c,
                         const struct consent_options *opts,
                         const struct consent_event *event)
{
    char(*ids)[MAPPING_GUID_LEN + 1] = NULL;
    char origin[MAPPING_GUID_LEN + 1] = "";
    char e164[PHONE_E164_MAX];
    struct consent_event keyed, *ev = &keyed;
    struct consent_result r;
    size_t n = 0, i;
    int rc, seen;

    memset(out, 0, sizeof(*out));
    rc = key_by_user_id(&keyed, e164, c, event);
    if (rc == 0)
        rc = check_event(ev);
    if (rc)
        return rc;
    if (ev->action == CONSENT_ACT_MIRROR)
        return consent__mirror(out, c, opts, ev);
    rc = targets(&ids, &n, origin, c, ev);
    if (rc == 0)
        rc = inbound_seen(&seen, c, ev);
    if (rc == 0 && seen) {
        out->outcome = CONSENT_DUPLICATE;
        goto out;
    }
    for (i = 0; rc == 0 && i < n; i++) {
        memset(&r, 0, sizeof(r));
        rc = apply_expression(&r, c, opts, ids[i], strcmp(ids[i], origin) == 0,
                              ev);
        merge(out, &r, i);
    }
    out->configurations = (int)n;
out:
    free(ids);
    return rc;
}

static void log_result(const struct consent_event *ev,
                       const struct consent_result *r)
{
    if (r->outcome != CONSENT_CHANGED)
        return;
    if (r->from == r->to) /* a topic opt-out or a pause */
        log_info("preference_changed phone=%s topic=%s paused_until=%lld "
                 "source=%s configurations=%d",
                 log_phone(ev->e164), log_q(ev->topic),
                 (long long)ev->paused_until, ev->source, r->configurations);
    else
        log_info("consent_changed phone=%s from=%s to=%s source=%s "
                 "configurations=%d",
                 log_phone(ev->e164), consent_status_name(r->from),
                 consent_status_name(r->to), ev->source, r->configurations);
}

int consent_apply(struct consent_result *out, cache *c,
                  const struct consent_options *opts,
                  const struct consent_event *ev)
{
    int rc = cache_begin(c);

    if (rc)
        return rc;
    rc = consent_apply_locked(out, c, opts, ev);
    if (rc == 0)
        rc = cache_commit(c);
    else
        cache_rollback(c);
    if (rc == 0 && ev->action != CONSENT_ACT_MIRROR)
        log_result(ev, out);
    return rc;
}
