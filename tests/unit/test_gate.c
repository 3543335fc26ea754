/*
 * test_gate — the send-gate: every reason of docs/design.md (a table, run with
 * and without the in-memory index), duplicates (strictest wins), inactive
 * and unparseable rows, staleness before the first sync and after
 * max_staleness, topics, pauses and caps with a fixed clock, aliases, the
 * slow path for national input, bulk order, failing closed, and the
 * cross-process case: another connection commits, the next decision of
 * this one sees it (including the index's journal, rowid reuse and its
 * rebuild paths).  Ends with `optsync gate` itself.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "cli.h"
#include "clock.h"
#include "configurations.h"
#include "consent.h"
#include "err.h"
#include "fault.h"
#include "gate.h"
#include "gate_p.h" /* the index on its own */
#include "testutil.h"
#include "xalloc.h"

#define CFG "6a1c0d6e-0000-0000-0000-000000000001"     /* DOI off, DE */
#define CFG_DOI "6a1c0d6e-0000-0000-0000-000000000002" /* DOI on */
#define CFG_OFF "6a1c0d6e-0000-0000-0000-000000000003" /* inactive */
#define CFG_FR "6a1c0d6e-0000-0000-0000-000000000004"  /* region FR */
#define CFG_TWIN1 "6a1c0d6e-0000-0000-0000-000000000005"
#define CFG_TWIN2 "6a1c0d6e-0000-0000-0000-000000000006"
#define CFG_NONE "6a1c0d6e-0000-0000-0000-0000000000ff" /* not cached */
#define CFG_GB "6a1c0d6e-0000-0000-0000-000000000007"   /* its own tests */
#define PHONE "+4915123456789"
#define PHONE2 "+4915123456780"
#define AR_9 "+5491123456789" /* WhatsApp's spelling */
#define AR "+541123456789"    /* a CRM's spelling */
#define T0 1738000000000LL
#define MIN (60 * 1000LL)
#define DAY (24 * 60 * MIN)
#define NOW (T0 + 100 * DAY)

struct fixture {
    char *dir;
    char *path;
    cache *c;
    gate *g;
    struct gate_options opts;
};

/* ---- building a cache ------------------------------------------------- */

static void put_conf(cache *c, const char *id, const char *name, int doi,
                     int active, const char *region)
{
    struct configuration_record r;

    memset(&r, 0, sizeof(r));
    snprintf(r.id, sizeof(r.id), "%s", id);
    r.name = name;
    r.double_opt_in = doi;
    r.active = active;
    r.default_region = region;
    assert_int_equal(cache_begin(c), 0);
    assert_int_equal(configurations_put(c, &r, 0), 0);
    assert_int_equal(cache_commit(c), 0);
}

/* A number row as the sync or consent_apply would leave it. */
struct row {
    int status; /* enum consent_status */
    int active;
    const char *e164; /* NULL: unparseable */
    const char *topics;
    int64_t paused_until;
};

static int64_t add_row(cache *c, const char *cfg, const struct row *r)
{
    sqlite3_stmt *st =
        cache_stmt(c, "INSERT INTO numbers(configuration_id, raw_phone, e164, "
                      "phone_error, status, active, topics, paused_until) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");

    assert_non_null(st);
    cache_bind_text(st, 1, cfg);
    cache_bind_text(st, 2, r->e164 ? r->e164 : "0151 2345 6789 ext. 12");
    cache_bind_text(st, 3, r->e164);
    cache_bind_text(st, 4, r->e164 ? NULL : "not a phone number");
    cache_bind_int(st, 5, r->status);
    cache_bind_int(st, 6, r->active);
    cache_bind_text(st, 7, r->topics);
    cache_bind_opt_int(st, 8, r->paused_until);
    assert_int_equal(cache_step(st), SQLITE_DONE);
    return cache_last_rowid(c);
}

static void sync_run(cache *c, int64_t started_at, int ok)
{
    sqlite3_stmt *st = cache_stmt(
        c, "INSERT INTO sync_runs(kind, started_at, finished_at, ok) "
           "VALUES ('delta', ?1, ?1 + 1000, ?2)");

    cache_bind_int(st, 1, started_at);
    cache_bind_int(st, 2, ok);
    assert_int_equal(cache_step(st), SQLITE_DONE);
}

static void exec(cache *c, const char *sql)
{
    assert_int_equal(cache_exec(c, sql), 0);
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    const struct gate_options defaults = GATE_OPTIONS_INIT;

    f->dir = testutil_tmpdir();
    f->path = xasprintf("%s/cache.db", f->dir);
    assert_int_equal(cache_open(&f->c, f->path, 0), 0);
    put_conf(f->c, CFG, "WA Main", 0, 1, NULL);
    put_conf(f->c, CFG_DOI, "WA DOI", 1, 1, NULL);
    put_conf(f->c, CFG_OFF, "WA Old", 0, 0, NULL);
    put_conf(f->c, CFG_FR, "WA France", 0, 1, "FR");
    put_conf(f->c, CFG_TWIN1, "WA Twin", 0, 1, NULL);
    put_conf(f->c, CFG_TWIN2, "WA Twin", 0, 1, NULL);
    clock_set_fixed(NOW);
    sync_run(f->c, NOW - MIN, 1);
    f->opts = defaults;
    f->opts.default_region = "DE";
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    fault_disarm_all();
    gate_free(f->g);
    cache_close(f->c);
    testutil_rmtree(f->dir);
    free(f->dir);
    free(f->path);
    free(f);
    clock_set_fixed(0);
    return 0;
}

static void open_gate(struct fixture *f, int index)
{
    gate_free(f->g);
    f->g = NULL;
    f->opts.index = index;
    assert_int_equal(gate_new(&f->g, f->c, &f->opts), 0);
}

static struct gate_result decide(struct fixture *f, const char *cfg,
                                 const char *phone, const char *topic)
{
    struct gate_result r;

    assert_int_equal(gate_decide(&r, f->g, cfg, phone, topic), 0);
    return r;
}

#define expect_reason(f, cfg, phone, topic, reason)                            \
    expect_reason_at(f, cfg, phone, topic, reason, __LINE__)

static void expect_reason_at(struct fixture *f, const char *cfg,
                             const char *phone, const char *topic,
                             enum gate_reason reason, int line)
{
    struct gate_result r = decide(f, cfg, phone, topic);

    if (r.reason != reason)
        fail_msg("line %d: %s: expected %s, got %s", line, phone,
                 gate_reason_name(reason), gate_reason_name(r.reason));
    assert_int_equal(r.decision,
                     reason == GATE_ALLOWED ? GATE_ALLOW : GATE_DENY);
}

/* A second connection to the same file: what another process does. */
static cache *other_open(struct fixture *f)
{
    cache *o = NULL;

    assert_int_equal(cache_open(&o, f->path, 0), 0);
    return o;
}

/* ---- every reason, both modes ----------------------------------------- */

#define R(st, act, e, top, pause)                                              \
    {                                                                          \
        CONSENT_##st, act, e, top, pause                                       \
    }
#define NOROW                                                                  \
    {                                                                          \
        -1, 0, NULL, NULL, 0                                                   \
    }

