/*
 * whatsapp — the WhatsApp webhook: proving a delivery came from Meta (or
 * 360dialog), reading its payload, and turning replies, "stop marketing"
 * preferences and 131050 failures into consent events.
 *
 * Pipeline position: source.  The listener's routes hand it raw bytes
 * and headers; it hands consent events to consent_apply_locked() (and
 * what cannot be matched yet to the quarantine) inside the caller's
 * transaction.  It never talks HTTP, never commits, never answers a
 * request: the route glue maps its return codes to status codes.
 *
 * The route glue, in order (one POST):
 *
 *   whatsapp_auth_check()       ERR_AUTH      → 401, nothing parsed
 *   whatsapp_delivery_parse()   ERR_BADINPUT  → 400, ERR_TOOBIG → 413
 *   whatsapp_delivery_needs_configuration() and no {configuration} → 400
 *   whatsapp_job_run() as a writer item (whatsapp_apply_locked inside the
 *     writer's transaction)     ERR_FAIL / ERR_CONFLICT → 503 (the
 *                               writer rolls the item back; Meta retries)
 *   the durable commit          → 200, outcome counts → metrics
 *
 * Design notes
 *  (1) The signature (or the secret header) is checked over the raw body
 *      bytes before a byte of it is parsed; every secret is compared in
 *      constant time (CRYPTO_memcmp over fixed-size digests, so not even
 *      a length leaks).
 *  (2) A delivery applies whole or not at all: the parser rejects the
 *      whole body on the first structural error, and the apply step runs
 *      inside one transaction (a savepoint of the writer's).
 *  (3) Exactly once: every item is de-duplicated before it does anything,
 *      in the same transaction as its effect (inbound_seen): messages by
 *      wamid (source "whatsapp"), statuses by wamid + status
 *      ("whatsapp_status"), preferences by sender + category + value +
 *      timestamp ("whatsapp_preference").  Keys live at least 7 days
 *      (Meta retries that long), then whatsapp_dedupe_prune() drops them.
 *  (4) Nothing accepted is dropped: an expression whose Configuration is
 *      unknown (phone_number_id, the path's id or name) or whose sender
 *      cannot be keyed yet (a username user known only by BSUID) goes to
 *      the quarantine in the same transaction, replayed after each sync.
 *  (5) A phone_number_id in the payload picks the Configuration; the
 *      route's {configuration} only serves items without one (360dialog's
 *      On-Premise format has none).
 *  (6) Every (BSUID, number) pair a delivery shows is stored before its
 *      items are applied (wa_users.h), so a BSUID-only message can be
 *      keyed by a contact entry of the same delivery.
 */
#ifndef OPTSYNC_WHATSAPP_H
#define OPTSYNC_WHATSAPP_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "cache.h"
#include "consent.h"
#include "keywords.h"

struct optsync_config;

/* ---- verification --------------------------------------------------------
 */

enum whatsapp_auth_mode {
    WHATSAPP_AUTH_SIGNATURE = 0, /* X-Hub-Signature-256 (Meta) */
    WHATSAPP_AUTH_HEADER,        /* a configured secret header (360dialog) */
};

#define WHATSAPP_SIGNATURE_HEADER "X-Hub-Signature-256"

struct whatsapp_auth {
    enum whatsapp_auth_mode mode;
    const char *app_secret;   /* borrowed; SIGNATURE; NULL refuses all */
    const char *header_name;  /* borrowed; HEADER */
    const char *header_value; /* borrowed; HEADER; NULL refuses all */
    const char *verify_token; /* borrowed; GET handshake; NULL refuses */
};

/* From [whatsapp] of a loaded config (borrows its strings). */
void whatsapp_auth_init(struct whatsapp_auth *out,
                        const struct optsync_config *cfg);

/* The request header the route passes to whatsapp_auth_check(). */
const char *whatsapp_auth_header_name(const struct whatsapp_auth *a);

/*
 * Checks one POST before its body is parsed.  `header` is the value of
 * whatsapp_auth_header_name() as received (NULL when absent).
 *
 * SIGNATURE: "sha256=" (case-insensitive) followed by exactly 64 hex
 * digits, either case (hex case carries no information), equal to
 * HMAC-SHA256(app_secret, body).  "sha1=...", a truncated or longer
 * digest, anything else around it, a missing header: refused.
 * HEADER: equal to header_value.
 *
 * Returns 0, or ERR_AUTH (answer 401; err_set says why, never a secret).
 */
int whatsapp_auth_check(const struct whatsapp_auth *a, const char *header,
                        const void *body, size_t len);

/*
 * The GET handshake, with the decoded query values (NULL when absent):
 * 0 when mode is "subscribe", the token equals verify_token and the
 * challenge is 1..CAP_WA_CHALLENGE_BYTES printable ASCII (answer 200,
 * text/plain, body = challenge exactly); ERR_AUTH otherwise (answer 403).
 */
