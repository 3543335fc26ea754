/*
 * listener — the server: socket, worker threads and their event loops,
 * TLS, limits, dispatching to the route table, the writer's completions
 * and graceful shutdown.  listener.h has the design notes.
 */
#include "listener_p.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/thread.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

#include "caps.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "xalloc.h"

/* How long a stopping worker waits for replies to be written out. */
#define LISTENER_DRAIN_GRACE_S 10

static pthread_once_t libevent_once = PTHREAD_ONCE_INIT;
static int libevent_threads_rc;

static void libevent_init(void)
{
    libevent_threads_rc = evthread_use_pthreads();
}

/* ---- admitted connections (design note 2) -------------------------------- */

static char tombstone;

static size_t conn_hash(const void *p, size_t mask)
{
    uintptr_t v = (uintptr_t)p;

    v ^= v >> 17;
    v *= 0x9E3779B97F4A7C15ull;
    return (size_t)(v >> 20) & mask;
}

static void **conn_find(struct listener__conns *s, const void *p, int insert)
{
    size_t i = conn_hash(p, s->mask);
    void **grave = NULL;

    for (;; i = (i + 1) & s->mask) {
        if (s->slots[i] == p)
            return &s->slots[i];
        if (s->slots[i] == &tombstone && !grave)
            grave = &s->slots[i];
        if (!s->slots[i])
            return insert ? (grave ? grave : &s->slots[i]) : NULL;
    }
}

/* Rehashes into a table sized for the live entries (tombstones go), so
 * churn never makes it grow without bound. */
static void conn_rehash(struct listener__conns *s)
{
    struct listener__conns big;
    size_t i, live = 0;

    for (i = 0; s->slots && i <= s->mask; i++)
        live += s->slots[i] && s->slots[i] != &tombstone;
    big.mask = 255;
    while ((live + 1) * 4 > big.mask)
        big.mask = 2 * big.mask + 1;
    big.slots = xcalloc(big.mask + 1, sizeof(*big.slots));
    big.used = live;
    for (i = 0; s->slots && i <= s->mask; i++)
        if (s->slots[i] && s->slots[i] != &tombstone)
            *conn_find(&big, s->slots[i], 1) = s->slots[i];
    free(s->slots);
    *s = big;
}

static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    struct listener__worker *w = arg;
    void **slot = w->conns.slots ? conn_find(&w->conns, evcon, 0) : NULL;

    if (!slot)
        return;
    *slot = &tombstone;
    atomic_fetch_sub(&w->l->connections, 1);
    metrics_connections_add(-1);
}

/* Admits the request's connection at its first request; 0 when over
 * max_connections. */
static int conn_admit(struct listener__worker *w, struct evhttp_request *ev)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
    void **slot;

    if (!evcon)
        return 1;
    if (w->conns.slots && conn_find(&w->conns, evcon, 0))
        return 1;
    if (atomic_fetch_add(&w->l->connections, 1) >= w->l->max_connections) {
        atomic_fetch_sub(&w->l->connections, 1);
        metrics_connection_rejected();
        return 0;
    }
    if (!w->conns.slots || (w->conns.used + 1) * 2 > w->conns.mask)
        conn_rehash(&w->conns);
    slot = conn_find(&w->conns, evcon, 1);
    if (*slot != &tombstone)
        w->conns.used++;
    *slot = evcon;
    metrics_connections_add(1);
    evhttp_connection_set_closecb(evcon, on_conn_close, w);
    return 1;
}

/* ---- the API key ----------------------------------------------------------
 */

