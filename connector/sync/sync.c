/*
 * sync — the poller's engine.  See sync.h for the design notes; this file
 * keeps them.  The page pipeline's threads are in sync_fetch.c.
 */
#include "sync_p.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "clock.h"
#include "configurations.h"
#include "err.h"
#include "jsonutil.h"
#include "log.h"
#include "xalloc.h"

struct region_entry {
    char id[MAPPING_GUID_LEN + 1];
    char *region; /* owned; NULL: use the global default */
};

struct syncer {
    const struct optsync_config *cfg; /* borrowed */
    const struct mapping *m;          /* borrowed */
    cache *cache;                     /* borrowed */
    http *http_main, *http_fetch;     /* owned */
    dataverse *dv_main, *dv_fetch;    /* owned */
    struct consent_options consent;
    struct region_entry *regions;  /* owned: configurations' regions */
    pthread_rwlock_t regions_lock; /* the prepare thread reads regions */
    size_t n_regions;
    int lock_fd;
    const struct sync_options *opts; /* of the running sync */
    struct sync_result *result;      /* of the running sync */
    long pages_committed;
    int fallback_logged; /* the delta-refused line was written */
};

/* Where sync_state keeps an entity. */
static const char *const entity_names[] = { "configuration", "number" };
static const char *const entity_labels[] = { "configurations", "numbers" };

/* ---- set-up -----------------------------------------------------------------
 */

static int make_http(http **out, const struct optsync_config *cfg,
                     struct http_throttle *throttle)
{
    struct http_options o = HTTP_OPTIONS_INIT;

    o.connect_timeout_ms = cfg->dataverse.connect_timeout * 1000;
    o.timeout_ms = cfg->dataverse.timeout * 1000;
    o.ca_file = cfg->dataverse.ca_file;
    o.throttle = throttle;
    return http_new(out, &o);
}

int syncer_new(syncer **out, const struct optsync_config *cfg,
               const struct mapping *m, cache *c, auth *a,
               struct http_throttle *throttle)
{
    syncer *s = xcalloc(1, sizeof(*s));
    int rc;

    pthread_rwlock_init(&s->regions_lock, NULL);
    s->cfg = cfg;
    s->m = m;
    s->cache = c;
    s->lock_fd = -1;
    consent_options_init(&s->consent, cfg, m);
    rc = make_http(&s->http_main, cfg, throttle);
    if (rc == 0)
        rc = make_http(&s->http_fetch, cfg, throttle);
    if (rc) {
        syncer_free(s);
        return rc;
    }
    dataverse_new(&s->dv_main, cfg, m, s->http_main, a);
    dataverse_new(&s->dv_fetch, cfg, m, s->http_fetch, a);
    *out = s;
    return 0;
}

void syncer_set_stop(syncer *s, const volatile int *stop)
{
    http_set_stop(s->http_main, stop);
    http_set_stop(s->http_fetch, stop);
}

static void regions_clear(syncer *s)
{
    size_t i;

    for (i = 0; i < s->n_regions; i++)
        free(s->regions[i].region);
    free(s->regions);
    s->regions = NULL;
    s->n_regions = 0;
}

void syncer_free(syncer *s)
{
    if (!s)
        return;
    dataverse_free(s->dv_main);
    dataverse_free(s->dv_fetch);
    http_free(s->http_main);
    http_free(s->http_fetch);
    regions_clear(s);
    pthread_rwlock_destroy(&s->regions_lock);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s);
}

/* ---- the lock (note 5)
 * -------------------------------------------------------- */

static int lock_take(syncer *s)
{
    char *path = xasprintf("%s.sync.lock", cache_path(s->cache));
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

    if (fd < 0) {
        err_set(ERR_CLASS_OS, "cannot open %s: %s", path, strerror(errno));
        free(path);
        return ERR_FAIL;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        err_set(ERR_CLASS_OS,
                "another optsync is syncing this cache (lock "
                "%s is held)",
                path);
        close(fd);
        free(path);
        return ERR_CONFLICT;
    }
    free(path);
    s->lock_fd = fd;
    return 0;
}

