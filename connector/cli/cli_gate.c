/*
 * cli_gate — `optsync gate --configuration ID|NAME [--topic T] [--json]
 * PHONE...`: asks the send-gate about each phone (or each line of stdin)
 * and prints one answer per phone, in input order.  Exit 0 when every
 * phone is allowed, 1 when any is denied.
 *
 * A one-shot command reads SQLite per phone (gate_options.index = 0): a
 * process that decides a handful of numbers should not load an index of
 * a million.  The answers are the same either way.
 */
#include <stdlib.h>
#include <string.h>

#include "caps.h"
#include "cli.h"
#include "configurations.h"
#include "gate.h"

enum { OPT_CONFIGURATION = 1, OPT_TOPIC, OPT_JSON };

static const struct cli_option options[] = {
    { "configuration", 0, "ID|NAME", OPT_CONFIGURATION,
      "the Configuration (Dataverse id or exact name); required" },
    { "topic", 0, "TOPIC", OPT_TOPIC,
      "the message's topic (checks topic opt-outs and caps)" },
    { "json", 0, NULL, OPT_JSON, "a JSON array, one object per phone" },
    { NULL, 0, NULL, 0, NULL },
};

struct run {
    struct cli_ctx *ctx;
    gate *g;
    const char *configuration; /* as given */
    const char *topic;         /* NULL: none */
    int json;
    size_t n;     /* answers printed */
    int any_deny; /* exit 1 */
    int hinted;   /* explained a deny that is the same for every phone */
};

static void print_json(struct run *r, const char *phone,
                       const struct gate_result *res)
{
    cJSON *o = cJSON_CreateObject();
    char *text;

    cJSON_AddStringToObject(o, "phone", phone);
    if (res->e164[0])
        cJSON_AddStringToObject(o, "e164", res->e164);
    else
        cJSON_AddNullToObject(o, "e164");
    cJSON_AddStringToObject(o, "decision", gate_decision_name(res->decision));
    cJSON_AddStringToObject(o, "reason", gate_reason_name(res->reason));
    cJSON_AddStringToObject(o, "status", consent_status_name(res->status));
    text = cJSON_PrintUnformatted(o);
    fprintf(r->ctx->out, "%s%s", r->n ? ",\n" : "[\n", text);
    free(text);
    cJSON_Delete(o);
}

/* Once per run: why every phone gets the same deny. */
static void hint(struct run *r, enum gate_reason reason)
{
    char id[MAPPING_GUID_LEN + 1];
    const char *name = r->ctx->command->name;
    int rc;

    if (r->hinted ||
        (reason != GATE_CACHE_STALE && reason != GATE_UNKNOWN_CONFIGURATION))
        return;
    r->hinted = 1;
    if (reason == GATE_CACHE_STALE) {
        fprintf(stderr,
                "optsync %s: the cache is stale (no successful sync within "
                "[sync] max_staleness): every answer is deny\n",
                name);
        return;
    }
    rc = configurations_resolve(id, r->ctx->cache, r->configuration);
    if (rc == 0)
        fprintf(stderr, "optsync %s: configuration '%s' is inactive\n", name,
                r->configuration);
    else if (rc == ERR_NOTFOUND)
        fprintf(stderr,
                "optsync %s: no configuration '%s' in the cache "
                "(run 'optsync sync' first?)\n",
                name, r->configuration);
    else
        fprintf(stderr, "optsync %s: %s\n", name, err_message());
}

/* Decides and prints one phone; 0 or an exit code (cache failure). */
static int one(struct run *r, const char *phone)
{
    struct gate_result res;
    int rc = gate_decide(&res, r->g, r->configuration, phone, r->topic);

    if (rc)
        return cli_fail(r->ctx);
    if (r->json)
        print_json(r, phone, &res);
    else
        fprintf(r->ctx->out, "%s\t%s\t%s\t%s\t%s\n", phone,
                gate_decision_name(res.decision), gate_reason_name(res.reason),
                consent_status_name(res.status), res.e164[0] ? res.e164 : "-");
    r->n++;
    if (res.decision != GATE_ALLOW) {
        r->any_deny = 1;
        hint(r, res.reason);
    }
    return 0;
}

