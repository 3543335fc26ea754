/*
 * test_outbox — the write-back worker against the emulator (real HTTP on
 * loopback, a real SQLite cache): a local opt-out reaches the row under
 * its Configuration; an unknown number is created in the Configuration's
 * Related view; our write returning through a delta is no transition
 * (also while its answer was lost); 412 races with an admin edit resolved
 * by the rule both ways; a lost create answer and a new worker make one
 * row; 5xx and dropped connections beyond max_backoff; dead letters and
 * retry; 429 storms without a single early retry; a $batch with mixed
 * part results; several rows holding one number; the alternate-key
 * mapping.  Tests wait on the emulator's conditions, never on sleeps.
 *
 * ctest-labels: quick;integration
 * ctest-timeout: 600
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "clock.h"
#include "consent.h"
#include "dataverse.h"
#include "emulator_control.h"
#include "fault.h"
#include "jsonutil.h"
#include "log.h"
#include "outbox.h"
#include "sync.h"
#include "testutil.h"
#include "xalloc.h"

#define CFG1 "6a1c0d6e-0000-0000-0000-000000000001"
#define CFG2 "6a1c0d6e-0000-0000-0000-000000000002"
#define N1 "3f2e0000-0000-0000-0000-000000000001"
#define N2 "3f2e0000-0000-0000-0000-000000000002"
#define N3 "3f2e0000-0000-0000-0000-000000000003"
#define N4 "3f2e0000-0000-0000-0000-000000000004"
#define P1 "+4915123456701"
#define P2 "+4915123456702"
#define P4 "+4915123456704"
#define PNEW "+4915123456799"
#define HOUR (3600 * 1000LL)

static const char seed[] =
    "{\"format\":\"optsync-emulator-seed/1\",\"configurations\":["
    "{\"id\":\"" CFG1 "\",\"name\":\"WA Main\",\"double_opt_in\":false,"
    "\"default_region\":\"DE\"},"
    "{\"id\":\"" CFG2 "\",\"name\":\"WA Second\",\"double_opt_in\":false,"
    "\"default_region\":\"DE\"}],\"numbers\":["
    "{\"id\":\"" N1 "\",\"configuration\":\"" CFG1 "\",\"phone\":"
    "\"+49 151 23456701\",\"status\":\"single_opt_in\","
    "\"modified_on\":\"2025-01-01T00:00:00Z\"},"
    "{\"id\":\"" N2 "\",\"configuration\":\"" CFG1 "\",\"phone\":"
    "\"+49 151 23456702\",\"status\":\"double_opt_in\","
    "\"modified_on\":\"2025-01-01T00:00:00Z\"},"
    "{\"id\":\"" N3 "\",\"configuration\":\"" CFG1 "\",\"phone\":"
    "\"0151 23456702\",\"status\":\"double_opt_in\","
    "\"modified_on\":\"2025-01-01T00:00:00Z\"},"
    "{\"id\":\"" N4 "\",\"configuration\":\"" CFG2 "\",\"phone\":"
    "\"+49 151 23456704\",\"status\":\"single_opt_in\","
    "\"modified_on\":\"2025-01-01T00:00:00Z\"}]}";

struct fixture {
    char *dir;
    struct emulator_proc emu;
    struct optsync_config *cfg;
    struct mapping *m;
    cache *c;
    struct http_throttle *throttle;
    http *token_http;
    auth *a;
    struct consent_options copts;
};

static struct mapping *load_mapping(const char *rel)
{
    char *path = testutil_source_path(rel);
    size_t len;
    char *text = testutil_read(path, &len);
    struct mapping_problems p = { 0 };
    struct mapping *m = NULL;

    assert_int_equal(mapping_load(&m, text, len, &p), 0);
    mapping_problems_dispose(&p);
    free(text);
    free(path);
    return m;
}

static int setup_with(void **state, const char *mapping_rel)
{
    if (getenv("OPTSYNC_TEST_DEBUG"))
        log_level_current = LOG_DEBUG;
    struct fixture *f = xcalloc(1, sizeof(*f));
    struct http_options o = HTTP_OPTIONS_INIT;
    char *seed_path, *mapping_path, *cache_path, *mapping_ov, *cache_ov;
    const char *args[] = { "--seed", NULL, "--mapping", NULL, "--quiet", NULL };
    const char *ov[4];

    f->dir = testutil_tmpdir();
    seed_path = testutil_write(f->dir, "seed.json", seed, 0600);
    mapping_path = testutil_source_path(mapping_rel);
    args[1] = seed_path;
    args[3] = mapping_path;
    assert_int_equal(emulator_start(&f->emu, args), 0);
    cache_path = xasprintf("%s/cache.db", f->dir);
    cache_ov = xasprintf("cache.path=%s", cache_path);
    mapping_ov = xasprintf("mapping.file=%s", mapping_path);
    ov[0] = cache_ov;
    ov[1] = mapping_ov;
    ov[2] = "outbox.max_backoff=1s";
    ov[3] = NULL;
    f->cfg = emulator_config(&f->emu, ov);
    f->m = load_mapping(mapping_rel);
    assert_int_equal(cache_open(&f->c, cache_path, 0), 0);
    f->throttle = http_throttle_new();
    o.throttle = f->throttle;
    assert_int_equal(http_new(&f->token_http, &o), 0);
    assert_int_equal(auth_new(&f->a, f->cfg, f->token_http), 0);
    consent_options_init(&f->copts, f->cfg, f->m);
    free(seed_path);
    free(mapping_path);
    free(cache_path);
    free(cache_ov);
    free(mapping_ov);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, "mapping/whatsapp4dynamics.json");
}

static int setup_alt(void **state)
{
    return setup_with(state, "tests/data/mapping_alt.json");
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    clock_set_fixed(0);
    auth_free(f->a);
    http_free(f->token_http);
    http_throttle_free(f->throttle);
    cache_close(f->c);
    mapping_free(f->m);
    config_free(f->cfg);
    emulator_stop(&f->emu);
    testutil_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* ---- helpers ----------------------------------------------------------- */

