/*
 * cache_p — shared between the pieces of the cache module only.
 */
#ifndef OPTSYNC_CACHE_P_H
#define OPTSYNC_CACHE_P_H

/* Migration N (1-based) is cache__migrations[N - 1]: its statements,
 * NULL-terminated. */
extern const char *const *const cache__migrations[];
extern const int cache__migration_count;

#endif
