/*
 * wa_cases — see wa_cases.h.
 */
#include "wa_cases.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "configurations.h"
#include "testutil.h"
#include "xalloc.h"

/* ---- bodies ---------------------------------------------------------------
 */

char *wa_fixture_text(const char *name)
{
    char *rel = xasprintf("tests/data/whatsapp/%s", name);
    char *path = testutil_source_path(rel);
    char *text = testutil_read(path, NULL);

    free(rel);
    free(path);
    return text;
}

char *wa_sign(const char *secret, const char *body, size_t len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0, i;
    char *out = xmalloc(7 + 64 + 1);

    assert_non_null(HMAC(EVP_sha256(), secret, (int)strlen(secret),
                         (const unsigned char *)body, len, mac, &n));
    assert_int_equal(n, 32);
    memcpy(out, "sha256=", 7);
    for (i = 0; i < n; i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", mac[i]);
    return out;
}

cJSON *wa_first_value(cJSON *root)
{
    cJSON *entry = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "entry"), 0);
    cJSON *change =
        cJSON_GetArrayItem(cJSON_GetObjectItem(entry, "changes"), 0);

    return cJSON_GetObjectItem(change, "value");
}

cJSON *wa_first_message(cJSON *root)
{
    return cJSON_GetArrayItem(
        cJSON_GetObjectItem(wa_first_value(root), "messages"), 0);
}

void wa_replace_string(cJSON *obj, const char *name, const char *value)
{
    assert_non_null(cJSON_GetObjectItem(obj, name));
    if (value)
        cJSON_ReplaceItemInObject(obj, name, cJSON_CreateString(value));
    else
        cJSON_ReplaceItemInObject(obj, name, cJSON_CreateNull());
}

char *wa_text_body(const char *pnid, const char *wa_id, const char *wamid,
                   long long ts, const char *text)
{
    return xasprintf(
        "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\","
        "\"changes\":[{\"field\":\"messages\",\"value\":{\"messaging_product\":"
        "\"whatsapp\",\"metadata\":{\"display_phone_number\":\"15550100001\","
        "\"phone_number_id\":\"%s\"},\"contacts\":[{\"profile\":{\"name\":"
        "\"Test\"},\"wa_id\":\"%s\"}],\"messages\":[{\"from\":\"%s\",\"id\":"
        "\"%s\",\"timestamp\":\"%lld\",\"type\":\"text\",\"text\":{\"body\":"
        "\"%s\"}}]}}]}]}",
        pnid, wa_id, wa_id, wamid, ts, text);
}

static void derive(cJSON *root, enum wa_derive how, const char *arg)
{
    cJSON *m = wa_first_message(root), *sts;

    switch (how) {
    case WA_TEXT_BODY:
        wa_replace_string(cJSON_GetObjectItem(m, "text"), "body", arg);
        break;
    case WA_BUTTON_PAYLOAD:
        wa_replace_string(cJSON_GetObjectItem(m, "button"), "payload", arg);
        break;
    case WA_BUTTON_TEXT:
        wa_replace_string(cJSON_GetObjectItem(m, "button"), "text", arg);
        break;
    case WA_REPLY_ID:
        wa_replace_string(
            cJSON_GetObjectItem(cJSON_GetObjectItem(m, "interactive"),
                                "button_reply"),
            "id", arg);
        break;
    case WA_TWICE:
        wa_replace_string(cJSON_GetObjectItem(m, "text"), "body", arg);
        cJSON_AddItemToArray(
            cJSON_GetObjectItem(wa_first_value(root), "messages"),
            cJSON_Duplicate(m, 1));
        break;
    case WA_ERROR_CODE:
        sts = cJSON_GetObjectItem(wa_first_value(root), "statuses");
        cJSON_ReplaceItemInObject(
            cJSON_GetArrayItem(
                cJSON_GetObjectItem(cJSON_GetArrayItem(sts, 0), "errors"), 0),
            "code", cJSON_CreateNumber(131050));
        break;
    case WA_PNID:
        wa_replace_string(cJSON_GetObjectItem(wa_first_value(root), "metadata"),
                          "phone_number_id", arg);
        wa_replace_string(cJSON_GetObjectItem(m, "text"), "body", "STOP");
        break;
    default: break;
    }
}

