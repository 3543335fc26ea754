/*
 * outbox — the kind-independent queue: the lock, recovery after a crash,
 * claims, backoff, dead letters and the worker loop.  See outbox.h for
 * the design notes this file keeps; the Dataverse sender is
 * outbox_dataverse.c.
 */
#include "outbox_p.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"
#include "log.h"
#include "xalloc.h"

/* Every kind this build sends, in the order a drain visits them: the
 * consent messages first, as a STOP's confirmation should not wait for
 * a Dataverse round trip (the gate already denies from the cache). */
static const struct outbox__kind *const kinds[] = {
    &outbox__whatsapp,
    &outbox__dataverse,
};

void outbox_options_from_config(struct outbox_options *out,
                                const struct optsync_config *cfg)
{
    const struct outbox_options dflt = OUTBOX_OPTIONS_INIT;

    *out = dflt;
    out->batch_size = cfg->outbox.batch_size;
    out->max_attempts = cfg->outbox.max_attempts;
    out->max_backoff_ms = cfg->outbox.max_backoff * 1000;
    if (out->base_backoff_ms > out->max_backoff_ms)
        out->base_backoff_ms = out->max_backoff_ms;
}

int outbox_new(outbox **out, const struct optsync_config *cfg,
               const struct mapping *m, cache *c, auth *a,
               struct http_throttle *throttle,
               const struct outbox_options *opts)
{
    struct http_options ho = HTTP_OPTIONS_INIT;
    outbox *ob = xcalloc(1, sizeof(*ob));

    ob->cfg = cfg;
    ob->m = m;
    ob->c = c;
    ob->o = *opts;
    if (ob->o.batch_size < 1)
        ob->o.batch_size = 1;
    ob->lock_fd = -1;
    consent_options_init(&ob->consent, cfg, m);
    pthread_mutex_init(&ob->mu, NULL);
    pthread_cond_init(&ob->cv, NULL);
    /* One attempt per request: the outbox keeps its own, persistent
     * backoff (note 6); a 429 still pauses the whole identity. */
    ho.connect_timeout_ms = cfg->dataverse.connect_timeout * 1000;
    ho.timeout_ms = cfg->dataverse.timeout * 1000;
    ho.ca_file = cfg->dataverse.ca_file;
    ho.max_attempts = 1;
    ho.throttle = throttle;
    ho.stop = &ob->stopping;
    if (http_new(&ob->http, &ho) != 0) {
        outbox_free(ob);
        return ERR_FAIL;
    }
    dataverse_new(&ob->dv, cfg, m, ob->http, a);
    ob->wa = outbox__wa_new(cfg);
    *out = ob;
    return 0;
}

static void lock_release(outbox *ob)
{
    if (ob->lock_fd >= 0)
        close(ob->lock_fd); /* closing drops the flock */
    ob->lock_fd = -1;
}

void outbox_free(outbox *ob)
{
    if (!ob)
        return;
    lock_release(ob);
    outbox__wa_free(ob->wa);
    dataverse_free(ob->dv);
    http_free(ob->http);
    pthread_cond_destroy(&ob->cv);
    pthread_mutex_destroy(&ob->mu);
    free(ob);
}

/* ---- counters, steps, wake-ups ------------------------------------------ */

void outbox__count(outbox *ob, const struct outbox_stats *add)
{
    pthread_mutex_lock(&ob->mu);
    ob->stats.written += add->written;
    ob->stats.retried += add->retried;
    ob->stats.conflicts += add->conflicts;
    ob->stats.dead += add->dead;
    ob->stats.superseded += add->superseded;
    ob->stats.requests += add->requests;
    pthread_mutex_unlock(&ob->mu);
}

void outbox_stats_get(struct outbox_stats *out, outbox *ob)
{
    pthread_mutex_lock(&ob->mu);
    *out = ob->stats;
    pthread_mutex_unlock(&ob->mu);
}

