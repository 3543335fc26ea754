/*
 * listener_webhooks — the webhook routes: GET /webhooks/whatsapp (Meta's
 * handshake), POST /webhooks/whatsapp[/{configuration}] (replies,
 * statuses, "stop marketing"), POST /webhooks/dataverse (change
 * notifications of a service endpoint).
 *
 * Pipeline position: route glue between the listener (evhttp, the
 * writer) and the webhook modules (connector/webhooks/).  In order, for
 * every POST: the secret is checked over the raw bytes before anything
 * is parsed (401, nothing parsed, nothing written); the body is parsed on
 * the worker (400 / 413, nothing applied); the apply step runs as one
 * writer item inside the writer's group transaction; the answer is 200
 * only once that transaction committed, 503 when it could not.  It
 * never parses HTTP, never commits itself, never logs a body, a header
 * value or a secret: one line per delivery with counts.
 */
#include "listener_p.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dv_webhook.h"
#include "err.h"
#include "keywords.h"
#include "log.h"
#include "metrics.h"
#include "whatsapp.h"
#include "xalloc.h"

/* What the routes share; read-only once registered. */
struct listener__webhooks {
    struct listener *l;        /* borrowed: the owner */
    keywords *kw;              /* owned: [consent] keywords and payloads */
    struct whatsapp_auth auth; /* borrows the config's secrets */
    dv_webhook *dv;            /* owned; NULL without a mapping */
};

/* ---- WhatsApp: the handshake ------------------------------------------- */

static void on_whatsapp_verify(struct route_req *r, void *arg)
{
    struct listener__webhooks *wh = arg;
    const char *challenge = route_req_query(r, "hub.challenge");

    if (whatsapp_handshake_check(&wh->auth, route_req_query(r, "hub.mode"),
                                 route_req_query(r, "hub.verify_token"),
                                 challenge) != 0) {
        log_notice("whatsapp_verify_refused status=403 why=%s",
                   log_q(err_message()));
        route_reply_error(r, 403, "forbidden", NULL);
        return;
    }
    log_info("whatsapp_verified");
    route_reply(r, 200, "text/plain; charset=utf-8", challenge,
                strlen(challenge));
}

/* ---- WhatsApp: deliveries ------------------------------------------------ */

/* One POST on its way through the writer. */
struct wa_post {
    struct whatsapp_job job; /* first: the writer item's payload */
    struct whatsapp_apply_options opts;
    struct whatsapp_delivery d;    /* owned */
    struct listener__webhooks *wh; /* borrowed */
};

static void wa_post_free(struct wa_post *p)
{
    whatsapp_delivery_dispose(&p->d);
    free(p);
}

/* The one label a delivery counts under (metrics.h), strongest first. */
static enum metrics_webhook_result wa_result(const struct whatsapp_outcome *o)
{
    int items = o->messages + o->statuses + o->preferences;

    if (o->transitions)
        return METRICS_RESULT_APPLIED;
    if (o->quarantined)
        return METRICS_RESULT_QUARANTINED;
    if (items && o->duplicates == items)
        return METRICS_RESULT_DUPLICATE;
    if (o->unchanged)
        return METRICS_RESULT_UNCHANGED;
    return METRICS_RESULT_IGNORED;
}

static void wa_refuse(struct route_req *r, int status, const char *code,
                      enum metrics_webhook_result result)
{
    metrics_webhook_delivery(METRICS_WEBHOOK_WHATSAPP, result);
    log_notice("whatsapp_delivery_refused status=%d why=%s", status,
               log_q(err_message()));
    route_reply_error(r, status, code, err_message());
}

/* The 200's body: the counts as JSON.  Printed directly: cJSON prints
 * every number through "%1.15g" and reads it back, which cost more than
 * the rest of the worker's part of a delivery. */
