/*
 * cli_gate — `optsync gate --configuration ID|NAME [--topic T] [--json]
 * [--index auto|on|off] PHONE...`: asks the send-gate about each phone
 * (or each line of stdin) and prints one answer per phone, in input
 * order.  Exit 0 when every phone is allowed, 1 when any is denied.
 *
 * Two ways to the same answers (gate.h): a handful of phones reads SQLite
 * per phone (gate_options.index = 0: a single question must not load an
 * index of a million numbers), many phones load the in-memory index first
 * and are decided in batches (gate_decide_bulk).  --index auto (the
 * default) reads up to the break-even number of phones before it starts
 * answering: loading the index costs about as much as a SQLite lookup for
 * every INDEX_ROWS_PER_PHONE numbers in the cache, and never less than
 * INDEX_MIN_PHONES lookups.
 */
#include <stdlib.h>
#include <string.h>

#include "caps.h"
#include "cli.h"
#include "configurations.h"
#include "gate.h"
#include "log.h"
#include "xalloc.h"

/* Measured here (scripts/bench gate): an index load costs 0.5-0.6 us a
 * cached number, a lookup without it 4-14 us a phone (with it ~0.3):
 * break-even at 8-30 numbers a phone. */
#define INDEX_ROWS_PER_PHONE 16
#define INDEX_MIN_PHONES 2000
/* Phones decided per gate_decide_bulk call (and read ahead from stdin
 * once the index is loaded). */
#define BATCH_PHONES 4096

enum { OPT_CONFIGURATION = 1, OPT_TOPIC, OPT_JSON, OPT_INDEX };
enum index_mode { INDEX_AUTO, INDEX_ON, INDEX_OFF };

static const struct cli_option options[] = {
    { "configuration", 0, "ID|NAME", OPT_CONFIGURATION,
      "the Configuration (Dataverse id or exact name); required" },
    { "topic", 0, "TOPIC", OPT_TOPIC,
      "the message's topic (checks topic opt-outs and caps)" },
    { "json", 0, NULL, OPT_JSON, "a JSON array, one object per phone" },
    { "index", 0, "auto|on|off", OPT_INDEX,
      "load the in-memory index first (on), read SQLite per phone (off), "
      "or choose by the number of phones (auto, the default)" },
    { NULL, 0, NULL, 0, NULL },
};

struct run {
    struct cli_ctx *ctx;
    gate *g;                   /* NULL until the mode is chosen */
    const char *configuration; /* as given */
    const char *topic;         /* NULL: none */
    int json;
    enum index_mode index;
    int indexed;  /* the gate has the in-memory index */
    size_t n;     /* answers printed */
    int any_deny; /* exit 1 */
    int hinted;   /* explained a deny that is the same for every phone */
};

