/*
 * test_whatsapp — the WhatsApp webhook module on its own: every fixture
 * in tests/data/whatsapp/ and every derived case has the effect in the
 * table of tests/support/wa_cases.c (checked in the database: states, ledger,
 * outbox, quarantine, near-misses); signatures and the secret header, right and
 * wrong; the GET handshake; malformed bodies apply nothing; duplicates
 * inside one POST, across deliveries and across a restart; quarantine
 * then replay; BSUID links stored and used; On-Premise bodies; WABA-wide
 * stops; the last inbound time; pruning of the de-duplication keys with
 * the clock seam; a failing commit leaves nothing behind.
 *
 * deliver() plays the route glue exactly as whatsapp.h describes it
 * (check, parse, apply in a transaction, commit) and returns the HTTP
 * status the route would answer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "clock.h"
#include "config.h"
#include "consent.h"
#include "err.h"
#include "fault.h"
#include "keywords.h"
#include "testutil.h"
#include "wa_cases.h"
#include "wa_users.h"
#include "whatsapp.h"
#include "xalloc.h"

#define DAY_MS (24 * 3600 * 1000LL)
#define NOW WA_NOW

struct fixture {
    char *dir;
    char *db;
    cache *c;
    keywords *k;
    struct consent_options copts;
    struct whatsapp_auth auth;
    struct whatsapp_outcome last; /* of the last delivery */
};

static keywords *default_keywords(void)
{
    static char *in[] = { "OPT_IN" }, *out[] = { "OPT_OUT" },
                *conf[] = { "DOI_CONFIRM" };
    static struct config_list none = { NULL, 0 }, pin = { in, 1 },
                              pout = { out, 1 }, pconf = { conf, 1 };
    struct keywords_options o;
    keywords *k = NULL;

    memset(&o, 0, sizeof(o));
    o.opt_in_keywords = &none;
    o.opt_out_keywords = &none;
    o.builtin = 1;
    o.opt_in_payloads = &pin;
    o.opt_out_payloads = &pout;
    o.confirm_payloads = &pconf;
    assert_int_equal(keywords_new(&k, &o), 0);
    return k;
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));

    f->dir = testutil_tmpdir();
    f->db = xasprintf("%s/cache.db", f->dir);
    assert_int_equal(cache_open(&f->c, f->db, 0), 0);
    wa_put_configurations(f->c, 0);
    f->k = default_keywords();
    f->copts.double_opt_in_window = 7 * DAY_MS;
    f->auth.mode = WHATSAPP_AUTH_SIGNATURE;
    f->auth.app_secret = WA_SECRET;
    f->auth.verify_token = WA_VERIFY_TOKEN;
    clock_set_fixed(NOW);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    fault_disarm_all();
    cache_close(f->c);
    keywords_free(f->k);
    testutil_rmtree(f->dir);
    free(f->dir);
    free(f->db);
    free(f);
    clock_set_fixed(0);
    return 0;
}

static void restart(struct fixture *f)
{
    cache_close(f->c);
    assert_int_equal(cache_open(&f->c, f->db, 0), 0);
}

/* ---- bodies, signatures, the route glue ------------------------------------
 */

/* The route: check → parse → apply in one transaction → commit. */
static int deliver_raw(struct fixture *f, const char *body, size_t len,
                       const char *header, const char *path_cfg)
{
    struct whatsapp_apply_options o = { &f->copts, f->k, path_cfg };
    struct whatsapp_delivery d;
    struct whatsapp_job job;
    int rc;

    memset(&f->last, 0, sizeof(f->last));
    if (whatsapp_auth_check(&f->auth, header, body, len) != 0)
        return 401;
    rc = whatsapp_delivery_parse(&d, body, len);
    if (rc == 0 && !path_cfg && whatsapp_delivery_needs_configuration(&d))
        rc = ERR_BADINPUT;
    if (rc) {
        whatsapp_delivery_dispose(&d);
        return rc == ERR_TOOBIG ? 413 : 400;
    }
    memset(&job, 0, sizeof(job));
    job.opts = &o;
    job.delivery = &d;
    rc = cache_begin(f->c);
    rc = rc ? rc : whatsapp_job_run(f->c, &job);
    rc = rc ? rc : cache_commit(f->c);
    if (rc)
        cache_rollback(f->c);
    whatsapp_delivery_dispose(&d);
    f->last = job.outcome;
    return rc == 0 ? 200 : rc == ERR_BADINPUT ? 400 : 503;
}

/* Signed with the test secret. */
static int deliver(struct fixture *f, const char *body, const char *path_cfg)
{
    char *sig = wa_sign(WA_SECRET, body, strlen(body));
    int status = deliver_raw(f, body, strlen(body), sig, path_cfg);

    free(sig);
    return status;
}

/* ---- the database -------------------------------------------------------- */

static void seed(struct fixture *f, const char *cfg, const char *phone,
                 enum consent_status s)
{
    wa_seed(f->c, &f->copts, cfg, phone, s);
}

static long long count(cache *c, const char *sql)
{
    return testutil_query_int(c, sql);
}

#define NONE_ CONSENT_NONE
#define SINGLE CONSENT_SINGLE_OPT_IN
#define DOUBLE CONSENT_DOUBLE_OPT_IN
#define OUT CONSENT_OPTED_OUT

