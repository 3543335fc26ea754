/*
 * whatsapp_parse — a webhook body into a struct whatsapp_delivery: Meta's
 * Cloud API envelope and 360dialog's On-Premise format.  Pure (no I/O, no
 * SQLite, no consent decisions) and all or nothing: the first structural
 * error rejects the whole body (whatsapp.h says what counts as one).
 * Outside input: every size is capped (caps.h), every type checked.
 */
#include "whatsapp.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "caps.h"
#include "err.h"
#include "jsonutil.h"
#include "xalloc.h"

/* 9999-12-31T23:59:59Z: later timestamps are not Unix seconds. */
#define TIMESTAMP_MAX 253402300799LL

struct parser {
    struct whatsapp_delivery *d;
    size_t items; /* all kinds, against CAP_WA_ITEMS */
    size_t cap_messages, cap_statuses, cap_preferences, cap_errors,
        cap_contacts;
};

static int bad(const char *fmt, ...) ATTR_PRINTFLIKE(1, 2);

static int bad(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    err_vset(ERR_CLASS_INPUT, fmt, ap);
    va_end(ap);
    return ERR_BADINPUT;
}

/* Counts one more item against CAP_WA_ITEMS. */
static int count_item(struct parser *p)
{
    if (++p->items <= CAP_WA_ITEMS)
        return 0;
    err_set(ERR_CLASS_INPUT, "more than %d items in one delivery",
            CAP_WA_ITEMS);
    return ERR_TOOBIG;
}

/* `arr` with room for element n (capacity doubles). */
static void *grow(void *arr, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return arr;
    *cap = *cap ? *cap * 2 : 8;
    return xrealloc(arr, *cap * size);
}

/* m = a new zeroed element at the end of the delivery's array `kind`. */
#define PUSH(m, p, kind)                                                       \
    do {                                                                       \
        (p)->d->kind = grow((p)->d->kind, (p)->d->n_##kind, &(p)->cap_##kind,  \
                            sizeof(*(p)->d->kind));                            \
        (m) = &(p)->d->kind[(p)->d->n_##kind++];                               \
        memset((m), 0, sizeof(*(m)));                                          \
    } while (0)

/* ---- typed members ---------------------------------------------------------
 */

/* An optional string member: absent, null or "" → NULL; another type,
 * or longer than `max` (0: any length) → malformed. */
static int opt_str(const char **out, const cJSON *obj, const char *name,
                   size_t max)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v) || !v->valuestring)
        return bad("\"%s\" is not a string", name);
    if (max && strlen(v->valuestring) > max)
        return bad("\"%s\" is longer than %zu bytes", name, max);
    *out = *v->valuestring ? v->valuestring : NULL;
    return 0;
}

/* A string member for display or matching: wrong types mean "absent". */
static const char *soft_str(const cJSON *obj, const char *name)
{
    const char *s = jsonutil_str(obj, name);

    return s && *s ? s : NULL;
}

static int required_id(const char **out, const cJSON *obj, const char *name,
                       const char *what)
{
    int rc = opt_str(out, obj, name, CAP_WA_ID_BYTES);

    if (rc == 0 && !*out)
        return bad("%s without \"%s\"", what, name);
    return rc;
}

/* Unix seconds as a decimal string or an integer → ms. */
static int timestamp(int64_t *out, const cJSON *obj, const char *what)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "timestamp");
    const char *s;
    int64_t secs = 0;

    if (cJSON_IsNumber(v)) {
        if (!(v->valuedouble >= 0 && v->valuedouble <= TIMESTAMP_MAX) ||
            v->valuedouble != (double)(int64_t)v->valuedouble)
            return bad("%s timestamp is not Unix seconds", what);
        secs = (int64_t)v->valuedouble;
    } else if (cJSON_IsString(v) && v->valuestring && *v->valuestring) {
        for (s = v->valuestring; *s; s++) {
            if (*s < '0' || *s > '9' || secs > TIMESTAMP_MAX / 10)
                return bad("%s timestamp is not Unix seconds", what);
            secs = secs * 10 + (*s - '0');
        }
        if (secs > TIMESTAMP_MAX)
            return bad("%s timestamp is not Unix seconds", what);
    } else {
        return bad("%s without a timestamp", what);
    }
    *out = secs * 1000;
    return 0;
}