/* Phones read but not answered yet (owned copies). */
struct batch {
    char **phones; /* owned, each owned */
    size_t n, cap;
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

static void print_one(struct run *r, const char *phone,
                      const struct gate_result *res)
{
    if (r->json)
        print_json(r, phone, res);
    else
        fprintf(r->ctx->out, "%s\t%s\t%s\t%s\t%s\n", phone,
                gate_decision_name(res->decision),
                gate_reason_name(res->reason), consent_status_name(res->status),
                res->e164[0] ? res->e164 : "-");
    r->n++;
    if (res->decision != GATE_ALLOW) {
        r->any_deny = 1;
        hint(r, res->reason);
    }
}

/* Numbers in the cache, about (the index's size). */
static int64_t cache_rows(cache *c)
{
    sqlite3_stmt *st = cache_stmt(c, "SELECT max(local_id) FROM numbers");
    int64_t n = 0;

    if (st && cache_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    if (st)
        sqlite3_reset(st);
    return n;
}

/* How many phones make loading the index worth it (--index auto). */
static size_t break_even(struct run *r)
{
    int64_t rows = cache_rows(r->ctx->cache) / INDEX_ROWS_PER_PHONE;

    return rows > INDEX_MIN_PHONES ? (size_t)rows : INDEX_MIN_PHONES;
}

/* Opens the gate, with the index when `phones` (or more: `more`) are to
 * be decided. */
static int open_gate(struct run *r, size_t phones, int more)
{
    struct gate_options opts;

    gate_options_from_config(&opts, r->ctx->cfg);
    opts.index = r->index == INDEX_ON ||
                 (r->index == INDEX_AUTO && (more || phones >= break_even(r)));
    r->indexed = opts.index;
    log_debug(LOG_SUB_GATE, "cli_gate_mode index=%d phones=%zu%s", opts.index,
              phones, more ? "+" : "");
    return gate_new(&r->g, r->ctx->cache, &opts) == 0 ? 0 : cli_fail(r->ctx);
}

/* Decides and prints phones[0..n) in input order; 0 or an exit code. */
static int decide(struct run *r, char *const *phones, size_t n)
{
    struct gate_result *res = xcalloc(BATCH_PHONES, sizeof(*res));
    size_t at, k, i;
    int rc = 0;

    for (at = 0; rc == 0 && at < n; at += k) {
        k = n - at < BATCH_PHONES ? n - at : BATCH_PHONES;
        if (r->indexed)
            rc =
                gate_decide_bulk(res, r->g, r->configuration,
                                 (const char *const *)phones + at, k, r->topic);
        for (i = 0; rc == 0 && i < k; i++) {
            /* Without the index, one call per phone, as for one phone. */
            if (!r->indexed)
                rc = gate_decide(&res[i], r->g, r->configuration,
                                 phones[at + i], r->topic);
            if (rc == 0)
                print_one(r, phones[at + i], &res[i]);
        }
    }
    free(res);
    return rc ? cli_fail(r->ctx) : 0;
}

static void batch_clear(struct batch *b)
{
    size_t i;

    for (i = 0; i < b->n; i++)
        free(b->phones[i]);
    b->n = 0;
}

/*
 * Reads stdin into `b` until it holds `want` phones or stdin ends (*eof):
 * one phone per line, surrounding blanks and blank lines skipped.  0, or
 * an exit code for a line that is too long (the phones before it stay
 * in `b`, *eof set).
 */
static int read_lines(struct run *r, struct batch *b, size_t want, int *eof)
{
    char *line = NULL, *s;
    size_t cap = 0, len;
    ssize_t got;
    int rc = 0;

    while (b->n < want && (got = getline(&line, &cap, stdin)) >= 0) {
        s = line;
        len = (size_t)got;
        while (len && strchr(" \t\r\n", s[len - 1]))
            len--;
        s[len] = '\0';
        while (*s == ' ' || *s == '\t')
            s++;
        if (strlen(s) > CAP_FIELD_BYTES) {
            rc = cli_usage_error(r->ctx, "line %zu of stdin is too long",
                                 r->n + b->n + 1);
            break;
        }
        if (!*s)
            continue;
        if (b->n == b->cap) {
            b->cap = b->cap ? b->cap * 2 : 64;
            b->phones = xrealloc(b->phones, b->cap * sizeof(*b->phones));
        }
        b->phones[b->n++] = xstrdup(s);
    }
    *eof = rc || b->n < want;
    free(line);
    return rc;
}

/* Phones from stdin: enough read ahead to choose the mode (auto), then
 * batch after batch. */
static int from_stdin(struct run *r)
{
    struct batch b = { NULL, 0, 0 };
    int eof = 0, rc, rc_read;

    rc_read =
        read_lines(r, &b, r->index == INDEX_AUTO ? break_even(r) : 1, &eof);
    rc = open_gate(r, b.n, !eof);
    while (rc == 0) {
        rc = decide(r, b.phones, b.n);
        batch_clear(&b);
        if (rc || eof)
            break;
        rc_read = read_lines(r, &b, BATCH_PHONES, &eof);
    }
    batch_clear(&b);
    free(b.phones);
    return rc ? rc : rc_read;
}

static int decide_all(struct run *r, int argc, char **argv)
{
    int rc;

    if (cli_optind() == argc) {
        rc = from_stdin(r);
    } else {
        rc = open_gate(r, (size_t)(argc - cli_optind()), 0);
        if (rc == 0)
            rc = decide(r, argv + cli_optind(), (size_t)(argc - cli_optind()));
    }
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
    static const char *const modes[] = { "auto", "on", "off" };
    struct run r;
    const char *arg;
    int c, rc, m;

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
        if (c == OPT_INDEX) {
            for (m = 0; m < 3 && strcmp(arg, modes[m]) != 0; m++)
                ;
            if (m == 3)
                return cli_usage_error(ctx, "--index takes auto, on or off");
            r.index = (enum index_mode)m;
        }
    }
    if (!r.configuration)
        return cli_usage_error(ctx, "expected --configuration ID|NAME");
    rc = cli_cache(ctx);
    if (rc)
        return rc;
    rc = decide_all(&r, argc, argv);
    gate_free(r.g);
    return rc;
}

const struct cli_command cli_gate_command = {
    .name = "gate",
    .synopsis = "--configuration ID|NAME [--topic T] [--json] "
                "[--index auto|on|off] [PHONE...]",
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
        "4). It never allows on an error.\n"
        "\n"
        "Many phones (by default: more than the cache's numbers / 16, at\n"
        "least 2000) load the in-memory index first and are decided in\n"
        "batches; fewer read SQLite per phone.  The answers are the same.",
    .exit_codes = "  0  every phone allowed\n"
                  "  1  at least one phone denied\n"
                  "  2  usage or config error\n"
                  "  4  the cache cannot be read\n",
    .options = options,
    .run = run,
};
