/*
 * dv_webhook_parse — the RemoteExecutionContext parser and the
 * x-ms-dynamics-* headers (dv_webhook.h notes 2-4): a body becomes a
 * struct dv_webhook_event carrying a Web-API-shaped row for the mapping.
 *
 * Pure: cJSON, the mapping and a SHA-256; no I/O, no SQLite, no logging.
 * It never decides what a column means: it only renames and retypes
 * attributes the way the Web API would show them.
 */
#include "dv_webhook.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "caps.h"
#include "err.h"
#include "jsonutil.h"
#include "xalloc.h"

/* Instants written back as ISO 8601: four-digit years (1000-9999), as
 * mapping_time_parse reads them. */
#define DATE_MIN_MS (-30610224000000LL)
#define DATE_MAX_MS 253402300799999LL

static const char *const message_names[] = { "Create", "Update", "Delete" };

static int bad(const char *what)
{
    err_set(ERR_CLASS_INPUT, "RemoteExecutionContext: %s", what);
    return ERR_BADINPUT;
}

static const cJSON *member(const cJSON *o, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(o, name);
}

/* ---- /Date(…)/ ---------------------------------------------------------- */

/* Four digits ±hhmm after the number, as .NET writes a local offset. */
static int date_offset(const char *p)
{
    int i;

    for (i = 1; i <= 4; i++)
        if (p[i] < '0' || p[i] > '9')
            return -1;
    if ((p[1] - '0') * 10 + (p[2] - '0') > 14 || p[3] > '5')
        return -1;
    return 0;
}