/* An optional array member: absent or null → NULL. */
static int opt_array(const cJSON **out, const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsArray(v))
        return bad("\"%s\" is not an array", name);
    *out = v;
    return 0;
}

/* The first element of an array from opt_array (NULL: none). */
static const cJSON *first(const cJSON *array)
{
    return array ? array->child : NULL;
}

static int each_object(const cJSON *item, const char *what)
{
    return cJSON_IsObject(item) ? 0 : bad("an item of %s is no object", what);
}

/* ---- message content -------------------------------------------------------
 */

static int is_true(const cJSON *obj, const char *name)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, name));
}

static void read_context(struct whatsapp_message *m, const cJSON *msg)
{
    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(msg, "context");

    if (!cJSON_IsObject(ctx))
        return;
    m->context_id = soft_str(ctx, "id");
    m->forwarded =
        is_true(ctx, "forwarded") || is_true(ctx, "frequently_forwarded");
}

static void read_interactive(struct whatsapp_message *m, const cJSON *in)
{
    const char *type = soft_str(in, "type");
    const cJSON *reply;

    if (!type)
        return;
    if (strcmp(type, "button_reply") == 0)
        m->kind = WHATSAPP_MSG_BUTTON_REPLY;
    else if (strcmp(type, "list_reply") == 0)
        m->kind = WHATSAPP_MSG_LIST_REPLY;
    else
        return; /* nfm_reply (Flows), call_permission_reply, ... */
    reply = cJSON_GetObjectItemCaseSensitive(in, type);
    if (!cJSON_IsObject(reply)) {
        m->kind = WHATSAPP_MSG_OTHER;
        return;
    }
    m->payload = soft_str(reply, "id");
    m->title = soft_str(reply, "title");
}

/* What the message says, by type; unexpected shapes say nothing. */
static void read_content(struct whatsapp_message *m, const cJSON *msg)
{
    const cJSON *o;

    if (!m->type)
        return;
    o = cJSON_GetObjectItemCaseSensitive(msg, m->type);
    if (!cJSON_IsObject(o))
        return;
    if (strcmp(m->type, "text") == 0) {
        m->text = soft_str(o, "body");
        m->kind = m->text ? WHATSAPP_MSG_TEXT : WHATSAPP_MSG_OTHER;
    } else if (strcmp(m->type, "button") == 0) {
        m->kind = WHATSAPP_MSG_BUTTON;
        m->payload = soft_str(o, "payload"); /* may be null (On-Premise) */
        m->title = soft_str(o, "text");
    } else if (strcmp(m->type, "interactive") == 0) {
        read_interactive(m, o);
    } else if (strcmp(m->type, "system") == 0) {
        m->kind = WHATSAPP_MSG_SYSTEM;
        m->system_type = soft_str(o, "type");
        m->system_wa_id = soft_str(o, "wa_id");
    }
}

/* ---- senders ---------------------------------------------------------------
 */

static int same(const char *a, const char *b)
{
    if (a && *a == '+')
        a++;
    if (b && *b == '+')
        b++;
    return a && b && strcmp(a, b) == 0;
}

/* The contact of the value that describes the message's sender. */
static const cJSON *sender_contact(const cJSON *contacts,
                                   const struct whatsapp_message *m)
{
    const cJSON *c;

    cJSON_ArrayForEach(c, contacts)
    {
        if (m->from && same(jsonutil_str(c, "wa_id"), m->from))
            return c;
        if (!m->from && m->user_id &&
            same(jsonutil_str(c, "user_id"), m->user_id))
            return c;
    }
    /* A lone contact with nobody named in the message is its sender. */
    if (!m->from && !m->user_id && cJSON_GetArraySize(contacts) == 1)
        return cJSON_GetArrayItem(contacts, 0);
    return NULL;
}

