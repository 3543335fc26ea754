/*
 * housekeeping — the listener's background thread (listener.h note 5):
 * the quarantine replay a WhatsApp delivery asked for, and the pruning of
 * old de-duplication keys and of finished rows (retention.h, `[outbox]
 * keep_done`), at start and then every hour.
 *
 * Pipeline position: beside the writer, with its own cache connection;
 * each task runs in short transactions of its own (the replay one per
 * event, the prune a few thousand rows at a time), so the writer's group
 * commits wait for it at most briefly.  It never touches a request and
 * never stops the listener: a failure is logged and tried again later.
 *
 *   listener__housekeeping_start --> WAITING --replay asked / hour over-->
 *       RUNNING (replay, then prune when due) --> WAITING
 *       --listener__housekeeping_stop--> joined, connection closed
 */
#include "listener_p.h"

#include <stdlib.h>
#include <time.h>

#include "clock.h"
#include "dv_webhook.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "retention.h"
#include "whatsapp.h"
#include "xalloc.h"

#define PRUNE_INTERVAL_S 3600
/* Dataverse retries a delivery at once and runs async jobs within hours:
 * a week of keys and tombstones is plenty (dv_webhook.h). */
#define DV_KEEP_MS (7 * 24 * 3600 * 1000LL)

struct listener__housekeeping {
    struct listener *l; /* borrowed */
    cache *c;           /* owned: this thread's connection */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond; /* on CLOCK_MONOTONIC */
    int stop;            /* guarded by mu */
    int replay;          /* guarded by mu: a replay was asked for */
};

static void replay(struct listener__housekeeping *h)
{
    int applied = 0, waiting = 0;

    if (consent_quarantine_replay(h->c, &h->l->consent, &applied, &waiting) !=
        0)
        log_warn("housekeeping_failed task=quarantine_replay error=%s",
                 log_q(err_message()));
}

/* Finished rows: keep_done, but never below the double opt-in window,
 * in which an earlier request must still be seen (retention.h note 3). */
static void prune_finished(struct listener__housekeeping *h)
{
    const struct optsync_config *cfg = h->l->cfg;
    int64_t keep_s = cfg->outbox.keep_done;
    struct cache_pruned p;
    int rc;

    if (keep_s < cfg->consent.double_opt_in_window)
        keep_s = cfg->consent.double_opt_in_window;
    rc = cache_prune_finished(&p, h->c, clock_now_ms(), keep_s * 1000);
    metrics_pruned_add(&p); /* batches committed before a failure too */
    if (rc != 0)
        log_warn("housekeeping_failed task=prune_finished error=%s",
                 log_q(err_message()));
}

static void prune(struct listener__housekeeping *h)
{
    int removed = 0;

    if (whatsapp_dedupe_prune(&removed, h->c, WHATSAPP_DEDUPE_KEEP_MS) != 0)
        log_warn("housekeeping_failed task=whatsapp_dedupe_prune error=%s",
                 log_q(err_message()));
    if (dv_webhook_prune(h->c, clock_now_ms() - DV_KEEP_MS) != 0)
        log_warn("housekeeping_failed task=dv_webhook_prune error=%s",
                 log_q(err_message()));
    prune_finished(h);
}

static int due(const struct timespec *at)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > at->tv_sec ||
           (now.tv_sec == at->tv_sec && now.tv_nsec >= at->tv_nsec);
}

static void *housekeeping_main(void *arg)
{
    struct listener__housekeeping *h = arg;
    struct timespec next; /* the next prune; the first one at once */
    int asked;

    clock_gettime(CLOCK_MONOTONIC, &next);
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        if (!h->replay && !due(&next)) {
            pthread_cond_timedwait(&h->cond, &h->mu, &next);
            continue; /* woken, timed out or spurious: look again */
        }
        asked = h->replay;
        h->replay = 0;
        pthread_mutex_unlock(&h->mu);
        if (asked)
            replay(h);
        if (due(&next)) {
            prune(h);
            clock_gettime(CLOCK_MONOTONIC, &next);
            next.tv_sec += PRUNE_INTERVAL_S;
        }
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static void housekeeping_free(struct listener__housekeeping *h)
{
    cache_close(h->c);
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

int listener__housekeeping_start(struct listener *l)
{
    struct listener__housekeeping *h = xcalloc(1, sizeof(*h));
    pthread_condattr_t ca;

    h->l = l;
    pthread_mutex_init(&h->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (cache_open(&h->c, l->cfg->cache.path, 0) != 0) {
        housekeeping_free(h);
        return ERR_FAIL;
    }
    if (pthread_create(&h->thread, NULL, housekeeping_main, h) != 0) {
        err_set(ERR_CLASS_OS, "cannot start the housekeeping thread");
        housekeeping_free(h);
        return ERR_FAIL;
    }
    l->house = h;
    return 0;
}

void listener__housekeeping_stop(struct listener *l)
{
    struct listener__housekeeping *h = l->house;

    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->stop = 1;
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->thread, NULL);
    housekeeping_free(h);
    l->house = NULL;
}

void listener__housekeeping_replay(struct listener *l)
{
    struct listener__housekeeping *h = l->house;

    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->replay = 1;
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->mu);
}
