/*
 * fileio — whole-file reads with a size cap, and atomic replacement.
 */
#ifndef OPTSYNC_FILEIO_H
#define OPTSYNC_FILEIO_H

#include <stddef.h>

/*
 * Reads all of `path` into a NUL-terminated buffer (free() it).
 * Returns 0; ERR_NOTFOUND when it does not exist; ERR_TOOBIG when it is
 * larger than `max` bytes; ERR_FAIL otherwise.  err_set() says which.
 */
int fileio_read(char **out, size_t *out_len, const char *path, size_t max);

/*
 * Writes `data` to `path` through a temporary file in the same directory,
 * fsync and rename, so readers see the old or the new file, never half.
 */
int fileio_write_atomic(const char *path, const void *data, size_t len,
                        unsigned mode);

/* `path` joined to `dir` unless it is absolute, with "." and "x/.."
 * folded lexically (owned string). */
char *fileio_path_resolve(const char *dir, const char *path);

/* Directory part of `path` ("." when none) (owned string). */
char *fileio_dirname(const char *path);

#endif
