/*
 * test_dv_webhook_emulator — the Dataverse webhook against its peer: the
 * emulator registers a service endpoint and steps (control API), a CRM
 * admin changes rows, and every POST it makes arrives at a receiver here
 * (libevent evhttp on loopback); each one is authenticated, parsed and
 * applied to a real cache that a full sync filled first.  Then the
 * re-fetch queue is run against the same emulator: partial, trimmed and
 * synchronous contexts, a number whose Configuration was not cached, a
 * row deleted meanwhile (404), and failures that back a row off.  After
 * each, a delta sync must find nothing the webhook got wrong.
 *
 * ctest-timeout: 300
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <sys/queue.h> /* before event2: TAILQ_FOREACH */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "auth.h"
#include "cache.h"
#include "clock.h"
#include "dataverse.h"
#include "dv_webhook.h"
#include "emulator_control.h"
#include "err.h"
#include "jsonutil.h"
#include "sync.h"
#include "testutil.h"
#include "xalloc.h"

#define CFG_A "6a1c0d6e-0000-4000-8000-00000000000a"
#define CFG_B "6a1c0d6e-0000-4000-8000-00000000000b"
#define CFG_NEW "6a1c0d6e-0000-4000-8000-0000000000c1"
#define NUM(i) "3f2e0000-0000-4000-8000-00000000000" #i
#define NUM_NEW "3f2e0000-0000-4000-8000-0000000000d1"
#define NUM_NEW2 "3f2e0000-0000-4000-8000-0000000000d2"
#define KEY "live-key"

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

/* ---- the receiver: what a listener would get -------------------------------
 */

struct received {
    cJSON *headers; /* names lower case */
    cJSON *query;   /* decoded parameters */
    char *body;
    size_t len;
};

#define RECEIVED_MAX 64

struct receiver {
    struct event_base *base;
    struct evhttp *http;
    pthread_t thread;
    pthread_mutex_t lock;
    struct received items[RECEIVED_MAX]; /* owned */
    int count;
    int port;
};

static cJSON *headers_json(struct evkeyvalq *in)
{
    cJSON *out = cJSON_CreateObject();
    struct evkeyval *kv;
    char *name;
    size_t i;

    TAILQ_FOREACH(kv, in, next)
    {
        name = xstrdup(kv->key);
        for (i = 0; name[i]; i++)
            name[i] = (char)tolower((unsigned char)name[i]);
        cJSON_AddStringToObject(out, name, kv->value);
        free(name);
    }
    return out;
}

static void on_request(struct evhttp_request *req, void *payload)
{
    struct receiver *rx = payload;
    struct evbuffer *buf = evhttp_request_get_input_buffer(req);
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq params;
    struct received r;

    r.headers = headers_json(evhttp_request_get_input_headers(req));
    TAILQ_INIT(&params);
    if (q)
        evhttp_parse_query_str(q, &params);
    r.query = headers_json(&params);
    evhttp_clear_headers(&params);
    r.len = evbuffer_get_length(buf);
    r.body = xmalloc(r.len + 1);
    evbuffer_remove(buf, r.body, r.len);
    r.body[r.len] = '\0';
    pthread_mutex_lock(&rx->lock);
    if (rx->count < RECEIVED_MAX)
        rx->items[rx->count++] = r;
    pthread_mutex_unlock(&rx->lock);
    /* Stored before the answer: once the emulator counts the delivery as
     * done, the item is here. */
    evhttp_send_reply(req, 200, "OK", NULL);
}

static void *receiver_loop(void *payload)
{
    struct receiver *rx = payload;

    event_base_dispatch(rx->base);
    return NULL;
}