/* One phone per line; surrounding blanks and blank lines are skipped. */
static int from_stdin(struct run *r)
{
    char *line = NULL, *s;
    size_t cap = 0, len;
    ssize_t got;
    int rc = 0;

    while (rc == 0 && (got = getline(&line, &cap, stdin)) >= 0) {
        s = line;
        len = (size_t)got;
        while (len && strchr(" \t\r\n", s[len - 1]))
            len--;
        s[len] = '\0';
        while (*s == ' ' || *s == '\t')
            s++;
        if (strlen(s) > CAP_FIELD_BYTES)
            rc = cli_usage_error(r->ctx, "line %zu of stdin is too long",
                                 r->n + 1);
        else if (*s)
            rc = one(r, s);
    }
    free(line);
    return rc;
}

static int decide_all(struct run *r, int argc, char **argv)
{
    int i, rc = 0;

    if (cli_optind() == argc)
        rc = from_stdin(r);
    for (i = cli_optind(); rc == 0 && i < argc; i++)
        rc = one(r, argv[i]);
    if (r->json)
        fprintf(r->ctx->out, "%s]\n", r->n ? "\n" : "[");
    if (fflush(r->ctx->out) != 0 && rc == 0)
        rc = EXIT_LOCAL;
    if (rc == 0 && r->any_deny)
        rc = EXIT_NEGATIVE;
    return rc;
}

static int run(struct cli_ctx *ctx, int argc, char **argv)
{
    struct gate_options opts;
    struct run r;
    const char *arg;
    int c, rc;

    memset(&r, 0, sizeof(r));
    r.ctx = ctx;
    while ((c = cli_next_option(ctx, argc, argv, &arg)) != CLI_DONE) {
        if (c == CLI_HELP)
            return EXIT_OK;
        if (c == CLI_USAGE)
            return EXIT_USAGE;
        if (c == OPT_CONFIGURATION)
            r.configuration = arg;
        if (c == OPT_TOPIC)
            r.topic = arg;
        if (c == OPT_JSON)
            r.json = 1;
    }
    if (!r.configuration)
        return cli_usage_error(ctx, "expected --configuration ID|NAME");
    rc = cli_cache(ctx);
    if (rc)
        return rc;
    gate_options_from_config(&opts, ctx->cfg);
    opts.index = 0;
    if (gate_new(&r.g, ctx->cache, &opts) != 0)
        return cli_fail(ctx);
    rc = decide_all(&r, argc, argv);
    gate_free(r.g);
    return rc;
}

const struct cli_command cli_gate_command = {
    .name = "gate",
    .synopsis = "--configuration ID|NAME [--topic T] [--json] [PHONE...]",
    .summary = "may these numbers get a marketing message now?",
    .description =
        "Asks the send-gate about each PHONE (E.164, or national with the\n"
        "configuration's default region, else [consent] default_region),\n"
        "or about each line of stdin when no PHONE is given.  Prints one\n"
        "answer per phone, in input order: phone, allow|deny, reason,\n"
        "status, E.164 (tab-separated), or with --json an array of\n"
        "{\"phone\", \"e164\", \"decision\", \"reason\", \"status\"}.\n"
        "\n"
        "Reasons, in the order they are checked: cache_stale,\n"
        "unknown_configuration, invalid_phone, opted_out, no_consent,\n"
        "double_opt_in_required, topic_opted_out, paused,\n"
        "frequency_capped; otherwise allowed.\n"
        "\n"
        "Fails closed: the answer is deny when the cache is stale (no\n"
        "successful sync within [sync] max_staleness, or none yet), when\n"
        "the configuration is unknown, ambiguous or inactive, when the\n"
        "phone cannot be parsed, and when the cache cannot be read (exit\n"
        "4). It never allows on an error.",
    .exit_codes = "  0  every phone allowed\n"
                  "  1  at least one phone denied\n"
                  "  2  usage or config error\n"
                  "  4  the cache cannot be read\n",
    .options = options,
    .run = run,
};