static void sync_once(struct fixture *f)
{
    struct sync_options so;
    struct sync_result r;
    syncer *s = NULL;

    memset(&so, 0, sizeof(so));
    assert_int_equal(syncer_new(&s, f->cfg, f->m, f->c, f->a, f->throttle), 0);
    assert_int_equal(sync_run(&r, s, &so), 0);
    syncer_free(s);
}

static enum consent_outcome express(struct fixture *f, const char *cfg,
                                    const char *e164,
                                    enum consent_action action, int64_t at)
{
    struct consent_event ev;
    struct consent_result r;

    memset(&ev, 0, sizeof(ev));
    ev.configuration_id = cfg;
    ev.e164 = e164;
    ev.action = action;
    ev.event_at = at;
    ev.source = CONSENT_SOURCE_WHATSAPP;
    assert_int_equal(consent_apply(&r, f->c, &f->copts, &ev), 0);
    return r.outcome;
}

static outbox *worker(struct fixture *f, int64_t drain_wait_ms)
{
    struct outbox_options o;
    outbox *ob = NULL;

    outbox_options_from_config(&o, f->cfg);
    o.base_backoff_ms = 50;
    o.max_attempts = 40;
    o.drain_wait_ms = drain_wait_ms;
    assert_int_equal(outbox_new(&ob, f->cfg, f->m, f->c, f->a, f->throttle, &o),
                     0);
    return ob;
}

/* One drain with a fresh worker; returns its stats. */
static struct outbox_stats drain(struct fixture *f, int64_t wait_ms)
{
    struct outbox_stats st;
    outbox *ob = worker(f, wait_ms);

    assert_int_equal(outbox_drain(&st, ob), 0);
    outbox_free(ob);
    return st;
}

static long long q(struct fixture *f, const char *sql)
{
    return testutil_query_int(f->c, sql);
}

static cJSON *control_json(struct fixture *f, const char *method,
                           const char *route, const char *body, long expect)
{
    char *out = NULL;
    long st = emulator_control(&f->emu, method, route, body, &out);
    cJSON *doc;

    if (st != expect)
        fail_msg("%s %s: HTTP %ld: %s", method, route, st, out ? out : "");
    doc = cJSON_Parse(out ? out : "null");
    free(out);
    return doc;
}

static void add_fault(struct fixture *f, const char *json)
{
    cJSON_Delete(control_json(f, "POST", "faults", json, 201));
}

/* The emulator's row `id` as role-keyed JSON (control API). */
static cJSON *emu_row(struct fixture *f, const char *id)
{
    char *route = xasprintf("admin/number/%s", id);
    cJSON *doc = control_json(f, "GET", route, NULL, 200), *row;

    free(route);
    row = cJSON_DetachItemFromObject(doc, "row");
    cJSON_Delete(doc);
    return row;
}

