/*
 * bench_writeback — how fast local consent changes reach Dataverse, run by
 * `scripts/bench writeback` (never by the tests).  Against the emulator
 * with --latency-ms (default 80: a realistic round trip to Dataverse) in
 * every arm, on a cache synced from a seed of N numbers:
 *
 *   1. throughput: M opt-outs (then opt-ins, alternating) queued through
 *      consent_apply(), then drained by the outbox worker, once with
 *      $batch requests of [outbox] batch_size (100) and once with one
 *      request per event (the baseline); events/s and the ratio;
 *   2. latency: the worker running on its own thread (outbox_run, as
 *      `serve` runs it) while E opt-outs arrive at R per second, each
 *      through consent_apply() + outbox_wake(); the time from the
 *      commit of consent_apply() to the worker's commit of the answer
 *      for that row (the row is updated in the emulator before the answer
 *      leaves it), p50 / p99 / max.  The full "STOP accepted → row
 *      updated" path adds the listener's parse and the same
 *      consent_apply(); its hook is the same outbox_wake() call.
 *
 * The emulator's service protection limits are raised: this measures the
 * connector, not the 6,000-requests budget.  Prints the load average
 * before and after (the machine is shared).
 *
 * Usage: bench_writeback [--events E] [--rate R] [--throughput M]
 *                        [--single M1] [--latency-ms MS] [--runs K]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "clock.h"
#include "consent.h"
#include "emulator_proc.h"
#include "emulator_control.h"
#include "fileio.h"
#include "log.h"
#include "outbox.h"
#include "sync.h"
#include "testutil.h"
#include "xalloc.h"

#define CFG "6a1c0d6e-0000-0000-0000-000000000001"
#define PHONE_BASE 4915110000000LL

struct bench {
    struct emulator_proc emu;
    struct optsync_config *cfg;
    struct mapping *m;
    cache *c;
    struct http_throttle *throttle;
    http *token_http;
    auth *a;
    struct consent_options copts;
    int64_t numbers;
    /* latency run */
    int64_t *committed_ms; /* per number index; 0: not yet */
    int64_t *written_ms;
    pthread_mutex_t mu;
};

static struct emulator_proc *running_emu; /* stopped by die() */

