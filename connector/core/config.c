/*
 * config — loading and validating the INI file against config_table.
 *
 * Three passes, each simple:
 *   1. collect: inih calls handler() for every key; we only record the raw
 *      text, how it was given (inline, _env, _file) and its line.
 *   2. resolve: each table key turns its raw text (or default) into a typed
 *      value in struct optsync_config, checking type and bounds.
 *   3. cross-check: rules that involve several keys (credentials, https,
 *      scope default, staleness vs interval).
 * Every problem is recorded with file, line, section and key, so one run
 * of check-config shows them all.
 */
#include "config.h"

#include <ctype.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "caps.h"
#include "err.h"
#include "fileio.h"
#include "log.h"
#include "phone_shim.h"
#include "units.h"
#include "xalloc.h"

enum how_given { GIVEN_DEFAULT = 0, GIVEN_INLINE, GIVEN_ENV, GIVEN_FILE };

struct raw_value {
    char *text; /* owned: value, variable name or path */
    enum how_given how;
    int line;          /* 0: default or command line */
    int from_override; /* given with -o */
};

/* Origins kept with the loaded config, for config_print(). */
struct config_origin {
    enum how_given how;
    char *detail; /* owned: env variable name or file path */
};

struct load_ctx {
    const char *name; /* file name for messages */
    unsigned needs;   /* CONFIG_FOR_* parts the command runs */
    const char *dir;
    struct config_diag *diag;
    struct raw_value *raw; /* one per table key */
    /* reader state */
    const char *text;
    size_t pos, len;
    int line;
    int section_line; /* line of the last [section] header */
    char last_bad_section[64];
};

/* The loaded config owns its origins; kept outside the public struct. */
struct config_box {
    struct optsync_config cfg; /* first: a config pointer is a box pointer */
    struct config_origin *origins;
};

/* ---- problems --------------------------------------------------------- */

static void add_problem(struct config_diag *diag, int is_error,
                        const char *file, int line, const char *section,
                        const char *key, const char *fmt, ...)
    ATTR_PRINTFLIKE(7, 8);

static void add_problem(struct config_diag *diag, int is_error,
                        const char *file, int line, const char *section,
                        const char *key, const char *fmt, ...)
{
    struct config_problem *p;
    va_list ap;

    diag->items =
        xrealloc(diag->items, (diag->count + 1) * sizeof(*diag->items));
    p = &diag->items[diag->count++];
    p->is_error = is_error;
    p->file = file ? xstrdup(file) : NULL;
    p->line = line;
    p->section = section ? xstrdup(section) : NULL;
    p->key = key ? xstrdup(key) : NULL;
    va_start(ap, fmt);
    p->message = xvasprintf(fmt, ap);
    va_end(ap);
    if (is_error)
        diag->errors++;
}

char *config_problem_format(const struct config_problem *p)
{
    struct strbuf sb;

    strbuf_init(&sb, SIZE_MAX / 2);
    if (p->file && p->line)
        strbuf_addf(&sb, "%s:%d: ", p->file, p->line);
    else if (p->file)
        strbuf_addf(&sb, "%s: ", p->file);
    strbuf_adds(&sb, p->is_error ? "error: " : "warning: ");
    if (p->section)
        strbuf_addf(&sb, "[%s] ", p->section);
    if (p->key)
        strbuf_addf(&sb, "%s: ", p->key);
    strbuf_adds(&sb, p->message);
    return strbuf_detach(&sb);
}

void config_diag_print(FILE *fp, const struct config_diag *diag)
{
    size_t i;

    for (i = 0; i < diag->count; i++) {
        char *line = config_problem_format(&diag->items[i]);

        fprintf(fp, "%s\n", line);
        free(line);
    }
}

void config_diag_dispose(struct config_diag *diag)
{
    size_t i;

    for (i = 0; i < diag->count; i++) {
        free(diag->items[i].file);
        free(diag->items[i].section);
        free(diag->items[i].key);
        free(diag->items[i].message);
    }
    free(diag->items);
    diag->items = NULL;
    diag->count = diag->errors = 0;
}

/* ---- pass 1: collect ------------------------------------------------------
 */

const struct config_key *config_key_find(const char *section, const char *name)
{
    size_t i;

    for (i = 0; i < config_table_count; i++)
        if (strcmp(config_table[i].section, section) == 0 &&
            strcmp(config_table[i].name, name) == 0)
            return &config_table[i];
    return NULL;
}

int config_key_needed(const struct config_key *k, unsigned needs)
{
    unsigned parts = k->flags & CONFIG_NEEDS_ALL;

    if (!(k->flags & (CONFIG_SENSITIVE | CONFIG_FROM_FILE)))
        return 1;
    return parts ? (parts & needs) != 0 : needs == CONFIG_NEEDS_ALL;
}

