/*
 * testhttp — real HTTP for cmocka tests: a libcurl client (testhttp_do)
 * and the listener under test in this process (struct testlistener):
 * config/optsync.ini plus "section.key=value" overrides, the default
 * mapping, a cache in a temporary directory, port 0.  A listener can be
 * stopped and started again on the same cache (a restart).
 */
#ifndef OPTSYNC_TESTS_TESTHTTP_H
#define OPTSYNC_TESTS_TESTHTTP_H

#include <stddef.h>

#include <curl/curl.h>

#include "cache.h"
#include "config.h"
#include "err.h"
#include "listener.h"
#include "mapping.h"

#define TESTHTTP_DEADLINE_S 120 /* guards against hangs; never a timing */

/* ---- the client -----------------------------------------------------------
 */

struct testhttp_req {
    const char *method;         /* NULL: GET, or POST with a body */
    const char *url;            /* absolute */
    const char *const *headers; /* "Name: value", NULL-terminated, or NULL */
    const char *body;           /* NULL: none */
    size_t len;                 /* of body; 0 with a body: strlen */
    CURL *handle;               /* NULL: a new connection */
};

struct testhttp_resp {
    long status;
    char *body; /* owned, NUL-terminated ("" when none) */
    size_t len;
    char content_type[128];
};

/* Sends one request; returns the curl code (CURLE_OK: an answer came,
 * *out filled; dispose it either way). */
CURLcode testhttp_do(struct testhttp_resp *out, const struct testhttp_req *req);

/* The same, failing the test when no answer came; returns the status. */
long testhttp_call(struct testhttp_resp *out, const struct testhttp_req *req);

void testhttp_resp_dispose(struct testhttp_resp *r);

/* ---- the listener under test -----------------------------------------------
 */

struct testlistener {
    char *dir;   /* owned: temporary, removed by dispose */
    char *db;    /* owned: dir/cache.db */
    char **sets; /* owned: overrides, NULL-terminated */
    size_t n_sets;
    struct optsync_config *cfg; /* owned; from start */
    struct mapping *m;          /* owned: mapping/whatsapp4dynamics.json */
    listener *l;                /* owned; from start */
    int port;
    char base[64]; /* "http://127.0.0.1:N" */
};

/* A temporary directory and cache (created and migrated), the mapping,
 * and the overrides cache.path, listener.port=0, log.level=warn. */
void testlistener_init(struct testlistener *t);

/* One more "section.key=value" override (before start). */
void testlistener_set(struct testlistener *t, const char *fmt, ...)
    ATTR_PRINTFLIKE(2, 3);

/* Loads the config and starts the listener (fails the test otherwise).
 * `setup`, when not NULL, runs between listener_new and listener_start
 * (hooks, extra routes). */
void testlistener_start(struct testlistener *t,
                        void (*setup)(listener *l, void *payload),
                        void *payload);

/* Stops and frees the listener and its config; start may follow. */
void testlistener_stop(struct testlistener *t);

void testlistener_dispose(struct testlistener *t);

/* base + path (owned). */
char *testlistener_url(const struct testlistener *t, const char *path);

#endif
