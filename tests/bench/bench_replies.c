/*
 * bench_replies — the load generator of `scripts/bench listener` for the
 * WhatsApp webhook (never run by the tests).  wrk cannot sign, so this
 * signs every body itself (HMAC-SHA256 with the app secret, as Meta
 * does) with a unique message id:
 *
 *   bench_replies replies PORT SECRET PNID SECONDS CONNECTIONS FIRST NUMBERS
 *       Keeps CONNECTIONS keep-alive connections busy for SECONDS with
 *       POST /webhooks/whatsapp, one signed text reply each, message ids
 *       wamid.bench.<FIRST + n>.  Reply n comes from number n % NUMBERS
 *       (+49151 and 8 digits, the bench cache's numbers) and says STOP in
 *       even rounds and Subscribe in odd ones, one second later each
 *       round: every reply is a consent transition.  Prints
 *       "sent=N ok=N failed=N seconds=S": the caller counts what was
 *       committed in the database, never the 200s.
 *
 *   bench_replies stop-to-deny PORT SECRET PNID API_KEY CONFIGURATION COUNT
 *                FIRST
 *       COUNT times, one after another: POST a signed STOP from
 *       +49160<FIRST + i, 8 digits> (a number the gate allows), and from
 *       its 200 on, GET /v1/gate for it until the answer is a deny.
 *       Prints the milliseconds from each 200 to its deny (p50, p99,
 *       max) and how many denies needed more than one GET; beside them
 *       the same GET once more right after (nothing new to catch up
 *       with: the baseline of a gate round trip in the same run).
 *
 * One libevent loop (evhttp's client) for the first, blocking libcurl
 * with kept-alive connections for the second.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "xalloc.h"

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* "sha256=" + hex HMAC-SHA256 of body into out[72]. */
static void sign(char *out, const char *secret, const char *body, size_t len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0, i;

    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body,
         len, mac, &n);
    memcpy(out, "sha256=", 7);
    for (i = 0; i < n; i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", mac[i]);
}

static int body_of(char *out, size_t cap, const char *pnid, const char *wa_id,
                   const char *wamid, long long ts, const char *text)
{
    return snprintf(
        out, cap,
        "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\","
        "\"changes\":[{\"field\":\"messages\",\"value\":{\"messaging_product\":"
        "\"whatsapp\",\"metadata\":{\"display_phone_number\":\"15550100001\","
        "\"phone_number_id\":\"%s\"},\"contacts\":[{\"profile\":{\"name\":"
        "\"Bench\"},\"wa_id\":\"%s\"}],\"messages\":[{\"from\":\"%s\",\"id\":"
        "\"%s\",\"timestamp\":\"%lld\",\"type\":\"text\",\"text\":{\"body\":"
        "\"%s\"}}]}}]}]}",
        pnid, wa_id, wa_id, wamid, ts, text);
}

/* ---- replies/s ------------------------------------------------------------
 */

struct load {
    struct event_base *base;
    const char *secret, *pnid;
    long long next, numbers, start_ts;
    double until;
    long long sent, ok, failed;
    int open; /* connections still sending */
};

struct conn {
    struct load *ld;
    struct evhttp_connection *evcon;
};

static void send_one(struct conn *c);

static void on_reply(struct evhttp_request *req, void *arg)
{
    struct conn *c = arg;

    if (req && evhttp_request_get_response_code(req) == 200)
        c->ld->ok++;
    else
        c->ld->failed++;
    if (now_s() < c->ld->until) {
        send_one(c);
        return;
    }
    if (--c->ld->open == 0)
        event_base_loopexit(c->ld->base, NULL);
}

static void send_one(struct conn *c)
{
    struct load *ld = c->ld;
    long long n = ld->next++, round = n / ld->numbers;
    char wa_id[32], wamid[64], body[1024], sig[80];
    struct evhttp_request *req = evhttp_request_new(on_reply, c);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    int len;

    snprintf(wa_id, sizeof(wa_id), "49151%08lld", n % ld->numbers);
    snprintf(wamid, sizeof(wamid), "wamid.bench.%lld", n);
    len = body_of(body, sizeof(body), ld->pnid, wa_id, wamid,
                  ld->start_ts + round, round % 2 ? "Subscribe" : "STOP");
    sign(sig, ld->secret, body, (size_t)len);
    evhttp_add_header(h, "Host", "127.0.0.1");
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "X-Hub-Signature-256", sig);
    evbuffer_add(evhttp_request_get_output_buffer(req), body, (size_t)len);
    ld->sent++;
    evhttp_make_request(c->evcon, req, EVHTTP_REQ_POST, "/webhooks/whatsapp");
}

static int run_replies(int argc, char **argv)
{
    struct load ld;
    struct conn *conns;
    int port, seconds, n, i;
    double t0;

    if (argc != 9)
        return 2;
    memset(&ld, 0, sizeof(ld));
    port = (int)strtol(argv[2], NULL, 10);
    ld.secret = argv[3];
    ld.pnid = argv[4];
    seconds = (int)strtol(argv[5], NULL, 10);
    n = (int)strtol(argv[6], NULL, 10);
    /* Later runs go on from FIRST: new ids, and rounds (so times) that
     * only grow, each reply newer than the number's last one. */
    ld.next = strtoll(argv[7], NULL, 10);
    ld.numbers = strtoll(argv[8], NULL, 10);
    ld.start_ts = (long long)time(NULL) - 86400;
    ld.base = event_base_new();
    conns = xcalloc((size_t)n, sizeof(*conns));
    t0 = now_s();
    ld.until = t0 + seconds;
    for (i = 0; i < n; i++) {
        conns[i].ld = &ld;
        conns[i].evcon = evhttp_connection_base_new(ld.base, NULL, "127.0.0.1",
                                                    (ev_uint16_t)port);
        evhttp_connection_set_timeout(conns[i].evcon, 60);
        ld.open++;
        send_one(&conns[i]);
    }
    event_base_dispatch(ld.base);
    printf("sent=%lld ok=%lld failed=%lld seconds=%.3f\n", ld.sent, ld.ok,
           ld.failed, now_s() - t0);
    for (i = 0; i < n; i++)
        evhttp_connection_free(conns[i].evcon);
    free(conns);
    event_base_free(ld.base);
    return ld.failed ? 1 : 0;
}

