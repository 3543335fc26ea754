/*
 * test_phone — phone numbers as consent keys: national and international
 * forms per country with ISO and calling-code regions, WhatsApp ids, the
 * Mexico / Brazil / Argentina alias rules in both directions, the
 * key-form fast path, and every rejection with its reason.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "caps.h"
#include "err.h"
#include "phone_p.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
    const char *input;
    const char *region; /* NULL: must be international */
    const char *e164;
} parse_cases[] = {
    /* Germany */
    { "+49 151 2345 6789", NULL, "+4915123456789" },
    { "0151/23456789", "DE", "+4915123456789" },
    { "0151 23456789", "de", "+4915123456789" },
    { "0151 23456789", "49", "+4915123456789" },
    { "0151 23456789", "+49", "+4915123456789" },
    { "0049 151 23456789", "DE", "+4915123456789" },
    { "+49 (0)30 1234567", NULL, "+49301234567" },
    { "030 1234567", "DE", "+49301234567" },
    /* United Kingdom */
    { "+44 20 7946 0958", NULL, "+442079460958" },
    { "020 7946 0958", "GB", "+442079460958" },
    { "020 7946 0958", "44", "+442079460958" },
    { "07911 123456", "gb", "+447911123456" },
    /* United States */
    { "(415) 555-0100", "US", "+14155550100" },
    { "415.555.0100", "1", "+14155550100" },
    { "+1 415 555 0100", NULL, "+14155550100" },
    { "1-415-555-0100", "+1", "+14155550100" },
    /* France */
    { "06 12 34 56 78", "FR", "+33612345678" },
    { "06 12 34 56 78", "33", "+33612345678" },
    { "+33 6 12 34 56 78", NULL, "+33612345678" },
    /* Brazil */
    { "(11) 98765-4321", "BR", "+5511987654321" },
    { "011 98765 4321", "55", "+5511987654321" },
    { "+55 11 98765-4321", NULL, "+5511987654321" },
    /* Mexico (the old mobile 1 is folded by libphonenumber) */
    { "55 1234 5678", "MX", "+525512345678" },
    { "+52 55 1234 5678", NULL, "+525512345678" },
    { "+52 1 55 1234 5678", NULL, "+525512345678" },
    { "044 55 1234 5678", "+52", "+525512345678" },
    /* Argentina */
    { "011 15 2345-6789", "AR", "+5491123456789" },
    { "+54 9 11 2345-6789", NULL, "+5491123456789" },
    { "(011) 2345-6789", "54", "+541123456789" },
    /* India */
    { "+91 98765 43210", NULL, "+919876543210" },
    { "098765 43210", "IN", "+919876543210" },
    { "98765 43210", "91", "+919876543210" },
};

static void test_phone__parses_per_country(void **state)
{
    char out[PHONE_E164_MAX];
    const char *why;
    size_t i;

    (void)state;
    for (i = 0; i < N_ELEMS(parse_cases); i++) {
        why = NULL;
        if (phone_parse(out, parse_cases[i].input, parse_cases[i].region,
                        &why) != 0)
            fail_msg("%s (%s): %s", parse_cases[i].input,
                     parse_cases[i].region ? parse_cases[i].region : "-", why);
        if (strcmp(out, parse_cases[i].e164) != 0)
            fail_msg("%s (%s): got %s, want %s", parse_cases[i].input,
                     parse_cases[i].region ? parse_cases[i].region : "-", out,
                     parse_cases[i].e164);
        assert_true(phone_is_canonical(out));
    }
}

static const struct {
    const char *wa_id;
    const char *e164;
} whatsapp_cases[] = {
    { "4915123456789", "+4915123456789" },
    { "+4915123456789", "+4915123456789" },
    { "16505551234", "+16505551234" },
    { "+16505551234", "+16505551234" },
    { "447911123456", "+447911123456" },
    { "919876543210", "+919876543210" },
    /* Mexico: WhatsApp ids keep the old mobile 1. */
    { "5215512345678", "+525512345678" },
    { "+5215512345678", "+525512345678" },
    { "525512345678", "+525512345678" },
    /* Brazil: old ids lack the ninth digit. */
    { "551187654321", "+5511987654321" },
    { "5511987654321", "+5511987654321" },
    /* Argentina: the id carries the mobile 9; kept (an alias, no fold). */
    { "5491123456789", "+5491123456789" },
};

