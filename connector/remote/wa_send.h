/*
 * wa_send — the WhatsApp sender: one consent message (a template, or free
 * text inside the customer-service window) to one number, through Meta's
 * Cloud API or 360dialog, and what Meta's answer means for the next step.
 *
 * Pipeline position: under the outbox worker, its only caller, beside the
 * Dataverse client; over http.c (transport).  It decides nothing about
 * consent and keeps no queue: the outbox owns retries, backoff and dead
 * letters, and asks wa_send only "send this" and "what did Meta say".  It
 * never logs a token, a key or a message body.
 *
 * Design notes
 *  (1) One attempt per call (http_send, no retries inside): a retry is a
 *      durable decision the outbox records, with its backoff, so that a
 *      crash never repeats it early and a 429 pauses every message.
 *  (2) Meta's error classes, not its texts, decide (wa_send_classify):
 *        retry         130429, 131056, 80007, 131000, 2, any 5xx, 429,
 *                      transport errors
 *        template      131047: outside the 24-hour window; send the
 *                      template instead when there is one
 *        dead          132000, 132001, 132015, 132016 (the template),
 *                      131026, 131049, 131050, 131051 (the recipient),
 *                      and any other 4xx: retrying cannot help
 *        auth          190, or HTTP 401: the token is expired or revoked;
 *                      every send pauses until it works again
 *  (3) The same JSON body goes to both APIs; only the URL and the
 *      credential header differ (Cloud API: bearer token on
 *      {graph_url}/{version}/{phone_number_id}/messages; 360dialog:
 *      D360-API-KEY on {d360_url}/messages).
 */
#ifndef OPTSYNC_WA_SEND_H
#define OPTSYNC_WA_SEND_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"

typedef struct wa_sender wa_sender;

enum wa_send_api {
    WA_API_CLOUD = 0, /* Meta's Cloud API (graph.facebook.com) */
    WA_API_360DIALOG, /* 360dialog's Cloud API endpoint */
};

struct wa_send_options {
    enum wa_send_api api;
    const char *graph_url;     /* "https://graph.facebook.com" (Cloud) */
    const char *graph_version; /* "v21.0" (Cloud) */
    const char *access_token;  /* bearer token (Cloud); borrowed */
    const char *d360_url;      /* "https://waba-v2.360dialog.io" */
    const char *d360_api_key;  /* D360-API-KEY (360dialog); borrowed */
    int64_t connect_timeout_ms;
    int64_t timeout_ms;
    const char *ca_file; /* NULL: the system store */
};

/* One message.  A template when template_name is set, else text. */
struct wa_message {
    const char *phone_number_id; /* the business number (Cloud API path) */
    const char *to;              /* E.164 key ("+4915..."): sent as digits */
    const char *template_name;
    const char *template_lang;      /* "de", "en_US" */
    const char *const *body_params; /* template body {{1}}.. as text */
    size_t n_body_params;
    const char *button_payload; /* quick-reply button 0's payload, or NULL */
    const char *text;           /* free text (no template) */
};

enum wa_send_class {
    WA_SEND_SENT = 0,       /* accepted: wamid holds Meta's message id */
    WA_SEND_RETRY,          /* try again later (note 2) */
    WA_SEND_NEEDS_TEMPLATE, /* 131047: free text outside the window */
    WA_SEND_DEAD,           /* retrying cannot help: a dead letter */
    WA_SEND_AUTH,           /* token expired or revoked: pause all sends */
};

struct wa_send_result {
    enum wa_send_class cls;
    long http_status;       /* 0 when no answer arrived */
    int code;               /* Meta's error.code; 0 when none */
    int subcode;            /* error.error_subcode; 0 when none */
    int64_t retry_after_ms; /* from Retry-After; -1 when absent */
    char wamid[160];        /* WA_SEND_SENT: messages[0].id */
    char message[256];      /* one line: what went wrong (no secrets) */
};

/*
 * The JSON body of `m` (malloc'd).  Returns NULL when the message is
 * incomplete (no recipient, neither template nor text).
 */
char *wa_message_body(const struct wa_message *m);

/*
 * What an answer means (the fuzzed part): `status` and `body` as received.
 * Always fills *out; returns 0.  A 200 without a message id is a DEAD
 * answer (Meta accepted something we cannot track).
 */
int wa_send_response_parse(struct wa_send_result *out, long status,
                           const char *body, size_t len);

/* The class of Meta's error code `code` at HTTP `status` (note 2). */
enum wa_send_class wa_send_classify(long status, int code);

/* "sent", "retry", "needs_template", "dead", "auth". */
const char *wa_send_class_name(enum wa_send_class c);

/* Options are copied (strings too); the handle keeps one connection. */
int wa_sender_new(wa_sender **out, const struct wa_send_options *opts);
void wa_sender_free(wa_sender *s); /* NULL is a no-op */

/*
 * Sends `m` once (note 1).  Returns 0 with *out filled whatever Meta said
 * (check out->cls); ERR_BADINPUT when `m` is incomplete (nothing sent).
 * A transport error is a WA_SEND_RETRY result, not a failure.
 */
int wa_sender_send(struct wa_send_result *out, wa_sender *s,
                   const struct wa_message *m);

#endif
