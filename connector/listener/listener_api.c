/*
 * listener_api — the built-in routes: the gate API of docs/design.md
 * (/v1/gate, /v1/sends, /v1/preferences, /v1/configurations/{id}/numbers;
 * API key required) and /healthz, /readyz, /metrics.
 *
 * Decisions come from this worker's gate (gate.h); sends and preferences
 * are written through the group-commit writer and answered 200 only after
 * their commit.  Decision-level problems (unknown_configuration,
 * invalid_phone) are 200 with a deny; malformed requests are 400.
 */
#include "listener_p.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caps.h"
#include "clock.h"
#include "configurations.h"
#include "err.h"
#include "gate_request.h"
#include "jsonutil.h"
#include "log.h"
#include "metrics.h"
#include "numbers_json.h"
#include "phone.h"
#include "xalloc.h"

/* ---- health ----------------------------------------------------------------
 */

static void on_healthz(struct route_req *r, void *arg)
{
    (void)arg;
    route_reply(r, 200, "text/plain; charset=utf-8", "ok\n", 3);
}

/* Ready = the gate would answer: a successful sync within max_staleness
 * (gate.h note 5, the same rule). */
static void on_readyz(struct route_req *r, void *arg)
{
    int64_t last = 0, now = clock_now_ms();
    int64_t max_ms = route_req_config(r)->sync.max_staleness * 1000;
    const char *why = NULL;
    cJSON *o;

    (void)arg;
    if (cache_last_sync_success(&last, route_req_cache(r)) != 0)
        why = "cache_unreadable";
    else if (last == 0)
        why = "never_synced";
    else if (!cache_sync_is_fresh(last, now, max_ms))
        why = "stale";
    o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ready", why == NULL);
    if (why)
        cJSON_AddStringToObject(o, "reason", why);
    if (last)
        cJSON_AddNumberToObject(o, "sync_age_seconds",
                                (double)(now - last) / 1000);
    route_reply_json(r, why ? 503 : 200, o);
    cJSON_Delete(o);
}

static void on_metrics(struct route_req *r, void *arg)
{
    struct strbuf sb;

    (void)arg;
    strbuf_init(&sb, 4 * 1024 * 1024);
    if (metrics_render(&sb, route_req_cache(r),
                       route_req_consent_options(r)->send_messages) != 0)
        log_warn("metrics_incomplete error=%s", log_q(err_message()));
    route_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", sb.data,
                sb.len);
    strbuf_dispose(&sb);
}

/* ---- gate decisions ----------------------------------------------------- */

/* One decision in the gate shape.  The strings are referenced, not
 * copied (a bulk answer holds thousands): `phone` and res->e164 must
 * outlive the tree; the names are static. */
static cJSON *decision_json(const char *phone, const struct gate_result *res)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddItemToObjectCS(o, "phone", cJSON_CreateStringReference(phone));
    cJSON_AddItemToObjectCS(o, "e164",
                            res->e164[0]
                                ? cJSON_CreateStringReference(res->e164)
                                : cJSON_CreateNull());
    cJSON_AddItemToObjectCS(
        o, "decision",
        cJSON_CreateStringReference(gate_decision_name(res->decision)));
    cJSON_AddItemToObjectCS(
        o, "reason",
        cJSON_CreateStringReference(gate_reason_name(res->reason)));
    cJSON_AddItemToObjectCS(
        o, "status",
        cJSON_CreateStringReference(consent_status_name(res->status)));
    return o;
}

static void gate_failed(struct route_req *r)
{
    log_error("gate_failed error=%s", log_q(err_message()));
    route_reply_error(r, 503, "gate_unavailable",
                      "the cache could not be read: treat as deny");
}

/* GET /v1/gate?configuration=&phone=[&topic=]: one decision, one object
 * of the gate shape. */
static void on_gate_get(struct route_req *r, void *arg)
{
    const char *conf = route_req_query(r, "configuration");
    const char *phone = route_req_query(r, "phone");
    struct gate_result res;
    cJSON *o;

    (void)arg;
    if (!conf || !phone) {
        route_reply_error(r, 400, "bad_request",
                          "configuration and phone are required");
        return;
    }
    if (gate_decide(&res, route_req_gate(r), conf, phone,
                    route_req_query(r, "topic")) != 0) {
        metrics_gate_decisions_add(GATE_CACHE_STALE, 1);
        gate_failed(r);
        return;
    }
    metrics_gate_decisions_add(res.reason, 1);
    o = decision_json(phone, &res);
    route_reply_json(r, 200, o);
    cJSON_Delete(o);
}