static void lock_release(syncer *s)
{
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* closing drops the flock */
    s->lock_fd = -1;
}

/* ---- sync_state
 * ------------------------------------------------------------------ */

struct entity_state {
    char *delta_link;  /* owned */
    char *resume_link; /* owned */
    int64_t sweep_mark;
    int baseline; /* the interrupted full read is a first load */
};

static void entity_state_dispose(struct entity_state *st)
{
    free(st->delta_link);
    free(st->resume_link);
    memset(st, 0, sizeof(*st));
}

static int state_load(struct entity_state *out, cache *c, enum dv_entity e)
{
    sqlite3_stmt *st = cache_stmt(c, "SELECT delta_link, resume_link, "
                                     "sweep_mark, baseline FROM sync_state "
                                     "WHERE entity = ?1");
    const char *s;

    memset(out, 0, sizeof(*out));
    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, entity_names[e]);
    if (cache_step(st) != SQLITE_ROW)
        return ERR_FAIL;
    s = cache_col_text(st, 0);
    out->delta_link = s ? xstrdup(s) : NULL;
    s = cache_col_text(st, 1);
    out->resume_link = s ? xstrdup(s) : NULL;
    out->sweep_mark = sqlite3_column_int64(st, 2);
    out->baseline = sqlite3_column_int(st, 3);
    sqlite3_reset(st);
    return 0;
}

/* Stores where a read stands (caller's transaction). */
static int state_save(cache *c, enum dv_entity e, const char *delta_link,
                      const char *resume_link, int64_t sweep_mark, int64_t rows,
                      int baseline)
{
    sqlite3_stmt *st = cache_stmt(
        c, "UPDATE sync_state SET delta_link = ?2, resume_link = ?3, "
           "sweep_mark = ?4, pages = pages + 1, rows = rows + ?5, "
           "updated_at = ?6, baseline = ?7 WHERE entity = ?1");

    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, entity_names[e]);
    cache_bind_text(st, 2, delta_link);
    cache_bind_text(st, 3, resume_link);
    cache_bind_int(st, 4, sweep_mark);
    cache_bind_int(st, 5, rows);
    cache_bind_int(st, 6, clock_now_ms());
    cache_bind_int(st, 7, baseline);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

/* ---- regions of configurations (for national phone numbers) ----------- */

static int regions_load(syncer *s)
{
    sqlite3_stmt *st = cache_stmt(s->cache, "SELECT id, default_region "
                                            "FROM configurations");
    const char *r;
    int rc;

    if (!st)
        return ERR_FAIL;
    /* Only this thread writes the list; the prepare thread reads it. */
    pthread_rwlock_wrlock(&s->regions_lock);
    regions_clear(s);
    while ((rc = cache_step(st)) == SQLITE_ROW) {
        s->regions =
            xrealloc(s->regions, (s->n_regions + 1) * sizeof(*s->regions));
        snprintf(s->regions[s->n_regions].id, MAPPING_GUID_LEN + 1, "%s",
                 cache_col_text(st, 0));
        r = cache_col_text(st, 1);
        s->regions[s->n_regions++].region = r && *r ? xstrdup(r) : NULL;
    }
    pthread_rwlock_unlock(&s->regions_lock);
    return rc == SQLITE_DONE ? 0 : ERR_FAIL;
}

static const struct region_entry *region_entry(const syncer *s, const char *id)
{
    size_t i;

    for (i = 0; i < s->n_regions; i++)
        if (strcmp(s->regions[i].id, id) == 0)
            return &s->regions[i];
    return NULL;
}

static const char *region_for(const syncer *s, const char *id)
{
    const struct region_entry *e = region_entry(s, id);

    return e && e->region ? e->region : s->cfg->consent.default_region;
}

