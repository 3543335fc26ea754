/*
 * phone_shim — the one thin C interface to libphonenumber (C++).
 *
 * Nothing else in optsync includes a C++ header.  The shim only parses,
 * checks and formats; policy (default regions, WhatsApp ids, aliases)
 * lives in phone.c.  Safe to call from several threads.
 */
#ifndef OPTSYNC_PHONE_SHIM_H
#define OPTSYNC_PHONE_SHIM_H

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

#ifdef __cplusplus
}
#endif

#endif
