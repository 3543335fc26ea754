/*
 * fileio — see fileio.h.
 */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "xalloc.h"

int fileio_read(char **out, size_t *out_len, const char *path, size_t max)
{
    struct stat st;
    char *buf = NULL;
    size_t got = 0;
    ssize_t n;
    int fd, rc = ERR_FAIL;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err_set(ERR_CLASS_OS, "cannot open %s: %s", path, strerror(errno));
        return errno == ENOENT ? ERR_NOTFOUND : ERR_FAIL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        err_set(ERR_CLASS_OS, "%s is not a regular file", path);
        goto out;
    }
    if ((size_t)st.st_size > max) {
        err_set(ERR_CLASS_OS, "%s is larger than %zu bytes", path, max);
        rc = ERR_TOOBIG;
        goto out;
    }
    buf = xmalloc((size_t)st.st_size + 1);
    while (got < (size_t)st.st_size) {
        n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            err_set(ERR_CLASS_OS, "cannot read %s: %s", path,
                    n < 0 ? strerror(errno) : "file shrank");
            goto out;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    *out = buf;
    buf = NULL;
    if (out_len)
        *out_len = got;
    rc = 0;
out:
    free(buf);
    close(fd);
    return rc;
}

static int write_all(int fd, const char *data, size_t len)
{
    ssize_t n;

    while (len > 0) {
        n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int fileio_write_atomic(const char *path, const void *data, size_t len,
                        unsigned mode)
{
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    int fd, rc = ERR_FAIL;

    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
    if (fd < 0) {
        err_set(ERR_CLASS_OS, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    /* Order matters: data on disk before the rename makes it visible. */
    if (write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        err_set(ERR_CLASS_OS, "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        err_set(ERR_CLASS_OS, "cannot rename %s to %s: %s", tmp, path,
                strerror(errno));
        unlink(tmp);
        goto out;
    }
    rc = 0;
out:
    free(tmp);
    return rc;
}

/*
 * Removes "." segments and folds "x/.." pairs, lexically (for readable
 * paths in messages: config/../build → build).  Leading ".." stay.
 */
static char *normalize(char *path)
{
    char *out = xmalloc(strlen(path) + 2), *seg, *save = NULL;
    size_t n = 0;
    int absolute = path[0] == '/', kept = 0; /* segments that can fold */

    if (absolute)
        out[n++] = '/';
    for (seg = strtok_r(path, "/", &save); seg;
         seg = strtok_r(NULL, "/", &save)) {
        if (strcmp(seg, ".") == 0)
            continue;
        if (strcmp(seg, "..") == 0 && kept > 0) {
            /* drop the last segment and its separator */
            while (n > (size_t)absolute && out[n - 1] != '/')
                n--;
            if (n > (size_t)absolute)
                n--;
            kept--;
            continue;
        }
        if (strcmp(seg, "..") == 0 && absolute)
            continue; /* /.. is / */
        if (n > (size_t)absolute)
            out[n++] = '/';
        memcpy(out + n, seg, strlen(seg));
        n += strlen(seg);
        if (strcmp(seg, "..") != 0)
            kept++;
    }
    if (n == 0)
        out[n++] = '.';
    out[n] = '\0';
    free(path);
    return out;
}

char *fileio_path_resolve(const char *dir, const char *path)
{
    if (path[0] == '/' || !dir || !*dir)
        return normalize(xstrdup(path));
    return normalize(xasprintf("%s/%s", dir, path));
}

char *fileio_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (!slash)
        return xstrdup(".");
    if (slash == path)
        return xstrdup("/");
    return xstrndup(path, (size_t)(slash - path));
}