/*
 * The prepare thread's copy of a configuration's region: 0 and out filled
 * (possibly "": none), or -1 when the configuration is not known yet (the
 * storing thread will fetch it and parse the phone itself).
 */
static int region_copy(syncer *s, const char *id, char *out, size_t n)
{
    const struct region_entry *e;
    const char *r;
    int rc = -1;

    pthread_rwlock_rdlock(&s->regions_lock);
    e = region_entry(s, id);
    if (e) {
        r = e->region ? e->region : s->cfg->consent.default_region;
        snprintf(out, n, "%s", r ? r : "");
        rc = 0;
    }
    pthread_rwlock_unlock(&s->regions_lock);
    return rc;
}

/* ---- preparing number pages on the prepare thread (note 6) ------------- */

static void prepare_row(syncer *s, struct sync__row *r, const cJSON *row,
                        int parse_phone)
{
    char region[16];
    const char *why = NULL;

    if (dataverse_row_deleted(r->deleted_id, row)) {
        r->deleted = 1;
        return;
    }
    if (mapping_number_from_row(&r->rec, s->m, row, &r->why) != 0)
        return;
    r->mapped = 1;
    if (!parse_phone || !r->rec.raw_phone ||
        region_copy(s, r->rec.configuration_id, region, sizeof(region)) != 0)
        return;
    r->parsed = 1;
    if (phone_parse(r->e164, r->rec.raw_phone, region[0] ? region : NULL,
                    &why) != 0) {
        r->e164[0] = '\0';
        r->phone_error = why ? why : "cannot be parsed";
    }
}

/* Copies a borrowed string into the page's pool; NULL stays NULL. */
static const char *pooled(char **at, const char *s)
{
    size_t n;
    char *copy;

    if (!s)
        return NULL;
    n = strlen(s) + 1;
    copy = memcpy(*at, s, n);
    *at += n;
    return copy;
}

/*
 * The rows' strings move from the JSON tree into one buffer, and the tree
 * goes: a page waiting to be stored keeps a few hundred bytes a row, not
 * its whole JSON.
 */
static void page_compact(struct sync__page *p)
{
    struct number_record *rec;
    size_t i, bytes = 1;
    char *at;

    for (i = 0; i < p->n_rows; i++) {
        rec = &p->rows[i].rec;
        bytes += (rec->raw_phone ? strlen(rec->raw_phone) + 1 : 0) +
                 (rec->source ? strlen(rec->source) + 1 : 0) +
                 (rec->topics ? strlen(rec->topics) + 1 : 0);
    }
    at = p->strings = xmalloc(bytes);
    for (i = 0; i < p->n_rows; i++) {
        rec = &p->rows[i].rec;
        rec->raw_phone = pooled(&at, rec->raw_phone);
        rec->source = pooled(&at, rec->source);
        rec->topics = pooled(&at, rec->topics);
    }
    jsonutil_arena_free(p->page.arena);
    p->page.arena = NULL;
    p->page.root = p->page.rows = NULL;
}

static void prepare_numbers(struct sync__page *p, void *payload)
{
    const cJSON *row;
    size_t i = 0;

    p->n_rows = (size_t)cJSON_GetArraySize(p->page.rows);
    p->rows = xcalloc(p->n_rows ? p->n_rows : 1, sizeof(*p->rows));
    cJSON_ArrayForEach(row, p->page.rows)
    {
        prepare_row(payload, &p->rows[i++], row, 1);
    }
    page_compact(p);
}

/* Rows in a page, prepared or not. */
static int page_rows(const struct sync__page *p)
{
    return p->rows ? (int)p->n_rows : cJSON_GetArraySize(p->page.rows);
}