char *wa_derive_body(const char *fixture, enum wa_derive how, const char *arg)
{
    char *text = wa_fixture_text(fixture), *out;
    cJSON *root;

    if (how == WA_AS_IS)
        return text;
    root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    derive(root, how, arg);
    out = cJSON_Print(root);
    cJSON_Delete(root);
    return out;
}

/* ---- the database ---------------------------------------------------------
 */

void wa_put_configuration(cache *c, const char *id, const char *name, int doi,
                          const char *pnid, const char *waba)
{
    struct configuration_record r;

    memset(&r, 0, sizeof(r));
    snprintf(r.id, sizeof(r.id), "%s", id);
    r.name = name;
    r.double_opt_in = doi;
    r.phone_number_id = pnid;
    r.waba_id = waba;
    r.active = 1;
    assert_int_equal(cache_begin(c), 0);
    assert_int_equal(configurations_put(c, &r, 0), 0);
    assert_int_equal(cache_commit(c), 0);
}

void wa_put_configurations(cache *c, int doi)
{
    wa_put_configuration(c, CFG_IL, "WA Israel", doi, "1122334455667", NULL);
    wa_put_configuration(c, CFG_BATCH, "WA Batch", 0, "1093849293",
                         "8888888888");
    wa_put_configuration(c, CFG_US, "WA US", 0, "123456123", NULL);
    wa_put_configuration(c, CFG_PREF, "WA Prefs", 0, "106540352242922", NULL);
    wa_put_configuration(c, CFG_LEGACY, "WA Legacy", 0, "100200300", NULL);
}

enum consent_status wa_state_of(cache *c, const char *cfg, const char *phone)
{
    static const enum consent_status by_rank[] = {
        CONSENT_NONE, CONSENT_DOUBLE_OPT_IN, CONSENT_SINGLE_OPT_IN,
        CONSENT_NONE, CONSENT_OPTED_OUT
    };
    sqlite3_stmt *st = cache_stmt(
        c, "SELECT coalesce(max(CASE status WHEN 3 THEN 4 WHEN 0 THEN 3 "
           "WHEN 1 THEN 2 ELSE 1 END), 3) FROM numbers WHERE "
           "configuration_id = ?1 AND e164 = ?2 AND active = 1");
    int rank;

    cache_bind_text(st, 1, cfg);
    cache_bind_text(st, 2, phone);
    assert_int_equal(cache_step(st), SQLITE_ROW);
    rank = sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    return by_rank[rank];
}

void wa_seed(cache *c, const struct consent_options *copts, const char *cfg,
             const char *phone, enum consent_status s)
{
    static int serial;
    struct number_record rec;
    struct consent_row row;
    struct consent_event ev;
    struct consent_result r;

    if (s == CONSENT_NONE)
        return;
    memset(&rec, 0, sizeof(rec));
    snprintf(rec.id, sizeof(rec.id), "5eed0000-0000-4000-8000-%012d", ++serial);
    snprintf(rec.configuration_id, sizeof(rec.configuration_id), "%s", cfg);
    rec.raw_phone = phone;
    rec.status = s;
    rec.active = 1;
    rec.modified_on = T_SEED;
    rec.version = 1;
    memset(&row, 0, sizeof(row));
    row.rec = &rec;
    memset(&ev, 0, sizeof(ev));
    ev.action = CONSENT_ACT_MIRROR;
    ev.source = CONSENT_SOURCE_DATAVERSE;
    ev.row = &row;
    assert_int_equal(consent_apply(&r, c, copts, &ev), 0);
    assert_int_equal(wa_state_of(c, cfg, phone), s);
}

void wa_snap(struct wa_snapshot *s, cache *c)
{
    s->ledger = testutil_query_int(c, "SELECT count(*) FROM ledger");
    s->outbox = testutil_query_int(c, "SELECT count(*) FROM outbox");
    s->quarantine = testutil_query_int(c, "SELECT count(*) FROM quarantine");
    s->near_misses = testutil_query_int(c, "SELECT count(*) FROM near_misses");
    s->seen = testutil_query_int(c, "SELECT count(*) FROM inbound_seen");
}

/* ---- every fixture and derived case (EXPECTED effects) ------------------- */

#define NONE_ CONSENT_NONE
#define SINGLE CONSENT_SINGLE_OPT_IN
#define DOUBLE CONSENT_DOUBLE_OPT_IN
#define OUT CONSENT_OPTED_OUT

