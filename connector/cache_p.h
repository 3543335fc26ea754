/*
 * cache_p — shared between the pieces of the cache module only.
 */
#ifndef OPTSYNC_CACHE_P_H
#define OPTSYNC_CACHE_P_H

extern const char *const cache__migrations[];
extern const int cache__migration_count;

#endif
