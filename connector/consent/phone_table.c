/*
 * phone_table — what the phone fast paths know, read from libphonenumber
 * once (see phone_p.h): per calling code its regions, which digits after
 * the code make a key-form number take the full path, and which national
 * number lengths are possible; per region its international and national
 * prefixes; and the metadata's number patterns, compiled with PCRE2 on
 * first use, for the validity check (phone_warning) and for the one
 * pattern test a national number needs.  Pure: no I/O.
 *
 * Validity is libphonenumber's IsValidNumber, step for step
 * (GetRegionCodeForNumber, then GetNumberTypeHelper: the general
 * description first, then each number type with its possible lengths),
 * on the metadata libphonenumber itself loads; only the regular
 * expression engine differs (PCRE2's JIT instead of ICU, about thirty
 * times faster here).  fuzz_phone checks both agree.  A pattern PCRE2
 * cannot compile makes its answers "undecided", and phone.c asks
 * libphonenumber instead.
 */
#include "phone_p.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phone_shim.h"
#include "xalloc.h"

#define CODES 1000
#define REGIONS_MAX 400
#define REGIONS_PER_CODE 32
#define EVERY_DIGIT 0x3ffu

struct code_entry {
    int known;            /* some region (or "001") has this code */
    unsigned full_path;   /* phone__full_path_digits() */
    unsigned short first; /* regions[first .. first + count) */
    unsigned short count; /* in libphonenumber's order, main first */
    const char *possible[PHONE__NSN_MAX + 1]; /* by length; NULL: ok */
};

/* The leading-digits pattern is compiled after the descriptions. */
#define LEADING PHONE_SHIM_DESCS

struct region_slot {
    struct phone__region pub;
    const struct phone_shim_meta *meta;   /* borrowed: the shim keeps it */
    pcre2_code *re[PHONE_SHIM_DESCS + 1]; /* owned; NULL: no pattern */
    atomic_int compiled;                  /* 0 not yet, 1 ok, -1 failed */
};

static struct code_entry codes[CODES];
static struct region_slot regions[REGIONS_MAX];
static int n_regions;
static short by_iso[26 * 26]; /* region "AB": slot + 1; 0: none */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t compile_mu = PTHREAD_MUTEX_INITIALIZER;

/* ---- loading ------------------------------------------------------------ */

/*
 * Digits after a calling code that libphonenumber may strip or rewrite
 * when it parses "+<code><digits>" (beyond 0): trunk prefixes (+1 1,
 * +7 8), carrier codes (+86 1, +352 1) and short local forms it expands
 * (Madagascar, San Marino, Norfolk Island).  Found by running both paths
 * over random key-form numbers for every calling code (libphonenumber
 * 8.12); fuzz_phone keeps checking it.
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

/* Calling codes whose subscribers have more than one spelling. */
static int has_alias_rules(int code)
{
    return code == 52 || code == 54 || code == 55;
}

static const char *plain_digits_or_null(const char *s)
{
    return *s && strspn(s, "0123456789") == strlen(s) ? s : NULL;
}

static void region_add(int code, const char *id, int main)
{
    const struct phone_shim_meta *m = strcmp(id, "001") == 0
                                          ? phone_shim_meta_non_geo(code)
                                          : phone_shim_meta_region(id);
    struct region_slot *r;

    if (!m || n_regions == REGIONS_MAX)
        return;
    r = &regions[n_regions];
    memcpy(r->pub.id, id, strnlen(id, 3)); /* zeroed: a static */
    r->pub.code = code;
    r->pub.main = main;
    r->pub.idd = plain_digits_or_null(m->international_prefix);
    r->pub.prefix = *m->national_prefix_transform_rule ? NULL
                    : *m->national_prefix_for_parsing
                        ? plain_digits_or_null(m->national_prefix_for_parsing)
                        : "";
    r->pub.slot = n_regions;
    r->meta = m;
    if (strlen(id) == 2 && id[0] >= 'A' && id[0] <= 'Z' && id[1] >= 'A' &&
        id[1] <= 'Z')
        by_iso[(id[0] - 'A') * 26 + (id[1] - 'A')] = (short)(n_regions + 1);
    n_regions++;
}