static void test_phone__whatsapp_ids(void **state)
{
    char out[PHONE_E164_MAX];
    const char *why;
    size_t i;

    (void)state;
    for (i = 0; i < N_ELEMS(whatsapp_cases); i++) {
        why = NULL;
        if (phone_from_whatsapp(out, whatsapp_cases[i].wa_id, &why) != 0)
            fail_msg("%s: %s", whatsapp_cases[i].wa_id, why);
        if (strcmp(out, whatsapp_cases[i].e164) != 0)
            fail_msg("%s: got %s, want %s", whatsapp_cases[i].wa_id, out,
                     whatsapp_cases[i].e164);
    }
}

/* Every spelling of one Mexican mobile is one key. */
static void test_phone__mexico_old_mobile_prefix_folds(void **state)
{
    char a[PHONE_E164_MAX], b[PHONE_E164_MAX], c[PHONE_E164_MAX];
    char aliases[PHONE_ALIASES_MAX][PHONE_E164_MAX];
    const char *why;

    (void)state;
    assert_int_equal(phone_from_whatsapp(a, "5215512345678", &why), 0);
    assert_string_equal(a, "+525512345678");
    /* Key form with the 1 still goes through libphonenumber (+52). */
    assert_int_equal(phone_parse(b, "+5215512345678", NULL, &why), 0);
    assert_string_equal(b, "+525512345678");
    assert_int_equal(phone_parse(c, "+525512345678", NULL, &why), 0);
    assert_string_equal(c, "+525512345678");
    assert_int_equal(phone_aliases(aliases, PHONE_ALIASES_MAX, a), 0);
}

static void test_phone__brazil_ninth_digit_folds(void **state)
{
    static const struct {
        const char *input;
        const char *region;
        const char *e164;
    } cases[] = {
        /* 8-digit mobiles (6-9) gain the 9 ... */
        { "+551187654321", NULL, "+5511987654321" },
        { "+55 11 8765-4321", NULL, "+5511987654321" },
        { "(11) 8765-4321", "BR", "+5511987654321" },
        { "21 8765-4321", "55", "+5521987654321" },
        /* ... a fixed line (2-5) does not ... */
        { "+551123456789", NULL, "+551123456789" },
        /* ... nor a valid 8-digit number (a radio mobile in Rio): it is
         * somebody else's than +55 21 97654-3210 ... */
        { "+552176543210", NULL, "+552176543210" },
        /* The new form is left alone. */
        { "+5511987654321", NULL, "+5511987654321" },
        { "+5511912345678", NULL, "+5511912345678" },
    };
    char out[PHONE_E164_MAX];
    const char *why;
    size_t i;

    (void)state;
    for (i = 0; i < N_ELEMS(cases); i++) {
        why = NULL;
        if (phone_parse(out, cases[i].input, cases[i].region, &why) != 0)
            fail_msg("%s: %s", cases[i].input, why);
        if (strcmp(out, cases[i].e164) != 0)
            fail_msg("%s: got %s, want %s", cases[i].input, out, cases[i].e164);
    }
    /* Neither form valid (area 20): possible, so kept either way (with a
     * warning), and unfolded either way. */
    assert_int_equal(phone_parse(out, "+552087654321", NULL, &why), 0);
    assert_string_equal(out, "+552087654321");
    assert_string_equal(phone_warning(out), PHONE_WARNING_NOT_VALID);
    assert_int_equal(phone_from_whatsapp(out, "552087654321", &why), 0);
    assert_string_equal(out, "+552087654321");
}

