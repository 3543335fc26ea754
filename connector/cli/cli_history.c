/*
 * cli_history — `optsync history PHONE --configuration X [--json]`: every
 * ledger entry of one number, oldest first: what changed, when, why.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ledger.h"
#include "phone.h"

enum { OPT_CONFIGURATION = 1, OPT_JSON };

static const struct cli_option options[] = {
    { "configuration", 0, "ID|NAME", OPT_CONFIGURATION,
      "the Configuration (Dataverse id or exact name); required" },
    { "json", 0, NULL, OPT_JSON, "print a JSON array" },
    { NULL, 0, NULL, 0, NULL },
};

struct printer {
    FILE *out;
    int json;
    int count;
};

static int print_entry(const struct ledger_entry *e, void *payload)
{
    struct printer *p = payload;
    cJSON *o = ledger_entry_json(e);
    char *text;

    if (p->json) {
        text = cJSON_PrintUnformatted(o);
        fprintf(p->out, "%s%s", p->count ? ",\n" : "[\n", text);
        free(text);
    } else {
        text = cJSON_PrintUnformatted(cJSON_GetObjectItem(o, "evidence"));
        fprintf(p->out, "%6lld  %s  %-13s -> %-13s  %-20s %s\n",
                (long long)e->seq, cJSON_GetObjectItem(o, "at")->valuestring,
                consent_status_name(e->from), consent_status_name(e->to),
                e->source, text);
        free(text);
    }
    cJSON_Delete(o);
    p->count++;
    return 0;
}

static int run(struct cli_ctx *ctx, int argc, char **argv)
{
    char id[MAPPING_GUID_LEN + 1], e164[PHONE_E164_MAX];
    const char *arg, *configuration = NULL;
    struct printer p = { ctx->out, 0, 0 };
    struct ledger_filter f;
    int c, rc;

    while ((c = cli_next_option(ctx, argc, argv, &arg)) != CLI_DONE) {
        if (c == CLI_HELP)
            return EXIT_OK;
        if (c == CLI_USAGE)
            return EXIT_USAGE;
        if (c == OPT_CONFIGURATION)
            configuration = arg;
        if (c == OPT_JSON)
            p.json = 1;
    }
    if (cli_optind() + 1 != argc || !configuration)
        return cli_usage_error(ctx, "expected PHONE and --configuration");
    rc = cli_configuration(ctx, id, configuration);
    if (rc == 0)
        rc = cli_phone(ctx, e164, argv[cli_optind()], id);
    if (rc)
        return rc;
    memset(&f, 0, sizeof(f));
    f.configuration_id = id;
    f.phone = e164;
    if (ledger_foreach(ctx->cache, &f, print_entry, &p) != 0)
        return cli_fail(ctx);
    if (p.json)
        fprintf(ctx->out, "%s]\n", p.count ? "\n" : "[");
    else if (!p.count)
        fprintf(stderr, "no ledger entries for %s\n", e164);
    return EXIT_OK;
}

const struct cli_command cli_history_command = {
    .name = "history",
    .synopsis = "PHONE --configuration ID|NAME",
    .summary = "show the consent history of a number (the ledger)",
    .description =
        "Prints every ledger entry of PHONE in the Configuration, oldest\n"
        "first: when, from which status to which, the source, and the\n"
        "evidence (message id, text, payload, Dynamics row version).",
    .exit_codes = "  0  printed (possibly nothing)\n"
                  "  2  usage error, unknown configuration or phone\n"
                  "  4  database error\n",
    .options = options,
    .run = run,
};