const struct wa_effect wa_effects[] = {
    /* the fixtures as stored */
    { "batch_multi_change_with_user_preferences_stop.json", WA_AS_IS, NULL,
      NULL, NULL, CFG_BATCH, US1, 0, SINGLE, OUT, 1, "whatsapp_preference", 0,
      0 },
    { "button_template_quick_reply.json", WA_AS_IS, NULL, NULL, NULL, CFG_IL,
      IL, 0, SINGLE, SINGLE, 0, NULL, 0, 0 },
    { "interactive_button_reply.json", WA_AS_IS, NULL, NULL, NULL, CFG_IL, IL,
      0, DOUBLE, DOUBLE, 0, NULL, 0, 0 },
    { "interactive_list_reply.json", WA_AS_IS, NULL, NULL, NULL, CFG_IL, IL, 0,
      NONE_, NONE_, 0, NULL, 0, 0 },
    { "interactive_missing_object.json", WA_AS_IS, NULL, NULL, NULL, CFG_IL, IL,
      0, SINGLE, SINGLE, 0, NULL, 0, 0 },
    { "reaction_not_a_reply.json", WA_AS_IS, NULL, NULL, NULL, CFG_IL, IL, 0,
      SINGLE, SINGLE, 0, NULL, 0, 0 },
    { "status_failed_with_errors.json", WA_AS_IS, NULL, NULL, NULL, CFG_IL, IL,
      0, SINGLE, SINGLE, 0, NULL, 0, 0 },
    { "status_read_with_bsuid.json", WA_AS_IS, NULL, NULL, NULL, CFG_US, US2, 0,
      SINGLE, SINGLE, 0, NULL, 0, 0 },
    { "status_sent_with_pricing.json", WA_AS_IS, NULL, NULL, NULL, CFG_IL, IL,
      0, OUT, OUT, 0, NULL, 0, 0 },
    { "system_user_changed_number.json", WA_AS_IS, NULL, NULL, NULL, CFG_IL, IL,
      0, OUT, OUT, 0, NULL, 1, 0 },
    { "text_frequently_forwarded.json", WA_AS_IS, NULL, NULL, NULL, CFG_IL, IL,
      0, SINGLE, SINGLE, 0, NULL, 0, 0 },
    { "text_reply.json", WA_AS_IS, NULL, NULL, NULL, CFG_IL, IL, 0, SINGLE,
      SINGLE, 0, NULL, 0, 0 },
    { "text_reply_with_context.json", WA_AS_IS, NULL, NULL, NULL, CFG_IL, IL, 0,
      NONE_, NONE_, 0, NULL, 0, 0 },
    { "text_with_bsuid_username.json", WA_AS_IS, NULL, NULL, NULL, CFG_US, US2,
      0, SINGLE, SINGLE, 0, NULL, 0, 0 },
    { "unsupported_legacy_error_shape.json", WA_AS_IS, NULL, NULL, NULL,
      CFG_LEGACY, LEGACY, 0, SINGLE, SINGLE, 0, NULL, 0, 0 },
    { "unsupported_type_with_errors.json", WA_AS_IS, NULL, NULL, NULL, CFG_IL,
      IL, 0, SINGLE, SINGLE, 0, NULL, 0, 0 },
    { "user_preferences_resume.json", WA_AS_IS, NULL, NULL, NULL, CFG_PREF, US1,
      0, OUT, OUT, 0, NULL, 0, 0 },
    { "user_preferences_signup.json", WA_AS_IS, NULL, NULL, NULL, CFG_PREF, US1,
      0, SINGLE, SINGLE, 0, NULL, 0, 0 },
    { "user_preferences_unknown_category.json", WA_AS_IS, NULL, NULL, NULL,
      CFG_PREF, US1, 0, SINGLE, SINGLE, 0, NULL, 0, 0 },

    /* derived: one field changed, re-signed */
    { "text_reply.json", WA_TEXT_BODY, "STOP", NULL, NULL, CFG_IL, IL, 0,
      SINGLE, OUT, 1, "whatsapp", 0, 0 },
    { "text_reply.json", WA_TEXT_BODY, " stop! ", NULL, NULL, CFG_IL, IL, 0,
      SINGLE, OUT, 1, "whatsapp", 0, 0 },
    { "text_reply.json", WA_TEXT_BODY, "Stop \xF0\x9F\x99\x8F", NULL, NULL,
      CFG_IL, IL, 0, SINGLE, OUT, 1, "whatsapp", 0, 0 },
    { "text_reply.json", WA_TEXT_BODY, "STOPPING", NULL, NULL, CFG_IL, IL, 0,
      SINGLE, SINGLE, 0, NULL, 0, 0 },
    { "text_reply.json", WA_TEXT_BODY, "please stop sending these", NULL, NULL,
      CFG_IL, IL, 0, SINGLE, SINGLE, 0, NULL, 1, 0 },
    { "text_reply.json", WA_TEXT_BODY, "YES", NULL, NULL, CFG_IL, IL, 0, NONE_,
      NONE_, 0, NULL, 0, 0 },
    { "text_reply_with_context.json", WA_TEXT_BODY, "YES", NULL, NULL, CFG_IL,
      IL, 0, NONE_, SINGLE, 1, "whatsapp", 0, 0 },
    { "text_reply.json", WA_TEXT_BODY, "Subscribe", NULL, NULL, CFG_IL, IL, 0,
      NONE_, SINGLE, 1, "whatsapp", 0, 0 },
    { "text_frequently_forwarded.json", WA_TEXT_BODY, "Subscribe", NULL, NULL,
      CFG_IL, IL, 0, NONE_, NONE_, 0, NULL, 0, 0 },
    { "text_frequently_forwarded.json", WA_TEXT_BODY, "STOP", NULL, NULL,
      CFG_IL, IL, 0, SINGLE, OUT, 1, "whatsapp", 0, 0 },
    { "button_template_quick_reply.json", WA_BUTTON_PAYLOAD, "OPT_OUT", NULL,
      NULL, CFG_IL, IL, 0, DOUBLE, OUT, 1, "whatsapp", 0, 0 },
    { "button_template_quick_reply.json", WA_BUTTON_TEXT, "Unsubscribe", NULL,
      NULL, CFG_IL, IL, 0, SINGLE, OUT, 1, "whatsapp", 0, 0 },
    { "interactive_button_reply.json", WA_REPLY_ID, "DOI_CONFIRM", NULL, NULL,
      CFG_IL, IL, 1, SINGLE, DOUBLE, 1, "whatsapp", 0, 0 },
    { "text_reply.json", WA_TWICE, "Subscribe", NULL, NULL, CFG_IL, IL, 0,
      NONE_, SINGLE, 1, "whatsapp", 0, 1 },
    { "status_failed_with_errors.json", WA_ERROR_CODE, NULL, NULL, NULL, CFG_IL,
      IL, 0, SINGLE, OUT, 1, "whatsapp_status", 0, 0 },

    /* composed: 360dialog On-Premise, posted to /webhooks/whatsapp/{cfg} */
    { NULL, WA_AS_IS, NULL, ONPREM_STOP, CFG_IL, CFG_IL, IL, 0, SINGLE, OUT, 1,
      "whatsapp", 0, 0 },
    { NULL, WA_AS_IS, NULL, ONPREM_QUICK_REPLY, "WA Israel", CFG_IL, IL, 0,
      SINGLE, OUT, 1, "whatsapp", 0, 0 },
};

