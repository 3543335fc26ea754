/*
 * whatsapp — applying a parsed delivery (see whatsapp.h for the design
 * notes): de-duplicate each item, find its Configuration and its
 * sender's key, turn what it means into a consent event, and apply it
 * (consent_apply_locked) or keep it (consent_quarantine_locked), all in
 * the caller's transaction.  Also the BSUID links, the last inbound time
 * per number, review entries, and pruning of the de-duplication keys.
 *
 * It never decides what a reply means (consent_action_for_reply does)
 * nor how a state changes (consent_apply_locked does), and never commits.
 */
#include "whatsapp.h"

#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "caps.h"
#include "clock.h"
#include "configurations.h"
#include "err.h"
#include "jsonutil.h"
#include "log.h"
#include "phone.h"
#include "wa_messages.h"
#include "wa_users.h"
#include "xalloc.h"

/* inbound_seen sources (design note 3). */
#define SEEN_MESSAGE "whatsapp"
#define SEEN_STATUS "whatsapp_status"
#define SEEN_PREFERENCE "whatsapp_preference"

#define DAY_MS (24 * 3600 * 1000LL)

struct apply {
    cache *c;
    const struct whatsapp_apply_options *opts;
    struct whatsapp_outcome *out;
};

/* Where an item goes: its Configuration and its sender's key. */
struct target {
    char cfg[MAPPING_GUID_LEN + 1];
    const char *cfg_ref;     /* phone_number_id, or the route's id / name */
    int by_phone_number_id;  /* cfg_ref is a phone_number_id */
    const char *cfg_missing; /* NULL: cfg known; else why (quarantine) */
    char e164[PHONE_E164_MAX];
    const char *sender_missing; /* NULL: e164 known; else why */
};

/* ---- de-duplication ------------------------------------------------------ */

static int seen_before(int *dup, cache *c, const char *source, const char *id)
{
    sqlite3_stmt *st =
        cache_stmt(c, "INSERT INTO inbound_seen(source, id, seen_at) "
                      "VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING");

    *dup = 0;
    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, source);
    cache_bind_text(st, 2, id);
    cache_bind_int(st, 3, clock_now_ms());
    if (cache_step(st) != SQLITE_DONE)
        return ERR_FAIL;
    *dup = cache_changes(c) == 0;
    return 0;
}

/* ---- where an item goes ---------------------------------------------------
 */

static int resolve_configuration(struct target *t, cache *c,
                                 const struct whatsapp_origin *o,
                                 const char *path_ref)
{
    int rc;

    t->by_phone_number_id = o->phone_number_id != NULL;
    t->cfg_ref = t->by_phone_number_id ? o->phone_number_id : path_ref;
    if (!t->cfg_ref) {
        t->cfg_missing = "no_configuration"; /* refused before: note 5 */
        return 0;
    }
    if (t->by_phone_number_id)
        rc = configurations_find_by_phone_number_id(t->cfg, c, t->cfg_ref);
    else
        rc = configurations_resolve(t->cfg, c, t->cfg_ref);
    if (rc == ERR_NOTFOUND)
        t->cfg_missing = "unknown_configuration";
    else if (rc == ERR_CONFLICT)
        t->cfg_missing = "ambiguous_configuration";
    else
        return rc;
    return 0;
}

/* The sender's key: its wa_id, else the number its BSUID was seen with. */
static int resolve_sender(struct target *t, cache *c, const char *wa_id,
                          const char *user_id, const char *waba_id)
{
    const char *why;
    int rc;

    if (wa_id && phone_from_whatsapp(t->e164, wa_id, &why) == 0)
        return 0;
    t->sender_missing = wa_id ? "invalid_sender" : "no_sender";
    if (!user_id)
        return 0;
    rc = wa_users_phone_find(t->e164, sizeof(t->e164), c, user_id, waba_id);
    if (rc == 0)
        t->sender_missing = NULL;
    else if (rc == ERR_NOTFOUND)
        t->sender_missing = "unknown_user";
    else
        return rc;
    return 0;
}

static int target_resolve(struct target *t, const struct apply *x,
                          const struct whatsapp_origin *o, const char *wa_id,
                          const char *user_id)
{
    int rc;

    memset(t, 0, sizeof(*t));
    rc = resolve_configuration(t, x->c, o, x->opts->configuration);
    if (rc == 0)
        rc = resolve_sender(t, x->c, wa_id, user_id, o->waba_id);
    return rc;
}

