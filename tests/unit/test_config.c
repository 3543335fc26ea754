/*
 * test_config — the config loader: every error path names file, line,
 * section and key; _env / _file forms; durations and sizes; redaction;
 * and config/optsync.example.ini documents exactly the key table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "testutil.h"
#include "xalloc.h"

/* A valid minimal config; cases append to it or replace lines. */
#define BASE                                                                   \
    "[dataverse]\n"                                                            \
    "url = http://127.0.0.1:5555\n"                                            \
    "[auth]\n"                                                                 \
    "authority = http://127.0.0.1:5555\n"                                      \
    "tenant_id = t\n"                                                          \
    "client_id = c\n"                                                          \
    "client_secret = s3cret-value\n"                                           \
    "[listener]\n"                                                             \
    "api_key = k\n"

static struct optsync_config *load(const char *text, struct config_diag *d,
                                   int expect_ok)
{
    struct optsync_config *cfg = NULL;
    int rc =
        config_load_string(&cfg, text, "test.ini", "/etc/optsync", NULL, 0, d);

    if (expect_ok && rc != 0) {
        config_diag_print(stderr, d);
        fail_msg("expected the config to load");
    }
    if (!expect_ok)
        assert_int_not_equal(rc, 0);
    return cfg;
}

/* Formatted problems joined by newlines (owned). */
static char *problems_text(const struct config_diag *d)
{
    struct strbuf sb;
    size_t i;

    strbuf_init(&sb, 1 << 20);
    for (i = 0; i < d->count; i++) {
        char *line = config_problem_format(&d->items[i]);

        strbuf_addf(&sb, "%s\n", line);
        free(line);
    }
    return strbuf_detach(&sb);
}

static void test_config__base_loads_with_defaults(void **state)
{
    struct config_diag d = { 0 };
    struct optsync_config *cfg = load(BASE, &d, 1);

    (void)state;
    assert_int_equal(d.errors, 0);
    assert_string_equal(cfg->dataverse.url, "http://127.0.0.1:5555");
    assert_string_equal(cfg->dataverse.api_version, "9.2");
    assert_int_equal(cfg->dataverse.page_size, 5000);
    assert_int_equal(cfg->dataverse.timeout, 60);
    assert_int_equal(cfg->sync.interval, 60);
    assert_int_equal(cfg->sync.max_staleness, 15 * 60);
    assert_int_equal(cfg->listener.port, 8080);
    assert_string_equal(cfg->listener.address, "127.0.0.1");
    assert_int_equal(cfg->listener.max_body, 4 * 1024 * 1024);
    assert_int_equal(cfg->listener.max_bulk, 10000);
    assert_int_equal(cfg->consent.double_opt_in_window, 7 * 86400);
    assert_int_equal(cfg->outbox.batch_size, 100);
    assert_true(cfg->consent.keywords_builtin);
    assert_int_equal(cfg->consent.opt_out_payloads.count, 1);
    assert_string_equal(cfg->consent.opt_out_payloads.items[0], "OPT_OUT");
    assert_string_equal(cfg->auth.scope, "http://127.0.0.1:5555/.default");
    assert_string_equal(cfg->auth.authority, "http://127.0.0.1:5555");
    /* Relative paths hang off the config file's directory. */
    assert_string_equal(cfg->cache.path, "/etc/optsync/optsync.db");
    assert_string_equal(cfg->mapping.file,
                        "/etc/mapping/whatsapp4dynamics.json");
    config_free(cfg);
    config_diag_dispose(&d);
}

static void test_config__units_lists_and_trailing_slash(void **state)
{
    struct config_diag d = { 0 };
    struct optsync_config *cfg =
        load("[dataverse]\nurl = http://localhost:1/\n"
             "timeout = 2m\n"
             "[auth]\ntenant_id = t\nclient_id = c\nclient_secret = s\n"
             "[listener]\napi_key = k\nmax_body = 512KiB\n"
             "[sync]\ninterval = 2h\nmax_staleness = 7d\n"
             "[consent]\nopt_out_keywords = halt ,  basta,,\n"
             "keywords_builtin = no\ndefault_region = +44\n",
             &d, 1);

    (void)state;
    assert_string_equal(cfg->dataverse.url, "http://localhost:1");
    assert_int_equal(cfg->dataverse.timeout, 120);
    assert_int_equal(cfg->listener.max_body, 512 * 1024);
    assert_int_equal(cfg->sync.interval, 7200);
    assert_int_equal(cfg->sync.max_staleness, 7 * 86400);
    assert_int_equal(cfg->consent.opt_out_keywords.count, 2);
    assert_string_equal(cfg->consent.opt_out_keywords.items[0], "halt");
    assert_string_equal(cfg->consent.opt_out_keywords.items[1], "basta");
    assert_false(cfg->consent.keywords_builtin);
    assert_string_equal(cfg->consent.default_region, "+44");
    config_free(cfg);
    config_diag_dispose(&d);
}