static void reply_parse_error(struct route_req *r, int rc)
{
    if (rc == ERR_TOOBIG)
        route_reply_error(r, 413, "too_many_phones", err_message());
    else
        route_reply_error(r, 400, "bad_request", err_message());
}

/* POST /v1/gate: decisions for every phone, an array in input order. */
static void on_gate_post(struct route_req *r, void *arg)
{
    uint64_t by_reason[GATE_REASON_COUNT] = { 0 };
    struct gate_request_bulk req;
    struct gate_result *res;
    const char *body;
    size_t len, i;
    cJSON *arr;
    int rc;

    (void)arg;
    body = route_req_body(r, &len);
    rc = gate_request_bulk_parse(
        &req, body, len, (size_t)route_req_config(r)->listener.max_bulk);
    if (rc) {
        reply_parse_error(r, rc);
        return;
    }
    res = xcalloc(req.n ? req.n : 1, sizeof(*res));
    rc = gate_decide_bulk(res, route_req_gate(r), req.configuration, req.phones,
                          req.n, req.topic);
    for (i = 0; i < req.n; i++)
        by_reason[res[i].reason]++;
    for (i = 0; i < GATE_REASON_COUNT; i++)
        metrics_gate_decisions_add((enum gate_reason)i, by_reason[i]);
    if (rc) {
        gate_failed(r);
    } else {
        arr = cJSON_CreateArray();
        for (i = 0; i < req.n; i++)
            cJSON_AddItemToArray(arr, decision_json(req.phones[i], &res[i]));
        route_reply_json(r, 200, arr);
        cJSON_Delete(arr);
    }
    free(res);
    gate_request_bulk_dispose(&req);
}

/* ---- resolving for writes ----------------------------------------------- */

/* The configuration id and the phone's key, as the gate would read them;
 * 0, or the request was answered (404 / 400 / 503). */
static int resolve(struct route_req *r, char *conf_id, char *e164,
                   const char *conf, const char *phone)
{
    struct configuration_info info;
    const char *region = route_req_config(r)->consent.default_region;
    const char *why = NULL;
    char msg[160];
    int rc = configurations_resolve(conf_id, route_req_cache(r), conf);

    if (rc == ERR_NOTFOUND || rc == ERR_CONFLICT) {
        route_reply_error(r, 404, "unknown_configuration", err_message());
        return -1;
    }
    if (rc == 0)
        rc = configurations_get(&info, route_req_cache(r), conf_id);
    if (rc) {
        route_reply_error(r, 503, "cache_unavailable", NULL);
        return -1;
    }
    if (info.default_region && *info.default_region)
        region = info.default_region;
    rc = phone_parse(e164, phone, region, &why);
    configuration_info_dispose(&info);
    if (rc) {
        snprintf(msg, sizeof(msg), "not a usable phone number: %s",
                 why ? why : "cannot be parsed");
        route_reply_error(r, 400, "invalid_phone", msg);
        return -1;
    }
    return 0;
}

/* ---- POST /v1/sends -------------------------------------------------------
 */

struct send_item {
    char conf_id[MAPPING_GUID_LEN + 1];
    char e164[PHONE_E164_MAX];
    char *topic; /* owned */
    int64_t at, period_ms;
};

static int send_apply(cache *c, void *payload)
{
    struct send_item *s = payload;

    return gate_send_record_locked(c, s->conf_id, s->e164, s->topic, s->at,
                                   s->period_ms);
}

static void send_done(struct route_req *r, int rc, int committed, void *payload)
{
    struct send_item *s = payload;
    char at[32];
    cJSON *o;

    if (!committed || rc) {
        route_reply_error(r, 503, "not_committed", "try again");
    } else {
        o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "recorded", 1);
        cJSON_AddStringToObject(o, "configuration_id", s->conf_id);
        cJSON_AddStringToObject(o, "e164", s->e164);
        mapping_time_format(at, s->at);
        cJSON_AddStringToObject(o, "at", at);
        route_reply_json(r, 200, o);
        cJSON_Delete(o);
    }
    free(s->topic);
    free(s);
}