static void fill_sender(struct whatsapp_message *m, const cJSON *contacts)
{
    const cJSON *c = contacts ? sender_contact(contacts, m) : NULL;
    const char *s;

    if (!c)
        return;
    s = soft_str(c, "wa_id");
    if (!m->from && s && strlen(s) <= CAP_WA_ID_BYTES)
        m->from = s;
    s = soft_str(c, "user_id");
    if (!m->user_id && s && strlen(s) <= CAP_WA_ID_BYTES)
        m->user_id = s;
}

/* ---- items -----------------------------------------------------------------
 */

static int parse_message(struct parser *p, const cJSON *item,
                         const struct whatsapp_origin *origin,
                         const cJSON *contacts)
{
    struct whatsapp_message *m;
    int rc = each_object(item, "messages");

    if (rc == 0)
        rc = count_item(p);
    if (rc)
        return rc;
    PUSH(m, p, messages);
    m->origin = *origin;
    rc = required_id(&m->id, item, "id", "a message");
    if (rc == 0)
        rc = timestamp(&m->at, item, "a message");
    if (rc == 0)
        rc = opt_str(&m->from, item, "from", CAP_WA_ID_BYTES);
    if (rc == 0)
        rc = opt_str(&m->user_id, item, "from_user_id", CAP_WA_ID_BYTES);
    if (rc)
        return rc;
    m->type = soft_str(item, "type");
    fill_sender(m, contacts);
    read_context(m, item);
    read_content(m, item);
    return 0;
}

/* The error codes of a status; 131050 on a failed one stops marketing. */
static void read_status_errors(struct whatsapp_status *s, const cJSON *errors)
{
    const cJSON *e, *code;

    cJSON_ArrayForEach(e, errors)
    {
        code = cJSON_GetObjectItemCaseSensitive(e, "code");
        if (!cJSON_IsNumber(code) || !(code->valuedouble >= -9.0e15) ||
            !(code->valuedouble <= 9.0e15))
            continue;
        if (s->n_errors < WHATSAPP_STATUS_ERRORS_MAX)
            s->error_codes[s->n_errors] = (int64_t)code->valuedouble;
        s->n_errors++;
        if ((int64_t)code->valuedouble == WHATSAPP_ERROR_STOPPED_MARKETING &&
            strcmp(s->status, "failed") == 0)
            s->stopped_marketing = 1;
    }
}

static int parse_status(struct parser *p, const cJSON *item,
                        const struct whatsapp_origin *origin)
{
    struct whatsapp_status *s;
    const cJSON *errors = NULL;
    const char *type;
    int rc = each_object(item, "statuses");

    if (rc == 0)
        rc = count_item(p);
    if (rc)
        return rc;
    PUSH(s, p, statuses);
    s->origin = *origin;
    rc = required_id(&s->id, item, "id", "a status");
    if (rc == 0)
        rc = required_id(&s->status, item, "status", "a status");
    if (rc == 0)
        rc = timestamp(&s->at, item, "a status");
    if (rc == 0)
        rc = opt_str(&s->recipient_id, item, "recipient_id", CAP_WA_ID_BYTES);
    if (rc == 0)
        rc = opt_str(&s->recipient_user_id, item, "recipient_user_id",
                     CAP_WA_ID_BYTES);
    if (rc == 0)
        rc = opt_array(&errors, item, "errors");
    if (rc)
        return rc;
    type = soft_str(item, "recipient_type");
    s->group = type && strcmp(type, "group") == 0;
    read_status_errors(s, errors);
    return 0;
}

static int parse_preference(struct parser *p, const cJSON *item,
                            const struct whatsapp_origin *origin)
{
    struct whatsapp_preference *u;
    int rc = each_object(item, "user_preferences");

    if (rc == 0)
        rc = count_item(p);
    if (rc)
        return rc;
    PUSH(u, p, preferences);
    u->origin = *origin;
    rc = timestamp(&u->at, item, "a user preference");
    if (rc == 0)
        rc = opt_str(&u->wa_id, item, "wa_id", CAP_WA_ID_BYTES);
    if (rc == 0)
        rc = opt_str(&u->user_id, item, "user_id", CAP_WA_ID_BYTES);
    if (rc == 0)
        rc = opt_str(&u->category, item, "category", CAP_WA_ID_BYTES);
    if (rc == 0)
        rc = opt_str(&u->value, item, "value", CAP_WA_ID_BYTES);
    return rc;
}