static const struct {
    const char *e164;
    const char *alias; /* NULL: none */
} alias_cases[] = {
    /* Brazil, both directions. */
    { "+5511987654321", "+551187654321" },
    { "+551187654321", "+5511987654321" },
    { "+5521987654321", "+552187654321" },
    /* The 8-digit form is another subscriber's valid number. */
    { "+5521976543210", NULL },
    { "+552176543210", NULL },
    /* A 9-digit mobile whose rest starts 1-5 never had an 8-digit form. */
    { "+5511912345678", NULL },
    { "+551123456789", NULL },
    /* Argentina, both directions. */
    { "+5491123456789", "+541123456789" },
    { "+541123456789", "+5491123456789" },
    { "+5493514123456", "+543514123456" },
    { "+543514123456", "+5493514123456" },
    /* A toll-free number has no mobile spelling. */
    { "+5480012345678", NULL },
    /* Nowhere else. */
    { "+525512345678", NULL },
    { "+4915123456789", NULL },
    { "+14155550100", NULL },
};

static void test_phone__aliases_both_directions(void **state)
{
    char out[PHONE_ALIASES_MAX][PHONE_E164_MAX];
    size_t i, n;

    (void)state;
    for (i = 0; i < N_ELEMS(alias_cases); i++) {
        memset(out, 0, sizeof(out));
        n = phone_aliases(out, PHONE_ALIASES_MAX, alias_cases[i].e164);
        if (!alias_cases[i].alias) {
            if (n != 0)
                fail_msg("%s: unexpected alias %s", alias_cases[i].e164,
                         out[0]);
            continue;
        }
        if (n != 1 || strcmp(out[0], alias_cases[i].alias) != 0)
            fail_msg("%s: got %zu alias(es) (%s), want %s", alias_cases[i].e164,
                     n, out[0], alias_cases[i].alias);
    }
}

/* Argentina's two spellings stay two keys: lookups use the alias. */
static void test_phone__argentina_is_not_folded(void **state)
{
    char with9[PHONE_E164_MAX], without9[PHONE_E164_MAX];
    char alias[PHONE_ALIASES_MAX][PHONE_E164_MAX];
    const char *why;

    (void)state;
    assert_int_equal(phone_from_whatsapp(with9, "5491123456789", &why), 0);
    assert_int_equal(phone_parse(without9, "011 2345-6789", "AR", &why), 0);
    assert_string_not_equal(with9, without9);
    assert_int_equal(phone_aliases(alias, PHONE_ALIASES_MAX, with9), 1);
    assert_string_equal(alias[0], without9);
    assert_int_equal(phone_aliases(alias, PHONE_ALIASES_MAX, without9), 1);
    assert_string_equal(alias[0], with9);
}

static void test_phone__aliases_edge_arguments(void **state)
{
    char out[PHONE_ALIASES_MAX][PHONE_E164_MAX];

    (void)state;
    assert_int_equal(phone_aliases(out, 0, "+5511987654321"), 0);
    assert_int_equal(phone_aliases(out, 1, "+55 11 98765-4321"), 0);
    assert_int_equal(phone_aliases(out, 1, ""), 0);
    assert_int_equal(phone_aliases(out, 1, NULL), 0);
}

/*
 * What the key-form fast path must guarantee: a key-form input gives the
 * key the full path gives for the same number typed with spaces, and a
 * length the country does not use is no key on either path (the fast
 * path checks possible lengths too; it used to trust "+12345678").
 */
static void test_phone__canonical_input_is_its_own_key(void **state)
{
    static const char *const typed[][2] = {
        { "+4915123456789", "+49 151 2345 6789" },
        { "+442079460958", "+44 20 7946 0958" },
        { "+14155550100", "+1 415 555 0100" },
        { "+33612345678", "+33 6 12 34 56 78" },
        { "+919876543210", "+91 98765 43210" },
        { "+390612345678", "+39 06 1234 5678" }, /* Italy keeps its 0 */
        { "+78123456789", "+7 812 345-67-89" },  /* +7 8: full path */
    };
    char fast[PHONE_E164_MAX], full[PHONE_E164_MAX];
    const char *why;
    size_t i;

    (void)state;
    for (i = 0; i < N_ELEMS(typed); i++) {
        assert_int_equal(phone_parse(fast, typed[i][0], "DE", &why), 0);
        assert_string_equal(fast, typed[i][0]);
        assert_int_equal(phone_parse(full, typed[i][1], NULL, &why), 0);
        assert_string_equal(full, fast);
    }
    assert_int_equal(phone_parse(fast, "+12345678", NULL, &why), ERR_BADINPUT);
    assert_non_null(strstr(why, "too short"));
    assert_int_equal(phone__parse_full(full, "+12345678", NULL, &why),
                     ERR_BADINPUT);
    assert_non_null(strstr(why, "too short"));
    assert_int_equal(phone_parse(full, "+1 2345678", NULL, &why), ERR_BADINPUT);
    assert_int_equal(phone_from_whatsapp(full, "12345678", &why), ERR_BADINPUT);
}

