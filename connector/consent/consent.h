/*
 * consent — the consent engine: the state machine and consent_apply(), the
 * one function through which every consent change passes (poller, both
 * webhooks, manual commands), plus quarantine and near-miss records.
 *
 * Pipeline position: sources → mapping → consent_apply() → cache (number
 * rows + ledger + outbox, one transaction) → gate / outbox worker.  It
 * never talks to Dataverse or WhatsApp; it never decides what a message
 * means beyond the intent keywords.c found (consent_action_for_reply).
 *
 * Design notes
 *  (1) State is per (configuration, phone): the strictest status among
 *      the number's active rows (opted_out > none > single_opt_in >
 *      double_opt_in).  Inactive rows count as no record.
 *  (2) The most recent expression wins, by event time; at equal times an
 *      opt-out wins; an opt-out is never overwritten by an older opt-in.
 *  (3) A Dataverse status is an expression only when it differs from the
 *      status last read from Dataverse for that row (numbers.dv_status):
 *      an edit of another column is not a new consent.  A Dataverse
 *      expression that loses (2) against a local one is corrected by a
 *      write-back (outbox), not mirrored.
 *  (4) One SQLite transaction per event: the number rows, the ledger
 *      entry (only when the state changes) and the outbox row (only when
 *      the change did not come from Dataverse, or Dataverse lost) commit
 *      together or not at all.
 *  (5) Applying the same event twice changes nothing: inbound ids are
 *      remembered (inbound_seen) in the same transaction, and a
 *      transition to the current state is no transition.
 *  (6) At most one pending outbox row per number row: the outbox worker
 *      writes the row's state at send time, so a later change supersedes
 *      an earlier one instead of racing it.
 *  (7) The first load of an empty cache is a baseline, not a million
 *      transitions: see consent_baseline_row().
 *  (8) Consent messages (consent_message_for, consent_messages.c): a
 *      transition that calls for a WhatsApp message queues it as an
 *      outbox row of kind "whatsapp" in the transition's transaction, for
 *      the Configuration the event came in on (a WABA-wide stop confirms
 *      once).  The baseline queues nothing (note 7); a double opt-in
 *      request already queued or sent within double_opt_in_window is not
 *      queued again; a newer message replaces one still pending for the
 *      number.  The outbox checks the number's state again before sending.
 *
 * State machine (double opt-in required by the Configuration = "DOI"):
 *
 *    none/opted_out --OPT_IN--> single_opt_in
 *    single_opt_in --CONFIRM, or OPT_IN within double_opt_in_window
 *                   [DOI only]--> double_opt_in
 *    any --OPT_OUT--> opted_out
 *    any --MIRROR(s) from Dataverse--> s      (subject to notes 2 and 3)
 *
 * All transitions are made by consent_apply(); the rule table itself is
 * consent_next_status().
 */
#ifndef OPTSYNC_CONSENT_H
#define OPTSYNC_CONSENT_H

#include <stdint.h>

#include "cache.h"
#include "keywords.h"
#include "mapping.h"

enum consent_action {
    CONSENT_ACT_NONE = 0,
    CONSENT_ACT_OPT_IN,        /* opt-in keyword / payload / manual */
    CONSENT_ACT_CONFIRM,       /* double opt-in confirmation */
    CONSENT_ACT_OPT_OUT,       /* keyword, payload, preference, 131050 */
    CONSENT_ACT_MIRROR,        /* a Dataverse row (poller, webhook) */
    CONSENT_ACT_TOPIC_OPT_OUT, /* preference: one topic off */
    CONSENT_ACT_PAUSE,         /* preference: nothing until paused_until */
};

/* Source names (stored in rows, ledger and outbox). */
#define CONSENT_SOURCE_DATAVERSE "dataverse"
#define CONSENT_SOURCE_DATAVERSE_WEBHOOK "dataverse_webhook"
#define CONSENT_SOURCE_WHATSAPP "whatsapp"
#define CONSENT_SOURCE_WHATSAPP_PREFERENCE "whatsapp_preference"
#define CONSENT_SOURCE_WHATSAPP_STATUS "whatsapp_status"
#define CONSENT_SOURCE_MANUAL "manual"

/* A Dataverse row to mirror (CONSENT_ACT_MIRROR). */
struct consent_row {
    const struct number_record *rec; /* mapped row (borrowed) */
    const char *region; /* for national numbers: the Configuration's or
                           [consent] default_region; NULL: none */
    int64_t sweep_mark; /* full-sync generation that saw the row; 0: not
                           a full sync */
    /* The phone parsed ahead of time (the poller does it on its fetch
     * thread): when `parsed`, used instead of parsing raw_phone here. */
    int parsed;
    const char *parsed_e164;  /* borrowed; "" when it did not parse */
    const char *parsed_error; /* borrowed; why not */
};

