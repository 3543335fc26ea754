/*
 * consent_store — the steps every consent path shares, below both
 * consent.c (local expressions) and consent_mirror.c (Dataverse rows):
 * the strictness order, the conflict rule, reading a number's state,
 * and writing its ledger entry and its outbox row.  Events flow down
 * into this file, never back up: it calls nothing of the consent engine
 * above it.  See consent.h for the design notes these steps keep.
 */
#include "consent_p.h"

#include <string.h>

#include "clock.h"
#include "err.h"
#include "ledger.h"

/* ---- the rules both paths apply ------------------------------------------ */

int consent_status_rank(enum consent_status s)
{
    switch (s) {
    case CONSENT_OPTED_OUT: return 3;
    case CONSENT_NONE: return 2;
    case CONSENT_SINGLE_OPT_IN: return 1;
    default: return 0; /* double_opt_in */
    }
}

int consent__loses(int64_t event_at, enum consent_status next,
                   int64_t current_at, enum consent_status current)
{
    if (event_at < current_at)
        return 1;
    /* Equal times: an opt-out wins, whichever side it is on. */
    return event_at == current_at && current == CONSENT_OPTED_OUT &&
           next != CONSENT_OPTED_OUT;
}

/* ---- the state of a number ------------------------------------------------
 */

void consent__keys_init(struct consent__keys *k, const char *e164)
{
    snprintf(k->key[0], PHONE_E164_MAX, "%s", e164);
    k->count = 1 + phone_aliases(k->key + 1, PHONE_ALIASES_MAX, e164);
}

/* Binds the keys to ?2..?(1+PHONE_ALIASES_MAX+1); unused ones are NULL. */
void consent__bind_keys(sqlite3_stmt *st, const struct consent__keys *k)
{
    size_t i;

    for (i = 0; i < 1 + PHONE_ALIASES_MAX; i++)
        cache_bind_text(st, (int)i + 2, i < k->count ? k->key[i] : NULL);
}

int consent__state_load(struct consent__state *out, cache *c,
                        const char *configuration_id,
                        const struct consent__keys *keys)
{
    sqlite3_stmt *st = cache_stmt(
        c, "SELECT status, status_at, source FROM numbers WHERE "
           "configuration_id = ?1 AND " CONSENT__KEYS_IN " AND active = 1");
    int rc;

    memset(out, 0, sizeof(*out));
    out->status = CONSENT_NONE;
    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, configuration_id);
    consent__bind_keys(st, keys);
    while ((rc = cache_step(st)) == SQLITE_ROW) {
        enum consent_status s = (enum consent_status)sqlite3_column_int(st, 0);
        int64_t at = sqlite3_column_int64(st, 1);
        const char *src = cache_col_text(st, 2);

        if (src && strcmp(src, CONSENT_SOURCE_DATAVERSE) != 0 &&
            strcmp(src, CONSENT_SOURCE_DATAVERSE_WEBHOOK) != 0)
            out->local = 1;
        if (out->rows == 0 ||
            consent_status_rank(s) > consent_status_rank(out->status) ||
            (s == out->status && at > out->status_at)) {
            out->status = s;
            out->status_at = at;
        }
        out->rows++;
    }
    return rc == SQLITE_DONE ? 0 : ERR_FAIL;
}

/* ---- ledger and outbox -----------------------------------------------------
 */

int consent__ledger(cache *c, const char *configuration_id, const char *phone,
                    enum consent_status from, enum consent_status to,
                    int64_t at, const char *source, const char *evidence)
{
    struct ledger_entry e;

    memset(&e, 0, sizeof(e));
    e.at = at;
    e.configuration_id = configuration_id;
    e.phone = phone;
    e.from = from;
    e.to = to;
    e.source = source;
    e.evidence = evidence ? evidence : "{}";
    return ledger_append(c, &e);
}

int consent__queue_writeback(cache *c, int64_t local_id,
                             const char *configuration_id, const char *e164,
                             enum consent_status status, int64_t event_at,
                             const char *reason)
{
    int64_t now = clock_now_ms();
    sqlite3_stmt *st = cache_stmt(
        c, "UPDATE outbox SET status = ?2, event_at = ?3, reason = ?4, "
           "e164 = ?5, updated_at = ?6 WHERE number_local_id = ?1 AND "
           "state = 'pending' AND kind = 'dataverse'");

    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, local_id);
    cache_bind_int(st, 2, status);
    cache_bind_int(st, 3, event_at);
    cache_bind_text(st, 4, reason);
    cache_bind_text(st, 5, e164);
    cache_bind_int(st, 6, now);
    if (cache_step(st) != SQLITE_DONE)
        return ERR_FAIL;
    if (cache_changes(c) == 0) {
        st = cache_stmt(c, "INSERT INTO outbox(number_local_id, "
                           "configuration_id, e164, status, event_at, "
                           "reason, created_at, updated_at) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)");
        if (!st)
            return ERR_FAIL;
        cache_bind_int(st, 1, local_id);
        cache_bind_text(st, 2, configuration_id);
        cache_bind_text(st, 3, e164);
        cache_bind_int(st, 4, status);
        cache_bind_int(st, 5, event_at);
        cache_bind_text(st, 6, reason);
        cache_bind_int(st, 7, now);
        if (cache_step(st) != SQLITE_DONE)
            return ERR_FAIL;
    }
    st = cache_stmt(c, "UPDATE numbers SET pending_writeback = 1 "
                       "WHERE local_id = ?1");
    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, local_id);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

int consent__cancel_writeback(cache *c, int64_t local_id)
{
    sqlite3_stmt *st =
        cache_stmt(c, "UPDATE outbox SET state = 'superseded', updated_at = ?2 "
                      "WHERE number_local_id = ?1 AND state = 'pending' "
                      "AND kind = 'dataverse'");

    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, local_id);
    cache_bind_int(st, 2, clock_now_ms());
    if (cache_step(st) != SQLITE_DONE)
        return ERR_FAIL;
    st = cache_stmt(c, "UPDATE numbers SET pending_writeback = 0 "
                       "WHERE local_id = ?1");
    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, local_id);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}