const char *config_key_reader(const struct config_key *k)
{
    if (k->flags & CONFIG_FOR_DATAVERSE)
        return "the Dataverse client (sync, outbox, serve)";
    if (k->flags & CONFIG_FOR_LISTENER)
        return "the HTTP listener (listen, serve)";
    if (k->flags & CONFIG_FOR_SENDER)
        return "the WhatsApp sender (outbox flush, serve)";
    return "the daemon (serve)";
}

static int section_known(const char *section)
{
    size_t i;

    for (i = 0; i < config_table_count; i++)
        if (strcmp(config_table[i].section, section) == 0)
            return 1;
    return 0;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n > m && strcmp(s + n - m, suffix) == 0;
}

/*
 * Finds the table key that `name` sets, and how: "client_secret_env" sets
 * client_secret from the environment.  Returns the index or -1.
 */
static int key_lookup(const char *section, const char *name,
                      enum how_given *how)
{
    static const struct {
        const char *suffix;
        enum how_given how;
    } forms[] = { { "_env", GIVEN_ENV }, { "_file", GIVEN_FILE } };
    const struct config_key *k = config_key_find(section, name);
    char base[CAP_SCHEMA_NAME_BYTES];
    size_t i;

    if (k) {
        *how = GIVEN_INLINE;
        return (int)(k - config_table);
    }
    for (i = 0; i < 2; i++) {
        if (!has_suffix(name, forms[i].suffix) || strlen(name) >= sizeof(base))
            continue;
        snprintf(base, sizeof(base), "%.*s",
                 (int)(strlen(name) - strlen(forms[i].suffix)), name);
        k = config_key_find(section, base);
        if (k && (k->flags & (CONFIG_SENSITIVE | CONFIG_FROM_FILE))) {
            *how = forms[i].how;
            return (int)(k - config_table);
        }
    }
    return -1;
}

static char *known_keys(const char *section)
{
    struct strbuf sb;
    size_t i;

    strbuf_init(&sb, SIZE_MAX / 2);
    for (i = 0; i < config_table_count; i++) {
        const struct config_key *k = &config_table[i];

        if (strcmp(k->section, section) != 0)
            continue;
        strbuf_addf(&sb, "%s%s", sb.len ? ", " : "", k->name);
        if (k->flags & (CONFIG_SENSITIVE | CONFIG_FROM_FILE))
            strbuf_addf(&sb, " (or %s_env, %s_file)", k->name, k->name);
    }
    return strbuf_detach(&sb);
}

static void report_unknown(struct load_ctx *ctx, const char *section,
                           const char *name)
{
    char *keys;

    if (!section_known(section)) {
        /* Once per unknown section, not once per key in it. */
        if (strcmp(ctx->last_bad_section, section) == 0)
            return;
        snprintf(ctx->last_bad_section, sizeof(ctx->last_bad_section), "%s",
                 section);
        add_problem(ctx->diag, 1, ctx->name, ctx->section_line, section, NULL,
                    "unknown section (known: dataverse, auth, mapping, "
                    "cache, sync, listener, whatsapp, dataverse_webhook, "
                    "consent, gate, outbox, log)");
        return;
    }
    keys = known_keys(section);
    add_problem(ctx->diag, 1, ctx->name, ctx->line, section, name,
                "unknown key (known keys: %s)", keys);
    free(keys);
}

static void record(struct load_ctx *ctx, int idx, enum how_given how,
                   const char *value, int line, int from_override)
{
    struct raw_value *rv = &ctx->raw[idx];
    const struct config_key *k = &config_table[idx];

    if (rv->how != GIVEN_DEFAULT && !from_override) {
        add_problem(ctx->diag, 1, ctx->name, line, k->section, k->name,
                    "given more than once (first at line %d; an indented "
                    "line continues the key above it)",
                    rv->line);
        return;
    }
    if (k->flags & CONFIG_SENSITIVE)
        xfree_secret(rv->text);
    else
        free(rv->text);
    rv->text = xstrdup(value);
    rv->how = how;
    rv->line = line;
    rv->from_override = from_override;
}

static int handler(void *user, const char *section, const char *name,
                   const char *value)
{
    struct load_ctx *ctx = user;
    enum how_given how;
    int idx;

    if (!*section) {
        add_problem(ctx->diag, 1, ctx->name, ctx->line, NULL, name,
                    "key outside of any [section]");
        return 1;
    }
    idx = key_lookup(section, name, &how);
    if (idx < 0) {
        report_unknown(ctx, section, name);
        return 1;
    }
    if (strlen(value) >= CAP_CONFIG_VALUE_BYTES) {
        add_problem(ctx->diag, 1, ctx->name, ctx->line, section, name,
                    "value longer than %d bytes", CAP_CONFIG_VALUE_BYTES - 1);
        return 1;
    }
    record(ctx, idx, how, value, ctx->line, 0);
    return 1;
}

