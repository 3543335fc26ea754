/*
 * consent_messages — which WhatsApp consent message a transition calls
 * for, and its outbox row (consent.h note 8).  The rules are a pure
 * function (unit-tested); queueing runs in the transition's transaction,
 * so a message exists exactly when its transition committed.  What the
 * message says and whether it still applies when it leaves is the
 * outbox's business (outbox_whatsapp.c).
 */
#include "consent_p.h"

#include <string.h>

#include "clock.h"
#include "err.h"
#include "log.h"

static const char *const names[] = {
    [CONSENT_MSG_NONE] = NULL,
    [CONSENT_MSG_DOUBLE_OPT_IN_REQUEST] = "double_opt_in_request",
    [CONSENT_MSG_OPT_IN_CONFIRMATION] = "opt_in_confirmation",
    [CONSENT_MSG_OPT_OUT_CONFIRMATION] = "opt_out_confirmation",
};

const char *consent_message_name(enum consent_message m)
{
    return (size_t)m < sizeof(names) / sizeof(names[0]) ? names[m] : NULL;
}

enum consent_message consent_message_parse(const char *name)
{
    size_t i;

    for (i = 1; name && i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(names[i], name) == 0)
            return (enum consent_message)i;
    return CONSENT_MSG_NONE;
}

static int is(const char *s, const char *want)
{
    return s && strcmp(s, want) == 0;
}

enum consent_message consent_message_for(const struct consent_options *opts,
                                         const struct consent_transition *t)
{
    enum consent_status final =
        t->double_opt_in ? CONSENT_DOUBLE_OPT_IN : CONSENT_SINGLE_OPT_IN;

    if (!opts->send_messages || t->from == t->to || !t->source)
        return CONSENT_MSG_NONE;
    /* A delivery failure is no expression the customer could read a
     * message about (131050: they stopped marketing messages). */
    if (is(t->source, CONSENT_SOURCE_WHATSAPP_STATUS))
        return CONSENT_MSG_NONE;
    if (t->to == CONSENT_SINGLE_OPT_IN && t->double_opt_in)
        return CONSENT_MSG_DOUBLE_OPT_IN_REQUEST;
    /* Only a message the customer sent us is confirmed: an opt-out made
     * in Dynamics or by an operator, or the in-app "stop marketing"
     * switch, gets no reply. */
    if (!is(t->source, CONSENT_SOURCE_WHATSAPP))
        return CONSENT_MSG_NONE;
    if (t->to == CONSENT_OPTED_OUT)
        return CONSENT_MSG_OPT_OUT_CONFIRMATION;
    if (t->to == final && opts->opt_in_confirmation)
        return CONSENT_MSG_OPT_IN_CONFIRMATION;
    return CONSENT_MSG_NONE;
}

int consent_message_still_due(enum consent_message m, enum consent_status now)
{
    switch (m) {
    case CONSENT_MSG_DOUBLE_OPT_IN_REQUEST: return now == CONSENT_SINGLE_OPT_IN;
    case CONSENT_MSG_OPT_OUT_CONFIRMATION: return now == CONSENT_OPTED_OUT;
    case CONSENT_MSG_OPT_IN_CONFIRMATION:
        return now == CONSENT_SINGLE_OPT_IN || now == CONSENT_DOUBLE_OPT_IN;
    default: return 0;
    }
}

/* ---- queueing ---------------------------------------------------------- */

/* The number row a message hangs on: the first active one; 0: none. */
static int anchor_row(int64_t *out, cache *c, const char *cfg, const char *e164)
{
    struct consent__keys keys;
    sqlite3_stmt *st = cache_stmt(
        c, "SELECT min(local_id) FROM numbers WHERE configuration_id = ?1 "
           "AND " CONSENT__KEYS_IN " AND active = 1");
    int rc;

    *out = 0;
    if (!st)
        return ERR_FAIL;
    consent__keys_init(&keys, e164);
    cache_bind_text(st, 1, cfg);
    consent__bind_keys(st, &keys);
    rc = cache_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : ERR_FAIL;
}

/* A request queued or sent for the number within the window (note 8). */
static int requested_lately(int *out, cache *c, const char *cfg,
                            const char *e164, int64_t since)
{
    sqlite3_stmt *st = cache_stmt(
        c, "SELECT EXISTS (SELECT 1 FROM outbox WHERE configuration_id = ?1 "
           "AND e164 = ?2 AND message = 'double_opt_in_request' AND state "
           "IN ('pending', 'inflight', 'done') AND created_at > ?3)");
    int rc;

    *out = 0;
    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, cfg);
    cache_bind_text(st, 2, e164);
    cache_bind_int(st, 3, since);
    rc = cache_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : ERR_FAIL;
}

/* One pending message per number row: a newer one takes its place. */
static int upsert(cache *c, int64_t local_id, const char *cfg, const char *e164,
                  const struct consent_transition *t, const char *name,
                  int64_t at)
{
    int64_t now = clock_now_ms();
    sqlite3_stmt *st = cache_stmt(
        c, "UPDATE outbox SET message = ?2, reason = ?2, status = ?3, "
           "event_at = ?4, e164 = ?5, attempts = 0, next_attempt_at = 0, "
           "last_error = NULL, created_at = ?6, updated_at = ?6 WHERE "
           "number_local_id = ?1 AND kind = 'whatsapp' AND state = 'pending'");

    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, local_id);
    cache_bind_text(st, 2, name);
    cache_bind_int(st, 3, t->to);
    cache_bind_int(st, 4, at);
    cache_bind_text(st, 5, e164);
    cache_bind_int(st, 6, now);
    if (cache_step(st) != SQLITE_DONE)
        return ERR_FAIL;
    if (cache_changes(c))
        return 0;
    st = cache_stmt(c, "INSERT INTO outbox(number_local_id, configuration_id, "
                       "e164, status, event_at, reason, kind, message, "
                       "created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, "
                       "?6, 'whatsapp', ?6, ?7, ?7)");
    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, local_id);
    cache_bind_text(st, 2, cfg);
    cache_bind_text(st, 3, e164);
    cache_bind_int(st, 4, t->to);
    cache_bind_int(st, 5, at);
    cache_bind_text(st, 6, name);
    cache_bind_int(st, 7, now);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

int consent__queue_message(cache *c, const struct consent_options *opts,
                           const char *configuration_id, const char *e164,
                           const struct consent_transition *t, int64_t at)
{
    enum consent_message m = consent_message_for(opts, t);
    int64_t local_id = 0;
    int rc, lately = 0;

    if (m == CONSENT_MSG_NONE || !e164)
        return 0;
    rc = anchor_row(&local_id, c, configuration_id, e164);
    if (rc || local_id == 0)
        return rc;
    if (m == CONSENT_MSG_DOUBLE_OPT_IN_REQUEST) {
        rc = requested_lately(&lately, c, configuration_id, e164,
                              clock_now_ms() - opts->double_opt_in_window);
        if (rc == 0 && lately) {
            log_info("message_not_repeated phone=%s message=%s",
                     log_phone(e164), consent_message_name(m));
            return 0;
        }
    }
    return rc ? rc
              : upsert(c, local_id, configuration_id, e164, t,
                       consent_message_name(m), at);
}
