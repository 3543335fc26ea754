/*
 * test_units — integers, booleans, durations and sizes: accepted forms,
 * rejected forms, overflow, and the shortest formatting.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <string.h>

#include "units.h"

static const struct {
    const char *text;
    int64_t seconds; /* -1: rejected */
} durations[] = {
    { "0", 0 },
    { "90", 90 },
    { "30s", 30 },
    { "5m", 300 },
    { "2h", 7200 },
    { "7d", 604800 },
    { "1w", 604800 },
    { "15m", 900 },
    { "", -1 },
    { "m", -1 },
    { "-5s", -1 },
    { "5 m", -1 },
    { "5min", -1 },
    { "5M", -1 },
    { "1.5h", -1 },
    { " 5s", -1 },
    { "99999999999999999999d", -1 },
    { "999999999999999d", -1 },
};

static void test_units__durations(void **state)
{
    size_t i;
    int64_t v;

    (void)state;
    for (i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
        int rc = units_duration_parse(&v, durations[i].text);

        if (durations[i].seconds < 0) {
            if (rc == 0)
                fail_msg("\"%s\" must be rejected", durations[i].text);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(v, durations[i].seconds);
        }
    }
}

static const struct {
    const char *text;
    int64_t bytes;
} sizes[] = {
    { "4096", 4096 },    { "64KiB", 65536 }, { "64K", 65536 },
    { "4MiB", 4194304 }, { "3MB", 3000000 }, { "1GiB", 1073741824 },
    { "10B", 10 },       { "4 MiB", -1 },    { "4mib", -1 },
    { "MiB", -1 },       { "-1", -1 },
};

static void test_units__sizes(void **state)
{
    size_t i;
    int64_t v;

    (void)state;
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        int rc = units_size_parse(&v, sizes[i].text);

        if (sizes[i].bytes < 0) {
            if (rc == 0)
                fail_msg("\"%s\" must be rejected", sizes[i].text);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(v, sizes[i].bytes);
        }
    }
}

static void test_units__ints_and_bools(void **state)
{
    int64_t v;
    int b;

    (void)state;
    assert_int_equal(units_int_parse(&v, "-42"), 0);
    assert_int_equal(v, -42);
    assert_int_not_equal(units_int_parse(&v, "42x"), 0);
    assert_int_not_equal(units_int_parse(&v, ""), 0);
    assert_int_not_equal(units_int_parse(&v, "99999999999999999999"), 0);
    assert_int_equal(units_bool_parse(&b, "Yes"), 0);
    assert_true(b);
    assert_int_equal(units_bool_parse(&b, "off"), 0);
    assert_false(b);
    assert_int_not_equal(units_bool_parse(&b, "y"), 0);
}

static void test_units__formatting(void **state)
{
    char buf[32];

    (void)state;
    units_duration_format(buf, sizeof(buf), 900);
    assert_string_equal(buf, "15m");
    units_duration_format(buf, sizeof(buf), 61);
    assert_string_equal(buf, "61s");
    units_duration_format(buf, sizeof(buf), 7 * 86400);
    assert_string_equal(buf, "7d");
    units_duration_format(buf, sizeof(buf), 0);
    assert_string_equal(buf, "0s");
    units_size_format(buf, sizeof(buf), 4 * 1024 * 1024);
    assert_string_equal(buf, "4MiB");
    units_size_format(buf, sizeof(buf), 1000);
    assert_string_equal(buf, "1000");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_units__durations),
        cmocka_unit_test(test_units__sizes),
        cmocka_unit_test(test_units__ints_and_bools),
        cmocka_unit_test(test_units__formatting),
    };

    return cmocka_run_group_tests_name("units", tests, NULL, NULL);
}