static void die(const char *what)
{
    fprintf(stderr, "bench_writeback: %s: %s\n", what, err_message());
    if (running_emu)
        emulator_stop(running_emu);
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

static char *seed_text(int64_t n)
{
    struct strbuf sb;
    int64_t i;

    strbuf_init(&sb, (size_t)1 << 30);
    strbuf_adds(&sb, "{\"format\":\"optsync-emulator-seed/1\","
                     "\"configurations\":[{\"id\":\"" CFG "\",\"name\":"
                     "\"Bench\",\"double_opt_in\":false,\"default_region\":"
                     "\"DE\"}],\"numbers\":[");
    for (i = 0; i < n; i++)
        strbuf_addf(&sb,
                    "%s{\"id\":\"3f2e0000-0000-0000-0000-%012lld\","
                    "\"configuration\":\"" CFG "\",\"phone\":\"+%lld\","
                    "\"status\":\"single_opt_in\"}",
                    i ? "," : "", (long long)i, PHONE_BASE + i);
    strbuf_adds(&sb, "]}");
    return strbuf_detach(&sb);
}

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

static void setup(struct bench *b, const char *dir, const char *latency)
{
    struct http_options o = HTTP_OPTIONS_INIT;
    char *seed = seed_text(b->numbers);
    char *seed_path = testutil_write(dir, "seed.json", seed, 0600);
    char *cache_path = xasprintf("%s/cache.db", dir);
    char *cache_ov = xasprintf("cache.path=%s", cache_path);
    const char *args[] = { "--seed",       seed_path,
                           "--latency-ms", latency,
                           "--quiet",      "--limit-requests",
                           "100000000",    "--limit-execution-ms",
                           "1000000000",   NULL };
    const char *ov[] = { cache_ov, NULL };

    if (emulator_start(&b->emu, args) != 0)
        die("emulator");
    running_emu = &b->emu;
    b->cfg = emulator_config(&b->emu, ov);
    b->m = load_mapping();
    if (cache_open(&b->c, cache_path, 0) != 0)
        die("cache");
    b->throttle = http_throttle_new();
    o.throttle = b->throttle;
    if (http_new(&b->token_http, &o) != 0 ||
        auth_new(&b->a, b->cfg, b->token_http) != 0)
        die("auth");
    consent_options_init(&b->copts, b->cfg, b->m);
    free(seed);
    free(seed_path);
    free(cache_path);
    free(cache_ov);
}

static void sync_once(struct bench *b)
{
    struct sync_options so;
    struct sync_result r;
    syncer *s = NULL;

    memset(&so, 0, sizeof(so));
    if (syncer_new(&s, b->cfg, b->m, b->c, b->a, b->throttle) != 0 ||
        sync_run(&r, s, &so) != 0)
        die("sync");
    syncer_free(s);
}

static void express(struct bench *b, int64_t i, enum consent_action action)
{
    char e164[32];
    struct consent_event ev;
    struct consent_result r;

    snprintf(e164, sizeof(e164), "+%lld", PHONE_BASE + i);
    memset(&ev, 0, sizeof(ev));
    ev.configuration_id = CFG;
    ev.e164 = e164;
    ev.action = action;
    ev.event_at = clock_now_ms();
    ev.source = CONSENT_SOURCE_WHATSAPP;
    if (consent_apply(&r, b->c, &b->copts, &ev) != 0)
        die("consent_apply");
}

/* ---- throughput ------------------------------------------------------------
 */

static outbox *worker(struct bench *b, cache *c, int single,
                      outbox_written_fn fn)
{
    struct outbox_options o;
    outbox *ob = NULL;

    outbox_options_from_config(&o, b->cfg);
    o.single_requests = single;
    o.on_written = fn;
    o.payload = b;
    if (outbox_new(&ob, b->cfg, b->m, c, b->a, b->throttle, &o) != 0)
        die("outbox_new");
    return ob;
}

/* Queues `m` changes of numbers [first, first + m), drains; events/s. */
static double throughput(struct bench *b, int64_t first, int64_t m, int single,
                         enum consent_action action)
{
    struct outbox_stats st;
    outbox *ob;
    int64_t i, t0, ms;

    for (i = 0; i < m; i++)
        express(b, first + i, action);
    ob = worker(b, b->c, single, NULL);
    t0 = clock_mono_ms();
    if (outbox_drain(&st, ob) != 0 || st.written != m)
        die("drain");
    ms = clock_mono_ms() - t0;
    outbox_free(ob);
    printf("  %-8s %6lld events in %5lld requests: %8.3f s  %8.1f events/s\n",
           single ? "single" : "$batch", (long long)m, (long long)st.requests,
           (double)ms / 1000.0, (double)m * 1000.0 / (double)(ms ? ms : 1));
    return (double)m * 1000.0 / (double)(ms ? ms : 1);
}

/* ---- latency ---------------------------------------------------------------
 */

static void on_written(const char *cfg, const char *e164, int status,
                       void *payload)
{
    struct bench *b = payload;
    int64_t i = strtoll(e164 + 1, NULL, 10) - PHONE_BASE;

    (void)cfg;
    (void)status;
    pthread_mutex_lock(&b->mu);
    if (i >= 0 && i < b->numbers && !b->written_ms[i])
        b->written_ms[i] = clock_mono_ms();
    pthread_mutex_unlock(&b->mu);
}

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

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static void sleep_until_mono(int64_t t)
{
    struct timespec ts;
    int64_t left = t - clock_mono_ms();

    if (left <= 0)
        return;
    ts.tv_sec = (time_t)(left / 1000);
    ts.tv_nsec = (long)(left % 1000) * 1000000L;
    nanosleep(&ts, NULL); /* pacing the arrivals, not synchronising */
}

/* The worker is not the test subject's waiting: this is a benchmark
 * (scripts/bench), where pacing arrivals at a rate is the point. */
static void latency(struct bench *b, int64_t first, int64_t e, double rate)
{
    struct runner r;
    pthread_t th;
    int64_t i, start, *lat = xcalloc((size_t)e, sizeof(*lat)), done;
    double sum = 0;
    cache *wc = NULL;

    /* The worker's own connection, as serve gives it one: a cache handle
     * is used by one thread at a time. */
    if (cache_open(&wc, cache_path(b->c), 0) != 0)
        die("cache for the worker");
    r.ob = worker(b, wc, 0, on_written);
    pthread_create(&th, NULL, run_worker, &r);
    start = clock_mono_ms();
    for (i = 0; i < e; i++) {
        sleep_until_mono(start + (int64_t)((double)i * 1000.0 / rate));
        express(b, first + i, CONSENT_ACT_OPT_OUT);
        pthread_mutex_lock(&b->mu);
        b->committed_ms[first + i] = clock_mono_ms();
        pthread_mutex_unlock(&b->mu);
        outbox_wake(r.ob);
    }
    for (done = 0; done < e;) { /* until the last answer is committed */
        sleep_until_mono(clock_mono_ms() + 50);
        pthread_mutex_lock(&b->mu);
        for (done = 0, i = 0; i < e; i++)
            done += b->written_ms[first + i] != 0;
        pthread_mutex_unlock(&b->mu);
        if (clock_mono_ms() - start > 600000)
            die("latency run did not finish in 10 minutes");
    }
    outbox_stop(r.ob);
    pthread_join(th, NULL);
    outbox_free(r.ob);
    cache_close(wc);
    for (i = 0; i < e; i++) {
        lat[i] = b->written_ms[first + i] - b->committed_ms[first + i];
        sum += (double)lat[i];
    }
    qsort(lat, (size_t)e, sizeof(*lat), cmp64);
    printf("  %lld opt-outs at %.0f/s: commit -> row written: p50 %lld ms, "
           "p99 %lld ms, max %lld ms, mean %.0f ms\n",
           (long long)e, rate, (long long)lat[e / 2],
           (long long)lat[(e * 99) / 100], (long long)lat[e - 1],
           sum / (double)e);
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
    int64_t events = arg_int(argc, argv, "--events", 1000);
    int64_t rate = arg_int(argc, argv, "--rate", 100);
    int64_t m = arg_int(argc, argv, "--throughput", 2000);
    int64_t m1 = arg_int(argc, argv, "--single", 300);
    int64_t runs = arg_int(argc, argv, "--runs", 3), run;
    char latency_ms[16], *dir = testutil_tmpdir();
    double batch_sum = 0, single_sum = 0;

    snprintf(latency_ms, sizeof(latency_ms), "%lld",
             (long long)arg_int(argc, argv, "--latency-ms", 80));
    memset(&b, 0, sizeof(b));
    pthread_mutex_init(&b.mu, NULL);
    b.numbers = m + m1 + events * runs;
    b.committed_ms = xcalloc((size_t)b.numbers, sizeof(int64_t));
    b.written_ms = xcalloc((size_t)b.numbers, sizeof(int64_t));
    log_level_current = LOG_WARN;
    loadavg("start");
    printf("emulator --latency-ms %s, %lld numbers\n", latency_ms,
           (long long)b.numbers);
    setup(&b, dir, latency_ms);
    sync_once(&b);
    for (run = 0; run < runs; run++) {
        enum consent_action act =
            run % 2 ? CONSENT_ACT_OPT_IN : CONSENT_ACT_OPT_OUT;

        printf("run %lld: throughput\n", (long long)run + 1);
        batch_sum += throughput(&b, 0, m, 0, act);
        single_sum += throughput(&b, m, m1, 1, act);
        fflush(stdout);
        printf("run %lld: latency\n", (long long)run + 1);
        latency(&b, m + m1 + run * events, events, (double)rate);
        loadavg("after run");
        fflush(stdout);
    }
    printf("$batch / single requests: %.1fx (target >= 10x)\n",
           batch_sum / single_sum);
    emulator_stop(&b.emu);
    running_emu = NULL;
    testutil_rmtree(dir);
    return 0;
}
