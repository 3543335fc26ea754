/*
 * sync_p — shared between sync.c and sync_fetch.c only.
 */
#ifndef OPTSYNC_SYNC_P_H
#define OPTSYNC_SYNC_P_H

#include "dataverse.h"
#include "phone.h"
#include "sync.h"

/*
 * A number row mapped and its phone parsed on the fetch thread, so the
 * storing thread only writes (the phone parse is the costliest step of a
 * row with a phone as people type it).
 */
struct sync__row {
    int mapped;      /* rec is valid */
    int deleted;     /* a $deletedEntity item; id in deleted_id */
    const char *why; /* why not mapped (static) */
    struct number_record rec;
    int parsed; /* the phone was parsed (the region was known) */
    char e164[PHONE_E164_MAX];
    const char *phone_error;
    char deleted_id[MAPPING_GUID_LEN + 1];
};

/* A page and, for number pages, its rows prepared in page order. */
struct sync__page {
    struct dv_page page;
    struct sync__row *rows; /* owned; NULL when not prepared */
    size_t n_rows;
};

void sync__page_dispose(struct sync__page *p);

/* Prepares a page on the fetch thread (sync.c's number preparer). */
typedef void (*sync__prepare_fn)(struct sync__page *p, void *payload);

/*
 * The prefetcher (note 6 of sync.h): a thread with its own connection
 * that fetches the page asked for while the caller stores the previous.
 * One request in flight at a time.
 */
struct sync__fetcher;

int sync__fetcher_start(struct sync__fetcher **out, dataverse *dv,
                        sync__prepare_fn prepare, void *payload);
void sync__fetcher_stop(struct sync__fetcher *f); /* NULL is a no-op */

/* Starts fetching `url` (copied). */
void sync__fetch_ask(struct sync__fetcher *f, const char *url, int track);

/*
 * Waits for the page asked for.  Returns what dataverse_get_page
 * returned; on failure the error message and class are restored into
 * this thread's err and *dv_err holds Dataverse's error.
 */
int sync__fetch_take(struct sync__page *out, struct dv_error *dv_err,
                     struct sync__fetcher *f);

#endif
