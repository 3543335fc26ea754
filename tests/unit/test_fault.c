/*
 * test_fault — the fault seams: the Nth call fails once (or from then on),
 * nothing fails when disarmed, and OPTSYNC_FAULT parses strictly.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>

#include "fault.h"

static void test_fault__nth_call_fails_once(void **state)
{
    (void)state;
    fault_arm(FAULT_CURL_PERFORM, 3, 7, 0);
    assert_int_equal(fault_check(FAULT_CURL_PERFORM), 0);
    assert_int_equal(fault_check(FAULT_CURL_PERFORM), 0);
    assert_int_equal(fault_check(FAULT_CURL_PERFORM), 7);
    assert_int_equal(fault_check(FAULT_CURL_PERFORM), 0);
    /* Other points are not affected. */
    assert_int_equal(fault_check(FAULT_SQLITE_STEP), 0);
    fault_disarm_all();
}

static void test_fault__persistent(void **state)
{
    (void)state;
    fault_arm(FAULT_SQLITE_STEP, 2, 13, 1);
    assert_int_equal(fault_check(FAULT_SQLITE_STEP), 0);
    assert_int_equal(fault_check(FAULT_SQLITE_STEP), 13);
    assert_int_equal(fault_check(FAULT_SQLITE_STEP), 13);
    assert_int_equal(fault_calls(FAULT_SQLITE_STEP), 3);
    fault_disarm_all();
    assert_int_equal(fault_check(FAULT_SQLITE_STEP), 0);
}

static void test_fault__from_env(void **state)
{
    (void)state;
    setenv("OPTSYNC_FAULT", "sqlite_step:2:13,curl_perform:1+:28", 1);
    assert_int_equal(fault_arm_from_env(), 0);
    assert_int_equal(fault_check(FAULT_SQLITE_STEP), 0);
    assert_int_equal(fault_check(FAULT_SQLITE_STEP), 13);
    assert_int_equal(fault_check(FAULT_CURL_PERFORM), 28);
    assert_int_equal(fault_check(FAULT_CURL_PERFORM), 28);
    fault_disarm_all();
    setenv("OPTSYNC_FAULT", "sqlite_step:0:13", 1);
    assert_int_not_equal(fault_arm_from_env(), 0);
    setenv("OPTSYNC_FAULT", "disk:1:1", 1);
    assert_int_not_equal(fault_arm_from_env(), 0);
    setenv("OPTSYNC_FAULT", "sqlite_step:1", 1);
    assert_int_not_equal(fault_arm_from_env(), 0);
    unsetenv("OPTSYNC_FAULT");
    fault_disarm_all();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fault__nth_call_fails_once),
        cmocka_unit_test(test_fault__persistent),
        cmocka_unit_test(test_fault__from_env),
    };

    return cmocka_run_group_tests_name("fault", tests, NULL, NULL);
}
