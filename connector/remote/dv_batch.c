/*
 * dv_batch — see dv_batch.h for the design notes.
 */
#include "dv_batch.h"

#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "caps.h"
#include "err.h"

#define CRLF "\r\n"

/* ---- the request body ------------------------------------------------------
 */

void dv_batch_boundary_new(char out[DV_BATCH_BOUNDARY_MAX])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char r[16];
    size_t i;

    if (RAND_bytes(r, sizeof(r)) != 1)
        abort(); /* no randomness: nothing sensible to do */
    memcpy(out, "batch_", 6);
    for (i = 0; i < sizeof(r); i++) {
        out[6 + 2 * i] = hex[r[i] >> 4];
        out[6 + 2 * i + 1] = hex[r[i] & 15];
    }
    out[6 + 2 * sizeof(r)] = '\0';
}

static void write_part(struct strbuf *out, const char *boundary,
                       const struct dv_batch_op *op, size_t content_id)
{
    size_t i;

    strbuf_addf(out,
                "--%s" CRLF "Content-Type: application/http" CRLF
                "Content-Transfer-Encoding: binary" CRLF
                "Content-ID: %zu" CRLF CRLF "%s %s HTTP/1.1" CRLF,
                boundary, content_id, op->method, op->url);
    for (i = 0; op->headers && op->headers[i]; i++)
        strbuf_addf(out, "%s" CRLF, op->headers[i]);
    if (op->body)
        strbuf_adds(out, "Content-Type: application/json; type=entry" CRLF);
    strbuf_adds(out, CRLF);
    if (op->body)
        strbuf_adds(out, op->body);
    strbuf_adds(out, CRLF);
}

void dv_batch_write(struct strbuf *out, const char *boundary,
                    const struct dv_batch_op *ops, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        write_part(out, boundary, &ops[i], i + 1);
    strbuf_addf(out, "--%s--" CRLF, boundary);
}

/* ---- reading lines ---------------------------------------------------------
 */

/* A span of the input. */
struct span {
    const char *p;
    size_t n;
};

/*
 * The next line of [*pos, end): without its CRLF or LF.  Returns 0 at the
 * end of input.  A last line without a line break is a line.
 */
static int next_line(struct span *line, const char **pos, const char *end)
{
    const char *p = *pos, *nl;

    if (p >= end)
        return 0;
    nl = memchr(p, '\n', (size_t)(end - p));
    line->p = p;
    line->n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    *pos = nl ? nl + 1 : end;
    if (line->n && line->p[line->n - 1] == '\r')
        line->n--;
    return 1;
}

static int span_is(struct span s, const char *text)
{
    size_t n = strlen(text);

    return s.n == n && memcmp(s.p, text, n) == 0;
}

static void span_trim(struct span *s)
{
    while (s->n && (*s->p == ' ' || *s->p == '\t')) {
        s->p++;
        s->n--;
    }
    while (s->n && (s->p[s->n - 1] == ' ' || s->p[s->n - 1] == '\t'))
        s->n--;
}

/* "Name: value" with `name` (any case) → value, trimmed. */
static int header_value(struct span *out, struct span line, const char *name)
{
    size_t n = strlen(name);

    if (line.n <= n || line.p[n] != ':' || strncasecmp(line.p, name, n) != 0)
        return 0;
    out->p = line.p + n + 1;
    out->n = line.n - n - 1;
    span_trim(out);
    return 1;
}

/* A decimal number of at most 9 digits, the whole span; -1 otherwise. */
static long span_number(struct span s)
{
    long v = 0;
    size_t i;

    if (s.n == 0 || s.n > 9)
        return -1;
    for (i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return -1;
        v = v * 10 + (s.p[i] - '0');
    }
    return v;
}

/* ---- boundaries -------------------------------------------------------------
 */

