/*
 * test_auth — client credentials against the emulator's Entra ID: a
 * secret, a certificate assertion (PS256 + x5t#S256 signed with OpenSSL,
 * verified by the emulator with the openssl command), the token cache and
 * early refresh, refused credentials with their AADSTS code and hint (and
 * never the secret), and token response parsing.
 *
 * ctest-timeout: 300
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "clock.h"
#include "emulator_control.h"
#include "fileio.h"
#include "jsonutil.h"
#include "testutil.h"
#include "xalloc.h"

#define CERT_CLIENT "0975c0de-0000-4000-8000-00000000ce57"

struct fixture {
    char *dir;
    char *cert, *key; /* paths */
    struct emulator_proc emu;
    http *h;
};

/* A throwaway RSA key and self-signed certificate (openssl command). */
static void make_certificate(struct fixture *f)
{
    char *cmd;

    f->cert = xasprintf("%s/cert.pem", f->dir);
    f->key = xasprintf("%s/key.pem", f->dir);
    cmd = xasprintf("openssl req -x509 -newkey rsa:2048 -nodes -days 2 "
                    "-subj /CN=optsync-test -keyout %s -out %s 2>/dev/null",
                    f->key, f->cert);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    struct http_options o = HTTP_OPTIONS_INIT;
    char *client;
    const char *args[] = { "--client-cert", NULL, "--quiet", NULL };

    f->dir = testutil_tmpdir();
    make_certificate(f);
    client = xasprintf("%s:%s", CERT_CLIENT, f->cert);
    args[1] = client;
    assert_int_equal(emulator_start(&f->emu, args), 0);
    free(client);
    o.base_backoff_ms = 10;
    assert_int_equal(http_new(&f->h, &o), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    http_free(f->h);
    emulator_stop(&f->emu);
    testutil_rmtree(f->dir);
    free(f->cert);
    free(f->key);
    free(f->dir);
    free(f);
    clock_set_fixed(0);
    return 0;
}

static void test_auth__secret_and_cache(void **state)
{
    struct fixture *f = *state;
    struct optsync_config *cfg = emulator_config(&f->emu, NULL);
    char *h1 = NULL, *h2 = NULL;
    auth *a = NULL;

    assert_int_equal(auth_new(&a, cfg, f->h), 0);
    assert_int_equal(auth_header(&h1, a), 0);
    assert_true(strncmp(h1, "Authorization: Bearer ", 22) == 0);
    assert_int_equal(auth_header(&h2, a), 0);
    assert_string_equal(h1, h2); /* cached */
    assert_int_equal(auth_tokens_fetched(a), 1);
    xfree_secret(h2);
    /* Close to expiry (3599 s, refreshed 5 minutes early): asks again. */
    clock_set_fixed(clock_now_ms() + 3300 * 1000LL);
    assert_int_equal(auth_header(&h2, a), 0);
    assert_int_equal(auth_tokens_fetched(a), 2);
    assert_string_not_equal(h1, h2);
    auth_invalidate(a);
    xfree_secret(h2);
    assert_int_equal(auth_header(&h2, a), 0);
    assert_int_equal(auth_tokens_fetched(a), 3);
    xfree_secret(h1);
    xfree_secret(h2);
    auth_free(a);
    config_free(cfg);
}

static void check_refusal(struct fixture *f, const char *const *ov,
                          const char *expect_code, const char *expect_hint,
                          const char *secret)
{
    struct optsync_config *cfg = emulator_config(&f->emu, ov);
    char *h = NULL;
    auth *a = NULL;

    assert_int_equal(auth_new(&a, cfg, f->h), 0);
    assert_int_equal(auth_header(&h, a), ERR_AUTH);
    assert_null(h);
    if (!strstr(err_message(), expect_code) ||
        !strstr(err_message(), expect_hint))
        fail_msg("unexpected message: %s", err_message());
    if (secret)
        assert_null(strstr(err_message(), secret));
    assert_int_equal(err_exit_code(), EXIT_REMOTE);
    auth_free(a);
    config_free(cfg);
}

static void test_auth__refusals_name_code_and_hint(void **state)
{
    struct fixture *f = *state;
    static const char *const wrong_secret[] = {
        "auth.client_secret=wrong-secret-value-123", NULL
    };
    static const char *const wrong_client[] = {
        "auth.client_id=0975c0de-0000-4000-8000-0000000000ff", NULL
    };
    static const char *const wrong_tenant[] = {
        "auth.tenant_id=7e57e000-0000-4000-8000-0000000000ff", NULL
    };

    check_refusal(f, wrong_secret, "AADSTS7000215", "VALUE, not its id",
                  "wrong-secret-value-123");
    check_refusal(f, wrong_client, "AADSTS700016", "check client_id", NULL);
    check_refusal(f, wrong_tenant, "AADSTS90002", "check tenant_id", NULL);
}

static void test_auth__certificate_assertion(void **state)
{
    struct fixture *f = *state;
    char *client = xasprintf("auth.client_id=%s", CERT_CLIENT);
    char *cert = xasprintf("auth.certificate_file=%s", f->cert);
    char *key = xasprintf("auth.private_key_file=%s", f->key);
    const char *ov[] = { client, cert, key, "auth.client_secret=", NULL };
    struct optsync_config *cfg;
    char *h = NULL;
    auth *a = NULL;

    cfg = emulator_config(&f->emu, ov);
    assert_null(cfg->auth.client_secret && *cfg->auth.client_secret
                    ? cfg->auth.client_secret
                    : NULL);
    assert_int_equal(auth_new(&a, cfg, f->h), 0);
    assert_int_equal(auth_header(&h, a), 0);
    assert_non_null(strstr(h, "Bearer "));
    xfree_secret(h);
    auth_free(a);
    config_free(cfg);
    free(client);
    free(cert);
    free(key);
}

/* base64url → bytes (test-only, small inputs). */
static char *b64url_decode(const char *s, size_t n)
{
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = xcalloc(1, n + 1);
    unsigned int acc = 0;
    int bits = 0;
    size_t i, o = 0;

    for (i = 0; i < n; i++) {
        acc = (acc << 6) | (unsigned int)(strchr(tbl, s[i]) - tbl);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    return out;
}

static void test_auth__assertion_shape(void **state)
{
    struct fixture *f = *state;
    char *cert = testutil_read(f->cert, NULL),
         *key = testutil_read(f->key, NULL);
    char *jwt = NULL, *dot, *header, *claims;
    cJSON *h, *c;

    assert_int_equal(auth_client_assertion(&jwt, "https://login/t/token",
                                           "client-1", cert, key, 1700000000,
                                           "jti-1"),
                     0);
    dot = strchr(jwt, '.');
    assert_non_null(dot);
    header = b64url_decode(jwt, (size_t)(dot - jwt));
    claims = b64url_decode(dot + 1, (size_t)(strchr(dot + 1, '.') - dot - 1));
    h = cJSON_Parse(header);
    c = cJSON_Parse(claims);
    assert_string_equal(jsonutil_str(h, "alg"), "PS256");
    assert_int_equal(strlen(jsonutil_str(h, "x5t#S256")), 43);
    assert_string_equal(jsonutil_str(c, "aud"), "https://login/t/token");
    assert_string_equal(jsonutil_str(c, "iss"), "client-1");
    assert_string_equal(jsonutil_str(c, "sub"), "client-1");
    assert_string_equal(jsonutil_str(c, "jti"), "jti-1");
    assert_int_equal(jsonutil_int(c, "nbf", 0), 1700000000);
    assert_int_equal(jsonutil_int(c, "exp", 0), 1700000600);
    /* No padding anywhere, signature present. */
    assert_null(strchr(jwt, '='));
    assert_true(strlen(strrchr(jwt, '.')) > 300);
    /* Garbage PEM: a clear configuration error. */
    free(jwt);
    jwt = NULL;
    assert_int_equal(auth_client_assertion(&jwt, "u", "c", "nope", key, 1, "j"),
                     ERR_BADINPUT);
    assert_non_null(strstr(err_message(), "[auth] certificate"));
    cJSON_Delete(h);
    cJSON_Delete(c);
    free(header);
    free(claims);
    free(cert);
    free(key);
}

static void test_auth__token_responses(void **state)
{
    static const char v2[] = "{\"token_type\":\"Bearer\",\"expires_in\":3599,"
                             "\"ext_expires_in\":3599,\"access_token\":\"t\"}";
    static const char v1[] = "{\"token_type\":\"Bearer\",\"expires_in\":"
                             "\"3599\",\"access_token\":\"t\"}";
    static const char error[] =
        "{\"error\":\"invalid_client\",\"error_description\":"
        "\"AADSTS7000222: expired\",\"error_codes\":[7000222]}";
    struct auth_token_response r;

    (void)state;
    assert_int_equal(auth_token_response_parse(&r, v2, strlen(v2)), 0);
    assert_string_equal(r.access_token, "t");
    assert_int_equal(r.expires_in, 3599);
    auth_token_response_dispose(&r);
    assert_int_equal(auth_token_response_parse(&r, v1, strlen(v1)), 0);
    assert_int_equal(r.expires_in, 3599);
    auth_token_response_dispose(&r);
    assert_int_equal(auth_token_response_parse(&r, error, strlen(error)), 0);
    assert_string_equal(r.error, "invalid_client");
    assert_int_equal(r.aadsts, 7000222);
    assert_non_null(strstr(auth_aadsts_hint(r.aadsts), "expired"));
    auth_token_response_dispose(&r);
    assert_int_equal(auth_token_response_parse(&r, "<html>", 6), ERR_BADINPUT);
    assert_int_equal(auth_token_response_parse(&r, "{}", 2), ERR_BADINPUT);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_auth__secret_and_cache),
        T(test_auth__refusals_name_code_and_hint),
        T(test_auth__certificate_assertion),
        T(test_auth__assertion_shape),
        cmocka_unit_test(test_auth__token_responses),
    };

    return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