int dv_webhook_date_parse(int64_t *out, const char *s)
{
    const char *p;
    int64_t v = 0;
    int neg = 0, digits = 0;

    if (!s || strncmp(s, "/Date(", 6) != 0)
        return -1;
    p = s + 6;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    for (; *p >= '0' && *p <= '9'; p++) {
        if (++digits > 16)
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (!digits)
        return -1;
    if (*p == '+' || *p == '-') {
        if (date_offset(p) != 0)
            return -1;
        p += 5;
    }
    if (strcmp(p, ")/") != 0)
        return -1;
    v = neg ? -v : v;
    if (v < DATE_MIN_MS || v > DATE_MAX_MS)
        return -1;
    *out = v;
    return 0;
}

/* ---- dictionaries: arrays of {"key": …, "value": …} ---------------------- */

/* 0 when `d` is absent, null or a well-formed dictionary. */
static int dict_check(const cJSON *d, const char *name)
{
    const cJSON *it;
    int n = 0;

    if (!d || cJSON_IsNull(d))
        return 0;
    if (!cJSON_IsArray(d)) {
        err_set(ERR_CLASS_INPUT,
                "RemoteExecutionContext: %s is not a "
                "key/value list",
                name);
        return ERR_BADINPUT;
    }
    cJSON_ArrayForEach(it, d)
    {
        if (++n > CAP_DV_CONTEXT_ITEMS) {
            err_set(ERR_CLASS_INPUT,
                    "RemoteExecutionContext: %s holds "
                    "more than %d items",
                    name, CAP_DV_CONTEXT_ITEMS);
            return ERR_TOOBIG;
        }
        if (!cJSON_IsObject(it) || !cJSON_IsString(member(it, "key"))) {
            err_set(ERR_CLASS_INPUT,
                    "RemoteExecutionContext: an item of "
                    "%s is not {\"key\", \"value\"}",
                    name);
            return ERR_BADINPUT;
        }
    }
    return 0;
}

/* The item whose key is `key` (the last one), or NULL. */
static const cJSON *dict_item(const cJSON *d, const char *key)
{
    const cJSON *it, *found = NULL;

    cJSON_ArrayForEach(it, d)
    {
        if (strcmp(member(it, "key")->valuestring, key) == 0)
            found = it;
    }
    return found;
}

/* ---- attribute values → Web API values (note 2) ------------------------- */

/* "OptionSetValue:http://…" or a bare "OptionSetValue". */
static int is_type(const char *type, const char *name)
{
    size_t n = strlen(name);

    return type && strncmp(type, name, n) == 0 &&
           (type[n] == ':' || type[n] == '\0');
}

static int integral(const cJSON *v, long long *out)
{
    if (!cJSON_IsNumber(v) || v->valuedouble != v->valuedouble ||
        v->valuedouble < -9.0e15 || v->valuedouble > 9.0e15 ||
        v->valuedouble != (double)(long long)v->valuedouble)
        return -1;
    *out = (long long)v->valuedouble;
    return 0;
}

/* A multi-select choice (an array of OptionSetValue) → "1,9"; empty →
 * null; anything else is left out (NULL). */
static cJSON *multi_select(const cJSON *arr)
{
    struct strbuf sb;
    const cJSON *it, *v;
    long long n;
    cJSON *out = NULL;

    if (cJSON_GetArraySize(arr) == 0)
        return cJSON_CreateNull();
    strbuf_init(&sb, 64 * 1024);
    cJSON_ArrayForEach(it, arr)
    {
        v = cJSON_IsObject(it) ? member(it, "Value") : it;
        if (integral(v, &n) != 0 ||
            strbuf_addf(&sb, "%s%lld", sb.len ? "," : "", n) != 0)
            goto out;
    }
    out = cJSON_CreateString(sb.data);
out:
    strbuf_dispose(&sb);
    return out;
}

static cJSON *string_value(const char *s)
{
    char iso[32];
    int64_t ms;

    if (dv_webhook_date_parse(&ms, s) == 0) {
        mapping_time_format(iso, ms);
        return cJSON_CreateString(iso);
    }
    return cJSON_CreateString(s);
}

/* An EntityReference → its id (lower case when a GUID). */
static cJSON *reference_value(const cJSON *v)
{
    char guid[MAPPING_GUID_LEN + 1];
    const char *id = jsonutil_str(v, "Id");

    if (!id)
        return cJSON_CreateNull();
    if (mapping_guid_normalize(guid, id) == 0)
        return cJSON_CreateString(guid);
    return cJSON_CreateString(id);
}

/*
 * What an attribute value becomes in the row (a new item), or NULL to
 * leave the attribute out (a type nothing reads).  *lookup is set for an
 * EntityReference (its column is `_<name>_value`).
 */
static cJSON *web_value(const cJSON *v, int *lookup)
{
    const char *type;
    const cJSON *val;

    *lookup = 0;
    if (!v || cJSON_IsNull(v))
        return cJSON_CreateNull();
    if (cJSON_IsBool(v))
        return cJSON_CreateBool(cJSON_IsTrue(v));
    if (cJSON_IsNumber(v))
        return cJSON_CreateNumber(v->valuedouble);
    if (cJSON_IsString(v))
        return string_value(v->valuestring);
    if (cJSON_IsArray(v))
        return multi_select(v);
    type = jsonutil_str(v, "__type");
    if (is_type(type, "EntityReference") ||
        (!type && member(v, "LogicalName") && member(v, "Id"))) {
        *lookup = 1;
        return reference_value(v);
    }
    val = member(v, "Value");
    if ((is_type(type, "OptionSetValue") || is_type(type, "Money") || !type) &&
        cJSON_IsNumber(val))
        return cJSON_CreateNumber(val->valuedouble);
    return NULL;
}

/* Puts `item` (owned) under `name`; an existing member stays unless
 * `replace`. */
static void row_put(cJSON *row, const char *name, cJSON *item, int replace)
{
    if (!member(row, name))
        cJSON_AddItemToObject(row, name, item);
    else if (replace)
        cJSON_ReplaceItemInObjectCaseSensitive(row, name, item);
    else
        cJSON_Delete(item);
}

/* One attribute into the row.  A null is known to be a lookup only when
 * the mapping names it one. */
static void put_attribute(cJSON *row, const char *key, const cJSON *value,
                          const char *known_lookup, int replace)
{
    char name[CAP_SCHEMA_NAME_BYTES + 16];
    int lookup = 0;
    cJSON *item;

    if (strlen(key) > CAP_SCHEMA_NAME_BYTES)
        return; /* longer than any schema name: nothing maps it */
    item = web_value(value, &lookup);
    if (!item)
        return;
    if (known_lookup && strcmp(key, known_lookup) == 0)
        lookup = 1;
    if (lookup)
        snprintf(name, sizeof(name), "_%s_value", key);
    else
        snprintf(name, sizeof(name), "%s", key);
    row_put(row, name, item, replace);
}

static void put_entity(cJSON *row, const cJSON *entity,
                       const char *known_lookup, int replace)
{
    const cJSON *it;

    cJSON_ArrayForEach(it, member(entity, "Attributes"))
    {
        put_attribute(row, member(it, "key")->valuestring, member(it, "value"),
                      known_lookup, replace);
    }
}

/* ---- the event's table and row id -------------------------------------- */

static const char *logical_name(const struct mapping *m, enum dv_entity e)
{
    return e == DV_NUMBER ? m->number.logical_name
                          : m->configuration.logical_name;
}

static const char *id_column(const struct mapping *m, enum dv_entity e)
{
    return e == DV_NUMBER ? m->number.id : m->configuration.id;
}

static int read_table(struct dv_webhook_event *ev, const struct mapping *m,
                      const cJSON *root)
{
    const char *name = jsonutil_str(root, "PrimaryEntityName");

    if (!name)
        return bad("no PrimaryEntityName");
    if (strcmp(name, m->number.logical_name) == 0)
        ev->entity = DV_NUMBER;
    else if (strcmp(name, m->configuration.logical_name) == 0)
        ev->entity = DV_CONFIGURATION;
    else {
        err_set(ERR_CLASS_INPUT,
                "RemoteExecutionContext: table '%.64s' is not one the "
                "mapping names (a step registered on the wrong table?)",
                name);
        return ERR_BADINPUT;
    }
    return 0;
}

/* A GUID that is not all zeros → out; -1 otherwise. */
static int real_guid(char out[MAPPING_GUID_LEN + 1], const char *s)
{
    if (!s || mapping_guid_normalize(out, s) != 0)
        return -1;
    return strspn(out, "0-") == MAPPING_GUID_LEN ? -1 : 0;
}

static const cJSON *target_of(const cJSON *root)
{
    const cJSON *it = dict_item(member(root, "InputParameters"), "Target");

    return it ? member(it, "value") : NULL;
}

/* PrimaryEntityId; for a Create without one, Target's Id or the id in
 * OutputParameters. */
static int read_id(struct dv_webhook_event *ev, const cJSON *root)
{
    const cJSON *target = target_of(root), *out;

    if (real_guid(ev->id, jsonutil_str(root, "PrimaryEntityId")) == 0)
        return 0;
    if (cJSON_IsObject(target) &&
        real_guid(ev->id, jsonutil_str(target, "Id")) == 0)
        return 0;
    out = dict_item(member(root, "OutputParameters"), "id");
    if (out && cJSON_IsString(member(out, "value")) &&
        real_guid(ev->id, member(out, "value")->valuestring) == 0)
        return 0;
    return bad("no row id (PrimaryEntityId)");
}

/* An entity or reference in the body must be about the event's row. */
static int same_row(const cJSON *e, const struct dv_webhook_event *ev,
                    const struct mapping *m)
{
    char id[MAPPING_GUID_LEN + 1];
    const char *logical = jsonutil_str(e, "LogicalName");

    if (!cJSON_IsObject(e))
        return bad("an entity is not an object");
    if (logical && strcmp(logical, logical_name(m, ev->entity)) != 0)
        return bad("an entity of another table");
    if (real_guid(id, jsonutil_str(e, "Id")) == 0 && strcmp(id, ev->id) != 0)
        return bad("an entity of another row");
    return 0;
}

/* ---- the context's fields ------------------------------------------------ */

static void read_message(struct dv_webhook_event *ev, const char *name)
{
    size_t i;

    snprintf(ev->message_name, sizeof(ev->message_name), "%s", name);
    ev->message = DV_WEBHOOK_OTHER;
    for (i = 0; i < 3; i++)
        if (strcmp(name, message_names[i]) == 0)
            ev->message = (enum dv_webhook_message)i;
}

static void read_guid(char out[MAPPING_GUID_LEN + 1], const cJSON *root,
                      const char *name)
{
    if (real_guid(out, jsonutil_str(root, name)) != 0)
        out[0] = '\0';
}

/* Mode, Stage, Depth: small integers; anything else is unknown (`dflt`),
 * never a value that wraps into a valid one. */
static int small_int(const cJSON *root, const char *name, int dflt)
{
    const cJSON *v = member(root, name);

    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) ||
        !(v->valuedouble <= 1000) ||
        v->valuedouble != (double)(int)v->valuedouble)
        return dflt;
    return (int)v->valuedouble;
}

