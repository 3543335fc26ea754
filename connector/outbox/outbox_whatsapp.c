/*
 * outbox_whatsapp — the outbox kind "whatsapp": the consent messages
 * consent_messages.c queued (consent.h note 8) go out through wa_send.
 *
 * Design notes
 *  (1) Checked again before sending: a message whose number moved on
 *      (no longer single_opt_in for the double opt-in request, no longer
 *      opted_out for the opt-out confirmation) is superseded, not sent.
 *      So is a message with neither a template nor (inside the window)
 *      a text configured: counted and logged, nothing to send.
 *  (2) What is sent: free text when configured and the number wrote to
 *      the Configuration within 24 hours (wa_users: wa_last_inbound),
 *      else the template NAME:LANG; the double opt-in request is always
 *      the template, its quick-reply button 0 carrying the first
 *      [consent] confirm_payloads value, so the tap comes back as a
 *      confirmation.  {business} in a text is the Configuration's name.
 *      A 131047 answer to a text (the window closed meanwhile) is sent
 *      again as the template at once when there is one.
 *  (3) Rate: at most [whatsapp] max_rate sends start per second and
 *      business phone number, spaced evenly (with 2% to spare, so the
 *      jitter between here and Meta's clock never makes 81 of 80).  The
 *      round trip is hidden by up to WA_THREADS sends in flight, each
 *      thread with its own kept-alive connection.
 *  (4) Meta's error classes (wa_send.h note 2) map onto the outbox's:
 *      retry → backoff, dead → a dead letter naming the template and
 *      language, auth (190 / 401) → every send pauses: the batch goes
 *      back without an attempt counted, the pause is written to
 *      sender_state (status, /metrics), and after WA_AUTH_PAUSE_MS one
 *      message probes the token; the first accepted send clears it.
 *  (5) At least once: a message goes out, then its wamid is committed;
 *      a crash between the two sends it again after the restart (the
 *      only way to a duplicate, docs/design.md).
 */
#include "outbox_p.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "configurations.h"
#include "err.h"
#include "log.h"
#include "wa_messages.h"
#include "wa_send.h"
#include "wa_users.h"
#include "xalloc.h"

#define WA_THREADS 16
#define WA_AUTH_PAUSE_MS 10000
#define WA_WINDOW_MS (24LL * 3600 * 1000)
#define WA_NO_CREDENTIAL_WAIT_MS 60000

struct pace {
    char phone_number_id[64];
    int64_t next_us; /* the earliest start of the next send */
};

struct outbox__wa {
    const struct optsync_config *cfg;
    wa_sender *senders[WA_THREADS]; /* one kept-alive connection each */
    int usable;                     /* the chosen API has its credential */
    int64_t interval_us;            /* between two starts, per number */
    pthread_mutex_t mu;             /* guards paces */
    struct pace *paces;
    size_t n_paces;
    int64_t paused_until; /* ms; 0: sending */
};

/* One message being prepared and sent. */
struct prepared {
    struct outbox__item *it;
    enum consent_message msg;
    char *phone_number_id;
    char *text; /* owned: the text variant, or NULL */
    char tmpl_name[128], tmpl_lang[32];
    int has_template;
    const char *payload; /* DOI: quick reply 0 */
    struct wa_send_result res;
};

/* ---- setup ----------------------------------------------------------------
 */

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct outbox__wa *outbox__wa_new(const struct optsync_config *cfg)
{
    struct wa_send_options o;
    struct outbox__wa *wa;
    size_t i;

    if (!cfg->whatsapp.send || strcmp(cfg->whatsapp.send, "off") == 0)
        return NULL;
    wa = xcalloc(1, sizeof(*wa));
    wa->cfg = cfg;
    memset(&o, 0, sizeof(o));
    o.api = strcmp(cfg->whatsapp.send, "360dialog") == 0 ? WA_API_360DIALOG
                                                         : WA_API_CLOUD;
    o.graph_url = cfg->whatsapp.graph_url;
    o.graph_version = cfg->whatsapp.graph_version;
    o.access_token = cfg->whatsapp.access_token;
    o.d360_url = cfg->whatsapp.d360_url;
    o.d360_api_key = cfg->whatsapp.d360_api_key;
    o.connect_timeout_ms = 10000;
    o.timeout_ms = 30000;
    wa->usable =
        o.api == WA_API_CLOUD ? o.access_token != NULL : o.d360_api_key != NULL;
    for (i = 0; wa->usable && i < WA_THREADS; i++)
        if (wa_sender_new(&wa->senders[i], &o) != 0)
            wa->usable = 0;
    /* 2% to spare (note 3). */
    wa->interval_us = (int64_t)(1020000.0 / (double)cfg->whatsapp.max_rate);
    pthread_mutex_init(&wa->mu, NULL);
    return wa;
}