/* Each case: config text and a piece of the one problem it must report. */
static const struct {
    const char *text;
    const char *expect;
} error_cases[] = {
    { BASE "[nosuch]\nx = 1\n",
      "test.ini:10: error: [nosuch] unknown section" },
    { BASE "[dataverse]\npage_sise = 10\n",
      "test.ini:11: error: [dataverse] page_sise: unknown key (known keys: "
      "url, api_version, page_size" },
    { BASE "[dataverse]\npage_size = 9000\n",
      "test.ini:11: error: [dataverse] page_size: expected an integer from 1 "
      "to 5000, got \"9000\"" },
    { BASE "[dataverse]\npage_size = 12abc\n",
      "[dataverse] page_size: expected an integer" },
    { BASE "[dataverse]\ntimeout = 5 minutes\n",
      "test.ini:11: error: [dataverse] timeout: expected a duration from 1s "
      "to 1h (e.g. 30s, 5m, 2h, 7d), got \"5 minutes\"" },
    { BASE "[listener]\nmax_body = 1TB\n",
      "[listener] max_body: expected a size from 1KiB to 16MiB" },
    { BASE "[consent]\nkeywords_builtin = maybe\n",
      "test.ini:11: error: [consent] keywords_builtin: expected true or "
      "false, got \"maybe\"" },
    { BASE "[dataverse_webhook]\nauth = basic\n",
      "[dataverse_webhook] auth: expected one of "
      "header|webhookkey|querystring, got \"basic\"" },
    { BASE "[consent]\ndefault_region = Germany\n",
      "[consent] default_region: expected an ISO country code" },
    { BASE "[consent]\ndefault_region = QQ\n",
      "[consent] default_region: expected an ISO country code" },
    { BASE "[log]\ndebug = net,disk\n",
      "[log] debug: unknown debug subsystem 'disk'" },
    { BASE "[dataverse]\napi_version = v9\n",
      "[dataverse] api_version: expected a version like 9.2" },
    { BASE "[auth]\nclient_id = again\n",
      "test.ini:11: error: [auth] client_id: given more than once (first at "
      "line 6" },
    { BASE "[dataverse]\nurl = ftp://x\n", "[dataverse] url: given more than" },
    { "[dataverse]\nurl = contoso.crm.dynamics.com\n[auth]\ntenant_id = t\n"
      "client_id = c\nclient_secret_env = NOPE\n",
      "test.ini:2: error: [dataverse] url: expected an http(s) URL" },
    { "[dataverse]\nurl = http://contoso.crm.dynamics.com\n[auth]\n"
      "tenant_id = t\nclient_id = c\nclient_secret_env = HOME\n",
      "test.ini:2: error: [dataverse] url: must use https://" },
    { "[dataverse]\nurl = https://c.crm.dynamics.com\n[auth]\nclient_id = c\n"
      "client_secret_env = HOME\n",
      "error: [auth] tenant_id: required, not set" },
    { "[auth]\ntenant_id = t\nclient_id = c\nclient_secret = s\n",
      "error: [dataverse] url: required, not set" },
    { "[dataverse]\nurl = http://127.0.0.1:1\n[auth]\ntenant_id = t\n"
      "client_id = c\n",
      "error: [auth] no credential: set client_secret" },
    { BASE "[auth]\ncertificate = PEM\nprivate_key = KEY\n",
      "error: [auth] both a client secret and a certificate are set" },
    { "[dataverse]\nurl = http://127.0.0.1:1\n[auth]\ntenant_id = t\n"
      "client_id = c\ncertificate = PEM\n",
      "error: [auth] a certificate credential needs both" },
    { BASE "[whatsapp]\napp_secret_env = OPTSYNC_TEST_SURELY_UNSET\n",
      "test.ini:11: error: [whatsapp] app_secret: environment variable "
      "OPTSYNC_TEST_SURELY_UNSET is not set (named by app_secret_env; read "
      "by the HTTP listener" },
    { BASE "[whatsapp]\napp_secret_file = /nonexistent/secret\n",
      "test.ini:11: error: [whatsapp] app_secret: cannot open "
      "/nonexistent/secret" },
    { BASE "[dataverse]\npage_size_env = X\n",
      "[dataverse] page_size_env: unknown key" },
    { "url = http://127.0.0.1:1\n" BASE, "test.ini:1: error: url: key outside "
                                         "of any [section]" },
    { BASE "[sync\ninterval = 1\n", "test.ini:10: error: syntax error" },
    { BASE "[dataverse_webhook]\nauth = header\nheader_name =\n",
      "[dataverse_webhook] header_name: required when auth = header" },
};

