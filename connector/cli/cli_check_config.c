/*
 * cli_check_config — `optsync check-config`: validates the configuration
 * and the mapping file, reports every problem with file, line, section and
 * key (or JSON path), and prints the effective configuration with secrets
 * redacted, and which commands read each secret (a command reads only the
 * secrets of the parts it runs: config.h, CONFIG_FOR_*).
 */
#include <stdlib.h>
#include <string.h>

#include "caps.h"
#include "cli.h"
#include "err.h"
#include "fileio.h"

enum { OPT_QUIET = 1 };

static const struct cli_option options[] = {
    { "quiet", 'q', NULL, OPT_QUIET,
      "print only problems, not the effective configuration" },
    { NULL, 0, NULL, 0, NULL },
};

/* Returns the number of problems found in the mapping file. */
static size_t check_mapping(const struct optsync_config *cfg)
{
    struct mapping_problems problems = { 0 };
    struct mapping *m = NULL;
    char *text = NULL;
    size_t len = 0, i, n;

    if (fileio_read(&text, &len, cfg->mapping.file, CAP_MAPPING_FILE_BYTES) !=
        0) {
        fprintf(stderr, "%s: error: [mapping] file: %s\n", cfg->file,
                err_message());
        return 1;
    }
    mapping_load(&m, text, len, &problems);
    for (i = 0; i < problems.count; i++)
        fprintf(stderr, "%s: error: %s\n", cfg->mapping.file,
                problems.items[i]);
    n = problems.count;
    mapping_problems_dispose(&problems);
    mapping_free(m);
    free(text);
    return n;
}

static int run(struct cli_ctx *ctx, int argc, char **argv);

/* "sync, outbox, serve": the commands that read key `k`. */
static void print_readers(FILE *fp, const struct config_key *k)
{
    const char *sep = "";
    size_t i;

    for (i = 0; cli_commands[i]; i++) {
        if (cli_commands[i]->run == run || /* this command reads all */
            !config_key_needed(k, cli_commands[i]->secrets))
            continue;
        fprintf(fp, "%s%s", sep, cli_commands[i]->name);
        sep = ", ";
    }
    fputs(*sep ? "\n" : "(none)\n", fp);
}

/* Every secret (and K_file key), with the commands that read it. */
static void print_secret_readers(FILE *fp)
{
    char name[96];
    size_t i;

    fprintf(fp, "\n# secrets, and the commands that read them (others "
                "ignore them):\n");
    for (i = 0; i < config_table_count; i++) {
        const struct config_key *k = &config_table[i];

        if (!(k->flags & (CONFIG_SENSITIVE | CONFIG_FROM_FILE)))
            continue;
        snprintf(name, sizeof(name), "[%s] %s", k->section, k->name);
        fprintf(fp, "#   %-32s ", name);
        print_readers(fp, k);
    }
}

static int run(struct cli_ctx *ctx, int argc, char **argv)
{
    struct config_diag diag = { 0 };
    struct optsync_config *cfg = NULL;
    const char *arg;
    size_t problems;
    int quiet = 0, c, rc;

    while ((c = cli_next_option(ctx, argc, argv, &arg)) != CLI_DONE) {
        if (c == CLI_HELP)
            return EXIT_OK;
        if (c == CLI_USAGE)
            return EXIT_USAGE;
        if (c == OPT_QUIET)
            quiet = 1;
    }
    if (cli_optind() < argc)
        return cli_usage_error(ctx, "unexpected argument '%s'",
                               argv[cli_optind()]);
    rc = config_load(&cfg, ctx->config_path, ctx->overrides, ctx->n_overrides,
                     &diag);
    config_diag_print(stderr, &diag);
    problems = diag.count;
    config_diag_dispose(&diag);
    if (rc == ERR_NOTFOUND)
        return EXIT_USAGE; /* nothing to check */
    if (cfg) {
        problems += check_mapping(cfg);
        if (!quiet) {
            config_print(ctx->out, cfg);
            print_secret_readers(ctx->out);
        }
        config_free(cfg);
    }
    fprintf(stderr, "%s: %zu problem%s found\n", ctx->config_path, problems,
            problems == 1 ? "" : "s");
    return problems ? EXIT_NEGATIVE : EXIT_OK;
}

const struct cli_command cli_check_config_command = {
    .name = "check-config",
    .synopsis = NULL,
    .summary = "validate the configuration and the mapping file",
    .description =
        "Reads the configuration (and any -o overrides) and the mapping\n"
        "file it names, reports every problem with file, line, section and\n"
        "key (or JSON path), and prints the effective configuration with\n"
        "secrets redacted.  Every secret is checked here; other commands\n"
        "read only the secrets they use, and the list at the end says\n"
        "which command reads which.",
    .exit_codes = "  0  no problems\n"
                  "  1  problems found (errors or warnings, listed on "
                  "stderr)\n"
                  "  2  usage error, or the config file cannot be read\n",
    .options = options,
    .secrets = CONFIG_NEEDS_ALL,
    .run = run,
};
