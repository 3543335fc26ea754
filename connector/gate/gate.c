/*
 * gate — the send-gate's API and its rules: resolving the Configuration
 * and the phone, the order of the deny reasons, the frequency caps and
 * recording sends.  gate.h has the design notes; gate_refresh.c keeps
 * the gate level with the database; gate_index.c is the index.
 *
 * Never allows on an error (note 1): every path that cannot finish a
 * decision leaves the result at deny.
 */
#include "gate_p.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "consent.h"
#include "err.h"
#include "xalloc.h"

static const char *const reason_names[GATE_REASON_COUNT] = {
    [GATE_CACHE_STALE] = "cache_stale",
    [GATE_UNKNOWN_CONFIGURATION] = "unknown_configuration",
    [GATE_INVALID_PHONE] = "invalid_phone",
    [GATE_OPTED_OUT] = "opted_out",
    [GATE_NO_CONSENT] = "no_consent",
    [GATE_DOUBLE_OPT_IN_REQUIRED] = "double_opt_in_required",
    [GATE_TOPIC_OPTED_OUT] = "topic_opted_out",
    [GATE_PAUSED] = "paused",
    [GATE_FREQUENCY_CAPPED] = "frequency_capped",
    [GATE_ALLOWED] = "allowed",
};

const char *gate_reason_name(enum gate_reason r)
{
    return (unsigned)r < GATE_REASON_COUNT ? reason_names[r] : "cache_stale";
}

const char *gate_decision_name(enum gate_decision d)
{
    return d == GATE_ALLOW ? "allow" : "deny";
}

void gate_options_from_config(struct gate_options *out,
                              const struct optsync_config *cfg)
{
    static const struct gate_options defaults = GATE_OPTIONS_INIT;

    *out = defaults;
    out->max_staleness_ms = cfg->sync.max_staleness * 1000;
    out->frequency_cap = cfg->gate.frequency_cap;
    out->topic_frequency_cap = cfg->gate.topic_frequency_cap;
    out->frequency_period_ms = cfg->gate.frequency_period * 1000;
    out->default_region = cfg->consent.default_region;
}

/* ---- life cycle ------------------------------------------------------- */

int gate_new(gate **out, cache *c, const struct gate_options *opts)
{
    gate *g = xcalloc(1, sizeof(*g));
    sqlite3_stmt *st;

    g->c = c;
    g->opts = *opts;
    g->default_region =
        opts->default_region ? xstrdup(opts->default_region) : NULL;
    g->opts.default_region = g->default_region;
    g->last_ref_slot = -1;
    gate__index_init(&g->ix);
    /* One read first: it opens the WAL and maps its index. */
    st = cache_stmt(c, "PRAGMA data_version");
    if (!st || cache_step(st) != SQLITE_ROW)
        goto fail;
    sqlite3_reset(st);
    gate__watch_init(g);
    if (gate__reload(g) != 0)
        goto fail;
    *out = g;
    return 0;
fail:
    gate_free(g);
    return ERR_FAIL;
}

void gate_free(gate *g)
{
    uint32_t i;

    if (!g)
        return;
    gate__index_dispose(&g->ix);
    for (i = 0; i < g->n_confs; i++) {
        free(g->confs[i].name);
        free(g->confs[i].region);
    }
    free(g->confs);
    free(g->default_region);
    free(g);
}

void gate_stats(struct gate_stats *out, const gate *g)
{
    *out = g->stats;
    out->numbers = g->opts.index ? gate__index_count(&g->ix) : 0;
}

/* ---- resolving the input ---------------------------------------------- */

/* Slot of the known Configuration `ref` names (id in any GUID spelling,
 * or an exact name held by exactly one), or -1. */
static int conf_lookup(const gate *g, const char *ref)
{
    char guid[MAPPING_GUID_LEN + 1];
    uint32_t i;
    int found = -1;

    if (mapping_guid_normalize(guid, ref) == 0) {
        for (i = 0; i < g->n_confs; i++)
            if (g->confs[i].known && strcmp(g->confs[i].id, guid) == 0)
                return (int)i;
        return -1;
    }
    for (i = 0; i < g->n_confs; i++) {
        if (!g->confs[i].known || strcmp(g->confs[i].name, ref) != 0)
            continue;
        if (found >= 0)
            return -1; /* ambiguous: never guess which one */
        found = (int)i;
    }
    return found;
}