static void test_config__each_error_names_its_place(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
        struct config_diag d = { 0 };
        char *text;

        load(error_cases[i].text, &d, 0);
        text = problems_text(&d);
        if (!strstr(text, error_cases[i].expect))
            fail_msg("case %zu: expected \"%s\" in:\n%s", i,
                     error_cases[i].expect, text);
        free(text);
        config_diag_dispose(&d);
    }
}

static void test_config__overlong_line_is_an_error(void **state)
{
    struct config_diag d = { 0 };
    char *text, *problems;
    char longval[400];

    (void)state;
    memset(longval, 'x', sizeof(longval) - 1);
    longval[sizeof(longval) - 1] = '\0';
    text = xasprintf(BASE "[whatsapp]\nverify_token = %s\n", longval);
    load(text, &d, 0);
    problems = problems_text(&d);
    assert_non_null(strstr(problems, "test.ini:11: error: line longer than"));
    free(problems);
    free(text);
    config_diag_dispose(&d);
}

static void test_config__secret_from_env_and_file(void **state)
{
    struct config_diag d = { 0 };
    char *dir = testutil_tmpdir();
    char *secret = testutil_write(dir, "secret", "from-file\n\n", 0600);
    char *text;
    struct optsync_config *cfg;

    (void)state;
    setenv("OPTSYNC_TEST_APP_SECRET", "from-env", 1);
    /* A relative _file path hangs off the config's directory. */
    text = xasprintf(BASE "[whatsapp]\napp_secret_env = "
                          "OPTSYNC_TEST_APP_SECRET\nverify_token_file = "
                          "secret\n");
    assert_int_equal(config_load_string(&cfg, text, "t.ini", dir, NULL, 0, &d),
                     0);
    assert_string_equal(cfg->whatsapp.app_secret, "from-env");
    /* Exactly one trailing newline is stripped. */
    assert_string_equal(cfg->whatsapp.verify_token, "from-file\n");
    assert_int_equal(d.count, 0); /* 0600: no warning */
    config_free(cfg);
    config_diag_dispose(&d);

    /* Readable by others: loads, with a warning. */
    chmod(secret, 0644);
    assert_int_equal(config_load_string(&cfg, text, "t.ini", dir, NULL, 0, &d),
                     0);
    assert_int_equal(d.errors, 0);
    assert_int_equal(d.count, 1);
    assert_non_null(strstr(d.items[0].message, "readable by group or others"));
    config_free(cfg);
    config_diag_dispose(&d);
    free(text);
    free(secret);
    testutil_rmtree(dir);
    free(dir);
    unsetenv("OPTSYNC_TEST_APP_SECRET");
}

/* A command reads only the secrets of the parts it runs: an unreadable
 * secret of another part is no problem, one of its own is an error. */
