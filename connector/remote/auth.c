/*
 * auth — see auth.h for the design notes.
 */
#include "auth.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "caps.h"
#include "clock.h"
#include "err.h"
#include "jsonutil.h"
#include "log.h"
#include "xalloc.h"

#define EARLY_REFRESH_MS (5 * 60 * 1000)
#define ASSERTION_LIFETIME_S 600

struct auth {
    const struct optsync_config *cfg; /* borrowed */
    http *http;                       /* borrowed */
    char *token_url;                  /* owned */
    pthread_mutex_t mu;
    char *token;        /* owned, sensitive; NULL: none */
    int64_t refresh_at; /* wall ms after which we ask again */
    int64_t fetched;
};

int auth_new(auth **out, const struct optsync_config *cfg, http *h)
{
    auth *a = xcalloc(1, sizeof(*a));
    char *tenant = http_escape(cfg->auth.tenant_id);

    a->cfg = cfg;
    a->http = h;
    a->token_url =
        xasprintf("%s/%s/oauth2/v2.0/token", cfg->auth.authority, tenant);
    free(tenant);
    pthread_mutex_init(&a->mu, NULL);
    *out = a;
    return 0;
}

void auth_free(auth *a)
{
    if (!a)
        return;
    xfree_secret(a->token);
    free(a->token_url);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

int64_t auth_tokens_fetched(const auth *a)
{
    return a->fetched;
}

void auth_invalidate(auth *a)
{
    pthread_mutex_lock(&a->mu);
    xfree_secret(a->token);
    a->token = NULL;
    pthread_mutex_unlock(&a->mu);
}

/* ---- token responses ------------------------------------------------------
 */

void auth_token_response_dispose(struct auth_token_response *r)
{
    xfree_secret(r->access_token);
    free(r->error);
    free(r->error_description);
    memset(r, 0, sizeof(*r));
}

static int64_t expires_in_of(const cJSON *root)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "expires_in");
    int64_t n = 0;
    const char *p;

    if (cJSON_IsNumber(v) && v->valuedouble > 0 && v->valuedouble < 1e9)
        return (int64_t)v->valuedouble;
    if (!cJSON_IsString(v))
        return 0;
    /* v1 endpoints send "3599". */
    for (p = v->valuestring; *p >= '0' && *p <= '9' && n < 1000000000; p++)
        n = n * 10 + (*p - '0');
    return *p ? 0 : n;
}

static long first_error_code(const cJSON *root)
{
    const cJSON *codes = cJSON_GetObjectItemCaseSensitive(root, "error_codes");
    const cJSON *first = cJSON_IsArray(codes) ? codes->child : NULL;

    if (cJSON_IsNumber(first) && first->valuedouble > 0 &&
        first->valuedouble < 1e9)
        return (long)first->valuedouble;
    return 0;
}

int auth_token_response_parse(struct auth_token_response *out, const char *body,
                              size_t len)
{
    cJSON *root = jsonutil_parse(body, len);
    const char *tok, *type, *error;
    int rc = ERR_BADINPUT;

    memset(out, 0, sizeof(*out));
    if (!root || !cJSON_IsObject(root))
        goto out;
    tok = jsonutil_str(root, "access_token");
    type = jsonutil_str(root, "token_type");
    error = jsonutil_str(root, "error");
    if (tok && *tok && (!type || strcasecmp(type, "Bearer") == 0)) {
        out->access_token = xstrdup(tok);
        out->expires_in = expires_in_of(root);
        rc = out->expires_in > 0 ? 0 : ERR_BADINPUT;
    } else if (error) {
        out->error = xstrdup(error);
        tok = jsonutil_str(root, "error_description");
        out->error_description = tok ? xstrndup(tok, 300) : NULL;
        out->aadsts = first_error_code(root);
        rc = 0;
    }
out:
    cJSON_Delete(root);
    if (rc)
        auth_token_response_dispose(out);
    return rc;
}

const char *auth_aadsts_hint(long aadsts)
{
    switch (aadsts) {
    case 7000215:
        return "wrong client secret: give the secret's VALUE, not its id";
    case 7000222:
        return "the client secret has expired: create a new one in the app "
               "registration and update client_secret";
    case 7000218:
        return "no credential was sent: set client_secret or a certificate";
    case 700016:
        return "application not found in this tenant: check client_id and "
               "tenant_id";
    case 90002: return "tenant not found: check tenant_id";
    case 70011:
    case 700022:
    case 700023:
        return "invalid scope: use one resource's /.default, e.g. "
               "https://contoso.crm4.dynamics.com/.default";
    case 700027:
        return "certificate assertion rejected: is this certificate "
               "uploaded to the app registration?";
    case 500011:
        return "the Dataverse environment is not in this tenant: check "
               "[dataverse] url";
    default: return NULL;
    }
}