/* ---- every fixture and derived case (the table in wa_cases.c) ---------- */

static void test_whatsapp__fixtures_have_their_effect(void **state)
{
    size_t i;

    for (i = 0; i < wa_n_effects; i++) {
        const struct wa_effect *e = &wa_effects[i];
        struct fixture *f;
        struct wa_snapshot before;
        char name[160], *body;

        teardown(state);
        setup(state);
        f = *state;
        wa_effect_name(name, sizeof(name), e);
        if (e->doi)
            wa_put_configurations(f->c, 1);
        seed(f, e->cfg, e->phone, e->before);
        wa_snap(&before, f->c);
        body = wa_effect_body(e);
        if (deliver(f, body, e->path_cfg) != 200)
            fail_msg("%s: not 200: %s", name, err_message());
        wa_effect_check(f->c, e, &before, f->last.duplicates);
        free(body);
    }
}

/* The counts of the batch fixture, item by item. */
static void test_whatsapp__outcome_counts(void **state)
{
    struct fixture *f = *state;
    char *body =
        wa_fixture_text("batch_multi_change_with_user_preferences_stop.json");

    seed(f, CFG_BATCH, US1, SINGLE);
    assert_int_equal(deliver(f, body, NULL), 200);
    assert_int_equal(f->last.messages, 4);
    assert_int_equal(f->last.preferences, 2);
    assert_int_equal(f->last.transitions, 1);
    assert_int_equal(f->last.unchanged, 1); /* the second stop */
    assert_int_equal(f->last.ignored, 4);   /* text, location, reaction, ... */
    assert_int_equal(f->last.duplicates, 0);
    /* the same body again: every item is a duplicate */
    assert_int_equal(deliver(f, body, NULL), 200);
    assert_int_equal(f->last.duplicates, 6);
    assert_int_equal(f->last.transitions, 0);
    free(body);
    body = wa_fixture_text("interactive_missing_object.json");
    assert_int_equal(deliver(f, body, NULL), 200);
    assert_int_equal(f->last.errors, 1); /* value.errors[]: logged */
    free(body);
}

/* ---- verification
 * ------------------------------------------------------------
 */

static void test_whatsapp__signature_checks(void **state)
{
    struct fixture *f = *state;
    char *body = wa_derive_body("text_reply.json", WA_TEXT_BODY, "STOP");
    size_t len = strlen(body);
    char *good = wa_sign(WA_SECRET, body, len);
    char *other = wa_sign("another-secret", body, len);
    char upper[80], trunc[80], longer[80], prefix[80], sha1[80];
    size_t i;

    seed(f, CFG_IL, IL, SINGLE);
    snprintf(upper, sizeof(upper), "sha256=%s", good + 7);
    for (i = 7; upper[i]; i++)
        if (upper[i] >= 'a' && upper[i] <= 'f')
            upper[i] = (char)(upper[i] - 'a' + 'A');
    snprintf(trunc, sizeof(trunc), "%.*s", 7 + 63, good);
    snprintf(longer, sizeof(longer), "%s0", good);
    snprintf(prefix, sizeof(prefix), " %s", good);
    snprintf(sha1, sizeof(sha1), "sha1=%s", good + 7);
    assert_int_equal(deliver_raw(f, body, len, other, NULL), 401);
    assert_int_equal(deliver_raw(f, body, len, NULL, NULL), 401);
    assert_int_equal(deliver_raw(f, body, len, sha1, NULL), 401);
    assert_int_equal(deliver_raw(f, body, len, trunc, NULL), 401);
    assert_int_equal(deliver_raw(f, body, len, longer, NULL), 401);
    assert_int_equal(deliver_raw(f, body, len, prefix, NULL), 401);
    assert_int_equal(deliver_raw(f, body, len, "sha256=", NULL), 401);
    assert_int_equal(deliver_raw(f, body, len, "", NULL), 401);
    /* the body changed after signing (one byte less) */
    assert_int_equal(deliver_raw(f, body, len - 1, good, NULL), 401);
    /* nothing happened, nothing was remembered */
    assert_int_equal(wa_state_of(f->c, CFG_IL, IL), SINGLE);
    assert_int_equal(count(f->c, "SELECT count(*) FROM inbound_seen"), 0);
    /* no app secret configured: everything is refused */
    f->auth.app_secret = NULL;
    assert_int_equal(deliver_raw(f, body, len, good, NULL), 401);
    f->auth.app_secret = WA_SECRET;
    /* hex case carries no information: upper case is accepted */
    assert_int_equal(deliver_raw(f, body, len, upper, NULL), 200);
    assert_int_equal(wa_state_of(f->c, CFG_IL, IL), OUT);
    assert_string_equal(whatsapp_auth_header_name(&f->auth),
                        "X-Hub-Signature-256");
    free(good);
    free(other);
    free(body);
}

