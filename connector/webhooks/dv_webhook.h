/*
 * dv_webhook — the Dataverse webhook: what a service endpoint POSTs (a
 * serialized RemoteExecutionContext) checked, parsed and mirrored into the
 * cache, and the durable queue of rows to read again by id.
 *
 * Pipeline position: Dataverse → (listener: POST /webhooks/dataverse) →
 * dv_webhook_auth_check → dv_webhook_parse → mapping (mapping_*_from_row,
 * the only code that knows what a column means) → consent_apply_locked
 * (MIRROR) / configurations_put → cache.  Re-fetches go through
 * dataverse_get_row() and the same apply path.  It never writes to
 * Dataverse, never answers HTTP itself (the route glue maps the results
 * below to statuses), never logs a body, a header value or the key.
 *
 * Design notes
 *  (1) Authentication comes first, in constant time (SHA-256 of both
 *      sides, CRYPTO_memcmp), per [dataverse_webhook] auth: a header
 *      (HttpHeader), `code` in the query (WebhookKey) or a named query
 *      parameter (HttpQueryString).  No key configured: the route is off.
 *  (2) The body becomes a Web-API-shaped row: Target's attributes
 *      overlaid by every post image (a post image is the row after the
 *      operation; Target holds explicit nulls), EntityReference as
 *      `_<name>_value`, OptionSetValue and Money as numbers, `/Date(ms)/`
 *      (with or without ±hhmm) as ISO 8601 UTC, a multi-select as
 *      "1,9", versionnumber as `@odata.etag`.  mapping_*_from_row()
 *      reads it exactly like a row of the poller.
 *  (3) Only committed data is mirrored: an asynchronous (Mode 1)
 *      post-operation (Stage 40) context.  A synchronous step runs inside
 *      Dataverse's transaction, which can still roll back after our 200,
 *      and a pre-stage Target holds only what was sent: such a context is
 *      a hint (note 4).  A rolled-back change is never a delta, so a
 *      mirrored one would stay wrong until the next full sync.
 *  (4) A hint applies nothing from the body: the row id goes into the
 *      durable re-fetch queue (table dv_refetch) in the caller's
 *      transaction and the route answers 200.  Hints: a trimmed body
 *      (over 256 KB: x-ms-dynamics-msg-size-exceeded, no
 *      InputParameters); a row without every essential mapped column (an
 *      Update Target without a post image carries only what changed;
 *      images leave nulls out); note 3; other messages on our tables
 *      (SetState, Assign…); a number whose Configuration is not cached
 *      (the Configuration is queued too and read first, like the poller's
 *      fetch_missing_configurations); an order note 5 cannot decide.
 *  (5) Order: by row version when both sides have one, else by
 *      modifiedon; an event older than the cached row is stale.  Equal
 *      modifiedon without versions is a hint.  A row not in the cache
 *      whose change is older than the start of the last successful sync
 *      (less DV_WEBHOOK_CLOCK_MARGIN_MS) was seen by that sync's delta, so it
 * was deleted or unlinked since: a hint (the re-fetch's 404 settles it).  A
 * webhook Delete leaves a tombstone, so a late Create/Update older than the
 * delete is stale. (6) Dedupe in inbound_seen ("dataverse_webhook", key), in
 * the caller's transaction (a rolled-back apply is not remembered): an async
 *      context by CorrelationId/OperationId (Dataverse's one retry resends
 *      the same job), any other by a SHA-256 of the body.
 *  (7) The re-fetch queue holds one row per (entity, id); a new hint for
 *      a queued row bumps its generation, and a run dequeues a row only
 *      at the generation it read, so a hint arriving during the GET is
 *      not lost.  Configurations are read before numbers.  A 404 is a
 *      delete.  A remote failure backs the row off (doubling, capped at
 *      DV_REFETCH_MAX_BACKOFF_MS) and ends the run; the poller stays the
 *      safety net.
 *
 *    POST --auth--> (401 | 404 off) --parse--> (400) --apply_locked-->
 *      committed: 200 (applied | removed | queued | duplicate | stale |
 *      skipped);  not committed: 503 (Dataverse retries once)
 *    dv_refetch: queued --refetch_run GET 200/404--> applied, dequeued
 *                       `--remote failure--> backed off (next_attempt_at)
 */
#ifndef OPTSYNC_DV_WEBHOOK_H
#define OPTSYNC_DV_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "cache.h"
#include "config.h"
#include "consent.h"
#include "dataverse.h"
#include "mapping.h"

typedef struct dv_webhook dv_webhook;

/*
 * The webhook's settings: [dataverse_webhook] from `cfg`, the mapping,
 * the consent options.  Both borrowed for the handle's lifetime.  The
 * handle is read-only afterwards: any thread may use it.
 */
int dv_webhook_new(dv_webhook **out, const struct optsync_config *cfg,
                   const struct mapping *m);
void dv_webhook_free(dv_webhook *wh); /* NULL is a no-op */

/* ---- the request: headers and query --------------------------------------
 */

