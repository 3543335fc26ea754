/*
 * bench_gate — how fast the send-gate answers, run by `scripts/bench gate`
 * (never by the tests).  In one run, on a cache of N numbers (default
 * 1,000,000; half the questions hit a row, half miss):
 *
 *   1. gate_decide() decisions/s through the full decision path
 *      (canonical E.164 input, the freshness check, the real clock),
 *      against a bare prepared SQLite point lookup on the same table with
 *      the same keys: the ratio is the figure.
 *   2. non-canonical (national) input, which phone.c's national fast path
 *      keys from tables read from libphonenumber (no Parse call).
 *   3. gate_decide_bulk() over 100,000 numbers (ms).
 *   4. the cost of staying fresh: one decision right after another
 *      connection committed an opt-out (the index catches up).
 *   5. what migration 2's journal triggers cost the sync's row writes:
 *      the sync's own statements, on a cache with and without them.
 *   6. `optsync gate` itself with 100,000 phones on stdin: decisions/s net
 *      of start-up (the same command with one phone: process, config,
 *      cache and, in index mode, the index load), for --index auto (which
 *      loads the index for that many) and --index off (SQLite per phone).
 *      Needs OPTSYNC_BENCH_BUILD (scripts/bench sets it).
 *
 * Usage: bench_gate [NUMBERS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "clock.h"
#include "configurations.h"
#include "gate.h"
#include "testutil.h"
#include "xalloc.h"

#define CFG "6a1c0d6e-0000-0000-0000-000000000001"
#define KEY_LEN 16 /* "+4915" + 9 digits + NUL, rounded */

/* ---- clocks and randomness -------------------------------------------- */

static double now_s(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct stopwatch {
    double wall, cpu;
};

static void sw_start(struct stopwatch *sw)
{
    sw->wall = now_s(CLOCK_MONOTONIC);
    sw->cpu = now_s(CLOCK_PROCESS_CPUTIME_ID);
}

static void sw_stop(struct stopwatch *sw)
{
    sw->wall = now_s(CLOCK_MONOTONIC) - sw->wall;
    sw->cpu = now_s(CLOCK_PROCESS_CPUTIME_ID) - sw->cpu;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static void must(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "bench_gate: %s failed: %s\n", what, err_message());
        exit(1);
    }
}

/* ---- the numbers ------------------------------------------------------ */

/* Key i of 2n distinct German mobiles: i -> (i * A + B) mod 10^9 is a
 * bijection (A is coprime to 10^9), so keys look random and never
 * repeat.  Keys [0, n) are stored, [n, 2n) are misses. */
static void key_of(char *out, uint64_t i)
{
    uint64_t v = (i * 387420489ull + 123456789ull) % 1000000000ull;

    snprintf(out, KEY_LEN, "+4915%09llu", (unsigned long long)v);
}

/* Status mix: 80% single, 10% double, 8% opted out, 2% none. */
static int status_of(uint64_t i)
{
    uint64_t r = i % 50;

    return r < 40 ? 1 : r < 45 ? 2 : r < 49 ? 3 : 0;
}

static void fill_numbers(cache *c, size_t n)
{
    sqlite3_stmt *st = cache_stmt(
        c, "INSERT INTO numbers(dv_id, configuration_id, raw_phone, e164, "
           "status, dv_status, active, status_at, source, topics, "
           "paused_until, modified_on, version) VALUES (?1, '" CFG
           "', ?2, ?2, ?3, ?3, 1, 1700000000000, 'dataverse', ?4, ?5, "
           "1700000000000, 1)");
    char key[KEY_LEN], id[48];
    size_t i;

    must(st != NULL, "prepare insert");
    must(cache_begin(c) == 0, "begin");
    for (i = 0; i < n; i++) {
        key_of(key, i);
        snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012zu", i);
        sqlite3_reset(st);
        cache_bind_text(st, 1, id);
        cache_bind_text(st, 2, key);
        cache_bind_int(st, 3, status_of(i));
        /* 1% carry preferences, so the index's side table is real. */
        cache_bind_text(st, 4, i % 100 == 7 ? "promo" : NULL);
        cache_bind_opt_int(st, 5, i % 100 == 8 ? 4102444800000LL : 0);
        must(cache_step(st) == SQLITE_DONE, "insert");
    }
    must(cache_commit(c) == 0, "commit");
}

