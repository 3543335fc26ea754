/*
 * cli_status — `optsync status [--json]`: when the last syncs ran and
 * whether the gate would answer (stale or fresh), counts per
 * configuration and status, unparseable phones, quarantined events, the
 * outbox and near-misses.  Exit 1 when the cache is stale (for
 * monitoring).
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "clock.h"

enum { OPT_JSON = 1 };

static const struct cli_option options[] = {
    { "json", 0, NULL, OPT_JSON, "print one JSON object" },
    { NULL, 0, NULL, 0, NULL },
};

/* The newest run of `kind` (NULL: any) that was ok, or any when !ok. */
static cJSON *last_run(cache *c, const char *kind, int ok_only)
{
    sqlite3_stmt *st = cache_stmt(
        c, "SELECT kind, started_at, finished_at, ok, rows, error FROM "
           "sync_runs WHERE (?1 IS NULL OR kind = ?1) AND (?2 = 0 OR ok = 1) "
           "ORDER BY started_at DESC, id DESC LIMIT 1");
    cJSON *o;

    if (!st)
        return NULL;
    cache_bind_text(st, 1, kind);
    cache_bind_int(st, 2, ok_only);
    if (cache_step(st) != SQLITE_ROW)
        return cJSON_CreateNull();
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", cache_col_text(st, 0));
    cli_json_time(o, "started_at", st, 1);
    cli_json_time(o, "finished_at", st, 2);
    cJSON_AddBoolToObject(o, "ok", sqlite3_column_int(st, 3));
    cJSON_AddNumberToObject(o, "rows", (double)sqlite3_column_int64(st, 4));
    if (cache_col_text(st, 5))
        cJSON_AddStringToObject(o, "error", cache_col_text(st, 5));
    sqlite3_reset(st);
    return o;
}

/* "paused" (and since when) after a refused token; null when sending is
 * off, as a pause kept from when it was on says nothing then. */
static void messages_paused(cJSON *o, cache *c, int sending)
{
    sqlite3_stmt *st =
        sending ? cache_stmt(c, "SELECT paused_reason, paused_since FROM "
                                "sender_state WHERE id = 1 AND "
                                "paused_reason IS NOT NULL")
                : NULL;

    if (st && cache_step(st) == SQLITE_ROW) {
        cli_json_text(o, "paused", st, 0);
        cli_json_time(o, "paused_since", st, 1);
    } else {
        cJSON_AddNullToObject(o, "paused");
    }
    if (st)
        sqlite3_reset(st);
}

static cJSON *messages(struct cli_ctx *ctx)
{
    static const char q[] =
        "SELECT sum(state IN ('pending', 'inflight')), sum(state = 'dead'), "
        "sum(state = 'done'), sum(delivery IN ('delivered', 'read')), "
        "sum(delivery = 'failed') FROM outbox WHERE kind = 'whatsapp'";
    static const char *const names[] = { "pending", "dead", "sent", "delivered",
                                         "failed" };
    sqlite3_stmt *st = cache_stmt(ctx->cache, q);
    cJSON *o = cJSON_CreateObject();
    const char *send =
        ctx->cfg->whatsapp.send ? ctx->cfg->whatsapp.send : "off";
    size_t i;

    cJSON_AddStringToObject(o, "send", send);
    if (st && cache_step(st) == SQLITE_ROW)
        for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
            cJSON_AddNumberToObject(o, names[i],
                                    (double)sqlite3_column_int64(st, (int)i));
    if (st)
        sqlite3_reset(st);
    messages_paused(o, ctx->cache, strcmp(send, "off") != 0);
    return o;
}

