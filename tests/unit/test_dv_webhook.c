/*
 * test_dv_webhook — the Dataverse webhook without a network: the
 * RemoteExecutionContext parser on the bodies the emulator sends
 * (tests/data/dv_webhook/, captured by capture.py) and on composed ones
 * (every value type, /Date()/ with offsets, malformed input), the
 * x-ms-dynamics-* headers, each authentication mode, and applying events
 * to a real SQLite cache: rows, ledger, the re-fetch queue, tombstones,
 * dedupe, the order rule, rollback under a failing disk, pruning.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "caps.h"
#include "clock.h"
#include "configurations.h"
#include "consent.h"
#include "dv_webhook.h"
#include "err.h"
#include "fault.h"
#include "jsonutil.h"
#include "testutil.h"
#include "xalloc.h"

/* The ids of capture.py's seed. */
#define CFG_A "6a1c0d6e-0000-4000-8000-00000000000a"
#define CFG_B "6a1c0d6e-0000-4000-8000-00000000000b"
#define CFG_NEW "6a1c0d6e-0000-4000-8000-0000000000c1"
#define NUM(i) "3f2e0000-0000-4000-8000-00000000000" #i
#define NUM_NEW "3f2e0000-0000-4000-8000-0000000000d1"
#define NUM_NEW2 "3f2e0000-0000-4000-8000-0000000000d2"

#define SINGLE 100000000
#define DOUBLE 100000001
#define OPTED_OUT 100000002

/* 2025-03-01: after the seed's rows, before the captured changes. */
#define SYNCED_AT 1740787200000LL
#define NOW 1800000000000LL

struct fixture {
    char *dir;
    cache *c;
    struct mapping *m;
    struct optsync_config cfg; /* only the fields dv_webhook reads */
    dv_webhook *wh;
};

/* ---- helpers --------------------------------------------------------------
 */

