/*
 * fuzz_remote_context — a Dataverse webhook body (a serialized
 * RemoteExecutionContext, as a service endpoint POSTs it): dv_webhook_parse
 * against the default mapping (dictionaries, Target, images, typed values,
 * /Date()/, hints), with and without x-ms-dynamics-* headers, then the
 * row it builds through mapping_number_from_row /
 * mapping_configuration_from_row, and the input itself as a /Date()/
 * string.  Capped at 1 MiB.  Seeds: the bodies the emulator sends
 * (tests/data/dv_webhook/capture.py) plus composed edge cases.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dv_webhook.h"
#include "mapping.h"

#define MAX_INPUT (1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The default mapping, inline: the fuzzer must not depend on files. */
static const char mapping_json[] =
    "{\"mapping_version\":1,\"configuration\":{\"entity_set\":"
    "\"inogic_configurations\",\"logical_name\":\"inogic_configuration\","
    "\"id\":\"inogic_configurationid\",\"name\":\"inogic_name\","
    "\"double_opt_in\":\"inogic_doubleoptin\",\"phone_number_id\":"
    "\"inogic_phonenumberid\",\"waba_id\":\"inogic_wabaid\","
    "\"default_region\":\"inogic_defaultcountry\",\"state\":{\"attribute\":"
    "\"statecode\",\"active_value\":0}},\"number\":{\"entity_set\":"
    "\"inogic_optinoptoutnumbers\",\"logical_name\":"
    "\"inogic_optinoptoutnumber\",\"id\":\"inogic_optinoptoutnumberid\","
    "\"name\":\"inogic_name\",\"configuration_lookup\":"
    "\"inogic_configurationid\",\"configuration_navigation\":"
    "\"inogic_ConfigurationId\",\"relationship\":\"inogic_rel\",\"phone\":"
    "\"inogic_phonenumber\",\"status\":\"inogic_optinstatus\","
    "\"status_values\":{\"single_opt_in\":100000000,\"double_opt_in\":"
    "100000001,\"opted_out\":100000002},\"modified_on\":\"modifiedon\","
    "\"state\":{\"attribute\":\"statecode\",\"active_value\":0},"
    "\"consent_at\":\"inogic_consentdate\",\"source\":"
    "\"inogic_consentsource\"}}";

static struct mapping *mapping(void)
{
    static struct mapping *m;
    struct mapping_problems p = { 0 };

    if (!m && mapping_load(&m, mapping_json, sizeof(mapping_json) - 1, &p))
        abort(); /* the inline mapping is valid: a bug if not */
    mapping_problems_dispose(&p);
    return m;
}

static void map_row(const struct dv_webhook_event *ev)
{
    struct number_record nr;
    struct configuration_record cr;
    const char *why;

    /* What apply relies on: a Create/Update without a hint has its row,
     * a Delete never has one. */
    if (ev->hint == DV_WEBHOOK_HINT_NONE &&
        (ev->message == DV_WEBHOOK_CREATE ||
         ev->message == DV_WEBHOOK_UPDATE) &&
        !ev->row)
        abort();
    if (ev->message == DV_WEBHOOK_DELETE && ev->row)
        abort();
    if (!ev->row)
        return;
    if (ev->entity == DV_NUMBER)
        mapping_number_from_row(&nr, mapping(), ev->row, &why);
    else
        mapping_configuration_from_row(&cr, mapping(), ev->row, &why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct dv_webhook_headers headers = {
        "org", "inogic_optinoptoutnumber", "Update", NULL, 1
    };
    struct dv_webhook_event *ev = NULL;
    char *text;
    int64_t ms;

    if (size > MAX_INPUT)
        return 0;
    if (dv_webhook_parse(&ev, mapping(), (const char *)data, size, NULL) == 0) {
        map_row(ev);
        dv_webhook_event_free(ev);
    }
    ev = NULL;
    if (dv_webhook_parse(&ev, mapping(), (const char *)data, size, &headers) ==
        0) {
        map_row(ev);
        dv_webhook_event_free(ev);
    }
    text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    dv_webhook_date_parse(&ms, text);
    free(text);
    return 0;
}
