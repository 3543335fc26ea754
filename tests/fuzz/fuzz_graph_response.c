/*
 * fuzz_graph_response — an answer of Meta's Cloud API (or 360dialog) to a
 * send: a success with its message id, Meta's error object, or anything
 * else (wa_send_response_parse and the error classes).  The first two
 * bytes pick the HTTP status.  Capped at 64 KiB.
 */
#include <stdint.h>
#include <string.h>

#include "wa_send.h"

#define MAX_INPUT (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = { 200, 400, 401, 403, 404, 429, 500, 503 };
    struct wa_send_result r;

    if (size < 1 || size > MAX_INPUT)
        return 0;
    wa_send_response_parse(&r, statuses[data[0] % 8], (const char *)data + 1,
                           size - 1);
    /* The result is always terminated and of a known class. */
    if (strlen(r.message) >= sizeof(r.message) ||
        strlen(r.wamid) >= sizeof(r.wamid) ||
        !strcmp(wa_send_class_name(r.cls), "?"))
        __builtin_trap();
    return 0;
}
