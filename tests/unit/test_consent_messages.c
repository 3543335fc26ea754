/*
 * test_consent_messages — which consent message a transition calls for
 * (consent.h note 8): the rule table directly, then through
 * consent_apply: queued in the transition's transaction as an outbox row
 * of kind "whatsapp", once per Configuration the event came in on, never
 * for Dynamics opt-outs, preferences, 131050 or the baseline, never twice
 * within double_opt_in_window, nothing at all with send = off.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "clock.h"
#include "configurations.h"
#include "consent.h"
#include "testutil.h"
#include "wa_cases.h"
#include "xalloc.h"

#define CFG "6a1c0d6e-0000-0000-0000-000000000001"     /* DOI off */
#define CFG_DOI "6a1c0d6e-0000-0000-0000-000000000002" /* DOI on */
#define CFG_WABA2 "6a1c0d6e-0000-0000-0000-000000000003"
#define PHONE "+4915123456789"
#define T0 1738000000000LL
#define MIN (60 * 1000LL)
#define DAY (24 * 60 * MIN)

struct fixture {
    char *dir;
    cache *c;
    struct consent_options opts;
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    char *path;

    f->dir = testutil_tmpdir();
    path = xasprintf("%s/cache.db", f->dir);
    assert_int_equal(cache_open(&f->c, path, 0), 0);
    free(path);
    wa_put_configuration(f->c, CFG, "Shop", 0, "200100300400500", "waba1");
    wa_put_configuration(f->c, CFG_DOI, "Shop", 1, "200100300400501", NULL);
    wa_put_configuration(f->c, CFG_WABA2, "Shop", 0, "200100300400502",
                         "waba1");
    f->opts.double_opt_in_window = 7 * DAY;
    f->opts.send_messages = 1;
    clock_set_fixed(T0 + 100 * DAY);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    cache_close(f->c);
    testutil_rmtree(f->dir);
    free(f->dir);
    free(f);
    clock_set_fixed(0);
    return 0;
}

static void express(struct fixture *f, const char *cfg, const char *pnid,
                    enum consent_action action, const char *source, int64_t at,
                    const char *inbound_id)
{
    struct consent_event ev;
    struct consent_result r;

    memset(&ev, 0, sizeof(ev));
    ev.configuration_id = cfg;
    ev.phone_number_id = pnid;
    ev.waba_wide = pnid != NULL && action == CONSENT_ACT_OPT_OUT;
    ev.e164 = PHONE;
    ev.action = action;
    ev.event_at = at;
    ev.source = source;
    ev.inbound_source = inbound_id ? "whatsapp" : NULL;
    ev.inbound_id = inbound_id;
    assert_int_equal(consent_apply(&r, f->c, &f->opts, &ev), 0);
}

static long long messages(struct fixture *f, const char *name)
{
    char *sql = xasprintf("SELECT count(*) FROM outbox WHERE kind = "
                          "'whatsapp' AND message = '%s'",
                          name);
    long long n = testutil_query_int(f->c, sql);

    free(sql);
    return n;
}

/* ---- the rules ------------------------------------------------------------
 */

