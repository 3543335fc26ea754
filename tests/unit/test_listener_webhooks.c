/*
 * test_listener_webhooks — the webhook routes over real HTTP (libcurl on
 * loopback, the listener in process on port 0, its cache checked through
 * the test's own connection):
 *
 *   - every WhatsApp case of tests/support/wa_cases.c (each fixture of
 *     tests/data/whatsapp/, the derived cases, the On-Premise bodies on
 *     /webhooks/whatsapp/{configuration}) POSTed signed has its effect;
 *   - wrong, missing, sha1=, truncated, longer and shifted signatures and
 *     a body changed after signing: 401 and no state change; 360dialog's
 *     secret header; the GET handshake;
 *   - malformed bodies (400) and too many items or bytes (413) apply
 *     nothing; 503 and nothing applied when the commit fails (the
 *     sqlite_step fault seam); duplicates, also across a restart;
 *   - a BSUID linked by one delivery replays the quarantined events
 *     waiting for it; a STOP's 200 is followed by the gate's deny; old
 *     de-duplication keys and finished rows (retention.h) are pruned by
 *     the housekeeping thread, counted in /metrics;
 *   - many concurrent clients POSTing signed STOPs with unique ids: no
 *     event lost or doubled (ledger entries, keys and outbox rows
 *     counted);
 *   - the Dataverse route: each auth mode right and wrong, 404 without a
 *     key, 400 for a malformed context, duplicates, the re-fetch hook;
 *   - metrics per route and result; the log lines (one per delivery,
 *     no payload, phone number or secret).
 *
 * Deliveries the Dataverse and WhatsApp emulators make themselves are in
 * test_listener_emulators.c.
 *
 * ctest-timeout: 600
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "cache.h"
#include "clock.h"
#include "consent.h"
#include "err.h"
#include "fault.h"
#include "jsonutil.h"
#include "log.h"
#include "metrics.h"
#include "testhttp.h"
#include "testutil.h"
#include "wa_cases.h"
#include "xalloc.h"

#define KEY "test-api-key-0123456789"
#define DV_KEY "dv-webhook-key-0123"
#define HEADER_SECRET "s3cret-header-value"

struct fixture {
    struct testlistener t;
    cache *c; /* the test's own connection */
    struct consent_options copts;
    atomic_int refetches; /* listener_on_refetch calls */
};

/* ---- fixture ---------------------------------------------------------------
 */

static void synced_now(cache *c)
{
    sqlite3_stmt *st = cache_stmt(
        c, "INSERT INTO sync_runs(kind, started_at, finished_at, ok) "
           "VALUES ('full', ?1, ?1, 1)");

    cache_bind_int(st, 1, clock_now_ms());
    assert_int_equal(cache_step(st), SQLITE_DONE);
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));

    clock_set_fixed(WA_NOW);
    metrics_reset();
    log_level_current = LOG_WARN;
    testlistener_init(&f->t);
    testlistener_set(&f->t, "listener.api_key=%s", KEY);
    testlistener_set(&f->t, "listener.max_body=2MiB");
    testlistener_set(&f->t, "listener.threads=2");
    testlistener_set(&f->t, "whatsapp.app_secret=%s", WA_SECRET);
    testlistener_set(&f->t, "whatsapp.verify_token=%s", WA_VERIFY_TOKEN);
    testlistener_set(&f->t, "dataverse_webhook.key=%s", DV_KEY);
    testlistener_set(&f->t, "dataverse_webhook.auth=header");
    assert_int_equal(cache_open(&f->c, f->t.db, 0), 0);
    wa_put_configurations(f->c, 0);
    synced_now(f->c);
    f->copts.double_opt_in_window = 7 * 24 * 3600 * 1000LL;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    fault_disarm_all();
    cache_close(f->c);
    testlistener_dispose(&f->t);
    clock_set_fixed(0);
    free(f);
    return 0;
}

static void on_refetch(void *payload)
{
    struct fixture *f = payload;

    atomic_fetch_add(&f->refetches, 1);
}

static void hooks(listener *l, void *payload)
{
    listener_on_refetch(l, on_refetch, payload);
}

static void run(struct fixture *f)
{
    testlistener_start(&f->t, hooks, f);
}

static long long count(struct fixture *f, const char *sql)
{
    return testutil_query_int(f->c, sql);
}

/* ---- HTTP ------------------------------------------------------------------
 */

/* POSTs `len` bytes of `body` to `path` with `headers`; returns the
 * status, the answer's JSON in *json when asked for. */
static long post_raw(struct fixture *f, const char *path, const char *body,
                     size_t len, const char *const *headers, cJSON **json)
{
    char *url = testlistener_url(&f->t, path);
    struct testhttp_req req = { "POST", url, headers, body, len, NULL };
    struct testhttp_resp r;
    long status = testhttp_call(&r, &req);

    if (json) {
        *json = jsonutil_parse(r.body, r.len);
        if (!*json)
            fail_msg("POST %s: %ld, not JSON: %s", path, status, r.body);
    }
    testhttp_resp_dispose(&r);
    free(url);
    return status;
}

/* POSTs `body` signed with the app secret. */
static long post_signed(struct fixture *f, const char *path, const char *body,
                        cJSON **json)
{
    char *sig = wa_sign(WA_SECRET, body, strlen(body));
    char *line = xasprintf("X-Hub-Signature-256: %s", sig);
    const char *headers[] = { line, "Content-Type: application/json", NULL };
    long status = post_raw(f, path, body, strlen(body), headers, json);

    free(line);
    free(sig);
    return status;
}

static int int_of(const cJSON *j, const char *name)
{
    const cJSON *v = cJSON_GetObjectItem(j, name);

    if (!cJSON_IsNumber(v))
        fail_msg("no number %s in the answer", name);
    return v->valueint;
}