static void fill_cache(cache *c, size_t n)
{
    struct configuration_record conf;
    sqlite3_stmt *st;

    memset(&conf, 0, sizeof(conf));
    snprintf(conf.id, sizeof(conf.id), "%s", CFG);
    conf.name = "WA Bench";
    conf.active = 1;
    must(cache_begin(c) == 0, "begin");
    must(configurations_put(c, &conf, 0) == 0, "configuration");
    st = cache_stmt(c, "INSERT INTO sync_runs(kind, started_at, "
                       "finished_at, ok) VALUES ('full', ?1, ?1, 1)");
    cache_bind_int(st, 1, clock_now_ms());
    must(cache_step(st) == SQLITE_DONE, "sync run");
    must(cache_commit(c) == 0, "commit");
    fill_numbers(c, n);
}

/*
 * q questions, half hits and half misses in random order, each copied
 * into one contiguous buffer: a caller's phone string is in its cache
 * already, so reading it must not be a cache miss charged to the gate.
 * Returns the pointers; *storage owns the strings.
 */
static const char **questions(char **storage, const char *keys, size_t n,
                              size_t q)
{
    const char **out = xmalloc(q * sizeof(*out));
    size_t i;

    *storage = xmalloc(q * KEY_LEN);
    for (i = 0; i < q; i++) {
        memcpy(*storage + i * KEY_LEN, keys + (rng() % (2 * n)) * KEY_LEN,
               KEY_LEN);
        out[i] = *storage + i * KEY_LEN;
    }
    return out;
}

/* ---- 1. single decisions and the SQLite baseline ---------------------- */

static double bench_decide(gate *g, const char **qs, size_t q)
{
    struct gate_result r;
    struct stopwatch sw;
    size_t i, allowed = 0;

    for (i = 0; i < q / 10; i++) /* warm up */
        gate_decide(&r, g, CFG, qs[i], NULL);
    sw_start(&sw);
    for (i = 0; i < q; i++) {
        must(gate_decide(&r, g, CFG, qs[i], NULL) == 0, "gate_decide");
        allowed += r.decision == GATE_ALLOW;
    }
    sw_stop(&sw);
    printf("gate_decide, canonical:   %10.0f decisions/s  (%.0f ns each, "
           "cpu %.0f ns; %zu of %zu allowed)\n",
           q / sw.wall, sw.wall * 1e9 / q, sw.cpu * 1e9 / q, allowed, q);
    return q / sw.wall;
}

static double bench_sqlite(cache *c, const char **qs, size_t q)
{
    sqlite3_stmt *st;
    struct stopwatch sw;
    size_t i, found = 0;

    must(sqlite3_prepare_v2(cache_db(c),
                            "SELECT status FROM numbers WHERE "
                            "configuration_id = ?1 AND e164 = ?2",
                            -1, &st, NULL) == SQLITE_OK,
         "prepare lookup");
    sqlite3_bind_text(st, 1, CFG, -1, SQLITE_STATIC);
    for (i = 0; i < q / 10; i++) { /* warm up, as for the gate */
        sqlite3_bind_text(st, 2, qs[i], -1, SQLITE_STATIC);
        sqlite3_step(st);
        sqlite3_reset(st);
    }
    sw_start(&sw);
    for (i = 0; i < q; i++) {
        sqlite3_bind_text(st, 2, qs[i], -1, SQLITE_STATIC);
        found += sqlite3_step(st) == SQLITE_ROW;
        sqlite3_reset(st);
    }
    sw_stop(&sw);
    sqlite3_finalize(st);
    printf("SQLite point lookup:      %10.0f lookups/s    (%.0f ns each, "
           "cpu %.0f ns; %zu of %zu found)\n",
           q / sw.wall, sw.wall * 1e9 / q, sw.cpu * 1e9 / q, found, q);
    return q / sw.wall;
}