void outbox__wa_free(struct outbox__wa *wa)
{
    size_t i;

    if (!wa)
        return;
    for (i = 0; i < WA_THREADS; i++)
        wa_sender_free(wa->senders[i]);
    pthread_mutex_destroy(&wa->mu);
    free(wa->paces);
    free(wa);
}

/* ---- the state of sending (status, /metrics) ------------------------------
 */

static void pause_record(cache *c, const char *reason)
{
    sqlite3_stmt *st = cache_stmt(
        c, "UPDATE sender_state SET paused_reason = ?1, paused_since = "
           "coalesce(paused_since, ?2), updated_at = ?2 WHERE id = 1");

    if (!st)
        return; /* the pause holds in memory; status learns it later */
    cache_bind_text(st, 1, reason);
    cache_bind_int(st, 2, clock_now_ms());
    cache_step(st);
}

/* ---- preparing (note 1, 2) ------------------------------------------------
 */

/* "NAME:LANG" → parts; 0 when unset or malformed. */
static int template_split(struct prepared *p, const char *spec)
{
    const char *colon = spec ? strchr(spec, ':') : NULL;

    if (!colon || colon == spec || !colon[1])
        return 0;
    snprintf(p->tmpl_name, sizeof(p->tmpl_name), "%.*s", (int)(colon - spec),
             spec);
    snprintf(p->tmpl_lang, sizeof(p->tmpl_lang), "%s", colon + 1);
    return 1;
}

/* `text` with every {business} replaced by `name` (malloc'd). */
static char *text_expand(const char *text, const char *name)
{
    static const char key[] = "{business}";
    size_t cap = strlen(text) + 1, len = 0;
    char *out = xmalloc(cap);
    const char *s = text, *hit;

    while ((hit = strstr(s, key)) != NULL) {
        size_t pre = (size_t)(hit - s), nl = strlen(name);

        cap += nl;
        out = xrealloc(out, cap);
        memcpy(out + len, s, pre);
        memcpy(out + len + pre, name, nl);
        len += pre + nl;
        s = hit + sizeof(key) - 1;
    }
    memcpy(out + len, s, strlen(s) + 1);
    return out;
}

static int row_message(enum consent_message *out, cache *c, int64_t id)
{
    sqlite3_stmt *st =
        cache_stmt(c, "SELECT message FROM outbox WHERE id = ?1");
    int rc;

    *out = CONSENT_MSG_NONE;
    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, id);
    rc = cache_step(st);
    if (rc == SQLITE_ROW)
        *out = consent_message_parse(cache_col_text(st, 0));
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : ERR_FAIL;
}

/* The number's state now: the strictest of its active rows. */
static int number_state(enum consent_status *out, cache *c, const char *cfg,
                        const char *e164)
{
    sqlite3_stmt *st = cache_stmt(
        c, "SELECT status FROM numbers WHERE configuration_id = ?1 AND "
           "e164 = ?2 AND active = 1");
    int rc, any = 0;

    *out = CONSENT_NONE;
    if (!st)
        return ERR_FAIL;
    cache_bind_text(st, 1, cfg);
    cache_bind_text(st, 2, e164);
    while ((rc = cache_step(st)) == SQLITE_ROW) {
        enum consent_status s = (enum consent_status)sqlite3_column_int(st, 0);

        if (!any || consent_status_rank(s) > consent_status_rank(*out))
            *out = s;
        any = 1;
    }
    return rc == SQLITE_DONE ? 0 : ERR_FAIL;
}

static void set_outcome(struct outbox__item *it, enum outbox__outcome o,
                        char *error)
{
    it->outcome = o;
    free(it->error);
    it->error = error;
}

static int window_open(cache *c, const char *cfg, const char *e164)
{
    int64_t last = 0;

    return wa_users_inbound_get(&last, c, cfg, e164) == 0 &&
           clock_now_ms() - last < WA_WINDOW_MS;
}

/* The Configuration's own template when it names one, else [messages]. */
static const char *either(const char *own, const char *dflt)
{
    return own && *own ? own : dflt;
}

/* Template and text of message `m`: the Configuration's template
 * (mapping keys), else [messages]. */