/* The route for a case: /webhooks/whatsapp[/{configuration}]. */
static char *wa_path(const char *path_cfg)
{
    char *esc, *path;

    if (!path_cfg)
        return xstrdup("/webhooks/whatsapp");
    esc = curl_easy_escape(NULL, path_cfg, 0);
    path = xasprintf("/webhooks/whatsapp/%s", esc);
    curl_free(esc);
    return path;
}

/* Polls the database until `sql` gives `want` (a condition another
 * thread makes true), failing after the deadline. */
static void wait_for(struct fixture *f, const char *sql, long long want)
{
    struct timespec pause = { 0, 2 * 1000 * 1000 };
    time_t until = time(NULL) + TESTHTTP_DEADLINE_S;

    while (count(f, sql) != want) {
        if (time(NULL) > until)
            fail_msg("still %lld, not %lld: %s", count(f, sql), want, sql);
        nanosleep(&pause, NULL);
    }
}

/* ---- WhatsApp: every case of the table -------------------------------------
 */

static void
test_listener_webhooks__whatsapp_cases_have_their_effect(void **state)
{
    size_t i;

    for (i = 0; i < wa_n_effects; i++) {
        const struct wa_effect *e = &wa_effects[i];
        struct fixture *f;
        struct wa_snapshot before;
        char name[160], *body, *path;
        cJSON *j = NULL;
        long status;

        if (i) {
            teardown(state);
            setup(state);
        }
        f = *state;
        wa_effect_name(name, sizeof(name), e);
        if (e->doi)
            wa_put_configurations(f->c, 1);
        wa_seed(f->c, &f->copts, e->cfg, e->phone, e->before);
        run(f);
        wa_snap(&before, f->c);
        body = wa_effect_body(e);
        path = wa_path(e->path_cfg);
        status = post_signed(f, path, body, &j);
        if (status != 200)
            fail_msg("%s: %ld", name, status);
        wa_effect_check(f->c, e, &before, int_of(j, "duplicates"));
        assert_int_equal(int_of(j, "transitions"), e->transitions);
        cJSON_Delete(j);
        free(path);
        free(body);
    }
}

/* ---- WhatsApp: who may post --------------------------------------------- */

static void
test_listener_webhooks__whatsapp_bad_signatures_change_nothing(void **state)
{
    struct fixture *f = *state;
    char *body = wa_derive_body("text_reply.json", WA_TEXT_BODY, "STOP");
    size_t len = strlen(body), i;
    char *good = wa_sign(WA_SECRET, body, len);
    char *other = wa_sign("another-secret", body, len);
    char *lines[9];
    struct wa_snapshot before, after;

    wa_seed(f->c, &f->copts, CFG_IL, IL, CONSENT_SINGLE_OPT_IN);
    run(f);
    lines[0] = xasprintf("X-Hub-Signature-256: %s", other);
    lines[1] = xasprintf("X-Hub-Signature-256: sha1=%s", good + 7);
    lines[2] = xasprintf("X-Hub-Signature-256: %.*s", 7 + 63, good);
    lines[3] = xasprintf("X-Hub-Signature-256: %s0", good);
    lines[4] = xasprintf("X-Hub-Signature-256: sha256=");
    lines[5] = xasprintf("X-Hub-Signature-256: sha256:%s", good + 7);
    lines[6] = xasprintf("X-Hub-Signature: sha256=%s", good + 7);
    lines[7] = xasprintf("Authorization: Bearer %s", WA_SECRET);
    lines[8] = NULL;
    wa_snap(&before, f->c);
    for (i = 0; lines[i]; i++) {
        const char *h[] = { lines[i], NULL };

        if (post_raw(f, "/webhooks/whatsapp", body, len, h, NULL) != 401)
            fail_msg("accepted: %s", lines[i]);
    }
    { /* the right signature over other bytes: one byte less */
        const char *h[] = { lines[0], NULL };
        char *right = xasprintf("X-Hub-Signature-256: %s", good);

        h[0] = right;
        assert_int_equal(
            post_raw(f, "/webhooks/whatsapp", body, len - 1, h, NULL), 401);
        wa_snap(&after, f->c);
        assert_memory_equal(&before, &after, sizeof(before));
        assert_int_equal(wa_state_of(f->c, CFG_IL, IL), CONSENT_SINGLE_OPT_IN);
        assert_int_equal(count(f, "SELECT count(*) FROM inbound_seen"), 0);
        /* and the same bytes, signed right, do apply */
        assert_int_equal(post_raw(f, "/webhooks/whatsapp", body, len, h, NULL),
                         200);
        assert_int_equal(wa_state_of(f->c, CFG_IL, IL), CONSENT_OPTED_OUT);
        free(right);
    }
    assert_int_equal(metrics_webhook_count(METRICS_WEBHOOK_WHATSAPP,
                                           METRICS_RESULT_UNAUTHORIZED),
                     9);
    for (i = 0; lines[i]; i++)
        free(lines[i]);
    free(good);
    free(other);
    free(body);
}

