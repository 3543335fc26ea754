/*
 * whatsapp_auth — does a webhook request come from WhatsApp?  Meta's
 * X-Hub-Signature-256 (HMAC-SHA256 of the raw body with the app secret),
 * 360dialog's configured secret header, and the GET verification
 * handshake.  Runs before any byte of a body is parsed; compares every
 * secret in constant time; never logs or returns a secret.
 */
#include "whatsapp.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "caps.h"
#include "config.h"
#include "err.h"
#include "xalloc.h"

#define SIGNATURE_PREFIX "sha256="
#define SIGNATURE_HEX 64 /* SHA-256: 32 bytes, hex */

void whatsapp_auth_init(struct whatsapp_auth *out,
                        const struct optsync_config *cfg)
{
    memset(out, 0, sizeof(*out));
    out->mode = cfg->whatsapp.auth && strcmp(cfg->whatsapp.auth, "header") == 0
                    ? WHATSAPP_AUTH_HEADER
                    : WHATSAPP_AUTH_SIGNATURE;
    out->app_secret = cfg->whatsapp.app_secret;
    out->header_name = cfg->whatsapp.header_name;
    out->header_value = cfg->whatsapp.header_value;
    out->verify_token = cfg->whatsapp.verify_token;
}

const char *whatsapp_auth_header_name(const struct whatsapp_auth *a)
{
    return a->mode == WHATSAPP_AUTH_HEADER ? a->header_name
                                           : WHATSAPP_SIGNATURE_HEADER;
}

/* SHA-256 of both, compared: constant time whatever the lengths. */
static int secret_equal(const char *given, const char *expected)
{
    unsigned char g[SHA256_DIGEST_LENGTH], e[SHA256_DIGEST_LENGTH];
    int equal;

    SHA256((const unsigned char *)given, strlen(given), g);
    SHA256((const unsigned char *)expected, strlen(expected), e);
    equal = CRYPTO_memcmp(g, e, sizeof(g)) == 0;
    OPENSSL_cleanse(g, sizeof(g));
    OPENSSL_cleanse(e, sizeof(e));
    return equal;
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* "sha256=" + 64 hex digits (either case) → 32 bytes; -1 otherwise.  The
 * header is what the sender claims, not a secret: branching on it leaks
 * nothing. */
static int signature_decode(unsigned char *out, const char *header)
{
    size_t plen = strlen(SIGNATURE_PREFIX), i;
    int hi, lo;

    if (strncasecmp(header, SIGNATURE_PREFIX, plen) != 0 ||
        strlen(header + plen) != SIGNATURE_HEX)
        return -1;
    header += plen;
    for (i = 0; i < SIGNATURE_HEX / 2; i++) {
        hi = hex_value(header[2 * i]);
        lo = hex_value(header[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

static int refuse(const char *why)
{
    err_set(ERR_CLASS_AUTH, "WhatsApp webhook refused: %s", why);
    return ERR_AUTH;
}

static int check_signature(const struct whatsapp_auth *a, const char *header,
                           const void *body, size_t len)
{
    unsigned char claimed[SIGNATURE_HEX / 2], mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    int equal;

    if (!a->app_secret || !*a->app_secret)
        return refuse("[whatsapp] app_secret is not set");
    if (!header)
        return refuse("no " WHATSAPP_SIGNATURE_HEADER " header");
    if (signature_decode(claimed, header) != 0)
        return refuse(WHATSAPP_SIGNATURE_HEADER
                      " is not sha256= and 64 hex digits");
    if (!HMAC(EVP_sha256(), a->app_secret, (int)strlen(a->app_secret),
              (const unsigned char *)(len ? body : ""), len, mac, &mac_len) ||
        mac_len != sizeof(claimed)) {
        OPENSSL_cleanse(mac, sizeof(mac));
        return refuse("cannot compute HMAC-SHA256");
    }
    equal = CRYPTO_memcmp(claimed, mac, sizeof(claimed)) == 0;
    OPENSSL_cleanse(mac, sizeof(mac));
    return equal ? 0 : refuse("signature does not match the body");
}

int whatsapp_auth_check(const struct whatsapp_auth *a, const char *header,
                        const void *body, size_t len)
{
    if (a->mode == WHATSAPP_AUTH_SIGNATURE)
        return check_signature(a, header, body, len);
    if (!a->header_value || !*a->header_value)
        return refuse("[whatsapp] header_value is not set");
    if (!header)
        return refuse("no secret header");
    return secret_equal(header, a->header_value)
               ? 0
               : refuse("secret header does not match");
}

/* Echoed as text/plain: keep it to what Meta sends (digits, in practice). */
static int challenge_ok(const char *challenge)
{
    size_t n = 0;

    if (!challenge)
        return 0;
    for (; challenge[n]; n++)
        if (challenge[n] < 0x21 || challenge[n] > 0x7e ||
            n >= CAP_WA_CHALLENGE_BYTES)
            return 0;
    return n > 0;
}

int whatsapp_handshake_check(const struct whatsapp_auth *a, const char *mode,
                             const char *verify_token, const char *challenge)
{
    if (!a->verify_token || !*a->verify_token)
        return refuse("[whatsapp] verify_token is not set");
    if (!mode || strcmp(mode, "subscribe") != 0)
        return refuse("hub.mode is not subscribe");
    if (!verify_token || !secret_equal(verify_token, a->verify_token))
        return refuse("hub.verify_token does not match");
    if (!challenge_ok(challenge))
        return refuse("hub.challenge missing or not printable");
    return 0;
}

int whatsapp_handshake_query(char **out, const struct whatsapp_auth *a,
                             const char *query)
{
    struct evkeyvalq params;
    int rc;

    /* evhttp_parse_query_str initialises `params`, and clears it itself
     * when it fails. */
    if (!query || evhttp_parse_query_str(query, &params) != 0)
        return refuse("unreadable query string");
    rc = whatsapp_handshake_check(
        a, evhttp_find_header(&params, "hub.mode"),
        evhttp_find_header(&params, "hub.verify_token"),
        evhttp_find_header(&params, "hub.challenge"));
    if (rc == 0)
        *out = xstrdup(evhttp_find_header(&params, "hub.challenge"));
    evhttp_clear_headers(&params);
    return rc;
}
