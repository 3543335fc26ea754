/*
 * test_mapping — loading both shipped mappings, every invalid form with its
 * JSON path, rows → records and changes → bodies through both mappings,
 * and the small pure helpers (times, GUIDs, ETags).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapping.h"
#include "testutil.h"
#include "xalloc.h"

static struct mapping *load_file(const char *rel)
{
    char *path = testutil_source_path(rel);
    size_t len;
    char *text = testutil_read(path, &len);
    struct mapping_problems p = { 0 };
    struct mapping *m = NULL;
    size_t i;

    if (mapping_load(&m, text, len, &p) != 0) {
        for (i = 0; i < p.count; i++)
            fprintf(stderr, "%s\n", p.items[i]);
        fail_msg("%s must load", rel);
    }
    mapping_problems_dispose(&p);
    free(text);
    free(path);
    return m;
}

static void test_mapping__default_loads(void **state)
{
    struct mapping *m = load_file("mapping/whatsapp4dynamics.json");

    (void)state;
    assert_string_equal(m->number.entity_set, "inogic_optinoptoutnumbers");
    assert_string_equal(m->number.configuration_value,
                        "_inogic_configurationid_value");
    assert_int_equal(m->number.status_values[CONSENT_OPTED_OUT], 100000002);
    assert_string_equal(m->number.select,
                        "inogic_optinoptoutnumberid,"
                        "_inogic_configurationid_value,inogic_phonenumber,"
                        "inogic_optinstatus,modifiedon,statecode,"
                        "inogic_consentdate,inogic_consentsource");
    assert_string_equal(m->configuration.select,
                        "inogic_configurationid,inogic_name,"
                        "inogic_doubleoptin,inogic_phonenumberid,"
                        "inogic_wabaid,inogic_defaultcountry,statecode,"
                        "modifiedon");
    assert_int_equal(m->number.alternate_key_count, 0);
    mapping_free(m);
}

static void test_mapping__alternate_mapping_loads(void **state)
{
    struct mapping *m = load_file("tests/data/mapping_alt.json");

    (void)state;
    assert_string_equal(m->number.configuration_navigation, "cts_Setup");
    assert_int_equal(m->number.status_values[CONSENT_OPTED_OUT], 71230000);
    assert_int_equal(m->number.alternate_key_count, 2);
    assert_string_equal(m->number.alternate_key[1], "cts_setup");
    assert_string_equal(m->number.topics, "cts_optedouttopics");
    mapping_free(m);
}

/* A valid mapping as text, for cases to break one piece of. */
#define VALID_CFG                                                              \
    "\"configuration\":{\"entity_set\":\"a_cs\",\"logical_name\":\"a_c\","     \
    "\"id\":\"a_cid\",\"name\":\"a_name\",\"double_opt_in\":\"a_doi\"}"
#define VALID_NUM_FIELDS                                                       \
    "\"entity_set\":\"a_ns\",\"logical_name\":\"a_n\",\"id\":\"a_nid\","       \
    "\"name\":\"a_name\",\"configuration_lookup\":\"a_cfg\","                  \
    "\"configuration_navigation\":\"a_Cfg\",\"relationship\":\"a_c_n\","       \
    "\"phone\":\"a_phone\",\"status\":\"a_status\",\"modified_on\":"           \
    "\"modifiedon\""
#define VALID_STATUS                                                           \
    "\"status_values\":{\"single_opt_in\":1,\"double_opt_in\":2,"              \
    "\"opted_out\":3}"