static struct mapping *load_mapping(const char *rel)
{
    char *path = testutil_source_path(rel);
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

/* A captured body and its headers (a JSON object, lower-case names). */
struct capture {
    char *body;
    size_t len;
    cJSON *headers;
};

static void capture_load(struct capture *out, const char *name)
{
    char *rel = xasprintf("tests/data/dv_webhook/%s.json", name);
    char *path = testutil_source_path(rel);
    char *hpath = xasprintf("%.*s.headers.json", (int)(strlen(path) - 5), path);
    size_t hlen;
    char *htext = testutil_read(hpath, &hlen);

    out->body = testutil_read(path, &out->len);
    out->headers = jsonutil_parse(htext, hlen);
    assert_non_null(out->headers);
    free(htext);
    free(hpath);
    free(path);
    free(rel);
}

static void capture_dispose(struct capture *cap)
{
    free(cap->body);
    cJSON_Delete(cap->headers);
}

/* Case-insensitive, like evhttp_find_header. */
static const char *json_lookup(const char *name, void *payload)
{
    const cJSON *v = cJSON_GetObjectItem(payload, name);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void headers_of(struct dv_webhook_headers *out, cJSON *headers)
{
    struct dv_webhook_request r = { json_lookup, headers, NULL, NULL };

    dv_webhook_headers_read(out, &r);
}

static struct dv_webhook_event *parse_capture(struct fixture *f,
                                              const char *name)
{
    struct dv_webhook_event *ev = NULL;
    struct dv_webhook_headers h;
    struct capture cap;

    capture_load(&cap, name);
    headers_of(&h, cap.headers);
    assert_int_equal(dv_webhook_parse(&ev, f->m, cap.body, cap.len, &h), 0);
    capture_dispose(&cap);
    return ev;
}

static struct dv_webhook_event *parse_text(struct fixture *f, const char *s)
{
    struct dv_webhook_event *ev = NULL;

    assert_int_equal(dv_webhook_parse(&ev, f->m, s, strlen(s), NULL), 0);
    return ev;
}

static const cJSON *col(const struct dv_webhook_event *ev, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(ev->row, name);
}

static double num(const cJSON *row, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, name);

    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static const char *str(const cJSON *row, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, name);

    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

/* An integer (or -1 for NULL, -2 for no row) from a query with one text
 * parameter. */
static long long query1(cache *c, const char *sql, const char *param)
{
    sqlite3_stmt *st = NULL;
    long long v = -2;

    assert_int_equal(sqlite3_prepare_v2(cache_db(c), sql, -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, param, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_type(st, 0) == SQLITE_NULL
                ? -1
                : sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static char *query1_text(cache *c, const char *sql, const char *param)
{
    sqlite3_stmt *st = NULL;
    char *v = NULL;

    assert_int_equal(sqlite3_prepare_v2(cache_db(c), sql, -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, param, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        v = xstrdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return v;
}

static long long status_of(struct fixture *f, const char *dv_id)
{
    return query1(f->c, "SELECT status FROM numbers WHERE dv_id = ?1", dv_id);
}

static long long ledger_count(struct fixture *f)
{
    return testutil_query_int(f->c, "SELECT count(*) FROM ledger");
}

static long long queued(struct fixture *f, const char *entity, const char *id)
{
    char *sql = xasprintf("SELECT count(*) FROM dv_refetch WHERE "
                          "entity = '%s' AND dv_id = ?1",
                          entity);
    long long n = query1(f->c, sql, id);

    free(sql);
    return n;
}

/* ---- the cache as the poller left it ------------------------------------- */

static void put_configuration(struct fixture *f, const char *id,
                              const char *name, const char *region)
{
    struct configuration_record r;

    memset(&r, 0, sizeof(r));
    snprintf(r.id, sizeof(r.id), "%s", id);
    r.name = name;
    r.default_region = region;
    r.active = 1;
    r.version = 1;
    assert_int_equal(mapping_time_parse(&r.modified_on, "2025-01-02T09:00:00Z"),
                     0);
    assert_int_equal(cache_begin(f->c), 0);
    assert_int_equal(configurations_put(f->c, &r, 0), 0);
    assert_int_equal(cache_commit(f->c), 0);
}

/* A number row mirrored by the poller (source dataverse). */
static void put_number(struct fixture *f, const char *id, const char *cfg,
                       const char *phone, int status, int version,
                       const char *modified)
{
    char *text = xasprintf(
        "{\"@odata.etag\":\"W/\\\"%d\\\"\",\"%s\":\"%s\",\"%s\":\"%s\","
        "\"%s\":\"%s\",\"%s\":%d,\"statecode\":0,\"%s\":\"%s\"}",
        version, f->m->number.id, id, f->m->number.configuration_value, cfg,
        f->m->number.phone, phone, f->m->number.status, status,
        f->m->number.modified_on, modified);
    cJSON *row = jsonutil_parse(text, strlen(text));
    struct number_record rec;
    struct consent_row crow;
    struct consent_event ev;
    struct consent_result res;
    struct consent_options opts = { 7LL * 86400000, 0, 0, 0 };
    const char *why = NULL;

    assert_int_equal(mapping_number_from_row(&rec, f->m, row, &why), 0);
    memset(&crow, 0, sizeof(crow));
    crow.rec = &rec;
    crow.region = "DE";
    memset(&ev, 0, sizeof(ev));
    ev.action = CONSENT_ACT_MIRROR;
    ev.source = CONSENT_SOURCE_DATAVERSE;
    ev.row = &crow;
    assert_int_equal(consent_apply(&res, f->c, &opts, &ev), 0);
    cJSON_Delete(row);
    free(text);
}

static void fixture_open(struct fixture *f, const char *mapping_rel)
{
    char *path;

    f->dir = testutil_tmpdir();
    path = xasprintf("%s/cache.db", f->dir);
    assert_int_equal(cache_open(&f->c, path, 0), 0);
    free(path);
    f->m = load_mapping(mapping_rel);
    f->cfg.dataverse_webhook.auth = "header";
    f->cfg.dataverse_webhook.header_name = "X-Optsync-Key";
    f->cfg.dataverse_webhook.query_name = "key";
    f->cfg.dataverse_webhook.key = "capture-key";
    f->cfg.consent.default_region = "DE";
    f->cfg.consent.double_opt_in_window = 7 * 86400;
    assert_int_equal(dv_webhook_new(&f->wh, &f->cfg, f->m), 0);
    clock_set_fixed(NOW);
    put_configuration(f, CFG_A, "WA Main", "DE");
    put_configuration(f, CFG_B, "Alpha Shop", "GB");
    assert_int_equal(cache_exec(f->c, "INSERT INTO sync_runs(kind, "
                                      "started_at, finished_at, ok) VALUES "
                                      "('full', 1740787200000, "
                                      "1740787260000, 1)"),
                     0);
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));

    fixture_open(f, "mapping/whatsapp4dynamics.json");
    put_number(f, NUM(1), CFG_A, "+49 151 2345 6789", DOUBLE, 1,
               "2025-02-01T09:00:00Z");
    put_number(f, NUM(2), CFG_A, "0151/23456789", OPTED_OUT, 2,
               "2025-02-02T09:00:00Z");
    put_number(f, NUM(3), CFG_A, "+4915111111111", SINGLE, 3,
               "2025-02-03T09:00:00Z");
    put_number(f, NUM(5), CFG_B, "07400 123456", SINGLE, 5,
               "2025-02-05T09:00:00Z");
    *state = f;
    return 0;
}

static int setup_alt(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));

    fixture_open(f, "tests/data/mapping_alt.json");
    put_number(f, NUM(1), CFG_A, "+49 151 2345 6789", 71230002, 1,
               "2025-02-01T09:00:00Z");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    fault_disarm_all();
    dv_webhook_free(f->wh);
    mapping_free(f->m);
    cache_close(f->c);
    testutil_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void apply_ok(struct fixture *f, const struct dv_webhook_event *ev,
                     enum dv_webhook_outcome want)
{
    struct dv_webhook_result r;

    assert_int_equal(dv_webhook_apply(&r, f->wh, f->c, ev), 0);
    if (r.outcome != want)
        fail_msg("outcome %s (%s), want %s", dv_webhook_outcome_name(r.outcome),
                 r.reason ? r.reason : "-", dv_webhook_outcome_name(want));
}

/* ---- /Date(…)/ -------------------------------------------------------------
 */

static void test_dv_webhook__date_forms(void **state)
{
    static const struct {
        const char *in;
        int ok;
        int64_t ms;
    } cases[] = {
        { "/Date(1506384247000)/", 1, 1506384247000LL },
        { "/Date(1506409448000-0700)/", 1, 1506409448000LL },
        { "/Date(1738054800000+0000)/", 1, 1738054800000LL },
        { "/Date(1738054800000+1400)/", 1, 1738054800000LL },
        { "/Date(-1000)/", 1, -1000 },
        { "/Date(0)/", 1, 0 },
        { "/Date(253402300799999)/", 1, 253402300799999LL },
        { "/Date(253402300800000)/", 0, 0 }, /* year 10000 */
        { "/Date(-30610224000001)/", 0, 0 }, /* before year 1000 */
        { "/Date()/", 0, 0 },
        { "/Date(-)/", 0, 0 },
        { "/Date(12a)/", 0, 0 },
        { "/Date(1+07)/", 0, 0 },
        { "/Date(1+1500)/", 0, 0 },
        { "/Date(1-0760)/", 0, 0 },
        { "/Date(1)/x", 0, 0 },
        { "/Date(1)", 0, 0 },
        { "Date(1)/", 0, 0 },
        { "\\/Date(1)\\/", 0, 0 },
        { "/Date(12345678901234567)/", 0, 0 },
        { "/date(1)/", 0, 0 },
        { "", 0, 0 },
    };
    size_t i;
    int64_t ms;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ms = 42;
        if (dv_webhook_date_parse(&ms, cases[i].in) != (cases[i].ok ? 0 : -1))
            fail_msg("%s", cases[i].in);
        if (cases[i].ok && ms != cases[i].ms)
            fail_msg("%s → %lld", cases[i].in, (long long)ms);
    }
    assert_int_equal(dv_webhook_date_parse(&ms, NULL), -1);
}

/* ---- captured bodies: numbers ----------------------------------------------
 */

static void test_dv_webhook__parse_number_create(void **state)
{
    struct fixture *f = *state;
    struct dv_webhook_event *ev = parse_capture(f, "number_create_async");
    struct number_record rec;
    const char *why = NULL;

    assert_int_equal(ev->message, DV_WEBHOOK_CREATE);
    assert_string_equal(ev->message_name, "Create");
    assert_int_equal(ev->entity, DV_NUMBER);
    assert_string_equal(ev->id, NUM_NEW);
    assert_int_equal(ev->mode, 1);
    assert_int_equal(ev->stage, 40);
    assert_int_equal(ev->depth, 1);
    assert_int_equal(ev->hint, DV_WEBHOOK_HINT_NONE);
    assert_true(ev->operation_at > 0);
    assert_int_equal(strlen(ev->correlation_id), 36);
    assert_int_equal(strlen(ev->operation_id), 36);
    assert_string_equal(ev->request_id, ""); /* async: RequestId null */
    assert_memory_equal(ev->dedupe_key, "op:", 3);
    /* EntityReference → _<lookup>_value, OptionSetValue → number */
    assert_string_equal(str(ev->row, "_inogic_configurationid_value"), CFG_A);
    assert_null(col(ev, "inogic_configurationid"));
    assert_int_equal(num(ev->row, "inogic_optinstatus"), SINGLE);
    assert_int_equal(num(ev->row, "statecode"), 0);
    assert_string_equal(str(ev->row, "inogic_phonenumber"), "+49 170 1234567");
    assert_string_equal(str(ev->row, "inogic_consentdate"),
                        "2025-02-20T10:00:00Z");
    assert_string_equal(str(ev->row, "_modifiedby_value"),
                        str(ev->row, "_createdby_value"));
    /* a null is a lookup only when the mapping says so */
    assert_true(cJSON_IsNull(col(ev, "modifiedonbehalfby")));
    assert_null(col(ev, "@odata.etag")); /* no versionnumber sent */
    assert_null(ev->pre);
    assert_int_equal(mapping_number_from_row(&rec, f->m, ev->row, &why), 0);
    assert_string_equal(rec.id, NUM_NEW);
    assert_string_equal(rec.configuration_id, CFG_A);
    assert_int_equal(rec.status, CONSENT_SINGLE_OPT_IN);
    assert_int_equal(rec.active, 1);
    assert_true(rec.modified_on > SYNCED_AT);
    dv_webhook_event_free(ev);
}

static void test_dv_webhook__parse_number_update_images(void **state)
{
    struct fixture *f = *state;
    struct dv_webhook_event *ev =
        parse_capture(f, "number_update_async_images");
    char etag[40];

    assert_int_equal(ev->message, DV_WEBHOOK_UPDATE);
    assert_string_equal(ev->id, NUM(2));
    assert_int_equal(ev->hint, DV_WEBHOOK_HINT_NONE);
    /* the post image fills what Target leaves out */
    assert_string_equal(str(ev->row, "inogic_phonenumber"), "0151/23456789");
    assert_string_equal(str(ev->row, "_inogic_configurationid_value"), CFG_A);
    assert_string_equal(str(ev->row, "inogic_name"), "O'Bryan");
    assert_int_equal(num(ev->row, "inogic_optinstatus"), SINGLE);
    assert_true(ev->version > 0);
    snprintf(etag, sizeof(etag), "W/\"%lld\"", (long long)ev->version);
    assert_string_equal(str(ev->row, "@odata.etag"), etag);
    /* the pre image: only the registered attribute */
    assert_non_null(ev->pre);
    assert_int_equal(num(ev->pre, "inogic_optinstatus"), OPTED_OUT);
    assert_null(
        cJSON_GetObjectItemCaseSensitive(ev->pre, "inogic_phonenumber"));
    dv_webhook_event_free(ev);
}

static void test_dv_webhook__parse_hints(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *name;
        enum dv_webhook_hint hint;
        const char *missing;
    } cases[] = {
        { "number_update_async", DV_WEBHOOK_HINT_PARTIAL,
          "inogic_configurationid" },
        { "number_update_sync", DV_WEBHOOK_HINT_UNCOMMITTED, NULL },
        { "number_update_prevalidation", DV_WEBHOOK_HINT_UNCOMMITTED, NULL },
        { "number_update_trimmed", DV_WEBHOOK_HINT_TRIMMED, NULL },
        /* the name comes from AsynchronousStepPrimaryName */
        { "configuration_update_async", DV_WEBHOOK_HINT_PARTIAL,
          "inogic_phonenumberid" },
        /* the image leaves the null waba id out */
        { "configuration_create_async_postimage", DV_WEBHOOK_HINT_PARTIAL,
          "inogic_wabaid" },
    };
    struct dv_webhook_event *ev;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ev = parse_capture(f, cases[i].name);
        if (ev->hint != cases[i].hint)
            fail_msg("%s: hint %d", cases[i].name, (int)ev->hint);
        if (cases[i].missing)
            assert_string_equal(ev->missing, cases[i].missing);
        dv_webhook_event_free(ev);
    }
}

static void test_dv_webhook__parse_sync_context(void **state)
{
    struct fixture *f = *state;
    struct dv_webhook_event *ev = parse_capture(f, "number_update_sync");

    assert_int_equal(ev->mode, 0);
    assert_int_equal(strlen(ev->request_id), 36);
    assert_string_equal(ev->operation_id, ""); /* the empty GUID */
    assert_memory_equal(ev->dedupe_key, "sha256:", 7);
    assert_int_equal(strlen(ev->dedupe_key), 7 + 64);
    /* the row is read all the same, it is just not trusted (note 3) */
    assert_int_equal(num(ev->row, "inogic_optinstatus"), OPTED_OUT);
    dv_webhook_event_free(ev);
}

static void test_dv_webhook__parse_trimmed(void **state)
{
    struct fixture *f = *state;
    struct dv_webhook_event *ev = NULL;
    struct dv_webhook_headers h;
    struct capture cap;

    capture_load(&cap, "number_update_trimmed");
    headers_of(&h, cap.headers);
    assert_true(h.size_exceeded);
    assert_true(cap.len < 256 * 1024);
    /* with the header, and from the body alone (no InputParameters) */
    assert_int_equal(dv_webhook_parse(&ev, f->m, cap.body, cap.len, &h), 0);
    assert_int_equal(ev->hint, DV_WEBHOOK_HINT_TRIMMED);
    assert_string_equal(ev->id, NUM(1));
    assert_null(ev->row);
    dv_webhook_event_free(ev);
    assert_int_equal(dv_webhook_parse(&ev, f->m, cap.body, cap.len, NULL), 0);
    assert_int_equal(ev->hint, DV_WEBHOOK_HINT_TRIMMED);
    dv_webhook_event_free(ev);
    capture_dispose(&cap);
}

static void test_dv_webhook__parse_deletes(void **state)
{
    struct fixture *f = *state;
    struct dv_webhook_event *ev = parse_capture(f, "number_delete_async");

    assert_int_equal(ev->message, DV_WEBHOOK_DELETE);
    assert_string_equal(ev->id, NUM(5));
    assert_int_equal(ev->hint, DV_WEBHOOK_HINT_NONE);
    assert_null(ev->row);
    assert_null(ev->pre);
    dv_webhook_event_free(ev);
    ev = parse_capture(f, "number_delete_async_preimage");
    assert_string_equal(ev->id, NUM(2));
    assert_string_equal(str(ev->pre, "inogic_phonenumber"), "0151/23456789");
    assert_string_equal(str(ev->pre, "_inogic_configurationid_value"), CFG_A);
    dv_webhook_event_free(ev);
    ev = parse_capture(f, "configuration_delete_async");
    assert_int_equal(ev->entity, DV_CONFIGURATION);
    assert_string_equal(ev->id, CFG_NEW);
    dv_webhook_event_free(ev);
}

static void test_dv_webhook__parse_cascade(void **state)
{
    struct fixture *f = *state;
    struct dv_webhook_event *ev = parse_capture(f, "number_update_cascade");
    struct number_record rec;
    const char *why;

    assert_int_equal(ev->depth, 2);
    assert_int_equal(ev->hint, DV_WEBHOOK_HINT_NONE);
    /* Target's explicit null; the image leaves the null lookup out */
    assert_true(cJSON_IsNull(col(ev, "_inogic_configurationid_value")));
    assert_int_equal(mapping_number_from_row(&rec, f->m, ev->row, &why), 0);
    assert_string_equal(rec.configuration_id, "");
    dv_webhook_event_free(ev);
}

static void test_dv_webhook__parse_configuration(void **state)
{
    struct fixture *f = *state;
    struct dv_webhook_event *ev =
        parse_capture(f, "configuration_update_async_postimage");
    struct configuration_record rec;
    const char *why;

    assert_int_equal(ev->entity, DV_CONFIGURATION);
    assert_int_equal(ev->hint, DV_WEBHOOK_HINT_NONE);
    assert_int_equal(mapping_configuration_from_row(&rec, f->m, ev->row, &why),
                     0);
    assert_string_equal(rec.id, CFG_A);
    assert_string_equal(rec.name, "WA Main DE");
    assert_string_equal(rec.default_region, "49");
    assert_string_equal(rec.phone_number_id, "106540352242922");
    assert_int_equal(rec.double_opt_in, 1);
    assert_int_equal(rec.active, 1);
    assert_int_equal(rec.version, ev->version);
    dv_webhook_event_free(ev);
}

static void test_dv_webhook__parse_alt_mapping(void **state)
{
    struct fixture *f = *state;
    struct dv_webhook_event *ev =
        parse_capture(f, "alt_number_create_async_postimage");
    struct number_record rec;
    const char *why = NULL;

    assert_int_equal(ev->hint, DV_WEBHOOK_HINT_NONE);
    assert_int_equal(mapping_number_from_row(&rec, f->m, ev->row, &why), 0);
    assert_string_equal(rec.configuration_id, CFG_A);
    assert_int_equal(rec.status, CONSENT_SINGLE_OPT_IN); /* 71230001 */
    assert_string_equal(rec.topics, "promotions,news");
    assert_int_equal(rec.paused_until, 1740817800000LL);
    assert_int_equal(rec.consent_at, 1740045600000LL);
    dv_webhook_event_free(ev);
    ev = parse_capture(f, "alt_number_update_async");
    assert_int_equal(ev->hint, DV_WEBHOOK_HINT_PARTIAL);
    assert_true(cJSON_IsNull(col(ev, "cts_optedouttopics")));
    assert_string_equal(str(ev->row, "cts_pauseduntil"),
                        "2025-04-01T00:00:00Z");
    dv_webhook_event_free(ev);
}

/* ---- composed bodies -------------------------------------------------------
 */

#define CT ":http:\\/\\/schemas.microsoft.com\\/xrm\\/2011\\/Contracts"

/* A context around `target_attrs` and `post_attrs` (both JSON array
 * items), for number row NUM(1). */
static char *compose(const char *message, int mode, const char *target_attrs,
                     const char *post_attrs)
{
    return xasprintf(
        "{\"MessageName\":\"%s\",\"Mode\":%d,\"Stage\":40,\"Depth\":1,"
        "\"PrimaryEntityName\":\"inogic_optinoptoutnumber\","
        "\"PrimaryEntityId\":\"" NUM(
            1) "\","
               "\"CorrelationId\":\"b374239d-4233-41a9-8b17-a86cb4f737b5\","
               "\"OperationId\":\"c374239d-4233-41a9-8b17-a86cb4f737b5\","
               "\"OperationCreatedOn\":\"\\/Date(1506409448000-0700)\\/\","
               "\"InputParameters\":[{\"key\":\"Target\",\"value\":{\"__type\":"
               "\"Entity" CT "\",\"LogicalName\":\"inogic_optinoptoutnumber\","
               "\"Id\":\"" NUM(
                   1) "\",\"Attributes\":[%s]}}],"
                      "\"PostEntityImages\":[%s%s%s],\"PreEntityImages\":[]}",
        message, mode, target_attrs,
        post_attrs ? "{\"key\":\"post\","
                     "\"value\":{\"Attributes\":["
                   : "",
        post_attrs ? post_attrs : "", post_attrs ? "]}}" : "");
}

static void test_dv_webhook__parse_value_types(void **state)
{
    struct fixture *f = *state;
    char *body = compose(
        "Update", 1,
        "{\"key\":\"new_amount\",\"value\":{\"__type\":\"Money" CT "\","
        "\"Value\":12.5}},"
        "{\"key\":\"new_channels\",\"value\":[{\"__type\":\"OptionSetValue" CT
        "\",\"Value\":1},{\"__type\":\"OptionSetValue" CT "\",\"Value\":9}]},"
        "{\"key\":\"new_none\",\"value\":[]},"
        "{\"key\":\"new_flag\",\"value\":true},"
        "{\"key\":\"new_off\",\"value\":false},"
        "{\"key\":\"new_count\",\"value\":7},"
        "{\"key\":\"new_local\",\"value\":\"\\/Date(1506409448000-0700)\\/\"},"
        "{\"key\":\"new_old\",\"value\":\"\\/Date(-86400000)\\/\"},"
        "{\"key\":\"new_far\",\"value\":\"\\/Date(999999999999999)\\/\"},"
        "{\"key\":\"new_text\",\"value\":\"a \\/ b\"},"
        "{\"key\":\"new_weird\",\"value\":{\"__type\":\"EntityCollection" CT
        "\",\"Entities\":[]}},"
        "{\"key\":\"new_bare\",\"value\":{\"Id\":\"{C374239D-4233-41A9-8B17-"
        "A86CB4F737B5}\",\"LogicalName\":\"contact\"}},"
        "{\"key\":\"inogic_configurationid\",\"value\":null},"
        "{\"key\":\"inogic_optinstatus\",\"value\":{\"__type\":"
        "\"OptionSetValue" CT "\",\"Value\":100000002}},"
        "{\"key\":\"inogic_optinstatus\",\"value\":{\"__type\":"
        "\"OptionSetValue" CT "\",\"Value\":100000000}},"
        "{\"key\":\"modifiedon\",\"value\":\"\\/Date(1506384247000)\\/\"}",
        "{\"key\":\"inogic_phonenumber\",\"value\":\"+49 151 1\"},"
        "{\"key\":\"inogic_optinstatus\",\"value\":{\"__type\":"
        "\"OptionSetValue" CT "\",\"Value\":100000001}},"
        "{\"key\":\"statecode\",\"value\":{\"__type\":\"OptionSetValue" CT
        "\",\"Value\":0}},{\"key\":\"versionnumber\",\"value\":987654321}");
    struct dv_webhook_event *ev = parse_text(f, body);

    assert_true(num(ev->row, "new_amount") == 12.5);
    assert_string_equal(str(ev->row, "new_channels"), "1,9");
    assert_true(cJSON_IsNull(col(ev, "new_none")));
    assert_true(cJSON_IsTrue(col(ev, "new_flag")));
    assert_true(cJSON_IsFalse(col(ev, "new_off")));
    assert_int_equal(num(ev->row, "new_count"), 7);
    /* the number is UTC; the offset is only how .NET would show it */
    assert_string_equal(str(ev->row, "new_local"), "2017-09-26T07:04:08Z");
    assert_string_equal(str(ev->row, "new_old"), "1969-12-31T00:00:00Z");
    assert_string_equal(str(ev->row, "new_far"), "/Date(999999999999999)/");
    assert_string_equal(str(ev->row, "new_text"), "a / b");
    assert_null(col(ev, "new_weird")); /* a type nothing reads */
    assert_string_equal(str(ev->row, "_new_bare_value"),
                        "c374239d-4233-41a9-8b17-a86cb4f737b5");
    /* a null known to be the mapping's lookup */
    assert_true(cJSON_IsNull(col(ev, "_inogic_configurationid_value")));
    /* the post image wins over Target */
    assert_int_equal(num(ev->row, "inogic_optinstatus"), DOUBLE);
    assert_string_equal(str(ev->row, "modifiedon"), "2017-09-26T00:04:07Z");
    assert_string_equal(str(ev->row, "@odata.etag"), "W/\"987654321\"");
    assert_int_equal(ev->version, 987654321);
    assert_int_equal(ev->operation_at, 1506409448000LL);
    /* every essential column is there (the lookup as an explicit null) */
    assert_int_equal(ev->hint, DV_WEBHOOK_HINT_NONE);
    dv_webhook_event_free(ev);
    free(body);
}

static void test_dv_webhook__parse_last_duplicate_wins(void **state)
{
    struct fixture *f = *state;
    char *body =
        compose("Update", 1,
                "{\"key\":\"inogic_optinstatus\",\"value\":{\"__type\":"
                "\"OptionSetValue" CT "\",\"Value\":100000002}},"
                "{\"key\":\"inogic_optinstatus\",\"value\":{\"__type\":"
                "\"OptionSetValue" CT "\",\"Value\":100000000}}",
                NULL);
    struct dv_webhook_event *ev = parse_text(f, body);

    /* Target: the first stays (Target never replaces) — so the order a
     * member appears in does not matter for images, only for Target */
    assert_int_equal(num(ev->row, "inogic_optinstatus"), OPTED_OUT);
    assert_int_equal(ev->hint, DV_WEBHOOK_HINT_PARTIAL);
    dv_webhook_event_free(ev);
    free(body);
}

static void test_dv_webhook__parse_other_message(void **state)
{
    struct fixture *f = *state;
    char *body = compose("SetState", 1, "", NULL);
    struct dv_webhook_event *ev = parse_text(f, body);

    assert_int_equal(ev->message, DV_WEBHOOK_OTHER);
    assert_string_equal(ev->message_name, "SetState");
    assert_int_equal(ev->hint, DV_WEBHOOK_HINT_MESSAGE);
    dv_webhook_event_free(ev);
    free(body);
}

/* A Mode that would wrap to 1 as an int is no async context. */
static void test_dv_webhook__parse_mode_out_of_range(void **state)
{
    struct fixture *f = *state;
    static const char *const modes[] = { "4294967297", "1.5", "\"1\"",
                                         "-4294967295" };
    struct dv_webhook_event *ev;
    char *body, *p;
    size_t i;

    for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        body = compose("Delete", 1, "", NULL);
        p = strstr(body, "\"Mode\":1,");
        assert_non_null(p);
        *p = '\0';
        p = xasprintf("%s\"Mode\":%s,%s", body, modes[i], p + 9);
        ev = parse_text(f, p);
        if (ev->hint != DV_WEBHOOK_HINT_UNCOMMITTED)
            fail_msg("Mode %s taken for %d", modes[i], ev->mode);
        dv_webhook_event_free(ev);
        free(p);
        free(body);
    }
}

