/*
 * wa_send — see wa_send.h.  Builds the message body with cJSON, sends it
 * once through http.c and turns Meta's answer into a class.
 */
#include "wa_send.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "jsonutil.h"
#include "xalloc.h"

/* Meta answers are small; anything larger is not an answer we expect. */
#define WA_RESPONSE_MAX (64 * 1024)

struct wa_sender {
    enum wa_send_api api;
    char *graph_url, *graph_version, *d360_url, *ca_file; /* owned */
    char *access_token, *d360_api_key; /* owned secrets: wiped on free */
    http *http;                        /* owned */
};

/* ---- the body ----------------------------------------------------------- */

static cJSON *quick_reply_button(const char *payload)
{
    cJSON *b = cJSON_CreateObject(), *params, *p;

    cJSON_AddStringToObject(b, "type", "button");
    cJSON_AddStringToObject(b, "sub_type", "quick_reply");
    cJSON_AddStringToObject(b, "index", "0");
    params = cJSON_AddArrayToObject(b, "parameters");
    p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", "payload");
    cJSON_AddStringToObject(p, "payload", payload);
    cJSON_AddItemToArray(params, p);
    return b;
}

static cJSON *body_component(const char *const *params, size_t n)
{
    cJSON *c = cJSON_CreateObject(), *list, *p;
    size_t i;

    cJSON_AddStringToObject(c, "type", "body");
    list = cJSON_AddArrayToObject(c, "parameters");
    for (i = 0; i < n; i++) {
        p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "type", "text");
        cJSON_AddStringToObject(p, "text", params[i]);
        cJSON_AddItemToArray(list, p);
    }
    return c;
}

static void add_template(cJSON *o, const struct wa_message *m)
{
    cJSON *t = cJSON_AddObjectToObject(o, "template"), *lang, *comps;

    cJSON_AddStringToObject(t, "name", m->template_name);
    lang = cJSON_AddObjectToObject(t, "language");
    cJSON_AddStringToObject(lang, "code", m->template_lang);
    if (!m->n_body_params && !m->button_payload)
        return;
    comps = cJSON_AddArrayToObject(t, "components");
    if (m->n_body_params)
        cJSON_AddItemToArray(comps,
                             body_component(m->body_params, m->n_body_params));
    if (m->button_payload)
        cJSON_AddItemToArray(comps, quick_reply_button(m->button_payload));
}

char *wa_message_body(const struct wa_message *m)
{
    cJSON *o, *text;
    char *out;

    if (!m->to || m->to[0] != '+' || !m->to[1] ||
        (!m->template_name && !m->text) ||
        (m->template_name && !m->template_lang))
        return NULL;
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "messaging_product", "whatsapp");
    cJSON_AddStringToObject(o, "recipient_type", "individual");
    cJSON_AddStringToObject(o, "to", m->to + 1); /* digits, as wa_ids */
    if (m->template_name) {
        cJSON_AddStringToObject(o, "type", "template");
        add_template(o, m);
    } else {
        cJSON_AddStringToObject(o, "type", "text");
        text = cJSON_AddObjectToObject(o, "text");
        cJSON_AddStringToObject(text, "body", m->text);
    }
    out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!out)
        abort(); /* out of memory in cJSON */
    return out;
}

/* ---- the answer ---------------------------------------------------------- */

enum wa_send_class wa_send_classify(long status, int code)
{
    switch (code) {
    case 130429: /* throughput reached */
    case 131056: /* pair rate limit */
    case 80007:  /* WABA rate limit */
    case 131000: /* something went wrong */
    case 2: /* service temporarily unavailable */ return WA_SEND_RETRY;
    case 131047: return WA_SEND_NEEDS_TEMPLATE;
    case 190: return WA_SEND_AUTH;
    default: break;
    }
    if (status == 401)
        return WA_SEND_AUTH;
    if (status == 429 || status >= 500 || status == 0)
        return WA_SEND_RETRY;
    return WA_SEND_DEAD; /* template and recipient errors, other 4xx */
}

const char *wa_send_class_name(enum wa_send_class c)
{
    static const char *const names[] = { "sent", "retry", "needs_template",
                                         "dead", "auth" };

    return (unsigned)c < sizeof(names) / sizeof(names[0]) ? names[c] : "?";
}

/* messages[0].id of a success answer, or NULL. */
static const char *message_id(const cJSON *root)
{
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    const char *id = jsonutil_str(cJSON_GetArrayItem(msgs, 0), "id");

    return cJSON_IsArray(msgs) && id && *id ? id : NULL;
}