static void read_ids(struct dv_webhook_event *ev, const cJSON *root)
{
    int64_t ms;

    read_guid(ev->correlation_id, root, "CorrelationId");
    read_guid(ev->operation_id, root, "OperationId");
    read_guid(ev->request_id, root, "RequestId");
    if (dv_webhook_date_parse(&ms, jsonutil_str(root, "OperationCreatedOn")) ==
        0)
        ev->operation_at = ms;
    ev->mode = small_int(root, "Mode", -1);
    ev->stage = small_int(root, "Stage", 0);
    ev->depth = small_int(root, "Depth", 0);
}

/* Note 6: the job's id when Dataverse gave one, else the body's hash. */
static void dedupe_key(struct dv_webhook_event *ev, const char *body,
                       size_t len)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0, i;
    char *p;

    if (ev->operation_id[0]) {
        snprintf(ev->dedupe_key, sizeof(ev->dedupe_key), "op:%s/%s",
                 ev->correlation_id, ev->operation_id);
        return;
    }
    if (EVP_Digest(body, len, md, &n, EVP_sha256(), NULL) != 1)
        abort(); /* out of memory in OpenSSL */
    p = ev->dedupe_key +
        snprintf(ev->dedupe_key, sizeof(ev->dedupe_key), "sha256:");
    for (i = 0; i < n && i < 32; i++) {
        *p++ = hex[md[i] >> 4];
        *p++ = hex[md[i] & 15];
    }
    *p = '\0';
}