static void test_dv_webhook__parse_create_id_from_output(void **state)
{
    struct fixture *f = *state;
    static const char body[] =
        "{\"MessageName\":\"Create\",\"Mode\":1,\"Stage\":40,"
        "\"PrimaryEntityName\":\"inogic_optinoptoutnumber\","
        "\"PrimaryEntityId\":\"00000000-0000-0000-0000-000000000000\","
        "\"InputParameters\":[{\"key\":\"Target\",\"value\":{\"Id\":"
        "\"00000000-0000-0000-0000-000000000000\",\"Attributes\":[]}}],"
        "\"OutputParameters\":[{\"key\":\"id\",\"value\":\"" NUM(7) "\"}]}";
    struct dv_webhook_event *ev = parse_text(f, body);

    assert_string_equal(ev->id, NUM(7));
    assert_string_equal(str(ev->row, "inogic_optinoptoutnumberid"), NUM(7));
    assert_int_equal(ev->hint, DV_WEBHOOK_HINT_PARTIAL);
    assert_memory_equal(ev->dedupe_key, "sha256:", 7);
    dv_webhook_event_free(ev);
}

static void test_dv_webhook__parse_malformed(void **state)
{
    struct fixture *f = *state;
    static const char *const bodies[] = {
        "",
        "not json",
        "{\"MessageName\":\"Update\"",
        "[]",
        "{}",
        "{\"MessageName\":7,\"PrimaryEntityName\":\"inogic_"
        "optinoptoutnumber\"}",
        "{\"MessageName\":\"Update\",\"PrimaryEntityName\":\"account\","
        "\"PrimaryEntityId\":\"" NUM(1) "\"}",
        "{\"MessageName\":\"Update\",\"PrimaryEntityName\":"
        "\"inogic_optinoptoutnumber\"}",
        "{\"MessageName\":\"Update\",\"PrimaryEntityName\":"
        "\"inogic_optinoptoutnumber\",\"PrimaryEntityId\":\"nope\"}",
        "{\"MessageName\":\"Update\",\"PrimaryEntityName\":"
        "\"inogic_optinoptoutnumber\",\"PrimaryEntityId\":\"" NUM(
            1) "\","
               "\"InputParameters\":{\"Target\":{}}}",
        "{\"MessageName\":\"Update\",\"PrimaryEntityName\":"
        "\"inogic_optinoptoutnumber\",\"PrimaryEntityId\":\"" NUM(
            1) "\","
               "\"InputParameters\":[{\"value\":1}]}",
        "{\"MessageName\":\"Update\",\"Mode\":1,\"Stage\":40,"
        "\"PrimaryEntityName\":\"inogic_optinoptoutnumber\","
        "\"PrimaryEntityId\":\"" NUM(1) "\",\"InputParameters\":[{\"key\":"
                                        "\"Target\",\"value\":{\"Id\":\"" NUM(
                                            2) "\",\"Attributes\":[]}}]}",
        "{\"MessageName\":\"Update\",\"Mode\":1,\"Stage\":40,"
        "\"PrimaryEntityName\":\"inogic_optinoptoutnumber\","
        "\"PrimaryEntityId\":\"" NUM(
            1) "\",\"InputParameters\":[{\"key\":"
               "\"Target\",\"value\":{\"LogicalName\":\"contact\"}}]}",
        "{\"MessageName\":\"Update\",\"Mode\":1,\"Stage\":40,"
        "\"PrimaryEntityName\":\"inogic_optinoptoutnumber\","
        "\"PrimaryEntityId\":\"" NUM(
            1) "\",\"InputParameters\":[{\"key\":"
               "\"Target\",\"value\":{\"Attributes\":{\"a\":1}}}]}",
        "{\"MessageName\":\"Update\",\"Mode\":1,\"Stage\":40,"
        "\"PrimaryEntityName\":\"inogic_optinoptoutnumber\","
        "\"PrimaryEntityId\":\"" NUM(1) "\",\"InputParameters\":[{\"key\":"
                                        "\"Target\",\"value\":7}]}",
        "{\"MessageName\":\"Update\",\"PrimaryEntityName\":"
        "\"inogic_optinoptoutnumber\",\"PrimaryEntityId\":\"" NUM(
            1) "\","
               "\"PostEntityImages\":[{\"key\":\"p\",\"value\":{\"Attributes\":"
               "[1]}}]}",
        "{\"MessageName\":\"Delete\",\"Mode\":1,\"Stage\":40,"
        "\"PrimaryEntityName\":\"inogic_optinoptoutnumber\","
        "\"PrimaryEntityId\":\"" NUM(1) "\",\"InputParameters\":[{\"key\":"
                                        "\"Target\",\"value\":{\"Id\":\"" NUM(
                                            2) "\"}}]}",
        "{\"MessageName\":\"Delete\",\"Mode\":1,\"Stage\":40,"
        "\"PrimaryEntityName\":\"inogic_optinoptoutnumber\","
        "\"PrimaryEntityId\":\"" NUM(1) "\",\"PreEntityImages\":[{\"key\":"
                                        "\"p\",\"value\":{\"Id\":\"" NUM(
                                            3) "\"}}]}",
    };
    struct dv_webhook_event *ev = NULL;
    size_t i;

    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        if (dv_webhook_parse(&ev, f->m, bodies[i], strlen(bodies[i]), NULL) !=
            ERR_BADINPUT)
            fail_msg("accepted: %s", bodies[i]);
        assert_null(ev);
        assert_true(err_message()[0] != '\0');
    }
}

