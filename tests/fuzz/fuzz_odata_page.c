/*
 * fuzz_odata_page — an OData answer page as Dataverse (or anything in
 * between) could send it: dataverse_page_parse (collection, nextLink,
 * deltaLink), deleted-row items, and every row through the default mapping
 * into number and configuration records.  Capped at 1 MiB.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataverse.h"
#include "mapping.h"

#define MAX_INPUT (1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The default mapping, inline: the fuzzer must not depend on files. */
static const char mapping_json[] =
    "{\"mapping_version\":1,\"configuration\":{\"entity_set\":"
    "\"inogic_configurations\",\"logical_name\":\"inogic_configuration\","
    "\"id\":\"inogic_configurationid\",\"name\":\"inogic_name\","
    "\"double_opt_in\":\"inogic_doubleoptin\",\"phone_number_id\":"
    "\"inogic_phonenumberid\",\"state\":{\"attribute\":\"statecode\","
    "\"active_value\":0}},\"number\":{\"entity_set\":"
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dv_page page;
    struct number_record nr;
    struct configuration_record cr;
    char id[MAPPING_GUID_LEN + 1];
    const cJSON *row;
    const char *why;

    if (size > MAX_INPUT)
        return 0;
    if (dataverse_page_parse(&page, (const char *)data, size) != 0)
        return 0;
    cJSON_ArrayForEach(row, page.rows)
    {
        if (dataverse_row_deleted(id, row))
            continue;
        mapping_number_from_row(&nr, mapping(), row, &why);
        mapping_configuration_from_row(&cr, mapping(), row, &why);
    }
    dv_page_dispose(&page);
    return 0;
}
