/*
 * wa_messages — see wa_messages.h.
 */
#include "wa_messages.h"

#include <string.h>

#include "cache_p.h"
#include "clock.h"
#include "err.h"

#define EARLY_KEEP_MS (24LL * 3600 * 1000)

/* Note 1: the order a message's statuses may move in. */
#define RANK(x)                                                                \
    "CASE " x " WHEN 'accepted' THEN 1 WHEN 'sent' THEN 2 WHEN 'delivered' "   \
    "THEN 3 WHEN 'read' THEN 4 WHEN 'failed' THEN 5 ELSE 0 END"

static int known(const char *status)
{
    return strcmp(status, "sent") == 0 || strcmp(status, "delivered") == 0 ||
           strcmp(status, "read") == 0 || strcmp(status, "failed") == 0;
}

/* Note 3: the best status so far of a wamid not known yet; a day's
 * worth (other systems' messages end up here too, and go). */
static int keep_early(cache *c, const char *wamid, const char *status,
                      int64_t at, int64_t error_code)
{
    int64_t now = clock_now_ms();
    sqlite3_stmt *st = cache_stmt(
        c,
        "INSERT INTO wa_status_early(wamid, delivery, at, error_code, "
        "seen_at) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(wamid) DO "
        "UPDATE SET delivery = excluded.delivery, at = excluded.at, "
        "error_code = excluded.error_code WHERE delivery <> 'failed' AND " RANK(
            "excluded.delivery") " > " RANK("delivery"));

    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, wamid);
    cache_bind_text(st, 2, status);
    cache_bind_int(st, 3, at);
    cache_bind_int(st, 4, error_code);
    cache_bind_int(st, 5, now);
    if (cache_step(st) != SQLITE_DONE)
        return ERR_FAIL;
    st = cache_stmt(c, "DELETE FROM wa_status_early WHERE seen_at < ?1");
    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, now - EARLY_KEEP_MS);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
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
    return *matched ? 0 : keep_early(c, wamid, status, at, error_code);
}

static int exec_bound(cache *c, const char *sql, int64_t id, const char *wamid,
                      int64_t now)
{
    sqlite3_stmt *st = cache_stmt(c, sql);

    if (!st)
        return ERR_FAIL;
    /* Parameters a statement does not use are ignored (RANGE). */
    cache_bind_int(st, 1, id);
    cache_bind_text(st, 2, wamid);
    cache_bind_int(st, 3, now);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

int wa_messages_sent(cache *c, int64_t id, const char *wamid, int64_t now)
{
    static const char *const sql[] = {
        "UPDATE outbox SET wamid = ?2, delivery = 'accepted', delivery_at = "
        "?3 WHERE id = ?1",
        ("UPDATE outbox SET delivery = e.delivery, delivery_at = e.at, "
         "last_error = CASE WHEN e.delivery = 'failed' THEN "
         "'delivery failed: error ' || e.error_code ELSE last_error END "
         "FROM wa_status_early e WHERE outbox.id = ?1 AND e.wamid = ?2"),
        "DELETE FROM wa_status_early WHERE wamid = ?2",
    };
    size_t i;
    int rc = 0;

    for (i = 0; rc == 0 && i < sizeof(sql) / sizeof(sql[0]); i++)
        rc = exec_bound(c, sql[i], id, wamid, now);
    return rc;
}