/* The boundary parameter of a multipart/mixed Content-Type value. */
static int boundary_of(struct span *out, struct span ct)
{
    static const char media[] = "multipart/mixed";
    const char *p = ct.p, *end = ct.p + ct.n, *semi;
    struct span param;

    if (ct.n < sizeof(media) - 1 ||
        strncasecmp(ct.p, media, sizeof(media) - 1) != 0)
        return 0;
    for (p += sizeof(media) - 1; p < end; p = semi + 1) {
        semi = memchr(p, ';', (size_t)(end - p));
        if (!semi)
            semi = end;
        param.p = p;
        param.n = (size_t)(semi - p);
        span_trim(&param);
        if (param.n > 9 && strncasecmp(param.p, "boundary=", 9) == 0) {
            out->p = param.p + 9;
            out->n = param.n - 9;
            if (out->n >= 2 && out->p[0] == '"' && out->p[out->n - 1] == '"') {
                out->p++;
                out->n -= 2;
            }
            return out->n > 0 && out->n <= 200;
        }
    }
    return 0;
}

/* 1: `line` is the delimiter "--b", 2: the closing "--b--", else 0
 * (trailing white space allowed, as RFC 2046 does). */
static int delimiter_kind(struct span line, struct span b)
{
    struct span rest;

    if (line.n < b.n + 2 || line.p[0] != '-' || line.p[1] != '-' ||
        memcmp(line.p + 2, b.p, b.n) != 0)
        return 0;
    rest.p = line.p + 2 + b.n;
    rest.n = line.n - 2 - b.n;
    span_trim(&rest);
    if (rest.n == 0)
        return 1;
    return span_is(rest, "--") ? 2 : 0;
}

/* ---- parts ------------------------------------------------------------------
 */

struct parser {
    struct dv_batch_response *out;
    int depth;
};

static char *span_dup(struct span s)
{
    return xstrndup(s.p, s.n);
}

static struct dv_batch_part *part_add(struct parser *ps)
{
    struct dv_batch_response *r = ps->out;
    struct dv_batch_part *p;

    r->parts = xrealloc(r->parts, (r->count + 1) * sizeof(*r->parts));
    p = &r->parts[r->count++];
    memset(p, 0, sizeof(*p));
    p->content_id = -1;
    p->retry_after_ms = -1;
    return p;
}

/* "HTTP/1.1 204 No Content" → 204; -1 when it is not a status line. */
static long status_of(struct span line)
{
    struct span code;

    if (line.n < 12 || memcmp(line.p, "HTTP/1.", 7) != 0 || line.p[8] != ' ')
        return -1;
    code.p = line.p + 9;
    code.n = 3;
    if (line.n > 12 && line.p[12] != ' ')
        return -1;
    return span_number(code);
}

static void inner_header(struct dv_batch_part *p, struct span line)
{
    struct span v;
    long secs;

    if (header_value(&v, line, "ETag") && !p->etag)
        p->etag = span_dup(v);
    else if (header_value(&v, line, "OData-EntityId")) {
        free(p->entity_id);
        p->entity_id = span_dup(v);
    } else if (header_value(&v, line, "Location") && !p->entity_id)
        p->entity_id = span_dup(v);
    else if (header_value(&v, line, "Retry-After") &&
             (secs = span_number(v)) >= 0)
        p->retry_after_ms = (int64_t)secs * 1000;
}

/* The application/http body of a part: status line, headers, body. */
static int parse_http(struct parser *ps, long content_id, const char *pos,
                      const char *end)
{
    struct dv_batch_part *p;
    struct span line = { NULL, 0 };
    long status;

    while (next_line(&line, &pos, end) && line.n == 0)
        ; /* blank lines before the status line */
    if (line.n == 0 || (status = status_of(line)) < 100 || status > 599) {
        err_set(ERR_CLASS_DATAVERSE, "batch part without an HTTP status line");
        return ERR_BADINPUT;
    }
    if (ps->out->count >= CAP_BATCH_PARTS) {
        err_set(ERR_CLASS_DATAVERSE, "batch response with over %d parts",
                CAP_BATCH_PARTS);
        return ERR_BADINPUT;
    }
    p = part_add(ps);
    p->content_id = content_id;
    p->status = status;
    while (next_line(&line, &pos, end) && line.n > 0)
        inner_header(p, line);
    /* Binary-safe: a NUL inside the body must not shorten the copy
     * behind body_len's back (found by fuzz_batch_response). */
    p->body_len = (size_t)(end - pos);
    p->body = xmalloc(p->body_len + 1);
    memcpy(p->body, pos, p->body_len);
    p->body[p->body_len] = '\0';
    return 0;
}