static void test_dv_webhook__parse_headers_must_agree(void **state)
{
    struct fixture *f = *state;
    struct dv_webhook_event *ev = NULL;
    struct dv_webhook_headers h;
    struct capture cap;

    capture_load(&cap, "number_update_async_images");
    headers_of(&h, cap.headers);
    assert_string_equal(h.entity_name, "inogic_optinoptoutnumber");
    assert_string_equal(h.request_name, "Update");
    assert_string_equal(h.organization, "127.0.0.1");
    assert_int_equal(strlen(h.correlation_id), 36);
    assert_false(h.size_exceeded);
    h.entity_name = "inogic_configuration";
    assert_int_equal(dv_webhook_parse(&ev, f->m, cap.body, cap.len, &h),
                     ERR_BADINPUT);
    headers_of(&h, cap.headers);
    h.request_name = "Create";
    assert_int_equal(dv_webhook_parse(&ev, f->m, cap.body, cap.len, &h),
                     ERR_BADINPUT);
    assert_null(ev);
    capture_dispose(&cap);
}

static void test_dv_webhook__parse_caps(void **state)
{
    struct fixture *f = *state;
    struct dv_webhook_event *ev = NULL;
    struct strbuf sb;
    int i;

    strbuf_init(&sb, 4 << 20);
    strbuf_adds(&sb, "{\"MessageName\":\"Update\",\"Mode\":1,\"Stage\":40,"
                     "\"PrimaryEntityName\":\"inogic_optinoptoutnumber\","
                     "\"PrimaryEntityId\":\"" NUM(1) "\","
                                                     "\"SharedVariables\":[");
    for (i = 0; i <= CAP_DV_CONTEXT_ITEMS; i++)
        strbuf_addf(&sb, "%s{\"key\":\"k%d\",\"value\":1}", i ? "," : "", i);
    strbuf_adds(&sb, "]}");
    assert_int_equal(dv_webhook_parse(&ev, f->m, sb.data, sb.len, NULL),
                     ERR_TOOBIG);
    /* the size cap is checked before anything is read */
    assert_int_equal(dv_webhook_parse(&ev, f->m, sb.data,
                                      (size_t)CAP_WEBHOOK_BODY_BYTES + 1, NULL),
                     ERR_TOOBIG);
    assert_null(ev);
    strbuf_dispose(&sb);
}