static void code_load(int code)
{
    char ids[REGIONS_PER_CODE][4];
    struct code_entry *e = &codes[code];
    const char *d;
    size_t n, i;
    int len;

    e->full_path = EVERY_DIGIT;
    n = phone_shim_regions_for_calling_code(ids, REGIONS_PER_CODE, code);
    if (n == 0)
        return;
    e->known = 1;
    /* Non-geographic codes (+800, ...) always take the full path. */
    if (strcmp(ids[0], "001") != 0 && !has_alias_rules(code)) {
        e->full_path = 1u;
        for (d = rewrite_digits(code); *d; d++)
            e->full_path |= 1u << (*d - '0');
    }
    for (len = 1; len <= PHONE__NSN_MAX; len++)
        e->possible[len] = phone_shim_possible_length(code, len);
    e->first = (unsigned short)n_regions;
    for (i = 0; i < n; i++)
        region_add(code, ids[i], i == 0);
    e->count = (unsigned short)(n_regions - e->first);
}

static void load(void)
{
    int code;

    for (code = 0; code < CODES; code++) {
        codes[code].full_path = EVERY_DIGIT;
        if (code > 0)
            code_load(code);
    }
}

/* ---- calling codes and regions ------------------------------------------ */

int phone__code(const char *digits, int *len)
{
    int code = 0, n;

    pthread_once(&once, load);
    if (digits[0] == '0')
        return 0; /* no calling code starts with 0 (ExtractCountryCode) */
    for (n = 1; n <= 3 && digits[n - 1] >= '0' && digits[n - 1] <= '9'; n++) {
        code = code * 10 + (digits[n - 1] - '0');
        if (codes[code].known) {
            *len = n;
            return code;
        }
    }
    return 0;
}

unsigned phone__full_path_digits(int code)
{
    pthread_once(&once, load);
    return code > 0 && code < CODES ? codes[code].full_path : EVERY_DIGIT;
}