static int wa_outcome_text(char *out, size_t cap,
                           const struct whatsapp_outcome *o)
{
    return snprintf(out, cap,
                    "{\"messages\":%d,\"statuses\":%d,\"preferences\":%d,"
                    "\"transitions\":%d,\"unchanged\":%d,\"duplicates\":%d,"
                    "\"quarantined\":%d,\"ignored\":%d,\"near_misses\":%d,"
                    "\"reviews\":%d}",
                    o->messages, o->statuses, o->preferences, o->transitions,
                    o->unchanged, o->duplicates, o->quarantined, o->ignored,
                    o->near_misses, o->reviews);
}

/* Committed: count it, log it, answer 200. */
static void wa_applied(struct route_req *r, const struct wa_post *p)
{
    const struct whatsapp_outcome *o = &p->job.outcome;
    enum metrics_webhook_result result = wa_result(o);
    char body[320];
    int len;

    metrics_webhook_delivery(METRICS_WEBHOOK_WHATSAPP, result);
    metrics_duplicates_add((uint64_t)o->duplicates);
    metrics_quarantined_add((uint64_t)o->quarantined);
    metrics_near_misses_add((uint64_t)o->near_misses);
    log_info("whatsapp_delivery result=%s configuration=%s messages=%d "
             "statuses=%d preferences=%d transitions=%d unchanged=%d "
             "duplicates=%d quarantined=%d ignored=%d near_misses=%d "
             "reviews=%d errors=%d new_links=%d",
             metrics_webhook_result_name(result),
             log_q(p->opts.configuration ? p->opts.configuration : "-"),
             o->messages, o->statuses, o->preferences, o->transitions,
             o->unchanged, o->duplicates, o->quarantined, o->ignored,
             o->near_misses, o->reviews, o->errors, o->new_links);
    /* Username-only events may wait for exactly this pair: replay them
     * now, outside the writer's transaction (listener.h note 5). */
    if (o->new_links > 0)
        listener__housekeeping_replay(p->wh->l);
    len = wa_outcome_text(body, sizeof(body), o);
    route_reply(r, 200, "application/json", body, (size_t)len);
}

static void on_whatsapp_done(struct route_req *r, int rc, int committed,
                             void *payload)
{
    struct wa_post *p = payload; /* &p->job: its first member */

    if (committed && rc == ERR_BADINPUT) {
        /* Rolled back to the item's savepoint: nothing applied. */
        metrics_webhook_delivery(METRICS_WEBHOOK_WHATSAPP,
                                 METRICS_RESULT_MALFORMED);
        log_notice("whatsapp_delivery_refused status=400 why=%s",
                   log_q("the delivery cannot apply"));
        route_reply_error(r, 400, "bad_request",
                          "the delivery cannot apply as it stands");
    } else if (!committed || rc) {
        metrics_webhook_delivery(METRICS_WEBHOOK_WHATSAPP,
                                 METRICS_RESULT_FAILED);
        log_warn("whatsapp_delivery_failed status=503 committed=%d rc=%d",
                 committed, rc);
        route_reply_error(r, 503, "not_committed", "try again");
    } else {
        wa_applied(r, p);
    }
    wa_post_free(p);
}

static void on_whatsapp_post(struct route_req *r, void *arg)
{
    struct listener__webhooks *wh = arg;
    const char *conf = route_req_param(r, "configuration");
    const char *sig = route_req_header(r, whatsapp_auth_header_name(&wh->auth));
    size_t len;
    const char *body = route_req_body(r, &len);
    struct wa_post *p;
    int rc;

    if (!body)
        body = "";
    if (whatsapp_auth_check(&wh->auth, sig, body, len) != 0) {
        wa_refuse(r, 401, "unauthorized", METRICS_RESULT_UNAUTHORIZED);
        return;
    }
    p = xcalloc(1, sizeof(*p));
    rc = whatsapp_delivery_parse(&p->d, body, len);
    if (rc == 0 && !conf && whatsapp_delivery_needs_configuration(&p->d)) {
        err_set(ERR_CLASS_INPUT, "the delivery names no phone_number_id: "
                                 "post it to /webhooks/whatsapp/"
                                 "{configuration}");
        rc = ERR_BADINPUT;
    }
    if (rc) {
        wa_refuse(r, rc == ERR_TOOBIG ? 413 : 400,
                  rc == ERR_TOOBIG ? "too_many_items" : "bad_request",
                  METRICS_RESULT_MALFORMED);
        wa_post_free(p);
        return;
    }
    p->wh = wh;
    p->opts.consent = route_req_consent_options(r);
    p->opts.keywords = wh->kw;
    p->opts.configuration = conf; /* the request's: lives until the reply */
    p->job.opts = &p->opts;
    p->job.delivery = &p->d;
    route_req_write(r, whatsapp_job_run, &p->job, on_whatsapp_done);
}

