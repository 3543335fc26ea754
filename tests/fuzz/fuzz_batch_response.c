/*
 * fuzz_batch_response — a $batch response body as Dataverse (or anything
 * in between) could send it: dv_batch_response_parse (delimiters with CRLF
 * or bare LF, MIME headers, change set answers, status lines, inner
 * headers, bodies), then each part's body through dataverse_error_parse
 * as the write path reads it.  The input's first line is the response's
 * Content-Type (may be empty), the rest its body.  Checks the parser's
 * promises: statuses in 100..599, bodies NUL-terminated at body_len,
 * nothing left behind on failure.  Capped at 1 MiB.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataverse.h"
#include "dv_batch.h"

#define MAX_INPUT (1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct dv_batch_response *r)
{
    struct dv_error e;
    size_t i;

    for (i = 0; i < r->count; i++) {
        const struct dv_batch_part *p = &r->parts[i];

        if (p->status < 100 || p->status > 599 || !p->body ||
            p->body[p->body_len] != '\0')
            abort();
        dataverse_error_parse(&e, p->status, p->body, p->body_len);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *nl;
    char *ctype;
    struct dv_batch_response r;
    size_t n;

    if (size > MAX_INPUT)
        return 0;
    nl = memchr(text, '\n', size);
    n = nl ? (size_t)(nl - text) : size;
    ctype = malloc(n + 1);
    if (!ctype)
        return 0;
    memcpy(ctype, text, n);
    ctype[n] = '\0';
    if (dv_batch_response_parse(&r, n ? ctype : NULL, nl ? nl + 1 : "",
                                nl ? size - n - 1 : 0) == 0)
        check(&r);
    else if (r.count != 0 || r.parts != NULL)
        abort();
    dv_batch_response_dispose(&r);
    free(ctype);
    return 0;
}
