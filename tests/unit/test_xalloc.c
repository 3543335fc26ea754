/*
 * test_xalloc — bounded buffers never grow past their maximum, and the
 * string helpers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "xalloc.h"

static void test_xalloc__strbuf_grows_to_its_max(void **state)
{
    struct strbuf sb;
    size_t i;
    char *s;

    (void)state;
    strbuf_init(&sb, 1000);
    for (i = 0; i < 100; i++)
        assert_int_equal(strbuf_adds(&sb, "0123456789"), 0);
    assert_int_equal(sb.len, 1000);
    /* One byte more is refused, and the buffer is unchanged. */
    assert_int_equal(strbuf_addc(&sb, 'x'), ERR_TOOBIG);
    assert_int_equal(sb.len, 1000);
    assert_int_equal(sb.data[1000], '\0');
    assert_int_equal(strbuf_addf(&sb, "%d", 1), ERR_TOOBIG);
    strbuf_reset(&sb);
    assert_int_equal(strbuf_addf(&sb, "%s-%d", "a", 7), 0);
    assert_string_equal(sb.data, "a-7");
    s = strbuf_detach(&sb);
    assert_string_equal(s, "a-7");
    assert_null(sb.data);
    free(s);
}

static void test_xalloc__huge_append_does_not_wrap(void **state)
{
    struct strbuf sb;

    (void)state;
    strbuf_init(&sb, 16);
    assert_int_equal(strbuf_addc(&sb, 'a'), 0);
    assert_int_equal(strbuf_add(&sb, "b", SIZE_MAX), ERR_TOOBIG);
    assert_int_equal(sb.len, 1);
    strbuf_dispose(&sb);
}

static void test_xalloc__strings(void **state)
{
    char *s;

    (void)state;
    s = xstrndup("abcdef", 3);
    assert_string_equal(s, "abc");
    free(s);
    s = xasprintf("%s=%d", "n", 42);
    assert_string_equal(s, "n=42");
    free(s);
    xfree_secret(NULL);
    xfree_secret(xstrdup("secret"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xalloc__strbuf_grows_to_its_max),
        cmocka_unit_test(test_xalloc__huge_append_does_not_wrap),
        cmocka_unit_test(test_xalloc__strings),
    };

    return cmocka_run_group_tests_name("xalloc", tests, NULL, NULL);
}