static const struct {
    const char *name;
    const char *cfg;    /* what is asked for */
    struct row rows[3]; /* rows of CFG unless the name says otherwise;
                           status -1 ends the list */
    const char *phone;
    const char *topic;
    enum gate_reason reason;
    enum consent_status status;
} vectors[] = {
    { "single opt-in, DOI off",
      CFG,
      { R(SINGLE_OPT_IN, 1, PHONE, NULL, 0), NOROW },
      PHONE,
      NULL,
      GATE_ALLOWED,
      CONSENT_SINGLE_OPT_IN },
    { "double opt-in, DOI on",
      CFG_DOI,
      { R(DOUBLE_OPT_IN, 1, PHONE, NULL, 0), NOROW },
      PHONE,
      NULL,
      GATE_ALLOWED,
      CONSENT_DOUBLE_OPT_IN },
    { "double opt-in, DOI off",
      CFG,
      { R(DOUBLE_OPT_IN, 1, PHONE, NULL, 0), NOROW },
      PHONE,
      NULL,
      GATE_ALLOWED,
      CONSENT_DOUBLE_OPT_IN },
    { "single opt-in, DOI on",
      CFG_DOI,
      { R(SINGLE_OPT_IN, 1, PHONE, NULL, 0), NOROW },
      PHONE,
      NULL,
      GATE_DOUBLE_OPT_IN_REQUIRED,
      CONSENT_SINGLE_OPT_IN },
    { "no record",
      CFG,
      { R(SINGLE_OPT_IN, 1, PHONE2, NULL, 0), NOROW },
      PHONE,
      NULL,
      GATE_NO_CONSENT,
      CONSENT_NONE },
    { "active row with no status",
      CFG,
      { R(NONE, 1, PHONE, NULL, 0), NOROW },
      PHONE,
      NULL,
      GATE_NO_CONSENT,
      CONSENT_NONE },
    { "opted out",
      CFG,
      { R(OPTED_OUT, 1, PHONE, NULL, 0), NOROW },
      PHONE,
      NULL,
      GATE_OPTED_OUT,
      CONSENT_OPTED_OUT },
    /* Duplicates: strictest wins (opted_out > none > single > double). */
    { "duplicates: single + opted_out",
      CFG,
      { R(SINGLE_OPT_IN, 1, PHONE, NULL, 0), R(OPTED_OUT, 1, PHONE, NULL, 0),
        NOROW },
      PHONE,
      NULL,
      GATE_OPTED_OUT,
      CONSENT_OPTED_OUT },
    { "duplicates: opted_out + double",
      CFG,
      { R(OPTED_OUT, 1, PHONE, NULL, 0), R(DOUBLE_OPT_IN, 1, PHONE, NULL, 0),
        NOROW },
      PHONE,
      NULL,
      GATE_OPTED_OUT,
      CONSENT_OPTED_OUT },
    { "duplicates: double + single, DOI on",
      CFG_DOI,
      { R(DOUBLE_OPT_IN, 1, PHONE, NULL, 0),
        R(SINGLE_OPT_IN, 1, PHONE, NULL, 0), NOROW },
      PHONE,
      NULL,
      GATE_DOUBLE_OPT_IN_REQUIRED,
      CONSENT_SINGLE_OPT_IN },
    { "duplicates: single + none",
      CFG,
      { R(SINGLE_OPT_IN, 1, PHONE, NULL, 0), R(NONE, 1, PHONE, NULL, 0),
        NOROW },
      PHONE,
      NULL,
      GATE_NO_CONSENT,
      CONSENT_NONE },
    /* Inactive rows count as no record. */
    { "inactive opt-out beside an active opt-in",
      CFG,
      { R(OPTED_OUT, 0, PHONE, NULL, 0), R(SINGLE_OPT_IN, 1, PHONE, NULL, 0),
        NOROW },
      PHONE,
      NULL,
      GATE_ALLOWED,
      CONSENT_SINGLE_OPT_IN },
    { "only an inactive opt-in",
      CFG,
      { R(SINGLE_OPT_IN, 0, PHONE, NULL, 0), NOROW },
      PHONE,
      NULL,
      GATE_NO_CONSENT,
      CONSENT_NONE },
    { "inactive pause and topic are ignored",
      CFG,
      { R(SINGLE_OPT_IN, 1, PHONE, NULL, 0),
        R(SINGLE_OPT_IN, 0, PHONE, "promo", NOW + DAY), NOROW },
      PHONE,
      "promo",
      GATE_ALLOWED,
      CONSENT_SINGLE_OPT_IN },
    /* Unparseable rows never match. */
    { "unparseable row",
      CFG,
      { R(SINGLE_OPT_IN, 1, NULL, NULL, 0), NOROW },
      PHONE,
      NULL,
      GATE_NO_CONSENT,
      CONSENT_NONE },
    { "unparseable opt-out beside an opt-in",
      CFG,
      { R(OPTED_OUT, 1, NULL, NULL, 0), R(SINGLE_OPT_IN, 1, PHONE, NULL, 0),
        NOROW },
      PHONE,
      NULL,
      GATE_ALLOWED,
      CONSENT_SINGLE_OPT_IN },
    /* Topics. */
    { "topic opted out",
      CFG,
      { R(SINGLE_OPT_IN, 1, PHONE, "news,promo", 0), NOROW },
      PHONE,
      "promo",
      GATE_TOPIC_OPTED_OUT,
      CONSENT_SINGLE_OPT_IN },
    { "topic: case and blanks",
      CFG,
      { R(SINGLE_OPT_IN, 1, PHONE, "news, Promo ", 0), NOROW },
      PHONE,
      " PROMO",
      GATE_TOPIC_OPTED_OUT,
      CONSENT_SINGLE_OPT_IN },
    { "topic: another topic is allowed",
      CFG,
      { R(SINGLE_OPT_IN, 1, PHONE, "news,promo", 0), NOROW },
      PHONE,
      "sale",
      GATE_ALLOWED,
      CONSENT_SINGLE_OPT_IN },
    { "topic: a prefix is not the topic",
      CFG,
      { R(SINGLE_OPT_IN, 1, PHONE, "promotions", 0), NOROW },
      PHONE,
      "promo",
      GATE_ALLOWED,
      CONSENT_SINGLE_OPT_IN },
    { "topic: no topic asked",
      CFG,
      { R(SINGLE_OPT_IN, 1, PHONE, "news,promo", 0), NOROW },
      PHONE,
      NULL,
      GATE_ALLOWED,
      CONSENT_SINGLE_OPT_IN },
    { "topic: union over duplicates",
      CFG,
      { R(DOUBLE_OPT_IN, 1, PHONE, "news", 0),
        R(DOUBLE_OPT_IN, 1, PHONE, "promo", 0), NOROW },
      PHONE,
      "promo",
      GATE_TOPIC_OPTED_OUT,
      CONSENT_DOUBLE_OPT_IN },
    /* Pauses (the clock is fixed at NOW). */
    { "paused",
      CFG,
      { R(SINGLE_OPT_IN, 1, PHONE, NULL, NOW + DAY), NOROW },
      PHONE,
      NULL,
      GATE_PAUSED,
      CONSENT_SINGLE_OPT_IN },
    { "pause over",
      CFG,
      { R(SINGLE_OPT_IN, 1, PHONE, NULL, NOW - 1), NOROW },
      PHONE,
      NULL,
      GATE_ALLOWED,
      CONSENT_SINGLE_OPT_IN },
    { "pause ends now",
      CFG,
      { R(SINGLE_OPT_IN, 1, PHONE, NULL, NOW), NOROW },
      PHONE,
      NULL,
      GATE_ALLOWED,
      CONSENT_SINGLE_OPT_IN },
    { "pause: latest over duplicates",
      CFG,
      { R(SINGLE_OPT_IN, 1, PHONE, NULL, NOW - DAY),
        R(SINGLE_OPT_IN, 1, PHONE, NULL, NOW + MIN), NOROW },
      PHONE,
      NULL,
      GATE_PAUSED,
      CONSENT_SINGLE_OPT_IN },
    /* The order of the reasons. */
    { "order: opted_out before paused",
      CFG,
      { R(OPTED_OUT, 1, PHONE, "promo", NOW + DAY), NOROW },
      PHONE,
      "promo",
      GATE_OPTED_OUT,
      CONSENT_OPTED_OUT },
    { "order: DOI before topic",
      CFG_DOI,
      { R(SINGLE_OPT_IN, 1, PHONE, "promo", NOW + DAY), NOROW },
      PHONE,
      "promo",
      GATE_DOUBLE_OPT_IN_REQUIRED,
      CONSENT_SINGLE_OPT_IN },
    { "order: topic before paused",
      CFG,
      { R(SINGLE_OPT_IN, 1, PHONE, "promo", NOW + DAY), NOROW },
      PHONE,
      "promo",
      GATE_TOPIC_OPTED_OUT,
      CONSENT_SINGLE_OPT_IN },
    /* Bad input. */
    { "unknown configuration",
      CFG_NONE,
      { R(SINGLE_OPT_IN, 1, PHONE, NULL, 0), NOROW },
      PHONE,
      NULL,
      GATE_UNKNOWN_CONFIGURATION,
      CONSENT_NONE },
    { "inactive configuration",
      CFG_OFF,
      { R(SINGLE_OPT_IN, 1, PHONE, NULL, 0), NOROW },
      PHONE,
      NULL,
      GATE_UNKNOWN_CONFIGURATION,
      CONSENT_NONE },
    { "ambiguous name",
      "WA Twin",
      { R(SINGLE_OPT_IN, 1, PHONE, NULL, 0), NOROW },
      PHONE,
      NULL,
      GATE_UNKNOWN_CONFIGURATION,
      CONSENT_NONE },
    { "empty configuration",
      "",
      { R(SINGLE_OPT_IN, 1, PHONE, NULL, 0), NOROW },
      PHONE,
      NULL,
      GATE_UNKNOWN_CONFIGURATION,
      CONSENT_NONE },
    { "by exact name",
      "WA Main",
      { R(SINGLE_OPT_IN, 1, PHONE, NULL, 0), NOROW },
      PHONE,
      NULL,
      GATE_ALLOWED,
      CONSENT_SINGLE_OPT_IN },
    { "by id in another spelling",
      "{6A1C0D6E-0000-0000-0000-000000000001}",
      { R(SINGLE_OPT_IN, 1, PHONE, NULL, 0), NOROW },
      PHONE,
      NULL,
      GATE_ALLOWED,
      CONSENT_SINGLE_OPT_IN },
    { "invalid phone",
      CFG,
      { R(SINGLE_OPT_IN, 1, PHONE, NULL, 0), NOROW },
      "call me maybe",
      NULL,
      GATE_INVALID_PHONE,
      CONSENT_NONE },
    { "empty phone",
      CFG,
      { R(SINGLE_OPT_IN, 1, PHONE, NULL, 0), NOROW },
      "",
      NULL,
      GATE_INVALID_PHONE,
      CONSENT_NONE },
    { "unknown configuration before invalid phone",
      CFG_NONE,
      { NOROW },
      "call me maybe",
      NULL,
      GATE_UNKNOWN_CONFIGURATION,
      CONSENT_NONE },
    /* Input through the slow path (national, the default region DE). */
    { "national input",
      CFG,
      { R(SINGLE_OPT_IN, 1, PHONE, NULL, 0), NOROW },
      "0151 23456789",
      NULL,
      GATE_ALLOWED,
      CONSENT_SINGLE_OPT_IN },
    /* Argentina: a CRM's +54 AA ... and WhatsApp's +54 9 AA ... */
    { "alias: asked with the 9, stored without",
      CFG,
      { R(SINGLE_OPT_IN, 1, AR, NULL, 0), NOROW },
      AR_9,
      NULL,
      GATE_ALLOWED,
      CONSENT_SINGLE_OPT_IN },
    { "alias: asked without the 9, stored with",
      CFG,
      { R(SINGLE_OPT_IN, 1, AR_9, NULL, 0), NOROW },
      AR,
      NULL,
      GATE_ALLOWED,
      CONSENT_SINGLE_OPT_IN },
    { "alias: strictest over both spellings",
      CFG,
      { R(SINGLE_OPT_IN, 1, AR_9, NULL, 0), R(OPTED_OUT, 1, AR, NULL, 0),
        NOROW },
      AR_9,
      NULL,
      GATE_OPTED_OUT,
      CONSENT_OPTED_OUT },
    { "alias: strictest, the asked spelling strictest",
      CFG,
      { R(OPTED_OUT, 1, AR_9, NULL, 0), R(SINGLE_OPT_IN, 1, AR, NULL, 0),
        NOROW },
      AR_9,
      NULL,
      GATE_OPTED_OUT,
      CONSENT_OPTED_OUT },
    { "alias: none outranks an opt-in",
      CFG,
      { R(NONE, 1, AR_9, NULL, 0), R(DOUBLE_OPT_IN, 1, AR, NULL, 0), NOROW },
      AR,
      NULL,
      GATE_NO_CONSENT,
      CONSENT_NONE },
    { "alias: topics over both spellings",
      CFG,
      { R(SINGLE_OPT_IN, 1, AR_9, NULL, 0), R(SINGLE_OPT_IN, 1, AR, "promo", 0),
        NOROW },
      AR_9,
      "promo",
      GATE_TOPIC_OPTED_OUT,
      CONSENT_SINGLE_OPT_IN },
};