/* ---- 2. national input ------------------------------------------------ */

static void bench_national(gate *g, const char **qs, size_t q)
{
    char(*national)[KEY_LEN + 4] = xmalloc(q * sizeof(*national));
    struct gate_result r;
    struct stopwatch sw;
    size_t i;

    for (i = 0; i < q; i++) /* "+4915xxxxxxxxx" -> "015x xxxxxxxx" */
        snprintf(national[i], sizeof(national[i]), "0%.3s %s", qs[i] + 3,
                 qs[i] + 6);
    sw_start(&sw);
    for (i = 0; i < q; i++)
        must(gate_decide(&r, g, CFG, national[i], NULL) == 0, "national");
    sw_stop(&sw);
    printf("gate_decide, national:    %10.0f decisions/s  (%.2f us each "
           "on the national fast path; e.g. \"%s\" -> %s)\n",
           q / sw.wall, sw.wall * 1e6 / q, national[q - 1], r.e164);
    free(national);
}

/* ---- 2b. with frequency caps ------------------------------------------ */

/* Caps on: every decision that would allow counts the number's sends
 * (one indexed SQLite query).  100,000 sends are recorded first. */
static void bench_caps(cache *c, const char **qs, size_t q)
{
    struct gate_options opts = GATE_OPTIONS_INIT;
    struct gate_result r;
    struct stopwatch sw;
    gate *g = NULL;
    size_t i;

    opts.frequency_cap = 3;
    opts.topic_frequency_cap = 1;
    must(gate_new(&g, c, &opts) == 0, "gate_new (caps)");
    must(cache_exec(c, "BEGIN") == 0, "begin");
    for (i = 0; i < 100000; i++) {
        sqlite3_stmt *st = cache_stmt(
            c, "INSERT INTO sends(configuration_id, e164, topic, at) "
               "VALUES ('" CFG "', ?1, 'promo', ?2)");

        cache_bind_text(st, 1, qs[i]);
        cache_bind_int(st, 2, clock_now_ms());
        must(cache_step(st) == SQLITE_DONE, "send");
    }
    must(cache_exec(c, "COMMIT") == 0, "commit");
    sw_start(&sw);
    for (i = 0; i < q; i++)
        must(gate_decide(&r, g, CFG, qs[i], "promo") == 0, "caps");
    sw_stop(&sw);
    printf("gate_decide, caps on:     %10.0f decisions/s  (%.0f ns each: "
           "an allowed number costs a count of its sends)\n",
           q / sw.wall, sw.wall * 1e9 / q);
    gate_free(g);
}

/* ---- 3. bulk ---------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static void bench_bulk(gate *g, const char **qs, size_t q)
{
    struct gate_result *out = xmalloc(q * sizeof(*out));
    struct stopwatch sw;
    double ms[7];
    size_t i;

    for (i = 0; i < 7; i++) {
        sw_start(&sw);
        must(gate_decide_bulk(out, g, CFG, qs, q, NULL) == 0, "bulk");
        sw_stop(&sw);
        ms[i] = sw.wall * 1e3;
    }
    qsort(ms, 7, sizeof(ms[0]), cmp_double);
    printf("gate_decide_bulk %zu:  median %.1f ms, best %.1f ms, worst "
           "%.1f ms (7 runs)\n",
           q, ms[3], ms[0], ms[6]);
    free(out);
}

/* ---- 4. staying fresh ------------------------------------------------- */

static void bench_catch_up(gate *g, const char *path, const char *keys)
{
    sqlite3_stmt *st;
    struct gate_result r;
    struct stopwatch sw;
    cache *other = NULL;
    double us[101];
    int i;

    must(cache_open(&other, path, 0) == 0, "second connection");
    st = cache_stmt(other, "UPDATE numbers SET status = 3 - status "
                           "WHERE configuration_id = '" CFG "' AND e164 = ?1");
    for (i = 0; i < 101; i++) {
        cache_bind_text(st, 1, keys + (size_t)i * 3 * KEY_LEN);
        must(cache_step(st) == SQLITE_DONE, "foreign update");
        sqlite3_reset(st);
        sw_start(&sw);
        must(gate_decide(&r, g, CFG, keys + (size_t)i * 3 * KEY_LEN, NULL) == 0,
             "decide after commit");
        sw_stop(&sw);
        us[i] = sw.wall * 1e6;
    }
    qsort(us, 101, sizeof(us[0]), cmp_double);
    printf("first decision after another connection's commit: median "
           "%.1f us (catch-up: journal + the changed number)\n",
           us[50]);
    cache_close(other);
}

