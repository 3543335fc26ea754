/*
 * test_consent — the consent engine: every row of docs/design.md's transition
 * table, the conflict rule in both arrival orders, idempotence, the
 * Dataverse mirror (note 3: only a changed Dataverse status is an
 * expression), corrective write-backs, WABA-wide stops, quarantine and
 * replay, deletions, duplicates and inactive rows, and what a reply means.
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
#include "keywords.h"
#include "ledger.h"
#include "testutil.h"
#include "wa_cases.h"
#include "wa_users.h"
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
    wa_put_configuration(f->c, CFG, "WA Main", 0, "200100300400500", "waba1");
    wa_put_configuration(f->c, CFG_DOI, "WA DOI", 1, "200100300400501", NULL);
    wa_put_configuration(f->c, CFG_WABA2, "WA Second", 0, "200100300400502",
                         "waba1");
    f->opts.double_opt_in_window = 7 * DAY;
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

/* The state of PHONE in `cfg`: strictest active row status. */
static enum consent_status state_of(cache *c, const char *cfg)
{
    static const char q[] =
        "SELECT coalesce(max(CASE status WHEN 3 THEN 4 WHEN 0 THEN 3 "
        "WHEN 1 THEN 2 ELSE 1 END), 3) FROM numbers WHERE "
        "configuration_id = ?1 AND e164 = ?2 AND active = 1";
    static const enum consent_status by_rank[] = {
        CONSENT_NONE, CONSENT_DOUBLE_OPT_IN, CONSENT_SINGLE_OPT_IN,
        CONSENT_NONE, CONSENT_OPTED_OUT
    };
    sqlite3_stmt *st = cache_stmt(c, q);
    int rank;

    cache_bind_text(st, 1, cfg);
    cache_bind_text(st, 2, PHONE);
    assert_int_equal(cache_step(st), SQLITE_ROW);
    rank = sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    return by_rank[rank];
}

static enum consent_outcome express(struct fixture *f, const char *cfg,
                                    enum consent_action action, int64_t at,
                                    const char *inbound_id)
{
    struct consent_event ev;
    struct consent_result r;

    memset(&ev, 0, sizeof(ev));
    ev.configuration_id = cfg;
    ev.e164 = PHONE;
    ev.action = action;
    ev.event_at = at;
    ev.source = CONSENT_SOURCE_WHATSAPP;
    ev.evidence = "{\"text\":\"test\"}";
    ev.inbound_source = inbound_id ? "whatsapp" : NULL;
    ev.inbound_id = inbound_id;
    assert_int_equal(consent_apply(&r, f->c, &f->opts, &ev), 0);
    return r.outcome;
}

/* ---- the transition table -------------------------------------------------
 */

static const struct {
    const char *name;
    int doi;
    enum consent_action first; /* NONE: start from no record */
    int64_t gap;               /* between first and second */
    enum consent_action second;
    enum consent_status expect;
} table[] = {
    { "none + opt-in, DOI off", 0, CONSENT_ACT_NONE, 0, CONSENT_ACT_OPT_IN,
      CONSENT_SINGLE_OPT_IN },
    { "none + opt-in, DOI on (pending)", 1, CONSENT_ACT_NONE, 0,
      CONSENT_ACT_OPT_IN, CONSENT_SINGLE_OPT_IN },
    { "opted_out + opt-in", 0, CONSENT_ACT_OPT_OUT, MIN, CONSENT_ACT_OPT_IN,
      CONSENT_SINGLE_OPT_IN },
    { "opted_out + opt-in, DOI on", 1, CONSENT_ACT_OPT_OUT, MIN,
      CONSENT_ACT_OPT_IN, CONSENT_SINGLE_OPT_IN },
    { "single + confirm, DOI off: no change", 0, CONSENT_ACT_OPT_IN, MIN,
      CONSENT_ACT_CONFIRM, CONSENT_SINGLE_OPT_IN },
    { "single + confirm, DOI on", 1, CONSENT_ACT_OPT_IN, 30 * DAY,
      CONSENT_ACT_CONFIRM, CONSENT_DOUBLE_OPT_IN },
    { "single + opt-in within window, DOI on", 1, CONSENT_ACT_OPT_IN, DAY,
      CONSENT_ACT_OPT_IN, CONSENT_DOUBLE_OPT_IN },
    { "single + opt-in after window, DOI on", 1, CONSENT_ACT_OPT_IN, 8 * DAY,
      CONSENT_ACT_OPT_IN, CONSENT_SINGLE_OPT_IN },
    { "single + opt-in, DOI off: no change", 0, CONSENT_ACT_OPT_IN, MIN,
      CONSENT_ACT_OPT_IN, CONSENT_SINGLE_OPT_IN },
    { "none + confirm: no change", 1, CONSENT_ACT_NONE, 0, CONSENT_ACT_CONFIRM,
      CONSENT_NONE },
    { "none + opt-out", 0, CONSENT_ACT_NONE, 0, CONSENT_ACT_OPT_OUT,
      CONSENT_OPTED_OUT },
    { "single + opt-out", 0, CONSENT_ACT_OPT_IN, MIN, CONSENT_ACT_OPT_OUT,
      CONSENT_OPTED_OUT },
    { "double + opt-out", 1, CONSENT_ACT_CONFIRM, MIN, CONSENT_ACT_OPT_OUT,
      CONSENT_OPTED_OUT },
};

