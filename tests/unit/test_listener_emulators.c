/*
 * test_listener_emulators — the webhook routes fed by their real peers:
 * the Dataverse emulator (a service endpoint and steps registered through
 * its control API point at the running listener; a CRM admin changes
 * rows; the emulator itself POSTs every RemoteExecutionContext) and the
 * WhatsApp emulator (a customer replies, taps a quick reply, stops
 * marketing; the emulator signs and POSTs the webhooks).
 *
 *   - every message the Dataverse emulator sends: Create / Update /
 *     Delete on both tables (asynchronous, post-operation, with images),
 *     synchronous steps at stages 10, 20 and 40, an Update without an
 *     image, a body trimmed over 256 KB, a number of a Configuration not
 *     cached, the unlinking cascade of a deleted Configuration (Depth 2):
 *     each answered 200 (the emulator's record), applied or queued, the
 *     re-fetch hook called for every hint; then the re-fetch run serve
 *     does, and a delta sync that finds nothing to correct;
 *   - each Dataverse auth mode, right and wrong (401, nothing changed),
 *     404 without a key, and a synchronous step our 401 makes Dataverse
 *     roll back;
 *   - a WhatsApp reply quarantined for an unknown phone_number_id applies
 *     after a sync brings that Configuration (the gate then denies);
 *   - end to end with the WhatsApp emulator: the GET handshake, a text
 *     STOP, a quick-reply tap on a sent template, "stop marketing", a
 *     131050 failure of a marketing template, an opt-in, a wrongly signed
 *     delivery (401, nothing changed).
 *
 * ctest-labels: quick;integration
 * ctest-timeout: 600
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "cache.h"
#include "clock.h"
#include "consent.h"
#include "dataverse.h"
#include "dv_webhook.h"
#include "emulator_control.h"
#include "err.h"
#include "jsonutil.h"
#include "log.h"
#include "metrics.h"
#include "sync.h"
#include "testhttp.h"
#include "testutil.h"
#include "wa_cases.h"
#include "xalloc.h"

#define CFG_A "6a1c0d6e-0000-4000-8000-00000000000a"
#define CFG_B "6a1c0d6e-0000-4000-8000-00000000000b"
#define CFG_LATE "6a1c0d6e-0000-4000-8000-0000000000c1"
#define CFG_WA "6a1c0d6e-0000-4000-8000-0000000000e1"
#define NUM(i) "3f2e0000-0000-4000-8000-00000000000" #i
#define NUM_NEW "3f2e0000-0000-4000-8000-0000000000d1"
#define NUM_NEW2 "3f2e0000-0000-4000-8000-0000000000d2"
#define KEY "live-key"
#define API_KEY "test-api-key-0123456789"
#define WA_PNID "110000000000001" /* the WhatsApp emulator's number */

static const char seed[] =
    "{\"format\":\"optsync-emulator-seed/1\",\"configurations\":["
    "{\"id\":\"" CFG_A "\",\"name\":\"WA Main\",\"double_opt_in\":true,"
    "\"phone_number_id\":\"106540352242922\",\"waba_id\":\"102290129340398\","
    "\"default_region\":\"DE\",\"modified_on\":\"2025-01-02T09:00:00Z\"},"
    "{\"id\":\"" CFG_B "\",\"name\":\"Alpha Shop\",\"double_opt_in\":false,"
    "\"phone_number_id\":\"106540352242923\",\"waba_id\":\"102290129340398\","
    "\"default_region\":\"GB\",\"modified_on\":\"2025-01-02T09:00:00Z\"}],"
    "\"numbers\":["
    "{\"id\":\"" NUM(
        1) "\",\"configuration\":\"" CFG_A "\",\"phone\":"
           "\"+49 151 2345 6789\",\"status\":\"double_opt_in\"},"
           "{\"id\":\"" NUM(
               2) "\",\"configuration\":\"" CFG_A "\",\"phone\":"
                  "\"0151/23456789\",\"status\":\"opted_out\"},"
                  "{\"id\":\"" NUM(
                      3) "\",\"configuration\":\"" CFG_A "\",\"phone\":"
                         "\"+4915111111111\",\"status\":\"single_opt_in\"},"
                         "{\"id\":\"" NUM(
                             4) "\",\"configuration\":\"" CFG_B "\",\"phone\":"
                                "\"020 7946 "
                                "0958\",\"status\":\"double_opt_in\"},"
                                "{\"id\":\"" NUM(
                                    5) "\",\"configuration\":\"" CFG_B
                                       "\",\"phone\":"
                                       "\"07400 "
                                       "123456\",\"status\":\"single_opt_in\"}]"
                                       "}";

