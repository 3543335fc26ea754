/*
 * wa_messages — see wa_messages.h.
 */
#include "wa_messages.h"

#include <string.h>

#include "cache_p.h"
#include "err.h"

/* Note 1: the order a message's statuses may move in. */
#define RANK(x)                                                                \
    "CASE " x " WHEN 'accepted' THEN 1 WHEN 'sent' THEN 2 WHEN 'delivered' "   \
    "THEN 3 WHEN 'read' THEN 4 WHEN 'failed' THEN 5 ELSE 0 END"

static int known(const char *status)
{
    return strcmp(status, "sent") == 0 || strcmp(status, "delivered") == 0 ||
           strcmp(status, "read") == 0 || strcmp(status, "failed") == 0;
}

int wa_messages_status_put(int *matched, cache *c, const char *wamid,
                           const char *status, int64_t at, int64_t error_code)
{
    sqlite3_stmt *st;

    *matched = 0;
    if (!wamid || !status || !known(status))
        return 0;
    st = cache_stmt(
        c, "UPDATE outbox SET delivery = ?2, delivery_at = ?3, last_error = "
           "CASE WHEN ?2 = 'failed' THEN 'delivery failed: error ' || ?4 "
           "ELSE last_error END WHERE wamid = ?1 AND kind = 'whatsapp' AND "
           "coalesce(delivery, '') <> 'failed' AND " RANK("?2") " > " RANK(
               "coalesce(delivery, '')"));
    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, wamid);
    cache_bind_text(st, 2, status);
    cache_bind_int(st, 3, at);
    cache_bind_int(st, 4, error_code);
    if (cache_step(st) != SQLITE_DONE)
        return ERR_FAIL;
    *matched = cache_changes(c) > 0;
    return 0;
}
