/*
 * cli — the command table, generated help, shared option handling.
 */
#include "cli.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "caps.h"
#include "configurations.h"
#include "err.h"
#include "fileio.h"
#include "log.h"
#include "numbers_json.h"
#include "phone.h"
#include "xalloc.h"

extern const struct cli_command cli_check_config_command;
extern const struct cli_command cli_opt_out_command;
extern const struct cli_command cli_opt_in_command;
extern const struct cli_command cli_pause_command;
extern const struct cli_command cli_history_command;
extern const struct cli_command cli_review_command;
extern const struct cli_command cli_ledger_command;
extern const struct cli_command cli_sync_command;
extern const struct cli_command cli_numbers_command;
extern const struct cli_command cli_status_command;
extern const struct cli_command cli_gate_command;
extern const struct cli_command cli_listen_command;
extern const struct cli_command cli_outbox_command;
extern const struct cli_command cli_serve_command;

/* Every subcommand, in the order `optsync --help` lists them. */
const struct cli_command *const cli_commands[] = {
    &cli_sync_command,         &cli_numbers_command,
    &cli_gate_command,   /* the send-gate (gate.h) */
    &cli_listen_command, /* the HTTP listener (listener.h) */
    &cli_serve_command,  /* the daemon (serve.h) */
    &cli_status_command,       &cli_opt_out_command,
    &cli_opt_in_command,       &cli_pause_command,
    &cli_history_command,      &cli_review_command,
    &cli_ledger_command,       &cli_outbox_command, /* write-back (outbox.h) */
    &cli_check_config_command, NULL,
};

static const struct cli_option common_options[] = {
    { "config", 'c', "FILE", CLI_OPT_CONFIG,
      "config file (default: config/optsync.ini)" },
    { "set", 'o', "SECTION.KEY=VALUE", CLI_OPT_OVERRIDE,
      "override one config key (repeatable)" },
    { "log-level", 0, "LEVEL", CLI_OPT_LOG_LEVEL,
      "error, warn, notice, info (default) or debug" },
    { "debug", 0, "LIST", CLI_OPT_DEBUG,
      "debug lines for some subsystems (net,auth,cache,sync,\n"
      "                              "
      "consent,gate,listener,outbox,config,all)" },
    { "help", 'h', NULL, CLI_OPT_HELP, "show this help" },
    { NULL, 0, NULL, 0, NULL },
};

const struct cli_command *cli_command_find(const char *name)
{
    size_t i;

    for (i = 0; cli_commands[i]; i++)
        if (strcmp(cli_commands[i]->name, name) == 0)
            return cli_commands[i];
    return NULL;
}

/* ---- help --------------------------------------------------------------- */