static void test_whatsapp__secret_header(void **state)
{
    struct fixture *f = *state;
    const char *body = ONPREM_STOP;

    f->auth.mode = WHATSAPP_AUTH_HEADER;
    f->auth.header_name = "X-Optsync-Key";
    f->auth.header_value = "s3cret-header-value";
    seed(f, CFG_IL, IL, SINGLE);
    assert_string_equal(whatsapp_auth_header_name(&f->auth), "X-Optsync-Key");
    assert_int_equal(deliver_raw(f, body, strlen(body), NULL, CFG_IL), 401);
    assert_int_equal(deliver_raw(f, body, strlen(body), "s3cret", CFG_IL), 401);
    assert_int_equal(
        deliver_raw(f, body, strlen(body), "s3cret-header-valuE", CFG_IL), 401);
    assert_int_equal(
        deliver_raw(f, body, strlen(body), "s3cret-header-value ", CFG_IL),
        401);
    /* a Meta signature is no use in this mode */
    {
        char *sig = wa_sign(WA_SECRET, body, strlen(body));

        assert_int_equal(deliver_raw(f, body, strlen(body), sig, CFG_IL), 401);
        free(sig);
    }
    assert_int_equal(wa_state_of(f->c, CFG_IL, IL), SINGLE);
    assert_int_equal(
        deliver_raw(f, body, strlen(body), "s3cret-header-value", CFG_IL), 200);
    assert_int_equal(wa_state_of(f->c, CFG_IL, IL), OUT);
    f->auth.header_value = NULL; /* not configured: refused */
    assert_int_equal(deliver_raw(f, body, strlen(body), "", CFG_IL), 401);
}

static void test_whatsapp__handshake(void **state)
{
    struct fixture *f = *state;
    char *challenge = NULL;

    assert_int_equal(whatsapp_handshake_check(&f->auth, "subscribe",
                                              WA_VERIFY_TOKEN, "870331245"),
                     0);
    assert_int_equal(
        whatsapp_handshake_check(&f->auth, "subscribe", "verify-token-12", "1"),
        ERR_AUTH);
    assert_int_equal(whatsapp_handshake_check(&f->auth, "subscribe",
                                              WA_VERIFY_TOKEN "4", "1"),
                     ERR_AUTH);
    assert_int_equal(
        whatsapp_handshake_check(&f->auth, "unsubscribe", WA_VERIFY_TOKEN, "1"),
        ERR_AUTH);
    assert_int_equal(
        whatsapp_handshake_check(&f->auth, NULL, WA_VERIFY_TOKEN, "1"),
        ERR_AUTH);
    assert_int_equal(whatsapp_handshake_check(&f->auth, "subscribe", NULL, "1"),
                     ERR_AUTH);
    assert_int_equal(
        whatsapp_handshake_check(&f->auth, "subscribe", WA_VERIFY_TOKEN, NULL),
        ERR_AUTH);
    assert_int_equal(
        whatsapp_handshake_check(&f->auth, "subscribe", WA_VERIFY_TOKEN, ""),
        ERR_AUTH);
    assert_int_equal(whatsapp_handshake_check(&f->auth, "subscribe",
                                              WA_VERIFY_TOKEN, "<b>\r\nx"),
                     ERR_AUTH);
    /* the query string form, decoded by libevent */
    assert_int_equal(
        whatsapp_handshake_query(&challenge, &f->auth,
                                 "hub.mode=subscribe&hub.challenge=1158201444&"
                                 "hub.verify_token=verify%2Dtoken%2D123"),
        0);
    assert_string_equal(challenge, "1158201444");
    free(challenge);
    challenge = NULL;
    assert_int_equal(whatsapp_handshake_query(&challenge, &f->auth,
                                              "hub.mode=subscribe&"
                                              "hub.challenge=1&hub.verify_"
                                              "token=wrong"),
                     ERR_AUTH);
    assert_int_equal(whatsapp_handshake_query(&challenge, &f->auth, "garbage"),
                     ERR_AUTH);
    assert_int_equal(whatsapp_handshake_query(&challenge, &f->auth, NULL),
                     ERR_AUTH);
    assert_null(challenge);
    f->auth.verify_token = NULL; /* not configured: never verified */
    assert_int_equal(whatsapp_handshake_check(&f->auth, "subscribe", "", "1"),
                     ERR_AUTH);
}