static void content_pick(struct prepared *p, const struct optsync_config *cfg,
                         const struct configuration_info *info, int in_window)
{
    const char *tmpl = NULL, *text = NULL;

    switch (p->msg) {
    case CONSENT_MSG_DOUBLE_OPT_IN_REQUEST:
        tmpl = either(info->double_opt_in_template,
                      cfg->messages.double_opt_in_template);
        p->payload = cfg->consent.confirm_payloads.count
                         ? cfg->consent.confirm_payloads.items[0]
                         : "DOI_CONFIRM";
        break;
    case CONSENT_MSG_OPT_IN_CONFIRMATION:
        tmpl = either(info->opt_in_confirmation_template,
                      cfg->messages.opt_in_confirmation_template);
        text = cfg->messages.opt_in_confirmation_text;
        break;
    default:
        tmpl = either(info->opt_out_confirmation_template,
                      cfg->messages.opt_out_confirmation_template);
        text = cfg->messages.opt_out_confirmation_text;
        break;
    }
    p->has_template = template_split(p, tmpl);
    if (text && in_window)
        p->text = text_expand(text, info->name ? info->name : "");
}

/* Note 1 and 2: what `p->it` sends, or its outcome when nothing. */
static int prepare(struct prepared *p, outbox *ob)
{
    struct outbox__item *it = p->it;
    struct configuration_info info;
    enum consent_status now;
    int rc = row_message(&p->msg, ob->c, it->id);

    if (rc == 0)
        rc = number_state(&now, ob->c, it->configuration_id, it->e164);
    if (rc)
        return rc;
    if (p->msg == CONSENT_MSG_NONE || !consent_message_still_due(p->msg, now)) {
        set_outcome(it, OUTBOX__SKIP,
                    xasprintf("not sent: the number is %s now",
                              consent_status_name(now)));
        return 0;
    }
    rc = configurations_get(&info, ob->c, it->configuration_id);
    if (rc == ERR_NOTFOUND || (rc == 0 && !info.phone_number_id)) {
        set_outcome(it, OUTBOX__DEAD,
                    xstrdup("the Configuration has no WhatsApp "
                            "phone_number_id"));
        if (rc == 0)
            configuration_info_dispose(&info);
        return 0;
    }
    if (rc)
        return rc;
    p->phone_number_id = xstrdup(info.phone_number_id);
    content_pick(p, ob->cfg, &info,
                 window_open(ob->c, it->configuration_id, it->e164));
    configuration_info_dispose(&info);
    if (!p->text && !p->has_template) {
        log_notice("message_not_configured id=%lld message=%s",
                   (long long)it->id, consent_message_name(p->msg));
        set_outcome(it, OUTBOX__SKIP,
                    xasprintf("not sent: no template%s configured for %s",
                              p->msg == CONSENT_MSG_DOUBLE_OPT_IN_REQUEST
                                  ? ""
                                  : " (or text inside the 24-hour window)",
                              consent_message_name(p->msg)));
    }
    return 0;
}

/* ---- sending (notes 3, 4) -------------------------------------------------
 */

static struct pace *pace_of(struct outbox__wa *wa, const char *phone_number_id)
{
    struct pace *p;
    size_t i;

    for (i = 0; i < wa->n_paces; i++)
        if (strcmp(wa->paces[i].phone_number_id, phone_number_id) == 0)
            return &wa->paces[i];
    wa->paces = xrealloc(wa->paces, (wa->n_paces + 1) * sizeof(*p));
    p = &wa->paces[wa->n_paces++];
    snprintf(p->phone_number_id, sizeof(p->phone_number_id), "%s",
             phone_number_id);
    p->next_us = 0;
    return p;
}

/*
 * Waits for this number's next start (note 3); 0, or -1 when stopping.
 * The slot is taken when the thread is awake to use it, not booked
 * before it sleeps: a thread that wakes late would otherwise start
 * closer to the next thread's slot than the spacing allows.
 */
static int pace_wait(outbox *ob, const char *phone_number_id)
{
    struct outbox__wa *wa = ob->wa;
    struct pace *p;
    int64_t left;

    while (!ob->stopping) {
        int64_t now = now_us();

        pthread_mutex_lock(&wa->mu);
        p = pace_of(wa, phone_number_id);
        left = p->next_us - now;
        if (left <= 0)
            p->next_us = now + wa->interval_us;
        pthread_mutex_unlock(&wa->mu);
        if (left <= 0)
            return 0;
        nanosleep(&(struct timespec){ (time_t)(left / 1000000),
                                      (long)(left % 1000000) * 1000 },
                  NULL);
    }
    return -1;
}

static void message_of(struct wa_message *m, const struct prepared *p,
                       int as_template)
{
    memset(m, 0, sizeof(*m));
    m->phone_number_id = p->phone_number_id;
    m->to = p->it->e164;
    if (as_template) {
        m->template_name = p->tmpl_name;
        m->template_lang = p->tmpl_lang;
        m->button_payload = p->payload;
    } else {
        m->text = p->text;
    }
}