struct fixture {
    struct testlistener t;
    struct emulator_proc dv; /* Dataverse + Entra ID; pid 0 when not used */
    struct emulator_proc wa; /* WhatsApp; pid 0 when not used */
    cache *c;                /* the test's own connection */
    http *h;                 /* the clients serve would own: */
    auth *a;
    dataverse *dvc;
    dv_webhook *wh;
    atomic_int refetches; /* listener_on_refetch calls */
    int delivered;        /* Dataverse deliveries finished since a reset */
};

/* ---- fixture ---------------------------------------------------------------
 */

static void on_refetch(void *payload)
{
    struct fixture *f = payload;

    atomic_fetch_add(&f->refetches, 1);
}

static void hooks(listener *l, void *payload)
{
    listener_on_refetch(l, on_refetch, payload);
}

/* The listener, then the clients serve would run beside it. */
static void start(struct fixture *f)
{
    struct http_options o = HTTP_OPTIONS_INIT;

    testlistener_start(&f->t, hooks, f);
    if (!f->dv.pid)
        return;
    o.base_backoff_ms = 10;
    o.max_attempts = 2;
    assert_int_equal(http_new(&f->h, &o), 0);
    assert_int_equal(auth_new(&f->a, f->t.cfg, f->h), 0);
    assert_int_equal(dataverse_new(&f->dvc, f->t.cfg, f->t.m, f->h, f->a), 0);
    assert_int_equal(dv_webhook_new(&f->wh, f->t.cfg, f->t.m), 0);
}

static void stop(struct fixture *f)
{
    dv_webhook_free(f->wh);
    dataverse_free(f->dvc);
    auth_free(f->a);
    http_free(f->h);
    f->wh = NULL;
    f->dvc = NULL;
    f->a = NULL;
    f->h = NULL;
    testlistener_stop(&f->t);
}

static void sync_once(struct fixture *f)
{
    struct sync_options o = { 0 };
    struct sync_result r;
    syncer *s = NULL;

    assert_int_equal(syncer_new(&s, f->t.cfg, f->t.m, f->c, f->a, NULL), 0);
    if (sync_run(&r, s, &o) != 0)
        fail_msg("sync: %s", err_message());
    syncer_free(s);
}

static void common_setup(struct fixture *f)
{
    metrics_reset();
    log_level_current = LOG_WARN;
    testlistener_init(&f->t);
    testlistener_set(&f->t, "listener.api_key=%s", API_KEY);
    testlistener_set(&f->t, "whatsapp.app_secret=%s", WA_SECRET);
    testlistener_set(&f->t, "whatsapp.verify_token=%s", WA_VERIFY_TOKEN);
    testlistener_set(&f->t, "dataverse_webhook.key=%s", KEY);
    testlistener_set(&f->t, "dataverse_webhook.auth=header");
    assert_int_equal(cache_open(&f->c, f->t.db, 0), 0);
}

/* The Dataverse emulator with the seed, the listener, a full sync. */
static int setup_dv(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    const char *args[] = { "--seed", NULL, "--quiet", NULL };
    char *path;

    common_setup(f);
    path = testutil_write(f->t.dir, "seed.json", seed, 0600);
    args[1] = path;
    assert_int_equal(emulator_start(&f->dv, args), 0);
    free(path);
    testlistener_set(&f->t, "dataverse.url=%s", f->dv.base_url);
    testlistener_set(&f->t, "auth.authority=%s", f->dv.base_url);
    start(f);
    sync_once(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    clock_set_fixed(0);
    stop(f);
    cache_close(f->c);
    emulator_stop(&f->dv);
    emulator_stop(&f->wa);
    testlistener_dispose(&f->t);
    free(f);
    return 0;
}

/* ---- the Dataverse emulator -----------------------------------------------
 */

static void control_ok(struct fixture *f, const char *method, const char *route,
                       const char *json)
{
    char *out = NULL;
    long status = emulator_control(&f->dv, method, route, json, &out);

    if (status < 200 || status > 201)
        fail_msg("%s %s: %ld %s", method, route, status, out ? out : "");
    free(out);
}

/* A service endpoint pointing at the listener; its id in id_out. */
static void endpoint_add(struct fixture *f, const char *authtype,
                         const char *authvalue, char *id_out)
{
    char *json = xasprintf("{\"name\":\"optsync\",\"url\":\"%s/webhooks/"
                           "dataverse\",\"authtype\":\"%s\",\"authvalue\":%s}",
                           f->t.base, authtype, authvalue);
    cJSON *doc = NULL;

    assert_int_equal(
        emulator_control_json(&f->dv, "POST", "webhooks/endpoints", json, &doc),
        201);
    snprintf(id_out, 64, "%s", jsonutil_str(doc, "id"));
    cJSON_Delete(doc);
    free(json);
}

static void step_add(struct fixture *f, const char *ep, const char *message,
                     const char *table, int stage, int mode, const char *extra)
{
    char *json = xasprintf("{\"endpoint\":\"%s\",\"message\":\"%s\","
                           "\"table\":\"%s\",\"stage\":%d,\"mode\":%d%s}",
                           ep, message, table, stage, mode, extra);

    control_ok(f, "POST", "webhooks/steps", json);
    free(json);
}

static void steps_clear(struct fixture *f)
{
    control_ok(f, "POST", "reset", "{\"keep_data\":true}");
    f->delivered = 0;
}

/* Waits until `n` more deliveries finished (they were answered). */
static void wait_deliveries(struct fixture *f, int n)
{
    char *json;

    f->delivered += n;
    json = xasprintf("{\"condition\":\"deliveries\",\"count\":%d,"
                     "\"timeout\":120}",
                     f->delivered);
    assert_int_equal(emulator_control(&f->dv, "POST", "wait", json, NULL), 200);
    free(json);
}

/* How many recorded deliveries the listener answered with `status` (the
 * last attempt of each). */
static int answered(struct fixture *f, long status)
{
    cJSON *doc = NULL, *d, *attempts, *last;
    int n = 0;

    assert_int_equal(
        emulator_control_json(&f->dv, "GET", "webhooks/deliveries", NULL, &doc),
        200);
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(doc, "deliveries"))
    {
        attempts = cJSON_GetObjectItem(d, "attempts");
        last = cJSON_GetArrayItem(attempts, cJSON_GetArraySize(attempts) - 1);
        n += cJSON_IsNumber(cJSON_GetObjectItem(last, "status")) &&
             cJSON_GetObjectItem(last, "status")->valueint == status;
    }
    cJSON_Delete(doc);
    return n;
}

