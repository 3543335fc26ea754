/*
 * testutil — small helpers shared by the cmocka tests: temporary
 * directories and files, reading files back, the source tree's path.
 */
#ifndef OPTSYNC_TESTUTIL_H
#define OPTSYNC_TESTUTIL_H

#include <stddef.h>

/* A new empty directory under $TMPDIR (owned string); removed by
 * testutil_rmtree. */
char *testutil_tmpdir(void);
void testutil_rmtree(const char *dir);

/* Writes `text` to dir/name with `mode`; returns the path (owned). */
char *testutil_write(const char *dir, const char *name, const char *text,
                     unsigned mode);

/* Reads a whole file (owned, NUL-terminated); aborts the test if absent. */
char *testutil_read(const char *path, size_t *len);

/* The first column of the first row of `sql` (no parameters) as an
 * integer; fails the test when there is no row. */
struct cache;
long long testutil_query_int(struct cache *c, const char *sql);

/* A fresh cache (cache.db) in its own temporary directory, with the
 * clock fixed at fixed_clock_ms (0: the real clock): the fixture of the
 * cmocka tests that need nothing else.  _free closes it, removes the
 * directory and gives the clock back. */
struct testutil_cache {
    char *dir;
    struct cache *c;
};
struct testutil_cache *testutil_cache_new(long long fixed_clock_ms);
void testutil_cache_free(struct testutil_cache *tc);

/* Path below the source tree, e.g. "config/optsync.example.ini" (owned). */
char *testutil_source_path(const char *rel);

#endif
