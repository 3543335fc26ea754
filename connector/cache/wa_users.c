/*
 * wa_users — BSUID links and last inbound times; see wa_users.h.
 */
#include "wa_users.h"

#include <stdio.h>

#include "clock.h"
#include "err.h"

static int link_bind_step(sqlite3_stmt *st, const char *user_id,
                          const char *e164, const char *waba_id,
                          const char *configuration_id)
{
    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, user_id);
    cache_bind_text(st, 2, e164);
    cache_bind_text(st, 3, waba_id);
    cache_bind_text(st, 4, configuration_id);
    cache_bind_int(st, 5, clock_now_ms());
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

int wa_users_link_put(int *out_new, cache *c, const char *user_id,
                      const char *e164, const char *waba_id,
                      const char *configuration_id)
{
    int rc = link_bind_step(
        cache_stmt(c, "INSERT INTO wa_identities(user_id, e164, waba_id, "
                      "configuration_id, first_seen, last_seen) VALUES (?1, "
                      "?2, ?3, ?4, ?5, ?5) ON CONFLICT DO NOTHING"),
        user_id, e164, waba_id, configuration_id);

    *out_new = rc == 0 && cache_changes(c) > 0;
    if (rc || *out_new)
        return rc;
    return link_bind_step(
        cache_stmt(c, "UPDATE wa_identities SET last_seen = max(last_seen, "
                      "?5), waba_id = coalesce(?3, waba_id), "
                      "configuration_id = coalesce(?4, configuration_id) "
                      "WHERE user_id = ?1 AND e164 = ?2"),
        user_id, e164, waba_id, configuration_id);
}

int wa_users_phone_find(char *out, size_t out_size, cache *c,
                        const char *user_id, const char *waba_id)
{
    sqlite3_stmt *st = cache_stmt(
        c, "SELECT e164 FROM wa_identities WHERE user_id = ?1 "
           "ORDER BY coalesce(waba_id = ?2, 0) DESC, last_seen DESC, "
           "first_seen DESC LIMIT 1");
    int rc;

    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, user_id);
    cache_bind_text(st, 2, waba_id);
    rc = cache_step(st);
    if (rc == SQLITE_ROW) {
        snprintf(out, out_size, "%s", cache_col_text(st, 0));
        sqlite3_reset(st);
        return 0;
    }
    if (rc != SQLITE_DONE)
        return ERR_FAIL;
    err_set(ERR_CLASS_INPUT, "no phone number known for this WhatsApp user");
    return ERR_NOTFOUND;
}

int wa_users_inbound_put(cache *c, const char *configuration_id,
                         const char *e164, int64_t at, const char *message_id)
{
    sqlite3_stmt *st = cache_stmt(
        c, "INSERT INTO wa_last_inbound(configuration_id, e164, last_at, "
           "message_id) VALUES (?1, ?2, ?3, ?4) ON CONFLICT "
           "(configuration_id, e164) DO UPDATE SET last_at = "
           "excluded.last_at, message_id = excluded.message_id "
           "WHERE excluded.last_at > last_at");

    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, configuration_id);
    cache_bind_text(st, 2, e164);
    cache_bind_int(st, 3, at);
    cache_bind_text(st, 4, message_id);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

int wa_users_inbound_get(int64_t *out, cache *c, const char *configuration_id,
                         const char *e164)
{
    sqlite3_stmt *st =
        cache_stmt(c, "SELECT last_at FROM wa_last_inbound WHERE "
                      "configuration_id = ?1 AND e164 = ?2");
    int rc;

    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, configuration_id);
    cache_bind_text(st, 2, e164);
    rc = cache_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        return 0;
    }
    return rc == SQLITE_DONE ? ERR_NOTFOUND : ERR_FAIL;
}