/* ---- the cache
 * ---------------------------------------------------------------
 */

static char *query_text(struct fixture *f, const char *sql, const char *param)
{
    sqlite3_stmt *st = NULL;
    char *v = NULL;

    assert_int_equal(sqlite3_prepare_v2(cache_db(f->c), sql, -1, &st, NULL),
                     SQLITE_OK);
    if (param)
        sqlite3_bind_text(st, 1, param, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        v = xstrdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return v;
}

/* "status/e164/active/" of a number row, or NULL when absent. */
static void expect_number(struct fixture *f, const char *dv_id,
                          const char *prefix)
{
    char *s = query_text(f,
                         "SELECT status || '/' || coalesce(e164, '-') || '/' "
                         "|| active || '/' FROM numbers WHERE dv_id = ?1",
                         dv_id);

    if (!prefix ? s != NULL : !s || strncmp(s, prefix, strlen(prefix)) != 0)
        fail_msg("%s: %s, want %s", dv_id, s ? s : "(none)",
                 prefix ? prefix : "(none)");
    free(s);
}

static char *cache_dump(struct fixture *f)
{
    return query_text(
        f,
        "SELECT (SELECT group_concat(dv_id || '=' || status || '/' || "
        "coalesce(e164, '-') || '/' || active || '/' || "
        "coalesce(configuration_id, '-'), ';') FROM (SELECT * FROM numbers "
        "WHERE dv_id IS NOT NULL ORDER BY dv_id)) || ' | ' || (SELECT "
        "group_concat(id || '=' || name || '/' || coalesce(default_region, "
        "'-') || '/' || double_opt_in, ';') FROM (SELECT * FROM "
        "configurations ORDER BY id))",
        NULL);
}

/* The poller finds nothing to correct: the webhook left the cache a
 * delta sync leaves. */
static void expect_sync_agrees(struct fixture *f)
{
    char *before = cache_dump(f), *after;

    sync_once(f);
    after = cache_dump(f);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static long long count(struct fixture *f, const char *sql)
{
    return testutil_query_int(f->c, sql);
}

/* What serve does with the queue: run it until nothing is due. */
static void refetch_all(struct fixture *f)
{
    struct dv_refetch_options o = DV_REFETCH_OPTIONS_INIT;
    struct dv_refetch_result r;

    clock_set_fixed(clock_now_ms() + DV_REFETCH_UNCOMMITTED_DELAY_MS + 1000);
    if (dv_webhook_refetch_run(&r, f->wh, f->c, f->dvc, &o) != 0)
        fail_msg("refetch: %s", err_message());
    assert_int_equal(r.remaining, 0);
    clock_set_fixed(0);
}

/* ---- every message ------------------------------------------------------- */

static const char post_image[] =
    ",\"images\":[{\"type\":\"post\",\"alias\":\"PostImage\"}]";

static void test_listener_emulators__dataverse_every_message(void **state)
{
    struct fixture *f = *state;
    char ep[64], *name;

    endpoint_add(f, "HttpHeader", "{\"X-Optsync-Key\":\"" KEY "\"}", ep);
    step_add(f, ep, "Create", "number", 40, 1, post_image);
    step_add(f, ep, "Update", "number", 40, 1, post_image);
    step_add(f, ep, "Delete", "number", 40, 1, "");
    step_add(f, ep, "Create", "configuration", 40, 1, post_image);
    step_add(f, ep, "Update", "configuration", 40, 1, post_image);
    step_add(f, ep, "Delete", "configuration", 40, 1, "");
    control_ok(f, "POST", "admin/number",
               "{\"id\":\"" NUM_NEW "\",\"configuration\":\"" CFG_A "\","
               "\"phone\":\"0170 1234567\",\"status\":\"single_opt_in\"}");
    control_ok(f, "PATCH", "admin/number/" NUM(1),
               "{\"status\":\"opted_out\"}");
    control_ok(f, "DELETE", "admin/number/" NUM(5), NULL);
    control_ok(f, "PATCH", "admin/configuration/" CFG_A,
               "{\"name\":\"WA Main DE\"}");
    control_ok(f, "POST", "admin/configuration",
               "{\"id\":\"" CFG_LATE "\",\"name\":\"WA Promo\","
               "\"double_opt_in\":false,\"phone_number_id\":\"99\","
               "\"waba_id\":\"98\",\"default_region\":\"FR\"}");
    control_ok(f, "PATCH", "admin/number/" NUM(4), "{\"active\":false}");
    control_ok(f, "DELETE", "admin/configuration/" CFG_LATE, NULL);
    wait_deliveries(f, 7);
    assert_int_equal(answered(f, 200), 7);
    expect_number(f, NUM_NEW, "1/+491701234567/1/"); /* DE region */
    expect_number(f, NUM(1), "3/+4915123456789/1/");
    expect_number(f, NUM(5), NULL);
    expect_number(f, NUM(4), "2/+442079460958/0/");
    name =
        query_text(f, "SELECT name FROM configurations WHERE id = ?1", CFG_A);
    assert_string_equal(name, "WA Main DE");
    free(name);
    assert_int_equal(count(f, "SELECT count(*) FROM dv_refetch"), 0);
    assert_int_equal(metrics_webhook_count(METRICS_WEBHOOK_DATAVERSE,
                                           METRICS_RESULT_APPLIED),
                     7);
    assert_int_equal(atomic_load(&f->refetches), 0);
    expect_sync_agrees(f);
}

/* Everything the body alone cannot settle is queued, answered 200, and
 * read back by id as serve would. */
static void test_listener_emulators__dataverse_hints(void **state)
{
    struct fixture *f = *state;
    char ep[64], big[320 * 1024 + 40];
    int hints;

    endpoint_add(f, "HttpHeader", "{\"X-Optsync-Key\":\"" KEY "\"}", ep);
    /* synchronous steps, inside Dataverse's transaction: 3 deliveries */
    step_add(f, ep, "Update", "number", 10, 0, "");
    step_add(f, ep, "Update", "number", 20, 0, "");
    step_add(f, ep, "Update", "number", 40, 0, post_image);
    control_ok(f, "PATCH", "admin/number/" NUM(4),
               "{\"status\":\"opted_out\"}");
    wait_deliveries(f, 3);
    assert_int_equal(answered(f, 200), 3);
    /* an async Update without images; one over 256 KB (trimmed) */
    steps_clear(f);
    endpoint_add(f, "HttpHeader", "{\"X-Optsync-Key\":\"" KEY "\"}", ep);
    step_add(f, ep, "Update", "number", 40, 1,
             ",\"images\":[{\"type\":\"pre\",\"alias\":\"PreImage\"}]");
    control_ok(f, "PATCH", "admin/number/" NUM(2),
               "{\"status\":\"single_opt_in\"}");
    memset(big, 'x', sizeof(big));
    memcpy(big, "{\"source\":\"", 11);
    memcpy(big + sizeof(big) - 3, "\"}", 3);
    control_ok(f, "PATCH", "admin/number/" NUM(3), big);
    wait_deliveries(f, 2);
    assert_int_equal(answered(f, 200), 2);
    /* a number of a Configuration the cache has not seen */
    steps_clear(f);
    control_ok(f, "POST", "admin/configuration",
               "{\"id\":\"" CFG_LATE "\",\"name\":\"WA Promo\","
               "\"double_opt_in\":false,\"default_region\":\"FR\"}");
    endpoint_add(f, "HttpHeader", "{\"X-Optsync-Key\":\"" KEY "\"}", ep);
    step_add(f, ep, "Create", "number", 40, 1, post_image);
    control_ok(f, "POST", "admin/number",
               "{\"id\":\"" NUM_NEW2 "\",\"configuration\":\"" CFG_LATE "\","
               "\"phone\":\"06 12 34 56 78\",\"status\":\"double_opt_in\"}");
    wait_deliveries(f, 1);
    hints = 6;
    assert_int_equal(answered(f, 200), 1); /* since the last reset */
    assert_int_equal(
        metrics_webhook_count(METRICS_WEBHOOK_DATAVERSE, METRICS_RESULT_QUEUED),
        hints);
    assert_int_equal(atomic_load(&f->refetches), hints);
    /* nothing applied from the bodies: NUM(4), NUM(2), NUM(3) as synced */
    expect_number(f, NUM(4), "2/");
    expect_number(f, NUM(2), "3/");
    expect_number(f, NUM_NEW2, NULL);
    assert_int_equal(count(f, "SELECT count(*) FROM dv_refetch"), 5);
    refetch_all(f);
    expect_number(f, NUM(4), "3/");
    expect_number(f, NUM(2), "1/");
    expect_number(f, NUM_NEW2, "2/+33612345678/1/"); /* FR region */
    expect_sync_agrees(f);
}

/* A deleted Configuration unlinks its numbers in Dataverse: those
 * Updates come at Depth 2, after the Delete. */
static void test_listener_emulators__dataverse_cascade(void **state)
{
    struct fixture *f = *state;
    char ep[64];

    endpoint_add(f, "HttpHeader", "{\"X-Optsync-Key\":\"" KEY "\"}", ep);
    step_add(f, ep, "Update", "number", 40, 1, post_image);
    step_add(f, ep, "Delete", "configuration", 40, 1, "");
    control_ok(f, "DELETE", "admin/configuration/" CFG_B, NULL);
    wait_deliveries(f, 3); /* the Delete, N4 and N5 unlinked */
    assert_int_equal(answered(f, 200), 3);
    assert_null(
        query_text(f, "SELECT id FROM configurations WHERE id = ?1", CFG_B));
    refetch_all(f);
    expect_sync_agrees(f);
}

/* ---- who may post -------------------------------------------------------- */

/* Restarts the listener with [dataverse_webhook] auth = mode, key. */
static void restart_with(struct fixture *f, const char *mode, const char *key)
{
    stop(f);
    testlistener_set(&f->t, "dataverse_webhook.auth=%s", mode);
    testlistener_set(&f->t, "dataverse_webhook.key=%s", key);
    start(f);
    steps_clear(f);
}

static void one_update(struct fixture *f, const char *authtype,
                       const char *authvalue, const char *status)
{
    char ep[64], *patch = xasprintf("{\"status\":\"%s\"}", status);

    steps_clear(f);
    endpoint_add(f, authtype, authvalue, ep);
    step_add(f, ep, "Update", "number", 40, 1, post_image);
    control_ok(f, "PATCH", "admin/number/" NUM(3), patch);
    wait_deliveries(f, 1);
    free(patch);
}

static void test_listener_emulators__dataverse_auth_modes(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *mode, *authtype, *right, *wrong;
    } modes[] = {
        { "header", "HttpHeader", "{\"X-Optsync-Key\":\"" KEY "\"}",
          "{\"X-Optsync-Key\":\"" KEY "x\",\"X-Other\":\"" KEY "\"}" },
        { "webhookkey", "WebhookKey", "\"" KEY "\"", "\"" KEY "x\"" },
        { "querystring", "HttpQueryString",
          "{\"key\":\"" KEY "\",\"other\":\"x\"}",
          "{\"key\":\"" KEY "x\",\"code\":\"" KEY "\"}" },
    };
    size_t i;

    for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        restart_with(f, modes[i].mode, KEY);
        expect_number(f, NUM(3), i % 2 ? "2/" : "1/");
        one_update(f, modes[i].authtype, modes[i].wrong,
                   i % 2 ? "single_opt_in" : "double_opt_in");
        assert_int_equal(answered(f, 401), 1);
        expect_number(f, NUM(3), i % 2 ? "2/" : "1/"); /* unchanged */
        one_update(f, modes[i].authtype, modes[i].right,
                   i % 2 ? "single_opt_in" : "double_opt_in");
        assert_int_equal(answered(f, 200), 1);
        expect_number(f, NUM(3), i % 2 ? "1/" : "2/");
    }
    /* no key: the route is off */
    restart_with(f, "header", "");
    one_update(f, "HttpHeader", modes[0].right, "opted_out");
    assert_int_equal(answered(f, 404), 1);
    expect_number(f, NUM(3), "2/");
}