static int check_headers(const struct dv_webhook_event *ev,
                         const struct mapping *m, const cJSON *root,
                         const struct dv_webhook_headers *h)
{
    if (!h)
        return 0;
    if (h->entity_name &&
        strcmp(h->entity_name, logical_name(m, ev->entity)) != 0)
        return bad("x-ms-dynamics-entity-name disagrees with the body");
    if (h->request_name &&
        strcmp(h->request_name, jsonutil_str(root, "MessageName")) != 0)
        return bad("x-ms-dynamics-request-name disagrees with the body");
    return 0;
}

/* ---- the row (note 2) and what it lacks (note 4) ------------------------ */

static int check_images(const cJSON *root)
{
    const cJSON *lists[2] = { member(root, "PreEntityImages"),
                              member(root, "PostEntityImages") };
    const cJSON *it, *v;
    int i, rc;

    for (i = 0; i < 2; i++) {
        rc = dict_check(lists[i], i ? "PostEntityImages" : "PreEntityImages");
        if (rc)
            return rc;
        cJSON_ArrayForEach(it, lists[i])
        {
            v = member(it, "value");
            if (cJSON_IsObject(v) &&
                (rc = dict_check(member(v, "Attributes"), "Attributes")))
                return rc;
        }
    }
    return 0;
}

