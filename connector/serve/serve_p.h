/*
 * serve_p — what serve.c (the process) and serve_stages.c (the stage
 * loops) share.  Not for other modules.
 */
#ifndef OPTSYNC_SERVE_P_H
#define OPTSYNC_SERVE_P_H

#include <pthread.h>

#include "auth.h"
#include "cache.h"
#include "dataverse.h"
#include "dv_webhook.h"
#include "http.h"
#include "listener.h"
#include "outbox.h"
#include "serve.h"
#include "sync.h"

/* A stage's wake-up: a flag under a mutex, so a wake-up that comes while
 * the stage is busy is not lost (it runs again at once). */
struct serve__wake {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* on CLOCK_MONOTONIC */
    int woken;
};

struct serve__thread {
    pthread_t id;
    int started;
};

struct serve {
    const struct optsync_config *cfg; /* borrowed */
    const struct mapping *m;          /* borrowed */
    struct serve_options o;
    volatile int stopping; /* set once by serve_stop; http waits end */
    int stopped;

    /* shared by every stage: one token, one throttle */
    struct http_throttle *throttle;
    http *token_http;
    auth *a;

    listener *l;

    /* each stage: its own cache connection and thread */
    cache *sync_cache;
    syncer *syncer;
    struct serve__wake poll_wake;
    struct serve__thread poll_thread;

    cache *ob_cache;
    outbox *ob;
    struct serve__wake outbox_wake; /* waits between outbox_run attempts */
    struct serve__thread outbox_thread;

    cache *rf_cache;
    http *rf_http;
    dataverse *dv;
    dv_webhook *wh;
    struct serve__wake refetch_wake;
    struct serve__thread refetch_thread;
};

void serve__wake_init(struct serve__wake *w);
void serve__wake_dispose(struct serve__wake *w);
void serve__wake(struct serve__wake *w);
/* Sleeps until the wall-clock deadline, a wake-up or serve's stop. */
void serve__sleep(serve *s, struct serve__wake *w, int64_t wall_deadline_ms);

/* The stage threads (serve_stages.c); `arg` is the serve. */
void *serve__poll_main(void *arg);
void *serve__outbox_main(void *arg);
void *serve__refetch_main(void *arg);

#endif