/*
 * inih reader over our in-memory copy.  Counting lines here gives the
 * handler its line number (the distro's inih is built without
 * INI_HANDLER_LINENO), and lets us reject lines inih would silently cut.
 */
static char *reader(char *str, int num, void *stream)
{
    struct load_ctx *ctx = stream;
    size_t start = ctx->pos, end, n;

    if (ctx->pos >= ctx->len)
        return NULL;
    end = start;
    while (end < ctx->len && ctx->text[end] != '\n')
        end++;
    ctx->line++;
    n = end - start;
    ctx->pos = end < ctx->len ? end + 1 : end;
    if (n >= (size_t)num - 1) {
        add_problem(ctx->diag, 1, ctx->name, ctx->line, NULL, NULL,
                    "line longer than %d characters (use K_file for long "
                    "values)",
                    num - 2);
        n = 0; /* hand inih an empty line instead */
    }
    memcpy(str, ctx->text + start, n);
    str[n] = '\0';
    if (str[strspn(str, " \t")] == '[')
        ctx->section_line = ctx->line;
    str[n] = '\n';
    str[n + 1] = '\0';
    return str;
}

static void collect(struct load_ctx *ctx, const char *text)
{
    int rc;

    ctx->text = text;
    ctx->len = strlen(text);
    ctx->pos = 0;
    ctx->line = 0;
    rc = ini_parse_stream(reader, ctx, handler, ctx);
    if (rc > 0)
        add_problem(ctx->diag, 1, ctx->name, rc, NULL, NULL,
                    "syntax error (expected [section], key = value, or a "
                    "comment starting with ; or #)");
}

static void apply_overrides(struct load_ctx *ctx,
                            const struct config_override *ov, size_t n)
{
    enum how_given how;
    size_t i;
    int idx;

    for (i = 0; i < n; i++) {
        idx = key_lookup(ov[i].section, ov[i].key, &how);
        if (idx < 0) {
            add_problem(ctx->diag, 1, "command line (-o)", 0, ov[i].section,
                        ov[i].key, "unknown key");
            continue;
        }
        record(ctx, idx, how, ov[i].value, 0, 1);
    }
}

/* ---- pass 2: resolve --------------------------------------------------- */

static void *field(struct optsync_config *cfg, const struct config_key *k)
{
    return (char *)cfg + k->offset;
}

/* Problem attached to a key at the line it was given on. */
#define KEY_PROBLEM(ctx, idx, is_error, ...)                                   \
    add_problem((ctx)->diag, is_error,                                         \
                (ctx)->raw[idx].from_override ? "command line (-o)"            \
                                              : (ctx)->name,                   \
                (ctx)->raw[idx].line, config_table[idx].section,               \
                config_table[idx].name, __VA_ARGS__)

static void warn_if_readable(struct load_ctx *ctx, int idx, const char *path)
{
    struct stat st;

    if (!(config_table[idx].flags & CONFIG_SENSITIVE))
        return;
    if (stat(path, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)))
        KEY_PROBLEM(ctx, idx, 0,
                    "secret file %s is readable by group or others "
                    "(chmod 600 it)",
                    path);
}

/* Relative paths from the file hang off its directory; paths typed on
 * the command line (-o) off the current directory, as a shell user
 * expects. */
static const char *base_dir(const struct load_ctx *ctx, int idx)
{
    return ctx->raw[idx].from_override ? "." : ctx->dir;
}

/*
 * Turns an _env / _file reference into the value text (owned).  A secret
 * of a part the command does not run may be unreadable: that is no
 * problem, the key stays unset.
 */
static char *dereference(struct load_ctx *ctx, int idx)
{
    const struct config_key *k = &config_table[idx];
    struct raw_value *rv = &ctx->raw[idx];
    int needed = config_key_needed(k, ctx->needs);
    const char *env;
    char *path, *data = NULL;
    size_t len = 0;

    if (rv->how == GIVEN_ENV) {
        env = getenv(rv->text);
        if (!env || !*env) {
            if (needed)
                KEY_PROBLEM(ctx, idx, 1,
                            "environment variable %s is not set (named by "
                            "%s_env; read by %s)",
                            rv->text, k->name, config_key_reader(k));
            return NULL;
        }
        return xstrdup(env);
    }
    path = fileio_path_resolve(base_dir(ctx, idx), rv->text);
    if (fileio_read(&data, &len, path, CAP_SECRET_FILE_BYTES) != 0) {
        if (needed)
            KEY_PROBLEM(ctx, idx, 1, "%s (read by %s)", err_message(),
                        config_key_reader(k));
        free(path);
        return NULL;
    }
    warn_if_readable(ctx, idx, path);
    free(path);
    /* Exactly one trailing newline is part of the file, not the value. */
    if (len && data[len - 1] == '\n')
        data[--len] = '\0';
    if (len && data[len - 1] == '\r')
        data[--len] = '\0';
    return data;
}