/* 360dialog signs nothing: [whatsapp] auth = header. */
static void test_listener_webhooks__whatsapp_secret_header(void **state)
{
    struct fixture *f = *state;
    const char *body = ONPREM_STOP;
    const char *none[] = { NULL };
    const char *wrong[] = { "X-Optsync-Key: s3cret", NULL };
    const char *longer[] = { "X-Optsync-Key: " HEADER_SECRET "x", NULL };
    const char *right[] = { "X-Optsync-Key: " HEADER_SECRET, NULL };
    char *sig = wa_sign(WA_SECRET, body, strlen(body));
    char *meta = xasprintf("X-Hub-Signature-256: %s", sig);
    const char *signed_[] = { meta, NULL };
    const char *path = "/webhooks/whatsapp/WA%20Israel";

    testlistener_set(&f->t, "whatsapp.auth=header");
    testlistener_set(&f->t, "whatsapp.header_name=X-Optsync-Key");
    testlistener_set(&f->t, "whatsapp.header_value=%s", HEADER_SECRET);
    wa_seed(f->c, &f->copts, CFG_IL, IL, CONSENT_SINGLE_OPT_IN);
    run(f);
    assert_int_equal(post_raw(f, path, body, 0, none, NULL), 401);
    assert_int_equal(post_raw(f, path, body, 0, wrong, NULL), 401);
    assert_int_equal(post_raw(f, path, body, 0, longer, NULL), 401);
    /* a Meta signature is no use in this mode */
    assert_int_equal(post_raw(f, path, body, 0, signed_, NULL), 401);
    assert_int_equal(wa_state_of(f->c, CFG_IL, IL), CONSENT_SINGLE_OPT_IN);
    assert_int_equal(count(f, "SELECT count(*) FROM inbound_seen"), 0);
    assert_int_equal(post_raw(f, path, body, 0, right, NULL), 200);
    assert_int_equal(wa_state_of(f->c, CFG_IL, IL), CONSENT_OPTED_OUT);
    free(meta);
    free(sig);
}

static long get_text(struct fixture *f, const char *path, char *out, size_t cap,
                     char *ctype, size_t ccap)
{
    char *url = testlistener_url(&f->t, path);
    struct testhttp_req req = { NULL, url, NULL, NULL, 0, NULL };
    struct testhttp_resp r;
    long status = testhttp_call(&r, &req);

    snprintf(out, cap, "%s", r.body);
    snprintf(ctype, ccap, "%s", r.content_type);
    testhttp_resp_dispose(&r);
    free(url);
    return status;
}

static void test_listener_webhooks__whatsapp_handshake(void **state)
{
    struct fixture *f = *state;
    static const char *const refused[] = {
        "/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=1&"
        "hub.verify_token=wrong",
        "/webhooks/whatsapp?hub.mode=unsubscribe&hub.challenge=1&"
        "hub.verify_token=" WA_VERIFY_TOKEN,
        "/webhooks/"
        "whatsapp?hub.mode=subscribe&hub.verify_token=" WA_VERIFY_TOKEN,
        "/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=1&"
        "hub.verify_token=" WA_VERIFY_TOKEN "4",
        "/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=%3Cb%3E%0D%0A&"
        "hub.verify_token=" WA_VERIFY_TOKEN,
        "/webhooks/whatsapp",
    };
    char body[256], ctype[128];
    size_t i;

    run(f);
    assert_int_equal(get_text(f,
                              "/webhooks/whatsapp?hub.mode=subscribe&"
                              "hub.challenge=1158201444&hub.verify_token="
                              "verify%2Dtoken%2D123",
                              body, sizeof(body), ctype, sizeof(ctype)),
                     200);
    assert_string_equal(body, "1158201444");
    assert_non_null(strstr(ctype, "text/plain"));
    for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        if (get_text(f, refused[i], body, sizeof(body), ctype, sizeof(ctype)) !=
            403)
            fail_msg("verified: %s", refused[i]);
}

/* ---- WhatsApp: bodies that apply nothing -------------------------------- */

static void
test_listener_webhooks__whatsapp_malformed_and_oversize(void **state)
{
    struct fixture *f = *state;
    struct wa_snapshot before, after;
    struct strbuf sb;
    cJSON *j;
    size_t i;
    int k;

    wa_seed(f->c, &f->copts, CFG_IL, IL, CONSENT_SINGLE_OPT_IN);
    run(f);
    wa_snap(&before, f->c);
    for (i = 0; i < wa_n_malformed; i++) {
        long status =
            post_signed(f, "/webhooks/whatsapp", wa_malformed[i].body, NULL);

        if (status != wa_malformed[i].status)
            fail_msg("malformed %zu: %ld", i, status);
    }
    /* over CAP_WA_ITEMS: the parser says 413 */
    strbuf_init(&sb, 64 * 1024 * 1024);
    strbuf_adds(&sb, CLOUD_HEAD
                "\"messages\":[" STOP_MSG("wamid.OK9") "],"
                                                       "\"statuses\":[");
    for (k = 0; k <= 20000; k++)
        strbuf_addf(&sb,
                    "%s{\"id\":\"w%d\",\"status\":\"read\","
                    "\"timestamp\":\"1\"}",
                    k ? "," : "", k);
    strbuf_adds(&sb, "]" CLOUD_TAIL);
    assert_true(sb.len < 2 * 1024 * 1024);
    assert_int_equal(post_signed(f, "/webhooks/whatsapp", sb.data, &j), 413);
    assert_string_equal(jsonutil_str(j, "error"), "too_many_items");
    cJSON_Delete(j);
    /* over max_body (2 MiB): evhttp refuses before the handler runs */
    while (sb.len <= 2 * 1024 * 1024)
        strbuf_adds(&sb, "                                                ");
    assert_int_equal(post_signed(f, "/webhooks/whatsapp", sb.data, NULL), 413);
    strbuf_dispose(&sb);
    wa_snap(&after, f->c);
    assert_memory_equal(&before, &after, sizeof(before));
    assert_int_equal(wa_state_of(f->c, CFG_IL, IL), CONSENT_SINGLE_OPT_IN);
    assert_int_equal(metrics_webhook_count(METRICS_WEBHOOK_WHATSAPP,
                                           METRICS_RESULT_MALFORMED),
                     wa_n_malformed + 1);
    /* the same STOP, well formed, applies */
    assert_int_equal(post_signed(f, "/webhooks/whatsapp",
                                 CLOUD_HEAD "\"messages\":[" STOP_MSG(
                                     "wamid.OK1") "]" CLOUD_TAIL,
                                 NULL),
                     200);
    assert_int_equal(wa_state_of(f->c, CFG_IL, IL), CONSENT_OPTED_OUT);
}

