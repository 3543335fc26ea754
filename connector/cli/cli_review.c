/*
 * cli_review — `optsync review`: messages that contain an opt-out word but
 * matched no keyword ("please stop these"), for a person to act on (with
 * `optsync opt-out`), and `--done ID` to mark one handled.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "clock.h"
#include "units.h"

enum { OPT_JSON = 1, OPT_DONE, OPT_ALL };

static const struct cli_option options[] = {
    { "json", 0, NULL, OPT_JSON, "print a JSON array" },
    { "all", 0, NULL, OPT_ALL, "include messages already reviewed" },
    { "done", 0, "ID", OPT_DONE, "mark near-miss ID as reviewed" },
    { NULL, 0, NULL, 0, NULL },
};

static int mark_done(struct cli_ctx *ctx, const char *arg)
{
    sqlite3_stmt *st;
    int64_t id;

    if (units_int_parse(&id, arg) != 0 || id < 1)
        return cli_usage_error(ctx, "--done needs a near-miss id");
    st = cache_stmt(ctx->cache, "UPDATE near_misses SET reviewed_at = ?2 "
                                "WHERE id = ?1 AND reviewed_at IS NULL");
    if (!st)
        return cli_fail(ctx);
    cache_bind_int(st, 1, id);
    cache_bind_int(st, 2, clock_now_ms());
    if (cache_step(st) != SQLITE_DONE)
        return cli_fail(ctx);
    if (cache_changes(ctx->cache) == 0) {
        fprintf(stderr, "optsync review: no open near-miss %lld\n",
                (long long)id);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

static cJSON *row_json(sqlite3_stmt *st)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(st, 0));
    cli_json_time(o, "at", st, 1);
    cli_json_text(o, "configuration_id", st, 2);
    cli_json_text(o, "phone", st, 3);
    cli_json_text(o, "text", st, 4);
    cli_json_text(o, "message_id", st, 5);
    cJSON_AddBoolToObject(o, "reviewed",
                          sqlite3_column_type(st, 6) != SQLITE_NULL);
    return o;
}

static int list(struct cli_ctx *ctx, int json, int all)
{
    sqlite3_stmt *st = cache_stmt(
        ctx->cache, "SELECT id, at, configuration_id, phone, text, "
                    "message_id, reviewed_at FROM near_misses WHERE ?1 OR "
                    "reviewed_at IS NULL ORDER BY at, id");
    int rc, n = 0;

    if (!st)
        return cli_fail(ctx);
    cache_bind_int(st, 1, all);
    while ((rc = cache_step(st)) == SQLITE_ROW) {
        cJSON *o = row_json(st);
        char *text = json ? cJSON_PrintUnformatted(o) : NULL;

        if (json)
            fprintf(ctx->out, "%s%s", n ? ",\n" : "[\n", text);
        else
            fprintf(ctx->out, "%5d  %s  %-16s  %s\n",
                    (int)sqlite3_column_int64(st, 0),
                    cJSON_GetObjectItem(o, "at")->valuestring,
                    cache_col_text(st, 3) ? cache_col_text(st, 3) : "-",
                    cache_col_text(st, 4));
        free(text);
        cJSON_Delete(o);
        n++;
    }
    if (rc != SQLITE_DONE)
        return cli_fail(ctx);
    if (json)
        fprintf(ctx->out, "%s]\n", n ? "\n" : "[");
    else if (!n)
        fprintf(stderr, "no near-misses to review\n");
    return EXIT_OK;
}

static int run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *arg, *done = NULL;
    int c, rc, json = 0, all = 0;

    while ((c = cli_next_option(ctx, argc, argv, &arg)) != CLI_DONE) {
        if (c == CLI_HELP)
            return EXIT_OK;
        if (c == CLI_USAGE)
            return EXIT_USAGE;
        if (c == OPT_JSON)
            json = 1;
        if (c == OPT_ALL)
            all = 1;
        if (c == OPT_DONE)
            done = arg;
    }
    if (cli_optind() != argc)
        return cli_usage_error(ctx, "unexpected argument '%s'",
                               argv[cli_optind()]);
    rc = cli_cache(ctx);
    if (rc)
        return rc;
    return done ? mark_done(ctx, done) : list(ctx, json, all);
}

const struct cli_command cli_review_command = {
    .name = "review",
    .synopsis = "[--done ID]",
    .summary = "list near-miss messages for a person to act on",
    .description =
        "Lists replies that contain an opt-out word but matched no keyword\n"
        "(\"please stop sending these\").  They changed nothing: decide, act\n"
        "with 'optsync opt-out' if the person meant it, then mark the\n"
        "message reviewed with --done ID.",
    .exit_codes = "  0  listed / marked\n"
                  "  2  usage error, unknown id\n"
                  "  4  database error\n",
    .options = options,
    .run = run,
};
