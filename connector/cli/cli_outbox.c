/*
 * cli_outbox — `optsync outbox list|retry|flush`: what waits to be
 * written back to Dynamics, dead letters back into the queue, and the
 * write-back without a daemon (outbox.h).  Also cli_writeback(), which
 * `optsync sync` runs after a successful sync.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "clock.h"
#include "log.h"
#include "outbox.h"
#include "units.h"

enum {
    OPT_JSON = 1,
    OPT_STATE,
    OPT_ALL,
    OPT_LIMIT,
    OPT_WAIT,
    OPT_TEST_STOP_AFTER,
};

static const struct cli_option options[] = {
    { "json", 0, NULL, OPT_JSON, "list: print a JSON array" },
    { "state", 0, "STATE", OPT_STATE,
      "list: pending, inflight, dead, done, superseded or all\n"
      "                              (default: all but done and superseded)" },
    { "limit", 0, "N", OPT_LIMIT,
      "list: at most N rows, newest first "
      "(default 1000)" },
    { "all", 0, NULL, OPT_ALL, "retry: every dead letter" },
    { "wait", 0, "DURATION", OPT_WAIT,
      "flush: wait up to DURATION for writes backing off (default 0)" },
    { "test-stop-after", 0, "STEPS", OPT_TEST_STOP_AFTER, NULL },
    { NULL, 0, NULL, 0, NULL },
};

struct args {
    const char *verb;
    const char *state;
    const char *id;
    int json, all;
    int64_t limit, wait_s;
    long stop_after;
};

static int parse_option(struct cli_ctx *ctx, struct args *a, int c,
                        const char *arg)
{
    int64_t n;

    switch (c) {
    case OPT_JSON: a->json = 1; return 0;
    case OPT_STATE: a->state = arg; return 0;
    case OPT_ALL: a->all = 1; return 0;
    case OPT_LIMIT:
        if (units_int_parse(&a->limit, arg) != 0 || a->limit < 1)
            return cli_usage_error(ctx, "--limit needs N > 0");
        return 0;
    case OPT_WAIT:
        if (units_duration_parse(&a->wait_s, arg) != 0 || a->wait_s < 0)
            return cli_usage_error(ctx, "--wait needs a duration (30s, 5m)");
        return 0;
    case OPT_TEST_STOP_AFTER:
        if (units_int_parse(&n, arg) != 0 || n < 1)
            return cli_usage_error(ctx, "--test-stop-after needs N > 0");
        a->stop_after = (long)n;
        return 0;
    default: return 0;
    }
}

static int parse(struct cli_ctx *ctx, int argc, char **argv, struct args *a)
{
    const char *arg;
    int c, rc;

    memset(a, 0, sizeof(*a));
    a->limit = 1000;
    while ((c = cli_next_option(ctx, argc, argv, &arg)) != CLI_DONE) {
        if (c == CLI_HELP)
            return EXIT_OK;
        if (c == CLI_USAGE)
            return EXIT_USAGE;
        if ((rc = parse_option(ctx, a, c, arg)) != 0)
            return rc;
    }
    if (cli_optind() >= argc)
        return cli_usage_error(ctx, "expected list, retry or flush");
    a->verb = argv[cli_optind()];
    if (cli_optind() + 1 < argc)
        a->id = argv[cli_optind() + 1];
    if (cli_optind() + 2 < argc || (a->id && strcmp(a->verb, "retry") != 0))
        return cli_usage_error(ctx, "unexpected argument '%s'", argv[argc - 1]);
    return -1;
}

/* ---- list ------------------------------------------------------------------
 */

static cJSON *row_json(sqlite3_stmt *st)
{
    cJSON *o = cJSON_CreateObject();
    enum consent_status s = (enum consent_status)sqlite3_column_int(st, 5);

    cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(st, 0));
    cli_json_text(o, "kind", st, 1);
    cli_json_text(o, "state", st, 2);
    cli_json_text(o, "configuration_id", st, 3);
    cli_json_text(o, "phone", st, 4);
    cJSON_AddStringToObject(o, "status", consent_status_name(s));
    cli_json_text(o, "reason", st, 6);
    cJSON_AddNumberToObject(o, "attempts", (double)sqlite3_column_int64(st, 7));
    cli_json_time(o, "next_attempt_at", st, 8);
    cli_json_text(o, "last_error", st, 9);
    cli_json_text(o, "dv_id", st, 10);
    cli_json_time(o, "created_at", st, 11);
    cli_json_time(o, "updated_at", st, 12);
    if (sqlite3_column_type(st, 13) != SQLITE_NULL) {
        /* A consent message (kind whatsapp). */
        cli_json_text(o, "message", st, 13);
        cli_json_text(o, "wamid", st, 14);
        cli_json_text(o, "delivery", st, 15);
    }
    return o;
}

