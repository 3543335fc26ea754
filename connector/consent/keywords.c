/*
 * keywords — see keywords.h.  Normalisation with utf8proc (never a
 * hand-written case fold), the built-in keyword sets, payload intents and
 * near-miss detection.  The matcher is immutable once built, so any number
 * of threads may share it.
 *
 * Data layout: every keyword, built-in or configured, is stored in its
 * normalised form in one array sorted by bytes (bsearch), each with its
 * intent.  The opt-out keywords are stored a second time in "word form"
 * (their words joined by one space: "opt-out" → "opt out") for the
 * near-miss scan, which looks up each run of 1..n consecutive words of a
 * message in that array.
 *
 * Precedence when one normalised keyword lands in two sets (a config
 * mistake, or a word two languages use differently): opt-out beats opt-in
 * beats affirmative.  Failing towards opt-out is the safe direction, and a
 * configured opt-in word ("yes") deliberately overrides the built-in
 * affirmative that needs a reply context.
 */
#include "keywords.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "caps.h"
#include "err.h"
#include "xalloc.h"

/*
 * The built-in sets.  A built-in keyword must be unambiguous as a whole
 * message in its language; anything else is left to configuration and to
 * the near-miss review.  Entries are written as people write them (with
 * accents) and normalised when the matcher is built.
 *
 * Sources, tagged per entry (public pages, read 2026):
 *   T  Twilio's default opt-out / opt-in keywords (support article
 *      223134027, "Advanced Opt-Out" docs)
 *   F  the FCC's 2024 consent-revocation order: "per se reasonable"
 *      replies (stop, quit, end, revoke, opt out, cancel, unsubscribe)
 *   A  AWS End User Messaging SMS, required opt-out keywords
 *   C  CTIA universal opt-out keywords (STOP, END, CANCEL, UNSUBSCRIBE,
 *      QUIT), CTIA short code monitoring handbook
 *   X  Telnyx advanced opt-in/out: "STOP ALL"
 *   P  Twilio Proxy's French opt-out keywords (ARRET, ARRETE, ARRETT)
 *   M  Spanish "No Mas", cited in FCC guidance as a must-honour reply
 *   W  ChatWerk (a German WhatsApp provider): INFOSTOP / INFOSTART
 *   B  Brevo SMS (Norway): UNSUB
 *   I  Inogic WhatsApp4Dynamics documentation examples
 *   -  our own judgement: the plain translation or spelling variant a
 *      native speaker would send; no authoritative list was found for
 *      other languages
 * Left out on purpose: AWS's TD (Portuguese speakers write "td" for
 * "tudo"), Twilio's HELP / INFO (no consent meaning), YES as an opt-in
 * (Twilio counts it; docs/design.md makes it an affirmative), and bare words
 * that are also common sentence fragments ("para", "fine", "no").
 */
static const char *const en_opt_out[] = {
    "stop",        /* T F A C */
    "stopall",     /* T */
    "stop all",    /* X */
    "unsubscribe", /* T F A C I */
    "unsub",       /* B */
    "cancel",      /* T F A C */
    "end",         /* T F A C */
    "quit",        /* T F A C */
    "revoke",      /* T F */
    "optout",      /* T A */
    "opt out",     /* F */
    "opt-out",     /* A */
    "remove",      /* A */
    NULL,
};
static const char *const en_opt_in[] = {
    "subscribe", /* I */
    "start",     /* T */
    "unstop",    /* T */
    "opt in",    /* - mirror of "opt out" */
    "optin",     /* - */
    "opt-in",    /* - */
    "join",      /* - */
    NULL,
};
static const char *const en_yes[] = {
    "yes",  /* T (an opt-in there) */
    "y",    /* - */
    "ok",   /* - */
    "okay", /* - */
    "yeah", /* - */
    "yep",  /* - */
    "yup",  /* - */
    "sure", /* - */
    NULL,
};

