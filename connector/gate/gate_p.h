/*
 * gate_p — shared between the pieces of the send-gate only: gate.c (the
 * API and the rules), gate_index.c (the in-memory index) and
 * gate_refresh.c (noticing commits, catching up, rebuilding).
 */
#ifndef OPTSYNC_GATE_P_H
#define OPTSYNC_GATE_P_H

#include "gate.h"

/* A number key packs the Configuration's slot and the E.164 digits into
 * 61 bits (gate_index.c keeps a status and a flag in the other three):
 * 10^15 - 1 < 2^50, so 11 bits are left for 2047 Configurations. */
#define GATE_NUMBER_BITS 50
#define GATE_CONF_MAX ((1u << (61 - GATE_NUMBER_BITS)) - 1)

/* What the active rows of one number say (design note 4). */
struct gate__view {
    enum consent_status status; /* strictest; meaningful when rows > 0 */
    int rows;                   /* 0: no record */
    int64_t paused_until;       /* latest; 0 when none */
    int topic_out;              /* the asked topic is in a topic list */
};

/* The same folded for storage: the whole topic list instead of one. */
struct gate__agg {
    enum consent_status status;
    int rows;
    int64_t paused_until;
    char *topics; /* owned; comma list (union of the rows'); NULL: none */
};

/* An open-addressing table of 64-bit words (0: empty), with an optional
 * parallel array of values. */
struct gate__table {
    uint64_t *w; /* owned; mask + 1 words */
    uint32_t *v; /* owned; parallel to w, or NULL */
    size_t mask;
    size_t count;
};

struct gate__extra {
    int64_t paused_until;
    char *topics; /* owned; NULL: none */
};

struct gate__index {
    struct gate__table numbers;  /* key | status | has-preferences */
    struct gate__table extra_of; /* key -> 1-based index into extras */
    struct gate__extra *extras;  /* owned */
    uint32_t n_extras, cap_extras;
    uint32_t *free_extras; /* owned; indexes of unused extras */
    uint32_t n_free, cap_free;
};

/* One Configuration as the gate knows it (slots are never reused, so a
 * number key stays valid when the table is reloaded). */
struct gate__conf {
    char id[MAPPING_GUID_LEN + 1];
    char *name;   /* owned; NULL when not in the configurations table */
    char *region; /* owned; its default_region, NULL: the config's */
    int known;    /* a configurations row exists */
    int active;
    int double_opt_in;
};

struct gate {
    cache *c; /* borrowed */
    struct gate_options opts;
    char *default_region; /* owned; opts.default_region points here */
    int broken;           /* note (1): reload before answering */

    /* Noticing commits (note 2). */
    const volatile uint32_t *wal_hdr; /* SQLite's mapping; NULL: fallback */
    uint32_t seen_hdr[12];            /* header as last read */
    unsigned int seen_version;        /* fallback: data version */

    /* What the cache said when last read. */
    int64_t last_sync;        /* start of the last successful sync; 0: none */
    struct gate__conf *confs; /* owned */
    uint32_t n_confs, cap_confs;
    uint32_t last_slot; /* gate__conf_slot()'s last answer */
    unsigned conf_gen;  /* bumped when the table is reloaded */
    char last_ref[64];  /* last configuration reference resolved */
    int last_ref_slot;  /* its slot, -1: unknown */
    unsigned last_ref_gen;

    /* The index (note 3). */
    struct gate__index ix;
    int64_t journal_pos; /* last gate_journal seq applied */
    int64_t rows_seen;   /* highest numbers.local_id read */

    struct gate_stats stats; /* numbers is filled in by gate_stats() */
};

/* ---- gate_index.c ------------------------------------------------------- */

void gate__index_init(struct gate__index *ix);
void gate__index_dispose(struct gate__index *ix);
void gate__index_clear(struct gate__index *ix);
size_t gate__index_count(const struct gate__index *ix);

/* Replaces the entry of `key` by `a`; removes it when a->rows == 0. */
void gate__index_set(struct gate__index *ix, uint64_t key,
                     const struct gate__agg *a);

/* Folds one more active row into the entry of `key` (rebuilds). */
void gate__index_merge(struct gate__index *ix, uint64_t key,
                       enum consent_status status, const char *topics,
                       int64_t paused_until);

/* Starts loading the slot of `key` (a hint; the lookup follows soon). */
void gate__index_prefetch(const struct gate__index *ix, uint64_t key);

/* Folds the entry of `key`, if any, into *v (asking about `topic`). */
void gate__index_view(const struct gate__index *ix, uint64_t key,
                      const char *topic, struct gate__view *v);

/* Folds one row (or an aggregate) into a view / an aggregate. */
void gate__view_add(struct gate__view *v, enum consent_status status,
                    const char *topics, int64_t paused_until,
                    const char *topic);
void gate__agg_add(struct gate__agg *a, enum consent_status status,
                   const char *topics, int64_t paused_until);
void gate__agg_dispose(struct gate__agg *a);

/* True when `topic` is an item of the comma list (trimmed, ASCII case
 * folded). */
int gate__topic_listed(const char *list, const char *topic);

/* Narrows [*s, *s + *n) to drop blanks on both sides. */
void gate__trim(const char **s, size_t *n);

/* "+4915123456789" → 4915123456789; 0 when not in key form. */
uint64_t gate__number(const char *e164);

/* ---- gate_refresh.c ----------------------------------------------------- */

/* Finds the WAL-index header (note 2); the fallback when there is none. */
void gate__watch_init(gate *g);

/*
 * Brings the gate up to the database (notes 1-3): nothing when no commit
 * happened since the last call, a catch-up when one did, a rebuild when
 * BROKEN.  Returns 0, or ERR_FAIL (the gate is BROKEN).
 */
int gate__refresh(gate *g);

/* Rebuilds everything from the cache (gate_new, BROKEN). */
int gate__reload(gate *g);

/* Slot of Configuration `id` (lower-case GUID), added when new; -1 when
 * the table is full. */
int gate__conf_slot(gate *g, const char *id);

/*
 * Folds the active rows of (configuration, any of keys[0..n)) into *out
 * (zeroed first; dispose it).  Returns 0 or ERR_FAIL.
 */
int gate__rows_agg(struct gate__agg *out, gate *g, const char *conf_id,
                   char (*keys)[PHONE_E164_MAX], size_t n_keys);

#endif
