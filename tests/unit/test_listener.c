/*
 * test_listener — the HTTP listener over real HTTP (libcurl on loopback,
 * the listener in process on port 0): routing (404, 405 + Allow), the API
 * key (401 without or with a wrong one; X-API-Key and Bearer), malformed
 * requests (400), limits (413 for Content-Length and chunked bodies over
 * max_body and for more phones than max_bulk; max_connections; idle
 * timeout), gate answers equal to gate_decide() / gate_decide_bulk(),
 * cursor paging through the numbers, sends and preferences committed
 * through the writer, a commit by the `optsync opt-out` CLI (another
 * process) seen by the next request, readiness and staleness, metrics,
 * TLS with a self-signed certificate, graceful shutdown answering a
 * request in flight, and many concurrent clients with no lost or doubled
 * write (rows counted in the database).
 *
 * ctest-timeout: 600
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cache.h"
#include "clock.h"
#include "config.h"
#include "configurations.h"
#include "err.h"
#include "gate.h"
#include "jsonutil.h"
#include "listener.h"
#include "metrics.h"
#include "testutil.h"
#include "xalloc.h"

#define CFG "6a1c0d6e-0000-0000-0000-000000000001"  /* "WA Main", DE */
#define CFG2 "6a1c0d6e-0000-0000-0000-000000000002" /* "WA Other" */
#define KEY "test-api-key-0123456789"
#define ALLOWED "+4915123456789"
#define OPTED_OUT "+4915123456780"
#define TOPICAL "+4915123456781" /* single_opt_in, topics "news" */
#define DEADLINE_S 120           /* guards against hangs; never a timing */

struct fixture {
    char *dir;
    char *db;
    char *config_path;
    char **sets; /* "section.key=value" overrides, NULL-terminated */
    size_t n_sets;
    struct optsync_config *cfg;
    listener *l;
    cache *c; /* the test's own connection */
    int port;
    const char *scheme;
    char *ca_file; /* TLS tests */
};

struct resp {
    long status;
    struct strbuf body;
    char content_type[128];
    char allow[64];
    char www_auth[64];
    char connection[32];
};

/* ---- building the cache ---------------------------------------------- */

static void put_conf(cache *c, const char *id, const char *name)
{
    struct configuration_record r;

    memset(&r, 0, sizeof(r));
    snprintf(r.id, sizeof(r.id), "%s", id);
    r.name = name;
    r.active = 1;
    assert_int_equal(configurations_put(c, &r, 0), 0);
}

static void add_number(cache *c, const char *conf, int n, const char *e164,
                       int status, const char *topics)
{
    sqlite3_stmt *st =
        cache_stmt(c, "INSERT INTO numbers(dv_id, configuration_id, "
                      "raw_phone, e164, phone_error, status, dv_status, "
                      "active, topics) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, "
                      "1, ?7)");
    char dv[40], raw[40];

    snprintf(dv, sizeof(dv), "00000000-0000-4000-8000-%012d", n);
    snprintf(raw, sizeof(raw), "%s", e164 ? e164 : "");
    if (!e164)
        snprintf(raw, sizeof(raw), "not a phone %d", n);
    cache_bind_text(st, 1, dv);
    cache_bind_text(st, 2, conf);
    cache_bind_text(st, 3, raw);
    cache_bind_text(st, 4, e164);
    cache_bind_text(st, 5, e164 ? NULL : "not a phone number");
    cache_bind_int(st, 6, status);
    cache_bind_text(st, 7, topics);
    assert_int_equal(cache_step(st), SQLITE_DONE);
}

static void synced_now(cache *c)
{
    sqlite3_stmt *st = cache_stmt(
        c, "INSERT INTO sync_runs(kind, started_at, finished_at, ok) "
           "VALUES ('full', ?1, ?1, 1)");

    cache_bind_int(st, 1, clock_now_ms());
    assert_int_equal(cache_step(st), SQLITE_DONE);
}

static void fill_cache(cache *c)
{
    assert_int_equal(cache_begin(c), 0);
    put_conf(c, CFG, "WA Main");
    put_conf(c, CFG2, "WA Other");
    add_number(c, CFG, 1, ALLOWED, CONSENT_SINGLE_OPT_IN, NULL);
    add_number(c, CFG, 2, OPTED_OUT, CONSENT_OPTED_OUT, NULL);
    add_number(c, CFG, 3, TOPICAL, CONSENT_SINGLE_OPT_IN, "news");
    add_number(c, CFG2, 4, ALLOWED, CONSENT_OPTED_OUT, NULL);
    synced_now(c);
    assert_int_equal(cache_commit(c), 0);
}

/* ---- the listener ------------------------------------------------------ */

static void add_set(struct fixture *f, const char *fmt, ...)
    ATTR_PRINTFLIKE(2, 3);

static void add_set(struct fixture *f, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    f->sets = xrealloc(f->sets, (f->n_sets + 2) * sizeof(*f->sets));
    f->sets[f->n_sets++] = xvasprintf(fmt, ap);
    f->sets[f->n_sets] = NULL;
    va_end(ap);
}

static void load_config(struct fixture *f)
{
    struct config_override *ov = xcalloc(f->n_sets + 1, sizeof(*ov));
    char **copies = xcalloc(f->n_sets + 1, sizeof(*copies));
    struct config_diag diag;
    size_t i;

    memset(&diag, 0, sizeof(diag));
    for (i = 0; i < f->n_sets; i++) {
        copies[i] = xstrdup(f->sets[i]);
        assert_int_equal(config_override_parse(&ov[i], copies[i]), 0);
    }
    if (config_load(&f->cfg, f->config_path, ov, f->n_sets, &diag) != 0)
        config_diag_print(stderr, &diag);
    assert_non_null(f->cfg);
    config_diag_dispose(&diag);
    for (i = 0; i < f->n_sets; i++)
        free(copies[i]);
    free(copies);
    free(ov);
}

/* Starts the listener with the fixture's overrides plus `extra` (a
 * NULL-terminated list, or NULL). */