/* ---- evidence --------------------------------------------------------------
 */

/* `s` as valid UTF-8 (bad bytes become U+FFFD), cut at a character
 * boundary within CAP_FIELD_BYTES: ledger evidence must be valid text. */
static char *clean_text(const char *s)
{
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    utf8proc_int32_t cp;
    utf8proc_ssize_t n;
    struct strbuf sb;

    strbuf_init(&sb, CAP_FIELD_BYTES);
    while (*p) {
        n = utf8proc_iterate(p, -1, &cp);
        if (n < 0 ? strbuf_adds(&sb, "\xEF\xBF\xBD") != 0
                  : strbuf_add(&sb, p, (size_t)n) != 0)
            break;
        p += n < 0 ? 1 : n;
    }
    return strbuf_detach(&sb);
}

static void add_text(cJSON *o, const char *name, const char *value)
{
    char *clean;

    if (!value)
        return;
    clean = clean_text(value);
    cJSON_AddStringToObject(o, name, clean);
    free(clean);
}

/* Canonical JSON of `o` (consumed). */
static char *evidence_finish(cJSON *o)
{
    char *text = jsonutil_canonical(o);

    cJSON_Delete(o);
    return text;
}

static char *message_evidence(const struct whatsapp_message *m,
                              const struct target *t)
{
    cJSON *o = cJSON_CreateObject();

    add_text(o, "message_id", m->id);
    add_text(o, "type", m->type);
    add_text(o, "text", m->text);
    add_text(o, "payload", m->payload);
    add_text(o, "title", m->title);
    add_text(o, "context_id", m->context_id);
    if (m->forwarded)
        cJSON_AddBoolToObject(o, "forwarded", 1);
    add_text(o, "phone_number_id", m->origin.phone_number_id);
    add_text(o, "user_id", m->user_id);
    if (t->sender_missing)
        add_text(o, "from", m->from); /* for a person: it could not be keyed */
    return evidence_finish(o);
}

/* ---- applying or keeping an event -----------------------------------------
 */

