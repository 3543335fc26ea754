/*
 * cli_sync — `optsync sync [--full]`: one sync (full when forced or when
 * no delta link is stored), a progress bar on a terminal and a summary
 * line at the end.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"
#include "outbox.h"
#include "sync.h"
#include "units.h"

enum { OPT_FULL = 1, OPT_QUIET, OPT_TEST_STOP_AFTER, OPT_NO_WRITEBACK };

static const struct cli_option options[] = {
    { "full", 0, NULL, OPT_FULL,
      "read everything again (and sweep rows "
      "deleted in Dataverse)" },
    { "quiet", 'q', NULL, OPT_QUIET, "no progress bar, no summary line" },
    { "no-writeback", 0, NULL, OPT_NO_WRITEBACK,
      "do not write pending local changes back afterwards" },
    { "test-stop-after", 0, "PAGES", OPT_TEST_STOP_AFTER, NULL },
    { NULL, 0, NULL, 0, NULL },
};

struct bar {
    int tty;
    int drawn;
};

static void on_progress(const struct sync_progress *p, void *payload)
{
    struct bar *b = payload;
    double secs = (double)p->elapsed_ms / 1000.0;

    if (!b->tty)
        return;
    fprintf(stderr,
            "\r\033[K%-14s %-5s  pages %-6lld rows %-9lld %8.0f "
            "rows/s",
            p->entity, p->full ? "full" : "delta", (long long)p->pages,
            (long long)p->rows, secs > 0 ? (double)p->rows / secs : 0.0);
    b->drawn = 1;
}

static void summary(FILE *out, const struct sync_result *r)
{
    double secs = (double)(r->finished_at - r->started_at) / 1000.0;
    int64_t rows = r->configurations + r->numbers;

    fprintf(out,
            "sync ok: %s, %lld configurations and %lld numbers read in %lld "
            "pages, %lld deleted, %lld unparseable phones, %.1fs "
            "(%.0f rows/s)",
            r->full ? "full" : "delta", (long long)r->configurations,
            (long long)r->numbers, (long long)r->pages, (long long)r->deleted,
            (long long)r->unparseable, secs,
            secs > 0 ? (double)rows / secs : 0.0);
    if (r->phone_warnings)
        fprintf(out, ", %lld phones not valid in libphonenumber's metadata",
                (long long)r->phone_warnings);
    if (r->phones_rechecked)
        fprintf(out, ", %lld phones parsed again",
                (long long)r->phones_rechecked);
    if (r->quarantine_applied || r->quarantine_waiting)
        fprintf(out, ", quarantine: %d applied, %d waiting",
                r->quarantine_applied, r->quarantine_waiting);
    fputc('\n', out);
}

static int parse(struct cli_ctx *ctx, int argc, char **argv,
                 struct sync_options *o, int *quiet, int *no_writeback)
{
    const char *arg;
    int64_t n;
    int c;

    while ((c = cli_next_option(ctx, argc, argv, &arg)) != CLI_DONE) {
        if (c == CLI_HELP)
            return EXIT_OK;
        if (c == CLI_USAGE)
            return EXIT_USAGE;
        if (c == OPT_FULL)
            o->force_full = 1;
        if (c == OPT_QUIET)
            *quiet = 1;
        if (c == OPT_NO_WRITEBACK)
            *no_writeback = 1;
        if (c == OPT_TEST_STOP_AFTER) {
            if (units_int_parse(&n, arg) != 0 || n < 1)
                return cli_usage_error(ctx, "--test-stop-after needs N > 0");
            o->stop_after_pages = (long)n;
        }
    }
    if (cli_optind() != argc)
        return cli_usage_error(ctx, "unexpected argument '%s'",
                               argv[cli_optind()]);
    return -1;
}

/* After a successful sync: the outbox, once (no daemon needed).  Skipped
 * when another process (serve) is the writer. */
static int writeback(struct cli_ctx *ctx, auth *a,
                     struct http_throttle *throttle, struct outbox_stats *s)
{
    int rc = cli_writeback(ctx, a, throttle, 0, 0, s);

