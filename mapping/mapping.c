/*
 * mapping — see mapping.h.  Pure: no I/O, no logging, libc + cJSON only.
 */
#include "mapping.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NAME_MAX_BYTES 128 /* a schema name; Dataverse allows far less */

/* Mapping is a leaf module: it brings its own abort-on-OOM helpers. */
static void *mmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p) {
        fputs("optsync: out of memory\n", stderr);
        abort();
    }
    return p;
}

static char *mstrdup(const char *s)
{
    size_t n = strlen(s) + 1;

    return memcpy(mmalloc(n), s, n);
}

#if defined(__GNUC__)
#define MAPPING_PRINTFLIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define MAPPING_PRINTFLIKE(f, a)
#endif

static char *mprintf(const char *fmt, ...) MAPPING_PRINTFLIKE(1, 2);
static void problem(struct mapping_problems *p, const char *fmt, ...)
    MAPPING_PRINTFLIKE(2, 3);

static char *mprintf(const char *fmt, ...)
{
    va_list ap;
    int n;
    char *p;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    p = mmalloc((size_t)(n > 0 ? n : 0) + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)(n > 0 ? n : 0) + 1, fmt, ap);
    va_end(ap);
    return p;
}

/* ---- status names ------------------------------------------------------- */

static const char *const status_names[CONSENT_STATUS_COUNT] = {
    "none",
    "single_opt_in",
    "double_opt_in",
    "opted_out",
};

const char *consent_status_name(enum consent_status s)
{
    if ((unsigned)s >= CONSENT_STATUS_COUNT)
        return "none";
    return status_names[s];
}

int consent_status_parse(enum consent_status *out, const char *name)
{
    int i;

    for (i = 0; i < CONSENT_STATUS_COUNT; i++) {
        if (strcmp(name, status_names[i]) == 0) {
            *out = (enum consent_status)i;
            return 0;
        }
    }
    return -1;
}

/* ---- loading ------------------------------------------------------------ */

enum field_kind {
    F_LOWER,         /* entity set, logical name, attribute: lower case */
    F_NAV,           /* navigation property: SchemaName casing allowed */
    F_STATE,         /* {attribute, active_value} */
    F_STATUS_VALUES, /* {single_opt_in, double_opt_in, opted_out} */
    F_KEY_LIST,      /* [attribute, ...] */
};

struct field_desc {
    const char *key;
    enum field_kind kind;
    int required;
    size_t offset;
};

#define CFG(f) offsetof(struct mapping_configuration, f)
#define NUM(f) offsetof(struct mapping_number, f)

static const struct field_desc configuration_fields[] = {
    { "entity_set", F_LOWER, 1, CFG(entity_set) },
    { "logical_name", F_LOWER, 1, CFG(logical_name) },
    { "id", F_LOWER, 1, CFG(id) },
    { "name", F_LOWER, 1, CFG(name) },
    { "double_opt_in", F_LOWER, 1, CFG(double_opt_in) },
    { "phone_number_id", F_LOWER, 0, CFG(phone_number_id) },
    { "waba_id", F_LOWER, 0, CFG(waba_id) },
    { "default_region", F_LOWER, 0, CFG(default_region) },
    { "double_opt_in_template", F_LOWER, 0, CFG(double_opt_in_template) },
    { "opt_in_confirmation_template", F_LOWER, 0,
      CFG(opt_in_confirmation_template) },
    { "opt_out_confirmation_template", F_LOWER, 0,
      CFG(opt_out_confirmation_template) },
    { "state", F_STATE, 0, CFG(state) },
    { NULL, F_LOWER, 0, 0 },
};

static const struct field_desc number_fields[] = {
    { "entity_set", F_LOWER, 1, NUM(entity_set) },
    { "logical_name", F_LOWER, 1, NUM(logical_name) },
    { "id", F_LOWER, 1, NUM(id) },
    { "name", F_LOWER, 1, NUM(name) },
    { "configuration_lookup", F_LOWER, 1, NUM(configuration_lookup) },
    { "configuration_navigation", F_NAV, 1, NUM(configuration_navigation) },
    { "relationship", F_NAV, 1, NUM(relationship) },
    { "phone", F_LOWER, 1, NUM(phone) },
    { "status", F_LOWER, 1, NUM(status) },
    { "status_values", F_STATUS_VALUES, 1, NUM(status_values) },
    { "modified_on", F_LOWER, 1, NUM(modified_on) },
    { "state", F_STATE, 0, NUM(state) },
    { "consent_at", F_LOWER, 0, NUM(consent_at) },
    { "source", F_LOWER, 0, NUM(source) },
    { "alternate_key", F_KEY_LIST, 0, NUM(alternate_key) },
    { "topics", F_LOWER, 0, NUM(topics) },
    { "paused_until", F_LOWER, 0, NUM(paused_until) },
    { NULL, F_LOWER, 0, 0 },
};