static void test_dv_webhook__headers_read(void **state)
{
    cJSON *h = cJSON_Parse("{\"X-MS-Dynamics-Msg-Size-Exceeded\":\"true\","
                           "\"x-ms-dynamics-entity-name\":\"e\"}");
    struct dv_webhook_headers out;

    (void)state;
    headers_of(&out, h);
    assert_true(out.size_exceeded);
    assert_string_equal(out.entity_name, "e");
    assert_null(out.request_name);
    cJSON_ReplaceItemInObject(h, "X-MS-Dynamics-Msg-Size-Exceeded",
                              cJSON_CreateString("False"));
    headers_of(&out, h);
    assert_false(out.size_exceeded);
    dv_webhook_headers_read(&out, NULL);
    assert_null(out.entity_name);
    cJSON_Delete(h);
}

/* ---- authentication ---------------------------------------------------------
 */

static enum dv_webhook_auth auth_with(struct fixture *f, const char *mode,
                                      const char *key, const char *headers,
                                      const char *query)
{
    cJSON *h = cJSON_Parse(headers), *q = cJSON_Parse(query);
    struct dv_webhook_request r = { json_lookup, h, json_lookup, q };
    enum dv_webhook_auth a;

    f->cfg.dataverse_webhook.auth = (char *)(uintptr_t)mode;
    f->cfg.dataverse_webhook.key = (char *)(uintptr_t)key;
    a = dv_webhook_auth_check(f->wh, &r);
    cJSON_Delete(h);
    cJSON_Delete(q);
    return a;
}