/* A synchronous step runs inside Dataverse's transaction: our 401 makes
 * the admin's save fail and roll back, in Dataverse and here alike. */
static void test_listener_emulators__dataverse_sync_step_refused(void **state)
{
    struct fixture *f = *state;
    char ep[64], *out = NULL;

    endpoint_add(f, "HttpHeader", "{\"X-Optsync-Key\":\"wrong\"}", ep);
    step_add(f, ep, "Update", "number", 40, 0, post_image);
    assert_int_equal(emulator_control(&f->dv, "PATCH", "admin/number/" NUM(3),
                                      "{\"status\":\"opted_out\"}", &out),
                     400);
    assert_non_null(strstr(out, "401"));
    free(out);
    assert_int_equal(answered(f, 401), 1);
    expect_number(f, NUM(3), "1/");
    steps_clear(f);
    expect_sync_agrees(f); /* Dataverse kept single_opt_in too */
    expect_number(f, NUM(3), "1/");
}

/* ---- quarantine, then a sync ----------------------------------------------
 */

static long post_signed(struct fixture *f, const char *body, cJSON **json)
{
    char *sig = wa_sign(WA_SECRET, body, strlen(body));
    char *line = xasprintf("X-Hub-Signature-256: %s", sig);
    char *url = testlistener_url(&f->t, "/webhooks/whatsapp");
    const char *headers[] = { line, NULL };
    struct testhttp_req req = { "POST", url, headers, body, 0, NULL };
    struct testhttp_resp r;
    long status = testhttp_call(&r, &req);

    if (json)
        *json = jsonutil_parse(r.body, r.len);
    testhttp_resp_dispose(&r);
    free(url);
    free(line);
    free(sig);
    return status;
}

