/*
 * phone — see phone.h.  Policy on top of the libphonenumber shim: which
 * input may skip the parser, regions, WhatsApp ids and the alias rules of
 * Mexico, Brazil and Argentina.  Never includes a C++ header (only
 * phone_shim.cc does) and never does I/O.
 *
 * Fast path.  A key-form input is copied as it is only when its calling
 * code is a known country code without alias rules and the digit after
 * the code is no trunk prefix.  "+4402079460958" has the key form but is
 * "+44 (0)20 7946 0958" with the brackets lost; libphonenumber drops that
 * 0, so copying it would store one subscriber under two keys (and the gate
 * could read a CRM row's opt-in for a number that opted out on WhatsApp).
 * Which digits libphonenumber strips or rewrites after a calling code was
 * found by running both paths over random key-form numbers for every
 * calling code (libphonenumber 8.12): 0 nearly everywhere, plus the table
 * in rewrite_digits().  Such input takes the full path; for a real number
 * that merely costs time (Italy keeps its 0: +39 06...).  fuzz_phone checks
 * that both paths agree.  The table of known codes is read from
 * libphonenumber once, so the fast path itself makes no call.
 */
#include "phone.h"

#include <pthread.h>
#include <string.h>

#include "caps.h"
#include "err.h"

#define E164_DIGITS_MIN 7
#define E164_DIGITS_MAX 15

/* ---- key form and calling codes ------------------------------------------ */

int phone_is_canonical(const char *s)
{
    size_t n = 0;

    if (!s || s[0] != '+' || s[1] < '1' || s[1] > '9')
        return 0;
    for (s++; *s; s++, n++) {
        if (*s < '0' || *s > '9' || n == E164_DIGITS_MAX)
            return 0;
    }
    return n >= E164_DIGITS_MIN;
}

/*
 * Digits after a calling code that libphonenumber may strip or rewrite
 * when it parses "+<code><digits>" (beyond 0): trunk prefixes (+1 1,
 * +7 8), carrier codes (+86 1, +352 1) and short local forms it expands
 * (Madagascar, San Marino, Norfolk Island).
 */
static const char *rewrite_digits(int code)
{
    static const struct {
        short code;
        const char *digits;
    } table[] = {
        { 1, "1" },    { 7, "8" },
        { 86, "1" },   { 261, "0123456789" },
        { 298, "1" },  { 352, "1" },
        { 370, "8" },  { 375, "8" },
        { 378, "89" }, { 672, "0123456789" },
        { 692, "1" },  { 993, "8" },
        { 998, "8" },
    };
    size_t i;

    for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (table[i].code == code)
            return table[i].digits;
    }
    return "";
}

/* Per calling code: bit d set = a key-form number whose digit after the
 * code is d takes the full path.  UNKNOWN_CODE: no country has it. */
#define UNKNOWN_CODE 0xffffu
#define EVERY_DIGIT 0x3ffu
static unsigned short full_path_digits[1000];
static pthread_once_t full_path_once = PTHREAD_ONCE_INIT;

/* Calling codes whose subscribers have more than one spelling. */
static int has_alias_rules(int code)
{
    return code == 52 || code == 54 || code == 55;
}

static void full_path_digits_load(void)
{
    char region[3];
    const char *d;
    int code;

    for (code = 0; code < 1000; code++) {
        full_path_digits[code] = UNKNOWN_CODE;
        if (code == 0 || phone_shim_region_for_calling_code(region, code) != 0)
            continue;
        full_path_digits[code] = has_alias_rules(code) ? EVERY_DIGIT : 1u;
        for (d = rewrite_digits(code); *d; d++)
            full_path_digits[code] |= (unsigned short)(1u << (*d - '0'));
    }
}

/*
 * Whether a key-form `s` is already its own key (see the file comment).
 * Calling codes are prefix-free: the first prefix that is a country's
 * code is the code.  Returns 0 for an unknown code.
 */
static int fast_path_ok(const char *s)
{
    int code = 0, len;

    pthread_once(&full_path_once, full_path_digits_load);
    for (len = 1; len <= 3; len++) {
        code = code * 10 + (s[len] - '0');
        if (full_path_digits[code] != UNKNOWN_CODE)
            return !(full_path_digits[code] & (1u << (s[len + 1] - '0')));
    }
    return 0;
}

/* ---- regions ------------------------------------------------------------- */

