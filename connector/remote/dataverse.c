/*
 * dataverse — see dataverse.h for the design notes.
 */
#include "dataverse.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "caps.h"
#include "dv_batch.h"
#include "err.h"
#include "jsonutil.h"
#include "log.h"
#include "xalloc.h"

struct dataverse {
    const struct optsync_config *cfg; /* borrowed */
    const struct mapping *m;          /* borrowed */
    http *http;                       /* borrowed */
    auth *auth;                       /* borrowed */
    char *base;                       /* owned: {url}/api/data/v9.2 */
    char prefer_page[64];             /* Prefer: odata.maxpagesize=N */
    char prefer_track[96];            /* ... and odata.track-changes */
    struct dv_error last;
};

int dataverse_new(dataverse **out, const struct optsync_config *cfg,
                  const struct mapping *m, http *h, auth *a)
{
    dataverse *dv = xcalloc(1, sizeof(*dv));

    dv->cfg = cfg;
    dv->m = m;
    dv->http = h;
    dv->auth = a;
    dv->base = xasprintf("%s/api/data/v%s", cfg->dataverse.url,
                         cfg->dataverse.api_version);
    snprintf(dv->prefer_page, sizeof(dv->prefer_page),
             "Prefer: odata.maxpagesize=%lld",
             (long long)cfg->dataverse.page_size);
    snprintf(dv->prefer_track, sizeof(dv->prefer_track),
             "Prefer: odata.track-changes, odata.maxpagesize=%lld",
             (long long)cfg->dataverse.page_size);
    *out = dv;
    return 0;
}

void dataverse_free(dataverse *dv)
{
    if (!dv)
        return;
    free(dv->base);
    free(dv);
}

const struct dv_error *dataverse_last_error(const dataverse *dv)
{
    return &dv->last;
}

static const char *entity_set(const dataverse *dv, enum dv_entity e)
{
    return e == DV_CONFIGURATION ? dv->m->configuration.entity_set
                                 : dv->m->number.entity_set;
}

static const char *entity_select(const dataverse *dv, enum dv_entity e)
{
    return e == DV_CONFIGURATION ? dv->m->configuration.select
                                 : dv->m->number.select;
}

char *dataverse_query_url(const dataverse *dv, enum dv_entity e)
{
    return xasprintf("%s/%s?$select=%s", dv->base, entity_set(dv, e),
                     entity_select(dv, e));
}

char *dataverse_odata_string(const char *s)
{
    struct strbuf sb;
    char *escaped;

    strbuf_init(&sb, SIZE_MAX / 4);
    strbuf_addc(&sb, '\'');
    for (; *s; s++) {
        if (*s == '\'')
            strbuf_addc(&sb, '\'');
        strbuf_addc(&sb, *s);
    }
    strbuf_addc(&sb, '\'');
    escaped = http_escape(sb.data);
    strbuf_dispose(&sb);
    return escaped;
}

/* ---- errors ----------------------------------------------------------------
 */

void dataverse_error_parse(struct dv_error *out, long status, const char *body,
                           size_t len)
{
    cJSON *root = body && len ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    const char *code = jsonutil_str(err, "code");
    const char *msg = jsonutil_str(err, "message");

    memset(out, 0, sizeof(*out));
    out->status = status;
    snprintf(out->code, sizeof(out->code), "%s", code ? code : "");
    snprintf(out->message, sizeof(out->message), "%s", msg ? msg : "");
    cJSON_Delete(root);
}

static const char *status_hint(long status)
{
    switch (status) {
    case 401:
        return "the token was refused: is the environment URL the token's "
               "audience ([auth] scope)?";
    case 403:
        return "access denied: does the app have an application user in "
               "this Dataverse environment, with a security role that can "
               "read these tables?";
    case 404:
        return "not found: check the entity set names in the mapping file";
    default: return NULL;
    }
}

