/*
 * test_keywords — what a reply means: the normalisation table, every
 * language's built-in sets, near misses, payload intents (configured
 * lists, OPT_OUT:<topic>, PAUSE:<days> and their bad forms), config
 * additions, built-ins turned off, and invalid UTF-8.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "err.h"
#include "keywords.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static const char *intent_name(enum keyword_intent i)
{
    switch (i) {
    case KW_NONE: return "none";
    case KW_OPT_IN: return "opt_in";
    case KW_OPT_OUT: return "opt_out";
    case KW_AFFIRMATIVE: return "affirmative";
    case KW_CONFIRM: return "confirm";
    case KW_TOPIC_OPT_OUT: return "topic_opt_out";
    case KW_PAUSE: return "pause";
    }
    return "?";
}

/* The built-in matcher, shared by the tests that need no options. */
static int setup_builtin(void **state)
{
    keywords *k = NULL;

    if (keywords_new(&k, NULL) != 0)
        return -1;
    *state = k;
    return 0;
}

static int teardown_builtin(void **state)
{
    keywords_free(*state);
    return 0;
}

/* ---- normalisation ----------------------------------------------------------
 */

static const struct {
    const char *in;
    const char *out;
} norm_cases[] = {
    { "STOP", "stop" },
    { " stop! ", "stop" },
    { "Stop 🙏", "stop" },
    { "🙏🙏 stop 🙏🙏", "stop" },
    { "ARRÊT", "arret" },
    { "¡BAJA!", "baja" },
    { "¿No Más?", "no mas" },
    { "Straße", "strasse" }, /* case folding, not lower-casing */
    { "ＳＴＯＰ", "stop" },  /* full-width: compatibility mapping */
    { "ﬁn", "fin" },         /* ligature */
    { "Désinscrire", "desinscrire" },
    { "stop\t\n  all", "stop all" }, /* white space runs → one space */
    { "stop\xc2\xa0"
      "all",
      "stop all" },                 /* no-break space */
    { "don't stop", "don't stop" }, /* inner punctuation stays */
    { "s\xe2\x80\x99"
      "abonner",
      "s'abonner" },                     /* typographic apostrophe */
    { "opt\xe2\x80\x93out", "opt-out" }, /* en dash */
    { "\"opt-out.\"", "opt-out" },
    { "...", "" },
    { "🙏", "" },
    { "", "" },
    { "   ", "" },
    { "#1", "1" },
    { "ÇA VA", "ca va" },
    { "ΣΤΟΠ", "στοπ" },
    { "stop\xef\xb8\x8f", "stop" }, /* variation selector */
};

static void test_keywords__normalize_table(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < N_ELEMS(norm_cases); i++) {
        char *got = keywords_normalize(norm_cases[i].in);

        if (strcmp(got, norm_cases[i].out) != 0)
            fail_msg("\"%s\": got \"%s\", want \"%s\"", norm_cases[i].in, got,
                     norm_cases[i].out);
        free(got);
    }
}

static void test_keywords__invalid_utf8_is_no_keyword(void **state)
{
    static const char *const bad[] = {
        "stop\xff",
        "\xc3",
        "\xc3(",
        "\xed\xa0\x80stop",
        /* surrogate */ "\xf4\x90\x80\x80",
        "\xc0\xafstop", /* overlong */
    };
    struct keyword_match m;
    size_t i;

    for (i = 0; i < N_ELEMS(bad); i++) {
        char *n = keywords_normalize(bad[i]);

        assert_string_equal(n, "");
        free(n);
        keywords_match_text(&m, *state, bad[i]);
        assert_int_equal(m.intent, KW_NONE);
        assert_false(m.near_miss);
        keywords_match_payload(&m, *state, bad[i]);
        assert_int_equal(m.intent, KW_NONE);
    }
    {
        char *n = keywords_normalize(NULL);

        assert_string_equal(n, "");
        free(n);
    }
}

/* ---- built-in sets ----------------------------------------------------------
 */

struct text_case {
    const char *text;
    enum keyword_intent intent;
};

