/*
 * dv_batch — the multipart/mixed bodies of an OData $batch: our writer of
 * request bodies and our parser of response bodies (no C library does
 * OData batch).  Bytes only: which URLs go in and what the answers mean
 * is dataverse.c's business; this file never builds a Web API URL and
 * never reads OData JSON.
 *
 * Pipeline position: under dataverse.c (dataverse_write_batch), which is
 * its only user besides the tests and the fuzzer.
 *
 * Design notes
 *  (1) Every line of the multipart structure ends in CRLF (Dataverse
 *      answers a bare LF with "Stream was not readable").
 *  (2) Requests are independent parts, never a change set: one number's
 *      failure must not roll back another's write.  Each part carries
 *      Content-ID: its 1-based position, so answers can be matched by id
 *      and, when a server omits the id, by order.
 *  (3) The response parser takes anything (it is fed by the network and
 *      by the fuzzer): CRLF or bare LF, quoted or bare boundaries, change
 *      set answers one level deep (flattened), at most CAP_BATCH_PARTS
 *      parts; what it cannot read is ERR_BADINPUT, never a crash.
 */
#ifndef OPTSYNC_DV_BATCH_H
#define OPTSYNC_DV_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "xalloc.h"

/* One request of a batch.  All borrowed. */
struct dv_batch_op {
    const char *method;         /* "PATCH", "GET", ... */
    const char *url;            /* request target (absolute URL) */
    const char *const *headers; /* "Name: value", NULL-terminated; or NULL */
    const char *body;           /* JSON; NULL: none */
};

/* The boundary length dv_batch_boundary_new writes (plus NUL). */
#define DV_BATCH_BOUNDARY_MAX 48

/* A fresh random boundary: "batch_" + 32 hex digits. */
void dv_batch_boundary_new(char out[DV_BATCH_BOUNDARY_MAX]);

/*
 * Appends the body of a batch of `n` independent parts (note 2) to `out`.
 * A part with a body gets "Content-Type: application/json; type=entry".
 * The caller sends it with "Content-Type: multipart/mixed;
 * boundary=<boundary>".
 */
void dv_batch_write(struct strbuf *out, const char *boundary,
                    const struct dv_batch_op *ops, size_t n);

/* One answered part. */
struct dv_batch_part {
    long content_id;        /* -1 when the part carried none */
    long status;            /* the inner HTTP status (100..599) */
    char *etag;             /* owned; NULL when absent */
    char *entity_id;        /* owned: OData-EntityId, else Location */
    int64_t retry_after_ms; /* -1 when absent */
    char *body;             /* owned, NUL-terminated (may be "") */
    size_t body_len;
};

struct dv_batch_response {
    struct dv_batch_part *parts; /* owned, in answer order */
    size_t count;
};

/*
 * Parses a batch response body.  `content_type` is the response's
 * Content-Type (its boundary is used; NULL or without one: the body's
 * first delimiter line is).  Returns 0 with every part (note 3), or
 * ERR_BADINPUT (err_set says why) when the body is not a batch response;
 * *out is then empty.
 */
int dv_batch_response_parse(struct dv_batch_response *out,
                            const char *content_type, const char *body,
                            size_t len);
void dv_batch_response_dispose(struct dv_batch_response *r);

#endif