static void start(struct fixture *f, const char *const *extra)
{
    size_t i;

    for (i = 0; extra && extra[i]; i++)
        add_set(f, "%s", extra[i]);
    load_config(f);
    assert_int_equal(listener_new(&f->l, f->cfg, NULL), 0);
}

static void run(struct fixture *f)
{
    assert_int_equal(listener_start(f->l), 0);
    f->port = listener_port(f->l);
    assert_true(f->port > 0);
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));

    f->dir = testutil_tmpdir();
    f->db = xasprintf("%s/cache.db", f->dir);
    f->config_path = testutil_source_path("config/optsync.ini");
    f->scheme = "http";
    assert_int_equal(cache_open(&f->c, f->db, 0), 0);
    fill_cache(f->c);
    add_set(f, "cache.path=%s", f->db);
    add_set(f, "listener.port=0");
    add_set(f, "listener.api_key=%s", KEY);
    add_set(f, "listener.max_body=2KiB");
    add_set(f, "listener.max_bulk=50");
    add_set(f, "listener.threads=2");
    add_set(f, "log.level=warn");
    metrics_reset();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    size_t i;

    clock_set_fixed(0);
    listener_free(f->l);
    config_free(f->cfg);
    cache_close(f->c);
    for (i = 0; i < f->n_sets; i++)
        free(f->sets[i]);
    free(f->sets);
    testutil_rmtree(f->dir);
    free(f->ca_file);
    free(f->config_path);
    free(f->db);
    free(f->dir);
    free(f);
    return 0;
}

/* ---- HTTP with libcurl -------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct resp *r = arg;

    assert_int_equal(strbuf_add(&r->body, p, size * n), 0);
    return size * n;
}

static void keep_header(char *dst, size_t cap, const char *line, size_t len,
                        const char *name)
{
    size_t nl = strlen(name), i;

    if (len <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return;
    line += nl + 1;
    len -= nl + 1;
    while (len && *line == ' ') {
        line++;
        len--;
    }
    while (len && (line[len - 1] == '\r' || line[len - 1] == '\n'))
        len--;
    for (i = 0; i < len && i + 1 < cap; i++)
        dst[i] = line[i];
    dst[i] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct resp *r = arg;

    keep_header(r->content_type, sizeof(r->content_type), p, size * n,
                "Content-Type");
    keep_header(r->allow, sizeof(r->allow), p, size * n, "Allow");
    keep_header(r->www_auth, sizeof(r->www_auth), p, size * n,
                "WWW-Authenticate");
    keep_header(r->connection, sizeof(r->connection), p, size * n,
                "Connection");
    return size * n;
}

struct upload {
    const char *data;
    size_t len, pos;
};

static size_t on_read(char *p, size_t size, size_t n, void *arg)
{
    struct upload *u = arg;
    size_t k = u->len - u->pos;

    if (k > size * n)
        k = size * n;
    if (k > 700)
        k = 700; /* several chunks */
    memcpy(p, u->data + u->pos, k);
    u->pos += k;
    return k;
}

struct call {
    const char *method;         /* NULL: GET */
    const char *path;           /* with the query */
    const char *key;            /* X-API-Key, or NULL */
    const char *const *headers; /* more, NULL-terminated, or NULL */
    const char *body;           /* NULL: none */
    int chunked;
    CURL *handle; /* NULL: a new connection */
};

static void resp_init(struct resp *r)
{
    memset(r, 0, sizeof(*r));
    strbuf_init(&r->body, 64 * 1024 * 1024);
}

/* Sends one request; returns the curl code (0 when an answer came). */
static CURLcode do_call(const struct fixture *f, const struct call *c,
                        struct resp *out)
{
    struct curl_slist *hl = NULL;
    struct upload up = { c->body, c->body ? strlen(c->body) : 0, 0 };
    CURL *h = c->handle ? c->handle : curl_easy_init();
    char url[512], keyh[128];
    CURLcode rc;
    size_t i;

    resp_init(out);
    snprintf(url, sizeof(url), "%s://%s:%d%s", f->scheme,
             f->ca_file ? "localhost" : "127.0.0.1", f->port, c->path);
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)DEADLINE_S);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (f->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, f->ca_file);
    if (c->key) {
        snprintf(keyh, sizeof(keyh), "X-API-Key: %s", c->key);
        hl = curl_slist_append(hl, keyh);
    }
    for (i = 0; c->headers && c->headers[i]; i++)
        hl = curl_slist_append(hl, c->headers[i]);
    if (c->body && c->chunked) {
        hl = curl_slist_append(hl, "Transfer-Encoding: chunked");
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, &up);
    } else if (c->body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)up.len);
    }
    if (c->method)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hl);
    if (!c->handle)
        curl_easy_cleanup(h);
    return rc;
}

static void call(const struct fixture *f, const struct call *c,
                 struct resp *out)
{
    CURLcode rc = do_call(f, c, out);

    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", c->method ? c->method : "GET", c->path,
                 curl_easy_strerror(rc));
}

static cJSON *json_of(const struct resp *r)
{
    cJSON *j = jsonutil_parse(r->body.data, r->body.len);

    if (!j)
        fail_msg("not JSON (%ld): %s", r->status, r->body.data);
    return j;
}

static const char *str_of(const cJSON *o, const char *name)
{
    const char *s = jsonutil_str(o, name);

    return s ? s : "(null)";
}

static long get(const struct fixture *f, const char *path, const char *key,
                cJSON **json)
{
    struct call c = { NULL, path, key, NULL, NULL, 0, NULL };
    struct resp r;
    long status;

    call(f, &c, &r);
    status = r.status;
    if (json)
        *json = json_of(&r);
    strbuf_dispose(&r.body);
    return status;
}

static long post(const struct fixture *f, const char *path, const char *body,
                 cJSON **json)
{
    struct call c = { "POST", path, KEY, NULL, body, 0, NULL };
    struct resp r;
    long status;

    call(f, &c, &r);
    status = r.status;
    if (json)
        *json = json_of(&r);
    strbuf_dispose(&r.body);
    return status;
}