static void check_texts(const keywords *k, const char *set,
                        const struct text_case *cases, size_t n)
{
    struct keyword_match m;
    size_t i;

    for (i = 0; i < n; i++) {
        keywords_match_text(&m, k, cases[i].text);
        if (m.intent != cases[i].intent)
            fail_msg("%s: \"%s\": got %s, want %s", set, cases[i].text,
                     intent_name(m.intent), intent_name(cases[i].intent));
        if (m.near_miss)
            fail_msg("%s: \"%s\": a keyword is no near miss", set,
                     cases[i].text);
    }
}

static const struct text_case en[] = {
    { "STOP", KW_OPT_OUT },     { "Stop All", KW_OPT_OUT },
    { "STOPALL", KW_OPT_OUT },  { "Unsubscribe", KW_OPT_OUT },
    { "unsub", KW_OPT_OUT },    { "Cancel", KW_OPT_OUT },
    { "END", KW_OPT_OUT },      { "quit.", KW_OPT_OUT },
    { "Revoke", KW_OPT_OUT },   { "OPTOUT", KW_OPT_OUT },
    { "opt out", KW_OPT_OUT },  { "Opt-Out", KW_OPT_OUT },
    { "REMOVE", KW_OPT_OUT },   { "Subscribe", KW_OPT_IN },
    { "START", KW_OPT_IN },     { "unstop", KW_OPT_IN },
    { "Opt in", KW_OPT_IN },    { "OPTIN", KW_OPT_IN },
    { "opt-in", KW_OPT_IN },    { "Join", KW_OPT_IN },
    { "YES", KW_AFFIRMATIVE },  { "y", KW_AFFIRMATIVE },
    { "OK", KW_AFFIRMATIVE },   { "Okay!", KW_AFFIRMATIVE },
    { "yeah", KW_AFFIRMATIVE }, { "Yep", KW_AFFIRMATIVE },
    { "yup", KW_AFFIRMATIVE },  { "Sure.", KW_AFFIRMATIVE },
    { "help", KW_NONE },        { "info", KW_NONE },
    { "td", KW_NONE },          { "no", KW_NONE },
};

static const struct text_case de[] = {
    { "STOPP", KW_OPT_OUT },       { "Abmelden", KW_OPT_OUT },
    { "abbestellen", KW_OPT_OUT }, { "Austragen", KW_OPT_OUT },
    { "INFOSTOP", KW_OPT_OUT },    { "Keine Werbung!", KW_OPT_OUT },
    { "Anmelden", KW_OPT_IN },     { "abonnieren", KW_OPT_IN },
    { "INFOSTART", KW_OPT_IN },    { "Start", KW_OPT_IN },
    { "Ja", KW_AFFIRMATIVE },      { "JAWOHL", KW_AFFIRMATIVE },
    { "Gerne 😊", KW_AFFIRMATIVE }, { "gern", KW_AFFIRMATIVE },
    { "nein", KW_NONE },
};

static const struct text_case fr[] = {
    { "ARRÊT", KW_OPT_OUT },
    { "arret", KW_OPT_OUT },
    { "Arrête", KW_OPT_OUT },
    { "ARRÊTER", KW_OPT_OUT },
    { "ARRETT", KW_OPT_OUT },
    { "Se désabonner", KW_OPT_OUT },
    { "désabonner", KW_OPT_OUT },
    { "Désinscrire", KW_OPT_OUT },
    { "se desinscrire", KW_OPT_OUT },
    { "Annuler", KW_OPT_OUT },
    { "S'abonner", KW_OPT_IN },
    { "s\xe2\x80\x99"
      "abonner",
      KW_OPT_IN },
    { "abonner", KW_OPT_IN },
    { "Inscrire", KW_OPT_IN },
    { "s'inscrire", KW_OPT_IN },
    { "OUI", KW_AFFIRMATIVE },
    { "D'accord !", KW_AFFIRMATIVE },
    { "ouais", KW_AFFIRMATIVE },
    { "non", KW_NONE },
};