int whatsapp_handshake_check(const struct whatsapp_auth *a, const char *mode,
                             const char *verify_token, const char *challenge);

/*
 * The same from the raw query string ("hub.mode=subscribe&..."), decoded
 * by libevent.  On 0, *out is the challenge to echo (malloc'd; free()).
 */
int whatsapp_handshake_query(char **out, const struct whatsapp_auth *a,
                             const char *query);

/* ---- the payload ---------------------------------------------------------
 *
 * whatsapp_delivery_parse() reads Meta's Cloud API envelope (object,
 * entry[].changes[] with field "messages" or "user_preferences") and
 * 360dialog's On-Premise format (top-level contacts / messages / statuses
 * / errors).  Pure: no I/O.  Strings point into the delivery's tree.
 *
 * What makes a body malformed (ERR_BADINPUT, nothing applied): not one
 * JSON object; an `object` other than whatsapp_business_account; neither
 * format; a container of the wrong type (entry, changes, value, metadata,
 * contacts, messages, statuses, errors, user_preferences, an item);
 * a message or status without a string id; an item without a timestamp
 * (a decimal string or an integer, Unix seconds); an id or sender that is
 * not a string, or longer than CAP_WA_ID_BYTES.  Content objects of an
 * unexpected shape (a `text` that is no object, an interactive without
 * its object) are not errors: the message just means nothing.  Changes
 * of other fields are skipped (counted).  Over CAP_WA_ITEMS: ERR_TOOBIG.
 */

enum whatsapp_format {
    WHATSAPP_FORMAT_CLOUD = 0,  /* object / entry / changes / value */
    WHATSAPP_FORMAT_ON_PREMISE, /* top-level arrays, no metadata */
};

enum whatsapp_message_kind {
    WHATSAPP_MSG_OTHER = 0,    /* no consent meaning: media, reaction... */
    WHATSAPP_MSG_TEXT,         /* text.body */
    WHATSAPP_MSG_BUTTON,       /* template quick reply: payload + text */
    WHATSAPP_MSG_BUTTON_REPLY, /* interactive button_reply: id + title */
    WHATSAPP_MSG_LIST_REPLY,   /* interactive list_reply: id + title */
    WHATSAPP_MSG_SYSTEM,       /* system.type, e.g. user_changed_number */
};

/* Every item knows where it came from (NULL for On-Premise). */
struct whatsapp_origin {
    const char *waba_id;         /* entry[].id */
    const char *phone_number_id; /* value.metadata.phone_number_id */
};

struct whatsapp_message {
    struct whatsapp_origin origin;
    const char *id;      /* wamid: the de-duplication key */
    const char *from;    /* wa_id as sent ("+" allowed); NULL: username
                            user without a number in this delivery */
    const char *user_id; /* BSUID: from_user_id, else the contact's */
    int64_t at;          /* timestamp, ms since the epoch */
    enum whatsapp_message_kind kind;
    const char *type;         /* `type` as sent; NULL when absent */
    const char *text;         /* TEXT */
    const char *payload;      /* BUTTON payload (NULL when null), reply id */
    const char *title;        /* BUTTON text, reply title */
    const char *context_id;   /* answers this business message (context.id) */
    int forwarded;            /* context.forwarded or frequently_forwarded */
    const char *system_type;  /* SYSTEM */
    const char *system_wa_id; /* SYSTEM: the new wa_id (changed number) */
};

#define WHATSAPP_STATUS_ERRORS_MAX 8
#define WHATSAPP_ERROR_STOPPED_MARKETING 131050

struct whatsapp_status {
    struct whatsapp_origin origin;
    const char *id;                /* wamid of the business's message */
    const char *status;            /* sent, delivered, read, failed, ... */
    const char *recipient_id;      /* wa_id (or a group id); may be NULL */
    const char *recipient_user_id; /* BSUID or NULL */
    int group;                     /* recipient_type = group */
    int64_t at;                    /* ms */
    int n_errors;                  /* all of errors[] */
    int64_t error_codes[WHATSAPP_STATUS_ERRORS_MAX]; /* the first ones */
    int stopped_marketing; /* failed, and some error code is 131050 */
};

struct whatsapp_preference {
    struct whatsapp_origin origin;
    const char *wa_id;    /* the item's own (contacts[] may disagree) */
    const char *user_id;  /* BSUID or NULL */
    const char *category; /* marketing_messages (others: ignored) */
    const char *value;    /* stop | resume | ... */
    int64_t at;           /* ms */
};

struct whatsapp_error {
    struct whatsapp_origin origin;
    int64_t code;      /* 0 when absent */
    const char *title; /* may be NULL */
};