static void print_options(FILE *fp, const struct cli_option *opts)
{
    char left[64];
    size_t i;

    for (i = 0; opts && opts[i].name; i++) {
        const struct cli_option *o = &opts[i];

        if (!o->help)
            continue; /* hidden (test-only) option */
        if (o->short_name)
            snprintf(left, sizeof(left), "-%c, --%s%s%s", o->short_name,
                     o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        else
            snprintf(left, sizeof(left), "    --%s%s%s", o->name,
                     o->arg ? " " : "", o->arg ? o->arg : "");
        if (strlen(left) > 26)
            fprintf(fp, "  %s\n  %-26s  %s\n", left, "", o->help);
        else
            fprintf(fp, "  %-26s  %s\n", left, o->help);
    }
}

void cli_print_usage(FILE *fp)
{
    size_t i;

    fprintf(fp, "Usage: optsync [options] COMMAND [ARGS]\n\n"
                "Keeps WhatsApp marketing consent correct between Dynamics 365 "
                "(Dataverse)\nand a local SQLite cache, and answers the "
                "marketing send-gate.\n\nCommands:\n");
    for (i = 0; cli_commands[i]; i++)
        fprintf(fp, "  %-14s  %s\n", cli_commands[i]->name,
                cli_commands[i]->summary);
    fprintf(fp, "\nOptions:\n");
    print_options(fp, common_options);
    fprintf(fp, "  %-26s  %s\n", "    --version", "print the version");
    fprintf(fp, "\nRun 'optsync COMMAND --help' for a command's options.\n"
                "Exit codes: 0 success, 1 a negative answer (deny, tampered, "
                "problems found),\n2 usage or config error, 3 remote failure "
                "(auth, network, Dataverse),\n4 local failure (database, "
                "disk).\n");
}

void cli_command_help(FILE *fp, const struct cli_command *cmd)
{
    fprintf(fp, "Usage: optsync %s [options]%s%s\n\n%s\n", cmd->name,
            cmd->synopsis ? " " : "", cmd->synopsis ? cmd->synopsis : "",
            cmd->description);
    if (cmd->options && cmd->options[0].name) {
        fprintf(fp, "\nOptions:\n");
        print_options(fp, cmd->options);
    }
    fprintf(fp, "\nCommon options:\n");
    print_options(fp, common_options);
    if (cmd->exit_codes)
        fprintf(fp, "\nExit codes:\n%s", cmd->exit_codes);
}

/* ---- option parsing ----------------------------------------------------- */

static size_t count_options(const struct cli_option *opts)
{
    size_t n = 0;

    while (opts && opts[n].name)
        n++;
    return n;
}

static void add_getopt(struct option *lo, size_t *nlo, struct strbuf *so,
                       const struct cli_option *o)
{
    lo[*nlo].name = o->name;
    lo[*nlo].has_arg = o->arg ? required_argument : no_argument;
    lo[*nlo].flag = NULL;
    lo[*nlo].val = o->id;
    (*nlo)++;
    if (o->short_name) {
        strbuf_addc(so, (char)o->short_name);
        if (o->arg)
            strbuf_addc(so, ':');
    }
}

/* Short option letter → id, for getopt's return value. */
static int short_to_id(const struct cli_option *a, const struct cli_option *b,
                       int c)
{
    size_t i;

    for (i = 0; a && a[i].name; i++)
        if (a[i].short_name == c)
            return a[i].id;
    for (i = 0; b && b[i].name; i++)
        if (b[i].short_name == c)
            return b[i].id;
    return c;
}

static int parse_one(struct cli_ctx *ctx, int argc, char **argv,
                     const char **arg)
{
    const struct cli_option *own = ctx->command->options;
    size_t n = count_options(own) + count_options(common_options), nlo = 0;
    struct option *lo = xcalloc(n + 1, sizeof(*lo));
    struct strbuf so;
    size_t i;
    int c;

    strbuf_init(&so, 256);
    strbuf_addc(&so, ':'); /* report a missing argument as ':' */
    for (i = 0; own && own[i].name; i++)
        add_getopt(lo, &nlo, &so, &own[i]);
    for (i = 0; common_options[i].name; i++)
        add_getopt(lo, &nlo, &so, &common_options[i]);
    opterr = 0;
    c = getopt_long(argc, argv, so.data, lo, NULL);
    free(lo);
    strbuf_dispose(&so);
    *arg = optarg;
    if (c > 0 && c < 256 && c != '?' && c != ':')
        c = short_to_id(own, common_options, c);
    return c;
}

int cli_next_option(struct cli_ctx *ctx, int argc, char **argv,
                    const char **arg)
{
    int c, usage_error = 0;

    for (;;) {
        c = parse_one(ctx, argc, argv, arg);
        if (c == -1)
            return CLI_DONE;
        if (c == '?' || c == ':') {
            cli_usage_error(ctx, "%s option %s",
                            c == ':' ? "missing argument for" : "unknown",
                            argv[optind - 1]);
            return CLI_USAGE;
        }
        if (c == CLI_OPT_HELP) {
            cli_command_help(ctx->out, ctx->command);
            return CLI_HELP;
        }
        if (!cli_common_option(ctx, c, *arg, &usage_error))
            return c;
        if (usage_error)
            return CLI_USAGE;
    }
}

int cli_optind(void)
{
    return optind;
}

static void add_override(struct cli_ctx *ctx, const char *text,
                         int *usage_error)
{
    char *copy = xstrdup(text);
    struct config_override ov;

    if (config_override_parse(&ov, copy) != 0) {
        fprintf(stderr, "optsync: %s\n", err_message());
        free(copy);
        *usage_error = 1;
        return;
    }
    ctx->overrides =
        xrealloc(ctx->overrides, (ctx->n_overrides + 1) * sizeof(ov));
    ctx->override_args =
        xrealloc(ctx->override_args, (ctx->n_overrides + 1) * sizeof(char *));
    ctx->overrides[ctx->n_overrides] = ov;
    ctx->override_args[ctx->n_overrides++] = copy;
}

int cli_common_option(struct cli_ctx *ctx, int id, const char *arg,
                      int *usage_error)
{
    int level;

    switch (id) {
    case CLI_OPT_CONFIG: ctx->config_path = arg; return 1;
    case CLI_OPT_OVERRIDE: add_override(ctx, arg, usage_error); return 1;
    case CLI_OPT_LOG_LEVEL:
        level = log_level_parse(arg);
        if (level < 0) {
            fprintf(stderr,
                    "optsync: unknown log level '%s' (error, warn, "
                    "notice, info, debug)\n",
                    arg);
            *usage_error = 1;
        } else {
            log_level_current = (enum log_level)level;
            ctx->log_level_set = 1;
        }
        return 1;
    case CLI_OPT_DEBUG:
        if (log_debug_parse(&log_debug_mask, arg) != 0) {
            fprintf(stderr, "optsync: %s\n", err_message());
            *usage_error = 1;
        }
        ctx->debug_set = 1;
        return 1;
    default: return 0;
    }
}

int cli_usage_error(struct cli_ctx *ctx, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "optsync %s: ", ctx->command ? ctx->command->name : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'optsync %s --help'.\n",
            ctx->command ? ctx->command->name : "");
    return EXIT_USAGE;
}