static const struct text_case es[] = {
    { "¡BAJA!", KW_OPT_OUT },      { "Darme de baja", KW_OPT_OUT },
    { "dar de baja", KW_OPT_OUT }, { "ALTO", KW_OPT_OUT },
    { "Parar", KW_OPT_OUT },       { "No más", KW_OPT_OUT },
    { "NO MAS", KW_OPT_OUT },      { "Cancelar", KW_OPT_OUT },
    { "desuscribir", KW_OPT_OUT }, { "Desuscribirme", KW_OPT_OUT },
    { "Suscribir", KW_OPT_IN },    { "suscribirme", KW_OPT_IN },
    { "ALTA", KW_OPT_IN },         { "Darme de alta", KW_OPT_IN },
    { "dar de alta", KW_OPT_IN },  { "Sí", KW_AFFIRMATIVE },
    { "SI", KW_AFFIRMATIVE },      { "Vale", KW_AFFIRMATIVE },
    { "¡Claro!", KW_AFFIRMATIVE }, { "para", KW_NONE },
};

static const struct text_case pt[] = {
    { "PARAR", KW_OPT_OUT },
    { "Sair", KW_OPT_OUT },
    { "descadastrar", KW_OPT_OUT },
    { "CANCELAR", KW_OPT_OUT },
    { "Inscrever", KW_OPT_IN },
    { "assinar", KW_OPT_IN },
    { "Sim", KW_AFFIRMATIVE },
    { "Claro", KW_AFFIRMATIVE },
    { "não", KW_NONE },
};

static const struct text_case it[] = {
    { "BASTA", KW_OPT_OUT },      { "Disiscrivimi", KW_OPT_OUT },
    { "cancellami", KW_OPT_OUT }, { "Non inviare", KW_OPT_OUT },
    { "Iscrivimi", KW_OPT_IN },   { "abbonati", KW_OPT_IN },
    { "Iscriviti", KW_OPT_IN },   { "Sì", KW_AFFIRMATIVE },
    { "certo", KW_AFFIRMATIVE },  { "Va bene", KW_AFFIRMATIVE },
    { "fine", KW_NONE },
};

static const struct text_case nl[] = {
    { "Afmelden", KW_OPT_OUT }, { "UITSCHRIJVEN", KW_OPT_OUT },
    { "stoppen", KW_OPT_OUT },  { "Aanmelden", KW_OPT_IN },
    { "abonneren", KW_OPT_IN }, { "Inschrijven", KW_OPT_IN },
    { "JA", KW_AFFIRMATIVE },   { "Oké", KW_AFFIRMATIVE },
    { "oke", KW_AFFIRMATIVE },  { "Prima", KW_AFFIRMATIVE },
    { "nee", KW_NONE },
};

static void test_keywords__builtin_sets_per_language(void **state)
{
    check_texts(*state, "EN", en, N_ELEMS(en));
    check_texts(*state, "DE", de, N_ELEMS(de));
    check_texts(*state, "FR", fr, N_ELEMS(fr));
    check_texts(*state, "ES", es, N_ELEMS(es));
    check_texts(*state, "PT", pt, N_ELEMS(pt));
    check_texts(*state, "IT", it, N_ELEMS(it));
    check_texts(*state, "NL", nl, N_ELEMS(nl));
}

/* ---- the outcomes docs/design.md and the issue spell out -------------------
 */

static const struct {
    const char *text;
    enum keyword_intent intent;
    int near_miss;
} outcomes[] = {
    { "STOP", KW_OPT_OUT, 0 },
    { " stop! ", KW_OPT_OUT, 0 },
    { "Stop 🙏", KW_OPT_OUT, 0 },
    { "ARRÊT", KW_OPT_OUT, 0 },
    { "¡BAJA!", KW_OPT_OUT, 0 },
    { "STOPPING", KW_NONE, 0 },
    { "don't stop", KW_NONE, 1 },
    { "stop sending me the bill", KW_NONE, 1 },
    { "please stop sending these", KW_NONE, 1 },
    { "Subscribe", KW_OPT_IN, 0 },
    { "YES", KW_AFFIRMATIVE, 0 },
    { "Unsubscribe", KW_OPT_OUT, 0 },
};

