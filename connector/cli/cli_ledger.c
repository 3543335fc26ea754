/*
 * cli_ledger — `optsync ledger verify` (walk the hash chain; name the
 * first broken entry) and `optsync ledger export [--since T]` (NDJSON that
 * can be verified outside optsync, see ledger.h for the byte form).
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "clock.h"
#include "ledger.h"
#include "units.h"

enum { OPT_SINCE = 1 };

static const struct cli_option options[] = {
    { "since", 0, "TIME", OPT_SINCE,
      "export: entries at or after TIME (ISO 8601, or a duration ago: 7d)" },
    { NULL, 0, NULL, 0, NULL },
};

static int verify(struct cli_ctx *ctx)
{
    struct ledger_verify_result r;

    if (ledger_verify(&r, ctx->cache) != 0)
        return cli_fail(ctx);
    if (r.intact) {
        fprintf(ctx->out, "ledger intact: %lld entries\n", (long long)r.count);
        return EXIT_OK;
    }
    fprintf(ctx->out, "ledger broken at entry %lld: %s\n", (long long)r.bad_seq,
            r.reason);
    return EXIT_NEGATIVE;
}

static int print_line(const struct ledger_entry *e, void *payload)
{
    FILE *out = payload;
    cJSON *o = ledger_entry_json(e);
    char *text = cJSON_PrintUnformatted(o);

    fprintf(out, "%s\n", text);
    free(text);
    cJSON_Delete(o);
    return ferror(out) ? ERR_FAIL : 0;
}

static int parse_since(int64_t *out, const char *text)
{
    int64_t secs;

    if (mapping_time_parse(out, text) == 0)
        return 0;
    if (units_duration_parse(&secs, text) == 0) {
        *out = clock_now_ms() - secs * 1000;
        return 0;
    }
    return ERR_BADINPUT;
}

static int run(struct cli_ctx *ctx, int argc, char **argv)
{
    struct ledger_filter f;
    const char *arg, *verb, *since = NULL;
    int c, rc;

    memset(&f, 0, sizeof(f));
    while ((c = cli_next_option(ctx, argc, argv, &arg)) != CLI_DONE) {
        if (c == CLI_HELP)
            return EXIT_OK;
        if (c == CLI_USAGE)
            return EXIT_USAGE;
        if (c == OPT_SINCE)
            since = arg;
    }
    if (cli_optind() + 1 != argc)
        return cli_usage_error(ctx, "expected verify or export");
    verb = argv[cli_optind()];
    if (strcmp(verb, "verify") != 0 && strcmp(verb, "export") != 0)
        return cli_usage_error(ctx, "unknown ledger action '%s'", verb);
    if (since && parse_since(&f.since, since) != 0)
        return cli_usage_error(ctx, "--since needs an ISO 8601 time or a "
                                    "duration like 7d");
    rc = cli_cache(ctx);
    if (rc)
        return rc;
    if (strcmp(verb, "verify") == 0)
        return verify(ctx);
    if (ledger_foreach(ctx->cache, &f, print_line, ctx->out) != 0)
        return cli_fail(ctx);
    return fflush(ctx->out) == 0 ? EXIT_OK : EXIT_LOCAL;
}

const struct cli_command cli_ledger_command = {
    .name = "ledger",
    .synopsis = "verify | export [--since TIME]",
    .summary = "verify the consent ledger, or export it as NDJSON",
    .description =
        "verify  walks the hash chain and the stored head; prints the first\n"
        "        entry that was edited, reordered or deleted (also the\n"
        "        last one).\n"
        "export  prints one JSON object per entry (NDJSON), oldest first;\n"
        "        the fields and the documented byte form let anyone\n"
        "        recompute the chain (README: verifying an export).",
    .exit_codes = "  0  intact / exported\n"
                  "  1  verify: the ledger was tampered with\n"
                  "  2  usage error\n"
                  "  4  database error\n",
    .options = options,
    .run = run,
};