static int parse_multipart(struct parser *ps, struct span boundary,
                           const char *pos, const char *end);

/* One part between two delimiters: MIME headers, then an application/http
 * message or (one level down) a change set response. */
static int parse_part(struct parser *ps, const char *pos, const char *end)
{
    struct span line, v, inner = { NULL, 0 };
    long content_id = -1;
    int rc;

    while (next_line(&line, &pos, end) && line.n > 0) {
        if (header_value(&v, line, "Content-Type"))
            boundary_of(&inner, v);
        else if (header_value(&v, line, "Content-ID"))
            content_id = span_number(v);
    }
    if (inner.n) {
        if (ps->depth >= 1) {
            err_set(ERR_CLASS_DATAVERSE, "batch response nests too deep");
            return ERR_BADINPUT;
        }
        ps->depth++;
        rc = parse_multipart(ps, inner, pos, end);
        ps->depth--;
        return rc;
    }
    return parse_http(ps, content_id, pos, end);
}

/* The end of a part: the line break before the delimiter belongs to it. */
static const char *part_end(const char *start, const char *delim_line)
{
    if (delim_line > start && delim_line[-1] == '\n')
        delim_line--;
    if (delim_line > start && delim_line[-1] == '\r')
        delim_line--;
    return delim_line;
}

static int parse_multipart(struct parser *ps, struct span boundary,
                           const char *pos, const char *end)
{
    const char *part = NULL, *line_start;
    struct span line;
    int kind, rc;

    for (line_start = pos; next_line(&line, &pos, end); line_start = pos) {
        kind = delimiter_kind(line, boundary);
        if (!kind)
            continue;
        if (part && (rc = parse_part(ps, part, part_end(part, line_start))))
            return rc;
        if (kind == 2)
            return 0;
        part = pos;
    }
    err_set(ERR_CLASS_DATAVERSE, "batch response ends before its closing "
                                 "delimiter");
    return ERR_BADINPUT;
}

/* The boundary: from the Content-Type, else from the first "--" line. */
static int find_boundary(struct span *out, const char *content_type,
                         const char *body, size_t len)
{
    struct span ct, line = { NULL, 0 };
    const char *pos = body, *end = body + len;

    if (content_type) {
        ct.p = content_type;
        ct.n = strlen(content_type);
        if (boundary_of(out, ct))
            return 1;
    }
    while (next_line(&line, &pos, end) && line.n == 0)
        ;
    if (line.n < 3 || line.p[0] != '-' || line.p[1] != '-' || line.n > 202)
        return 0;
    out->p = line.p + 2;
    out->n = line.n - 2;
    span_trim(out);
    return out->n > 0;
}

int dv_batch_response_parse(struct dv_batch_response *out,
                            const char *content_type, const char *body,
                            size_t len)
{
    struct parser ps;
    struct span boundary;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!body || !find_boundary(&boundary, content_type, body, len)) {
        err_set(ERR_CLASS_DATAVERSE, "not a batch response (no boundary)");
        return ERR_BADINPUT;
    }
    ps.out = out;
    ps.depth = 0;
    rc = parse_multipart(&ps, boundary, body, body + len);
    if (rc)
        dv_batch_response_dispose(out);
    return rc;
}

void dv_batch_response_dispose(struct dv_batch_response *r)
{
    size_t i;

    for (i = 0; i < r->count; i++) {
        free(r->parts[i].etag);
        free(r->parts[i].entity_id);
        free(r->parts[i].body);
    }
    free(r->parts);
    memset(r, 0, sizeof(*r));
}