static void test_keywords__required_outcomes(void **state)
{
    struct keyword_match m;
    size_t i;

    for (i = 0; i < N_ELEMS(outcomes); i++) {
        keywords_match_text(&m, *state, outcomes[i].text);
        if (m.intent != outcomes[i].intent ||
            m.near_miss != outcomes[i].near_miss)
            fail_msg("\"%s\": got %s/near_miss=%d, want %s/%d",
                     outcomes[i].text, intent_name(m.intent), m.near_miss,
                     intent_name(outcomes[i].intent), outcomes[i].near_miss);
    }
}

/* ---- near misses ------------------------------------------------------------
 */

static const struct {
    const char *text;
    int near_miss;
} near_cases[] = {
    { "Please STOP!", 1 },
    { "stop it", 1 },
    { "STOP STOP", 1 },
    { "I want to opt-out please", 1 }, /* multi-word, inner dash */
    { "how do I opt out?", 1 },
    { "please stop all messages", 1 },
    { "bitte abmelden", 1 },
    { "quiero darme de baja ya", 1 },
    { "no más mensajes", 1 },
    { "je veux me désabonner", 1 },
    { "(stop)(stop)", 1 },
    { "stop.please", 1 }, /* '.' is a word boundary */
    { "stopping", 0 },
    { "nonstop", 0 },
    { "unstoppable", 0 },
    { "Do you deliver on Sunday?", 0 },
    { "darme de", 0 }, /* part of a keyword is not enough */
    { "opt", 0 },
    { "subscribe me please", 0 }, /* opt-in words are no near miss */
    { "yes please", 0 },
    { "", 0 },
    { "🙏", 0 },
};

static void test_keywords__near_misses(void **state)
{
    struct keyword_match m;
    size_t i;

    for (i = 0; i < N_ELEMS(near_cases); i++) {
        keywords_match_text(&m, *state, near_cases[i].text);
        if (m.intent != KW_NONE || m.near_miss != near_cases[i].near_miss)
            fail_msg("\"%s\": got %s/near_miss=%d, want none/%d",
                     near_cases[i].text, intent_name(m.intent), m.near_miss,
                     near_cases[i].near_miss);
    }
}

static void test_keywords__null_and_overlong_text(void **state)
{
    struct keyword_match m;
    size_t len = 20000;
    char *big = malloc(len + 1);

    memset(&m, 0x55, sizeof(m));
    keywords_match_text(&m, *state, NULL);
    assert_int_equal(m.intent, KW_NONE);
    assert_false(m.near_miss);
    keywords_match_payload(&m, *state, NULL);
    assert_int_equal(m.intent, KW_NONE);
    /* Longer than any WhatsApp text: not looked at, even if it is STOP. */
    memset(big, ' ', len);
    memcpy(big, "stop", 4);
    big[len] = '\0';
    keywords_match_text(&m, *state, big);
    assert_int_equal(m.intent, KW_NONE);
    big[16 * 1024] = '\0'; /* at the limit it is */
    keywords_match_text(&m, *state, big);
    assert_int_equal(m.intent, KW_OPT_OUT);
    free(big);
}

/* ---- payloads ---------------------------------------------------------------
 */