/* Sets err from the failed response; returns the code to give back. */
static int fail_response(dataverse *dv, const char *what,
                         const struct http_response *r)
{
    const char *hint = status_hint(r->status);
    const struct dv_error *e = &dv->last;

    dataverse_error_parse(&dv->last, r->status, r->body.data, r->body.len);
    err_set(ERR_CLASS_DATAVERSE,
            "%s: Dataverse answered HTTP %ld%s%s%s%s%s%s%s", what, r->status,
            e->code[0] ? " (" : "", e->code, e->code[0] ? ")" : "",
            e->message[0] ? ": " : "", e->message, hint ? "; " : "",
            hint ? hint : "");
    if (r->status == 401 || r->status == 403)
        return ERR_AUTH;
    return r->status >= 500 ? ERR_FAIL : ERR_BADINPUT;
}

/* ---- requests -------------------------------------------------------------
 */

/* A request with the OData headers and `extra` (NULL-terminated, at most
 * 6); one token refresh on 401 (note 3). */
static int request(struct http_response *resp, dataverse *dv,
                   const struct http_request *base, const char *const *extra)
{
    const char *headers[12];
    struct http_request req = *base;
    char *authz = NULL;
    int rc, attempt;
    size_t i, n;

    for (attempt = 0; attempt < 2; attempt++) {
        rc = auth_header(&authz, dv->auth);
        if (rc)
            return rc;
        n = 0;
        headers[n++] = authz;
        headers[n++] = "Accept: application/json";
        headers[n++] = "OData-MaxVersion: 4.0";
        headers[n++] = "OData-Version: 4.0";
        for (i = 0; extra && extra[i] && n < 11; i++)
            headers[n++] = extra[i];
        headers[n] = NULL;
        req.headers = headers;
        rc = http_request(resp, dv->http, &req);
        xfree_secret(authz);
        authz = NULL;
        if (rc || resp->status != 401)
            return rc;
        log_notice("dataverse_unauthorized action=refresh_token");
        auth_invalidate(dv->auth);
    }
    return 0;
}

/* GET with the OData headers. */
static int get(struct http_response *resp, dataverse *dv, const char *url,
               const char *prefer, size_t max)
{
    const char *extra[] = { "If-None-Match: null", prefer, NULL };
    struct http_request req;

    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.url = url;
    req.max_response = max;
    return request(resp, dv, &req, extra);
}

int dataverse_get_page(struct dv_page *out, dataverse *dv, const char *url,
                       int track)
{
    struct http_response resp;
    int rc;

    memset(out, 0, sizeof(*out));
    memset(&dv->last, 0, sizeof(dv->last));
    http_response_init(&resp);
    rc = get(&resp, dv, url, track ? dv->prefer_track : dv->prefer_page,
             CAP_ODATA_PAGE_BYTES);
    if (rc == 0 && resp.status != 200)
        rc = fail_response(dv, "read", &resp);
    else if (rc == 0)
        rc = dataverse_page_parse(out, resp.body.data, resp.body.len);
    else
        dv->last.status = resp.status;
    http_response_dispose(&resp);
    return rc;
}

/* GETs one row from `url`; `what` names it in messages. */
static int get_one(cJSON **out, dataverse *dv, const char *url,
                   const char *what)
{
    struct http_response resp;
    int rc;

    memset(&dv->last, 0, sizeof(dv->last));
    http_response_init(&resp);
    rc = get(&resp, dv, url, NULL, CAP_ODATA_PAGE_BYTES);
    if (rc == 0 && resp.status == 404) {
        dataverse_error_parse(&dv->last, 404, resp.body.data, resp.body.len);
        err_set(ERR_CLASS_DATAVERSE, "%s does not exist", what);
        rc = ERR_NOTFOUND;
    } else if (rc == 0 && resp.status != 200) {
        rc = fail_response(dv, "read one row", &resp);
    } else if (rc == 0) {
        *out = jsonutil_parse(resp.body.data, resp.body.len);
        rc = *out && cJSON_IsObject(*out) ? 0 : ERR_BADINPUT;
        if (rc) {
            cJSON_Delete(*out);
            *out = NULL;
        }
    }
    http_response_dispose(&resp);
    return rc;
}

