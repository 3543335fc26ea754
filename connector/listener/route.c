/*
 * route — the route table (matching method + path pattern), the request
 * accessors and the replies; see route.h for how a route is added.
 */
#include "listener_p.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "err.h"
#include "metrics.h"
#include "xalloc.h"

/* ---- the table ------------------------------------------------------------
 */

void route_table_init(struct route_table *t)
{
    memset(t, 0, sizeof(*t));
}

static void route_dispose(struct route *rt)
{
    size_t i;

    for (i = 0; i < rt->n_segs; i++)
        free(rt->segs[i]);
    free(rt->segs);
    free(rt->pattern);
}

void route_table_dispose(struct route_table *t)
{
    size_t i;

    for (i = 0; i < t->n; i++)
        route_dispose(&t->items[i]);
    free(t->items);
    route_table_init(t);
}

static int is_param(const char *seg)
{
    size_t n = strlen(seg);

    return n >= 3 && seg[0] == '{' && seg[n - 1] == '}';
}

/* Splits "/a/{b}" into its segments; ERR_BADINPUT for a bad pattern. */
static int split_pattern(struct route *rt, const char *pattern)
{
    const char *s = pattern + 1, *end;
    size_t params = 0;
    char *seg;

    if (pattern[0] != '/')
        return ERR_BADINPUT;
    rt->segs = xcalloc(ROUTE_SEGMENTS_MAX, sizeof(*rt->segs));
    while (*s) {
        end = strchr(s, '/');
        if (!end)
            end = s + strlen(s);
        if (end == s || rt->n_segs == ROUTE_SEGMENTS_MAX)
            return ERR_BADINPUT;
        /* Counted at once, so route_dispose frees it on any failure. */
        seg = rt->segs[rt->n_segs++] = xstrndup(s, (size_t)(end - s));
        if (strchr(seg, '{') && (!is_param(seg) || ++params > ROUTE_PARAMS_MAX))
            return ERR_BADINPUT;
        s = *end ? end + 1 : end;
        if (*end && !*s)
            return ERR_BADINPUT; /* trailing slash */
    }
    return 0;
}

int route_table_add(struct route_table *t, unsigned methods,
                    const char *pattern, route_fn fn, void *arg, unsigned flags)
{
    struct route rt;

    memset(&rt, 0, sizeof(rt));
    if (split_pattern(&rt, pattern) != 0) {
        route_dispose(&rt);
        err_set(ERR_CLASS_USAGE, "bad route pattern \"%s\"", pattern);
        return ERR_BADINPUT;
    }
    rt.methods = methods;
    rt.pattern = xstrdup(pattern);
    rt.fn = fn;
    rt.arg = arg;
    rt.flags = flags;
    rt.metrics_slot = metrics_route_register(rt.pattern);
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 16;
        t->items = xrealloc(t->items, t->cap * sizeof(*t->items));
    }
    t->items[t->n++] = rt;
    return 0;
}

void route_params_dispose(struct route_params *p)
{
    size_t i;

    for (i = 0; i < p->n; i++)
        free(p->values[i]);
    p->n = 0;
}

/* Does `path` match rt's pattern?  Fills *p (when not NULL) on a match. */
static int match_path(const struct route *rt, const char *path,
                      struct route_params *p)
{
    const char *s = path + 1, *end;
    size_t i = 0, len, dlen;
    char *raw, *val;

    for (; i < rt->n_segs; i++) {
        end = strchr(s, '/');
        len = end ? (size_t)(end - s) : strlen(s);
        if (len == 0)
            break;
        if (!is_param(rt->segs[i])) {
            if (strlen(rt->segs[i]) != len || memcmp(rt->segs[i], s, len))
                break;
        } else if (p) {
            raw = xstrndup(s, len);
            val = evhttp_uridecode(raw, 0, &dlen);
            free(raw);
            if (!val || strlen(val) != dlen) { /* NUL inside: no match */
                free(val);
                break;
            }
            p->names[p->n] = rt->segs[i];
            p->values[p->n++] = val;
        }
        s += len;
        if (*s == '/' && i + 1 < rt->n_segs)
            s++;
    }
    if (i == rt->n_segs && *s == '\0')
        return 1;
    if (p)
        route_params_dispose(p);
    return 0;
}