static void problem(struct mapping_problems *p, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *msg;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    msg = mmalloc((size_t)(n > 0 ? n : 0) + 1);
    va_start(ap, fmt);
    vsnprintf(msg, (size_t)(n > 0 ? n : 0) + 1, fmt, ap);
    va_end(ap);
    p->items = realloc(p->items, (p->count + 1) * sizeof(*p->items));
    if (!p->items) {
        fputs("optsync: out of memory\n", stderr);
        abort();
    }
    p->items[p->count++] = msg;
}

/* A schema name: a letter or '_' first, then letters, digits, '_'. */
static const char *name_problem(const char *s, int lower_only)
{
    size_t i, n = strlen(s);

    if (n == 0)
        return "must not be empty";
    if (n >= NAME_MAX_BYTES)
        return "is too long for a schema name";
    if (!isalpha((unsigned char)s[0]) && s[0] != '_')
        return "must start with a letter or '_'";
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!isalnum(c) && c != '_')
            return "may hold only letters, digits and '_'";
        if (lower_only && isupper(c))
            return "must be lower case (logical names and entity set "
                   "names are; only navigation properties use "
                   "SchemaName casing)";
    }
    return NULL;
}

static int load_name(char **out, const cJSON *v, const char *path,
                     int lower_only, struct mapping_problems *p)
{
    const char *why;

    if (!cJSON_IsString(v)) {
        problem(p, "%s: expected a string", path);
        return -1;
    }
    why = name_problem(v->valuestring, lower_only);
    if (why) {
        problem(p, "%s: \"%s\" %s", path, v->valuestring, why);
        return -1;
    }
    *out = mstrdup(v->valuestring);
    return 0;
}

static int load_int(int64_t *out, const cJSON *v, const char *path,
                    struct mapping_problems *p)
{
    /* Range first: casting an out-of-range double is undefined. */
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= -2147483648.0) ||
        !(v->valuedouble <= 2147483647.0) ||
        v->valuedouble != (double)(int64_t)v->valuedouble) {
        problem(p, "%s: expected a whole number (a choice or state value)",
                path);
        return -1;
    }
    *out = (int64_t)v->valuedouble;
    return 0;
}

static void check_unknown_keys(const cJSON *obj, const char *path,
                               const char *const *known,
                               struct mapping_problems *p)
{
    const cJSON *item;
    size_t i;

    cJSON_ArrayForEach(item, obj)
    {
        for (i = 0; known[i]; i++)
            if (strcmp(known[i], item->string) == 0)
                break;
        if (!known[i])
            problem(p, "%s.%s: unknown key", path, item->string);
    }
}

/* "path" + "suffix" into out[PATH_BYTES], truncating silently (paths are
 * for messages only). */
#define PATH_BYTES 256
static void subpath(char out[PATH_BYTES], const char *path, const char *a,
                    const char *b)
{
    size_t n = 0;
    const char *parts[3] = { path, a, b };
    int i;

    for (i = 0; i < 3; i++) {
        size_t len = parts[i] ? strlen(parts[i]) : 0;

        if (len > PATH_BYTES - 1 - n)
            len = PATH_BYTES - 1 - n;
        memcpy(out + n, parts[i] ? parts[i] : "", len);
        n += len;
    }
    out[n] = '\0';
}

static void load_state(struct mapping_state *out, const cJSON *v,
                       const char *path, struct mapping_problems *p)
{
    static const char *const known[] = { "attribute", "active_value", NULL };
    char sub[PATH_BYTES];

    if (!cJSON_IsObject(v)) {
        problem(p,
                "%s: expected an object {\"attribute\", "
                "\"active_value\"}",
                path);
        return;
    }
    check_unknown_keys(v, path, known, p);
    subpath(sub, path, ".attribute", NULL);
    load_name(&out->attribute, cJSON_GetObjectItemCaseSensitive(v, "attribute"),
              sub, 1, p);
    subpath(sub, path, ".active_value", NULL);
    load_int(&out->active_value,
             cJSON_GetObjectItemCaseSensitive(v, "active_value"), sub, p);
}