static int is_ascii_alpha(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* "49", "+49" → 49; 0 when not 1-3 digits. */
static int calling_code_parse(const char *s)
{
    int code = 0, n = 0;

    if (*s == '+')
        s++;
    for (; *s >= '0' && *s <= '9' && n < 4; s++, n++)
        code = code * 10 + (*s - '0');
    return *s || n == 0 || n > 3 ? 0 : code;
}

int phone_region_resolve(char *out, const char *region)
{
    char iso[3];
    int code;

    if (!region)
        goto bad;
    if (is_ascii_alpha(region[0]) && is_ascii_alpha(region[1]) && !region[2]) {
        iso[0] = (char)(region[0] & ~0x20); /* ASCII upper case */
        iso[1] = (char)(region[1] & ~0x20);
        iso[2] = '\0';
        if (phone_shim_calling_code_for_region(iso) == 0)
            goto bad;
        memcpy(out, iso, sizeof(iso));
        return 0;
    }
    code = calling_code_parse(region);
    if (code > 0 && phone_shim_region_for_calling_code(iso, code) == 0) {
        memcpy(out, iso, sizeof(iso));
        return 0;
    }
bad:
    err_set(ERR_CLASS_INPUT, "unknown region \"%.16s\"", region ? region : "");
    return ERR_BADINPUT;
}

/* ---- Brazil's ninth digit ------------------------------------------------ */

/*
 * +55 AA XXXXXXXX with X starting 6-9 (a mobile from before 2016) →
 * +55 AA 9XXXXXXXX, when the old form is no valid number itself and the
 * new one is a valid mobile.  Returns 0 and fills out, or -1.
 */
static int brazil_add_ninth(char *out, const char *e164)
{
    struct phone_shim_result old, now;
    char candidate[PHONE_E164_MAX];
    const char *why;

    if (strncmp(e164, "+55", 3) != 0 || strlen(e164) != 13 || e164[5] < '6' ||
        e164[5] > '9')
        return -1;
    memcpy(candidate, e164, 5);
    candidate[5] = '9';
    memcpy(candidate + 6, e164 + 5, 9); /* 8 digits and the NUL */
    if (phone_shim_parse(&old, e164, NULL, &why) != 0 || old.valid)
        return -1;
    if (phone_shim_parse(&now, candidate, NULL, &why) != 0 || !now.valid ||
        !now.mobile)
        return -1;
    memcpy(out, candidate, sizeof(candidate));
    return 0;
}

/* The inverse: +55 AA 9XXXXXXXX (X 6-9, a valid mobile) → +55 AA XXXXXXXX. */
static int brazil_drop_ninth(char *out, const char *e164)
{
    struct phone_shim_result r;
    char candidate[PHONE_E164_MAX];
    const char *why;

    if (strncmp(e164, "+55", 3) != 0 || strlen(e164) != 14 || e164[5] != '9' ||
        e164[6] < '6' || e164[6] > '9')
        return -1;
    if (phone_shim_parse(&r, e164, NULL, &why) != 0 || !r.valid || !r.mobile)
        return -1;
    memcpy(candidate, e164, 5);
    memcpy(candidate + 5, e164 + 6, 9);
    /* A valid old form would be some other subscriber's number. */
    if (phone_shim_parse(&r, candidate, NULL, &why) == 0 && r.valid)
        return -1;
    memcpy(out, candidate, sizeof(candidate));
    return 0;
}

/* ---- parsing ------------------------------------------------------------- */

static int reject(const char **why, const char *reason)
{
    if (why)
        *why = reason;
    err_set(ERR_CLASS_INPUT, "%s", reason);
    return ERR_BADINPUT;
}

#define STABLE_TRIES 4

/*
 * libphonenumber, until its answer parses to itself.  It strips one trunk
 * prefix per parse ("+44 00 6..." → "+44 0 6..." → "+44 6..."), and a key
 * that became another key when parsed again would split one subscriber in
 * two (an opt-out stored under one, a CRM opt-in read under the other).
 * Valid numbers are no exception ("+52 1 1 55..." is valid, and loses
 * one 1 per parse).  An answer the fast path would keep, or one equal to
 * the input (a key looked up again), costs no second parse.
 */
static int parse_stable(struct phone_shim_result *r, const char *input,
                        const char *iso, unsigned want, const char **reason)
{
    char prev[PHONE_E164_MAX];
    int i;

    if (phone_shim_parse_want(r, input, iso, want, reason) != 0)
        return -1;
    for (i = 0;; i++) {
        if (!phone_is_canonical(r->e164) || fast_path_ok(r->e164) ||
            (i == 0 && strcmp(r->e164, input) == 0))
            return 0; /* the last one: parsing it gives itself */
        if (i == STABLE_TRIES) {
            *reason = "cannot be parsed (no stable form)";
            return -1;
        }
        memcpy(prev, r->e164, sizeof(prev));
        if (phone_shim_parse_want(r, prev, NULL, want, reason) != 0)
            return -1;
        if (strcmp(prev, r->e164) == 0)
            return 0;
    }
}

/*
 * libphonenumber, then the Brazil fold; out is written only on success.
 * `strict`: the number must be valid per the metadata, not only possible.
 */
static int parse_full(char *out, const char *input, const char *region,
                      int strict, const char **why)
{
    struct phone_shim_result r;
    const char *reason = NULL;
    char iso[3];
    int has_region = region && *region;

    if (has_region && phone_region_resolve(iso, region) != 0)
        return reject(why, "unknown region (not an ISO country or a "
                           "calling code)");
    /* Validity only when asked for: it costs as much as the parse. */
    if (parse_stable(&r, input, has_region ? iso : NULL,
                     strict ? PHONE_SHIM_VALID : 0, &reason) != 0)
        return reject(why, reason ? reason : "cannot be parsed");
    /* libphonenumber accepts national numbers up to 17 digits (DE). */
    if (!phone_is_canonical(r.e164))
        return reject(why, "too long for E.164");
    if (r.calling_code == 55 && brazil_add_ninth(out, r.e164) == 0)
        return 0; /* the folded form is a valid mobile */
    if (strict && !r.valid)
        return reject(why, "not a valid number (no such range in its "
                           "country: a typo?)");
    memcpy(out, r.e164, sizeof(r.e164));
    return 0;
}

static int parse_key(char *out, const char *input, const char *region,
                     int strict, const char **why)
{
    if (!input || !*input)
        return reject(why, "empty");
    if (strnlen(input, CAP_PHONE_INPUT_BYTES + 1) > CAP_PHONE_INPUT_BYTES)
        return reject(why, "too long to be a phone number");
    if (phone_is_canonical(input) && fast_path_ok(input)) {
        memcpy(out, input, strlen(input) + 1);
        return 0;
    }
    return parse_full(out, input, region, strict, why);
}

int phone_parse(char *out, const char *input, const char *region,
                const char **why)
{
    return parse_key(out, input, region, 1, why);
}

int phone_from_whatsapp(char *out, const char *wa_id, const char **why)
{
    char key[PHONE_E164_MAX];
    size_t n;

    if (!wa_id || !*wa_id)
        return reject(why, "empty WhatsApp id (a username without a number)");
    if (*wa_id == '+')
        wa_id++;
    n = strspn(wa_id, "0123456789");
    if (wa_id[n] != '\0' || n == 0)
        return reject(why, "not a WhatsApp id (digits only)");
    if (n < E164_DIGITS_MIN)
        return reject(why, "too short");
    if (n > E164_DIGITS_MAX)
        return reject(why, "too long");
    if (*wa_id == '0')
        return reject(why, "not a WhatsApp id (leading 0)");
    key[0] = '+';
    memcpy(key + 1, wa_id, n + 1);
    /* Meta's ids are real numbers: possible is enough (a range newer
     * than the metadata must not strand an opt-out in quarantine). */
    return parse_key(out, key, NULL, 0, why);
}

/* ---- aliases ------------------------------------------------------------- */

/*
 * Argentina: "+54 9 AA..." (mobile, as WhatsApp ids have it) and
 * "+54 AA..." (as a CRM may hold it) name one subscriber.  Both directions
 * hinge on the 9 spelling being a valid mobile, which keeps 0800 numbers
 * and the like out and makes the rule symmetric; the spelling without the
 * 9 need not be valid on its own (it may be a mobile range only).
 */
static int argentina_other(char *out, const char *e164)
{
    struct phone_shim_result r;
    char other[PHONE_E164_MAX];
    const char *mobile = e164, *why;
    size_t len = strlen(e164);

    if (strncmp(e164, "+549", 4) == 0 && len == 14) {
        memcpy(other, "+54", 3);
        memcpy(other + 3, e164 + 4, 11);
    } else if (strncmp(e164, "+54", 3) == 0 && e164[3] != '9' && len == 13) {
        memcpy(other, "+549", 4);
        memcpy(other + 4, e164 + 3, 11);
        mobile = other;
    } else {
        return -1;
    }
    if (phone_shim_parse(&r, mobile, NULL, &why) != 0 || !r.valid || !r.mobile)
        return -1;
    memcpy(out, other, sizeof(other));
    return 0;
}

size_t phone_aliases(char out[][PHONE_E164_MAX], size_t max, const char *e164)
{
    char alias[PHONE_E164_MAX];

    if (max == 0 || !phone_is_canonical(e164))
        return 0;
    if (strncmp(e164, "+54", 3) == 0 && argentina_other(alias, e164) == 0) {
        memcpy(out[0], alias, sizeof(alias));
        return 1;
    }
    if (strncmp(e164, "+55", 3) == 0 && (brazil_drop_ninth(alias, e164) == 0 ||
                                         brazil_add_ninth(alias, e164) == 0)) {
        memcpy(out[0], alias, sizeof(alias));
        return 1;
    }
    return 0;
}