static void test_dv_webhook__auth_modes(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *mode, *key, *headers, *query;
        enum dv_webhook_auth want;
    } cases[] = {
        { "header", "k3y", "{\"x-optsync-key\":\"k3y\"}", "{}",
          DV_WEBHOOK_AUTH_OK },
        { "header", "k3y", "{\"X-OPTSYNC-KEY\":\"k3y\"}", "{}",
          DV_WEBHOOK_AUTH_OK },
        { "header", "k3y", "{\"x-optsync-key\":\"k3Y\"}", "{}",
          DV_WEBHOOK_AUTH_UNAUTHORIZED },
        { "header", "k3y", "{\"x-optsync-key\":\"k3y \"}", "{}",
          DV_WEBHOOK_AUTH_UNAUTHORIZED },
        { "header", "k3y", "{\"x-optsync-key\":\"k3\"}", "{}",
          DV_WEBHOOK_AUTH_UNAUTHORIZED },
        { "header", "k3y", "{\"x-optsync-key\":\"\"}", "{}",
          DV_WEBHOOK_AUTH_UNAUTHORIZED },
        { "header", "k3y", "{}", "{\"code\":\"k3y\"}",
          DV_WEBHOOK_AUTH_UNAUTHORIZED },
        { "webhookkey", "k3y", "{}", "{\"code\":\"k3y\"}", DV_WEBHOOK_AUTH_OK },
        { "webhookkey", "k3y", "{}", "{\"code\":\"nope\"}",
          DV_WEBHOOK_AUTH_UNAUTHORIZED },
        { "webhookkey", "k3y", "{\"x-optsync-key\":\"k3y\"}", "{}",
          DV_WEBHOOK_AUTH_UNAUTHORIZED },
        { "webhookkey", "k3y", "{}", "{\"key\":\"k3y\"}",
          DV_WEBHOOK_AUTH_UNAUTHORIZED },
        { "querystring", "k3y", "{}", "{\"key\":\"k3y\"}", DV_WEBHOOK_AUTH_OK },
        { "querystring", "k3y", "{}", "{\"code\":\"k3y\"}",
          DV_WEBHOOK_AUTH_UNAUTHORIZED },
        { "querystring", "k3y", "{}", "{\"key\":\"k3yk3y\"}",
          DV_WEBHOOK_AUTH_UNAUTHORIZED },
        { "header", NULL, "{\"x-optsync-key\":\"k3y\"}", "{}",
          DV_WEBHOOK_AUTH_DISABLED },
        { "querystring", "", "{}", "{\"key\":\"\"}", DV_WEBHOOK_AUTH_DISABLED },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (auth_with(f, cases[i].mode, cases[i].key, cases[i].headers,
                      cases[i].query) != cases[i].want)
            fail_msg("case %zu", i);
    f->cfg.dataverse_webhook.auth = "header";
    f->cfg.dataverse_webhook.key = "k3y";
    assert_int_equal(dv_webhook_auth_check(f->wh, NULL),
                     DV_WEBHOOK_AUTH_UNAUTHORIZED);
}

static void test_dv_webhook__auth_named_parameter(void **state)
{
    struct fixture *f = *state;

    f->cfg.dataverse_webhook.query_name = "sig";
    assert_int_equal(auth_with(f, "querystring", "k", "{}", "{\"sig\":\"k\"}"),
                     DV_WEBHOOK_AUTH_OK);
    assert_int_equal(auth_with(f, "querystring", "k", "{}", "{\"key\":\"k\"}"),
                     DV_WEBHOOK_AUTH_UNAUTHORIZED);
    f->cfg.dataverse_webhook.header_name = "X-Api-Key";
    assert_int_equal(auth_with(f, "header", "k", "{\"x-api-key\":\"k\"}", "{}"),
                     DV_WEBHOOK_AUTH_OK);
}

/* ---- applying
 * ----------------------------------------------------------------
 */

static void apply_capture(struct fixture *f, const char *name,
                          enum dv_webhook_outcome want)
{
    struct dv_webhook_event *ev = parse_capture(f, name);

    apply_ok(f, ev, want);
    dv_webhook_event_free(ev);
}

static void test_dv_webhook__apply_create(void **state)
{
    struct fixture *f = *state;
    long long before = ledger_count(f);
    char *src;

    apply_capture(f, "number_create_async", DV_WEBHOOK_APPLIED);
    assert_int_equal(status_of(f, NUM_NEW), CONSENT_SINGLE_OPT_IN);
    src =
        query1_text(f->c, "SELECT e164 FROM numbers WHERE dv_id = ?1", NUM_NEW);
    assert_string_equal(src, "+491701234567");
    free(src);
    assert_int_equal(ledger_count(f), before + 1);
    src = query1_text(f->c, "SELECT source FROM ledger WHERE phone = ?1",
                      "+491701234567");
    assert_string_equal(src, "dataverse_webhook");
    free(src);
    /* the same delivery again: recorded once */
    apply_capture(f, "number_create_async", DV_WEBHOOK_DUPLICATE);
    assert_int_equal(ledger_count(f), before + 1);
}

static void test_dv_webhook__apply_update_with_images(void **state)
{
    struct fixture *f = *state;
    long long before = ledger_count(f);
    struct dv_webhook_event *ev =
        parse_capture(f, "number_update_async_images");

    assert_int_equal(status_of(f, NUM(2)), CONSENT_OPTED_OUT);
    apply_ok(f, ev, DV_WEBHOOK_APPLIED);
    assert_int_equal(status_of(f, NUM(2)), CONSENT_SINGLE_OPT_IN);
    assert_int_equal(query1(f->c,
                            "SELECT version FROM numbers WHERE "
                            "dv_id = ?1",
                            NUM(2)),
                     ev->version);
    assert_int_equal(ledger_count(f), before + 1);
    assert_int_equal(query1(f->c,
                            "SELECT from_status FROM ledger WHERE "
                            "seq = (SELECT max(seq) FROM ledger) AND "
                            "source = ?1",
                            "dataverse_webhook"),
                     CONSENT_OPTED_OUT);
    dv_webhook_event_free(ev);
}

static void test_dv_webhook__apply_deactivate(void **state)
{
    struct fixture *f = *state;

    apply_capture(f, "number_update_async_deactivate", DV_WEBHOOK_APPLIED);
    assert_int_equal(
        query1(f->c, "SELECT active FROM numbers WHERE dv_id = ?1", NUM(3)), 0);
}

static void test_dv_webhook__apply_hints_queue(void **state)
{
    struct fixture *f = *state;
    long long before = ledger_count(f);

    apply_capture(f, "number_update_async", DV_WEBHOOK_QUEUED);
    apply_capture(f, "number_update_trimmed", DV_WEBHOOK_QUEUED);
    assert_int_equal(queued(f, "number", NUM(1)), 1);
    assert_int_equal(query1(f->c,
                            "SELECT generation FROM dv_refetch WHERE "
                            "dv_id = ?1",
                            NUM(1)),
                     2); /* one row, bumped */
    assert_int_equal(query1(f->c,
                            "SELECT next_attempt_at FROM dv_refetch "
                            "WHERE dv_id = ?1",
                            NUM(1)),
                     NOW);
    /* a sync step's change may still roll back: read it a little later */
    apply_capture(f, "number_update_sync", DV_WEBHOOK_QUEUED);
    assert_int_equal(query1(f->c,
                            "SELECT next_attempt_at FROM dv_refetch "
                            "WHERE dv_id = ?1",
                            NUM(3)),
                     NOW + DV_REFETCH_UNCOMMITTED_DELAY_MS);
    apply_capture(f, "configuration_update_async", DV_WEBHOOK_QUEUED);
    assert_int_equal(queued(f, "configuration", CFG_A), 1);
    /* nothing applied from any of them */
    assert_int_equal(status_of(f, NUM(1)), CONSENT_DOUBLE_OPT_IN);
    assert_int_equal(status_of(f, NUM(3)), CONSENT_SINGLE_OPT_IN);
    assert_int_equal(ledger_count(f), before);
}

/* A complete async Update of a number (Target + a post image with every
 * column); version 0 leaves versionnumber out.  Each call is a new
 * system job (OperationId). */
