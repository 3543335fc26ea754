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
 *  (5) Writes never create a duplicate.  An update carries If-Match with
 *      the version we know.  A create is an upsert onto a key that is
 *      the same every time: the mapping's alternate_key when it declares
 *      one, else a deterministic id (UUIDv5, see
 *      dataverse_number_default_id); it is sent create-only
 *      (If-None-Match: *), so a create whose answer was lost and is sent
 *      again gets 412 and the caller reads the row back and decides.
 *  (6) Every write asks for the row back (Prefer: return=representation,
 *      $select of the mapped columns): its id and version are what echo
 *      suppression and the next If-Match need.
 *  (7) A $batch is independent parts with Prefer: odata.continue-on-error
 *      (dv_batch.h), never a change set across numbers: each write gets
 *      its own answer.
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

/* ---- writes (the outbox worker is their only caller) -------------------- */

/* One write of an Opt-In / Opt-Out Number row.  All borrowed. */
struct dv_number_write {
    const char *id;  /* the row's Dataverse id; NULL: create it */
    int64_t version; /* update: If-Match W/"version"; 0: If-Match * */
    const char *configuration_id; /* create: its Configuration */
    const char *e164;             /* create: the phone (key part) */
    const char *body;             /* mapping_number_body() JSON */
};

/* What happened to one write. */
struct dv_write_result {
    long status; /* HTTP status of the write; 0: none (transport failure,
                    or the batch did not answer this part) */
    char id[MAPPING_GUID_LEN + 1]; /* the row written; "" unknown */
    int64_t version;               /* its version now; 0 unknown */
    int64_t modified_on;           /* ms; 0 unknown */
    int64_t retry_after_ms;        /* 429/503: Retry-After; -1 none */
    struct dv_error error;         /* status >= 400 or 0: what went wrong */
};

/*
 * One write as one request (note 5).  Returns 0 with *out filled (check
 * out->status: 2xx written, 412 a newer version or the row exists, 404
 * gone, 429 throttled, ...); ERR_AUTH when the credentials are refused.
 */
int dataverse_write_number(struct dv_write_result *out, dataverse *dv,
                           const struct dv_number_write *w);

/*
 * `n` writes (at most 1000) as one $batch of independent parts (note 7);
 * out[i] answers w[i].  A batch that fails as a whole (429, 5xx, no
 * answer) gives every write that status.  Returns 0 or ERR_AUTH.
 */
int dataverse_write_batch(struct dv_write_result *out, dataverse *dv,
                          const struct dv_number_write *w, size_t n);

/*
 * The row a write targets, read back (after a 412): by id, by alternate
 * key or by the deterministic id.  Returns 0 and *out (cJSON_Delete it);
 * ERR_NOTFOUND when there is no such row; else as dataverse_get_page.
 */
int dataverse_read_number(cJSON **out, dataverse *dv,
                          const struct dv_number_write *w);

/*
 * The id a created number row gets when the mapping declares no
 * alternate key: UUIDv5 (RFC 9562) in optsync's namespace
 * 36ddb33a-01b7-4a54-958c-b41a64552f9d of the name
 * "<configuration id, lower case>/<E.164>", e.g.
 * "6a1c0d6e-0000-0000-0000-000000000001/+4915123456789".  Never change
 * either: a number created before must map to the same row afterwards.
 */
void dataverse_number_default_id(char out[MAPPING_GUID_LEN + 1],
                                 const char *configuration_id,
                                 const char *e164);

/*
 * An OData string literal for $filter or an alternate key: quotes
 * doubled, then URL-encoded ("O'Bryan" → %27O%27%27Bryan%27), malloc'd.
 */
char *dataverse_odata_string(const char *s);

#endif