static const struct {
    const char *payload;
    enum keyword_intent intent;
    const char *topic;
    int days;
    int near_miss;
} payload_cases[] = {
    { "OPT_OUT", KW_OPT_OUT, "", 0, 0 },
    { "opt_out", KW_OPT_OUT, "", 0, 0 },
    { "OPT_IN", KW_OPT_IN, "", 0, 0 },
    { "Opt_In", KW_OPT_IN, "", 0, 0 },
    { "DOI_CONFIRM", KW_CONFIRM, "", 0, 0 },
    { "doi_confirm", KW_CONFIRM, "", 0, 0 },
    { "OPT_OUT:Newsletter", KW_TOPIC_OPT_OUT, "newsletter", 0, 0 },
    { "opt_out:promo.de-2026_q1", KW_TOPIC_OPT_OUT, "promo.de-2026_q1", 0, 0 },
    { "OPT_OUT:a", KW_TOPIC_OPT_OUT, "a", 0, 0 },
    { "OPT_OUT:"
      "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk",
      KW_TOPIC_OPT_OUT,
      "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk", 0, 0 },
    { "PAUSE:30", KW_PAUSE, "", 30, 0 },
    { "pause:1", KW_PAUSE, "", 1, 0 },
    { "PAUSE:3650", KW_PAUSE, "", 3650, 0 },
    { "PAUSE:007", KW_PAUSE, "", 7, 0 },
    /* The payload itself through the keyword matcher. */
    { "STOP", KW_OPT_OUT, "", 0, 0 },
    { "Unsubscribe", KW_OPT_OUT, "", 0, 0 },
    { "Subscribe", KW_OPT_IN, "", 0, 0 },
    { "YES", KW_AFFIRMATIVE, "", 0, 0 },
    { "callback_data", KW_NONE, "", 0, 0 },
    { "doi_confirm_yes", KW_NONE, "", 0, 0 },
    /* Bad structured forms are no intent (a near miss when they hold an
     * opt-out word, so a person looks at the broken button). */
    { "PAUSE:0", KW_NONE, "", 0, 0 },
    { "PAUSE:3651", KW_NONE, "", 0, 0 },
    { "PAUSE:99999", KW_NONE, "", 0, 0 },
    { "PAUSE:99999999999999999999", KW_NONE, "", 0, 0 },
    { "PAUSE:", KW_NONE, "", 0, 0 },
    { "PAUSE:-5", KW_NONE, "", 0, 0 },
    { "PAUSE:+5", KW_NONE, "", 0, 0 },
    { "PAUSE:5d", KW_NONE, "", 0, 0 },
    { "PAUSE: 5", KW_NONE, "", 0, 0 },
    { "OPT_OUT:", KW_NONE, "", 0, 1 },
    { "OPT_OUT:news letter", KW_NONE, "", 0, 1 },
    { "OPT_OUT:news/letter", KW_NONE, "", 0, 1 },
    { "OPT_OUT:"
      "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl",
      KW_NONE, "", 0, 1 },             /* 64 characters */
    { " OPT_OUT", KW_NONE, "", 0, 1 }, /* exact: no trimming */
    { "OPT_OUTX", KW_NONE, "", 0, 0 },
};

static void test_keywords__payload_intents(void **state)
{
    struct keyword_match m;
    size_t i;

    for (i = 0; i < N_ELEMS(payload_cases); i++) {
        keywords_match_payload(&m, *state, payload_cases[i].payload);
        if (m.intent != payload_cases[i].intent ||
            strcmp(m.topic, payload_cases[i].topic) != 0 ||
            m.pause_days != payload_cases[i].days ||
            m.near_miss != payload_cases[i].near_miss)
            fail_msg("\"%s\": got %s topic=\"%s\" days=%d near_miss=%d",
                     payload_cases[i].payload, intent_name(m.intent), m.topic,
                     m.pause_days, m.near_miss);
    }
}

/* ---- configuration ----------------------------------------------------------
 */

#define BASE                                                                   \
    "[dataverse]\n"                                                            \
    "url = http://127.0.0.1:5555\n"                                            \
    "[auth]\n"                                                                 \
    "authority = http://127.0.0.1:5555\n"                                      \
    "tenant_id = t\n"                                                          \
    "client_id = c\n"                                                          \
    "client_secret = s3cret-value\n"                                           \
    "[listener]\n"                                                             \
    "api_key = k\n"

static struct optsync_config *load(const char *consent_section)
{
    struct config_diag d = { 0 };
    struct optsync_config *cfg = NULL;
    char text[2048];

    snprintf(text, sizeof(text), "%s[consent]\n%s", BASE, consent_section);
    if (config_load_string(&cfg, text, "test.ini", "/etc/optsync", NULL, 0,
                           &d) != 0) {
        config_diag_print(stderr, &d);
        fail_msg("config did not load");
    }
    config_diag_dispose(&d);
    return cfg;
}