static void test_consent__transition_table(void **state)
{
    size_t i;

    for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        struct fixture *f;
        const char *cfg = table[i].doi ? CFG_DOI : CFG;

        teardown(state);
        setup(state);
        f = *state;
        if (table[i].first == CONSENT_ACT_CONFIRM) {
            /* get to double first: opt-in, then confirm */
            express(f, cfg, CONSENT_ACT_OPT_IN, T0 - MIN, NULL);
            express(f, cfg, CONSENT_ACT_CONFIRM, T0, NULL);
        } else if (table[i].first != CONSENT_ACT_NONE) {
            express(f, cfg, table[i].first, T0, NULL);
        }
        express(f, cfg, table[i].second, T0 + table[i].gap, NULL);
        if (state_of(f->c, cfg) != table[i].expect)
            fail_msg("%s: expected %s, got %s", table[i].name,
                     consent_status_name(table[i].expect),
                     consent_status_name(state_of(f->c, cfg)));
    }
}

static void test_consent__rule_function_directly(void **state)
{
    (void)state;
    assert_int_equal(consent_next_status(CONSENT_ACT_OPT_IN,
                                         CONSENT_SINGLE_OPT_IN, T0,
                                         T0 + 7 * DAY, 1, 7 * DAY),
                     CONSENT_DOUBLE_OPT_IN); /* window is inclusive */
    assert_int_equal(consent_next_status(CONSENT_ACT_OPT_IN,
                                         CONSENT_SINGLE_OPT_IN, T0,
                                         T0 + 7 * DAY + 1, 1, 7 * DAY),
                     CONSENT_SINGLE_OPT_IN);
    assert_int_equal(consent_next_status(CONSENT_ACT_OPT_IN,
                                         CONSENT_DOUBLE_OPT_IN, T0, T0, 1, DAY),
                     CONSENT_DOUBLE_OPT_IN);
    assert_true(consent_status_rank(CONSENT_OPTED_OUT) >
                consent_status_rank(CONSENT_NONE));
    assert_true(consent_status_rank(CONSENT_NONE) >
                consent_status_rank(CONSENT_SINGLE_OPT_IN));
    assert_true(consent_status_rank(CONSENT_SINGLE_OPT_IN) >
                consent_status_rank(CONSENT_DOUBLE_OPT_IN));
}

/* ---- conflict rule --------------------------------------------------------
 */

static void test_consent__conflict_opt_out_then_older_opt_in(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(express(f, CFG, CONSENT_ACT_OPT_OUT, T0 + 10, NULL),
                     CONSENT_CHANGED);
    assert_int_equal(express(f, CFG, CONSENT_ACT_OPT_IN, T0 + 5, NULL),
                     CONSENT_STALE);
    assert_int_equal(state_of(f->c, CFG), CONSENT_OPTED_OUT);
}

static void test_consent__conflict_opt_in_then_newer_opt_out(void **state)
{
    struct fixture *f = *state;

    express(f, CFG, CONSENT_ACT_OPT_IN, T0 + 5, NULL);
    assert_int_equal(express(f, CFG, CONSENT_ACT_OPT_OUT, T0 + 10, NULL),
                     CONSENT_CHANGED);
    assert_int_equal(state_of(f->c, CFG), CONSENT_OPTED_OUT);
}

static void test_consent__conflict_latest_wins_both_orders(void **state)
{
    struct fixture *f = *state;

    /* A newer opt-in first, the older opt-out arrives late: latest wins. */
    express(f, CFG, CONSENT_ACT_OPT_IN, T0 + 10, NULL);
    assert_int_equal(express(f, CFG, CONSENT_ACT_OPT_OUT, T0 + 5, NULL),
                     CONSENT_STALE);
    assert_int_equal(state_of(f->c, CFG), CONSENT_SINGLE_OPT_IN);
}

static void test_consent__conflict_tie_opt_out_wins(void **state)
{
    struct fixture *f = *state;

    express(f, CFG, CONSENT_ACT_OPT_OUT, T0, NULL);
    assert_int_equal(express(f, CFG, CONSENT_ACT_OPT_IN, T0, NULL),
                     CONSENT_STALE);
    assert_int_equal(state_of(f->c, CFG), CONSENT_OPTED_OUT);
    teardown(state);
    setup(state);
    f = *state;
    express(f, CFG, CONSENT_ACT_OPT_IN, T0, NULL);
    assert_int_equal(express(f, CFG, CONSENT_ACT_OPT_OUT, T0, NULL),
                     CONSENT_CHANGED);
    assert_int_equal(state_of(f->c, CFG), CONSENT_OPTED_OUT);
}

/* ---- idempotence, ledger and outbox -----------------------------------------
 */

static void test_consent__same_event_twice_changes_nothing(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(express(f, CFG, CONSENT_ACT_OPT_IN, T0, "wamid.A"),
                     CONSENT_CHANGED);
    assert_int_equal(express(f, CFG, CONSENT_ACT_OPT_IN, T0, "wamid.A"),
                     CONSENT_DUPLICATE);
    /* Without an id, the same transition again is no transition. */
    assert_int_equal(express(f, CFG, CONSENT_ACT_OPT_IN, T0 + 1, NULL),
                     CONSENT_UNCHANGED);
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM ledger"),
                     1);
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM outbox"),
                     1);
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM numbers"),
                     1);
}

static void test_consent__one_pending_writeback_per_row(void **state)
{
    struct fixture *f = *state;

    express(f, CFG, CONSENT_ACT_OPT_IN, T0, NULL);
    express(f, CFG, CONSENT_ACT_OPT_OUT, T0 + MIN, NULL);
    express(f, CFG, CONSENT_ACT_OPT_IN, T0 + 2 * MIN, NULL);
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM outbox"),
                     1);
    assert_int_equal(testutil_query_int(f->c, "SELECT status FROM outbox"),
                     CONSENT_SINGLE_OPT_IN);
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM ledger"),
                     3);
    assert_int_equal(
        testutil_query_int(f->c, "SELECT pending_writeback FROM numbers"), 1);
    /* A local row waits for its Dataverse id. */
    assert_int_equal(
        testutil_query_int(f->c,
                           "SELECT count(*) FROM numbers WHERE dv_id IS NULL"),
        1);
}

