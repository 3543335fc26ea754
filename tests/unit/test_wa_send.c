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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wa_send__template_body_carries_the_payload),
        cmocka_unit_test(test_wa_send__text_body_and_incomplete_messages),
        cmocka_unit_test(test_wa_send__answers_by_meta_error_class),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
