/*
 * wa_cases — the WhatsApp webhook's expectation table and what it needs,
 * shared by the module test (tests/unit/test_whatsapp.c: the route glue
 * played in process) and the listener test
 * (tests/unit/test_listener_whatsapp.c: the same cases POSTed over HTTP).
 *
 * Every fixture in tests/data/whatsapp/, the cases derived from them (one
 * field changed, then re-signed) and the composed On-Premise bodies, each
 * with the state it starts from and the effect it must have in the
 * database: the sender's state, ledger entries and outbox rows, their
 * source, near-misses, duplicates.  The Configurations they need (one per
 * phone_number_id of the fixtures) are put by wa_put_configurations().
 */
#ifndef OPTSYNC_TESTS_WA_CASES_H
#define OPTSYNC_TESTS_WA_CASES_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "cache.h"
#include "consent.h"

#define WA_SECRET "test-app-secret"
#define WA_VERIFY_TOKEN "verify-token-123"

/* One Configuration per phone_number_id of the fixtures. */
#define CFG_IL "7a000000-0000-4000-8000-000000000001"     /* 1122334455667 */
#define CFG_BATCH "7a000000-0000-4000-8000-000000000002"  /* 1093849293 */
#define CFG_US "7a000000-0000-4000-8000-000000000003"     /* 123456123 */
#define CFG_PREF "7a000000-0000-4000-8000-000000000004"   /* 106540352242922 */
#define CFG_LEGACY "7a000000-0000-4000-8000-000000000005" /* 100200300 */
#define CFG_SISTER "7a000000-0000-4000-8000-000000000006" /* same WABA as */
#define CFG_NEW "7a000000-0000-4000-8000-000000000007"    /* CFG_BATCH */

#define IL "+972987654321" /* the fixtures' senders */
#define US1 "+16505551234"
#define US2 "+16315551181"
#define LEGACY "+15550001111"
#define BSUID "US.13491208655302741918"

#define T_SEED 1400000000000LL /* before every fixture's timestamp */
#define WA_NOW 1800000000000LL /* the clock the table was written for */

/* 360dialog's On-Premise format (top-level arrays, no metadata). */
#define ONPREM_STOP                                                            \
    "{\"contacts\":[{\"profile\":{\"name\":\"Erika M.\"},"                     \
    "\"wa_id\":\"972987654321\"}],\"messages\":[{\"from\":\"972987654321\","   \
    "\"id\":\"ABEGSRUxJGeAAgo-sDt0pEXyv1l0\",\"timestamp\":\"1767226100\","    \
    "\"type\":\"text\",\"text\":{\"body\":\"  Stop \"}}]}"
#define ONPREM_QUICK_REPLY                                                     \
    "{\"contacts\":[{\"profile\":{\"name\":\"Erika M.\"},"                     \
    "\"wa_id\":\"972987654321\"}],\"messages\":[{\"from\":\"972987654321\","   \
    "\"id\":\"ABEGSRUxJGeAAgo-sDt0pEXyv1l1\",\"timestamp\":\"1767226200\","    \
    "\"type\":\"button\",\"context\":{\"from\":\"4930123456\",\"id\":"         \
    "\"ABGGFlA5FpafAgo6EhzWqDeP6fMB\"},\"button\":{\"payload\":null,"          \
    "\"text\":\"Unsubscribe\"}}]}"

#define CLOUD_HEAD                                                             \
    "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\","      \
    "\"changes\":[{\"field\":\"messages\",\"value\":{\"metadata\":{"           \
    "\"phone_number_id\":\"1122334455667\"},"
#define CLOUD_TAIL "}}]}]}"
#define STOP_MSG(id)                                                           \
    "{\"from\":\"972987654321\",\"id\":\"" id "\",\"timestamp\":"              \
    "\"1767225600\",\"type\":\"text\",\"text\":{\"body\":\"STOP\"}}"

/* A username user: no from, no wa_id, only the BSUID. */
#define BSUID_ONLY(id, user, body)                                             \
    "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\","      \
    "\"changes\":[{\"field\":\"messages\",\"value\":{\"metadata\":{"           \
    "\"phone_number_id\":\"123456123\"},\"contacts\":[{\"profile\":{"          \
    "\"username\":\"@testusername\"},\"user_id\":\"" user "\"}],"              \
    "\"messages\":[{\"id\":\"" id "\",\"timestamp\":\"1767225600\","           \
    "\"type\":\"text\",\"from_user_id\":\"" user "\",\"text\":{\"body\":"      \
    "\"" body "\"}}]}}]}]}"