static void test_consent__unknown_configuration_not_found(void **state)
{
    struct fixture *f = *state;
    struct consent_event ev;
    struct consent_result r;

    memset(&ev, 0, sizeof(ev));
    ev.phone_number_id = "999";
    ev.e164 = PHONE;
    ev.action = CONSENT_ACT_OPT_OUT;
    ev.event_at = T0;
    ev.source = CONSENT_SOURCE_WHATSAPP;
    assert_int_equal(consent_apply(&r, f->c, &f->opts, &ev), ERR_NOTFOUND);
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM numbers"),
                     0);
    assert_int_equal(
        testutil_query_int(f->c, "SELECT count(*) FROM inbound_seen"), 0);
}

static void test_consent__quarantine_and_replay(void **state)
{
    struct fixture *f = *state;
    struct consent_event ev;
    int applied, waiting;

    memset(&ev, 0, sizeof(ev));
    ev.phone_number_id = "777";
    ev.e164 = PHONE;
    ev.action = CONSENT_ACT_OPT_OUT;
    ev.event_at = T0;
    ev.source = CONSENT_SOURCE_WHATSAPP;
    ev.evidence = "{\"text\":\"STOP\"}";
    ev.inbound_source = "whatsapp";
    ev.inbound_id = "wamid.Q";
    assert_int_equal(
        consent_quarantine(f->c, &ev, "unknown_configuration", "777"), 0);
    assert_int_equal(
        consent_quarantine_replay(f->c, &f->opts, &applied, &waiting), 0);
    assert_int_equal(applied, 0);
    assert_int_equal(waiting, 1);
    /* A sync brings the configuration: the next replay applies it. */
    wa_put_configuration(f->c, "6a1c0d6e-0000-0000-0000-000000000777", "New", 0,
                         "777", NULL);
    assert_int_equal(
        consent_quarantine_replay(f->c, &f->opts, &applied, &waiting), 0);
    assert_int_equal(applied, 1);
    assert_int_equal(waiting, 0);
    assert_int_equal(
        testutil_query_int(
            f->c, "SELECT status FROM numbers WHERE e164 = '" PHONE "'"),
        CONSENT_OPTED_OUT);
    assert_int_equal(testutil_query_int(
                         f->c,
                         "SELECT count(*) FROM quarantine WHERE resolved_at IS "
                         "NULL"),
                     0);
    assert_int_equal(
        testutil_query_int(f->c, "SELECT attempts FROM quarantine"), 2);
    /* The evidence survived the round trip. */
    assert_int_equal(testutil_query_int(f->c,
                                        "SELECT count(*) FROM ledger WHERE "
                                        "evidence = '{\"text\":\"STOP\"}'"),
                     1);
}

/* The _locked form writes in the caller's transaction: a rollback
 * takes the quarantined event back with everything else. */
static void test_consent__quarantine_locked_follows_the_caller(void **state)
{
    struct fixture *f = *state;
    struct consent_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.phone_number_id = "778";
    ev.e164 = PHONE;
    ev.action = CONSENT_ACT_OPT_OUT;
    ev.event_at = T0;
    ev.source = CONSENT_SOURCE_WHATSAPP;
    assert_int_equal(cache_begin(f->c), 0);
    assert_int_equal(
        consent_quarantine_locked(f->c, &ev, "unknown_configuration", "778"),
        0);
    cache_rollback(f->c);
    assert_int_equal(
        testutil_query_int(f->c, "SELECT count(*) FROM quarantine"), 0);
    assert_int_equal(cache_begin(f->c), 0);
    assert_int_equal(
        consent_quarantine_locked(f->c, &ev, "unknown_configuration", "778"),
        0);
    assert_int_equal(cache_commit(f->c), 0);
    assert_int_equal(
        testutil_query_int(f->c, "SELECT count(*) FROM quarantine"), 1);
    ev.action = CONSENT_ACT_NONE;
    assert_int_equal(consent_quarantine(f->c, &ev, "x", NULL), ERR_BADINPUT);
}

/* An event with only a WhatsApp BSUID waits until a delivery has linked
 * the BSUID to a number, then applies to that number. */
static void test_consent__keyed_by_user_id(void **state)
{
    struct fixture *f = *state;
    struct consent_event ev;
    struct consent_result r;
    int fresh = 0, applied, waiting;

    memset(&ev, 0, sizeof(ev));
    ev.configuration_id = CFG;
    ev.user_id = "DE.4471120093";
    ev.action = CONSENT_ACT_OPT_OUT;
    ev.event_at = T0;
    ev.source = CONSENT_SOURCE_WHATSAPP;
    assert_int_equal(consent_apply(&r, f->c, &f->opts, &ev), ERR_NOTFOUND);
    assert_int_equal(consent_quarantine(f->c, &ev, "unknown_user", ev.user_id),
                     0);
    assert_int_equal(
        consent_quarantine_replay(f->c, &f->opts, &applied, &waiting), 0);
    assert_int_equal(waiting, 1);
    assert_int_equal(cache_begin(f->c), 0);
    assert_int_equal(
        wa_users_link_put(&fresh, f->c, ev.user_id, PHONE, NULL, NULL), 0);
    assert_int_equal(cache_commit(f->c), 0);
    assert_int_equal(fresh, 1);
    assert_int_equal(
        consent_quarantine_replay(f->c, &f->opts, &applied, &waiting), 0);
    assert_int_equal(applied, 1);
    assert_int_equal(state_of(f->c, CFG), CONSENT_OPTED_OUT);
    assert_int_equal(
        testutil_query_int(f->c, "SELECT count(*) FROM ledger WHERE phone = "
                                 "'" PHONE "'"),
        1);
}