/* ---- client assertion (certificate credential) -------------------------- */

char *auth_base64url(const unsigned char *data, size_t len)
{
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = xmalloc(len / 3 * 4 + 5), *p = out;
    size_t i;

    for (i = 0; i + 2 < len; i += 3) {
        *p++ = tbl[data[i] >> 2];
        *p++ = tbl[((data[i] & 3) << 4) | (data[i + 1] >> 4)];
        *p++ = tbl[((data[i + 1] & 15) << 2) | (data[i + 2] >> 6)];
        *p++ = tbl[data[i + 2] & 63];
    }
    if (i < len) {
        *p++ = tbl[data[i] >> 2];
        if (i + 1 < len) {
            *p++ = tbl[((data[i] & 3) << 4) | (data[i + 1] >> 4)];
            *p++ = tbl[(data[i + 1] & 15) << 2];
        } else {
            *p++ = tbl[(data[i] & 3) << 4];
        }
    }
    *p = '\0';
    return out;
}

/* base64url(SHA-256(DER of the certificate)). */
static char *thumbprint_s256(const char *cert_pem)
{
    BIO *bio = BIO_new_mem_buf(cert_pem, -1);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    unsigned char md[32];
    unsigned int mdlen = 0;
    char *out = NULL;

    if (x && X509_digest(x, EVP_sha256(), md, &mdlen) == 1)
        out = auth_base64url(md, mdlen);
    X509_free(x);
    BIO_free(bio);
    return out;
}

static char *b64_json(cJSON *o)
{
    char *text = cJSON_PrintUnformatted(o);
    char *b64 = auth_base64url((const unsigned char *)text, strlen(text));

    free(text);
    cJSON_Delete(o);
    return b64;
}

/* header.claims, both base64url (malloc'd). */
static char *signing_input(const char *thumb, const char *token_url,
                           const char *client_id, int64_t now, const char *jti)
{
    cJSON *h = cJSON_CreateObject(), *c = cJSON_CreateObject();
    char *hb, *cb, *out;

    cJSON_AddStringToObject(h, "alg", "PS256");
    cJSON_AddStringToObject(h, "typ", "JWT");
    cJSON_AddStringToObject(h, "x5t#S256", thumb);
    cJSON_AddStringToObject(c, "aud", token_url);
    cJSON_AddStringToObject(c, "iss", client_id);
    cJSON_AddStringToObject(c, "sub", client_id);
    cJSON_AddStringToObject(c, "jti", jti);
    cJSON_AddNumberToObject(c, "nbf", (double)now);
    cJSON_AddNumberToObject(c, "iat", (double)now);
    cJSON_AddNumberToObject(c, "exp", (double)(now + ASSERTION_LIFETIME_S));
    hb = b64_json(h);
    cb = b64_json(c);
    out = xasprintf("%s.%s", hb, cb);
    free(hb);
    free(cb);
    return out;
}

/* RSASSA-PSS with SHA-256 and a salt as long as the digest (PS256). */
static char *sign_ps256(const char *input, const char *key_pem)
{
    BIO *bio = BIO_new_mem_buf(key_pem, -1);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *sig = NULL;
    size_t siglen = 0;
    char *out = NULL;

    if (!key || !md ||
        EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, key) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
        EVP_DigestSign(md, NULL, &siglen, (const unsigned char *)input,
                       strlen(input)) != 1)
        goto done;
    sig = xmalloc(siglen);
    if (EVP_DigestSign(md, sig, &siglen, (const unsigned char *)input,
                       strlen(input)) == 1)
        out = auth_base64url(sig, siglen);
done:
    free(sig);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    BIO_free(bio);
    return out;
}

int auth_client_assertion(char **out, const char *token_url,
                          const char *client_id, const char *cert_pem,
                          const char *key_pem, int64_t now, const char *jti)
{
    char *thumb = thumbprint_s256(cert_pem), *input = NULL, *sig = NULL;
    int rc = ERR_BADINPUT;

    if (!thumb) {
        err_set(ERR_CLASS_CONFIG, "[auth] certificate: not a PEM "
                                  "certificate OpenSSL can read");
        goto out;
    }
    input = signing_input(thumb, token_url, client_id, now, jti);
    sig = sign_ps256(input, key_pem);
    if (!sig) {
        err_set(ERR_CLASS_CONFIG,
                "[auth] private_key: not an RSA private "
                "key (PEM, unencrypted) OpenSSL can sign with");
        goto out;
    }
    *out = xasprintf("%s.%s", input, sig);
    rc = 0;
out:
    free(thumb);
    free(input);
    free(sig);
    return rc;
}