/* One message, and its template after a 131047 on the text (note 2). */
static int send_one(outbox *ob, wa_sender *s, struct prepared *p)
{
    struct wa_message m;
    int as_template = !p->text;

    message_of(&m, p, as_template);
    if (pace_wait(ob, p->phone_number_id) != 0)
        return -1;
    wa_sender_send(&p->res, s, &m);
    if (p->res.cls == WA_SEND_NEEDS_TEMPLATE && !as_template &&
        p->has_template) {
        message_of(&m, p, 1);
        if (pace_wait(ob, p->phone_number_id) != 0)
            return -1;
        wa_sender_send(&p->res, s, &m);
    }
    return 0;
}

/* The answer → the row's outcome (note 4). */
static void classify(struct prepared *p)
{
    const struct wa_send_result *r = &p->res;
    struct outbox__item *it = p->it;

    it->retry_after_ms = r->retry_after_ms;
    switch (r->cls) {
    case WA_SEND_SENT:
        it->outcome = OUTBOX__DONE;
        it->wamid = xstrdup(r->wamid);
        return;
    case WA_SEND_RETRY:
        set_outcome(it, OUTBOX__RETRY, xstrdup(r->message));
        return;
    case WA_SEND_NEEDS_TEMPLATE:
        set_outcome(it, OUTBOX__DEAD,
                    xasprintf("outside the 24-hour window and no template "
                              "configured for %s: %s",
                              consent_message_name(p->msg), r->message));
        return;
    case WA_SEND_AUTH:
        set_outcome(it, OUTBOX__THROTTLE, xstrdup(r->message));
        it->retry_after_ms = WA_AUTH_PAUSE_MS;
        return;
    default:
        if (p->has_template && r->code >= 132000 && r->code < 133000)
            set_outcome(it, OUTBOX__DEAD,
                        xasprintf("template %s:%s: %s", p->tmpl_name,
                                  p->tmpl_lang, r->message));
        else
            set_outcome(it, OUTBOX__DEAD, xstrdup(r->message));
        return;
    }
}

struct pool {
    outbox *ob;
    struct prepared **todo;
    size_t n, next;
    int auth_failed;
    pthread_mutex_t mu;
};

static struct prepared *pool_take(struct pool *pl)
{
    struct prepared *p = NULL;

    pthread_mutex_lock(&pl->mu);
    if (pl->next < pl->n && !pl->auth_failed)
        p = pl->todo[pl->next++];
    pthread_mutex_unlock(&pl->mu);
    return p;
}

struct worker {
    struct pool *pl;
    wa_sender *s;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    struct prepared *p;

    while ((p = pool_take(w->pl)) != NULL) {
        if (send_one(w->pl->ob, w->s, p) != 0) {
            p->res.cls = WA_SEND_RETRY; /* stopping: back, unsent */
            snprintf(p->res.message, sizeof(p->res.message), "stopped");
            p->res.retry_after_ms = -1;
        }
        if (p->res.cls == WA_SEND_AUTH) {
            pthread_mutex_lock(&w->pl->mu);
            w->pl->auth_failed = 1;
            pthread_mutex_unlock(&w->pl->mu);
        }
        classify(p);
    }
    return NULL;
}

/* Sends `todo` with up to WA_THREADS in flight. */
static void send_all(outbox *ob, struct prepared **todo, size_t n, int *refused)
{
    struct pool pl = { ob, todo, n, 0, 0, PTHREAD_MUTEX_INITIALIZER };
    struct worker w[WA_THREADS];
    pthread_t t[WA_THREADS];
    size_t k = n < WA_THREADS ? n : WA_THREADS, i, started = 0;

    for (i = 0; i < k; i++) {
        w[i].pl = &pl;
        w[i].s = ob->wa->senders[i];
        if (pthread_create(&t[i], NULL, worker_run, &w[i]) != 0)
            break;
        started++;
    }
    if (started == 0)
        worker_run(&w[0]); /* no thread: this one sends */
    for (i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    *refused = pl.auth_failed;
    pthread_mutex_destroy(&pl.mu);
}

/* Every item not settled goes back unsent, no attempt counted. */
static void hold_all(struct prepared *ps, size_t n, int64_t wait_ms,
                     const char *why)
{
    size_t i;

    for (i = 0; i < n; i++) {
        struct outbox__item *it = ps[i].it;

        if (it->outcome != OUTBOX__DONE && it->outcome != OUTBOX__SKIP &&
            it->outcome != OUTBOX__DEAD) {
            set_outcome(it, OUTBOX__THROTTLE, xstrdup(why));
            it->retry_after_ms = wait_ms;
        }
    }
}

static void prepared_dispose(struct prepared *ps, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        free(ps[i].phone_number_id);
        free(ps[i].text);
    }
    free(ps);
}

