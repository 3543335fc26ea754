/*
 * config — the INI configuration: one table of keys (config_table.c), one
 * loader, one place where every value is validated.
 *
 * Pipeline position: read once at start-up by main; every other module
 * receives the typed `struct optsync_config` (borrowed) and never looks at
 * the file.  Secrets live only in this struct, are wiped on free and are
 * never printed (config_print redacts by the table's `sensitive` flag).
 *
 * Value forms: every secret key K may also be given as K_env (name of an
 * environment variable) or K_file (path; one trailing newline stripped).
 * Relative paths are relative to the directory of the config file.
 * Durations are seconds or carry a unit (30s, 5m, 2h, 7d); sizes take
 * KiB/MiB/GiB.  Lists are comma-separated.
 */
#ifndef OPTSYNC_CONFIG_H
#define OPTSYNC_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct config_list {
    char **items; /* owned */
    size_t count;
};

struct optsync_config {
    char *file; /* the file loaded (owned) */
    char *dir;  /* its directory: base of relative paths (owned) */
    struct {
        char *url;         /* no trailing slash */
        char *api_version; /* "9.2" */
        int64_t page_size;
        int64_t timeout;         /* seconds, whole request */
        int64_t connect_timeout; /* seconds */
        char *ca_file;           /* NULL: system store */
    } dataverse;
    struct {
        char *authority; /* no trailing slash */
        char *tenant_id;
        char *client_id;
        char *client_secret; /* sensitive */
        char *certificate;   /* PEM text of the public certificate */
        char *private_key;   /* sensitive, PEM text */
        char *scope;         /* default {dataverse.url}/.default */
    } auth;
    struct {
        char *file;
    } mapping;
    struct {
        char *path;
    } cache;
    struct {
        int64_t interval;      /* seconds */
        int64_t max_staleness; /* seconds */
    } sync;
    struct {
        char *address;
        int64_t port;
        char *api_key; /* sensitive */
        int64_t max_body;
        int64_t max_bulk;
        char *tls_cert;          /* PEM chain; NULL: plain HTTP */
        char *tls_key;           /* PEM private key file */
        int64_t threads;         /* worker event loops; 0: one per CPU */
        int64_t max_connections; /* admitted at once */
        int64_t idle_timeout;    /* seconds */
    } listener;
    struct {
        char *app_secret;    /* sensitive */
        char *verify_token;  /* sensitive */
        char *auth;          /* signature | header */
        char *header_name;   /* auth = header: the header to check */
        char *header_value;  /* sensitive; auth = header */
        char *send;          /* off | cloud | 360dialog (consent messages) */
        char *graph_url;     /* Cloud API base */
        char *graph_version; /* "v21.0" */
        char *access_token;  /* sensitive; send = cloud */
        char *d360_url;      /* 360dialog base */
        char *d360_api_key;  /* sensitive; send = 360dialog */
        int64_t max_rate;    /* messages per second per phone number */
    } whatsapp;
    struct {
        char *double_opt_in_template;        /* NAME:LANG */
        char *opt_in_confirmation_template;  /* NAME:LANG */
        char *opt_out_confirmation_template; /* NAME:LANG */
        char *opt_in_confirmation_text;      /* {business} = its name */
        char *opt_out_confirmation_text;
    } messages;
    struct {
        char *auth; /* header | webhookkey | querystring */
        char *header_name;
        char *query_name;
        char *key; /* sensitive */
    } dataverse_webhook;
    struct {
        char *default_region; /* ISO code or calling code, as given */
        int64_t double_opt_in_window;
        struct config_list opt_in_keywords;
        struct config_list opt_out_keywords;
        int keywords_builtin;
        struct config_list opt_in_payloads;
        struct config_list opt_out_payloads;
        struct config_list confirm_payloads;
    } consent;
    struct {
        int64_t frequency_cap;       /* sends per number per period; 0 off */
        int64_t topic_frequency_cap; /* sends per topic per period; 0 off */
        int64_t frequency_period;    /* seconds */
    } gate;
    struct {
        int64_t batch_size;
        int64_t max_attempts;
        int64_t max_backoff; /* seconds */
        int64_t keep_done;   /* seconds (retention.h) */
    } outbox;
    struct {
        char *level;
        char *debug;
        char *file; /* serve's log file; NULL: stderr */
    } log;
};

/* ---- the key table ------------------------------------------------------ */

enum config_type {
    CONFIG_STRING,
    CONFIG_URL,  /* http(s) URL, stored without a trailing slash */
    CONFIG_PATH, /* relative to the config file's directory */
    CONFIG_INT,
    CONFIG_BOOL,
    CONFIG_DURATION, /* seconds */
    CONFIG_SIZE,     /* bytes */
    CONFIG_ENUM,
    CONFIG_LIST,
    CONFIG_REGION, /* ISO 3166 code or calling code */
};

