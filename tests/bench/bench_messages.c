/*
 * bench_messages — how fast consent messages leave, run by
 * `scripts/bench messages` (never by the tests).  Against the WhatsApp
 * emulator at --latency-ms (default 80: a realistic round trip to Meta)
 * and --max-rate (80, Meta's default throughput, also [whatsapp]
 * max_rate), with the Dataverse emulator taking the write-backs:
 *
 *   1. throughput: M opt-out confirmations (M numbers say STOP through
 *      consent_apply()) drained by the outbox worker; messages/s per
 *      phone number from the emulator's accept times (first to last),
 *      the most accepted in any 1-second window, and the 130429 answers
 *      (rate-limit violations), beside the configured max_rate and what
 *      one connection would manage at this latency (1000 / latency);
 *   2. STOP → confirmation: the listener and the outbox worker in this
 *      process (as `serve` runs them, the listener's transition hook
 *      waking the worker), the emulator posting S signed STOPs one after
 *      another; from the STOP's 200 (the emulator's reply call returns)
 *      until the emulator accepted the confirmation (its wait returns):
 *      p50 / p99 / max.  This includes the emulator's --latency-ms.
 *
 * Prints the load average before and after (the machine is shared).
 *
 * Usage: bench_messages [--messages M] [--stops S] [--latency-ms MS]
 *                       [--max-rate N] [--runs K]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "clock.h"
#include "configurations.h"
#include "consent.h"
#include "emulator_control.h"
#include "emulator_proc.h"
#include "fileio.h"
#include "listener.h"
#include "log.h"
#include "outbox.h"
#include "sync.h"
#include "testutil.h"
#include "xalloc.h"

#define CFG "6a1c0d6e-0000-0000-0000-0000000000b1"
#define PNID "110000000000001"
#define PHONE_BASE 4915120000000LL

struct bench {
    struct emulator_proc dv, wa;
    struct optsync_config *cfg;
    struct mapping *m;
    cache *c;
    http *token_http;
    auth *a;
    struct consent_options copts;
};

static struct bench *running; /* emulators stopped by die() */

static void die(const char *what)
{
    fprintf(stderr, "bench_messages: %s: %s\n", what, err_message());
    if (running) {
        emulator_stop(&running->wa);
        emulator_stop(&running->dv);
    }
    exit(1);
}

static void loadavg(const char *when)
{
    char line[128] = "";
    FILE *fp = fopen("/proc/loadavg", "r");

    if (fp && fgets(line, sizeof(line), fp))
        printf("load (%s): %s", when, line);
    if (fp)
        fclose(fp);
}

/* ---- set-up ------------------------------------------------------------- */

static struct mapping *load_mapping(void)
{
    char *path = testutil_source_path("mapping/whatsapp4dynamics.json");
    struct mapping_problems p = { 0 };
    struct mapping *m = NULL;
    char *text = NULL;
    size_t len = 0;

    if (fileio_read(&text, &len, path, 1 << 20) != 0 ||
        mapping_load(&m, text, len, &p) != 0)
        die("mapping");
    mapping_problems_dispose(&p);
    free(text);
    free(path);
    return m;
}

static void control_ok(struct emulator_proc *e, const char *method,
                       const char *route, const char *body)
{
    long st = emulator_control(e, method, route, body, NULL);

    if (st != 200 && st != 201) {
        fprintf(stderr, "bench_messages: %s %s: %ld\n", method, route, st);
        exit(1);
    }
}

static void setup(struct bench *b, const char *dir, const char *latency,
                  const char *rate)
{
    struct http_options o = HTTP_OPTIONS_INIT;
    static const char seed[] =
        "{\"format\":\"optsync-emulator-seed/1\",\"configurations\":[{"
        "\"id\":\"" CFG "\",\"name\":\"Blumen Schmidt\",\"double_opt_in\":"
        "false,\"phone_number_id\":\"" PNID "\",\"waba_id\":"
        "\"220000000000001\",\"default_region\":\"DE\"}],\"numbers\":[]}";
    char *seed_path = testutil_write(dir, "seed.json", seed, 0600);
    char *cache_path = xasprintf("%s/cache.db", dir);
    char *cache_ov = xasprintf("cache.path=%s", cache_path);
    char *url_ov, *rate_ov = xasprintf("whatsapp.max_rate=%s", rate);
    const char *dv_args[] = { "--seed",     seed_path,
                              "--quiet",    "--limit-requests",
                              "100000000",  "--limit-execution-ms",
                              "1000000000", NULL };
    const char *wa_args[] = { "--latency-ms", latency,   "--max-rate",
                              rate,           "--quiet", NULL };
    const char *ov[8];

    running = b;
    if (emulator_start(&b->dv, dv_args) != 0 ||
        emulator_start_script(&b->wa, EMULATOR_WHATSAPP, wa_args) != 0)
        die("emulators");
    url_ov = xasprintf("whatsapp.graph_url=%s", b->wa.base_url);
    ov[0] = cache_ov;
    ov[1] = url_ov;
    ov[2] = rate_ov;
    ov[3] = "whatsapp.send=cloud";
    ov[4] = "whatsapp.access_token=optsync-wa-emulator-token";
    ov[5] = "messages.opt_out_confirmation_template=optout_confirm:de";
    ov[6] = "listener.port=0";
    ov[7] = NULL;
    b->cfg = emulator_config(&b->dv, ov);
    b->m = load_mapping();
    if (cache_open(&b->c, cache_path, 0) != 0)
        die("cache");
    if (http_new(&b->token_http, &o) != 0 ||
        auth_new(&b->a, b->cfg, b->token_http) != 0)
        die("auth");
    consent_options_init(&b->copts, b->cfg, b->m);
    control_ok(&b->wa, "POST", "templates",
               "{\"phone_number_id\":\"" PNID "\",\"name\":\"optout_confirm\","
               "\"language\":\"de\",\"status\":\"APPROVED\",\"category\":"
               "\"UTILITY\",\"body_params\":0,\"buttons\":[]}");
    free(seed_path);
    free(cache_path);
    free(cache_ov);
    free(url_ov);
    free(rate_ov);
}