static void test_config__secrets_only_where_used(void **state)
{
    static const char text[] =
        "[dataverse]\nurl = https://contoso.crm4.dynamics.com\n"
        "[auth]\ntenant_id = t\nclient_id = c\n"
        "client_secret_env = OPTSYNC_TEST_UNSET_CLIENT_SECRET\n"
        "[whatsapp]\napp_secret_env = OPTSYNC_TEST_UNSET_APP_SECRET\n"
        "[listener]\napi_key_file = /nonexistent/optsync-api-key\n";
    struct config_diag d = { 0 };
    struct optsync_config *cfg = NULL;
    char *all;

    (void)state;
    unsetenv("OPTSYNC_TEST_UNSET_CLIENT_SECRET");
    unsetenv("OPTSYNC_TEST_UNSET_APP_SECRET");
    /* status, numbers, gate, ...: no secret at all, not even a
     * credential, is needed. */
    assert_int_equal(config_load_string_for(&cfg, text, "t.ini", "/etc", NULL,
                                            0, CONFIG_NEEDS_NONE, &d),
                     0);
    assert_int_equal(d.errors, 0);
    assert_null(cfg->auth.client_secret);
    assert_null(cfg->whatsapp.app_secret);
    config_free(cfg);
    config_diag_dispose(&d);

    /* sync: its own secret is an error, the listener's are not. */
    assert_int_not_equal(config_load_string_for(&cfg, text, "t.ini", "/etc",
                                                NULL, 0, CONFIG_FOR_DATAVERSE,
                                                &d),
                         0);
    all = problems_text(&d);
    assert_non_null(strstr(all, "OPTSYNC_TEST_UNSET_CLIENT_SECRET"));
    assert_non_null(strstr(all, "read by the Dataverse client"));
    assert_null(strstr(all, "OPTSYNC_TEST_UNSET_APP_SECRET"));
    assert_null(strstr(all, "optsync-api-key"));
    free(all);
    config_diag_dispose(&d);

    /* The daemon and check-config: every secret. */
    assert_int_not_equal(
        config_load_string(&cfg, text, "t.ini", "/etc", NULL, 0, &d), 0);
    all = problems_text(&d);
    assert_non_null(strstr(all, "OPTSYNC_TEST_UNSET_CLIENT_SECRET"));
    assert_non_null(strstr(all, "OPTSYNC_TEST_UNSET_APP_SECRET"));
    assert_non_null(strstr(all, "optsync-api-key"));
    assert_non_null(strstr(all, "read by the HTTP listener"));
    free(all);
    config_diag_dispose(&d);
}

/* Every secret names the part that reads it, so check-config can say
 * which command needs which. */
static void test_config__every_secret_names_its_reader(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < config_table_count; i++) {
        const struct config_key *k = &config_table[i];

        if (!(k->flags & (CONFIG_SENSITIVE | CONFIG_FROM_FILE)))
            continue;
        if (!(k->flags & CONFIG_NEEDS_ALL))
            fail_msg("[%s] %s names no part that reads it (CONFIG_FOR_*)",
                     k->section, k->name);
    }
}

static void test_config__inline_secret_warned_off_loopback(void **state)
{
    struct config_diag d = { 0 };
    struct optsync_config *cfg =
        load("[dataverse]\nurl = https://contoso.crm4.dynamics.com\n[auth]\n"
             "tenant_id = t\nclient_id = c\nclient_secret = inline\n"
             "[listener]\napi_key_env = HOME\n",
             &d, 1);
    char *text = problems_text(&d);

    (void)state;
    assert_non_null(strstr(text, "test.ini:6: warning: [auth] client_secret: "
                                 "secret written inline"));
    assert_null(strstr(text, "api_key"));
    free(text);
    config_free(cfg);
    config_diag_dispose(&d);
}

static void test_config__staleness_warning(void **state)
{
    struct config_diag d = { 0 };
    struct optsync_config *cfg =
        load(BASE "[sync]\ninterval = 10m\nmax_staleness = 10m\n", &d, 1);
    char *text = problems_text(&d);

    (void)state;
    assert_non_null(strstr(text, "warning: [sync] max_staleness: "
                                 "max_staleness (600s) <= interval + "
                                 "timeout (660s)"));
    free(text);
    config_free(cfg);
    config_diag_dispose(&d);
}

