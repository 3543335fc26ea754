/*
 * sync_fetch — the page prefetcher (sync.h note 6).  The main thread asks
 * for a URL and goes on storing the current page; this thread GETs the
 * next one meanwhile, on its own connection.  Errors cross the thread
 * boundary as values (message, class, Dataverse error), since err_set()
 * is per thread.
 */
#include "sync_p.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "xalloc.h"

struct sync__fetcher {
    dataverse *dv;            /* borrowed: this thread's client */
    sync__prepare_fn prepare; /* may be NULL */
    void *payload;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *url; /* owned: the request; NULL when none */
    int track;
    int busy;  /* a request is in flight or its answer waits */
    int ready; /* the answer below is there */
    int quit;
    int rc;
    struct sync__page page;
    struct dv_error dv_err;
    char err_msg[1024];
    enum err_class err_class;
};

static void *run(void *arg)
{
    struct sync__fetcher *f = arg;
    struct sync__page page;
    char *url;
    int rc, track;

    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (!f->quit && !f->url)
            pthread_cond_wait(&f->cv, &f->mu);
        if (f->quit)
            break;
        url = f->url;
        track = f->track;
        f->url = NULL;
        pthread_mutex_unlock(&f->mu);

        memset(&page, 0, sizeof(page));
        rc = dataverse_get_page(&page.page, f->dv, url, track);
        free(url);
        if (rc == 0 && f->prepare)
            f->prepare(&page, f->payload);

        pthread_mutex_lock(&f->mu);
        f->rc = rc;
        f->page = page;
        f->dv_err = *dataverse_last_error(f->dv);
        snprintf(f->err_msg, sizeof(f->err_msg), "%s", err_message());
        f->err_class = err_class_last();
        f->ready = 1;
        pthread_cond_broadcast(&f->cv);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

int sync__fetcher_start(struct sync__fetcher **out, dataverse *dv,
                        sync__prepare_fn prepare, void *payload)
{
    struct sync__fetcher *f = xcalloc(1, sizeof(*f));

    f->dv = dv;
    f->prepare = prepare;
    f->payload = payload;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    if (pthread_create(&f->thread, NULL, run, f) != 0) {
        pthread_mutex_destroy(&f->mu);
        pthread_cond_destroy(&f->cv);
        free(f);
        err_set(ERR_CLASS_OS, "cannot start the page prefetch thread");
        return ERR_FAIL;
    }
    *out = f;
    return 0;
}

void sync__fetch_ask(struct sync__fetcher *f, const char *url, int track)
{
    pthread_mutex_lock(&f->mu);
    f->url = xstrdup(url);
    f->track = track;
    f->busy = 1;
    f->ready = 0;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

int sync__fetch_take(struct sync__page *out, struct dv_error *dv_err,
                     struct sync__fetcher *f)
{
    int rc;

    pthread_mutex_lock(&f->mu);
    while (!f->ready)
        pthread_cond_wait(&f->cv, &f->mu);
    rc = f->rc;
    *out = f->page;
    memset(&f->page, 0, sizeof(f->page));
    if (dv_err)
        *dv_err = f->dv_err;
    if (rc)
        err_set(f->err_class, "%s", f->err_msg);
    f->ready = 0;
    f->busy = 0;
    pthread_mutex_unlock(&f->mu);
    return rc;
}

void sync__page_dispose(struct sync__page *p)
{
    dv_page_dispose(&p->page);
    free(p->rows);
    p->rows = NULL;
    p->n_rows = 0;
}

void sync__fetcher_stop(struct sync__fetcher *f)
{
    struct sync__page page;
    int busy;

    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    busy = f->busy;
    pthread_mutex_unlock(&f->mu);
    if (busy) { /* drain the answer nobody will use */
        if (sync__fetch_take(&page, NULL, f) == 0)
            sync__page_dispose(&page);
    }
    pthread_mutex_lock(&f->mu);
    f->quit = 1;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL);
    free(f->url);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
}
