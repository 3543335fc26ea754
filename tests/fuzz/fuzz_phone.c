/*
 * fuzz_phone — phone numbers from outside: phone_parse with a region taken
 * from the first bytes ("DE|0151 2345678", "+49|...", or no '|' in the
 * first five bytes: no region), phone_from_whatsapp and phone_aliases on
 * the rest.  Input is capped at 4 KiB (phone_parse itself stops at 64
 * bytes).  Invariants, each an abort():
 *   - every key has the key form, and parsing a key again gives itself
 *     (as a typed number and as a WhatsApp id: one rule);
 *   - the fast paths agree with the full path (phone__parse_full): the
 *     same key, or both fail, so no spelling splits one subscriber in two;
 *   - a key-form input libphonenumber calls a possible number (outside
 *     +55, whose keys gain the ninth digit) gets libphonenumber's key when
 *     that is stable;
 *   - phone_warning() says "not valid" exactly when libphonenumber's
 *     IsValidNumber does;
 *   - aliases are keys other than their source, and point back to it;
 *   - a failure always comes with a reason.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "phone_p.h"

#define INPUT_CAP 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

/* A key parses to itself, typed and as a WhatsApp id, and its warning is
 * libphonenumber's verdict. */
static void check_key(const char *key)
{
    struct phone_shim_result r;
    char again[PHONE_E164_MAX];
    const char *why = NULL;

    check(phone_is_canonical(key));
    check(phone_from_whatsapp(again, key + 1, &why) == 0);
    check(strcmp(again, key) == 0);
    check(phone_parse(again, key, NULL, &why) == 0);
    check(strcmp(again, key) == 0);
    check(phone_shim_parse_want(&r, key, NULL, PHONE_SHIM_VALID, &why) == 0);
    check((phone_warning(key) == NULL) == (r.valid != 0));
}

/* Every fast answer is the full path's. */
static void check_paths(const char *region, const char *text, int rc,
                        const char *key)
{
    char full[PHONE_E164_MAX];
    const char *why = NULL;
    int full_rc = phone__parse_full(full, text, region, &why);

    check(full_rc == rc);
    check(rc != 0 || strcmp(full, key) == 0);
}

/* The key-form fast path agrees with libphonenumber on possible numbers
 * whose libphonenumber answer is stable (see parse_stable in phone.c). */
static void check_agrees(const char *text, const char *key)
{
    struct phone_shim_result r, again;
    const char *why;

    if (!phone_is_canonical(text) ||
        phone_shim_parse_want(&r, text, NULL, 0, &why) != 0 ||
        r.calling_code == 55 ||
        phone_shim_parse_want(&again, r.e164, NULL, 0, &why) != 0 ||
        strcmp(again.e164, r.e164) != 0)
        return;
    check(strcmp(key, r.e164) == 0);
}

static void check_aliases(const char *key)
{
    char out[PHONE_ALIASES_MAX][PHONE_E164_MAX];
    char back[PHONE_ALIASES_MAX][PHONE_E164_MAX];
    size_t n, i, m, j;
    int found;

    n = phone_aliases(out, PHONE_ALIASES_MAX, key);
    check(n <= PHONE_ALIASES_MAX);
    for (i = 0; i < n; i++) {
        check(phone_is_canonical(out[i]));
        check(strcmp(out[i], key) != 0);
        m = phone_aliases(back, PHONE_ALIASES_MAX, out[i]);
        for (j = 0, found = 0; j < m; j++)
            found |= strcmp(back[j], key) == 0;
        check(found);
    }
}

static void run(const char *region, const char *text)
{
    char key[PHONE_E164_MAX];
    const char *why = NULL;
    int rc = phone_parse(key, text, region, &why);

    check_paths(region, text, rc, key);
    if (rc == 0) {
        check_key(key);
        check_agrees(text, key);
        check_aliases(key);
    } else {
        check(why != NULL);
    }
    why = NULL;
    if (phone_from_whatsapp(key, text, &why) == 0) {
        check_key(key);
        check_aliases(key);
    } else {
        check(why != NULL);
    }
    check_aliases(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf, *text, *region = NULL, *bar;

    if (size > INPUT_CAP)
        return 0;
    buf = malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = '\0';
    text = buf;
    bar = memchr(buf, '|', size < 5 ? size : 5);
    if (bar) {
        *bar = '\0';
        region = buf;
        text = bar + 1;
    }
    run(region, text);
    free(buf);
    return 0;
}