static const struct {
    enum consent_status from, to;
    const char *source;
    int doi, opt_in_confirmation;
    enum consent_message expect;
} rules[] = {
    { CONSENT_NONE, CONSENT_SINGLE_OPT_IN, CONSENT_SOURCE_WHATSAPP, 1, 0,
      CONSENT_MSG_DOUBLE_OPT_IN_REQUEST },
    { CONSENT_NONE, CONSENT_SINGLE_OPT_IN, CONSENT_SOURCE_MANUAL, 1, 0,
      CONSENT_MSG_DOUBLE_OPT_IN_REQUEST },
    { CONSENT_OPTED_OUT, CONSENT_SINGLE_OPT_IN, CONSENT_SOURCE_DATAVERSE, 1, 0,
      CONSENT_MSG_DOUBLE_OPT_IN_REQUEST },
    { CONSENT_NONE, CONSENT_SINGLE_OPT_IN, CONSENT_SOURCE_DATAVERSE_WEBHOOK, 1,
      0, CONSENT_MSG_DOUBLE_OPT_IN_REQUEST },
    { CONSENT_NONE, CONSENT_SINGLE_OPT_IN, CONSENT_SOURCE_WHATSAPP, 0, 0,
      CONSENT_MSG_NONE },
    { CONSENT_NONE, CONSENT_SINGLE_OPT_IN, CONSENT_SOURCE_WHATSAPP, 0, 1,
      CONSENT_MSG_OPT_IN_CONFIRMATION },
    { CONSENT_SINGLE_OPT_IN, CONSENT_DOUBLE_OPT_IN, CONSENT_SOURCE_WHATSAPP, 1,
      1, CONSENT_MSG_OPT_IN_CONFIRMATION },
    { CONSENT_SINGLE_OPT_IN, CONSENT_DOUBLE_OPT_IN, CONSENT_SOURCE_WHATSAPP, 1,
      0, CONSENT_MSG_NONE },
    { CONSENT_SINGLE_OPT_IN, CONSENT_DOUBLE_OPT_IN, CONSENT_SOURCE_DATAVERSE, 1,
      1, CONSENT_MSG_NONE },
    { CONSENT_SINGLE_OPT_IN, CONSENT_OPTED_OUT, CONSENT_SOURCE_WHATSAPP, 0, 0,
      CONSENT_MSG_OPT_OUT_CONFIRMATION },
    { CONSENT_SINGLE_OPT_IN, CONSENT_OPTED_OUT,
      CONSENT_SOURCE_WHATSAPP_PREFERENCE, 0, 0, CONSENT_MSG_NONE },
    { CONSENT_SINGLE_OPT_IN, CONSENT_OPTED_OUT, CONSENT_SOURCE_WHATSAPP_STATUS,
      0, 0, CONSENT_MSG_NONE },
    { CONSENT_SINGLE_OPT_IN, CONSENT_OPTED_OUT, CONSENT_SOURCE_DATAVERSE, 0, 0,
      CONSENT_MSG_NONE },
    { CONSENT_SINGLE_OPT_IN, CONSENT_OPTED_OUT, CONSENT_SOURCE_MANUAL, 0, 0,
      CONSENT_MSG_NONE },
    { CONSENT_OPTED_OUT, CONSENT_OPTED_OUT, CONSENT_SOURCE_WHATSAPP, 0, 0,
      CONSENT_MSG_NONE },
};

static void test_consent_messages__rule_table(void **state)
{
    struct consent_options o = { 7 * DAY, 0, 1, 0 };
    struct consent_transition t;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        t.from = rules[i].from;
        t.to = rules[i].to;
        t.source = rules[i].source;
        t.double_opt_in = rules[i].doi;
        o.opt_in_confirmation = rules[i].opt_in_confirmation;
        if (consent_message_for(&o, &t) != rules[i].expect)
            fail_msg("rule %zu: %s -> %s from %s: expected %s", i,
                     consent_status_name(t.from), consent_status_name(t.to),
                     t.source,
                     consent_message_name(rules[i].expect)
                         ? consent_message_name(rules[i].expect)
                         : "none");
    }
    o.send_messages = 0; /* send = off: never */
    t.from = CONSENT_SINGLE_OPT_IN;
    t.to = CONSENT_OPTED_OUT;
    t.source = CONSENT_SOURCE_WHATSAPP;
    assert_int_equal(consent_message_for(&o, &t), CONSENT_MSG_NONE);
}

static void test_consent_messages__names_and_still_due(void **state)
{
    (void)state;
    assert_int_equal(consent_message_parse("opt_out_confirmation"),
                     CONSENT_MSG_OPT_OUT_CONFIRMATION);
    assert_int_equal(consent_message_parse("nope"), CONSENT_MSG_NONE);
    assert_int_equal(consent_message_parse(NULL), CONSENT_MSG_NONE);
    assert_string_equal(consent_message_name(CONSENT_MSG_DOUBLE_OPT_IN_REQUEST),
                        "double_opt_in_request");
    assert_true(consent_message_still_due(CONSENT_MSG_DOUBLE_OPT_IN_REQUEST,
                                          CONSENT_SINGLE_OPT_IN));
    assert_false(consent_message_still_due(CONSENT_MSG_DOUBLE_OPT_IN_REQUEST,
                                           CONSENT_DOUBLE_OPT_IN));
    assert_false(consent_message_still_due(CONSENT_MSG_DOUBLE_OPT_IN_REQUEST,
                                           CONSENT_OPTED_OUT));
    assert_true(consent_message_still_due(CONSENT_MSG_OPT_OUT_CONFIRMATION,
                                          CONSENT_OPTED_OUT));
    assert_false(consent_message_still_due(CONSENT_MSG_OPT_OUT_CONFIRMATION,
                                           CONSENT_SINGLE_OPT_IN));
    assert_true(consent_message_still_due(CONSENT_MSG_OPT_IN_CONFIRMATION,
                                          CONSENT_DOUBLE_OPT_IN));
}

/* ---- queued by consent_apply ----------------------------------------------
 */