static const char *const de_opt_out[] = {
    "stopp",         /* - */
    "abmelden",      /* - */
    "abbestellen",   /* - */
    "austragen",     /* - */
    "infostop",      /* W */
    "keine werbung", /* - "no advertising" */
    NULL,
};
static const char *const de_opt_in[] = {
    "anmelden",   /* - */
    "abonnieren", /* - */
    "infostart",  /* W */
    NULL,
};
static const char *const de_yes[] = {
    "ja",     /* - */
    "jawohl", /* - */
    "gerne",  /* - */
    "gern",   /* - */
    NULL,
};

static const char *const fr_opt_out[] = {
    "arrêt",          /* A P */
    "arrête",         /* P */
    "arrêter",        /* - */
    "arrett",         /* P */
    "se désabonner",  /* - */
    "désabonner",     /* - */
    "désinscrire",    /* - */
    "se désinscrire", /* - */
    "annuler",        /* - by analogy with CANCEL / CANCELAR */
    NULL,
};
static const char *const fr_opt_in[] = {
    "s'abonner",  /* - */
    "abonner",    /* - */
    "inscrire",   /* - */
    "s'inscrire", /* - */
    NULL,
};
static const char *const fr_yes[] = {
    "oui",      /* - */
    "d'accord", /* - */
    "ouais",    /* - */
    NULL,
};

static const char *const es_opt_out[] = {
    "baja",          /* - */
    "darme de baja", /* - */
    "dar de baja",   /* - */
    "alto",          /* - */
    "parar",         /* - */
    "no más",        /* M */
    "cancelar",      /* - */
    "desuscribir",   /* - */
    "desuscribirme", /* - */
    NULL,
};
static const char *const es_opt_in[] = {
    "suscribir",     /* - */
    "suscribirme",   /* - */
    "alta",          /* - "envía ALTA": Spanish SMS practice */
    "darme de alta", /* - */
    "dar de alta",   /* - */
    NULL,
};
static const char *const es_yes[] = {
    "sí",    /* - */
    "vale",  /* - */
    "claro", /* - */
    NULL,
};

static const char *const pt_opt_out[] = {
    "parar",        /* - */
    "sair",         /* - */
    "descadastrar", /* - */
    "cancelar",     /* - */
    NULL,
};
static const char *const pt_opt_in[] = {
    "inscrever", /* - */
    "assinar",   /* - */
    NULL,
};
static const char *const pt_yes[] = {
    "sim",   /* - */
    "claro", /* - */
    NULL,
};

static const char *const it_opt_out[] = {
    "basta",        /* - */
    "disiscrivimi", /* - */
    "cancellami",   /* - */
    "non inviare",  /* - */
    NULL,
};
static const char *const it_opt_in[] = {
    "iscrivimi", /* - */
    "abbonati",  /* - */
    "iscriviti", /* - */
    NULL,
};
static const char *const it_yes[] = {
    "sì",      /* - */
    "certo",   /* - */
    "va bene", /* - */
    NULL,
};

static const char *const nl_opt_out[] = {
    "afmelden",     /* - */
    "uitschrijven", /* - */
    "stoppen",      /* - */
    NULL,
};
static const char *const nl_opt_in[] = {
    "aanmelden",   /* - */
    "abonneren",   /* - */
    "inschrijven", /* - */
    NULL,
};
static const char *const nl_yes[] = {
    "ja",    /* - */
    "oké",   /* - */
    "prima", /* - */
    NULL,
};

static const struct {
    const char *const *words;
    enum keyword_intent intent;
} builtin_sets[] = {
    { en_opt_out, KW_OPT_OUT }, { en_opt_in, KW_OPT_IN },
    { en_yes, KW_AFFIRMATIVE }, { de_opt_out, KW_OPT_OUT },
    { de_opt_in, KW_OPT_IN },   { de_yes, KW_AFFIRMATIVE },
    { fr_opt_out, KW_OPT_OUT }, { fr_opt_in, KW_OPT_IN },
    { fr_yes, KW_AFFIRMATIVE }, { es_opt_out, KW_OPT_OUT },
    { es_opt_in, KW_OPT_IN },   { es_yes, KW_AFFIRMATIVE },
    { pt_opt_out, KW_OPT_OUT }, { pt_opt_in, KW_OPT_IN },
    { pt_yes, KW_AFFIRMATIVE }, { it_opt_out, KW_OPT_OUT },
    { it_opt_in, KW_OPT_IN },   { it_yes, KW_AFFIRMATIVE },
    { nl_opt_out, KW_OPT_OUT }, { nl_opt_in, KW_OPT_IN },
    { nl_yes, KW_AFFIRMATIVE },
};