/* [whatsapp] auth / header_name / header_value from the config file. */
static void test_whatsapp__config_keys(void **state)
{
    static const char base[] = "[dataverse]\nurl = http://127.0.0.1:5555\n"
                               "[auth]\nauthority = http://127.0.0.1:5555\n"
                               "tenant_id = t\nclient_id = c\n"
                               "client_secret = s\n[listener]\napi_key = k\n";
    struct optsync_config *cfg = NULL;
    struct config_diag d = { 0 };
    struct whatsapp_auth a;
    char *text;

    (void)state;
    text = xasprintf("%s[whatsapp]\napp_secret = x\n", base);
    assert_int_equal(config_load_string(&cfg, text, "t.ini", "/", NULL, 0, &d),
                     0);
    whatsapp_auth_init(&a, cfg);
    assert_int_equal(a.mode, WHATSAPP_AUTH_SIGNATURE);
    assert_string_equal(a.app_secret, "x");
    config_free(cfg);
    free(text);
    config_diag_dispose(&d);
    memset(&d, 0, sizeof(d));
    text = xasprintf("%s[whatsapp]\nauth = header\nheader_name = X-Key\n"
                     "header_value = v\n",
                     base);
    assert_int_equal(config_load_string(&cfg, text, "t.ini", "/", NULL, 0, &d),
                     0);
    whatsapp_auth_init(&a, cfg);
    assert_int_equal(a.mode, WHATSAPP_AUTH_HEADER);
    assert_string_equal(whatsapp_auth_header_name(&a), "X-Key");
    assert_string_equal(a.header_value, "v");
    config_free(cfg);
    free(text);
    config_diag_dispose(&d);
    memset(&d, 0, sizeof(d));
    /* auth = header needs a header name that is one */
    text =
        xasprintf("%s[whatsapp]\nauth = header\nheader_name = X Key\n", base);
    assert_int_equal(config_load_string(&cfg, text, "t.ini", "/", NULL, 0, &d),
                     ERR_BADINPUT);
    free(text);
    config_diag_dispose(&d);
    memset(&d, 0, sizeof(d));
    text = xasprintf("%s[whatsapp]\nauth = hmac\n", base);
    assert_int_equal(config_load_string(&cfg, text, "t.ini", "/", NULL, 0, &d),
                     ERR_BADINPUT);
    free(text);
    config_diag_dispose(&d);
}

/* ---- malformed bodies (the table in wa_cases.c) -------------------------- */

static void test_whatsapp__malformed_applies_nothing(void **state)
{
    struct fixture *f = *state;
    struct wa_snapshot before, after;
    size_t i;

    seed(f, CFG_IL, IL, SINGLE);
    wa_snap(&before, f->c);
    for (i = 0; i < wa_n_malformed; i++) {
        int status = deliver(f, wa_malformed[i].body, NULL);

        if (status != wa_malformed[i].status)
            fail_msg("malformed %zu: %d", i, status);
    }
    wa_snap(&after, f->c);
    assert_memory_equal(&before, &after, sizeof(before));
    assert_int_equal(wa_state_of(f->c, CFG_IL, IL), SINGLE);
    /* the same STOP, well formed, does apply */
    assert_int_equal(
        deliver(
            f, CLOUD_HEAD "\"messages\":[" STOP_MSG("wamid.OK1") "]" CLOUD_TAIL,
            NULL),
        200);
    assert_int_equal(wa_state_of(f->c, CFG_IL, IL), OUT);
}

static void test_whatsapp__too_many_items(void **state)
{
    struct fixture *f = *state;
    struct strbuf sb;
    int i;

    strbuf_init(&sb, 64 * 1024 * 1024);
    strbuf_adds(&sb, CLOUD_HEAD "\"statuses\":[");
    for (i = 0; i <= 20000; i++)
        strbuf_addf(&sb,
                    "%s{\"id\":\"w%d\",\"status\":\"read\","
                    "\"timestamp\":\"1\"}",
                    i ? "," : "", i);
    strbuf_adds(&sb, "]" CLOUD_TAIL);
    assert_int_equal(deliver(f, sb.data, NULL), 413);
    assert_int_equal(count(f->c, "SELECT count(*) FROM inbound_seen"), 0);
    strbuf_dispose(&sb);
}

/* ---- exactly once
 * --------------------------------------------------------------
 */

static void test_whatsapp__delivery_twice_and_after_restart(void **state)
{
    struct fixture *f = *state;
    char *body = wa_derive_body("text_reply.json", WA_TEXT_BODY, "Subscribe");

    assert_int_equal(deliver(f, body, NULL), 200);
    assert_int_equal(f->last.transitions, 1);
    assert_int_equal(deliver(f, body, NULL), 200);
    assert_int_equal(f->last.duplicates, 1);
    assert_int_equal(f->last.transitions, 0);
    restart(f);
    assert_int_equal(deliver(f, body, NULL), 200);
    assert_int_equal(f->last.duplicates, 1);
    assert_int_equal(wa_state_of(f->c, CFG_IL, IL), SINGLE);
    assert_int_equal(count(f->c, "SELECT count(*) FROM ledger"), 1);
    assert_int_equal(count(f->c, "SELECT count(*) FROM outbox"), 1);
    free(body);
}

/* A failing write (disk full) answers 503 and leaves nothing, so Meta's
 * retry applies the delivery in full. */
static void test_whatsapp__failed_commit_leaves_nothing(void **state)
{
    struct fixture *f = *state;
    char *body = wa_derive_body("text_reply.json", WA_TEXT_BODY, "STOP");
    int n;

    seed(f, CFG_IL, IL, SINGLE);
    for (n = 1; n < 40; n++) {
        fault_arm(FAULT_SQLITE_STEP, n, SQLITE_FULL, 0);
        if (deliver(f, body, NULL) == 200)
            break;
        fault_disarm_all();
        assert_int_equal(wa_state_of(f->c, CFG_IL, IL), SINGLE);
        assert_int_equal(count(f->c, "SELECT count(*) FROM inbound_seen"), 0);
        assert_int_equal(count(f->c, "SELECT count(*) FROM outbox"), 0);
    }
    fault_disarm_all();
    assert_true(n > 3); /* some steps did fail */
    assert_int_equal(wa_state_of(f->c, CFG_IL, IL), OUT);
    assert_int_equal(count(f->c, "SELECT count(*) FROM ledger WHERE "
                                 "to_status = 3"),
                     1);
    free(body);
}