/* ---- Dataverse ------------------------------------------------------------
 */

struct dv_post {
    struct dv_webhook_item item;   /* first: the writer item's payload */
    struct dv_webhook_event *ev;   /* owned */
    struct listener__webhooks *wh; /* borrowed */
};

static void dv_post_free(struct dv_post *p)
{
    dv_webhook_event_free(p->ev);
    free(p);
}

static const char *dv_header(const char *name, void *payload)
{
    return route_req_header(payload, name);
}

static const char *dv_query(const char *name, void *payload)
{
    return route_req_query(payload, name);
}

static enum metrics_webhook_result dv_result(enum dv_webhook_outcome o)
{
    switch (o) {
    case DV_WEBHOOK_APPLIED:
    case DV_WEBHOOK_REMOVED: return METRICS_RESULT_APPLIED;
    case DV_WEBHOOK_QUEUED: return METRICS_RESULT_QUEUED;
    case DV_WEBHOOK_DUPLICATE: return METRICS_RESULT_DUPLICATE;
    default: return METRICS_RESULT_UNCHANGED; /* stale, skipped */
    }
}

static void dv_refuse(struct route_req *r, int status, const char *code,
                      const char *why, enum metrics_webhook_result result)
{
    metrics_webhook_delivery(METRICS_WEBHOOK_DATAVERSE, result);
    log_notice("dv_webhook_refused status=%d why=%s", status, log_q(why));
    route_reply_error(r, status, code, status == 400 ? why : NULL);
}

static void on_dataverse_done(struct route_req *r, int rc, int committed,
                              void *payload)
{
    struct dv_post *p = payload; /* &p->item: its first member */
    const struct dv_webhook_result *res = &p->item.result;
    struct listener *l = p->wh->l;
    cJSON *j;

    if (!committed || rc) {
        metrics_webhook_delivery(METRICS_WEBHOOK_DATAVERSE,
                                 METRICS_RESULT_FAILED);
        log_warn("dv_webhook_failed status=503 committed=%d rc=%d", committed,
                 rc);
        route_reply_error(r, 503, "not_committed", "try again");
        dv_post_free(p);
        return;
    }
    metrics_webhook_delivery(METRICS_WEBHOOK_DATAVERSE,
                             dv_result(res->outcome));
    if (res->outcome == DV_WEBHOOK_DUPLICATE)
        metrics_duplicates_add(1);
    dv_webhook_event_log(p->ev, res);
    if (res->outcome == DV_WEBHOOK_QUEUED && l->on_refetch)
        l->on_refetch(l->on_refetch_payload);
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "outcome",
                            dv_webhook_outcome_name(res->outcome));
    route_reply_json(r, 200, j);
    cJSON_Delete(j);
    dv_post_free(p);
}