static struct dv_webhook_event *number_event(struct fixture *f, const char *id,
                                             const char *cfg, int status,
                                             int64_t modified, int64_t version)
{
    static int job;
    char *version_attr =
        version ? xasprintf(",{\"key\":\"versionnumber\",\"value\":%lld}",
                            (long long)version)
                : xstrdup("");
    char *body = xasprintf(
        "{\"MessageName\":\"Update\",\"Mode\":1,\"Stage\":40,\"Depth\":1,"
        "\"PrimaryEntityName\":\"inogic_optinoptoutnumber\","
        "\"PrimaryEntityId\":\"%s\","
        "\"CorrelationId\":\"b374239d-4233-41a9-8b17-a86cb4f737b5\","
        "\"OperationId\":\"c374239d-4233-41a9-8b17-%012d\","
        "\"OperationCreatedOn\":\"\\/Date(%lld+0000)\\/\","
        "\"InputParameters\":[{\"key\":\"Target\",\"value\":{\"__type\":"
        "\"Entity" CT "\",\"Id\":\"%s\",\"Attributes\":["
        "{\"key\":\"inogic_optinstatus\",\"value\":{\"__type\":"
        "\"OptionSetValue" CT "\",\"Value\":%d}},"
        "{\"key\":\"modifiedon\",\"value\":\"\\/Date(%lld)\\/\"}]}}],"
        "\"PostEntityImages\":[{\"key\":\"PostImage\",\"value\":{"
        "\"Attributes\":[{\"key\":\"inogic_configurationid\",\"value\":{"
        "\"__type\":\"EntityReference" CT "\",\"Id\":\"%s\",\"LogicalName\":"
        "\"inogic_configuration\"}},"
        "{\"key\":\"inogic_phonenumber\",\"value\":\"+49 151 2345 6789\"},"
        "{\"key\":\"inogic_optinstatus\",\"value\":{\"__type\":"
        "\"OptionSetValue" CT "\",\"Value\":%d}},"
        "{\"key\":\"statecode\",\"value\":{\"__type\":\"OptionSetValue" CT
        "\",\"Value\":0}}%s]}}]}",
        id, ++job, (long long)modified, id, status, (long long)modified, cfg,
        status, version_attr);
    struct dv_webhook_event *ev = parse_text(f, body);

    assert_int_equal(ev->hint, DV_WEBHOOK_HINT_NONE);
    free(version_attr);
    free(body);
    return ev;
}

static void apply_number(struct fixture *f, const char *id, const char *cfg,
                         int status, int64_t modified, int64_t version,
                         enum dv_webhook_outcome want)
{
    struct dv_webhook_event *ev =
        number_event(f, id, cfg, status, modified, version);

    apply_ok(f, ev, want);
    dv_webhook_event_free(ev);
}

#define T(day) (SYNCED_AT + (int64_t)(day)*86400000)

static void test_dv_webhook__order_by_version(void **state)
{
    struct fixture *f = *state;

    /* NUM(1) was synced at version 1 */
    apply_number(f, NUM(1), CFG_A, OPTED_OUT, T(2), 50, DV_WEBHOOK_APPLIED);
    assert_int_equal(status_of(f, NUM(1)), CONSENT_OPTED_OUT);
    /* an older job delivered late: older version, however it is timed */
    apply_number(f, NUM(1), CFG_A, SINGLE, T(3), 40, DV_WEBHOOK_STALE);
    apply_number(f, NUM(1), CFG_A, SINGLE, T(2), 50, DV_WEBHOOK_STALE);
    assert_int_equal(status_of(f, NUM(1)), CONSENT_OPTED_OUT);
    apply_number(f, NUM(1), CFG_A, DOUBLE, T(1), 60, DV_WEBHOOK_APPLIED);
    assert_int_equal(status_of(f, NUM(1)), CONSENT_DOUBLE_OPT_IN);
}

static void test_dv_webhook__order_by_time(void **state)
{
    struct fixture *f = *state;

    /* without versions, modifiedon decides; a tie is for a read */
    apply_number(f, NUM(2), CFG_A, SINGLE, T(2), 0, DV_WEBHOOK_APPLIED);
    assert_int_equal(query1(f->c,
                            "SELECT version FROM numbers WHERE "
                            "dv_id = ?1",
                            NUM(2)),
                     -1);
    apply_number(f, NUM(2), CFG_A, OPTED_OUT, T(1), 0, DV_WEBHOOK_STALE);
    apply_number(f, NUM(2), CFG_A, OPTED_OUT, T(2), 0, DV_WEBHOOK_QUEUED);
    assert_int_equal(status_of(f, NUM(2)), CONSENT_SINGLE_OPT_IN);
    assert_int_equal(queued(f, "number", NUM(2)), 1);
    apply_number(f, NUM(2), CFG_A, OPTED_OUT, T(3), 77, DV_WEBHOOK_APPLIED);
    assert_int_equal(status_of(f, NUM(2)), CONSENT_OPTED_OUT);
}

static void test_dv_webhook__order_not_cached(void **state)
{
    struct fixture *f = *state;

    /* older than the last successful sync yet not cached: deleted or
     * unlinked since, or the sync would have it — read it again */
    apply_number(f, NUM(7), CFG_A, SINGLE,
                 SYNCED_AT - DV_WEBHOOK_CLOCK_MARGIN_MS - 1000, 9,
                 DV_WEBHOOK_QUEUED);
    assert_int_equal(status_of(f, NUM(7)), -2);
    assert_int_equal(queued(f, "number", NUM(7)), 1);
    apply_number(f, NUM(8), CFG_A, SINGLE, SYNCED_AT + 1000, 9,
                 DV_WEBHOOK_APPLIED);
    assert_int_equal(status_of(f, NUM(8)), CONSENT_SINGLE_OPT_IN);
    /* modifiedon cut to the second, a change made as the sync started */
    apply_number(f, NUM(9), CFG_A, SINGLE, SYNCED_AT - 999, 9,
                 DV_WEBHOOK_APPLIED);
}

static void test_dv_webhook__apply_configuration_not_cached(void **state)
{
    struct fixture *f = *state;
    long long before = ledger_count(f);

    apply_number(f, NUM(9), CFG_NEW, SINGLE, T(1), 9, DV_WEBHOOK_QUEUED);
    assert_int_equal(status_of(f, NUM(9)), -2);
    assert_int_equal(queued(f, "number", NUM(9)), 1);
    assert_int_equal(queued(f, "configuration", CFG_NEW), 1);
    assert_int_equal(ledger_count(f), before);
}

static void test_dv_webhook__apply_delete(void **state)
{
    struct fixture *f = *state;
    long long before = ledger_count(f);
    struct dv_webhook_event *ev = parse_capture(f, "number_delete_async");
    int64_t deleted_at = ev->operation_at;

    apply_ok(f, ev, DV_WEBHOOK_REMOVED);
    dv_webhook_event_free(ev);
    assert_int_equal(status_of(f, NUM(5)), -2);
    assert_int_equal(ledger_count(f), before + 1); /* single → none */
    assert_int_equal(query1(f->c,
                            "SELECT deleted_at FROM "
                            "dv_webhook_tombstones WHERE dv_id = ?1",
                            NUM(5)),
                     deleted_at);
    /* a late update made before the delete does not bring it back; one
     * made after it (the id reused) does */
    apply_number(f, NUM(5), CFG_B, SINGLE, deleted_at - 1000, 99,
                 DV_WEBHOOK_STALE);
    assert_int_equal(status_of(f, NUM(5)), -2);
    apply_number(f, NUM(5), CFG_B, SINGLE, deleted_at + 1000, 99,
                 DV_WEBHOOK_APPLIED);
    assert_int_equal(status_of(f, NUM(5)), CONSENT_SINGLE_OPT_IN);
    /* deleting a row the cache does not have is no error */
    apply_capture(f, "number_delete_async_preimage", DV_WEBHOOK_REMOVED);
    apply_capture(f, "number_delete_async_preimage", DV_WEBHOOK_DUPLICATE);
    assert_int_equal(status_of(f, NUM(2)), -2);
}

static void test_dv_webhook__apply_cascade_unlinks(void **state)
{
    struct fixture *f = *state;

    put_configuration(f, CFG_NEW, "WA Promo", "FR");
    put_number(f, NUM_NEW2, CFG_NEW, "+49 170 1234567", SINGLE, 1,
               "2025-02-20T10:00:00Z");
    assert_int_equal(status_of(f, NUM_NEW2), CONSENT_SINGLE_OPT_IN);
    apply_capture(f, "number_update_cascade", DV_WEBHOOK_APPLIED);
    assert_int_equal(status_of(f, NUM_NEW2), -2);
    apply_capture(f, "configuration_delete_async", DV_WEBHOOK_REMOVED);
    assert_int_equal(query1(f->c,
                            "SELECT count(*) FROM configurations "
                            "WHERE id = ?1",
                            CFG_NEW),
                     0);
}

