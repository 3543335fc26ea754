/*
 * wa_users — what the cache knows about the WhatsApp users who write to
 * a business: the business-scoped user id (BSUID) seen beside each phone
 * number, and when a number last wrote to a Configuration.
 *
 * Pipeline position: written by the WhatsApp webhook
 * (connector/webhooks/whatsapp.c) inside the delivery's transaction; read
 * by the consent engine (a quarantined event that carries only a BSUID is
 * keyed once the link is known) and, later, by the consent-message sender
 * (the 24-hour customer-service window).  Plain cache access: no parsing,
 * no consent decisions.
 *
 * Design notes
 *  (1) Meta gives a user a new BSUID when they change their number, so a
 *      BSUID names one number; should one ever be seen with a second
 *      number, both links are kept and the one seen last wins.
 *  (2) Links are looked up by BSUID alone: BSUIDs are scoped to a
 *      business portfolio, and one optsync serves one business.  The WABA
 *      a link was seen under is kept, and preferred when given.
 *  (3) Times: first_seen / last_seen are when optsync saw the link
 *      (clock_now_ms); last_at is the event time of the message, never
 *      moved backwards by a late retry.
 */
#ifndef OPTSYNC_WA_USERS_H
#define OPTSYNC_WA_USERS_H

#include <stddef.h>
#include <stdint.h>

#include "cache.h"

/*
 * Records that `user_id` was seen with `e164` (both required), under
 * `waba_id` and `configuration_id` (either may be NULL), in the caller's
 * transaction; *out_new is 1 when the pair was not known before.
 * Returns 0 or ERR_FAIL.
 */
int wa_users_link_put(int *out_new, cache *c, const char *user_id,
                      const char *e164, const char *waba_id,
                      const char *configuration_id);

/*
 * The number `user_id` was last seen with (design note 2; a link seen
 * under `waba_id` first when that is not NULL), copied into out
 * (out_size bytes).  Returns 0, ERR_NOTFOUND, or ERR_FAIL.
 */
int wa_users_phone_find(char *out, size_t out_size, cache *c,
                        const char *user_id, const char *waba_id);

/*
 * Notes that `e164` wrote to `configuration_id` at `at` (ms, event
 * time) in message `message_id` (may be NULL); keeps the newest.
 */
int wa_users_inbound_put(cache *c, const char *configuration_id,
                         const char *e164, int64_t at, const char *message_id);

/*
 * When `e164` last wrote to `configuration_id` (ms), or ERR_NOTFOUND.
 * The customer-service window is open while now - *out < 24 h.
 */
int wa_users_inbound_get(int64_t *out, cache *c, const char *configuration_id,
                         const char *e164);

#endif