static int parse_error(struct parser *p, const cJSON *item,
                       const struct whatsapp_origin *origin)
{
    struct whatsapp_error *e;
    int rc = each_object(item, "errors");

    if (rc == 0)
        rc = count_item(p);
    if (rc)
        return rc;
    PUSH(e, p, errors);
    e->origin = *origin;
    e->code = jsonutil_int(item, "code", 0);
    e->title = soft_str(item, "title");
    return 0;
}

static int parse_contact(struct parser *p, const cJSON *item,
                         const struct whatsapp_origin *origin)
{
    struct whatsapp_contact *k;
    int rc = each_object(item, "contacts");

    if (rc == 0)
        rc = count_item(p);
    if (rc)
        return rc;
    PUSH(k, p, contacts);
    k->origin = *origin;
    rc = opt_str(&k->wa_id, item, "wa_id", CAP_WA_ID_BYTES);
    if (rc == 0)
        rc = opt_str(&k->user_id, item, "user_id", CAP_WA_ID_BYTES);
    return rc;
}

/* ---- the containers --------------------------------------------------------
 */

struct value_arrays {
    const cJSON *contacts, *messages, *statuses, *errors, *preferences;
};

static int value_arrays(struct value_arrays *v, const cJSON *value)
{
    int rc;

    memset(v, 0, sizeof(*v));
    rc = opt_array(&v->contacts, value, "contacts");

    if (rc == 0)
        rc = opt_array(&v->messages, value, "messages");
    if (rc == 0)
        rc = opt_array(&v->statuses, value, "statuses");
    if (rc == 0)
        rc = opt_array(&v->errors, value, "errors");
    if (rc == 0)
        rc = opt_array(&v->preferences, value, "user_preferences");
    return rc;
}

/* One change's value (Cloud) or the whole body (On-Premise). */
static int parse_value(struct parser *p, const cJSON *value,
                       struct whatsapp_origin *origin)
{
    struct value_arrays v = { NULL, NULL, NULL, NULL, NULL };
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(value, "metadata");
    const cJSON *it;
    int rc = 0;

    if (meta && !cJSON_IsNull(meta) && !cJSON_IsObject(meta))
        return bad("\"metadata\" is not an object");
    if (cJSON_IsObject(meta))
        rc = opt_str(&origin->phone_number_id, meta, "phone_number_id",
                     CAP_WA_ID_BYTES);
    if (rc == 0)
        rc = value_arrays(&v, value);
    for (it = first(v.contacts); rc == 0 && it; it = it->next)
        rc = parse_contact(p, it, origin);
    for (it = first(v.messages); rc == 0 && it; it = it->next)
        rc = parse_message(p, it, origin, v.contacts);
    for (it = first(v.statuses); rc == 0 && it; it = it->next)
        rc = parse_status(p, it, origin);
    for (it = first(v.preferences); rc == 0 && it; it = it->next)
        rc = parse_preference(p, it, origin);
    for (it = first(v.errors); rc == 0 && it; it = it->next)
        rc = parse_error(p, it, origin);
    return rc;
}

/* Fields whose value this module reads; an absent field is read too. */
static int field_known(const char *field)
{
    return !field || strcmp(field, "messages") == 0 ||
           strcmp(field, "user_preferences") == 0;
}

