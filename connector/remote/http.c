/*
 * http — see http.h for the design notes.
 */
#include "http.h"

#include <curl/curl.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "clock.h"
#include "err.h"
#include "fault.h"
#include "log.h"
#include "version.h"

struct http_throttle {
    pthread_mutex_t mu;
    int64_t paused_until; /* monotonic ms; 0: not paused */
};

struct http {
    CURL *curl; /* owned */
    struct http_options o;
    struct http_stats stats;
    struct http_response *filling; /* the response being received */
    size_t max_response;
    int too_big;
    char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct http_throttle *http_throttle_new(void)
{
    struct http_throttle *t = xcalloc(1, sizeof(*t));

    pthread_mutex_init(&t->mu, NULL);
    return t;
}

void http_throttle_free(struct http_throttle *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static int64_t throttle_remaining(struct http_throttle *t)
{
    int64_t left;

    pthread_mutex_lock(&t->mu);
    left = t->paused_until - clock_mono_ms();
    pthread_mutex_unlock(&t->mu);
    return left > 0 ? left : 0;
}

static void throttle_pause(struct http_throttle *t, int64_t ms)
{
    int64_t until = clock_mono_ms() + ms;

    pthread_mutex_lock(&t->mu);
    if (until > t->paused_until)
        t->paused_until = until;
    pthread_mutex_unlock(&t->mu);
}

void http_response_init(struct http_response *r)
{
    memset(r, 0, sizeof(*r));
    strbuf_init(&r->body, 0);
    r->retry_after_ms = -1;
}

void http_response_dispose(struct http_response *r)
{
    strbuf_dispose(&r->body);
    free(r->location);
    free(r->etag);
    free(r->preference_applied);
    free(r->content_type);
    memset(r, 0, sizeof(*r));
}

/* Starts a new attempt with an empty response. */
static void response_reset(struct http_response *r, size_t max)
{
    int attempts = r->attempts;

    http_response_dispose(r);
    http_response_init(r);
    r->body.max = max;
    r->attempts = attempts;
}

/* ---- curl callbacks ----------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
    http *h = user;

    if (strbuf_add(&h->filling->body, data, size * n) != 0) {
        h->too_big = 1;
        return 0; /* aborts the transfer */
    }
    return size * n;
}

/* Keeps the value of `name:` headers we use, trimmed. */
static void keep_header(char **dst, const char *line, size_t len,
                        const char *name)
{
    size_t n = strlen(name);

    if (len <= n || strncasecmp(line, name, n) != 0)
        return;
    line += n;
    len -= n;
    while (len && (*line == ' ' || *line == '\t')) {
        line++;
        len--;
    }
    while (len && (line[len - 1] == '\r' || line[len - 1] == '\n' ||
                   line[len - 1] == ' '))
        len--;
    free(*dst);
    *dst = xstrndup(line, len);
}

static size_t on_header(char *data, size_t size, size_t n, void *user)
{
    struct http_response *r = ((http *)user)->filling;
    size_t len = size * n;

    keep_header(&r->location, data, len, "OData-EntityId:");
    if (!r->location)
        keep_header(&r->location, data, len, "Location:");
    keep_header(&r->etag, data, len, "ETag:");
    keep_header(&r->preference_applied, data, len, "Preference-Applied:");
    keep_header(&r->content_type, data, len, "Content-Type:");
    return len;
}

/* Finds `needle` in `hay`, ignoring ASCII case (strcasestr is GNU). */
static char *find_nocase(char *hay, const char *needle)
{
    size_t n = strlen(needle);

    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return hay;
    return NULL;
}

/* Overwrites the value of every `name` header in `line` with '*'. */
static void mask_header(char *line, const char *name)
{
    for (char *p = line; (p = find_nocase(p, name)) != NULL;) {
        char *v = p + strlen(name);
        char *end = strpbrk(v, "\r\n");

        memset(v, '*', end ? (size_t)(end - v) : strlen(v));
        p = v;
    }
}

/* --debug=net: the wire, with credentials masked. */
static int on_debug(CURL *curl, curl_infotype type, char *data, size_t len,
                    void *user)
{
    char line[512];
    size_t n = len < sizeof(line) - 1 ? len : sizeof(line) - 1;

    (void)curl;
    (void)user;
    if (type != CURLINFO_HEADER_OUT && type != CURLINFO_HEADER_IN &&
        type != CURLINFO_TEXT)
        return 0;
    memcpy(line, data, n);
    line[n] = '\0';
    mask_header(line, "Authorization:");
    mask_header(line, "D360-API-KEY:"); /* 360dialog's credential */
    log_debug(LOG_SUB_NET, "http_trace dir=%s text=%s",
              type == CURLINFO_HEADER_OUT  ? "out"
              : type == CURLINFO_HEADER_IN ? "in"
                                           : "info",
              log_q(line));
    return 0;
}