static void test_dv_webhook__apply_configuration(void **state)
{
    struct fixture *f = *state;
    char *name;

    apply_capture(f, "configuration_update_async_postimage",
                  DV_WEBHOOK_APPLIED);
    name = query1_text(f->c,
                       "SELECT name || '/' || default_region || '/' || "
                       "double_opt_in FROM configurations WHERE id = ?1",
                       CFG_A);
    assert_string_equal(name, "WA Main DE/49/1");
    free(name);
    /* the version the body carried; an older one is stale */
    apply_capture(f, "configuration_update_async_postimage",
                  DV_WEBHOOK_DUPLICATE);
    apply_capture(f, "configuration_create_async_postimage", DV_WEBHOOK_QUEUED);
    assert_int_equal(queued(f, "configuration", CFG_NEW), 1);
}

static void test_dv_webhook__apply_alt_mapping(void **state)
{
    struct fixture *f = *state;

    apply_capture(f, "alt_number_create_async_postimage", DV_WEBHOOK_APPLIED);
    assert_int_equal(status_of(f, NUM_NEW), CONSENT_SINGLE_OPT_IN);
    assert_int_equal(query1(f->c,
                            "SELECT paused_until FROM numbers WHERE "
                            "dv_id = ?1",
                            NUM_NEW),
                     1740817800000LL);
    apply_capture(f, "alt_number_update_async", DV_WEBHOOK_QUEUED);
    assert_int_equal(queued(f, "number", NUM(1)), 1);
}

/* A failing disk: the route answers 503 and nothing of the event stays,
 * so Dataverse's retry is applied, not taken for a duplicate. */
static void test_dv_webhook__apply_rolls_back(void **state)
{
    struct fixture *f = *state;
    struct dv_webhook_event *ev =
        parse_capture(f, "number_update_async_images");
    long long before = ledger_count(f);
    struct dv_webhook_result r;
    long n;
    int rc;

    for (n = 1; n < 40; n++) {
        fault_arm(FAULT_SQLITE_STEP, n, SQLITE_FULL, 0);
        rc = dv_webhook_apply(&r, f->wh, f->c, ev);
        fault_disarm_all();
        if (rc == 0)
            break;
        assert_int_equal(status_of(f, NUM(2)), CONSENT_OPTED_OUT);
        assert_int_equal(ledger_count(f), before);
        assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM "
                                                  "inbound_seen"),
                         0);
    }
    assert_true(n > 3); /* it did fail, several steps in */
    assert_int_equal(r.outcome, DV_WEBHOOK_APPLIED);
    assert_int_equal(status_of(f, NUM(2)), CONSENT_SINGLE_OPT_IN);
    assert_int_equal(ledger_count(f), before + 1);
    dv_webhook_event_free(ev);
}

/* The listener's group-commit writer: one transaction, a savepoint per
 * item, fn(cache, payload). */
static void test_dv_webhook__item_in_a_savepoint(void **state)
{
    struct fixture *f = *state;
    struct dv_webhook_item item = { f->wh, NULL, { 0 } };

    item.ev = parse_capture(f, "number_delete_async");
    assert_int_equal(cache_begin(f->c), 0);
    assert_int_equal(cache_exec(f->c, "SAVEPOINT item"), 0);
    assert_int_equal(dv_webhook_item_apply(f->c, &item), 0);
    assert_int_equal(item.result.outcome, DV_WEBHOOK_REMOVED);
    assert_int_equal(cache_exec(f->c, "ROLLBACK TO item"), 0);
    assert_int_equal(cache_exec(f->c, "RELEASE item"), 0);
    assert_int_equal(cache_commit(f->c), 0);
    assert_int_equal(status_of(f, NUM(5)), CONSENT_SINGLE_OPT_IN);
    assert_int_equal(cache_begin(f->c), 0);
    assert_int_equal(dv_webhook_item_apply(f->c, &item), 0);
    assert_int_equal(cache_commit(f->c), 0);
    assert_int_equal(item.result.outcome, DV_WEBHOOK_REMOVED);
    assert_int_equal(status_of(f, NUM(5)), -2);
    dv_webhook_event_free((struct dv_webhook_event *)(uintptr_t)item.ev);
}

static void test_dv_webhook__prune(void **state)
{
    struct fixture *f = *state;

    apply_capture(f, "number_delete_async", DV_WEBHOOK_REMOVED);
    assert_int_equal(cache_exec(f->c, "INSERT INTO inbound_seen VALUES "
                                      "('whatsapp', 'wamid.1', 0)"),
                     0);
    assert_int_equal(dv_webhook_prune(f->c, NOW), 0); /* nothing older */
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM "
                                              "inbound_seen"),
                     2);
    assert_int_equal(dv_webhook_prune(f->c, NOW + 1), 0);
    /* ours went; the tombstone (Dataverse's time) too; WhatsApp's stays */
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM "
                                              "inbound_seen"),
                     1);
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM "
                                              "dv_webhook_tombstones"),
                     0);
}

static void test_dv_webhook__queue_generations(void **state)
{
    struct fixture *f = *state;
    int64_t next = 0;
    int count = -1;

    assert_int_equal(dv_webhook_refetch_pending(&count, &next, f->c), 0);
    assert_int_equal(count, 0);
    assert_int_equal(next, 0);
    assert_int_equal(cache_begin(f->c), 0);
    assert_int_equal(
        dv_webhook_refetch_queue(f->c, DV_NUMBER, NUM(1), "a", 5000), 0);
    /* a later hint keeps the later due time (never reads earlier) */
    assert_int_equal(dv_webhook_refetch_queue(f->c, DV_NUMBER, NUM(1), "b", 0),
                     0);
    assert_int_equal(
        dv_webhook_refetch_queue(f->c, DV_CONFIGURATION, CFG_A, "c", 0), 0);
    assert_int_equal(cache_commit(f->c), 0);
    assert_int_equal(dv_webhook_refetch_pending(&count, &next, f->c), 0);
    assert_int_equal(count, 2);
    assert_int_equal(next, NOW);
    assert_int_equal(query1(f->c,
                            "SELECT next_attempt_at FROM dv_refetch "
                            "WHERE dv_id = ?1",
                            NUM(1)),
                     NOW + 5000);
    assert_int_equal(query1(f->c,
                            "SELECT generation FROM dv_refetch WHERE "
                            "dv_id = ?1",
                            NUM(1)),
                     2);
}

static void test_dv_webhook__outcome_names(void **state)
{
    (void)state;
    assert_string_equal(dv_webhook_outcome_name(DV_WEBHOOK_APPLIED), "applied");
    assert_string_equal(dv_webhook_outcome_name(DV_WEBHOOK_SKIPPED), "skipped");
    assert_string_equal(dv_webhook_outcome_name(DV_WEBHOOK_OUTCOME_COUNT),
                        "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dv_webhook__date_forms),
        cmocka_unit_test_setup_teardown(test_dv_webhook__parse_number_create,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_dv_webhook__parse_number_update_images, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__parse_hints, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__parse_sync_context,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__parse_trimmed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__parse_deletes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__parse_cascade, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__parse_configuration,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__parse_alt_mapping,
                                        setup_alt, teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__parse_value_types,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_dv_webhook__parse_last_duplicate_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__parse_other_message,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_dv_webhook__parse_mode_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_dv_webhook__parse_create_id_from_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__parse_malformed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_dv_webhook__parse_headers_must_agree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__parse_caps, setup,
                                        teardown),
        cmocka_unit_test(test_dv_webhook__headers_read),
        cmocka_unit_test_setup_teardown(test_dv_webhook__auth_modes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__auth_named_parameter,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__apply_create, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_dv_webhook__apply_update_with_images, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__apply_deactivate,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__apply_hints_queue,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__order_by_version,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__order_by_time, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__order_not_cached,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_dv_webhook__apply_configuration_not_cached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__apply_delete, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__apply_cascade_unlinks,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__apply_configuration,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__apply_alt_mapping,
                                        setup_alt, teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__apply_rolls_back,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__item_in_a_savepoint,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__prune, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dv_webhook__queue_generations,
                                        setup, teardown),
        cmocka_unit_test(test_dv_webhook__outcome_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