static void on_sends(struct route_req *r, void *arg)
{
    struct gate_request_send req;
    struct send_item *s;
    const char *body;
    size_t len;
    int rc;

    (void)arg;
    body = route_req_body(r, &len);
    rc = gate_request_send_parse(&req, body, len);
    if (rc) {
        reply_parse_error(r, rc);
        return;
    }
    s = xcalloc(1, sizeof(*s));
    if (resolve(r, s->conf_id, s->e164, req.configuration, req.phone) != 0) {
        free(s);
        gate_request_send_dispose(&req);
        return;
    }
    s->topic = req.topic ? xstrdup(req.topic) : NULL;
    s->at = req.at ? req.at : clock_now_ms();
    s->period_ms = route_req_config(r)->gate.frequency_period * 1000;
    gate_request_send_dispose(&req);
    route_req_write(r, send_apply, s, send_done);
}

/* ---- POST /v1/preferences ------------------------------------------------ */

struct pref_item {
    const struct consent_options *opts; /* borrowed (the listener's) */
    char conf_id[MAPPING_GUID_LEN + 1];
    char e164[PHONE_E164_MAX];
    char *topic;    /* owned; NULL: no topic opt-out */
    char *evidence; /* owned: canonical JSON */
    int64_t paused_until, at;
    struct consent_result topic_res, pause_res; /* written by the writer */
};

static int pref_apply_one(cache *c, struct pref_item *p,
                          enum consent_action action,
                          struct consent_result *out)
{
    struct consent_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.configuration_id = p->conf_id;
    ev.e164 = p->e164;
    ev.action = action;
    ev.event_at = p->at;
    ev.source = CONSENT_SOURCE_MANUAL;
    ev.evidence = p->evidence;
    ev.topic = p->topic;
    ev.paused_until = p->paused_until;
    return consent_apply_locked(out, c, p->opts, &ev);
}

/* Both preferences of one request commit together or not at all. */
static int pref_apply(cache *c, void *payload)
{
    struct pref_item *p = payload;
    int rc = 0;

    if (p->topic)
        rc = pref_apply_one(c, p, CONSENT_ACT_TOPIC_OPT_OUT, &p->topic_res);
    if (rc == 0 && p->paused_until)
        rc = pref_apply_one(c, p, CONSENT_ACT_PAUSE, &p->pause_res);
    return rc;
}

static void pref_free(struct pref_item *p)
{
    free(p->topic);
    free(p->evidence);
    free(p);
}

static void pref_done(struct route_req *r, int rc, int committed, void *payload)
{
    struct pref_item *p = payload;
    char until[32];
    cJSON *o;

    if (committed && rc == ERR_NOTFOUND) {
        route_reply_error(r, 404, "no_record",
                          "the number has no record in this configuration: "
                          "a preference needs one");
    } else if (committed && rc == ERR_BADINPUT) {
        route_reply_error(r, 400, "bad_request", "the change cannot apply");
    } else if (!committed || rc) {
        route_reply_error(r, 503, "not_committed", "try again");
    } else {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "configuration_id", p->conf_id);
        cJSON_AddStringToObject(o, "e164", p->e164);
        if (p->topic)
            cJSON_AddStringToObject(o, "opted_out_topic", p->topic);
        if (p->paused_until) {
            mapping_time_format(until, p->paused_until);
            cJSON_AddStringToObject(o, "paused_until", until);
        }
        cJSON_AddStringToObject(
            o, "status",
            consent_status_name(p->topic ? p->topic_res.to : p->pause_res.to));
        route_reply_json(r, 200, o);
        cJSON_Delete(o);
    }
    pref_free(p);
}

static char *pref_evidence(const struct gate_request_preference *req)
{
    cJSON *o = cJSON_CreateObject();
    char *text;

    cJSON_AddStringToObject(o, "taken_by",
                            req->taken_by ? req->taken_by : "api");
    cJSON_AddStringToObject(o, "via", "http");
    if (req->note)
        cJSON_AddStringToObject(o, "note", req->note);
    if (req->topic)
        cJSON_AddStringToObject(o, "topic", req->topic);
    if (req->until)
        cJSON_AddStringToObject(o, "until", req->until);
    text = jsonutil_canonical(o);
    cJSON_Delete(o);
    return text;
}