static void test_consent_messages__doi_request_once_within_window(void **state)
{
    struct fixture *f = *state;

    express(f, CFG_DOI, NULL, CONSENT_ACT_OPT_IN, CONSENT_SOURCE_WHATSAPP, T0,
            "w1");
    assert_int_equal(messages(f, "double_opt_in_request"), 1);
    assert_int_equal(
        testutil_query_int(f->c, "SELECT count(*) FROM outbox WHERE kind = "
                                 "'dataverse'"),
        1); /* beside the write-back, not instead of it */
    /* Out and in again within the window: no second request. */
    express(f, CFG_DOI, NULL, CONSENT_ACT_OPT_OUT, CONSENT_SOURCE_MANUAL,
            T0 + MIN, NULL);
    express(f, CFG_DOI, NULL, CONSENT_ACT_OPT_IN, CONSENT_SOURCE_MANUAL,
            T0 + 2 * MIN, NULL);
    assert_int_equal(messages(f, "double_opt_in_request"), 1);
    /* Sent; after the window: asked again. */
    assert_int_equal(cache_exec(f->c, "UPDATE outbox SET state = 'done' "
                                      "WHERE kind = 'whatsapp'"),
                     0);
    clock_set_fixed(T0 + 108 * DAY);
    express(f, CFG_DOI, NULL, CONSENT_ACT_OPT_OUT, CONSENT_SOURCE_MANUAL,
            T0 + 3 * MIN, NULL);
    express(f, CFG_DOI, NULL, CONSENT_ACT_OPT_IN, CONSENT_SOURCE_MANUAL,
            T0 + 4 * MIN, NULL);
    assert_int_equal(
        testutil_query_int(f->c, "SELECT count(*) FROM outbox WHERE kind = "
                                 "'whatsapp'"),
        2);
}

static void test_consent_messages__stop_confirmed_once(void **state)
{
    struct fixture *f = *state;

    express(f, CFG, NULL, CONSENT_ACT_OPT_IN, CONSENT_SOURCE_MANUAL, T0, NULL);
    assert_int_equal(messages(f, "opt_in_confirmation"), 0); /* not set */
    /* A WABA-wide STOP reaches both Configurations, confirmed once. */
    express(f, CFG_WABA2, NULL, CONSENT_ACT_OPT_IN, CONSENT_SOURCE_MANUAL, T0,
            NULL);
    express(f, NULL, "200100300400500", CONSENT_ACT_OPT_OUT,
            CONSENT_SOURCE_WHATSAPP, T0 + MIN, "stop1");
    express(f, NULL, "200100300400500", CONSENT_ACT_OPT_OUT,
            CONSENT_SOURCE_WHATSAPP, T0 + MIN, "stop1"); /* redelivered */
    express(f, NULL, "200100300400500", CONSENT_ACT_OPT_OUT,
            CONSENT_SOURCE_WHATSAPP, T0 + 2 * MIN, "stop2"); /* again */
    assert_int_equal(messages(f, "opt_out_confirmation"), 1);
    assert_int_equal(
        testutil_query_int(f->c, "SELECT count(*) FROM outbox WHERE kind = "
                                 "'whatsapp' AND configuration_id = '" CFG
                                 "' AND state = 'pending'"),
        1);
}

static void test_consent_messages__no_reply_to_others(void **state)
{
    struct fixture *f = *state;

    express(f, CFG, NULL, CONSENT_ACT_OPT_IN, CONSENT_SOURCE_MANUAL, T0, NULL);
    express(f, CFG, NULL, CONSENT_ACT_OPT_OUT,
            CONSENT_SOURCE_WHATSAPP_PREFERENCE, T0 + MIN, NULL);
    express(f, CFG, NULL, CONSENT_ACT_OPT_IN, CONSENT_SOURCE_MANUAL,
            T0 + 2 * MIN, NULL);
    express(f, CFG, NULL, CONSENT_ACT_OPT_OUT, CONSENT_SOURCE_WHATSAPP_STATUS,
            T0 + 3 * MIN, NULL);
    express(f, CFG, NULL, CONSENT_ACT_OPT_IN, CONSENT_SOURCE_MANUAL,
            T0 + 4 * MIN, NULL);
    express(f, CFG, NULL, CONSENT_ACT_OPT_OUT, CONSENT_SOURCE_MANUAL,
            T0 + 5 * MIN, NULL);
    assert_int_equal(
        testutil_query_int(f->c, "SELECT count(*) FROM outbox WHERE kind = "
                                 "'whatsapp'"),
        0);
}