static void receiver_start(struct receiver *rx)
{
    struct evhttp_bound_socket *sock;
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    memset(rx, 0, sizeof(*rx));
    pthread_mutex_init(&rx->lock, NULL);
    rx->base = event_base_new();
    rx->http = evhttp_new(rx->base);
    evhttp_set_gencb(rx->http, on_request, rx);
    sock = evhttp_bind_socket_with_handle(rx->http, "127.0.0.1", 0);
    assert_non_null(sock);
    assert_int_equal(getsockname(evhttp_bound_socket_get_fd(sock),
                                 (struct sockaddr *)&sin, &len),
                     0);
    rx->port = ntohs(sin.sin_port);
    assert_int_equal(pthread_create(&rx->thread, NULL, receiver_loop, rx), 0);
}

static void received_dispose(struct received *r)
{
    cJSON_Delete(r->headers);
    cJSON_Delete(r->query);
    free(r->body);
}

/* Moves what arrived so far to `out` (at most RECEIVED_MAX). */
static int receiver_take(struct receiver *rx, struct received *out)
{
    int n;

    pthread_mutex_lock(&rx->lock);
    n = rx->count;
    memcpy(out, rx->items, (size_t)n * sizeof(*out));
    rx->count = 0;
    pthread_mutex_unlock(&rx->lock);
    return n;
}

static void receiver_stop(struct receiver *rx)
{
    struct received left[RECEIVED_MAX];
    int n = receiver_take(rx, left), i;

    event_base_loopbreak(rx->base);
    pthread_join(rx->thread, NULL);
    evhttp_free(rx->http);
    event_base_free(rx->base);
    pthread_mutex_destroy(&rx->lock);
    for (i = 0; i < n; i++)
        received_dispose(&left[i]);
}

/* ---- fixture ----------------------------------------------------------------
 */

struct fixture {
    char *dir;
    struct receiver rx;
    struct emulator_proc emu;
    struct optsync_config *cfg;
    struct mapping *m;
    http *h;
    auth *a;
    dataverse *dv;
    cache *c;
    dv_webhook *wh;
    char *auth_saved; /* the config's own [dataverse_webhook] auth */
    int delivered;    /* deliveries the emulator finished since a reset */
};

static struct mapping *load_mapping(void)
{
    char *path = testutil_source_path("mapping/whatsapp4dynamics.json");
    struct mapping_problems p = { 0 };
    struct mapping *m = NULL;
    size_t len;
    char *text = testutil_read(path, &len);

    assert_int_equal(mapping_load(&m, text, len, &p), 0);
    mapping_problems_dispose(&p);
    free(text);
    free(path);
    return m;
}