/* ---- the matcher --------------------------------------------------------- */

struct entry {
    char *key; /* normalised (owned) */
    enum keyword_intent intent;
};

struct strings {
    char **items; /* owned */
    size_t count;
};

struct keywords {
    struct entry *entries; /* sorted by key, unique (owned) */
    size_t n_entries;
    size_t cap_entries;
    struct strings out_words; /* opt-out keywords in word form, sorted */
    size_t out_words_max;     /* most words in one of them */
    struct strings opt_in_payloads;
    struct strings opt_out_payloads;
    struct strings confirm_payloads;
};

/* WhatsApp caps a text at 4096 characters (up to 16 KiB of UTF-8); longer
 * text cannot be a reply and is not normalised at all. */
#define TEXT_MAX (4 * CAP_FIELD_BYTES)

/* ---- normalisation ------------------------------------------------------- */

/*
 * NFKD with compatibility mappings, Unicode case folding and marks
 * stripped, as the header says.  LUMP as well: phones type typographic
 * apostrophes and dashes (iOS turns "s'abonner" into "s’abonner", some
 * keyboards "opt-out" into "opt–out"); LUMP maps them to ASCII ' and -.
 */
#define NORMALIZE_OPTIONS                                                      \
    (UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_DECOMPOSE |                  \
     UTF8PROC_CASEFOLD | UTF8PROC_STRIPMARK | UTF8PROC_LUMP)

static int is_alnum_cp(utf8proc_int32_t cp)
{
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') ||
               (cp >= 'A' && cp <= 'Z');
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO: return 1;
    default: return 0;
    }
}

static int is_space_cp(utf8proc_int32_t cp)
{
    if (cp == ' ' || (cp >= '\t' && cp <= '\r') || cp == 0x85)
        return 1;
    if (cp < 0x80)
        return 0;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP: return 1;
    default: return 0;
    }
}

/* Next code point of valid UTF-8 s[*pos..n); advances *pos. */
static utf8proc_int32_t next_cp(const char *s, size_t n, size_t *pos)
{
    utf8proc_int32_t cp = -1;
    utf8proc_ssize_t len = utf8proc_iterate((const utf8proc_uint8_t *)s + *pos,
                                            (utf8proc_ssize_t)(n - *pos), &cp);

    /* utf8proc wrote the text, so len > 0; step a byte if not anyway. */
    *pos += len > 0 ? (size_t)len : 1;
    return cp;
}

/*
 * In place: runs of white space → one space; everything before the first
 * and after the last letter/digit dropped.  Never lengthens the text.
 */
static void squeeze(char *s, size_t n)
{
    size_t r = 0, w = 0, end = 0, start;
    int pending_space = 0;
    utf8proc_int32_t cp;

    while (r < n) {
        start = r;
        cp = next_cp(s, n, &r);
        if (w == 0 && !is_alnum_cp(cp))
            continue;
        if (is_space_cp(cp)) {
            pending_space = 1;
            continue;
        }
        if (pending_space)
            s[w++] = ' '; /* w < start: the space took at least a byte */
        pending_space = 0;
        memmove(s + w, s + start, r - start);
        w += r - start;
        if (is_alnum_cp(cp))
            end = w;
    }
    s[end] = '\0';
}

