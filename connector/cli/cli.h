/*
 * cli — the command table and what every subcommand shares: option
 * parsing with generated --help, the common options (-c, -o, --log-level,
 * --debug), and loading the config and mapping on demand.
 *
 * Each subcommand lives in its own cli_<verb>.c and exports one
 * `const struct cli_command cli_<verb>_command`; cli.c lists them all.
 * A command's run() returns the process exit code (err.h EXIT_*).
 */
#ifndef OPTSYNC_CLI_H
#define OPTSYNC_CLI_H

#include <stdio.h>

#include "cache.h"
#include "config.h"
#include "consent.h"
#include "err.h"
#include "mapping.h"

struct cli_option {
    const char *name; /* long name without "--" */
    int short_name;   /* 0 when none */
    const char *arg;  /* argument name for help; NULL for a flag */
    int id;           /* returned by cli_next_option(); > 0 */
    const char *help; /* NULL: hidden from --help (test options) */
};

struct cli_ctx {
    const char *config_path;           /* -c; default config/optsync.ini */
    struct config_override *overrides; /* owned array (-o) */
    size_t n_overrides;
    char **override_args;              /* owned copies behind overrides */
    int log_level_set;                 /* --log-level given */
    int debug_set;                     /* --debug given */
    struct optsync_config *cfg;        /* owned; cli_config() loads it */
    struct mapping *mapping;           /* owned; cli_mapping() loads it */
    cache *cache;                      /* owned; cli_cache() opens it */
    const struct cli_command *command; /* running command */
    FILE *out;                         /* stdout */
};

struct cli_command {
    const char *name;
    const char *synopsis; /* after "optsync NAME [options]" */
    const char *summary;  /* one line for the command list */
    const char *description;
    const char *exit_codes;           /* lines for --help */
    const struct cli_option *options; /* ends with a {NULL} entry */
    unsigned secrets; /* CONFIG_FOR_* parts whose secrets it reads */
    int (*run)(struct cli_ctx *ctx, int argc, char **argv);
};

/* Returned by cli_next_option() besides option ids. */
#define CLI_DONE 0       /* no more options: positional args from optind */
#define CLI_HELP (-100)  /* --help was printed: exit EXIT_OK */
#define CLI_USAGE (-101) /* a usage error was printed: exit EXIT_USAGE */

extern const struct cli_command *const cli_commands[];

const struct cli_command *cli_command_find(const char *name);
void cli_print_usage(FILE *fp);
void cli_command_help(FILE *fp, const struct cli_command *cmd);

/*
 * Next option of `cmd` in argv (getopt_long underneath; the common
 * options are handled here and never returned).  *arg is the option's
 * argument.  After CLI_DONE, positional arguments start at cli_optind().
 */
int cli_next_option(struct cli_ctx *ctx, int argc, char **argv,
                    const char **arg);
int cli_optind(void);

/* Handles one common option; returns 1 when `id` was one of them. */
int cli_common_option(struct cli_ctx *ctx, int id, const char *arg,
                      int *usage_error);

/*
 * Loads the config (with -o overrides) once, with the secrets of the
 * running command's parts only (cli_command.secrets; every secret when no
 * command runs); prints problems to stderr.
 * Returns 0, or an exit code (EXIT_USAGE) after printing why.
 */
int cli_config(struct cli_ctx *ctx);
/* Loads the mapping file the config names; same contract. */
int cli_mapping(struct cli_ctx *ctx);

/* Opens the cache the config names once (migrating it); same contract. */
int cli_cache(struct cli_ctx *ctx);

/* Consent engine options from the config and mapping (both loaded). */
void cli_consent_options(struct cli_ctx *ctx, struct consent_options *out);

/*
 * Resolves a --configuration argument (id or exact name) against the
 * cache; prints why on failure.  Returns 0 or an exit code.
 */
int cli_configuration(struct cli_ctx *ctx, char *out_id, const char *ref);

/*
 * Parses a phone argument for a configuration (its default region, else
 * [consent] default_region); prints why on failure.  0 or an exit code.
 */
int cli_phone(struct cli_ctx *ctx, char *out_e164, const char *input,
              const char *configuration_id);

/* Column `col` of a result row into a JSON object as `name`: text (or
 * null), or an ISO 8601 time from milliseconds (or null). */
void cli_json_text(cJSON *o, const char *name, sqlite3_stmt *st, int col);
void cli_json_time(cJSON *o, const char *name, sqlite3_stmt *st, int col);

/* Prints "optsync CMD: message" for the last error; returns its exit
 * code. */
int cli_fail(struct cli_ctx *ctx);
/* Prints a usage error for the running command; returns EXIT_USAGE. */
int cli_usage_error(struct cli_ctx *ctx, const char *fmt, ...)
    ATTR_PRINTFLIKE(2, 3);

void cli_ctx_dispose(struct cli_ctx *ctx);

/* ---- write-back (cli_outbox.c), also run by `optsync sync` -------------- */

struct auth;
struct http_throttle;
struct outbox_stats;

/*
 * Drains the outbox once (outbox_drain) with the config's [outbox]
 * options, waiting up to `wait_s` for rows backing off.  Returns what
 * outbox_drain returns (ERR_CONFLICT: another process writes back).
 */
int cli_writeback(struct cli_ctx *ctx, struct auth *a,
                  struct http_throttle *throttle, int64_t wait_s,
                  long stop_after, struct outbox_stats *out);
/* The one-line summary of a drain. */
void cli_writeback_summary(FILE *out, const struct outbox_stats *s);

/* Common option ids (kept out of every command's range). */
enum {
    CLI_OPT_CONFIG = 1000,
    CLI_OPT_OVERRIDE,
    CLI_OPT_LOG_LEVEL,
    CLI_OPT_DEBUG,
    CLI_OPT_HELP,
};

#endif