/* conf_lookup with a one-entry cache: journeys ask for one Configuration
 * many times in a row. */
static int conf_resolve(gate *g, const char *ref)
{
    int slot;

    if (!ref || !*ref)
        return -1;
    if (g->last_ref_gen == g->conf_gen && strcmp(g->last_ref, ref) == 0)
        return g->last_ref_slot;
    slot = conf_lookup(g, ref);
    if (strlen(ref) < sizeof(g->last_ref)) {
        memcpy(g->last_ref, ref, strlen(ref) + 1);
        g->last_ref_slot = slot;
        g->last_ref_gen = g->conf_gen;
    }
    return slot;
}

/* What every decision of one call shares. */
struct ask {
    const struct gate__conf *cf; /* borrowed; NULL: unknown (or inactive) */
    int slot;                    /* cf's slot, or -1 */
    const char *region;          /* for national numbers; may be NULL */
    const char *topic;           /* trimmed; NULL: none */
    size_t topic_len;
    int64_t now; /* read once per call, by clock_read() */
    int fresh;   /* a successful sync within max_staleness */
    int clock_read;
};

static void ask_init(struct ask *a, gate *g, const char *configuration,
                     const char *topic)
{
    int slot = conf_resolve(g, configuration);
    const struct gate__conf *cf = slot >= 0 ? &g->confs[slot] : NULL;

    a->clock_read = 0;
    /* Inactive Configurations count as no record, like inactive rows. */
    a->cf = cf && cf->known && cf->active ? cf : NULL;
    a->slot = slot;
    a->region = cf && cf->region ? cf->region : g->default_region;
    a->topic = topic;
    a->topic_len = topic ? strlen(topic) : 0;
    if (topic)
        gate__trim(&a->topic, &a->topic_len);
    if (!a->topic_len)
        a->topic = NULL;
}

/* "now" for the whole call, on its first decision.  Reading the clock
 * serialises the CPU (the vDSO's rdtsc is fenced), so decide_one() asks
 * for it after it has started the index's memory access (note 2's check
 * and the parse come before it). */
static void clock_read(struct ask *a, const gate *g)
{
    if (a->clock_read)
        return;
    a->now = clock_now_ms();
    a->fresh =
        cache_sync_is_fresh(g->last_sync, a->now, g->opts.max_staleness_ms);
    a->clock_read = 1;
}

/* ---- the rules -------------------------------------------------------- */

/* Reasons 4-8 of gate.h, from what the rows say. */
static enum gate_reason consent_rules(const struct gate__view *v,
                                      const struct gate__conf *cf, int64_t now)
{
    if (v->rows && v->status == CONSENT_OPTED_OUT)
        return GATE_OPTED_OUT;
    if (!v->rows || v->status == CONSENT_NONE)
        return GATE_NO_CONSENT;
    if (v->status == CONSENT_SINGLE_OPT_IN && cf->double_opt_in)
        return GATE_DOUBLE_OPT_IN_REQUIRED;
    if (v->status != CONSENT_SINGLE_OPT_IN &&
        v->status != CONSENT_DOUBLE_OPT_IN)
        return GATE_NO_CONSENT; /* a status we do not know: deny */
    if (v->topic_out)
        return GATE_TOPIC_OPTED_OUT;
    if (v->paused_until > now)
        return GATE_PAUSED;
    return GATE_ALLOWED;
}

static void bind_keys(sqlite3_stmt *st, char (*keys)[PHONE_E164_MAX], size_t n)
{
    size_t i;

    for (i = 0; i < 1 + PHONE_ALIASES_MAX; i++)
        cache_bind_text(st, (int)i + 2, i < n ? keys[i] : NULL);
}