char *keywords_normalize(const char *text)
{
    utf8proc_uint8_t *mapped = NULL;
    utf8proc_ssize_t n;

    if (!text)
        return xstrdup("");
    n = utf8proc_map((const utf8proc_uint8_t *)text,
                     (utf8proc_ssize_t)strlen(text), &mapped,
                     NORMALIZE_OPTIONS);
    if (n < 0 || !mapped) {
        /* Invalid UTF-8 (or no memory for it): no keyword can match. */
        free(mapped);
        return xstrdup("");
    }
    squeeze((char *)mapped, (size_t)n);
    return (char *)mapped; /* malloc'd by utf8proc: free() it */
}

/*
 * The words of a normalised text (runs of letters and digits) joined by
 * one space: "don't stop!" → "don t stop".  Malloc'd.
 */
static char *word_form(const char *norm)
{
    size_t n = strlen(norm), r = 0, w = 0, start;
    char *out = xmalloc(n + 1);
    utf8proc_int32_t cp;

    while (r < n) {
        start = r;
        cp = next_cp(norm, n, &r);
        if (!is_alnum_cp(cp)) {
            if (w > 0 && out[w - 1] != ' ')
                out[w++] = ' ';
            continue;
        }
        memcpy(out + w, norm + start, r - start);
        w += r - start;
    }
    if (w > 0 && out[w - 1] == ' ')
        w--;
    out[w] = '\0';
    return out;
}

/* ---- building ------------------------------------------------------------ */

static void strings_add(struct strings *s, char *owned)
{
    s->items = xrealloc(s->items, (s->count + 1) * sizeof(*s->items));
    s->items[s->count++] = owned;
}

static void strings_dispose(struct strings *s)
{
    size_t i;

    for (i = 0; i < s->count; i++)
        free(s->items[i]);
    free(s->items);
    s->items = NULL;
    s->count = 0;
}

/* Adds one keyword; ERR_BADINPUT when nothing is left of it. */
static int entry_add(keywords *k, const char *raw, enum keyword_intent intent)
{
    char *key = keywords_normalize(raw);

    if (!*key) {
        free(key);
        return ERR_BADINPUT;
    }
    if (k->n_entries == k->cap_entries) {
        k->cap_entries = k->cap_entries ? 2 * k->cap_entries : 256;
        k->entries = xrealloc(k->entries, k->cap_entries * sizeof(*k->entries));
    }
    k->entries[k->n_entries].key = key;
    k->entries[k->n_entries].intent = intent;
    k->n_entries++;
    return 0;
}

static void builtins_add(keywords *k)
{
    const char *const *w;
    size_t i;

    for (i = 0; i < sizeof(builtin_sets) / sizeof(builtin_sets[0]); i++) {
        for (w = builtin_sets[i].words; *w; w++)
            (void)entry_add(k, *w, builtin_sets[i].intent); /* never empty */
    }
}

static int configured_add(keywords *k, const struct config_list *list,
                          enum keyword_intent intent, const char *name)
{
    size_t i;

    for (i = 0; list && i < list->count; i++) {
        if (entry_add(k, list->items[i], intent) != 0) {
            err_set(ERR_CLASS_CONFIG,
                    "[consent] %s: \"%s\" is empty after normalisation", name,
                    list->items[i]);
            return ERR_BADINPUT;
        }
    }
    return 0;
}

static int rank(enum keyword_intent intent)
{
    switch (intent) {
    case KW_OPT_OUT: return 3;
    case KW_OPT_IN: return 2;
    default: return 1;
    }
}

/* By key, then the strongest intent first (see the file comment). */
static int entry_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    int c = strcmp(x->key, y->key);

    return c ? c : rank(y->intent) - rank(x->intent);
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static size_t words_in(const char *word_form_text)
{
    size_t n = 1;

    for (; *word_form_text; word_form_text++)
        n += *word_form_text == ' ';
    return n;
}

