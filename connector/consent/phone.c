/*
 * phone — see phone.h.  Policy on top of the libphonenumber shim: which
 * input may skip the parser, regions, WhatsApp ids and the alias rules of
 * Mexico, Brazil and Argentina.  Never includes a C++ header (only
 * phone_shim.cc does) and never does I/O.
 *
 * Fast paths (phone.h note 2).  libphonenumber's Parse costs 7-14 us a
 * number here, most of it in regular expressions; the common spellings
 * need none of that, and each fast path answers only when it provably
 * gives the full path's key, else it hands the input on:
 *  - key form ("+4915123456789"): copied when its calling code is a known
 *    country code without alias rules, the digit after the code is no
 *    trunk prefix, and its length is possible for the code.
 *    "+4402079460958" has the key form but is "+44 (0)20 7946 0958" with
 *    the brackets lost; libphonenumber drops that 0, so copying it would
 *    store one subscriber under two keys (and the gate could read a CRM
 *    row's opt-in for a number that opted out on WhatsApp).  Which digits
 *    libphonenumber strips or rewrites after a calling code is a table
 *    (phone_table.c); such input takes the full path, which for a real
 *    number merely costs time (Italy keeps its 0: +39 06...).
 *  - the same with separators ("+49 151 2345-6789", "+1 (415) 555 0100"):
 *    digits, blanks and - . / ( ) only, which Parse drops, so the digits
 *    are the key form's.
 *  - with the region's international prefix when it is plain digits
 *    ("0049 151 ...", "011 1 415 ..."): Parse strips it like a "+".
 *  - national, in the main region of its calling code, when its national
 *    prefix is plain digits without a rewrite rule ("0151 23456789" in
 *    DE, "(415) 555-0100" in US): Parse's steps for that case, in order
 *    (a number starting with the country code, the prefix, the general
 *    pattern test, the length test), with the general pattern matched by
 *    phone_table.c; anything else takes the full path.
 * fuzz_phone checks that every fast answer equals the full path's.  The
 * tables are read from libphonenumber once, so no fast path makes a call.
 */
#include "phone_p.h"

#include <stdio.h>
#include <string.h>

#include "caps.h"
#include "err.h"

/* ---- the fast paths ------------------------------------------------------ */

int phone_is_canonical(const char *s)
{
    size_t n = 0;

    if (!s || s[0] != '+' || s[1] < '1' || s[1] > '9')
        return 0;
    for (s++; *s; s++, n++) {
        if (*s < '0' || *s > '9' || n == PHONE__DIGITS_MAX)
            return 0;
    }
    return n >= PHONE__DIGITS_MIN;
}

/* Whether a key-form `s` is already its own key (the first fast path). */
static int key_fast(const char *s)
{
    int len, code = phone__code(s + 1, &len);

    if (!code || phone__full_path_digits(code) & (1u << (s[1 + len] - '0')))
        return 0;
    return phone__possible(code, (int)strlen(s + 1 + len)) == NULL;
}

/* "+" and `digits` into out when that is its own key. */
static int international_fast(char *out, const char *digits)
{
    char key[PHONE_E164_MAX];
    size_t n = strlen(digits);

    if (n > PHONE__DIGITS_MAX)
        return 0;
    key[0] = '+';
    memcpy(key + 1, digits, n + 1);
    if (!phone_is_canonical(key) || !key_fast(key))
        return 0;
    memcpy(out, key, n + 2);
    return 1;
}

/* Digits a typed number may have: a key's, and an international prefix
 * ("011") before them. */
#define TYPED_DIGITS_MAX (PHONE__DIGITS_MAX + 4)

/*
 * The digits of `s` when it holds only digits, blanks and the separators
 * Parse drops (- . / ( )), with at most a leading "+" (*plus).  0 when it
 * holds anything else or more than TYPED_DIGITS_MAX digits.
 */
static int plain_digits(char *out, int *plus, const char *s)
{
    size_t n = 0;

    s += strspn(s, " ");
    *plus = *s == '+';
    for (s += *plus; *s; s++) {
        if (*s >= '0' && *s <= '9') {
            if (n == TYPED_DIGITS_MAX)
                return 0;
            out[n++] = *s;
        } else if (!strchr(" -./()", *s)) {
            return 0;
        }
    }
    out[n] = '\0';
    return n > 0;
}