static void gate_decision(struct fixture *f, const char *conf,
                          const char *phone, char *out, size_t cap)
{
    char *url = xasprintf("%s/v1/gate?configuration=%s&phone=%%2B%s", f->t.base,
                          conf, phone + 1);
    const char *headers[] = { "X-API-Key: " API_KEY, NULL };
    struct testhttp_req req = { NULL, url, headers, NULL, 0, NULL };
    struct testhttp_resp r;
    cJSON *j;

    assert_int_equal(testhttp_call(&r, &req), 200);
    j = jsonutil_parse(r.body, r.len);
    assert_non_null(j);
    snprintf(out, cap, "%s/%s", jsonutil_str(j, "decision"),
             jsonutil_str(j, "reason"));
    cJSON_Delete(j);
    testhttp_resp_dispose(&r);
    free(url);
}

static void test_listener_emulators__quarantine_then_sync(void **state)
{
    struct fixture *f = *state;
    char *body = wa_text_body("555000111", "4915123456789", "wamid.QS1",
                              1767225600, "STOP");
    char d[64];
    cJSON *j = NULL;

    assert_int_equal(post_signed(f, body, &j), 200);
    assert_non_null(j);
    assert_int_equal(cJSON_GetObjectItem(j, "quarantined")->valueint, 1);
    cJSON_Delete(j);
    assert_int_equal(count(f, "SELECT count(*) FROM quarantine WHERE reason = "
                              "'unknown_configuration' AND hint = "
                              "'555000111' AND resolved_at IS NULL"),
                     1);
    /* an admin adds the Configuration of that WhatsApp number */
    control_ok(f, "POST", "admin/configuration",
               "{\"id\":\"" CFG_LATE "\",\"name\":\"WA Later\","
               "\"double_opt_in\":false,\"phone_number_id\":\"555000111\","
               "\"waba_id\":\"98\",\"default_region\":\"DE\"}");
    gate_decision(f, CFG_LATE, "+4915123456789", d, sizeof(d));
    assert_string_equal(d, "deny/unknown_configuration");
    sync_once(f); /* brings it, then replays the quarantine */
    assert_int_equal(count(f, "SELECT count(*) FROM quarantine WHERE "
                              "resolved_at IS NULL"),
                     0);
    assert_int_equal(wa_state_of(f->c, CFG_LATE, "+4915123456789"),
                     CONSENT_OPTED_OUT);
    gate_decision(f, CFG_LATE, "+4915123456789", d, sizeof(d));
    assert_string_equal(d, "deny/opted_out");
    /* Meta's retry of the same delivery changes nothing */
    assert_int_equal(post_signed(f, body, &j), 200);
    assert_int_equal(cJSON_GetObjectItem(j, "duplicates")->valueint, 1);
    cJSON_Delete(j);
    assert_int_equal(count(f, "SELECT count(*) FROM ledger WHERE source = "
                              "'whatsapp'"),
                     1);
    free(body);
}