int dataverse_get_row(cJSON **out, dataverse *dv, enum dv_entity e,
                      const char *id)
{
    char guid[MAPPING_GUID_LEN + 1];
    char *url, *what;
    int rc;

    if (mapping_guid_normalize(guid, id) != 0) {
        err_set(ERR_CLASS_INPUT, "not a Dataverse id: %s", id);
        return ERR_BADINPUT;
    }
    url = xasprintf("%s/%s(%s)?$select=%s", dv->base, entity_set(dv, e), guid,
                    entity_select(dv, e));
    what = xasprintf("%s %s", entity_set(dv, e), guid);
    rc = get_one(out, dv, url, what);
    free(what);
    free(url);
    return rc;
}

/* ---- pages ------------------------------------------------------------------
 */

void dv_page_dispose(struct dv_page *p)
{
    jsonutil_arena_free(p->arena); /* the whole tree at once */
    free(p->next_link);
    free(p->delta_link);
    memset(p, 0, sizeof(*p));
}

static char *link_of(const cJSON *root, const char *name)
{
    const char *s = jsonutil_str(root, name);

    return s && *s ? xstrdup(s) : NULL;
}

int dataverse_page_parse(struct dv_page *out, const char *body, size_t len)
{
    struct json_arena *arena = NULL;
    cJSON *root = jsonutil_parse_arena(body, len, &arena);
    cJSON *rows;

    memset(out, 0, sizeof(*out));
    if (!root)
        return ERR_BADINPUT;
    rows = cJSON_GetObjectItemCaseSensitive(root, "value");
    if (!cJSON_IsObject(root) || !cJSON_IsArray(rows)) {
        jsonutil_arena_free(arena);
        err_set(ERR_CLASS_DATAVERSE, "answer is not an OData collection "
                                     "(no \"value\" array)");
        return ERR_BADINPUT;
    }
    out->root = root;
    out->arena = arena;
    out->rows = rows;
    out->next_link = link_of(root, "@odata.nextLink");
    out->delta_link = link_of(root, "@odata.deltaLink");
    return 0;
}

int dataverse_row_deleted(char *out_id, const cJSON *row)
{
    const char *ctx = jsonutil_str(row, "@odata.context");
    const char *reason = jsonutil_str(row, "reason");
    const char *id = jsonutil_str(row, "id");
    static const char suffix[] = "/$deletedEntity";
    size_t n;

    if (!ctx || !id || !reason || strcmp(reason, "deleted") != 0)
        return 0;
    n = strlen(ctx);
    if (n < sizeof(suffix) - 1 ||
        strcmp(ctx + n - (sizeof(suffix) - 1), suffix) != 0)
        return 0;
    return mapping_guid_normalize(out_id, id) == 0;
}

/* ---- writes (notes 5-7) ---------------------------------------------------
 */

void dataverse_number_default_id(char out[MAPPING_GUID_LEN + 1],
                                 const char *configuration_id, const char *e164)
{
    /* optsync's namespace (never change it: see dataverse.h). */
    static const unsigned char ns[16] = { 0x36, 0xdd, 0xb3, 0x3a, 0x01, 0xb7,
                                          0x4a, 0x54, 0x95, 0x8c, 0xb4, 0x1a,
                                          0x64, 0x55, 0x2f, 0x9d };
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    char cfg[MAPPING_GUID_LEN + 1], *name;
    unsigned int len = 0, i;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t o = 0;

    if (mapping_guid_normalize(cfg, configuration_id) != 0)
        snprintf(cfg, sizeof(cfg), "%s", configuration_id);
    name = xasprintf("%s/%s", cfg, e164);
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, ns, sizeof(ns)) != 1 ||
        EVP_DigestUpdate(ctx, name, strlen(name)) != 1 ||
        EVP_DigestFinal_ex(ctx, md, &len) != 1 || len < 16)
        abort(); /* OpenSSL out of memory */
    EVP_MD_CTX_free(ctx);
    free(name);
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x50); /* version 5 */
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[md[i] >> 4];
        out[o++] = hex[md[i] & 15];
    }
    out[o] = '\0';
}