void outbox__step(outbox *ob)
{
    if (ob->o.test_stop_after && ++ob->steps >= ob->o.test_stop_after) {
        log_notice("outbox_test_stop step=%ld", ob->steps);
        _exit(99); /* a crash at this step, for the crash sweep */
    }
}

void outbox_wake(outbox *ob)
{
    pthread_mutex_lock(&ob->mu);
    ob->woken = 1;
    pthread_cond_signal(&ob->cv);
    pthread_mutex_unlock(&ob->mu);
}

void outbox_stop(outbox *ob)
{
    pthread_mutex_lock(&ob->mu);
    ob->stopping = 1;
    pthread_cond_signal(&ob->cv);
    pthread_mutex_unlock(&ob->mu);
}

/* ---- the lock (note 2) ------------------------------------------------- */

static int lock_take(outbox *ob)
{
    char *path;
    int fd;

    if (ob->lock_fd >= 0)
        return 0;
    path = xasprintf("%s.outbox.lock", cache_path(ob->c));
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        err_set(ERR_CLASS_OS, "cannot open %s: %s", path, strerror(errno));
        free(path);
        return ERR_FAIL;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        err_set(ERR_CLASS_OS,
                "another optsync is writing back from this cache (lock %s "
                "is held)",
                path);
        close(fd);
        free(path);
        return ERR_CONFLICT;
    }
    free(path);
    ob->lock_fd = fd;
    return 0;
}

/* ---- state changes of one row ---------------------------------------------
 */

/*
 * Row `id` goes back to pending, or, when its number already has a newer
 * pending row (note 1), merges into that one: the newer row keeps the
 * larger attempt count and backoff and learns our unconfirmed sends.
 */
static int requeue(cache *c, int64_t id, int64_t attempts, int64_t next_at,
                   const char *error)
{
    int64_t now = clock_now_ms();
    sqlite3_stmt *st = cache_stmt(
        c, "UPDATE outbox SET attempts = max(attempts, ?2), "
           "next_attempt_at = max(next_attempt_at, ?3), "
           "sent_mask = sent_mask | (SELECT sent_mask FROM outbox WHERE id "
           "= ?1), last_error = coalesce(?4, last_error), updated_at = ?5 "
           "WHERE state = 'pending' AND (number_local_id, kind) = (SELECT "
           "number_local_id, kind FROM outbox WHERE id = ?1)");

    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, id);
    cache_bind_int(st, 2, attempts);
    cache_bind_int(st, 3, next_at);
    cache_bind_text(st, 4, error);
    cache_bind_int(st, 5, now);
    if (cache_step(st) != SQLITE_DONE)
        return ERR_FAIL;
    st = cache_changes(c)
             ? cache_stmt(c, "UPDATE outbox SET state = 'superseded', "
                             "updated_at = ?5 WHERE id = ?1")
             : cache_stmt(c, "UPDATE outbox SET state = 'pending', "
                             "attempts = ?2, next_attempt_at = ?3, "
                             "last_error = ?4, updated_at = ?5 WHERE id = ?1");
    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, id);
    cache_bind_int(st, 2, attempts);
    cache_bind_int(st, 3, next_at);
    cache_bind_text(st, 4, error);
    cache_bind_int(st, 5, now);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

static int set_state(cache *c, int64_t id, const char *state, int64_t attempts,
                     const char *error, const char *dv_id)
{
    sqlite3_stmt *st = cache_stmt(
        c, "UPDATE outbox SET state = ?2, attempts = ?3, last_error = ?4, "
           "dv_id = coalesce(?5, dv_id), updated_at = ?6 WHERE id = ?1");

    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, id);
    cache_bind_text(st, 2, state);
    cache_bind_int(st, 3, attempts);
    cache_bind_text(st, 4, error);
    cache_bind_text(st, 5, dv_id);
    cache_bind_int(st, 6, clock_now_ms());
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

/* ---- recovery (note 2) --------------------------------------------------- */

