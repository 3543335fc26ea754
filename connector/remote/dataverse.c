/*
 * dataverse — see dataverse.h for the design notes.
 */
#include "dataverse.h"

#include <stdlib.h>
#include <string.h>

#include "caps.h"
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

/* GET with the OData headers; one token refresh on 401 (note 3). */
static int get(struct http_response *resp, dataverse *dv, const char *url,
               const char *prefer, size_t max)
{
    const char *headers[7];
    struct http_request req;
    char *authz = NULL;
    int rc, attempt;

    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.url = url;
    req.max_response = max;
    for (attempt = 0; attempt < 2; attempt++) {
        rc = auth_header(&authz, dv->auth);
        if (rc)
            return rc;
        headers[0] = authz;
        headers[1] = "Accept: application/json";
        headers[2] = "OData-MaxVersion: 4.0";
        headers[3] = "OData-Version: 4.0";
        headers[4] = "If-None-Match: null";
        headers[5] = prefer;
        headers[6] = NULL;
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

int dataverse_get_row(cJSON **out, dataverse *dv, enum dv_entity e,
                      const char *id)
{
    char guid[MAPPING_GUID_LEN + 1];
    struct http_response resp;
    char *url;
    int rc;

    if (mapping_guid_normalize(guid, id) != 0) {
        err_set(ERR_CLASS_INPUT, "not a Dataverse id: %s", id);
        return ERR_BADINPUT;
    }
    url = xasprintf("%s/%s(%s)?$select=%s", dv->base, entity_set(dv, e), guid,
                    entity_select(dv, e));
    memset(&dv->last, 0, sizeof(dv->last));
    http_response_init(&resp);
    rc = get(&resp, dv, url, NULL, CAP_ODATA_PAGE_BYTES);
    if (rc == 0 && resp.status == 404) {
        dataverse_error_parse(&dv->last, 404, resp.body.data, resp.body.len);
        err_set(ERR_CLASS_DATAVERSE, "%s %s does not exist", entity_set(dv, e),
                guid);
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