static void test_consent__waba_wide_stop(void **state)
{
    struct fixture *f = *state;
    struct consent_event ev;
    struct consent_result r;

    express(f, CFG, CONSENT_ACT_OPT_IN, T0, NULL);
    memset(&ev, 0, sizeof(ev));
    ev.phone_number_id = "200100300400500";
    ev.waba_wide = 1;
    ev.e164 = PHONE;
    ev.action = CONSENT_ACT_OPT_OUT;
    ev.event_at = T0 + MIN;
    ev.source = CONSENT_SOURCE_WHATSAPP_PREFERENCE;
    assert_int_equal(consent_apply(&r, f->c, &f->opts, &ev), 0);
    assert_int_equal(r.configurations, 2);
    assert_int_equal(state_of(f->c, CFG), CONSENT_OPTED_OUT);
    assert_int_equal(state_of(f->c, CFG_WABA2), CONSENT_OPTED_OUT);
    assert_int_equal(state_of(f->c, CFG_DOI), CONSENT_NONE); /* no WABA */
}

static void test_consent__preferences(void **state)
{
    struct fixture *f = *state;
    struct consent_event ev;
    struct consent_result r;

    memset(&ev, 0, sizeof(ev));
    ev.configuration_id = CFG;
    ev.e164 = PHONE;
    ev.action = CONSENT_ACT_TOPIC_OPT_OUT;
    ev.topic = "promotions";
    ev.event_at = T0;
    ev.source = CONSENT_SOURCE_MANUAL;
    /* A preference needs a record. */
    assert_int_equal(consent_apply(&r, f->c, &f->opts, &ev), ERR_NOTFOUND);
    express(f, CFG, CONSENT_ACT_OPT_IN, T0, NULL);
    assert_int_equal(consent_apply(&r, f->c, &f->opts, &ev), 0);
    assert_int_equal(consent_apply(&r, f->c, &f->opts, &ev), 0);
    ev.topic = "news";
    assert_int_equal(consent_apply(&r, f->c, &f->opts, &ev), 0);
    ev.action = CONSENT_ACT_PAUSE;
    ev.topic = NULL;
    ev.paused_until = T0 + 7 * DAY;
    assert_int_equal(consent_apply(&r, f->c, &f->opts, &ev), 0);
    assert_int_equal(
        testutil_query_int(f->c, "SELECT topics = 'promotions,news' AND "
                                 "paused_until IS NOT NULL FROM numbers"),
        1);
    assert_int_equal(state_of(f->c, CFG), CONSENT_SINGLE_OPT_IN);
}

/* ---- mirroring Dataverse rows
 * ------------------------------------------------ */

static struct number_record dv_row(const char *id, enum consent_status s,
                                   int64_t modified, int64_t version)
{
    struct number_record r;

    memset(&r, 0, sizeof(r));
    snprintf(r.id, sizeof(r.id), "%s", id);
    snprintf(r.configuration_id, sizeof(r.configuration_id), "%s", CFG);
    r.raw_phone = "0151 23456789";
    r.status = s;
    r.active = 1;
    r.modified_on = modified;
    r.version = version;
    return r;
}

static enum consent_outcome mirror(struct fixture *f,
                                   const struct number_record *rec)
{
    struct consent_row row = { rec, "DE", 0, 0, NULL, NULL };
    struct consent_event ev;
    struct consent_result r;

    memset(&ev, 0, sizeof(ev));
    ev.action = CONSENT_ACT_MIRROR;
    ev.source = CONSENT_SOURCE_DATAVERSE;
    ev.row = &row;
    assert_int_equal(consent_apply(&r, f->c, &f->opts, &ev), 0);
    return r.outcome;
}

#define ROW_A "3f2e0000-0000-0000-0000-00000000000a"
#define ROW_B "3f2e0000-0000-0000-0000-00000000000b"

static void test_consent__mirror_new_and_unchanged(void **state)
{
    struct fixture *f = *state;
    struct number_record a = dv_row(ROW_A, CONSENT_DOUBLE_OPT_IN, T0, 10);

    assert_int_equal(mirror(f, &a), CONSENT_CHANGED);
    assert_int_equal(state_of(f->c, CFG), CONSENT_DOUBLE_OPT_IN);
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM ledger"),
                     1);
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM outbox"),
                     0);
    /* Same version again: nothing. */
    assert_int_equal(mirror(f, &a), CONSENT_UNCHANGED);
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM ledger"),
                     1);
}

static void test_consent__mirror_unparseable_kept_out(void **state)
{
    struct fixture *f = *state;
    struct number_record a = dv_row(ROW_A, CONSENT_SINGLE_OPT_IN, T0, 10);

    a.raw_phone = "call me maybe";
    mirror(f, &a);
    assert_int_equal(
        testutil_query_int(f->c, "SELECT count(*) FROM numbers WHERE e164 "
                                 "IS NULL AND phone_error IS NOT NULL AND "
                                 "raw_phone = 'call me maybe'"),
        1);
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM ledger"),
                     0);
}