static void new_guid(char out[37])
{
    unsigned char b[16];

    RAND_bytes(b, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
             b[11], b[12], b[13], b[14], b[15]);
}

/* ---- asking for a token -------------------------------------------------- */

/* The form body (malloc'd, sensitive). */
static int form_body(char **out, const auth *a)
{
    const struct optsync_config *cfg = a->cfg;
    char *id = http_escape(cfg->auth.client_id);
    char *scope = http_escape(cfg->auth.scope);
    char *cred = NULL, *assertion = NULL, jti[37];
    int rc = 0;

    if (cfg->auth.client_secret && *cfg->auth.client_secret) {
        char *secret = http_escape(cfg->auth.client_secret);

        cred = xasprintf("client_secret=%s", secret);
        xfree_secret(secret);
    } else {
        new_guid(jti);
        rc =
            auth_client_assertion(&assertion, a->token_url, cfg->auth.client_id,
                                  cfg->auth.certificate, cfg->auth.private_key,
                                  clock_now_ms() / 1000, jti);
        if (rc == 0)
            cred = xasprintf("client_assertion_type=urn%%3Aietf%%3Aparams%%3A"
                             "oauth%%3Aclient-assertion-type%%3Ajwt-bearer&"
                             "client_assertion=%s",
                             assertion);
    }
    if (rc == 0)
        *out = xasprintf("client_id=%s&scope=%s&grant_type="
                         "client_credentials&%s",
                         id, scope, cred);
    xfree_secret(cred);
    xfree_secret(assertion);
    free(id);
    free(scope);
    return rc;
}

static int refused(const struct auth_token_response *t, long status)
{
    const char *hint = auth_aadsts_hint(t->aadsts);

    err_set(ERR_CLASS_AUTH,
            "Entra ID refused the token request (HTTP %ld): %s AADSTS%ld%s%s",
            status, t->error, t->aadsts, hint ? ": " : "", hint ? hint : "");
    log_error("auth_refused status=%ld error=%s aadsts=%ld", status,
              log_q(t->error), t->aadsts);
    return ERR_AUTH;
}

static int interpret(auth *a, const struct http_response *resp)
{
    struct auth_token_response t;
    int64_t life;
    int rc;

    if (auth_token_response_parse(&t, resp->body.data, resp->body.len) != 0) {
        err_set(resp->status >= 500 ? ERR_CLASS_NET : ERR_CLASS_AUTH,
                "token endpoint answered HTTP %ld without a token or an "
                "error",
                resp->status);
        return ERR_FAIL;
    }
    if (t.error || resp->status != 200) {
        rc = t.error ? refused(&t, resp->status) : ERR_FAIL;
        auth_token_response_dispose(&t);
        return rc;
    }
    life = t.expires_in * 1000;
    xfree_secret(a->token);
    a->token = t.access_token;
    t.access_token = NULL;
    a->refresh_at = clock_now_ms() + life -
                    (life / 2 < EARLY_REFRESH_MS ? life / 2 : EARLY_REFRESH_MS);
    a->fetched++;
    log_info("auth_token expires_in=%lld", (long long)t.expires_in);
    auth_token_response_dispose(&t);
    return 0;
}

static int fetch(auth *a)
{
    static const char *const headers[] = {
        "Content-Type: application/x-www-form-urlencoded",
        "Accept: application/json", NULL
    };
    struct http_request req;
    struct http_response resp;
    char *body = NULL;
    int rc = form_body(&body, a);

    if (rc)
        return rc;
    memset(&req, 0, sizeof(req));
    req.method = "POST";
    req.url = a->token_url;
    req.headers = headers;
    req.body = body;
    req.body_len = strlen(body);
    req.max_response = CAP_TOKEN_RESPONSE_BYTES;
    http_response_init(&resp);
    rc = http_request(&resp, a->http, &req);
    if (rc == 0)
        rc = interpret(a, &resp);
    else
        err_prefix("token endpoint");
    /* The response may hold a token: wipe before freeing. */
    if (resp.body.data)
        OPENSSL_cleanse(resp.body.data, resp.body.len);
    http_response_dispose(&resp);
    xfree_secret(body);
    return rc;
}

int auth_header(char **out, auth *a)
{
    int rc = 0;

    pthread_mutex_lock(&a->mu);
    if (!a->token || clock_now_ms() >= a->refresh_at)
        rc = fetch(a);
    if (rc == 0)
        *out = xasprintf("Authorization: Bearer %s", a->token);
    pthread_mutex_unlock(&a->mu);
    return rc;
}
