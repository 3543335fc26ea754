/*
 * fuzz_whatsapp — a WhatsApp webhook body from outside (Meta's Cloud API
 * envelope or 360dialog's On-Premise format): whatsapp_delivery_parse,
 * then every message through whatsapp_message_reply and
 * consent_action_for_reply (a matcher built once from the built-ins),
 * and the same bytes as an X-Hub-Signature-256 header for
 * whatsapp_auth_check.  Input is capped at 1 MiB.  Invariants, each an
 * abort():
 *   - parse returns 0, ERR_BADINPUT or ERR_TOOBIG, and on 0 every item
 *     has what whatsapp.h promises (ids and statuses non-empty, times in
 *     ms and not negative, error counts in range);
 *   - parsing the same bytes twice gives the same counts;
 *   - a random header never verifies.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "caps.h"
#include "err.h"
#include "whatsapp.h"

#define MAX_INPUT (1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

static const keywords *matcher(void)
{
    static char *in[] = { "OPT_IN" }, *out[] = { "OPT_OUT" },
                *conf[] = { "DOI_CONFIRM" };
    static struct config_list none = { NULL, 0 }, pin = { in, 1 },
                              pout = { out, 1 }, pconf = { conf, 1 };
    static keywords *k;
    struct keywords_options o;

    if (k)
        return k;
    memset(&o, 0, sizeof(o));
    o.opt_in_keywords = &none;
    o.opt_out_keywords = &none;
    o.builtin = 1;
    o.opt_in_payloads = &pin;
    o.opt_out_payloads = &pout;
    o.confirm_payloads = &pconf;
    if (keywords_new(&k, &o) != 0)
        abort(); /* the built-ins are valid: a bug if not */
    return k;
}

static void check_items(const struct whatsapp_delivery *d)
{
    struct consent_intent in;
    struct consent_reply r;
    size_t i;

    for (i = 0; i < d->n_messages; i++) {
        const struct whatsapp_message *m = &d->messages[i];

        check(m->id && *m->id && m->at >= 0 && m->at % 1000 == 0);
        check(strlen(m->id) <= CAP_WA_ID_BYTES);
        whatsapp_message_reply(&r, m);
        consent_action_for_reply(&in, matcher(), &r);
        check(in.action != CONSENT_ACT_MIRROR);
    }
    for (i = 0; i < d->n_statuses; i++) {
        const struct whatsapp_status *s = &d->statuses[i];

        check(s->id && *s->id && s->status && *s->status && s->at >= 0);
        check(s->n_errors >= 0);
        check(!s->stopped_marketing || strcmp(s->status, "failed") == 0);
    }
    for (i = 0; i < d->n_preferences; i++)
        check(d->preferences[i].at >= 0);
    check(d->n_messages + d->n_statuses + d->n_preferences + d->n_errors +
              d->n_contacts <=
          CAP_WA_ITEMS);
}

static void check_header(const uint8_t *data, size_t size)
{
    static const struct whatsapp_auth a = { WHATSAPP_AUTH_SIGNATURE,
                                            "fuzz-app-secret", NULL, NULL,
                                            NULL };
    char header[128];
    size_t n = size < sizeof(header) - 1 ? size : sizeof(header) - 1;

    memcpy(header, data, n);
    header[n] = '\0';
    check(whatsapp_auth_check(&a, header, data, size) == ERR_AUTH);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct whatsapp_delivery d, again;
    int rc, rc2;

    if (size > MAX_INPUT)
        return 0;
    rc = whatsapp_delivery_parse(&d, (const char *)data, size);
    check(rc == 0 || rc == ERR_BADINPUT || rc == ERR_TOOBIG);
    if (rc == 0) {
        check_items(&d);
        (void)whatsapp_delivery_needs_configuration(&d);
        rc2 = whatsapp_delivery_parse(&again, (const char *)data, size);
        check(rc2 == 0 && again.n_messages == d.n_messages &&
              again.n_statuses == d.n_statuses &&
              again.n_preferences == d.n_preferences);
        whatsapp_delivery_dispose(&again);
    }
    whatsapp_delivery_dispose(&d);
    check_header(data, size);
    return 0;
}