/* ---- 5. the journal triggers' cost on the sync's writes --------------- */

/* The statements of consent_mirror.c's write_row() and touch(), and of a
 * sweep's delete, as the sync runs them. */
#define MIRROR_UPSERT                                                          \
    "INSERT INTO numbers(local_id, dv_id, configuration_id, raw_phone, "       \
    "e164, phone_error, status, dv_status, active, status_at, source, "        \
    "topics, paused_until, modified_on, version, sweep_mark) VALUES (?1, "     \
    "?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) ON "   \
    "CONFLICT(local_id) DO UPDATE SET configuration_id = ?3, raw_phone = "     \
    "?4, e164 = ?5, phone_error = ?6, status = ?7, dv_status = ?8, active "    \
    "= ?9, status_at = ?10, source = ?11, topics = coalesce(?12, topics), "    \
    "paused_until = coalesce(?13, paused_until), modified_on = ?14, "          \
    "version = ?15, sweep_mark = max(sweep_mark, ?16)"
#define MIRROR_TOUCH                                                           \
    "UPDATE numbers SET sweep_mark = ?2 WHERE local_id = ?1 AND sweep_mark < " \
    "?2"
#define SWEEP_DELETE "DELETE FROM numbers WHERE local_id = ?1"
/* consent_mirror.c's baseline_insert(): a first load's plain append. */
#define BASELINE_APPEND                                                        \
    "INSERT INTO numbers(dv_id, configuration_id, raw_phone, e164, "           \
    "phone_error, status, dv_status, active, status_at, source, topics, "      \
    "paused_until, modified_on, version, sweep_mark) VALUES (?1, ?2, ?3, "     \
    "?4, ?5, ?6, ?6, ?7, ?8, 'dataverse', ?9, ?10, ?11, ?12, ?13)"

/* In the order they run: the updates and the delete then meet the
 * appended rows (local_id 1..rows). */
enum write_kind {
    W_APPEND,
    W_UPSERT_NEW,
    W_UPDATE_STATUS,
    W_UPDATE_OTHER,
    W_TOUCH,
    W_DELETE,
    W_KINDS
};

/* A first load's row (other ids and numbers than the upserts'). */
static void append_row(cache *c, size_t i)
{
    sqlite3_stmt *st = cache_stmt(c, BASELINE_APPEND);
    char key[KEY_LEN], id[48];

    key_of(key, i + 5000000);
    snprintf(id, sizeof(id), "00000000-0000-4000-9000-%012zu", i);
    cache_bind_text(st, 1, id);
    cache_bind_text(st, 2, CFG);
    cache_bind_text(st, 3, key);
    cache_bind_text(st, 4, key);
    cache_bind_int(st, 6, 1);
    cache_bind_int(st, 7, 1);
    cache_bind_int(st, 8, 1700000000000);
    cache_bind_int(st, 11, 1700000000000);
    cache_bind_int(st, 12, 1);
    cache_bind_int(st, 13, 1);
    must(cache_step(st) == SQLITE_DONE, "append");
}