/* A value by name, or NULL.  Headers must match case-insensitively (as
 * evhttp_find_header does); query parameters are URL-decoded. */
typedef const char *(*dv_webhook_lookup_fn)(const char *name, void *payload);

struct dv_webhook_request {
    dv_webhook_lookup_fn header; /* NULL: no headers */
    void *header_payload;
    dv_webhook_lookup_fn query; /* NULL: no query string */
    void *query_payload;
};

enum dv_webhook_auth {
    DV_WEBHOOK_AUTH_OK = 0,
    DV_WEBHOOK_AUTH_UNAUTHORIZED, /* 401, nothing parsed */
    DV_WEBHOOK_AUTH_DISABLED,     /* no key configured: 404 */
};

/* Note 1.  Missing or wrong credentials are UNAUTHORIZED. */
enum dv_webhook_auth dv_webhook_auth_check(const dv_webhook *wh,
                                           const struct dv_webhook_request *r);

/* The x-ms-dynamics-* headers (reference §8.2); all borrowed from the
 * lookup, NULL when absent. */
struct dv_webhook_headers {
    const char *organization;   /* x-ms-dynamics-organization */
    const char *entity_name;    /* x-ms-dynamics-entity-name */
    const char *request_name;   /* x-ms-dynamics-request-name */
    const char *correlation_id; /* x-ms-correlation-request-id */
    int size_exceeded;          /* x-ms-dynamics-msg-size-exceeded */
};

void dv_webhook_headers_read(struct dv_webhook_headers *out,
                             const struct dv_webhook_request *r);

/* ---- parsing (pure: no I/O, no SQLite, no logging) ----------------------
 */

enum dv_webhook_message {
    DV_WEBHOOK_CREATE = 0,
    DV_WEBHOOK_UPDATE,
    DV_WEBHOOK_DELETE,
    DV_WEBHOOK_OTHER, /* SetState, Assign, …: a hint */
};

/* Why the body alone cannot be mirrored (note 4); NONE: it can. */
enum dv_webhook_hint {
    DV_WEBHOOK_HINT_NONE = 0,
    DV_WEBHOOK_HINT_MESSAGE,     /* not Create/Update/Delete */
    DV_WEBHOOK_HINT_UNCOMMITTED, /* sync step or pre-stage (note 3) */
    DV_WEBHOOK_HINT_TRIMMED,     /* over 256 KB: no InputParameters */
    DV_WEBHOOK_HINT_PARTIAL,     /* an essential mapped column missing */
};

#define DV_WEBHOOK_KEY_MAX 80 /* dedupe key: "op:<guid>/<guid>" or hash */

struct dv_webhook_event {
    enum dv_webhook_message message;
    char message_name[32];         /* MessageName as sent (truncated) */
    enum dv_entity entity;         /* which table of the mapping */
    char id[MAPPING_GUID_LEN + 1]; /* the row (PrimaryEntityId) */
    int mode;                      /* 0 sync, 1 async */
    int stage;                     /* 10, 20, 40 */
    int depth;
    int64_t operation_at; /* OperationCreatedOn, ms; 0 when absent */
    char correlation_id[MAPPING_GUID_LEN + 1]; /* "" when absent */
    char operation_id[MAPPING_GUID_LEN + 1];   /* "" when absent or zero */
    char request_id[MAPPING_GUID_LEN + 1];     /* "" when absent */
    char dedupe_key[DV_WEBHOOK_KEY_MAX];       /* note 6 */
    enum dv_webhook_hint hint;
    const char *missing; /* PARTIAL: the first essential column absent
                            (borrowed from the mapping) */
    cJSON *row;          /* owned: Target + post images as a Web API row
                            (note 2); NULL for Delete and a trimmed body */
    cJSON *pre;          /* owned: the pre images as a row; NULL when none */
    int64_t version;     /* versionnumber; 0 when not sent */
};

/*
 * Parses a RemoteExecutionContext (`len` bytes, need not end in NUL)
 * against the mapping; `h` (may be NULL) is cross-checked with the body.
 * Returns 0 and *out (free with dv_webhook_event_free); ERR_BADINPUT when
 * the body is not JSON, not a context, names a table the mapping does not
 * know, has no usable row id or disagrees with the headers (route: 400);
 * ERR_TOOBIG over CAP_WEBHOOK_BODY_BYTES or CAP_DV_CONTEXT_ITEMS (400).
 * err_set says why.
 */
int dv_webhook_parse(struct dv_webhook_event **out, const struct mapping *m,
                     const char *body, size_t len,
                     const struct dv_webhook_headers *h);
void dv_webhook_event_free(struct dv_webhook_event *ev); /* NULL: no-op */

/* `/Date(ms)/` or `/Date(ms±hhmm)/` → ms since the epoch (the number is
 * UTC; the offset only says how .NET would show it).  -1 when not one. */
int dv_webhook_date_parse(int64_t *out, const char *s);

/* ---- applying ----------------------------------------------------------- */

