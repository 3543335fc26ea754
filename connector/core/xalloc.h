/*
 * xalloc — allocation that cannot fail, and bounded growable buffers.
 *
 * optsync is a daemon, not a library: running out of memory is not a
 * condition it can recover from in a useful way, so x*alloc() print one
 * line and abort (like isync's nfmalloc, redis's zmalloc, tmux's xmalloc).
 *
 * Anything whose size comes from input goes through a strbuf with a
 * maximum (caps.h), so input can never make us allocate without bound.
 */
#ifndef OPTSYNC_XALLOC_H
#define OPTSYNC_XALLOC_H

#include <stdarg.h>
#include <stddef.h>

#include "err.h"

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) ATTR_PRINTFLIKE(1, 2);
char *xvasprintf(const char *fmt, va_list ap) ATTR_PRINTFLIKE(1, 0);

/* Wipes a secret string (OPENSSL_cleanse) and frees it; NULL is a no-op. */
void xfree_secret(char *s);

/*
 * A growable, NUL-terminated byte buffer with a hard maximum.
 * Appends that would pass `max` fail with ERR_TOOBIG and leave the
 * buffer unchanged.  data is never NULL after strbuf_init().
 */
struct strbuf {
    char *data; /* owned; always NUL-terminated */
    size_t len; /* bytes used, without the NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* largest len allowed */
};

void strbuf_init(struct strbuf *sb, size_t max);
void strbuf_dispose(struct strbuf *sb);
void strbuf_reset(struct strbuf *sb);
int strbuf_add(struct strbuf *sb, const void *data, size_t n);
int strbuf_adds(struct strbuf *sb, const char *s);
int strbuf_addc(struct strbuf *sb, char c);
int strbuf_addf(struct strbuf *sb, const char *fmt, ...) ATTR_PRINTFLIKE(2, 3);
/* Hands the data over to the caller (free() it); the buffer is left
 * disposed (strbuf_init() it again to reuse it). */
char *strbuf_detach(struct strbuf *sb);

#endif