/* A failing write answers 503 and leaves nothing, so Meta's retry
 * applies the delivery whole. */
static void test_listener_webhooks__whatsapp_not_committed_is_503(void **state)
{
    struct fixture *f = *state;
    char *body = wa_derive_body("text_reply.json", WA_TEXT_BODY, "STOP");
    int n, refused = 0;
    long status = 0;

    wa_seed(f->c, &f->copts, CFG_IL, IL, CONSENT_SINGLE_OPT_IN);
    run(f);
    /* Every step fails: the writer cannot even begin. */
    fault_arm(FAULT_SQLITE_STEP, 1, SQLITE_FULL, 1);
    assert_int_equal(post_signed(f, "/webhooks/whatsapp", body, NULL), 503);
    fault_disarm_all();
    /* Then one step at a time, wherever it falls (the writer, or the
     * item inside its savepoint): all or nothing each time. */
    for (n = 1; n < 60; n++) {
        fault_arm(FAULT_SQLITE_STEP, n, SQLITE_FULL, 0);
        status = post_signed(f, "/webhooks/whatsapp", body, NULL);
        fault_disarm_all();
        if (status == 200)
            break;
        assert_int_equal(status, 503);
        refused++;
        assert_int_equal(wa_state_of(f->c, CFG_IL, IL), CONSENT_SINGLE_OPT_IN);
        assert_int_equal(count(f, "SELECT count(*) FROM inbound_seen"), 0);
        assert_int_equal(count(f, "SELECT count(*) FROM outbox"), 0);
    }
    assert_int_equal(status, 200);
    assert_true(refused > 3);
    assert_int_equal(wa_state_of(f->c, CFG_IL, IL), CONSENT_OPTED_OUT);
    assert_int_equal(
        count(f, "SELECT count(*) FROM ledger WHERE to_status = 3"), 1);
    assert_true(metrics_webhook_count(METRICS_WEBHOOK_WHATSAPP,
                                      METRICS_RESULT_FAILED) >= 4);
    free(body);
}

/* ---- WhatsApp: exactly once, replay, the gate ------------------------------
 */

static void
test_listener_webhooks__whatsapp_duplicates_across_restart(void **state)
{
    struct fixture *f = *state;
    char *body = wa_derive_body("text_reply.json", WA_TEXT_BODY, "Subscribe");
    cJSON *j;

    run(f);
    assert_int_equal(post_signed(f, "/webhooks/whatsapp", body, &j), 200);
    assert_int_equal(int_of(j, "transitions"), 1);
    cJSON_Delete(j);
    assert_int_equal(post_signed(f, "/webhooks/whatsapp", body, &j), 200);
    assert_int_equal(int_of(j, "duplicates"), 1);
    assert_int_equal(int_of(j, "transitions"), 0);
    cJSON_Delete(j);
    testlistener_stop(&f->t);
    run(f); /* a new process would see exactly this cache */
    assert_int_equal(post_signed(f, "/webhooks/whatsapp", body, &j), 200);
    assert_int_equal(int_of(j, "duplicates"), 1);
    cJSON_Delete(j);
    assert_int_equal(wa_state_of(f->c, CFG_IL, IL), CONSENT_SINGLE_OPT_IN);
    assert_int_equal(count(f, "SELECT count(*) FROM ledger"), 1);
    assert_int_equal(count(f, "SELECT count(*) FROM outbox"), 1);
    assert_int_equal(metrics_webhook_count(METRICS_WEBHOOK_WHATSAPP,
                                           METRICS_RESULT_DUPLICATE),
                     2);
    free(body);
}

/* A username-only STOP waits in the quarantine until a delivery shows
 * the number beside the BSUID: the listener then replays at once. */
static void
test_listener_webhooks__whatsapp_new_link_replays_quarantine(void **state)
{
    struct fixture *f = *state;
    cJSON *j;

    wa_seed(f->c, &f->copts, CFG_US, "+4915112345678", CONSENT_SINGLE_OPT_IN);
    run(f);
    assert_int_equal(post_signed(f, "/webhooks/whatsapp",
                                 BSUID_ONLY("wamid.U2", "US.777", "STOP"), &j),
                     200);
    assert_int_equal(int_of(j, "quarantined"), 1);
    cJSON_Delete(j);
    assert_int_equal(count(f, "SELECT count(*) FROM quarantine WHERE reason = "
                              "'unknown_user' AND resolved_at IS NULL"),
                     1);
    assert_int_equal(wa_state_of(f->c, CFG_US, "+4915112345678"),
                     CONSENT_SINGLE_OPT_IN);
    /* a read receipt names the number beside the BSUID */
    assert_int_equal(
        post_signed(f, "/webhooks/whatsapp",
                    "{\"object\":\"whatsapp_business_account\",\"entry\":[{"
                    "\"id\":\"1\",\"changes\":[{\"field\":\"messages\","
                    "\"value\":{\"metadata\":{\"phone_number_id\":"
                    "\"123456123\"},\"statuses\":[{\"id\":\"wamid.S1\","
                    "\"status\":\"read\",\"timestamp\":1767225700,"
                    "\"recipient_id\":\"4915112345678\","
                    "\"recipient_user_id\":\"US.777\"}]}}]}]}",
                    NULL),
        200);
    wait_for(f,
             "SELECT count(*) FROM quarantine WHERE resolved_at IS NOT "
             "NULL",
             1);
    assert_int_equal(wa_state_of(f->c, CFG_US, "+4915112345678"),
                     CONSENT_OPTED_OUT);
    assert_int_equal(count(f, "SELECT count(*) FROM ledger WHERE source = "
                              "'whatsapp' AND to_status = 3"),
                     1);
}