static int recover_locked(int *n, cache *c)
{
    sqlite3_stmt *st =
        cache_stmt(c, "SELECT id, attempts, next_attempt_at FROM outbox "
                      "WHERE state = 'inflight' ORDER BY id");
    int64_t(*rows)[3] = NULL;
    size_t count = 0, i;
    int rc;

    *n = 0;
    while (st && (rc = cache_step(st)) == SQLITE_ROW) {
        rows = xrealloc(rows, (count + 1) * sizeof(*rows));
        rows[count][0] = sqlite3_column_int64(st, 0);
        rows[count][1] = sqlite3_column_int64(st, 1);
        rows[count][2] = sqlite3_column_int64(st, 2);
        count++;
    }
    rc = st && rc == SQLITE_DONE ? 0 : ERR_FAIL;
    for (i = 0; rc == 0 && i < count; i++)
        rc = requeue(c, rows[i][0], rows[i][1], rows[i][2], NULL);
    free(rows);
    *n = (int)count;
    return rc;
}

/* Inflight rows of a dead worker go back to pending (lock held). */
static int outbox_recover(outbox *ob)
{
    int rc = cache_begin(ob->c), n = 0;

    if (rc)
        return rc;
    rc = recover_locked(&n, ob->c);
    if (rc == 0)
        rc = cache_commit(ob->c);
    else
        cache_rollback(ob->c);
    if (rc == 0 && n)
        log_notice("outbox_recovered rows=%d", n);
    return rc;
}

/* ---- claims ---------------------------------------------------------------
 */

static char *dup_col(sqlite3_stmt *st, int i)
{
    const char *s = cache_col_text(st, i);

    return s ? xstrdup(s) : NULL;
}

/* One due row and its number row → *it; 0 when the number row is gone or
 * cannot be written (the row is superseded, *claimable = 0). */
static void item_from_row(struct outbox__item *it, int *claimable,
                          sqlite3_stmt *st)
{
    const char *s;

    memset(it, 0, sizeof(*it));
    it->id = sqlite3_column_int64(st, 0);
    it->number_local_id = sqlite3_column_int64(st, 1);
    it->attempts = sqlite3_column_int64(st, 2);
    *claimable = sqlite3_column_type(st, 3) != SQLITE_NULL &&
                 sqlite3_column_type(st, 5) != SQLITE_NULL &&
                 sqlite3_column_int(st, 12) == 1;
    if (!*claimable)
        return;
    s = cache_col_text(st, 3);
    snprintf(it->dv_id, sizeof(it->dv_id), "%s", s ? s : "");
    s = cache_col_text(st, 4);
    snprintf(it->configuration_id, sizeof(it->configuration_id), "%s", s);
    snprintf(it->e164, sizeof(it->e164), "%s", cache_col_text(st, 5));
    it->status = (enum consent_status)sqlite3_column_int(st, 6);
    it->status_at = sqlite3_column_int64(st, 7);
    it->source = dup_col(st, 8);
    it->topics = dup_col(st, 9);
    it->paused_until = sqlite3_column_int64(st, 10);
    it->version = sqlite3_column_int64(st, 11);
    it->retry_after_ms = -1;
}

static int mark_inflight(cache *c, const struct outbox__item *it, int64_t now)
{
    sqlite3_stmt *st = cache_stmt(
        c, "UPDATE outbox SET state = 'inflight', claimed_at = ?2, "
           "status = ?3, sent_mask = sent_mask | (1 << ?3), updated_at = ?2 "
           "WHERE id = ?1");

    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, it->id);
    cache_bind_int(st, 2, now);
    cache_bind_int(st, 3, it->status);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