static const struct {
    const char *json;
    const char *expect;
} invalid_cases[] = {
    { "{", "$: not valid JSON" },
    { "[]", "$: expected a JSON object" },
    { "{\"mapping_version\":2," VALID_CFG ",\"number\":{" VALID_NUM_FIELDS
      "," VALID_STATUS "}}",
      "$.mapping_version: expected 1" },
    { "{\"mapping_version\":1," VALID_CFG "}", "$.number: expected an object" },
    { "{\"mapping_version\":1,\"extra\":1," VALID_CFG
      ",\"number\":{" VALID_NUM_FIELDS "," VALID_STATUS "}}",
      "$.extra: unknown key" },
    { "{\"mapping_version\":1," VALID_CFG ",\"number\":{" VALID_NUM_FIELDS "}}",
      "$.number.status_values: required key is missing" },
    { "{\"mapping_version\":1," VALID_CFG ",\"number\":{" VALID_NUM_FIELDS
      ",\"status_values\":{\"single_opt_in\":1,\"double_opt_in\":1,"
      "\"opted_out\":3}}}",
      "$.number.status_values: single_opt_in and double_opt_in have the same "
      "value 1" },
    { "{\"mapping_version\":1," VALID_CFG ",\"number\":{" VALID_NUM_FIELDS
      ",\"status_values\":{\"single_opt_in\":\"1\",\"double_opt_in\":2,"
      "\"opted_out\":3}}}",
      "$.number.status_values.single_opt_in: expected a whole number" },
    { "{\"mapping_version\":1," VALID_CFG ",\"number\":{" VALID_NUM_FIELDS
      "," VALID_STATUS ",\"phonee\":\"x\"}}",
      "$.number.phonee: unknown key" },
    { "{\"mapping_version\":1," VALID_CFG ",\"number\":{" VALID_NUM_FIELDS
      "," VALID_STATUS ",\"state\":{\"attribute\":\"statecode\"}}}",
      "$.number.state.active_value: expected a whole number" },
    { "{\"mapping_version\":1," VALID_CFG ",\"number\":{" VALID_NUM_FIELDS
      "," VALID_STATUS ",\"state\":0}}",
      "$.number.state: expected an object" },
    { "{\"mapping_version\":1," VALID_CFG ",\"number\":{" VALID_NUM_FIELDS
      "," VALID_STATUS ",\"alternate_key\":[]}}",
      "$.number.alternate_key: expected a non-empty array" },
    { "{\"mapping_version\":1," VALID_CFG ",\"number\":{" VALID_NUM_FIELDS
      "," VALID_STATUS ",\"alternate_key\":[\"a_phone\",7]}}",
      "$.number.alternate_key[1]: expected a string" },
    { "{\"mapping_version\":1," VALID_CFG ",\"number\":{" VALID_NUM_FIELDS
      "," VALID_STATUS ",\"consent_at\":\"A_Date\"}}",
      "$.number.consent_at: \"A_Date\" must be lower case" },
    { "{\"mapping_version\":1," VALID_CFG ",\"number\":{" VALID_NUM_FIELDS
      "," VALID_STATUS ",\"source\":\"a source\"}}",
      "$.number.source: \"a source\" may hold only letters" },
    { "{\"mapping_version\":1," VALID_CFG ",\"number\":{" VALID_NUM_FIELDS
      "," VALID_STATUS ",\"topics\":\"\"}}",
      "$.number.topics: \"\" must not be empty" },
    { "{\"mapping_version\":1,\"configuration\":{\"entity_set\":\"a_cs\"},"
      "\"number\":{" VALID_NUM_FIELDS "," VALID_STATUS "}}",
      "$.configuration.logical_name: required key is missing" },
};

static void test_mapping__each_invalid_form_names_its_path(void **state)
{
    size_t i, j;

    (void)state;
    for (i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]); i++) {
        struct mapping_problems p = { 0 };
        struct mapping *m = NULL;
        int found = 0;

        assert_int_equal(mapping_load(&m, invalid_cases[i].json,
                                      strlen(invalid_cases[i].json), &p),
                         -1);
        assert_null(m);
        for (j = 0; j < p.count; j++)
            if (strstr(p.items[j], invalid_cases[i].expect))
                found = 1;
        if (!found) {
            for (j = 0; j < p.count; j++)
                fprintf(stderr, "  got: %s\n", p.items[j]);
            fail_msg("case %zu: expected \"%s\"", i, invalid_cases[i].expect);
        }
        mapping_problems_dispose(&p);
    }
}

static void test_mapping__every_problem_is_reported(void **state)
{
    const char *json = "{\"mapping_version\":1,\"configuration\":{},"
                       "\"number\":{}}";
    struct mapping_problems p = { 0 };
    struct mapping *m = NULL;

    (void)state;
    assert_int_equal(mapping_load(&m, json, strlen(json), &p), -1);
    /* 5 required configuration keys + 11 required number keys. */
    assert_int_equal(p.count, 5 + 11);
    mapping_problems_dispose(&p);
}

