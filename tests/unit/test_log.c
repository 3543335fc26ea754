/*
 * test_log — one key=value line per event, level filtering before
 * formatting, per-subsystem debug, and quoting of values.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "testutil.h"
#include "xalloc.h"

static char *captured;
static size_t captured_len;
static FILE *capture;

static int setup(void **state)
{
    (void)state;
    capture = open_memstream(&captured, &captured_len);
    log_set_output(capture);
    log_level_current = LOG_INFO;
    log_debug_mask = 0;
    clock_set_fixed(1738077570123LL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    log_set_output(NULL);
    fclose(capture);
    free(captured);
    captured = NULL;
    clock_set_fixed(0);
    return 0;
}

static const char *output(void)
{
    fflush(capture);
    return captured;
}

static int evaluations;

static int counted(void)
{
    return ++evaluations;
}

static void test_log__line_format(void **state)
{
    (void)state;
    log_info("sync_done rows=%d pages=%d", 5000, 1);
    assert_string_equal(output(), "ts=2025-01-28T15:19:30.123Z level=info "
                                  "event=sync_done rows=5000 pages=1\n");
}

static void test_log__levels_filter_before_formatting(void **state)
{
    (void)state;
    evaluations = 0;
    log_debug(LOG_SUB_NET, "net_request n=%d", counted());
    log_info("kept n=%d", counted());
    assert_int_equal(evaluations, 1); /* the debug arguments never ran */
    log_level_current = LOG_WARN;
    log_info("dropped");
    log_warn("warned");
    assert_null(strstr(output(), "dropped"));
    assert_non_null(strstr(output(), "level=warn event=warned\n"));
}

static void test_log__debug_per_subsystem(void **state)
{
    unsigned mask = 0;

    (void)state;
    assert_int_equal(log_debug_parse(&mask, "net,gate"), 0);
    assert_int_equal(mask, LOG_SUB_NET | LOG_SUB_GATE);
    log_debug_mask = mask;
    log_debug(LOG_SUB_NET, "net_line");
    log_debug(LOG_SUB_CACHE, "cache_line");
    assert_non_null(strstr(output(), "event=net_line"));
    assert_null(strstr(output(), "cache_line"));
    assert_int_not_equal(log_debug_parse(&mask, "net,disk"), 0);
    assert_int_equal(log_debug_parse(&mask, "all"), 0);
    assert_int_equal(mask, LOG_SUB_ALL);
}

static void test_log__quoting(void **state)
{
    char big[600];

    (void)state;
    assert_string_equal(log_q("plain"), "plain");
    assert_string_equal(log_q("two words"), "\"two words\"");
    assert_string_equal(log_q("a\"b"), "\"a\\\"b\"");
    assert_string_equal(log_q("k=v"), "\"k=v\"");
    assert_string_equal(log_q("line\nbreak"), "\"line\\x0abreak\"");
    assert_string_equal(log_q(""), "\"\"");
    assert_string_equal(log_q(NULL), "-");
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(strlen(log_q(big)), 200 + 3 + 2);
}

static void test_log__phones_are_masked(void **state)
{
    (void)state;
    assert_string_equal(log_phone("+4915123456789"), "+49151*****789");
    assert_string_equal(log_phone("+12345"), "+12345");
    assert_string_equal(log_phone("+49 1\n5"), "+49?1?5");
    assert_string_equal(log_phone(NULL), "-");
}

/* SIGHUP after logrotate: lines before the reopen go to the moved file,
 * lines after it to a new file by the old name. */
static void test_log__file_reopened_after_rotation(void **state)
{
    char *dir = testutil_tmpdir();
    char *path = xasprintf("%s/optsync.log", dir);
    char *moved = xasprintf("%s/optsync.log.1", dir);
    char *old, *new;

    (void)state;
    assert_int_equal(log_file_open(path), 0);
    log_info("first n=1");
    assert_int_equal(rename(path, moved), 0);
    log_info("second n=2");
    assert_int_equal(log_file_reopen(), 0);
    log_info("third n=3");
    log_file_close();
    log_set_output(capture);
    old = testutil_read(moved, NULL);
    new = testutil_read(path, NULL);
    assert_non_null(strstr(old, "event=first n=1\n"));
    assert_non_null(strstr(old, "event=second n=2\n"));
    assert_null(strstr(old, "third"));
    assert_non_null(strstr(new, "event=third n=3\n"));
    assert_null(strstr(new, "first"));
    assert_int_equal(log_file_open("/nonexistent-dir/optsync.log"), ERR_FAIL);
    free(old);
    free(new);
    testutil_rmtree(dir);
    free(moved);
    free(path);
    free(dir);
}

static void test_log__level_names(void **state)
{
    (void)state;
    assert_int_equal(log_level_parse("DEBUG"), LOG_DEBUG);
    assert_int_equal(log_level_parse("notice"), LOG_NOTICE);
    assert_int_equal(log_level_parse("verbose"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_log__line_format, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_log__levels_filter_before_formatting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log__debug_per_subsystem, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log__quoting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log__phones_are_masked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log__file_reopened_after_rotation,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_log__level_names, setup, teardown),
    };

    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