static void load_status_values(int64_t *values, const cJSON *v,
                               const char *path, struct mapping_problems *p)
{
    static const char *const known[] = { "single_opt_in", "double_opt_in",
                                         "opted_out", NULL };
    char sub[PATH_BYTES];
    int i, j, ok = 1;

    if (!cJSON_IsObject(v)) {
        problem(p, "%s: expected an object of the three choice values", path);
        return;
    }
    check_unknown_keys(v, path, known, p);
    for (i = 1; i < CONSENT_STATUS_COUNT; i++) {
        subpath(sub, path, ".", status_names[i]);
        if (load_int(&values[i],
                     cJSON_GetObjectItemCaseSensitive(v, status_names[i]), sub,
                     p) != 0)
            ok = 0;
    }
    for (i = 1; ok && i < CONSENT_STATUS_COUNT; i++)
        for (j = i + 1; j < CONSENT_STATUS_COUNT; j++)
            if (values[i] == values[j])
                problem(p, "%s: %s and %s have the same value %lld", path,
                        status_names[i], status_names[j], (long long)values[i]);
}

static void load_key_list(struct mapping_number *num, const cJSON *v,
                          const char *path, struct mapping_problems *p)
{
    const cJSON *item;
    char sub[PATH_BYTES];
    size_t i = 0, n = (size_t)cJSON_GetArraySize(v);

    if (!cJSON_IsArray(v) || n == 0) {
        problem(p, "%s: expected a non-empty array of attribute names", path);
        return;
    }
    num->alternate_key = calloc(n, sizeof(char *));
    if (!num->alternate_key)
        abort();
    cJSON_ArrayForEach(item, v)
    {
        char idx[32];

        snprintf(idx, sizeof(idx), "[%zu]", i);
        subpath(sub, path, idx, NULL);
        if (load_name(&num->alternate_key[i], item, sub, 1, p) == 0)
            i++;
    }
    num->alternate_key_count = i;
}

static void load_object(void *base, const struct field_desc *fields,
                        const cJSON *obj, const char *path,
                        struct mapping_problems *p)
{
    const char *known[32];
    const struct field_desc *f;
    char sub[PATH_BYTES];
    size_t n = 0;

    for (f = fields; f->key; f++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, f->key);
        void *dst = (char *)base + f->offset;

        known[n++] = f->key;
        subpath(sub, path, ".", f->key);
        if (!v) {
            if (f->required)
                problem(p, "%s: required key is missing", sub);
            continue;
        }
        switch (f->kind) {
        case F_LOWER:
        case F_NAV: load_name(dst, v, sub, f->kind == F_LOWER, p); break;
        case F_STATE: load_state(dst, v, sub, p); break;
        case F_STATUS_VALUES: load_status_values(dst, v, sub, p); break;
        case F_KEY_LIST: load_key_list(base, v, sub, p); break;
        }
    }
    known[n] = NULL;
    check_unknown_keys(obj, path, known, p);
}

static void append_select(char **select, const char *name)
{
    char *s;

    if (!name)
        return;
    s = *select ? mprintf("%s,%s", *select, name) : mstrdup(name);
    free(*select);
    *select = s;
}

static void derive(struct mapping *m)
{
    struct mapping_configuration *c = &m->configuration;
    struct mapping_number *n = &m->number;

    n->configuration_value = mprintf("_%s_value", n->configuration_lookup);
    append_select(&c->select, c->id);
    append_select(&c->select, c->name);
    append_select(&c->select, c->double_opt_in);
    append_select(&c->select, c->phone_number_id);
    append_select(&c->select, c->waba_id);
    append_select(&c->select, c->default_region);
    append_select(&c->select, c->double_opt_in_template);
    append_select(&c->select, c->opt_in_confirmation_template);
    append_select(&c->select, c->opt_out_confirmation_template);
    append_select(&c->select, c->state.attribute);
    append_select(&c->select, "modifiedon");

    append_select(&n->select, n->id);
    append_select(&n->select, n->configuration_value);
    append_select(&n->select, n->phone);
    append_select(&n->select, n->status);
    append_select(&n->select, n->modified_on);
    append_select(&n->select, n->state.attribute);
    append_select(&n->select, n->consent_at);
    append_select(&n->select, n->source);
    append_select(&n->select, n->topics);
    append_select(&n->select, n->paused_until);
}

