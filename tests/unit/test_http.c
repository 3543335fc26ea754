/*
 * test_http — the transport and its retry policy against the emulator:
 * 5xx and transport errors back off and retry (bounded), a 429 waits the
 * full Retry-After and pauses every handle of the identity (the emulator
 * records any early request as a violation), other 4xx are final, the
 * response cap holds, and the curl_easy_perform fault seam works.
 *
 * ctest-timeout: 300
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "emulator_control.h"
#include "fault.h"
#include "http.h"
#include "testutil.h"
#include "xalloc.h"

struct fixture {
    struct emulator_proc emu;
    struct http_throttle *throttle;
    http *a, *b; /* two handles of one identity */
    char *url;
    char *token_header;
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    struct http_options o = HTTP_OPTIONS_INIT;
    const char *args[] = { "--quiet", NULL };
    static const char *const form_headers[] = {
        "Content-Type: application/x-www-form-urlencoded", NULL
    };
    static const char form[] =
        "client_id=0975c0de-0000-4000-8000-000000000002&grant_type="
        "client_credentials&client_secret=optsync-emulator-secret&scope=";
    struct http_request req;
    struct http_response resp;
    char *body, *scope, *tok, *token_url;
    cJSON *doc;

    assert_int_equal(emulator_start(&f->emu, args), 0);
    f->throttle = http_throttle_new();
    o.base_backoff_ms = 20;
    o.max_backoff_ms = 200;
    o.max_attempts = 4;
    o.throttle = f->throttle;
    assert_int_equal(http_new(&f->a, &o), 0);
    assert_int_equal(http_new(&f->b, &o), 0);
    f->url =
        xasprintf("%s/api/data/v9.2/inogic_configurations", f->emu.base_url);
    /* A bearer token for the Web API, asked for by hand. */
    scope = xasprintf("%s/.default", f->emu.base_url);
    tok = http_escape(scope);
    body = xasprintf("%s%s", form, tok);
    memset(&req, 0, sizeof(req));
    req.method = "POST";
    token_url = xasprintf("%s/7e57e000-0000-4000-8000-000000000001/oauth2/"
                          "v2.0/token",
                          f->emu.base_url);
    req.url = token_url;
    req.headers = form_headers;
    req.body = body;
    req.body_len = strlen(body);
    http_response_init(&resp);
    assert_int_equal(http_send(&resp, f->a, &req), 0);
    assert_int_equal(resp.status, 200);
    doc = cJSON_Parse(resp.body.data);
    f->token_header =
        xasprintf("Authorization: Bearer %s",
                  cJSON_GetObjectItem(doc, "access_token")->valuestring);
    cJSON_Delete(doc);
    http_response_dispose(&resp);
    free(token_url);
    free(body);
    free(tok);
    free(scope);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    fault_disarm_all();
    http_free(f->a);
    http_free(f->b);
    http_throttle_free(f->throttle);
    emulator_stop(&f->emu);
    free(f->url);
    free(f->token_header);
    free(f);
    return 0;
}

static int get(struct fixture *f, http *h, struct http_response *resp)
{
    const char *headers[] = { f->token_header, "Accept: application/json",
                              NULL };
    struct http_request req;

    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.url = f->url;
    req.headers = headers;
    req.max_response = 1 << 20;
    http_response_init(resp);
    return http_request(resp, h, &req);
}

static void add_fault(struct fixture *f, const char *json)
{
    assert_int_equal(emulator_control(&f->emu, "POST", "faults", json, NULL),
                     201);
}

static long violations(struct fixture *f)
{
    char *body = NULL;
    cJSON *doc;
    long v;

    assert_int_equal(emulator_control(&f->emu, "GET", "counters", NULL, &body),
                     200);
    doc = cJSON_Parse(body);
    v = (long)cJSON_GetObjectItem(doc, "violations")->valuedouble;
    cJSON_Delete(doc);
    free(body);
    return v;
}