/* Marks the items that still need sending with RETRY (the default). */
static size_t todo_list(struct prepared **todo, struct prepared *ps, size_t n)
{
    size_t i, k = 0;

    for (i = 0; i < n; i++)
        if (ps[i].it->outcome == OUTBOX__RETRY)
            todo[k++] = &ps[i];
    return k;
}

/* The token is refused (note 4): hold everything, probe later. */
static void auth_pause(outbox *ob, struct prepared *ps, size_t n,
                       const char *why)
{
    ob->wa->paused_until = clock_now_ms() + WA_AUTH_PAUSE_MS;
    log_error("whatsapp_send_paused reason=%s", log_q(why));
    pause_record(ob->c, why);
    hold_all(ps, n, WA_AUTH_PAUSE_MS, why);
}

static int wa_send(outbox *ob, struct outbox__item *items, size_t n)
{
    struct prepared *ps = xcalloc(n, sizeof(*ps)), **todo;
    size_t i, k;
    int rc = 0, refused = 0;

    for (i = 0; i < n; i++) {
        ps[i].it = &items[i];
        if (items[i].outcome == OUTBOX__SKIP)
            continue;
        items[i].outcome = OUTBOX__RETRY;
        if (!ob->wa) {
            set_outcome(&items[i], OUTBOX__SKIP,
                        xstrdup("not sent: [whatsapp] send = off"));
            continue;
        }
        rc = prepare(&ps[i], ob);
        if (rc)
            break;
    }
    if (rc || !ob->wa) {
        prepared_dispose(ps, n);
        return rc;
    }
    if (!ob->wa->usable) {
        hold_all(ps, n, WA_NO_CREDENTIAL_WAIT_MS,
                 "no credential for [whatsapp] send");
        prepared_dispose(ps, n);
        return 0;
    }
    todo = xcalloc(n, sizeof(*todo));
    k = todo_list(todo, ps, n);
    if (k && ob->wa->paused_until > clock_now_ms()) {
        hold_all(ps, n, ob->wa->paused_until - clock_now_ms(),
                 "sending paused: WhatsApp refused the token");
        k = 0;
    }
    /* After a pause one message probes the token (note 4). */
    if (k && ob->wa->paused_until) {
        send_all(ob, todo, 1, &refused);
        if (!refused) {
            ob->wa->paused_until = 0;
            send_all(ob, todo + 1, k - 1, &refused);
        }
    } else if (k) {
        send_all(ob, todo, k, &refused);
    }
    if (refused)
        auth_pause(ob, ps, n, "WhatsApp refused the token (190 / 401)");
    outbox__count(ob, &(struct outbox_stats){ .requests = (int64_t)k });
    free(todo);
    prepared_dispose(ps, n);
    return 0;
}

/* ---- committing ------------------------------------------------------------
 */

static int wa_commit(outbox *ob, struct outbox__item *it)
{
    sqlite3_stmt *st;

    if (it->outcome != OUTBOX__DONE)
        return 0; /* no REFRESH for messages */
    /* The wamid, and a status Meta reported before this commit. */
    if (wa_messages_sent(ob->c, it->id, it->wamid, clock_now_ms()) != 0)
        return ERR_FAIL;
    /* An accepted send proves the token: the pause is over. */
    st = cache_stmt(ob->c, "UPDATE sender_state SET paused_reason = NULL, "
                           "paused_since = NULL, updated_at = ?1 WHERE id = 1 "
                           "AND paused_reason IS NOT NULL");
    if (!st)
        return ERR_FAIL;
    cache_bind_int(st, 1, clock_now_ms());
    if (cache_step(st) != SQLITE_DONE)
        return ERR_FAIL;
    log_info("message_sent id=%lld phone=%s wamid=%s", (long long)it->id,
             log_phone(it->e164), it->wamid);
    return 0;
}

/* A claim of about five seconds' worth at max_rate: the last send's
 * round trip and the commit between two claims cost throughput (note 3),
 * so they should come rarely. */
static int64_t wa_claim_max(const outbox *ob)
{
    int64_t n = ob->cfg->whatsapp.max_rate * 5;

    return n > ob->o.batch_size ? n : ob->o.batch_size;
}

const struct outbox__kind outbox__whatsapp = {
    .name = OUTBOX_KIND_WHATSAPP,
    .send = wa_send,
    .commit = wa_commit,
    .claim_max = wa_claim_max,
};