static void test_consent__dataverse_loses_gets_corrected(void **state)
{
    struct fixture *f = *state;
    struct number_record a = dv_row(ROW_A, CONSENT_SINGLE_OPT_IN, T0, 10);

    mirror(f, &a);
    /* The customer says STOP at T0+10m ... */
    express(f, CFG, CONSENT_ACT_OPT_OUT, T0 + 10 * MIN, "wamid.S");
    /* ... an admin's older edit (T0+5m) to double opt-in arrives late. */
    a = dv_row(ROW_A, CONSENT_DOUBLE_OPT_IN, T0 + 5 * MIN, 11);
    assert_int_equal(mirror(f, &a), CONSENT_CORRECTED);
    assert_int_equal(state_of(f->c, CFG), CONSENT_OPTED_OUT);
    assert_int_equal(testutil_query_int(
                         f->c,
                         "SELECT count(*) FROM outbox WHERE state = 'pending' "
                         "AND status = 3"),
                     1);
    assert_int_equal(testutil_query_int(f->c, "SELECT dv_status FROM numbers"),
                     CONSENT_DOUBLE_OPT_IN);
}

static void test_consent__dataverse_newer_wins(void **state)
{
    struct fixture *f = *state;
    struct number_record a = dv_row(ROW_A, CONSENT_SINGLE_OPT_IN, T0, 10);

    mirror(f, &a);
    express(f, CFG, CONSENT_ACT_OPT_OUT, T0 + 10 * MIN, NULL);
    /* The admin re-opts the customer in later (a signed form). */
    a = dv_row(ROW_A, CONSENT_SINGLE_OPT_IN, T0 + 20 * MIN, 12);
    a.status = CONSENT_DOUBLE_OPT_IN;
    assert_int_equal(mirror(f, &a), CONSENT_CHANGED);
    assert_int_equal(state_of(f->c, CFG), CONSENT_DOUBLE_OPT_IN);
    /* The pending write-back of the overtaken opt-out is dropped. */
    assert_int_equal(
        testutil_query_int(
            f->c, "SELECT count(*) FROM outbox WHERE state = 'pending'"),
        0);
}

static void test_consent__edit_of_another_column_is_no_consent(void **state)
{
    struct fixture *f = *state;
    struct number_record a = dv_row(ROW_A, CONSENT_SINGLE_OPT_IN, T0, 10);

    mirror(f, &a);
    express(f, CFG, CONSENT_ACT_OPT_OUT, T0 + 10 * MIN, NULL);
    /* Later edit, status column untouched (still single in Dynamics). */
    a = dv_row(ROW_A, CONSENT_SINGLE_OPT_IN, T0 + 30 * MIN, 13);
    mirror(f, &a);
    assert_int_equal(state_of(f->c, CFG), CONSENT_OPTED_OUT);
    assert_int_equal(
        testutil_query_int(
            f->c, "SELECT count(*) FROM outbox WHERE state = 'pending'"),
        1);
}

static void test_consent__new_dv_row_meets_local_opt_out(void **state)
{
    struct fixture *f = *state;
    struct number_record b = dv_row(ROW_B, CONSENT_SINGLE_OPT_IN, T0, 20);

    /* STOP from WhatsApp creates a local row first ... */
    express(f, CFG, CONSENT_ACT_OPT_OUT, T0 + MIN, NULL);
    /* ... then an older Dynamics row for the same number shows up: the
     * local row adopts it (no second record is created in Dynamics) and
     * its pending write-back now corrects row B. */
    assert_int_equal(mirror(f, &b), CONSENT_CORRECTED);
    assert_int_equal(state_of(f->c, CFG), CONSENT_OPTED_OUT);
    assert_int_equal(testutil_query_int(f->c,
                                        "SELECT count(*) FROM outbox WHERE "
                                        "state = 'pending'"),
                     1);
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM numbers"),
                     1);
    assert_int_equal(testutil_query_int(f->c,
                                        "SELECT count(*) FROM numbers WHERE "
                                        "dv_id = '" ROW_B "' AND status = 3"),
                     1);
}

/*
 * Echo suppression (outbox.h note 5): a write of ours whose outcome is not
 * known (in flight, or its answer lost) shows up in a delta with a newer
 * modifiedon than a local change made meanwhile; it is our write, not an
 * admin's newer expression, so the local change stands, unledgered.
 */
static void test_consent__own_unconfirmed_write_is_no_expression(void **state)
{
    struct fixture *f = *state;
    struct number_record a = dv_row(ROW_A, CONSENT_SINGLE_OPT_IN, T0, 10);
    long long ledger;

    mirror(f, &a);
    express(f, CFG, CONSENT_ACT_OPT_OUT, T0 + 10 * MIN, NULL);
    /* The outbox sent the opt-out and a double opt-in was expressed
     * before the opt-out's answer came back: the pending row carries the
     * double opt-in, the sent mask the unconfirmed opt-out. */
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM outbox"),
                     1);
    cache_exec(f->c, "UPDATE outbox SET sent_mask = 8, status = 1");
    cache_exec(f->c, "UPDATE numbers SET status = 1, status_at = "
                     "1738001200000, source = 'whatsapp'");
    ledger = testutil_query_int(f->c, "SELECT count FROM ledger_head");
    /* The opt-out lands in Dynamics later than the opt-in was expressed. */
    a = dv_row(ROW_A, CONSENT_OPTED_OUT, T0 + 30 * MIN, 11);
    assert_int_equal(mirror(f, &a), CONSENT_CHANGED);
    assert_int_equal(state_of(f->c, CFG), CONSENT_SINGLE_OPT_IN);
    assert_int_equal(testutil_query_int(f->c, "SELECT count FROM ledger_head"),
                     ledger);
    assert_int_equal(testutil_query_int(f->c, "SELECT dv_status FROM numbers"),
                     CONSENT_OPTED_OUT);
    assert_int_equal(
        testutil_query_int(f->c, "SELECT count(*) FROM outbox WHERE state = "
                                 "'pending'"),
        1); /* the opt-in still goes out */
    /* Without the sent mask the same row is an admin's newer opt-out. */
    cache_exec(f->c, "UPDATE outbox SET sent_mask = 0");
    a = dv_row(ROW_A, CONSENT_OPTED_OUT, T0 + 40 * MIN, 12);
    cache_exec(f->c, "UPDATE numbers SET dv_status = 1");
    assert_int_equal(mirror(f, &a), CONSENT_CHANGED);
    assert_int_equal(state_of(f->c, CFG), CONSENT_OPTED_OUT);
}