/* Key form, but a trunk prefix libphonenumber strips: one key, not two. */
static void test_phone__key_form_with_trunk_prefix_takes_full_path(void **st)
{
    static const char *const cases[][2] = {
        { "+4402079460958", "+442079460958" },   /* "+44 (0)20 ..." */
        { "+49015123456789", "+4915123456789" }, /* "+49 (0)151 ..." */
        { "+330612345678", "+33612345678" },
        { "+114155550100", "+14155550100" }, /* US trunk 1 */
    };
    char out[PHONE_E164_MAX];
    const char *why;
    size_t i;

    (void)st;
    for (i = 0; i < N_ELEMS(cases); i++) {
        assert_true(phone_is_canonical(cases[i][0]));
        assert_int_equal(phone_parse(out, cases[i][0], NULL, &why), 0);
        assert_string_equal(out, cases[i][1]);
    }
}

/*
 * libphonenumber strips one trunk prefix per parse; a key must parse to
 * itself, or one subscriber would live under two keys (found by
 * fuzz_phone).
 */
static void test_phone__keys_parse_to_themselves(void **state)
{
    static const char *const cases[][2] = {
        { "+4400624790958", "+44624790958" },
        { "+44 0 0624790958", "+44624790958" },
        { "+52115512345678", "+525512345678" },
        { "+52 1 1 55 1234 5678", "+525512345678" },
    };
    char key[PHONE_E164_MAX], again[PHONE_E164_MAX], digits[32];
    const char *why;
    size_t i, j, n;

    (void)state;
    /* Possible numbers (not valid ones), so these keep a key, typed or
     * from WhatsApp; it must be stable. */
    for (i = 0; i < N_ELEMS(cases); i++) {
        for (j = n = 0; cases[i][0][j] && n < sizeof(digits) - 1; j++)
            if (cases[i][0][j] >= '0' && cases[i][0][j] <= '9')
                digits[n++] = cases[i][0][j];
        digits[n] = '\0';
        why = NULL;
        if (phone_from_whatsapp(key, digits, &why) != 0)
            fail_msg("%s: %s", cases[i][0], why);
        if (strcmp(key, cases[i][1]) != 0)
            fail_msg("%s: got %s, want %s", cases[i][0], key, cases[i][1]);
        assert_int_equal(phone_from_whatsapp(again, key + 1, &why), 0);
        assert_string_equal(again, key);
    }
    for (i = 0; i < N_ELEMS(cases); i++) {
        assert_int_equal(phone_parse(key, cases[i][0], NULL, &why), 0);
        assert_string_equal(key, cases[i][1]);
        assert_int_equal(phone_parse(again, key, NULL, &why), 0);
        assert_string_equal(again, key);
    }
    assert_int_equal(phone_from_whatsapp(key, "52115512345678", &why), 0);
    assert_string_equal(key, "+525512345678");
}

/*
 * Note 1 of phone.h: a possible number is a key whoever gives it.  UK
 * 07700 900xxx (kept for fiction; like real ranges opened after the
 * metadata) and German 0154... are not in libphonenumber's metadata:
 * typed with the country code, typed nationally under the right region,
 * or as a WhatsApp id, they get one key, with a warning.
 */