int cli_fail(struct cli_ctx *ctx)
{
    fprintf(stderr, "optsync %s: %s\n", ctx->command ? ctx->command->name : "",
            err_message());
    return err_exit_code();
}

/* ---- config and mapping -------------------------------------------------- */

/* The config's [log] keys apply unless the command line set them. */
static void apply_log_config(struct cli_ctx *ctx)
{
    const struct optsync_config *cfg = ctx->cfg;
    int level;

    if (!ctx->log_level_set && cfg->log.level) {
        level = log_level_parse(cfg->log.level);
        if (level >= 0)
            log_level_current = (enum log_level)level;
    }
    if (!ctx->debug_set && cfg->log.debug && *cfg->log.debug)
        log_debug_parse(&log_debug_mask, cfg->log.debug);
}

int cli_config(struct cli_ctx *ctx)
{
    struct config_diag diag = { 0 };
    size_t i;
    int rc;

    if (ctx->cfg)
        return 0;
    rc = config_load_for(
        &ctx->cfg, ctx->config_path, ctx->overrides, ctx->n_overrides,
        ctx->command ? ctx->command->secrets : CONFIG_NEEDS_ALL, &diag);
    if (rc != 0) {
        config_diag_print(stderr, &diag);
        fprintf(stderr, "optsync: configuration has errors; "
                        "'optsync check-config' lists them all\n");
        config_diag_dispose(&diag);
        return EXIT_USAGE;
    }
    apply_log_config(ctx);
    for (i = 0; i < diag.count; i++) {
        char *line = config_problem_format(&diag.items[i]);

        log_warn("config_warning msg=%s", log_q(line));
        free(line);
    }
    config_diag_dispose(&diag);
    return 0;
}