static void assert_emu_status(struct fixture *f, const char *id,
                              const char *status)
{
    cJSON *row = emu_row(f, id);

    assert_string_equal(jsonutil_str(row, "status"), status);
    cJSON_Delete(row);
}

/* Rows of the emulator holding `phone` in configuration `cfg`. */
static int emu_count(struct fixture *f, const char *cfg, const char *phone,
                     char *id_out)
{
    cJSON *doc = control_json(f, "GET", "state?table=number", NULL, 200);
    const cJSON *row;
    int n = 0;

    cJSON_ArrayForEach(row, cJSON_GetObjectItem(doc, "numbers"))
    {
        const char *c = jsonutil_str(row, "configuration");
        const char *p = jsonutil_str(row, "phone");

        if (c && p && strcmp(c, cfg) == 0 && strcmp(p, phone) == 0) {
            if (id_out)
                snprintf(id_out, MAPPING_GUID_LEN + 1, "%s",
                         jsonutil_str(row, "id"));
            n++;
        }
    }
    cJSON_Delete(doc);
    return n;
}

static long long counter(struct fixture *f, const char *name)
{
    cJSON *doc = control_json(f, "GET", "counters", NULL, 200);
    const cJSON *v = cJSON_GetObjectItem(doc, name);
    long long n = cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;

    cJSON_Delete(doc);
    return n;
}

/* Answers with HTTP `status` so far. */
static long long responses(struct fixture *f, const char *status)
{
    cJSON *doc = control_json(f, "GET", "counters", NULL, 200);
    long long n =
        jsonutil_int(cJSON_GetObjectItem(doc, "responses"), status, 0);

    cJSON_Delete(doc);
    return n;
}

/* How often the injected faults fired, in all. */
static long long faults_fired(struct fixture *f)
{
    cJSON *doc = control_json(f, "GET", "faults", NULL, 200);
    const cJSON *fault;
    long long n = 0;

    cJSON_ArrayForEach(fault, cJSON_GetObjectItem(doc, "faults"))
    {
        n += jsonutil_int(fault, "fired", 0);
    }
    cJSON_Delete(doc);
    return n;
}

/* ---- the tests ------------------------------------------------------------
 */

static void test_outbox__opt_out_reaches_the_row(void **state)
{
    struct fixture *f = *state;
    struct outbox_stats st;
    cJSON *row;

    sync_once(f);
    assert_int_equal(express(f, CFG2, P4, CONSENT_ACT_OPT_OUT, clock_now_ms()),
                     CONSENT_CHANGED);
    st = drain(f, 0);
    assert_int_equal(st.written, 1);
    assert_int_equal(st.requests, 1);
    row = emu_row(f, N4);
    assert_string_equal(jsonutil_str(row, "status"), "opted_out");
    assert_string_equal(jsonutil_str(row, "configuration"), CFG2);
    assert_string_equal(jsonutil_str(row, "source"), "whatsapp");
    cJSON_Delete(row);
    assert_int_equal(q(f, "SELECT count(*) FROM numbers WHERE dv_id = '" N4
                          "' AND dv_status = 3 AND pending_writeback = 0"),
                     1);
    assert_int_equal(q(f, "SELECT count(*) FROM outbox WHERE state = 'done' "
                          "AND dv_id = '" N4 "'"),
                     1);
}

/* GET {configurations}({cfg})/{relationship}: the admin's Related view. */
static int related_has(struct fixture *f, const char *cfg, const char *phone)
{
    struct http_options o = HTTP_OPTIONS_INIT;
    struct http_response resp;
    struct http_request req;
    const char *headers[3];
    char *authz = NULL, *url;
    http *h = NULL;
    cJSON *doc;
    const cJSON *row;
    int found = 0;

    url = xasprintf("%s/api/data/v9.2/%s(%s)/%s", f->emu.base_url,
                    f->m->configuration.entity_set, cfg,
                    f->m->number.relationship);
    assert_int_equal(http_new(&h, &o), 0);
    assert_int_equal(auth_header(&authz, f->a), 0);
    headers[0] = authz;
    headers[1] = "Accept: application/json";
    headers[2] = NULL;
    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.url = url;
    req.headers = headers;
    req.max_response = 1 << 24;
    http_response_init(&resp);
    assert_int_equal(http_send(&resp, h, &req), 0);
    assert_int_equal(resp.status, 200);
    doc = cJSON_Parse(resp.body.data);
    cJSON_ArrayForEach(row, cJSON_GetObjectItem(doc, "value"))
    {
        const char *p = jsonutil_str(row, f->m->number.phone);

        found += p && strcmp(p, phone) == 0;
    }
    cJSON_Delete(doc);
    http_response_dispose(&resp);
    xfree_secret(authz);
    http_free(h);
    free(url);
    return found;
}