struct consent_event {
    /* Which configuration: its id, or Meta's phone_number_id. */
    const char *configuration_id;
    const char *phone_number_id;
    int waba_wide; /* also every configuration of the same WABA */

    const char *e164; /* key (phone_parse); unused for MIRROR */
    /* A WhatsApp username user's business-scoped id (BSUID): when e164 is
     * NULL the event is keyed by the number last seen with it
     * (wa_users.h); ERR_NOTFOUND while none is known. */
    const char *user_id;
    enum consent_action action;
    int64_t event_at;           /* when it was expressed (ms) */
    const char *source;         /* CONSENT_SOURCE_* */
    const char *evidence;       /* canonical JSON object; NULL: {} */
    const char *inbound_source; /* dedupe key: ("whatsapp", wamid) */
    const char *inbound_id;

    const char *topic;    /* TOPIC_OPT_OUT */
    int64_t paused_until; /* PAUSE (ms) */

    const struct consent_row *row; /* MIRROR */
};

enum consent_outcome {
    CONSENT_CHANGED = 0, /* state changed: ledger (+ outbox) written */
    CONSENT_UNCHANGED,   /* nothing to do (already in that state) */
    CONSENT_DUPLICATE,   /* inbound id seen before */
    CONSENT_STALE,       /* lost the conflict rule to a newer expression */
    CONSENT_CORRECTED,   /* Dataverse lost: corrective write-back queued */
};

struct consent_result {
    enum consent_outcome outcome;
    enum consent_status from, to; /* of the (first) configuration */
    int configurations;           /* configurations it was applied to */
};

struct consent_options {
    int64_t double_opt_in_window; /* ms */
    int write_preferences;        /* the mapping names topic / pause columns */
    int send_messages;            /* [whatsapp] send is not off: queue the
                                     consent messages (note 8) */
    int opt_in_confirmation;      /* [messages] names an opt-in confirmation
                                     (template or text) */
};

struct optsync_config;

/* The options a configured connector applies events with: the double
 * opt-in window from [consent], preference write-back when the mapping
 * (may be NULL) names the topic or pause columns. */
void consent_options_init(struct consent_options *out,
                          const struct optsync_config *cfg,
                          const struct mapping *m);

/*
 * Applies one event in its own transaction (BEGIN IMMEDIATE ... COMMIT).
 * Returns 0 with *out describing what happened; ERR_NOTFOUND when the
 * configuration (or phone_number_id) is not in the cache: nothing was
 * written, the caller quarantines the event (consent_quarantine); ERR_BADINPUT
 * for an event that can never apply (no phone, unknown action);
 * ERR_CONFLICT when the database stayed locked; ERR_FAIL otherwise.
 */
int consent_apply(struct consent_result *out, cache *c,
                  const struct consent_options *opts,
                  const struct consent_event *ev);

/* The same inside the caller's open transaction (the poller applies a
 * page per transaction); on failure the caller rolls back. */
int consent_apply_locked(struct consent_result *out, cache *c,
                         const struct consent_options *opts,
                         const struct consent_event *ev);

/*
 * The first load (design note 7): rows read by a full sync into an empty
 * number table are no consent *changes*, they are what Dynamics holds.
 * Each goes in with one INSERT (no lookups, canonical phones not parsed),
 * and each page gets one ledger entry of kind "baseline" whose evidence
 * carries the row count and a SHA-256 over the rows as imported
 * ("dv_id TAB configuration_id TAB e164 TAB status TAB version LF" each,
 * in page order).  Every later change is ledgered row by row.
 */
struct consent_baseline {
    void *md;     /* owned: the running digest (EVP_MD_CTX) */
    int64_t rows; /* in this page */
};

void consent_baseline_begin(struct consent_baseline *b);
/* One row, in the caller's transaction. */
int consent_baseline_row(cache *c, struct consent_baseline *b,
                         const struct consent_row *row);
/* The page's ledger entry (when it had rows); disposes `b`. */
int consent_baseline_end(cache *c, struct consent_baseline *b,
                         const char *entity, int64_t at);
void consent_baseline_dispose(struct consent_baseline *b);

/*
 * Parses again the phones of rows not parsed under the current rule
 * (migration 6: rows from before it, rows written by code that parses no
 * phones), at most `max` rows in the caller's transaction, oldest first.
 * A Dataverse row's raw_phone is parsed with its Configuration's region
 * (else `default_region`, may be NULL); a local row (no Dataverse id)
 * keeps its key and only gets its warning.  A row whose key changes moves
 * to the new key like a mirrored row would: the states of the old and the
 * new key are ledgered when they change (note 1), nothing is written back.
 * Returns 0 with *done rows checked (fewer than `max`: none left) and
 * *rekeyed of them under another key; ERR_FAIL.
 */
int consent_phones_recheck(cache *c, const char *default_region, int max,
                           int *done, int *rekeyed);

