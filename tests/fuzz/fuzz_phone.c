/*
 * fuzz_phone — phone numbers from outside: phone_parse with a region taken
 * from the first bytes ("DE|0151 2345678", "+49|...", or no '|' in the
 * first five bytes: no region), phone_from_whatsapp and phone_aliases on
 * the rest.  Input is capped at 4 KiB (phone_parse itself stops at 64
 * bytes).  Invariants, each an abort():
 *   - every key has the key form, and parsing a key again gives itself;
 *   - a key-form input libphonenumber calls a valid number (outside +55,
 *     whose keys gain the ninth digit) gets libphonenumber's key when that
 *     is stable, so the fast path never splits one subscriber in two;
 *   - aliases are keys other than their source, and point back to it;
 *   - a failure always comes with a reason.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "phone.h"

#define INPUT_CAP 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

/* A key parses to itself, in the mode that made it (typed numbers must be
 * valid; WhatsApp ids need only be possible). */
static void check_key(const char *key, int from_whatsapp)
{
    char again[PHONE_E164_MAX];
    const char *why = NULL;

    check(phone_is_canonical(key));
    if (from_whatsapp)
        check(phone_from_whatsapp(again, key + 1, &why) == 0);
    else
        check(phone_parse(again, key, NULL, &why) == 0);
    check(strcmp(again, key) == 0);
}

/* The fast path agrees with libphonenumber on valid numbers whose
 * libphonenumber answer is stable (see parse_stable in phone.c). */
static void check_agrees(const char *text, const char *key)
{
    struct phone_shim_result r, again;
    const char *why;

    if (!phone_is_canonical(text) ||
        phone_shim_parse(&r, text, NULL, &why) != 0 || !r.valid ||
        r.calling_code == 55 ||
        phone_shim_parse(&again, r.e164, NULL, &why) != 0 ||
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

    if (phone_parse(key, text, region, &why) == 0) {
        check_key(key, 0);
        check_agrees(text, key);
        check_aliases(key);
    } else {
        check(why != NULL);
    }
    why = NULL;
    if (phone_from_whatsapp(key, text, &why) == 0) {
        check_key(key, 1);
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