static void consent_row_of(struct consent_row *out, const syncer *s,
                           const struct sync__row *r, int64_t sweep_mark)
{
    memset(out, 0, sizeof(*out));
    out->rec = &r->rec;
    out->region = region_for(s, r->rec.configuration_id);
    out->sweep_mark = sweep_mark;
    out->parsed = r->parsed;
    out->parsed_e164 = r->e164;
    out->parsed_error = r->phone_error;
}

/* ---- applying rows ----------------------------------------------------------
 */

static int apply_configuration(syncer *s, const cJSON *row, int64_t sweep_mark)
{
    struct configuration_record rec;
    const char *why = NULL;

    if (mapping_configuration_from_row(&rec, s->m, row, &why) != 0) {
        log_warn("sync_row_skipped entity=configuration reason=%s", log_q(why));
        return 0;
    }
    return configurations_put(s->cache, &rec, sweep_mark);
}

static int apply_number(syncer *s, const struct sync__row *r,
                        int64_t sweep_mark)
{
    struct consent_row crow;
    struct consent_event ev;
    struct consent_result res;
    int rc;

    if (!r->mapped) {
        log_warn("sync_row_skipped entity=number reason=%s", log_q(r->why));
        return 0;
    }
    consent_row_of(&crow, s, r, sweep_mark);
    memset(&ev, 0, sizeof(ev));
    ev.action = CONSENT_ACT_MIRROR;
    ev.source = CONSENT_SOURCE_DATAVERSE;
    ev.row = &crow;
    rc = consent_apply_locked(&res, s->cache, &s->consent, &ev);
    if (rc == ERR_BADINPUT) {
        log_warn("sync_row_skipped entity=number dv_id=%s reason=%s", r->rec.id,
                 log_q(err_message()));
        return 0;
    }
    return rc;
}

static int apply_deleted(syncer *s, enum dv_entity e, const char *id)
{
    s->result->deleted++;
    if (e == DV_CONFIGURATION)
        return configurations_delete(s->cache, id);
    return consent_row_deleted(s->cache, id, clock_now_ms(),
                               CONSENT_SOURCE_DATAVERSE);
}

/* A first load's page (consent.h note 7). */
static int apply_baseline(syncer *s, const struct sync__page *p,
                          int64_t sweep_mark)
{
    struct consent_baseline b;
    struct consent_row crow;
    size_t i;
    int rc = 0;

    consent_baseline_begin(&b);
    for (i = 0; rc == 0 && i < p->n_rows; i++) {
        if (!p->rows[i].mapped) {
            log_warn("sync_row_skipped entity=number reason=%s",
                     log_q(p->rows[i].why));
            continue;
        }
        consent_row_of(&crow, s, &p->rows[i], sweep_mark);
        rc = consent_baseline_row(s->cache, &b, &crow);
    }
    if (rc) {
        consent_baseline_dispose(&b);
        return rc;
    }
    return consent_baseline_end(s->cache, &b, "number", clock_now_ms());
}

static int apply_rows(syncer *s, enum dv_entity e, const struct sync__page *p,
                      int64_t sweep_mark)
{
    char id[MAPPING_GUID_LEN + 1];
    const cJSON *row;
    size_t i;
    int rc = 0;

    if (e == DV_NUMBER) {
        for (i = 0; rc == 0 && i < p->n_rows; i++)
            rc = p->rows[i].deleted ? apply_deleted(s, e, p->rows[i].deleted_id)
                                    : apply_number(s, &p->rows[i], sweep_mark);
        return rc;
    }
    cJSON_ArrayForEach(row, p->page.rows)
    {
        if (dataverse_row_deleted(id, row))
            rc = apply_deleted(s, e, id);
        else
            rc = apply_configuration(s, row, sweep_mark);
        if (rc)
            return rc;
    }
    return 0;
}

/*
 * A number whose Configuration is not cached yet: fetch that one row by
 * id before the page's transaction (never a failed page).
 */