const size_t wa_n_effects = sizeof(wa_effects) / sizeof(wa_effects[0]);

const struct wa_malformed wa_malformed[] = {
    { "", 400 },
    { "{", 400 },
    { "[]", 400 },
    { "null", 400 },
    { "{}", 400 },
    { "{\"object\":\"page\",\"entry\":[]}", 400 },
    { "{\"object\":\"whatsapp_business_account\"}", 400 },
    { "{\"object\":\"whatsapp_business_account\",\"entry\":{}}", 400 },
    { "{\"entry\":[1]}", 400 },
    { "{\"entry\":[{\"changes\":\"x\"}]}", 400 },
    { "{\"entry\":[{\"changes\":[{\"value\":[]}]}]}", 400 },
    { CLOUD_HEAD "\"messages\":{}" CLOUD_TAIL, 400 },
    { CLOUD_HEAD "\"messages\":[\"x\"]" CLOUD_TAIL, 400 },
    /* all or nothing: a good STOP, then a message without an id */
    { CLOUD_HEAD "\"messages\":[" STOP_MSG(
          "wamid.OK1") ",{\"from\":"
                       "\"972987654321\",\"timestamp\":\"1\"}]" CLOUD_TAIL,
      400 },
    { CLOUD_HEAD "\"messages\":[" STOP_MSG(
          "wamid.OK2") ",{\"id\":\"x\","
                       "\"from\":\"972987654321\",\"timestamp\":\"12a\"}"
                       "]" CLOUD_TAIL,
      400 },
    { CLOUD_HEAD "\"messages\":[{\"id\":\"x\",\"timestamp\":1.5}]" CLOUD_TAIL,
      400 },
    { CLOUD_HEAD "\"messages\":[{\"id\":\"x\",\"timestamp\":-1}]" CLOUD_TAIL,
      400 },
    { CLOUD_HEAD "\"messages\":[{\"id\":\"x\",\"timestamp\":"
                 "\"99999999999999999999\"}]" CLOUD_TAIL,
      400 },
    { CLOUD_HEAD "\"messages\":[{\"id\":7,\"timestamp\":\"1\"}]" CLOUD_TAIL,
      400 },
    { CLOUD_HEAD "\"messages\":[{\"id\":\"x\",\"timestamp\":\"1\",\"from\":"
                 "4915}]" CLOUD_TAIL,
      400 },
    { CLOUD_HEAD "\"statuses\":[{\"id\":\"x\",\"timestamp\":\"1\"}]" CLOUD_TAIL,
      400 },
    { CLOUD_HEAD "\"messages\":[" STOP_MSG("wamid.OK3") "]" CLOUD_TAIL
                                                        " trailing",
      400 },
    { "{\"messages\":[" STOP_MSG("wamid.OK4") "],\"metadata\":7}", 400 },
    /* On-Premise without the route naming a Configuration */
    { "{\"messages\":[" STOP_MSG("wamid.OK5") "]}", 400 },
};