static void write_row(cache *c, enum write_kind k, size_t i)
{
    char key[KEY_LEN], id[48];
    sqlite3_stmt *st;

    if (k == W_APPEND) {
        append_row(c, i);
        return;
    }
    if (k == W_TOUCH || k == W_DELETE) {
        st = cache_stmt(c, k == W_TOUCH ? MIRROR_TOUCH : SWEEP_DELETE);
        cache_bind_int(st, 1, (int64_t)i + 1);
        cache_bind_int(st, 2, 2);
        must(cache_step(st) == SQLITE_DONE, "touch/delete");
        return;
    }
    /* A new row of its own, or appended row i + 1 again: first with
     * another status, then with the status kept and other columns new. */
    st = cache_stmt(c, MIRROR_UPSERT);
    key_of(key, k == W_UPSERT_NEW ? i : i + 5000000);
    snprintf(id, sizeof(id), "00000000-0000-4000-%d000-%012zu",
             k == W_UPSERT_NEW ? 8 : 9, i);
    if (k != W_UPSERT_NEW)
        cache_bind_int(st, 1, (int64_t)i + 1);
    cache_bind_text(st, 2, id);
    cache_bind_text(st, 3, CFG);
    cache_bind_text(st, 4, key);
    cache_bind_text(st, 5, key);
    cache_bind_int(st, 7, k == W_UPSERT_NEW ? 1 : 3);
    cache_bind_int(st, 8, k == W_UPSERT_NEW ? 1 : 3);
    cache_bind_int(st, 9, 1);
    cache_bind_int(st, 10, 1700000000000);
    cache_bind_text(st, 11, "dataverse");
    cache_bind_int(st, 14, 1700000000000 + (k == W_UPDATE_OTHER));
    cache_bind_int(st, 15, 1 + (k == W_UPDATE_OTHER));
    cache_bind_int(st, 16, 1);
    must(cache_step(st) == SQLITE_DONE, "upsert");
}

/* CPU µs per row for `rows` writes of kind k, 5,000 per transaction
 * (the sync's page). */
static double write_cost(cache *c, enum write_kind k, size_t rows)
{
    struct stopwatch sw;
    size_t i;

    sw_start(&sw);
    for (i = 0; i < rows; i++) {
        if (i % 5000 == 0)
            must(cache_begin(c) == 0, "begin");
        write_row(c, k, i);
        if (i % 5000 == 4999 || i + 1 == rows)
            must(cache_commit(c) == 0, "commit");
    }
    sw_stop(&sw);
    return sw.cpu * 1e6 / (double)rows;
}

/*
 * The five kinds of write on a cache with and without the number
 * triggers, the two alternating and repeated (this machine is shared):
 * the best of three per kind and cache.
 */
static void bench_write_costs(const char *dir, size_t rows)
{
    static const char *const names[W_KINDS] = {
        "append (first load)",
        "upsert, new row",
        "upsert, status changed (delta)",
        "upsert, other columns only",
        "touch sweep_mark (full re-read)",
        "delete (sweep)",
    };
    double cost[2][W_KINDS], c1;
    char *path;
    cache *c;
    int rep, with, k;

    for (rep = 0; rep < 3; rep++) {
        for (with = 0; with <= 1; with++) {
            path = xasprintf("%s/writes-%d-%d.db", dir, rep, with);
            must(cache_open(&c, path, 0) == 0, "open write cache");
            if (!with)
                must(cache_exec(
                         c, "DROP TRIGGER gate_journal_number_update;"
                            "DROP TRIGGER gate_journal_number_delete;") == 0,
                     "drop triggers");
            for (k = 0; k < W_KINDS; k++) {
                c1 = write_cost(c, (enum write_kind)k, rows);
                if (rep == 0 || c1 < cost[with][k])
                    cost[with][k] = c1;
            }
            cache_close(c);
            free(path);
        }
    }
    printf("sync row writes, CPU us/row, best of 3 over %zu rows (5,000 per "
           "transaction),\nwithout -> with migration 2's triggers:\n",
           rows);
    for (k = 0; k < W_KINDS; k++)
        printf("  %-32s %6.2f -> %6.2f  (%+.2f)\n", names[k], cost[0][k],
               cost[1][k], cost[1][k] - cost[0][k]);
}

/* ---- the run ---------------------------------------------------------- */

static void bench_reads(gate *g, cache *c, const char *keys, size_t n)
{
    size_t q = 4000000;
    char *storage;
    const char **qs = questions(&storage, keys, n, q);
    double gate_rate, sqlite_rate;

    gate_rate = bench_decide(g, qs, q);
    sqlite_rate = bench_sqlite(c, qs, 400000);
    printf("ratio gate / SQLite:      %10.1fx\n", gate_rate / sqlite_rate);
    bench_national(g, qs, 20000);
    bench_bulk(g, qs, 100000);
    bench_caps(c, qs, 400000);
    free(qs);
    free(storage);
}

