/*
 * main — `optsync [options] COMMAND [ARGS]`: parses the common options,
 * finds the command in the table (cli.c) and runs it.  Nothing else.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "fault.h"
#include "log.h"
#include "version.h"

static const struct option global_longopts[] = {
    { "config", required_argument, NULL, CLI_OPT_CONFIG },
    { "set", required_argument, NULL, CLI_OPT_OVERRIDE },
    { "log-level", required_argument, NULL, CLI_OPT_LOG_LEVEL },
    { "debug", required_argument, NULL, CLI_OPT_DEBUG },
    { "help", no_argument, NULL, CLI_OPT_HELP },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
};

/* Options before the command name; returns -1 to go on, or exit code. */
static int parse_global(struct cli_ctx *ctx, int argc, char **argv)
{
    int c, usage_error = 0;

    opterr = 0;
    /* '+': stop at the command name, its options are its own. */
    while ((c = getopt_long(argc, argv, "+:c:o:hV", global_longopts, NULL)) !=
           -1) {
        if (c == 'c')
            c = CLI_OPT_CONFIG;
        else if (c == 'o')
            c = CLI_OPT_OVERRIDE;
        else if (c == 'h')
            c = CLI_OPT_HELP;
        if (c == 'V') {
            printf("optsync %s\n", OPTSYNC_VERSION);
            return EXIT_OK;
        }
        if (c == CLI_OPT_HELP) {
            cli_print_usage(stdout);
            return EXIT_OK;
        }
        if (c == '?' || c == ':') {
            fprintf(stderr, "optsync: %s option %s\nTry 'optsync --help'.\n",
                    c == ':' ? "missing argument for" : "unknown",
                    argv[optind - 1]);
            return EXIT_USAGE;
        }
        cli_common_option(ctx, c, optarg, &usage_error);
        if (usage_error)
            return EXIT_USAGE;
    }
    return -1;
}

int main(int argc, char **argv)
{
    struct cli_ctx ctx;
    const struct cli_command *cmd;
    int rc;

    memset(&ctx, 0, sizeof(ctx));
    ctx.config_path = "config/optsync.ini";
    ctx.out = stdout;
    /* A closed pipe (optsync numbers | head) is an EPIPE, not a death. */
    signal(SIGPIPE, SIG_IGN);
    if (fault_arm_from_env() != 0) {
        fprintf(stderr, "optsync: %s\n", err_message());
        return EXIT_USAGE;
    }
    rc = parse_global(&ctx, argc, argv);
    if (rc >= 0)
        goto out;
    if (optind >= argc) {
        cli_print_usage(stderr);
        rc = EXIT_USAGE;
        goto out;
    }
    cmd = cli_command_find(argv[optind]);
    if (!cmd) {
        fprintf(stderr,
                "optsync: unknown command '%s'\n"
                "Try 'optsync --help'.\n",
                argv[optind]);
        rc = EXIT_USAGE;
        goto out;
    }
    ctx.command = cmd;
    argc -= optind;
    argv += optind;
    optind = 0; /* GNU getopt: full re-initialisation for the command */
    rc = cmd->run(&ctx, argc, argv);
out:
    cli_ctx_dispose(&ctx);
    return rc;
}
