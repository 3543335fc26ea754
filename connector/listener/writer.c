/*
 * writer — see writer.h for the design notes (numbered invariants).
 */
#include "writer.h"

#include <pthread.h>
#include <stdlib.h>

#include "err.h"
#include "log.h"
#include "metrics.h"
#include "xalloc.h"

struct writer {
    cache *c; /* owned; used by the writer thread only */
    struct writer_options opts;
    pthread_t thread;
    int started;

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cond;
    struct writer_item *head, *tail; /* queued, oldest first */
    int stopping;
    struct writer_stats stats;
};

/* ---- one transaction ---------------------------------------------------- */

static int step_sql(cache *c, const char *sql)
{
    sqlite3_stmt *st = cache_stmt(c, sql);

    return st && cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

/* Runs one item under its savepoint (invariant 2).  Returns 0 while the
 * transaction is still open, ERR_FAIL when SQLite rolled it back. */
static int run_item(cache *c, struct writer_item *it)
{
    if (step_sql(c, "SAVEPOINT writer_item") != 0) {
        it->rc = ERR_FAIL;
        return sqlite3_get_autocommit(cache_db(c)) ? ERR_FAIL : 0;
    }
    it->rc = it->fn(c, it->payload);
    if (sqlite3_get_autocommit(cache_db(c)))
        return ERR_FAIL; /* the whole transaction went: invariant 3 */
    if (it->rc != 0 && step_sql(c, "ROLLBACK TO writer_item") != 0)
        return ERR_FAIL;
    if (step_sql(c, "RELEASE writer_item") != 0)
        return ERR_FAIL;
    return 0;
}

static void finish(writer *w, struct writer_item *from,
                   const struct writer_item *to, int committed)
{
    struct writer_item *it, *next;
    uint64_t n = 0;

    for (it = from; it != to; it = it->next)
        n++;
    /* Counted before anyone hears of it: a caller that saw its
     * completion also sees its transaction in the stats. */
    pthread_mutex_lock(&w->mu);
    w->stats.transactions++;
    w->stats.items += n;
    if (!committed)
        w->stats.failed++;
    if (n > w->stats.largest)
        w->stats.largest = n;
    pthread_mutex_unlock(&w->mu);
    metrics_writer_group(n, committed);
    for (it = from; it != to; it = next) {
        next = it->next; /* complete() may hand the item away */
        it->committed = committed;
        it->complete(it, it->complete_arg);
    }
}

/* Runs items [it, NULL) in transactions; one normally, more when one was
 * lost half-way (invariant 3). */
static void run_group(writer *w, struct writer_item *first)
{
    struct writer_item *it = first, *start;
    int rc;

    while (it) {
        start = it;
        rc = cache_begin(w->c);
        while (rc == 0 && it) {
            rc = run_item(w->c, it);
            it = it->next;
        }
        if (rc == 0)
            rc = cache_commit(w->c);
        else
            cache_rollback(w->c);
        if (rc)
            log_error("writer_commit_failed error=%s", log_q(err_message()));
        if (rc && start == it)
            it = NULL; /* BEGIN failed: the whole group fails */
        if (rc == 0 && w->opts.on_commit)
            w->opts.on_commit(w->opts.on_commit_payload);
        finish(w, start, it, rc == 0);
    }
}

/* ---- the thread --------------------------------------------------------- */

/* Takes up to max_group queued items (invariant 4); NULL when stopping
 * with an empty queue. */
static struct writer_item *take(writer *w)
{
    struct writer_item *first, *last;
    size_t n = 1;

    pthread_mutex_lock(&w->mu);
    while (!w->head && !w->stopping)
        pthread_cond_wait(&w->cond, &w->mu);
    first = w->head;
    if (first) {
        for (last = first; last->next && n < w->opts.max_group; n++)
            last = last->next;
        w->head = last->next;
        if (!w->head)
            w->tail = NULL;
        last->next = NULL;
    }
    pthread_mutex_unlock(&w->mu);
    return first;
}

static void *writer_main(void *arg)
{
    writer *w = arg;
    struct writer_item *group;

    while ((group = take(w)) != NULL)
        run_group(w, group);
    return NULL;
}

/* ---- API ---------------------------------------------------------------- */

int writer_new(writer **out, const char *path,
               const struct writer_options *opts)
{
    writer *w = xcalloc(1, sizeof(*w));

    w->opts = *opts;
    if (w->opts.max_group == 0)
        w->opts.max_group = 1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
    /* Every item runs in a SAVEPOINT, and SQLite keeps what a savepoint
     * may have to restore in a statement journal: a temp file once it
     * outgrows 64 KiB, i.e. one pwrite() per page per item (measured: 5
     * of the 6 page writes of a WhatsApp reply, a quarter of the
     * writer's throughput).  In memory it holds at most the pages one
     * group touched. */
    if (cache_open(&w->c, path, 0) != 0 || cache_durability(w->c, 1) != 0 ||
        cache_exec(w->c, "PRAGMA temp_store = MEMORY") != 0)
        goto fail;
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        err_set(ERR_CLASS_OS, "cannot start the writer thread");
        goto fail;
    }
    w->started = 1;
    *out = w;
    return 0;
fail:
    writer_free(w);
    return ERR_FAIL;
}

int writer_submit(writer *w, struct writer_item *item)
{
    pthread_mutex_lock(&w->mu);
    if (w->stopping) {
        pthread_mutex_unlock(&w->mu);
        err_set(ERR_CLASS_OS, "the writer is stopping");
        return ERR_FAIL;
    }
    item->next = NULL;
    item->rc = 0;
    item->committed = 0;
    if (w->tail)
        w->tail->next = item;
    else
        w->head = item;
    w->tail = item;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

void writer_stop(writer *w)
{
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
    if (w->started) {
        pthread_join(w->thread, NULL);
        w->started = 0;
    }
}

void writer_free(writer *w)
{
    if (!w)
        return;
    writer_stop(w);
    cache_close(w->c);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

void writer_stats(struct writer_stats *out, writer *w)
{
    pthread_mutex_lock(&w->mu);
    *out = w->stats;
    pthread_mutex_unlock(&w->mu);
}