static void on_preferences(struct route_req *r, void *arg)
{
    struct gate_request_preference req;
    struct pref_item *p;
    const char *body;
    size_t len;
    int rc;

    (void)arg;
    body = route_req_body(r, &len);
    rc = gate_request_preference_parse(&req, body, len, clock_now_ms());
    if (rc) {
        reply_parse_error(r, rc);
        return;
    }
    p = xcalloc(1, sizeof(*p));
    if (resolve(r, p->conf_id, p->e164, req.configuration, req.phone) != 0) {
        pref_free(p);
        gate_request_preference_dispose(&req);
        return;
    }
    p->opts = route_req_consent_options(r);
    p->topic = req.topic ? xstrdup(req.topic) : NULL;
    p->paused_until = req.paused_until;
    p->at = clock_now_ms();
    p->evidence = pref_evidence(&req);
    gate_request_preference_dispose(&req);
    route_req_write(r, pref_apply, p, pref_done);
}

/* ---- GET /v1/configurations/{id}/numbers -------------------------------- */

static int page_args(struct route_req *r, struct numbers_cursor *cur,
                     int *limit)
{
    const char *cursor = route_req_query(r, "cursor");
    const char *lim = route_req_query(r, "limit");
    char *end, msg[64];
    long v;

    memset(cur, 0, sizeof(*cur));
    *limit = 100;
    if (cursor && *cursor && numbers_cursor_parse(cur, cursor) != 0) {
        route_reply_error(r, 400, "bad_request", "malformed cursor");
        return -1;
    }
    if (lim) {
        v = strtol(lim, &end, 10);
        if (!*lim || *end || v < 1 || v > CAP_NUMBERS_PAGE) {
            snprintf(msg, sizeof(msg), "limit must be 1 to %d",
                     CAP_NUMBERS_PAGE);
            route_reply_error(r, 400, "bad_request", msg);
            return -1;
        }
        *limit = (int)v;
    }
    return 0;
}

static void on_numbers(struct route_req *r, void *arg)
{
    char id[MAPPING_GUID_LEN + 1], next[NUMBERS_CURSOR_MAX];
    struct numbers_cursor cur;
    cJSON *rows = NULL, *o;
    int limit, more, rc;

    (void)arg;
    if (page_args(r, &cur, &limit) != 0)
        return;
    rc = configurations_resolve(id, route_req_cache(r),
                                route_req_param(r, "id"));
    if (rc == ERR_NOTFOUND || rc == ERR_CONFLICT) {
        route_reply_error(r, 404, "unknown_configuration", err_message());
        return;
    }
    if (rc == 0)
        rc = numbers_page(&rows, &cur, &more, route_req_cache(r), id, limit);
    if (rc) {
        route_reply_error(r, 503, "cache_unavailable", NULL);
        return;
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "configuration_id", id);
    cJSON_AddItemToObject(o, "numbers", rows);
    numbers_cursor_format(next, &cur);
    if (more)
        cJSON_AddStringToObject(o, "next_cursor", next);
    else
        cJSON_AddNullToObject(o, "next_cursor");
    route_reply_json(r, 200, o);
    cJSON_Delete(o);
}

/* ---- registration ---------------------------------------------------------
 */

int listener__api_register(struct listener *l)
{
    static const struct {
        unsigned methods;
        const char *pattern;
        route_fn fn;
        unsigned flags;
    } routes[] = {
        { ROUTE_GET, "/healthz", on_healthz, 0 },
        { ROUTE_GET, "/readyz", on_readyz, 0 },
        { ROUTE_GET, "/metrics", on_metrics, 0 },
        { ROUTE_GET, "/v1/gate", on_gate_get, ROUTE_API_KEY },
        { ROUTE_POST, "/v1/gate", on_gate_post, ROUTE_API_KEY },
        { ROUTE_POST, "/v1/sends", on_sends, ROUTE_API_KEY },
        { ROUTE_POST, "/v1/preferences", on_preferences, ROUTE_API_KEY },
        { ROUTE_GET, "/v1/configurations/{id}/numbers", on_numbers,
          ROUTE_API_KEY },
    };
    size_t i;
    int rc = 0;

    for (i = 0; rc == 0 && i < sizeof(routes) / sizeof(routes[0]); i++)
        rc = route_table_add(&l->routes, routes[i].methods, routes[i].pattern,
                             routes[i].fn, NULL, routes[i].flags);
    return rc;
}