static void test_outbox__unknown_number_is_created(void **state)
{
    struct fixture *f = *state;
    char id[MAPPING_GUID_LEN + 1], expect[MAPPING_GUID_LEN + 1];
    struct outbox_stats st;
    cJSON *row;

    sync_once(f);
    express(f, CFG1, PNEW, CONSENT_ACT_OPT_IN, clock_now_ms());
    st = drain(f, 0);
    assert_int_equal(st.written, 1);
    assert_int_equal(emu_count(f, CFG1, PNEW, id), 1);
    dataverse_number_default_id(expect, CFG1, PNEW);
    assert_string_equal(id, expect);
    row = emu_row(f, id);
    assert_string_equal(jsonutil_str(row, "status"), "single_opt_in");
    assert_string_equal(jsonutil_str(row, "name"), PNEW);
    cJSON_Delete(row);
    assert_int_equal(related_has(f, CFG1, PNEW), 1);
    assert_int_equal(related_has(f, CFG2, PNEW), 0);
    /* The cache row got the new id; a sync changes nothing. */
    assert_int_equal(q(f, "SELECT count(*) FROM numbers WHERE e164 = '" PNEW
                          "' AND dv_id IS NOT NULL AND dv_status = 1"),
                     1);
    sync_once(f);
    assert_int_equal(
        q(f, "SELECT count(*) FROM numbers WHERE e164 = '" PNEW "'"), 1);
}

static void test_outbox__echo_is_no_transition(void **state)
{
    struct fixture *f = *state;
    long long ledger;

    sync_once(f);
    express(f, CFG1, P1, CONSENT_ACT_OPT_OUT, clock_now_ms());
    express(f, CFG1, PNEW, CONSENT_ACT_OPT_IN, clock_now_ms());
    assert_int_equal(drain(f, 0).written, 2);
    ledger = q(f, "SELECT count FROM ledger_head");
    /* The delta brings both rows back, as we wrote them. */
    sync_once(f);
    assert_int_equal(q(f, "SELECT count FROM ledger_head"), ledger);
    assert_int_equal(q(f, "SELECT count(*) FROM outbox WHERE state IN "
                          "('pending', 'inflight')"),
                     0);
    assert_int_equal(q(f, "SELECT status FROM numbers WHERE dv_id = '" N1 "'"),
                     CONSENT_OPTED_OUT);
    /* An admin edit of another column later is no expression either. */
    cJSON_Delete(control_json(f, "PATCH", "admin/number/" N1,
                              "{\"name\":\"renamed\"}", 200));
    sync_once(f);
    assert_int_equal(q(f, "SELECT count FROM ledger_head"), ledger);
}

/*
 * The hard echo: an opt-in is written but its answer is lost; an opt-out
 * arrives meanwhile, dated before Dataverse committed the opt-in.  The
 * delta then shows our opt-in with a newer modifiedon: it is our own
 * write (sent_mask), not an admin's newer opt-in, so the opt-out stands.
 */
static void test_outbox__echo_of_a_lost_answer(void **state)
{
    struct fixture *f = *state;
    int64_t t0 = clock_now_ms();
    long long ledger;

    sync_once(f);
    express(f, CFG1, PNEW, CONSENT_ACT_OPT_IN, t0);
    add_fault(f, "{\"type\":\"lost_response\",\"match\":{\"kind\":"
                 "[\"write\",\"batch\"]},\"count\":1}");
    assert_int_equal(drain(f, 0).retried, 1);
    assert_int_equal(emu_count(f, CFG1, PNEW, NULL), 1); /* it landed */
    express(f, CFG1, PNEW, CONSENT_ACT_OPT_OUT, t0 + 1);
    ledger = q(f, "SELECT count FROM ledger_head");
    sync_once(f);
    assert_int_equal(q(f, "SELECT count FROM ledger_head"), ledger);
    assert_int_equal(q(f, "SELECT status FROM numbers WHERE e164 = '" PNEW "'"),
                     CONSENT_OPTED_OUT);
    assert_int_equal(
        q(f, "SELECT count(*) FROM numbers WHERE e164 = '" PNEW "'"),
        1); /* the delta's row was adopted, not added */
    assert_int_equal(drain(f, 5000).written, 1);
    assert_int_equal(emu_count(f, CFG1, PNEW, NULL), 1);
    {
        char id[MAPPING_GUID_LEN + 1];

        emu_count(f, CFG1, PNEW, id);
        assert_emu_status(f, id, "opted_out");
    }
}

