/*
 * dv_webhook — authentication and applying a parsed RemoteExecutionContext
 * (dv_webhook.h notes 1 and 3-6).  The parser is dv_webhook_parse.c, the
 * re-fetch queue dv_webhook_refetch.c.
 *
 * It writes only through consent_apply_locked() (numbers, ledger),
 * configurations_put/_delete, and its own tables (dv_refetch,
 * dv_webhook_tombstones, inbound_seen rows of source
 * "dataverse_webhook"), always in the caller's transaction.
 */
#include "dv_webhook_p.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "configurations.h"
#include "err.h"
#include "log.h"
#include "xalloc.h"

int dv_webhook_new(dv_webhook **out, const struct optsync_config *cfg,
                   const struct mapping *m)
{
    dv_webhook *wh = xcalloc(1, sizeof(*wh));

    wh->cfg = cfg;
    wh->m = m;
    consent_options_init(&wh->consent, cfg, m);
    *out = wh;
    return 0;
}

void dv_webhook_free(dv_webhook *wh)
{
    free(wh);
}

const char *dv_webhook__entity_name(enum dv_entity e)
{
    return e == DV_NUMBER ? "number" : "configuration";
}

/* ---- authentication (note 1) --------------------------------------------- */

/* Equal in time independent of where they differ and of their lengths. */
static int secret_equal(const char *given, const char *key)
{
    unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
    unsigned int na = 0, nb = 0;
    int same;

    if (EVP_Digest(given, strlen(given), a, &na, EVP_sha256(), NULL) != 1 ||
        EVP_Digest(key, strlen(key), b, &nb, EVP_sha256(), NULL) != 1)
        abort(); /* out of memory in OpenSSL */
    same = na == nb && CRYPTO_memcmp(a, b, na) == 0;
    OPENSSL_cleanse(a, sizeof(a));
    OPENSSL_cleanse(b, sizeof(b));
    return same;
}

static const char *lookup(dv_webhook_lookup_fn fn, void *payload,
                          const char *name)
{
    return fn && name && *name ? fn(name, payload) : NULL;
}

enum dv_webhook_auth dv_webhook_auth_check(const dv_webhook *wh,
                                           const struct dv_webhook_request *r)
{
    const char *key = wh->cfg->dataverse_webhook.key;
    const char *mode = wh->cfg->dataverse_webhook.auth;
    const char *given;

    if (!key || !*key)
        return DV_WEBHOOK_AUTH_DISABLED;
    if (!r)
        return DV_WEBHOOK_AUTH_UNAUTHORIZED;
    if (strcmp(mode, "webhookkey") == 0)
        given = lookup(r->query, r->query_payload, "code");
    else if (strcmp(mode, "querystring") == 0)
        given = lookup(r->query, r->query_payload,
                       wh->cfg->dataverse_webhook.query_name);
    else
        given = lookup(r->header, r->header_payload,
                       wh->cfg->dataverse_webhook.header_name);
    if (!given || !secret_equal(given, key))
        return DV_WEBHOOK_AUTH_UNAUTHORIZED;
    return DV_WEBHOOK_AUTH_OK;
}

/* ---- outcomes ---------------------------------------------------------------
 */

const char *dv_webhook_outcome_name(enum dv_webhook_outcome o)
{
    static const char *const names[DV_WEBHOOK_OUTCOME_COUNT] = {
        "applied", "removed", "queued", "duplicate", "stale", "skipped",
    };

    return (unsigned)o < DV_WEBHOOK_OUTCOME_COUNT ? names[o] : "unknown";
}

static void result_set(struct dv_webhook_result *out, enum dv_webhook_outcome o,
                       const char *reason)
{
    out->outcome = o;
    out->reason = reason;
}

/* ---- the order rule (note 5) ----------------------------------------------
 */

struct cached {
    int found;
    int64_t version;     /* 0: none */
    int64_t modified_on; /* 0: none */
};

static int cached_load(struct cached *out, cache *c, enum dv_entity e,
                       const char *id)
{
    sqlite3_stmt *st =
        e == DV_NUMBER
            ? cache_stmt(c, "SELECT version, modified_on FROM numbers "
                            "WHERE dv_id = ?1")
            : cache_stmt(c, "SELECT version, modified_on FROM "
                            "configurations WHERE id = ?1");
    int rc;

    memset(out, 0, sizeof(*out));
    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, id);
    rc = cache_step(st);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW)
        return ERR_FAIL;
    out->found = 1;
    out->version = sqlite3_column_int64(st, 0);
    out->modified_on = sqlite3_column_int64(st, 1);
    sqlite3_reset(st);
    return 0;
}