static void test_config__print_redacts_secrets(void **state)
{
    struct config_diag d = { 0 };
    struct optsync_config *cfg;
    char *out = NULL;
    size_t len = 0;
    FILE *fp;

    (void)state;
    setenv("OPTSYNC_TEST_KEY", "env-secret-value", 1);
    cfg = load(BASE "[dataverse_webhook]\nkey_env = OPTSYNC_TEST_KEY\n", &d, 1);
    fp = open_memstream(&out, &len);
    config_print(fp, cfg);
    fclose(fp);
    assert_null(strstr(out, "s3cret-value"));
    assert_null(strstr(out, "env-secret-value"));
    assert_non_null(strstr(out, "client_secret = <redacted>\n"));
    assert_non_null(
        strstr(out, "key = <redacted> (from environment OPTSYNC_TEST_KEY)"));
    assert_non_null(strstr(out, "url = http://127.0.0.1:5555\n"));
    assert_non_null(strstr(out, "max_body = 4MiB\n"));
    assert_non_null(strstr(out, "# ca_file = (unset)\n"));
    free(out);
    config_free(cfg);
    config_diag_dispose(&d);
    unsetenv("OPTSYNC_TEST_KEY");
}

static void test_config__overrides(void **state)
{
    struct config_diag d = { 0 };
    struct optsync_config *cfg = NULL;
    char a1[] = "dataverse.url=http://127.0.0.1:9/";
    char a2[] = "dataverse.page_size=10";
    char bad[] = "noequals";
    struct config_override ov[2];

    (void)state;
    assert_int_equal(config_override_parse(&ov[0], a1), 0);
    assert_int_not_equal(config_override_parse(&ov[1], bad), 0);
    assert_int_equal(config_override_parse(&ov[1], a2 + 0), 0);
    assert_int_equal(config_load_string(&cfg, BASE, "t.ini", ".", ov, 2, &d),
                     0);
    assert_string_equal(cfg->dataverse.url, "http://127.0.0.1:9");
    assert_int_equal(cfg->dataverse.page_size, 10);
    /* The derived scope follows the overridden URL. */
    assert_string_equal(cfg->auth.scope, "http://127.0.0.1:9/.default");
    config_free(cfg);
    config_diag_dispose(&d);
}

static void test_config__loopback(void **state)
{
    (void)state;
    assert_true(config_url_is_loopback("http://127.0.0.1:5555"));
    assert_true(config_url_is_loopback("http://127.1.2.3/x"));
    assert_true(config_url_is_loopback("http://localhost"));
    assert_true(config_url_is_loopback("http://[::1]:80"));
    assert_false(config_url_is_loopback("http://127.0.0.1.evil.com"));
    assert_false(config_url_is_loopback("http://localhost.evil.com"));
    assert_false(config_url_is_loopback("https://contoso.crm.dynamics.com"));
}

static void test_config__embedded_default_is_clean(void **state)
{
    struct config_diag d = { 0 };
    struct optsync_config *cfg = NULL;
    char *path = testutil_source_path("config/optsync.ini");

    (void)state;
    assert_int_equal(config_load(&cfg, path, NULL, 0, &d), 0);
    if (d.count)
        config_diag_print(stderr, &d);
    assert_int_equal(d.count, 0);
    assert_string_equal(cfg->auth.tenant_id,
                        "7e57e000-0000-4000-8000-000000000001");
    config_free(cfg);
    config_diag_dispose(&d);
    free(path);
}

/* ---- example file and key table in step ---------------------------------- */

struct seen {
    unsigned char *hit; /* one per table key */
    int unknown;
};

static void mark(struct seen *s, const char *section, const char *name,
                 int line_is_comment)
{
    const struct config_key *k = config_key_find(section, name);
    char base[128];
    size_t n = strlen(name);

    if (!k && n > 4 && strcmp(name + n - 4, "_env") == 0) {
        snprintf(base, sizeof(base), "%.*s", (int)(n - 4), name);
        k = config_key_find(section, base);
    }
    if (!k && n > 5 && strcmp(name + n - 5, "_file") == 0) {
        snprintf(base, sizeof(base), "%.*s", (int)(n - 5), name);
        k = config_key_find(section, base);
    }
    if (!k) {
        if (!line_is_comment) {
            fprintf(stderr, "example has unknown key [%s] %s\n", section, name);
            s->unknown++;
        }
        return;
    }
    s->hit[k - config_table] = 1;
}

static int example_handler(void *user, const char *section, const char *name,
                           const char *value)
{
    (void)value;
    mark(user, section, name, 0);
    return 1;
}