static void test_phone__possible_but_not_valid_is_one_key(void **state)
{
    static const struct {
        const char *input;
        const char *region;
        const char *wa_id;
        const char *e164;
    } cases[] = {
        { "07700 900251", "GB", "447700900251", "+447700900251" },
        { "07700900251", "44", "447700900251", "+447700900251" },
        { "+44 7700 900251", NULL, "+447700900251", "+447700900251" },
        { "+447700900251", "DE", "447700900251", "+447700900251" },
        { "0044 7700 900251", "DE", "447700900251", "+447700900251" },
        { "+44 (0)7700 900251", NULL, "447700900251", "+447700900251" },
        { "0154 12345678", "DE", "4915412345678", "+4915412345678" },
        { "0154/1234-5678", "+49", "4915412345678", "+4915412345678" },
        { "+49 154 12345678", NULL, "4915412345678", "+4915412345678" },
    };
    char typed[PHONE_E164_MAX], wa[PHONE_E164_MAX], full[PHONE_E164_MAX];
    const char *why;
    size_t i;

    (void)state;
    for (i = 0; i < N_ELEMS(cases); i++) {
        why = NULL;
        if (phone_parse(typed, cases[i].input, cases[i].region, &why) != 0)
            fail_msg("%s (%s): %s", cases[i].input,
                     cases[i].region ? cases[i].region : "-", why);
        assert_string_equal(typed, cases[i].e164);
        assert_int_equal(
            phone__parse_full(full, cases[i].input, cases[i].region, &why), 0);
        assert_string_equal(full, cases[i].e164);
        assert_int_equal(phone_from_whatsapp(wa, cases[i].wa_id, &why), 0);
        assert_string_equal(wa, typed);
        assert_string_equal(phone_warning(typed), PHONE_WARNING_NOT_VALID);
    }
    /* Valid numbers carry no warning. */
    assert_null(phone_warning("+447911123456"));
    assert_null(phone_warning("+4915123456789"));
    assert_null(phone_warning("+14155550100"));
    assert_null(phone_warning("+5491123456789"));
    assert_null(phone_warning("+80012345678")); /* non-geographic */
    assert_string_equal(phone_warning("+4915112"), PHONE_WARNING_NOT_VALID);
    assert_null(phone_warning("not a key"));
}

/* The alias rules hold for typed numbers and WhatsApp ids alike. */
static void test_phone__alias_rules_for_both_forms(void **state)
{
    static const struct {
        const char *input;
        const char *region;
        const char *wa_id;
        const char *e164;
    } cases[] = {
        /* Mexico: the old mobile 1 folds, typed or from WhatsApp. */
        { "+52 1 55 1234 5678", NULL, "5215512345678", "+525512345678" },
        { "+5215512345678", "DE", "525512345678", "+525512345678" },
        /* Brazil: the ninth digit is added, typed or from WhatsApp. */
        { "(11) 8765-4321", "BR", "551187654321", "+5511987654321" },
        { "+55 11 8765 4321", NULL, "5511987654321", "+5511987654321" },
        /* Argentina: each spelling its own key, the other its alias. */
        { "+54 9 11 2345-6789", NULL, "5491123456789", "+5491123456789" },
    };
    char typed[PHONE_E164_MAX], wa[PHONE_E164_MAX];
    char alias[PHONE_ALIASES_MAX][PHONE_E164_MAX];
    const char *why;
    size_t i;

    (void)state;
    for (i = 0; i < N_ELEMS(cases); i++) {
        assert_int_equal(
            phone_parse(typed, cases[i].input, cases[i].region, &why), 0);
        assert_string_equal(typed, cases[i].e164);
        assert_int_equal(phone_from_whatsapp(wa, cases[i].wa_id, &why), 0);
        assert_string_equal(wa, cases[i].e164);
    }
    assert_int_equal(phone_parse(typed, "011 2345-6789", "AR", &why), 0);
    assert_int_equal(phone_aliases(alias, PHONE_ALIASES_MAX, typed), 1);
    assert_string_equal(alias[0], "+5491123456789");
}

/* Not even possible: no key, with the reasons the full path gives. */
static void test_phone__impossible_numbers_stay_unparseable(void **state)
{
    static const struct {
        const char *input;
        const char *region;
        const char *reason;
    } cases[] = {
        { "07700 9002", "GB", "too short" },
        { "+44 7700 90025123", NULL, "too long" },
        { "+49 151 2345 6789 0123", "DE", "too long" },
        { "n/a", "DE", "not a phone number" },
        { "call me", "DE", "not a phone number" },
        { "0151 23456789", NULL, "unknown country calling code" },
        { "+999 123 4567", "GB", "unknown country calling code" },
        { "+1 415 555", NULL, "too short" },
        { "+44 20 7946", NULL, "too short" },
    };
    char out[PHONE_E164_MAX];
    const char *why;
    size_t i;

    (void)state;
    for (i = 0; i < N_ELEMS(cases); i++) {
        why = NULL;
        if (phone_parse(out, cases[i].input, cases[i].region, &why) !=
            ERR_BADINPUT)
            fail_msg("%s parsed as %s", cases[i].input, out);
        if (!strstr(why, cases[i].reason))
            fail_msg("%s: expected \"%s\", got \"%s\"", cases[i].input,
                     cases[i].reason, why);
    }
}