static void log_transition(const struct consent_event *ev,
                           const struct consent_result *r)
{
    if (r->from == r->to)
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

static int keep(struct apply *x, const struct target *t,
                const struct consent_event *ev, const char *user_id)
{
    const char *reason = t->cfg_missing ? t->cfg_missing : t->sender_missing;

    x->out->quarantined++;
    return consent_quarantine_locked(x->c, ev, reason,
                                     t->cfg_missing ? t->cfg_ref : user_id);
}

/* Applies `ev` where `t` says, or quarantines it (design note 4). */
static int express(struct apply *x, const struct target *t,
                   struct consent_event *ev, const char *user_id)
{
    struct consent_result r;
    int rc;

    if (!t->cfg_missing)
        ev->configuration_id = t->cfg;
    else if (t->by_phone_number_id)
        ev->phone_number_id = t->cfg_ref;
    else
        ev->configuration_id = t->cfg_ref;
    ev->e164 = t->sender_missing ? NULL : t->e164;
    ev->user_id = t->sender_missing ? user_id : NULL;
    if (t->cfg_missing || t->sender_missing)
        return keep(x, t, ev, user_id);
    rc = consent_apply_locked(&r, x->c, x->opts->consent, ev);
    if (rc == ERR_NOTFOUND || rc == ERR_BADINPUT) {
        /* A topic opt-out or pause for a number with no record: there is
         * nothing to put it on (consent.h); said, counted, not kept. */
        log_notice("whatsapp_event_not_applied phone=%s source=%s why=%s",
                   log_phone(ev->e164), ev->source, log_q(err_message()));
        x->out->unchanged++;
        return 0;
    }
    if (rc)
        return rc;
    if (r.outcome == CONSENT_CHANGED) {
        x->out->transitions++;
        log_transition(ev, &r);
    } else {
        x->out->unchanged++;
    }
    return 0;
}

/* ---- messages -------------------------------------------------------------
 */

static int no_meaning(struct apply *x, const struct whatsapp_message *m,
                      const struct target *t, const struct consent_intent *in)
{
    const char *text = m->text ? m->text : m->title ? m->title : m->payload;

    x->out->ignored++;
    if (!in->near_miss)
        return 0;
    x->out->near_misses++;
    return consent_near_miss_record(x->c, t->cfg_missing ? NULL : t->cfg,
                                    t->sender_missing ? NULL : t->e164, text,
                                    m->id, m->at);
}

static int express_message(struct apply *x, const struct whatsapp_message *m,
                           const struct target *t,
                           const struct consent_intent *in)
{
    struct consent_event ev;
    char *evidence = message_evidence(m, t);
    int rc;

    memset(&ev, 0, sizeof(ev));
    ev.action = in->action;
    ev.event_at = m->at;
    ev.source = CONSENT_SOURCE_WHATSAPP;
    ev.evidence = evidence;
    ev.topic = in->topic;
    if (in->action == CONSENT_ACT_PAUSE)
        ev.paused_until = m->at + in->pause_days * DAY_MS;
    rc = express(x, t, &ev, m->user_id);
    free(evidence);
    return rc;
}

/* user_changed_number: consent stays with the old number (a person
 * decides whether the new one inherits it); listed for review. */
static int apply_system(struct apply *x, const struct whatsapp_message *m,
                        const struct target *t)
{
    char now_e164[PHONE_E164_MAX], *text;
    const char *why;
    int rc, readable;

    if (!m->system_type || strcmp(m->system_type, "user_changed_number") != 0) {
        log_info("whatsapp_system_message type=%s", log_q(m->system_type));
        x->out->ignored++;
        return 0;
    }
    readable = m->system_wa_id &&
               phone_from_whatsapp(now_e164, m->system_wa_id, &why) == 0;
    text = xasprintf("WhatsApp: this number changed to %s; consent was not "
                     "moved",
                     readable ? now_e164 : "an unreadable number");
    rc = consent_near_miss_record(x->c, t->cfg_missing ? NULL : t->cfg,
                                  t->sender_missing ? NULL : t->e164, text,
                                  m->id, m->at);
    free(text);
    log_notice("whatsapp_number_changed phone=%s new_phone=%s",
               log_phone(t->sender_missing ? NULL : t->e164),
               log_phone(readable ? now_e164 : NULL));
    x->out->reviews++;
    return rc;
}

static int apply_message(struct apply *x, const struct whatsapp_message *m)
{
    struct consent_reply reply;
    struct consent_intent in;
    struct target t;
    int rc, dup;

    x->out->messages++;
    rc = seen_before(&dup, x->c, SEEN_MESSAGE, m->id);
    if (rc || dup) {
        x->out->duplicates += dup;
        return rc;
    }
    rc = target_resolve(&t, x, &m->origin, m->from, m->user_id);
    if (rc)
        return rc;
    if (m->kind == WHATSAPP_MSG_SYSTEM)
        return apply_system(x, m, &t);
    /* Any message the number sent opens the customer-service window. */
    if (!t.cfg_missing && !t.sender_missing)
        rc = wa_users_inbound_put(x->c, t.cfg, t.e164, m->at, m->id);
    whatsapp_message_reply(&reply, m);
    consent_action_for_reply(&in, x->opts->keywords, &reply);
    if (rc == 0 && in.action == CONSENT_ACT_NONE)
        rc = no_meaning(x, m, &t, &in);
    else if (rc == 0)
        rc = express_message(x, m, &t, &in);
    return rc;
}

/* ---- statuses and preferences ---------------------------------------------
 */

/* The evidence of a platform signal (131050, a stop preference). */
static char *signal_evidence(const struct whatsapp_origin *o,
                             const char *user_id, const char *k1,
                             const char *v1, const char *k2, const char *v2)
{
    cJSON *e = cJSON_CreateObject();

    add_text(e, k1, v1);
    add_text(e, k2, v2);
    add_text(e, "phone_number_id", o->phone_number_id);
    add_text(e, "user_id", user_id);
    return evidence_finish(e);
}

/* A stop that reaches every Configuration of the WABA (docs/design.md). */
static int express_stop(struct apply *x, const struct target *t, int64_t at,
                        const char *source, char *evidence, const char *user_id)
{
    struct consent_event ev;
    int rc;

    memset(&ev, 0, sizeof(ev));
    ev.action = CONSENT_ACT_OPT_OUT;
    ev.waba_wide = 1;
    ev.event_at = at;
    ev.source = source;
    ev.evidence = evidence;
    rc = express(x, t, &ev, user_id);
    free(evidence);
    return rc;
}

static int apply_status(struct apply *x, const struct whatsapp_status *s)
{
    char *key = xasprintf("%s/%s", s->id, s->status);
    struct target t;
    int rc, dup, ours = 0;

    x->out->statuses++;
    rc = seen_before(&dup, x->c, SEEN_STATUS, key);
    free(key);
    if (rc || dup) {
        x->out->duplicates += dup;
        return rc;
    }
    /* One of our consent messages: its delivery state (wa_messages.h). */
    rc = wa_messages_status_put(&ours, x->c, s->id, s->status, s->at,
                                s->n_errors ? s->error_codes[0] : 0);
    if (rc)
        return rc;
    if (!s->stopped_marketing || s->group) {
        if (s->n_errors)
            log_debug(LOG_SUB_CONSENT,
                      "whatsapp_status status=%s errors=%d first_code=%lld",
                      log_q(s->status), s->n_errors,
                      (long long)s->error_codes[0]);
        x->out->ignored++;
        return 0;
    }
    rc = target_resolve(&t, x, &s->origin, s->recipient_id,
                        s->recipient_user_id);
    if (rc)
        return rc;
    return express_stop(x, &t, s->at, CONSENT_SOURCE_WHATSAPP_STATUS,
                        signal_evidence(&s->origin, s->recipient_user_id,
                                        "status_id", s->id, "error", "131050"),
                        s->recipient_user_id);
}

static int is(const char *s, const char *want)
{
    return s && strcmp(s, want) == 0;
}

static int apply_preference(struct apply *x,
                            const struct whatsapp_preference *u)
{
    const char *who = u->wa_id     ? u->wa_id + (*u->wa_id == '+')
                      : u->user_id ? u->user_id
                                   : "-";
    char *key = xasprintf("%s/%s/%s/%lld", who, u->category ? u->category : "-",
                          u->value ? u->value : "-", (long long)u->at);
    struct target t;
    int rc, dup;

    x->out->preferences++;
    rc = seen_before(&dup, x->c, SEEN_PREFERENCE, key);
    free(key);
    if (rc || dup) {
        x->out->duplicates += dup;
        return rc;
    }
    if (!is(u->category, "marketing_messages") || !is(u->value, "stop")) {
        /* resume lifts Meta's block but is no consent (docs/design.md) */
        log_info("whatsapp_preference_ignored category=%s value=%s",
                 log_q(u->category), log_q(u->value));
        x->out->ignored++;
        return 0;
    }
    rc = target_resolve(&t, x, &u->origin, u->wa_id, u->user_id);
    if (rc)
        return rc;
    return express_stop(x, &t, u->at, CONSENT_SOURCE_WHATSAPP_PREFERENCE,
                        signal_evidence(&u->origin, u->user_id, "category",
                                        u->category, "value", u->value),
                        u->user_id);
}

/* ---- BSUID links (design note 6) ------------------------------------------
 */

static int link_pair(struct apply *x, const struct whatsapp_origin *o,
                     const char *wa_id, const char *user_id)
{
    char e164[PHONE_E164_MAX];
    struct target t;
    const char *why;
    int rc, fresh = 0;

    if (!wa_id || !user_id || phone_from_whatsapp(e164, wa_id, &why) != 0)
        return 0;
    memset(&t, 0, sizeof(t));
    rc = resolve_configuration(&t, x->c, o, x->opts->configuration);
    if (rc == 0)
        rc = wa_users_link_put(&fresh, x->c, user_id, e164, o->waba_id,
                               t.cfg_missing ? NULL : t.cfg);
    x->out->new_links += fresh;
    return rc;
}

static int link_all(struct apply *x, const struct whatsapp_delivery *d)
{
    size_t i;
    int rc = 0;

    for (i = 0; rc == 0 && i < d->n_contacts; i++)
        rc = link_pair(x, &d->contacts[i].origin, d->contacts[i].wa_id,
                       d->contacts[i].user_id);
    for (i = 0; rc == 0 && i < d->n_messages; i++)
        rc = link_pair(x, &d->messages[i].origin, d->messages[i].from,
                       d->messages[i].user_id);
    for (i = 0; rc == 0 && i < d->n_statuses; i++)
        if (!d->statuses[i].group)
            rc = link_pair(x, &d->statuses[i].origin,
                           d->statuses[i].recipient_id,
                           d->statuses[i].recipient_user_id);
    for (i = 0; rc == 0 && i < d->n_preferences; i++)
        rc = link_pair(x, &d->preferences[i].origin, d->preferences[i].wa_id,
                       d->preferences[i].user_id);
    return rc;
}

/* ---- the delivery -----------------------------------------------------------
 */

static void log_errors(struct apply *x, const struct whatsapp_delivery *d)
{
    size_t i;

    for (i = 0; i < d->n_errors; i++) {
        log_warn("whatsapp_webhook_error code=%lld title=%s "
                 "phone_number_id=%s",
                 (long long)d->errors[i].code, log_q(d->errors[i].title),
                 log_q(d->errors[i].origin.phone_number_id));
        x->out->errors++;
    }
}

int whatsapp_apply_locked(struct whatsapp_outcome *out, cache *c,
                          const struct whatsapp_apply_options *opts,
                          const struct whatsapp_delivery *d)
{
    struct apply x = { c, opts, out };
    size_t i;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!opts->configuration && whatsapp_delivery_needs_configuration(d)) {
        err_set(ERR_CLASS_INPUT, "the delivery names no phone_number_id: "
                                 "post it to /webhooks/whatsapp/"
                                 "{configuration}");
        return ERR_BADINPUT;
    }
    rc = link_all(&x, d);
    for (i = 0; rc == 0 && i < d->n_messages; i++)
        rc = apply_message(&x, &d->messages[i]);
    for (i = 0; rc == 0 && i < d->n_statuses; i++)
        rc = apply_status(&x, &d->statuses[i]);
    for (i = 0; rc == 0 && i < d->n_preferences; i++)
        rc = apply_preference(&x, &d->preferences[i]);
    if (rc == 0)
        log_errors(&x, d);
    log_debug(LOG_SUB_CONSENT,
              "whatsapp_delivery rc=%d messages=%d statuses=%d "
              "preferences=%d duplicates=%d transitions=%d quarantined=%d",
              rc, out->messages, out->statuses, out->preferences,
              out->duplicates, out->transitions, out->quarantined);
    return rc;
}