/* The images of one list merged (later ones win), or NULL when none. */
static cJSON *images_row(const cJSON *list, const struct mapping *m,
                         const struct dv_webhook_event *ev, int *rc)
{
    const char *lookup =
        ev->entity == DV_NUMBER ? m->number.configuration_lookup : NULL;
    const cJSON *it, *v;
    cJSON *row = NULL;

    cJSON_ArrayForEach(it, list)
    {
        v = member(it, "value");
        if (cJSON_IsNull(v) || !v)
            continue;
        if ((*rc = same_row(v, ev, m)) != 0)
            break;
        if (!row)
            row = cJSON_CreateObject();
        put_entity(row, v, lookup, 1);
    }
    if (*rc) {
        cJSON_Delete(row);
        return NULL;
    }
    return row;
}

static void set_version(struct dv_webhook_event *ev, cJSON *row)
{
    char etag[40];
    long long v;

    if (integral(member(row, "versionnumber"), &v) != 0 || v <= 0)
        return;
    ev->version = v;
    snprintf(etag, sizeof(etag), "W/\"%lld\"", v);
    row_put(row, "@odata.etag", cJSON_CreateString(etag), 1);
}

/* Target (an Entity) under the post images: post images are the row after
 * the operation, Target adds what they leave out (its explicit nulls). */
static int build_row(struct dv_webhook_event *ev, const struct mapping *m,
                     const cJSON *root, const cJSON *target)
{
    const char *lookup =
        ev->entity == DV_NUMBER ? m->number.configuration_lookup : NULL;
    int rc = 0;

    ev->row = images_row(member(root, "PostEntityImages"), m, ev, &rc);
    if (rc)
        return rc;
    if (!ev->row)
        ev->row = cJSON_CreateObject();
    put_entity(ev->row, target, lookup, 0);
    row_put(ev->row, id_column(m, ev->entity), cJSON_CreateString(ev->id), 1);
    set_version(ev, ev->row);
    return 0;
}

/* The first essential mapped column the row lacks, or NULL (note 4). */
static const char *missing_column(const struct mapping *m, enum dv_entity e,
                                  const cJSON *row)
{
    const struct mapping_number *n = &m->number;
    const struct mapping_configuration *c = &m->configuration;
    const char *num[][2] = { { n->configuration_value,
                               n->configuration_lookup },
                             { n->phone, n->phone },
                             { n->status, n->status },
                             { n->state.attribute, n->state.attribute },
                             { n->modified_on, n->modified_on } };
    const char *cfg[] = { c->name,     c->double_opt_in,  c->phone_number_id,
                          c->waba_id,  c->default_region, c->state.attribute,
                          "modifiedon" };
    size_t i;

    if (e == DV_NUMBER) {
        for (i = 0; i < sizeof(num) / sizeof(num[0]); i++)
            if (num[i][0] && !member(row, num[i][0]))
                return num[i][1];
        return NULL;
    }
    for (i = 0; i < sizeof(cfg) / sizeof(cfg[0]); i++)
        if (cfg[i] && !member(row, cfg[i]))
            return cfg[i];
    return NULL;
}

/* ---- the whole context ------------------------------------------------------
 */

static int check_structure(const cJSON *root)
{
    static const char *const dicts[] = { "InputParameters", "OutputParameters",
                                         "SharedVariables" };
    size_t i;
    int rc;

    if (!cJSON_IsObject(root))
        return bad("not a JSON object");
    if (!jsonutil_str(root, "MessageName"))
        return bad("no MessageName");
    for (i = 0; i < sizeof(dicts) / sizeof(dicts[0]); i++)
        if ((rc = dict_check(member(root, dicts[i]), dicts[i])) != 0)
            return rc;
    return check_images(root);
}

/* The hint of a Create / Update (note 4) and its row. */
static int read_change(struct dv_webhook_event *ev, const struct mapping *m,
                       const cJSON *root, const cJSON *target)
{
    int rc;

    if (!target || cJSON_IsNull(target)) {
        ev->hint = DV_WEBHOOK_HINT_PARTIAL;
        ev->missing = "Target";
        return 0;
    }
    rc = same_row(target, ev, m);
    if (rc == 0 &&
        (rc = dict_check(member(target, "Attributes"), "Attributes")) == 0)
        rc = build_row(ev, m, root, target);
    if (rc == 0 && (ev->missing = missing_column(m, ev->entity, ev->row)))
        ev->hint = DV_WEBHOOK_HINT_PARTIAL;
    return rc;
}

