/*
 * http — HTTPS requests through libcurl: one reused handle per caller
 * (keep-alive), gzip, timeouts, TLS verification always on, and the retry
 * policy every Dataverse and Entra ID call shares.
 *
 * Pipeline position: under auth.c and dataverse.c, which are its only
 * users.  It knows nothing of OData or tokens; it never logs a header
 * value or a body (the debug trace masks Authorization).
 *
 * Design notes
 *  (1) A 429 pauses every request of the same identity, not only the one
 *      that got it: the handles of one identity share a `struct
 *      http_throttle`, and each request first waits until the pause set
 *      by the last Retry-After has passed.  Nobody retries early
 *      (Dataverse counts early retries against you).
 *  (2) 5xx (502/503/504, and 500) and transport errors back off
 *      exponentially with jitter, up to max_backoff, for at most
 *      max_attempts; other 4xx are final and returned at once.
 *  (3) curl_easy_perform() is called in exactly one place (http_send),
 *      behind the FAULT_CURL_PERFORM seam.
 */
#ifndef OPTSYNC_HTTP_H
#define OPTSYNC_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "xalloc.h"

typedef struct http http;
struct http_throttle;

/* Shared by every handle of one identity (note 1).  Thread-safe. */
struct http_throttle *http_throttle_new(void);
void http_throttle_free(struct http_throttle *t);

struct http_options {
    int64_t connect_timeout_ms;
    int64_t timeout_ms;
    const char *ca_file;    /* NULL: the system store */
    int max_attempts;       /* total tries for retryable failures */
    int64_t max_backoff_ms; /* longest single wait */
    int64_t base_backoff_ms;
    struct http_throttle *throttle; /* borrowed; NULL: none */
    const volatile int *stop;       /* borrowed; when *stop, waits end and
                                       a transfer in progress is abandoned
                                       (a transport error) */
};

#define HTTP_OPTIONS_INIT                                                      \
    {                                                                          \
        10000, 60000, NULL, 5, 60000, 500, NULL, NULL                          \
    }

struct http_request {
    const char *method;         /* "GET", "POST", "PATCH", ... */
    const char *url;            /* used verbatim */
    const char *const *headers; /* "Name: value", NULL-terminated */
    const char *body;           /* NULL: none */
    size_t body_len;
    size_t max_response; /* body cap; larger answers fail (ERR_TOOBIG) */
};

struct http_response {
    long status;              /* HTTP status; 0 when none arrived */
    struct strbuf body;       /* owned */
    int64_t retry_after_ms;   /* from Retry-After; -1 when absent */
    char *location;           /* owned: OData-EntityId or Location */
    char *etag;               /* owned: ETag */
    char *preference_applied; /* owned */
    char *content_type;       /* owned: Content-Type */
    int attempts;             /* tries it took */
};

void http_response_init(struct http_response *r);
void http_response_dispose(struct http_response *r);

int http_new(http **out, const struct http_options *opts);
void http_free(http *h); /* NULL is a no-op */

/* Sets http_options.stop after http_new (NULL: none); not while a request
 * of this handle runs. */
void http_set_stop(http *h, const volatile int *stop);

/*
 * One attempt, no retries.  Returns 0 when any HTTP status arrived (check
 * out->status); ERR_FAIL on a transport error (connect, TLS, timeout,
 * dropped connection) with err_set; ERR_TOOBIG when the body exceeded
 * max_response.
 */
int http_send(struct http_response *out, http *h,
              const struct http_request *req);

/*
 * With the retry policy (notes 1 and 2).  Returns 0 with the final
 * response (which may still be a 4xx/5xx: check out->status);
 * ERR_THROTTLED when 429s outlasted max_attempts; ERR_FAIL when transport
 * errors did; ERR_TOOBIG as above.
 */
int http_request(struct http_response *out, http *h,
                 const struct http_request *req);

/* Retries and waits so far, for status and metrics. */
struct http_stats {
    int64_t requests;
    int64_t retries;
    int64_t throttled; /* 429s seen */
    int64_t waited_ms;
};
void http_stats_get(struct http_stats *out, const http *h);

/* URL-encodes `s` for a query string or form (malloc'd). */
char *http_escape(const char *s);

#endif