static void load_root(struct mapping *m, const cJSON *root,
                      struct mapping_problems *p)
{
    static const char *const known[] = { "mapping_version", "description",
                                         "configuration", "number", NULL };
    const cJSON *version, *cfg, *num;

    if (!cJSON_IsObject(root)) {
        problem(p, "$: expected a JSON object");
        return;
    }
    check_unknown_keys(root, "$", known, p);
    version = cJSON_GetObjectItemCaseSensitive(root, "mapping_version");
    if (!cJSON_IsNumber(version) || version->valuedouble != 1.0)
        problem(p, "$.mapping_version: expected 1");
    cfg = cJSON_GetObjectItemCaseSensitive(root, "configuration");
    num = cJSON_GetObjectItemCaseSensitive(root, "number");
    if (!cJSON_IsObject(cfg))
        problem(p, "$.configuration: expected an object");
    else
        load_object(&m->configuration, configuration_fields, cfg,
                    "$.configuration", p);
    if (!cJSON_IsObject(num))
        problem(p, "$.number: expected an object");
    else
        load_object(&m->number, number_fields, num, "$.number", p);
}

int mapping_load(struct mapping **out, const char *json, size_t len,
                 struct mapping_problems *problems)
{
    struct mapping *m = calloc(1, sizeof(*m));
    size_t before = problems->count;
    const char *end = NULL;
    cJSON *root;

    if (!m)
        abort();
    root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        problem(problems, "$: not valid JSON (near byte %ld)",
                end ? (long)(end - json) : 0L);
        free(m);
        return -1;
    }
    load_root(m, root, problems);
    cJSON_Delete(root);
    if (problems->count > before) {
        mapping_free(m);
        return -1;
    }
    derive(m);
    *out = m;
    return 0;
}

void mapping_problems_dispose(struct mapping_problems *p)
{
    size_t i;

    for (i = 0; i < p->count; i++)
        free(p->items[i]);
    free(p->items);
    p->items = NULL;
    p->count = 0;
}

void mapping_free(struct mapping *m)
{
    struct mapping_configuration *c;
    struct mapping_number *n;
    size_t i;

    if (!m)
        return;
    c = &m->configuration;
    n = &m->number;
    free(c->entity_set);
    free(c->logical_name);
    free(c->id);
    free(c->name);
    free(c->double_opt_in);
    free(c->phone_number_id);
    free(c->waba_id);
    free(c->default_region);
    free(c->double_opt_in_template);
    free(c->opt_in_confirmation_template);
    free(c->opt_out_confirmation_template);
    free(c->state.attribute);
    free(c->select);
    free(n->entity_set);
    free(n->logical_name);
    free(n->id);
    free(n->name);
    free(n->configuration_lookup);
    free(n->configuration_value);
    free(n->configuration_navigation);
    free(n->relationship);
    free(n->phone);
    free(n->status);
    free(n->modified_on);
    free(n->state.attribute);
    free(n->consent_at);
    free(n->source);
    for (i = 0; i < n->alternate_key_count; i++)
        free(n->alternate_key[i]);
    free(n->alternate_key);
    free(n->topics);
    free(n->paused_until);
    free(n->select);
    free(m);
}

/* ---- small helpers ---------------------------------------------------------
 */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int mapping_guid_normalize(char out[MAPPING_GUID_LEN + 1], const char *in)
{
    char buf[MAPPING_GUID_LEN + 1];
    size_t n = strlen(in), i;

    if (n == MAPPING_GUID_LEN + 2 && in[0] == '{' && in[n - 1] == '}') {
        in++;
        n -= 2;
    }
    if (n != MAPPING_GUID_LEN)
        return -1;
    for (i = 0; i < MAPPING_GUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (in[i] != '-')
                return -1;
            buf[i] = '-';
        } else if (hexval((unsigned char)in[i]) < 0) {
            return -1;
        } else {
            buf[i] = (char)tolower((unsigned char)in[i]);
        }
    }
    buf[MAPPING_GUID_LEN] = '\0';
    memcpy(out, buf, sizeof(buf));
    return 0;
}

