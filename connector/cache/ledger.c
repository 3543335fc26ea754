/*
 * ledger — see ledger.h for the design notes and the byte form.
 */
#include "ledger.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "err.h"
#include "jsonutil.h"
#include "xalloc.h"

#define ZERO_HASH                                                              \
    "0000000000000000000000000000000000000000000000000000000000000000"

char *ledger_byte_form(const struct ledger_entry *e, size_t *len)
{
    char *s = xasprintf("optsync-ledger-v1\n%" PRId64 "\n%" PRId64
                        "\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n",
                        e->seq, e->at, e->configuration_id, e->phone,
                        consent_status_name(e->from),
                        consent_status_name(e->to), e->source, e->evidence,
                        e->prev_hash[0] ? e->prev_hash : ZERO_HASH);

    if (len)
        *len = strlen(s);
    return s;
}

void ledger_hash(struct ledger_entry *e)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, i;
    size_t len;
    char *form = ledger_byte_form(e, &len);

    if (!EVP_Digest(form, len, md, &mdlen, EVP_sha256(), NULL))
        abort(); /* SHA-256 cannot fail short of a broken OpenSSL */
    for (i = 0; i < mdlen && i < 32; i++) {
        e->hash[2 * i] = hex[md[i] >> 4];
        e->hash[2 * i + 1] = hex[md[i] & 0xf];
    }
    e->hash[64] = '\0';
    free(form);
}

static int read_head(cache *c, int64_t *count, char *last_hash)
{
    sqlite3_stmt *st =
        cache_stmt(c, "SELECT count, last_hash FROM ledger_head WHERE id = 1");
    const char *h;

    if (!st || cache_step(st) != SQLITE_ROW) {
        err_prefix("ledger head");
        return ERR_FAIL;
    }
    *count = sqlite3_column_int64(st, 0);
    h = cache_col_text(st, 1);
    snprintf(last_hash, LEDGER_HASH_HEX, "%s", h ? h : "");
    sqlite3_reset(st);
    return 0;
}