int whatsapp_job_run(cache *c, void *payload)
{
    struct whatsapp_job *job = payload;

    return whatsapp_apply_locked(&job->outcome, c, job->opts, job->delivery);
}

/* ---- pruning the de-duplication keys --------------------------------------
 */

#define PRUNE_BATCH 5000

int whatsapp_dedupe_prune_locked(int *out_removed, cache *c, int64_t keep_ms,
                                 int max_rows)
{
    static const char *const sources[] = { SEEN_MESSAGE, SEEN_STATUS,
                                           SEEN_PREFERENCE };
    int64_t cutoff =
        clock_now_ms() -
        (keep_ms < WHATSAPP_DEDUPE_MIN_MS ? WHATSAPP_DEDUPE_MIN_MS : keep_ms);
    sqlite3_stmt *st;
    size_t i;

    *out_removed = 0;
    for (i = 0; i < 3 && *out_removed < max_rows; i++) {
        st = cache_stmt(c, "DELETE FROM inbound_seen WHERE source = ?1 AND "
                           "id IN (SELECT id FROM inbound_seen WHERE "
                           "source = ?1 AND seen_at < ?2 LIMIT ?3)");
        if (!st)
            return ERR_FAIL;
        cache_bind_text(st, 1, sources[i]);
        cache_bind_int(st, 2, cutoff);
        cache_bind_int(st, 3, max_rows - *out_removed);
        if (cache_step(st) != SQLITE_DONE)
            return ERR_FAIL;
        *out_removed += cache_changes(c);
    }
    return 0;
}

int whatsapp_dedupe_prune(int *out_removed, cache *c, int64_t keep_ms)
{
    int rc, n = PRUNE_BATCH;

    *out_removed = 0;
    while (n == PRUNE_BATCH) {
        rc = cache_begin(c);
        if (rc == 0)
            rc = whatsapp_dedupe_prune_locked(&n, c, keep_ms, PRUNE_BATCH);
        if (rc == 0)
            rc = cache_commit(c);
        if (rc) {
            cache_rollback(c);
            return rc;
        }
        *out_removed += n;
    }
    if (*out_removed)
        log_info("whatsapp_dedupe_pruned rows=%d", *out_removed);
    return 0;
}