/*
 * Removes a number row deleted in Dataverse (caller's transaction).  The
 * ledger keeps everything; when the number's state changes (its last
 * active row went), that change is recorded.
 */
int consent_row_deleted(cache *c, const char *dv_id, int64_t event_at,
                        const char *source);

/*
 * The rule table: the status after `action` from `current` (set at
 * `current_at`), at `event_at`; `current` when nothing changes.
 */
enum consent_status consent_next_status(enum consent_action action,
                                        enum consent_status current,
                                        int64_t current_at, int64_t event_at,
                                        int double_opt_in, int64_t window_ms);

/* ---- consent messages (note 8) ------------------------------------------ */

enum consent_message {
    CONSENT_MSG_NONE = 0,
    CONSENT_MSG_DOUBLE_OPT_IN_REQUEST, /* "please confirm", quick reply 0 */
    CONSENT_MSG_OPT_IN_CONFIRMATION,   /* optional "you are subscribed" */
    CONSENT_MSG_OPT_OUT_CONFIRMATION,  /* "you will get no more" */
};

/* A transition, as the message rules see it. */
struct consent_transition {
    enum consent_status from, to;
    const char *source; /* CONSENT_SOURCE_* */
    int double_opt_in;  /* the Configuration requires double opt-in */
};

/*
 * The message a transition calls for (docs/design.md, Consent messages):
 *   double opt-in request  to single_opt_in on a double opt-in
 *                          Configuration, from any source but a delivery
 *                          failure (131050)
 *   opt-out confirmation   to opted_out from a WhatsApp message (keyword,
 *                          payload, button); not the "stop marketing"
 *                          preference, a 131050 failure, Dynamics or manual
 *   opt-in confirmation    to the final opted-in state from a WhatsApp
 *                          message, when configured
 * CONSENT_MSG_NONE otherwise, and always when opts->send_messages is off.
 */
enum consent_message consent_message_for(const struct consent_options *opts,
                                         const struct consent_transition *t);

/* "double_opt_in_request", ...; NULL for NONE. */
const char *consent_message_name(enum consent_message m);
/* The inverse; CONSENT_MSG_NONE for NULL or an unknown name. */
enum consent_message consent_message_parse(const char *name);

/* Whether a number still is where message `m` belongs (checked again
 * just before sending): single_opt_in for the request, opted_out for the
 * opt-out confirmation, opted in (single or double) for the opt-in one. */
int consent_message_still_due(enum consent_message m, enum consent_status now);

/* Strictness for note (1): higher is stricter. */
int consent_status_rank(enum consent_status s);

/* ---- replies: what a message asks for ----------------------------------- */

struct consent_reply {
    const char *text;    /* free text body, or NULL */
    const char *payload; /* button payload / interactive id, or NULL */
    const char *title;   /* button label / interactive title, or NULL */
    int has_context;     /* replies to a business message */
    int forwarded;       /* context.forwarded or frequently_forwarded */
};

struct consent_intent {
    enum consent_action action; /* CONSENT_ACT_NONE: no consent meaning */
    const char *topic;          /* TOPIC_OPT_OUT: points into storage */
    int pause_days;             /* PAUSE */
    int near_miss;              /* counted and listed for review */
    char topic_storage[KEYWORDS_TOPIC_MAX];
};

/*
 * What a reply means (docs/design.md): payload intents first, then the payload
 * and the label through the keyword matcher, then the text; ambiguous
 * affirmatives only with context; a forwarded opt-in is no consent, a
 * forwarded opt-out is honoured.
 */
void consent_action_for_reply(struct consent_intent *out, const keywords *k,
                              const struct consent_reply *reply);

/* ---- quarantine and review ------------------------------------------------
 */

/*
 * Keeps an event that cannot be applied yet (unknown configuration or
 * sender), with `reason` and `hint` (what to match it by later), in its
 * own transaction.  Never loses it: the caller acknowledges the delivery
 * only after this returned 0.  ERR_BADINPUT for a MIRROR or NONE event.
 */
int consent_quarantine(cache *c, const struct consent_event *ev,
                       const char *reason, const char *hint);

/* The same inside the caller's open transaction (a webhook delivery is
 * applied, and its unmatched events kept, in one commit). */
int consent_quarantine_locked(cache *c, const struct consent_event *ev,
                              const char *reason, const char *hint);

/*
 * Retries every open quarantined event (after a sync brought new
 * configurations, or a WhatsApp delivery linked a BSUID to its number).
 * Counts what was applied and what still waits; an event that can never
 * apply as it stands (ERR_BADINPUT) keeps waiting for a person.
 */
int consent_quarantine_replay(cache *c, const struct consent_options *opts,
                              int *applied, int *waiting);

/* Records a near-miss message for `optsync review`. */
int consent_near_miss_record(cache *c, const char *configuration_id,
                             const char *phone, const char *text,
                             const char *message_id, int64_t at);

#endif
