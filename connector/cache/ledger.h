/*
 * ledger — the append-only, hash-chained record of every consent
 * transition: what changed, when, why, and the evidence.
 *
 * Pipeline position: written only by the consent engine, inside the same
 * transaction as the number rows it describes; read by `history`,
 * `ledger verify` and `ledger export`.  Never updated, never deleted
 * (deleting a row in Dynamics deletes no ledger entry).
 *
 * Design notes
 *  (1) seq runs 1, 2, 3 ... without gaps.
 *  (2) Each entry's hash is SHA-256 over its byte form (below), which
 *      ends with the previous entry's hash: editing, deleting or
 *      reordering any entry breaks every hash from there on.
 *  (3) The head row stores the count and the last hash, so deleting the
 *      last entry (which breaks no chain) is detected too.
 *
 * Byte form (version 1), UTF-8, each field followed by one "\n":
 *
 *     optsync-ledger-v1
 *     <seq, decimal>
 *     <at: event time, milliseconds since the Unix epoch, decimal>
 *     <configuration_id>
 *     <phone>
 *     <from status name>     none | single_opt_in | double_opt_in |
 *     <to status name>       opted_out
 *     <source>
 *     <evidence: canonical JSON, see jsonutil_canonical>
 *     <previous hash: 64 lower-case hex digits; 64 zeros for seq 1>
 *
 * hash = lower-case hex of SHA-256(byte form).  `recorded_at` is kept but
 * not hashed (it is when we wrote it, not what happened).  `ledger
 * export` prints every field needed to recompute the chain outside
 * optsync (see README: verifying an export).
 */
#ifndef OPTSYNC_LEDGER_H
#define OPTSYNC_LEDGER_H

#include <stdint.h>
#include <stdio.h>

#include "cache.h"
#include "mapping.h"

#define LEDGER_HASH_HEX 65 /* 64 hex digits + NUL */

struct ledger_entry {
    int64_t seq;                  /* set by ledger_append */
    int64_t at;                   /* event time (ms) */
    int64_t recorded_at;          /* set by ledger_append */
    const char *configuration_id; /* borrowed */
    const char *phone;            /* borrowed */
    enum consent_status from, to;
    const char *source;   /* borrowed */
    const char *evidence; /* borrowed; canonical JSON object text */
    char prev_hash[LEDGER_HASH_HEX];
    char hash[LEDGER_HASH_HEX]; /* set by ledger_append */
};

/*
 * Appends `e` in the caller's open transaction: fills seq, recorded_at,
 * prev_hash and hash, inserts the row and moves the head.
 * Returns 0 or ERR_FAIL.
 */
int ledger_append(cache *c, struct ledger_entry *e);

/* The byte form of `e` (malloc'd), hashed as described above. */
char *ledger_byte_form(const struct ledger_entry *e, size_t *len);

/* hex SHA-256 of `e`'s byte form into e->hash. */
void ledger_hash(struct ledger_entry *e);

struct ledger_verify_result {
    int intact;
    int64_t count;    /* entries checked */
    int64_t bad_seq;  /* first broken entry (0 when intact) */
    char reason[160]; /* what is wrong there */
};

/* Walks the whole chain.  Returns 0 (see out->intact) or ERR_FAIL. */
int ledger_verify(struct ledger_verify_result *out, cache *c);

/* Filter for ledger_foreach: NULL / 0 fields match everything. */
struct ledger_filter {
    const char *configuration_id;
    const char *phone;
    int64_t since; /* at >= since (ms) */
};

typedef int (*ledger_visit_fn)(const struct ledger_entry *e, void *payload);

/*
 * Calls `visit` for each matching entry in seq order; a non-zero return
 * stops the walk and is returned.  Strings in the entry are valid during
 * the call only.
 */
int ledger_foreach(cache *c, const struct ledger_filter *filter,
                   ledger_visit_fn visit, void *payload);

/* The entry as the JSON object of history / export (cJSON_Delete it). */
cJSON *ledger_entry_json(const struct ledger_entry *e);

#endif
