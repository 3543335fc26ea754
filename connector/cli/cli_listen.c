/*
 * cli_listen — `optsync listen`: runs the HTTP listener (gate API,
 * WhatsApp and Dataverse webhooks, health, metrics) until SIGINT or
 * SIGTERM, then shuts it down gracefully: stop accepting, answer what
 * is in flight, commit, exit 0.
 *
 * `optsync serve` will run the same listener as one of its stages
 * (listener_new / _start / _stop / _free), next to the poller and the
 * outbox worker.
 */
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "cli.h"
#include "listener.h"
#include "log.h"

static const struct cli_option options[] = {
    { NULL, 0, NULL, 0, NULL },
};

/* Blocks until SIGINT or SIGTERM arrives (they are blocked in every
 * thread, so sigwait is the only taker). */
static int wait_for_signal(const sigset_t *set)
{
    int sig = 0;

    while (sigwait(set, &sig) != 0)
        ;
    return sig;
}

static int serve(struct cli_ctx *ctx, const sigset_t *set)
{
    listener *l = NULL;
    int sig;

    if (listener_new(&l, ctx->cfg, ctx->mapping) != 0 ||
        listener_start(l) != 0) {
        listener_free(l);
        return cli_fail(ctx);
    }
    sig = wait_for_signal(set);
    log_info("listener_stopping signal=%s", sig == SIGINT ? "INT" : "TERM");
    listener_free(l); /* stops: drains, commits, joins */
    return EXIT_OK;
}

static int run(struct cli_ctx *ctx, int argc, char **argv)
{
    sigset_t set;
    const char *arg;
    int c, rc;

    while ((c = cli_next_option(ctx, argc, argv, &arg)) != CLI_DONE) {
        if (c == CLI_HELP)
            return EXIT_OK;
        if (c == CLI_USAGE)
            return EXIT_USAGE;
    }
    if (cli_optind() != argc)
        return cli_usage_error(ctx, "no arguments expected");
    rc = cli_mapping(ctx);
    if (rc == 0)
        rc = cli_cache(ctx); /* migrates the file before the threads open it */
    if (rc)
        return rc;
    /* Before any thread exists, so every thread inherits the mask. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    return serve(ctx, &set);
}

const struct cli_command cli_listen_command = {
    .name = "listen",
    .synopsis = "",
    .summary = "run the HTTP listener (gate API, webhooks, health, metrics)",
    .description =
        "Serves HTTP on [listener] address:port (port 0 picks a free one;\n"
        "the log says event=listening port=N), HTTPS when tls_cert and\n"
        "tls_key are set.  Routes: GET/POST /v1/gate, POST /v1/sends,\n"
        "POST /v1/preferences, GET /v1/configurations/{id}/numbers (these\n"
        "need [listener] api_key as X-API-Key or Authorization: Bearer),\n"
        "GET /healthz, /readyz (503 until synced and while stale) and\n"
        "/metrics (Prometheus); GET/POST /webhooks/whatsapp and\n"
        "POST /webhooks/whatsapp/{configuration} ([whatsapp] app_secret\n"
        "or the secret header, verify_token) and POST /webhooks/dataverse\n"
        "([dataverse_webhook] key).  Writes are answered 200 only after they\n"
        "committed.  Runs until SIGINT or SIGTERM, then stops accepting,\n"
        "answers the requests in flight, commits and exits 0.",
    .exit_codes = "  0  stopped by SIGINT or SIGTERM\n"
                  "  2  usage or config error (bad TLS files, bad address)\n"
                  "  4  cannot listen, or the cache cannot be opened\n",
    .options = options,
    .secrets = CONFIG_FOR_LISTENER,
    .run = run,
};