static int parse_bounded(struct load_ctx *ctx, int idx, const char *text,
                         int64_t *out)
{
    const struct config_key *k = &config_table[idx];
    char lo[32], hi[32];
    int rc;

    switch (k->type) {
    case CONFIG_DURATION:
        rc = units_duration_parse(out, text);
        units_duration_format(lo, sizeof(lo), k->min);
        units_duration_format(hi, sizeof(hi), k->max);
        break;
    case CONFIG_SIZE:
        rc = units_size_parse(out, text);
        units_size_format(lo, sizeof(lo), k->min);
        units_size_format(hi, sizeof(hi), k->max);
        break;
    default:
        rc = units_int_parse(out, text);
        snprintf(lo, sizeof(lo), "%lld", (long long)k->min);
        snprintf(hi, sizeof(hi), "%lld", (long long)k->max);
        break;
    }
    if (rc == 0 && *out >= k->min && *out <= k->max)
        return 0;
    KEY_PROBLEM(ctx, idx, 1, "expected %s from %s to %s%s, got \"%s\"",
                k->type == CONFIG_DURATION ? "a duration"
                : k->type == CONFIG_SIZE   ? "a size"
                                           : "an integer",
                lo, hi,
                k->type == CONFIG_DURATION ? " (e.g. 30s, 5m, 2h, 7d)"
                : k->type == CONFIG_SIZE   ? " (e.g. 512KiB, 4MiB)"
                                           : "",
                text);
    return ERR_BADINPUT;
}

static int enum_has(const char *choices, const char *value)
{
    size_t n = strlen(value);
    const char *p = choices;

    while (p && *p) {
        size_t len = strcspn(p, "|");

        if (len == n && strncmp(p, value, n) == 0)
            return 1;
        p += len;
        if (*p == '|')
            p++;
    }
    return 0;
}

static void list_parse(struct config_list *out, const char *text)
{
    const char *p = text;

    while (*p) {
        size_t len = strcspn(p, ","), a = 0, b = len;

        while (a < b && isspace((unsigned char)p[a]))
            a++;
        while (b > a && isspace((unsigned char)p[b - 1]))
            b--;
        if (b > a) {
            out->items =
                xrealloc(out->items, (out->count + 1) * sizeof(*out->items));
            out->items[out->count++] = xstrndup(p + a, b - a);
        }
        p += len;
        if (*p == ',')
            p++;
    }
}

/* "DE", "de", "49", "+49" → normalized text ("DE" or "+49"), or NULL. */
static char *region_normalize(const char *text)
{
    char region[3];
    int64_t code;

    if (strlen(text) == 2 && isalpha((unsigned char)text[0]) &&
        isalpha((unsigned char)text[1])) {
        region[0] = (char)toupper((unsigned char)text[0]);
        region[1] = (char)toupper((unsigned char)text[1]);
        region[2] = '\0';
        if (phone_shim_calling_code_for_region(region) == 0)
            return NULL;
        return xstrdup(region);
    }
    if (units_int_parse(&code, text[0] == '+' ? text + 1 : text) != 0 ||
        code < 1 || code > 999 || text[text[0] == '+'] == '-')
        return NULL;
    if (phone_shim_region_for_calling_code(region, (int)code) != 0)
        return NULL;
    return xasprintf("+%d", (int)code);
}

static int url_check(const char *text)
{
    const char *host;

    if (strncmp(text, "https://", 8) == 0)
        host = text + 8;
    else if (strncmp(text, "http://", 7) == 0)
        host = text + 7;
    else
        return ERR_BADINPUT;
    if (!*host || *host == '/' || *host == ':' || strpbrk(text, " \t?#"))
        return ERR_BADINPUT;
    return 0;
}