/* Where a vector's rows live: under the Configuration asked for, when
 * that is an id of one; under CFG (or a twin) for names and spellings. */
static const char *rows_home(const char *cfg)
{
    if (strcmp(cfg, "WA Twin") == 0)
        return CFG_TWIN1;
    if (strlen(cfg) == 36)
        return cfg;
    return CFG;
}

static void test_gate__every_reason(void **state)
{
    size_t i, j;
    int index;

    for (index = 0; index <= 1; index++) {
        for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
            struct fixture *f;
            struct gate_result r;
            const char *cfg = vectors[i].cfg;

            teardown(state);
            setup(state);
            f = *state;
            for (j = 0; j < 3 && vectors[i].rows[j].status >= 0; j++)
                add_row(f->c, rows_home(cfg), &vectors[i].rows[j]);
            open_gate(f, index);
            r = decide(f, cfg, vectors[i].phone, vectors[i].topic);
            if (r.reason != vectors[i].reason || r.status != vectors[i].status)
                fail_msg(
                    "%s (index %d): expected %s/%s, got %s/%s", vectors[i].name,
                    index, gate_reason_name(vectors[i].reason),
                    consent_status_name(vectors[i].status),
                    gate_reason_name(r.reason), consent_status_name(r.status));
            assert_int_equal(r.decision, vectors[i].reason == GATE_ALLOWED
                                             ? GATE_ALLOW
                                             : GATE_DENY);
        }
    }
}

static void test_gate__configurations_are_separate(void **state)
{
    struct fixture *f = *state;
    const struct row single = { CONSENT_SINGLE_OPT_IN, 1, PHONE, NULL, 0 };

    add_row(f->c, CFG, &single);
    open_gate(f, 1);
    expect_reason(f, CFG, PHONE, NULL, GATE_ALLOWED);
    expect_reason(f, CFG_FR, PHONE, NULL, GATE_NO_CONSENT);
    expect_reason(f, CFG_TWIN1, PHONE, NULL, GATE_NO_CONSENT);
}

/* ---- staleness -------------------------------------------------------- */

static void test_gate__stale_before_first_sync(void **state)
{
    struct fixture *f = *state;
    const struct row single = { CONSENT_SINGLE_OPT_IN, 1, PHONE, NULL, 0 };
    int index;

    add_row(f->c, CFG, &single);
    exec(f->c, "DELETE FROM sync_runs");
    sync_run(f->c, NOW - MIN, 0); /* a failed sync is no sync */
    for (index = 0; index <= 1; index++) {
        open_gate(f, index);
        expect_reason(f, CFG, PHONE, NULL, GATE_CACHE_STALE);
        /* Global and first: even bad input is only "stale". */
        expect_reason(f, CFG_NONE, PHONE, NULL, GATE_CACHE_STALE);
        expect_reason(f, CFG, "no phone", NULL, GATE_CACHE_STALE);
    }
}

static void test_gate__stale_after_max_staleness(void **state)
{
    struct fixture *f = *state;
    const struct row single = { CONSENT_SINGLE_OPT_IN, 1, PHONE, NULL, 0 };
    struct gate_result r;
    cache *o;
    int index;

    add_row(f->c, CFG, &single);
    f->opts.max_staleness_ms = 15 * MIN;
    for (index = 0; index <= 1; index++) {
        exec(f->c, "DELETE FROM sync_runs");
        sync_run(f->c, NOW - MIN, 1);
        clock_set_fixed(NOW);
        open_gate(f, index);
        clock_set_fixed(NOW - MIN + 15 * MIN); /* exactly max_staleness */
        expect_reason(f, CFG, PHONE, NULL, GATE_ALLOWED);
        clock_advance(1);
        r = decide(f, CFG, PHONE, NULL);
        assert_int_equal(r.reason, GATE_CACHE_STALE);
        assert_int_equal(r.decision, GATE_DENY);
        assert_string_equal(r.e164, PHONE);
        /* A newer successful sync, committed elsewhere, makes it fresh. */
        o = other_open(f);
        sync_run(o, NOW + 10 * MIN, 1);
        cache_close(o);
        expect_reason(f, CFG, PHONE, NULL, GATE_ALLOWED);
    }
}

/* ---- preferences and caps --------------------------------------------- */

static void test_gate__frequency_cap_overall(void **state)
{
    struct fixture *f = *state;
    const struct row single = { CONSENT_SINGLE_OPT_IN, 1, PHONE, NULL, 0 };
    const struct row out = { CONSENT_OPTED_OUT, 1, PHONE2, NULL, 0 };
    int index;

    add_row(f->c, CFG, &single);
    add_row(f->c, CFG_FR, &single);
    add_row(f->c, CFG, &out);
    f->opts.frequency_cap = 2;
    f->opts.frequency_period_ms = 7 * DAY;
    for (index = 0; index <= 1; index++) {
        exec(f->c, "DELETE FROM sends");
        clock_set_fixed(NOW);
        open_gate(f, index);
        expect_reason(f, CFG, PHONE, NULL, GATE_ALLOWED);
        assert_int_equal(gate_record_send(f->g, CFG, PHONE, NULL, NOW), 0);
        expect_reason(f, CFG, PHONE, "promo", GATE_ALLOWED);
        assert_int_equal(gate_record_send(f->g, "WA Main", "0151 23456789",
                                          "promo", NOW + 1),
                         0);
        expect_reason(f, CFG, PHONE, NULL, GATE_FREQUENCY_CAPPED);
        expect_reason(f, CFG, PHONE, "news", GATE_FREQUENCY_CAPPED);
        /* Another configuration keeps its own count. */
        expect_reason(f, CFG_FR, PHONE, NULL, GATE_ALLOWED);
        /* Consent comes first: an opted-out number is opted_out. */
        assert_int_equal(gate_record_send(f->g, CFG, PHONE2, NULL, NOW), 0);
        assert_int_equal(gate_record_send(f->g, CFG, PHONE2, NULL, NOW), 0);
        expect_reason(f, CFG, PHONE2, NULL, GATE_OPTED_OUT);
        /* A week later the first send no longer counts. */
        clock_set_fixed(NOW + 7 * DAY);
        sync_run(f->c, NOW + 7 * DAY, 1);
        expect_reason(f, CFG, PHONE, NULL, GATE_ALLOWED);
        assert_int_equal(gate_record_send(f->g, CFG, PHONE, NULL, 0), 0);
        expect_reason(f, CFG, PHONE, NULL, GATE_FREQUENCY_CAPPED);
    }
}