/* ---- bodies ----------------------------------------------------------- */

/* tests/data/whatsapp/<name> (owned). */
char *wa_fixture_text(const char *name);

/* "sha256=" + lower-case hex HMAC-SHA256 of body with `secret` (owned). */
char *wa_sign(const char *secret, const char *body, size_t len);

enum wa_derive {
    WA_AS_IS = 0,
    WA_TEXT_BODY,      /* messages[0].text.body = arg */
    WA_BUTTON_PAYLOAD, /* messages[0].button.payload = arg */
    WA_BUTTON_TEXT,    /* messages[0].button.text = arg */
    WA_REPLY_ID,       /* messages[0].interactive.button_reply.id = arg */
    WA_TWICE,          /* messages[] = [m, m] (same id), body = arg */
    WA_ERROR_CODE,     /* statuses[0].errors[0].code = 131050 */
    WA_PNID,           /* metadata.phone_number_id = arg, body STOP */
};

/* A Cloud API delivery of one text message from `wa_id` (digits, no
 * "+") with id `wamid` to `pnid`, at `ts` (Unix seconds) (owned). */
char *wa_text_body(const char *pnid, const char *wa_id, const char *wamid,
                   long long ts, const char *text);

/* A fixture with one field changed (owned; WA_AS_IS: the bytes as
 * stored). */
char *wa_derive_body(const char *fixture, enum wa_derive how, const char *arg);

/* The first entry's first change's value, and its first message. */
cJSON *wa_first_value(cJSON *root);
cJSON *wa_first_message(cJSON *root);

/* Replaces an existing string member (NULL: null). */
void wa_replace_string(cJSON *obj, const char *name, const char *value);

/* ---- the database ---------------------------------------------------------
 */

void wa_put_configuration(cache *c, const char *id, const char *name, int doi,
                          const char *pnid, const char *waba);
/* CFG_IL (double opt-in = doi), CFG_BATCH, CFG_US, CFG_PREF, CFG_LEGACY. */
void wa_put_configurations(cache *c, int doi);

/* The strictest active status of `phone` in `cfg` (consent note 1). */
enum consent_status wa_state_of(cache *c, const char *cfg, const char *phone);

/* Seeds `phone` in `cfg` with `s` as a Dataverse row would (NONE: no
 * row). */
void wa_seed(cache *c, const struct consent_options *copts, const char *cfg,
             const char *phone, enum consent_status s);

struct wa_snapshot {
    long long ledger, outbox, quarantine, near_misses, seen;
};

void wa_snap(struct wa_snapshot *s, cache *c);

/* ---- the table ------------------------------------------------------------
 */

struct wa_effect {
    const char *fixture;     /* tests/data/whatsapp/...; NULL: body */
    enum wa_derive how;      /* change made to it (then re-signed) */
    const char *arg;         /* the new value */
    const char *body;        /* a composed body (On-Premise) */
    const char *path_cfg;    /* the route's {configuration} */
    const char *cfg, *phone; /* the sender whose state is seeded/checked */
    int doi;                 /* the Configuration requires double opt-in */
    enum consent_status before, after;
    int transitions;    /* ledger entries (and outbox rows) added */
    const char *source; /* of those ledger entries */
    int near_misses;    /* rows added for `optsync review` */
    int duplicates;     /* in the outcome */
};

extern const struct wa_effect wa_effects[];
extern const size_t wa_n_effects;

/* Bodies that must be refused whole (400), signed as they are: nothing
 * of them may be applied.  Posted to /webhooks/whatsapp (no
 * {configuration}). */
struct wa_malformed {
    const char *body;
    int status;
};

extern const struct wa_malformed wa_malformed[];
extern const size_t wa_n_malformed;

/* "fixture/how/arg", for messages. */
void wa_effect_name(char *out, size_t cap, const struct wa_effect *e);

/* The body to POST (owned). */
char *wa_effect_body(const struct wa_effect *e);

/*
 * Fails the test unless the database shows e's effect since `before`:
 * the sender's state, ledger entries and outbox rows (and the newest
 * entry's source), near-misses, no quarantine, some de-duplication key
 * remembered; `duplicates` is the delivery's own count.
 */
void wa_effect_check(cache *c, const struct wa_effect *e,
                     const struct wa_snapshot *before, int duplicates);

#endif
