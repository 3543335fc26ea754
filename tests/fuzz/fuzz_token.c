/*
 * fuzz_token — a token endpoint answer: success, Entra error JSON, v1
 * string numbers, or anything else (auth_token_response_parse and the
 * AADSTS hint lookup).  Capped at 64 KiB.
 */
#include <stdint.h>
#include <stdlib.h>

#include "auth.h"

#define MAX_INPUT (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct auth_token_response r;

    if (size > MAX_INPUT)
        return 0;
    if (auth_token_response_parse(&r, (const char *)data, size) == 0) {
        (void)auth_aadsts_hint(r.aadsts);
        auth_token_response_dispose(&r);
    }
    return 0;
}