static void test_gate__frequency_cap_per_topic(void **state)
{
    struct fixture *f = *state;
    const struct row single = { CONSENT_SINGLE_OPT_IN, 1, AR, NULL, 0 };
    int index;

    add_row(f->c, CFG, &single);
    f->opts.topic_frequency_cap = 1;
    for (index = 0; index <= 1; index++) {
        exec(f->c, "DELETE FROM sends");
        open_gate(f, index);
        expect_reason(f, CFG, AR, "promo", GATE_ALLOWED);
        /* Recorded under the other spelling: the same subscriber. */
        assert_int_equal(gate_record_send(f->g, CFG, AR_9, " Promo", 0), 0);
        expect_reason(f, CFG, AR, "promo", GATE_FREQUENCY_CAPPED);
        expect_reason(f, CFG, AR, "PROMO", GATE_FREQUENCY_CAPPED);
        expect_reason(f, CFG, AR, "news", GATE_ALLOWED);
        expect_reason(f, CFG, AR, NULL, GATE_ALLOWED); /* overall cap off */
    }
}

static void test_gate__record_send(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(NOW, 1746640000000LL); /* as in the query below */
    f->opts.frequency_period_ms = 7 * DAY;
    open_gate(f, 1);
    assert_int_equal(gate_record_send(f->g, CFG_NONE, PHONE, NULL, 0),
                     ERR_NOTFOUND);
    assert_int_equal(gate_record_send(f->g, CFG, "not a phone", NULL, 0),
                     ERR_BADINPUT);
    assert_int_equal(gate_record_send(f->g, CFG, PHONE, "  ", NOW - 8 * DAY),
                     0);
    assert_int_equal(testutil_query_int(f->c,
                                        "SELECT count(*) FROM sends WHERE "
                                        "topic IS NULL"),
                     0); /* pruned at once: outside every window */
    assert_int_equal(gate_record_send(f->g, CFG, "0151 23456789", " a ", 0), 0);
    assert_int_equal(testutil_query_int(f->c,
                                        "SELECT count(*) FROM sends WHERE "
                                        "topic = 'a' AND e164 = '" PHONE
                                        "' AND at = 1746640000000"),
                     1);
}

/* ---- bulk ------------------------------------------------------------- */

static void test_gate__bulk_in_input_order(void **state)
{
    struct fixture *f = *state;
    const struct row rows[] = {
        { CONSENT_SINGLE_OPT_IN, 1, PHONE, NULL, 0 },
        { CONSENT_OPTED_OUT, 1, PHONE2, NULL, 0 },
        { CONSENT_SINGLE_OPT_IN, 1, "+4930123456", "promo", 0 },
    };
    static const char *const phones[] = {
        PHONE2,        "nonsense",      PHONE,
        "+4930123456", "0151 23456789", "+4930999999",
    };
    static const enum gate_reason want[] = {
        GATE_OPTED_OUT,       GATE_INVALID_PHONE, GATE_ALLOWED,
        GATE_TOPIC_OPTED_OUT, GATE_ALLOWED,       GATE_NO_CONSENT,
    };
    struct gate_result out[6], one;
    size_t i;
    int index;

    for (i = 0; i < 3; i++)
        add_row(f->c, CFG, &rows[i]);
    for (index = 0; index <= 1; index++) {
        open_gate(f, index);
        assert_int_equal(
            gate_decide_bulk(out, f->g, "WA Main", phones, 6, "promo"), 0);
        for (i = 0; i < 6; i++) {
            if (out[i].reason != want[i])
                fail_msg("%zu (%s): expected %s, got %s", i, phones[i],
                         gate_reason_name(want[i]),
                         gate_reason_name(out[i].reason));
            one = decide(f, "WA Main", phones[i], "promo");
            assert_int_equal(one.decision, out[i].decision);
            assert_int_equal(one.reason, out[i].reason);
            assert_int_equal(one.status, out[i].status);
            assert_string_equal(one.e164, out[i].e164);
        }
        assert_string_equal(out[4].e164, PHONE);
        assert_string_equal(out[1].e164, "");
        assert_int_equal(gate_decide_bulk(out, f->g, CFG, phones, 0, NULL), 0);
    }
}

/* ---- the slow path and regions ---------------------------------------- */

static void
test_gate__national_input_uses_the_configurations_region(void **state)
{
    struct fixture *f = *state;
    const struct row fr = { CONSENT_SINGLE_OPT_IN, 1, "+33612345678", NULL, 0 };
    struct gate_result r;

    add_row(f->c, CFG_FR, &fr);
    add_row(f->c, CFG, &fr);
    open_gate(f, 1);
    r = decide(f, CFG_FR, "06 12 34 56 78", NULL);
    assert_string_equal(r.e164, "+33612345678");
    assert_int_equal(r.reason, GATE_ALLOWED);
    /* Under CFG the same digits are German ([consent] default_region). */
    r = decide(f, CFG, "06 12 34 56 78", NULL);
    assert_string_not_equal(r.e164, "+33612345678");
    assert_int_equal(r.reason, GATE_NO_CONSENT);
    /* International input does not need a region. */
    expect_reason(f, CFG, "+33 6 12 34 56 78", NULL, GATE_ALLOWED);
    /* No region at all: national input cannot be placed. */
    f->opts.default_region = NULL;
    open_gate(f, 1);
    expect_reason(f, CFG, "0151 23456789", NULL, GATE_INVALID_PHONE);
}

/* ---- one key per person (phone.h note 1) ------------------------------ */

static void opt_out(cache *c, const char *cfg, const char *e164, int64_t at);

/* A CRM row as the poller mirrors it (consent_apply, MIRROR). */
static void mirror_row(cache *c, const char *dv_id, const char *cfg,
                       const char *raw, const char *region,
                       enum consent_status status)
{
    struct consent_options opts = { 7 * DAY, 0, 0, 0 };
    struct number_record rec;
    struct consent_row row;
    struct consent_event ev;
    struct consent_result r;

    memset(&rec, 0, sizeof(rec));
    snprintf(rec.id, sizeof(rec.id), "%s", dv_id);
    snprintf(rec.configuration_id, sizeof(rec.configuration_id), "%s", cfg);
    rec.raw_phone = raw;
    rec.status = status;
    rec.active = 1;
    rec.modified_on = T0;
    rec.version = 7;
    memset(&row, 0, sizeof(row));
    row.rec = &rec;
    row.region = region;
    memset(&ev, 0, sizeof(ev));
    ev.action = CONSENT_ACT_MIRROR;
    ev.source = CONSENT_SOURCE_DATAVERSE;
    ev.row = &row;
    assert_int_equal(consent_apply(&r, c, &opts, &ev), 0);
}

/*
 * A CRM row in a range libphonenumber's metadata does not know (UK 07700
 * 900xxx, German 0154), typed nationally: the gate decides it like any
 * other number, from any spelling, and says opted_out (not no_consent,
 * not invalid_phone) for an opted-out one.
 */
static void test_gate__possible_but_not_valid_numbers(void **state)
{
    struct fixture *f = *state;
    static const char *const uk[] = { "+447700900251", "07700 900251",
                                      "+44 7700 900251", "0044 7700 900251" };
    struct gate_result r;
    size_t i;
    int index;

    put_conf(f->c, CFG_GB, "WA UK", 0, 1, "GB");
    mirror_row(f->c, "3f2e0000-0000-0000-0000-0000000000a1", CFG_GB,
               "07700 900251", "GB", CONSENT_OPTED_OUT);
    mirror_row(f->c, "3f2e0000-0000-0000-0000-0000000000a2", CFG,
               "0154 12345678", "DE", CONSENT_SINGLE_OPT_IN);
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM numbers "
                                              "WHERE e164 IS NULL"),
                     0);
    for (index = 0; index <= 1; index++) {
        open_gate(f, index);
        for (i = 0; i < sizeof(uk) / sizeof(uk[0]); i++) {
            r = decide(f, CFG_GB, uk[i], NULL);
            assert_string_equal(r.e164, "+447700900251");
            assert_int_equal(r.reason, GATE_OPTED_OUT);
            assert_int_equal(r.status, CONSENT_OPTED_OUT);
        }
        expect_reason(f, CFG, "0154 1234 5678", NULL, GATE_ALLOWED);
        expect_reason(f, CFG, "+4915412345678", NULL, GATE_ALLOWED);
        /* Not even possible: still invalid_phone. */
        expect_reason(f, CFG_GB, "07700 9002", NULL, GATE_INVALID_PHONE);
    }
}