/* ---- handles ------------------------------------------------------------- */

/* With a stop flag (http_options.stop), a transfer in progress is
 * abandoned when it is set: serve's stop must not wait out a request
 * Dataverse holds (up to `timeout`).  curl calls this about once a
 * second while waiting, and more often while data moves. */
static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
    const http *h = user;

    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return *h->o.stop ? 1 : 0; /* non-zero: CURLE_ABORTED_BY_CALLBACK */
}

void http_set_stop(http *h, const volatile int *stop)
{
    h->o.stop = stop;
    curl_easy_setopt(h->curl, CURLOPT_XFERINFOFUNCTION,
                     stop ? on_progress : NULL);
    curl_easy_setopt(h->curl, CURLOPT_XFERINFODATA, h);
    curl_easy_setopt(h->curl, CURLOPT_NOPROGRESS, stop ? 0L : 1L);
}

int http_new(http **out, const struct http_options *opts)
{
    http *h;

    pthread_once(&global_once, global_init);
    h = xcalloc(1, sizeof(*h));
    h->o = *opts;
    h->curl = curl_easy_init();
    if (!h->curl) {
        free(h);
        err_set(ERR_CLASS_NET, "cannot initialise libcurl");
        return ERR_FAIL;
    }
    curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h->curl, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h->curl, CURLOPT_USERAGENT, OPTSYNC_USER_AGENT);
    curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)opts->connect_timeout_ms);
    curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, (long)opts->timeout_ms);
    curl_easy_setopt(h->curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h->curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h->curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (opts->ca_file)
        curl_easy_setopt(h->curl, CURLOPT_CAINFO, opts->ca_file);
    curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(h->curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h->curl, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, h->errbuf);
    http_set_stop(h, opts->stop);
    if (log_debug_mask & LOG_SUB_NET) {
        curl_easy_setopt(h->curl, CURLOPT_DEBUGFUNCTION, on_debug);
        curl_easy_setopt(h->curl, CURLOPT_VERBOSE, 1L);
    }
    *out = h;
    return 0;
}

void http_free(http *h)
{
    if (!h)
        return;
    curl_easy_cleanup(h->curl);
    free(h);
}

void http_stats_get(struct http_stats *out, const http *h)
{
    *out = h->stats;
}

char *http_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *copy;

    if (!e)
        abort();
    copy = xstrdup(e);
    curl_free(e);
    return copy;
}

/* ---- one attempt ----------------------------------------------------- */

/* Where a request went, for messages: scheme, host and path, no query. */
static void describe(char *buf, size_t n, const struct http_request *req)
{
    size_t len = strcspn(req->url, "?");

    snprintf(buf, n, "%s %.*s", req->method, (int)(len > 200 ? 200 : len),
             req->url);
}

static void set_method(CURL *curl, const struct http_request *req)
{
    int has_body = req->body != NULL;

    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L); /* resets the method */
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, NULL);
    if (strcmp(req->method, "GET") == 0 && !has_body)
        return;
    if (has_body || strcmp(req->method, "POST") == 0) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, has_body ? req->body : "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(has_body ? req->body_len : 0));
    }
    if (strcmp(req->method, "POST") != 0)
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req->method);
}

static struct curl_slist *header_list(const struct http_request *req)
{
    struct curl_slist *list = NULL;
    size_t i;

    for (i = 0; req->headers && req->headers[i]; i++)
        list = curl_slist_append(list, req->headers[i]);
    /* No "Expect: 100-continue" round trip before bodies. */
    return curl_slist_append(list, "Expect:");
}

static int perform(http *h, const struct http_request *req)
{
    char where[256];
    int injected = fault_check(FAULT_CURL_PERFORM);
    CURLcode cc;

    h->errbuf[0] = '\0';
    cc = injected ? (CURLcode)injected : curl_easy_perform(h->curl);
    if (cc == CURLE_OK)
        return 0;
    describe(where, sizeof(where), req);
    if (h->too_big) {
        err_set(ERR_CLASS_NET, "%s: response larger than %zu bytes", where,
                h->max_response);
        return ERR_TOOBIG;
    }
    err_set(ERR_CLASS_NET, "%s: %s%s%s", where, curl_easy_strerror(cc),
            h->errbuf[0] ? ": " : "", h->errbuf);
    return ERR_FAIL;
}

