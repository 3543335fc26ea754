/*
 * cli_serve — `optsync serve`: the poller, the listener, the outbox
 * worker and the Dataverse re-fetch runner in one process (serve.h),
 * until SIGINT or SIGTERM.  SIGHUP reopens [log] file.
 */
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "cli.h"
#include "log.h"
#include "serve.h"
#include "units.h"

enum { OPT_TEST_OUTBOX_STOP_AFTER = 1 };

static const struct cli_option options[] = {
    { "test-outbox-stop-after", 0, "STEPS", OPT_TEST_OUTBOX_STOP_AFTER, NULL },
    { NULL, 0, NULL, 0, NULL },
};

static const char *signal_name(int sig)
{
    return sig == SIGINT ? "INT" : sig == SIGTERM ? "TERM" : "HUP";
}

/* Waits for SIGINT or SIGTERM (blocked in every thread, so sigwait is
 * the only taker), reopening the log on each SIGHUP meanwhile. */
static int wait_for_stop(const sigset_t *set)
{
    int sig = 0;

    for (;;) {
        if (sigwait(set, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            return sig;
        if (log_file_reopen() == 0)
            log_info("log_reopened");
        else
            log_error("log_reopen_failed msg=%s", log_q(err_message()));
    }
}

static int serve_until_signal(struct cli_ctx *ctx, const sigset_t *set,
                              const struct serve_options *o)
{
    serve *s = NULL;
    int sig;

    if (serve_new(&s, ctx->cfg, ctx->mapping, o) != 0 || serve_start(s) != 0) {
        serve_free(s);
        return cli_fail(ctx);
    }
    sig = wait_for_stop(set);
    log_info("serve_stopping signal=%s", signal_name(sig));
    serve_free(s);    /* stops: drains, commits, joins */
    log_file_close(); /* no thread logs any more */
    return EXIT_OK;
}

static int parse(struct cli_ctx *ctx, int argc, char **argv,
                 struct serve_options *o)
{
    const char *arg;
    int64_t n;
    int c;

    while ((c = cli_next_option(ctx, argc, argv, &arg)) != CLI_DONE) {
        if (c == CLI_HELP)
            return EXIT_OK;
        if (c == CLI_USAGE)
            return EXIT_USAGE;
        if (c == OPT_TEST_OUTBOX_STOP_AFTER) {
            if (units_int_parse(&n, arg) != 0 || n < 1)
                return cli_usage_error(ctx, "--test-outbox-stop-after needs "
                                            "N > 0");
            o->outbox_test_stop_after = (long)n;
        }
    }
    if (cli_optind() != argc)
        return cli_usage_error(ctx, "no arguments expected");
    return -1;
}

static int run(struct cli_ctx *ctx, int argc, char **argv)
{
    struct serve_options o = SERVE_OPTIONS_INIT;
    sigset_t set;
    int rc = parse(ctx, argc, argv, &o);

    if (rc >= 0)
        return rc;
    rc = cli_mapping(ctx);
    if (rc)
        return rc;
    if (ctx->cfg->log.file && log_file_open(ctx->cfg->log.file) != 0)
        return cli_fail(ctx);
    rc = cli_cache(ctx); /* migrates the file before the threads open it */
    if (rc)
        return rc;
    o.sync_interval_ms = ctx->cfg->sync.interval * 1000;
    /* Before any thread exists, so every thread inherits the mask. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    return serve_until_signal(ctx, &set, &o);
}

const struct cli_command cli_serve_command = {
    .name = "serve",
    .synopsis = "",
    .summary = "run the daemon: poller, listener, write-back, webhook re-fetch",
    .description =
        "Runs in one process, until SIGINT or SIGTERM:\n"
        "  poller    a sync every [sync] interval (full the first time);\n"
        "  listener  what `optsync listen` serves (gate API, WhatsApp and\n"
        "            Dataverse webhooks, /healthz, /readyz, /metrics);\n"
        "  outbox    writes every queued change back to Dataverse, woken\n"
        "            by each commit (a STOP leaves at once), retrying with\n"
        "            backoff ([outbox] keys);\n"
        "  refetch   reads rows a Dataverse webhook only hinted at.\n"
        "/readyz is 200 while the last successful sync is younger than\n"
        "[sync] max_staleness.  SIGINT/SIGTERM: stop accepting, answer\n"
        "and commit what is in flight, finish the step in hand, exit 0.\n"
        "SIGHUP: reopen [log] file (after logrotate).  Needs every secret\n"
        "of the config (Entra, API key, webhooks).  The log says\n"
        "event=listening port=N, then serve_started; each stage logs its\n"
        "work (serve_sync_done, outbox_batch, serve_refetch_done, ...).",
    .exit_codes = "  0  stopped by SIGINT or SIGTERM\n"
                  "  2  usage or config error (bad TLS files, log file)\n"
                  "  3  Entra ID refused the credentials at start\n"
                  "  4  cannot listen, or the cache cannot be opened\n",
    .options = options,
    .secrets = CONFIG_NEEDS_ALL,
    .run = run,
};