static int fetch_missing_configurations(syncer *s, const struct sync__page *p)
{
    const char *id;
    cJSON *got;
    size_t i;
    int rc;

    for (i = 0; i < p->n_rows; i++) {
        id = p->rows[i].rec.configuration_id;
        if (!p->rows[i].mapped || !id[0] || region_entry(s, id))
            continue;
        rc = dataverse_get_row(&got, s->dv_main, DV_CONFIGURATION, id);
        if (rc == ERR_NOTFOUND) {
            /* Remember it as known, so later pages do not ask again. */
            log_warn("sync_configuration_missing id=%s", id);
            pthread_rwlock_wrlock(&s->regions_lock);
            s->regions =
                xrealloc(s->regions, (s->n_regions + 1) * sizeof(*s->regions));
            snprintf(s->regions[s->n_regions].id, MAPPING_GUID_LEN + 1, "%s",
                     id);
            s->regions[s->n_regions++].region = NULL;
            pthread_rwlock_unlock(&s->regions_lock);
            continue;
        }
        if (rc)
            return rc;
        rc = cache_begin(s->cache);
        if (rc == 0)
            rc = apply_configuration(s, got, 0);
        rc = rc ? rc : cache_commit(s->cache);
        if (rc)
            cache_rollback(s->cache);
        cJSON_Delete(got);
        if (rc == 0)
            rc = regions_load(s);
        if (rc)
            return rc;
        log_info("sync_configuration_fetched id=%s", id);
    }
    return 0;
}

/* ---- sweeping (note 2) ------------------------------------------------------
 */

/* Dataverse ids of number rows the full read did not see (malloc'd). */
static int unseen_numbers(char (**out)[MAPPING_GUID_LEN + 1], size_t *n,
                          syncer *s, int64_t mark)
{
    sqlite3_stmt *st = cache_stmt(s->cache, "SELECT dv_id FROM numbers "
                                            "WHERE dv_id IS NOT NULL AND "
                                            "sweep_mark < ?1");
    char(*ids)[MAPPING_GUID_LEN + 1] = NULL;
    int rc;

    *n = 0;
    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, mark);
    while ((rc = cache_step(st)) == SQLITE_ROW) {
        ids = xrealloc(ids, (*n + 1) * sizeof(*ids));
        snprintf(ids[(*n)++], MAPPING_GUID_LEN + 1, "%s",
                 cache_col_text(st, 0));
    }
    *out = ids;
    return rc == SQLITE_DONE ? 0 : ERR_FAIL;
}

static int sweep(syncer *s, enum dv_entity e, int64_t mark)
{
    char(*ids)[MAPPING_GUID_LEN + 1] = NULL;
    sqlite3_stmt *st;
    size_t n = 0, i;
    int rc;

    if (e == DV_CONFIGURATION) {
        st = cache_stmt(s->cache, "DELETE FROM configurations "
                                  "WHERE sweep_mark < ?1");
        if (!st)
            return ERR_FAIL;
        cache_bind_int(st, 1, mark);
        if (cache_step(st) != SQLITE_DONE)
            return ERR_FAIL;
        s->result->deleted += cache_changes(s->cache);
        return 0;
    }
    /* Collected first (one scan), then one at a time: each deletion may
     * write a ledger entry. */
    rc = unseen_numbers(&ids, &n, s, mark);
    for (i = 0; rc == 0 && i < n; i++)
        rc = apply_deleted(s, e, ids[i]);
    free(ids);
    return rc;
}

/* ---- reading an entity ------------------------------------------------------
 */

struct read {
    enum dv_entity e;
    int full;
    int64_t sweep_mark;
    int64_t pages, rows;
    int64_t started_mono;
    int baseline; /* a first load: consent_baseline_row() per row */
};

static void report_progress(syncer *s, const struct read *r)
{
    struct sync_progress p;

    if (!s->opts->progress)
        return;
    p.entity = entity_labels[r->e];
    p.full = r->full;
    p.pages = r->pages;
    p.rows = r->rows;
    p.elapsed_ms = clock_mono_ms() - r->started_mono;
    s->opts->progress(&p, s->opts->progress_payload);
}