static void gate_decision(struct fixture *f, const char *phone, char *out,
                          size_t cap)
{
    char *esc = curl_easy_escape(NULL, phone, 0);
    char *url = xasprintf("%s/v1/gate?configuration=WA%%20Israel&phone=%s",
                          f->t.base, esc);
    const char *headers[] = { "X-API-Key: " KEY, NULL };
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
    curl_free(esc);
    free(url);
}

/* The 200 comes after the commit, and the gate sees every commit: the
 * next decision already denies. */
static void test_listener_webhooks__whatsapp_stop_then_gate_denies(void **state)
{
    struct fixture *f = *state;
    char d[128], id[32], *body;
    int i;

    for (i = 0; i < 20; i++) {
        char phone[32];

        snprintf(phone, sizeof(phone), "+4915122%06d", i);
        wa_seed(f->c, &f->copts, CFG_IL, phone, CONSENT_SINGLE_OPT_IN);
    }
    run(f);
    for (i = 0; i < 20; i++) {
        char phone[32];

        snprintf(phone, sizeof(phone), "+4915122%06d", i);
        snprintf(id, sizeof(id), "wamid.G%d", i);
        gate_decision(f, phone, d, sizeof(d));
        assert_string_equal(d, "allow/allowed");
        body = wa_text_body("1122334455667", phone + 1, id, 1767225600, "STOP");
        assert_int_equal(post_signed(f, "/webhooks/whatsapp", body, NULL), 200);
        gate_decision(f, phone, d, sizeof(d));
        assert_string_equal(d, "deny/opted_out");
        free(body);
    }
}

/* ---- housekeeping ------------------------------------------------------- */

static void test_listener_webhooks__housekeeping_prunes_old_keys(void **state)
{
    struct fixture *f = *state;
    char *sql = xasprintf(
        "INSERT INTO inbound_seen(source, id, seen_at) VALUES "
        "('whatsapp', 'old', %lld), ('whatsapp_status', 'old/read', %lld), "
        "('whatsapp', 'recent', %lld), ('dataverse_webhook', 'old', %lld), "
        "('dataverse_webhook', 'recent', %lld); "
        "INSERT INTO dv_webhook_tombstones(entity, dv_id, deleted_at) VALUES "
        "('number', 'old', %lld), ('number', 'recent', %lld)",
        WA_NOW - 9 * 24 * 3600 * 1000LL, WA_NOW - 9 * 24 * 3600 * 1000LL,
        WA_NOW - 6 * 24 * 3600 * 1000LL, WA_NOW - 8 * 24 * 3600 * 1000LL,
        WA_NOW - 6 * 24 * 3600 * 1000LL, WA_NOW - 8 * 24 * 3600 * 1000LL,
        WA_NOW - 6 * 24 * 3600 * 1000LL);

    assert_int_equal(cache_exec(f->c, sql), 0);
    run(f); /* prunes once at start, then hourly */
    wait_for(f, "SELECT count(*) FROM inbound_seen WHERE id LIKE 'old%'", 0);
    wait_for(f,
             "SELECT count(*) FROM dv_webhook_tombstones WHERE dv_id = "
             "'old'",
             0);
    assert_int_equal(count(f, "SELECT count(*) FROM inbound_seen WHERE id = "
                              "'recent'"),
                     2);
    assert_int_equal(count(f, "SELECT count(*) FROM dv_webhook_tombstones"), 1);
    free(sql);
}

/* Waits until GET /metrics shows `line`. */
static void wait_metric(struct fixture *f, const char *line)
{
    struct timespec pause = { 0, 2 * 1000 * 1000 };
    time_t until = time(NULL) + TESTHTTP_DEADLINE_S;
    char *url = testlistener_url(&f->t, "/metrics");
    struct testhttp_req req = { NULL, url, NULL, NULL, 0, NULL };
    struct testhttp_resp r;
    int found = 0;

    while (!found) {
        assert_int_equal(testhttp_call(&r, &req), 200);
        found = strstr(r.body, line) != NULL;
        testhttp_resp_dispose(&r);
        if (!found && time(NULL) > until)
            fail_msg("/metrics never showed %s", line);
        if (!found)
            nanosleep(&pause, NULL);
    }
    free(url);
}

/* Finished rows older than keep_done (30d by default) go; pending, dead,
 * recent rows and the ledger stay (test_retention.c has the rule). */
static void
test_listener_webhooks__housekeeping_prunes_finished_rows(void **state)
{
    struct fixture *f = *state;
    long long old = WA_NOW - 31 * 24 * 3600 * 1000LL;
    long long recent = WA_NOW - 29 * 24 * 3600 * 1000LL;
    char *sql = xasprintf(
        "INSERT INTO outbox(id, number_local_id, configuration_id, e164, "
        "status, event_at, reason, state, created_at, updated_at, kind) "
        "VALUES (901, 901, 'c', '+1', 3, %lld, 'x', 'done', %lld, %lld, "
        "'dataverse'), (902, 902, 'c', '+1', 3, %lld, 'x', 'superseded', "
        "%lld, %lld, 'whatsapp'), (903, 903, 'c', '+1', 3, %lld, 'x', "
        "'done', %lld, %lld, 'whatsapp'), (904, 904, 'c', '+1', 3, %lld, "
        "'x', 'pending', %lld, %lld, 'dataverse'), (905, 905, 'c', '+1', 3, "
        "%lld, 'x', 'dead', %lld, %lld, 'dataverse'); "
        "INSERT INTO quarantine(id, received_at, source, reason, payload, "
        "resolved_at) VALUES (901, %lld, 'whatsapp', 'x', '{}', %lld); "
        "INSERT INTO ledger(seq, at, recorded_at, configuration_id, phone, "
        "from_status, to_status, source, evidence, hash) VALUES (901, %lld, "
        "%lld, 'c', '+1', 0, 3, 'whatsapp', '{}', 'h')",
        old, old, old, old, old, old, recent, recent, recent, old, old, old,
        old, old, old, old, old, old, old);

    assert_int_equal(cache_exec(f->c, sql), 0);
    run(f); /* prunes once at start, then hourly */
    wait_for(f, "SELECT count(*) FROM outbox WHERE id IN (901, 902)", 0);
    wait_for(f, "SELECT count(*) FROM quarantine WHERE id = 901", 0);
    assert_int_equal(count(f, "SELECT count(*) FROM outbox WHERE id IN "
                              "(903, 904, 905)"),
                     3);
    assert_int_equal(count(f, "SELECT count(*) FROM ledger WHERE seq = 901"),
                     1);
    /* Counted once the prune returns, just after its last commit. */
    wait_metric(f, "optsync_pruned_rows_total{table=\"outbox\"} 2\n");
    wait_metric(f, "optsync_pruned_rows_total{table=\"quarantine\"} 1\n");
    free(sql);
}

