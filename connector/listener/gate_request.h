/*
 * gate_request — the JSON bodies of the gate API (POST /v1/gate,
 * POST /v1/sends, POST /v1/preferences), checked and typed.
 *
 * Pipeline position: the listener's only parser of outside input besides
 * evhttp; its results go to the gate (decisions), the writer (sends) and
 * consent_apply_locked (preferences).  It touches no database and no
 * clock but the `now` it is given; tests/fuzz/fuzz_gate_request.c fuzzes
 * it.
 *
 * Shapes (docs/design.md; unknown members are ignored):
 *   gate        {"configuration": S, "phones": [S, ...], "topic"?: S}
 *   send        {"configuration": S, "phone": S, "topic"?: S,
 *                "at"?: ISO 8601 time | milliseconds since the epoch}
 *   preference  {"configuration": S, "phone": S,
 *                "opt_out_topic"?: S,          (topic opt-out)
 *                "paused_until"?: ISO time | duration from now ("14d"),
 *                "taken_by"?: S, "note"?: S}   (evidence)
 *               at least one of opt_out_topic and paused_until.
 */
#ifndef OPTSYNC_GATE_REQUEST_H
#define OPTSYNC_GATE_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* The strings point into `root`, which the dispose functions free. */
struct gate_request_bulk {
    cJSON *root;               /* owned */
    const char *configuration; /* required */
    const char *topic;         /* NULL: none */
    const char **phones;       /* owned array; the strings are root's */
    size_t n;
};

struct gate_request_send {
    cJSON *root; /* owned */
    const char *configuration, *phone, *topic;
    int64_t at; /* ms; 0: now */
};

struct gate_request_preference {
    cJSON *root; /* owned */
    const char *configuration, *phone;
    const char *topic;    /* opt_out_topic; NULL: none */
    int64_t paused_until; /* ms; 0: none */
    const char *until;    /* paused_until as given, for the evidence */
    const char *taken_by; /* NULL: "api" */
    const char *note;
};

/*
 * Each parses `len` bytes.  Returns 0 and fills *out (dispose it);
 * ERR_BADINPUT with err_set naming the problem (malformed JSON, a
 * missing or mistyped member, a string over CAP_FIELD_BYTES); the bulk
 * form ERR_TOOBIG when it holds more than `max_bulk` phones.  On failure
 * nothing needs disposing.
 */
int gate_request_bulk_parse(struct gate_request_bulk *out, const char *body,
                            size_t len, size_t max_bulk);
int gate_request_send_parse(struct gate_request_send *out, const char *body,
                            size_t len);
int gate_request_preference_parse(struct gate_request_preference *out,
                                  const char *body, size_t len, int64_t now);

void gate_request_bulk_dispose(struct gate_request_bulk *r);
void gate_request_send_dispose(struct gate_request_send *r);
void gate_request_preference_dispose(struct gate_request_preference *r);

#endif
