/*
 * phone_p — shared between phone.c (the policy: which input takes which
 * path, WhatsApp ids, aliases) and phone_table.c (what it reads from
 * libphonenumber once: calling codes, possible lengths, regions, and the
 * metadata's patterns compiled for the fast paths and the validity check).
 */
#ifndef OPTSYNC_PHONE_P_H
#define OPTSYNC_PHONE_P_H

#include <stddef.h>

#include "phone.h"

#define PHONE__DIGITS_MIN 7 /* E.164 digits after the "+" */
#define PHONE__DIGITS_MAX 15
#define PHONE__NSN_MAX 17 /* libphonenumber's longest national number */

/* One region of libphonenumber's metadata, as the fast paths use it. */
struct phone__region {
    char id[4];         /* "DE"; "001" for a non-geographic code */
    int code;           /* its calling code */
    int main;           /* the main region of its calling code */
    const char *idd;    /* international prefix when it is plain
                           digits ("00"), else NULL */
    const char *prefix; /* national prefix for parsing when it is
                           plain digits ("0"), "" when there is none,
                           NULL when a pattern or a rewrite rule */
    int slot;           /* phone_table.c's index */
};

/*
 * The calling code at the start of `digits` (the digits after a "+"):
 * calling codes are prefix-free, so the first 1-3 digit prefix that is
 * a code is the code.  Returns it and its length in *len, or 0.
 */
int phone__code(const char *digits, int *len);

/* Bit d set: a key-form number whose digit after `code` is d takes the
 * full path (phone.c's file comment says why). */
unsigned phone__full_path_digits(int code);

/* NULL when a national number of `len` digits is possible under `code`
 * (IsPossibleNumberWithReason), else the reason phrase. */
const char *phone__possible(int code, int len);

/*
 * The region a phone_parse() region argument names ("DE", "de", "49",
 * "+49"), or NULL when libphonenumber knows no such region (the same
 * answer as phone_region_resolve, without a C++ call).
 */
const struct phone__region *phone__region_for(const char *region);

/* The main region of a calling code, or NULL (also for "001"). */
const struct phone__region *phone__main_region(int code);

/*
 * Whether the region's general pattern matches all of digits[0..len):
 * 1, 0, or -1 when the pattern could not be compiled (take the full
 * path).
 */
int phone__general_matches(const struct phone__region *r, const char *digits,
                           size_t len);

/*
 * IsValidNumber for +<code><nsn[0..len)> from the metadata's patterns:
 * 1 valid, 0 not, -1 when undecided (a pattern did not compile: ask
 * libphonenumber).
 */
int phone__valid(int code, const char *nsn, size_t len);

/* phone_parse without the fast paths (tests and fuzz_phone compare). */
int phone__parse_full(char *out, const char *input, const char *region,
                      const char **why);

#endif
