/*
 * phone — phone numbers as consent keys: E.164 through the libphonenumber
 * shim, WhatsApp ids, and the alias rules for countries whose WhatsApp ids
 * differ from what a CRM holds.
 *
 * Pipeline position: used by every source (poller, webhooks, CLI) to turn
 * what it was given into the key consent is stored under, and by the gate
 * to look a number up.  Pure: no I/O, no SQLite.
 *
 * Key form: E.164, "+" and 7 to 15 digits, first digit 1-9.  Input that
 * already has that form is taken as it is (the fast path: no
 * libphonenumber call), except for the calling codes with alias rules
 * (+52, +54, +55), which always go through the full path so that every
 * spelling of one subscriber yields one key.  So do key-form inputs whose
 * calling code is unknown or followed by a digit libphonenumber strips
 * ("+4402079460958" is "+44 (0)20 7946 0958" with the brackets lost).
 *
 * Validity: on the full path a number a person typed (phone_parse: CRM
 * rows, the CLI, the gate) must be valid per libphonenumber's metadata,
 * not only of a possible length, so a typo in Dynamics is reported
 * (optsync status) instead of becoming a key nobody will ever match.  A
 * WhatsApp id (phone_from_whatsapp) need only be possible: it comes from
 * Meta, and a range newer than the metadata must not strand an opt-out in
 * quarantine.  Key-form input on the fast path is trusted as it is.
 *
 * Alias rules (phone_aliases):
 *   Mexico     +52 1 XXXXXXXXXX (old mobile prefix, still in WhatsApp ids)
 *              is +52 XXXXXXXXXX; libphonenumber already folds it.
 *   Brazil     mobiles got a ninth digit (9) in 2012-2016; old WhatsApp ids
 *              lack it: +55 AA XXXXXXXX (8 digits, first 6-9) is folded
 *              to +55 AA 9XXXXXXXX.
 *   Argentina  WhatsApp ids carry the mobile 9 (+54 9 AA ...); a CRM may
 *              hold the same mobile as +54 AA ... (no 9).  Both spellings
 *              are valid numbers, so neither is folded: lookups try both.
 */
#ifndef OPTSYNC_PHONE_H
#define OPTSYNC_PHONE_H

#include <stddef.h>

#include "phone_shim.h" /* PHONE_E164_MAX */

#define PHONE_ALIASES_MAX 4

/*
 * Parses a number as a person typed it into E.164 (out holds
 * PHONE_E164_MAX bytes).  `region` is an ISO code ("DE"), a calling code
 * ("49", "+49") or NULL/"" when the number must carry its country code.
 * Returns 0, or ERR_BADINPUT with *why set to a static phrase ("not a
 * phone number", "too short", "unknown region ...").
 */
int phone_parse(char *out, const char *input, const char *region,
                const char **why);

/* True when `s` has the key form ("+" then 7-15 digits, no leading 0). */
int phone_is_canonical(const char *s);

/*
 * A WhatsApp `from` / `wa_id` (digits, sometimes with "+") to its key.
 * Returns 0, or ERR_BADINPUT with *why.
 */
int phone_from_whatsapp(char *out, const char *wa_id, const char **why);

/*
 * Other keys the same subscriber may be stored under (Argentina's mobile
 * 9, Brazil's ninth digit), not including `e164` itself.  Writes up to
 * `max` keys into out[] and returns how many.  Cheap: no libphonenumber
 * call for numbers outside +54 / +55.
 */
size_t phone_aliases(char out[][PHONE_E164_MAX], size_t max, const char *e164);

/*
 * "DE", "de", "49", "+49" → ISO region code in out (3 bytes).
 * Returns 0, or ERR_BADINPUT when the region is unknown.
 */
int phone_region_resolve(char *out, const char *region);

#endif