/*
 * Parse's last step, national number `d` under region r (plain-digit
 * prefixes): the national prefix goes unless only the number with it
 * fits the general pattern, and only when the rest has a possible
 * length (else Parse keeps it, and so does the full path: key_fast
 * refuses that length).  1 and out filled, or 0 (the full path decides).
 */
static int national_prefix_fast(char *out, const struct phone__region *r,
                                const char *d)
{
    char digits[PHONE__DIGITS_MAX + 8];
    size_t n = strlen(d), p = strlen(r->prefix);
    const char *nsn = d;
    int g;

    if (p && strncmp(d, r->prefix, p) == 0) {
        g = phone__general_matches(r, d, n);
        if (g < 0 || (g && phone__general_matches(r, d + p, n - p) != 1))
            return 0;
        nsn = d + p; /* its length: key_fast */
    }
    if (*nsn == '0' || strlen(nsn) > PHONE__DIGITS_MAX)
        return 0; /* a leading 0 stays (Italy): the full path knows */
    snprintf(digits, sizeof(digits), "%d%s", r->code, nsn);
    return international_fast(out, digits);
}

/* "+" and `digits` as Parse reads them: the calling code, then the rest
 * under its main region. */
static int plus_fast(char *out, const char *digits)
{
    const struct phone__region *r;
    int len, code = phone__code(digits, &len);

    r = code ? phone__main_region(code) : NULL;
    if (r && r->prefix && national_prefix_fast(out, r, digits + len))
        return 1;
    return international_fast(out, digits);
}

/* The fast paths for anything but the key form: 1 and out filled, or 0. */
static int typed_fast(char *out, const char *input, const char *region)
{
    const struct phone__region *r = NULL;
    char d[TYPED_DIGITS_MAX + 1], code[8];
    size_t idd;
    int plus;

    if (!plain_digits(d, &plus, input))
        return 0;
    if (plus)
        return plus_fast(out, d); /* needs no region */
    if (region && *region)
        r = phone__region_for(region);
    if (!r || !r->idd || !r->main || !r->prefix)
        return 0; /* a region whose prefixes are patterns: full path */
    idd = strlen(r->idd);
    if (strncmp(d, r->idd, idd) == 0)
        return d[idd] > '0' && plus_fast(out, d + idd);
    snprintf(code, sizeof(code), "%d", r->code);
    if (strncmp(d, code, strlen(code)) == 0)
        return 0; /* maybe the country code without a "+" */
    return national_prefix_fast(out, r, d);
}

/* ---- regions ------------------------------------------------------------- */

int phone_region_resolve(char *out, const char *region)
{
    const struct phone__region *r = phone__region_for(region);

    if (!r) {
        err_set(ERR_CLASS_INPUT, "unknown region \"%.16s\"",
                region ? region : "");
        return ERR_BADINPUT;
    }
    memcpy(out, r->id, 3);
    return 0;
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
                        const char *iso, const char **reason)
{
    char prev[PHONE_E164_MAX];
    int i;

    if (phone_shim_parse_want(r, input, iso, 0, reason) != 0)
        return -1;
    for (i = 0;; i++) {
        if (!phone_is_canonical(r->e164) || key_fast(r->e164) ||
            (i == 0 && strcmp(r->e164, input) == 0))
            return 0; /* the last one: parsing it gives itself */
        if (i == STABLE_TRIES) {
            *reason = "cannot be parsed (no stable form)";
            return -1;
        }
        memcpy(prev, r->e164, sizeof(prev));
        if (phone_shim_parse_want(r, prev, NULL, 0, reason) != 0)
            return -1;
        if (strcmp(prev, r->e164) == 0)
            return 0;
    }
}

/*
 * Why `e164` is no key although libphonenumber calls it possible, or
 * NULL.  Parse keeps a national prefix when the number without it has an
 * impossible length: "07700 9002" in GB becomes +44 077009002, a number
 * too short typed with its trunk prefix.  Such a key is refused when no
 * number of the country looks like it (its general pattern), which keeps
 * real numbers that begin with the prefix digit (+7 812..., St
 * Petersburg, where 8 is the trunk prefix).
 */