/* The decision GET /v1/gate gives, as "decision/reason/status". */
static void gate_get(const struct fixture *f, char *out, size_t cap,
                     const char *conf, const char *phone, const char *topic)
{
    char *ec = curl_easy_escape(NULL, conf, 0);
    char *ep = curl_easy_escape(NULL, phone, 0);
    char *et = topic ? curl_easy_escape(NULL, topic, 0) : NULL;
    char *path = xasprintf("/v1/gate?configuration=%s&phone=%s%s%s", ec, ep,
                           et ? "&topic=" : "", et ? et : "");
    cJSON *j;

    assert_int_equal(get(f, path, KEY, &j), 200);
    snprintf(out, cap, "%s/%s/%s/%s", str_of(j, "decision"),
             str_of(j, "reason"), str_of(j, "status"), str_of(j, "e164"));
    assert_string_equal(str_of(j, "phone"), phone);
    cJSON_Delete(j);
    free(path);
    curl_free(ec);
    curl_free(ep);
    curl_free(et);
}

/* The same from gate_decide() on the test's own connection. */
static void gate_local(const struct fixture *f, char *out, size_t cap,
                       const char *conf, const char *phone, const char *topic)
{
    struct gate_options opts;
    struct gate_result res;
    gate *g;

    gate_options_from_config(&opts, f->cfg);
    opts.index = 0;
    assert_int_equal(gate_new(&g, f->c, &opts), 0);
    assert_int_equal(gate_decide(&res, g, conf, phone, topic), 0);
    snprintf(out, cap, "%s/%s/%s/%s", gate_decision_name(res.decision),
             gate_reason_name(res.reason), consent_status_name(res.status),
             res.e164[0] ? res.e164 : "(null)");
    gate_free(g);
}

/* ---- routing, health, keys ----------------------------------------------- */

static void test_listener__routes_health_and_errors(void **state)
{
    struct fixture *f = *state;
    struct call c = { "PUT", "/healthz", NULL, NULL, NULL, 0, NULL };
    struct resp r;
    cJSON *j;

    start(f, NULL);
    run(f);
    call(f, &(struct call){ NULL, "/healthz", NULL, NULL, NULL, 0, NULL }, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "ok\n");
    strbuf_dispose(&r.body);

    assert_int_equal(get(f, "/nope", NULL, &j), 404);
    assert_string_equal(str_of(j, "error"), "not_found");
    cJSON_Delete(j);
    assert_int_equal(get(f, "/v1/gate/extra", KEY, NULL), 404);

    call(f, &c, &r); /* PUT on a GET route */
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "GET, HEAD");
    strbuf_dispose(&r.body);
    c.method = "DELETE";
    c.path = "/v1/gate";
    c.key = KEY;
    call(f, &c, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "GET, HEAD, POST");
    strbuf_dispose(&r.body);

    assert_int_equal(get(f, "/readyz", NULL, &j), 200);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "ready")));
    cJSON_Delete(j);
}

static void test_listener__api_key_required(void **state)
{
    struct fixture *f = *state;
    const char *bearer[] = { "Authorization: Bearer " KEY, NULL };
    const char *lower[] = { "x-api-key: " KEY, NULL };
    const char *wrong_bearer[] = { "Authorization: Bearer nope", NULL };
    const char *path = "/v1/gate?configuration=WA%20Main&phone=" ALLOWED;
    struct call c = { NULL, path, NULL, NULL, NULL, 0, NULL };
    struct resp r;
    char *long_key;

    start(f, NULL);
    run(f);
    call(f, &c, &r);
    assert_int_equal(r.status, 401);
    assert_string_equal(r.www_auth, "Bearer");
    strbuf_dispose(&r.body);
    assert_int_equal(get(f, path, "test-api-key-012345678", NULL), 401);
    assert_int_equal(get(f, path, KEY "x", NULL), 401);
    assert_int_equal(get(f, path, "", NULL), 401);
    long_key = xmalloc(301);
    memset(long_key, 'k', 300);
    long_key[300] = '\0';
    assert_int_equal(get(f, path, long_key, NULL), 401);
    free(long_key);
    c.headers = wrong_bearer;
    call(f, &c, &r);
    assert_int_equal(r.status, 401);
    strbuf_dispose(&r.body);
    c.headers = bearer;
    call(f, &c, &r);
    assert_int_equal(r.status, 200);
    strbuf_dispose(&r.body);
    c.headers = lower;
    call(f, &c, &r);
    assert_int_equal(r.status, 200);
    strbuf_dispose(&r.body);
    assert_int_equal(get(f, path, KEY, NULL), 200);
    /* Without a configured key every /v1 route stays closed. */
}

static void test_listener__no_configured_key_closes_v1(void **state)
{
    struct fixture *f = *state;
    const char *const extra[] = { "listener.api_key=", NULL };

    start(f, extra);
    run(f);
    assert_int_equal(get(f, "/v1/gate?configuration=x&phone=1", "", NULL), 401);
    assert_int_equal(get(f, "/healthz", NULL, NULL), 200);
}

/* ---- the gate ------------------------------------------------------------ */

static void test_listener__gate_get_equals_gate_decide(void **state)
{
    struct fixture *f = *state;
    static const char *const cases[][3] = {
        { "WA Main", ALLOWED, NULL },
        { CFG, ALLOWED, NULL },
        { "WA Main", OPTED_OUT, NULL },
        { "WA Main", "0151 23456789", NULL },  /* national, DE */
        { "WA Main", "+4915199999999", NULL }, /* no record */
        { "WA Main", "not a phone", NULL },
        { "WA Nowhere", ALLOWED, NULL },
        { "WA Other", ALLOWED, NULL },
        { "WA Main", TOPICAL, "news" },
        { "WA Main", TOPICAL, "offers" },
    };
    char remote[256], local[256];
    cJSON *j;
    size_t i;

    start(f, NULL);
    run(f);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        gate_get(f, remote, sizeof(remote), cases[i][0], cases[i][1],
                 cases[i][2]);
        gate_local(f, local, sizeof(local), cases[i][0], cases[i][1],
                   cases[i][2]);
        assert_string_equal(remote, local);
    }
    gate_get(f, remote, sizeof(remote), "WA Main", ALLOWED, NULL);
    assert_string_equal(remote, "allow/allowed/single_opt_in/" ALLOWED);
    assert_int_equal(get(f, "/v1/gate?configuration=WA%20Main", KEY, &j), 400);
    assert_string_equal(str_of(j, "error"), "bad_request");
    cJSON_Delete(j);
    assert_int_equal(get(f, "/v1/gate?configuration", KEY, NULL), 400);
    assert_true(metrics_gate_decisions(GATE_ALLOWED) >= 2);
    assert_true(metrics_gate_decisions(GATE_OPTED_OUT) >= 1);
}