/* Sorts, keeps the strongest of equal keys, builds the word forms. */
static void entries_finish(keywords *k)
{
    size_t i, w = 0;

    if (k->n_entries == 0)
        return; /* qsort(NULL, 0, ...) is undefined */
    qsort(k->entries, k->n_entries, sizeof(*k->entries), entry_cmp);
    for (i = 0; i < k->n_entries; i++) {
        if (w > 0 && strcmp(k->entries[w - 1].key, k->entries[i].key) == 0) {
            free(k->entries[i].key);
            continue;
        }
        k->entries[w++] = k->entries[i];
    }
    k->n_entries = w;
    for (i = 0; i < k->n_entries; i++) {
        char *wf;

        if (k->entries[i].intent != KW_OPT_OUT)
            continue;
        wf = word_form(k->entries[i].key);
        if (words_in(wf) > k->out_words_max)
            k->out_words_max = words_in(wf);
        strings_add(&k->out_words, wf);
    }
    /* Duplicates ("opt out", "opt-out") are harmless to bsearch. */
    if (k->out_words.count > 0)
        qsort(k->out_words.items, k->out_words.count, sizeof(char *), str_cmp);
}

static void payloads_copy(struct strings *out, const struct config_list *list,
                          const char *fallback)
{
    size_t i;

    if (!list) {
        strings_add(out, xstrdup(fallback));
        return;
    }
    for (i = 0; i < list->count; i++) {
        if (*list->items[i])
            strings_add(out, xstrdup(list->items[i]));
    }
}

void keywords_options_from_config(struct keywords_options *out,
                                  const struct optsync_config *cfg)
{
    memset(out, 0, sizeof(*out));
    out->opt_in_keywords = &cfg->consent.opt_in_keywords;
    out->opt_out_keywords = &cfg->consent.opt_out_keywords;
    out->builtin = cfg->consent.keywords_builtin;
    out->opt_in_payloads = &cfg->consent.opt_in_payloads;
    out->opt_out_payloads = &cfg->consent.opt_out_payloads;
    out->confirm_payloads = &cfg->consent.confirm_payloads;
}

/* opts NULL: built-ins on, default payloads (as an empty config has). */
int keywords_new(keywords **out, const struct keywords_options *opts)
{
    static const struct keywords_options defaults = { .builtin = 1 };
    keywords *k = xcalloc(1, sizeof(*k));
    int rc;

    if (!opts)
        opts = &defaults;
    if (opts->builtin)
        builtins_add(k);
    rc = configured_add(k, opts->opt_out_keywords, KW_OPT_OUT,
                        "opt_out_keywords");
    if (rc == 0)
        rc = configured_add(k, opts->opt_in_keywords, KW_OPT_IN,
                            "opt_in_keywords");
    if (rc != 0) {
        keywords_free(k);
        return rc;
    }
    entries_finish(k);
    payloads_copy(&k->opt_in_payloads, opts->opt_in_payloads, "OPT_IN");
    payloads_copy(&k->opt_out_payloads, opts->opt_out_payloads, "OPT_OUT");
    payloads_copy(&k->confirm_payloads, opts->confirm_payloads, "DOI_CONFIRM");
    *out = k;
    return 0;
}

void keywords_free(keywords *k)
{
    size_t i;

    if (!k)
        return;
    for (i = 0; i < k->n_entries; i++)
        free(k->entries[i].key);
    free(k->entries);
    strings_dispose(&k->out_words);
    strings_dispose(&k->opt_in_payloads);
    strings_dispose(&k->opt_out_payloads);
    strings_dispose(&k->confirm_payloads);
    free(k);
}

/* ---- matching text ------------------------------------------------------- */

static enum keyword_intent lookup(const keywords *k, const char *norm)
{
    size_t lo = 0, hi = k->n_entries;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(norm, k->entries[mid].key);

        if (c == 0)
            return k->entries[mid].intent;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return KW_NONE;
}

/* Whether p[0..len) (not NUL-terminated) is one of the sorted strings. */
static int span_in(const struct strings *s, const char *p, size_t len)
{
    size_t lo = 0, hi = s->count;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *key = s->items[mid];
        int c = strncmp(p, key, len);

        if (c == 0 && key[len] != '\0')
            c = -1; /* p is a proper prefix of key */
        if (c == 0)
            return 1;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return 0;
}