/* Stores `text` (consumed) into the key's field with its type. */
static void store_typed(struct load_ctx *ctx, struct optsync_config *cfg,
                        int idx, char *text)
{
    const struct config_key *k = &config_table[idx];
    void *f = field(cfg, k);
    char *norm;
    size_t n;

    switch (k->type) {
    case CONFIG_STRING: *(char **)f = text; return;
    case CONFIG_URL:
        if (url_check(text) != 0) {
            KEY_PROBLEM(ctx, idx, 1,
                        "expected an http(s) URL like "
                        "https://contoso.crm4.dynamics.com, got \"%s\"",
                        text);
            break;
        }
        n = strlen(text);
        while (n > 0 && text[n - 1] == '/')
            text[--n] = '\0';
        *(char **)f = text;
        return;
    case CONFIG_PATH:
        *(char **)f = fileio_path_resolve(base_dir(ctx, idx), text);
        break;
    case CONFIG_INT:
    case CONFIG_DURATION:
    case CONFIG_SIZE: parse_bounded(ctx, idx, text, (int64_t *)f); break;
    case CONFIG_BOOL:
        if (units_bool_parse((int *)f, text) != 0)
            KEY_PROBLEM(ctx, idx, 1, "expected true or false, got \"%s\"",
                        text);
        break;
    case CONFIG_ENUM:
        if (enum_has(k->choices, text)) {
            *(char **)f = text;
            return;
        }
        KEY_PROBLEM(ctx, idx, 1, "expected one of %s, got \"%s\"", k->choices,
                    text);
        break;
    case CONFIG_LIST: list_parse((struct config_list *)f, text); break;
    case CONFIG_REGION:
        norm = region_normalize(text);
        if (!norm)
            KEY_PROBLEM(ctx, idx, 1,
                        "expected an ISO country code (DE) or a calling "
                        "code (49, +49), got \"%s\"",
                        text);
        *(char **)f = norm;
        break;
    }
    free(text);
}

static void resolve_key(struct load_ctx *ctx, struct optsync_config *cfg,
                        struct config_origin *origin, int idx)
{
    const struct config_key *k = &config_table[idx];
    struct raw_value *rv = &ctx->raw[idx];
    char *text;

    origin->how = rv->how;
    if (rv->how == GIVEN_ENV || rv->how == GIVEN_FILE) {
        origin->detail = rv->how == GIVEN_FILE
                             ? fileio_path_resolve(base_dir(ctx, idx), rv->text)
                             : xstrdup(rv->text);
        text = dereference(ctx, idx);
    } else if (rv->how == GIVEN_INLINE) {
        text = xstrdup(rv->text);
    } else {
        text = k->default_value ? xstrdup(k->default_value) : NULL;
    }
    if (!text)
        return;
    if (!*text && k->type != CONFIG_LIST && k->type != CONFIG_STRING) {
        /* "key =" leaves a typed key unset rather than failing parse. */
        free(text);
        return;
    }
    store_typed(ctx, cfg, idx, text);
}

/* ---- pass 3: cross-checks --------------------------------------------- */

static int key_index(const char *section, const char *name)
{
    return (int)(config_key_find(section, name) - config_table);
}

static void check_required(struct load_ctx *ctx, const char *section,
                           const char *name, const char *value)
{
    if (!value || !*value)
        add_problem(ctx->diag, 1, ctx->name, 0, section, name,
                    "required, not set");
}

static void check_https(struct load_ctx *ctx, const char *section,
                        const char *name, const char *url)
{
    int idx = key_index(section, name);

    if (url && strncmp(url, "http://", 7) == 0 && !config_url_is_loopback(url))
        KEY_PROBLEM(ctx, idx, 1,
                    "must use https:// (plain http is allowed only for "
                    "loopback, e.g. the local emulator)");
}

static void check_credentials(struct load_ctx *ctx,
                              const struct optsync_config *cfg)
{
    int has_secret = cfg->auth.client_secret && *cfg->auth.client_secret;
    int has_cert = cfg->auth.certificate || cfg->auth.private_key;

    if (!has_secret && !has_cert)
        add_problem(ctx->diag, 1, ctx->name, 0, "auth", NULL,
                    "no credential: set client_secret (or client_secret_env "
                    "/ client_secret_file), or certificate_file and "
                    "private_key_file");
    else if (has_secret && has_cert)
        add_problem(ctx->diag, 1, ctx->name, 0, "auth", NULL,
                    "both a client secret and a certificate are set; "
                    "choose one");
    else if (has_cert && !(cfg->auth.certificate && cfg->auth.private_key))
        add_problem(ctx->diag, 1, ctx->name, 0, "auth", NULL,
                    "a certificate credential needs both certificate and "
                    "private_key");
}

/* Inline secrets are fine for the emulator; anywhere else, warn. */
static void check_inline_secrets(struct load_ctx *ctx,
                                 const struct optsync_config *cfg)
{
    size_t i;

    if (cfg->dataverse.url && config_url_is_loopback(cfg->dataverse.url))
        return;
    for (i = 0; i < config_table_count; i++)
        if ((config_table[i].flags & CONFIG_SENSITIVE) &&
            ctx->raw[i].how == GIVEN_INLINE)
            KEY_PROBLEM(ctx, (int)i, 0,
                        "secret written inline; use %s_env or %s_file "
                        "outside of tests",
                        config_table[i].name, config_table[i].name);
}