/* A Dataverse row for `m`, built from its names: values as the Web API
 * returns them. */
static cJSON *number_row(const struct mapping *m, enum consent_status st)
{
    const struct mapping_number *n = &m->number;
    cJSON *row = cJSON_CreateObject();

    cJSON_AddStringToObject(row, "@odata.etag", "W/\"5019\"");
    cJSON_AddStringToObject(row, n->id, "3F2E0000-0000-0000-0000-00000000ABCD");
    cJSON_AddStringToObject(row, n->configuration_value,
                            "6a1c0d6e-0000-0000-0000-000000000001");
    cJSON_AddStringToObject(row, n->phone, "+49 151 2345 6789");
    cJSON_AddNumberToObject(row, n->status, (double)n->status_values[st]);
    cJSON_AddStringToObject(row, n->modified_on, "2025-01-28T09:00:01Z");
    if (n->state.attribute)
        cJSON_AddNumberToObject(row, n->state.attribute, 1);
    if (n->consent_at)
        cJSON_AddStringToObject(row, n->consent_at,
                                "2025-01-27T08:00:00.5+01:00");
    if (n->source)
        cJSON_AddStringToObject(row, n->source, "whatsapp");
    if (n->topics)
        cJSON_AddStringToObject(row, n->topics, "promotions");
    if (n->paused_until)
        cJSON_AddNullToObject(row, n->paused_until);
    return row;
}

static void check_round_trip(const char *mapping_file)
{
    struct mapping *m = load_file(mapping_file);
    const struct mapping_number *n = &m->number;
    cJSON *row = number_row(m, CONSENT_DOUBLE_OPT_IN), *body, *v;
    struct number_record rec;
    struct number_change ch = { 0 };
    const char *why = NULL;
    char *bind_key, *json, *expect_bind;

    assert_int_equal(mapping_number_from_row(&rec, m, row, &why), 0);
    assert_string_equal(rec.id, "3f2e0000-0000-0000-0000-00000000abcd");
    assert_string_equal(rec.configuration_id,
                        "6a1c0d6e-0000-0000-0000-000000000001");
    assert_string_equal(rec.raw_phone, "+49 151 2345 6789");
    assert_int_equal(rec.status, CONSENT_DOUBLE_OPT_IN);
    assert_int_equal(rec.version, 5019);
    assert_int_equal(rec.modified_on, 1738054801000LL);
    assert_false(rec.active); /* statecode 1 */
    assert_int_equal(rec.consent_at, 1737961200500LL);
    assert_string_equal(rec.source, "whatsapp");

    /* Back: a create carries the lookup bind, name and phone. */
    ch.create = 1;
    ch.configuration_id = rec.configuration_id;
    ch.phone = "+4915123456789";
    ch.status = CONSENT_OPTED_OUT;
    ch.consent_at = rec.consent_at;
    ch.source = "whatsapp";
    json = mapping_number_body(m, &ch);
    assert_non_null(json);
    body = cJSON_Parse(json);
    bind_key = xasprintf("%s@odata.bind", n->configuration_navigation);
    v = cJSON_GetObjectItemCaseSensitive(body, bind_key);
    assert_true(cJSON_IsString(v));
    expect_bind = xasprintf("/%s(6a1c0d6e-0000-0000-0000-000000000001)",
                            m->configuration.entity_set);
    assert_string_equal(v->valuestring, expect_bind);
    free(expect_bind);
    assert_int_equal(
        cJSON_GetObjectItemCaseSensitive(body, n->status)->valuedouble,
        (double)n->status_values[CONSENT_OPTED_OUT]);
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(body, n->phone)->valuestring,
        "+4915123456789");
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(body, n->name)->valuestring,
        "+4915123456789");
    /* Never the read-only lookup value. */
    assert_null(cJSON_GetObjectItemCaseSensitive(body, n->configuration_value));
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(body, n->consent_at)->valuestring,
        "2025-01-27T07:00:00.500Z");
    free(bind_key);
    cJSON_Delete(body);
    free(json);
    cJSON_Delete(row);
    mapping_free(m);
}

