/*
 * testhttp — see testhttp.h.
 */
#include "testhttp.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "testutil.h"
#include "xalloc.h"

/* ---- the client ------------------------------------------------------------
 */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct testhttp_resp *r = arg;
    size_t k = size * n;

    r->body = xrealloc(r->body, r->len + k + 1);
    memcpy(r->body + r->len, p, k);
    r->len += k;
    r->body[r->len] = '\0';
    return k;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct testhttp_resp *r = arg;
    size_t len = size * n, i = 0;
    const char *name = "Content-Type:";

    if (len > strlen(name) && strncasecmp(p, name, strlen(name)) == 0) {
        p += strlen(name);
        len -= strlen(name);
        while (len && *p == ' ') {
            p++;
            len--;
        }
        while (len && (p[len - 1] == '\r' || p[len - 1] == '\n'))
            len--;
        for (; i < len && i + 1 < sizeof(r->content_type); i++)
            r->content_type[i] = p[i];
        r->content_type[i] = '\0';
    }
    return size * n;
}

CURLcode testhttp_do(struct testhttp_resp *out, const struct testhttp_req *req)
{
    struct curl_slist *hl = NULL;
    CURL *h = req->handle ? req->handle : curl_easy_init();
    size_t len = req->body && !req->len ? strlen(req->body) : req->len, i;
    CURLcode rc;

    memset(out, 0, sizeof(*out));
    out->body = xstrdup("");
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)TESTHTTP_DEADLINE_S);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    for (i = 0; req->headers && req->headers[i]; i++)
        hl = curl_slist_append(hl, req->headers[i]);
    /* curl's own defaults would add to what the test means to send. */
    hl = curl_slist_append(hl, "Expect:");
    if (req->body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    if (req->method)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hl);
    if (!req->handle)
        curl_easy_cleanup(h);
    return rc;
}

long testhttp_call(struct testhttp_resp *out, const struct testhttp_req *req)
{
    CURLcode rc = testhttp_do(out, req);

    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", req->method ? req->method : "GET", req->url,
                 curl_easy_strerror(rc));
    return out->status;
}

void testhttp_resp_dispose(struct testhttp_resp *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

/* ---- the listener under test ---------------------------------------------
 */

static struct mapping *load_mapping(void)
{
    char *path = testutil_source_path("mapping/whatsapp4dynamics.json");
    struct mapping_problems p = { 0 };
    struct mapping *m = NULL;
    size_t len;
    char *text = testutil_read(path, &len);

    assert_int_equal(mapping_load(&m, text, len, &p), 0);
    mapping_problems_dispose(&p);
    free(text);
    free(path);
    return m;
}

void testlistener_init(struct testlistener *t)
{
    cache *c = NULL;

    memset(t, 0, sizeof(*t));
    t->dir = testutil_tmpdir();
    t->db = xasprintf("%s/cache.db", t->dir);
    assert_int_equal(cache_open(&c, t->db, 0), 0); /* creates, migrates */
    cache_close(c);
    t->m = load_mapping();
    testlistener_set(t, "cache.path=%s", t->db);
    testlistener_set(t, "listener.port=0");
    testlistener_set(t, "log.level=warn");
}

void testlistener_set(struct testlistener *t, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    t->sets = xrealloc(t->sets, (t->n_sets + 2) * sizeof(*t->sets));
    t->sets[t->n_sets++] = xvasprintf(fmt, ap);
    t->sets[t->n_sets] = NULL;
    va_end(ap);
}

static void load_config(struct testlistener *t)
{
    struct config_override *ov = xcalloc(t->n_sets + 1, sizeof(*ov));
    char **copies = xcalloc(t->n_sets + 1, sizeof(*copies));
    char *path = testutil_source_path("config/optsync.ini");
    struct config_diag diag;
    size_t i;

    memset(&diag, 0, sizeof(diag));
    for (i = 0; i < t->n_sets; i++) {
        copies[i] = xstrdup(t->sets[i]);
        if (config_override_parse(&ov[i], copies[i]) != 0)
            fail_msg("bad override %s", t->sets[i]);
    }
    if (config_load(&t->cfg, path, ov, t->n_sets, &diag) != 0) {
        config_diag_print(stderr, &diag);
        fail_msg("test config does not load");
    }
    config_diag_dispose(&diag);
    for (i = 0; i < t->n_sets; i++)
        free(copies[i]);
    free(copies);
    free(ov);
    free(path);
}

void testlistener_start(struct testlistener *t,
                        void (*setup)(listener *l, void *payload),
                        void *payload)
{
    load_config(t);
    if (listener_new(&t->l, t->cfg, t->m) != 0)
        fail_msg("listener_new: %s", err_message());
    if (setup)
        setup(t->l, payload);
    if (listener_start(t->l) != 0)
        fail_msg("listener_start: %s", err_message());
    t->port = listener_port(t->l);
    assert_true(t->port > 0);
    snprintf(t->base, sizeof(t->base), "http://127.0.0.1:%d", t->port);
}

void testlistener_stop(struct testlistener *t)
{
    listener_free(t->l);
    t->l = NULL;
    config_free(t->cfg);
    t->cfg = NULL;
}

void testlistener_dispose(struct testlistener *t)
{
    size_t i;

    testlistener_stop(t);
    mapping_free(t->m);
    for (i = 0; i < t->n_sets; i++)
        free(t->sets[i]);
    free(t->sets);
    if (t->dir)
        testutil_rmtree(t->dir);
    free(t->dir);
    free(t->db);
    memset(t, 0, sizeof(*t));
}

char *testlistener_url(const struct testlistener *t, const char *path)
{
    return xasprintf("%s%s", t->base, path);
}