/* Whether some run of consecutive words of `wf` is an opt-out keyword. */
static int has_opt_out_words(const keywords *k, const char *wf)
{
    const char *start = wf, *end;
    size_t n;

    while (*start) {
        end = start;
        for (n = 0; n < k->out_words_max; n++) {
            end += strcspn(end, " ");
            if (span_in(&k->out_words, start, (size_t)(end - start)))
                return 1;
            if (!*end)
                break;
            end++; /* take in the next word */
        }
        start += strcspn(start, " ");
        start += *start == ' ';
    }
    return 0;
}

void keywords_match_text(struct keyword_match *out, const keywords *k,
                         const char *text)
{
    char *norm, *wf;

    memset(out, 0, sizeof(*out));
    if (!text || strnlen(text, TEXT_MAX + 1) > TEXT_MAX)
        return;
    norm = keywords_normalize(text);
    out->intent = lookup(k, norm);
    if (out->intent == KW_NONE && *norm) {
        wf = word_form(norm);
        out->near_miss = has_opt_out_words(k, wf);
        free(wf);
    }
    free(norm);
}

/* ---- matching payloads --------------------------------------------------- */

/* ASCII only, whatever the locale. */
static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int ascii_prefix_nocase(const char *s, const char *prefix)
{
    for (; *prefix; s++, prefix++) {
        if (ascii_lower((unsigned char)*s) !=
            ascii_lower((unsigned char)*prefix))
            return 0;
    }
    return 1;
}

static int strings_has_nocase(const struct strings *s, const char *payload)
{
    size_t i, n = strlen(payload);

    for (i = 0; i < s->count; i++) {
        if (strlen(s->items[i]) == n &&
            ascii_prefix_nocase(payload, s->items[i]))
            return 1;
    }
    return 0;
}

/* OPT_OUT:<topic>: 1-63 of [A-Za-z0-9_.-], kept in lower case. */
static int topic_parse(char *out, const char *s)
{
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                         "0123456789_.-");
    size_t i;

    if (n == 0 || n >= KEYWORDS_TOPIC_MAX || s[n] != '\0')
        return -1;
    for (i = 0; i < n; i++)
        out[i] = (char)ascii_lower((unsigned char)s[i]);
    out[n] = '\0';
    return 0;
}

/* PAUSE:<days>: decimal digits only, 1 .. 3650. */
static int days_parse(int *out, const char *s)
{
    long v = 0;
    size_t n = strspn(s, "0123456789"), i;

    if (n == 0 || n > 9 || s[n] != '\0')
        return -1;
    for (i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    if (v < 1 || v > 3650)
        return -1;
    *out = (int)v;
    return 0;
}

static int structured_parse(struct keyword_match *out, const char *payload)
{
    if (ascii_prefix_nocase(payload, "OPT_OUT:") &&
        topic_parse(out->topic, payload + 8) == 0) {
        out->intent = KW_TOPIC_OPT_OUT;
        return 0;
    }
    if (ascii_prefix_nocase(payload, "PAUSE:") &&
        days_parse(&out->pause_days, payload + 6) == 0) {
        out->intent = KW_PAUSE;
        return 0;
    }
    return -1;
}

void keywords_match_payload(struct keyword_match *out, const keywords *k,
                            const char *payload)
{
    memset(out, 0, sizeof(*out));
    if (!payload)
        return;
    /* Opt-out first: a payload listed twice fails towards no marketing. */
    if (strings_has_nocase(&k->opt_out_payloads, payload))
        out->intent = KW_OPT_OUT;
    else if (strings_has_nocase(&k->confirm_payloads, payload))
        out->intent = KW_CONFIRM;
    else if (strings_has_nocase(&k->opt_in_payloads, payload))
        out->intent = KW_OPT_IN;
    else if (structured_parse(out, payload) != 0)
        keywords_match_text(out, k, payload);
}
