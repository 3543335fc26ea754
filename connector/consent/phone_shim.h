/*
 * phone_shim — the one thin C interface to libphonenumber (C++).
 *
 * Nothing else in optsync includes a C++ header.  The shim only parses,
 * checks and formats; policy (default regions, WhatsApp ids, aliases)
 * lives in phone.c.  Safe to call from several threads.
 */
#ifndef OPTSYNC_PHONE_SHIM_H
#define OPTSYNC_PHONE_SHIM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PHONE_E164_MAX 20 /* "+" + at most 15 digits + NUL, with room */

struct phone_shim_result {
    char e164[PHONE_E164_MAX]; /* "+4915123456789" */
    int calling_code;          /* 49 */
    char region[3];            /* "DE"; "" when the code is non-geographic */
    int valid;                 /* in an allocated range per the metadata */
    int mobile;                /* mobile, or fixed-line-or-mobile */
};

/*
 * Parses `input` (as a person typed it) with `region` (ISO 3166 code, or
 * NULL when the number must be international) and checks that its length
 * is possible for its country.  Returns 0 and fills *out; or -1 and sets
 * *reason to a static English phrase ("too short", "not a number", ...).
 */
int phone_shim_parse(struct phone_shim_result *out, const char *input,
                     const char *region, const char **reason);

/*
 * The same, computing only what `want` asks for: the metadata lookups
 * cost more than the parse itself (measured here: parse ~9 us, valid
 * 5-13 us, number type 5-13 us, region 0-7 us).  Fields not asked for are
 * 0 / "".
 */
#define PHONE_SHIM_VALID 0x1u  /* out->valid */
#define PHONE_SHIM_TYPE 0x2u   /* out->mobile */
#define PHONE_SHIM_REGION 0x4u /* out->region */
#define PHONE_SHIM_ALL 0x7u

int phone_shim_parse_want(struct phone_shim_result *out, const char *input,
                          const char *region, unsigned want,
                          const char **reason);

/* Calling code of an ISO region ("DE" → 49); 0 when unknown. */
int phone_shim_calling_code_for_region(const char *region);

/* Main ISO region of a calling code (49 → "DE"); -1 when none. */
int phone_shim_region_for_calling_code(char out[3], int calling_code);

/*
 * What IsPossibleNumberWithReason says about a national significant
 * number of `len` digits (1-17) under `calling_code` (possibility depends
 * on nothing else): NULL when possible, else the reason phrase
 * phone_shim_parse would give.
 */
const char *phone_shim_possible_length(int calling_code, int len);

/* ---- metadata ----------------------------------------------------------
 *
 * libphonenumber's own metadata as plain C, read once (phone_table.c
 * builds its fast paths and validity check from it).  Every pointer lives
 * as long as the process.
 */
enum phone_shim_desc_kind {
    /* In the order GetNumberTypeHelper tests them (general first). */
    PHONE_SHIM_GENERAL = 0,
    PHONE_SHIM_PREMIUM_RATE,
    PHONE_SHIM_TOLL_FREE,
    PHONE_SHIM_SHARED_COST,
    PHONE_SHIM_VOIP,
    PHONE_SHIM_PERSONAL_NUMBER,
    PHONE_SHIM_PAGER,
    PHONE_SHIM_UAN,
    PHONE_SHIM_VOICEMAIL,
    PHONE_SHIM_FIXED_LINE,
    PHONE_SHIM_MOBILE,
    PHONE_SHIM_DESCS
};

struct phone_shim_desc {
    const char *pattern;  /* national_number_pattern; "" when none */
    const char *example;  /* example_number; "" when none */
    int lengths_listed;   /* possible_length has entries (maybe only -1) */
    unsigned int lengths; /* bit n: n is a possible length */
};

struct phone_shim_meta {
    char id[4]; /* "DE"; "001" for a non-geographic calling code */
    int country_code;
    const char *international_prefix;           /* a regex; "" none */
    const char *national_prefix_for_parsing;    /* a regex; "" none */
    const char *national_prefix_transform_rule; /* "" none */
    const char *leading_digits;                 /* a regex; "" none */
    int same_mobile_and_fixed_line_pattern;
    struct phone_shim_desc desc[PHONE_SHIM_DESCS];
};

/* The metadata of region `id` ("DE"), or NULL. */
const struct phone_shim_meta *phone_shim_meta_region(const char *id);

/* The metadata of a non-geographic calling code (800, 882, ...), or NULL. */
const struct phone_shim_meta *phone_shim_meta_non_geo(int calling_code);

/*
 * The regions of a calling code in libphonenumber's order (the main one
 * first; "001" for a non-geographic code), up to `max`; returns how many.
 */
size_t phone_shim_regions_for_calling_code(char out[][4], size_t max,
                                           int calling_code);

#ifdef __cplusplus
}
#endif

#endif