static void check_api_version(struct load_ctx *ctx, const char *v)
{
    int major = 0, minor = 0, end = 0;

    if (v && (sscanf(v, "%d.%d%n", &major, &minor, &end) != 2 ||
              v[end] != '\0' || major < 1))
        KEY_PROBLEM(ctx, key_index("dataverse", "api_version"), 1,
                    "expected a version like 9.2, got \"%s\"", v);
}

static void check_webhook(struct load_ctx *ctx,
                          const struct optsync_config *cfg)
{
    const char *auth = cfg->dataverse_webhook.auth;

    if (!auth)
        return;
    if (strcmp(auth, "header") == 0 && (!cfg->dataverse_webhook.header_name ||
                                        !*cfg->dataverse_webhook.header_name))
        KEY_PROBLEM(ctx, key_index("dataverse_webhook", "header_name"), 1,
                    "required when auth = header");
    if (strcmp(auth, "querystring") == 0 &&
        (!cfg->dataverse_webhook.query_name ||
         !*cfg->dataverse_webhook.query_name))
        KEY_PROBLEM(ctx, key_index("dataverse_webhook", "query_name"), 1,
                    "required when auth = querystring");
}

/* 360dialog signs nothing: auth = header needs the header to check. */
static void check_whatsapp(struct load_ctx *ctx,
                           const struct optsync_config *cfg)
{
    const char *name = cfg->whatsapp.header_name;

    if (!cfg->whatsapp.auth || strcmp(cfg->whatsapp.auth, "header") != 0)
        return;
    if (!name || !*name)
        KEY_PROBLEM(ctx, key_index("whatsapp", "header_name"), 1,
                    "required when auth = header");
    else if (name[strcspn(name, " \t:()<>@,;\\\"/[]?={}")] != '\0')
        KEY_PROBLEM(ctx, key_index("whatsapp", "header_name"), 1,
                    "not a header name: \"%s\"", name);
    if (!cfg->whatsapp.header_value || !*cfg->whatsapp.header_value)
        KEY_PROBLEM(ctx, key_index("whatsapp", "header_value"), 0,
                    "not set: every WhatsApp webhook POST will be refused "
                    "(401)");
}

/* A template is NAME:LANG (consent_confirm:de): both parts needed. */
static void check_template(struct load_ctx *ctx, const char *name,
                           const char *v)
{
    const char *colon = v ? strchr(v, ':') : NULL;

    if (v && *v &&
        (!colon || colon == v || !colon[1] || strchr(colon + 1, ':')))
        KEY_PROBLEM(ctx, key_index("messages", name), 1,
                    "expected NAME:LANG (e.g. consent_confirm:de), got "
                    "\"%s\"",
                    v);
}

/* Consent messages: the credential of the chosen API, https, templates. */
static void check_sending(struct load_ctx *ctx,
                          const struct optsync_config *cfg)
{
    const char *send = cfg->whatsapp.send;
    int cloud = send && strcmp(send, "cloud") == 0;
    int d360 = send && strcmp(send, "360dialog") == 0;

    check_template(ctx, "double_opt_in_template",
                   cfg->messages.double_opt_in_template);
    check_template(ctx, "opt_in_confirmation_template",
                   cfg->messages.opt_in_confirmation_template);
    check_template(ctx, "opt_out_confirmation_template",
                   cfg->messages.opt_out_confirmation_template);
    check_https(ctx, "whatsapp", "graph_url", cfg->whatsapp.graph_url);
    check_https(ctx, "whatsapp", "d360_url", cfg->whatsapp.d360_url);
    if (!(ctx->needs & CONFIG_FOR_SENDER))
        return;
    if (cloud && !cfg->whatsapp.access_token)
        KEY_PROBLEM(ctx, key_index("whatsapp", "access_token"), 1,
                    "required when send = cloud");
    if (d360 && !cfg->whatsapp.d360_api_key)
        KEY_PROBLEM(ctx, key_index("whatsapp", "d360_api_key"), 1,
                    "required when send = 360dialog");
}

static void check_timing(struct load_ctx *ctx, const struct optsync_config *cfg)
{
    if (cfg->sync.max_staleness <= cfg->sync.interval + cfg->dataverse.timeout)
        KEY_PROBLEM(ctx, key_index("sync", "max_staleness"), 0,
                    "max_staleness (%llds) <= interval + timeout (%llds): "
                    "the gate would fail closed between two healthy polls",
                    (long long)cfg->sync.max_staleness,
                    (long long)(cfg->sync.interval + cfg->dataverse.timeout));
}

