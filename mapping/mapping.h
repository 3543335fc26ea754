/*
 * mapping — Dataverse schema names in, records out; records in, JSON
 * bodies out.  The only place that knows which column means what.
 *
 * Pipeline position: between the sources (poller, Dataverse webhook) and
 * the consent engine, and between the outbox and the Dataverse client.
 * It must never do I/O, touch SQLite or curl, or log: it is pure
 * translation, so it depends on nothing but cJSON (and libc).  Every
 * schema name comes from the mapping JSON file (mapping/NAME.json); no C
 * file hard-codes one.
 *
 * Mapping file keys (optional ones may be absent):
 *   configuration: entity_set, logical_name, id, name, double_opt_in;
 *                  optional phone_number_id, waba_id, default_region,
 *                  state {attribute, active_value}, double_opt_in_template,
 *                  opt_in_confirmation_template,
 *                  opt_out_confirmation_template (NAME:LANG text columns
 *                  overriding [messages] for that Configuration)
 *   number:        entity_set, logical_name, id, name,
 *                  configuration_lookup, configuration_navigation,
 *                  relationship, phone, status,
 *                  status_values {single_opt_in, double_opt_in, opted_out},
 *                  modified_on; optional state, consent_at, source,
 *                  alternate_key [attributes], topics, paused_until
 */
#ifndef OPTSYNC_MAPPING_H
#define OPTSYNC_MAPPING_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* The consent states (docs/design.md); `none` means no active record. */
enum consent_status {
    CONSENT_NONE = 0,
    CONSENT_SINGLE_OPT_IN,
    CONSENT_DOUBLE_OPT_IN,
    CONSENT_OPTED_OUT,
};
#define CONSENT_STATUS_COUNT 4

/* "none", "single_opt_in", "double_opt_in", "opted_out". */
const char *consent_status_name(enum consent_status s);
/* The reverse; -1 when `name` is none of them. */
int consent_status_parse(enum consent_status *out, const char *name);

struct mapping_state {
    char *attribute;      /* owned; NULL when not mapped */
    int64_t active_value; /* statecode of an active row, usually 0 */
};

struct mapping_configuration {
    char *entity_set;      /* "inogic_configurations" */
    char *logical_name;    /* "inogic_configuration" */
    char *id;              /* primary key column */
    char *name;            /* primary name column */
    char *double_opt_in;   /* Yes/No column */
    char *phone_number_id; /* optional: Meta phone_number_id */
    char *waba_id;         /* optional: WhatsApp Business Account id */
    char *default_region;  /* optional */
    /* optional: the Configuration's own consent message templates */
    char *double_opt_in_template;
    char *opt_in_confirmation_template;
    char *opt_out_confirmation_template;
    struct mapping_state state;
    char *select; /* derived: $select list of the mapped columns */
};

struct mapping_number {
    char *entity_set;
    char *logical_name;
    char *id;
    char *name;                     /* primary name, filled on create */
    char *configuration_lookup;     /* lookup logical name */
    char *configuration_value;      /* derived: "_<lookup>_value" */
    char *configuration_navigation; /* for <nav>@odata.bind */
    char *relationship;             /* collection nav on configuration */
    char *phone;
    char *status;
    int64_t status_values[CONSENT_STATUS_COUNT]; /* [CONSENT_NONE] unused */
    char *modified_on;
    struct mapping_state state;
    char *consent_at;     /* optional */
    char *source;         /* optional */
    char **alternate_key; /* optional; owned array of owned names */
    size_t alternate_key_count;
    char *topics;       /* optional */
    char *paused_until; /* optional */
    char *select;       /* derived: $select list of the mapped columns */
};

struct mapping {
    struct mapping_configuration configuration;
    struct mapping_number number;
};

/* Problems found while loading, each "$.json.path: what is wrong". */
struct mapping_problems {
    char **items; /* owned */
    size_t count;
};