static void sync_once(struct fixture *f)
{
    struct sync_options o = { 0 };
    struct sync_result r;
    syncer *s = NULL;

    assert_int_equal(syncer_new(&s, f->cfg, f->m, f->c, f->a, NULL), 0);
    if (sync_run(&r, s, &o) != 0)
        fail_msg("sync: %s", err_message());
    syncer_free(s);
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    struct http_options o = HTTP_OPTIONS_INIT;
    const char *args[] = { "--seed", NULL, "--quiet", NULL };
    static const char *const over[] = { "dataverse_webhook.key=" KEY,
                                        "dataverse_webhook.auth=header", NULL };
    char *path;

    f->dir = testutil_tmpdir();
    receiver_start(&f->rx);
    path = testutil_write(f->dir, "seed.json", seed, 0600);
    args[1] = path;
    assert_int_equal(emulator_start(&f->emu, args), 0);
    free(path);
    f->cfg = emulator_config(&f->emu, over);
    f->m = load_mapping();
    o.base_backoff_ms = 10;
    o.max_attempts = 2;
    assert_int_equal(http_new(&f->h, &o), 0);
    assert_int_equal(auth_new(&f->a, f->cfg, f->h), 0);
    assert_int_equal(dataverse_new(&f->dv, f->cfg, f->m, f->h, f->a), 0);
    path = xasprintf("%s/cache.db", f->dir);
    assert_int_equal(cache_open(&f->c, path, 0), 0);
    free(path);
    sync_once(f);
    assert_int_equal(dv_webhook_new(&f->wh, f->cfg, f->m), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    clock_set_fixed(0);
    if (f->auth_saved) /* the config frees its own string */
        f->cfg->dataverse_webhook.auth = f->auth_saved;
    dv_webhook_free(f->wh);
    cache_close(f->c);
    dataverse_free(f->dv);
    auth_free(f->a);
    http_free(f->h);
    mapping_free(f->m);
    config_free(f->cfg);
    emulator_stop(&f->emu);
    receiver_stop(&f->rx);
    testutil_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* ---- emulator helpers
 * ---------------------------------------------------------
 */

static void control_ok(struct fixture *f, const char *method, const char *route,
                       const char *json)
{
    char *out = NULL;
    long status = emulator_control(&f->emu, method, route, json, &out);

    if (status < 200 || status > 201)
        fail_msg("%s %s: %ld %s", method, route, status, out ? out : "");
    free(out);
}

/* Registers an endpoint pointing at the receiver; returns its id. */
static void endpoint_add(struct fixture *f, const char *authtype,
                         const char *authvalue, char *id_out)
{
    char *json = xasprintf("{\"name\":\"optsync\",\"url\":\"http://127.0.0.1:"
                           "%d/webhooks/dataverse\",\"authtype\":\"%s\","
                           "\"authvalue\":%s}",
                           f->rx.port, authtype, authvalue);
    char *out = NULL;
    cJSON *doc;

    assert_int_equal(
        emulator_control(&f->emu, "POST", "webhooks/endpoints", json, &out),
        201);
    doc = cJSON_Parse(out);
    snprintf(id_out, 64, "%s", cJSON_GetObjectItem(doc, "id")->valuestring);
    cJSON_Delete(doc);
    free(out);
    free(json);
}

/* A step on endpoint `ep`; `extra` adds members ("" for none). */
static void step_add(struct fixture *f, const char *ep, const char *message,
                     const char *table, int mode, const char *extra)
{
    char *json = xasprintf("{\"endpoint\":\"%s\",\"message\":\"%s\","
                           "\"table\":\"%s\",\"stage\":40,\"mode\":%d%s}",
                           ep, message, table, mode, extra);

    control_ok(f, "POST", "webhooks/steps", json);
    free(json);
}

/* Forgets endpoints, steps and the emulator's delivery records. */
static void steps_clear(struct fixture *f)
{
    control_ok(f, "POST", "reset", "{\"keep_data\":true}");
    f->delivered = 0;
}

static void wait_deliveries(struct fixture *f, int count)
{
    char *json = xasprintf("{\"condition\":\"deliveries\",\"count\":%d,"
                           "\"timeout\":120}",
                           count);

    assert_int_equal(emulator_control(&f->emu, "POST", "wait", json, NULL),
                     200);
    free(json);
}

static const char *json_lookup(const char *name, void *payload)
{
    const cJSON *v = cJSON_GetObjectItem(payload, name); /* any case */

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static struct dv_webhook_request request_of(const struct received *r)
{
    struct dv_webhook_request req = { json_lookup, r->headers, json_lookup,
                                      r->query };

    return req;
}

/*
 * What the route does with each POST received so far: auth, headers,
 * parse, apply.  Returns the outcomes in arrival order.
 */
static int deliver(struct fixture *f, enum dv_webhook_outcome *outcomes,
                   int max)
{
    struct received got[RECEIVED_MAX];
    struct dv_webhook_headers h;
    struct dv_webhook_request req;
    struct dv_webhook_event *ev;
    struct dv_webhook_result res;
    int n = receiver_take(&f->rx, got), i;

    assert_true(n <= max);
    for (i = 0; i < n; i++) {
        req = request_of(&got[i]);
        assert_int_equal(dv_webhook_auth_check(f->wh, &req),
                         DV_WEBHOOK_AUTH_OK);
        dv_webhook_headers_read(&h, &req);
        ev = NULL;
        if (dv_webhook_parse(&ev, f->m, got[i].body, got[i].len, &h) != 0)
            fail_msg("parse: %s", err_message());
        assert_int_equal(dv_webhook_apply(&res, f->wh, f->c, ev), 0);
        outcomes[i] = res.outcome;
        dv_webhook_event_free(ev);
        received_dispose(&got[i]);
    }
    return n;
}

static void expect_outcomes(struct fixture *f, const char *what,
                            const enum dv_webhook_outcome *want, int n)
{
    enum dv_webhook_outcome got[RECEIVED_MAX];
    int i;

    /* The wait counts every delivery since the last reset. */
    f->delivered += n;
    wait_deliveries(f, f->delivered);
    if (deliver(f, got, RECEIVED_MAX) != n)
        fail_msg("%s: not %d POSTs", what, n);
    for (i = 0; i < n; i++)
        if (got[i] != want[i])
            fail_msg("%s: POST %d %s, want %s", what, i,
                     dv_webhook_outcome_name(got[i]),
                     dv_webhook_outcome_name(want[i]));
}

/* ---- the cache --------------------------------------------------------------
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

/* "status/e164/active/version" of a number row, or NULL when absent. */
static char *number_state(struct fixture *f, const char *dv_id)
{
    return query_text(f,
                      "SELECT status || '/' || coalesce(e164, '-') || '/' || "
                      "active || '/' || coalesce(version, '-') FROM numbers "
                      "WHERE dv_id = ?1",
                      dv_id);
}

static void expect_number(struct fixture *f, const char *dv_id,
                          const char *prefix)
{
    char *s = number_state(f, dv_id);

    if (!prefix ? s != NULL : !s || strncmp(s, prefix, strlen(prefix)) != 0)
        fail_msg("%s: %s, want %s", dv_id, s ? s : "(none)",
                 prefix ? prefix : "(none)");
    free(s);
}

/* Every number row and configuration, for before/after a sync. */
static char *cache_dump(struct fixture *f)
{
    return query_text(
        f,
        "SELECT (SELECT group_concat(dv_id || '=' || status || '/' || "
        "coalesce(e164, '-') || '/' || active, ';') FROM (SELECT * FROM "
        "numbers ORDER BY dv_id)) || ' | ' || (SELECT group_concat(id || '=' "
        "|| name || '/' || coalesce(default_region, '-') || '/' || "
        "double_opt_in, ';') FROM (SELECT * FROM configurations ORDER BY id))",
        NULL);
}

/* The poller must find nothing to correct: the webhook's cache is the
 * one a delta sync leaves. */
static void expect_sync_agrees(struct fixture *f)
{
    char *before = cache_dump(f), *after;

    sync_once(f);
    after = cache_dump(f);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static long long queued_count(struct fixture *f)
{
    return testutil_query_int(f->c, "SELECT count(*) FROM dv_refetch");
}

/* ---- tests ------------------------------------------------------------------
 */

static const char post_image[] =
    ",\"images\":[{\"type\":\"post\",\"alias\":\"PostImage\"}]";

static void test_dv_webhook_emulator__every_message(void **state)
{
    struct fixture *f = *state;
    static const enum dv_webhook_outcome want[] = {
        DV_WEBHOOK_APPLIED, DV_WEBHOOK_APPLIED, DV_WEBHOOK_REMOVED,
        DV_WEBHOOK_APPLIED, DV_WEBHOOK_APPLIED, DV_WEBHOOK_APPLIED,
        DV_WEBHOOK_REMOVED,
    };
    char ep[64];
    char *name;

    endpoint_add(f, "HttpHeader", "{\"X-Optsync-Key\":\"" KEY "\"}", ep);
    step_add(f, ep, "Create", "number", 1, post_image);
    step_add(f, ep, "Update", "number", 1, post_image);
    step_add(f, ep, "Delete", "number", 1, "");
    step_add(f, ep, "Create", "configuration", 1, post_image);
    step_add(f, ep, "Update", "configuration", 1, post_image);
    step_add(f, ep, "Delete", "configuration", 1, "");
    control_ok(f, "POST", "admin/number",
               "{\"id\":\"" NUM_NEW "\",\"configuration\":\"" CFG_A "\","
               "\"phone\":\"0170 1234567\",\"status\":\"single_opt_in\"}");
    control_ok(f, "PATCH", "admin/number/" NUM(1),
               "{\"status\":\"opted_out\"}");
    control_ok(f, "DELETE", "admin/number/" NUM(5), NULL);
    control_ok(f, "PATCH", "admin/configuration/" CFG_A,
               "{\"name\":\"WA Main DE\"}");
    control_ok(f, "POST", "admin/configuration",
               "{\"id\":\"" CFG_NEW "\",\"name\":\"WA Promo\","
               "\"double_opt_in\":false,\"phone_number_id\":\"99\","
               "\"waba_id\":\"98\",\"default_region\":\"FR\"}");
    control_ok(f, "PATCH", "admin/number/" NUM(4), "{\"active\":false}");
    control_ok(f, "DELETE", "admin/configuration/" CFG_NEW, NULL);
    expect_outcomes(f, "every message", want, 7);
    expect_number(f, NUM_NEW, "1/+491701234567/1/"); /* DE region */
    expect_number(f, NUM(1), "3/+4915123456789/1/");
    expect_number(f, NUM(5), NULL);
    expect_number(f, NUM(4), "2/+442079460958/0/");
    name =
        query_text(f, "SELECT name FROM configurations WHERE id = ?1", CFG_A);
    assert_string_equal(name, "WA Main DE");
    free(name);
    assert_int_equal(queued_count(f), 0);
    expect_sync_agrees(f);
}

/* Sets [dataverse_webhook] auth for a test (teardown puts the config's
 * own string back). */
static void auth_mode(struct fixture *f, char *mode)
{
    if (!f->auth_saved)
        f->auth_saved = f->cfg->dataverse_webhook.auth;
    f->cfg->dataverse_webhook.auth = mode;
}

static void test_dv_webhook_emulator__auth_modes(void **state)
{
    struct fixture *f = *state;
    static const struct {
        char *mode;
        const char *authtype, *right, *wrong;
    } modes[] = {
        { "header", "HttpHeader", "{\"X-Optsync-Key\":\"" KEY "\"}",
          "{\"X-Optsync-Key\":\"" KEY "x\",\"X-Other\":\"" KEY "\"}" },
        { "webhookkey", "WebhookKey", "\"" KEY "\"", "\"" KEY "x\"" },
        { "querystring", "HttpQueryString",
          "{\"key\":\"" KEY "\",\"other\":\"x\"}",
          "{\"key\":\"" KEY "x\",\"code\":\"" KEY "\"}" },
    };
    struct received got[RECEIVED_MAX];
    struct dv_webhook_request req;
    char ep_right[64], ep_wrong[64];
    size_t i;
    int n, j, ok, refused;

    for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        steps_clear(f);
        endpoint_add(f, modes[i].authtype, modes[i].right, ep_right);
        endpoint_add(f, modes[i].authtype, modes[i].wrong, ep_wrong);
        step_add(f, ep_right, "Update", "number", 1, "");
        step_add(f, ep_wrong, "Update", "number", 1, "");
        control_ok(f, "PATCH", "admin/number/" NUM(3),
                   "{\"status\":\"double_opt_in\"}");
        wait_deliveries(f, 2);
        auth_mode(f, modes[i].mode);
        n = receiver_take(&f->rx, got);
        assert_int_equal(n, 2);
        for (ok = refused = j = 0; j < n; j++) {
            req = request_of(&got[j]);
            if (dv_webhook_auth_check(f->wh, &req) == DV_WEBHOOK_AUTH_OK)
                ok++;
            else
                refused++;
            /* and every other mode refuses what this endpoint sent */
            auth_mode(f, i == 0 ? "webhookkey" : "header");
            assert_int_equal(dv_webhook_auth_check(f->wh, &req),
                             DV_WEBHOOK_AUTH_UNAUTHORIZED);
            auth_mode(f, modes[i].mode);
            received_dispose(&got[j]);
        }
        if (ok != 1 || refused != 1)
            fail_msg("%s: %d accepted, %d refused", modes[i].mode, ok, refused);
    }
}

static void test_dv_webhook_emulator__hints_then_refetch(void **state)
{
    struct fixture *f = *state;
    static const enum dv_webhook_outcome queued1[] = { DV_WEBHOOK_QUEUED };
    struct dv_refetch_options o = DV_REFETCH_OPTIONS_INIT;
    struct dv_refetch_result r;
    char ep[64], big[320 * 1024 + 40];

    /* an Update without images carries only what changed */
    endpoint_add(f, "WebhookKey", "\"" KEY "\"", ep);
    auth_mode(f, "webhookkey");
    step_add(f, ep, "Update", "number", 1, "");
    control_ok(f, "PATCH", "admin/number/" NUM(2),
               "{\"status\":\"single_opt_in\"}");
    expect_outcomes(f, "partial", queued1, 1);
    /* a row deleted before the re-fetch reads it */
    control_ok(f, "PATCH", "admin/number/" NUM(1),
               "{\"status\":\"opted_out\"}");
    expect_outcomes(f, "partial", queued1, 1);
    /* a synchronous step: inside Dataverse's transaction */
    steps_clear(f);
    endpoint_add(f, "WebhookKey", "\"" KEY "\"", ep);
    step_add(f, ep, "Update", "number", 0, post_image);
    control_ok(f, "PATCH", "admin/number/" NUM(4),
               "{\"status\":\"opted_out\"}");
    expect_outcomes(f, "sync", queued1, 1);
    /* over 256 KB: trimmed */
    steps_clear(f);
    endpoint_add(f, "WebhookKey", "\"" KEY "\"", ep);
    step_add(f, ep, "Update", "number", 1,
             ",\"images\":[{\"type\":\"pre\",\"alias\":\"PreImage\"}]");
    memset(big, 'x', sizeof(big));
    memcpy(big, "{\"source\":\"", 11);
    memcpy(big + sizeof(big) - 3, "\"}", 3);
    control_ok(f, "PATCH", "admin/number/" NUM(3), big);
    control_ok(f, "PATCH", "admin/number/" NUM(3),
               "{\"status\":\"opted_out\"}");
    {
        static const enum dv_webhook_outcome two[] = { DV_WEBHOOK_QUEUED,
                                                       DV_WEBHOOK_QUEUED };

        expect_outcomes(f, "trimmed", two, 2);
    }
    /* a number of a Configuration the cache has not seen */
    steps_clear(f);
    control_ok(f, "POST", "admin/configuration",
               "{\"id\":\"" CFG_NEW "\",\"name\":\"WA Promo\","
               "\"double_opt_in\":false,\"default_region\":\"FR\"}");
    endpoint_add(f, "WebhookKey", "\"" KEY "\"", ep);
    step_add(f, ep, "Create", "number", 1, post_image);
    control_ok(f, "POST", "admin/number",
               "{\"id\":\"" NUM_NEW2 "\",\"configuration\":\"" CFG_NEW "\","
               "\"phone\":\"06 12 34 56 78\",\"status\":\"double_opt_in\"}");
    expect_outcomes(f, "configuration not cached", queued1, 1);
    control_ok(f, "DELETE", "admin/number/" NUM(1), NULL);

    /* nothing applied yet; six rows wait (N1, N2, N3, N4, CFG_NEW,
     * NUM_NEW2), N4 only after the sync step's delay */
    expect_number(f, NUM(2), "3/");
    expect_number(f, NUM(1), "2/");
    assert_int_equal(queued_count(f), 6);
    assert_int_equal(dv_webhook_refetch_run(&r, f->wh, f->c, f->dv, &o), 0);
    assert_int_equal(r.remaining, 1);
    assert_true(r.next_at > clock_now_ms());
    assert_int_equal(r.removed, 1);
    clock_set_fixed(clock_now_ms() + DV_REFETCH_UNCOMMITTED_DELAY_MS + 1000);
    assert_int_equal(dv_webhook_refetch_run(&r, f->wh, f->c, f->dv, &o), 0);
    assert_int_equal(r.applied, 1);
    assert_int_equal(r.remaining, 0);
    assert_int_equal(r.next_at, 0);
    expect_number(f, NUM(1), NULL);                  /* 404: deleted */
    expect_number(f, NUM(2), "1/");                  /* single */
    expect_number(f, NUM(3), "3/");                  /* read whole */
    expect_number(f, NUM(4), "3/");                  /* committed */
    expect_number(f, NUM_NEW2, "2/+33612345678/1/"); /* FR region */
    expect_sync_agrees(f);
}

static void test_dv_webhook_emulator__refetch_failures(void **state)
{
    struct fixture *f = *state;
    struct dv_refetch_options o = DV_REFETCH_OPTIONS_INIT;
    struct dv_refetch_result r;
    int64_t now = clock_now_ms();
    int rc;

    clock_set_fixed(now);
    control_ok(f, "PATCH", "admin/number/" NUM(2),
               "{\"status\":\"double_opt_in\"}");
    control_ok(f, "PATCH", "admin/number/" NUM(3),
               "{\"status\":\"opted_out\"}");
    assert_int_equal(cache_begin(f->c), 0);
    assert_int_equal(dv_webhook_refetch_queue(f->c, DV_NUMBER, NUM(2), "t", 0),
                     0);
    assert_int_equal(dv_webhook_refetch_queue(f->c, DV_NUMBER, NUM(3), "t", 0),
                     0);
    assert_int_equal(cache_commit(f->c), 0);
    /* a 400 for one row: that row waits, the run goes on */
    control_ok(f, "POST", "faults",
               "{\"type\":\"status\",\"status\":400,\"count\":1,"
               "\"match\":{\"kind\":\"retrieve\"}}");
    assert_int_equal(dv_webhook_refetch_run(&r, f->wh, f->c, f->dv, &o), 0);
    assert_int_equal(r.deferred, 1);
    assert_int_equal(r.fetched, 1);
    assert_int_equal(r.remaining, 1);
    assert_int_equal(r.next_at, now + DV_REFETCH_FIRST_BACKOFF_MS);
    /* Dataverse unavailable: the run stops, the row backs off further */
    control_ok(f, "POST", "faults",
               "{\"type\":\"status\",\"status\":503,"
               "\"match\":{\"kind\":\"retrieve\"}}");
    clock_set_fixed(now + DV_REFETCH_FIRST_BACKOFF_MS);
    rc = dv_webhook_refetch_run(&r, f->wh, f->c, f->dv, &o);
    assert_true(rc == ERR_FAIL || rc == ERR_THROTTLED);
    assert_true(err_message()[0] != '\0');
    assert_int_equal(r.deferred, 1);
    assert_int_equal(r.remaining, 1);
    assert_int_equal(r.next_at, now + 3 * DV_REFETCH_FIRST_BACKOFF_MS);
    assert_int_equal(testutil_query_int(f->c, "SELECT attempts FROM "
                                              "dv_refetch"),
                     2);
    control_ok(f, "DELETE", "faults", NULL);
    clock_set_fixed(now + 3 * DV_REFETCH_FIRST_BACKOFF_MS);
    assert_int_equal(dv_webhook_refetch_run(&r, f->wh, f->c, f->dv, &o), 0);
    assert_int_equal(r.applied, 1);
    assert_int_equal(r.remaining, 0);
    expect_number(f, NUM(2), "2/");
    expect_number(f, NUM(3), "3/");
    expect_sync_agrees(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dv_webhook_emulator__every_message,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook_emulator__auth_modes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_dv_webhook_emulator__hints_then_refetch, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_dv_webhook_emulator__refetch_failures, setup, teardown),
    };

    evthread_use_pthreads();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
