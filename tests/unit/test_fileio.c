/*
 * test_fileio — capped reads, atomic replacement, path resolution.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "fileio.h"
#include "testutil.h"

static void test_fileio__read_caps_and_errors(void **state)
{
    char *dir = testutil_tmpdir();
    char *path = testutil_write(dir, "f", "hello", 0600);
    char *data = NULL;
    size_t len = 0;

    (void)state;
    assert_int_equal(fileio_read(&data, &len, path, 5), 0);
    assert_string_equal(data, "hello");
    assert_int_equal(len, 5);
    free(data);
    data = NULL;
    assert_int_equal(fileio_read(&data, &len, path, 4), ERR_TOOBIG);
    assert_null(data);
    assert_int_equal(fileio_read(&data, &len, "/nonexistent/x", 4),
                     ERR_NOTFOUND);
    assert_int_equal(fileio_read(&data, &len, dir, 4), ERR_FAIL);
    free(path);
    testutil_rmtree(dir);
    free(dir);
}

static void test_fileio__atomic_write(void **state)
{
    char *dir = testutil_tmpdir();
    char *path = testutil_write(dir, "f", "old", 0600);
    char *data;
    struct stat st;

    (void)state;
    assert_int_equal(fileio_write_atomic(path, "new", 3, 0640), 0);
    data = testutil_read(path, NULL);
    assert_string_equal(data, "new");
    free(data);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    assert_int_not_equal(
        fileio_write_atomic("/nonexistent/dir/f", "x", 1, 0600), 0);
    free(path);
    testutil_rmtree(dir);
    free(dir);
}

static void test_fileio__path_resolve(void **state)
{
    static const struct {
        const char *dir, *path, *expect;
    } cases[] = {
        { "config", "../mapping/m.json", "mapping/m.json" },
        { "config", "../build/optsync.db", "build/optsync.db" },
        { "/etc/optsync", "../mapping/m.json", "/etc/mapping/m.json" },
        { "/etc/optsync", "/abs/path", "/abs/path" },
        { ".", "x.db", "x.db" },
        { "a/b", "./c/../d", "a/b/d" },
        { "..", "../x", "../../x" },
        { "a", "../..", ".." },
        { "/", "../x", "/x" },
        { "a", "..", "." },
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = fileio_path_resolve(cases[i].dir, cases[i].path);

        if (strcmp(got, cases[i].expect) != 0)
            fail_msg("%s + %s: expected %s, got %s", cases[i].dir,
                     cases[i].path, cases[i].expect, got);
        free(got);
    }
}

static void test_fileio__dirname(void **state)
{
    char *d;

    (void)state;
    d = fileio_dirname("config/optsync.ini");
    assert_string_equal(d, "config");
    free(d);
    d = fileio_dirname("optsync.ini");
    assert_string_equal(d, ".");
    free(d);
    d = fileio_dirname("/optsync.ini");
    assert_string_equal(d, "/");
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fileio__read_caps_and_errors),
        cmocka_unit_test(test_fileio__atomic_write),
        cmocka_unit_test(test_fileio__path_resolve),
        cmocka_unit_test(test_fileio__dirname),
    };

    return cmocka_run_group_tests_name("fileio", tests, NULL, NULL);
}