static const struct {
    const char *input;
    const char *region;
    const char *reason; /* a part of *why */
} bad_cases[] = {
    { "", "DE", "empty" },
    { NULL, "DE", "empty" },
    { "hello", "DE", "not a phone number" },
    { "12", "DE", "too short" },
    { "0151 2345", NULL, "unknown country calling code" },
    { "0151 23456789", "", "unknown country calling code" },
    { "+999 1234567", NULL, "unknown country calling code" },
    { "+99912345678", NULL, "unknown country calling code" }, /* key form */
    { "+49 15", NULL, "too short" },
    { "+49 151 234567890123", NULL, "too long for E.164" },
    { "0151 23456789", "QQ", "unknown region" },
    { "0151 23456789", "999", "unknown region" },
    { "0151 23456789", "Deutschland", "unknown region" },
};

static void test_phone__rejects_with_a_reason(void **state)
{
    char out[PHONE_E164_MAX];
    const char *why;
    size_t i;

    (void)state;
    for (i = 0; i < N_ELEMS(bad_cases); i++) {
        why = NULL;
        memcpy(out, "untouched", 10);
        if (phone_parse(out, bad_cases[i].input, bad_cases[i].region, &why) !=
            ERR_BADINPUT)
            fail_msg("%s parsed as %s",
                     bad_cases[i].input ? bad_cases[i].input : "(null)", out);
        assert_non_null(why);
        if (!strstr(why, bad_cases[i].reason))
            fail_msg("%s: expected \"%s\", got \"%s\"",
                     bad_cases[i].input ? bad_cases[i].input : "(null)",
                     bad_cases[i].reason, why);
        assert_string_equal(out, "untouched"); /* written only on success */
        assert_string_equal(err_message(), why);
    }
}

static void test_phone__overlong_input_is_rejected(void **state)
{
    char input[CAP_PHONE_INPUT_BYTES + 2];
    char out[PHONE_E164_MAX];
    const char *why = NULL;
    size_t n = strlen("+49 151 23456789");

    (void)state;
    /* Exactly at the cap: padded with spaces, still a number. */
    memset(input, ' ', sizeof(input));
    memcpy(input, "+49 151 23456789", n);
    input[CAP_PHONE_INPUT_BYTES] = '\0';
    assert_int_equal(phone_parse(out, input, NULL, &why), 0);
    assert_string_equal(out, "+4915123456789");
    /* One byte more. */
    input[CAP_PHONE_INPUT_BYTES] = ' ';
    input[CAP_PHONE_INPUT_BYTES + 1] = '\0';
    assert_int_equal(phone_parse(out, input, NULL, &why), ERR_BADINPUT);
    assert_string_equal(why, "too long to be a phone number");
}

static const struct {
    const char *wa_id;
    const char *reason;
} bad_whatsapp[] = {
    { "", "empty" },
    { NULL, "empty" },
    { "+", "digits only" },
    { "49151 23456789", "digits only" },
    { "4915123456789x", "digits only" },
    { "++4915123456789", "digits only" },
    { "123456", "too short" },
    { "1234567890123456", "too long" },
    { "015123456789", "leading 0" },
    { "99912345678", "unknown country calling code" },
    { "4915", "too short" },
};