/* When a webhook Delete removed the row; 0 when it did not. */
static int tombstone_at(int64_t *out, cache *c, enum dv_entity e,
                        const char *id)
{
    sqlite3_stmt *st = cache_stmt(c, "SELECT deleted_at FROM "
                                     "dv_webhook_tombstones WHERE entity = ?1 "
                                     "AND dv_id = ?2");
    int rc;

    *out = 0;
    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, dv_webhook__entity_name(e));
    cache_bind_text(st, 2, id);
    rc = cache_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : ERR_FAIL;
}

enum order { ORDER_NEW = 0, ORDER_STALE, ORDER_UNCLEAR };

/* A row not in the cache (from the body only). */
static int order_absent(enum order *out, const char **why, cache *c,
                        enum dv_entity e, const char *id, int64_t t)
{
    int64_t deleted = 0, synced = 0;
    int rc = tombstone_at(&deleted, c, e, id);

    if (rc == 0)
        rc = cache_last_sync_success(&synced, c);
    if (rc)
        return rc;
    if (deleted && t <= deleted) {
        *out = ORDER_STALE;
        *why = "older than its deletion";
    } else if (synced && t < synced - DV_WEBHOOK_CLOCK_MARGIN_MS) {
        *out = ORDER_UNCLEAR;
        *why = "not cached though older than the last sync";
    }
    return 0;
}

static void order_cached(enum order *out, const char **why,
                         const struct cached *x, int64_t version, int64_t t,
                         enum dv_webhook__origin origin)
{
    if (version && x->version) {
        *out = version > x->version ? ORDER_NEW : ORDER_STALE;
        *why = version == x->version ? "this version is cached"
                                     : "older version than cached";
    } else if (t && x->modified_on && t != x->modified_on) {
        *out = t > x->modified_on ? ORDER_NEW : ORDER_STALE;
        *why = "older than the cached row";
    } else if (origin == DV_WEBHOOK__BODY) {
        /* Same time, or nothing to compare: only a read can tell. */
        *out = ORDER_UNCLEAR;
        *why = "order against the cached row unclear";
    }
}

static int order_of(enum order *out, const char **why, cache *c,
                    enum dv_entity e, const char *id, int64_t version,
                    int64_t t, enum dv_webhook__origin origin)
{
    struct cached x;
    int rc = cached_load(&x, c, e, id);

    *out = ORDER_NEW;
    *why = NULL;
    if (rc)
        return rc;
    if (x.found)
        order_cached(out, why, &x, version, t, origin);
    else if (origin == DV_WEBHOOK__BODY)
        rc = order_absent(out, why, c, e, id, t);
    return rc;
}

/* ---- mirroring a row ------------------------------------------------------
 */

static int queue_row(struct dv_webhook_result *out, cache *c, enum dv_entity e,
                     const char *id, const char *reason, int64_t delay_ms)
{
    result_set(out, DV_WEBHOOK_QUEUED, reason);
    return dv_webhook_refetch_queue(c, e, id, reason, delay_ms);
}

static int mirror_configuration(struct dv_webhook_result *out,
                                const dv_webhook *wh, cache *c,
                                const cJSON *row, int64_t event_at,
                                enum dv_webhook__origin origin)
{
    struct configuration_record rec;
    const char *why = NULL;
    enum order order;
    int rc;

    if (mapping_configuration_from_row(&rec, wh->m, row, &why) != 0) {
        result_set(out, DV_WEBHOOK_SKIPPED, why);
        return 0;
    }
    rc = order_of(&order, &why, c, DV_CONFIGURATION, rec.id, rec.version,
                  rec.modified_on ? rec.modified_on : event_at, origin);
    if (rc)
        return rc;
    if (order == ORDER_STALE) {
        result_set(out, DV_WEBHOOK_STALE, why);
        return 0;
    }
    if (order == ORDER_UNCLEAR)
        return queue_row(out, c, DV_CONFIGURATION, rec.id, why, 0);
    result_set(out, DV_WEBHOOK_APPLIED, NULL);
    return configurations_put(c, &rec, 0);
}

/* The Configuration's region, or [consent] default_region (like the
 * poller's region_for); ERR_NOTFOUND when it is not cached. */
static int region_of(char **out, const dv_webhook *wh, cache *c,
                     const char *configuration_id)
{
    struct configuration_info info;
    int rc = configurations_get(&info, c, configuration_id);
    const char *r;

    if (rc)
        return rc;
    r = info.default_region ? info.default_region
                            : wh->cfg->consent.default_region;
    *out = r ? xstrdup(r) : NULL;
    configuration_info_dispose(&info);
    return 0;
}