int listener__key_ok(const struct listener *l, const struct route_req *r)
{
    unsigned char got[LISTENER_KEY_MAX];
    const char *key = route_req_header(r, "X-API-Key");
    const char *auth = route_req_header(r, "Authorization");
    size_t n;

    if (!l->has_key)
        return 0; /* no key configured: the /v1 routes stay closed */
    if (!key && auth && strncasecmp(auth, "Bearer ", 7) == 0)
        key = auth + 7;
    if (!key)
        return 0;
    n = strnlen(key, sizeof(got) + 1);
    if (n > sizeof(got))
        return 0; /* longer than any key: says nothing about ours */
    /* Both zero-padded to the same size and compared whole, in constant
     * time: neither the key's bytes nor its length show in the timing
     * (a C string holds no NUL, so equal padded buffers are equal
     * keys). */
    memset(got, 0, sizeof(got));
    memcpy(got, key, n);
    return CRYPTO_memcmp(got, l->key, sizeof(got)) == 0;
}

/* ---- dispatching ----------------------------------------------------------
 */

static unsigned method_of(struct evhttp_request *ev)
{
    switch (evhttp_request_get_command(ev)) {
    case EVHTTP_REQ_GET:
    case EVHTTP_REQ_HEAD: return ROUTE_GET;
    case EVHTTP_REQ_POST: return ROUTE_POST;
    case EVHTTP_REQ_PUT: return ROUTE_PUT;
    case EVHTTP_REQ_DELETE: return ROUTE_DELETE;
    case EVHTTP_REQ_PATCH: return ROUTE_PATCH;
    case EVHTTP_REQ_OPTIONS: return ROUTE_OPTIONS;
    default: return ROUTE_OTHER;
    }
}

static void allow_header(struct route_req *r, unsigned allowed)
{
    static const char *const names[] = { "GET, HEAD", "POST",  "PUT",
                                         "DELETE",    "PATCH", "OPTIONS" };
    char buf[64] = "";
    size_t i;

    for (i = 0; i < 6; i++) {
        if (!(allowed & (1u << i)))
            continue;
        if (buf[0])
            strncat(buf, ", ", sizeof(buf) - strlen(buf) - 1);
        strncat(buf, names[i], sizeof(buf) - strlen(buf) - 1);
    }
    route_reply_header(r, "Allow", buf);
}

/* Routing, the API key and the query string; 0 when the handler may
 * run, else the request was answered. */
static int prepare(struct route_req *r)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->ev);
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    unsigned allowed;

    r->path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!r->path || !*r->path)
        r->path = "/";
    r->route = route_table_match(&r->w->l->routes, r->method, r->path,
                                 &r->params, &allowed);
    if (!r->route && allowed) {
        allow_header(r, allowed);
        route_reply_error(r, 405, "method_not_allowed", NULL);
        return -1;
    }
    if (!r->route) {
        route_reply_error(r, 404, "not_found", NULL);
        return -1;
    }
    if ((r->route->flags & ROUTE_API_KEY) && !listener__key_ok(r->w->l, r)) {
        route_reply_header(r, "WWW-Authenticate", "Bearer");
        route_reply_error(r, 401, "unauthorized",
                          "X-API-Key or Authorization: Bearer required");
        return -1;
    }
    if (query && evhttp_parse_query_str(query, &r->query) != 0) {
        route_reply_error(r, 400, "bad_request", "malformed query string");
        return -1;
    }
    return 0;
}

static void on_request(struct evhttp_request *ev, void *arg)
{
    struct listener__worker *w = arg;
    struct route_req *r = xcalloc(1, sizeof(*r));

    r->start_ns = metrics_now_ns();
    r->ev = ev;
    r->w = w;
    r->method = method_of(ev);
    r->query.tqh_first = NULL; /* TAILQ_INIT, without sys/queue.h */
    r->query.tqh_last = &r->query.tqh_first;
    w->inflight++;
    w->requests++;
    if (w->stopping) {
        route_reply_error(r, 503, "shutting_down", NULL);
        return;
    }
    if (!conn_admit(w, ev)) {
        r->close = 1;
        route_reply_error(r, 503, "too_many_connections", NULL);
        return;
    }
    if (prepare(r) == 0)
        r->route->fn(r, r->route->arg);
}

/* ---- the writer's completions (route_req_write) ------------------------- */

