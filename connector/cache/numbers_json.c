/*
 * numbers_json — see numbers_json.h.
 */
#include "numbers_json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mapping.h"

void numbers_json_col_text(cJSON *o, const char *name, sqlite3_stmt *st,
                           int col)
{
    const char *s = cache_col_text(st, col);

    cJSON_AddItemToObject(o, name,
                          s ? cJSON_CreateString(s) : cJSON_CreateNull());
}

void numbers_json_col_time(cJSON *o, const char *name, sqlite3_stmt *st,
                           int col)
{
    char at[32];

    if (sqlite3_column_type(st, col) == SQLITE_NULL) {
        cJSON_AddNullToObject(o, name);
        return;
    }
    mapping_time_format(at, sqlite3_column_int64(st, col));
    cJSON_AddStringToObject(o, name, at);
}

cJSON *numbers_row_json(sqlite3_stmt *st)
{
    cJSON *o = cJSON_CreateObject();
    const char *error = cache_col_text(st, 8);
    const char *warning = cache_col_text(st, 9);

    numbers_json_col_text(o, "id", st, 0);
    numbers_json_col_text(o, "configuration_id", st, 1);
    numbers_json_col_text(o, "phone", st, 2);
    numbers_json_col_text(o, "raw_phone", st, 3);
    cJSON_AddStringToObject(
        o, "status",
        consent_status_name((enum consent_status)sqlite3_column_int(st, 4)));
    cJSON_AddBoolToObject(o, "active", sqlite3_column_int(st, 5));
    numbers_json_col_time(o, "modified_on", st, 6);
    cJSON_AddBoolToObject(o, "pending_writeback", sqlite3_column_int(st, 7));
    if (error)
        cJSON_AddStringToObject(o, "phone_error", error);
    if (warning)
        cJSON_AddStringToObject(o, "phone_warning", warning);
    return o;
}

/* ---- cursors ------------------------------------------------------------ */

void numbers_cursor_format(char out[NUMBERS_CURSOR_MAX],
                           const struct numbers_cursor *c)
{
    if (c->unparseable)
        snprintf(out, NUMBERS_CURSOR_MAX, "u%" PRId64, c->local_id);
    else /* an E.164 key is "+" and digits: the digits are enough */
        snprintf(out, NUMBERS_CURSOR_MAX, "p%s.%" PRId64, c->e164 + 1,
                 c->local_id);
}

static int parse_id(int64_t *out, const char *s)
{
    int64_t v = 0;

    if (!*s || *s == '0' || strlen(s) > 18)
        return ERR_BADINPUT;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return ERR_BADINPUT;
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return 0;
}

int numbers_cursor_parse(struct numbers_cursor *out, const char *s)
{
    struct numbers_cursor c;
    const char *dot;
    size_t n;

    memset(&c, 0, sizeof(c));
    if (s[0] == 'u') {
        c.unparseable = 1;
    } else if (s[0] == 'p' && (dot = strchr(s, '.')) != NULL) {
        n = (size_t)(dot - s - 1);
        if (n < 1 || n + 2 > sizeof(c.e164))
            return ERR_BADINPUT;
        c.e164[0] = '+';
        memcpy(c.e164 + 1, s + 1, n);
        if (!phone_is_canonical(c.e164))
            return ERR_BADINPUT;
        s = dot;
    } else {
        return ERR_BADINPUT;
    }
    if (parse_id(&c.local_id, s + 1) != 0)
        return ERR_BADINPUT;
    *out = c;
    return 0;
}

/* ---- pages -------------------------------------------------------------- */

static sqlite3_stmt *page_stmt(cache *c, const struct numbers_cursor *cur)
{
    sqlite3_stmt *st;

    /* Both use numbers_by_phone (configuration_id, e164) and the rowid
     * it carries: one range scan from the cursor on. */
    if (!cur->unparseable) {
        st = cache_stmt(c, "SELECT " NUMBERS_JSON_COLUMNS ", local_id FROM "
                           "numbers WHERE configuration_id = ?1 AND "
                           "(e164, local_id) > (?2, ?3) "
                           "ORDER BY e164, local_id LIMIT ?4");
        if (st)
            cache_bind_text(st, 2, cur->e164);
    } else {
        st = cache_stmt(c, "SELECT " NUMBERS_JSON_COLUMNS ", local_id FROM "
                           "numbers WHERE configuration_id = ?1 AND "
                           "e164 IS NULL AND local_id > ?3 "
                           "ORDER BY local_id LIMIT ?4");
    }
    if (st)
        cache_bind_int(st, 3, cur->local_id);
    return st;
}

/* Appends up to `limit` rows after *cur; returns the count or < 0. */
static int page_part(cJSON *arr, struct numbers_cursor *cur, cache *c,
                     const char *conf, int limit)
{
    sqlite3_stmt *st = page_stmt(c, cur);
    int n = 0, rc;

    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, conf);
    cache_bind_int(st, 4, limit);
    while ((rc = cache_step(st)) == SQLITE_ROW) {
        cJSON_AddItemToArray(arr, numbers_row_json(st));
        if (!cur->unparseable)
            snprintf(cur->e164, sizeof(cur->e164), "%s", cache_col_text(st, 2));
        cur->local_id = sqlite3_column_int64(st, NUMBERS_JSON_NCOLS);
        n++;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? n : ERR_FAIL;
}

int numbers_page(cJSON **out, struct numbers_cursor *cursor, int *more,
                 cache *c, const char *configuration_id, int limit)
{
    cJSON *arr = cJSON_CreateArray();
    int n = 0, got;

    *more = 0;
    got = page_part(arr, cursor, c, configuration_id, limit);
    if (got >= 0 && got < limit && !cursor->unparseable) {
        /* The phones ran out: go on with the unparseable rows. */
        n = got;
        memset(cursor, 0, sizeof(*cursor));
        cursor->unparseable = 1;
        got = page_part(arr, cursor, c, configuration_id, limit - n);
    }
    if (got < 0) {
        cJSON_Delete(arr);
        return ERR_FAIL;
    }
    *more = n + got == limit;
    *out = arr;
    return 0;
}
