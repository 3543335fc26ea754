/*
 * serve_stages — the loops of serve's stage threads (serve.h): the
 * poller, the outbox worker and the Dataverse re-fetch runner.  Each
 * logs what it did and goes on after a failure (serve.h note 4).
 */
#include "serve_p.h"

#include "clock.h"
#include "err.h"
#include "log.h"

/* A stage that failed looks again after this long at the latest. */
#define RETRY_MS (5 * 1000)
/* The re-fetch runner looks at its queue this often even without a
 * hint (rows a wake-up was missed for, serve.h note 1). */
#define REFETCH_IDLE_MS (60 * 1000)

/* ---- poller -------------------------------------------------------------- */

static void log_sync(serve *s, int rc, const struct sync_result *r, int64_t ms)
{
    if (rc && s->stopping) /* abandoned by the stop (serve.h note 3) */
        log_notice("serve_sync_interrupted ms=%lld", (long long)ms);
    else if (rc == 0)
        log_info("serve_sync_done mode=%s configurations=%lld numbers=%lld "
                 "deleted=%lld ms=%lld",
                 r->full ? "full" : "delta", (long long)r->configurations,
                 (long long)r->numbers, (long long)r->deleted, (long long)ms);
    else if (rc == ERR_CONFLICT) /* a manual `optsync sync` runs */
        log_notice("serve_sync_skipped reason=%s", log_q(err_message()));
    else
        log_error("serve_sync_failed msg=%s", log_q(err_message()));
}

void *serve__poll_main(void *arg)
{
    serve *s = arg;
    struct sync_options o = { 0 };
    struct sync_result r;
    int64_t started;
    int rc;

    while (!s->stopping) {
        started = clock_now_ms();
        rc = sync_run(&r, s->syncer, &o);
        log_sync(s, rc, &r, clock_now_ms() - started);
        if (rc == 0 && s->ob)
            outbox_wake(s->ob); /* a conflict may have queued a write */
        serve__sleep(s, &s->poll_wake, started + s->o.sync_interval_ms);
    }
    return NULL;
}

/* ---- outbox -------------------------------------------------------------- */

void *serve__outbox_main(void *arg)
{
    serve *s = arg;
    int rc, told = 0;

    while (!s->stopping) {
        rc = outbox_run(s->ob); /* returns after outbox_stop */
        if (rc == 0)
            break;
        /* Another process (`optsync outbox flush`) holds the lock, or
         * the cache failed at start: take over when it is free. */
        if (!told)
            log_warn("serve_outbox_waiting msg=%s", log_q(err_message()));
        told = 1;
        serve__sleep(s, &s->outbox_wake, clock_now_ms() + RETRY_MS);
    }
    return NULL;
}

/* ---- re-fetch ------------------------------------------------------------ */

static void log_refetch(int rc, const struct dv_refetch_result *r)
{
    if (rc)
        log_warn("serve_refetch_failed msg=%s", log_q(err_message()));
    else if (r->fetched || r->removed || r->deferred)
        log_info("serve_refetch_done fetched=%d applied=%d removed=%d "
                 "stale=%d skipped=%d deferred=%d remaining=%d",
                 r->fetched, r->applied, r->removed, r->stale, r->skipped,
                 r->deferred, r->remaining);
}

/* When to look at the queue again. */
static int64_t refetch_next(serve *s, int rc)
{
    int64_t now = clock_now_ms(), next = now + REFETCH_IDLE_MS, due = 0;
    int count = 0;

    if (rc) /* the failed row is backed off; never a tight loop */
        return now + RETRY_MS;
    if (dv_webhook_refetch_pending(&count, &due, s->rf_cache) != 0)
        return now + RETRY_MS;
    if (count > 0 && due < next)
        next = due;
    return next;
}

void *serve__refetch_main(void *arg)
{
    serve *s = arg;
    struct dv_refetch_options o = DV_REFETCH_OPTIONS_INIT;
    struct dv_refetch_result r;
    int rc;

    while (!s->stopping) {
        rc = dv_webhook_refetch_run(&r, s->wh, s->rf_cache, s->dv, &o);
        log_refetch(rc, &r);
        if (rc == 0 && s->ob)
            outbox_wake(s->ob); /* a re-read may have lost to a reply */
        serve__sleep(s, &s->refetch_wake, refetch_next(s, rc));
    }
    return NULL;
}