int http_send(struct http_response *out, http *h,
              const struct http_request *req)
{
    struct curl_slist *headers = header_list(req);
    curl_off_t retry_after = -1;
    int rc;

    response_reset(out, req->max_response ? req->max_response : 1 << 20);
    out->attempts++;
    h->filling = out;
    h->max_response = out->body.max;
    h->too_big = 0;
    h->stats.requests++;
    curl_easy_setopt(h->curl, CURLOPT_URL, req->url);
    set_method(h->curl, req);
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, headers);
    rc = perform(h, req);
    if (rc == 0) {
        curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &out->status);
        if (curl_easy_getinfo(h->curl, CURLINFO_RETRY_AFTER, &retry_after) ==
                CURLE_OK &&
            retry_after > 0)
            out->retry_after_ms = (int64_t)retry_after * 1000;
    }
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(headers);
    h->filling = NULL;
    return rc;
}

/* ---- retries ---------------------------------------------------------------
 */

static int64_t jitter(int64_t ms)
{
    unsigned int r = 0;

    /* Half to all of the wait, so clients that failed together spread. */
    RAND_bytes((unsigned char *)&r, sizeof(r));
    return ms / 2 + (int64_t)(r % (unsigned int)(ms / 2 + 1));
}

static int64_t backoff(const http *h, int attempt)
{
    int64_t ms = h->o.base_backoff_ms;
    int i;

    for (i = 1; i < attempt && ms < h->o.max_backoff_ms; i++)
        ms *= 2;
    if (ms > h->o.max_backoff_ms)
        ms = h->o.max_backoff_ms;
    return jitter(ms);
}

/* Sleeps `ms`, in slices, returning early when asked to stop. */
static int wait_ms(http *h, int64_t ms)
{
    struct timespec ts;
    int64_t end = clock_mono_ms() + ms, left;

    h->stats.waited_ms += ms;
    while ((left = end - clock_mono_ms()) > 0) {
        if (h->o.stop && *h->o.stop)
            return -1;
        if (left > 200)
            left = 200;
        ts.tv_sec = (time_t)(left / 1000);
        ts.tv_nsec = (long)(left % 1000) * 1000000L;
        nanosleep(&ts, NULL);
    }
    return 0;
}

static int retryable_status(long status)
{
    return status == 500 || status == 502 || status == 503 || status == 504;
}

/* Decides the wait before the next try; -1 when there is none. */
static int64_t next_wait(http *h, const struct http_response *r, int rc,
                         int attempt)
{
    if (rc == 0 && r->status == 429) {
        int64_t ms = r->retry_after_ms >= 0
                         ? r->retry_after_ms
                         : (int64_t)1000 << (attempt < 8 ? attempt : 8);

        h->stats.throttled++;
        if (h->o.throttle)
            throttle_pause(h->o.throttle, ms);
        return ms;
    }
    if (rc == ERR_FAIL || (rc == 0 && retryable_status(r->status)))
        return r->retry_after_ms > 0 ? r->retry_after_ms : backoff(h, attempt);
    return -1;
}

int http_request(struct http_response *out, http *h,
                 const struct http_request *req)
{
    int attempt, rc = 0;
    int64_t wait;
    char where[256];

    for (attempt = 1;; attempt++) {
        if (h->o.throttle && (wait = throttle_remaining(h->o.throttle)) > 0 &&
            wait_ms(h, wait) != 0)
            break;
        rc = http_send(out, h, req);
        wait = next_wait(h, out, rc, attempt);
        if (wait < 0 || attempt >= h->o.max_attempts)
            break;
        h->stats.retries++;
        describe(where, sizeof(where), req);
        log_warn("http_retry request=%s status=%ld attempt=%d wait_ms=%lld%s",
                 log_q(where), rc ? 0L : out->status, attempt, (long long)wait,
                 rc ? " reason=transport" : "");
        /* A 429's wait is the shared pause, taken at the loop's top. */
        if (!(rc == 0 && out->status == 429 && h->o.throttle) &&
            wait_ms(h, wait) != 0)
            break;
    }
    if (rc == 0 && out->status == 429) {
        err_set(ERR_CLASS_NET, "throttled (429) after %d attempts", attempt);
        return ERR_THROTTLED;
    }
    return rc;
}