/*
 * The consequence the rule exists for: a STOP from the WhatsApp id of a
 * CRM row in such a range lands on that row (no second, local row), and
 * the gate says opted_out for it.
 */
static void test_gate__whatsapp_stop_lands_on_the_crm_row(void **state)
{
    struct fixture *f = *state;
    char key[PHONE_E164_MAX];
    const char *why = NULL;

    put_conf(f->c, CFG_GB, "WA UK", 0, 1, "GB");
    mirror_row(f->c, "3f2e0000-0000-0000-0000-0000000000b1", CFG_GB,
               "07700 900251", "GB", CONSENT_SINGLE_OPT_IN);
    open_gate(f, 1);
    expect_reason(f, CFG_GB, "07700 900251", NULL, GATE_ALLOWED);
    assert_int_equal(phone_from_whatsapp(key, "447700900251", &why), 0);
    opt_out(f->c, CFG_GB, key, NOW - 1);
    assert_int_equal(
        testutil_query_int(f->c, "SELECT count(*) FROM numbers "
                                 "WHERE configuration_id = '" CFG_GB "'"),
        1);
    assert_int_equal(
        testutil_query_int(f->c, "SELECT count(*) FROM numbers WHERE dv_id = "
                                 "'3f2e0000-0000-0000-0000-0000000000b1' AND "
                                 "e164 = '+447700900251' AND status = 3 AND "
                                 "pending_writeback = 1"),
        1);
    assert_int_equal(
        testutil_query_int(f->c, "SELECT count(*) FROM outbox o JOIN numbers n "
                                 "ON n.local_id = o.number_local_id WHERE "
                                 "n.dv_id = '3f2e0000-0000-0000-0000-"
                                 "0000000000b1' AND o.status = 3"),
        1);
    expect_reason(f, CFG_GB, "+447700900251", NULL, GATE_OPTED_OUT);
    open_gate(f, 0);
    expect_reason(f, CFG_GB, "07700 900251", NULL, GATE_OPTED_OUT);
}

/* ---- other connections, other processes ------------------------------- */

/* consent_apply() an opt-out; inside the caller's transaction when
 * `locked`. */
static void opt_out_tx(cache *c, const char *cfg, const char *e164, int64_t at,
                       int locked)
{
    struct consent_options opts = { 7 * DAY, 0, 0, 0 };
    struct consent_event ev;
    struct consent_result r;

    memset(&ev, 0, sizeof(ev));
    ev.configuration_id = cfg;
    ev.e164 = e164;
    ev.action = CONSENT_ACT_OPT_OUT;
    ev.event_at = at;
    ev.source = CONSENT_SOURCE_MANUAL;
    if (locked)
        assert_int_equal(consent_apply_locked(&r, c, &opts, &ev), 0);
    else
        assert_int_equal(consent_apply(&r, c, &opts, &ev), 0);
    assert_int_equal(r.to, CONSENT_OPTED_OUT);
}

static void opt_out(cache *c, const char *cfg, const char *e164, int64_t at)
{
    opt_out_tx(c, cfg, e164, at, 0);
}

static void test_gate__opt_out_by_another_connection_denies_next(void **state)
{
    struct fixture *f = *state;
    const struct row single = { CONSENT_SINGLE_OPT_IN, 1, PHONE, NULL, 0 };
    struct gate_result r;
    cache *o;
    int index;

    for (index = 0; index <= 1; index++) {
        exec(f->c, "DELETE FROM numbers");
        add_row(f->c, CFG, &single);
        open_gate(f, index);
        expect_reason(f, CFG, PHONE, NULL, GATE_ALLOWED);
        o = other_open(f); /* `optsync opt-out` while `serve` runs */
        opt_out(o, CFG, PHONE, NOW);
        r = decide(f, CFG, PHONE, NULL);
        assert_int_equal(r.reason, GATE_OPTED_OUT);
        assert_int_equal(r.status, CONSENT_OPTED_OUT);
        cache_close(o);
    }
}

static void test_gate__own_connection_commit_is_seen(void **state)
{
    struct fixture *f = *state;
    const struct row single = { CONSENT_SINGLE_OPT_IN, 1, PHONE, NULL, 0 };

    add_row(f->c, CFG, &single);
    open_gate(f, 1);
    expect_reason(f, CFG, PHONE, NULL, GATE_ALLOWED);
    opt_out(f->c, CFG, PHONE, NOW); /* `serve` applying a webhook */
    expect_reason(f, CFG, PHONE, NULL, GATE_OPTED_OUT);
}

/* Each change another connection commits, and what the next decision
 * must say. */
static const struct {
    const char *sql;
    const char *cfg, *phone, *topic;
    enum gate_reason reason;
} changes[] = {
    { "INSERT INTO numbers(configuration_id, e164, status) VALUES ('" CFG
      "', '" PHONE2 "', 1)",
      CFG, PHONE2, NULL, GATE_ALLOWED },
    { "UPDATE numbers SET topics = 'promo' WHERE e164 = '" PHONE2 "'", CFG,
      PHONE2, "promo", GATE_TOPIC_OPTED_OUT },
    { "UPDATE numbers SET topics = NULL, paused_until = 1746640060000 "
      "WHERE e164 = '" PHONE2 "'",
      CFG, PHONE2, "promo", GATE_PAUSED },
    { "UPDATE numbers SET e164 = '+4930123456', paused_until = NULL "
      "WHERE e164 = '" PHONE2 "'",
      CFG, PHONE2, NULL, GATE_NO_CONSENT },
    { "SELECT 1", CFG, "+4930123456", NULL, GATE_ALLOWED },
    { "UPDATE numbers SET configuration_id = '" CFG_FR
      "' WHERE e164 = '+4930123456'",
      CFG, "+4930123456", NULL, GATE_NO_CONSENT },
    { "SELECT 1", CFG_FR, "+4930123456", NULL, GATE_ALLOWED },
    { "UPDATE numbers SET active = 0 WHERE e164 = '" PHONE "'", CFG, PHONE,
      NULL, GATE_NO_CONSENT },
    { "UPDATE numbers SET active = 1 WHERE e164 = '" PHONE "'", CFG, PHONE,
      NULL, GATE_ALLOWED },
    { "DELETE FROM numbers WHERE e164 = '+4930123456'", CFG_FR, "+4930123456",
      NULL, GATE_NO_CONSENT },
    { "UPDATE numbers SET status = 0 WHERE e164 = '" PHONE "'", CFG, PHONE,
      NULL, GATE_NO_CONSENT },
    { "UPDATE numbers SET status = 1 WHERE e164 = '" PHONE "'", CFG, PHONE,
      NULL, GATE_ALLOWED },
    { "UPDATE configurations SET double_opt_in = 1 WHERE id = '" CFG "'", CFG,
      PHONE, NULL, GATE_DOUBLE_OPT_IN_REQUIRED },
    { "UPDATE configurations SET name = 'WA Renamed' WHERE id = '" CFG "'",
      "WA Main", PHONE, NULL, GATE_UNKNOWN_CONFIGURATION },
    { "SELECT 1", "WA Renamed", PHONE, NULL, GATE_DOUBLE_OPT_IN_REQUIRED },
    { "UPDATE configurations SET active = 0 WHERE id = '" CFG "'", CFG, PHONE,
      NULL, GATE_UNKNOWN_CONFIGURATION },
    { "DELETE FROM configurations WHERE id = '" CFG "'", CFG, PHONE, NULL,
      GATE_UNKNOWN_CONFIGURATION },
    { "INSERT INTO configurations(id, name) VALUES ('" CFG "', 'WA Main')",
      "WA Main", PHONE, NULL, GATE_ALLOWED },
    { "UPDATE configurations SET default_region = 'FR' WHERE id = '" CFG "'",
      CFG, "0151 23456789", NULL, GATE_INVALID_PHONE },
};

static void test_gate__other_connection_changes_are_seen(void **state)
{
    struct fixture *f = *state;
    const struct row single = { CONSENT_SINGLE_OPT_IN, 1, PHONE, NULL, 0 };
    size_t i;
    cache *o;
    int index;

    for (index = 0; index <= 1; index++) {
        teardown(state);
        setup(state);
        f = *state;
        add_row(f->c, CFG, &single);
        open_gate(f, index);
        expect_reason(f, CFG, PHONE, NULL, GATE_ALLOWED);
        o = other_open(f);
        for (i = 0; i < sizeof(changes) / sizeof(changes[0]); i++) {
            struct gate_result r;

            exec(o, changes[i].sql);
            r = decide(f, changes[i].cfg, changes[i].phone, changes[i].topic);
            if (r.reason != changes[i].reason)
                fail_msg("index %d, after %s: %s expected %s, got %s", index,
                         changes[i].sql, changes[i].phone,
                         gate_reason_name(changes[i].reason),
                         gate_reason_name(r.reason));
        }
        cache_close(o);
    }
}

