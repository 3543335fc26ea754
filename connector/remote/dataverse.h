/*
 * dataverse — the Dataverse Web API client: the only module that builds
 * Web API URLs or reads OData (pages, nextLink, deltaLink, deleted rows,
 * error bodies).  Like isync's driver interface, it is all the sync engine
 * knows about the server.
 *
 * Pipeline position: under sync.c (reads) and the outbox worker (writes);
 * over auth.c (tokens) and http.c (transport, retries).
 *
 * Design notes
 *  (1) Only mapped columns are selected ($select from the mapping).
 *  (2) nextLink and deltaLink are followed exactly as received: never
 *      re-encoded, never rebuilt, never assumed to hold the page size we
 *      asked for.  The same Prefer: odata.maxpagesize goes with each.
 *  (3) A 401 invalidates the token and is retried once; a second 401 is
 *      a configuration problem (ERR_AUTH).
 *  (4) Error bodies become one clear line with Dataverse's hex code;
 *      dataverse_last_error() keeps the code for callers that branch on
 *      it (0x80044352: expired delta token).
 */
#ifndef OPTSYNC_DATAVERSE_H
#define OPTSYNC_DATAVERSE_H

#include <cjson/cJSON.h>

#include "auth.h"
#include "config.h"
#include "http.h"
#include "mapping.h"

typedef struct dataverse dataverse;

enum dv_entity {
    DV_CONFIGURATION = 0,
    DV_NUMBER,
};

/* Dataverse's error codes we act on. */
#define DV_CODE_EXPIRED_VERSION_STAMP "0x80044352"
#define DV_CODE_OBJECT_DOES_NOT_EXIST "0x80040217"
#define DV_CODE_CONCURRENCY_MISMATCH "0x80060882"

/* All borrowed for the client's lifetime. */
int dataverse_new(dataverse **out, const struct optsync_config *cfg,
                  const struct mapping *m, http *h, auth *a);
void dataverse_free(dataverse *dv); /* NULL is a no-op */

/* The first URL of a full read of `e` ($select of mapped columns). */
char *dataverse_query_url(const dataverse *dv, enum dv_entity e);

struct json_arena;

/* One answer page.  rows and the links are valid until dispose. */
struct dv_page {
    cJSON *root; /* owned, in `arena` (jsonutil.h): never cJSON_Delete */
    struct json_arena *arena; /* owned */
    cJSON *rows;              /* borrowed from root: the "value" array */
    char *next_link;          /* owned; NULL on the last page */
    char *delta_link; /* owned; only on the last page of a tracked read */
};

void dv_page_dispose(struct dv_page *p);

/*
 * GETs one page from `url` (a query URL, a nextLink or a deltaLink).
 * `track` adds Prefer: odata.track-changes (the first request of a full
 * read).  Returns 0; ERR_AUTH (credentials); ERR_BADINPUT when Dataverse
 * rejected the request (4xx: see dataverse_last_error); ERR_FAIL /
 * ERR_THROTTLED when it could not be reached; ERR_TOOBIG.
 */
int dataverse_get_page(struct dv_page *out, dataverse *dv, const char *url,
                       int track);

/*
 * Parses a page body (the fuzzed part of dataverse_get_page).  Returns 0
 * or ERR_BADINPUT (not an OData collection) with err_set.
 */
int dataverse_page_parse(struct dv_page *out, const char *body, size_t len);

/*
 * True when `row` is a deleted-row item of a delta page
 * ({"@odata.context": ".../$deletedEntity", "id", "reason": "deleted"});
 * its id is written to out_id.
 */
int dataverse_row_deleted(char *out_id, const cJSON *row);

/*
 * One row of `e` by id (mapped columns).  Returns 0 and *out (cJSON_Delete
 * it); ERR_NOTFOUND when it does not exist; else as dataverse_get_page.
 */
int dataverse_get_row(cJSON **out, dataverse *dv, enum dv_entity e,
                      const char *id);

struct dv_error {
    long status;   /* HTTP status; 0 when none */
    char code[16]; /* Dataverse hex code ("0x80044352"); "" when none */
    char message[256];
};

/* The error of this client's last failed request. */
const struct dv_error *dataverse_last_error(const dataverse *dv);

/*
 * Parses a Dataverse error body into *out (code and message); leaves
 * them empty when the body is not one.
 */
void dataverse_error_parse(struct dv_error *out, long status, const char *body,
                           size_t len);

/*
 * An OData string literal for $filter or an alternate key: quotes
 * doubled, then URL-encoded ("O'Bryan" → %27O%27%27Bryan%27), malloc'd.
 */
char *dataverse_odata_string(const char *s);

#endif