static void test_consent__duplicates_strictest_and_inactive(void **state)
{
    struct fixture *f = *state;
    struct number_record a = dv_row(ROW_A, CONSENT_DOUBLE_OPT_IN, T0, 10);
    struct number_record b = dv_row(ROW_B, CONSENT_OPTED_OUT, T0, 11);

    b.raw_phone = "+49 151 2345 6789"; /* the same number typed again */
    mirror(f, &a);
    mirror(f, &b);
    assert_int_equal(state_of(f->c, CFG), CONSENT_OPTED_OUT);
    /* Row B deactivated: it counts as no record. */
    b.active = 0;
    b.version = 12;
    mirror(f, &b);
    assert_int_equal(state_of(f->c, CFG), CONSENT_DOUBLE_OPT_IN);
    /* A local opt-out reaches the active row only. */
    express(f, CFG, CONSENT_ACT_OPT_OUT, T0 + MIN, NULL);
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM outbox"),
                     1);
}

static void test_consent__phone_change_moves_state(void **state)
{
    struct fixture *f = *state;
    struct number_record a = dv_row(ROW_A, CONSENT_OPTED_OUT, T0, 10);

    mirror(f, &a);
    a.raw_phone = "+44 20 7946 0958";
    a.version = 11;
    a.modified_on = T0 + MIN;
    mirror(f, &a);
    assert_int_equal(state_of(f->c, CFG), CONSENT_NONE);
    assert_int_equal(
        testutil_query_int(f->c, "SELECT count(*) FROM numbers WHERE "
                                 "e164 = '+442079460958' AND status = 3"),
        1);
    /* none->opted_out for the first, opted_out->none and none->opted_out
     * as the phone moved. */
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM ledger"),
                     3);
}

/* ---- phones under the possible-number rule (migration 6) ----------------- */

#define UK_NEW "+447700900251" /* possible, not in the metadata */

static void mirror_in(struct fixture *f, const struct number_record *rec,
                      const char *region)
{
    struct consent_row row = { rec, region, 0, 0, NULL, NULL };
    struct consent_event ev;
    struct consent_result r;

    memset(&ev, 0, sizeof(ev));
    ev.action = CONSENT_ACT_MIRROR;
    ev.source = CONSENT_SOURCE_DATAVERSE;
    ev.row = &row;
    assert_int_equal(consent_apply(&r, f->c, &f->opts, &ev), 0);
}

/* What a row looks like after the old rule, upgraded by migration 6. */
static void as_under_the_old_rule(cache *c)
{
    assert_int_equal(
        cache_exec(c, "UPDATE numbers SET e164 = NULL, phone_error = 'not a "
                      "valid number (no such range in its country: a "
                      "typo?)', phone_warning = NULL, phone_checked = 0 "
                      "WHERE raw_phone = '07700 900251'"),
        0);
}

static int ledger_entries(cache *c, const char *phone)
{
    sqlite3_stmt *st =
        cache_stmt(c, "SELECT count(*) FROM ledger WHERE phone = ?1");
    int n;

    cache_bind_text(st, 1, phone);
    assert_int_equal(cache_step(st), SQLITE_ROW);
    n = sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    return n;
}

/* A CRM row in a range the metadata does not know gets its key and the
 * warning; a valid one gets no warning. */
static void test_consent__mirror_keys_possible_numbers(void **state)
{
    struct fixture *f = *state;
    struct number_record a = dv_row(ROW_A, CONSENT_OPTED_OUT, T0, 10);
    struct number_record b = dv_row(ROW_B, CONSENT_OPTED_OUT, T0, 10);

    a.raw_phone = "07700 900251";
    mirror_in(f, &a, "GB");
    mirror_in(f, &b, "DE");
    assert_int_equal(
        testutil_query_int(f->c, "SELECT count(*) FROM numbers WHERE e164 = "
                                 "'" UK_NEW "' AND phone_warning = 'not a "
                                 "valid number in libphonenumber''s "
                                 "metadata' AND phone_checked = 1"),
        1);
    assert_int_equal(
        testutil_query_int(f->c, "SELECT count(*) FROM numbers WHERE e164 = "
                                 "'" PHONE "' AND phone_warning IS NULL"),
        1);
    assert_int_equal(ledger_entries(f->c, UK_NEW), 1);
}

/*
 * A full read after the upgrade: the row comes with the version the cache
 * holds, yet it is not the unchanged hot path, because its phone was not
 * parsed under the current rule; it gets its key, and the key's state is
 * ledgered.
 */