/* A deletion frees the highest rowid; the next insert takes it again.
 * The index must read that row although its local_id is not new. */
static void test_gate__reused_rowid_is_read(void **state)
{
    struct fixture *f = *state;
    const struct row a = { CONSENT_SINGLE_OPT_IN, 1, PHONE, NULL, 0 };
    const struct row b = { CONSENT_SINGLE_OPT_IN, 1, PHONE2, NULL, 0 };
    const struct row c = { CONSENT_SINGLE_OPT_IN, 1, "+4930123456", NULL, 0 };
    int64_t id_b, id_c;
    cache *o;

    add_row(f->c, CFG, &a);
    id_b = add_row(f->c, CFG, &b);
    open_gate(f, 1);
    expect_reason(f, CFG, PHONE2, NULL, GATE_ALLOWED);
    o = other_open(f);
    assert_int_equal(cache_begin(o), 0);
    exec(o, "DELETE FROM numbers WHERE e164 = '" PHONE2 "'");
    id_c = add_row(o, CFG, &c);
    assert_int_equal(cache_commit(o), 0);
    assert_int_equal(id_c, id_b); /* the premise */
    expect_reason(f, CFG, "+4930123456", NULL, GATE_ALLOWED);
    expect_reason(f, CFG, PHONE2, NULL, GATE_NO_CONSENT);
    cache_close(o);
}

/* The journal emptied behind the gate's back: it must not trust it. */
static void test_gate__emptied_journal_rebuilds(void **state)
{
    struct fixture *f = *state;
    const struct row a = { CONSENT_SINGLE_OPT_IN, 1, PHONE, NULL, 0 };
    const struct row b = { CONSENT_SINGLE_OPT_IN, 1, PHONE2, NULL, 0 };
    cache *o;

    add_row(f->c, CFG, &a);
    add_row(f->c, CFG, &b);
    exec(f->c, "UPDATE numbers SET topics = 'x'");
    exec(f->c, "UPDATE numbers SET topics = 'y'");
    open_gate(f, 1);
    expect_reason(f, CFG, PHONE, NULL, GATE_ALLOWED);
    o = other_open(f);
    exec(o, "DELETE FROM gate_journal");
    exec(o, "UPDATE numbers SET status = 3 WHERE e164 = '" PHONE "'");
    assert_int_equal(testutil_query_int(o, "SELECT max(seq) FROM gate_journal"),
                     1);
    expect_reason(f, CFG, PHONE, NULL, GATE_OPTED_OUT);
    cache_close(o);
}

/* Entries pruned past the gate's position: it rebuilds. */
static void test_gate__pruned_journal_rebuilds(void **state)
{
    struct fixture *f = *state;
    const struct row a = { CONSENT_SINGLE_OPT_IN, 1, PHONE, NULL, 0 };
    const struct row b = { CONSENT_SINGLE_OPT_IN, 1, PHONE2, NULL, 0 };
    cache *o;

    add_row(f->c, CFG, &a);
    add_row(f->c, CFG, &b);
    open_gate(f, 1);
    expect_reason(f, CFG, PHONE, NULL, GATE_ALLOWED);
    o = other_open(f);
    assert_int_equal(cache_begin(o), 0);
    exec(o, "UPDATE numbers SET status = 3 WHERE e164 = '" PHONE "'");
    exec(o, "UPDATE numbers SET topics = 'x' WHERE e164 = '" PHONE2 "'");
    exec(o, "DELETE FROM gate_journal WHERE seq < (SELECT max(seq) FROM "
            "gate_journal)");
    assert_int_equal(cache_commit(o), 0);
    expect_reason(f, CFG, PHONE, NULL, GATE_OPTED_OUT);
    expect_reason(f, CFG, PHONE2, "x", GATE_TOPIC_OPTED_OUT);
    cache_close(o);
}