const char *phone__possible(int code, int len)
{
    pthread_once(&once, load);
    if (code <= 0 || code >= CODES || !codes[code].known)
        return "unknown country calling code";
    if (len < 1)
        return "too short";
    if (len > PHONE__NSN_MAX)
        return "too long";
    return codes[code].possible[len];
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

const struct phone__region *phone__main_region(int code)
{
    int slot;

    pthread_once(&once, load);
    if (code <= 0 || code >= CODES || !codes[code].count)
        return NULL;
    slot = codes[code].first;
    return strcmp(regions[slot].pub.id, "001") ? &regions[slot].pub : NULL;
}

const struct phone__region *phone__region_for(const char *region)
{
    int a, b, slot;

    pthread_once(&once, load);
    if (!region || !region[0])
        return NULL;
    a = region[0] & ~0x20; /* ASCII upper case */
    b = region[1] & ~0x20;
    if (a >= 'A' && a <= 'Z' && b >= 'A' && b <= 'Z' && !region[2]) {
        slot = by_iso[(a - 'A') * 26 + (b - 'A')];
        return slot ? &regions[slot - 1].pub : NULL;
    }
    return phone__main_region(calling_code_parse(region));
}

/* ---- patterns ----------------------------------------------------------- */

/* `pattern` as libphonenumber applies it: a full match, or a match at
 * the start (Consume). */
static pcre2_code *compile(const char *pattern, int full, int *failed)
{
    char *text;
    pcre2_code *re;
    PCRE2_SIZE off;
    int err;

    if (!*pattern)
        return NULL;
    text = xasprintf("(?:%s)%s", pattern, full ? "\\z" : "");
    re = pcre2_compile((PCRE2_SPTR)text, PCRE2_ZERO_TERMINATED, PCRE2_ANCHORED,
                       &err, &off, NULL);
    free(text);
    if (!re) {
        *failed = 1;
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* else interpreted */
    return re;
}

/* Compiles a region's patterns once; 1 ready, -1 not usable. */
static int compiled(struct region_slot *r)
{
    int state = atomic_load_explicit(&r->compiled, memory_order_acquire);
    int failed = 0, i;

    if (state)
        return state;
    pthread_mutex_lock(&compile_mu);
    state = atomic_load_explicit(&r->compiled, memory_order_relaxed);
    if (!state) {
        for (i = 0; i < PHONE_SHIM_DESCS; i++)
            r->re[i] = compile(r->meta->desc[i].pattern, 1, &failed);
        r->re[LEADING] = compile(r->meta->leading_digits, 0, &failed);
        state = failed ? -1 : 1;
        atomic_store_explicit(&r->compiled, state, memory_order_release);
    }
    pthread_mutex_unlock(&compile_mu);
    return state;
}

static int re_match(const pcre2_code *re, const char *s, size_t len,
                    pcre2_match_data *md)
{
    return re && pcre2_match(re, (PCRE2_SPTR)s, len, 0, 0, md, NULL) >= 0;
}

int phone__general_matches(const struct phone__region *pub, const char *digits,
                           size_t len)
{
    struct region_slot *r = &regions[pub->slot];
    pcre2_match_data *md;
    int yes;

    if (compiled(r) < 0)
        return -1;
    md = pcre2_match_data_create(1, NULL);
    if (!md)
        abort();
    yes = re_match(r->re[PHONE_SHIM_GENERAL], digits, len, md);
    pcre2_match_data_free(md);
    return yes;
}

/* ---- validity (IsValidNumber) ------------------------------------------- */

/* IsNumberMatchingDesc: the listed lengths first, then the pattern. */
static int desc_matches(const struct region_slot *r, int kind, const char *nsn,
                        size_t len, pcre2_match_data *md)
{
    const struct phone_shim_desc *d = &r->meta->desc[kind];

    if (d->lengths_listed && (len >= 32 || !(d->lengths & (1u << len))))
        return 0;
    return re_match(r->re[kind], nsn, len, md);
}

/* GetNumberTypeHelper(...) != UNKNOWN. */
static int has_type(const struct region_slot *r, const char *nsn, size_t len,
                    pcre2_match_data *md)
{
    int kind;

    if (!desc_matches(r, PHONE_SHIM_GENERAL, nsn, len, md))
        return 0;
    for (kind = PHONE_SHIM_PREMIUM_RATE; kind <= PHONE_SHIM_FIXED_LINE; kind++)
        if (desc_matches(r, kind, nsn, len, md))
            return 1;
    return !r->meta->same_mobile_and_fixed_line_pattern &&
           desc_matches(r, PHONE_SHIM_MOBILE, nsn, len, md);
}

/* GetRegionCodeForNumber: the only region, else the first whose leading
 * digits match or (without leading digits) whose types know the number. */
static struct region_slot *region_of(const struct code_entry *e,
                                     const char *nsn, size_t len,
                                     pcre2_match_data *md)
{
    struct region_slot *r;
    unsigned i;

    if (e->count == 1)
        return &regions[e->first];
    for (i = e->first; i < (unsigned)e->first + e->count; i++) {
        r = &regions[i];
        if (r->re[LEADING] ? re_match(r->re[LEADING], nsn, len, md)
                           : has_type(r, nsn, len, md))
            return r;
    }
    return NULL;
}

int phone__valid(int code, const char *nsn, size_t len)
{
    const struct code_entry *e;
    struct region_slot *r;
    pcre2_match_data *md;
    unsigned i;
    int yes;

    pthread_once(&once, load);
    if (code <= 0 || code >= CODES || !codes[code].count)
        return 0;
    e = &codes[code];
    for (i = e->first; i < (unsigned)e->first + e->count; i++)
        if (compiled(&regions[i]) < 0)
            return -1;
    md = pcre2_match_data_create(1, NULL);
    if (!md)
        abort();
    r = region_of(e, nsn, len, md);
    yes = r && has_type(r, nsn, len, md);
    pcre2_match_data_free(md);
    return yes;
}