static void test_whatsapp__prune_after_seven_days(void **state)
{
    struct fixture *f = *state;
    char *body = wa_derive_body("text_reply.json", WA_TEXT_BODY, "Subscribe");
    int removed = -1;

    assert_int_equal(deliver(f, body, NULL), 200);
    assert_int_equal(count(f->c, "SELECT count(*) FROM inbound_seen"), 1);
    /* a shorter keep is raised to Meta's 7 days of retries */
    clock_set_fixed(NOW + 7 * DAY_MS - 1);
    assert_int_equal(whatsapp_dedupe_prune(&removed, f->c, 3600 * 1000LL), 0);
    assert_int_equal(removed, 0);
    clock_set_fixed(NOW + WHATSAPP_DEDUPE_KEEP_MS);
    assert_int_equal(
        whatsapp_dedupe_prune(&removed, f->c, WHATSAPP_DEDUPE_KEEP_MS), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(deliver(f, body, NULL), 200);
    assert_int_equal(f->last.duplicates, 1); /* still a retry */
    clock_set_fixed(NOW + WHATSAPP_DEDUPE_KEEP_MS + 1);
    assert_int_equal(
        whatsapp_dedupe_prune(&removed, f->c, WHATSAPP_DEDUPE_KEEP_MS), 0);
    assert_int_equal(removed, 1);
    /* keys of other sources are not touched */
    assert_int_equal(cache_exec(f->c, "INSERT INTO inbound_seen VALUES "
                                      "('dataverse', 'r1', 0)"),
                     0);
    assert_int_equal(
        whatsapp_dedupe_prune(&removed, f->c, WHATSAPP_DEDUPE_KEEP_MS), 0);
    assert_int_equal(count(f->c, "SELECT count(*) FROM inbound_seen"), 1);
    /* the _locked form stops at max_rows */
    assert_int_equal(cache_exec(f->c, "INSERT INTO inbound_seen VALUES "
                                      "('whatsapp', 'a', 0), ('whatsapp', 'b',"
                                      " 0), ('whatsapp_status', 'c/read', 0)"),
                     0);
    assert_int_equal(cache_begin(f->c), 0);
    assert_int_equal(whatsapp_dedupe_prune_locked(&removed, f->c,
                                                  WHATSAPP_DEDUPE_KEEP_MS, 2),
                     0);
    assert_int_equal(cache_commit(f->c), 0);
    assert_int_equal(removed, 2);
    assert_int_equal(count(f->c, "SELECT count(*) FROM inbound_seen"), 2);
    free(body);
}

/* ---- quarantine, BSUIDs
 * --------------------------------------------------------
 */

static void test_whatsapp__quarantine_then_replay(void **state)
{
    struct fixture *f = *state;
    char *body = wa_derive_body("text_reply.json", WA_PNID, "555000111");
    int applied, waiting;

    seed(f, CFG_IL, IL, SINGLE);
    assert_int_equal(deliver(f, body, NULL), 200);
    assert_int_equal(f->last.quarantined, 1);
    assert_int_equal(count(f->c, "SELECT count(*) FROM quarantine WHERE "
                                 "reason = 'unknown_configuration' AND "
                                 "hint = '555000111'"),
                     1);
    assert_int_equal(count(f->c, "SELECT count(*) FROM ledger"), 1); /* seed */
    /* Meta retries: no second quarantine row */
    assert_int_equal(deliver(f, body, NULL), 200);
    assert_int_equal(f->last.duplicates, 1);
    assert_int_equal(count(f->c, "SELECT count(*) FROM quarantine"), 1);
    assert_int_equal(
        consent_quarantine_replay(f->c, &f->copts, &applied, &waiting), 0);
    assert_int_equal(waiting, 1);
    /* a sync brings the Configuration */
    wa_put_configuration(f->c, CFG_NEW, "WA New", 0, "555000111", NULL);
    assert_int_equal(
        consent_quarantine_replay(f->c, &f->copts, &applied, &waiting), 0);
    assert_int_equal(applied, 1);
    assert_int_equal(wa_state_of(f->c, CFG_NEW, IL), OUT);
    assert_int_equal(wa_state_of(f->c, CFG_IL, IL), SINGLE);
    assert_int_equal(count(f->c, "SELECT count(*) FROM ledger WHERE source = "
                                 "'whatsapp' AND json_extract(evidence, "
                                 "'$.message_id') = 'wamid.xyzxyz' AND "
                                 "json_extract(evidence, '$.text') = 'STOP'"),
                     1);
    free(body);
}

static void test_whatsapp__bsuid_link_stored_and_used(void **state)
{
    struct fixture *f = *state;
    char *body = wa_fixture_text("text_with_bsuid_username.json");
    char e164[32];
    int applied, waiting;

    seed(f, CFG_US, US2, SINGLE);
    assert_int_equal(deliver(f, body, NULL), 200);
    assert_int_equal(f->last.new_links, 1);
    assert_int_equal(count(f->c, "SELECT count(*) FROM wa_identities WHERE "
                                 "user_id = '" BSUID "' AND e164 = '" US2
                                 "' AND waba_id = '1' AND configuration_id = "
                                 "'" CFG_US "'"),
                     1);
    assert_int_equal(wa_users_phone_find(e164, sizeof(e164), f->c, BSUID, NULL),
                     0);
    assert_string_equal(e164, US2);
    /* later the user writes STOP with their username only */
    assert_int_equal(deliver(f, BSUID_ONLY("wamid.U1", BSUID, "STOP"), NULL),
                     200);
    assert_int_equal(f->last.transitions, 1);
    assert_int_equal(wa_state_of(f->c, CFG_US, US2), OUT);
    free(body);

    /* an unknown username waits in the quarantine ... */
    assert_int_equal(
        deliver(f, BSUID_ONLY("wamid.U2", "US.777", "Subscribe"), NULL), 200);
    assert_int_equal(f->last.quarantined, 1);
    assert_int_equal(count(f->c, "SELECT count(*) FROM quarantine WHERE "
                                 "reason = 'unknown_user' AND hint = "
                                 "'US.777' AND resolved_at IS NULL"),
                     1);
    assert_int_equal(
        consent_quarantine_replay(f->c, &f->copts, &applied, &waiting), 0);
    assert_int_equal(waiting, 1);
    /* ... until a delivery shows the number beside it (a status here) */
    assert_int_equal(
        deliver(f,
                "{\"object\":\"whatsapp_business_account\",\"entry\":[{"
                "\"id\":\"1\",\"changes\":[{\"field\":\"messages\",\"value\":"
                "{\"metadata\":{\"phone_number_id\":\"123456123\"},"
                "\"statuses\":[{\"id\":\"wamid.S1\",\"status\":\"read\","
                "\"timestamp\":1767225700,\"recipient_id\":\"+4915112345678\","
                "\"recipient_user_id\":\"US.777\"}]}}]}]}",
                NULL),
        200);
    assert_int_equal(f->last.new_links, 1);
    assert_int_equal(
        consent_quarantine_replay(f->c, &f->copts, &applied, &waiting), 0);
    assert_int_equal(applied, 1);
    assert_int_equal(wa_state_of(f->c, CFG_US, "+4915112345678"), SINGLE);
}

/* A sender that can never be keyed waits for a person; replay goes on. */
static void test_whatsapp__unkeyable_sender_kept(void **state)
{
    struct fixture *f = *state;
    int applied, waiting;

    assert_int_equal(
        deliver(f,
                CLOUD_HEAD "\"messages\":[{\"from\":\"not-a-number\",\"id\":"
                           "\"wamid.X\",\"timestamp\":\"1767225600\",\"type\":"
                           "\"text\",\"text\":{\"body\":\"STOP\"}}]" CLOUD_TAIL,
                NULL),
        200);
    assert_int_equal(count(f->c, "SELECT count(*) FROM quarantine WHERE "
                                 "reason = 'invalid_sender' AND "
                                 "json_extract(payload, '$.evidence.from') = "
                                 "'not-a-number'"),
                     1);
    assert_int_equal(
        consent_quarantine_replay(f->c, &f->copts, &applied, &waiting), 0);
    assert_int_equal(applied, 0);
    assert_int_equal(waiting, 1);
    assert_int_equal(count(f->c, "SELECT attempts FROM quarantine"), 1);
}

static void test_whatsapp__on_premise_configuration(void **state)
{
    struct fixture *f = *state;
    int applied, waiting;

    seed(f, CFG_IL, IL, SINGLE);
    /* the route names a Configuration nobody synced yet */
    assert_int_equal(deliver(f, ONPREM_STOP, "WA Later"), 200);
    assert_int_equal(f->last.quarantined, 1);
    assert_int_equal(count(f->c, "SELECT count(*) FROM quarantine WHERE "
                                 "hint = 'WA Later'"),
                     1);
    wa_put_configuration(f->c, CFG_NEW, "WA Later", 0, NULL, NULL);
    assert_int_equal(
        consent_quarantine_replay(f->c, &f->copts, &applied, &waiting), 0);
    assert_int_equal(applied, 1);
    assert_int_equal(wa_state_of(f->c, CFG_NEW, IL), OUT);
    /* a phone_number_id in the payload wins over the route's name */
    assert_int_equal(
        deliver(f,
                CLOUD_HEAD "\"messages\":[" STOP_MSG("wamid.P1") "]" CLOUD_TAIL,
                "WA Later"),
        200);
    assert_int_equal(wa_state_of(f->c, CFG_IL, IL), OUT);
}

/* "stop marketing" and 131050 reach every Configuration of the WABA. */
static void test_whatsapp__stop_is_waba_wide(void **state)
{
    struct fixture *f = *state;
    char *body =
        wa_fixture_text("batch_multi_change_with_user_preferences_stop.json");

    wa_put_configuration(f->c, CFG_SISTER, "WA Sister", 0, "1093849299",
                         "8888888888");
    seed(f, CFG_BATCH, US1, SINGLE);
    seed(f, CFG_SISTER, US1, DOUBLE);
    seed(f, CFG_IL, US1, SINGLE); /* another WABA */
    assert_int_equal(deliver(f, body, NULL), 200);
    assert_int_equal(wa_state_of(f->c, CFG_BATCH, US1), OUT);
    assert_int_equal(wa_state_of(f->c, CFG_SISTER, US1), OUT);
    assert_int_equal(wa_state_of(f->c, CFG_IL, US1), SINGLE);
    assert_int_equal(count(f->c, "SELECT count(*) FROM ledger WHERE source = "
                                 "'whatsapp_preference'"),
                     2);
    assert_int_equal(count(f->c, "SELECT count(*) FROM outbox"), 2);
    free(body);
}

/* A fixture with another message id (several share "wamid.xyzxyz"). */
static char *with_id(const char *fixture, const char *id)
{
    char *text = wa_fixture_text(fixture), *out;
    cJSON *root = cJSON_Parse(text);

    wa_replace_string(wa_first_message(root), "id", id);
    out = cJSON_Print(root);
    cJSON_Delete(root);
    free(text);
    return out;
}

static void test_whatsapp__last_inbound_recorded(void **state)
{
    struct fixture *f = *state;
    char *body = wa_fixture_text("text_reply.json");
    int64_t at = 0;

    assert_int_equal(wa_users_inbound_get(&at, f->c, CFG_IL, IL), ERR_NOTFOUND);
    assert_int_equal(deliver(f, body, NULL), 200);
    assert_int_equal(wa_users_inbound_get(&at, f->c, CFG_IL, IL), 0);
    assert_int_equal(at, 1697043223000LL);
    free(body);
    /* a newer reaction moves it on; an older message (late) does not */
    body = with_id("reaction_not_a_reply.json", "wamid.R1");
    assert_int_equal(deliver(f, body, NULL), 200);
    assert_int_equal(wa_users_inbound_get(&at, f->c, CFG_IL, IL), 0);
    assert_int_equal(at, 1697044456000LL);
    free(body);
    body = with_id("unsupported_type_with_errors.json", "wamid.U1");
    assert_int_equal(deliver(f, body, NULL), 200);
    assert_int_equal(wa_users_inbound_get(&at, f->c, CFG_IL, IL), 0);
    assert_int_equal(at, 1697044706000LL);
    free(body);
    /* the first message again (older), under a new id: not moved back */
    body = with_id("text_reply.json", "wamid.LATE");
    assert_int_equal(deliver(f, body, NULL), 200);
    assert_int_equal(f->last.duplicates, 0);
    assert_int_equal(wa_users_inbound_get(&at, f->c, CFG_IL, IL), 0);
    assert_int_equal(at, 1697044706000LL);
    free(body);
    /* statuses are not the number writing to us */
    body = wa_fixture_text("status_sent_with_pricing.json");
    assert_int_equal(deliver(f, body, NULL), 200);
    assert_int_equal(wa_users_inbound_get(&at, f->c, CFG_IL, IL), 0);
    assert_int_equal(at, 1697044706000LL);
    free(body);
}

static void test_whatsapp__number_change_listed_for_review(void **state)
{
    struct fixture *f = *state;
    char *body = wa_fixture_text("system_user_changed_number.json");

    seed(f, CFG_IL, IL, OUT);
    assert_int_equal(deliver(f, body, NULL), 200);
    assert_int_equal(f->last.reviews, 1);
    assert_int_equal(count(f->c, "SELECT count(*) FROM near_misses WHERE "
                                 "configuration_id = '" CFG_IL "' AND phone = "
                                 "'" IL "' AND message_id = 'wamid.xyzxyz==' "
                                 "AND instr(text, '+972912345678') > 0"),
                     1);
    /* consent stays where it was */
    assert_int_equal(wa_state_of(f->c, CFG_IL, "+972912345678"), NONE_);
    assert_int_equal(wa_state_of(f->c, CFG_IL, IL), OUT);
    free(body);
}

/* ---- the parser on its own
 * ------------------------------------------------------
 */

static void parse_ok(struct whatsapp_delivery *d, const char *body)
{
    if (whatsapp_delivery_parse(d, body, strlen(body)) != 0)
        fail_msg("parse: %s", err_message());
}

static void test_whatsapp__parse_shapes(void **state)
{
    struct whatsapp_delivery d;
    struct consent_reply r;
    char *body;

    (void)state;
    body = wa_fixture_text("status_read_with_bsuid.json");
    parse_ok(&d, body);
    assert_int_equal(d.format, WHATSAPP_FORMAT_CLOUD);
    assert_int_equal(d.n_statuses, 1);
    assert_string_equal(d.statuses[0].id, "ABGGFlA5Fpa");
    assert_string_equal(d.statuses[0].status, "read");
    assert_string_equal(d.statuses[0].recipient_id, "16315551181");
    assert_string_equal(d.statuses[0].recipient_user_id, BSUID);
    assert_int_equal(d.statuses[0].at, 1504902988000LL);
    assert_string_equal(d.statuses[0].origin.phone_number_id, "123456123");
    assert_string_equal(d.statuses[0].origin.waba_id, "1");
    assert_int_equal(d.n_contacts, 1);
    whatsapp_delivery_dispose(&d);
    free(body);

    body = wa_fixture_text("status_failed_with_errors.json");
    parse_ok(&d, body);
    assert_int_equal(d.statuses[0].n_errors, 1);
    assert_int_equal(d.statuses[0].error_codes[0], 130472);
    assert_int_equal(d.statuses[0].stopped_marketing, 0);
    whatsapp_delivery_dispose(&d);
    free(body);

    /* a location without type, a reaction, a sticker: no meaning */
    body =
        wa_fixture_text("batch_multi_change_with_user_preferences_stop.json");
    parse_ok(&d, body);
    assert_int_equal(d.n_messages, 4);
    assert_int_equal(d.messages[0].kind, WHATSAPP_MSG_TEXT);
    assert_null(d.messages[1].type);
    assert_int_equal(d.messages[1].kind, WHATSAPP_MSG_OTHER);
    assert_int_equal(d.messages[2].kind, WHATSAPP_MSG_OTHER);
    assert_int_equal(d.n_preferences, 2);
    assert_int_equal(d.preferences[0].at, 1680123462000LL); /* string */
    whatsapp_delivery_dispose(&d);
    free(body);

    body = wa_fixture_text("user_preferences_resume.json");
    parse_ok(&d, body);
    assert_int_equal(d.preferences[0].at, 1731705721000LL);     /* integer */
    assert_string_equal(d.preferences[0].wa_id, "16505551234"); /* its own */
    whatsapp_delivery_dispose(&d);
    free(body);

    body = wa_fixture_text("interactive_missing_object.json");
    parse_ok(&d, body);
    assert_int_equal(d.messages[0].kind, WHATSAPP_MSG_OTHER);
    assert_int_equal(d.n_errors, 1);
    assert_int_equal(d.errors[0].code, 131000);
    whatsapp_delivery_dispose(&d);
    free(body);

    body = wa_fixture_text("interactive_list_reply.json");
    parse_ok(&d, body);
    assert_int_equal(d.messages[0].kind, WHATSAPP_MSG_LIST_REPLY);
    whatsapp_message_reply(&r, &d.messages[0]);
    assert_string_equal(r.payload, "callback_data");
    assert_string_equal(r.title, "title");
    assert_int_equal(r.has_context, 1);
    whatsapp_delivery_dispose(&d);
    free(body);

    body = wa_fixture_text("text_frequently_forwarded.json");
    parse_ok(&d, body);
    whatsapp_message_reply(&r, &d.messages[0]);
    assert_int_equal(r.forwarded, 1);
    assert_int_equal(r.has_context, 0); /* no context.id */
    assert_string_equal(d.messages[0].user_id,
                        "US.13491208655302741918"); /* from contacts */
    whatsapp_delivery_dispose(&d);
    free(body);

    /* On-Premise, quick reply with a null payload; other fields skipped */
    parse_ok(&d, ONPREM_QUICK_REPLY);
    assert_int_equal(d.format, WHATSAPP_FORMAT_ON_PREMISE);
    assert_null(d.messages[0].origin.phone_number_id);
    assert_int_equal(d.messages[0].kind, WHATSAPP_MSG_BUTTON);
    assert_null(d.messages[0].payload);
    assert_string_equal(d.messages[0].title, "Unsubscribe");
    assert_true(whatsapp_delivery_needs_configuration(&d));
    whatsapp_delivery_dispose(&d);
    parse_ok(&d, "{\"object\":\"whatsapp_business_account\",\"entry\":[{"
                 "\"id\":\"1\",\"changes\":[{\"field\":\"account_update\","
                 "\"value\":{\"messages\":7}},{\"field\":\"messages\","
                 "\"value\":{\"messages\":[{\"id\":\"a\",\"timestamp\":"
                 "\"1\",\"from\":\"+4915112345678\",\"type\":\"text\","
                 "\"text\":\"not an object\"}]}}]}]}");
    assert_int_equal(d.other_changes, 1);
    assert_string_equal(d.messages[0].from, "+4915112345678");
    assert_int_equal(d.messages[0].kind, WHATSAPP_MSG_OTHER);
    whatsapp_delivery_dispose(&d);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_whatsapp__fixtures_have_their_effect),
        T(test_whatsapp__outcome_counts),
        T(test_whatsapp__signature_checks),
        T(test_whatsapp__secret_header),
        T(test_whatsapp__handshake),
        cmocka_unit_test(test_whatsapp__config_keys),
        T(test_whatsapp__malformed_applies_nothing),
        T(test_whatsapp__too_many_items),
        T(test_whatsapp__delivery_twice_and_after_restart),
        T(test_whatsapp__failed_commit_leaves_nothing),
        T(test_whatsapp__prune_after_seven_days),
        T(test_whatsapp__quarantine_then_replay),
        T(test_whatsapp__bsuid_link_stored_and_used),
        T(test_whatsapp__unkeyable_sender_kept),
        T(test_whatsapp__on_premise_configuration),
        T(test_whatsapp__stop_is_waba_wide),
        T(test_whatsapp__last_inbound_recorded),
        T(test_whatsapp__number_change_listed_for_review),
        cmocka_unit_test(test_whatsapp__parse_shapes),
    };

    return cmocka_run_group_tests_name("whatsapp", tests, NULL, NULL);
}