/* Stores one page and where to go on from (note 1). */
static int commit_page(syncer *s, struct read *r, const struct sync__page *sp,
                       const char *kept_delta_link)
{
    const struct dv_page *p = &sp->page;
    int last = p->next_link == NULL;
    const char *delta = last ? p->delta_link : kept_delta_link;
    int n = page_rows(sp);
    int rc;

    if (last && !p->delta_link) {
        err_set(ERR_CLASS_DATAVERSE,
                "the last page of %s carries no "
                "deltaLink: is change tracking on for the table?",
                entity_labels[r->e]);
        return ERR_BADINPUT;
    }
    rc = cache_begin(s->cache);
    /* A first load runs without the number indexes (cache.h). */
    if (rc == 0 && r->baseline && r->pages == 0)
        rc = cache_numbers_indexes_drop(s->cache);
    if (rc == 0 && r->baseline)
        rc = apply_baseline(s, sp, r->sweep_mark);
    else if (rc == 0)
        rc = apply_rows(s, r->e, sp, r->full ? r->sweep_mark : 0);
    if (rc == 0 && last && r->full && r->e == DV_NUMBER)
        rc = cache_numbers_indexes_ensure(s->cache);
    if (rc == 0 && last && r->full)
        rc = sweep(s, r->e, r->sweep_mark);
    if (rc == 0)
        rc = state_save(s->cache, r->e, delta,
                        r->full && !last ? p->next_link : NULL, r->sweep_mark,
                        n, r->baseline && !last);
    if (rc == 0)
        rc = cache_commit(s->cache);
    if (rc) {
        cache_rollback(s->cache);
        return rc;
    }
    r->pages++;
    r->rows += n;
    s->result->pages++;
    if (r->e == DV_CONFIGURATION)
        s->result->configurations += n;
    else
        s->result->numbers += n;
    if (s->opts->stop_after_pages &&
        ++s->pages_committed >= s->opts->stop_after_pages) {
        log_notice("sync_test_stop pages=%ld", s->pages_committed);
        _exit(99); /* tests: a crash right after a commit */
    }
    report_progress(s, r);
    return 0;
}

/* Walks pages from `url`; `kept` is the delta link to keep while a full
 * read is not finished. */
static int read_pages(syncer *s, struct read *r, const char *url,
                      const char *kept, struct dv_error *dv_err)
{
    struct sync__fetcher *f = NULL;
    struct sync__page page;
    int rc = sync__fetcher_start(&f, s->dv_fetch, url, r->full,
                                 r->e == DV_NUMBER ? prepare_numbers : NULL, s);

    if (rc)
        return rc;
    for (;;) {
        /* Note 6: later pages are fetched and prepared meanwhile. */
        rc = sync__fetch_take(&page, dv_err, f);
        if (rc)
            break;
        /* The last page: nothing is parsed any more, and storing it may
         * build the indexes, so the parser's spare memory goes first. */
        if (!page.page.next_link)
            jsonutil_arena_trim();
        if (r->e == DV_NUMBER)
            rc = fetch_missing_configurations(s, &page);
        if (rc == 0)
            rc = commit_page(s, r, &page, kept);
        if (rc || !page.page.next_link) {
            sync__page_dispose(&page);
            break;
        }
        sync__page_dispose(&page);
    }
    sync__fetcher_stop(f);
    return rc;
}

/*
 * A first load commits with synchronous = NORMAL: a crash still resumes
 * from the last commit, and nothing in it is a consent change to lose.
 */
static int read_baseline_or_full(syncer *s, struct read *r, const char *url,
                                 struct dv_error *dv_err)
{
    int rc = r->baseline ? cache_durability(s->cache, 0) : 0;