/* Writer thread: queue the request for its own loop and wake it. */
static void on_item_complete(struct writer_item *item, void *arg)
{
    struct route_req *r = arg;
    struct listener__worker *w = r->w;

    (void)item;
    r->next_done = NULL;
    pthread_mutex_lock(&w->done_mu);
    if (w->done_tail)
        w->done_tail->next_done = r;
    else
        w->done_head = r;
    w->done_tail = r;
    pthread_mutex_unlock(&w->done_mu);
    event_active(w->done_ev, EV_READ, 0);
}

/* Worker thread: answer every completed request. */
static void on_done(evutil_socket_t fd, short what, void *arg)
{
    struct listener__worker *w = arg;
    struct route_req *r, *next;

    (void)fd;
    (void)what;
    pthread_mutex_lock(&w->done_mu);
    r = w->done_head;
    w->done_head = w->done_tail = NULL;
    pthread_mutex_unlock(&w->done_mu);
    for (; r; r = next) {
        next = r->next_done;
        w->writing--;
        r->done(r, r->item.rc, r->item.committed, r->payload);
    }
}

int listener__submit(struct route_req *r)
{
    r->item.complete = on_item_complete;
    r->item.complete_arg = r;
    if (!r->w->l->w || r->w->stopping ||
        writer_submit(r->w->l->w, &r->item) != 0)
        return ERR_FAIL;
    r->w->writing++;
    return 0;
}

/* ---- stopping (design note 4) -------------------------------------------- */

/* Stopping: the loop ends once every reply it started is written. */
static void answered(struct listener__worker *w)
{
    w->inflight--;
    if (w->stopping && w->inflight == 0)
        event_base_loopexit(w->base, NULL);
}

static void on_sent(struct evhttp_request *ev, void *arg)
{
    (void)ev;
    answered(arg);
}

void listener__sent(struct listener__worker *w, struct evhttp_request *ev,
                    int status)
{
    /* Without a connection (the client left while the handler worked)
     * evhttp frees the request at once and calls nobody back. */
    int gone = evhttp_request_get_connection(ev) == NULL;

    if (!gone)
        evhttp_request_set_on_complete_cb(ev, on_sent, w);
    evhttp_send_reply(ev, status, NULL, NULL);
    if (gone)
        answered(w);
}

/* A reply whose connection failed mid-write is never reported written:
 * after a grace period the loop ends anyway, but never while the writer
 * still owes this worker a completion (it would land on a freed loop). */
static void on_grace(evutil_socket_t fd, short what, void *arg)
{
    struct listener__worker *w = arg;
    struct timeval again = { 1, 0 };

    (void)fd;
    (void)what;
    if (w->writing == 0) {
        log_warn("listener_drain_timeout worker=%d unflushed=%d", w->index,
                 w->inflight);
        event_base_loopexit(w->base, NULL);
    } else {
        event_add(w->grace_ev, &again);
    }
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct listener__worker *w = arg;
    struct timeval grace = { LISTENER_DRAIN_GRACE_S, 0 };

    (void)fd;
    (void)what;
    w->stopping = 1;
    if (w->bound) {
        evhttp_del_accept_socket(w->http, w->bound); /* closes our dup */
        w->bound = NULL;
    }
    if (w->inflight == 0)
        event_base_loopexit(w->base, NULL);
    else
        event_add(w->grace_ev, &grace);
}

/* Design note 3: follow other processes' commits while idle. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct listener__worker *w = arg;

    (void)fd;
    (void)what;
    if (gate_refresh(w->g) != 0)
        log_warn("listener_gate_refresh_failed worker=%d error=%s", w->index,
                 log_q(err_message()));
}

/* ---- TLS ------------------------------------------------------------------
 */

static struct bufferevent *tls_bev(struct event_base *base, void *arg)
{
    struct listener__worker *w = arg;
    SSL *ssl = SSL_new(w->l->tls);
    struct bufferevent *bev;