static int insert_entry(cache *c, const struct ledger_entry *e)
{
    sqlite3_stmt *st = cache_stmt(
        c, "INSERT INTO ledger(seq, at, recorded_at, configuration_id, "
           "phone, from_status, to_status, source, evidence, hash) "
           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");

    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, e->seq);
    cache_bind_int(st, 2, e->at);
    cache_bind_int(st, 3, e->recorded_at);
    cache_bind_text(st, 4, e->configuration_id);
    cache_bind_text(st, 5, e->phone);
    cache_bind_int(st, 6, e->from);
    cache_bind_int(st, 7, e->to);
    cache_bind_text(st, 8, e->source);
    cache_bind_text(st, 9, e->evidence);
    cache_bind_text(st, 10, e->hash);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

int ledger_append(cache *c, struct ledger_entry *e)
{
    sqlite3_stmt *st;
    int64_t count;
    int rc;

    rc = read_head(c, &count, e->prev_hash);
    if (rc)
        return rc;
    if (!e->evidence)
        e->evidence = "{}";
    e->seq = count + 1;
    e->recorded_at = clock_now_ms();
    ledger_hash(e);
    rc = insert_entry(c, e);
    if (rc)
        return rc;
    st = cache_stmt(c, "UPDATE ledger_head SET count = ?1, last_hash = ?2 "
                       "WHERE id = 1");
    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, e->seq);
    cache_bind_text(st, 2, e->hash);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

/* ---- reading ------------------------------------------------------------ */

#define ENTRY_COLUMNS                                                          \
    "seq, at, recorded_at, configuration_id, phone, from_status, "             \
    "to_status, source, evidence, hash"

static void entry_from_row(struct ledger_entry *e, sqlite3_stmt *st)
{
    const char *h = cache_col_text(st, 9);

    e->seq = sqlite3_column_int64(st, 0);
    e->at = sqlite3_column_int64(st, 1);
    e->recorded_at = sqlite3_column_int64(st, 2);
    e->configuration_id = cache_col_text(st, 3);
    e->phone = cache_col_text(st, 4);
    e->from = (enum consent_status)sqlite3_column_int(st, 5);
    e->to = (enum consent_status)sqlite3_column_int(st, 6);
    e->source = cache_col_text(st, 7);
    e->evidence = cache_col_text(st, 8);
    snprintf(e->hash, sizeof(e->hash), "%s", h ? h : "");
    if (!e->configuration_id)
        e->configuration_id = "";
    if (!e->phone)
        e->phone = "";
    if (!e->source)
        e->source = "";
    if (!e->evidence)
        e->evidence = "";
}

/* Checks one entry against the chain so far; 0 when it fits. */
static int check_entry(struct ledger_verify_result *out,
                       const struct ledger_entry *stored, int64_t expect_seq,
                       const char *prev)
{
    struct ledger_entry e = *stored;

    if (stored->seq != expect_seq) {
        out->bad_seq = expect_seq;
        snprintf(out->reason, sizeof(out->reason),
                 "entry %" PRId64 " is missing (the next one is %" PRId64
                 "): deleted",
                 expect_seq, stored->seq);
        return -1;
    }
    snprintf(e.prev_hash, sizeof(e.prev_hash), "%s", prev);
    ledger_hash(&e);
    if (strcmp(e.hash, stored->hash) != 0) {
        out->bad_seq = stored->seq;
        snprintf(out->reason, sizeof(out->reason),
                 "entry %" PRId64 " does not match its hash: edited, or "
                 "entries reordered or deleted before it",
                 stored->seq);
        return -1;
    }
    return 0;
}

static void check_head(struct ledger_verify_result *out, int64_t head_count,
                       const char *head_hash, const char *last)
{
    if (head_count > out->count) {
        out->bad_seq = out->count + 1;
        snprintf(out->reason, sizeof(out->reason),
                 "the head records %" PRId64 " entries but only %" PRId64
                 " exist: entries from %" PRId64 " on were deleted",
                 head_count, out->count, out->count + 1);
    } else if (head_count < out->count || strcmp(head_hash, last) != 0) {
        out->bad_seq = head_count + 1;
        snprintf(out->reason, sizeof(out->reason),
                 "the head (%" PRId64 " entries) does not match the chain "
                 "(%" PRId64 " entries): head or entries edited",
                 head_count, out->count);
    } else {
        out->intact = 1;
    }
}

int ledger_verify(struct ledger_verify_result *out, cache *c)
{
    char prev[LEDGER_HASH_HEX] = ZERO_HASH, head_hash[LEDGER_HASH_HEX];
    struct ledger_entry e;
    sqlite3_stmt *st;
    int64_t head_count;
    int rc;

    memset(out, 0, sizeof(*out));
    if (read_head(c, &head_count, head_hash) != 0)
        return ERR_FAIL;
    if (!head_hash[0])
        snprintf(head_hash, sizeof(head_hash), ZERO_HASH);
    st = cache_stmt(c, "SELECT " ENTRY_COLUMNS " FROM ledger ORDER BY seq");
    if (!st)
        return ERR_FAIL;
    while ((rc = cache_step(st)) == SQLITE_ROW) {
        memset(&e, 0, sizeof(e));
        entry_from_row(&e, st);
        if (check_entry(out, &e, out->count + 1, prev) != 0) {
            sqlite3_reset(st);
            return 0;
        }
        memcpy(prev, e.hash, sizeof(prev));
        out->count++;
    }
    if (rc != SQLITE_DONE)
        return ERR_FAIL;
    check_head(out, head_count, head_hash, prev);
    return 0;
}

int ledger_foreach(cache *c, const struct ledger_filter *f,
                   ledger_visit_fn visit, void *payload)
{
    sqlite3_stmt *st =
        cache_stmt(c, "SELECT " ENTRY_COLUMNS " FROM ledger WHERE "
                      "(?1 IS NULL OR configuration_id = ?1) AND "
                      "(?2 IS NULL OR phone = ?2) AND at >= ?3 ORDER BY seq");
    struct ledger_entry e;
    int rc, stop = 0;

    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, f ? f->configuration_id : NULL);
    cache_bind_text(st, 2, f ? f->phone : NULL);
    cache_bind_int(st, 3, f ? f->since : 0);
    while (!stop && (rc = cache_step(st)) == SQLITE_ROW) {
        memset(&e, 0, sizeof(e));
        entry_from_row(&e, st);
        stop = visit(&e, payload);
    }
    sqlite3_reset(st);
    if (stop)
        return stop;
    return rc == SQLITE_DONE ? 0 : ERR_FAIL;
}

cJSON *ledger_entry_json(const struct ledger_entry *e)
{
    cJSON *o = cJSON_CreateObject(), *ev;
    char at[32], rec[32];

    mapping_time_format(at, e->at);
    mapping_time_format(rec, e->recorded_at);
    cJSON_AddNumberToObject(o, "seq", (double)e->seq);
    cJSON_AddStringToObject(o, "at", at);
    cJSON_AddNumberToObject(o, "at_ms", (double)e->at);
    cJSON_AddStringToObject(o, "configuration_id", e->configuration_id);
    cJSON_AddStringToObject(o, "phone", e->phone);
    cJSON_AddStringToObject(o, "from", consent_status_name(e->from));
    cJSON_AddStringToObject(o, "to", consent_status_name(e->to));
    cJSON_AddStringToObject(o, "source", e->source);
    ev = cJSON_Parse(e->evidence);
    cJSON_AddItemToObject(o, "evidence", ev ? ev : cJSON_CreateObject());
    cJSON_AddStringToObject(o, "hash", e->hash);
    cJSON_AddStringToObject(o, "recorded_at", rec);
    return o;
}