/* "; key = value" lines document keys that are off by default. */
static void scan_commented(struct seen *s, const char *text)
{
    char section[64] = "", name[64];
    const char *line = text;

    while (line && *line) {
        if (sscanf(line, "[%63[a-z_]]", section) == 1) {
            /* new section */
        } else if (sscanf(line, "; %63[a-z_] =", name) == 1 &&
                   strstr(line, " = ")) {
            mark(s, section, name, 1);
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
}

static void test_config__example_documents_every_key(void **state)
{
    char *path = testutil_source_path("config/optsync.example.ini");
    char *text = testutil_read(path, NULL);
    struct seen s = { 0 };
    size_t i;
    int missing = 0;

    (void)state;
    s.hit = calloc(config_table_count, 1);
    assert_int_equal(ini_parse_string(text, example_handler, &s), 0);
    scan_commented(&s, text);
    for (i = 0; i < config_table_count; i++) {
        if (!s.hit[i]) {
            fprintf(stderr, "example does not document [%s] %s\n",
                    config_table[i].section, config_table[i].name);
            missing++;
        }
        /* The table's help text is what the example explains. */
        assert_non_null(config_table[i].help);
    }
    assert_int_equal(missing, 0);
    assert_int_equal(s.unknown, 0);
    free(s.hit);
    free(text);
    free(path);
}

static void test_config__example_validates(void **state)
{
    char *path = testutil_source_path("config/optsync.example.ini");
    char *dir = testutil_tmpdir();
    char *keyfile = testutil_write(dir, "api-key", "k\n", 0600);
    char mapping_arg[512], api_arg[512];
    char *mapping = testutil_source_path("mapping/whatsapp4dynamics.json");
    struct config_override ov[3];
    struct config_diag d = { 0 };
    struct optsync_config *cfg = NULL;
    char cache_arg[] = "cache.path=/tmp/x.db";

    (void)state;
    setenv("OPTSYNC_CLIENT_SECRET", "x", 1);
    setenv("OPTSYNC_WHATSAPP_APP_SECRET", "x", 1);
    setenv("OPTSYNC_WHATSAPP_VERIFY_TOKEN", "x", 1);
    setenv("OPTSYNC_DATAVERSE_WEBHOOK_KEY", "x", 1);
    setenv("OPTSYNC_WHATSAPP_ACCESS_TOKEN", "x", 1);
    setenv("OPTSYNC_D360_API_KEY", "x", 1);
    /* Production paths do not exist here: point them at test files. */
    snprintf(mapping_arg, sizeof(mapping_arg), "mapping.file=%s", mapping);
    snprintf(api_arg, sizeof(api_arg), "listener.api_key_file=%s", keyfile);
    config_override_parse(&ov[0], mapping_arg);
    config_override_parse(&ov[1], api_arg);
    config_override_parse(&ov[2], cache_arg);
    if (config_load(&cfg, path, ov, 3, &d) != 0 || d.count) {
        config_diag_print(stderr, &d);
        fail_msg("the example must load without problems");
    }
    assert_string_equal(cfg->dataverse.url,
                        "https://contoso.crm4.dynamics.com");
    config_free(cfg);
    config_diag_dispose(&d);
    free(mapping);
    free(keyfile);
    testutil_rmtree(dir);
    free(dir);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config__base_loads_with_defaults),
        cmocka_unit_test(test_config__units_lists_and_trailing_slash),
        cmocka_unit_test(test_config__each_error_names_its_place),
        cmocka_unit_test(test_config__overlong_line_is_an_error),
        cmocka_unit_test(test_config__secret_from_env_and_file),
        cmocka_unit_test(test_config__secrets_only_where_used),
        cmocka_unit_test(test_config__every_secret_names_its_reader),
        cmocka_unit_test(test_config__inline_secret_warned_off_loopback),
        cmocka_unit_test(test_config__staleness_warning),
        cmocka_unit_test(test_config__print_redacts_secrets),
        cmocka_unit_test(test_config__overrides),
        cmocka_unit_test(test_config__loopback),
        cmocka_unit_test(test_config__embedded_default_is_clean),
        cmocka_unit_test(test_config__example_documents_every_key),
        cmocka_unit_test(test_config__example_validates),
    };

    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
