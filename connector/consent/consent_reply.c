/*
 * consent_reply — what a WhatsApp reply asks for, in docs/design.md's order:
 * configured payload intents, then the payload and the label through the
 * keyword matcher, then the text.  Ambiguous affirmatives count only as a
 * reply to a business message; a forwarded opt-in is no consent, while a
 * forwarded opt-out is honoured.
 */
#include "consent_p.h"

#include <string.h>

static enum consent_action action_of(enum keyword_intent intent,
                                     int has_context)
{
    switch (intent) {
    case KW_OPT_IN: return CONSENT_ACT_OPT_IN;
    case KW_OPT_OUT: return CONSENT_ACT_OPT_OUT;
    case KW_CONFIRM: return CONSENT_ACT_CONFIRM;
    case KW_TOPIC_OPT_OUT: return CONSENT_ACT_TOPIC_OPT_OUT;
    case KW_PAUSE: return CONSENT_ACT_PAUSE;
    case KW_AFFIRMATIVE:
        return has_context ? CONSENT_ACT_OPT_IN : CONSENT_ACT_NONE;
    default: return CONSENT_ACT_NONE;
    }
}

/* The first source that means something decides. */
static void classify(struct consent_intent *out, const keywords *k,
                     const struct consent_reply *r)
{
    struct keyword_match m;

    memset(&m, 0, sizeof(m));
    /* A near miss anywhere (a broken "OPT_OUT:" payload, a label or text
     * that only contains "stop") is worth a person's look. */
    if (r->payload && *r->payload) {
        keywords_match_payload(&m, k, r->payload);
        out->near_miss |= m.near_miss;
        if (m.intent != KW_NONE)
            goto found;
    }
    if (r->title && *r->title) {
        keywords_match_text(&m, k, r->title);
        out->near_miss |= m.near_miss;
        if (m.intent != KW_NONE)
            goto found;
    }
    if (r->text && *r->text) {
        keywords_match_text(&m, k, r->text);
        out->near_miss |= m.near_miss;
        if (m.intent != KW_NONE)
            goto found;
    }
    return;
found:
    out->near_miss = 0; /* it meant something after all */
    out->action = action_of(m.intent, r->has_context);
    if (m.intent == KW_TOPIC_OPT_OUT) {
        memcpy(out->topic_storage, m.topic, sizeof(out->topic_storage));
        out->topic = out->topic_storage;
    }
    out->pause_days = m.pause_days;
}

void consent_action_for_reply(struct consent_intent *out, const keywords *k,
                              const struct consent_reply *reply)
{
    memset(out, 0, sizeof(*out));
    classify(out, k, reply);
    /* Someone else's opt-in, forwarded, is not this sender's consent; a
     * forwarded "STOP" still tells us this sender wants none. */
    if (reply->forwarded && out->action != CONSENT_ACT_OPT_OUT)
        out->action = CONSENT_ACT_NONE;
}