static char *bulk_body(const char *conf, size_t n, const char *const *phones)
{
    cJSON *o = cJSON_CreateObject(), *arr;
    char *text;
    size_t i;

    cJSON_AddStringToObject(o, "configuration", conf);
    arr = cJSON_AddArrayToObject(o, "phones");
    for (i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(phones[i]));
    text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static void test_listener__gate_bulk(void **state)
{
    struct fixture *f = *state;
    const char *phones[] = { OPTED_OUT,     "garbage", ALLOWED,
                             "01512345678", TOPICAL,   ALLOWED };
    const char *many[51];
    char remote[256], local[256];
    char *body = bulk_body("WA Main", 6, phones);
    cJSON *j, *item;
    size_t i = 0;

    start(f, NULL);
    run(f);
    assert_int_equal(post(f, "/v1/gate", body, &j), 200);
    assert_true(cJSON_IsArray(j));
    assert_int_equal(cJSON_GetArraySize(j), 6);
    cJSON_ArrayForEach(item, j)
    {
        assert_string_equal(str_of(item, "phone"), phones[i]);
        snprintf(remote, sizeof(remote), "%s/%s/%s/%s",
                 str_of(item, "decision"), str_of(item, "reason"),
                 str_of(item, "status"), str_of(item, "e164"));
        gate_local(f, local, sizeof(local), "WA Main", phones[i], NULL);
        assert_string_equal(remote, local);
        i++;
    }
    cJSON_Delete(j);
    free(body);

    for (i = 0; i < 51; i++)
        many[i] = ALLOWED;
    body = bulk_body("WA Main", 50, many);
    assert_int_equal(post(f, "/v1/gate", body, NULL), 200);
    free(body);
    body = bulk_body("WA Main", 51, many);
    assert_int_equal(post(f, "/v1/gate", body, &j), 413); /* max_bulk */
    assert_string_equal(str_of(j, "error"), "too_many_phones");
    cJSON_Delete(j);
    free(body);

    assert_int_equal(post(f, "/v1/gate", "{\"configuration\": ", &j), 400);
    cJSON_Delete(j);
    assert_int_equal(post(f, "/v1/gate", "[1, 2]", NULL), 400);
    assert_int_equal(post(f, "/v1/gate",
                          "{\"configuration\":\"WA Main\",\"phones\":[1]}",
                          NULL),
                     400);
    assert_int_equal(post(f, "/v1/gate", "{\"phones\":[]}", NULL), 400);
}

/* max_body: evhttp refuses on the Content-Length, and on the chunk sizes
 * of a chunked body, before the body is read whole. */
static void test_listener__oversize_bodies_get_413(void **state)
{
    struct fixture *f = *state;
    char *big = xmalloc(3000), *body;
    struct call c = { "POST", "/v1/gate", KEY, NULL, NULL, 0, NULL };
    struct resp r;

    memset(big, 'x', 2999);
    big[2999] = '\0';
    body = xasprintf("{\"configuration\":\"WA Main\",\"phones\":[],"
                     "\"pad\":\"%s\"}",
                     big);
    start(f, NULL);
    run(f);
    c.body = body;
    call(f, &c, &r);
    assert_int_equal(r.status, 413);
    strbuf_dispose(&r.body);
    c.chunked = 1;
    call(f, &c, &r);
    assert_int_equal(r.status, 413);
    strbuf_dispose(&r.body);
    /* Under the limit, chunked, is fine. */
    c.body = "{\"configuration\":\"WA Main\",\"phones\":[\"" ALLOWED "\"]}";
    call(f, &c, &r);
    assert_int_equal(r.status, 200);
    strbuf_dispose(&r.body);
    free(body);
    free(big);
}

/* Sends `head` on a raw connection and returns the status line's code
 * of the answer: the body announced in `head` is never sent. */
static int raw_status(const struct fixture *f, const char *head)
{
    struct sockaddr_in sa;
    struct pollfd p;
    char buf[256];
    ssize_t got;
    int fd = socket(AF_INET, SOCK_STREAM, 0), code = 0;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)f->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(send(fd, head, strlen(head), 0), (ssize_t)strlen(head));
    p.fd = fd;
    p.events = POLLIN;
    assert_int_equal(poll(&p, 1, DEADLINE_S * 1000), 1);
    got = recv(fd, buf, sizeof(buf) - 1, 0);
    assert_true(got > 12);
    buf[got] = '\0';
    assert_int_equal(sscanf(buf, "HTTP/1.%*d %d", &code), 1);
    close(fd);
    return code;
}

/* The refusal comes from the announced size alone: nothing of the body
 * was sent, so nothing of it was buffered. */
static void test_listener__body_size_checked_before_reading(void **state)
{
    struct fixture *f = *state;

    start(f, NULL);
    run(f);
    assert_int_equal(raw_status(f, "POST /v1/gate HTTP/1.1\r\nHost: x\r\n"
                                   "X-API-Key: " KEY "\r\n"
                                   "Content-Length: 100000000\r\n\r\n"),
                     413);
    assert_int_equal(raw_status(f, "POST /v1/gate HTTP/1.1\r\nHost: x\r\n"
                                   "X-API-Key: " KEY "\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\n"
                                   "100000\r\n"),
                     413);
    /* A size under the limit is read and handled. */
    assert_int_equal(raw_status(f, "POST /v1/gate HTTP/1.1\r\nHost: x\r\n"
                                   "X-API-Key: " KEY "\r\n"
                                   "Content-Length: 2\r\n\r\n{}"),
                     400);
}