/* The journal keeps its newest 64 Ki entries, whoever writes. */
static void test_gate__journal_is_bounded(void **state)
{
    struct fixture *f = *state;
    const struct row a = { CONSENT_SINGLE_OPT_IN, 1, PHONE, NULL, 0 };
    sqlite3_stmt *st;
    cache *o;
    int i;

    add_row(f->c, CFG, &a);
    open_gate(f, 1);
    expect_reason(f, CFG, PHONE, "t69999", GATE_ALLOWED);
    o = other_open(f);
    assert_int_equal(cache_begin(o), 0);
    st = cache_stmt(o, "UPDATE numbers SET topics = 't' || ?1");
    for (i = 0; i < 70000; i++) {
        cache_bind_int(st, 1, i);
        assert_int_equal(cache_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    assert_int_equal(cache_commit(o), 0);
    assert_in_range(testutil_query_int(o, "SELECT count(*) FROM gate_journal"),
                    65536, 65536 + 1024);
    /* Six Configurations were journaled before: 70006 entries in all. */
    assert_int_equal(testutil_query_int(o, "SELECT max(seq) FROM gate_journal"),
                     70006);
    expect_reason(f, CFG, PHONE, "t69999", GATE_TOPIC_OPTED_OUT);
    expect_reason(f, CFG, PHONE, "t69998", GATE_ALLOWED);
    cache_close(o);
}

/* A first load's pages (new rows, read without point queries), then
 * more journaled changes than catching up is worth (a rebuild). */
static void test_gate__many_changes(void **state)
{
    struct fixture *f = *state;
    struct gate_stats st;
    const struct row a = { CONSENT_SINGLE_OPT_IN, 1, PHONE, NULL, 0 };
    struct row r = { CONSENT_DOUBLE_OPT_IN, 1, NULL, "a, b", 0 };
    char e164[PHONE_E164_MAX];
    cache *o;
    int i;

    add_row(f->c, CFG, &a);
    open_gate(f, 1);
    expect_reason(f, CFG, PHONE, NULL, GATE_ALLOWED);
    o = other_open(f);
    assert_int_equal(cache_begin(o), 0);
    for (i = 0; i < 12000; i++) {
        snprintf(e164, sizeof(e164), "+4917000%06d", i);
        r.e164 = e164;
        add_row(o, CFG, &r);
        add_row(o, CFG, &r); /* a duplicate: folded twice, same entry */
    }
    opt_out_tx(o, CFG, PHONE, NOW, 1); /* journaled, in the same commit */
    assert_int_equal(cache_commit(o), 0);
    expect_reason(f, CFG, PHONE, NULL, GATE_OPTED_OUT);
    expect_reason(f, CFG, "+4917000011999", NULL, GATE_ALLOWED);
    expect_reason(f, CFG, "+4917000011999", "b", GATE_TOPIC_OPTED_OUT);
    expect_reason(f, CFG, "+4917000012000", NULL, GATE_NO_CONSENT);
    gate_stats(&st, f->g);
    assert_int_equal(st.rebuilds, 1); /* gate_new's: new rows are read */
    assert_int_equal(st.numbers, 12001);
    /* 24,000 journaled changes: past CATCH_UP_MAX, a rebuild. */
    exec(o, "UPDATE numbers SET topics = 'c' WHERE e164 LIKE '+4917%'");
    expect_reason(f, CFG, "+4917000000042", "c", GATE_TOPIC_OPTED_OUT);
    expect_reason(f, CFG, "+4917000000042", "b", GATE_ALLOWED);
    expect_reason(f, CFG, PHONE, NULL, GATE_OPTED_OUT);
    gate_stats(&st, f->g);
    assert_int_equal(st.rebuilds, 2);
    cache_close(o);
}

/* ---- failing closed --------------------------------------------------- */

static void test_gate__fails_closed_on_error(void **state)
{
    struct fixture *f = *state;
    const struct row a = { CONSENT_SINGLE_OPT_IN, 1, PHONE, NULL, 0 };
    static const char *const phones[] = { PHONE, PHONE };
    struct gate_result r, out[2];
    cache *o;
    int index;

    add_row(f->c, CFG, &a);
    for (index = 0; index <= 1; index++) {
        exec(f->c, "UPDATE numbers SET topics = NULL");
        open_gate(f, index);
        expect_reason(f, CFG, PHONE, NULL, GATE_ALLOWED);
        o = other_open(f); /* a commit: the next call reads the cache */
        exec(o, "UPDATE numbers SET topics = 'x'");
        cache_close(o);
        fault_arm(FAULT_SQLITE_STEP, 1, SQLITE_IOERR, 1);
        memset(&r, 0xff, sizeof(r));
        assert_int_equal(gate_decide(&r, f->g, CFG, PHONE, NULL), ERR_FAIL);
        assert_int_equal(r.decision, GATE_DENY);
        assert_int_equal(r.reason, GATE_CACHE_STALE);
        /* Still failing: still deny, in bulk too. */
        assert_int_equal(gate_decide_bulk(out, f->g, CFG, phones, 2, NULL),
                         ERR_FAIL);
        assert_int_equal(out[0].decision, GATE_DENY);
        assert_int_equal(out[1].decision, GATE_DENY);
        assert_int_equal(gate_record_send(f->g, CFG, PHONE, NULL, 0), ERR_FAIL);
        fault_disarm_all();
        /* Reloaded from the cache: answers again. */
        expect_reason(f, CFG, PHONE, NULL, GATE_ALLOWED);
        expect_reason(f, CFG, PHONE, "x", GATE_TOPIC_OPTED_OUT);
    }
}

static void test_gate__fails_closed_inside_a_transaction(void **state)
{
    struct fixture *f = *state;
    const struct row a = { CONSENT_SINGLE_OPT_IN, 1, PHONE, NULL, 0 };
    struct gate_result r;
    int index;

    add_row(f->c, CFG, &a);
    for (index = 0; index <= 1; index++) {
        open_gate(f, index);
        assert_int_equal(cache_begin(f->c), 0);
        exec(f->c, "UPDATE numbers SET status = 3"); /* not committed */
        assert_int_equal(gate_decide(&r, f->g, CFG, PHONE, NULL), ERR_FAIL);
        assert_int_equal(r.decision, GATE_DENY);
        assert_int_equal(gate_record_send(f->g, CFG, PHONE, NULL, 0), ERR_FAIL);
        cache_rollback(f->c);
        expect_reason(f, CFG, PHONE, NULL, GATE_ALLOWED);
    }
}

static void test_gate__fails_closed_mid_decision(void **state)
{
    struct fixture *f = *state;
    const struct row a = { CONSENT_SINGLE_OPT_IN, 1, PHONE, NULL, 0 };
    struct gate_result r;
    gate *g = NULL;

    add_row(f->c, CFG, &a);
    /* Without the index the decision itself reads: fail that read. */
    open_gate(f, 0);
    fault_arm(FAULT_SQLITE_STEP, 1, SQLITE_IOERR, 0);
    assert_int_equal(gate_decide(&r, f->g, CFG, PHONE, NULL), ERR_FAIL);
    assert_int_equal(r.decision, GATE_DENY);
    expect_reason(f, CFG, PHONE, NULL, GATE_ALLOWED);
    /* With caps on, the count of sends is a read too. */
    f->opts.frequency_cap = 5;
    open_gate(f, 1);
    fault_arm(FAULT_SQLITE_STEP, 1, SQLITE_IOERR, 0);
    assert_int_equal(gate_decide(&r, f->g, CFG, PHONE, NULL), ERR_FAIL);
    assert_int_equal(r.decision, GATE_DENY);
    expect_reason(f, CFG, PHONE, NULL, GATE_ALLOWED);
    /* A gate that cannot read the cache at all is not made. */
    fault_arm(FAULT_SQLITE_STEP, 1, SQLITE_IOERR, 1);
    assert_int_equal(gate_new(&g, f->c, &f->opts), ERR_FAIL);
    assert_null(g);
}

static void test_gate__stats(void **state)
{
    struct fixture *f = *state;
    const struct row a = { CONSENT_SINGLE_OPT_IN, 1, PHONE, NULL, 0 };
    struct gate_stats st;
    cache *o;

    add_row(f->c, CFG, &a);
    open_gate(f, 1);
    expect_reason(f, CFG, PHONE, NULL, GATE_ALLOWED);
    expect_reason(f, CFG, PHONE, NULL, GATE_ALLOWED);
    expect_reason(f, CFG, PHONE2, NULL, GATE_NO_CONSENT);
    expect_reason(f, CFG, "x", NULL, GATE_INVALID_PHONE);
    o = other_open(f);
    exec(o, "UPDATE numbers SET topics = 'x'");
    expect_reason(f, CFG, PHONE, "x", GATE_TOPIC_OPTED_OUT);
    cache_close(o);
    gate_stats(&st, f->g);
    assert_int_equal(st.decisions[GATE_ALLOWED], 2);
    assert_int_equal(st.decisions[GATE_NO_CONSENT], 1);
    assert_int_equal(st.decisions[GATE_INVALID_PHONE], 1);
    assert_int_equal(st.decisions[GATE_TOPIC_OPTED_OUT], 1);
    assert_int_equal(st.decisions[GATE_OPTED_OUT], 0);
    assert_int_equal(st.rebuilds, 1); /* gate_new's */
    assert_int_equal(st.catch_ups, 1);
    assert_int_equal(st.failures, 0);
    assert_int_equal(st.numbers, 1);
    assert_string_equal(gate_reason_name(GATE_DOUBLE_OPT_IN_REQUIRED),
                        "double_opt_in_required");
    assert_string_equal(gate_decision_name(GATE_ALLOW), "allow");
}

/* The index on its own, against a plain array: `keys` numbers set and
 * removed in random order (backward-shift deletion must never lose a key
 * that probed past the hole, also where a run wraps around the end),
 * some with preferences. */
/* Every key of the index says what ref[] says. */
static void index_check(const struct gate__index *ix, const signed char *ref,
                        int keys)
{
    struct gate__view v;
    int key;

    for (key = 0; key < keys; key++) {
        memset(&v, 0, sizeof(v));
        gate__index_view(ix, 4915100000000ull + (uint64_t)key * 7919, "promo",
                         &v);
        if (ref[key] < 0) {
            assert_int_equal(v.rows, 0);
            continue;
        }
        assert_int_equal(v.rows, 1);
        assert_int_equal(v.status, ref[key]);
        assert_int_equal(v.topic_out, key % 7 == 0);
    }
}

/* The index on its own, against a plain array: `keys` numbers set and
 * removed in random order (backward-shift deletion must never lose a key
 * that probed past the hole, also where a run wraps around the end),
 * some with preferences.  Checked often: a lost key that is set again
 * would hide the loss. */
static void index_against_a_reference(int keys, int steps)
{
    signed char *ref = xmalloc((size_t)keys); /* -1 absent, else status */
    struct gate__index ix;
    struct gate__agg agg;
    uint64_t rnd = 42;
    int i, key;

    memset(ref, -1, (size_t)keys);
    gate__index_init(&ix);
    for (i = 0; i < steps; i++) {
        rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
        key = (int)((rnd >> 33) % (uint64_t)keys);
        memset(&agg, 0, sizeof(agg));
        agg.rows = (rnd >> 20) % 3 != 0;
        agg.status = (enum consent_status)((rnd >> 10) % 4);
        agg.topics = key % 7 == 0 ? "promo" : NULL;
        gate__index_set(&ix, 4915100000000ull + (uint64_t)key * 7919, &agg);
        ref[key] = agg.rows ? (signed char)agg.status : -1;
        if (i % 97 == 0)
            index_check(&ix, ref, keys);
    }
    index_check(&ix, ref, keys);
    gate__index_dispose(&ix);
    free(ref);
}

static void test_gate__index_against_a_reference(void **state)
{
    struct gate__index ix;

    (void)state;
    index_against_a_reference(480, 50000);  /* stays at 1024 slots */
    index_against_a_reference(5000, 20000); /* grows */
    /* Folding a row twice changes nothing, topics included. */
    gate__index_init(&ix);
    gate__index_merge(&ix, 4915100000001ull, CONSENT_SINGLE_OPT_IN, "a, b", 0);
    gate__index_merge(&ix, 4915100000001ull, CONSENT_SINGLE_OPT_IN, "b,a", 0);
    assert_int_equal(gate__index_count(&ix), 1);
    assert_string_equal(ix.extras[0].topics, "a,b");
    gate__index_dispose(&ix);
}

/* ---- optsync gate ----------------------------------------------------- */

/* Runs `optsync gate ARGS` in process against the fixture's cache, with
 * `input` on stdin; returns the exit code and the output (owned). */
static int run_cli(struct fixture *f, const char *input, char **output,
                   int argc, char **argv)
{
    const struct cli_command *cmd = cli_command_find("gate");
    char *out_path = xasprintf("%s/out.txt", f->dir);
    char *in_path = testutil_write(f->dir, "in.txt", input ? input : "", 0600);
    char *set = xasprintf("cache.path=%s", f->path);
    struct cli_ctx ctx;
    int usage = 0, rc;

    assert_non_null(cmd);
    memset(&ctx, 0, sizeof(ctx));
    ctx.config_path = testutil_source_path("config/optsync.ini");
    ctx.out = fopen(out_path, "w");
    ctx.command = cmd;
    assert_non_null(ctx.out);
    assert_non_null(freopen(in_path, "r", stdin));
    cli_common_option(&ctx, CLI_OPT_OVERRIDE, set, &usage);
    optind = 0;
    rc = cmd->run(&ctx, argc, argv);
    fclose(ctx.out);
    free((char *)(uintptr_t)ctx.config_path);
    cli_ctx_dispose(&ctx);
    *output = testutil_read(out_path, NULL);
    free(out_path);
    free(in_path);
    free(set);
    return rc;
}

static void test_gate__cli(void **state)
{
    struct fixture *f = *state;
    const struct row a = { CONSENT_SINGLE_OPT_IN, 1, PHONE, NULL, 0 };
    const struct row b = { CONSENT_OPTED_OUT, 1, PHONE2, NULL, 0 };
    char *argv_json[] = { "gate", "--configuration", "WA Main", "--json",
                          PHONE,  "0151 23456780",   "nonsense" };
    char *argv_text[] = { "gate", "--configuration", CFG, PHONE };
    char *argv_stdin[] = { "gate", "--configuration", CFG };
    char *argv_usage[] = { "gate", PHONE };
    char *argv_unknown[] = { "gate", "--configuration", "nope", PHONE };
    char *out;
    cJSON *arr, *o;

    add_row(f->c, CFG, &a);
    add_row(f->c, CFG, &b);
    assert_int_equal(run_cli(f, NULL, &out, 7, argv_json), EXIT_NEGATIVE);
    arr = cJSON_Parse(out);
    assert_non_null(arr);
    assert_int_equal(cJSON_GetArraySize(arr), 3);
    o = cJSON_GetArrayItem(arr, 1);
    assert_string_equal(cJSON_GetObjectItem(o, "phone")->valuestring,
                        "0151 23456780");
    assert_string_equal(cJSON_GetObjectItem(o, "e164")->valuestring, PHONE2);
    assert_string_equal(cJSON_GetObjectItem(o, "decision")->valuestring,
                        "deny");
    assert_string_equal(cJSON_GetObjectItem(o, "reason")->valuestring,
                        "opted_out");
    assert_string_equal(cJSON_GetObjectItem(o, "status")->valuestring,
                        "opted_out");
    o = cJSON_GetArrayItem(arr, 0);
    assert_string_equal(cJSON_GetObjectItem(o, "reason")->valuestring,
                        "allowed");
    o = cJSON_GetArrayItem(arr, 2);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "e164")));
    assert_string_equal(cJSON_GetObjectItem(o, "reason")->valuestring,
                        "invalid_phone");
    cJSON_Delete(arr);
    free(out);

    assert_int_equal(run_cli(f, NULL, &out, 4, argv_text), EXIT_OK);
    assert_string_equal(out,
                        PHONE "\tallow\tallowed\tsingle_opt_in\t" PHONE "\n");
    free(out);
    assert_int_equal(
        run_cli(f, "\n  0151 23456789 \r\n\n", &out, 3, argv_stdin), EXIT_OK);
    assert_string_equal(
        out, "0151 23456789\tallow\tallowed\tsingle_opt_in\t" PHONE "\n");
    free(out);
    assert_int_equal(run_cli(f, NULL, &out, 2, argv_usage), EXIT_USAGE);
    free(out);
    assert_int_equal(run_cli(f, NULL, &out, 4, argv_unknown), EXIT_NEGATIVE);
    assert_non_null(strstr(out, "unknown_configuration"));
    free(out);
    exec(f->c, "DELETE FROM sync_runs");
    assert_int_equal(run_cli(f, NULL, &out, 4, argv_text), EXIT_NEGATIVE);
    assert_non_null(strstr(out, "cache_stale"));
    free(out);
}