static keywords *from_config(struct optsync_config *cfg)
{
    struct keywords_options opts;
    keywords *k = NULL;

    keywords_options_from_config(&opts, cfg);
    assert_int_equal(keywords_new(&k, &opts), 0);
    return k;
}

static void test_keywords__config_adds_to_builtin_sets(void **state)
{
    struct optsync_config *cfg =
        load("opt_in_keywords = Hola Amigo, ANMELDUNG BITTE, Yes\n"
             "opt_out_keywords = Tschüss, Halt\n");
    keywords *k = from_config(cfg);
    static const struct text_case cases[] = {
        { "hola amigo!", KW_OPT_IN },
        { "Anmeldung bitte", KW_OPT_IN },
        { "TSCHÜSS", KW_OPT_OUT },
        { "tschuss", KW_OPT_OUT },
        { "halt", KW_OPT_OUT },
        { "STOP", KW_OPT_OUT }, /* built-ins still there */
        { "Subscribe", KW_OPT_IN },
        { "YES", KW_OPT_IN }, /* configured opt-in beats affirmative */
        { "ok", KW_AFFIRMATIVE },
    };
    struct keyword_match m;

    (void)state;
    check_texts(k, "config", cases, N_ELEMS(cases));
    keywords_match_text(&m, k, "bitte halt jetzt");
    assert_true(m.near_miss); /* configured opt-out words count too */
    keywords_free(k);
    config_free(cfg);
}

static void test_keywords__builtin_off(void **state)
{
    struct optsync_config *cfg = load("keywords_builtin = false\n"
                                      "opt_out_keywords = halt\n");
    keywords *k = from_config(cfg);
    static const struct text_case cases[] = {
        { "STOP", KW_NONE },      { "Unsubscribe", KW_NONE },
        { "Subscribe", KW_NONE }, { "YES", KW_NONE },
        { "ARRÊT", KW_NONE },     { "HALT!", KW_OPT_OUT },
    };
    struct keyword_match m;

    (void)state;
    check_texts(k, "builtin off", cases, N_ELEMS(cases));
    keywords_match_text(&m, k, "please stop");
    assert_false(m.near_miss);
    keywords_match_text(&m, k, "halt now");
    assert_true(m.near_miss);
    /* Payload intents do not depend on the keyword sets. */
    keywords_match_payload(&m, k, "OPT_OUT");
    assert_int_equal(m.intent, KW_OPT_OUT);
    keywords_match_payload(&m, k, "STOP");
    assert_int_equal(m.intent, KW_NONE);
    keywords_free(k);
    config_free(cfg);
}

/* A keyword in two sets: opt-out wins (fail towards no marketing). */
static void test_keywords__opt_out_wins_a_conflict(void **state)
{
    struct optsync_config *cfg = load("opt_in_keywords = stop, Arrêt\n"
                                      "opt_out_keywords = Start\n");
    keywords *k = from_config(cfg);
    static const struct text_case cases[] = {
        { "STOP", KW_OPT_OUT },
        { "arret", KW_OPT_OUT },
        { "start", KW_OPT_OUT },
    };

    (void)state;
    check_texts(k, "conflict", cases, N_ELEMS(cases));
    keywords_free(k);
    config_free(cfg);
}

static void test_keywords__configured_payloads(void **state)
{
    struct optsync_config *cfg =
        load("opt_in_payloads = JOIN_BTN, promo_yes\n"
             "opt_out_payloads = UNSUB_BTN\n"
             "confirm_payloads = CONFIRM_1, confirm_2\n");
    keywords *k = from_config(cfg);
    static const struct {
        const char *payload;
        enum keyword_intent intent;
    } cases[] = {
        { "JOIN_BTN", KW_OPT_IN },   { "Promo_Yes", KW_OPT_IN },
        { "unsub_btn", KW_OPT_OUT }, { "CONFIRM_1", KW_CONFIRM },
        { "CONFIRM_2", KW_CONFIRM }, { "OPT_IN", KW_NONE },
        { "DOI_CONFIRM", KW_NONE },  { "OPT_OUT:news", KW_TOPIC_OPT_OUT },
        { "JOIN_BTN2", KW_NONE },    { "STOP", KW_OPT_OUT },
    };
    struct keyword_match m;
    size_t i;

    (void)state;
    for (i = 0; i < N_ELEMS(cases); i++) {
        keywords_match_payload(&m, k, cases[i].payload);
        if (m.intent != cases[i].intent)
            fail_msg("\"%s\": got %s, want %s", cases[i].payload,
                     intent_name(m.intent), intent_name(cases[i].intent));
    }
    keywords_free(k);
    config_free(cfg);
}

