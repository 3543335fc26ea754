/*
 * test_wa_send — the WhatsApp sender: the message bodies (template with
 * the confirm payload on its quick-reply button, free text), Meta's
 * answers turned into classes (every error code the outbox acts on), and
 * sends over real HTTP to the WhatsApp emulator through both APIs.
 *
 * ctest-timeout: 300
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "emulator_control.h"
#include "err.h"
#include "emulator_proc.h"
#include "jsonutil.h"
#include "wa_send.h"
#include "xalloc.h"

/* ---- bodies -------------------------------------------------------------- */

static void test_wa_send__template_body_carries_the_payload(void **state)
{
    static const char *const params[] = { "Contoso" };
    struct wa_message m = { "110000000000001",
                            "+4915112345678",
                            "consent_confirm",
                            "de",
                            params,
                            1,
                            "DOI_CONFIRM",
                            NULL };
    char *body = wa_message_body(&m);
    cJSON *o = jsonutil_parse(body, strlen(body)), *t, *comps, *btn;

    (void)state;
    assert_non_null(o);
    assert_string_equal(jsonutil_str(o, "messaging_product"), "whatsapp");
    assert_string_equal(jsonutil_str(o, "to"), "4915112345678");
    assert_string_equal(jsonutil_str(o, "type"), "template");
    t = cJSON_GetObjectItem(o, "template");
    assert_string_equal(jsonutil_str(t, "name"), "consent_confirm");
    assert_string_equal(
        jsonutil_str(cJSON_GetObjectItem(t, "language"), "code"), "de");
    comps = cJSON_GetObjectItem(t, "components");
    assert_int_equal(cJSON_GetArraySize(comps), 2);
    assert_string_equal(
        jsonutil_str(
            cJSON_GetArrayItem(
                cJSON_GetObjectItem(cJSON_GetArrayItem(comps, 0), "parameters"),
                0),
            "text"),
        "Contoso");
    btn = cJSON_GetArrayItem(comps, 1);
    assert_string_equal(jsonutil_str(btn, "sub_type"), "quick_reply");
    assert_string_equal(jsonutil_str(btn, "index"), "0");
    assert_string_equal(
        jsonutil_str(
            cJSON_GetArrayItem(cJSON_GetObjectItem(btn, "parameters"), 0),
            "payload"),
        "DOI_CONFIRM");
    cJSON_Delete(o);
    free(body);
}

static void test_wa_send__text_body_and_incomplete_messages(void **state)
{
    struct wa_message m = { 0 };
    char *body;
    cJSON *o;

    (void)state;
    m.to = "+4915112345678";
    m.text = "You will get no more marketing messages from Contoso.";
    body = wa_message_body(&m);
    o = jsonutil_parse(body, strlen(body));
    assert_string_equal(jsonutil_str(o, "type"), "text");
    assert_string_equal(jsonutil_str(cJSON_GetObjectItem(o, "text"), "body"),
                        m.text);
    assert_null(cJSON_GetObjectItem(o, "template"));
    cJSON_Delete(o);
    free(body);

    m.text = NULL; /* neither text nor template */
    assert_null(wa_message_body(&m));
    m.template_name = "t"; /* a template without a language */
    assert_null(wa_message_body(&m));
    m.template_lang = "en";
    m.to = "4915112345678"; /* not a key */
    assert_null(wa_message_body(&m));
}

/* ---- answers ------------------------------------------------------------ */

#define META_ERROR(code, sub)                                                  \
    "{\"error\":{\"message\":\"(#" #code ") m\",\"type\":\"OAuthException\","  \
    "\"code\":" #code ",\"error_subcode\":" #sub ",\"error_data\":{"           \
    "\"messaging_product\":\"whatsapp\",\"details\":\"d\"},"                   \
    "\"fbtrace_id\":\"Ab\"}}"