/* ---- many clients at once ------------------------------------------------ */

#define CLIENTS 8
#define PER_CLIENT 40

struct client {
    struct fixture *f;
    int index;
    int ok; /* 200s */
};

static void phone_of(char *out, size_t cap, int client, int i)
{
    snprintf(out, cap, "+4915133%03d%03d", client, i);
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    CURL *h = curl_easy_init();
    char *url = testlistener_url(&c->f->t, "/webhooks/whatsapp");
    char phone[32], id[64], *body, *sig, *line;
    struct testhttp_resp r;
    int i;

    for (i = 0; i < PER_CLIENT; i++) {
        phone_of(phone, sizeof(phone), c->index, i);
        snprintf(id, sizeof(id), "wamid.C%d.%d", c->index, i);
        body = wa_text_body("1122334455667", phone + 1, id, 1767225600 + i,
                            "STOP");
        sig = wa_sign(WA_SECRET, body, strlen(body));
        line = xasprintf("X-Hub-Signature-256: %s", sig);
        {
            const char *headers[] = { line, NULL };
            struct testhttp_req req = { "POST", url, headers, body, 0, h };

            if (testhttp_do(&r, &req) == CURLE_OK && r.status == 200)
                c->ok++;
            testhttp_resp_dispose(&r);
        }
        free(line);
        free(sig);
        free(body);
    }
    curl_easy_cleanup(h);
    free(url);
    return NULL;
}

static void test_listener_webhooks__whatsapp_concurrent_replies(void **state)
{
    struct fixture *f = *state;
    struct client clients[CLIENTS];
    pthread_t th[CLIENTS];
    struct writer_stats st;
    char phone[32];
    int i, k, ok = 0;

    for (i = 0; i < CLIENTS; i++)
        for (k = 0; k < PER_CLIENT; k++) {
            phone_of(phone, sizeof(phone), i, k);
            wa_seed(f->c, &f->copts, CFG_IL, phone, CONSENT_SINGLE_OPT_IN);
        }
    run(f);
    for (i = 0; i < CLIENTS; i++) {
        clients[i] = (struct client){ f, i, 0 };
        assert_int_equal(pthread_create(&th[i], NULL, client_main, &clients[i]),
                         0);
    }
    for (i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        ok += clients[i].ok;
    }
    assert_int_equal(ok, CLIENTS * PER_CLIENT);
    /* each event exactly once: one key, one ledger entry, one outbox row */
    assert_int_equal(count(f, "SELECT count(*) FROM inbound_seen WHERE "
                              "source = 'whatsapp' AND id LIKE 'wamid.C%'"),
                     CLIENTS * PER_CLIENT);
    assert_int_equal(count(f, "SELECT count(*) FROM ledger WHERE source = "
                              "'whatsapp' AND to_status = 3"),
                     CLIENTS * PER_CLIENT);
    assert_int_equal(count(f, "SELECT count(DISTINCT phone) FROM ledger WHERE "
                              "source = 'whatsapp'"),
                     CLIENTS * PER_CLIENT);
    assert_int_equal(count(f, "SELECT count(*) FROM outbox"),
                     CLIENTS * PER_CLIENT);
    assert_int_equal(count(f, "SELECT count(*) FROM numbers WHERE "
                              "e164 LIKE '+4915133%' AND status = 3"),
                     CLIENTS * PER_CLIENT);
    writer_stats(&st, listener_writer(f->t.l));
    assert_int_equal(st.failed, 0);
    print_message("concurrent replies: %llu items in %llu transactions\n",
                  (unsigned long long)st.items,
                  (unsigned long long)st.transactions);
}

/* ---- Dataverse ---------------------------------------------------------- */

/* POSTs tests/data/dv_webhook/<name>.json with the headers it was
 * captured with (but the key), plus `auth` (a header line or NULL) to
 * /webhooks/dataverse`query`. */
static char *data_file(const char *name, const char *ext)
{
    char *rel = xasprintf("tests/data/dv_webhook/%s%s", name, ext);
    char *path = testutil_source_path(rel);
    char *text = testutil_read(path, NULL);

    free(path);
    free(rel);
    return text;
}

static long dv_post(struct fixture *f, const char *name, const char *auth,
                    const char *query, cJSON **json)
{
    char *body = data_file(name, ".json");
    char *htext = data_file(name, ".headers.json");
    char *path = xasprintf("/webhooks/dataverse%s", query ? query : "");
    cJSON *hj = cJSON_Parse(htext), *h;
    char *lines[16];
    size_t n = 0;
    long status;

    cJSON_ArrayForEach(h, hj)
    {
        if (strcmp(h->string, "x-optsync-key") != 0 && n < 14)
            lines[n++] = xasprintf("%s: %s", h->string, h->valuestring);
    }
    if (auth)
        lines[n++] = xstrdup(auth);
    lines[n] = NULL;
    status =
        post_raw(f, path, body, strlen(body), (const char *const *)lines, json);
    while (n)
        free(lines[--n]);
    cJSON_Delete(hj);
    free(htext);
    free(body);
    free(path);
    return status;
}