/*
 * Parses and validates a mapping file's text.  Every problem is added to
 * `problems` (the caller disposes it).  Returns 0 and sets *out (free with
 * mapping_free), or -1 when there was any problem.
 */
int mapping_load(struct mapping **out, const char *json, size_t len,
                 struct mapping_problems *problems);
void mapping_free(struct mapping *m);
void mapping_problems_dispose(struct mapping_problems *p);

/* ---- Dataverse row → record ----------------------------------------- */

#define MAPPING_GUID_LEN 36

/*
 * Fields borrowed from the cJSON row stay valid as long as the row does.
 * Times are milliseconds since the epoch; 0 means absent.
 */
struct configuration_record {
    char id[MAPPING_GUID_LEN + 1];
    const char *name; /* borrowed; "" when empty */
    int double_opt_in;
    const char *phone_number_id; /* borrowed; NULL when absent */
    const char *waba_id;         /* borrowed; NULL when absent */
    const char *default_region;  /* borrowed; NULL when absent */
    /* NAME:LANG overriding [messages] (borrowed; NULL when absent) */
    const char *double_opt_in_template;
    const char *opt_in_confirmation_template;
    const char *opt_out_confirmation_template;
    int active;
    int64_t modified_on;
    int64_t version; /* from @odata.etag W/"<n>"; 0 when absent */
};

struct number_record {
    char id[MAPPING_GUID_LEN + 1];
    char configuration_id[MAPPING_GUID_LEN + 1]; /* "" when no lookup */
    const char *raw_phone;                       /* borrowed; NULL when empty */
    enum consent_status status; /* CONSENT_NONE when the column is empty */
    int active;
    int64_t modified_on;
    int64_t consent_at;
    const char *source; /* borrowed; NULL when absent */
    const char *topics; /* borrowed; NULL when absent */
    int64_t paused_until;
    int64_t version;
};

/*
 * Row (one JSON object of a Web API answer) → record.
 * Returns 0, or -1 with *why set to a static phrase when the row cannot
 * be used (no or malformed id, a status value the mapping does not know,
 * a malformed date).
 */
int mapping_configuration_from_row(struct configuration_record *out,
                                   const struct mapping *m, const cJSON *row,
                                   const char **why);
int mapping_number_from_row(struct number_record *out, const struct mapping *m,
                            const cJSON *row, const char **why);

/* ---- change → JSON body ------------------------------------------------- */

struct number_change {
    int create;                   /* POST/upsert-create: bind + name + phone */
    const char *configuration_id; /* required when create */
    const char *phone;            /* E.164, written on create */
    const char *name;             /* primary name on create; NULL: phone */
    enum consent_status status;
    int64_t consent_at;   /* 0: not written */
    const char *source;   /* NULL: not written */
    const char *topics;   /* NULL: not written ("" clears) */
    int set_paused_until; /* write paused_until (0 clears it) */
    int64_t paused_until;
};

/*
 * JSON body of a create or update (a malloc'd string), with the lookup as
 * "<navigation>@odata.bind": "/<configuration set>(<id>)".  Optional
 * columns the mapping does not name are left out.  Returns NULL when the
 * change is invalid (create without configuration id or phone, status
 * none).
 */
char *mapping_number_body(const struct mapping *m,
                          const struct number_change *c);

/* ---- small pure helpers ---------------------------------------------------
 */

/* ISO 8601 ("2025-01-28T15:19:30Z", fraction and ±hh:mm allowed) → ms. */
int mapping_time_parse(int64_t *out, const char *iso);
/* ms → "2025-01-28T15:19:30Z" (".123" added when ms is not whole). */
void mapping_time_format(char out[32], int64_t ms);
/* GUID in any common form (braces, upper case) → lower case, 36 chars. */
int mapping_guid_normalize(char out[MAPPING_GUID_LEN + 1], const char *in);
/* W/"123" → 123; 0 when not of that form. */
int64_t mapping_etag_version(const char *etag);

#endif