static void check_log(struct load_ctx *ctx, const struct optsync_config *cfg)
{
    unsigned mask;

    if (cfg->log.debug && log_debug_parse(&mask, cfg->log.debug) != 0)
        KEY_PROBLEM(ctx, key_index("log", "debug"), 1, "%s", err_message());
}

static void derive_scope(struct optsync_config *cfg)
{
    if (!cfg->auth.scope && cfg->dataverse.url)
        cfg->auth.scope = xasprintf("%s/.default", cfg->dataverse.url);
}

static void cross_check(struct load_ctx *ctx, struct optsync_config *cfg)
{
    check_required(ctx, "dataverse", "url", cfg->dataverse.url);
    check_required(ctx, "auth", "tenant_id", cfg->auth.tenant_id);
    check_required(ctx, "auth", "client_id", cfg->auth.client_id);
    check_https(ctx, "dataverse", "url", cfg->dataverse.url);
    check_https(ctx, "auth", "authority", cfg->auth.authority);
    if (ctx->needs & CONFIG_FOR_DATAVERSE)
        check_credentials(ctx, cfg);
    check_inline_secrets(ctx, cfg);
    check_api_version(ctx, cfg->dataverse.api_version);
    check_webhook(ctx, cfg);
    check_whatsapp(ctx, cfg);
    check_sending(ctx, cfg);
    check_timing(ctx, cfg);
    check_log(ctx, cfg);
    if ((ctx->needs & CONFIG_FOR_LISTENER) && !cfg->listener.api_key)
        add_problem(ctx->diag, 0, ctx->name, 0, "listener", "api_key",
                    "not set: every /v1/* request will be refused (401)");
    derive_scope(cfg);
}

/* ---- load ------------------------------------------------------------- */

static void raw_dispose(struct raw_value *raw)
{
    size_t i;

    for (i = 0; i < config_table_count; i++) {
        if (config_table[i].flags & CONFIG_SENSITIVE)
            xfree_secret(raw[i].text);
        else
            free(raw[i].text);
    }
    free(raw);
}

int config_load_string(struct optsync_config **out, const char *text,
                       const char *name, const char *dir,
                       const struct config_override *overrides,
                       size_t n_overrides, struct config_diag *diag)
{
    return config_load_string_for(out, text, name, dir, overrides, n_overrides,
                                  CONFIG_NEEDS_ALL, diag);
}

int config_load_string_for(struct optsync_config **out, const char *text,
                           const char *name, const char *dir,
                           const struct config_override *overrides,
                           size_t n_overrides, unsigned needs,
                           struct config_diag *diag)
{
    struct load_ctx ctx;
    struct config_box *box = xcalloc(1, sizeof(*box));
    size_t errors_before = diag->errors, i;

    memset(&ctx, 0, sizeof(ctx));
    ctx.name = name;
    ctx.needs = needs;
    ctx.dir = dir;
    ctx.diag = diag;
    ctx.raw = xcalloc(config_table_count, sizeof(*ctx.raw));
    box->origins = xcalloc(config_table_count, sizeof(*box->origins));
    box->cfg.file = xstrdup(name);
    box->cfg.dir = xstrdup(dir ? dir : ".");

    collect(&ctx, text);
    apply_overrides(&ctx, overrides, n_overrides);
    for (i = 0; i < config_table_count; i++)
        resolve_key(&ctx, &box->cfg, &box->origins[i], (int)i);
    cross_check(&ctx, &box->cfg);
    raw_dispose(ctx.raw);

    if (diag->errors > errors_before) {
        config_free(&box->cfg);
        return ERR_BADINPUT;
    }
    *out = &box->cfg;
    return 0;
}

int config_load(struct optsync_config **out, const char *path,
                const struct config_override *overrides, size_t n_overrides,
                struct config_diag *diag)
{
    return config_load_for(out, path, overrides, n_overrides, CONFIG_NEEDS_ALL,
                           diag);
}

int config_load_for(struct optsync_config **out, const char *path,
                    const struct config_override *overrides, size_t n_overrides,
                    unsigned needs, struct config_diag *diag)
{
    char *text = NULL, *dir;
    int rc;

    rc = fileio_read(&text, NULL, path, CAP_CONFIG_FILE_BYTES);
    if (rc != 0) {
        add_problem(diag, 1, NULL, 0, NULL, NULL, "%s", err_message());
        return rc == ERR_NOTFOUND ? ERR_NOTFOUND : ERR_BADINPUT;
    }
    dir = fileio_dirname(path);
    rc = config_load_string_for(out, text, path, dir, overrides, n_overrides,
                                needs, diag);
    free(dir);
    free(text);
    return rc;
}