/*
 * `optsync gate` reads SQLite per phone for a few phones and loads the
 * index for many (--index auto): both give byte for byte the same answers
 * for every kind of row and input, in text and JSON, with a topic, and
 * the same exit code.
 */
static void test_gate__cli_index_modes_agree(void **state)
{
    struct fixture *f = *state;
    struct strbuf in;
    struct row row;
    char e164[32], *out[4];
    char *argv[4][8];
    int rc[4], k, i, json;

    for (i = 0; i < 3000; i++) {
        snprintf(e164, sizeof(e164), "+49151%08d", i);
        row.status = i % 4;
        row.active = i % 7 != 0;
        row.e164 = i % 97 == 0 ? NULL : e164;
        row.topics = i % 11 == 0 ? "news, offers" : NULL;
        row.paused_until = i % 13 == 0 ? NOW + DAY : 0;
        add_row(f->c, i % 5 ? CFG : CFG_DOI, &row);
        if (i % 3 == 0) /* a second row of the same number */
            add_row(f->c, CFG, &row);
    }
    row = (struct row){ CONSENT_OPTED_OUT, 1, AR, NULL, 0 };
    add_row(f->c, CFG, &row);
    strbuf_init(&in, 1 << 20);
    for (i = 0; i < 6000; i++) {
        switch (i % 7) {
        case 0: strbuf_addf(&in, "+49151%08d\n", i / 2); break;
        case 1: strbuf_addf(&in, "  0151 %08d \n\n", i / 2); break;
        case 2: strbuf_addf(&in, "+49 151 %04d %04d\n", 0, i / 2); break;
        case 3: strbuf_adds(&in, "n/a\n"); break;
        case 4:
            strbuf_adds(&in, i % 2 ? AR_9 "\n" : "+54 11 2345-6789\n");
            break;
        case 5: strbuf_addf(&in, "+4917%09d\n", i); break;
        default: strbuf_addf(&in, "07700 9%05d\n", i); break;
        }
    }
    for (json = 0; json <= 1; json++) {
        static char *const modes[] = { "--index=off", "--index=on",
                                       "--index=auto" };
        for (k = 0; k < 3; k++) {
            argv[k][0] = "gate";
            argv[k][1] = "--configuration";
            argv[k][2] = "WA Main";
            argv[k][3] = modes[k];
            argv[k][4] = "--topic";
            argv[k][5] = json ? "news" : "offers";
            argv[k][6] = "--json";
            rc[k] = run_cli(f, in.data, &out[k], json ? 7 : 6, argv[k]);
        }
        assert_int_equal(rc[0], EXIT_NEGATIVE);
        for (k = 1; k < 3; k++) {
            assert_int_equal(rc[k], rc[0]);
            assert_string_equal(out[k], out[0]);
        }
        assert_non_null(strstr(out[0], "opted_out"));
        assert_non_null(strstr(out[0], "topic_opted_out"));
        assert_non_null(strstr(out[0], "paused"));
        assert_non_null(strstr(out[0], "allowed"));
        assert_non_null(strstr(out[0], "invalid_phone"));
        for (k = 0; k < 3; k++)
            free(out[k]);
    }
    /* A few phones (auto reads SQLite per phone): the same answers. */
    argv[3][0] = "gate";
    argv[3][1] = "--configuration";
    argv[3][2] = CFG;
    argv[3][3] = "--index=on";
    rc[0] = run_cli(f, "+4915100000004\n0151 00000008\n", &out[0], 4, argv[3]);
    rc[1] = run_cli(f, "+4915100000004\n0151 00000008\n", &out[1], 3, argv[3]);
    assert_int_equal(rc[0], rc[1]);
    assert_string_equal(out[0], out[1]);
    free(out[0]);
    free(out[1]);
    argv[3][3] = "--index=maybe";
    assert_int_equal(run_cli(f, NULL, &out[0], 4, argv[3]), EXIT_USAGE);
    free(out[0]);
    strbuf_dispose(&in);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_gate__every_reason),
        T(test_gate__configurations_are_separate),
        T(test_gate__stale_before_first_sync),
        T(test_gate__stale_after_max_staleness),
        T(test_gate__frequency_cap_overall),
        T(test_gate__frequency_cap_per_topic),
        T(test_gate__record_send),
        T(test_gate__bulk_in_input_order),
        T(test_gate__national_input_uses_the_configurations_region),
        T(test_gate__possible_but_not_valid_numbers),
        T(test_gate__whatsapp_stop_lands_on_the_crm_row),
        T(test_gate__opt_out_by_another_connection_denies_next),
        T(test_gate__own_connection_commit_is_seen),
        T(test_gate__other_connection_changes_are_seen),
        T(test_gate__reused_rowid_is_read),
        T(test_gate__emptied_journal_rebuilds),
        T(test_gate__pruned_journal_rebuilds),
        T(test_gate__journal_is_bounded),
        T(test_gate__many_changes),
        T(test_gate__fails_closed_on_error),
        T(test_gate__fails_closed_inside_a_transaction),
        T(test_gate__fails_closed_mid_decision),
        T(test_gate__stats),
        cmocka_unit_test(test_gate__index_against_a_reference),
        T(test_gate__cli),
        T(test_gate__cli_index_modes_agree),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