static const struct {
    long status;
    const char *body;
    enum wa_send_class cls;
    int code;
} answers[] = {
    { 200,
      "{\"messaging_product\":\"whatsapp\",\"contacts\":[{\"input\":\"1\","
      "\"wa_id\":\"1\"}],\"messages\":[{\"id\":\"wamid.X1\"}]}",
      WA_SEND_SENT, 0 },
    { 200, "{\"messages\":[]}", WA_SEND_DEAD, 0 },
    { 200, "not json", WA_SEND_DEAD, 0 },
    { 429, META_ERROR(130429, 0), WA_SEND_RETRY, 130429 },
    { 400, META_ERROR(130429, 0), WA_SEND_RETRY, 130429 },
    { 400, META_ERROR(131056, 0), WA_SEND_RETRY, 131056 },
    { 400, META_ERROR(80007, 0), WA_SEND_RETRY, 80007 },
    { 500, META_ERROR(131000, 0), WA_SEND_RETRY, 131000 },
    { 503, "<html>unavailable</html>", WA_SEND_RETRY, 0 },
    { 502, "", WA_SEND_RETRY, 0 },
    { 400, META_ERROR(131047, 0), WA_SEND_NEEDS_TEMPLATE, 131047 },
    { 400, META_ERROR(132000, 0), WA_SEND_DEAD, 132000 },
    { 404, META_ERROR(132001, 2494073), WA_SEND_DEAD, 132001 },
    { 400, META_ERROR(132015, 0), WA_SEND_DEAD, 132015 },
    { 400, META_ERROR(132016, 0), WA_SEND_DEAD, 132016 },
    { 400, META_ERROR(131026, 0), WA_SEND_DEAD, 131026 },
    { 400, META_ERROR(131049, 0), WA_SEND_DEAD, 131049 },
    { 400, META_ERROR(131051, 0), WA_SEND_DEAD, 131051 },
    { 400, META_ERROR(100, 33), WA_SEND_DEAD, 100 },
    { 401, META_ERROR(190, 463), WA_SEND_AUTH, 190 },
    { 400, META_ERROR(190, 460), WA_SEND_AUTH, 190 },
    { 401, "{\"error\":\"invalid key\"}", WA_SEND_AUTH, 0 },
};

static void test_wa_send__answers_by_meta_error_class(void **state)
{
    struct wa_send_result r;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
        wa_send_response_parse(&r, answers[i].status, answers[i].body,
                               strlen(answers[i].body));
        if (r.cls != answers[i].cls || r.code != answers[i].code)
            fail_msg("answer %zu (HTTP %ld): class %s code %d, expected %s %d",
                     i, answers[i].status, wa_send_class_name(r.cls), r.code,
                     wa_send_class_name(answers[i].cls), answers[i].code);
        assert_int_equal(r.http_status, answers[i].status);
    }
    wa_send_response_parse(&r, 200, answers[0].body, strlen(answers[0].body));
    assert_string_equal(r.wamid, "wamid.X1");
    wa_send_response_parse(&r, 404, answers[12].body, strlen(answers[12].body));
    assert_int_equal(r.subcode, 2494073);
    assert_non_null(strstr(r.message, "132001"));
    assert_non_null(strstr(r.message, "d")); /* the details are kept */
}

/* ---- over real HTTP: the WhatsApp emulator --------------------------------
 */

#define PNID "110000000000001"
#define D360_KEY "optsync-test-d360-key"

struct fixture {
    struct emulator_proc emu;
    wa_sender *cloud, *d360;
};

