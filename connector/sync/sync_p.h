/*
 * sync_p — shared between sync.c and sync_fetch.c only.
 */
#ifndef OPTSYNC_SYNC_P_H
#define OPTSYNC_SYNC_P_H

#include "dataverse.h"
#include "phone.h"
#include "sync.h"

/*
 * A number row mapped and its phone parsed on the prepare thread, so the
 * storing thread only writes.
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

/*
 * A page and, for number pages, its rows prepared in page order.  A
 * prepared page no longer holds its JSON (page.root and page.rows are
 * NULL; the rows' strings live in `strings`), so pages waiting to be
 * stored are small.
 */
struct sync__page {
    struct dv_page page;
    struct sync__row *rows; /* owned; NULL when not prepared */
    size_t n_rows;
    char *strings; /* owned: the prepared rows' strings */
};

void sync__page_dispose(struct sync__page *p);

/* Prepares a page on the prepare thread (sync.c's number preparer). */
typedef void (*sync__prepare_fn)(struct sync__page *p, void *payload);

/*
 * The page pipeline of one read (note 6 of sync.h, sync_fetch.c): a fetch
 * thread with its own client GETs `url` and then each nextLink as soon as
 * the answer before is in, a prepare thread runs `prepare` (may be NULL)
 * on each page, and the caller takes them in order.  Memory is bounded:
 * each stage waits while the next is behind.
 */
struct sync__fetcher;

int sync__fetcher_start(struct sync__fetcher **out, dataverse *dv,
                        const char *url, int track, sync__prepare_fn prepare,
                        void *payload);
void sync__fetcher_stop(struct sync__fetcher *f); /* NULL is a no-op */

/*
 * The next page, in order.  Returns what dataverse_get_page returned for
 * it; on failure the error message and class are restored into this
 * thread's err and *dv_err holds Dataverse's error, and no page follows.
 * Call it again only after a page that has a nextLink.
 */
int sync__fetch_take(struct sync__page *out, struct dv_error *dv_err,
                     struct sync__fetcher *f);

#endif