/* The alternate key of a new row: "phone='+49…',_lookup_value=guid". */
static int alternate_key(struct strbuf *sb, const dataverse *dv,
                         const struct dv_number_write *w)
{
    const struct mapping_number *n = &dv->m->number;
    char *lit;
    size_t i;

    for (i = 0; i < n->alternate_key_count; i++) {
        const char *col = n->alternate_key[i];

        if (i)
            strbuf_addc(sb, ',');
        if (strcmp(col, n->phone) == 0) {
            lit = dataverse_odata_string(w->e164);
            strbuf_addf(sb, "%s=%s", col, lit);
            free(lit);
        } else if (strcmp(col, n->configuration_lookup) == 0) {
            strbuf_addf(sb, "%s=%s", n->configuration_value,
                        w->configuration_id);
        } else {
            err_set(ERR_CLASS_CONFIG,
                    "alternate key column %s is neither the phone nor the "
                    "configuration lookup: optsync cannot fill it",
                    col);
            return ERR_BADINPUT;
        }
    }
    return 0;
}

/* The row a write targets: "{base}/{set}({key})" (malloc'd). */
static int number_target(char **out, const dataverse *dv,
                         const struct dv_number_write *w)
{
    char key[MAPPING_GUID_LEN + 1];
    struct strbuf sb;
    int rc = 0;

    strbuf_init(&sb, SIZE_MAX / 4);
    strbuf_addf(&sb, "%s/%s(", dv->base, dv->m->number.entity_set);
    if (w->id) {
        if (mapping_guid_normalize(key, w->id) != 0) {
            err_set(ERR_CLASS_INPUT, "not a Dataverse id: %s", w->id);
            rc = ERR_BADINPUT;
        }
        strbuf_adds(&sb, key);
    } else if (!w->configuration_id || !w->e164) {
        err_set(ERR_CLASS_INPUT, "a create needs a configuration and a phone");
        rc = ERR_BADINPUT;
    } else if (dv->m->number.alternate_key_count) {
        rc = alternate_key(&sb, dv, w);
    } else {
        dataverse_number_default_id(key, w->configuration_id, w->e164);
        strbuf_adds(&sb, key);
    }
    strbuf_addc(&sb, ')');
    if (rc) {
        strbuf_dispose(&sb);
        return rc;
    }
    *out = strbuf_detach(&sb);
    return 0;
}

/* One write's URL (with $select, note 6) and conditional header. */
struct write_req {
    char *url;       /* owned */
    char *condition; /* owned: If-Match / If-None-Match */
};

static void write_req_dispose(struct write_req *r)
{
    free(r->url);
    free(r->condition);
    memset(r, 0, sizeof(*r));
}

static int write_req_init(struct write_req *out, const dataverse *dv,
                          const struct dv_number_write *w)
{
    char *target = NULL;
    int rc = number_target(&target, dv, w);

    memset(out, 0, sizeof(*out));
    if (rc)
        return rc;
    out->url = xasprintf("%s?$select=%s", target, dv->m->number.select);
    free(target);
    if (!w->id)
        out->condition = xstrdup("If-None-Match: *");
    else if (w->version > 0)
        out->condition =
            xasprintf("If-Match: W/\"%lld\"", (long long)w->version);
    else
        out->condition = xstrdup("If-Match: *");
    return 0;
}

/* "…/set(3f2e…)" → the id, when the key is a GUID. */
static void id_from_entity_id(char out[MAPPING_GUID_LEN + 1], const char *eid)
{
    const char *open = eid ? strrchr(eid, '(') : NULL;
    char key[MAPPING_GUID_LEN + 3];

    out[0] = '\0';
    if (!open || strlen(open + 1) != MAPPING_GUID_LEN + 1 ||
        open[1 + MAPPING_GUID_LEN] != ')')
        return;
    snprintf(key, sizeof(key), "%.*s", MAPPING_GUID_LEN, open + 1);
    if (mapping_guid_normalize(out, key) != 0)
        out[0] = '\0';
}