/* Reason 9: sends of the number (any of its keys) within the period. */
static int caps(enum gate_reason *reason, gate *g, const struct ask *a,
                char (*keys)[PHONE_E164_MAX], size_t n)
{
    int64_t cap = g->opts.frequency_cap;
    int64_t topic_cap = a->topic ? g->opts.topic_frequency_cap : 0;
    int64_t total, on_topic;
    sqlite3_stmt *st;

    if (!cap && !topic_cap)
        return 0;
    st = cache_stmt(g->c, "SELECT count(*), coalesce(sum(topic = ?7 "
                          "COLLATE NOCASE), 0) FROM sends WHERE "
                          "configuration_id = ?1 AND "
                          "e164 IN (?2, ?3, ?4, ?5, ?6) AND at > ?8");
    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, a->cf->id);
    bind_keys(st, keys, n);
    if (a->topic)
        sqlite3_bind_text(st, 7, a->topic, (int)a->topic_len, SQLITE_TRANSIENT);
    cache_bind_int(st, 8, a->now - g->opts.frequency_period_ms);
    if (cache_step(st) != SQLITE_ROW)
        return ERR_FAIL;
    total = sqlite3_column_int64(st, 0);
    on_topic = sqlite3_column_int64(st, 1);
    sqlite3_reset(st);
    if ((cap && total >= cap) || (topic_cap && on_topic >= topic_cap))
        *reason = GATE_FREQUENCY_CAPPED;
    return 0;
}

/* The index key of `number` under the asked Configuration. */
static uint64_t key_of(const struct ask *a, uint64_t number)
{
    return (uint64_t)a->slot << GATE_NUMBER_BITS | number;
}

/* What the active rows of keys[0..n) say, from the index or SQLite;
 * number0 is keys[0] as gate__number() reads it. */
static int look_up(struct gate__view *v, gate *g, const struct ask *a,
                   char (*keys)[PHONE_E164_MAX], size_t n, uint64_t number0)
{
    struct gate__agg agg;
    uint64_t number;
    size_t i;

    memset(v, 0, sizeof(*v));
    if (g->opts.index) {
        for (i = 0; i < n; i++) {
            number = i ? gate__number(keys[i]) : number0;
            if (number)
                gate__index_view(&g->ix, key_of(a, number), a->topic, v);
        }
        return 0;
    }
    if (gate__rows_agg(&agg, g, a->cf->id, keys, n) != 0)
        return ERR_FAIL;
    if (agg.rows)
        gate__view_add(v, agg.status, agg.topics, agg.paused_until, a->topic);
    v->rows = agg.rows;
    gate__agg_dispose(&agg);
    return 0;
}

static int verdict(gate *g, struct gate_result *out, enum gate_reason r)
{
    out->reason = r;
    out->decision = r == GATE_ALLOWED ? GATE_ALLOW : GATE_DENY;
    g->stats.decisions[r]++;
    return 0;
}

/* One decision, reasons in gate.h's order. */
static int decide_one(struct gate_result *out, gate *g, struct ask *a,
                      const char *phone)
{
    char keys[1 + PHONE_ALIASES_MAX][PHONE_E164_MAX];
    enum gate_reason reason;
    struct gate__view v;
    uint64_t number = 0;
    size_t n;

    memset(out, 0, sizeof(*out)); /* deny, cache_stale, none, no e164 */
    if (phone_parse(out->e164, phone, a->region, NULL) != 0)
        out->e164[0] = '\0';
    else
        number = gate__number(out->e164);
    /* Start the one memory access that misses the cache, then do the
     * rest while it is under way. */
    if (number && a->cf && g->opts.index)
        gate__index_prefetch(&g->ix, key_of(a, number));
    clock_read(a, g);
    if (!a->fresh)
        return verdict(g, out, GATE_CACHE_STALE);
    if (!a->cf)
        return verdict(g, out, GATE_UNKNOWN_CONFIGURATION);
    if (!out->e164[0])
        return verdict(g, out, GATE_INVALID_PHONE);
    memcpy(keys[0], out->e164, sizeof(keys[0]));
    n = 1 + phone_aliases(keys + 1, PHONE_ALIASES_MAX, keys[0]);
    if (look_up(&v, g, a, keys, n, number) != 0)
        return ERR_FAIL;
    out->status = v.rows ? v.status : CONSENT_NONE;
    reason = consent_rules(&v, a->cf, a->now);
    if (reason == GATE_ALLOWED && caps(&reason, g, a, keys, n) != 0)
        return ERR_FAIL;
    return verdict(g, out, reason);
}

/* ---- the API ---------------------------------------------------------- */

static void fail_closed(gate *g, struct gate_result *out, size_t n)
{
    memset(out, 0, n * sizeof(*out)); /* deny, cache_stale */
    g->stats.decisions[GATE_CACHE_STALE] += n;
    g->stats.failures++;
}

