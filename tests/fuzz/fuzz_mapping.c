/*
 * fuzz_mapping — the mapping loader (JSON → struct mapping, every
 * validation path) and, when a mapping loads, the row → record and
 * change → body functions driven by the same input.  Capped at 64 KiB.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mapping.h"

#define MAX_INPUT (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise(const struct mapping *m, const char *json, size_t len)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    const cJSON *row = cJSON_GetObjectItemCaseSensitive(root, "row");
    struct number_record nr;
    struct configuration_record cr;
    struct number_change ch = { 0 };
    const char *why;
    char *body;

    if (cJSON_IsObject(row)) {
        mapping_number_from_row(&nr, m, row, &why);
        mapping_configuration_from_row(&cr, m, row, &why);
    }
    ch.create = 1;
    ch.configuration_id = "6a1c0d6e-0000-0000-0000-000000000001";
    ch.phone = "+4915123456789";
    ch.status = CONSENT_OPTED_OUT;
    ch.consent_at = 1738077570123LL;
    ch.source = "fuzz";
    body = mapping_number_body(m, &ch);
    free(body);
    cJSON_Delete(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mapping_problems problems = { 0 };
    struct mapping *m = NULL;

    if (size > MAX_INPUT)
        return 0;
    if (mapping_load(&m, (const char *)data, size, &problems) == 0) {
        exercise(m, (const char *)data, size);
        mapping_free(m);
    }
    mapping_problems_dispose(&problems);
    return 0;
}