/* ---- 6. the CLI --------------------------------------------------------- */

/* Median wall seconds of `cmd` (a shell command) over three runs. */
static double run_cmd(const char *cmd)
{
    double t[3], x;
    int i, j;

    for (i = 0; i < 3; i++) {
        x = now_s(CLOCK_MONOTONIC);
        if (system(cmd) == -1)
            must(0, "system");
        t[i] = now_s(CLOCK_MONOTONIC) - x;
    }
    for (i = 0; i < 3; i++)
        for (j = i + 1; j < 3; j++)
            if (t[j] < t[i]) {
                x = t[i];
                t[i] = t[j];
                t[j] = x;
            }
    return t[1];
}

static void bench_cli(const char *dir, const char *path, const char *keys,
                      size_t n)
{
    const char *build = getenv("OPTSYNC_BENCH_BUILD");
    static const char *const modes[] = { "auto", "off" };
    char *in = xasprintf("%s/phones.txt", dir), *one, *cmd, *base, *storage;
    char *config;
    const char **qs;
    size_t q = 100000, i, m;
    double t_one, t_all;
    FILE *f;

    if (!build) {
        printf("optsync gate (CLI): skipped (OPTSYNC_BENCH_BUILD unset)\n");
        free(in);
        return;
    }
    qs = questions(&storage, keys, n, q);
    one = xasprintf("%s/one.txt", dir);
    must((f = fopen(in, "w")) != NULL, "phones file");
    for (i = 0; i < q; i++)
        fprintf(f, "%s\n", qs[i]);
    fclose(f);
    must((f = fopen(one, "w")) != NULL, "phone file");
    fprintf(f, "%s\n", qs[0]);
    fclose(f);
    config = testutil_source_path("config/optsync.ini");
    base = xasprintf("%s/optsync -c %s -o cache.path=%s gate "
                     "--configuration " CFG,
                     build, config, path);
    free(config);
    for (m = 0; m < 2; m++) {
        cmd = xasprintf("%s --index %s < %s > /dev/null", base,
                        m == 0 ? "on" : "off", one);
        t_one = run_cmd(cmd);
        free(cmd);
        cmd = xasprintf("%s --index %s < %s > /dev/null", base, modes[m], in);
        t_all = run_cmd(cmd);
        free(cmd);
        printf("optsync gate, %zu phones, --index %-4s %6.3f s total, "
               "start-up %.3f s: %9.0f decisions/s net\n",
               q, modes[m], t_all, t_one,
               (double)q / (t_all > t_one ? t_all - t_one : 1e-9));
    }
    free(base);
    free(one);
    free(in);
    free(qs);
    free(storage);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000, i;
    struct gate_options opts = GATE_OPTIONS_INIT;
    char *dir = testutil_tmpdir(), *path = xasprintf("%s/gate.db", dir);
    char *keys = xmalloc(2 * n * KEY_LEN);
    struct stopwatch sw;
    cache *c = NULL;
    gate *g = NULL;

    for (i = 0; i < 2 * n; i++)
        key_of(keys + i * KEY_LEN, i);
    must(cache_open(&c, path, 0) == 0, "cache_open");
    sw_start(&sw);
    fill_cache(c, n);
    sw_stop(&sw);
    printf("cache: %zu numbers written in %.1f s\n", n, sw.wall);
    opts.default_region = "DE";
    sw_start(&sw);
    must(gate_new(&g, c, &opts) == 0, "gate_new");
    sw_stop(&sw);
    printf("gate_new (index build): %.2f s\n", sw.wall);
    bench_reads(g, c, keys, n);
    bench_catch_up(g, path, keys);
    bench_cli(dir, path, keys, n);
    gate_free(g);
    cache_close(c);
    bench_write_costs(dir, 100000);
    testutil_rmtree(dir);
    free(keys);
    free(path);
    free(dir);
    return 0;
}
