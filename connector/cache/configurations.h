/*
 * configurations — the cached Configuration records (one WhatsApp business
 * setup each): lookup by id, exact name or Meta phone_number_id, the
 * configurations sharing a WhatsApp Business Account, and mirroring a
 * Dataverse row in.
 *
 * Pipeline position: read by the consent engine, the gate and the CLI to
 * resolve what an event or a request is about; written only by the
 * poller / Dataverse webhook (configurations_put).
 */
#ifndef OPTSYNC_CONFIGURATIONS_H
#define OPTSYNC_CONFIGURATIONS_H

#include <stdint.h>

#include "cache.h"
#include "mapping.h"

struct configuration_info {
    char id[MAPPING_GUID_LEN + 1];
    char *name; /* owned */
    int double_opt_in;
    char *phone_number_id; /* owned; NULL when not set */
    char *waba_id;         /* owned; NULL when not set */
    char *default_region;  /* owned; NULL when not set */
    /* owned; NAME:LANG overriding [messages]; NULL when not set */
    char *double_opt_in_template;
    char *opt_in_confirmation_template;
    char *opt_out_confirmation_template;
    int active;
};

void configuration_info_dispose(struct configuration_info *info);

/*
 * `ref` is a Dataverse id (any GUID spelling) or an exact name.
 * Returns 0 and the id; ERR_NOTFOUND; ERR_CONFLICT when several
 * configurations carry that name (err_set lists how to disambiguate).
 */
int configurations_resolve(char *out_id, cache *c, const char *ref);

/* The record with id `id`: 0, ERR_NOTFOUND or ERR_FAIL. */
int configurations_get(struct configuration_info *out, cache *c,
                       const char *id);

/* The active configuration of a Meta phone_number_id: 0 / ERR_NOTFOUND. */
int configurations_find_by_phone_number_id(char *out_id, cache *c,
                                           const char *phone_number_id);

/*
 * Ids of every active configuration with the same waba_id as `id`
 * (including `id`; just `id` when it has none).  *out is malloc'd.
 */
int configurations_same_waba(char (**out)[MAPPING_GUID_LEN + 1], size_t *count,
                             cache *c, const char *id);

/* Inserts or updates a mirrored row (caller's transaction). */
int configurations_put(cache *c, const struct configuration_record *rec,
                       int64_t sweep_mark);

/* Removes a configuration that no longer exists in Dataverse. */
int configurations_delete(cache *c, const char *id);

#endif