static int read_body(struct dv_webhook_event *ev, const struct mapping *m,
                     const cJSON *root, const struct dv_webhook_headers *h)
{
    const cJSON *target, *inputs = member(root, "InputParameters");
    int trimmed, rc;

    if ((rc = check_structure(root)) != 0 || (rc = read_table(ev, m, root)) ||
        (rc = read_id(ev, root)))
        return rc;
    read_message(ev, jsonutil_str(root, "MessageName"));
    read_ids(ev, root);
    if ((rc = check_headers(ev, m, root, h)) != 0)
        return rc;
    ev->pre = images_row(member(root, "PreEntityImages"), m, ev, &rc);
    if (rc)
        return rc;
    if (ev->message == DV_WEBHOOK_OTHER) {
        ev->hint = DV_WEBHOOK_HINT_MESSAGE;
        return 0;
    }
    target = target_of(root);
    trimmed = (h && h->size_exceeded) || !inputs || cJSON_IsNull(inputs);
    if (ev->message == DV_WEBHOOK_DELETE)
        rc = target && !cJSON_IsNull(target) ? same_row(target, ev, m) : 0;
    else if (!trimmed)
        rc = read_change(ev, m, root, target);
    if (rc)
        return rc;
    /* Notes 3 and 4, strongest first; a Delete needs no row. */
    if (ev->mode != 1 || ev->stage != 40)
        ev->hint = DV_WEBHOOK_HINT_UNCOMMITTED;
    else if (trimmed && ev->message != DV_WEBHOOK_DELETE)
        ev->hint = DV_WEBHOOK_HINT_TRIMMED;
    return 0;
}

int dv_webhook_parse(struct dv_webhook_event **out, const struct mapping *m,
                     const char *body, size_t len,
                     const struct dv_webhook_headers *h)
{
    struct dv_webhook_event *ev = NULL;
    cJSON *root = NULL;
    int rc;

    if (len > CAP_WEBHOOK_BODY_BYTES) {
        err_set(ERR_CLASS_INPUT,
                "RemoteExecutionContext: %zu bytes, over "
                "the %d-byte cap",
                len, CAP_WEBHOOK_BODY_BYTES);
        return ERR_TOOBIG;
    }
    root = jsonutil_parse(body, len);
    if (!root)
        return ERR_BADINPUT;
    ev = xcalloc(1, sizeof(*ev));
    rc = read_body(ev, m, root, h);
    if (rc == 0)
        dedupe_key(ev, body, len);
    cJSON_Delete(root);
    if (rc) {
        dv_webhook_event_free(ev);
        return rc;
    }
    *out = ev;
    return 0;
}

void dv_webhook_event_free(struct dv_webhook_event *ev)
{
    if (!ev)
        return;
    cJSON_Delete(ev->row);
    cJSON_Delete(ev->pre);
    free(ev);
}

/* ---- headers ------------------------------------------------------------- */

static const char *header(const struct dv_webhook_request *r, const char *name)
{
    return r && r->header ? r->header(name, r->header_payload) : NULL;
}

void dv_webhook_headers_read(struct dv_webhook_headers *out,
                             const struct dv_webhook_request *r)
{
    const char *exceeded;

    memset(out, 0, sizeof(*out));
    out->organization = header(r, "x-ms-dynamics-organization");
    out->entity_name = header(r, "x-ms-dynamics-entity-name");
    out->request_name = header(r, "x-ms-dynamics-request-name");
    out->correlation_id = header(r, "x-ms-correlation-request-id");
    exceeded = header(r, "x-ms-dynamics-msg-size-exceeded");
    /* Documented as present only when exceeded; "false" is no. */
    out->size_exceeded = exceeded && strcasecmp(exceeded, "false") != 0;
}