/* ---- paging ----------------------------------------------------------------
 */

/* The n of add_number's "00000000-0000-4000-8000-%012d". */
static int dv_number(const char *dv)
{
    assert_int_equal(strlen(dv), 36);
    return (int)strtol(dv + 24, NULL, 10);
}

static void test_listener__numbers_paging(void **state)
{
    struct fixture *f = *state;
    char e164[32], path[256], *seen = xcalloc(1000, 1);
    const char *cursor = NULL;
    char cur[64] = "";
    int i, pages = 0, total = 0, n;
    cJSON *j, *row;

    assert_int_equal(cache_begin(f->c), 0);
    for (i = 0; i < 230; i++) {
        /* 30 phones twice: keyset paging must not skip duplicates */
        snprintf(e164, sizeof(e164), "+49160%07d", 1000000 + (i * 7919) % 200);
        add_number(f->c, CFG, 100 + i, e164, CONSENT_DOUBLE_OPT_IN, NULL);
    }
    for (i = 0; i < 5; i++)
        add_number(f->c, CFG, 500 + i, NULL, CONSENT_NONE, NULL);
    assert_int_equal(cache_commit(f->c), 0);
    start(f, NULL);
    run(f);
    do {
        snprintf(path, sizeof(path),
                 "/v1/configurations/WA%%20Main/numbers?limit=100%s%s",
                 cursor ? "&cursor=" : "", cursor ? cur : "");
        assert_int_equal(get(f, path, KEY, &j), 200);
        assert_string_equal(str_of(j, "configuration_id"), CFG);
        n = 0;
        cJSON_ArrayForEach(row, cJSON_GetObjectItem(j, "numbers"))
        {
            const char *id = str_of(row, "id");

            assert_string_equal(str_of(row, "configuration_id"), CFG);
            i = dv_number(id);
            assert_false(seen[i]);
            seen[i] = 1;
            n++;
        }
        total += n;
        pages++;
        cursor = jsonutil_str(j, "next_cursor");
        if (cursor)
            snprintf(cur, sizeof(cur), "%s", cursor);
        cursor = cursor ? cur : NULL;
        cJSON_Delete(j);
    } while (cursor && pages < 10);
    assert_int_equal(total, 3 + 230 + 5);
    assert_int_equal(pages, 3);
    assert_int_equal(
        get(f, "/v1/configurations/" CFG "/numbers?cursor=zz", KEY, NULL), 400);
    assert_int_equal(
        get(f, "/v1/configurations/" CFG "/numbers?limit=0", KEY, NULL), 400);
    assert_int_equal(
        get(f, "/v1/configurations/WA%20Nowhere/numbers", KEY, NULL), 404);
    assert_int_equal(get(f, "/v1/configurations/" CFG "/numbers", NULL, NULL),
                     401);
    free(seen);
}

/* ---- writes -------------------------------------------------------------- */

/* Runs `optsync -c config -o ... ARGS` (the real binary, another
 * process); returns its exit status. */
static int run_cli(const struct fixture *f, const char *const *args)
{
    const char *bin = getenv("OPTSYNC_BIN");
    char *argv[32];
    size_t n = 0, i;
    pid_t pid;
    int status;

    if (!bin)
        skip();
    argv[n++] = (char *)(uintptr_t)bin;
    argv[n++] = (char *)"-c";
    argv[n++] = f->config_path;
    for (i = 0; i < f->n_sets; i++) {
        argv[n++] = (char *)"-o";
        argv[n++] = f->sets[i];
    }
    for (i = 0; args[i]; i++)
        argv[n++] = (char *)(uintptr_t)args[i];
    argv[n] = NULL;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execv(bin, argv);
        _exit(127);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_listener__cli_commit_seen_by_next_request(void **state)
{
    struct fixture *f = *state;
    const char *const opt_out[] = { "opt-out", ALLOWED,    "--configuration",
                                    "WA Main", "--source", "customer-service",
                                    NULL };
    char d[256];

    start(f, NULL);
    run(f);
    gate_get(f, d, sizeof(d), "WA Main", ALLOWED, NULL);
    assert_string_equal(d, "allow/allowed/single_opt_in/" ALLOWED);
    assert_int_equal(run_cli(f, opt_out), 0);
    /* Both workers: whichever takes the next requests must know. */
    gate_get(f, d, sizeof(d), "WA Main", ALLOWED, NULL);
    assert_string_equal(d, "deny/opted_out/opted_out/" ALLOWED);
    gate_get(f, d, sizeof(d), "WA Main", ALLOWED, NULL);
    assert_string_equal(d, "deny/opted_out/opted_out/" ALLOWED);
}

static void test_listener__sends_count_toward_caps(void **state)
{
    struct fixture *f = *state;
    const char *const extra[] = { "gate.frequency_cap=2", NULL };
    const char *send = "{\"configuration\":\"WA Main\",\"phone\":\"" ALLOWED
                       "\",\"topic\":\"news\"}";
    char d[256], *at_body;
    cJSON *j;

    start(f, extra);
    run(f);
    assert_int_equal(post(f, "/v1/sends", send, &j), 200);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "recorded")));
    assert_string_equal(str_of(j, "e164"), ALLOWED);
    cJSON_Delete(j);
    gate_get(f, d, sizeof(d), "WA Main", ALLOWED, NULL);
    assert_string_equal(d, "allow/allowed/single_opt_in/" ALLOWED);
    /* "at" in milliseconds, inside the frequency period. */
    at_body = xasprintf("{\"configuration\":\"" CFG "\",\"phone\":\"" ALLOWED
                        "\",\"at\":%lld}",
                        (long long)clock_now_ms() - 3600 * 1000);
    assert_int_equal(post(f, "/v1/sends", at_body, NULL), 200);
    free(at_body);
    assert_int_equal(post(f, "/v1/sends", send, NULL), 200);
    /* The reply came after the commit: the rows are there now. */
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM sends"), 3);
    gate_get(f, d, sizeof(d), "WA Main", ALLOWED, NULL);
    assert_string_equal(d, "deny/frequency_capped/single_opt_in/" ALLOWED);
    assert_int_equal(
        post(f, "/v1/sends",
             "{\"configuration\":\"WA Nowhere\",\"phone\":\"" ALLOWED "\"}",
             &j),
        404);
    assert_string_equal(str_of(j, "error"), "unknown_configuration");
    cJSON_Delete(j);
    assert_int_equal(post(f, "/v1/sends",
                          "{\"configuration\":\"WA Main\",\"phone\":\"x\"}",
                          &j),
                     400);
    assert_string_equal(str_of(j, "error"), "invalid_phone");
    cJSON_Delete(j);
    assert_int_equal(post(f, "/v1/sends",
                          "{\"configuration\":\"WA Main\",\"phone\":\"" ALLOWED
                          "\",\"at\":\"yesterday\"}",
                          NULL),
                     400);
    assert_int_equal(post(f, "/v1/sends", "{]", NULL), 400);
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM sends"), 3);
}