static void test_http__5xx_retried_then_success(void **state)
{
    struct fixture *f = *state;
    struct http_response r;
    struct http_stats s;

    add_fault(f, "{\"type\":\"status\",\"status\":503,\"count\":2,"
                 "\"match\":{\"kind\":\"query\"}}");
    assert_int_equal(get(f, f->a, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 3);
    http_stats_get(&s, f->a);
    assert_int_equal(s.retries, 2);
    http_response_dispose(&r);
}

static void test_http__retries_are_bounded(void **state)
{
    struct fixture *f = *state;
    struct http_response r;

    add_fault(f, "{\"type\":\"status\",\"status\":502,"
                 "\"match\":{\"kind\":\"query\"}}");
    assert_int_equal(get(f, f->a, &r), 0);
    assert_int_equal(r.status, 502); /* given back after max_attempts */
    assert_int_equal(r.attempts, 4);
    http_response_dispose(&r);
}

static void test_http__4xx_is_final(void **state)
{
    struct fixture *f = *state;
    struct http_response r;

    add_fault(f, "{\"type\":\"status\",\"status\":400,\"count\":1,"
                 "\"match\":{\"kind\":\"query\"}}");
    assert_int_equal(get(f, f->a, &r), 0);
    assert_int_equal(r.status, 400);
    assert_int_equal(r.attempts, 1);
    http_response_dispose(&r);
}

static void test_http__429_pauses_the_identity(void **state)
{
    struct fixture *f = *state;
    struct http_response r;
    int64_t start = clock_mono_ms();

    add_fault(f, "{\"type\":\"throttle\",\"retry_after\":1,\"count\":1,"
                 "\"match\":{\"kind\":\"query\"}}");
    assert_int_equal(get(f, f->a, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 2);
    http_response_dispose(&r);
    assert_true(clock_mono_ms() - start >= 1000);
    /* Waiting out Retry-After in full: the emulator saw no early retry
     * (handles sharing the pause: test_http__429_shared_across_handles). */
    add_fault(f, "{\"type\":\"throttle\",\"retry_after\":1,\"count\":1,"
                 "\"match\":{\"kind\":\"query\"}}");
    assert_int_equal(get(f, f->a, &r), 0);
    http_response_dispose(&r);
    assert_int_equal(violations(f), 0);
}

static void test_http__429_shared_across_handles(void **state)
{
    struct fixture *f = *state;
    struct http_options o = HTTP_OPTIONS_INIT;
    struct http_response r;
    struct http_stats s;
    http *one_shot = NULL;

    o.max_attempts = 1;
    o.throttle = f->throttle;
    assert_int_equal(http_new(&one_shot, &o), 0);
    add_fault(f, "{\"type\":\"throttle\",\"retry_after\":2,\"count\":1,"
                 "\"match\":{\"kind\":\"query\"}}");
    /* One handle meets the 429 and gives up at once (one attempt) ... */
    assert_int_equal(get(f, one_shot, &r), ERR_THROTTLED);
    http_response_dispose(&r);
    /* ... another of the same identity must wait before its request. */
    assert_int_equal(get(f, f->b, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 1);
    http_response_dispose(&r);
    http_stats_get(&s, f->b);
    assert_true(s.waited_ms >= 1000);
    assert_int_equal(violations(f), 0);
    http_free(one_shot);
}

static void test_http__transport_fault_seam(void **state)
{
    struct fixture *f = *state;
    struct http_response r;

    fault_arm(FAULT_CURL_PERFORM, 1, CURLE_COULDNT_CONNECT, 0);
    assert_int_equal(get(f, f->a, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 2);
    http_response_dispose(&r);
    fault_arm(FAULT_CURL_PERFORM, 1, CURLE_OPERATION_TIMEDOUT, 1);
    assert_int_equal(get(f, f->a, &r), ERR_FAIL);
    assert_non_null(strstr(err_message(), "Timeout"));
    assert_null(strstr(err_message(), "Bearer")); /* no credentials */
    http_response_dispose(&r);
    fault_disarm_all();
}

static void test_http__dropped_connection_is_retried(void **state)
{
    struct fixture *f = *state;
    struct http_response r;

    add_fault(f, "{\"type\":\"drop\",\"fraction\":0.3,\"count\":1,"
                 "\"match\":{\"kind\":\"query\"}}");
    assert_int_equal(get(f, f->a, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 2);
    http_response_dispose(&r);
}

static void test_http__response_cap(void **state)
{
    struct fixture *f = *state;
    const char *headers[] = { f->token_header, NULL };
    struct http_request req;
    struct http_response r;

    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.url = f->url;
    req.headers = headers;
    req.max_response = 10;
    http_response_init(&r);
    assert_int_equal(http_request(&r, f->a, &req), ERR_TOOBIG);
    assert_int_equal(r.attempts, 1);
    http_response_dispose(&r);
}

struct stopped_get {
    struct fixture *f;
    http *h;
    struct http_response r;
    int rc;
};

static void *stopped_get_run(void *arg)
{
    struct stopped_get *g = arg;
    const char *headers[] = { g->f->token_header, NULL };
    struct http_request req;

    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.url = g->f->url;
    req.headers = headers;
    req.max_response = 1 << 20;
    http_response_init(&g->r);
    g->rc = http_send(&g->r, g->h, &req);
    return NULL;
}

/* serve's stop: a request the server holds is abandoned when the stop
 * flag is set, not waited out for `timeout`. */
static void test_http__stop_abandons_a_transfer(void **state)
{
    struct fixture *f = *state;
    struct http_options o = HTTP_OPTIONS_INIT;
    volatile int stop = 0;
    struct stopped_get g = { f, NULL, { 0 }, 0 };
    pthread_t t;
    char *body = NULL;

    o.timeout_ms = 600000; /* far longer than the test's deadline */
    o.stop = &stop;
    assert_int_equal(http_new(&g.h, &o), 0);
    add_fault(f, "{\"type\":\"hold\",\"timeout\":30,\"match\":{\"kind\":"
                 "\"query\"}}");
    assert_int_equal(pthread_create(&t, NULL, stopped_get_run, &g), 0);
    assert_int_equal(emulator_control(&f->emu, "POST", "wait",
                                      "{\"condition\":\"held\",\"fault\":1,"
                                      "\"timeout\":60}",
                                      &body),
                     200);
    free(body);
    stop = 1;
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(g.rc, ERR_FAIL); /* a transport error */
    http_response_dispose(&g.r);
    http_free(g.h);
    assert_int_equal(emulator_control(&f->emu, "POST", "release", "{}", NULL),
                     200);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_http__5xx_retried_then_success),
        T(test_http__retries_are_bounded),
        T(test_http__4xx_is_final),
        T(test_http__429_pauses_the_identity),
        T(test_http__429_shared_across_handles),
        T(test_http__transport_fault_seam),
        T(test_http__dropped_connection_is_retried),
        T(test_http__response_cap),
        T(test_http__stop_abandons_a_transfer),
    };

    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
