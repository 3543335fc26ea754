/*
 * auth — OAuth 2.0 client credentials against Microsoft Entra ID: a client
 * secret, or a certificate assertion (PS256 + x5t#S256, signed with
 * OpenSSL), and a token cache.
 *
 * Pipeline position: under dataverse.c, which asks for an Authorization
 * header before each request and calls auth_invalidate() after a 401.
 *
 * Design notes
 *  (1) A token is reused until shortly before it expires (five minutes,
 *      or half its life when that is shorter); there is no refresh token
 *      in this flow, so "refresh" means asking again.
 *  (2) Secrets and tokens live only in memory, are wiped
 *      (OPENSSL_cleanse) before being freed, and are never logged: error
 *      messages carry Entra's error code, AADSTS number and a hint.
 *  (3) Thread-safe: the poller and the outbox share one auth.
 */
#ifndef OPTSYNC_AUTH_H
#define OPTSYNC_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "http.h"

typedef struct auth auth;

/* Uses cfg->auth.* (borrowed for auth's lifetime) and `h` (borrowed). */
int auth_new(auth **out, const struct optsync_config *cfg, http *h);
void auth_free(auth *a); /* NULL is a no-op; wipes the token */

/*
 * "Authorization: Bearer <token>" (malloc'd; free with xfree_secret),
 * fetching a token when none is cached or it is about to expire.
 * Returns 0; ERR_AUTH when Entra refused the credentials (err_set names
 * the AADSTS code and a hint; exit code 3); ERR_FAIL / ERR_THROTTLED when
 * the token endpoint could not be reached.
 */
int auth_header(char **out, auth *a);

/* Forgets the cached token (after a 401 from the Web API). */
void auth_invalidate(auth *a);

/* Tokens fetched so far (for tests and status). */
int64_t auth_tokens_fetched(const auth *a);

/* ---- pieces exposed for tests and the fuzzer ----------------------------- */

struct auth_token_response {
    char *access_token;      /* owned, sensitive */
    int64_t expires_in;      /* seconds */
    char *error;             /* owned: invalid_client, ... */
    char *error_description; /* owned */
    long aadsts;             /* first error code; 0 when none */
};

/*
 * Parses a token endpoint answer (success or Entra error JSON).  Returns
 * 0 with either access_token or error set; ERR_BADINPUT when the body is
 * neither.  expires_in may be a number or a string (v1 endpoints).
 */
int auth_token_response_parse(struct auth_token_response *out, const char *body,
                              size_t len);
void auth_token_response_dispose(struct auth_token_response *r);

/* A hint for an AADSTS number (static text; NULL when we have none). */
const char *auth_aadsts_hint(long aadsts);

/*
 * The signed client assertion (a JWT: PS256, x5t#S256 of the
 * certificate's DER) for `token_url` (malloc'd).  `now` in seconds, `jti`
 * a fresh GUID.  Returns 0 or ERR_BADINPUT (unreadable PEM) with err_set.
 */
int auth_client_assertion(char **out, const char *token_url,
                          const char *client_id, const char *cert_pem,
                          const char *key_pem, int64_t now, const char *jti);

/* base64url without padding (malloc'd). */
char *auth_base64url(const unsigned char *data, size_t len);

#endif
