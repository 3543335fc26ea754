/*
 * listener_p — shared between the pieces of the listener only:
 * listener.c (server, threads, TLS, limits, shutdown), route.c (the
 * table, the request accessors and replies) and listener_api.c (the
 * built-in routes).
 */
#ifndef OPTSYNC_LISTENER_P_H
#define OPTSYNC_LISTENER_P_H

#include <pthread.h>
#include <stdatomic.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/ssl.h>

#include "listener.h"

/* Longest [listener] api_key (keys are compared zero-padded to this). */
#define LISTENER_KEY_MAX 256

/* The connections a worker admitted (design note 2): an open-addressing
 * set of evhttp_connection pointers. */
struct listener__conns {
    void **slots; /* owned; NULL: empty, &tombstone: deleted */
    size_t mask, used;
};

struct listener__worker {
    struct listener *l; /* borrowed */
    int index;
    pthread_t thread;
    int started;

    struct event_base *base;           /* owned */
    struct evhttp *http;               /* owned */
    struct evhttp_bound_socket *bound; /* owned by http */
    struct event *stop_ev, *done_ev;   /* owned */
    struct event *tick_ev;             /* owned: keeps the gate warm */
    struct event *grace_ev;            /* owned: ends a stalled drain */
    cache *c;                          /* owned: this thread's reads */
    gate *g;                           /* owned */

    pthread_mutex_t done_mu;                 /* guards the done list */
    struct route_req *done_head, *done_tail; /* writer completions */

    int inflight;      /* handlers started, replies not yet flushed */
    int writing;       /* of those, waiting for the writer */
    uint64_t requests; /* handled so far (logged at the end) */
    int stopping;
    struct listener__conns conns;
};

struct listener {
    const struct optsync_config *cfg; /* borrowed */
    struct consent_options consent;   /* from cfg and the mapping */
    struct route_table routes;
    writer *w;    /* owned; from listener_start */
    SSL_CTX *tls; /* owned; NULL: plain HTTP */
    int fd;       /* owned: the listening socket; -1 */
    int port;
    int n_workers;
    struct listener__worker *workers;    /* owned */
    unsigned char key[LISTENER_KEY_MAX]; /* the API key, zero-padded */
    int has_key;
    atomic_long connections; /* admitted, all workers */
    long max_connections;
    int started, stopped;

    /* the webhook routes (listener_webhooks.c, housekeeping.c) */
    const struct mapping *m;              /* borrowed; may be NULL */
    struct listener__webhooks *webhooks;  /* owned */
    struct listener__housekeeping *house; /* owned; from listener_start */
    listener_refetch_fn on_refetch;       /* listener_on_refetch */
    void *on_refetch_payload;
    listener_commit_fn on_commit; /* listener_on_commit */
    void *on_commit_payload;
};

struct route_req {
    struct evhttp_request *ev;  /* borrowed from evhttp until the reply */
    struct listener__worker *w; /* borrowed */
    const struct route *route;  /* borrowed; NULL before routing */
    unsigned method;
    const char *path;           /* borrowed from the parsed URI */
    struct evkeyvalq query;     /* owned */
    struct route_params params; /* owned */
    int64_t start_ns;
    int close; /* answer with Connection: close */

    /* route_req_write */
    struct writer_item item;
    route_write_done done;
    void *payload;
    struct route_req *next_done;
};

/* ---- route.c --------------------------------------------------------------
 */

/* Sends the reply and frees `r` (every route_reply* ends here). */
void route__send(struct route_req *r, int status, const char *content_type,
                 const void *body, size_t len);

/* ---- listener.c ---------------------------------------------------------- */

/* A reply was handed to evhttp; the worker counts it answered when it
 * has been written out (note 4). */
void listener__sent(struct listener__worker *w, struct evhttp_request *ev,
                    int status);

/* Hands a request to the writer (route_req_write). */
int listener__submit(struct route_req *r);

/* True when the request carries the API key (constant time). */
int listener__key_ok(const struct listener *l, const struct route_req *r);

/* ---- listener_api.c ------------------------------------------------------ */

/* Registers the gate API, /healthz, /readyz and /metrics. */
int listener__api_register(struct listener *l);

/* ---- listener_webhooks.c ------------------------------------------------- */

/* Builds what the webhook routes share (keywords, secrets, the Dataverse
 * webhook handle) and registers GET/POST /webhooks/whatsapp,
 * POST /webhooks/whatsapp/{configuration} and POST /webhooks/dataverse.
 * Returns 0, or ERR_FAIL (a configured keyword is unusable). */
int listener__webhooks_register(struct listener *l);
void listener__webhooks_free(struct listener *l);

/* ---- housekeeping.c ------------------------------------------------------ */

/* Starts / stops the housekeeping thread (listener.h design note 5). */
int listener__housekeeping_start(struct listener *l);
void listener__housekeeping_stop(struct listener *l);

/* Asks the housekeeping thread to replay the quarantine soon (a delivery
 * linked a new BSUID); any thread, never blocks. */
void listener__housekeeping_replay(struct listener *l);

#endif