/* The gate reads committed state only: inside a transaction of its
 * connection it cannot tell what is committed, so it answers nothing. */
static int in_transaction(const gate *g)
{
    if (sqlite3_get_autocommit(cache_db(g->c)))
        return 0;
    err_set(ERR_CLASS_DB, "the send-gate was asked inside an open "
                          "transaction of its connection");
    return 1;
}

int gate_decide_bulk(struct gate_result *out, gate *g,
                     const char *configuration, const char *const *phones,
                     size_t n, const char *topic)
{
    struct ask a;
    size_t i;
    int rc;

    if (in_transaction(g)) {
        fail_closed(g, out, n);
        return ERR_FAIL;
    }
    rc = gate__refresh(g);
    if (rc == 0) {
        ask_init(&a, g, configuration, topic);
        for (i = 0; rc == 0 && i < n; i++)
            rc = decide_one(&out[i], g, &a, phones[i]);
    }
    if (rc) {
        g->broken = 1; /* note 1: reload before the next answer */
        fail_closed(g, out, n);
        return ERR_FAIL;
    }
    return 0;
}

int gate_decide(struct gate_result *out, gate *g, const char *configuration,
                const char *phone, const char *topic)
{
    return gate_decide_bulk(out, g, configuration, &phone, 1, topic);
}

/* ---- recording sends -------------------------------------------------- */

static int send_insert(cache *c, const char *conf_id, const char *e164,
                       const char *topic, int64_t at)
{
    sqlite3_stmt *st =
        cache_stmt(c, "INSERT INTO sends(configuration_id, e164, topic, at) "
                      "VALUES (?1, ?2, ?3, ?4)");
    size_t len = topic ? strlen(topic) : 0;

    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, conf_id);
    cache_bind_text(st, 2, e164);
    if (topic)
        gate__trim(&topic, &len);
    if (len)
        sqlite3_bind_text(st, 3, topic, (int)len, SQLITE_TRANSIENT);
    cache_bind_int(st, 4, at);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

/* Sends outside every window can never count again. */
static int send_prune(cache *c, const char *conf_id, const char *e164,
                      int64_t period_ms)
{
    sqlite3_stmt *st =
        cache_stmt(c, "DELETE FROM sends WHERE configuration_id = ?1 "
                      "AND e164 = ?2 AND at <= ?3");

    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, conf_id);
    cache_bind_text(st, 2, e164);
    cache_bind_int(st, 3, clock_now_ms() - period_ms);
    return cache_step(st) == SQLITE_DONE ? 0 : ERR_FAIL;
}

int gate_send_record_locked(cache *c, const char *configuration_id,
                            const char *e164, const char *topic, int64_t at,
                            int64_t period_ms)
{
    int rc =
        send_insert(c, configuration_id, e164, topic, at ? at : clock_now_ms());

    return rc ? rc : send_prune(c, configuration_id, e164, period_ms);
}

int gate_refresh(gate *g)
{
    if (in_transaction(g))
        return ERR_FAIL;
    if (gate__refresh(g) != 0) {
        g->broken = 1;
        return ERR_FAIL;
    }
    return 0;
}

int gate_record_send(gate *g, const char *configuration, const char *phone,
                     const char *topic, int64_t at)
{
    char e164[PHONE_E164_MAX];
    const struct gate__conf *cf;
    int slot, rc;

    if (in_transaction(g))
        return ERR_FAIL;
    rc = gate__refresh(g);
    if (rc)
        return rc;
    slot = conf_resolve(g, configuration);
    if (slot < 0) {
        err_set(ERR_CLASS_INPUT, "no configuration matches \"%.64s\"",
                configuration ? configuration : "");
        return ERR_NOTFOUND;
    }
    cf = &g->confs[slot];
    if (phone_parse(e164, phone, cf->region ? cf->region : g->default_region,
                    NULL) != 0)
        return ERR_BADINPUT;
    rc = cache_begin(g->c);
    if (rc)
        return rc;
    rc = gate_send_record_locked(g->c, cf->id, e164, topic, at,
                                 g->opts.frequency_period_ms);
    if (rc) {
        cache_rollback(g->c);
        return rc;
    }
    return cache_commit(g->c);
}