static void parse_error(struct wa_send_result *out, const cJSON *err)
{
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(err, "error_data");
    const char *text = jsonutil_str(err, "message");
    const char *details = jsonutil_str(data, "details");

    out->code = (int)jsonutil_int(err, "code", 0);
    out->subcode = (int)jsonutil_int(err, "error_subcode", 0);
    snprintf(out->message, sizeof(out->message), "error %d%s%s%s%s", out->code,
             text ? ": " : "", text ? text : "", details ? " - " : "",
             details ? details : "");
}

int wa_send_response_parse(struct wa_send_result *out, long status,
                           const char *body, size_t len)
{
    cJSON *root = body && len ? jsonutil_parse(body, len) : NULL;
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    const char *id = status == 200 ? message_id(root) : NULL;

    memset(out, 0, sizeof(*out));
    out->http_status = status;
    out->retry_after_ms = -1;
    if (id && strlen(id) < sizeof(out->wamid)) {
        memcpy(out->wamid, id, strlen(id) + 1);
        out->cls = WA_SEND_SENT;
    } else if (status == 200) {
        out->cls = WA_SEND_DEAD;
        snprintf(out->message, sizeof(out->message),
                 "HTTP 200 without a message id");
    } else {
        if (cJSON_IsObject(err))
            parse_error(out, err);
        else
            snprintf(out->message, sizeof(out->message),
                     "HTTP %ld without Meta's error object", status);
        out->cls = wa_send_classify(status, out->code);
    }
    cJSON_Delete(root);
    return 0;
}

/* ---- sending ------------------------------------------------------------ */

static char *copy(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

int wa_sender_new(wa_sender **out, const struct wa_send_options *opts)
{
    struct http_options ho = HTTP_OPTIONS_INIT;
    wa_sender *s = xcalloc(1, sizeof(*s));
    int rc;

    s->api = opts->api;
    s->graph_url = copy(opts->graph_url);
    s->graph_version = copy(opts->graph_version);
    s->access_token = copy(opts->access_token);
    s->d360_url = copy(opts->d360_url);
    s->d360_api_key = copy(opts->d360_api_key);
    s->ca_file = copy(opts->ca_file);
    ho.connect_timeout_ms = opts->connect_timeout_ms;
    ho.timeout_ms = opts->timeout_ms;
    ho.ca_file = s->ca_file;
    rc = http_new(&s->http, &ho);
    if (rc) {
        wa_sender_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void wa_sender_free(wa_sender *s)
{
    if (!s)
        return;
    http_free(s->http);
    free(s->graph_url);
    free(s->graph_version);
    xfree_secret(s->access_token);
    free(s->d360_url);
    xfree_secret(s->d360_api_key);
    free(s->ca_file);
    free(s);
}

/* URL and credential header for one message (note 3); both malloc'd. */
static void route(const wa_sender *s, const struct wa_message *m, char **url,
                  char **credential)
{
    if (s->api == WA_API_360DIALOG) {
        *url = xasprintf("%s/messages", s->d360_url);
        *credential = xasprintf("D360-API-KEY: %s",
                                s->d360_api_key ? s->d360_api_key : "");
        return;
    }
    *url = xasprintf("%s/%s/%s/messages", s->graph_url, s->graph_version,
                     m->phone_number_id ? m->phone_number_id : "");
    *credential = xasprintf("Authorization: Bearer %s",
                            s->access_token ? s->access_token : "");
}

int wa_sender_send(struct wa_send_result *out, wa_sender *s,
                   const struct wa_message *m)
{
    struct http_response resp;
    struct http_request req;
    char *body = wa_message_body(m), *url = NULL, *credential = NULL;
    const char *headers[4];
    int rc;

    if (!body) {
        err_set(ERR_CLASS_INPUT, "incomplete WhatsApp message");
        return ERR_BADINPUT;
    }
    route(s, m, &url, &credential);
    headers[0] = credential;
    headers[1] = "Content-Type: application/json";
    headers[2] = "Accept: application/json";
    headers[3] = NULL;
    memset(&req, 0, sizeof(req));
    req.method = "POST";
    req.url = url;
    req.headers = headers;
    req.body = body;
    req.body_len = strlen(body);
    req.max_response = WA_RESPONSE_MAX;
    http_response_init(&resp);
    rc = http_send(&resp, s->http, &req);
    if (rc == 0) {
        wa_send_response_parse(out, resp.status, resp.body.data, resp.body.len);
        out->retry_after_ms = resp.retry_after_ms;
    } else {
        /* No answer (or an oversized one): the network's fault. */
        memset(out, 0, sizeof(*out));
        out->cls = WA_SEND_RETRY;
        out->retry_after_ms = -1;
        snprintf(out->message, sizeof(out->message), "%s", err_message());
    }
    http_response_dispose(&resp);
    xfree_secret(credential);
    free(url);
    free(body);
    return 0;
}