/* An admin saves the row between our read and our write: 412. */
static void admin_edit_trap(struct fixture *f, const char *id,
                            const char *status)
{
    char *json = xasprintf("{\"type\":\"admin_edit\",\"table\":\"number\","
                           "\"id\":\"%s\",\"values\":{\"status\":\"%s\"}}",
                           id, status);

    add_fault(f, json);
    free(json);
}

static void test_outbox__412_newer_admin_change_wins(void **state)
{
    struct fixture *f = *state;
    struct outbox_stats st;
    long long ledger;

    sync_once(f);
    /* A local opt-out dated an hour ago; the admin's opt-in is now. */
    express(f, CFG1, P1, CONSENT_ACT_OPT_OUT, clock_now_ms() - HOUR);
    ledger = q(f, "SELECT count FROM ledger_head");
    admin_edit_trap(f, N1, "double_opt_in");
    st = drain(f, 0);
    assert_int_equal(st.conflicts, 1);
    assert_int_equal(st.written, 0);
    assert_emu_status(f, N1, "double_opt_in");
    assert_int_equal(q(f, "SELECT status FROM numbers WHERE dv_id = '" N1 "'"),
                     CONSENT_DOUBLE_OPT_IN);
    /* Recorded: opted_out -> double_opt_in from Dataverse. */
    assert_int_equal(q(f, "SELECT count FROM ledger_head"), ledger + 1);
    assert_int_equal(q(f, "SELECT count(*) FROM ledger WHERE seq = (SELECT "
                          "max(seq) FROM ledger) AND from_status = 3 AND "
                          "to_status = 2 AND source = 'dataverse'"),
                     1);
    assert_int_equal(q(f, "SELECT count(*) FROM outbox WHERE state = "
                          "'pending'"),
                     0);
}

static void test_outbox__412_newer_local_change_is_corrected(void **state)
{
    struct fixture *f = *state;
    struct outbox_stats st;
    long long ledger;

    sync_once(f);
    /* The local opt-out is newer than the admin's edit: it stands and is
     * written again over the admin's value (corrective write-back). */
    express(f, CFG1, P1, CONSENT_ACT_OPT_OUT, clock_now_ms() + HOUR);
    ledger = q(f, "SELECT count FROM ledger_head");
    admin_edit_trap(f, N1, "single_opt_in");
    st = drain(f, 0);
    assert_int_equal(st.conflicts, 1);
    assert_int_equal(st.written, 1);
    assert_emu_status(f, N1, "opted_out");
    assert_int_equal(q(f, "SELECT status FROM numbers WHERE dv_id = '" N1 "'"),
                     CONSENT_OPTED_OUT);
    assert_int_equal(q(f, "SELECT count FROM ledger_head"), ledger);
    sync_once(f); /* and our write coming back is no transition */
    assert_int_equal(q(f, "SELECT count FROM ledger_head"), ledger);
}

static void test_outbox__lost_create_answer_makes_one_row(void **state)
{
    struct fixture *f = *state;
    struct outbox_stats st;
    char id[MAPPING_GUID_LEN + 1];

    sync_once(f);
    express(f, CFG1, PNEW, CONSENT_ACT_OPT_OUT, clock_now_ms());
    add_fault(f, "{\"type\":\"lost_response\",\"match\":{\"kind\":"
                 "[\"write\",\"batch\"]},\"count\":1}");
    st = drain(f, 0); /* this worker never learns the create landed */
    assert_int_equal(st.retried, 1);
    assert_int_equal(st.written, 0);
    /* A new worker (a restart) sends the create again. */
    st = drain(f, 5000);
    assert_int_equal(st.written, 1);
    assert_int_equal(emu_count(f, CFG1, PNEW, id), 1);
    assert_emu_status(f, id, "opted_out");
    assert_int_equal(
        q(f, "SELECT count(*) FROM numbers WHERE e164 = '" PNEW "'"), 1);
}

/* outbox_run on a thread; the test waits for rows written (on_written). */
struct runner {
    outbox *ob;
    int rc;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int written;
};