static cJSON *list_rows(cache *c, const char *state, int64_t limit)
{
    sqlite3_stmt *st = cache_stmt(
        c, "SELECT id, kind, state, configuration_id, e164, status, reason, "
           "attempts, CASE WHEN state = 'pending' AND next_attempt_at > 0 "
           "THEN next_attempt_at END, "
           "last_error, dv_id, created_at, updated_at, message, wamid, "
           "delivery FROM outbox WHERE "
           "(?1 = 'all' OR state = ?1 OR (?1 = 'open' AND state IN "
           "('pending', 'inflight', 'dead'))) ORDER BY id DESC LIMIT ?2");
    cJSON *arr = cJSON_CreateArray();

    if (!st)
        return arr;
    cache_bind_text(st, 1, state);
    cache_bind_int(st, 2, limit);
    while (cache_step(st) == SQLITE_ROW)
        cJSON_AddItemToArray(arr, row_json(st));
    return arr;
}

static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItem(o, name);

    return cJSON_IsString(v) ? v->valuestring : "-";
}

static void print_list(FILE *out, const cJSON *arr)
{
    const cJSON *o;

    if (cJSON_GetArraySize(arr) == 0) {
        fprintf(out, "outbox: nothing\n");
        return;
    }
    fprintf(out, "%-6s %-10s %-9s %-16s %-13s %-4s %-20s %s\n", "ID", "STATE",
            "KIND", "PHONE", "STATUS", "TRY", "NEXT", "ERROR");
    cJSON_ArrayForEach(o, arr)
    {
        fprintf(out, "%-6d %-10s %-9s %-16s %-13s %-4d %-20s %s\n",
                cJSON_GetObjectItem(o, "id")->valueint, jstr(o, "state"),
                jstr(o, "kind"), jstr(o, "phone"),
                cJSON_GetObjectItem(o, "message") ? jstr(o, "message")
                                                  : jstr(o, "status"),
                cJSON_GetObjectItem(o, "attempts")->valueint,
                strcmp(jstr(o, "state"), "pending") == 0 &&
                        cJSON_IsNull(cJSON_GetObjectItem(o, "next_attempt_at"))
                    ? "now"
                    : jstr(o, "next_attempt_at"),
                jstr(o, "last_error"));
    }
}

static int list(struct cli_ctx *ctx, const struct args *a)
{
    static const char *const states[] = { "pending", "inflight",   "dead",
                                          "done",    "superseded", "all" };
    const char *state = a->state ? a->state : "open";
    size_t i;
    cJSON *arr;
    char *text;

    for (i = 0; a->state && i < sizeof(states) / sizeof(states[0]); i++)
        if (strcmp(a->state, states[i]) == 0)
            break;
    if (a->state && i == sizeof(states) / sizeof(states[0]))
        return cli_usage_error(ctx, "unknown --state '%s'", a->state);
    arr = list_rows(ctx->cache, state, a->limit);
    if (a->json) {
        text = cJSON_Print(arr);
        fprintf(ctx->out, "%s\n", text);
        free(text);
    } else {
        print_list(ctx->out, arr);
    }
    cJSON_Delete(arr);
    return EXIT_OK;
}

/* ---- retry -----------------------------------------------------------------
 */

static int retry(struct cli_ctx *ctx, const struct args *a)
{
    int64_t id = 0;
    int count = 0, rc;

    if (!a->all == !a->id)
        return cli_usage_error(ctx, "retry needs an ID or --all");
    if (a->id && (units_int_parse(&id, a->id) != 0 || id < 1))
        return cli_usage_error(ctx, "'%s' is not an outbox row id", a->id);
    rc = outbox_retry_dead(&count, ctx->cache, id);
    if (rc == ERR_NOTFOUND) {
        fprintf(stderr, "optsync outbox: %s\n", err_message());
        return EXIT_NEGATIVE;
    }
    if (rc)
        return cli_fail(ctx);
    fprintf(ctx->out, "outbox: %d dead letter%s back in the queue\n", count,
            count == 1 ? "" : "s");
    return count ? EXIT_OK : EXIT_NEGATIVE;
}

/* ---- flush (and sync's write-back) ----------------------------------------
 */

