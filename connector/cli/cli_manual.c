/*
 * cli_manual — see cli_manual.h.
 */
#include "cli_manual.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "jsonutil.h"
#include "phone.h"
#include "units.h"
#include "xalloc.h"

const struct cli_option cli_manual_options[] = {
    { "configuration", 0, "ID|NAME", MANUAL_OPT_CONFIGURATION,
      "the Configuration (Dataverse id or exact name); required" },
    { "source", 0, "WHO", MANUAL_OPT_SOURCE,
      "who took it: customer-service, signed-form, ...; required" },
    { "note", 0, "TEXT", MANUAL_OPT_NOTE, "free text kept as evidence" },
    { "topic", 0, "TOPIC", MANUAL_OPT_TOPIC,
      "opt-out: only this topic (a preference), not all marketing" },
    { "json", 0, NULL, MANUAL_OPT_JSON, "print the result as JSON" },
    { NULL, 0, NULL, 0, NULL },
};

const struct cli_option cli_pause_options[] = {
    { "configuration", 0, "ID|NAME", MANUAL_OPT_CONFIGURATION,
      "the Configuration (Dataverse id or exact name); required" },
    { "until", 0, "TIME", MANUAL_OPT_UNTIL,
      "ISO 8601 time (2026-12-24T00:00:00Z) or a duration from now (7d)" },
    { "source", 0, "WHO", MANUAL_OPT_SOURCE, "who took it (default: cli)" },
    { "note", 0, "TEXT", MANUAL_OPT_NOTE, "free text kept as evidence" },
    { "json", 0, NULL, MANUAL_OPT_JSON, "print the result as JSON" },
    { NULL, 0, NULL, 0, NULL },
};

const char cli_manual_exit_codes[] =
    "  0  applied (or already in that state)\n"
    "  1  not applied: a newer expression stands (printed)\n"
    "  2  usage error, unknown configuration, unusable phone number\n"
    "  4  database error\n";

struct manual_args {
    const char *phone, *configuration, *source, *note, *until, *topic;
    int json;
};

static int parse_args(struct manual_args *a, struct cli_ctx *ctx, int argc,
                      char **argv)
{
    const char *arg;
    int c;

    memset(a, 0, sizeof(*a));
    while ((c = cli_next_option(ctx, argc, argv, &arg)) != CLI_DONE) {
        switch (c) {
        case CLI_HELP: return EXIT_OK;
        case CLI_USAGE: return EXIT_USAGE;
        case MANUAL_OPT_CONFIGURATION: a->configuration = arg; break;
        case MANUAL_OPT_SOURCE: a->source = arg; break;
        case MANUAL_OPT_NOTE: a->note = arg; break;
        case MANUAL_OPT_UNTIL: a->until = arg; break;
        case MANUAL_OPT_TOPIC: a->topic = arg; break;
        case MANUAL_OPT_JSON: a->json = 1; break;
        default: break;
        }
    }
    if (cli_optind() + 1 != argc)
        return cli_usage_error(ctx, "expected exactly one PHONE");
    a->phone = argv[cli_optind()];
    if (!a->configuration)
        return cli_usage_error(ctx, "--configuration is required");
    return -1;
}

/* --until: an ISO time, or a duration from now. */
static int parse_until(int64_t *out, const char *text)
{
    int64_t secs;

    if (mapping_time_parse(out, text) == 0)
        return 0;
    if (units_duration_parse(&secs, text) == 0 && secs > 0) {
        *out = clock_now_ms() + secs * 1000;
        return 0;
    }
    return ERR_BADINPUT;
}

static char *evidence(const struct manual_args *a)
{
    cJSON *o = cJSON_CreateObject();
    char *text;

    cJSON_AddStringToObject(o, "taken_by", a->source ? a->source : "cli");
    if (a->note)
        cJSON_AddStringToObject(o, "note", a->note);
    if (a->topic)
        cJSON_AddStringToObject(o, "topic", a->topic);
    if (a->until)
        cJSON_AddStringToObject(o, "until", a->until);
    text = jsonutil_canonical(o);
    cJSON_Delete(o);
    return text;
}

static const char *outcome_name(enum consent_outcome o)
{
    switch (o) {
    case CONSENT_CHANGED: return "changed";
    case CONSENT_UNCHANGED: return "unchanged";
    case CONSENT_DUPLICATE: return "duplicate";
    case CONSENT_STALE: return "stale";
    default: return "corrected";
    }
}

static void print_result(struct cli_ctx *ctx, const struct manual_args *a,
                         const char *e164, const struct consent_result *r)
{
    cJSON *o;
    char *text;

    if (!a->json) {
        fprintf(ctx->out, "%s: %s (%s -> %s)\n", e164, outcome_name(r->outcome),
                consent_status_name(r->from), consent_status_name(r->to));
        return;
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "phone", a->phone);
    cJSON_AddStringToObject(o, "e164", e164);
    cJSON_AddStringToObject(o, "outcome", outcome_name(r->outcome));
    cJSON_AddStringToObject(o, "from", consent_status_name(r->from));
    cJSON_AddStringToObject(o, "to", consent_status_name(r->to));
    text = cJSON_PrintUnformatted(o);
    fprintf(ctx->out, "%s\n", text);
    free(text);
    cJSON_Delete(o);
}

static int apply(struct cli_ctx *ctx, const struct manual_args *a,
                 struct consent_event *ev, const char *e164)
{
    struct consent_options opts;
    struct consent_result r;
    char *ev_text = evidence(a);
    int rc;

    ev->e164 = e164;
    ev->event_at = clock_now_ms();
    ev->source = CONSENT_SOURCE_MANUAL;
    ev->evidence = ev_text;
    cli_consent_options(ctx, &opts);
    rc = consent_apply(&r, ctx->cache, &opts, ev);
    free(ev_text);
    if (rc == ERR_NOTFOUND) {
        fprintf(stderr, "optsync %s: %s\n", ctx->command->name, err_message());
        return EXIT_USAGE;
    }
    if (rc)
        return cli_fail(ctx);
    print_result(ctx, a, e164, &r);
    return r.outcome == CONSENT_STALE ? EXIT_NEGATIVE : EXIT_OK;
}

int cli_manual_run(struct cli_ctx *ctx, int argc, char **argv,
                   enum consent_action action)
{
    char id[MAPPING_GUID_LEN + 1], e164[PHONE_E164_MAX];
    struct manual_args a;
    struct consent_event ev;
    int rc = parse_args(&a, ctx, argc, argv);

    if (rc >= 0)
        return rc;
    if (action != CONSENT_ACT_PAUSE && !a.source)
        return cli_usage_error(ctx, "--source is required (who took it)");
    memset(&ev, 0, sizeof(ev));
    ev.action = action;
    if (action == CONSENT_ACT_OPT_OUT && a.topic) {
        ev.action = CONSENT_ACT_TOPIC_OPT_OUT;
        ev.topic = a.topic;
    }
    if (action == CONSENT_ACT_PAUSE &&
        (!a.until || parse_until(&ev.paused_until, a.until) != 0))
        return cli_usage_error(ctx, "--until needs an ISO 8601 time or a "
                                    "duration like 7d");
    rc = cli_mapping(ctx);
    if (rc == 0)
        rc = cli_configuration(ctx, id, a.configuration);
    if (rc == 0)
        rc = cli_phone(ctx, e164, a.phone, id);
    if (rc)
        return rc;
    ev.configuration_id = id;
    return apply(ctx, &a, &ev, e164);
}