static cJSON *configurations(cache *c)
{
    sqlite3_stmt *st = cache_stmt(
        c, "SELECT c.id, c.name, c.double_opt_in, c.active, "
           "sum(n.active = 1 AND n.status = 1), "
           "sum(n.active = 1 AND n.status = 2), "
           "sum(n.active = 1 AND n.status = 3), "
           "sum(n.active = 1 AND n.status = 0), sum(n.active = 0), "
           "count(n.local_id) FROM configurations c LEFT JOIN numbers n ON "
           "n.configuration_id = c.id GROUP BY c.id ORDER BY c.name");
    cJSON *arr = cJSON_CreateArray(), *o, *counts;
    static const char *const names[] = { "single_opt_in", "double_opt_in",
                                         "opted_out", "none", "inactive" };
    int i;

    while (st && cache_step(st) == SQLITE_ROW) {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", cache_col_text(st, 0));
        cJSON_AddStringToObject(o, "name", cache_col_text(st, 1));
        cJSON_AddBoolToObject(o, "double_opt_in", sqlite3_column_int(st, 2));
        cJSON_AddBoolToObject(o, "active", sqlite3_column_int(st, 3));
        counts = cJSON_AddObjectToObject(o, "counts");
        for (i = 0; i < 5; i++)
            cJSON_AddNumberToObject(counts, names[i],
                                    (double)sqlite3_column_int64(st, 4 + i));
        cJSON_AddNumberToObject(o, "numbers",
                                (double)sqlite3_column_int64(st, 9));
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static int64_t scalar(cache *c, const char *sql)
{
    sqlite3_stmt *st = cache_stmt(c, sql);
    int64_t v = 0;

    if (st && cache_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    if (st)
        sqlite3_reset(st);
    return v;
}

static cJSON *unparseable(cache *c)
{
    sqlite3_stmt *st = cache_stmt(
        c, "SELECT dv_id, configuration_id, raw_phone, phone_error FROM "
           "numbers INDEXED BY numbers_unparseable WHERE e164 IS NULL "
           "ORDER BY configuration_id, dv_id "
           "LIMIT 1000");
    cJSON *arr = cJSON_CreateArray(), *o;
    const char *s;

    while (st && cache_step(st) == SQLITE_ROW) {
        o = cJSON_CreateObject();
        cli_json_text(o, "id", st, 0);
        cli_json_text(o, "configuration_id", st, 1);
        cli_json_text(o, "raw_phone", st, 2);
        s = cache_col_text(st, 3);
        cJSON_AddStringToObject(o, "reason", s ? s : "");
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

/* Rows whose key libphonenumber's metadata calls no valid number. */
static cJSON *warnings(cache *c)
{
    sqlite3_stmt *st = cache_stmt(
        c, "SELECT dv_id, configuration_id, raw_phone, e164, phone_warning "
           "FROM numbers INDEXED BY numbers_phone_warning "
           "WHERE phone_warning IS NOT NULL "
           "ORDER BY configuration_id, dv_id LIMIT 1000");
    cJSON *arr = cJSON_CreateArray(), *o;

    while (st && cache_step(st) == SQLITE_ROW) {
        o = cJSON_CreateObject();
        cli_json_text(o, "id", st, 0);
        cli_json_text(o, "configuration_id", st, 1);
        cli_json_text(o, "raw_phone", st, 2);
        cli_json_text(o, "phone", st, 3);
        cli_json_text(o, "warning", st, 4);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static cJSON *collect(struct cli_ctx *ctx, int *stale)
{
    cJSON *o = cJSON_CreateObject(), *sub;
    int64_t last = 0, now = clock_now_ms();
    int64_t max_ms = ctx->cfg->sync.max_staleness * 1000;

    cache_last_sync_success(&last, ctx->cache);
    *stale = !cache_sync_is_fresh(last, now, max_ms);
    cJSON_AddItemToObject(o, "last_full_sync", last_run(ctx->cache, "full", 1));
    cJSON_AddItemToObject(o, "last_delta_sync",
                          last_run(ctx->cache, "delta", 1));
    cJSON_AddItemToObject(o, "last_successful_sync",
                          last_run(ctx->cache, NULL, 1));
    cJSON_AddItemToObject(o, "last_attempt", last_run(ctx->cache, NULL, 0));
    cJSON_AddBoolToObject(o, "stale", *stale);
    cJSON_AddNumberToObject(o, "max_staleness_seconds", (double)max_ms / 1000);
    cJSON_AddItemToObject(o, "configurations", configurations(ctx->cache));
    /* The partial indexes of migration 6, named (sync.c, count_phones). */
    cJSON_AddNumberToObject(
        o, "unparseable",
        (double)scalar(ctx->cache, "SELECT count(*) FROM numbers INDEXED BY "
                                   "numbers_unparseable WHERE e164 IS NULL"));
    cJSON_AddItemToObject(o, "unparseable_rows", unparseable(ctx->cache));
    cJSON_AddNumberToObject(o, "phone_warnings",
                            (double)scalar(ctx->cache,
                                           "SELECT count(*) FROM numbers "
                                           "INDEXED BY numbers_phone_warning "
                                           "WHERE phone_warning IS NOT "
                                           "NULL"));
    cJSON_AddItemToObject(o, "phone_warning_rows", warnings(ctx->cache));
    cJSON_AddNumberToObject(
        o, "quarantined",
        (double)scalar(ctx->cache, "SELECT count(*) FROM quarantine WHERE "
                                   "resolved_at IS NULL"));
    sub = cJSON_AddObjectToObject(o, "outbox");
    cJSON_AddNumberToObject(
        sub, "pending",
        (double)scalar(ctx->cache, "SELECT count(*) FROM outbox WHERE state "
                                   "IN ('pending', 'inflight')"));
    cJSON_AddNumberToObject(sub, "dead",
                            (double)scalar(ctx->cache,
                                           "SELECT count(*) FROM outbox "
                                           "WHERE state = 'dead'"));
    cJSON_AddItemToObject(o, "messages", messages(ctx));
    cJSON_AddNumberToObject(
        o, "near_misses",
        (double)scalar(ctx->cache, "SELECT count(*) FROM near_misses WHERE "
                                   "reviewed_at IS NULL"));
    cJSON_AddNumberToObject(o, "ledger_entries",
                            (double)scalar(ctx->cache, "SELECT count FROM "
                                                       "ledger_head"));
    return o;
}

static const char *str_or(const cJSON *o, const char *name, const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItem(o, name);

    return cJSON_IsString(v) ? v->valuestring : dflt;
}

/* Consent messages: how they are sent, whether sending is paused (and
 * why), and how many wait, failed or were delivered. */
static void print_messages(FILE *out, const cJSON *o)
{
    const cJSON *m = cJSON_GetObjectItem(o, "messages");

    if (!m || strcmp(str_or(m, "send", "off"), "off") == 0)
        return;
    fprintf(out,
            "consent messages (%s): %d pending, %d dead, %d sent, %d "
            "delivered or read, %d failed\n",
            str_or(m, "send", "off"),
            cJSON_GetObjectItem(m, "pending")->valueint,
            cJSON_GetObjectItem(m, "dead")->valueint,
            cJSON_GetObjectItem(m, "sent")->valueint,
            cJSON_GetObjectItem(m, "delivered")->valueint,
            cJSON_GetObjectItem(m, "failed")->valueint);
    if (cJSON_IsString(cJSON_GetObjectItem(m, "paused")))
        fprintf(out, "consent messages PAUSED since %s: %s\n",
                str_or(m, "paused_since", "?"), str_or(m, "paused", ""));
}

/* At most this many rows of each list in the text output: a million-row
 * cache may hold tens of thousands, which drown the rest of the report;
 * --json carries up to 1,000 and `numbers --json` every one. */
#define STATUS_TEXT_ROWS 20

static void print_more(FILE *out, double total, int shown)
{
    if (total > shown)
        fprintf(out,
                "  ... and %.0f more (`optsync status --json` lists 1,000; "
                "`optsync numbers --configuration C --json` every row)\n",
                total - shown);
}

/* Unparseable rows: no key, so the gate cannot find them. */
static void print_unparseable(FILE *out, const cJSON *o)
{
    const cJSON *c, *n = cJSON_GetObjectItem(o, "unparseable");
    int shown = 0;

    if (!cJSON_IsNumber(n) || n->valuedouble <= 0)
        return;
    fprintf(out, "unparseable phones (%.0f):\n", n->valuedouble);
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(o, "unparseable_rows"))
    {
        if (shown == STATUS_TEXT_ROWS)
            break;
        fprintf(out, "  %s \"%s\": %s\n", str_or(c, "id", "(local)"),
                str_or(c, "raw_phone", ""), str_or(c, "reason", ""));
        shown++;
    }
    print_more(out, n->valuedouble, shown);
}

/* Their own heading: they are keys (the gate decides them), unlike the
 * unparseable rows above. */
static void print_warnings(FILE *out, const cJSON *o)
{
    const cJSON *c, *n = cJSON_GetObjectItem(o, "phone_warnings");
    int shown = 0;

    if (!cJSON_IsNumber(n) || n->valuedouble <= 0)
        return;
    fprintf(out,
            "not a valid number in libphonenumber's metadata \xe2\x80\x94 a "
            "typo, or a range newer than the metadata (%.0f):\n",
            n->valuedouble);
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(o, "phone_warning_rows"))
    {
        if (shown == STATUS_TEXT_ROWS)
            break;
        fprintf(out, "  %s \"%s\": %s\n", str_or(c, "id", "(local)"),
                str_or(c, "raw_phone", ""), str_or(c, "phone", ""));
        shown++;
    }
    print_more(out, n->valuedouble, shown);
}

static void print_text(FILE *out, const cJSON *o)
{
    const cJSON *c, *ok = cJSON_GetObjectItem(o, "last_successful_sync");
    const cJSON *attempt = cJSON_GetObjectItem(o, "last_attempt");

    fprintf(out, "last successful sync: %s (%s)\n",
            str_or(ok, "started_at", "never"), str_or(ok, "kind", "-"));
    if (cJSON_IsObject(attempt) &&
        !cJSON_IsTrue(cJSON_GetObjectItem(attempt, "ok")))
        fprintf(out, "last attempt failed:  %s: %s\n",
                str_or(attempt, "started_at", "?"),
                str_or(attempt, "error", "(interrupted)"));
    fprintf(out, "gate:                 %s\n",
            cJSON_IsTrue(cJSON_GetObjectItem(o, "stale"))
                ? "STALE (every decision is cache_stale)"
                : "fresh");
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(o, "configurations"))
    {
        const cJSON *n = cJSON_GetObjectItem(c, "counts");

        fprintf(out,
                "configuration %s \"%s\": %d single, %d double, %d opted "
                "out, %d none, %d inactive\n",
                str_or(c, "id", ""), str_or(c, "name", ""),
                cJSON_GetObjectItem(n, "single_opt_in")->valueint,
                cJSON_GetObjectItem(n, "double_opt_in")->valueint,
                cJSON_GetObjectItem(n, "opted_out")->valueint,
                cJSON_GetObjectItem(n, "none")->valueint,
                cJSON_GetObjectItem(n, "inactive")->valueint);
    }
    print_unparseable(out, o);
    print_warnings(out, o);
    print_messages(out, o);
    fprintf(
        out,
        "quarantined events: %d; outbox: %d pending, %d dead; "
        "near-misses to review: %d; ledger entries: %d\n",
        cJSON_GetObjectItem(o, "quarantined")->valueint,
        cJSON_GetObjectItem(cJSON_GetObjectItem(o, "outbox"), "pending")
            ->valueint,
        cJSON_GetObjectItem(cJSON_GetObjectItem(o, "outbox"), "dead")->valueint,
        cJSON_GetObjectItem(o, "near_misses")->valueint,
        cJSON_GetObjectItem(o, "ledger_entries")->valueint);
    if (cJSON_GetObjectItem(cJSON_GetObjectItem(o, "outbox"), "dead")->valueint)
        fprintf(out, "dead write-backs: 'optsync outbox list --state dead' "
                     "shows why, 'optsync outbox retry' sends them again\n");
}

static int run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *arg;
    int c, rc, json = 0, stale = 1;
    cJSON *o;
    char *text;

    while ((c = cli_next_option(ctx, argc, argv, &arg)) != CLI_DONE) {
        if (c == CLI_HELP)
            return EXIT_OK;
        if (c == CLI_USAGE)
            return EXIT_USAGE;
        if (c == OPT_JSON)
            json = 1;
    }
    if (cli_optind() != argc)
        return cli_usage_error(ctx, "unexpected argument '%s'",
                               argv[cli_optind()]);
    rc = cli_cache(ctx);
    if (rc)
        return rc;
    o = collect(ctx, &stale);
    if (json) {
        text = cJSON_Print(o);
        fprintf(ctx->out, "%s\n", text);
        free(text);
    } else {
        print_text(ctx->out, o);
    }
    cJSON_Delete(o);
    return stale ? EXIT_NEGATIVE : EXIT_OK;
}

const struct cli_command cli_status_command = {
    .name = "status",
    .synopsis = "[--json]",
    .summary = "show sync state, staleness and counts",
    .description =
        "Shows the last full, delta and successful syncs, whether the gate\n"
        "is fresh or fails closed (stale), counts per configuration and\n"
        "status, phones that could not be parsed (kept out of the gate),\n"
        "phones libphonenumber's metadata calls no valid number (a typo, or\n"
        "a range newer than the metadata; the gate decides them like any\n"
        "other), quarantined events, the outbox, and near-misses to review.",
    .exit_codes = "  0  fresh\n"
                  "  1  stale: no successful sync within max_staleness\n"
                  "  2  usage or config error\n"
                  "  4  database error\n",
    .options = options,
    .run = run,
};