    if (rc == 0)
        rc = read_pages(s, r, url, NULL, dv_err);
    if (r->baseline && cache_durability(s->cache, 1) != 0 && rc == 0)
        rc = ERR_FAIL;
    return rc;
}

/* Note 7 of consent.h: a full read into an empty number table. */
static int is_first_load(syncer *s, enum dv_entity e, int *out)
{
    sqlite3_stmt *st;

    *out = 0;
    if (e != DV_NUMBER)
        return 0;
    st = cache_stmt(s->cache, "SELECT NOT EXISTS (SELECT 1 FROM numbers)");
    if (!st || cache_step(st) != SQLITE_ROW)
        return ERR_FAIL;
    *out = sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    return 0;
}

static int read_full(syncer *s, enum dv_entity e, struct entity_state *st)
{
    struct read r = { e, 1, 0, 0, 0, clock_mono_ms(), 0 };
    struct dv_error dv_err;
    char *url = NULL;
    int rc;

    if (st->resume_link) {
        /* A full read was interrupted: go on where it stopped (note 1). */
        r.sweep_mark = st->sweep_mark;
        r.baseline = st->baseline;
        log_notice("sync_resume entity=%s", entity_labels[e]);
        rc = read_baseline_or_full(s, &r, st->resume_link, &dv_err);
        if (rc != ERR_BADINPUT)
            return rc;
        log_notice("sync_resume_refused entity=%s action=restart "
                   "reason=%s",
                   entity_labels[e], log_q(err_message()));
    }
    r.sweep_mark = st->sweep_mark + 1;
    r.pages = r.rows = 0;
    rc = is_first_load(s, e, &r.baseline);
    if (rc)
        return rc;
    url = dataverse_query_url(s->dv_main, e);
    /* No delta link until this read is complete (note 3): a crash in
     * between resumes the full read, never a stale delta. */
    rc = read_baseline_or_full(s, &r, url, &dv_err);
    free(url);
    return rc;
}

static int read_delta(syncer *s, enum dv_entity e, struct entity_state *st,
                      int *expired)
{
    struct read r = { e, 0, 0, 0, 0, clock_mono_ms(), 0 };
    struct dv_error dv_err;
    int rc;

    memset(&dv_err, 0, sizeof(dv_err));
    r.sweep_mark = st->sweep_mark;
    rc = read_pages(s, &r, st->delta_link, st->delta_link, &dv_err);
    *expired =
        rc == ERR_BADINPUT && dv_err.status >= 400 && dv_err.status < 500;
    /* One line per sync, though both tables' tokens usually expire. */
    if (*expired && !s->fallback_logged++)
        log_notice("sync_delta_refused entity=%s code=%s action=full_sync "
                   "reason=%s",
                   entity_labels[e], dv_err.code[0] ? dv_err.code : "-",
                   log_q(err_message()));
    return rc;
}

static int sync_entity(syncer *s, enum dv_entity e, int force_full)
{
    struct entity_state st;
    int rc, expired = 0, full;

    rc = state_load(&st, s->cache, e);
    if (rc)
        return rc;
    full = force_full || !st.delta_link || st.resume_link;
    if (!full) {
        rc = read_delta(s, e, &st, &expired);
        full = expired; /* note 4 */
    }
    if (full) {
        s->result->full = 1;
        rc = read_full(s, e, &st);
    }
    entity_state_dispose(&st);
    return rc;
}

/* ---- runs
 * -------------------------------------------------------------------- */

static int run_record(cache *c, int64_t *id, const struct sync_result *r,
                      int ok, const char *error)
{
    sqlite3_stmt *st;

    if (!*id) {
        st = cache_stmt(c, "INSERT INTO sync_runs(kind, started_at) "
                           "VALUES ('delta', ?1)");
        if (!st)
            return ERR_FAIL;
        cache_bind_int(st, 1, r->started_at);
        if (cache_step(st) != SQLITE_DONE)
            return ERR_FAIL;
        *id = cache_last_rowid(c);
        return 0;
    }
    st = cache_stmt(c, "UPDATE sync_runs SET kind = ?2, finished_at = ?3, "
                       "ok = ?4, rows = ?5, error = ?6 WHERE id = ?1");
    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, *id);
    cache_bind_text(st, 2, r->full ? "full" : "delta");
    cache_bind_int(st, 3, r->finished_at);
    cache_bind_int(st, 4, ok);
    cache_bind_int(st, 5, r->configurations + r->numbers);
    cache_bind_text(st, 6, error);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