static int parse_change(struct parser *p, const cJSON *change,
                        const char *waba_id)
{
    struct whatsapp_origin origin = { waba_id, NULL };
    const cJSON *value;
    const char *field;
    int rc = each_object(change, "changes");

    if (rc == 0)
        rc = opt_str(&field, change, "field", CAP_WA_ID_BYTES);
    if (rc)
        return rc;
    if (!field_known(field)) {
        p->d->other_changes++;
        return 0;
    }
    value = cJSON_GetObjectItemCaseSensitive(change, "value");
    if (!value || cJSON_IsNull(value))
        return 0;
    if (!cJSON_IsObject(value))
        return bad("a change's \"value\" is not an object");
    return parse_value(p, value, &origin);
}

static int parse_entry(struct parser *p, const cJSON *entry)
{
    const cJSON *changes = NULL, *change;
    const char *waba_id = NULL;
    int rc = each_object(entry, "entry");

    if (rc == 0)
        rc = opt_str(&waba_id, entry, "id", CAP_WA_ID_BYTES);
    if (rc == 0)
        rc = opt_array(&changes, entry, "changes");
    for (change = first(changes); rc == 0 && change; change = change->next)
        rc = parse_change(p, change, waba_id);
    return rc;
}

static int parse_cloud(struct parser *p, const cJSON *root)
{
    const cJSON *entries = NULL, *entry;
    const char *object;
    int rc = opt_str(&object, root, "object", CAP_WA_ID_BYTES);

    if (rc)
        return rc;
    if (object && strcmp(object, "whatsapp_business_account") != 0)
        return bad("\"object\" is not whatsapp_business_account");
    rc = opt_array(&entries, root, "entry");
    if (rc == 0 && !entries)
        return bad("a Cloud API delivery without \"entry\"");
    for (entry = first(entries); rc == 0 && entry; entry = entry->next)
        rc = parse_entry(p, entry);
    return rc;
}

static int has(const cJSON *root, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(root, name) != NULL;
}

int whatsapp_delivery_parse(struct whatsapp_delivery *out, const char *body,
                            size_t len)
{
    struct parser p;
    struct whatsapp_origin none = { NULL, NULL };

    memset(out, 0, sizeof(*out));
    memset(&p, 0, sizeof(p));
    p.d = out;
    out->root = jsonutil_parse_whole(body, len);
    if (!out->root)
        return ERR_BADINPUT;
    if (!cJSON_IsObject(out->root))
        return bad("the body is not a JSON object");
    if (has(out->root, "object") || has(out->root, "entry"))
        return parse_cloud(&p, out->root);
    out->format = WHATSAPP_FORMAT_ON_PREMISE;
    if (!has(out->root, "messages") && !has(out->root, "statuses") &&
        !has(out->root, "contacts") && !has(out->root, "errors"))
        return bad("neither a Cloud API nor an On-Premise delivery");
    return parse_value(&p, out->root, &none);
}

void whatsapp_delivery_dispose(struct whatsapp_delivery *d)
{
    if (!d)
        return;
    cJSON_Delete(d->root);
    free(d->messages);
    free(d->statuses);
    free(d->preferences);
    free(d->errors);
    free(d->contacts);
    memset(d, 0, sizeof(*d));
}

int whatsapp_delivery_needs_configuration(const struct whatsapp_delivery *d)
{
    size_t i;

    for (i = 0; i < d->n_messages; i++)
        if (!d->messages[i].origin.phone_number_id)
            return 1;
    for (i = 0; i < d->n_statuses; i++)
        if (!d->statuses[i].origin.phone_number_id)
            return 1;
    for (i = 0; i < d->n_preferences; i++)
        if (!d->preferences[i].origin.phone_number_id)
            return 1;
    return 0;
}

void whatsapp_message_reply(struct consent_reply *out,
                            const struct whatsapp_message *m)
{
    memset(out, 0, sizeof(*out));
    switch (m->kind) {
    case WHATSAPP_MSG_TEXT: out->text = m->text; break;
    case WHATSAPP_MSG_BUTTON:
    case WHATSAPP_MSG_BUTTON_REPLY:
    case WHATSAPP_MSG_LIST_REPLY:
        out->payload = m->payload;
        out->title = m->title;
        break;
    default: return; /* media, reactions, system: no consent meaning */
    }
    out->has_context = m->context_id != NULL;
    out->forwarded = m->forwarded;
}
