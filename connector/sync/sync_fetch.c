/*
 * sync_fetch — the page pipeline of one read (sync.h note 6).
 *
 *   fetch thread ──[fetched]──► prepare thread ──[prepared]──► caller
 *   GET + JSON, next request     map rows, parse phones         stores
 *   as soon as an answer is in                                  (in order)
 *
 * The fetch thread sends the request for page N+1 as soon as page N's
 * answer is parsed (its nextLink is all the request needs), so the
 * network and the server work while earlier pages are prepared and
 * stored.  Each queue holds at most QUEUE_PAGES pages and a stage waits
 * for room, so at most 2 * QUEUE_PAGES + 3 pages are in memory (one being
 * fetched, one prepared, one stored).  Pages come out in the order they
 * were read; the caller alone writes the cache, so the page-per-
 * transaction, resume and sweep rules of sync.c are untouched.
 *
 * Errors cross the threads as values (message, class, Dataverse error)
 * in page order, since err_set() is per thread: a failed request ends
 * the read after the pages before it.
 */
#include "sync_p.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "xalloc.h"

#define QUEUE_PAGES 1

/* A page on its way, or the error that ends the read. */
struct item {
    struct sync__page page;
    int rc;   /* dataverse_get_page's; 0: page holds an answer */
    int last; /* nothing follows: the last page, or an error */
    struct dv_error dv_err;
    char err_msg[1024];
    enum err_class err_class;
};

struct queue {
    struct item items[QUEUE_PAGES]; /* a ring */
    size_t head, count;
    pthread_cond_t not_empty, not_full;
};

struct sync__fetcher {
    dataverse *dv;            /* borrowed: the fetch thread's client */
    sync__prepare_fn prepare; /* may be NULL */
    void *payload;
    char *url; /* owned: the first request, until the thread takes it */
    int track;
    pthread_t fetch_thread, prepare_thread;
    int threads; /* started: 0, 1 or 2 */
    pthread_mutex_t mu;
    struct queue fetched, prepared;
    int quit; /* the caller stops the read */
};

/* ---- queues (called with mu held) ----------------------------------- */

static void queue_init(struct queue *q)
{
    memset(q, 0, sizeof(*q));
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
}

static void queue_dispose(struct queue *q)
{
    for (; q->count; q->count--, q->head = (q->head + 1) % QUEUE_PAGES)
        sync__page_dispose(&q->items[q->head].page);
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
}

/* Waits for room; -1 when the read was stopped (the item stays ours). */
static int queue_push(struct sync__fetcher *f, struct queue *q,
                      const struct item *it)
{
    while (q->count == QUEUE_PAGES && !f->quit)
        pthread_cond_wait(&q->not_full, &f->mu);
    if (f->quit)
        return -1;
    q->items[(q->head + q->count++) % QUEUE_PAGES] = *it;
    pthread_cond_signal(&q->not_empty);
    return 0;
}

/* Waits for an item; -1 when the read was stopped. */
static int queue_pop(struct sync__fetcher *f, struct queue *q, struct item *out)
{
    while (q->count == 0 && !f->quit)
        pthread_cond_wait(&q->not_empty, &f->mu);
    if (f->quit)
        return -1;
    *out = q->items[q->head];
    q->head = (q->head + 1) % QUEUE_PAGES;
    q->count--;
    pthread_cond_signal(&q->not_full);
    return 0;
}

/* Hands `it` on, or drops it when the read was stopped; 0 or -1. */
static int pass_on(struct sync__fetcher *f, struct queue *q, struct item *it)
{
    int rc;

    pthread_mutex_lock(&f->mu);
    rc = queue_push(f, q, it);
    pthread_mutex_unlock(&f->mu);
    if (rc)
        sync__page_dispose(&it->page);
    return rc;
}

/* ---- the two threads ------------------------------------------------ */