/* A write's answer → *out: the row (representation) or its headers. */
static void write_result(struct dv_write_result *out, const dataverse *dv,
                         long status, const char *body, size_t len,
                         const char *etag, const char *entity_id)
{
    struct number_record rec;
    const char *why = NULL;
    cJSON *row;

    out->status = status;
    if (status >= 400) {
        dataverse_error_parse(&out->error, status, body, len);
        return;
    }
    row = len ? jsonutil_parse(body, len) : NULL;
    if (row && mapping_number_from_row(&rec, dv->m, row, &why) == 0) {
        snprintf(out->id, sizeof(out->id), "%s", rec.id);
        out->version = rec.version;
        out->modified_on = rec.modified_on;
    } else {
        id_from_entity_id(out->id, entity_id);
        out->version = mapping_etag_version(etag);
    }
    cJSON_Delete(row);
}

static void result_init(struct dv_write_result *r)
{
    memset(r, 0, sizeof(*r));
    r->retry_after_ms = -1;
}

/* The whole request failed (no answer, 429, 5xx): every write shares it. */
static void fail_all(struct dv_write_result *out, size_t n, int rc,
                     const struct http_response *resp)
{
    size_t i;

    for (i = 0; i < n; i++) {
        out[i].status = rc == 0 || rc == ERR_THROTTLED ? resp->status : 0;
        out[i].retry_after_ms = resp->retry_after_ms;
        if (out[i].status >= 400)
            dataverse_error_parse(&out[i].error, resp->status, resp->body.data,
                                  resp->body.len);
        else
            snprintf(out[i].error.message, sizeof(out[i].error.message), "%s",
                     rc ? err_message() : "no answer");
    }
}

int dataverse_write_number(struct dv_write_result *out, dataverse *dv,
                           const struct dv_number_write *w)
{
    struct write_req wr;
    struct http_response resp;
    struct http_request req;
    const char *extra[] = { "Content-Type: application/json",
                            "Prefer: return=representation", NULL, NULL };
    int rc;

    result_init(out);
    rc = write_req_init(&wr, dv, w);
    if (rc) {
        snprintf(out->error.message, sizeof(out->error.message), "%s",
                 err_message());
        out->status = 400; /* never sendable: as final as a 400 */
        return 0;
    }
    extra[2] = wr.condition;
    memset(&req, 0, sizeof(req));
    req.method = "PATCH";
    req.url = wr.url;
    req.body = w->body;
    req.body_len = strlen(w->body);
    req.max_response = CAP_ODATA_PAGE_BYTES;
    http_response_init(&resp);
    rc = request(&resp, dv, &req, extra);
    if (rc == 0 && resp.status == 401)
        rc = fail_response(dv, "write", &resp);
    else if (rc == 0)
        write_result(out, dv, resp.status, resp.body.data, resp.body.len,
                     resp.etag, resp.location);
    if (rc != 0 && rc != ERR_AUTH) {
        fail_all(out, 1, rc, &resp);
        rc = 0;
    }
    out->retry_after_ms = resp.retry_after_ms;
    http_response_dispose(&resp);
    write_req_dispose(&wr);
    return rc;
}

/* The answers of a 200 batch → out[], by Content-ID, else by order. */
static void batch_results(struct dv_write_result *out, size_t n,
                          const dataverse *dv,
                          const struct dv_batch_response *br)
{
    size_t i, k;

    for (i = 0; i < br->count; i++) {
        const struct dv_batch_part *p = &br->parts[i];

        k = p->content_id >= 1 ? (size_t)p->content_id - 1 : i;
        if (k >= n || out[k].status != 0)
            continue;
        write_result(&out[k], dv, p->status, p->body, p->body_len, p->etag,
                     p->entity_id);
        out[k].retry_after_ms = p->retry_after_ms;
    }
    for (k = 0; k < n; k++)
        if (out[k].status == 0)
            snprintf(out[k].error.message, sizeof(out[k].error.message),
                     "the batch response did not answer this write");
}