/* No options: built-ins on; no payload lists: OPT_IN / OPT_OUT / DOI_CONFIRM.
 */
static void test_keywords__options_defaults(void **state)
{
    struct keywords_options opts = { .builtin = 0 };
    struct keyword_match m;
    keywords *k = NULL;

    (void)state;
    assert_int_equal(keywords_new(&k, NULL), 0);
    keywords_match_text(&m, k, "STOP");
    assert_int_equal(m.intent, KW_OPT_OUT);
    keywords_match_payload(&m, k, "OPT_IN");
    assert_int_equal(m.intent, KW_OPT_IN);
    keywords_free(k);
    k = NULL;
    assert_int_equal(keywords_new(&k, &opts), 0);
    keywords_match_text(&m, k, "STOP");
    assert_int_equal(m.intent, KW_NONE);
    keywords_match_payload(&m, k, "DOI_CONFIRM");
    assert_int_equal(m.intent, KW_CONFIRM);
    keywords_match_payload(&m, k, "OPT_OUT");
    assert_int_equal(m.intent, KW_OPT_OUT);
    keywords_free(k);
    keywords_free(NULL);
}

static void test_keywords__empty_configured_keyword_is_an_error(void **state)
{
    static const char *const bad_items[] = { "!!!", "🙏", "\xff" };
    struct keywords_options opts = { .builtin = 1 };
    struct config_list list;
    keywords *k;
    size_t i;

    (void)state;
    for (i = 0; i < N_ELEMS(bad_items); i++) {
        char *item = strdup(bad_items[i]);

        list.items = &item;
        list.count = 1;
        opts.opt_in_keywords = i % 2 ? &list : NULL;
        opts.opt_out_keywords = i % 2 ? NULL : &list;
        k = NULL;
        assert_int_equal(keywords_new(&k, &opts), ERR_BADINPUT);
        assert_null(k);
        assert_non_null(strstr(err_message(), "empty after normalisation"));
        assert_non_null(strstr(err_message(),
                               i % 2 ? "opt_in_keywords" : "opt_out_keywords"));
        free(item);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keywords__normalize_table),
        cmocka_unit_test_setup_teardown(
            test_keywords__invalid_utf8_is_no_keyword, setup_builtin,
            teardown_builtin),
        cmocka_unit_test_setup_teardown(
            test_keywords__builtin_sets_per_language, setup_builtin,
            teardown_builtin),
        cmocka_unit_test_setup_teardown(test_keywords__required_outcomes,
                                        setup_builtin, teardown_builtin),
        cmocka_unit_test_setup_teardown(test_keywords__near_misses,
                                        setup_builtin, teardown_builtin),
        cmocka_unit_test_setup_teardown(test_keywords__null_and_overlong_text,
                                        setup_builtin, teardown_builtin),
        cmocka_unit_test_setup_teardown(test_keywords__payload_intents,
                                        setup_builtin, teardown_builtin),
        cmocka_unit_test(test_keywords__config_adds_to_builtin_sets),
        cmocka_unit_test(test_keywords__builtin_off),
        cmocka_unit_test(test_keywords__opt_out_wins_a_conflict),
        cmocka_unit_test(test_keywords__configured_payloads),
        cmocka_unit_test(test_keywords__options_defaults),
        cmocka_unit_test(test_keywords__empty_configured_keyword_is_an_error),
    };

    return cmocka_run_group_tests_name("keywords", tests, NULL, NULL);
}