static int mirror_record(struct dv_webhook_result *out, const dv_webhook *wh,
                         cache *c, const struct number_record *rec,
                         const char *region)
{
    struct consent_row crow;
    struct consent_event ev;
    struct consent_result res;
    int rc;

    memset(&crow, 0, sizeof(crow));
    crow.rec = rec;
    crow.region = region;
    memset(&ev, 0, sizeof(ev));
    ev.action = CONSENT_ACT_MIRROR;
    ev.source = CONSENT_SOURCE_DATAVERSE_WEBHOOK;
    ev.row = &crow;
    rc = consent_apply_locked(&res, c, &wh->consent, &ev);
    if (rc == ERR_BADINPUT) {
        result_set(out, DV_WEBHOOK_SKIPPED, "the consent engine refused it");
        return 0;
    }
    result_set(out, DV_WEBHOOK_APPLIED, NULL);
    out->consent = res.outcome;
    return rc;
}

static int mirror_number(struct dv_webhook_result *out, const dv_webhook *wh,
                         cache *c, const cJSON *row, int64_t event_at,
                         enum dv_webhook__origin origin)
{
    struct number_record rec;
    const char *why = NULL;
    char *region = NULL;
    enum order order;
    int rc;

    if (mapping_number_from_row(&rec, wh->m, row, &why) != 0) {
        result_set(out, DV_WEBHOOK_SKIPPED, why);
        return 0;
    }
    rc = order_of(&order, &why, c, DV_NUMBER, rec.id, rec.version,
                  rec.modified_on ? rec.modified_on : event_at, origin);
    if (rc)
        return rc;
    if (order == ORDER_STALE) {
        result_set(out, DV_WEBHOOK_STALE, why);
        return 0;
    }
    if (order == ORDER_UNCLEAR)
        return queue_row(out, c, DV_NUMBER, rec.id, why, 0);
    if (rec.configuration_id[0]) {
        rc = region_of(&region, wh, c, rec.configuration_id);
        if (rc == ERR_NOTFOUND && origin == DV_WEBHOOK__BODY) {
            /* Never parse its phone without the Configuration's region:
             * read the Configuration first, then the row (note 4). */
            rc = dv_webhook_refetch_queue(c, DV_CONFIGURATION,
                                          rec.configuration_id,
                                          "configuration of a number", 0);
            return rc ? rc
                      : queue_row(out, c, DV_NUMBER, rec.id,
                                  "configuration not cached", 0);
        }
        if (rc == ERR_NOTFOUND) /* the poller's rule for a missing one */
            region = wh->cfg->consent.default_region
                         ? xstrdup(wh->cfg->consent.default_region)
                         : NULL;
        else if (rc)
            return rc;
    }
    rc = mirror_record(out, wh, c, &rec, region);
    free(region);
    return rc;
}

int dv_webhook__mirror_row(struct dv_webhook_result *out, const dv_webhook *wh,
                           cache *c, enum dv_entity e, const cJSON *row,
                           int64_t event_at, enum dv_webhook__origin origin)
{
    memset(out, 0, sizeof(*out));
    if (e == DV_CONFIGURATION)
        return mirror_configuration(out, wh, c, row, event_at, origin);
    return mirror_number(out, wh, c, row, event_at, origin);
}

int dv_webhook__remove_row(cache *c, enum dv_entity e, const char *id,
                           int64_t at)
{
    if (e == DV_CONFIGURATION)
        return configurations_delete(c, id);
    return consent_row_deleted(c, id, at, CONSENT_SOURCE_DATAVERSE_WEBHOOK);
}

/* ---- applying an event ------------------------------------------------------
 */

/* Note 6: 1 in *seen when this delivery was recorded before. */
static int seen_before(int *seen, cache *c, const struct dv_webhook_event *ev)
{
    sqlite3_stmt *st = cache_stmt(c, "INSERT INTO inbound_seen(source, id, "
                                     "seen_at) VALUES (?1, ?2, ?3) "
                                     "ON CONFLICT DO NOTHING");

    *seen = 0;
    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, CONSENT_SOURCE_DATAVERSE_WEBHOOK);
    cache_bind_text(st, 2, ev->dedupe_key);
    cache_bind_int(st, 3, clock_now_ms());
    if (cache_step(st) != SQLITE_DONE)
        return ERR_FAIL;
    *seen = cache_changes(c) == 0;
    return 0;
}