static void test_consent_messages__off_sends_nothing(void **state)
{
    struct fixture *f = *state;

    f->opts.send_messages = 0;
    express(f, CFG_DOI, NULL, CONSENT_ACT_OPT_IN, CONSENT_SOURCE_WHATSAPP, T0,
            NULL);
    express(f, CFG_DOI, NULL, CONSENT_ACT_OPT_OUT, CONSENT_SOURCE_WHATSAPP,
            T0 + MIN, NULL);
    assert_int_equal(
        testutil_query_int(f->c, "SELECT count(*) FROM outbox WHERE kind = "
                                 "'whatsapp'"),
        0);
}

/* A newer message takes the place of one still pending for the number. */
static void test_consent_messages__newer_replaces_pending(void **state)
{
    struct fixture *f = *state;

    f->opts.opt_in_confirmation = 1;
    express(f, CFG_DOI, NULL, CONSENT_ACT_OPT_IN, CONSENT_SOURCE_WHATSAPP, T0,
            NULL);
    express(f, CFG_DOI, NULL, CONSENT_ACT_CONFIRM, CONSENT_SOURCE_WHATSAPP,
            T0 + MIN, NULL);
    assert_int_equal(
        testutil_query_int(f->c, "SELECT count(*) FROM outbox WHERE kind = "
                                 "'whatsapp' AND state = 'pending'"),
        1);
    assert_int_equal(messages(f, "opt_in_confirmation"), 1);
}

/* ---- Dataverse rows --------------------------------------------------------
 */

static void mirror(struct fixture *f, const char *id, enum consent_status s,
                   int64_t version)
{
    struct number_record r;
    struct consent_row row = { &r, "DE", 0, 0, NULL, NULL };
    struct consent_event ev;
    struct consent_result res;

    memset(&r, 0, sizeof(r));
    snprintf(r.id, sizeof(r.id), "%s", id);
    snprintf(r.configuration_id, sizeof(r.configuration_id), "%s", CFG_DOI);
    r.raw_phone = "0151 23456789";
    r.status = s;
    r.active = 1;
    r.modified_on = T0 + version * MIN;
    r.version = version;
    memset(&ev, 0, sizeof(ev));
    ev.action = CONSENT_ACT_MIRROR;
    ev.source = CONSENT_SOURCE_DATAVERSE;
    ev.row = &row;
    assert_int_equal(consent_apply(&res, f->c, &f->opts, &ev), 0);
}

#define ROW_A "3f2e0000-0000-0000-0000-00000000000a"

static void test_consent_messages__dynamics_rows(void **state)
{
    struct fixture *f = *state;

    /* Created in Dynamics as single opt-in on a DOI Configuration. */
    mirror(f, ROW_A, CONSENT_SINGLE_OPT_IN, 1);
    assert_int_equal(messages(f, "double_opt_in_request"), 1);
    /* An admin opts the number out: no confirmation. */
    mirror(f, ROW_A, CONSENT_OPTED_OUT, 2);
    assert_int_equal(
        testutil_query_int(f->c, "SELECT count(*) FROM outbox WHERE kind = "
                                 "'whatsapp'"),
        1);
}

/* The first load is a baseline: no transitions, no messages. */
static void test_consent_messages__baseline_sends_nothing(void **state)
{
    struct fixture *f = *state;
    struct consent_baseline b;
    struct number_record r;
    struct consent_row row = { &r, "DE", 1, 0, NULL, NULL };
    int i;

    assert_int_equal(cache_begin(f->c), 0);
    consent_baseline_begin(&b);
    for (i = 0; i < 50; i++) {
        memset(&r, 0, sizeof(r));
        snprintf(r.id, sizeof(r.id), "3f2e0000-0000-0000-0000-%012d", i);
        snprintf(r.configuration_id, sizeof(r.configuration_id), "%s", CFG_DOI);
        r.raw_phone = "+4915123456789";
        r.status = CONSENT_SINGLE_OPT_IN;
        r.active = 1;
        r.version = i + 1;
        assert_int_equal(consent_baseline_row(f->c, &b, &row), 0);
    }
    assert_int_equal(consent_baseline_end(f->c, &b, "number", T0), 0);
    assert_int_equal(cache_commit(f->c), 0);
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM outbox"),
                     0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_consent_messages__rule_table),
        cmocka_unit_test(test_consent_messages__names_and_still_due),
        cmocka_unit_test_setup_teardown(
            test_consent_messages__doi_request_once_within_window, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_consent_messages__stop_confirmed_once, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_consent_messages__no_reply_to_others, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_consent_messages__off_sends_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_consent_messages__newer_replaces_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consent_messages__dynamics_rows,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_consent_messages__baseline_sends_nothing, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
