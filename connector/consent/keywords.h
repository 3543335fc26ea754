/*
 * keywords — what a WhatsApp reply means: whole-message keyword matching
 * after Unicode normalisation (utf8proc), button payload intents, and
 * near-miss detection.
 *
 * Pipeline position: between a source's parsed message and the consent
 * state machine (consent.c decides what an intent does).  Pure: no I/O.
 *
 * Normalisation (keywords_normalize): NFKD, Unicode case folding, marks
 * stripped (accents: "ARRÊT" → "arret"), typographic apostrophes and
 * dashes made ASCII (utf8proc's LUMP: "s’abonner" → "s'abonner"), runs of
 * white space folded to one space, then everything that is not a letter
 * or digit dropped from both ends (punctuation, symbols, emoji:
 * "¡Stop! 🙏" → "stop").  Inner punctuation stays ("opt-out", "don't
 * stop").  Invalid UTF-8 normalises to "" (no keyword).
 *
 * Matching: the normalised message must equal a keyword exactly.  Three
 * built-in sets for EN, DE, FR, ES, PT, IT, NL: opt-out, opt-in
 * (SUBSCRIBE-type: count anywhere) and ambiguous affirmatives (YES, OK,
 * JA, SÍ: consent.c counts them only when the message replies to a
 * business message).  Config adds keywords to the sets or turns the
 * built-ins off.  A message that is no keyword but contains an opt-out
 * keyword as a whole word is a near miss ("please stop these").
 */
#ifndef OPTSYNC_KEYWORDS_H
#define OPTSYNC_KEYWORDS_H

#include <stddef.h>

#include "config.h"

typedef struct keywords keywords;

/* What to build the matcher from (lists borrowed from the config). */
struct keywords_options {
    const struct config_list *opt_in_keywords;  /* added to the set */
    const struct config_list *opt_out_keywords; /* added to the set */
    int builtin;                                /* use the built-in sets */
    const struct config_list *opt_in_payloads;  /* default OPT_IN */
    const struct config_list *opt_out_payloads; /* default OPT_OUT */
    const struct config_list *confirm_payloads; /* default DOI_CONFIRM */
};

/* Fills options from [consent] of a loaded config. */
void keywords_options_from_config(struct keywords_options *out,
                                  const struct optsync_config *cfg);

/*
 * Builds a matcher.  Returns 0, or ERR_BADINPUT (err_set names the
 * keyword) when a configured keyword is empty after normalisation.
 */
int keywords_new(keywords **out, const struct keywords_options *opts);
void keywords_free(keywords *k); /* NULL is a no-op */

enum keyword_intent {
    KW_NONE = 0,
    KW_OPT_IN,        /* subscribe-type keyword or opt-in payload */
    KW_OPT_OUT,       /* opt-out keyword or payload */
    KW_AFFIRMATIVE,   /* YES / OK ...: opt-in only as a reply */
    KW_CONFIRM,       /* double opt-in confirm payload */
    KW_TOPIC_OPT_OUT, /* payload OPT_OUT:<topic> */
    KW_PAUSE,         /* payload PAUSE:<days> */
};

#define KEYWORDS_TOPIC_MAX 64

struct keyword_match {
    enum keyword_intent intent;
    char topic[KEYWORDS_TOPIC_MAX]; /* KW_TOPIC_OPT_OUT: the topic */
    int pause_days;                 /* KW_PAUSE: 1 .. 3650 */
    int near_miss;                  /* no keyword, but an opt-out word */
};

/* A free-text message (or a button's label). */
void keywords_match_text(struct keyword_match *out, const keywords *k,
                         const char *text);

/*
 * A button payload or interactive reply id: the configured payload
 * intents first (exact, ASCII case-insensitive; OPT_OUT:<topic> and
 * PAUSE:<days> structured forms), then the payload itself through the
 * keyword matcher ("STOP" opts out whatever its label says).
 */
void keywords_match_payload(struct keyword_match *out, const keywords *k,
                            const char *payload);

/*
 * The normalised form of `text` (malloc'd, free() it), as described
 * above; shown by `optsync review` and used by tests.
 */
char *keywords_normalize(const char *text);

#endif