int cli_mapping(struct cli_ctx *ctx)
{
    struct mapping_problems problems = { 0 };
    char *text = NULL;
    size_t len = 0, i;
    int rc;

    if (ctx->mapping)
        return 0;
    rc = cli_config(ctx);
    if (rc)
        return rc;
    if (fileio_read(&text, &len, ctx->cfg->mapping.file,
                    CAP_MAPPING_FILE_BYTES) != 0) {
        fprintf(stderr, "optsync: mapping: %s\n", err_message());
        return EXIT_USAGE;
    }
    rc = mapping_load(&ctx->mapping, text, len, &problems);
    free(text);
    for (i = 0; i < problems.count; i++)
        fprintf(stderr, "%s: error: %s\n", ctx->cfg->mapping.file,
                problems.items[i]);
    mapping_problems_dispose(&problems);
    return rc == 0 ? 0 : EXIT_USAGE;
}

int cli_cache(struct cli_ctx *ctx)
{
    int rc;

    if (ctx->cache)
        return 0;
    rc = cli_config(ctx);
    if (rc)
        return rc;
    if (cache_open(&ctx->cache, ctx->cfg->cache.path, 0) != 0) {
        fprintf(stderr, "optsync %s: %s\n",
                ctx->command ? ctx->command->name : "", err_message());
        return EXIT_LOCAL;
    }
    return 0;
}

void cli_consent_options(struct cli_ctx *ctx, struct consent_options *out)
{
    consent_options_init(out, ctx->cfg, ctx->mapping);
}

int cli_configuration(struct cli_ctx *ctx, char *out_id, const char *ref)
{
    int rc = cli_cache(ctx);

    if (rc)
        return rc;
    rc = configurations_resolve(out_id, ctx->cache, ref);
    if (rc == 0)
        return 0;
    if (rc == ERR_NOTFOUND)
        fprintf(stderr,
                "optsync %s: no configuration '%s' in the cache "
                "(run 'optsync sync' first?)\n",
                ctx->command->name, ref);
    else
        fprintf(stderr, "optsync %s: %s\n", ctx->command->name, err_message());
    return rc == ERR_FAIL ? EXIT_LOCAL : EXIT_USAGE;
}

int cli_phone(struct cli_ctx *ctx, char *out_e164, const char *input,
              const char *configuration_id)
{
    struct configuration_info info;
    const char *why = NULL, *region = ctx->cfg->consent.default_region;
    int rc;

    memset(&info, 0, sizeof(info));
    if (configurations_get(&info, ctx->cache, configuration_id) == 0 &&
        info.default_region && *info.default_region)
        region = info.default_region;
    rc = phone_parse(out_e164, input, region, &why);
    configuration_info_dispose(&info);
    if (rc == 0 && phone_warning(out_e164))
        fprintf(stderr,
                "optsync %s: warning: %s is %s (a typo, or a range newer "
                "than the metadata); used as it is\n",
                ctx->command->name, out_e164, phone_warning(out_e164));
    if (rc == 0)
        return 0;
    fprintf(stderr, "optsync %s: '%s' is not a usable phone number: %s\n",
            ctx->command->name, input, why ? why : "cannot be parsed");
    return EXIT_USAGE;
}

void cli_json_text(cJSON *o, const char *name, sqlite3_stmt *st, int col)
{
    numbers_json_col_text(o, name, st, col);
}

void cli_json_time(cJSON *o, const char *name, sqlite3_stmt *st, int col)
{
    numbers_json_col_time(o, name, st, col);
}

void cli_ctx_dispose(struct cli_ctx *ctx)
{
    size_t i;

    for (i = 0; i < ctx->n_overrides; i++)
        free(ctx->override_args[i]);
    free(ctx->override_args);
    free(ctx->overrides);
    cache_close(ctx->cache);
    config_free(ctx->cfg);
    mapping_free(ctx->mapping);
}