    if (rc == ERR_CONFLICT) {
        log_notice("writeback_skipped reason=%s", log_q(err_message()));
        return 0;
    }
    return rc;
}

static int run_sync(struct cli_ctx *ctx, const struct sync_options *o,
                    struct sync_result *r, struct outbox_stats *wb)
{
    struct http_throttle *throttle = http_throttle_new();
    struct http_options ho = HTTP_OPTIONS_INIT;
    http *token_http = NULL;
    auth *a = NULL;
    syncer *s = NULL;
    int rc;

    ho.connect_timeout_ms = ctx->cfg->dataverse.connect_timeout * 1000;
    ho.timeout_ms = ctx->cfg->dataverse.timeout * 1000;
    ho.ca_file = ctx->cfg->dataverse.ca_file;
    ho.throttle = throttle;
    rc = http_new(&token_http, &ho);
    if (rc == 0)
        rc = auth_new(&a, ctx->cfg, token_http);
    if (rc == 0)
        rc = syncer_new(&s, ctx->cfg, ctx->mapping, ctx->cache, a, throttle);
    if (rc == 0)
        rc = sync_run(r, s, o);
    if (rc == 0 && wb)
        rc = writeback(ctx, a, throttle, wb);
    syncer_free(s);
    auth_free(a);
    http_free(token_http);
    http_throttle_free(throttle);
    return rc;
}

static int run(struct cli_ctx *ctx, int argc, char **argv)
{
    struct sync_options o;
    struct sync_result r;
    struct outbox_stats wb;
    struct bar bar = { 0, 0 };
    int quiet = 0, no_writeback = 0, rc;

    memset(&o, 0, sizeof(o));
    memset(&wb, 0, sizeof(wb));
    rc = parse(ctx, argc, argv, &o, &quiet, &no_writeback);
    if (rc >= 0)
        return rc;
    rc = cli_mapping(ctx);
    if (rc == 0)
        rc = cli_cache(ctx);
    if (rc)
        return rc;
    bar.tty = !quiet && isatty(STDERR_FILENO);
    o.progress = on_progress;
    o.progress_payload = &bar;
    rc = run_sync(ctx, &o, &r, no_writeback ? NULL : &wb);
    if (bar.drawn)
        fputs("\r\033[K", stderr);
    if (rc == ERR_CONFLICT) {
        fprintf(stderr, "optsync sync: %s\n", err_message());
        return EXIT_LOCAL;
    }
    if (rc)
        return cli_fail(ctx);
    if (!quiet)
        summary(ctx->out, &r);
    if (!quiet &&
        (wb.written || wb.conflicts || wb.retried || wb.dead || wb.waiting))
        cli_writeback_summary(ctx->out, &wb);
    return EXIT_OK;
}

const struct cli_command cli_sync_command = {
    .name = "sync",
    .synopsis = "[--full]",
    .summary = "mirror Dataverse into the cache (full, then deltas)",
    .description =
        "Reads every Configuration and Opt-In / Opt-Out Number from\n"
        "Dataverse into the cache: a full read the first time (or with\n"
        "--full, or when Dataverse refuses the stored delta token), change\n"
        "tracking afterwards.  A page per transaction: an interrupted full\n"
        "read resumes from its last committed page.  Quarantined events are\n"
        "replayed afterwards.  Only one sync runs per cache at a time.\n"
        "Then local changes waiting in the outbox are written back to\n"
        "Dataverse (as `optsync outbox flush` does; skipped while another\n"
        "process such as `serve` is the writer, or with --no-writeback).",
    .exit_codes = "  0  synced\n"
                  "  2  usage or config error\n"
                  "  3  Entra ID or Dataverse failed (after retries), also "
                  "in the write-back\n"
                  "  4  cache error, or another sync holds the lock\n",
    .options = options,
    /* The write-back at the end sends consent messages too (a timer
     * running `optsync sync` is the whole deployment without serve). */
    .secrets = CONFIG_FOR_DATAVERSE | CONFIG_FOR_SENDER,
    .run = run,
};