/* ---- STOP -> deny ---------------------------------------------------------
 */

struct sink {
    char buf[4096];
    size_t len;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct sink *s = arg;
    size_t k = size * n, room = sizeof(s->buf) - 1 - s->len;

    memcpy(s->buf + s->len, p, k < room ? k : room);
    s->len += k < room ? k : room;
    s->buf[s->len] = '\0';
    return k;
}

static long perform(CURL *h, struct sink *s)
{
    long code = 0;

    s->len = 0;
    s->buf[0] = '\0';
    if (curl_easy_perform(h) != CURLE_OK)
        return -1;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Posts one signed STOP from `wa_id`; its status. */
static long post_stop(CURL *h, struct sink *s, char **argv, const char *wa_id,
                      long long i)
{
    char wamid[64], body[1024], sig[80], sigh[128];
    struct curl_slist *hl = NULL;
    int len;
    long code;

    snprintf(wamid, sizeof(wamid), "wamid.stop.%s.%lld", wa_id, i);
    len = body_of(body, sizeof(body), argv[4], wa_id, wamid,
                  (long long)time(NULL), "STOP");
    sign(sig, argv[3], body, (size_t)len);
    snprintf(sigh, sizeof(sigh), "X-Hub-Signature-256: %s", sig);
    hl = curl_slist_append(hl, sigh);
    hl = curl_slist_append(hl, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
    code = perform(h, s);
    curl_slist_free_all(hl);
    return code;
}

static int run_stop_to_deny(int argc, char **argv)
{
    char url[512], wa_id[32], keyh[300];
    struct curl_slist *kh = NULL;
    struct sink s;
    CURL *post = curl_easy_init(), *get = curl_easy_init();
    long long count, first, i, repolled = 0;
    double *ms, *base, t0;
    int polls;

    if (argc != 9)
        return 2;
    count = strtoll(argv[7], NULL, 10);
    first = strtoll(argv[8], NULL, 10);
    ms = xcalloc((size_t)count, sizeof(*ms));
    base = xcalloc((size_t)count, sizeof(*base));
    snprintf(url, sizeof(url), "http://127.0.0.1:%s/webhooks/whatsapp",
             argv[2]);
    curl_easy_setopt(post, CURLOPT_URL, url);
    curl_easy_setopt(post, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(post, CURLOPT_WRITEDATA, &s);
    snprintf(keyh, sizeof(keyh), "X-API-Key: %s", argv[5]);
    kh = curl_slist_append(kh, keyh);
    curl_easy_setopt(get, CURLOPT_HTTPHEADER, kh);
    curl_easy_setopt(get, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(get, CURLOPT_WRITEDATA, &s);
    for (i = 0; i < count; i++) {
        snprintf(wa_id, sizeof(wa_id), "49160%08lld", first + i);
        if (post_stop(post, &s, argv, wa_id, i) != 200) {
            fprintf(stderr, "STOP %s: not 200: %s\n", wa_id, s.buf);
            return 1;
        }
        t0 = now_s();
        snprintf(url, sizeof(url),
                 "http://127.0.0.1:%s/v1/gate?configuration=%s&phone=%%2B%s",
                 argv[2], argv[6], wa_id);
        curl_easy_setopt(get, CURLOPT_URL, url);
        for (polls = 1;; polls++) {
            if (perform(get, &s) != 200 || polls > 100000) {
                fprintf(stderr, "gate %s: %s\n", wa_id, s.buf);
                return 1;
            }
            if (strstr(s.buf, "\"decision\":\"deny\""))
                break;
        }
        ms[i] = (now_s() - t0) * 1000;
        repolled += polls > 1;
        t0 = now_s();
        if (perform(get, &s) != 200)
            return 1;
        base[i] = (now_s() - t0) * 1000;
    }
    qsort(ms, (size_t)count, sizeof(*ms), cmp_double);
    qsort(base, (size_t)count, sizeof(*base), cmp_double);
    printf("count=%lld p50_ms=%.3f p99_ms=%.3f max_ms=%.3f repolled=%lld "
           "base_p50_ms=%.3f base_p99_ms=%.3f\n",
           count, ms[count / 2], ms[(count * 99) / 100], ms[count - 1],
           repolled, base[count / 2], base[(count * 99) / 100]);
    free(base);
    free(ms);
    curl_slist_free_all(kh);
    curl_easy_cleanup(post);
    curl_easy_cleanup(get);
    return 0;
}

int main(int argc, char **argv)
{
    int rc = 2;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (argc > 1 && strcmp(argv[1], "replies") == 0)
        rc = run_replies(argc, argv);
    else if (argc > 1 && strcmp(argv[1], "stop-to-deny") == 0)
        rc = run_stop_to_deny(argc, argv);
    if (rc == 2)
        fprintf(stderr,
                "usage: bench_replies replies PORT SECRET PNID SECONDS "
                "CONNECTIONS FIRST NUMBERS\n"
                "       bench_replies stop-to-deny PORT SECRET PNID API_KEY "
                "CONFIGURATION COUNT FIRST\n");
    curl_global_cleanup();
    return rc;
}