struct whatsapp_contact {
    struct whatsapp_origin origin;
    const char *wa_id;   /* may be NULL */
    const char *user_id; /* BSUID; may be NULL */
};

struct whatsapp_delivery {
    enum whatsapp_format format;
    cJSON *root; /* owned; every string below points into it */
    struct whatsapp_message *messages; /* owned arrays, in body order */
    size_t n_messages;
    struct whatsapp_status *statuses;
    size_t n_statuses;
    struct whatsapp_preference *preferences;
    size_t n_preferences;
    struct whatsapp_error *errors; /* value.errors[] (system level) */
    size_t n_errors;
    struct whatsapp_contact *contacts;
    size_t n_contacts;
    size_t other_changes; /* changes of fields this module does not read */
};

/*
 * Parses `len` bytes of a POST body into *out (dispose it with
 * whatsapp_delivery_dispose, also after a failure).  Returns 0,
 * ERR_BADINPUT (malformed: answer 400) or ERR_TOOBIG (answer 413).
 */
int whatsapp_delivery_parse(struct whatsapp_delivery *out, const char *body,
                            size_t len);
void whatsapp_delivery_dispose(struct whatsapp_delivery *d);

/* True when some item has no phone_number_id: the route must name the
 * Configuration (/webhooks/whatsapp/{configuration}), else answer 400. */
int whatsapp_delivery_needs_configuration(const struct whatsapp_delivery *d);

/* What a message says, for consent_action_for_reply(); pointers into m. */
void whatsapp_message_reply(struct consent_reply *out,
                            const struct whatsapp_message *m);

/* ---- applying -------------------------------------------------------------
 */

struct whatsapp_apply_options {
    const struct consent_options *consent; /* borrowed */
    const keywords *keywords;              /* borrowed */
    const char *configuration; /* borrowed: the route's {configuration} (id
                                  or exact name); NULL when none */
};

/* What one delivery did, for metrics and the log.  Items are counted
 * once each, in exactly one of duplicates, transitions, unchanged,
 * quarantined, ignored, reviews (near_misses count ignored messages that
 * were also listed for review). */
struct whatsapp_outcome {
    int messages, statuses, preferences; /* items in the delivery */
    int duplicates;  /* seen before: a retry, or repeated in this POST */
    int transitions; /* consent events that changed a state */
    int unchanged;   /* consent events that changed nothing (already so,
                        or older than the state: the conflict rule) */
    int quarantined; /* kept for replay (note 4) */
    int ignored;     /* no consent meaning */
    int near_misses; /* listed by `optsync review` */
    int reviews;     /* user_changed_number, listed by `optsync review` */
    int errors;      /* value.errors[] entries (logged) */
    int new_links;   /* BSUID-number pairs not known before: a replay of
                        the quarantine may now key waiting events */
};

/*
 * Applies a parsed delivery inside the caller's open transaction
 * (design notes 2-6).  On an error the caller rolls back (nothing of the
 * delivery may stay).  Logs are written before the caller commits.
 * Returns 0 with *out; ERR_BADINPUT when an item has no phone_number_id
 * and opts->configuration is NULL (nothing written; answer 400);
 * ERR_FAIL (answer 503).
 */
int whatsapp_apply_locked(struct whatsapp_outcome *out, cache *c,
                          const struct whatsapp_apply_options *opts,
                          const struct whatsapp_delivery *d);

/* The listener writer's item shape, `int fn(cache *c, void *payload)`:
 * runs whatsapp_apply_locked(&job->outcome, c, job->opts, job->delivery). */
struct whatsapp_job {
    const struct whatsapp_apply_options *opts; /* borrowed */
    const struct whatsapp_delivery *delivery;  /* borrowed */
    struct whatsapp_outcome outcome;           /* filled by the run */
};

int whatsapp_job_run(cache *c, void *payload);

/* ---- de-duplication keys --------------------------------------------------
 */

/* How long keys are kept by default, and the least allowed (Meta retries
 * a delivery for up to 7 days). */
#define WHATSAPP_DEDUPE_KEEP_MS (8 * 24 * 3600 * 1000LL)
#define WHATSAPP_DEDUPE_MIN_MS (7 * 24 * 3600 * 1000LL)

/*
 * Drops up to `max_rows` WhatsApp de-duplication keys older than
 * `keep_ms` (at least WHATSAPP_DEDUPE_MIN_MS) in the caller's
 * transaction; *out_removed says how many (fewer than max_rows: done).
 */
int whatsapp_dedupe_prune_locked(int *out_removed, cache *c, int64_t keep_ms,
                                 int max_rows);

/* The same, all of them, in transactions of a few thousand rows each. */
int whatsapp_dedupe_prune(int *out_removed, cache *c, int64_t keep_ms);

#endif