/* ---- the WhatsApp emulator, end to end ----------------------------------- */

#define WA_USER(i) "+49151123400" #i

static int setup_wa(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    struct consent_options copts = { 7 * 24 * 3600 * 1000LL, 0, 0, 0 };
    char *url;
    const char *args[] = { "--webhook-url",     NULL, "--app-secret", WA_SECRET,
                           "--webhook-retries", "0",  "--quiet",      NULL };

    common_setup(f);
    wa_put_configuration(f->c, CFG_WA, "WA Emulator", 0, WA_PNID,
                         "220000000000001");
    wa_seed(f->c, &copts, CFG_WA, WA_USER(1), CONSENT_SINGLE_OPT_IN);
    wa_seed(f->c, &copts, CFG_WA, WA_USER(2), CONSENT_DOUBLE_OPT_IN);
    wa_seed(f->c, &copts, CFG_WA, WA_USER(3), CONSENT_SINGLE_OPT_IN);
    wa_seed(f->c, &copts, CFG_WA, WA_USER(5), CONSENT_SINGLE_OPT_IN);
    wa_seed(f->c, &copts, CFG_WA, WA_USER(6), CONSENT_SINGLE_OPT_IN);
    start(f);
    url = testlistener_url(&f->t, "/webhooks/whatsapp");
    args[1] = url;
    assert_int_equal(emulator_start_script(&f->wa, EMULATOR_WHATSAPP, args), 0);
    free(url);
    *state = f;
    return 0;
}

