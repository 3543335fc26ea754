/*
 * configurations — see configurations.h.
 */
#include "configurations.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "xalloc.h"

static char *dup_col(sqlite3_stmt *st, int idx)
{
    const char *s = cache_col_text(st, idx);

    return s ? xstrdup(s) : NULL;
}

void configuration_info_dispose(struct configuration_info *info)
{
    free(info->name);
    free(info->phone_number_id);
    free(info->waba_id);
    free(info->default_region);
    free(info->double_opt_in_template);
    free(info->opt_in_confirmation_template);
    free(info->opt_out_confirmation_template);
    memset(info, 0, sizeof(*info));
}

int configurations_get(struct configuration_info *out, cache *c, const char *id)
{
    sqlite3_stmt *st = cache_stmt(
        c, "SELECT id, name, double_opt_in, phone_number_id, waba_id, "
           "default_region, active, double_opt_in_template, "
           "opt_in_confirmation_template, opt_out_confirmation_template "
           "FROM configurations WHERE id = ?1");
    int rc;

    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, id);
    rc = cache_step(st);
    if (rc == SQLITE_DONE) {
        err_set(ERR_CLASS_INPUT, "no configuration with id %s", id);
        return ERR_NOTFOUND;
    }
    if (rc != SQLITE_ROW)
        return ERR_FAIL;
    memset(out, 0, sizeof(*out));
    snprintf(out->id, sizeof(out->id), "%s", cache_col_text(st, 0));
    out->name = dup_col(st, 1);
    out->double_opt_in = sqlite3_column_int(st, 2);
    out->phone_number_id = dup_col(st, 3);
    out->waba_id = dup_col(st, 4);
    out->default_region = dup_col(st, 5);
    out->double_opt_in_template = dup_col(st, 7);
    out->opt_in_confirmation_template = dup_col(st, 8);
    out->opt_out_confirmation_template = dup_col(st, 9);
    out->active = sqlite3_column_int(st, 6);
    sqlite3_reset(st);
    return 0;
}

/* Exactly one row of `st` (bound already) → its first column as id. */
static int single_id(char *out_id, sqlite3_stmt *st, const char *what)
{
    int rc = cache_step(st), found = 0;

    while (rc == SQLITE_ROW) {
        if (found++) {
            sqlite3_reset(st);
            err_set(ERR_CLASS_INPUT,
                    "several configurations match %s; use the id", what);
            return ERR_CONFLICT;
        }
        snprintf(out_id, MAPPING_GUID_LEN + 1, "%s", cache_col_text(st, 0));
        rc = cache_step(st);
    }
    if (rc != SQLITE_DONE)
        return ERR_FAIL;
    if (!found) {
        err_set(ERR_CLASS_INPUT, "no configuration matches %s", what);
        return ERR_NOTFOUND;
    }
    return 0;
}

int configurations_resolve(char *out_id, cache *c, const char *ref)
{
    char guid[MAPPING_GUID_LEN + 1];
    sqlite3_stmt *st;

    if (mapping_guid_normalize(guid, ref) == 0) {
        st = cache_stmt(c, "SELECT id FROM configurations WHERE id = ?1");
        if (!st)
            return ERR_FAIL;
        cache_bind_text(st, 1, guid);
        return single_id(out_id, st, ref);
    }
    st = cache_stmt(c, "SELECT id FROM configurations WHERE name = ?1");
    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, ref);
    return single_id(out_id, st, ref);
}

int configurations_find_by_phone_number_id(char *out_id, cache *c,
                                           const char *phone_number_id)
{
    sqlite3_stmt *st = cache_stmt(c, "SELECT id FROM configurations "
                                     "WHERE phone_number_id = ?1 "
                                     "AND active = 1");

    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, phone_number_id);
    return single_id(out_id, st, phone_number_id);
}

int configurations_same_waba(char (**out)[MAPPING_GUID_LEN + 1], size_t *count,
                             cache *c, const char *id)
{
    sqlite3_stmt *st =
        cache_stmt(c, "SELECT o.id FROM configurations AS me "
                      "JOIN configurations AS o ON o.id = me.id OR "
                      "(me.waba_id IS NOT NULL AND o.waba_id = me.waba_id "
                      "AND o.active = 1) WHERE me.id = ?1 ORDER BY o.id");
    char(*ids)[MAPPING_GUID_LEN + 1] = NULL;
    size_t n = 0;
    int rc;

    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, id);
    while ((rc = cache_step(st)) == SQLITE_ROW) {
        ids = xrealloc(ids, (n + 1) * sizeof(*ids));
        snprintf(ids[n++], MAPPING_GUID_LEN + 1, "%s", cache_col_text(st, 0));
    }
    if (rc != SQLITE_DONE) {
        free(ids);
        return ERR_FAIL;
    }
    *out = ids;
    *count = n;
    return 0;
}

int configurations_put(cache *c, const struct configuration_record *rec,
                       int64_t sweep_mark)
{
    sqlite3_stmt *st = cache_stmt(
        c, "INSERT INTO configurations(id, name, double_opt_in, "
           "phone_number_id, waba_id, default_region, active, modified_on, "
           "version, sweep_mark, double_opt_in_template, "
           "opt_in_confirmation_template, opt_out_confirmation_template) "
           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) "
           "ON CONFLICT(id) DO UPDATE SET name = excluded.name, "
           "double_opt_in = excluded.double_opt_in, "
           "phone_number_id = excluded.phone_number_id, "
           "waba_id = excluded.waba_id, "
           "default_region = excluded.default_region, "
           "active = excluded.active, modified_on = excluded.modified_on, "
           "version = excluded.version, "
           "double_opt_in_template = excluded.double_opt_in_template, "
           "opt_in_confirmation_template = "
           "excluded.opt_in_confirmation_template, "
           "opt_out_confirmation_template = "
           "excluded.opt_out_confirmation_template, "
           "sweep_mark = max(sweep_mark, excluded.sweep_mark)");

    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, rec->id);
    cache_bind_text(st, 2, rec->name);
    cache_bind_int(st, 3, rec->double_opt_in);
    cache_bind_text(st, 4, rec->phone_number_id);
    cache_bind_text(st, 5, rec->waba_id);
    cache_bind_text(st, 6, rec->default_region);
    cache_bind_int(st, 7, rec->active);
    cache_bind_opt_int(st, 8, rec->modified_on);
    cache_bind_opt_int(st, 9, rec->version);
    cache_bind_int(st, 10, sweep_mark);
    cache_bind_text(st, 11, rec->double_opt_in_template);
    cache_bind_text(st, 12, rec->opt_in_confirmation_template);
    cache_bind_text(st, 13, rec->opt_out_confirmation_template);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

int configurations_delete(cache *c, const char *id)
{
    sqlite3_stmt *st =
        cache_stmt(c, "DELETE FROM configurations WHERE id = ?1");

    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, id);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}