/* Both counts read a partial index (migration 6), not the table: named,
 * since without statistics the planner prefers scanning numbers_by_phone
 * (a million entries) to the small index that has only these rows. */
static int count_phones(syncer *s)
{
    sqlite3_stmt *st = cache_stmt(
        s->cache, "SELECT (SELECT count(*) FROM numbers INDEXED BY "
                  "numbers_unparseable WHERE e164 IS NULL), (SELECT count(*) "
                  "FROM numbers INDEXED BY numbers_phone_warning WHERE "
                  "phone_warning IS NOT NULL)");

    if (!st || cache_step(st) != SQLITE_ROW)
        return ERR_FAIL;
    s->result->unparseable = sqlite3_column_int64(st, 0);
    s->result->phone_warnings = sqlite3_column_int64(st, 1);
    sqlite3_reset(st);
    return 0;
}

#define RECHECK_BATCH 10000

/* Note 8: phones not parsed under the current rule, parsed again. */
static int recheck_phones(syncer *s)
{
    int done = 0, rekeyed = 0, moved = 0, rc;
    int64_t total = 0;

    do {
        rc = cache_begin(s->cache);
        if (rc == 0)
            rc =
                consent_phones_recheck(s->cache, s->cfg->consent.default_region,
                                       RECHECK_BATCH, &done, &rekeyed);
        if (rc == 0)
            rc = cache_commit(s->cache);
        if (rc) {
            cache_rollback(s->cache);
            return rc;
        }
        total += done;
        moved += rekeyed;
    } while (done == RECHECK_BATCH);
    s->result->phones_rechecked = total;
    if (total)
        log_notice("sync_phones_rechecked rows=%lld rekeyed=%d",
                   (long long)total, moved);
    return 0;
}

static int run_locked(struct sync_result *out, syncer *s,
                      const struct sync_options *opts, int64_t *run_id)
{
    int rc;

    rc = run_record(s->cache, run_id, out, 0, NULL);
    if (rc == 0)
        rc = sync_entity(s, DV_CONFIGURATION, opts->force_full);
    if (rc == 0)
        rc = regions_load(s);
    if (rc == 0)
        rc = recheck_phones(s);
    if (rc == 0)
        rc = sync_entity(s, DV_NUMBER, opts->force_full);
    if (rc)
        return rc;
    rc = count_phones(s);
    if (rc == 0)
        rc = consent_quarantine_replay(s->cache, &s->consent,
                                       &out->quarantine_applied,
                                       &out->quarantine_waiting);
    return rc;
}

int sync_run(struct sync_result *out, syncer *s,
             const struct sync_options *opts)
{
    char error[300];
    int64_t run_id = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    out->started_at = clock_now_ms();
    s->opts = opts;
    s->result = out;
    s->fallback_logged = 0;
    rc = lock_take(s);
    if (rc)
        return rc;
    rc = regions_load(s);
    if (rc == 0)
        rc = run_locked(out, s, opts, &run_id);
    out->finished_at = clock_now_ms();
    snprintf(error, sizeof(error), "%s", rc ? err_message() : "");
    if (run_id &&
        run_record(s->cache, &run_id, out, rc == 0, rc ? error : NULL) != 0 &&
        rc == 0)
        rc = ERR_FAIL;
    if (rc)
        err_set(err_class_last(), "%s", error[0] ? error : err_message());
    lock_release(s);
    return rc;
}