/* Reads the due rows of `kind` (caller's transaction). */
static int select_due(struct outbox__item **items, size_t *n, int *skipped,
                      outbox *ob, const struct outbox__kind *k, int64_t now)
{
    sqlite3_stmt *st = cache_stmt(
        ob->c,
        "SELECT o.id, o.number_local_id, o.attempts, n.local_id, "
        "n.configuration_id, n.e164, n.status, n.status_at, n.source, "
        "n.topics, n.paused_until, n.version, n.active, n.dv_id "
        "FROM outbox o LEFT JOIN numbers n ON n.local_id = o.number_local_id "
        "WHERE o.kind = ?1 AND o.state = 'pending' AND "
        "o.next_attempt_at <= ?2 ORDER BY o.next_attempt_at, o.id LIMIT ?3");
    struct outbox__item it;
    int rc, ok;

    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, k->name);
    cache_bind_int(st, 2, now);
    cache_bind_int(st, 3, k->claim_max ? k->claim_max(ob) : ob->o.batch_size);
    while ((rc = cache_step(st)) == SQLITE_ROW) {
        item_from_row(&it, &ok, st);
        if (ok) {
            const char *dv = cache_col_text(st, 13);

            snprintf(it.dv_id, sizeof(it.dv_id), "%s", dv ? dv : "");
        } else {
            it.outcome = OUTBOX__SKIP;
            (*skipped)++;
        }
        *items = xrealloc(*items, (*n + 1) * sizeof(**items));
        (*items)[(*n)++] = it;
    }
    return rc == SQLITE_DONE ? 0 : ERR_FAIL;
}

static void items_free(struct outbox__item *items, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        free(items[i].source);
        free(items[i].topics);
        free(items[i].error);
        free(items[i].wamid);
        cJSON_Delete(items[i].fresh);
    }
    free(items);
}

/*
 * The claim: due rows of `kind` become inflight in one transaction, with
 * the number rows' state as it is now (note 1).  Rows whose number row
 * is gone or inactive are superseded on the way.
 */
static int claim_batch(struct outbox__item **out, size_t *n, outbox *ob,
                       const struct outbox__kind *k)
{
    struct outbox__item *items = NULL;
    int64_t now = clock_now_ms();
    size_t i;
    int rc = cache_begin(ob->c), skipped = 0;

    *n = 0;
    if (rc)
        return rc;
    rc = select_due(&items, n, &skipped, ob, k, now);
    for (i = 0; rc == 0 && i < *n; i++)
        rc = items[i].outcome == OUTBOX__SKIP
                 ? set_state(ob->c, items[i].id, "superseded",
                             items[i].attempts, "the number row is gone", NULL)
                 : mark_inflight(ob->c, &items[i], now);
    if (rc == 0)
        rc = cache_commit(ob->c);
    else
        cache_rollback(ob->c);
    if (rc) {
        items_free(items, *n);
        *n = 0;
        return rc;
    }
    if (skipped)
        outbox__count(ob, &(struct outbox_stats){ .superseded = skipped });
    *out = items;
    return 0;
}

/* ---- answers ---------------------------------------------------------------
 */

/* A random fraction in [0.5, 1] of a wait: drawn once per batch, so the
 * rows of a failed batch retry together (still one batch), while
 * clients that failed together spread out. */
static double jitter_draw(void)
{
    unsigned int r = 0;

    RAND_bytes((unsigned char *)&r, sizeof(r));
    return 0.5 + 0.5 * ((double)r / (double)0xffffffffu);
}

/* The wait before attempt `attempts` + 1 (note 6). */
static int64_t backoff(const outbox *ob, int64_t attempts, int64_t retry_after,
                       double jitter)
{
    int64_t ms = ob->o.base_backoff_ms > 0 ? ob->o.base_backoff_ms : 1;
    int64_t i;

    for (i = 1; i < attempts && ms < ob->o.max_backoff_ms; i++)
        ms *= 2;
    if (ms > ob->o.max_backoff_ms)
        ms = ob->o.max_backoff_ms;
    ms = (int64_t)((double)ms * jitter);
    return retry_after > ms ? retry_after : ms;
}

