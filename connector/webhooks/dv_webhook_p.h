/*
 * dv_webhook_p — shared between dv_webhook.c (auth, apply) and
 * dv_webhook_refetch.c (the re-fetch queue) only.
 */
#ifndef OPTSYNC_DV_WEBHOOK_P_H
#define OPTSYNC_DV_WEBHOOK_P_H

#include "dv_webhook.h"

struct dv_webhook {
    const struct optsync_config *cfg; /* borrowed */
    const struct mapping *m;          /* borrowed */
    struct consent_options consent;
};

/* Where a mapped row comes from: the webhook body, or a GET by id (the
 * current row: the order rule only refuses what is strictly older). */
enum dv_webhook__origin {
    DV_WEBHOOK__BODY = 0,
    DV_WEBHOOK__REFETCH,
};

/* Table name in dv_refetch and dv_webhook_tombstones. */
const char *dv_webhook__entity_name(enum dv_entity e);

/*
 * Mirrors a Web-API-shaped row of `e` in the caller's transaction, with
 * the order rule (note 5).  From the body, what the rule cannot decide or
 * a number whose Configuration is not cached is queued instead (note 4);
 * from a re-fetch the caller has fetched the Configuration first.
 * Returns 0 with *out; ERR_FAIL / ERR_CONFLICT from the cache.
 */
int dv_webhook__mirror_row(struct dv_webhook_result *out, const dv_webhook *wh,
                           cache *c, enum dv_entity e, const cJSON *row,
                           int64_t event_at, enum dv_webhook__origin origin);

/* A row deleted in Dataverse leaves the cache (caller's transaction). */
int dv_webhook__remove_row(cache *c, enum dv_entity e, const char *id,
                           int64_t at);

#endif
