/*
 * phone — phone numbers as consent keys: E.164 through the libphonenumber
 * shim, WhatsApp ids, and the alias rules for countries whose WhatsApp ids
 * differ from what a CRM holds.
 *
 * Pipeline position: used by every source (poller, webhooks, CLI) to turn
 * what it was given into the key consent is stored under, and by the gate
 * to look a number up.  Pure: no I/O, no SQLite.
 *
 * Key form: E.164, "+" and 7 to 15 digits, first digit 1-9.
 *
 * Design notes
 *  (1) One rule everywhere: a number that parses to a *possible* number
 *      (a length its country uses) is keyed by its E.164, whoever gives
 *      it: a CRM row (the poller), the CLI, the gate, a WhatsApp id.  So
 *      one person has one key, and a "STOP" from their WhatsApp id lands
 *      on the row the CRM holds.  Validity per libphonenumber's metadata
 *      (an allocated range) is only a warning (phone_warning): metadata
 *      ages, and a range newer than Debian's copy (UK 07700 900xxx,
 *      German 0154...) must not leave a person without a key.  Numbers
 *      that are not even possible (too short, too long, letters, no
 *      country) do not parse.
 *  (2) Fast paths: the key form, the same with separators, with the
 *      region's international prefix, and national numbers of regions
 *      whose prefixes are plain digits skip libphonenumber's Parse when
 *      the tables read from it once prove the answer equal (phone.c's
 *      file comment); the rest, and the calling codes with alias rules
 *      (+52, +54, +55), take the full path.  fuzz_phone checks that
 *      both paths agree.
 *  (3) A key parses to itself: libphonenumber is asked again until its
 *      answer is stable (phone.c, parse_stable).
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
 * Parses a number as a person typed it into its key, E.164 (out holds
 * PHONE_E164_MAX bytes), under note 1's rule.  `region` is an ISO code
 * ("DE"), a calling code ("49", "+49") or NULL/"" when the number must
 * carry its country code.  Returns 0, or ERR_BADINPUT with *why set to a
 * static phrase ("not a phone number", "too short", "unknown region ...").
 */
int phone_parse(char *out, const char *input, const char *region,
                const char **why);

/* True when `s` has the key form ("+" then 7-15 digits, no leading 0). */
int phone_is_canonical(const char *s);

/*
 * A WhatsApp `from` / `wa_id` (digits, sometimes with "+") to its key,
 * under the same rule.  Returns 0, or ERR_BADINPUT with *why.
 */
int phone_from_whatsapp(char *out, const char *wa_id, const char **why);

/* What phone_warning() says about a key libphonenumber calls invalid. */
#define PHONE_WARNING_NOT_VALID                                                \
    "not a valid number in libphonenumber's metadata"

/*
 * The warning for key `e164` (note 1): NULL when libphonenumber's
 * metadata calls it a valid number, else PHONE_WARNING_NOT_VALID (a
 * typo, or a range newer than the metadata).  Static strings.  About a
 * microsecond: the metadata's patterns, compiled once (phone_table.c).
 */
const char *phone_warning(const char *e164);

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
