/*
 * consent_quarantine — events that cannot be applied yet (an unknown
 * phone_number_id or configuration, a sender we cannot key) are kept, as
 * JSON, and replayed after every sync; near-miss messages are kept for a
 * person to review.  Nothing accepted is ever dropped.
 */
#include "consent_p.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "err.h"
#include "jsonutil.h"
#include "log.h"
#include "xalloc.h"

static const char *const action_names[] = {
    "none", "opt_in", "confirm", "opt_out", "mirror", "topic_opt_out", "pause",
};

static int action_parse(enum consent_action *out, const char *name)
{
    size_t i;

    for (i = 0; name && i < sizeof(action_names) / sizeof(*action_names); i++) {
        if (strcmp(name, action_names[i]) == 0) {
            *out = (enum consent_action)i;
            return 0;
        }
    }
    return ERR_BADINPUT;
}

static void add_str(cJSON *o, const char *name, const char *value)
{
    if (value)
        cJSON_AddStringToObject(o, name, value);
}

static char *event_to_json(const struct consent_event *ev)
{
    cJSON *o = cJSON_CreateObject(), *evidence;
    char *text;

    cJSON_AddNumberToObject(o, "v", 1);
    add_str(o, "configuration_id", ev->configuration_id);
    add_str(o, "phone_number_id", ev->phone_number_id);
    cJSON_AddBoolToObject(o, "waba_wide", ev->waba_wide);
    add_str(o, "e164", ev->e164);
    add_str(o, "user_id", ev->user_id);
    cJSON_AddStringToObject(o, "action", action_names[ev->action]);
    cJSON_AddNumberToObject(o, "event_at", (double)ev->event_at);
    add_str(o, "source", ev->source);
    evidence = ev->evidence ? cJSON_Parse(ev->evidence) : NULL;
    cJSON_AddItemToObject(o, "evidence",
                          evidence ? evidence : cJSON_CreateObject());
    add_str(o, "inbound_source", ev->inbound_source);
    add_str(o, "inbound_id", ev->inbound_id);
    add_str(o, "topic", ev->topic);
    if (ev->paused_until)
        cJSON_AddNumberToObject(o, "paused_until", (double)ev->paused_until);
    text = jsonutil_canonical(o);
    cJSON_Delete(o);
    return text;
}

int consent_quarantine_locked(cache *c, const struct consent_event *ev,
                              const char *reason, const char *hint)
{
    sqlite3_stmt *st;
    char *payload;
    int rc;

    if (ev->action == CONSENT_ACT_MIRROR || ev->action == CONSENT_ACT_NONE) {
        err_set(ERR_CLASS_INPUT, "only expressions can be quarantined");
        return ERR_BADINPUT;
    }
    st = cache_stmt(c, "INSERT INTO quarantine(received_at, source, reason, "
                       "hint, payload) VALUES (?1, ?2, ?3, ?4, ?5)");
    if (!st)
        return ERR_FAIL;
    payload = event_to_json(ev);
    cache_bind_int(st, 1, clock_now_ms());
    cache_bind_text(st, 2, ev->source);
    cache_bind_text(st, 3, reason);
    cache_bind_text(st, 4, hint);
    cache_bind_text(st, 5, payload);
    rc = cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
    free(payload);
    if (rc == 0)
        log_notice("event_quarantined reason=%s hint=%s", log_q(reason),
                   log_q(hint));
    return rc;
}

int consent_quarantine(cache *c, const struct consent_event *ev,
                       const char *reason, const char *hint)
{
    int rc;

    if (ev->action == CONSENT_ACT_MIRROR || ev->action == CONSENT_ACT_NONE) {
        err_set(ERR_CLASS_INPUT, "only expressions can be quarantined");
        return ERR_BADINPUT;
    }
    rc = cache_begin(c);
    if (rc)
        return rc;
    rc = consent_quarantine_locked(c, ev, reason, hint);
    if (rc == 0)
        rc = cache_commit(c);
    else
        cache_rollback(c);
    return rc;
}

/* The stored JSON back into an event; strings point into `root`. */
static int event_from_json(struct consent_event *ev, cJSON *root,
                           char **evidence)
{
    cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "evidence");

    memset(ev, 0, sizeof(*ev));
    ev->configuration_id = jsonutil_str(root, "configuration_id");
    ev->phone_number_id = jsonutil_str(root, "phone_number_id");
    ev->waba_wide =
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "waba_wide"));
    ev->e164 = jsonutil_str(root, "e164");
    ev->user_id = jsonutil_str(root, "user_id");
    ev->event_at = jsonutil_int(root, "event_at", 0);
    ev->source = jsonutil_str(root, "source");
    ev->inbound_source = jsonutil_str(root, "inbound_source");
    ev->inbound_id = jsonutil_str(root, "inbound_id");
    ev->topic = jsonutil_str(root, "topic");
    ev->paused_until = jsonutil_int(root, "paused_until", 0);
    *evidence = e ? jsonutil_canonical(e) : NULL;
    ev->evidence = *evidence;
    return action_parse(&ev->action, jsonutil_str(root, "action"));
}