/* One request; on failure its error, copied out of this thread. */
static void fetch_one(struct item *it, struct sync__fetcher *f, const char *url)
{
    memset(it, 0, sizeof(*it));
    it->rc = dataverse_get_page(&it->page.page, f->dv, url, f->track);
    if (it->rc) {
        it->dv_err = *dataverse_last_error(f->dv);
        snprintf(it->err_msg, sizeof(it->err_msg), "%s", err_message());
        it->err_class = err_class_last();
    }
    it->last = it->rc != 0 || !it->page.page.next_link;
}

static void *fetch_run(void *arg)
{
    struct sync__fetcher *f = arg;
    char *url = f->url; /* handed over by sync__fetcher_start */
    struct item it;

    f->url = NULL;
    for (;;) {
        fetch_one(&it, f, url);
        free(url);
        /* The next request needs only this answer's link. */
        url = it.last ? NULL : xstrdup(it.page.page.next_link);
        if (pass_on(f, &f->fetched, &it) != 0 || it.last)
            break;
    }
    free(url);
    return NULL;
}

static void *prepare_run(void *arg)
{
    struct sync__fetcher *f = arg;
    struct item it;
    int rc;

    for (;;) {
        pthread_mutex_lock(&f->mu);
        rc = queue_pop(f, &f->fetched, &it);
        pthread_mutex_unlock(&f->mu);
        if (rc)
            break;
        if (it.rc == 0 && f->prepare)
            f->prepare(&it.page, f->payload);
        if (pass_on(f, &f->prepared, &it) != 0 || it.last)
            break;
    }
    return NULL;
}

/* ---- the caller's side ---------------------------------------------- */

int sync__fetcher_start(struct sync__fetcher **out, dataverse *dv,
                        const char *url, int track, sync__prepare_fn prepare,
                        void *payload)
{
    struct sync__fetcher *f = xcalloc(1, sizeof(*f));

    f->dv = dv;
    f->prepare = prepare;
    f->payload = payload;
    f->url = xstrdup(url);
    f->track = track;
    pthread_mutex_init(&f->mu, NULL);
    queue_init(&f->fetched);
    queue_init(&f->prepared);
    if (pthread_create(&f->prepare_thread, NULL, prepare_run, f) == 0)
        f->threads = 1;
    if (f->threads == 1 &&
        pthread_create(&f->fetch_thread, NULL, fetch_run, f) == 0)
        f->threads = 2;
    if (f->threads == 2) {
        *out = f;
        return 0;
    }
    sync__fetcher_stop(f);
    err_set(ERR_CLASS_OS, "cannot start the page pipeline's threads");
    return ERR_FAIL;
}

int sync__fetch_take(struct sync__page *out, struct dv_error *dv_err,
                     struct sync__fetcher *f)
{
    struct item it;

    pthread_mutex_lock(&f->mu);
    /* Only this thread stops the read, so the pop cannot fail. */
    queue_pop(f, &f->prepared, &it);
    pthread_mutex_unlock(&f->mu);
    *out = it.page;
    if (dv_err)
        *dv_err = it.dv_err;
    if (it.rc)
        err_set(it.err_class, "%s", it.err_msg);
    return it.rc;
}

void sync__page_dispose(struct sync__page *p)
{
    dv_page_dispose(&p->page);
    free(p->rows);
    free(p->strings);
    p->rows = NULL;
    p->strings = NULL;
    p->n_rows = 0;
}

void sync__fetcher_stop(struct sync__fetcher *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->quit = 1;
    pthread_cond_broadcast(&f->fetched.not_empty);
    pthread_cond_broadcast(&f->fetched.not_full);
    pthread_cond_broadcast(&f->prepared.not_empty);
    pthread_cond_broadcast(&f->prepared.not_full);
    pthread_mutex_unlock(&f->mu);
    /* A request in flight finishes first (libcurl's own timeouts). */
    if (f->threads == 2)
        pthread_join(f->fetch_thread, NULL);
    if (f->threads >= 1)
        pthread_join(f->prepare_thread, NULL);
    queue_dispose(&f->fetched);
    queue_dispose(&f->prepared);
    free(f->url);
    pthread_mutex_destroy(&f->mu);
    free(f);
}
