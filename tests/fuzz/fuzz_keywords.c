/*
 * fuzz_keywords — reply text and button payloads from outside:
 * keywords_normalize (utf8proc on arbitrary bytes: invalid UTF-8, emoji,
 * long runs of combining marks, compatibility expansions), then
 * keywords_match_text and keywords_match_payload with a matcher built
 * once from the built-ins plus configured multi-word keywords.  Input is
 * capped at 4 KiB.  Invariants, each an abort():
 *   - the normalised text is valid UTF-8, starts and ends with a letter
 *     or digit, holds no white space but single spaces, and normalising
 *     it again changes nothing;
 *   - a message and its normalised form mean the same;
 *   - a keyword is never a near miss; topics and pause days are in range.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "keywords.h"

#define INPUT_CAP 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

static int is_alnum_cp(utf8proc_int32_t cp)
{
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

static void check_normal_form(const char *norm)
{
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)norm;
    utf8proc_ssize_t left = (utf8proc_ssize_t)strlen(norm), len;
    utf8proc_int32_t cp = 0, first = -1;
    char *again;

    while (left > 0) {
        len = utf8proc_iterate(p, left, &cp);
        check(len > 0);
        if (first < 0)
            first = cp;
        check(cp == ' ' || utf8proc_category(cp) != UTF8PROC_CATEGORY_ZS);
        check(cp != '\t' && cp != '\n' && cp != '\r');
        p += len;
        left -= len;
    }
    if (*norm) {
        check(is_alnum_cp(first) && is_alnum_cp(cp));
        check(!strstr(norm, "  "));
    }
    again = keywords_normalize(norm);
    check(strcmp(again, norm) == 0);
    free(again);
}

static void check_match(const struct keyword_match *m)
{
    check(!(m->near_miss && m->intent != KW_NONE));
    if (m->intent == KW_TOPIC_OPT_OUT)
        check(m->topic[0] && strlen(m->topic) < KEYWORDS_TOPIC_MAX);
    if (m->intent == KW_PAUSE)
        check(m->pause_days >= 1 && m->pause_days <= 3650);
}

static const keywords *matcher(void)
{
    static char *in[] = { "hola amigo", "Anmeldung bitte" };
    static char *out[] = { "no more messages", "Tschüss" };
    static const struct config_list in_list = { in, 2 };
    static const struct config_list out_list = { out, 2 };
    static keywords *k;
    struct keywords_options opts = { 0 };

    if (!k) {
        opts.builtin = 1;
        opts.opt_in_keywords = &in_list;
        opts.opt_out_keywords = &out_list;
        if (keywords_new(&k, &opts) != 0)
            abort();
    }
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct keyword_match m, n;
    char *text, *norm;

    if (size > INPUT_CAP)
        return 0;
    text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    norm = keywords_normalize(text);
    check_normal_form(norm);
    keywords_match_text(&m, matcher(), text);
    check_match(&m);
    keywords_match_text(&n, matcher(), norm);
    check(m.intent == n.intent && m.near_miss == n.near_miss);
    keywords_match_payload(&m, matcher(), text);
    check_match(&m);
    free(norm);
    free(text);
    return 0;
}