static int bury(outbox *ob, const struct outbox__item *it, int64_t attempts,
                struct outbox_stats *st)
{
    log_warn("outbox_dead id=%lld phone=%s attempts=%lld error=%s",
             (long long)it->id, log_phone(it->e164), (long long)attempts,
             log_q(it->error));
    st->dead++;
    return set_state(ob->c, it->id, "dead", attempts, it->error, NULL);
}

/* A failed send: back off, or dead when the attempts are used up. */
static int retry_later(outbox *ob, const struct outbox__item *it, double jitter,
                       struct outbox_stats *st)
{
    int throttled = it->outcome == OUTBOX__THROTTLE;
    int64_t attempts = it->attempts + (throttled ? 0 : 1);
    int64_t wait = throttled
                       ? (it->retry_after_ms > 0 ? it->retry_after_ms : 1000)
                       : backoff(ob, attempts, it->retry_after_ms, jitter);

    if (!throttled && attempts >= ob->o.max_attempts)
        return bury(ob, it, attempts, st);
    log_info("outbox_retry id=%lld phone=%s attempts=%lld wait_ms=%lld "
             "error=%s",
             (long long)it->id, log_phone(it->e164), (long long)attempts,
             (long long)wait, log_q(it->error));
    st->retried++;
    return requeue(ob->c, it->id, attempts, clock_now_ms() + wait, it->error);
}

/* 412/404: pending again, then the kind mirrors what it read (note 3). */
static int refresh(outbox *ob, const struct outbox__kind *k,
                   struct outbox__item *it, struct outbox_stats *st)
{
    int64_t attempts = it->attempts + 1;
    int rc;

    if (attempts >= ob->o.max_attempts)
        return bury(ob, it, attempts, st);
    st->conflicts++;
    rc = requeue(ob->c, it->id, attempts, 0, it->error);
    return rc ? rc : k->commit(ob, it);
}

static int commit_one(outbox *ob, const struct outbox__kind *k,
                      struct outbox__item *it, double jitter,
                      struct outbox_stats *st)
{
    int rc;

    switch (it->outcome) {
    case OUTBOX__DONE:
        st->written++;
        rc = set_state(ob->c, it->id, "done", it->attempts + 1, NULL,
                       it->result.id[0] ? it->result.id : NULL);
        return rc ? rc : k->commit(ob, it);
    case OUTBOX__REFRESH: return refresh(ob, k, it, st);
    case OUTBOX__DEAD: return bury(ob, it, it->attempts + 1, st);
    case OUTBOX__SKIP:
        if (!it->error)
            return 0; /* settled when claimed */
        /* The kind found nothing left to send (a consent message whose
         * number moved on). */
        st->superseded++;
        return set_state(ob->c, it->id, "superseded", it->attempts, it->error,
                         NULL);
    default: return retry_later(ob, it, jitter, st);
    }
}

/* The answers of one batch, in one transaction (note 7). */
static int commit_batch(outbox *ob, const struct outbox__kind *k,
                        struct outbox__item *items, size_t n)
{
    struct outbox_stats st;
    double jitter = jitter_draw();
    size_t i;
    int rc = cache_begin(ob->c);

    memset(&st, 0, sizeof(st));
    for (i = 0; rc == 0 && i < n; i++)
        rc = commit_one(ob, k, &items[i], jitter, &st);
    if (rc == 0)
        rc = cache_commit(ob->c);
    else if (rc != ERR_CONFLICT)
        cache_rollback(ob->c);
    if (rc == 0)
        outbox__count(ob, &st);
    return rc;
}

static void report_written(outbox *ob, const struct outbox__item *items,
                           size_t n)
{
    size_t i;

    for (i = 0; ob->o.on_written && i < n; i++)
        if (items[i].outcome == OUTBOX__DONE)
            ob->o.on_written(items[i].configuration_id, items[i].e164,
                             (int)items[i].status, ob->o.payload);
}