/* POST /_emulator/<route> on the WhatsApp emulator; the answer's
 * delivery.listener_status. */
static long wa_webhook(struct fixture *f, const char *route, const char *json)
{
    cJSON *doc = NULL, *d;
    long status;

    assert_int_equal(emulator_control_json(&f->wa, "POST", route, json, &doc),
                     200);
    d = cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "delivery"),
                            "listener_status");
    if (!cJSON_IsNumber(d))
        fail_msg("%s: no listener_status", route);
    status = (long)d->valuedouble;
    cJSON_Delete(doc);
    return status;
}

/* Sends optin_request to `to` with OPT_OUT on its "No thanks" button;
 * returns the wamid (owned). */
static char *send_template(struct fixture *f, const char *to)
{
    char *url = xasprintf("%s/v21.0/" WA_PNID "/messages", f->wa.base_url);
    char *body = xasprintf(
        "{\"messaging_product\":\"whatsapp\",\"to\":\"%s\",\"type\":"
        "\"template\",\"template\":{\"name\":\"optin_request\",\"language\":"
        "{\"code\":\"en_US\"},\"components\":[{\"type\":\"body\","
        "\"parameters\":[{\"type\":\"text\",\"text\":\"Erika\"}]},{\"type\":"
        "\"button\",\"sub_type\":\"quick_reply\",\"index\":\"1\","
        "\"parameters\":[{\"type\":\"payload\",\"payload\":\"OPT_OUT\"}]}]}}",
        to);
    const char *headers[] = { "Authorization: Bearer optsync-wa-emulator-token",
                              "Content-Type: application/json", NULL };
    struct testhttp_req req = { "POST", url, headers, body, 0, NULL };
    struct testhttp_resp r;
    cJSON *j, *id;
    char *wamid;

    if (testhttp_call(&r, &req) != 200)
        fail_msg("send: %ld %s", r.status, r.body);
    j = jsonutil_parse(r.body, r.len);
    id = cJSON_GetObjectItem(
        cJSON_GetArrayItem(cJSON_GetObjectItem(j, "messages"), 0), "id");
    assert_true(cJSON_IsString(id));
    wamid = xstrdup(id->valuestring);
    cJSON_Delete(j);
    testhttp_resp_dispose(&r);
    free(body);
    free(url);
    return wamid;
}

static const char *last_source(struct fixture *f, const char *phone)
{
    static char buf[64];
    char *s = query_text(f,
                         "SELECT source FROM ledger WHERE phone = ?1 ORDER BY "
                         "seq DESC LIMIT 1",
                         phone);

    snprintf(buf, sizeof(buf), "%s", s ? s : "(none)");
    free(s);
    return buf;
}

/* The customer turned marketing off (no webhook of its own). */
static void control_wa_user_stops(struct fixture *f, const char *wa_id)
{
    char *json = xasprintf("{\"wa_id\":\"%s\",\"stop_marketing\":true}", wa_id);
    char *out = NULL;
    long status = emulator_control(&f->wa, "POST", "users", json, &out);

    if (status != 200 && status != 201)
        fail_msg("users: %ld %s", status, out ? out : "");
    free(out);
    free(json);
}