static void test_listener__preferences(void **state)
{
    struct fixture *f = *state;
    char d[256];
    cJSON *j;
    long long ledger0 = testutil_query_int(f->c, "SELECT count(*) FROM ledger");

    start(f, NULL);
    run(f);
    gate_get(f, d, sizeof(d), "WA Main", ALLOWED, "offers");
    assert_string_equal(d, "allow/allowed/single_opt_in/" ALLOWED);
    assert_int_equal(post(f, "/v1/preferences",
                          "{\"configuration\":\"WA Main\",\"phone\":\"" ALLOWED
                          "\",\"opt_out_topic\":\"offers\",\"taken_by\":"
                          "\"agent 7\",\"note\":\"phone call\"}",
                          &j),
                     200);
    assert_string_equal(str_of(j, "opted_out_topic"), "offers");
    cJSON_Delete(j);
    gate_get(f, d, sizeof(d), "WA Main", ALLOWED, "offers");
    assert_string_equal(d, "deny/topic_opted_out/single_opt_in/" ALLOWED);
    gate_get(f, d, sizeof(d), "WA Main", ALLOWED, "news");
    assert_string_equal(d, "allow/allowed/single_opt_in/" ALLOWED);

    assert_int_equal(post(f, "/v1/preferences",
                          "{\"configuration\":\"WA Main\",\"phone\":\"" ALLOWED
                          "\",\"paused_until\":\"14d\"}",
                          &j),
                     200);
    assert_non_null(jsonutil_str(j, "paused_until"));
    cJSON_Delete(j);
    gate_get(f, d, sizeof(d), "WA Main", ALLOWED, NULL);
    assert_string_equal(d, "deny/paused/single_opt_in/" ALLOWED);
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM ledger"),
                     ledger0 + 2);

    assert_int_equal(post(f, "/v1/preferences",
                          "{\"configuration\":\"WA Main\",\"phone\":"
                          "\"+4915199999999\",\"paused_until\":\"1d\"}",
                          &j),
                     404);
    assert_string_equal(str_of(j, "error"), "no_record");
    cJSON_Delete(j);
    assert_int_equal(
        post(f, "/v1/preferences",
             "{\"configuration\":\"WA Main\",\"phone\":\"" ALLOWED "\"}", NULL),
        400);
    assert_int_equal(post(f, "/v1/preferences",
                          "{\"configuration\":\"WA Main\",\"phone\":\"" ALLOWED
                          "\",\"paused_until\":\"soon\"}",
                          NULL),
                     400);
    assert_int_equal(post(f, "/v1/preferences",
                          "{\"configuration\":\"Nope\",\"phone\":\"" ALLOWED
                          "\",\"paused_until\":\"1d\"}",
                          NULL),
                     404);
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM ledger"),
                     ledger0 + 2);
}

/* ---- concurrency -----------------------------------------------------------
 */

#define CLIENTS 8
#define PER_CLIENT 40

struct client {
    const struct fixture *f;
    int index;
    int ok; /* 200s */
};

static void *client_main(void *arg)
{
    struct client *c = arg;
    CURL *h = curl_easy_init();
    char body[256];
    struct call k = { "POST", "/v1/sends", KEY, NULL, body, 0, h };
    struct resp r;
    int i;

    for (i = 0; i < PER_CLIENT; i++) {
        snprintf(body, sizeof(body),
                 "{\"configuration\":\"WA Main\",\"phone\":\"+4916%09d\","
                 "\"topic\":\"t%d\"}",
                 100000000 + c->index * 1000 + i, i);
        if (do_call(c->f, &k, &r) == CURLE_OK && r.status == 200)
            c->ok++;
        strbuf_dispose(&r.body);
    }
    curl_easy_cleanup(h);
    return NULL;
}

static void test_listener__concurrent_writes_not_lost_or_doubled(void **state)
{
    struct fixture *f = *state;
    struct client clients[CLIENTS];
    pthread_t th[CLIENTS];
    struct writer_stats st;
    int i, ok = 0;

    start(f, NULL);
    run(f);
    for (i = 0; i < CLIENTS; i++) {
        clients[i].f = f;
        clients[i].index = i;
        clients[i].ok = 0;
        assert_int_equal(pthread_create(&th[i], NULL, client_main, &clients[i]),
                         0);
    }
    for (i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        ok += clients[i].ok;
    }
    assert_int_equal(ok, CLIENTS * PER_CLIENT);
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM sends"),
                     CLIENTS * PER_CLIENT);
    assert_int_equal(testutil_query_int(f->c, "SELECT count(DISTINCT e164 || "
                                              "topic) FROM sends"),
                     CLIENTS * PER_CLIENT);
    writer_stats(&st, listener_writer(f->l));
    assert_int_equal(st.items, CLIENTS * PER_CLIENT);
    assert_int_equal(st.failed, 0);
    assert_true(st.transactions <= st.items);
    print_message("concurrent sends: %llu items in %llu transactions\n",
                  (unsigned long long)st.items,
                  (unsigned long long)st.transactions);
}