int cli_writeback(struct cli_ctx *ctx, auth *a, struct http_throttle *throttle,
                  int64_t wait_s, long stop_after, struct outbox_stats *out)
{
    struct outbox_options o;
    outbox *ob = NULL;
    int rc;

    outbox_options_from_config(&o, ctx->cfg);
    o.drain_wait_ms = wait_s * 1000;
    o.test_stop_after = stop_after;
    rc = outbox_new(&ob, ctx->cfg, ctx->mapping, ctx->cache, a, throttle, &o);
    if (rc == 0)
        rc = outbox_drain(out, ob);
    outbox_free(ob);
    return rc;
}

void cli_writeback_summary(FILE *out, const struct outbox_stats *s)
{
    fprintf(out,
            "write-back: %lld written, %lld conflicts resolved, %lld to "
            "retry, %lld dead, %lld waiting, %lld requests\n",
            (long long)s->written, (long long)s->conflicts,
            (long long)s->retried, (long long)s->dead, (long long)s->waiting,
            (long long)s->requests);
}

static int flush(struct cli_ctx *ctx, const struct args *args)
{
    struct http_throttle *throttle = http_throttle_new();
    struct http_options ho = HTTP_OPTIONS_INIT;
    struct outbox_stats s;
    http *token_http = NULL;
    auth *a = NULL;
    int rc;

    memset(&s, 0, sizeof(s));
    ho.connect_timeout_ms = ctx->cfg->dataverse.connect_timeout * 1000;
    ho.timeout_ms = ctx->cfg->dataverse.timeout * 1000;
    ho.ca_file = ctx->cfg->dataverse.ca_file;
    ho.throttle = throttle;
    rc = http_new(&token_http, &ho);
    if (rc == 0)
        rc = auth_new(&a, ctx->cfg, token_http);
    if (rc == 0)
        rc =
            cli_writeback(ctx, a, throttle, args->wait_s, args->stop_after, &s);
    auth_free(a);
    http_free(token_http);
    http_throttle_free(throttle);
    if (rc == ERR_CONFLICT) {
        fprintf(stderr, "optsync outbox: %s\n", err_message());
        return EXIT_LOCAL;
    }
    if (rc)
        return cli_fail(ctx);
    cli_writeback_summary(ctx->out, &s);
    return s.dead || s.waiting ? EXIT_NEGATIVE : EXIT_OK;
}

static int run(struct cli_ctx *ctx, int argc, char **argv)
{
    struct args a;
    int rc = parse(ctx, argc, argv, &a);

    if (rc >= 0)
        return rc;
    if (strcmp(a.verb, "list") != 0 && strcmp(a.verb, "retry") != 0 &&
        strcmp(a.verb, "flush") != 0)
        return cli_usage_error(ctx, "unknown verb '%s' (list, retry, flush)",
                               a.verb);
    rc = cli_mapping(ctx);
    if (rc == 0)
        rc = cli_cache(ctx);
    if (rc)
        return rc;
    if (strcmp(a.verb, "list") == 0)
        return list(ctx, &a);
    if (strcmp(a.verb, "retry") == 0)
        return retry(ctx, &a);
    return flush(ctx, &a);
}

const struct cli_command cli_outbox_command = {
    .name = "outbox",
    .synopsis = "list [--state S] [--json] | retry ID|--all | flush [--wait D]",
    .summary = "write-backs to Dynamics and consent messages: list, retry "
               "dead letters, flush",
    .description =
        "Local consent changes are written back to Dataverse from the\n"
        "outbox (kind dataverse), and consent messages go to WhatsApp\n"
        "from it (kind whatsapp, when [whatsapp] send is not off): by\n"
        "`optsync serve`, after each successful `optsync sync`, or by\n"
        "`optsync outbox flush`.\n"
        "\n"
        "  list   rows waiting (pending), being sent (inflight) and dead\n"
        "         letters (writes Dataverse refused, or that failed\n"
        "         max_attempts times), with the last error\n"
        "  retry  puts dead letter ID (or --all) back in the queue\n"
        "  flush  writes back everything due now, in $batch requests of\n"
        "         [outbox] batch_size, and exits (no daemon needed)",
    .exit_codes = "  0  listed / retried / everything written\n"
                  "  1  retry: nothing to retry; flush: rows are dead or still "
                  "waiting\n"
                  "  2  usage or config error\n"
                  "  3  flush: Entra ID or Dataverse refused the credentials\n"
                  "  4  cache error, or another process is writing back\n",
    .options = options,
    .secrets = CONFIG_FOR_DATAVERSE | CONFIG_FOR_SENDER,
    .run = run,
};