static void test_phone__rejects_bad_whatsapp_ids(void **state)
{
    char out[PHONE_E164_MAX];
    const char *why;
    size_t i;

    (void)state;
    for (i = 0; i < N_ELEMS(bad_whatsapp); i++) {
        why = NULL;
        if (phone_from_whatsapp(out, bad_whatsapp[i].wa_id, &why) !=
            ERR_BADINPUT)
            fail_msg("%s accepted as %s",
                     bad_whatsapp[i].wa_id ? bad_whatsapp[i].wa_id : "(null)",
                     out);
        assert_non_null(why);
        if (!strstr(why, bad_whatsapp[i].reason))
            fail_msg("%s: expected \"%s\", got \"%s\"", bad_whatsapp[i].wa_id,
                     bad_whatsapp[i].reason, why);
    }
}

static void test_phone__region_resolve(void **state)
{
    static const char *const good[][2] = {
        { "DE", "DE" },  { "de", "DE" },  { "dE", "DE" }, { "49", "DE" },
        { "+49", "DE" }, { "1", "US" },   { "+1", "US" }, { "44", "GB" },
        { "55", "BR" },  { "+52", "MX" }, { "54", "AR" }, { "91", "IN" },
    };
    static const char *const bad[] = {
        "",    "QQ", "ZZ",  "D",    "DEU", "999", "+",
        "+4a", "0",  "800", "0049", "4 9", "D1",
    };
    char out[3];
    size_t i;

    (void)state;
    for (i = 0; i < N_ELEMS(good); i++) {
        memset(out, 0, sizeof(out));
        if (phone_region_resolve(out, good[i][0]) != 0)
            fail_msg("%s: rejected", good[i][0]);
        assert_string_equal(out, good[i][1]);
    }
    for (i = 0; i < N_ELEMS(bad); i++) {
        if (phone_region_resolve(out, bad[i]) != ERR_BADINPUT)
            fail_msg("\"%s\" resolved to %s", bad[i], out);
    }
    assert_int_equal(phone_region_resolve(out, NULL), ERR_BADINPUT);
}

static void test_phone__key_form(void **state)
{
    static const struct {
        const char *s;
        int canonical;
    } cases[] = {
        { "+4915123456789", 1 },
        { "+1234567", 1 },
        { "+123456789012345", 1 },
        { "+1234567890123456", 0 },
        { "+123456", 0 },
        { "4915123456789", 0 },
        { "+04915123456789", 0 },
        { "+49 15123456789", 0 },
        { "+4915123456789 ", 0 },
        { "+", 0 },
        { "", 0 },
        { "+49151234567a9", 0 },
    };
    size_t i;

    (void)state;
    for (i = 0; i < N_ELEMS(cases); i++) {
        if (phone_is_canonical(cases[i].s) != cases[i].canonical)
            fail_msg("\"%s\": expected %d", cases[i].s, cases[i].canonical);
    }
    assert_false(phone_is_canonical(NULL));
}

/* ---- fast paths against the full path ---------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* `digits` with separators people type between them. */
static void spell(char *out, size_t cap, const char *digits)
{
    static const char *const seps[] = { "",  "",  "",   " ", "-",
                                        ".", "/", " (", ") " };
    size_t n = 0;

    for (; *digits && n + 4 < cap; digits++) {
        if (n && rnd(3) == 0)
            n += (size_t)snprintf(out + n, cap - n, "%s", seps[rnd(9)]);
        out[n++] = *digits;
    }
    out[n] = '\0';
}

/* One input both ways: the same key or both rejected; and the warning is
 * libphonenumber's verdict. */
static void same_both_ways(const char *input, const char *region)
{
    struct phone_shim_result r;
    char fast[PHONE_E164_MAX], full[PHONE_E164_MAX];
    const char *why = NULL, *why_full = NULL;
    int rc = phone_parse(fast, input, region, &why);
    int rc_full = phone__parse_full(full, input, region, &why_full);

    if (rc != rc_full || (rc == 0 && strcmp(fast, full) != 0))
        fail_msg("\"%s\" (%s): fast %d %s, full %d %s", input,
                 region ? region : "-", rc, rc ? why : fast, rc_full,
                 rc_full ? why_full : full);
    if (rc)
        return;
    assert_int_equal(
        phone_shim_parse_want(&r, fast, NULL, PHONE_SHIM_VALID, &why), 0);
    if ((phone_warning(fast) == NULL) != (r.valid != 0))
        fail_msg("%s: warning %s, libphonenumber valid=%d", fast,
                 phone_warning(fast) ? "yes" : "no", r.valid);
}