/* The batch body: one independent part per write; `reqs` fills in. */
static int batch_body(struct strbuf *body, struct write_req *reqs,
                      struct dv_write_result *out, const dataverse *dv,
                      const struct dv_number_write *w, size_t n,
                      const char *boundary)
{
    struct dv_batch_op *ops = xcalloc(n, sizeof(*ops));
    const char *(*hdr)[3] = xcalloc(n, sizeof(*hdr));
    size_t i;

    for (i = 0; i < n; i++) {
        if (write_req_init(&reqs[i], dv, &w[i]) != 0) {
            free(ops);
            free(hdr);
            return ERR_BADINPUT;
        }
        hdr[i][0] = "Prefer: return=representation";
        hdr[i][1] = reqs[i].condition;
        ops[i].method = "PATCH";
        ops[i].url = reqs[i].url;
        ops[i].headers = hdr[i];
        ops[i].body = w[i].body;
        result_init(&out[i]);
    }
    dv_batch_write(body, boundary, ops, n);
    free(ops);
    free(hdr);
    return 0;
}

static int batch_send(struct http_response *resp, dataverse *dv,
                      const struct strbuf *body, const char *boundary)
{
    char *url = xasprintf("%s/$batch", dv->base);
    char *ctype =
        xasprintf("Content-Type: multipart/mixed; boundary=%s", boundary);
    const char *extra[] = { ctype, "Prefer: odata.continue-on-error", NULL };
    struct http_request req;
    int rc;

    memset(&req, 0, sizeof(req));
    req.method = "POST";
    req.url = url;
    req.body = body->data;
    req.body_len = body->len;
    req.max_response = CAP_BATCH_RESPONSE_BYTES;
    rc = request(resp, dv, &req, extra);
    free(ctype);
    free(url);
    return rc;
}

/* A batch whose writes cannot all be built: each one alone instead, so
 * the bad one gets its own 400 and the others go out. */
static int write_each(struct dv_write_result *out, dataverse *dv,
                      const struct dv_number_write *w, size_t n)
{
    size_t i;
    int rc = 0;

    for (i = 0; i < n && rc == 0; i++)
        rc = dataverse_write_number(&out[i], dv, &w[i]);
    return rc;
}

int dataverse_write_batch(struct dv_write_result *out, dataverse *dv,
                          const struct dv_number_write *w, size_t n)
{
    struct write_req *reqs = xcalloc(n, sizeof(*reqs));
    char boundary[DV_BATCH_BOUNDARY_MAX];
    struct dv_batch_response br;
    struct http_response resp;
    struct strbuf body;
    size_t i;
    int rc;

    dv_batch_boundary_new(boundary);
    strbuf_init(&body, SIZE_MAX / 4);
    http_response_init(&resp);
    rc = batch_body(&body, reqs, out, dv, w, n, boundary);
    if (rc) {
        rc = write_each(out, dv, w, n);
        goto out;
    }
    rc = batch_send(&resp, dv, &body, boundary);
    if (rc == 0 && resp.status == 401) {
        rc = fail_response(dv, "write", &resp);
    } else if (rc == 0 && (resp.status == 200 || resp.status == 400) &&
               dv_batch_response_parse(&br, resp.content_type, resp.body.data,
                                       resp.body.len) == 0) {
        /* 400: a batch refused as a whole still answers in parts. */
        batch_results(out, n, dv, &br);
        dv_batch_response_dispose(&br);
    } else if (rc == 0 && resp.status < 300) {
        fail_all(out, n, ERR_BADINPUT, &resp); /* unreadable: retry */
    } else if (rc != ERR_AUTH) {
        fail_all(out, n, rc, &resp);
        rc = 0;
    }
out:
    for (i = 0; i < n; i++)
        write_req_dispose(&reqs[i]);
    free(reqs);
    strbuf_dispose(&body);
    http_response_dispose(&resp);
    return rc;
}

int dataverse_read_number(cJSON **out, dataverse *dv,
                          const struct dv_number_write *w)
{
    char *target = NULL, *url;
    int rc = number_target(&target, dv, w);

    if (rc)
        return rc;
    url = xasprintf("%s?$select=%s", target, dv->m->number.select);
    rc = get_one(out, dv, url, "the number row");
    free(url);
    free(target);
    return rc;
}
