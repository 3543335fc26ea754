/*
 * test_outbox_whatsapp — the outbox kind "whatsapp" against the WhatsApp
 * emulator (real HTTP on loopback, a real SQLite cache): a message whose
 * number moved on is superseded, not sent; free text inside the 24-hour
 * window, the template outside it, and the template at once after a
 * 131047; a missing template is a dead letter naming template and
 * language, retried after it exists; nothing configured → nothing sent;
 * a revoked token holds every message without counting an attempt,
 * records why, and the first send after the token works clears it.
 *
 * ctest-labels: quick;integration
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "clock.h"
#include "configurations.h"
#include "consent.h"
#include "emulator_control.h"
#include "log.h"
#include "outbox.h"
#include "testutil.h"
#include "wa_messages.h"
#include "wa_users.h"
#include "xalloc.h"

#define CFG "6a1c0d6e-0000-0000-0000-0000000000d1"
#define PNID "110000000000001"
#define PHONE "+4915123456701"
#define TOKEN "unit-token-1"

struct fixture {
    char *dir;
    struct emulator_proc wa;
    struct optsync_config *cfg;
    struct mapping *m;
    cache *c;
    http *token_http;
    auth *a;
    struct consent_options copts;
};

static struct mapping *load_mapping(void)
{
    char *path = testutil_source_path("mapping/whatsapp4dynamics.json");
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

/* A configuration with `extra` overrides (NULL-terminated, may be NULL). */
static void configure(struct fixture *f, const char *const *extra)
{
    const char *ov[16];
    char *path = xasprintf("cache.path=%s/cache.db", f->dir);
    char *url = xasprintf("whatsapp.graph_url=%s", f->wa.base_url);
    size_t n = 0, i;

    ov[n++] = path;
    ov[n++] = url;
    ov[n++] = "whatsapp.send=cloud";
    ov[n++] = "whatsapp.access_token=" TOKEN;
    ov[n++] = "messages.double_opt_in_template=doi_confirm:de";
    ov[n++] = "messages.opt_out_confirmation_template=optout_confirm:de";
    ov[n++] = "messages.opt_out_confirmation_text={business}: abgemeldet";
    for (i = 0; extra && extra[i] && n < 13; i++)
        ov[n++] = extra[i];
    ov[n] = NULL;
    auth_free(f->a); /* it borrows the configuration */
    config_free(f->cfg);
    f->cfg = emulator_config(&f->wa, ov);
    consent_options_init(&f->copts, f->cfg, f->m);
    if (f->token_http)
        assert_int_equal(auth_new(&f->a, f->cfg, f->token_http), 0);
    free(path);
    free(url);
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    struct http_options o = HTTP_OPTIONS_INIT;
    const char *args[] = { "--token",    TOKEN,     "--d360-key",
                           "k360:" PNID, "--quiet", NULL };
    struct configuration_record r;
    char *cache_path;

    if (getenv("OPTSYNC_TEST_DEBUG"))
        log_level_current = LOG_DEBUG;
    f->dir = testutil_tmpdir();
    assert_int_equal(emulator_start_script(&f->wa, EMULATOR_WHATSAPP, args), 0);
    f->m = load_mapping();
    assert_int_equal(http_new(&f->token_http, &o), 0);
    configure(f, NULL);
    cache_path = xasprintf("%s/cache.db", f->dir);
    assert_int_equal(cache_open(&f->c, cache_path, 0), 0);
    free(cache_path);
    memset(&r, 0, sizeof(r));
    snprintf(r.id, sizeof(r.id), "%s", CFG);
    r.name = "Blumen Schmidt";
    r.double_opt_in = 1;
    r.phone_number_id = PNID;
    r.active = 1;
    assert_int_equal(cache_begin(f->c), 0);
    assert_int_equal(configurations_put(f->c, &r, 0), 0);
    assert_int_equal(cache_commit(f->c), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    clock_set_fixed(0);
    auth_free(f->a);
    http_free(f->token_http);
    cache_close(f->c);
    mapping_free(f->m);
    config_free(f->cfg);
    emulator_stop(&f->wa);
    testutil_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* ---- helpers ----------------------------------------------------------- */

static void express(struct fixture *f, enum consent_action action,
                    const char *source)
{
    struct consent_event ev;
    struct consent_result r;

    memset(&ev, 0, sizeof(ev));
    ev.configuration_id = CFG;
    ev.e164 = PHONE;
    ev.action = action;
    ev.event_at = clock_now_ms();
    ev.source = source;
    assert_int_equal(consent_apply(&r, f->c, &f->copts, &ev), 0);
    assert_int_equal(r.outcome, CONSENT_CHANGED);
}

/* The customer wrote to us `ago_ms` ago (the 24-hour window). */
static void wrote_in(struct fixture *f, int64_t ago_ms)
{
    assert_int_equal(
        wa_users_inbound_put(f->c, CFG, PHONE, clock_now_ms() - ago_ms, NULL),
        0);
}

static struct outbox_stats drain(struct fixture *f)
{
    struct outbox_options o;
    struct outbox_stats st;
    outbox *ob = NULL;

    outbox_options_from_config(&o, f->cfg);
    o.base_backoff_ms = 50;
    assert_int_equal(outbox_new(&ob, f->cfg, f->m, f->c, f->a, NULL, &o), 0);
    assert_int_equal(outbox_drain(&st, ob), 0);
    outbox_free(ob);
    return st;
}

static long long q(struct fixture *f, const char *sql)
{
    return testutil_query_int(f->c, sql);
}

/* The one message row's column `col` (0 state, 1 last_error, 2 wamid;
 * malloc'd text). */
static char *row_text(struct fixture *f, int col)
{
    sqlite3_stmt *st = cache_stmt(f->c, "SELECT state, last_error, wamid "
                                        "FROM outbox WHERE kind = 'whatsapp'");
    char *out = NULL;

    assert_non_null(st);
    if (cache_step(st) == SQLITE_ROW && cache_col_text(st, col))
        out = xstrdup(cache_col_text(st, col));
    sqlite3_reset(st);
    return out;
}

static void assert_row(struct fixture *f, const char *state,
                       const char *error_part)
{
    char *s = row_text(f, 0), *e = row_text(f, 1);

    assert_non_null(s);
    assert_string_equal(s, state);
    if (error_part) {
        assert_non_null(e);
        if (!strstr(e, error_part))
            fail_msg("last_error \"%s\" lacks \"%s\"", e, error_part);
    }
    free(s);
    free(e);
}

static cJSON *sent(struct fixture *f)
{
    cJSON *doc = NULL, *list;

    assert_int_equal(
        emulator_control_json(&f->wa, "GET", "messages", NULL, &doc), 200);
    list = cJSON_DetachItemFromObject(doc, "messages");
    cJSON_Delete(doc);
    return list;
}

static const char *field(const cJSON *o, const char *a, const char *b)
{
    const cJSON *v = cJSON_GetObjectItem(o, a);

    if (b)
        v = cJSON_GetObjectItem(v, b);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static void control_ok(struct fixture *f, const char *method, const char *route,
                       const char *body)
{
    long st = emulator_control(&f->wa, method, route, body, NULL);

    if (st != 200 && st != 201)
        fail_msg("%s %s: %ld", method, route, st);
}

static void add_optout_template(struct fixture *f)
{
    control_ok(f, "POST", "templates",
               "{\"phone_number_id\":\"" PNID "\",\"name\":\"optout_confirm\","
               "\"language\":\"de\",\"status\":\"APPROVED\",\"category\":"
               "\"UTILITY\",\"body_params\":0,\"buttons\":[]}");
}

/* ---- tests -------------------------------------------------------------- */

static void test_outbox_whatsapp__moved_on_is_superseded(void **state)
{
    struct fixture *f = *state;
    struct outbox_stats st;
    cJSON *list;

    express(f, CONSENT_ACT_OPT_IN, CONSENT_SOURCE_WHATSAPP);
    express(f, CONSENT_ACT_OPT_OUT, CONSENT_SOURCE_MANUAL);
    st = drain(f);
    assert_int_equal(st.superseded, 1);
    assert_row(f, "superseded", "opted_out");
    list = sent(f);
    assert_int_equal(cJSON_GetArraySize(list), 0);
    cJSON_Delete(list);
}

static void test_outbox_whatsapp__doi_request(void **state)
{
    struct fixture *f = *state;
    cJSON *list, *m;
    char *wamid;

    express(f, CONSENT_ACT_OPT_IN, CONSENT_SOURCE_MANUAL);
    drain(f);
    list = sent(f);
    assert_int_equal(cJSON_GetArraySize(list), 1);
    m = cJSON_GetArrayItem(list, 0);
    assert_string_equal(field(m, "type", NULL), "template");
    assert_string_equal(field(m, "template", "name"), "doi_confirm");
    assert_string_equal(field(m, "template", "language"), "de");
    assert_string_equal(field(m, "button_payloads", "0"), "DOI_CONFIRM");
    assert_string_equal(field(m, "to", NULL), &PHONE[1]);
    wamid = row_text(f, 2);
    assert_string_equal(wamid, field(m, "wamid", NULL));
    assert_row(f, "done", NULL);
    free(wamid);
    cJSON_Delete(list);
}

static void test_outbox_whatsapp__text_in_window_template_outside(void **state)
{
    struct fixture *f = *state;
    cJSON *list;

    add_optout_template(f);
    /* The emulator knows the customer wrote: free text. */
    control_ok(f, "POST", "users",
               "{\"wa_id\":\"4915123456701\",\"wrote_in\":true}");
    wrote_in(f, 60000);
    express(f, CONSENT_ACT_OPT_OUT, CONSENT_SOURCE_WHATSAPP);
    drain(f);
    /* Out of the window (25 h): the template. */
    express(f, CONSENT_ACT_OPT_IN, CONSENT_SOURCE_MANUAL);
    assert_int_equal(
        cache_exec(f->c, "UPDATE wa_last_inbound SET last_at = last_at - "
                         "25 * 3600 * 1000"),
        0);
    express(f, CONSENT_ACT_OPT_OUT, CONSENT_SOURCE_WHATSAPP);
    drain(f);
    list = sent(f);
    /* The request the opt-in queued was replaced, still pending, by the
     * confirmation of the second opt-out: text, then template. */
    assert_int_equal(cJSON_GetArraySize(list), 2);
    assert_string_equal(field(cJSON_GetArrayItem(list, 0), "type", NULL),
                        "text");
    assert_string_equal(field(cJSON_GetArrayItem(list, 0), "text", NULL),
                        "Blumen Schmidt: abgemeldet");
    assert_string_equal(field(cJSON_GetArrayItem(list, 1), "template", "name"),
                        "optout_confirm");
    cJSON_Delete(list);
}

static void test_outbox_whatsapp__131047_sends_the_template(void **state)
{
    struct fixture *f = *state;
    cJSON *list;

    add_optout_template(f);
    wrote_in(f, 60000); /* we think the window is open; Meta does not */
    express(f, CONSENT_ACT_OPT_OUT, CONSENT_SOURCE_WHATSAPP);
    drain(f);
    assert_row(f, "done", NULL);
    list = sent(f);
    assert_int_equal(cJSON_GetArraySize(list), 1);
    assert_string_equal(field(cJSON_GetArrayItem(list, 0), "type", NULL),
                        "template");
    cJSON_Delete(list);
}

static void
test_outbox_whatsapp__missing_template_dead_then_retried(void **state)
{
    struct fixture *f = *state;
    const char *ov[] = { "messages.double_opt_in_template=consent_ask:de",
                         NULL };
    int n = 0;

    configure(f, ov);
    express(f, CONSENT_ACT_OPT_IN, CONSENT_SOURCE_WHATSAPP);
    assert_int_equal(drain(f).dead, 1);
    assert_row(f, "dead", "template consent_ask:de");
    assert_row(f, "dead", "132001");
    control_ok(f, "POST", "templates",
               "{\"phone_number_id\":\"" PNID "\",\"name\":\"consent_ask\","
               "\"language\":\"de\",\"status\":\"APPROVED\",\"category\":"
               "\"UTILITY\",\"body_params\":0,\"buttons\":[{\"type\":"
               "\"QUICK_REPLY\",\"text\":\"Ja\"}]}");
    assert_int_equal(outbox_retry_dead(&n, f->c, 0), 0);
    assert_int_equal(n, 1);
    assert_int_equal(drain(f).written, 1);
    assert_row(f, "done", NULL);
}

/* A Configuration naming its own template (mapping keys) overrides
 * [messages]. */
static void test_outbox_whatsapp__configuration_template(void **state)
{
    struct fixture *f = *state;
    struct configuration_record r;
    cJSON *list;

    memset(&r, 0, sizeof(r));
    snprintf(r.id, sizeof(r.id), "%s", CFG);
    r.name = "Blumen Schmidt";
    r.double_opt_in = 1;
    r.phone_number_id = PNID;
    r.double_opt_in_template = "shop_confirm:en_US";
    r.active = 1;
    control_ok(f, "POST", "templates",
               "{\"phone_number_id\":\"" PNID "\",\"name\":\"shop_confirm\","
               "\"language\":\"en_US\",\"status\":\"APPROVED\",\"category\":"
               "\"UTILITY\",\"body_params\":0,\"buttons\":[{\"type\":"
               "\"QUICK_REPLY\",\"text\":\"Yes\"}]}");
    assert_int_equal(cache_begin(f->c), 0);
    assert_int_equal(configurations_put(f->c, &r, 0), 0);
    assert_int_equal(cache_commit(f->c), 0);
    express(f, CONSENT_ACT_OPT_IN, CONSENT_SOURCE_WHATSAPP);
    drain(f);
    list = sent(f);
    assert_int_equal(cJSON_GetArraySize(list), 1);
    assert_string_equal(field(cJSON_GetArrayItem(list, 0), "template", "name"),
                        "shop_confirm");
    assert_string_equal(
        field(cJSON_GetArrayItem(list, 0), "template", "language"), "en_US");
    cJSON_Delete(list);
}

static void test_outbox_whatsapp__nothing_configured(void **state)
{
    struct fixture *f = *state;
    const char *ov[] = { "messages.double_opt_in_template=", NULL };
    cJSON *list;

    configure(f, ov);
    express(f, CONSENT_ACT_OPT_IN, CONSENT_SOURCE_WHATSAPP);
    assert_int_equal(drain(f).superseded, 1);
    assert_row(f, "superseded", "no template");
    list = sent(f);
    assert_int_equal(cJSON_GetArraySize(list), 0);
    cJSON_Delete(list);
}

static void test_outbox_whatsapp__revoked_token_pauses(void **state)
{
    struct fixture *f = *state;
    struct outbox_stats st;

    control_ok(f, "POST", "tokens/revoke", "{\"token\":\"" TOKEN "\"}");
    express(f, CONSENT_ACT_OPT_IN, CONSENT_SOURCE_WHATSAPP);
    st = drain(f);
    assert_int_equal(st.written, 0);
    assert_int_equal(st.dead, 0);
    assert_row(f, "pending", "token");
    assert_int_equal(q(f, "SELECT attempts FROM outbox WHERE kind = "
                          "'whatsapp'"),
                     0);
    assert_int_equal(q(f, "SELECT paused_reason IS NOT NULL FROM "
                          "sender_state"),
                     1);
    control_ok(f, "POST", "tokens/restore", "{\"token\":\"" TOKEN "\"}");
    clock_set_fixed(clock_now_ms() + 3600 * 1000LL); /* the pause is over */
    assert_int_equal(drain(f).written, 1);
    assert_int_equal(q(f, "SELECT paused_reason IS NULL FROM sender_state"), 1);
}

static void test_outbox_whatsapp__send_off_sends_nothing(void **state)
{
    struct fixture *f = *state;
    const char *ov[] = { "whatsapp.send=off", NULL };

    express(f, CONSENT_ACT_OPT_IN, CONSENT_SOURCE_WHATSAPP); /* queued */
    configure(f, ov);
    drain(f);
    assert_row(f, "superseded", "send = off");
}

/* The same message through 360dialog's route and key. */
static void test_outbox_whatsapp__360dialog(void **state)
{
    struct fixture *f = *state;
    char *d360 = xasprintf("whatsapp.d360_url=%s", f->wa.base_url);
    const char *ov[] = { "whatsapp.send=360dialog", d360,
                         "whatsapp.d360_api_key=k360", NULL };
    cJSON *list;

    configure(f, ov);
    express(f, CONSENT_ACT_OPT_IN, CONSENT_SOURCE_WHATSAPP);
    drain(f);
    list = sent(f);
    assert_int_equal(cJSON_GetArraySize(list), 1);
    assert_string_equal(field(cJSON_GetArrayItem(list, 0), "route", NULL),
                        "360dialog");
    assert_string_equal(field(cJSON_GetArrayItem(list, 0), "template", "name"),
                        "doi_confirm");
    cJSON_Delete(list);
    free(d360);
}

/* Statuses move a message's delivery forward only; failed is final;
 * another system's wamid changes nothing (wa_messages.h). */
static void test_outbox_whatsapp__delivery_statuses(void **state)
{
    struct fixture *f = *state;
    char *wamid, *d;
    int ours = 0;

    express(f, CONSENT_ACT_OPT_IN, CONSENT_SOURCE_WHATSAPP);
    drain(f);
    wamid = row_text(f, 2);
    assert_non_null(wamid);
    assert_int_equal(cache_begin(f->c), 0);
    assert_int_equal(
        wa_messages_status_put(&ours, f->c, "wamid.other", "read", 1, 0), 0);
    assert_int_equal(ours, 0);
    assert_int_equal(wa_messages_status_put(&ours, f->c, wamid, "read", 2, 0),
                     0);
    assert_int_equal(ours, 1);
    assert_int_equal(
        wa_messages_status_put(&ours, f->c, wamid, "delivered", 3, 0), 0);
    assert_int_equal(ours, 0); /* late: read already */
    assert_int_equal(
        wa_messages_status_put(&ours, f->c, wamid, "failed", 4, 131026), 0);
    assert_int_equal(wa_messages_status_put(&ours, f->c, wamid, "sent", 5, 0),
                     0);
    assert_int_equal(cache_commit(f->c), 0);
    d = row_text(f, 1);
    assert_non_null(strstr(d, "131026"));
    assert_int_equal(q(f, "SELECT delivery = 'failed' FROM outbox WHERE "
                          "kind = 'whatsapp'"),
                     1);
    free(d);
    free(wamid);
}

/* A status that overtakes the commit of its wamid is applied then. */
static void test_outbox_whatsapp__early_status(void **state)
{
    struct fixture *f = *state;
    int ours = 1;

    express(f, CONSENT_ACT_OPT_IN, CONSENT_SOURCE_WHATSAPP);
    drain(f);
    assert_int_equal(cache_begin(f->c), 0);
    assert_int_equal(
        wa_messages_status_put(&ours, f->c, "wamid.early", "sent", 1, 0), 0);
    assert_int_equal(ours, 0);
    assert_int_equal(
        wa_messages_status_put(&ours, f->c, "wamid.early", "delivered", 2, 0),
        0);
    assert_int_equal(
        wa_messages_status_put(&ours, f->c, "wamid.early", "sent", 3, 0), 0);
    assert_int_equal(q(f, "SELECT count(*) FROM wa_status_early"), 1);
    assert_int_equal(wa_messages_sent(f->c,
                                      q(f, "SELECT id FROM outbox WHERE kind "
                                           "= 'whatsapp'"),
                                      "wamid.early", 10),
                     0);
    assert_int_equal(cache_commit(f->c), 0);
    assert_int_equal(q(f, "SELECT delivery = 'delivered' AND delivery_at = 2 "
                          "FROM outbox WHERE kind = 'whatsapp'"),
                     1);
    assert_int_equal(q(f, "SELECT count(*) FROM wa_status_early"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_outbox_whatsapp__moved_on_is_superseded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_whatsapp__doi_request,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_outbox_whatsapp__text_in_window_template_outside, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_outbox_whatsapp__131047_sends_the_template, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_outbox_whatsapp__missing_template_dead_then_retried, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_outbox_whatsapp__configuration_template, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_outbox_whatsapp__nothing_configured, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_outbox_whatsapp__revoked_token_pauses, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_outbox_whatsapp__send_off_sends_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_whatsapp__360dialog, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_outbox_whatsapp__delivery_statuses,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_whatsapp__early_status,
                                        setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