static void sync_once(struct bench *b)
{
    struct sync_options so;
    struct sync_result r;
    syncer *s = NULL;

    memset(&so, 0, sizeof(so));
    if (syncer_new(&s, b->cfg, b->m, b->c, b->a, NULL) != 0 ||
        sync_run(&r, s, &so) != 0)
        die("sync");
    syncer_free(s);
}

/* ---- 1. throughput -------------------------------------------------------
 */

static void stop_from(struct bench *b, int64_t i)
{
    char e164[32];
    struct consent_event ev;
    struct consent_result r;

    snprintf(e164, sizeof(e164), "+%lld", (long long)(PHONE_BASE + i));
    memset(&ev, 0, sizeof(ev));
    ev.configuration_id = CFG;
    ev.e164 = e164;
    ev.action = CONSENT_ACT_OPT_OUT;
    ev.event_at = clock_now_ms();
    ev.source = CONSENT_SOURCE_WHATSAPP;
    if (consent_apply(&r, b->c, &b->copts, &ev) != 0)
        die("consent_apply");
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Accept times (emulator clock, s) of every message so far, sorted. */
static double *accept_times(struct bench *b, int *n)
{
    cJSON *doc = NULL, *m;
    double *t;
    int i = 0;

    if (emulator_control_json(&b->wa, "GET", "messages", NULL, &doc) != 200)
        die("GET messages");
    *n = cJSON_GetArraySize(cJSON_GetObjectItem(doc, "messages"));
    t = xcalloc((size_t)*n + 1, sizeof(*t));
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(doc, "messages"))
    {
        t[i++] = cJSON_GetNumberValue(cJSON_GetObjectItem(m, "time"));
    }
    cJSON_Delete(doc);
    qsort(t, (size_t)*n, sizeof(*t), cmpd);
    return t;
}

static long long violations(struct bench *b)
{
    cJSON *doc = NULL;
    long long v;

    if (emulator_control_json(&b->wa, "GET", "counters", NULL, &doc) != 200)
        die("GET counters");
    v = (long long)cJSON_GetNumberValue(
        cJSON_GetObjectItem(doc, "rate_limit_violations"));
    cJSON_Delete(doc);
    return v;
}

static double throughput(struct bench *b, int64_t first, int64_t m)
{
    struct outbox_options o;
    struct outbox_stats st;
    outbox *ob = NULL;
    double *t, rate;
    int n, i, j, most = 0;
    long long v0;

    control_ok(&b->wa, "POST", "reset", "{}");
    control_ok(&b->wa, "POST", "templates",
               "{\"phone_number_id\":\"" PNID "\",\"name\":\"optout_confirm\","
               "\"language\":\"de\",\"status\":\"APPROVED\",\"category\":"
               "\"UTILITY\",\"body_params\":0,\"buttons\":[]}");
    v0 = violations(b);
    for (i = 0; i < m; i++)
        stop_from(b, first + i);
    outbox_options_from_config(&o, b->cfg);
    if (outbox_new(&ob, b->cfg, b->m, b->c, b->a, NULL, &o) != 0 ||
        outbox_drain(&st, ob) != 0)
        die("drain");
    outbox_free(ob);
    t = accept_times(b, &n);
    for (i = 0, j = 0; i < n; i++) {
        while (t[i] - t[j] >= 1.0)
            j++;
        if (i - j + 1 > most)
            most = i - j + 1;
    }
    rate = n > 1 ? (double)(n - 1) / (t[n - 1] - t[0]) : 0;
    printf("  %d messages from one phone number: %.1f/s (max_rate %lld), "
           "most in any 1 s: %d, 130429 answers: %lld\n",
           n, rate, (long long)b->cfg->whatsapp.max_rate, most,
           violations(b) - v0);
    free(t);
    return rate;
}