static const char *kept_national_prefix(const char *e164)
{
    const struct phone__region *r;
    const char *nsn, *why;
    int len, code = phone__code(e164 + 1, &len);
    size_t p;

    r = code ? phone__main_region(code) : NULL;
    if (!r || !r->prefix || !*r->prefix)
        return NULL;
    nsn = e164 + 1 + len;
    p = strlen(r->prefix);
    if (strncmp(nsn, r->prefix, p) != 0)
        return NULL;
    why = phone__possible(code, (int)(strlen(nsn) - p));
    if (!why || phone__general_matches(r, nsn, strlen(nsn)) != 0)
        return NULL;
    return why;
}

/* libphonenumber, then the Brazil fold; out is written only on success. */
static int parse_full(char *out, const char *input, const char *region,
                      const char **why)
{
    struct phone_shim_result r;
    const char *reason = NULL;
    char iso[3];
    int has_region = region && *region;

    /* A number with its "+" needs no region, so a bad one is no error
     * for it (as for the fast paths). */
    if (has_region && phone_region_resolve(iso, region) != 0) {
        if (input[strspn(input, " ")] != '+')
            return reject(why, "unknown region (not an ISO country or a "
                               "calling code)");
        has_region = 0;
    }
    /* Possible is all a key needs (phone.h note 1): no validity here. */
    if (parse_stable(&r, input, has_region ? iso : NULL, &reason) != 0)
        return reject(why, reason ? reason : "cannot be parsed");
    /* libphonenumber accepts national numbers of 2 to 17 digits. */
    if (!phone_is_canonical(r.e164))
        return reject(why, strlen(r.e164) < 1 + PHONE__DIGITS_MIN
                               ? "too short for E.164"
                               : "too long for E.164");
    if ((reason = kept_national_prefix(r.e164)) != NULL)
        return reject(why, reason);
    if (r.calling_code == 55 && brazil_add_ninth(out, r.e164) == 0)
        return 0; /* the folded form is a valid mobile */
    memcpy(out, r.e164, sizeof(r.e164));
    return 0;
}

static int parse_key(char *out, const char *input, const char *region, int fast,
                     const char **why)
{
    char key[PHONE_E164_MAX];

    if (!input || !*input)
        return reject(why, "empty");
    if (strnlen(input, CAP_PHONE_INPUT_BYTES + 1) > CAP_PHONE_INPUT_BYTES)
        return reject(why, "too long to be a phone number");
    if (fast && phone_is_canonical(input) && key_fast(input)) {
        memcpy(out, input, strlen(input) + 1);
        return 0;
    }
    if (fast && typed_fast(key, input, region)) {
        memcpy(out, key, strlen(key) + 1);
        return 0;
    }
    return parse_full(out, input, region, why);
}

int phone_parse(char *out, const char *input, const char *region,
                const char **why)
{
    return parse_key(out, input, region, 1, why);
}

int phone__parse_full(char *out, const char *input, const char *region,
                      const char **why)
{
    return parse_key(out, input, region, 0, why);
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
    if (n < PHONE__DIGITS_MIN)
        return reject(why, "too short");
    if (n > PHONE__DIGITS_MAX)
        return reject(why, "too long");
    if (*wa_id == '0')
        return reject(why, "not a WhatsApp id (leading 0)");
    key[0] = '+';
    memcpy(key + 1, wa_id, n + 1);
    /* The same rule as a typed number (phone.h note 1). */
    return parse_key(out, key, NULL, 1, why);
}

/* ---- validity (a warning, never a rejection) ----------------------------- */

const char *phone_warning(const char *e164)
{
    struct phone_shim_result r;
    const char *why;
    int len, code, valid;

    if (!phone_is_canonical(e164))
        return NULL; /* not a key */
    code = phone__code(e164 + 1, &len);
    valid =
        code ? phone__valid(code, e164 + 1 + len, strlen(e164 + 1 + len)) : 0;
    if (valid < 0) /* the tables cannot tell: ask libphonenumber */
        valid = phone_shim_parse_want(&r, e164, NULL, PHONE_SHIM_VALID, &why) ==
                    0 &&
                r.valid;
    return valid ? NULL : PHONE_WARNING_NOT_VALID;
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