const struct route *route_table_match(const struct route_table *t,
                                      unsigned method, const char *path,
                                      struct route_params *params,
                                      unsigned *allowed)
{
    size_t i;

    *allowed = 0;
    memset(params, 0, sizeof(*params));
    if (!path || path[0] != '/')
        return NULL;
    for (i = 0; i < t->n; i++) {
        const struct route *rt = &t->items[i];

        if (!(rt->methods & method)) {
            if (match_path(rt, path, NULL))
                *allowed |= rt->methods;
            continue;
        }
        if (match_path(rt, path, params))
            return rt;
    }
    return NULL;
}

/* ---- the request ----------------------------------------------------------
 */

unsigned route_req_method(const struct route_req *r)
{
    return r->method;
}

const char *route_req_path(const struct route_req *r)
{
    return r->path;
}

const char *route_req_header(const struct route_req *r, const char *name)
{
    /* evhttp_find_header compares names case-insensitively. */
    return evhttp_find_header(evhttp_request_get_input_headers(r->ev), name);
}

const char *route_req_body(struct route_req *r, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(r->ev);
    size_t n = evbuffer_get_length(in);

    *len = n;
    /* One contiguous block: the exact bytes, for an HMAC or a parser. */
    return n ? (const char *)evbuffer_pullup(in, -1) : NULL;
}

const char *route_req_query(const struct route_req *r, const char *name)
{
    struct evkeyval *kv;

    /* Exact names: query keys are case-sensitive, unlike headers. */
    for (kv = r->query.tqh_first; kv; kv = kv->next.tqe_next)
        if (strcmp(kv->key, name) == 0)
            return kv->value;
    return NULL;
}

const char *route_req_param(const struct route_req *r, const char *name)
{
    char want[64];
    size_t i;

    if (snprintf(want, sizeof(want), "{%s}", name) >= (int)sizeof(want))
        return NULL;
    for (i = 0; i < r->params.n; i++)
        if (strcmp(r->params.names[i], want) == 0)
            return r->params.values[i];
    return NULL;
}

cache *route_req_cache(const struct route_req *r)
{
    return r->w->c;
}

gate *route_req_gate(const struct route_req *r)
{
    return r->w->g;
}

const struct optsync_config *route_req_config(const struct route_req *r)
{
    return r->w->l->cfg;
}

const struct consent_options *
route_req_consent_options(const struct route_req *r)
{
    return &r->w->l->consent;
}

/* ---- replies --------------------------------------------------------------
 */

void route_reply_header(struct route_req *r, const char *name,
                        const char *value)
{
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), name, value);
}

void route__send(struct route_req *r, int status, const char *content_type,
                 const void *body, size_t len)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->ev);
    struct listener__worker *w = r->w;
    int slot = r->route ? r->route->metrics_slot : -1;

    if (content_type)
        evhttp_add_header(out, "Content-Type", content_type);
    if (r->close || w->stopping)
        evhttp_add_header(out, "Connection", "close");
    /* evhttp leaves the body out of HEAD answers itself. */
    if (len)
        evbuffer_add(evhttp_request_get_output_buffer(r->ev), body, len);
    metrics_request_observe(slot, status, metrics_now_ns() - r->start_ns);
    listener__sent(w, r->ev, status); /* sends it */
    evhttp_clear_headers(&r->query);
    route_params_dispose(&r->params);
    free(r);
}

void route_reply(struct route_req *r, int status, const char *content_type,
                 const void *body, size_t len)
{
    route__send(r, status, content_type, body, len);
}

void route_reply_json(struct route_req *r, int status, const cJSON *json)
{
    char small[2048];
    char *text;

    /* Most answers fit on the stack: no malloc and no realloc chain. */
    if (cJSON_PrintPreallocated((cJSON *)(uintptr_t)json, small,
                                (int)sizeof(small), 0)) {
        route__send(r, status, "application/json", small, strlen(small));
        return;
    }
    text = cJSON_PrintUnformatted(json);
    if (!text) {
        route__send(r, 500, "application/json", "{\"error\":\"internal\"}", 20);
        return;
    }
    route__send(r, status, "application/json", text, strlen(text));
    free(text);
}

void route_reply_error(struct route_req *r, int status, const char *code,
                       const char *message)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "error", code);
    if (message)
        cJSON_AddStringToObject(o, "message", message);
    route_reply_json(r, status, o);
    cJSON_Delete(o);
}

void route_req_write(struct route_req *r, writer_fn fn, void *payload,
                     route_write_done done)
{
    r->done = done;
    r->payload = payload;
    memset(&r->item, 0, sizeof(r->item));
    r->item.fn = fn;
    r->item.payload = payload;
    if (listener__submit(r) != 0)
        done(r, ERR_FAIL, 0, payload); /* stopping: nothing written */
}