int64_t mapping_etag_version(const char *etag)
{
    int64_t v = 0;
    const char *p;

    if (!etag || strncmp(etag, "W/\"", 3) != 0)
        return 0;
    for (p = etag + 3; *p >= '0' && *p <= '9'; p++) {
        if (v > (INT64_MAX - 9) / 10)
            return 0;
        v = v * 10 + (*p - '0');
    }
    return (*p == '"' && p[1] == '\0' && p > etag + 3) ? v : 0;
}

static int digits(const char **p, int n, int *out)
{
    int v = 0, i;

    for (i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian), no libc state. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int parse_fraction(const char **p, int *ms)
{
    int scale = 100;

    *ms = 0;
    if (**p != '.')
        return 0;
    (*p)++;
    if (**p < '0' || **p > '9')
        return -1;
    while (**p >= '0' && **p <= '9') {
        *ms += (**p - '0') * scale;
        scale /= 10;
        (*p)++;
    }
    return 0;
}

static int parse_offset(const char **p, int *minutes)
{
    int sign, hh, mm;

    if (**p == 'Z' || **p == 'z') {
        (*p)++;
        *minutes = 0;
        return 0;
    }
    if (**p != '+' && **p != '-')
        return -1;
    sign = **p == '-' ? -1 : 1;
    (*p)++;
    if (digits(p, 2, &hh) || **p != ':')
        return -1;
    (*p)++;
    if (digits(p, 2, &mm) || hh > 23 || mm > 59)
        return -1;
    *minutes = sign * (hh * 60 + mm);
    return 0;
}

int mapping_time_parse(int64_t *out, const char *iso)
{
    const char *p = iso;
    int y, mo, d, h, mi, s, ms, off;
    static const int mdays[] = {
        31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
        digits(&p, 2, &d) || (*p != 'T' && *p != 't'))
        return -1;
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
        digits(&p, 2, &s) || parse_fraction(&p, &ms) ||
        parse_offset(&p, &off) || *p != '\0')
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 ||
        s > 60)
        return -1;
    *out = ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s) -
            (int64_t)off * 60) *
               1000 +
           ms;
    return 0;
}

void mapping_time_format(char out[32], int64_t ms)
{
    int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    int frac = (int)(ms - secs * 1000);
    time_t t = (time_t)secs;
    struct tm tm;
    size_t n;

    gmtime_r(&t, &tm);
    n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    if (frac)
        snprintf(out + n, 32 - n, ".%03dZ", frac);
    else
        snprintf(out + n, 32 - n, "Z");
}

/* ---- rows → records ----------------------------------------------------- */

static const cJSON *get(const cJSON *row, const char *name)
{
    return name ? cJSON_GetObjectItemCaseSensitive(row, name) : NULL;
}

/* A string column: NULL when absent, null or empty. */
static const char *get_string(const cJSON *row, const char *name)
{
    const cJSON *v = get(row, name);

    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* A date column: 0 when absent or null; -1 (fail) when malformed. */
static int get_time(int64_t *out, const cJSON *row, const char *name)
{
    const cJSON *v = get(row, name);

    *out = 0;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v) || mapping_time_parse(out, v->valuestring) != 0)
        return -1;
    return 0;
}

static int get_active(const cJSON *row, const struct mapping_state *st)
{
    const cJSON *v = get(row, st->attribute);

    if (!st->attribute || !cJSON_IsNumber(v))
        return 1; /* not mapped or not selected: active */
    /* Compare as doubles: casting an out-of-range double is undefined. */
    return v->valuedouble == (double)st->active_value;
}

static int get_id(char out[MAPPING_GUID_LEN + 1], const cJSON *row,
                  const char *name)
{
    const char *s = get_string(row, name);

    return s ? mapping_guid_normalize(out, s) : -1;
}

int mapping_configuration_from_row(struct configuration_record *out,
                                   const struct mapping *m, const cJSON *row,
                                   const char **why)
{
    const struct mapping_configuration *c = &m->configuration;
    const cJSON *doi = get(row, c->double_opt_in);
    const char *name = get_string(row, c->name);

    memset(out, 0, sizeof(*out));
    if (get_id(out->id, row, c->id) != 0) {
        *why = "missing or malformed primary key";
        return -1;
    }
    if (get_time(&out->modified_on, row, "modifiedon") != 0) {
        *why = "malformed modifiedon";
        return -1;
    }
    out->name = name ? name : "";
    out->double_opt_in = cJSON_IsTrue(doi);
    out->phone_number_id = get_string(row, c->phone_number_id);
    out->waba_id = get_string(row, c->waba_id);
    out->default_region = get_string(row, c->default_region);
    out->double_opt_in_template = get_string(row, c->double_opt_in_template);
    out->opt_in_confirmation_template =
        get_string(row, c->opt_in_confirmation_template);
    out->opt_out_confirmation_template =
        get_string(row, c->opt_out_confirmation_template);
    out->active = get_active(row, &c->state);
    out->version = mapping_etag_version(get_string(row, "@odata.etag"));
    return 0;
}