/* ---- TLS -------------------------------------------------------------------
 */

static void test_listener__tls(void **state)
{
    struct fixture *f = *state;
    char *cmd, *cert = xasprintf("%s/cert.pem", f->dir);
    char *key = xasprintf("%s/key.pem", f->dir);
    const char *extra[3];
    struct resp r;
    char d[256];

    cmd = xasprintf("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s "
                    "-out %s -days 2 -subj /CN=localhost "
                    "-addext subjectAltName=DNS:localhost >/dev/null 2>&1",
                    key, cert);
    assert_int_equal(system(cmd), 0);
    extra[0] = xasprintf("listener.tls_cert=%s", cert);
    extra[1] = xasprintf("listener.tls_key=%s", key);
    extra[2] = NULL;
    start(f, extra);
    run(f);
    f->scheme = "https";
    f->ca_file = xstrdup(cert);
    assert_int_equal(get(f, "/healthz", NULL, NULL), 200);
    gate_get(f, d, sizeof(d), "WA Main", ALLOWED, NULL);
    assert_string_equal(d, "allow/allowed/single_opt_in/" ALLOWED);
    /* Plain HTTP on the TLS port gets no HTTP answer. */
    f->scheme = "http";
    assert_int_not_equal(
        do_call(f,
                &(struct call){ NULL, "/healthz", NULL, NULL, NULL, 0, NULL },
                &r),
        CURLE_OK);
    strbuf_dispose(&r.body);
    free((char *)(uintptr_t)extra[0]);
    free((char *)(uintptr_t)extra[1]);
    free(cmd);
    free(cert);
    free(key);
}

static void test_listener__tls_files_must_match(void **state)
{
    struct fixture *f = *state;
    const char *const extra[] = { "listener.tls_cert=/nonexistent.pem",
                                  "listener.tls_key=/nonexistent.pem", NULL };
    listener *l = NULL;

    start(f, NULL); /* a valid one, freed below */
    listener_free(f->l);
    f->l = NULL;
    config_free(f->cfg);
    f->cfg = NULL;
    add_set(f, "%s", extra[0]);
    add_set(f, "%s", extra[1]);
    load_config(f);
    assert_int_equal(listener_new(&l, f->cfg, NULL), ERR_FAIL);
    assert_non_null(strstr(err_message(), "tls_cert"));
}

/* ---- shutdown and limits ------------------------------------------------- */

struct slow {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int running, release, done_status;
};

static int slow_fn(cache *c, void *payload)
{
    struct slow *s = payload;
    sqlite3_stmt *st = cache_stmt(c, "INSERT INTO sends(configuration_id, "
                                     "e164, at) VALUES ('slow', '+1', 1)");

    pthread_mutex_lock(&s->mu);
    s->running = 1;
    pthread_cond_broadcast(&s->cond);
    while (!s->release)
        pthread_cond_wait(&s->cond, &s->mu);
    pthread_mutex_unlock(&s->mu);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

static void slow_done(struct route_req *r, int rc, int committed, void *payload)
{
    (void)payload;
    if (committed && rc == 0)
        route_reply(r, 200, "text/plain", "committed\n", 10);
    else
        route_reply_error(r, 503, "not_committed", NULL);
}

static void on_slow(struct route_req *r, void *arg)
{
    route_req_write(r, slow_fn, arg, slow_done);
}

struct bg_call {
    const struct fixture *f;
    struct call c;
    struct resp r;
    CURLcode rc;
};

static void *bg_call_main(void *arg)
{
    struct bg_call *b = arg;

    b->rc = do_call(b->f, &b->c, &b->r);
    return NULL;
}

static void *bg_stop_main(void *arg)
{
    listener_stop(arg);
    return NULL;
}

static void wait_flag(struct slow *s, int *flag)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += DEADLINE_S;
    pthread_mutex_lock(&s->mu);
    while (!*flag)
        assert_int_equal(pthread_cond_timedwait(&s->cond, &s->mu, &until), 0);
    pthread_mutex_unlock(&s->mu);
}

static void test_listener__shutdown_answers_requests_in_flight(void **state)
{
    struct fixture *f = *state;
    const char *const extra[] = { "listener.threads=1", NULL };
    struct slow s = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0,
                      0 };
    struct bg_call b;
    pthread_t caller, stopper;
    CURL *keep = curl_easy_init();
    struct call probe = { NULL, "/healthz", NULL, NULL, NULL, 0, keep };
    struct resp r;
    int tries;

    start(f, extra);
    assert_int_equal(
        listener_route_add(f->l, ROUTE_POST, "/test/slow", on_slow, &s, 0), 0);
    run(f);
    call(f, &probe, &r); /* opens the keep-alive connection */
    assert_int_equal(r.status, 200);
    strbuf_dispose(&r.body);

    memset(&b, 0, sizeof(b));
    b.f = f;
    b.c = (struct call){ "POST", "/test/slow", NULL, NULL, "x", 0, NULL };
    assert_int_equal(pthread_create(&caller, NULL, bg_call_main, &b), 0);
    wait_flag(&s, &s.running); /* in flight: its item holds the writer */
    assert_int_equal(pthread_create(&stopper, NULL, bg_stop_main, f->l), 0);
    /* Wait until the worker is stopping: a new request on the open
     * connection is then refused with 503 and Connection: close. */
    for (tries = 0; tries < 100000; tries++) {
        call(f, &probe, &r);
        strbuf_dispose(&r.body);
        if (r.status == 503)
            break;
    }
    assert_int_equal(r.status, 503);
    assert_string_equal(r.connection, "close");
    pthread_mutex_lock(&s.mu);
    s.release = 1;
    pthread_cond_broadcast(&s.cond);
    pthread_mutex_unlock(&s.mu);
    pthread_join(caller, NULL);
    pthread_join(stopper, NULL);
    assert_int_equal(b.rc, CURLE_OK);
    assert_int_equal(b.r.status, 200);
    assert_string_equal(b.r.body.data, "committed\n");
    strbuf_dispose(&b.r.body);
    assert_int_equal(testutil_query_int(f->c, "SELECT count(*) FROM sends "
                                              "WHERE configuration_id = "
                                              "'slow'"),
                     1);
    /* Stopped: nothing listens any more. */
    assert_int_not_equal(
        do_call(f,
                &(struct call){ NULL, "/healthz", NULL, NULL, NULL, 0, NULL },
                &r),
        CURLE_OK);
    strbuf_dispose(&r.body);
    curl_easy_cleanup(keep);
}

