/*
 * outbox_p — shared between the pieces of the outbox worker only:
 * outbox.c (the kind-independent queue: lock, recovery, claims, backoff,
 * dead letters, the loop) and one file per kind (outbox_dataverse.c).
 */
#ifndef OPTSYNC_OUTBOX_P_H
#define OPTSYNC_OUTBOX_P_H

#include <pthread.h>

#include "consent.h"
#include "dataverse.h"
#include "outbox.h"
#include "phone.h"

/* What became of a claimed row's send. */
enum outbox__outcome {
    OUTBOX__DONE = 0, /* written */
    OUTBOX__RETRY,    /* 5xx, network, no answer: back off */
    OUTBOX__THROTTLE, /* 429: wait Retry-After, no attempt counted */
    OUTBOX__REFRESH,  /* 412/404: read back, rule, try again */
    OUTBOX__DEAD,     /* will not work by trying again */
    OUTBOX__SKIP,     /* nothing to write any more: superseded (when
                         claimed; or by the kind, with `error` set) */
};

/* One claimed row and the number row's state at claim time. */
struct outbox__item {
    int64_t id;
    int64_t number_local_id;
    int64_t attempts; /* before this send */
    char configuration_id[MAPPING_GUID_LEN + 1];
    char e164[PHONE_E164_MAX];
    char dv_id[MAPPING_GUID_LEN + 1]; /* "" : not in Dataverse yet */
    int64_t version;
    enum consent_status status;
    int64_t status_at;
    char *source; /* owned; may be NULL */
    char *topics; /* owned; may be NULL */
    int64_t paused_until;

    /* the answer */
    enum outbox__outcome outcome;
    int64_t retry_after_ms; /* THROTTLE / RETRY: server's wait; -1 none */
    char *error;            /* owned: why not DONE */
    struct dv_write_result result;
    cJSON *fresh; /* owned: REFRESH: the row read back; NULL: gone */
    int gone;     /* REFRESH: the row does not exist */
    char *wamid;  /* owned: whatsapp DONE: Meta's message id */
};

/* A sender.  Both run with no transaction open / inside the results
 * transaction respectively. */
struct outbox__kind {
    const char *name;
    /* Sends `n` claimed rows, sets each one's outcome.  0 or ERR_AUTH. */
    int (*send)(outbox *ob, struct outbox__item *items, size_t n);
    /* Applies a DONE / REFRESH item to the kind's side of the cache. */
    int (*commit)(outbox *ob, struct outbox__item *it);
    /* Rows per claim; NULL: [outbox] batch_size. */
    int64_t (*claim_max)(const outbox *ob);
};

struct outbox {
    const struct optsync_config *cfg; /* borrowed */
    const struct mapping *m;          /* borrowed */
    cache *c;                         /* borrowed */
    http *http;                       /* owned */
    dataverse *dv;                    /* owned */
    struct outbox_options o;
    struct consent_options consent;
    int lock_fd; /* -1: lock not held */

    pthread_mutex_t mu; /* guards the fields below */
    pthread_cond_t cv;
    int woken;
    volatile int stopping; /* also http_options.stop */
    struct outbox_stats stats;
    long steps; /* test_stop_after */

    struct outbox__wa *wa; /* owned: the whatsapp kind's senders; NULL
                              when [whatsapp] send = off */
};

extern const struct outbox__kind outbox__dataverse;
extern const struct outbox__kind outbox__whatsapp;

/* The whatsapp kind's state (outbox_whatsapp.c): senders, pacing per
 * phone number, the pause after a refused token.  NULL when sending is
 * off; _free(NULL) is a no-op. */
struct outbox__wa *outbox__wa_new(const struct optsync_config *cfg);
void outbox__wa_free(struct outbox__wa *wa);

/* Counts a step for test_stop_after (may _exit(99)). */
void outbox__step(outbox *ob);

/* Adds to the shared counters. */
void outbox__count(outbox *ob, const struct outbox_stats *add);

#endif