/* The captured changes are older than setup's sync, which would make
 * every row not cached a hint (dv_webhook.h note 5): no sync here. */
static void never_synced(struct fixture *f)
{
    assert_int_equal(cache_exec(f->c, "DELETE FROM sync_runs"), 0);
}

static const char *outcome_of(cJSON *j)
{
    const char *s = jsonutil_str(j, "outcome");

    return s ? s : "(none)";
}

static void dv_post_outcome(struct fixture *f, const char *name,
                            const char *auth, const char *query,
                            const char *want)
{
    cJSON *j;

    assert_int_equal(dv_post(f, name, auth, query, &j), 200);
    assert_string_equal(outcome_of(j), want);
    cJSON_Delete(j);
}

static long long dv_state(struct fixture *f)
{
    return count(f, "SELECT (SELECT count(*) FROM inbound_seen WHERE source = "
                    "'dataverse_webhook') + (SELECT count(*) FROM dv_refetch)"
                    " + (SELECT count(*) FROM configurations)");
}

static void test_listener_webhooks__dataverse_auth_modes(void **state)
{
    static const struct {
        const char *mode, *right_header, *right_query;
        const char *wrong_header, *wrong_query;
    } modes[] = {
        { "header", "X-Optsync-Key: " DV_KEY, NULL,
          "X-Optsync-Key: " DV_KEY "x", "?code=" DV_KEY },
        { "webhookkey", NULL, "?code=" DV_KEY, "X-Optsync-Key: " DV_KEY,
          "?code=" DV_KEY "x" },
        { "querystring", NULL, "?key=" DV_KEY, NULL, "?code=" DV_KEY },
    };
    size_t i;

    for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        struct fixture *f;
        long long before;

        if (i) {
            teardown(state);
            setup(state);
        }
        f = *state;
        testlistener_set(&f->t, "dataverse_webhook.auth=%s", modes[i].mode);
        never_synced(f);
        run(f);
        before = dv_state(f);
        assert_int_equal(dv_post(f, "configuration_delete_async",
                                 modes[i].wrong_header, modes[i].wrong_query,
                                 NULL),
                         401);
        assert_int_equal(
            dv_post(f, "configuration_delete_async", NULL, NULL, NULL), 401);
        assert_int_equal(dv_state(f), before); /* nothing parsed, kept */
        dv_post_outcome(f, "configuration_delete_async", modes[i].right_header,
                        modes[i].right_query, "removed");
        dv_post_outcome(f, "configuration_delete_async", modes[i].right_header,
                        modes[i].right_query, "duplicate");
        assert_int_equal(metrics_webhook_count(METRICS_WEBHOOK_DATAVERSE,
                                               METRICS_RESULT_UNAUTHORIZED),
                         2);
    }
}

static void
test_listener_webhooks__dataverse_disabled_malformed_hints(void **state)
{
    struct fixture *f = *state;
    const char *const key = "X-Optsync-Key: " DV_KEY;
    const char *bad[] = { key, NULL };
    cJSON *j;

    never_synced(f);
    run(f);
    /* malformed: nothing applied, 400 with a reason */
    assert_int_equal(
        post_raw(f, "/webhooks/dataverse", "{\"MessageName\":", 0, bad, &j),
        400);
    assert_string_equal(jsonutil_str(j, "error"), "bad_request");
    cJSON_Delete(j);
    assert_int_equal(post_raw(f, "/webhooks/dataverse", "[]", 0, bad, NULL),
                     400);
    assert_int_equal(dv_state(f), 5); /* the five Configurations of setup */
    /* an Update without a post image is a hint: queued, the hook runs */
    dv_post_outcome(f, "number_update_async", key, NULL, "queued");
    assert_int_equal(atomic_load(&f->refetches), 1);
    assert_int_equal(count(f, "SELECT count(*) FROM dv_refetch"), 1);
    dv_post_outcome(f, "number_update_async", key, NULL, "duplicate");
    assert_int_equal(atomic_load(&f->refetches), 1);
    assert_int_equal(
        metrics_webhook_count(METRICS_WEBHOOK_DATAVERSE, METRICS_RESULT_QUEUED),
        1);
    /* without a key the route is off */
    testlistener_stop(&f->t);
    testlistener_set(&f->t, "dataverse_webhook.key=");
    run(f);
    assert_int_equal(dv_post(f, "number_update_async", key, NULL, NULL), 404);
    assert_int_equal(dv_post(f, "number_update_async", NULL, NULL, NULL), 404);
}

/* ---- metrics ---------------------------------------------------------------
 */