static void on_dataverse_post(struct route_req *r, void *arg)
{
    struct listener__webhooks *wh = arg;
    struct dv_webhook_request req = { dv_header, r, dv_query, r };
    struct dv_webhook_headers h;
    struct dv_post *p;
    size_t len;
    const char *body;

    switch (wh->dv ? dv_webhook_auth_check(wh->dv, &req)
                   : DV_WEBHOOK_AUTH_DISABLED) {
    case DV_WEBHOOK_AUTH_OK: break;
    case DV_WEBHOOK_AUTH_DISABLED:
        dv_refuse(r, 404, "not_found", "no [dataverse_webhook] key",
                  METRICS_RESULT_UNAUTHORIZED);
        return;
    default:
        dv_refuse(r, 401, "unauthorized", "key missing or wrong",
                  METRICS_RESULT_UNAUTHORIZED);
        return;
    }
    body = route_req_body(r, &len);
    dv_webhook_headers_read(&h, &req);
    p = xcalloc(1, sizeof(*p));
    if (dv_webhook_parse(&p->ev, wh->l->m, body ? body : "", len, &h) != 0) {
        dv_refuse(r, 400, "bad_request", err_message(),
                  METRICS_RESULT_MALFORMED);
        dv_post_free(p);
        return;
    }
    p->wh = wh;
    p->item.wh = wh->dv;
    p->item.ev = p->ev;
    route_req_write(r, dv_webhook_item_apply, &p->item, on_dataverse_done);
}

/* ---- registration ---------------------------------------------------------
 */

/* Say at start which webhook routes refuse everything, and why. */
static void warn_closed(const struct listener__webhooks *wh,
                        const struct optsync_config *cfg)
{
    if (wh->auth.mode == WHATSAPP_AUTH_SIGNATURE && !wh->auth.app_secret)
        log_warn("webhook_route_closed route=/webhooks/whatsapp answer=401 "
                 "why=%s",
                 log_q("no [whatsapp] app_secret"));
    if (wh->auth.mode == WHATSAPP_AUTH_HEADER && !wh->auth.header_value)
        log_warn("webhook_route_closed route=/webhooks/whatsapp answer=401 "
                 "why=%s",
                 log_q("no [whatsapp] header_value"));
    if (!wh->dv || !cfg->dataverse_webhook.key || !*cfg->dataverse_webhook.key)
        log_info("webhook_route_closed route=/webhooks/dataverse answer=404 "
                 "why=%s",
                 log_q(wh->dv ? "no [dataverse_webhook] key" : "no mapping"));
}

int listener__webhooks_register(struct listener *l)
{
    struct listener__webhooks *wh = xcalloc(1, sizeof(*wh));
    struct keywords_options ko;
    int rc;

    l->webhooks = wh;
    wh->l = l;
    keywords_options_from_config(&ko, l->cfg);
    if (keywords_new(&wh->kw, &ko) != 0)
        return ERR_FAIL;
    whatsapp_auth_init(&wh->auth, l->cfg);
    if (l->m && dv_webhook_new(&wh->dv, l->cfg, l->m) != 0)
        return ERR_FAIL;
    rc = route_table_add(&l->routes, ROUTE_GET, "/webhooks/whatsapp",
                         on_whatsapp_verify, wh, 0);
    if (rc == 0)
        rc = route_table_add(&l->routes, ROUTE_POST, "/webhooks/whatsapp",
                             on_whatsapp_post, wh, 0);
    if (rc == 0)
        rc = route_table_add(&l->routes, ROUTE_POST,
                             "/webhooks/whatsapp/{configuration}",
                             on_whatsapp_post, wh, 0);
    if (rc == 0)
        rc = route_table_add(&l->routes, ROUTE_POST, "/webhooks/dataverse",
                             on_dataverse_post, wh, 0);
    if (rc == 0)
        warn_closed(wh, l->cfg);
    return rc ? ERR_FAIL : 0;
}

void listener__webhooks_free(struct listener *l)
{
    struct listener__webhooks *wh = l->webhooks;

    if (!wh)
        return;
    keywords_free(wh->kw);
    dv_webhook_free(wh->dv);
    free(wh);
    l->webhooks = NULL;
}

void listener_on_refetch(listener *l, listener_refetch_fn fn, void *payload)
{
    l->on_refetch = fn;
    l->on_refetch_payload = payload;
}
