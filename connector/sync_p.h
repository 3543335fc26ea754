/*
 * sync_p — shared between sync.c and sync_fetch.c only.
 */
#ifndef OPTSYNC_SYNC_P_H
#define OPTSYNC_SYNC_P_H

#include "dataverse.h"
#include "sync.h"

/*
 * The prefetcher (note 6 of sync.h): a thread with its own connection
 * that fetches the page asked for while the caller stores the previous.
 * One request in flight at a time.
 */
struct sync__fetcher;

int sync__fetcher_start(struct sync__fetcher **out, dataverse *dv);
void sync__fetcher_stop(struct sync__fetcher *f); /* NULL is a no-op */

/* Starts fetching `url` (copied). */
void sync__fetch_ask(struct sync__fetcher *f, const char *url, int track);

/*
 * Waits for the page asked for.  Returns what dataverse_get_page
 * returned; on failure the error message and class are restored into
 * this thread's err and *dv_err holds Dataverse's error.
 */
int sync__fetch_take(struct dv_page *out, struct dv_error *dv_err,
                     struct sync__fetcher *f);

#endif
