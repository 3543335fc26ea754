/*
 * xalloc — see xalloc.h.
 */
#include "xalloc.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ATTR_NORETURN static void out_of_memory(size_t n)
{
    fprintf(stderr, "optsync: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p)
        out_of_memory(n);
    return p;
}

void *xcalloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);

    if (!p)
        out_of_memory(count * n);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (!q)
        out_of_memory(n);
    return q;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = xmalloc(len + 1);

    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *xvasprintf(const char *fmt, va_list ap)
{
    va_list copy;
    int n;
    char *p;

    va_copy(copy, ap);
    n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0)
        out_of_memory(0);
    p = xmalloc((size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *p;

    va_start(ap, fmt);
    p = xvasprintf(fmt, ap);
    va_end(ap);
    return p;
}

void xfree_secret(char *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

void strbuf_init(struct strbuf *sb, size_t max)
{
    sb->cap = 64;
    sb->data = xmalloc(sb->cap);
    sb->data[0] = '\0';
    sb->len = 0;
    sb->max = max;
}

void strbuf_dispose(struct strbuf *sb)
{
    free(sb->data);
    sb->data = NULL;
    sb->len = sb->cap = 0;
}

void strbuf_reset(struct strbuf *sb)
{
    sb->len = 0;
    sb->data[0] = '\0';
}

static int reserve(struct strbuf *sb, size_t extra)
{
    size_t want;

    if (extra > sb->max || sb->len > sb->max - extra) {
        err_set(ERR_CLASS_INPUT, "data exceeds the limit of %zu bytes",
                sb->max);
        return ERR_TOOBIG;
    }
    want = sb->len + extra + 1;
    if (want <= sb->cap)
        return 0;
    while (sb->cap < want)
        sb->cap = sb->cap * 2;
    sb->data = xrealloc(sb->data, sb->cap);
    return 0;
}

int strbuf_add(struct strbuf *sb, const void *data, size_t n)
{
    int rc = reserve(sb, n);

    if (rc)
        return rc;
    if (n)
        memcpy(sb->data + sb->len, data, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
    return 0;
}

int strbuf_adds(struct strbuf *sb, const char *s)
{
    return strbuf_add(sb, s, strlen(s));
}

int strbuf_addc(struct strbuf *sb, char c)
{
    return strbuf_add(sb, &c, 1);
}

int strbuf_addf(struct strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    char *s;
    int rc;

    va_start(ap, fmt);
    s = xvasprintf(fmt, ap);
    va_end(ap);
    rc = strbuf_adds(sb, s);
    free(s);
    return rc;
}

char *strbuf_detach(struct strbuf *sb)
{
    char *p = sb->data;

    sb->data = NULL;
    sb->len = sb->cap = 0;
    return p;
}