static void test_listener__max_connections(void **state)
{
    struct fixture *f = *state;
    const char *const extra[] = { "listener.threads=1",
                                  "listener.max_connections=1", NULL };
    CURL *a = curl_easy_init();
    struct call ca = { NULL, "/healthz", NULL, NULL, NULL, 0, a };
    struct call cb = { NULL, "/healthz", NULL, NULL, NULL, 0, NULL };
    struct resp r;
    int tries;

    start(f, extra);
    run(f);
    call(f, &ca, &r);
    assert_int_equal(r.status, 200);
    strbuf_dispose(&r.body);
    call(f, &cb, &r); /* a second connection while `a` stays open */
    assert_int_equal(r.status, 503);
    assert_string_equal(r.connection, "close");
    strbuf_dispose(&r.body);
    curl_easy_cleanup(a); /* closes it: the slot comes free */
    for (tries = 0; tries < 100000; tries++) {
        call(f, &cb, &r);
        strbuf_dispose(&r.body);
        if (r.status == 200)
            break;
    }
    assert_int_equal(r.status, 200);
}

static void test_listener__idle_connections_are_closed(void **state)
{
    struct fixture *f = *state;
    const char *const extra[] = { "listener.idle_timeout=1", NULL };
    struct sockaddr_in sa;
    struct pollfd p;
    char buf[16];
    int fd;

    start(f, extra);
    run(f);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)f->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    /* Half a request, then silence: the server must hang up by itself. */
    assert_int_equal(send(fd, "GET /healthz HTTP/1.1\r\n", 23, 0), 23);
    p.fd = fd;
    p.events = POLLIN;
    assert_int_equal(poll(&p, 1, DEADLINE_S * 1000), 1);
    assert_true(recv(fd, buf, sizeof(buf), 0) <= 0);
    close(fd);
}

/* ---- readiness and metrics ------------------------------------------------
 */

static void test_listener__readyz_and_gate_follow_staleness(void **state)
{
    struct fixture *f = *state;
    char d[256];
    cJSON *j;

    start(f, NULL);
    run(f);
    assert_int_equal(get(f, "/readyz", NULL, NULL), 200);
    clock_set_fixed(clock_now_ms() + f->cfg->sync.max_staleness * 1000 + 1000);
    assert_int_equal(get(f, "/readyz", NULL, &j), 503);
    assert_string_equal(str_of(j, "reason"), "stale");
    cJSON_Delete(j);
    gate_get(f, d, sizeof(d), "WA Main", ALLOWED, NULL);
    assert_string_equal(d, "deny/cache_stale/none/" ALLOWED);
    clock_set_fixed(0);
    assert_int_equal(cache_exec(f->c, "DELETE FROM sync_runs"), 0);
    assert_int_equal(get(f, "/readyz", NULL, &j), 503);
    assert_string_equal(str_of(j, "reason"), "never_synced");
    cJSON_Delete(j);
}

static void test_listener__metrics(void **state)
{
    struct fixture *f = *state;
    struct call c = { NULL, "/metrics", NULL, NULL, NULL, 0, NULL };
    struct resp r;
    char d[256];

    start(f, NULL);
    run(f);
    gate_get(f, d, sizeof(d), "WA Main", OPTED_OUT, NULL);
    metrics_webhook_delivery(METRICS_WEBHOOK_WHATSAPP,
                             METRICS_RESULT_DUPLICATE);
    metrics_duplicates_add(3);
    call(f, &c, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.content_type, "text/plain; version=0.0.4"));
    assert_non_null(strstr(r.body.data, "optsync_gate_decisions_total"
                                        "{reason=\"opted_out\"} 1\n"));
    assert_non_null(strstr(r.body.data, "optsync_numbers{status=\"opted_out\"}"
                                        " 2\n"));
    assert_non_null(strstr(r.body.data,
                           "optsync_webhook_deliveries_total{route="
                           "\"whatsapp\",result=\"duplicate\"} 1\n"));
    assert_non_null(
        strstr(r.body.data, "optsync_webhook_duplicates_total 3\n"));
    assert_non_null(strstr(r.body.data,
                           "optsync_http_requests_total{route=\"/v1/gate\","
                           "code=\"200\"} 1\n"));
    assert_non_null(strstr(r.body.data,
                           "optsync_http_request_duration_seconds_count"
                           "{route=\"/v1/gate\"} 1\n"));
    assert_non_null(strstr(r.body.data, "optsync_sync_lag_seconds "));
    assert_non_null(strstr(r.body.data, "optsync_quarantine_open_events 0\n"));
    assert_non_null(
        strstr(r.body.data, "optsync_outbox_rows{state=\"pending\"} 0\n"));
    strbuf_dispose(&r.body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_listener__routes_health_and_errors),
        T(test_listener__api_key_required),
        T(test_listener__no_configured_key_closes_v1),
        T(test_listener__gate_get_equals_gate_decide),
        T(test_listener__gate_bulk),
        T(test_listener__oversize_bodies_get_413),
        T(test_listener__body_size_checked_before_reading),
        T(test_listener__numbers_paging),
        T(test_listener__cli_commit_seen_by_next_request),
        T(test_listener__sends_count_toward_caps),
        T(test_listener__preferences),
        T(test_listener__concurrent_writes_not_lost_or_doubled),
        T(test_listener__tls),
        T(test_listener__tls_files_must_match),
        T(test_listener__shutdown_answers_requests_in_flight),
        T(test_listener__max_connections),
        T(test_listener__idle_connections_are_closed),
        T(test_listener__readyz_and_gate_follow_staleness),
        T(test_listener__metrics),
#undef T
    };
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