static void list_dispose(struct config_list *l)
{
    size_t i;

    for (i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

void config_free(struct optsync_config *cfg)
{
    struct config_box *box = (struct config_box *)cfg;
    size_t i;

    if (!cfg)
        return;
    for (i = 0; i < config_table_count; i++) {
        const struct config_key *k = &config_table[i];
        void *f = field(cfg, k);

        free(box->origins[i].detail);
        switch (k->type) {
        case CONFIG_LIST: list_dispose(f); break;
        case CONFIG_INT:
        case CONFIG_BOOL:
        case CONFIG_DURATION:
        case CONFIG_SIZE: break;
        default:
            if (k->flags & CONFIG_SENSITIVE)
                xfree_secret(*(char **)f);
            else
                free(*(char **)f);
            break;
        }
    }
    free(box->origins);
    free(cfg->file);
    free(cfg->dir);
    free(box);
}

/* ---- helpers ------------------------------------------------------------ */

int config_override_parse(struct config_override *out, char *arg)
{
    char *dot = strchr(arg, '.'), *eq = strchr(arg, '=');

    if (!dot || !eq || dot > eq || dot == arg || eq == dot + 1) {
        err_set(ERR_CLASS_USAGE, "-o expects section.key=value, got \"%s\"",
                arg);
        return ERR_BADINPUT;
    }
    *dot = '\0';
    *eq = '\0';
    out->section = arg;
    out->key = dot + 1;
    out->value = eq + 1;
    return 0;
}

int config_url_is_loopback(const char *url)
{
    const char *host = strstr(url, "://");
    size_t n;

    if (!host)
        return 0;
    host += 3;
    if (strncmp(host, "[::1]", 5) == 0)
        return host[5] == '\0' || host[5] == ':' || host[5] == '/';
    n = strcspn(host, ":/");
    if (n == 9 && strncmp(host, "localhost", 9) == 0)
        return 1;
    return n >= 9 && strncmp(host, "127.", 4) == 0 &&
           strspn(host, "0123456789.") >= n;
}

/* ---- printing ----------------------------------------------------------- */

static void print_origin(FILE *fp, const struct config_origin *o)
{
    if (o->how == GIVEN_ENV)
        fprintf(fp, " (from environment %s)", o->detail);
    else if (o->how == GIVEN_FILE)
        fprintf(fp, " (from file %s)", o->detail);
}

static void print_value(FILE *fp, const struct optsync_config *cfg,
                        const struct config_key *k)
{
    const void *f = (const char *)cfg + k->offset;
    const struct config_list *l;
    const char *s;
    char buf[64];
    size_t i;

    switch (k->type) {
    case CONFIG_INT:
        fprintf(fp, "%lld", (long long)*(const int64_t *)f);
        return;
    case CONFIG_DURATION:
        units_duration_format(buf, sizeof(buf), *(const int64_t *)f);
        fputs(buf, fp);
        return;
    case CONFIG_SIZE:
        units_size_format(buf, sizeof(buf), *(const int64_t *)f);
        fputs(buf, fp);
        return;
    case CONFIG_BOOL: fputs(*(const int *)f ? "true" : "false", fp); return;
    case CONFIG_LIST:
        l = f;
        for (i = 0; i < l->count; i++)
            fprintf(fp, "%s%s", i ? ", " : "", l->items[i]);
        return;
    default:
        s = *(char *const *)f;
        if (strchr(s, '\n'))
            fprintf(fp, "<%zu bytes of PEM>", strlen(s));
        else
            fputs(s, fp);
        return;
    }
}

static int is_unset(const struct optsync_config *cfg,
                    const struct config_key *k)
{
    const void *f = (const char *)cfg + k->offset;

    switch (k->type) {
    case CONFIG_INT:
    case CONFIG_DURATION:
    case CONFIG_SIZE:
    case CONFIG_BOOL:
    case CONFIG_LIST: return 0;
    default: return *(char *const *)f == NULL;
    }
}

void config_print(FILE *fp, const struct optsync_config *cfg)
{
    const struct config_box *box = (const struct config_box *)cfg;
    const char *section = "";
    size_t i;

    fprintf(fp, "# effective configuration of %s (secrets redacted)\n",
            cfg->file);
    for (i = 0; i < config_table_count; i++) {
        const struct config_key *k = &config_table[i];

        if (strcmp(section, k->section) != 0) {
            section = k->section;
            fprintf(fp, "\n[%s]\n", section);
        }
        if (is_unset(cfg, k)) {
            fprintf(fp, "# %s = (unset)\n", k->name);
            continue;
        }
        fprintf(fp, "%s = ", k->name);
        if (k->flags & CONFIG_SENSITIVE)
            fputs("<redacted>", fp);
        else
            print_value(fp, cfg, k);
        print_origin(fp, &box->origins[i]);
        fputc('\n', fp);
    }
}
