/*
 * numbers_json — the cached Opt-In / Opt-Out Number rows as docs/design.md's
 * numbers JSON shape, and cursor paging through them.  One row→JSON code
 * for `optsync numbers --json` and GET /v1/configurations/{id}/numbers.
 *
 * Pipeline position: a reader of the cache (numbers table); never writes.
 *
 * Shape: {"id": Dataverse id|null, "configuration_id", "phone":
 * E.164|null, "raw_phone", "status", "active", "modified_on",
 * "pending_writeback"} plus "phone_error" when the phone did not parse.
 *
 * Paging order: rows with a phone by (phone, local id), then unparseable
 * rows by local id.  A cursor names the last row of a page; the next page
 * starts after it, so rows added or removed meanwhile never shift a page
 * (keyset paging; each page is one index range scan).
 */
#ifndef OPTSYNC_NUMBERS_JSON_H
#define OPTSYNC_NUMBERS_JSON_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "cache.h"
#include "phone.h"

/* The columns numbers_row_json() reads, in this order (a literal, so
 * "SELECT " NUMBERS_JSON_COLUMNS " FROM numbers ..." stays one). */
#define NUMBERS_JSON_COLUMNS                                                   \
    "dv_id, configuration_id, e164, raw_phone, status, active, "               \
    "modified_on, pending_writeback, phone_error, phone_warning"
#define NUMBERS_JSON_NCOLS 10

/* One row (columns 0..9 as above) as a JSON object (cJSON_Delete it). */
cJSON *numbers_row_json(sqlite3_stmt *st);

/* Column `col` into `o` as `name`: text or null; an ISO 8601 time from
 * milliseconds or null. */
void numbers_json_col_text(cJSON *o, const char *name, sqlite3_stmt *st,
                           int col);
void numbers_json_col_time(cJSON *o, const char *name, sqlite3_stmt *st,
                           int col);

/* Where a page starts: after (e164, local_id), or after local_id among
 * the unparseable rows; the zero value is the first page. */
struct numbers_cursor {
    int unparseable;
    char e164[PHONE_E164_MAX];
    int64_t local_id;
};

/* "p4915123456789.42" / "u42" (at most 40 bytes); NUL-terminated. */
#define NUMBERS_CURSOR_MAX 48
void numbers_cursor_format(char out[NUMBERS_CURSOR_MAX],
                           const struct numbers_cursor *c);
/* Returns 0, or ERR_BADINPUT for anything numbers_cursor_format did not
 * write. */
int numbers_cursor_parse(struct numbers_cursor *out, const char *s);

/*
 * Up to `limit` rows of `configuration_id` after *cursor, as a JSON array
 * in *out (cJSON_Delete it); *cursor is advanced to the last row and
 * *more says whether rows may follow.  Returns 0 or ERR_FAIL.
 */
int numbers_page(cJSON **out, struct numbers_cursor *cursor, int *more,
                 cache *c, const char *configuration_id, int limit);

#endif