    if (!ssl)
        return NULL;
    bev = bufferevent_openssl_socket_new(
        base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev) /* clients that drop the TCP connection without close_notify */
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

static int tls_fail(const char *what, const char *path)
{
    unsigned long e = ERR_get_error();
    char buf[256];

    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    err_set(ERR_CLASS_CONFIG, "[listener] %s %s: %s", what, path, buf);
    return ERR_FAIL;
}

static int tls_init(struct listener *l)
{
    const char *cert = l->cfg->listener.tls_cert;
    const char *key = l->cfg->listener.tls_key;

    if (!cert && !key)
        return 0;
    if (!cert || !key) {
        err_set(ERR_CLASS_CONFIG, "[listener] tls_cert and tls_key go "
                                  "together");
        return ERR_FAIL;
    }
    l->tls = SSL_CTX_new(TLS_server_method());
    if (!l->tls)
        return tls_fail("TLS context", "");
    SSL_CTX_set_min_proto_version(l->tls, TLS1_2_VERSION);
    SSL_CTX_set_options(l->tls,
                        SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(l->tls, cert) != 1)
        return tls_fail("tls_cert", cert);
    if (SSL_CTX_use_PrivateKey_file(l->tls, key, SSL_FILETYPE_PEM) != 1)
        return tls_fail("tls_key", key);
    if (SSL_CTX_check_private_key(l->tls) != 1)
        return tls_fail("tls_key does not match tls_cert", key);
    return 0;
}

/* ---- the socket -----------------------------------------------------------
 */

/*
 * A listening socket on [listener] address and `port` (0: a free one),
 * with SO_REUSEPORT so that every worker can have its own (design note
 * 1).  Writes the bound port to *out_port.
 */
static int listen_fd(int *out, int *out_port, const struct listener *l,
                     int port)
{
    struct addrinfo hints, *res = NULL;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char service[16];
    int fd = -1, one = 1, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(service, sizeof(service), "%d", port);
    rc = getaddrinfo(l->cfg->listener.address, service, &hints, &res);
    if (rc != 0) {
        err_set(ERR_CLASS_CONFIG, "[listener] address %s: %s",
                l->cfg->listener.address, gai_strerror(rc));
        return ERR_FAIL;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 ||
        listen(fd, SOMAXCONN) != 0 || evutil_make_socket_nonblocking(fd) ||
        getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        err_set(ERR_CLASS_OS, "cannot listen on %s:%s: %s",
                l->cfg->listener.address, service, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return ERR_FAIL;
    }
    freeaddrinfo(res);
    *out = fd;
    *out_port =
        ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                       : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

static int bind_socket(struct listener *l)
{
    int port;

    if (listen_fd(&l->fd, &port, l, (int)l->cfg->listener.port) != 0)
        return ERR_FAIL;
    l->port = port;
    return 0;
}

/* ---- workers --------------------------------------------------------------
 */

static int worker_http(struct listener__worker *w)
{
    const struct optsync_config *cfg = w->l->cfg;
    int fd, port;

    w->http = evhttp_new(w->base);
    if (!w->http)
        return ERR_FAIL;
    evhttp_set_gencb(w->http, on_request, w);
    evhttp_set_allowed_methods(
        w->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                     EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
                     EVHTTP_REQ_OPTIONS);
    evhttp_set_max_body_size(w->http, (ev_ssize_t)cfg->listener.max_body);
    evhttp_set_max_headers_size(w->http, CAP_HTTP_HEADER_BYTES);
    evhttp_set_timeout(w->http, (int)cfg->listener.idle_timeout);
    if (w->l->tls)
        evhttp_set_bevcb(w->http, tls_bev, w);
    /* Design note 1: worker 0 takes the first socket (a dup, so it can
     * close its own), every other worker binds its own to the same port. */
    if (w->index == 0)
        fd = dup(w->l->fd);
    else if (listen_fd(&fd, &port, w->l, w->l->port) != 0)
        fd = -1;
    if (fd < 0)
        return ERR_FAIL;
    w->bound = evhttp_accept_socket_with_handle(w->http, fd);
    if (!w->bound) {
        close(fd);
        return ERR_FAIL;
    }
    return 0;
}

/* An event loop whose epoll changes are applied once per iteration:
 * evhttp turns reading and writing off and on around every request, and
 * changes that cancel out then cost no epoll_ctl at all (measured: about
 * a tenth of the listener's CPU went to epoll_ctl without it).  Safe here:
 * no two descriptors of one loop share an open file (worker 0's dup() of
 * the first listening socket lives in its own loop). */
static struct event_base *new_base(void)
{
    struct event_config *ec = event_config_new();
    struct event_base *base = NULL;

    if (ec) {
        event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        base = event_base_new_with_config(ec);
        event_config_free(ec);
    }
    return base ? base : event_base_new();
}

static int worker_setup(struct listener__worker *w)
{
    struct gate_options gopts;
    struct timeval second = { 1, 0 };

    if (cache_open(&w->c, w->l->cfg->cache.path, 0) != 0)
        return ERR_FAIL;
    gate_options_from_config(&gopts, w->l->cfg);
    gopts.index = 1;
    if (gate_new(&w->g, w->c, &gopts) != 0)
        return ERR_FAIL;
    w->base = new_base();
    if (!w->base)
        goto no_libevent;
    w->stop_ev = event_new(w->base, -1, 0, on_stop, w);
    w->done_ev = event_new(w->base, -1, EV_PERSIST, on_done, w);
    w->tick_ev = event_new(w->base, -1, EV_PERSIST, on_tick, w);
    w->grace_ev = event_new(w->base, -1, 0, on_grace, w);
    if (!w->stop_ev || !w->done_ev || !w->tick_ev || !w->grace_ev ||
        event_add(w->tick_ev, &second) != 0 || worker_http(w) != 0)
        goto no_libevent;
    return 0;
no_libevent:
    err_set(ERR_CLASS_OS, "cannot set up the event loop of worker %d",
            w->index);
    return ERR_FAIL;
}

/* Runs on the worker's thread after its loop ended (or on a failed
 * start): evhttp_free closes the connections left. */
static void worker_teardown(struct listener__worker *w)
{
    if (w->http)
        evhttp_free(w->http);
    w->http = NULL;
    if (w->stop_ev)
        event_free(w->stop_ev);
    if (w->done_ev)
        event_free(w->done_ev);
    if (w->tick_ev)
        event_free(w->tick_ev);
    if (w->grace_ev)
        event_free(w->grace_ev);
    w->stop_ev = w->done_ev = w->tick_ev = w->grace_ev = NULL;
    if (w->base)
        event_base_free(w->base);
    w->base = NULL;
    gate_free(w->g);
    w->g = NULL;
    cache_close(w->c);
    w->c = NULL;
    free(w->conns.slots);
    w->conns.slots = NULL;
    pthread_mutex_destroy(&w->done_mu);
}

static void *worker_main(void *arg)
{
    struct listener__worker *w = arg;

    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    log_info("listener_worker_done worker=%d requests=%llu", w->index,
             (unsigned long long)w->requests);
    worker_teardown(w);
    return NULL;
}

/* ---- API ------------------------------------------------------------------
 */

static int worker_count(const struct optsync_config *cfg)
{
    long n = cfg->listener.threads;

    if (n <= 0)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

int listener_new(listener **out, const struct optsync_config *cfg,
                 const struct mapping *m)
{
    listener *l = xcalloc(1, sizeof(*l));

    pthread_once(&libevent_once, libevent_init);
    l->cfg = cfg;
    l->m = m;
    l->fd = -1;
    l->max_connections = (long)cfg->listener.max_connections;
    consent_options_init(&l->consent, cfg, m);
    route_table_init(&l->routes);
    if (cfg->listener.api_key && *cfg->listener.api_key) {
        if (strlen(cfg->listener.api_key) > sizeof(l->key)) {
            err_set(ERR_CLASS_CONFIG,
                    "[listener] api_key is longer than %zu "
                    "bytes",
                    sizeof(l->key));
            goto fail;
        }
        memcpy(l->key, cfg->listener.api_key, strlen(cfg->listener.api_key));
        l->has_key = 1;
    }
    if (libevent_threads_rc != 0) {
        err_set(ERR_CLASS_OS, "libevent has no pthreads support");
        goto fail;
    }
    if (tls_init(l) != 0 || listener__api_register(l) != 0)
        goto fail;
    if (listener__webhooks_register(l) != 0)
        goto fail;
    *out = l;
    return 0;
fail:
    listener_free(l);
    return ERR_FAIL;
}

int listener_route_add(listener *l, unsigned methods, const char *pattern,
                       route_fn fn, void *arg, unsigned flags)
{
    if (l->started) {
        err_set(ERR_CLASS_USAGE, "routes are added before listener_start");
        return ERR_BADINPUT;
    }
    return route_table_add(&l->routes, methods, pattern, fn, arg, flags);
}

static int start_workers(listener *l)
{
    int i;

    l->workers = xcalloc((size_t)l->n_workers, sizeof(*l->workers));
    for (i = 0; i < l->n_workers; i++) {
        l->workers[i].l = l;
        l->workers[i].index = i;
        pthread_mutex_init(&l->workers[i].done_mu, NULL);
    }
    for (i = 0; i < l->n_workers; i++) {
        if (worker_setup(&l->workers[i]) != 0)
            return ERR_FAIL;
    }
    for (i = 0; i < l->n_workers; i++) {
        if (pthread_create(&l->workers[i].thread, NULL, worker_main,
                           &l->workers[i]) != 0) {
            err_set(ERR_CLASS_OS, "cannot start worker thread %d", i);
            return ERR_FAIL;
        }
        l->workers[i].started = 1;
    }
    return 0;
}

int listener_start(listener *l)
{
    struct writer_options wopts = WRITER_OPTIONS_INIT;

    if (l->started)
        return 0;
    /* A peer that closed its end makes a write fail with EPIPE instead
     * of killing the process (OpenSSL writes with write()). */
    signal(SIGPIPE, SIG_IGN);
    wopts.on_commit = l->on_commit;
    wopts.on_commit_payload = l->on_commit_payload;
    l->started = 1;
    l->n_workers = worker_count(l->cfg);
    if (bind_socket(l) != 0 ||
        writer_new(&l->w, l->cfg->cache.path, &wopts) != 0 ||
        listener__housekeeping_start(l) != 0 || start_workers(l) != 0) {
        listener_stop(l);
        return ERR_FAIL;
    }
    if (!l->has_key)
        log_warn("listener_no_api_key routes=/v1/* answer=401");
    log_info("listening address=%s port=%d tls=%s threads=%d",
             log_q(l->cfg->listener.address), l->port, l->tls ? "on" : "off",
             l->n_workers);
    return 0;
}

void listener_on_commit(listener *l, listener_commit_fn fn, void *payload)
{
    l->on_commit = fn;
    l->on_commit_payload = payload;
}

int listener_port(const listener *l)
{
    return l->port;
}

writer *listener_writer(listener *l)
{
    return l->w;
}

void listener_stop(listener *l)
{
    int i;

    if (!l->started || l->stopped)
        return;
    l->stopped = 1;
    for (i = 0; l->workers && i < l->n_workers; i++)
        if (l->workers[i].started)
            event_active(l->workers[i].stop_ev, EV_READ, 0);
    for (i = 0; l->workers && i < l->n_workers; i++) {
        if (l->workers[i].started)
            pthread_join(l->workers[i].thread, NULL);
        else
            worker_teardown(&l->workers[i]); /* set up, never run */
    }
    writer_free(l->w); /* commits what is queued (writer.h note 6) */
    l->w = NULL;
    listener__housekeeping_stop(l);
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    if (l->port)
        log_info("listener_stopped port=%d", l->port);
}

void listener_free(listener *l)
{
    if (!l)
        return;
    listener_stop(l);
    listener__webhooks_free(l);
    free(l->workers);
    route_table_dispose(&l->routes);
    if (l->tls)
        SSL_CTX_free(l->tls);
    OPENSSL_cleanse(l->key, sizeof(l->key));
    free(l);
}