static void on_written(const char *cfg, const char *e164, int status,
                       void *payload)
{
    struct runner *r = payload;

    (void)cfg;
    (void)e164;
    (void)status;
    pthread_mutex_lock(&r->mu);
    r->written++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void *run_worker(void *arg)
{
    struct runner *r = arg;

    r->rc = outbox_run(r->ob);
    return NULL;
}

static void runner_start(struct runner *r, pthread_t *th, struct fixture *f)
{
    struct outbox_options o;

    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    outbox_options_from_config(&o, f->cfg);
    o.base_backoff_ms = 50;
    o.max_attempts = 40;
    o.on_written = on_written;
    o.payload = r;
    assert_int_equal(
        outbox_new(&r->ob, f->cfg, f->m, f->c, f->a, f->throttle, &o), 0);
    assert_int_equal(pthread_create(th, NULL, run_worker, r), 0);
}

/* Waits (condition, 120 s deadline) until `n` rows were written. */
static void runner_wait(struct runner *r, int n)
{
    struct timespec ts;
    int rc = 0;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 120;
    pthread_mutex_lock(&r->mu);
    while (r->written < n && rc == 0)
        rc = pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    pthread_mutex_unlock(&r->mu);
    assert_true(r->written >= n);
}

static void runner_stop(struct runner *r, pthread_t th)
{
    outbox_stop(r->ob);
    pthread_join(th, NULL);
    assert_int_equal(r->rc, 0);
    outbox_free(r->ob);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
}

static void test_outbox__outage_longer_than_max_backoff(void **state)
{
    struct fixture *f = *state;
    struct runner r;
    pthread_t th;

    sync_once(f);
    express(f, CFG1, P1, CONSENT_ACT_OPT_OUT, clock_now_ms());
    express(f, CFG2, P4, CONSENT_ACT_OPT_OUT, clock_now_ms());
    /* Down for 8 attempts (5xx, then dropped connections): with a 1 s
     * max_backoff, the waits add up to more than the longest one. */
    add_fault(f, "{\"type\":\"status\",\"status\":503,\"match\":{\"kind\":"
                 "[\"batch\",\"write\"]},\"count\":4}");
    add_fault(f, "{\"type\":\"drop\",\"match\":{\"kind\":[\"batch\","
                 "\"write\"]},\"after\":4,\"count\":4}");
    runner_start(&r, &th, f);
    outbox_wake(r.ob);
    runner_wait(&r, 2);
    runner_stop(&r, th);
    assert_emu_status(f, N1, "opted_out");
    assert_emu_status(f, N4, "opted_out");
    assert_int_equal(q(f, "SELECT count(*) FROM outbox WHERE state = 'done'"),
                     2);
    assert_int_equal(faults_fired(f), 8); /* the whole outage happened */
    assert_int_equal(counter(f, "violations"), 0);
}

/*
 * Fail closed on a cache error (STYLE 4): the commit of a batch's answers
 * fails (disk full) after Dataverse applied the writes.  The worker holds
 * every row, reloads the queue (its inflight rows back to pending) and
 * goes on: the writes are sent again, meet their own echo (412, read
 * back, sent_mask) and are settled; nothing is lost, nothing duplicated.
 */
static void test_outbox__cache_error_fails_closed_and_recovers(void **state)
{
    struct fixture *f = *state;
    struct runner r;
    pthread_t th;

    sync_once(f);
    express(f, CFG1, P1, CONSENT_ACT_OPT_OUT, clock_now_ms());
    express(f, CFG2, P4, CONSENT_ACT_OPT_OUT, clock_now_ms());
    /* Steps from here, all on the worker's thread: recovery, the due
     * check, the consent messages' empty claim (BEGIN, select, COMMIT),
     * the claim (BEGIN, select, two updates, COMMIT, ...); the 15th is
     * the BEGIN of the answers' transaction.  If the count shifts, the
     * attempts check below says so. */
    fault_arm(FAULT_SQLITE_STEP, 15, 13 /* SQLITE_FULL */, 0);
    runner_start(&r, &th, f);
    runner_wait(&r, 2);
    runner_stop(&r, th);
    fault_disarm_all();
    assert_emu_status(f, N1, "opted_out");
    assert_emu_status(f, N4, "opted_out");
    assert_int_equal(q(f, "SELECT count(*) FROM outbox WHERE state = 'done'"),
                     2);
    /* The lost commit was recovered, not skipped: a second round went out
     * and met the rows as the first round had left them. */
    assert_true(q(f, "SELECT min(attempts) FROM outbox") >= 2);
    assert_int_equal(q(f, "SELECT count FROM ledger_head"),
                     q(f, "SELECT count(*) FROM ledger"));
}

static void test_outbox__dead_letter_listed_and_retried(void **state)
{
    struct fixture *f = *state;
    struct outbox_stats st;
    int count = 0;

    sync_once(f);
    express(f, CFG2, PNEW, CONSENT_ACT_OPT_IN, clock_now_ms());
    /* The Configuration is deleted in Dynamics before the create: the
     * bind fails (404), which trying again cannot fix. */
    cJSON_Delete(
        control_json(f, "DELETE", "admin/configuration/" CFG2, NULL, 200));
    st = drain(f, 0);
    assert_int_equal(st.dead, 1);
    assert_int_equal(q(f, "SELECT count(*) FROM outbox WHERE state = 'dead' "
                          "AND last_error LIKE 'HTTP 404 (0x80040217)%'"),
                     1);
    assert_int_equal(outbox_retry_dead(&count, f->c, 999), ERR_NOTFOUND);
    /* The admin restores it; the operator retries the dead letter. */
    cJSON_Delete(control_json(f, "POST", "admin/configuration",
                              "{\"id\":\"" CFG2 "\",\"name\":\"WA Second\"}",
                              201));
    assert_int_equal(outbox_retry_dead(&count, f->c, 0), 0);
    assert_int_equal(count, 1);
    st = drain(f, 0);
    assert_int_equal(st.written, 1);
    assert_int_equal(emu_count(f, CFG2, PNEW, NULL), 1);
}

static void test_outbox__429_storm_no_violations(void **state)
{
    struct fixture *f = *state;
    struct outbox_stats st;

    sync_once(f);
    express(f, CFG1, P1, CONSENT_ACT_OPT_OUT, clock_now_ms());
    express(f, CFG2, P4, CONSENT_ACT_OPT_OUT, clock_now_ms());
    add_fault(f, "{\"type\":\"throttle\",\"retry_after\":1,\"match\":"
                 "{\"kind\":\"batch\"},\"count\":3}");
    st = drain(f, 0);
    assert_int_equal(st.written, 0);
    assert_int_equal(st.waiting, 2);
    /* The poller shares the pause: its next request waits it out. */
    sync_once(f);
    st = drain(f, 60000);
    assert_int_equal(st.written, 2);
    assert_int_equal(q(f, "SELECT max(attempts) FROM outbox"), 1);
    assert_int_equal(counter(f, "violations"), 0);
    assert_emu_status(f, N4, "opted_out");
}

/* A storm from the service protection limits themselves: each part of a
 * batch counts as a request, so every batch overshoots a small window
 * and the next request is told to wait (Retry-After computed by the
 * window).  Every wait is honoured: no violation. */
static void test_outbox__request_limit_storm(void **state)
{
    struct fixture *f = *state;
    struct outbox_options o;
    struct outbox_stats st;
    outbox *ob = NULL;
    char phone[32];
    int i;

    sync_once(f);
    for (i = 0; i < 30; i++) {
        snprintf(phone, sizeof(phone), "+49151234566%02d", i);
        express(f, CFG1, phone, CONSENT_ACT_OPT_OUT, clock_now_ms());
    }
    cJSON_Delete(control_json(f, "POST", "limits",
                              "{\"requests\":8,\"window\":2}", 200));
    outbox_options_from_config(&o, f->cfg);
    o.batch_size = 10;
    o.drain_wait_ms = 120000;
    assert_int_equal(outbox_new(&ob, f->cfg, f->m, f->c, f->a, f->throttle, &o),
                     0);
    assert_int_equal(outbox_drain(&st, ob), 0);
    outbox_free(ob);
    assert_int_equal(st.written, 30);
    assert_true(responses(f, "429") > 0); /* there was a storm */
    assert_int_equal(counter(f, "violations"), 0);
    assert_int_equal(q(f, "SELECT count(*) FROM outbox WHERE state = 'done' "
                          "AND attempts = 1"),
                     30); /* 429s cost no attempt */
}

static void test_outbox__batch_with_mixed_results(void **state)
{
    struct fixture *f = *state;
    struct outbox_stats st;

    sync_once(f);
    /* One $batch of four parts: N1 200; N2 and N3 hold P2, and an admin
     * saves N2 just before our write (412, our newer opt-out stands and
     * is written again); PNEW under a Configuration deleted meanwhile
     * (404: dead). */
    express(f, CFG1, P1, CONSENT_ACT_OPT_OUT, clock_now_ms());
    express(f, CFG1, P2, CONSENT_ACT_OPT_OUT, clock_now_ms() + HOUR);
    express(f, CFG2, PNEW, CONSENT_ACT_OPT_IN, clock_now_ms());
    admin_edit_trap(f, N2, "single_opt_in");
    cJSON_Delete(
        control_json(f, "DELETE", "admin/configuration/" CFG2, NULL, 200));
    st = drain(f, 0);
    assert_int_equal(st.written, 3);
    assert_int_equal(st.conflicts, 1);
    assert_int_equal(st.dead, 1);
    assert_int_equal(st.requests, 2); /* the batch of 4, then N2 alone */
    assert_int_equal(counter(f, "batch_operations"), 4);
    assert_emu_status(f, N1, "opted_out");
    assert_emu_status(f, N2, "opted_out");
    assert_emu_status(f, N3, "opted_out");
    assert_int_equal(emu_count(f, CFG2, PNEW, NULL), 0);
}

static void test_outbox__every_row_of_the_number(void **state)
{
    struct fixture *f = *state;
    struct outbox_stats st;

    sync_once(f);
    /* N2 and N3 hold the same number, typed differently. */
    express(f, CFG1, P2, CONSENT_ACT_OPT_OUT, clock_now_ms());
    st = drain(f, 0);
    assert_int_equal(st.written, 2);
    assert_emu_status(f, N2, "opted_out");
    assert_emu_status(f, N3, "opted_out");
}

static void test_outbox__alternate_key_create(void **state)
{
    struct fixture *f = *state;
    struct outbox_stats st;
    char id[MAPPING_GUID_LEN + 1];

    sync_once(f);
    express(f, CFG1, PNEW, CONSENT_ACT_OPT_OUT, clock_now_ms());
    add_fault(f, "{\"type\":\"lost_response\",\"match\":{\"kind\":"
                 "[\"write\",\"batch\"]},\"count\":1}");
    assert_int_equal(drain(f, 0).retried, 1);
    st = drain(f, 5000);
    assert_int_equal(st.written, 1);
    assert_int_equal(emu_count(f, CFG1, PNEW, id), 1);
    assert_emu_status(f, id, "opted_out");
    assert_int_equal(q(f, "SELECT count(*) FROM numbers WHERE e164 = '" PNEW
                          "' AND dv_id IS NOT NULL"),
                     1);
    /* An existing row by id, under this mapping too. */
    express(f, CFG2, P4, CONSENT_ACT_OPT_OUT, clock_now_ms());
    assert_int_equal(drain(f, 0).written, 1);
    assert_emu_status(f, N4, "opted_out");
}

static void test_outbox__default_id_is_uuidv5(void **state)
{
    char id[MAPPING_GUID_LEN + 1];

    (void)state;
    /* Python: uuid.uuid5(UUID("36ddb33a-01b7-4a54-958c-b41a64552f9d"),
     *   "6a1c0d6e-0000-0000-0000-000000000001/+4915123456789") */
    dataverse_number_default_id(id, "6A1C0D6E-0000-0000-0000-000000000001",
                                "+4915123456789");
    assert_string_equal(id, "68ff89fa-de48-5a42-bd12-6d5f3b9baba3");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outbox__default_id_is_uuidv5),
        cmocka_unit_test_setup_teardown(test_outbox__opt_out_reaches_the_row,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox__unknown_number_is_created,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox__echo_is_no_transition,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox__echo_of_a_lost_answer,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_outbox__412_newer_admin_change_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_outbox__412_newer_local_change_is_corrected, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_outbox__lost_create_answer_makes_one_row, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_outbox__outage_longer_than_max_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_outbox__cache_error_fails_closed_and_recovers, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_outbox__dead_letter_listed_and_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox__429_storm_no_violations,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox__request_limit_storm, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_outbox__batch_with_mixed_results,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox__every_row_of_the_number,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox__alternate_key_create,
                                        setup_alt, teardown),
    };

    if (getenv("OPTSYNC_TEST_FILTER")) /* e.g. "*outage*" */
        cmocka_set_test_filter(getenv("OPTSYNC_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