static void test_mapping__round_trip_default(void **state)
{
    (void)state;
    check_round_trip("mapping/whatsapp4dynamics.json");
}

static void test_mapping__round_trip_alternate(void **state)
{
    struct mapping *m = load_file("tests/data/mapping_alt.json");
    struct number_change ch = { 0 };
    char *json;
    cJSON *body;

    (void)state;
    /* The bind names this mapping's own entity set and navigation. */
    ch.create = 1;
    ch.configuration_id = "6a1c0d6e-0000-0000-0000-000000000001";
    ch.phone = "+4915123456789";
    ch.status = CONSENT_SINGLE_OPT_IN;
    ch.set_paused_until = 1;
    ch.paused_until = 0;
    ch.topics = "news";
    json = mapping_number_body(m, &ch);
    body = cJSON_Parse(json);
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(body, "cts_Setup@odata.bind")
            ->valuestring,
        "/cts_whatsappsetups(6a1c0d6e-0000-0000-0000-000000000001)");
    assert_int_equal(
        cJSON_GetObjectItemCaseSensitive(body, "cts_consent")->valuedouble,
        71230001);
    assert_true(cJSON_IsNull(
        cJSON_GetObjectItemCaseSensitive(body, "cts_pauseduntil")));
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(body, "cts_optedouttopics")
            ->valuestring,
        "news");
    cJSON_Delete(body);
    free(json);
    mapping_free(m);
    check_round_trip("tests/data/mapping_alt.json");
}

static void test_mapping__update_body_and_rejections(void **state)
{
    struct mapping *m = load_file("mapping/whatsapp4dynamics.json");
    struct number_change ch = { 0 };
    char *json;

    (void)state;
    ch.status = CONSENT_OPTED_OUT;
    json = mapping_number_body(m, &ch);
    assert_string_equal(json, "{\"inogic_optinstatus\":100000002}");
    free(json);
    ch.status = CONSENT_NONE;
    assert_null(mapping_number_body(m, &ch));
    ch.status = CONSENT_OPTED_OUT;
    ch.create = 1; /* no configuration id, no phone */
    assert_null(mapping_number_body(m, &ch));
    ch.configuration_id = "not-a-guid";
    ch.phone = "+49151";
    assert_null(mapping_number_body(m, &ch));
    mapping_free(m);
}

static void test_mapping__bad_rows(void **state)
{
    struct mapping *m = load_file("mapping/whatsapp4dynamics.json");
    struct number_record rec;
    const char *why = NULL;
    cJSON *row;

    (void)state;
    row = number_row(m, CONSENT_OPTED_OUT);
    cJSON_ReplaceItemInObject(row, "inogic_optinstatus",
                              cJSON_CreateNumber(42));
    assert_int_equal(mapping_number_from_row(&rec, m, row, &why), -1);
    assert_string_equal(why, "status value not in the mapping's "
                             "status_values");
    cJSON_Delete(row);

    row = number_row(m, CONSENT_OPTED_OUT);
    cJSON_DeleteItemFromObject(row, "inogic_optinoptoutnumberid");
    assert_int_equal(mapping_number_from_row(&rec, m, row, &why), -1);
    cJSON_Delete(row);

    row = number_row(m, CONSENT_OPTED_OUT);
    cJSON_ReplaceItemInObject(row, "modifiedon",
                              cJSON_CreateString("28/01/2025"));
    assert_int_equal(mapping_number_from_row(&rec, m, row, &why), -1);
    assert_string_equal(why, "malformed date");
    cJSON_Delete(row);

    /* An empty status is "no consent", and an empty lookup is kept. */
    row = number_row(m, CONSENT_OPTED_OUT);
    cJSON_ReplaceItemInObject(row, "inogic_optinstatus", cJSON_CreateNull());
    cJSON_ReplaceItemInObject(row, "_inogic_configurationid_value",
                              cJSON_CreateNull());
    assert_int_equal(mapping_number_from_row(&rec, m, row, &why), 0);
    assert_int_equal(rec.status, CONSENT_NONE);
    assert_string_equal(rec.configuration_id, "");
    cJSON_Delete(row);
    mapping_free(m);
}