static int status_from_value(enum consent_status *out,
                             const struct mapping_number *n, const cJSON *v)
{
    int i;

    if (!v || cJSON_IsNull(v)) {
        *out = CONSENT_NONE;
        return 0;
    }
    if (!cJSON_IsNumber(v))
        return -1;
    for (i = 1; i < CONSENT_STATUS_COUNT; i++) {
        if ((double)n->status_values[i] == v->valuedouble) {
            *out = (enum consent_status)i;
            return 0;
        }
    }
    return -1;
}

int mapping_number_from_row(struct number_record *out, const struct mapping *m,
                            const cJSON *row, const char **why)
{
    const struct mapping_number *n = &m->number;
    const char *cfg = get_string(row, n->configuration_value);

    memset(out, 0, sizeof(*out));
    if (get_id(out->id, row, n->id) != 0) {
        *why = "missing or malformed primary key";
        return -1;
    }
    if (cfg && mapping_guid_normalize(out->configuration_id, cfg) != 0) {
        *why = "malformed configuration lookup";
        return -1;
    }
    if (status_from_value(&out->status, n, get(row, n->status)) != 0) {
        *why = "status value not in the mapping's status_values";
        return -1;
    }
    if (get_time(&out->modified_on, row, n->modified_on) != 0 ||
        get_time(&out->consent_at, row, n->consent_at) != 0 ||
        get_time(&out->paused_until, row, n->paused_until) != 0) {
        *why = "malformed date";
        return -1;
    }
    out->raw_phone = get_string(row, n->phone);
    out->active = get_active(row, &n->state);
    out->source = get_string(row, n->source);
    out->topics = get_string(row, n->topics);
    out->version = mapping_etag_version(get_string(row, "@odata.etag"));
    return 0;
}

/* ---- change → body ----------------------------------------------------------
 */

static void add_time(cJSON *body, const char *column, int64_t ms)
{
    char buf[32];

    if (!column)
        return;
    if (ms == 0) {
        cJSON_AddNullToObject(body, column);
        return;
    }
    mapping_time_format(buf, ms);
    cJSON_AddStringToObject(body, column, buf);
}

static void add_create_fields(cJSON *body, const struct mapping *m,
                              const struct number_change *c)
{
    const struct mapping_number *n = &m->number;
    char *bind_key = mprintf("%s@odata.bind", n->configuration_navigation);
    char *bind =
        mprintf("/%s(%s)", m->configuration.entity_set, c->configuration_id);

    cJSON_AddStringToObject(body, n->name, c->name ? c->name : c->phone);
    cJSON_AddStringToObject(body, n->phone, c->phone);
    cJSON_AddStringToObject(body, bind_key, bind);
    free(bind_key);
    free(bind);
}

char *mapping_number_body(const struct mapping *m,
                          const struct number_change *c)
{
    const struct mapping_number *n = &m->number;
    cJSON *body;
    char *out;

    if (c->status == CONSENT_NONE || (unsigned)c->status >= 4)
        return NULL;
    if (c->create && (!c->configuration_id || !c->phone ||
                      mapping_guid_normalize((char[MAPPING_GUID_LEN + 1]){ 0 },
                                             c->configuration_id) != 0))
        return NULL;
    body = cJSON_CreateObject();
    if (c->create)
        add_create_fields(body, m, c);
    cJSON_AddNumberToObject(body, n->status,
                            (double)n->status_values[c->status]);
    if (c->consent_at)
        add_time(body, n->consent_at, c->consent_at);
    if (c->source && n->source)
        cJSON_AddStringToObject(body, n->source, c->source);
    if (c->topics && n->topics)
        cJSON_AddStringToObject(body, n->topics, c->topics);
    if (c->set_paused_until)
        add_time(body, n->paused_until, c->paused_until);
    out = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (!out)
        abort();
    return out;
}