static void test_consent__upgrade_full_read_parses_again(void **state)
{
    struct fixture *f = *state;
    struct number_record a = dv_row(ROW_A, CONSENT_OPTED_OUT, T0, 10);

    a.raw_phone = "07700 900251";
    mirror_in(f, &a, "GB");
    as_under_the_old_rule(f->c);
    mirror_in(f, &a, "GB");
    assert_int_equal(
        testutil_query_int(f->c, "SELECT count(*) FROM numbers WHERE e164 = "
                                 "'" UK_NEW "' AND phone_error IS NULL AND "
                                 "phone_warning IS NOT NULL AND "
                                 "phone_checked = 1 AND status = 3"),
        1);
    assert_int_equal(ledger_entries(f->c, UK_NEW), 2);
    /* And then it is the hot path again. */
    mirror_in(f, &a, "GB");
    assert_int_equal(ledger_entries(f->c, UK_NEW), 2);
}

/*
 * A delta after the upgrade (Dataverse sends nothing): the recheck pass
 * keys the rows the old rule left without one, takes the key of a CRM
 * row the old fast path trusted without a length check, and only adds
 * the warning to a local row; each state change is ledgered.
 */
static void test_consent__recheck_converges_without_dataverse(void **state)
{
    struct fixture *f = *state;
    struct number_record a = dv_row(ROW_A, CONSENT_OPTED_OUT, T0, 10);
    struct number_record b = dv_row(ROW_B, CONSENT_SINGLE_OPT_IN, T0, 10);
    int done = 0, rekeyed = 0, total = 0, moved = 0;

    a.raw_phone = "07700 900251";
    mirror_in(f, &a, "GB");
    b.raw_phone = "+12345678";
    mirror_in(f, &b, "GB");
    express(f, CFG, CONSENT_ACT_OPT_OUT, T0, NULL); /* a local row */
    as_under_the_old_rule(f->c);
    assert_int_equal(cache_exec(f->c, "UPDATE numbers SET e164 = "
                                      "'+12345678', phone_error = NULL "
                                      "WHERE raw_phone = '+12345678'"),
                     0);
    assert_int_equal(cache_exec(f->c, "UPDATE numbers SET phone_checked = 0"),
                     0);
    do {
        assert_int_equal(cache_begin(f->c), 0);
        assert_int_equal(consent_phones_recheck(f->c, "GB", 2, &done, &rekeyed),
                         0);
        assert_int_equal(cache_commit(f->c), 0);
        total += done;
        moved += rekeyed;
    } while (done == 2);
    assert_int_equal(total, 3);
    assert_int_equal(moved, 2);
    assert_int_equal(testutil_query_int(f->c,
                                        "SELECT count(*) FROM numbers WHERE "
                                        "phone_checked = 0"),
                     0);
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM numbers "
                                              "WHERE e164 = '" UK_NEW "' AND "
                                              "phone_warning IS NOT NULL"),
                     1);
    assert_int_equal(
        testutil_query_int(f->c, "SELECT count(*) FROM numbers WHERE "
                                 "raw_phone = '+12345678' AND e164 IS NULL "
                                 "AND phone_error LIKE '%too short%'"),
        1);
    assert_int_equal(
        testutil_query_int(f->c, "SELECT count(*) FROM numbers WHERE dv_id "
                                 "IS NULL AND e164 = '" PHONE "' AND "
                                 "status = 3 AND phone_warning IS NULL"),
        1);
    /* none -> opted_out for the new key (after the first mirror's entry),
     * single_opt_in -> none for the key taken away (the old cache had it
     * without an entry: set by hand above). */
    assert_int_equal(ledger_entries(f->c, UK_NEW), 2);
    assert_int_equal(ledger_entries(f->c, "+12345678"), 1);
    assert_int_equal(cache_begin(f->c), 0);
    assert_int_equal(consent_phones_recheck(f->c, "GB", 2, &done, &rekeyed), 0);
    assert_int_equal(cache_commit(f->c), 0);
    assert_int_equal(done, 0);
}

static void test_consent__deleted_row(void **state)
{
    struct fixture *f = *state;
    struct number_record a = dv_row(ROW_A, CONSENT_SINGLE_OPT_IN, T0, 10);

    mirror(f, &a);
    assert_int_equal(cache_begin(f->c), 0);
    assert_int_equal(
        consent_row_deleted(f->c, ROW_A, T0 + MIN, CONSENT_SOURCE_DATAVERSE),
        0);
    assert_int_equal(cache_commit(f->c), 0);
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM numbers"),
                     0);
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM ledger"),
                     2);
}

static void test_consent__deleted_row_keeps_pending_opt_out(void **state)
{
    struct fixture *f = *state;
    struct number_record a = dv_row(ROW_A, CONSENT_SINGLE_OPT_IN, T0, 10);

    mirror(f, &a);
    express(f, CFG, CONSENT_ACT_OPT_OUT, T0 + MIN, NULL);
    assert_int_equal(cache_begin(f->c), 0);
    assert_int_equal(consent_row_deleted(f->c, ROW_A, T0 + 2 * MIN,
                                         CONSENT_SOURCE_DATAVERSE),
                     0);
    assert_int_equal(cache_commit(f->c), 0);
    /* The opt-out stays and will re-create the record. */
    assert_int_equal(state_of(f->c, CFG), CONSENT_OPTED_OUT);
    assert_int_equal(
        testutil_query_int(f->c,
                           "SELECT count(*) FROM numbers WHERE dv_id IS NULL"),
        1);
    assert_int_equal(
        testutil_query_int(
            f->c, "SELECT count(*) FROM outbox WHERE state = 'pending'"),
        1);
    {
        struct ledger_verify_result v;

        assert_int_equal(ledger_verify(&v, f->c), 0);
        assert_true(v.intact);
    }
}

/* ---- what a reply means -----------------------------------------------------
 */