#define CONFIG_SENSITIVE 0x1u /* secret: redacted; K, K_env or K_file */
#define CONFIG_FROM_FILE 0x2u /* may be given as K_file (and K_env) */

/*
 * Which part of optsync reads a secret (or a K_file key).  A command loads
 * only the secrets of the parts it runs (struct cli_command.secrets): an
 * environment variable or file that cannot be read is an error for those,
 * and ignored for the rest, so `optsync status` runs in a shell that has
 * none of the daemon's secrets.  A secret that names no part is read by
 * the whole daemon only (CONFIG_NEEDS_ALL).
 */
#define CONFIG_FOR_DATAVERSE 0x4u /* the Dataverse client: sync, outbox */
#define CONFIG_FOR_LISTENER 0x8u  /* the HTTP listener: webhooks, gate API */
#define CONFIG_FOR_SENDER 0x10u   /* the WhatsApp sender (consent messages) */
#define CONFIG_NEEDS_NONE 0u
#define CONFIG_NEEDS_ALL                                                       \
    (CONFIG_FOR_DATAVERSE | CONFIG_FOR_LISTENER | CONFIG_FOR_SENDER)

struct config_key {
    const char *section;
    const char *name;
    enum config_type type;
    const char *default_value; /* text form, as in the file; NULL: unset */
    int64_t min, max;          /* INT, DURATION, SIZE */
    const char *choices;       /* ENUM: "a|b|c" */
    unsigned flags;
    size_t offset; /* into struct optsync_config */
    const char *help;
};

extern const struct config_key config_table[];
extern const size_t config_table_count;

const struct config_key *config_key_find(const char *section, const char *name);

/* True when a command reading the parts in `needs` (CONFIG_FOR_* bits)
 * must be able to read key `k`; always true for keys that are no secret
 * and no K_file key. */
int config_key_needed(const struct config_key *k, unsigned needs);

/* "the Dataverse client", ... : the part that reads `k` (for messages). */
const char *config_key_reader(const struct config_key *k);

/* ---- loading --------------------------------------------------------------
 */

struct config_problem {
    int is_error;  /* 0: a warning */
    char *file;    /* owned; NULL when not from a file */
    int line;      /* 0 when unknown */
    char *section; /* owned; may be NULL */
    char *key;     /* owned; may be NULL */
    char *message; /* owned */
};

struct config_diag {
    struct config_problem *items; /* owned */
    size_t count;
    size_t errors;
};

/* "-o section.key=value" from the command line, applied after the file. */
struct config_override {
    const char *section;
    const char *key;
    const char *value;
};

/*
 * Loads and validates `path`.  Every problem (errors and warnings) is
 * appended to `diag`, which the caller disposes.  Returns 0 and sets *out
 * (free with config_free) when there are no errors; otherwise
 * ERR_BADINPUT (or ERR_NOTFOUND when the file cannot be read) and *out is
 * untouched.
 */
int config_load(struct optsync_config **out, const char *path,
                const struct config_override *overrides, size_t n_overrides,
                struct config_diag *diag);

/*
 * The same for a command that runs only the parts in `needs` (CONFIG_FOR_*;
 * config_load reads everything: CONFIG_NEEDS_ALL).  Secrets of other parts
 * are read when they can be, and left unset without a problem when not.
 */
int config_load_for(struct optsync_config **out, const char *path,
                    const struct config_override *overrides, size_t n_overrides,
                    unsigned needs, struct config_diag *diag);

/* Same from a string; `name` is used in messages and `dir` for paths. */
int config_load_string(struct optsync_config **out, const char *text,
                       const char *name, const char *dir,
                       const struct config_override *overrides,
                       size_t n_overrides, struct config_diag *diag);
int config_load_string_for(struct optsync_config **out, const char *text,
                           const char *name, const char *dir,
                           const struct config_override *overrides,
                           size_t n_overrides, unsigned needs,
                           struct config_diag *diag);

/* Frees the config, wiping secrets.  NULL is a no-op. */
void config_free(struct optsync_config *cfg);

/* "file:line: [section] key: message" for one problem (owned string). */
char *config_problem_format(const struct config_problem *p);
void config_diag_print(FILE *fp, const struct config_diag *diag);
void config_diag_dispose(struct config_diag *diag);

/* Parses "section.key=value" (pointers into `arg`, which is modified). */
int config_override_parse(struct config_override *out, char *arg);

/* Prints the effective configuration as INI; secrets are redacted. */
void config_print(FILE *fp, const struct optsync_config *cfg);

/* True when the URL's host is a loopback address (127.0.0.0/8, ::1,
 * localhost). */
int config_url_is_loopback(const char *url);

#endif