/*
 * One batch of `k`: claim, send, commit.  *sent = rows claimed (0: none
 * due).  Returns 0, ERR_AUTH (rows put back, no attempt counted) or a
 * cache error.
 */
static int one_batch(size_t *sent, outbox *ob, const struct outbox__kind *k)
{
    struct outbox__item *items = NULL;
    size_t n = 0, i;
    int rc = claim_batch(&items, &n, ob, k);

    *sent = n;
    if (rc || n == 0)
        return rc;
    outbox__step(ob);
    rc = k->send(ob, items, n);
    outbox__step(ob);
    if (rc == ERR_AUTH)
        for (i = 0; i < n; i++) {
            if (items[i].outcome == OUTBOX__SKIP)
                continue;
            items[i].outcome = OUTBOX__THROTTLE; /* back, no attempt */
            items[i].retry_after_ms = 30000;
        }
    if (commit_batch(ob, k, items, n) != 0)
        rc = ERR_FAIL;
    else
        outbox__step(ob);
    if (rc == 0)
        report_written(ob, items, n);
    items_free(items, n);
    return rc;
}

/* ---- draining -------------------------------------------------------------
 */

/* Rows of known kinds still pending, and when the next one is due. */
static int pending_rows(int64_t *count, int64_t *next_at, cache *c)
{
    sqlite3_stmt *st = cache_stmt(c, "SELECT count(*), min(next_attempt_at) "
                                     "FROM outbox WHERE state = 'pending' "
                                     "AND kind IN ('dataverse', 'whatsapp')");
    int rc;

    *count = *next_at = 0;
    if (!st)
        return ERR_FAIL;
    rc = cache_step(st);
    if (rc == SQLITE_ROW) {
        *count = sqlite3_column_int64(st, 0);
        *next_at = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : ERR_FAIL;
}

/* Everything due now, every kind. */
static int drain_due(outbox *ob)
{
    size_t i, sent;
    int rc = 0, any = 1;

    while (rc == 0 && any && !ob->stopping) {
        any = 0;
        for (i = 0; rc == 0 && i < sizeof(kinds) / sizeof(kinds[0]); i++) {
            rc = one_batch(&sent, ob, kinds[i]);
            any |= sent > 0;
        }
    }
    return rc;
}

/* Sleeps until `deadline_ms` (wall), a wake-up or a stop; 1 if woken. */
static int sleep_until(outbox *ob, int64_t deadline_ms)
{
    struct timespec ts;
    int64_t left = deadline_ms - clock_now_ms();
    int woken;

    clock_gettime(CLOCK_REALTIME, &ts);
    if (left < 0)
        left = 0;
    ts.tv_sec += (time_t)(left / 1000);
    ts.tv_nsec += (long)(left % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&ob->mu);
    while (!ob->woken && !ob->stopping &&
           pthread_cond_timedwait(&ob->cv, &ob->mu, &ts) != ETIMEDOUT)
        ;
    woken = ob->woken;
    ob->woken = 0;
    pthread_mutex_unlock(&ob->mu);
    return woken;
}

int outbox_drain(struct outbox_stats *out, outbox *ob)
{
    struct outbox_stats before, after;
    int64_t count = 0, next_at = 0, until;
    int rc = lock_take(ob);

    outbox_stats_get(&before, ob);
    if (rc == 0)
        rc = outbox_recover(ob);
    until = clock_now_ms() + ob->o.drain_wait_ms;
    while (rc == 0) {
        rc = drain_due(ob);
        if (rc == 0)
            rc = pending_rows(&count, &next_at, ob->c);
        if (rc || count == 0 || next_at > until || ob->stopping)
            break;
        sleep_until(ob, next_at);
    }
    outbox_stats_get(&after, ob);
    memset(out, 0, sizeof(*out));
    out->written = after.written - before.written;
    out->retried = after.retried - before.retried;
    out->conflicts = after.conflicts - before.conflicts;
    out->dead = after.dead - before.dead;
    out->superseded = after.superseded - before.superseded;
    out->requests = after.requests - before.requests;
    out->waiting = count;
    return rc;
}

/* How long the loop may sleep: until the next row is due, at most 1 s
 * (rows queued by another process are noticed at that pace). */
static int64_t next_wake(outbox *ob)
{
    int64_t count = 0, next_at = 0, now = clock_now_ms(), cap = now + 1000;

    if (pending_rows(&count, &next_at, ob->c) != 0 || count == 0)
        return cap;
    return next_at < cap ? next_at : cap;
}

static int due_now(int *due, outbox *ob)
{
    int64_t count = 0, next_at = 0;
    int rc = pending_rows(&count, &next_at, ob->c);

    *due = rc == 0 && count > 0 && next_at <= clock_now_ms();
    return rc;
}

int outbox_run(outbox *ob)
{
    int rc = lock_take(ob), due = 0;

    if (rc == 0)
        rc = outbox_recover(ob);
    if (rc)
        return rc;
    log_info("outbox_started batch_size=%lld", (long long)ob->o.batch_size);
    while (!ob->stopping) {
        rc = due_now(&due, ob);
        if (rc == 0 && due)
            rc = drain_due(ob);
        if (rc == ERR_AUTH) {
            /* The rows wait (note 6); the operator fixes the secret. */
            log_error("outbox_auth_failed msg=%s", log_q(err_message()));
        } else if (rc) {
            /* A cache error (busy past the timeout, disk): fail closed.
             * Send nothing until the state is reloaded from the cache:
             * rows this worker claimed go back to pending (note 2). */
            log_error("outbox_cache_error msg=%s", log_q(err_message()));
            sleep_until(ob, clock_now_ms() + 5000);
            if (!ob->stopping && outbox_recover(ob) != 0)
                continue;
        }
        if (!ob->stopping)
            sleep_until(ob, next_wake(ob));
    }
    log_info("outbox_stopped");
    return 0;
}

/* ---- dead letters ---------------------------------------------------------
 */

static int revive(cache *c, int64_t id)
{
    sqlite3_stmt *st;
    int rc = requeue(c, id, 0, 0, NULL);

    if (rc)
        return rc;
    st = cache_stmt(c, "UPDATE numbers SET pending_writeback = 1 WHERE "
                       "local_id = (SELECT number_local_id FROM outbox WHERE "
                       "id = ?1 AND kind = 'dataverse')");
    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, id);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

static int dead_ids(int64_t **ids, size_t *n, cache *c, int64_t id)
{
    sqlite3_stmt *st = cache_stmt(c, "SELECT id FROM outbox WHERE state = "
                                     "'dead' AND (?1 = 0 OR id = ?1) "
                                     "ORDER BY id");
    int rc;

    *n = 0;
    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, id);
    while ((rc = cache_step(st)) == SQLITE_ROW) {
        *ids = xrealloc(*ids, (*n + 1) * sizeof(**ids));
        (*ids)[(*n)++] = sqlite3_column_int64(st, 0);
    }
    return rc == SQLITE_DONE ? 0 : ERR_FAIL;
}

int outbox_retry_dead(int *count, cache *c, int64_t id)
{
    int64_t *ids = NULL;
    size_t n = 0, i;
    int rc = cache_begin(c);

    *count = 0;
    if (rc)
        return rc;
    rc = dead_ids(&ids, &n, c, id);
    for (i = 0; rc == 0 && i < n; i++)
        rc = revive(c, ids[i]);
    if (rc == 0 && id && n == 0) {
        err_set(ERR_CLASS_INPUT, "outbox row %lld is not a dead letter",
                (long long)id);
        rc = ERR_NOTFOUND;
    }
    if (rc == 0)
        rc = cache_commit(c);
    else
        cache_rollback(c);
    free(ids);
    if (rc == 0) {
        *count = (int)n;
        if (n)
            log_notice("outbox_retry_dead rows=%zu", n);
    }
    return rc;
}
