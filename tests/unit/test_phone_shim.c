/*
 * test_phone_shim — libphonenumber through the C shim: parsing numbers as
 * people type them in several countries, formatting E.164, rejecting what
 * is not a number, and the region / calling code lookups.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "phone_shim.h"

static const struct {
    const char *input;
    const char *region; /* NULL: must be international */
    const char *e164;
    const char *number_region;
    int mobile;
} good[] = {
    { "+49 151 2345 6789", NULL, "+4915123456789", "DE", 1 },
    { "0151/23456789", "DE", "+4915123456789", "DE", 1 },
    { "0049 151 23456789", "DE", "+4915123456789", "DE", 1 },
    { "+44 (0)20 7946 0958", NULL, "+442079460958", "GB", 0 },
    { "0044 20 7946 0958", "DE", "+442079460958", "GB", 0 },
    { "020 7946 0958", "GB", "+442079460958", "GB", 0 },
    { "(415) 555-0100", "US", "+14155550100", "", 0 },
    { "+1 650-555-1234", NULL, "+16505551234", "", 0 },
    { "06 12 34 56 78", "FR", "+33612345678", "FR", 1 },
    { "+55 11 91234-5678", NULL, "+5511912345678", "BR", 1 },
    { "+52 55 1234 5678", NULL, "+525512345678", "MX", 0 },
    { "+91 98765 43210", NULL, "+919876543210", "IN", 1 },
    { "612 34 56 78", "ES", "+34612345678", "ES", 1 },
    { "+31 6 12345678", NULL, "+31612345678", "NL", 1 },
    { "+39 312 345 6789", NULL, "+393123456789", "IT", 1 },
};

static void test_phone_shim__parses_and_formats(void **state)
{
    struct phone_shim_result r;
    const char *why = NULL;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        memset(&r, 0, sizeof(r));
        if (phone_shim_parse(&r, good[i].input, good[i].region, &why) != 0)
            fail_msg("%s (%s): %s", good[i].input,
                     good[i].region ? good[i].region : "-", why);
        assert_string_equal(r.e164, good[i].e164);
        if (*good[i].number_region)
            assert_string_equal(r.region, good[i].number_region);
        if (good[i].mobile)
            assert_true(r.mobile);
    }
}

static const struct {
    const char *input;
    const char *region;
    const char *reason;
} bad[] = {
    { "hello", "DE", "not a phone number" },
    { "12", "DE", "too short" },
    { "1", "DE", "not a phone number" },
    { "0151 2345", NULL, "unknown country calling code" },
    { "+999 1234567", NULL, "unknown country calling code" },
    { "+49 151 234567890123456", NULL, "too long" },
    { "+49 15", NULL, "too short" },
    { "", "DE", "not a phone number" },
};

static void test_phone_shim__rejects_with_a_reason(void **state)
{
    struct phone_shim_result r;
    const char *why;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        if (phone_shim_parse(&r, bad[i].input, bad[i].region, &why) == 0)
            fail_msg("%s parsed as %s", bad[i].input, r.e164);
        assert_non_null(why);
        if (!strstr(why, bad[i].reason))
            fail_msg("%s: expected \"%s\", got \"%s\"", bad[i].input,
                     bad[i].reason, why);
    }
}

static void test_phone_shim__regions_and_codes(void **state)
{
    char region[3];

    (void)state;
    assert_int_equal(phone_shim_calling_code_for_region("DE"), 49);
    assert_int_equal(phone_shim_calling_code_for_region("BR"), 55);
    assert_int_equal(phone_shim_calling_code_for_region("QQ"), 0);
    assert_int_equal(phone_shim_region_for_calling_code(region, 49), 0);
    assert_string_equal(region, "DE");
    assert_int_equal(phone_shim_region_for_calling_code(region, 1), 0);
    assert_string_equal(region, "US");
    assert_int_equal(phone_shim_region_for_calling_code(region, 44), 0);
    assert_string_equal(region, "GB");
    assert_int_equal(phone_shim_region_for_calling_code(region, 999), -1);
    assert_int_equal(phone_shim_region_for_calling_code(region, 800), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_phone_shim__parses_and_formats),
        cmocka_unit_test(test_phone_shim__rejects_with_a_reason),
        cmocka_unit_test(test_phone_shim__regions_and_codes),
    };

    return cmocka_run_group_tests_name("phone_shim", tests, NULL, NULL);
}
