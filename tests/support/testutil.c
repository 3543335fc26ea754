/*
 * testutil — see testutil.h.
 */
#include "testutil.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "clock.h"
#include "fileio.h"
#include "xalloc.h"

char *testutil_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *dir = xasprintf("%s/optsync-test-XXXXXX", base ? base : "/tmp");

    if (!mkdtemp(dir))
        fail_msg("mkdtemp %s failed", dir);
    return dir;
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void testutil_rmtree(const char *dir)
{
    if (dir)
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *testutil_write(const char *dir, const char *name, const char *text,
                     unsigned mode)
{
    char *path = xasprintf("%s/%s", dir, name);
    FILE *fp = fopen(path, "w");

    if (!fp)
        fail_msg("cannot write %s", path);
    fputs(text, fp);
    fclose(fp);
    chmod(path, (mode_t)mode);
    return path;
}

char *testutil_read(const char *path, size_t *len)
{
    char *data = NULL;

    if (fileio_read(&data, len, path, 64 * 1024 * 1024) != 0)
        fail_msg("cannot read %s", path);
    return data;
}

char *testutil_source_path(const char *rel)
{
    const char *env = getenv("OPTSYNC_SOURCE_DIR");

    return xasprintf("%s/%s", env ? env : OPTSYNC_SOURCE_DIR, rel);
}

long long testutil_query_int(cache *c, const char *sql)
{
    sqlite3_stmt *st = cache_stmt(c, sql);
    long long v;

    assert_non_null(st);
    assert_int_equal(cache_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return v;
}

struct testutil_cache *testutil_cache_new(long long fixed_clock_ms)
{
    struct testutil_cache *tc = xcalloc(1, sizeof(*tc));
    char *path;

    tc->dir = testutil_tmpdir();
    path = xasprintf("%s/cache.db", tc->dir);
    assert_int_equal(cache_open(&tc->c, path, 0), 0);
    free(path);
    clock_set_fixed(fixed_clock_ms);
    return tc;
}

void testutil_cache_free(struct testutil_cache *tc)
{
    cache_close(tc->c);
    testutil_rmtree(tc->dir);
    free(tc->dir);
    free(tc);
    clock_set_fixed(0);
}