static void test_listener_emulators__whatsapp_end_to_end(void **state)
{
    struct fixture *f = *state;
    cJSON *doc = NULL;
    char *wamid, *json;

    /* Meta's handshake, right and wrong token */
    assert_int_equal(
        emulator_control_json(&f->wa, "POST", "verify",
                              "{\"verify_token\":\"" WA_VERIFY_TOKEN
                              "\",\"challenge\":\"8472\"}",
                              &doc),
        200);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(doc, "verified")));
    cJSON_Delete(doc);
    assert_int_equal(emulator_control_json(&f->wa, "POST", "verify",
                                           "{\"verify_token\":\"guess\"}",
                                           &doc),
                     200);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(doc, "verified")));
    assert_int_equal(cJSON_GetObjectItem(doc, "status")->valueint, 403);
    cJSON_Delete(doc);

    /* a text STOP */
    assert_int_equal(wa_webhook(f, "reply",
                                "{\"type\":\"text\",\"from\":\"" WA_USER(
                                    1) "\",\"phone_number_id\":\"" WA_PNID
                                       "\",\"text\":\"STOP\"}"),
                     200);
    assert_int_equal(wa_state_of(f->c, CFG_WA, WA_USER(1)), CONSENT_OPTED_OUT);
    assert_string_equal(last_source(f, WA_USER(1)), "whatsapp");
    /* a quick-reply tap on a sent template: the payload we put there */
    wamid = send_template(f, WA_USER(2));
    json =
        xasprintf("{\"type\":\"button\",\"wamid\":\"%s\",\"index\":1}", wamid);
    assert_int_equal(wa_webhook(f, "reply", json), 200);
    assert_int_equal(wa_state_of(f->c, CFG_WA, WA_USER(2)), CONSENT_OPTED_OUT);
    free(json);
    free(wamid);
    /* "stop marketing" in WhatsApp's settings */
    assert_int_equal(wa_webhook(f, "preferences",
                                "{\"wa_id\":\"49151123400"
                                "3\","
                                "\"phone_number_id\":\"" WA_PNID "\","
                                "\"value\":\"stop\"}"),
                     200);
    assert_int_equal(wa_state_of(f->c, CFG_WA, WA_USER(3)), CONSENT_OPTED_OUT);
    assert_string_equal(last_source(f, WA_USER(3)), "whatsapp_preference");
    /* an opt-in from someone new */
    assert_int_equal(wa_webhook(f, "reply",
                                "{\"type\":\"text\",\"from\":\"" WA_USER(
                                    4) "\",\"phone_number_id\":\"" WA_PNID
                                       "\",\"text\":\"Subscribe\"}"),
                     200);
    assert_int_equal(wa_state_of(f->c, CFG_WA, WA_USER(4)),
                     CONSENT_SINGLE_OPT_IN);
    /* a marketing template to a user who stopped marketing: 131050 */
    control_wa_user_stops(f, "49151123400"
                             "5");
    wamid = send_template(f, WA_USER(5));
    assert_int_equal(emulator_control(&f->wa, "POST", "wait",
                                      "{\"condition\":\"webhooks\",\"kind\":"
                                      "\"status\",\"count\":3,\"timeout\":120}",
                                      NULL),
                     200);
    assert_int_equal(wa_state_of(f->c, CFG_WA, WA_USER(5)), CONSENT_OPTED_OUT);
    assert_string_equal(last_source(f, WA_USER(5)), "whatsapp_status");
    free(wamid);
    /* wrongly signed: refused, nothing changed */
    json = wa_text_body(WA_PNID,
                        "49151123400"
                        "6",
                        "wamid.BAD1", 1767225600, "STOP");
    {
        cJSON *req = cJSON_CreateObject();
        char *text;

        cJSON_AddStringToObject(req, "body", json);
        cJSON_AddStringToObject(req, "signature", "wrong");
        text = cJSON_PrintUnformatted(req);
        assert_int_equal(wa_webhook(f, "deliver", text), 401);
        cJSON_DeleteItemFromObject(req, "signature");
        free(text);
        cJSON_Delete(req);
    }
    assert_int_equal(wa_state_of(f->c, CFG_WA, WA_USER(6)),
                     CONSENT_SINGLE_OPT_IN);
    free(json);
    assert_int_equal(count(f, "SELECT count(*) FROM ledger WHERE source LIKE "
                              "'whatsapp%'"),
                     5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define DV(name) cmocka_unit_test_setup_teardown(name, setup_dv, teardown)
        DV(test_listener_emulators__dataverse_every_message),
        DV(test_listener_emulators__dataverse_hints),
        DV(test_listener_emulators__dataverse_cascade),
        DV(test_listener_emulators__dataverse_auth_modes),
        DV(test_listener_emulators__dataverse_sync_step_refused),
        DV(test_listener_emulators__quarantine_then_sync),
        cmocka_unit_test_setup_teardown(
            test_listener_emulators__whatsapp_end_to_end, setup_wa, teardown),
#undef DV
    };
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