static const struct {
    const char *text, *payload, *title;
    int context, forwarded;
    enum consent_action expect;
    int near_miss;
} replies[] = {
    { "STOP", NULL, NULL, 0, 0, CONSENT_ACT_OPT_OUT, 0 },
    { " stop! ", NULL, NULL, 0, 0, CONSENT_ACT_OPT_OUT, 0 },
    { "STOPPING", NULL, NULL, 0, 0, CONSENT_ACT_NONE, 0 },
    { "please stop sending these", NULL, NULL, 0, 0, CONSENT_ACT_NONE, 1 },
    { "YES", NULL, NULL, 0, 0, CONSENT_ACT_NONE, 0 },
    { "YES", NULL, NULL, 1, 0, CONSENT_ACT_OPT_IN, 0 },
    { "Subscribe", NULL, NULL, 0, 0, CONSENT_ACT_OPT_IN, 0 },
    { "Subscribe", NULL, NULL, 0, 1, CONSENT_ACT_NONE, 0 },
    { "STOP", NULL, NULL, 0, 1, CONSENT_ACT_OPT_OUT, 0 },
    { NULL, "OPT_OUT", "Yes please", 1, 0, CONSENT_ACT_OPT_OUT, 0 },
    { NULL, "callback_data", "Unsubscribe", 1, 0, CONSENT_ACT_OPT_OUT, 0 },
    { NULL, "STOP", "Sure!", 1, 0, CONSENT_ACT_OPT_OUT, 0 },
    { NULL, "DOI_CONFIRM", "Ja", 1, 0, CONSENT_ACT_CONFIRM, 0 },
    { NULL, "callback_data", "title", 1, 0, CONSENT_ACT_NONE, 0 },
    { NULL, "OPT_OUT:promotions", "No offers", 1, 0, CONSENT_ACT_TOPIC_OPT_OUT,
      0 },
    { NULL, "PAUSE:30", "Later", 1, 0, CONSENT_ACT_PAUSE, 0 },
    /* A broken topic payload with a plain label: flagged for review. */
    { NULL, "OPT_OUT:", "Weiter", 1, 0, CONSENT_ACT_NONE, 1 },
    { NULL, "callback_data", "please stop", 1, 0, CONSENT_ACT_NONE, 1 },
};

static void test_consent__reply_meanings(void **state)
{
    struct keywords_options o;
    struct config_list in = { 0 }, out = { 0 };
    char *def_in[] = { "OPT_IN" }, *def_out[] = { "OPT_OUT" },
         *def_conf[] = { "DOI_CONFIRM" };
    struct config_list pin = { def_in, 1 }, pout = { def_out, 1 },
                       pconf = { def_conf, 1 };
    keywords *k = NULL;
    size_t i;

    (void)state;
    memset(&o, 0, sizeof(o));
    o.opt_in_keywords = &in;
    o.opt_out_keywords = &out;
    o.builtin = 1;
    o.opt_in_payloads = &pin;
    o.opt_out_payloads = &pout;
    o.confirm_payloads = &pconf;
    assert_int_equal(keywords_new(&k, &o), 0);
    for (i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
        struct consent_reply r = { replies[i].text, replies[i].payload,
                                   replies[i].title, replies[i].context,
                                   replies[i].forwarded };
        struct consent_intent it;

        consent_action_for_reply(&it, k, &r);
        if (it.action != replies[i].expect ||
            it.near_miss != replies[i].near_miss)
            fail_msg("reply %zu (%s/%s): action %d near_miss %d", i,
                     replies[i].text ? replies[i].text : "-",
                     replies[i].payload ? replies[i].payload : "-", it.action,
                     it.near_miss);
        if (it.action == CONSENT_ACT_TOPIC_OPT_OUT)
            assert_string_equal(it.topic, "promotions");
        if (it.action == CONSENT_ACT_PAUSE)
            assert_int_equal(it.pause_days, 30);
    }
    keywords_free(k);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_consent__transition_table),
        cmocka_unit_test(test_consent__rule_function_directly),
        T(test_consent__conflict_opt_out_then_older_opt_in),
        T(test_consent__conflict_opt_in_then_newer_opt_out),
        T(test_consent__conflict_latest_wins_both_orders),
        T(test_consent__conflict_tie_opt_out_wins),
        T(test_consent__same_event_twice_changes_nothing),
        T(test_consent__one_pending_writeback_per_row),
        T(test_consent__unknown_configuration_not_found),
        T(test_consent__quarantine_and_replay),
        T(test_consent__quarantine_locked_follows_the_caller),
        T(test_consent__keyed_by_user_id),
        T(test_consent__waba_wide_stop),
        T(test_consent__preferences),
        T(test_consent__mirror_new_and_unchanged),
        T(test_consent__mirror_unparseable_kept_out),
        T(test_consent__dataverse_loses_gets_corrected),
        T(test_consent__dataverse_newer_wins),
        T(test_consent__edit_of_another_column_is_no_consent),
        T(test_consent__new_dv_row_meets_local_opt_out),
        T(test_consent__own_unconfirmed_write_is_no_expression),
        T(test_consent__duplicates_strictest_and_inactive),
        T(test_consent__phone_change_moves_state),
        T(test_consent__mirror_keys_possible_numbers),
        T(test_consent__upgrade_full_read_parses_again),
        T(test_consent__recheck_converges_without_dataverse),
        T(test_consent__deleted_row),
        T(test_consent__deleted_row_keeps_pending_opt_out),
        cmocka_unit_test(test_consent__reply_meanings),
    };

    return cmocka_run_group_tests_name("consent", tests, NULL, NULL);
}
