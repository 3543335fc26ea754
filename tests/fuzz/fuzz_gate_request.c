/*
 * fuzz_gate_request — the JSON bodies of the gate API as a client sends
 * them: POST /v1/gate (bulk), POST /v1/sends and POST /v1/preferences
 * (gate_request_*_parse), each given the same bytes.  Capped at 64 KiB
 * (the listener's max_body is larger, but nothing new happens past a few
 * KiB of JSON).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gate_request.h"

#define MAX_INPUT (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gate_request_bulk bulk;
    struct gate_request_send send;
    struct gate_request_preference pref;
    const char *body = (const char *)data;
    size_t i, total = 0;

    if (size > MAX_INPUT)
        return 0;
    if (gate_request_bulk_parse(&bulk, body, size, 100) == 0) {
        for (i = 0; i < bulk.n; i++) /* every phone is a real string */
            total += strlen(bulk.phones[i]);
        total += strlen(bulk.configuration);
        gate_request_bulk_dispose(&bulk);
    }
    if (gate_request_send_parse(&send, body, size) == 0) {
        total += strlen(send.configuration) + strlen(send.phone);
        gate_request_send_dispose(&send);
    }
    if (gate_request_preference_parse(&pref, body, size, 1767225600000LL) ==
        0) {
        if (!pref.topic && pref.paused_until <= 0)
            abort(); /* the parser promised one of them */
        gate_request_preference_dispose(&pref);
    }
    return total == (size_t)-1; /* keep `total` alive */
}