enum dv_webhook_outcome {
    DV_WEBHOOK_APPLIED = 0, /* mirrored (see consent for numbers) */
    DV_WEBHOOK_REMOVED,     /* a Delete: the row left the cache */
    DV_WEBHOOK_QUEUED,      /* a hint: queued for re-fetch */
    DV_WEBHOOK_DUPLICATE,   /* this delivery was applied before */
    DV_WEBHOOK_STALE,       /* older than what the cache holds */
    DV_WEBHOOK_SKIPPED,     /* a row the poller would skip too */
};
#define DV_WEBHOOK_OUTCOME_COUNT 6

struct dv_webhook_result {
    enum dv_webhook_outcome outcome;
    enum consent_outcome consent; /* APPLIED to a number */
    const char *reason;           /* static; why queued, stale or skipped */
};

/* "applied", "removed", "queued", "duplicate", "stale", "skipped". */
const char *dv_webhook_outcome_name(enum dv_webhook_outcome o);

/*
 * Applies a parsed event inside the caller's open transaction (notes 3-6;
 * source "dataverse_webhook").  Every outcome means "answer 200 once this
 * transaction is committed".  Returns 0; ERR_CONFLICT / ERR_FAIL when the
 * cache failed: the caller rolls back and answers 503 (Dataverse retries
 * once), nothing of the event stays.
 */
int dv_webhook_apply_locked(struct dv_webhook_result *out, const dv_webhook *wh,
                            cache *c, const struct dv_webhook_event *ev);

/* One info line (event dv_webhook_event: table, message, row id,
 * outcome, reason; never a value from the row): call it after commit. */
void dv_webhook_event_log(const struct dv_webhook_event *ev,
                          const struct dv_webhook_result *r);

/* The same in its own transaction (BEGIN IMMEDIATE … COMMIT), logged. */
int dv_webhook_apply(struct dv_webhook_result *out, const dv_webhook *wh,
                     cache *c, const struct dv_webhook_event *ev);

/*
 * For a group-commit writer that runs `int fn(cache *c, void *payload)`
 * items in its transaction (a savepoint each): pass
 * dv_webhook_item_apply with a dv_webhook_item as payload.
 */
struct dv_webhook_item {
    const dv_webhook *wh;              /* borrowed */
    const struct dv_webhook_event *ev; /* borrowed */
    struct dv_webhook_result result;   /* out */
};

int dv_webhook_item_apply(cache *c, void *payload);

/* ---- the re-fetch queue (note 7) ------------------------------------------
 */

/* Note 5's "older than the last sync" allows this much: modifiedon may be
 * cut to whole seconds, and Dataverse's clock is not ours. */
#define DV_WEBHOOK_CLOCK_MARGIN_MS (2 * 1000)

#define DV_REFETCH_FIRST_BACKOFF_MS (5 * 1000)
#define DV_REFETCH_MAX_BACKOFF_MS (15 * 60 * 1000)
/* A hint from a context that may still be inside Dataverse's transaction
 * (note 3) waits this long, so the GET sees what was committed. */
#define DV_REFETCH_UNCOMMITTED_DELAY_MS (5 * 1000)

struct dv_refetch_options {
    int max_rows; /* rows read per run; 0: every due row */
};

#define DV_REFETCH_OPTIONS_INIT                                                \
    {                                                                          \
        100                                                                    \
    }

struct dv_refetch_result {
    int fetched;     /* rows read (200) */
    int applied;     /* mirrored */
    int removed;     /* 404: deleted in Dataverse */
    int stale;       /* the cache already had this or newer */
    int skipped;     /* not mappable, dropped like the poller drops it */
    int deferred;    /* backed off after a failure */
    int remaining;   /* still queued after the run */
    int64_t next_at; /* when the next queued row is due (ms); 0: none */
};

/*
 * Reads due queued rows by id (configurations first) and mirrors each in
 * its own transaction, as the poller would (a 404 removes the row).  Run
 * outside any transaction, from a thread with its own cache connection;
 * `dv` is not shared with other threads.  Returns 0 (every due row
 * handled or backed off for a row-level reason); ERR_AUTH /
 * ERR_THROTTLED / ERR_FAIL when Dataverse could not be reached (the row
 * is backed off, the run ends; err_set says why); ERR_FAIL /
 * ERR_CONFLICT from the cache.
 */
int dv_webhook_refetch_run(struct dv_refetch_result *out, const dv_webhook *wh,
                           cache *c, dataverse *dv,
                           const struct dv_refetch_options *opts);

/* Rows queued, and when the next one is due (ms; 0 when none). */
int dv_webhook_refetch_pending(int *count, int64_t *next_at, cache *c);

/*
 * Queues a row for re-fetch in the caller's transaction (note 7), due
 * after `delay_ms`.  Also what the apply path uses.
 */
int dv_webhook_refetch_queue(cache *c, enum dv_entity e, const char *id,
                             const char *reason, int64_t delay_ms);

/*
 * Forgets dedupe keys and tombstones recorded before `before` (ms), in
 * its own transaction.  Dataverse retries at once and async jobs run
 * within hours: `serve` prunes what is older than 7 days.
 */
int dv_webhook_prune(cache *c, int64_t before);

#endif