static int setup(void **state)
{
    static const char *const args[] = { "--d360-key", D360_KEY ":" PNID,
                                        "--no-statuses", NULL };
    struct fixture *f = xcalloc(1, sizeof(*f));
    struct wa_send_options o = { 0 };

    assert_int_equal(emulator_start_script(&f->emu, EMULATOR_WHATSAPP, args),
                     0);
    o.graph_url = f->emu.base_url;
    o.graph_version = "v21.0";
    o.access_token = "optsync-wa-emulator-token";
    o.d360_url = f->emu.base_url;
    o.d360_api_key = D360_KEY;
    o.connect_timeout_ms = 5000;
    o.timeout_ms = 30000;
    assert_int_equal(wa_sender_new(&f->cloud, &o), 0);
    o.api = WA_API_360DIALOG;
    assert_int_equal(wa_sender_new(&f->d360, &o), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    wa_sender_free(f->cloud);
    wa_sender_free(f->d360);
    emulator_stop(&f->emu);
    free(f);
    return 0;
}

/* The emulator's record of the last message it accepted. */
static cJSON *last_sent(struct fixture *f)
{
    cJSON *all = NULL, *last;

    assert_int_equal(
        emulator_control_json(&f->emu, "GET", "messages", NULL, &all), 200);
    if (cJSON_IsObject(all)) /* {"messages": [...]} or a bare list */
        last = cJSON_DetachItemFromObject(all, "messages");
    else
        last = all, all = NULL;
    cJSON_Delete(all);
    assert_true(cJSON_IsArray(last) && cJSON_GetArraySize(last) > 0);
    all = cJSON_DetachItemFromArray(last, cJSON_GetArraySize(last) - 1);
    cJSON_Delete(last);
    return all;
}

static void test_wa_send__template_through_both_apis(void **state)
{
    struct fixture *f = *state;
    struct wa_message m = { PNID, "+4915112345678", "doi_confirm", "de", NULL,
                            0,    "DOI_CONFIRM",    NULL };
    struct wa_send_result r;
    cJSON *sent;
    char *text;

    assert_int_equal(wa_sender_send(&r, f->cloud, &m), 0);
    assert_int_equal(r.cls, WA_SEND_SENT);
    assert_int_equal(strncmp(r.wamid, "wamid.", 6), 0);
    sent = last_sent(f);
    text = cJSON_PrintUnformatted(sent);
    assert_non_null(strstr(text, r.wamid));
    assert_non_null(strstr(text, "DOI_CONFIRM"));
    assert_non_null(strstr(text, "doi_confirm"));
    free(text);
    cJSON_Delete(sent);

    assert_int_equal(wa_sender_send(&r, f->d360, &m), 0);
    assert_int_equal(r.cls, WA_SEND_SENT);
    sent = last_sent(f);
    text = cJSON_PrintUnformatted(sent);
    assert_non_null(strstr(text, r.wamid));
    free(text);
    cJSON_Delete(sent);
}

static void test_wa_send__meta_errors_from_the_emulator(void **state)
{
    struct fixture *f = *state;
    struct wa_message m = {
        PNID, "+4915112345679", "no_such_template", "de", NULL, 0, NULL, NULL
    };
    struct wa_send_result r;

    /* Template missing for that language: dead, named in the message. */
    assert_int_equal(wa_sender_send(&r, f->cloud, &m), 0);
    assert_int_equal(r.cls, WA_SEND_DEAD);
    assert_int_equal(r.code, 132001);
    /* Free text to a number that never wrote: outside the window. */
    m.template_name = NULL;
    m.text = "Thanks, you will get no more offers.";
    assert_int_equal(wa_sender_send(&r, f->cloud, &m), 0);
    assert_int_equal(r.cls, WA_SEND_NEEDS_TEMPLATE);
    assert_int_equal(r.code, 131047);
    /* A revoked token pauses sending; restored, it works again. */
    assert_int_equal(emulator_control(&f->emu, "POST", "tokens/revoke",
                                      "{\"token\":\"optsync-wa-emulator-"
                                      "token\",\"reason\":\"revoked\"}",
                                      NULL),
                     200);
    m.template_name = "doi_confirm";
    m.text = NULL;
    assert_int_equal(wa_sender_send(&r, f->cloud, &m), 0);
    assert_int_equal(r.cls, WA_SEND_AUTH);
    assert_int_equal(r.code, 190);
    assert_int_equal(emulator_control(&f->emu, "POST", "tokens/restore",
                                      "{\"token\":\"optsync-wa-emulator-"
                                      "token\"}",
                                      NULL),
                     200);
    assert_int_equal(wa_sender_send(&r, f->cloud, &m), 0);
    assert_int_equal(r.cls, WA_SEND_SENT);
}

static void test_wa_send__network_failure_is_a_retry(void **state)
{
    struct wa_send_options o = { 0 };
    struct wa_message m = {
        PNID, "+4915112345678", "doi_confirm", "de", NULL, 0, NULL, NULL
    };
    struct wa_send_result r;
    wa_sender *s;

    (void)state;
    o.graph_url = "http://127.0.0.1:1"; /* nothing listens on port 1 */
    o.graph_version = "v21.0";
    o.access_token = "t";
    o.connect_timeout_ms = 2000;
    o.timeout_ms = 5000;
    assert_int_equal(wa_sender_new(&s, &o), 0);
    assert_int_equal(wa_sender_send(&r, s, &m), 0);
    assert_int_equal(r.cls, WA_SEND_RETRY);
    assert_int_equal(r.http_status, 0);
    m.to = NULL; /* incomplete: nothing sent */
    assert_int_equal(wa_sender_send(&r, s, &m), ERR_BADINPUT);
    wa_sender_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wa_send__template_body_carries_the_payload),
        cmocka_unit_test(test_wa_send__text_body_and_incomplete_messages),
        cmocka_unit_test(test_wa_send__answers_by_meta_error_class),
        cmocka_unit_test_setup_teardown(
            test_wa_send__template_through_both_apis, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_wa_send__meta_errors_from_the_emulator, setup, teardown),
        cmocka_unit_test(test_wa_send__network_failure_is_a_retry),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
