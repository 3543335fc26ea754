/*
 * serve — see serve.h for the design notes.  This file is the process:
 * set-up, the wake-ups between stages, start and stop.  The stage loops
 * are in serve_stages.c.
 */
#include "serve_p.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "err.h"
#include "log.h"
#include "xalloc.h"

/* ---- wake-ups ------------------------------------------------------------ */

void serve__wake_init(struct serve__wake *w)
{
    pthread_condattr_t attr;

    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_init(&attr);
    /* Deadlines on the monotonic clock: a wall-clock step (NTP) must not
     * hold a stage asleep or wake it in a loop. */
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &attr);
    pthread_condattr_destroy(&attr);
    w->woken = 0;
}

void serve__wake_dispose(struct serve__wake *w)
{
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}

void serve__wake(struct serve__wake *w)
{
    pthread_mutex_lock(&w->mu);
    w->woken = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void serve__sleep(serve *s, struct serve__wake *w, int64_t wall_deadline_ms)
{
    int64_t left = wall_deadline_ms - clock_now_ms();
    struct timespec ts;

    if (left < 0)
        left = 0;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(left / 1000);
    ts.tv_nsec += (long)(left % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    while (!w->woken && !s->stopping &&
           pthread_cond_timedwait(&w->cv, &w->mu, &ts) != ETIMEDOUT)
        ;
    w->woken = 0;
    pthread_mutex_unlock(&w->mu);
}

/* Listener hooks (note 1): on a worker or the writer thread, never
 * blocking. */
static void on_commit(void *payload)
{
    serve *s = payload;

    if (s->ob)
        outbox_wake(s->ob);
}

static void on_refetch(void *payload)
{
    serve__wake(&((serve *)payload)->refetch_wake);
}

/* ---- set-up -------------------------------------------------------------- */

int serve_new(serve **out, const struct optsync_config *cfg,
              const struct mapping *m, const struct serve_options *opts)
{
    serve *s = xcalloc(1, sizeof(*s));

    s->cfg = cfg;
    s->m = m;
    s->o = *opts;
    serve__wake_init(&s->poll_wake);
    serve__wake_init(&s->refetch_wake);
    serve__wake_init(&s->outbox_wake);
    s->throttle = http_throttle_new();
    if (listener_new(&s->l, cfg, m) != 0) {
        serve_free(s);
        return ERR_FAIL;
    }
    listener_on_commit(s->l, on_commit, s);
    listener_on_refetch(s->l, on_refetch, s);
    *out = s;
    return 0;
}

static int open_http(http **out, serve *s)
{
    struct http_options ho = HTTP_OPTIONS_INIT;

    ho.connect_timeout_ms = s->cfg->dataverse.connect_timeout * 1000;
    ho.timeout_ms = s->cfg->dataverse.timeout * 1000;
    ho.ca_file = s->cfg->dataverse.ca_file;
    ho.throttle = s->throttle;
    ho.stop = &s->stopping; /* waits and transfers end when serve stops */
    return http_new(out, &ho);
}

/* The token, once: refused credentials end the start (exit 3); an
 * unreachable Entra does not (note 4). */
static int check_credentials(serve *s)
{
    char *header = NULL;
    int rc = auth_header(&header, s->a);

    xfree_secret(header);
    if (rc == ERR_AUTH)
        return rc;
    if (rc)
        log_warn("serve_token_failed msg=%s", log_q(err_message()));
    return 0;
}

/* The stages' own handles: every thread its own cache connection. */
static int open_stages(serve *s)
{
    struct outbox_options oo;
    const char *path = s->cfg->cache.path;

    outbox_options_from_config(&oo, s->cfg);
    oo.test_stop_after = s->o.outbox_test_stop_after;
    if (cache_open(&s->sync_cache, path, 0) != 0 ||
        syncer_new(&s->syncer, s->cfg, s->m, s->sync_cache, s->a,
                   s->throttle) != 0)
        return ERR_FAIL;
    syncer_set_stop(s->syncer, &s->stopping);
    if (cache_open(&s->ob_cache, path, 0) != 0 ||
        outbox_new(&s->ob, s->cfg, s->m, s->ob_cache, s->a, s->throttle, &oo) !=
            0)
        return ERR_FAIL;
    if (cache_open(&s->rf_cache, path, 0) != 0 ||
        open_http(&s->rf_http, s) != 0 ||
        dataverse_new(&s->dv, s->cfg, s->m, s->rf_http, s->a) != 0 ||
        dv_webhook_new(&s->wh, s->cfg, s->m) != 0)
        return ERR_FAIL;
    return 0;
}

static int start_thread(struct serve__thread *t, void *(*fn)(void *), serve *s)
{
    if (pthread_create(&t->id, NULL, fn, s) != 0) {
        err_set(ERR_CLASS_OS, "cannot start a thread");
        return ERR_FAIL;
    }
    t->started = 1;
    return 0;
}

int serve_start(serve *s)
{
    int rc = open_http(&s->token_http, s);

    if (rc == 0)
        rc = auth_new(&s->a, s->cfg, s->token_http);
    if (rc == 0)
        rc = check_credentials(s);
    if (rc == 0)
        rc = open_stages(s);
    if (rc == 0)
        rc = listener_start(s->l);
    if (rc == 0)
        rc = start_thread(&s->outbox_thread, serve__outbox_main, s);
    if (rc == 0)
        rc = start_thread(&s->refetch_thread, serve__refetch_main, s);
    if (rc == 0)
        rc = start_thread(&s->poll_thread, serve__poll_main, s);
    if (rc) {
        serve_stop(s);
        return rc;
    }
    log_info("serve_started port=%d sync_interval_s=%lld batch_size=%lld",
             listener_port(s->l), (long long)(s->o.sync_interval_ms / 1000),
             (long long)s->cfg->outbox.batch_size);
    return 0;
}

int serve_port(const serve *s)
{
    return listener_port(s->l);
}

/* ---- stop ---------------------------------------------------------------- */

static void join(struct serve__thread *t)
{
    if (t->started)
        pthread_join(t->id, NULL);
    t->started = 0;
}

void serve_stop(serve *s)
{
    if (s->stopped)
        return;
    s->stopped = 1;
    /* Note 3: first no new input, everything in flight answered and
     * committed; then the stages end after the step in hand. */
    if (s->l)
        listener_stop(s->l);
    s->stopping = 1;
    if (s->ob)
        outbox_stop(s->ob);
    serve__wake(&s->poll_wake);
    serve__wake(&s->refetch_wake);
    serve__wake(&s->outbox_wake);
    join(&s->outbox_thread);
    join(&s->refetch_thread);
    join(&s->poll_thread);
    log_info("serve_stopped");
}

void serve_free(serve *s)
{
    if (!s)
        return;
    serve_stop(s);
    listener_free(s->l);
    outbox_free(s->ob);
    syncer_free(s->syncer);
    dv_webhook_free(s->wh);
    dataverse_free(s->dv);
    http_free(s->rf_http);
    cache_close(s->ob_cache);
    cache_close(s->sync_cache);
    cache_close(s->rf_cache);
    auth_free(s->a);
    http_free(s->token_http);
    http_throttle_free(s->throttle);
    serve__wake_dispose(&s->poll_wake);
    serve__wake_dispose(&s->refetch_wake);
    serve__wake_dispose(&s->outbox_wake);
    free(s);
}