const size_t wa_n_malformed = sizeof(wa_malformed) / sizeof(wa_malformed[0]);

void wa_effect_name(char *out, size_t cap, const struct wa_effect *e)
{
    snprintf(out, cap, "%s/%d/%s", e->fixture ? e->fixture : "composed",
             (int)e->how, e->arg ? e->arg : "-");
}

char *wa_effect_body(const struct wa_effect *e)
{
    return e->body ? xstrdup(e->body)
                   : wa_derive_body(e->fixture, e->how, e->arg);
}

static void check_source(cache *c, const struct wa_effect *e, const char *name)
{
    sqlite3_stmt *st;

    if (!e->source)
        return;
    st = cache_stmt(c, "SELECT source FROM ledger ORDER BY seq DESC");
    assert_int_equal(cache_step(st), SQLITE_ROW);
    if (strcmp(cache_col_text(st, 0), e->source) != 0)
        fail_msg("%s: source %s, expected %s", name, cache_col_text(st, 0),
                 e->source);
    sqlite3_reset(st);
}

void wa_effect_check(cache *c, const struct wa_effect *e,
                     const struct wa_snapshot *before, int duplicates)
{
    struct wa_snapshot after;
    enum consent_status now = wa_state_of(c, e->cfg, e->phone);
    char name[160];

    wa_effect_name(name, sizeof(name), e);
    wa_snap(&after, c);
    if (now != e->after)
        fail_msg("%s: expected %s, got %s", name, consent_status_name(e->after),
                 consent_status_name(now));
    if (after.ledger - before->ledger != e->transitions ||
        after.outbox - before->outbox != e->transitions)
        fail_msg("%s: %lld ledger entries and %lld outbox rows, expected %d",
                 name, after.ledger - before->ledger,
                 after.outbox - before->outbox, e->transitions);
    if (after.near_misses - before->near_misses != e->near_misses)
        fail_msg("%s: %lld near-misses, expected %d", name,
                 after.near_misses - before->near_misses, e->near_misses);
    if (after.quarantine != before->quarantine)
        fail_msg("%s: quarantined", name);
    if (duplicates != e->duplicates)
        fail_msg("%s: %d duplicates, expected %d", name, duplicates,
                 e->duplicates);
    /* every item was remembered (whatsapp.h design note 3) */
    if (after.seen <= before->seen)
        fail_msg("%s: nothing de-duplicated", name);
    check_source(c, e, name);
}