static void test_listener_webhooks__metrics(void **state)
{
    struct fixture *f = *state;
    char *stop = wa_derive_body("text_reply.json", WA_TEXT_BODY, "STOP");
    char *unknown = wa_text_body("555000111", "972987654321", "wamid.Q1",
                                 1767225600, "STOP");
    char *url;
    const char *no_sig[] = { NULL };
    struct testhttp_req req = { NULL, NULL, NULL, NULL, 0, NULL };
    struct testhttp_resp r;

    wa_seed(f->c, &f->copts, CFG_IL, IL, CONSENT_SINGLE_OPT_IN);
    run(f);
    assert_int_equal(post_signed(f, "/webhooks/whatsapp", stop, NULL), 200);
    assert_int_equal(post_signed(f, "/webhooks/whatsapp", stop, NULL), 200);
    assert_int_equal(post_raw(f, "/webhooks/whatsapp", stop, 0, no_sig, NULL),
                     401);
    assert_int_equal(post_signed(f, "/webhooks/whatsapp", "{", NULL), 400);
    assert_int_equal(post_signed(f, "/webhooks/whatsapp", unknown, NULL), 200);
    url = testlistener_url(&f->t, "/metrics");
    req.url = url;
    assert_int_equal(testhttp_call(&r, &req), 200);
    assert_non_null(strstr(r.body, "optsync_webhook_deliveries_total{route="
                                   "\"whatsapp\",result=\"applied\"} 1\n"));
    assert_non_null(strstr(r.body, "optsync_webhook_deliveries_total{route="
                                   "\"whatsapp\",result=\"duplicate\"} 1\n"));
    assert_non_null(strstr(r.body, "optsync_webhook_deliveries_total{route="
                                   "\"whatsapp\",result=\"unauthorized\"} "
                                   "1\n"));
    assert_non_null(strstr(r.body, "optsync_webhook_deliveries_total{route="
                                   "\"whatsapp\",result=\"malformed\"} 1\n"));
    assert_non_null(strstr(r.body, "optsync_webhook_deliveries_total{route="
                                   "\"whatsapp\",result=\"quarantined\"} "
                                   "1\n"));
    assert_non_null(strstr(r.body, "optsync_webhook_duplicates_total 1\n"));
    assert_non_null(strstr(r.body, "optsync_quarantined_events_total 1\n"));
    assert_non_null(strstr(r.body, "optsync_quarantine_open_events 1\n"));
    assert_non_null(strstr(r.body, "optsync_http_requests_total{route="
                                   "\"/webhooks/whatsapp\",code=\"200\"} 3\n"));
    testhttp_resp_dispose(&r);
    free(url);
    free(unknown);
    free(stop);
}

/* One line per delivery, with event names and counts; never a payload,
 * a full phone number or a secret. */
static void
test_listener_webhooks__logs_carry_no_payload_or_secret(void **state)
{
    struct fixture *f = *state;
    char *body = wa_derive_body("text_reply.json", WA_TEXT_BODY,
                                "please stop sending these");
    char *sig = wa_sign(WA_SECRET, body, strlen(body));
    char *wrong = wa_sign("guessed-secret", body, strlen(body));
    char *wrong_line = xasprintf("X-Hub-Signature-256: %s", wrong);
    const char *wrong_h[] = { wrong_line, NULL };
    char *path = xasprintf("%s/log.txt", f->t.dir), *log, text[64], ct[128];
    FILE *fp = fopen(path, "w");
    size_t i;
    static const char *const absent[] = {
        WA_SECRET, WA_VERIFY_TOKEN, "guessed-token", DV_KEY, "please stop",
        IL,        "972987654321",  "wamid.",
    };

    assert_non_null(fp);
    wa_seed(f->c, &f->copts, CFG_IL, IL, CONSENT_SINGLE_OPT_IN);
    never_synced(f);
    run(f);
    log_set_output(fp);
    log_level_current = LOG_DEBUG;
    assert_int_equal(post_signed(f, "/webhooks/whatsapp", body, NULL), 200);
    assert_int_equal(post_raw(f, "/webhooks/whatsapp", body, 0, wrong_h, NULL),
                     401);
    assert_int_equal(get_text(f,
                              "/webhooks/whatsapp?hub.mode=subscribe&"
                              "hub.challenge=1&hub.verify_token=guessed-token",
                              text, sizeof(text), ct, sizeof(ct)),
                     403);
    assert_int_equal(dv_post(f, "number_update_async",
                             "X-Optsync-Key: " DV_KEY "x", NULL, NULL),
                     401);
    dv_post_outcome(f, "number_update_async", "X-Optsync-Key: " DV_KEY, NULL,
                    "queued");
    testlistener_stop(&f->t);
    log_level_current = LOG_WARN;
    log_set_output(stderr);
    fclose(fp);
    log = testutil_read(path, NULL);
    assert_non_null(strstr(log, "event=whatsapp_delivery result=ignored "));
    assert_non_null(strstr(log, "near_misses=1"));
    assert_non_null(
        strstr(log, "event=whatsapp_delivery_refused status=401 why="));
    assert_non_null(strstr(log, "event=whatsapp_verify_refused status=403"));
    assert_non_null(strstr(log, "event=dv_webhook_refused status=401"));
    assert_non_null(strstr(log, "event=dv_webhook_event entity=number "));
    for (i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
        if (strstr(log, absent[i]))
            fail_msg("the log shows %s", absent[i]);
    if (strstr(log, sig + 7) || strstr(log, wrong + 7))
        fail_msg("the log shows a signature");
    free(log);
    free(path);
    free(wrong_line);
    free(wrong);
    free(sig);
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_listener_webhooks__whatsapp_cases_have_their_effect),
        T(test_listener_webhooks__whatsapp_bad_signatures_change_nothing),
        T(test_listener_webhooks__whatsapp_secret_header),
        T(test_listener_webhooks__whatsapp_handshake),
        T(test_listener_webhooks__whatsapp_malformed_and_oversize),
        T(test_listener_webhooks__whatsapp_not_committed_is_503),
        T(test_listener_webhooks__whatsapp_duplicates_across_restart),
        T(test_listener_webhooks__whatsapp_new_link_replays_quarantine),
        T(test_listener_webhooks__whatsapp_stop_then_gate_denies),
        T(test_listener_webhooks__housekeeping_prunes_old_keys),
        T(test_listener_webhooks__housekeeping_prunes_finished_rows),
        T(test_listener_webhooks__whatsapp_concurrent_replies),
        T(test_listener_webhooks__dataverse_auth_modes),
        T(test_listener_webhooks__dataverse_disabled_malformed_hints),
        T(test_listener_webhooks__metrics),
        T(test_listener_webhooks__logs_carry_no_payload_or_secret),
#undef T
    };
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