static void test_mapping__configuration_row(void **state)
{
    struct mapping *m = load_file("mapping/whatsapp4dynamics.json");
    struct configuration_record rec;
    const char *why = NULL;
    cJSON *row = cJSON_Parse(
        "{\"@odata.etag\":\"W/\\\"77\\\"\","
        "\"inogic_configurationid\":\"6a1c0d6e-0000-0000-0000-000000000001\","
        "\"inogic_name\":\"WA Main \\u00e9\",\"inogic_doubleoptin\":true,"
        "\"inogic_phonenumberid\":\"200100300400500\",\"statecode\":0,"
        "\"modifiedon\":\"2025-01-28T09:00:01Z\"}");

    (void)state;
    assert_int_equal(mapping_configuration_from_row(&rec, m, row, &why), 0);
    assert_string_equal(rec.name, "WA Main \xc3\xa9");
    assert_true(rec.double_opt_in);
    assert_true(rec.active);
    assert_string_equal(rec.phone_number_id, "200100300400500");
    assert_null(rec.waba_id);
    assert_int_equal(rec.version, 77);
    cJSON_Delete(row);
    mapping_free(m);
}

static void test_mapping__times(void **state)
{
    static const struct {
        const char *in;
        long long ms; /* -1: must be rejected */
    } cases[] = {
        { "1970-01-01T00:00:00Z", 0 },
        { "2025-01-28T15:19:30Z", 1738077570000LL },
        { "2025-01-28T15:19:30.123Z", 1738077570123LL },
        { "2025-01-28T16:19:30+01:00", 1738077570000LL },
        { "2025-01-28T10:19:30-05:00", 1738077570000LL },
        { "2024-02-29T00:00:00Z", 1709164800000LL },
        { "2025-02-30T00:00:00Z", -1 },
        { "2025-01-28 15:19:30Z", -1 },
        { "2025-01-28T15:19:30", -1 },
        { "2025-01-28T25:00:00Z", -1 },
        { "", -1 },
    };
    size_t i;
    int64_t ms;
    char buf[32];

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = mapping_time_parse(&ms, cases[i].in);

        if (cases[i].ms < 0) {
            assert_int_equal(rc, -1);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(ms, cases[i].ms);
    }
    mapping_time_format(buf, 1738077570000LL);
    assert_string_equal(buf, "2025-01-28T15:19:30Z");
    mapping_time_format(buf, 1738077570123LL);
    assert_string_equal(buf, "2025-01-28T15:19:30.123Z");
}

static void test_mapping__guids_and_etags(void **state)
{
    char out[MAPPING_GUID_LEN + 1];

    (void)state;
    assert_int_equal(
        mapping_guid_normalize(out, "{D5026A4D-0000-0000-0000-00000000ABCD}"),
        0);
    assert_string_equal(out, "d5026a4d-0000-0000-0000-00000000abcd");
    assert_int_equal(mapping_guid_normalize(out, "d5026a4d00000000000000"), -1);
    assert_int_equal(
        mapping_guid_normalize(out, "g5026a4d-0000-0000-0000-00000000abcd"),
        -1);
    assert_int_equal(mapping_etag_version("W/\"81359849\""), 81359849);
    assert_int_equal(mapping_etag_version("\"81359849\""), 0);
    assert_int_equal(mapping_etag_version("W/\"81x\""), 0);
    assert_int_equal(mapping_etag_version("W/\"\""), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mapping__default_loads),
        cmocka_unit_test(test_mapping__alternate_mapping_loads),
        cmocka_unit_test(test_mapping__each_invalid_form_names_its_path),
        cmocka_unit_test(test_mapping__every_problem_is_reported),
        cmocka_unit_test(test_mapping__round_trip_default),
        cmocka_unit_test(test_mapping__round_trip_alternate),
        cmocka_unit_test(test_mapping__update_body_and_rejections),
        cmocka_unit_test(test_mapping__bad_rows),
        cmocka_unit_test(test_mapping__configuration_row),
        cmocka_unit_test(test_mapping__times),
        cmocka_unit_test(test_mapping__guids_and_etags),
    };

    return cmocka_run_group_tests_name("mapping", tests, NULL, NULL);
}