/* ---- 2. STOP -> confirmation --------------------------------------------
 */

struct runner {
    outbox *ob;
    int rc;
};

static void *run_worker(void *arg)
{
    struct runner *r = arg;

    r->rc = outbox_run(r->ob);
    return NULL;
}

static void wake(void *payload)
{
    outbox_wake(payload);
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static void stop_latency(struct bench *b, int64_t first, int64_t s)
{
    struct outbox_options o;
    struct runner r;
    listener *l = NULL;
    pthread_t th;
    cache *wc = NULL;
    int64_t i, t0, *lat = xcalloc((size_t)s, sizeof(*lat));
    char body[256], *settings;

    if (cache_open(&wc, cache_path(b->c), 0) != 0)
        die("cache for the worker");
    outbox_options_from_config(&o, b->cfg);
    if (outbox_new(&r.ob, b->cfg, b->m, wc, b->a, NULL, &o) != 0)
        die("outbox");
    if (listener_new(&l, b->cfg, b->m) != 0)
        die("listener");
    listener_on_commit(l, wake, r.ob);
    if (listener_start(l) != 0)
        die("listener start");
    settings = xasprintf("{\"webhook_url\":\"http://127.0.0.1:%d/webhooks/"
                         "whatsapp\",\"app_secret\":\"%s\"}",
                         listener_port(l), b->cfg->whatsapp.app_secret);
    control_ok(&b->wa, "POST", "settings", settings);
    pthread_create(&th, NULL, run_worker, &r);
    for (i = 0; i < s; i++) {
        long long wa_id = PHONE_BASE + first + i;

        snprintf(body, sizeof(body),
                 "{\"type\":\"text\",\"from\":\"+%lld\",\"phone_number_id\":"
                 "\"" PNID "\",\"text\":\"STOP\"}",
                 wa_id);
        control_ok(&b->wa, "POST", "reply", body); /* returns after the 200 */
        t0 = clock_mono_ms();
        snprintf(body, sizeof(body),
                 "{\"condition\":\"messages\",\"to\":\"%lld\",\"count\":1,"
                 "\"timeout\":60}",
                 wa_id);
        control_ok(&b->wa, "POST", "wait", body);
        lat[i] = clock_mono_ms() - t0;
    }
    outbox_stop(r.ob);
    pthread_join(th, NULL);
    listener_free(l);
    outbox_free(r.ob);
    cache_close(wc);
    free(settings);
    qsort(lat, (size_t)s, sizeof(*lat), cmp64);
    printf("  %lld STOPs: 200 -> confirmation accepted: p50 %lld ms, p99 "
           "%lld ms, max %lld ms (includes the emulator's round trip)\n",
           (long long)s, (long long)lat[s / 2], (long long)lat[(s * 99) / 100],
           (long long)lat[s - 1]);
    free(lat);
}

/* ---- main -----------------------------------------------------------------
 */

static int64_t arg_int(int argc, char **argv, const char *name, int64_t dflt)
{
    int i;

    for (i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return strtoll(argv[i + 1], NULL, 10);
    return dflt;
}

int main(int argc, char **argv)
{
    struct bench b;
    int64_t m = arg_int(argc, argv, "--messages", 2000);
    int64_t s = arg_int(argc, argv, "--stops", 200);
    int64_t runs = arg_int(argc, argv, "--runs", 3), run;
    int64_t lat_ms = arg_int(argc, argv, "--latency-ms", 80);
    char latency[16], rate[16], *dir = testutil_tmpdir();
    double sum = 0;

    snprintf(latency, sizeof(latency), "%lld", (long long)lat_ms);
    snprintf(rate, sizeof(rate), "%lld",
             (long long)arg_int(argc, argv, "--max-rate", 80));
    memset(&b, 0, sizeof(b));
    log_level_current = LOG_WARN;
    loadavg("start");
    printf("WhatsApp emulator --latency-ms %s --max-rate %s\n", latency, rate);
    setup(&b, dir, latency, rate);
    sync_once(&b);
    for (run = 0; run < runs; run++) {
        printf("run %lld: throughput\n", (long long)run + 1);
        sum += throughput(&b, run * (m + s), m);
        fflush(stdout);
        printf("run %lld: STOP -> confirmation\n", (long long)run + 1);
        stop_latency(&b, run * (m + s) + m, s);
        loadavg("after run");
        fflush(stdout);
    }
    printf("mean: %.1f messages/s per phone number (max_rate %s; one "
           "connection at %lld ms: %.1f/s)\n",
           sum / (double)runs, rate, (long long)lat_ms,
           lat_ms > 0 ? 1000.0 / (double)lat_ms : 0.0);
    emulator_stop(&b.wa);
    emulator_stop(&b.dv);
    running = NULL;
    testutil_rmtree(dir);
    return 0;
}