/* A national number near `example`: itself, a digit changed, one more,
 * one fewer. */
static void mutate(char *out, size_t cap, const char *example)
{
    size_t n = strlen(example);

    snprintf(out, cap, "%s", example);
    switch (rnd(4)) {
    case 1: out[n - 1 - rnd((unsigned)n)] = (char)('0' + rnd(10)); break;
    case 2:
        if (n + 1 < cap) {
            out[n] = (char)('0' + rnd(10));
            out[n + 1] = '\0';
        }
        break;
    case 3:
        if (n > 1)
            out[n - 1] = '\0';
        break;
    default: break;
    }
}

static void spellings_of(const struct phone__region *r, const char *nsn)
{
    const struct phone_shim_meta *m = phone_shim_meta_region(r->id);
    char spelled[64], input[96];

    spell(spelled, sizeof(spelled), nsn);
    snprintf(input, sizeof(input), "%s%s", r->prefix ? r->prefix : "0",
             spelled);
    same_both_ways(input, r->id);
    same_both_ways(spelled, r->id);
    snprintf(input, sizeof(input), "+%d %s", r->code, spelled);
    same_both_ways(input, r->id);
    same_both_ways(input, NULL);
    snprintf(input, sizeof(input), "%s %d %s",
             r->idd ? r->idd : m->international_prefix, r->code, spelled);
    same_both_ways(input, r->id);
    snprintf(input, sizeof(input), "%d%s", r->code, nsn);
    same_both_ways(input, r->id);
}

/*
 * Every region, every number type's example number and its near misses,
 * spelled nationally, internationally, with the international prefix and
 * with the bare country code: the fast paths give the full path's key
 * (fuzz_phone keeps looking for counter-examples).
 */
static void test_phone__fast_paths_agree_with_the_full_path(void **state)
{
    const struct phone_shim_meta *m;
    const struct phone__region *r;
    char iso[3] = { 0 }, nsn[32];
    int a, b, kind, i;

    (void)state;
    for (a = 'A'; a <= 'Z'; a++) {
        for (b = 'A'; b <= 'Z'; b++) {
            iso[0] = (char)a;
            iso[1] = (char)b;
            r = phone__region_for(iso);
            m = phone_shim_meta_region(iso);
            if (!r || !m)
                continue;
            for (kind = 0; kind < PHONE_SHIM_DESCS; kind++) {
                if (!m->desc[kind].example[0])
                    continue;
                for (i = 0; i < 3; i++) {
                    mutate(nsn, sizeof(nsn), m->desc[kind].example);
                    spellings_of(r, nsn);
                }
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_phone__parses_per_country),
        cmocka_unit_test(test_phone__whatsapp_ids),
        cmocka_unit_test(test_phone__mexico_old_mobile_prefix_folds),
        cmocka_unit_test(test_phone__brazil_ninth_digit_folds),
        cmocka_unit_test(test_phone__aliases_both_directions),
        cmocka_unit_test(test_phone__argentina_is_not_folded),
        cmocka_unit_test(test_phone__aliases_edge_arguments),
        cmocka_unit_test(test_phone__canonical_input_is_its_own_key),
        cmocka_unit_test(
            test_phone__key_form_with_trunk_prefix_takes_full_path),
        cmocka_unit_test(test_phone__keys_parse_to_themselves),
        cmocka_unit_test(test_phone__rejects_with_a_reason),
        cmocka_unit_test(test_phone__overlong_input_is_rejected),
        cmocka_unit_test(test_phone__rejects_bad_whatsapp_ids),
        cmocka_unit_test(test_phone__region_resolve),
        cmocka_unit_test(test_phone__key_form),
        cmocka_unit_test(test_phone__possible_but_not_valid_is_one_key),
        cmocka_unit_test(test_phone__alias_rules_for_both_forms),
        cmocka_unit_test(test_phone__impossible_numbers_stay_unparseable),
        cmocka_unit_test(test_phone__fast_paths_agree_with_the_full_path),
    };

    return cmocka_run_group_tests_name("phone", tests, NULL, NULL);
}
