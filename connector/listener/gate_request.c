/*
 * gate_request — see gate_request.h.
 */
#include "gate_request.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "caps.h"
#include "err.h"
#include "jsonutil.h"
#include "mapping.h"
#include "units.h"
#include "xalloc.h"

static cJSON *parse_object(const char *body, size_t len)
{
    cJSON *root;

    if (!body || !len) {
        err_set(ERR_CLASS_INPUT, "a JSON object body is required");
        return NULL;
    }
    root = jsonutil_parse(body, len);
    if (root && !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        err_set(ERR_CLASS_INPUT, "the body must be a JSON object");
        return NULL;
    }
    return root;
}

/* Member `name` as a string: required or optional; NULL when absent. */
static int string(const char **out, const cJSON *o, const char *name,
                  int required)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    *out = NULL;
    if (!v || (cJSON_IsNull(v) && !required)) {
        if (!required)
            return 0;
        err_set(ERR_CLASS_INPUT, "\"%s\" is required", name);
        return ERR_BADINPUT;
    }
    if (!cJSON_IsString(v) || !v->valuestring) {
        err_set(ERR_CLASS_INPUT, "\"%s\" must be a string", name);
        return ERR_BADINPUT;
    }
    if (strlen(v->valuestring) > CAP_FIELD_BYTES) {
        err_set(ERR_CLASS_INPUT, "\"%s\" is longer than %d bytes", name,
                CAP_FIELD_BYTES);
        return ERR_BADINPUT;
    }
    *out = v->valuestring;
    return 0;
}

static int phones(struct gate_request_bulk *out, size_t max_bulk)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(out->root, "phones");
    const cJSON *v;
    size_t i = 0, n;

    if (!cJSON_IsArray(arr)) {
        err_set(ERR_CLASS_INPUT, "\"phones\" must be an array of strings");
        return ERR_BADINPUT;
    }
    n = (size_t)cJSON_GetArraySize(arr);
    if (n > max_bulk) {
        err_set(ERR_CLASS_INPUT, "%zu phones, more than max_bulk (%zu)", n,
                max_bulk);
        return ERR_TOOBIG;
    }
    out->phones = xcalloc(n ? n : 1, sizeof(*out->phones));
    cJSON_ArrayForEach(v, arr)
    {
        if (!cJSON_IsString(v) || !v->valuestring) {
            err_set(ERR_CLASS_INPUT, "phones[%zu] is not a string", i);
            return ERR_BADINPUT;
        }
        out->phones[i++] = v->valuestring;
    }
    out->n = i;
    return 0;
}

int gate_request_bulk_parse(struct gate_request_bulk *out, const char *body,
                            size_t len, size_t max_bulk)
{
    struct gate_request_bulk r;
    int rc;

    memset(&r, 0, sizeof(r));
    r.root = parse_object(body, len);
    if (!r.root)
        return ERR_BADINPUT;
    rc = string(&r.configuration, r.root, "configuration", 1);
    if (rc == 0)
        rc = string(&r.topic, r.root, "topic", 0);
    if (rc == 0)
        rc = phones(&r, max_bulk);
    if (rc) {
        gate_request_bulk_dispose(&r);
        return rc;
    }
    *out = r;
    return 0;
}

/* "at": an ISO 8601 time or integer milliseconds since the epoch. */
static int time_member(int64_t *out, const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    double d;

    *out = 0;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (cJSON_IsString(v) && v->valuestring &&
        mapping_time_parse(out, v->valuestring) == 0)
        return 0;
    if (cJSON_IsNumber(v)) {
        d = v->valuedouble;
        /* Whole milliseconds between 1970 and 9999. */
        if (d >= 1 && d < 253402300800000.0 && floor(d) == d) {
            *out = (int64_t)d;
            return 0;
        }
    }
    err_set(ERR_CLASS_INPUT,
            "\"%s\" must be an ISO 8601 time or "
            "milliseconds since the epoch",
            name);
    return ERR_BADINPUT;
}

int gate_request_send_parse(struct gate_request_send *out, const char *body,
                            size_t len)
{
    struct gate_request_send r;
    int rc;

    memset(&r, 0, sizeof(r));
    r.root = parse_object(body, len);
    if (!r.root)
        return ERR_BADINPUT;
    rc = string(&r.configuration, r.root, "configuration", 1);
    if (rc == 0)
        rc = string(&r.phone, r.root, "phone", 1);
    if (rc == 0)
        rc = string(&r.topic, r.root, "topic", 0);
    if (rc == 0)
        rc = time_member(&r.at, r.root, "at");
    if (rc) {
        gate_request_send_dispose(&r);
        return rc;
    }
    *out = r;
    return 0;
}

/* paused_until: an ISO time, or a duration from `now` ("14d"). */
static int until_member(struct gate_request_preference *r, int64_t now)
{
    int64_t secs;
    int rc = string(&r->until, r->root, "paused_until", 0);

    if (rc || !r->until)
        return rc;
    if (mapping_time_parse(&r->paused_until, r->until) == 0 &&
        r->paused_until > 0)
        return 0;
    if (units_duration_parse(&secs, r->until) == 0 && secs > 0 &&
        secs <= 3650LL * 24 * 3600) {
        r->paused_until = now + secs * 1000;
        return 0;
    }
    err_set(ERR_CLASS_INPUT, "\"paused_until\" must be an ISO 8601 time "
                             "or a duration like 14d");
    return ERR_BADINPUT;
}

int gate_request_preference_parse(struct gate_request_preference *out,
                                  const char *body, size_t len, int64_t now)
{
    struct gate_request_preference r;
    int rc;

    memset(&r, 0, sizeof(r));
    r.root = parse_object(body, len);
    if (!r.root)
        return ERR_BADINPUT;
    rc = string(&r.configuration, r.root, "configuration", 1);
    if (rc == 0)
        rc = string(&r.phone, r.root, "phone", 1);
    if (rc == 0)
        rc = string(&r.topic, r.root, "opt_out_topic", 0);
    if (rc == 0)
        rc = until_member(&r, now);
    if (rc == 0)
        rc = string(&r.taken_by, r.root, "taken_by", 0);
    if (rc == 0)
        rc = string(&r.note, r.root, "note", 0);
    if (rc == 0 && r.topic && !*r.topic) {
        err_set(ERR_CLASS_INPUT, "\"opt_out_topic\" is empty");
        rc = ERR_BADINPUT;
    }
    if (rc == 0 && !r.topic && !r.paused_until) {
        err_set(ERR_CLASS_INPUT, "give \"opt_out_topic\" or \"paused_until\"");
        rc = ERR_BADINPUT;
    }
    if (rc) {
        gate_request_preference_dispose(&r);
        return rc;
    }
    *out = r;
    return 0;
}

void gate_request_bulk_dispose(struct gate_request_bulk *r)
{
    free(r->phones);
    cJSON_Delete(r->root);
    memset(r, 0, sizeof(*r));
}

void gate_request_send_dispose(struct gate_request_send *r)
{
    cJSON_Delete(r->root);
    memset(r, 0, sizeof(*r));
}

void gate_request_preference_dispose(struct gate_request_preference *r)
{
    cJSON_Delete(r->root);
    memset(r, 0, sizeof(*r));
}