struct pending {
    int64_t id;
    char *payload;
};

static int load_open(struct pending **out, size_t *n, cache *c)
{
    sqlite3_stmt *st = cache_stmt(c, "SELECT id, payload FROM quarantine "
                                     "WHERE resolved_at IS NULL ORDER BY id");
    struct pending *p = NULL;
    int rc;

    *n = 0;
    if (!st)
        return ERR_FAIL;
    while ((rc = cache_step(st)) == SQLITE_ROW) {
        p = xrealloc(p, (*n + 1) * sizeof(*p));
        p[*n].id = sqlite3_column_int64(st, 0);
        p[*n].payload = xstrdup(cache_col_text(st, 1));
        (*n)++;
    }
    *out = p;
    return rc == SQLITE_DONE ? 0 : ERR_FAIL;
}

static int mark(cache *c, int64_t id, int resolved)
{
    sqlite3_stmt *st = cache_stmt(
        c, "UPDATE quarantine SET attempts = attempts + 1, "
           "last_attempt_at = ?2, resolved_at = CASE WHEN ?3 THEN ?2 "
           "ELSE NULL END WHERE id = ?1");

    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, id);
    cache_bind_int(st, 2, clock_now_ms());
    cache_bind_int(st, 3, resolved);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

/* One stored event: applied and resolved in one transaction, or counted
 * as still waiting. */
static int replay_one(cache *c, const struct consent_options *opts,
                      const struct pending *p, int *applied)
{
    struct consent_result r;
    struct consent_event ev;
    char *evidence = NULL;
    cJSON *root = cJSON_Parse(p->payload);
    int rc;

    *applied = 0;
    if (!root || event_from_json(&ev, root, &evidence) != 0) {
        cJSON_Delete(root);
        log_error("quarantine_unreadable id=%lld", (long long)p->id);
        return 0; /* kept: a person can look at it */
    }
    rc = cache_begin(c);
    if (rc == 0)
        rc = consent_apply_locked(&r, c, opts, &ev);
    if (rc == ERR_BADINPUT) {
        /* Cannot apply as it stands (no key, an ambiguous name): undo
         * whatever the attempt began, count it, keep it for a person. */
        log_warn("quarantine_not_applicable id=%lld why=%s", (long long)p->id,
                 log_q(err_message()));
        cache_rollback(c);
        rc = cache_begin(c);
        rc = rc ? rc : ERR_NOTFOUND;
    }
    if (rc == 0 || rc == ERR_NOTFOUND)
        rc = mark(c, p->id, rc == 0) == 0 ? rc : ERR_FAIL;
    if (rc == 0 || rc == ERR_NOTFOUND) {
        *applied = rc == 0;
        rc = cache_commit(c);
    } else {
        cache_rollback(c);
    }
    free(evidence);
    cJSON_Delete(root);
    return rc;
}

int consent_quarantine_replay(cache *c, const struct consent_options *opts,
                              int *applied, int *waiting)
{
    struct pending *p = NULL;
    size_t n = 0, i;
    int rc = load_open(&p, &n, c), ok;

    *applied = *waiting = 0;
    for (i = 0; rc == 0 && i < n; i++) {
        rc = replay_one(c, opts, &p[i], &ok);
        if (ok)
            (*applied)++;
        else
            (*waiting)++;
    }
    for (i = 0; i < n; i++)
        free(p[i].payload);
    free(p);
    if (*applied || *waiting)
        log_info("quarantine_replayed applied=%d waiting=%d", *applied,
                 *waiting);
    return rc;
}

int consent_near_miss_record(cache *c, const char *configuration_id,
                             const char *phone, const char *text,
                             const char *message_id, int64_t at)
{
    sqlite3_stmt *st = cache_stmt(
        c, "INSERT INTO near_misses(at, configuration_id, phone, text, "
           "message_id) VALUES (?1, ?2, ?3, substr(?4, 1, 1000), ?5)");

    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, at);
    cache_bind_text(st, 2, configuration_id);
    cache_bind_text(st, 3, phone);
    cache_bind_text(st, 4, text);
    cache_bind_text(st, 5, message_id);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}