static int tombstone_put(cache *c, enum dv_entity e, const char *id, int64_t at)
{
    sqlite3_stmt *st = cache_stmt(
        c, "INSERT INTO dv_webhook_tombstones(entity, dv_id, deleted_at) "
           "VALUES (?1, ?2, ?3) ON CONFLICT(entity, dv_id) DO UPDATE SET "
           "deleted_at = max(deleted_at, excluded.deleted_at)");

    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, dv_webhook__entity_name(e));
    cache_bind_text(st, 2, id);
    cache_bind_int(st, 3, at);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

static const char *hint_reason(enum dv_webhook_hint h)
{
    switch (h) {
    case DV_WEBHOOK_HINT_MESSAGE:
        return "message other than create, update, "
               "delete";
    case DV_WEBHOOK_HINT_UNCOMMITTED:
        return "synchronous or pre-operation "
               "step";
    case DV_WEBHOOK_HINT_TRIMMED: return "body trimmed over 256 KB";
    case DV_WEBHOOK_HINT_PARTIAL: return "row without every mapped column";
    default: return "hint";
    }
}

static int apply_delete(struct dv_webhook_result *out, cache *c,
                        const struct dv_webhook_event *ev)
{
    int64_t at = ev->operation_at ? ev->operation_at : clock_now_ms();
    int rc = dv_webhook__remove_row(c, ev->entity, ev->id, at);

    result_set(out, DV_WEBHOOK_REMOVED, NULL);
    return rc ? rc : tombstone_put(c, ev->entity, ev->id, at);
}

int dv_webhook_apply_locked(struct dv_webhook_result *out, const dv_webhook *wh,
                            cache *c, const struct dv_webhook_event *ev)
{
    int seen = 0, rc;

    memset(out, 0, sizeof(*out));
    rc = seen_before(&seen, c, ev);
    if (rc || seen) {
        result_set(out, DV_WEBHOOK_DUPLICATE, "delivered before");
        return rc;
    }
    if (ev->hint != DV_WEBHOOK_HINT_NONE)
        return queue_row(out, c, ev->entity, ev->id, hint_reason(ev->hint),
                         ev->hint == DV_WEBHOOK_HINT_UNCOMMITTED
                             ? DV_REFETCH_UNCOMMITTED_DELAY_MS
                             : 0);
    if (ev->message == DV_WEBHOOK_DELETE)
        return apply_delete(out, c, ev);
    rc = dv_webhook__mirror_row(out, wh, c, ev->entity, ev->row,
                                ev->operation_at, DV_WEBHOOK__BODY);
    if (rc == 0 && out->outcome == DV_WEBHOOK_SKIPPED)
        log_warn("dv_webhook_row_skipped entity=%s dv_id=%s reason=%s",
                 dv_webhook__entity_name(ev->entity), ev->id,
                 log_q(out->reason));
    return rc;
}

void dv_webhook_event_log(const struct dv_webhook_event *ev,
                          const struct dv_webhook_result *r)
{
    log_info("dv_webhook_event entity=%s message=%s dv_id=%s outcome=%s "
             "reason=%s",
             dv_webhook__entity_name(ev->entity), log_q(ev->message_name),
             ev->id, dv_webhook_outcome_name(r->outcome),
             log_q(r->reason ? r->reason : "-"));
}

int dv_webhook_apply(struct dv_webhook_result *out, const dv_webhook *wh,
                     cache *c, const struct dv_webhook_event *ev)
{
    int rc = cache_begin(c);

    if (rc)
        return rc;
    rc = dv_webhook_apply_locked(out, wh, c, ev);
    if (rc == 0)
        rc = cache_commit(c);
    else
        cache_rollback(c);
    if (rc == 0)
        dv_webhook_event_log(ev, out);
    return rc;
}

int dv_webhook_item_apply(cache *c, void *payload)
{
    struct dv_webhook_item *item = payload;

    return dv_webhook_apply_locked(&item->result, item->wh, c, item->ev);
}

/* ---- housekeeping -------------------------------------------------------- */

static int prune_locked(cache *c, int64_t before)
{
    sqlite3_stmt *st = cache_stmt(c, "DELETE FROM inbound_seen WHERE "
                                     "source = ?1 AND seen_at < ?2");

    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, CONSENT_SOURCE_DATAVERSE_WEBHOOK);
    cache_bind_int(st, 2, before);
    if (cache_step(st) != SQLITE_DONE)
        return ERR_FAIL;
    st = cache_stmt(c, "DELETE FROM dv_webhook_tombstones "
                       "WHERE deleted_at < ?1");
    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, before);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

int dv_webhook_prune(cache *c, int64_t before)
{
    int rc = cache_begin(c);

    if (rc)
        return rc;
    rc = prune_locked(c, before);
    if (rc == 0)
        rc = cache_commit(c);
    if (rc)
        cache_rollback(c);
    return rc;
}
