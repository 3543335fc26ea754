/*
 * cli_numbers — `optsync numbers --configuration ID|NAME`: the admin's
 * view of "Configuration > Related > Opt-In / Opt-Out Numbers", from the
 * cache, as a table, JSON (docs/design.md's shape) or CSV.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "numbers_json.h"

enum { OPT_CONFIGURATION = 1, OPT_STATUS, OPT_JSON, OPT_CSV };

static const struct cli_option options[] = {
    { "configuration", 0, "ID|NAME", OPT_CONFIGURATION,
      "the Configuration (Dataverse id or exact name); required" },
    { "status", 0, "STATUS", OPT_STATUS,
      "only none, single_opt_in, double_opt_in or opted_out" },
    { "json", 0, NULL, OPT_JSON, "a JSON array" },
    { "csv", 0, NULL, OPT_CSV, "CSV with a header line" },
    { NULL, 0, NULL, 0, NULL },
};

enum format { TEXT, JSON, CSV };

static void csv_field(FILE *out, const char *s, int last)
{
    if (s && strpbrk(s, ",\"\r\n")) {
        fputc('"', out);
        for (; *s; s++) {
            if (*s == '"')
                fputc('"', out);
            fputc(*s, out);
        }
        fputc('"', out);
    } else if (s) {
        fputs(s, out);
    }
    fputc(last ? '\n' : ',', out);
}

static void print_row(FILE *out, enum format f, cJSON *o, int n)
{
    static const char *const keys[] = { "id",          "configuration_id",
                                        "phone",       "raw_phone",
                                        "status",      "active",
                                        "modified_on", "pending_writeback" };
    char *text;
    size_t i;

    if (f == JSON) {
        text = cJSON_PrintUnformatted(o);
        fprintf(out, "%s%s", n ? ",\n" : "[\n", text);
        free(text);
        return;
    }
    if (f == CSV) {
        for (i = 0; i < 8; i++) {
            cJSON *v = cJSON_GetObjectItem(o, keys[i]);

            csv_field(out,
                      cJSON_IsString(v)  ? v->valuestring
                      : cJSON_IsTrue(v)  ? "true"
                      : cJSON_IsFalse(v) ? "false"
                                         : NULL,
                      i == 7);
        }
        return;
    }
    fprintf(out, "%-36s  %-16s  %-13s  %-6s  %s\n",
            cJSON_IsString(cJSON_GetObjectItem(o, "id"))
                ? cJSON_GetObjectItem(o, "id")->valuestring
                : "(not yet in Dataverse)",
            cJSON_IsString(cJSON_GetObjectItem(o, "phone"))
                ? cJSON_GetObjectItem(o, "phone")->valuestring
                : "(unparseable)",
            cJSON_GetObjectItem(o, "status")->valuestring,
            cJSON_IsTrue(cJSON_GetObjectItem(o, "active")) ? "active"
                                                           : "inact.",
            cJSON_GetObjectItem(o, "raw_phone")->valuestring
                ? cJSON_GetObjectItem(o, "raw_phone")->valuestring
                : "");
}

static int list(struct cli_ctx *ctx, const char *id, int status, enum format f)
{
    sqlite3_stmt *st = cache_stmt(
        ctx->cache, "SELECT " NUMBERS_JSON_COLUMNS " FROM numbers WHERE "
                    "configuration_id = ?1 AND (?2 < 0 OR status = ?2) "
                    "ORDER BY e164 IS NULL, e164, dv_id");
    int rc, n = 0;

    if (!st)
        return cli_fail(ctx);
    cache_bind_text(st, 1, id);
    cache_bind_int(st, 2, status);
    if (f == CSV)
        fputs("id,configuration_id,phone,raw_phone,status,active,"
              "modified_on,pending_writeback\n",
              ctx->out);
    while ((rc = cache_step(st)) == SQLITE_ROW) {
        cJSON *o = numbers_row_json(st);

        print_row(ctx->out, f, o, n++);
        cJSON_Delete(o);
    }
    if (rc != SQLITE_DONE)
        return cli_fail(ctx);
    if (f == JSON)
        fprintf(ctx->out, "%s]\n", n ? "\n" : "[");
    if (f == TEXT)
        fprintf(stderr, "%d number%s\n", n, n == 1 ? "" : "s");
    return fflush(ctx->out) == 0 ? EXIT_OK : EXIT_LOCAL;
}

static int run(struct cli_ctx *ctx, int argc, char **argv)
{
    char id[MAPPING_GUID_LEN + 1];
    const char *arg, *configuration = NULL;
    enum consent_status st;
    enum format f = TEXT;
    int c, rc, status = -1;

    while ((c = cli_next_option(ctx, argc, argv, &arg)) != CLI_DONE) {
        if (c == CLI_HELP)
            return EXIT_OK;
        if (c == CLI_USAGE)
            return EXIT_USAGE;
        if (c == OPT_CONFIGURATION)
            configuration = arg;
        if (c == OPT_JSON)
            f = JSON;
        if (c == OPT_CSV)
            f = CSV;
        if (c == OPT_STATUS) {
            if (consent_status_parse(&st, arg) != 0)
                return cli_usage_error(ctx, "unknown status '%s'", arg);
            status = (int)st;
        }
    }
    if (!configuration || cli_optind() != argc)
        return cli_usage_error(ctx, "expected --configuration ID|NAME");
    rc = cli_configuration(ctx, id, configuration);
    return rc ? rc : list(ctx, id, status, f);
}

const struct cli_command cli_numbers_command = {
    .name = "numbers",
    .synopsis = "--configuration ID|NAME [--status S] [--json|--csv]",
    .summary = "list a configuration's Opt-In / Opt-Out Numbers",
    .description =
        "The cache's copy of Configuration > Related > Opt-In / Opt-Out\n"
        "Numbers: Dataverse id (null until a local change is written back),\n"
        "E.164 phone (null when it could not be parsed), the phone as typed,\n"
        "status, active, modified on, and whether a write-back is pending.\n"
        "--json adds \"phone_error\" (why a phone did not parse) and\n"
        "\"phone_warning\" (a key libphonenumber's metadata calls no valid\n"
        "number: a typo, or a range newer than the metadata).",
    .exit_codes = "  0  listed\n"
                  "  2  usage error, unknown configuration\n"
                  "  4  database error\n",
    .options = options,
    .run = run,
};
