/*
 * wa_messages — what became of the consent messages optsync sent
 * (outbox rows of kind "whatsapp", consent.h note 8): Meta's status
 * webhooks for their wamids.
 *
 * Pipeline position: the WhatsApp webhook (statuses[]) → here → cache;
 * read by `optsync outbox list` and /metrics.  It decides nothing.
 *
 * Design notes
 *  (1) Statuses arrive in any order and more than once (Meta skips
 *      `delivered` when delivery and read coincide): a row only moves
 *      forward, accepted < sent < delivered < read; `failed` is final.
 *  (2) A status for a wamid we did not send (marketing messages sent by
 *      another system through the same number) changes nothing.
 *  (3) Meta may report a status before the sender committed the wamid
 *      (the webhook overtakes the answer's commit): a status for a wamid
 *      not known yet is kept in wa_status_early for a day, and
 *      wa_messages_sent() applies it when the wamid is committed.
 */
#ifndef OPTSYNC_WA_MESSAGES_H
#define OPTSYNC_WA_MESSAGES_H

#include <stdint.h>

#include "cache.h"

/*
 * Records status `status` (sent, delivered, read, failed; others are
 * ignored) of message `wamid` at `at` (ms), with the first error code of
 * a failure (0: none), in the caller's transaction.  *matched = 1 when
 * the wamid is one of ours.  Returns 0 or ERR_FAIL.
 */
int wa_messages_status_put(int *matched, cache *c, const char *wamid,
                           const char *status, int64_t at, int64_t error_code);

/*
 * Records that outbox row `id` was accepted as `wamid` (delivery
 * "accepted"), then applies a status that came early (note 3), in the
 * caller's transaction.  Returns 0 or ERR_FAIL.
 */
int wa_messages_sent(cache *c, int64_t id, const char *wamid, int64_t now);

#endif
