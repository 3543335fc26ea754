/*
 * test_wa_users — BSUID links and last inbound times in the cache: a
 * link is new once, the number seen last wins (design note 1), a link
 * seen under the asked WABA is preferred (note 2), and a late message
 * never moves the last inbound time back (note 3).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "clock.h"
#include "err.h"
#include "testutil.h"
#include "wa_users.h"
#include "xalloc.h"

#define T0 1800000000000LL
#define CFG "7a000000-0000-4000-8000-000000000001"

static int setup(void **state)
{
    *state = testutil_cache_new(T0);
    return 0;
}

static int teardown(void **state)
{
    testutil_cache_free(*state);
    return 0;
}

static int put(cache *c, const char *user, const char *e164, const char *waba)
{
    int fresh = -1;

    assert_int_equal(cache_begin(c), 0);
    assert_int_equal(wa_users_link_put(&fresh, c, user, e164, waba, NULL), 0);
    assert_int_equal(cache_commit(c), 0);
    return fresh;
}

static const char *find(cache *c, const char *user, const char *waba)
{
    static char out[32];

    if (wa_users_phone_find(out, sizeof(out), c, user, waba) != 0)
        return NULL;
    return out;
}

static void test_wa_users__links(void **state)
{
    struct testutil_cache *f = *state;

    assert_null(find(f->c, "US.1", NULL));
    assert_int_equal(put(f->c, "US.1", "+16505551234", "waba1"), 1);
    assert_int_equal(put(f->c, "US.1", "+16505551234", "waba1"), 0);
    assert_string_equal(find(f->c, "US.1", NULL), "+16505551234");
    /* seen later with another number: that one wins ... */
    clock_advance(1000);
    assert_int_equal(put(f->c, "US.1", "+16505550000", "waba2"), 1);
    assert_string_equal(find(f->c, "US.1", NULL), "+16505550000");
    /* ... unless the caller names the WABA of the first */
    assert_string_equal(find(f->c, "US.1", "waba1"), "+16505551234");
    /* the first seen again moves it back */
    clock_advance(1000);
    assert_int_equal(put(f->c, "US.1", "+16505551234", NULL), 0);
    assert_string_equal(find(f->c, "US.1", NULL), "+16505551234");
    assert_int_equal(
        testutil_query_int(f->c, "SELECT count(*) FROM wa_identities WHERE "
                                 "waba_id = 'waba1' AND first_seen = "
                                 "1800000000000 AND last_seen = "
                                 "1800000002000"),
        1);
    assert_null(find(f->c, "US.2", NULL));
}

static void test_wa_users__last_inbound(void **state)
{
    struct testutil_cache *f = *state;
    int64_t at = 0;

    assert_int_equal(wa_users_inbound_get(&at, f->c, CFG, "+1"), ERR_NOTFOUND);
    assert_int_equal(cache_begin(f->c), 0);
    assert_int_equal(wa_users_inbound_put(f->c, CFG, "+1", T0, "m1"), 0);
    assert_int_equal(wa_users_inbound_put(f->c, CFG, "+1", T0 - 5, "m0"), 0);
    assert_int_equal(cache_commit(f->c), 0);
    assert_int_equal(wa_users_inbound_get(&at, f->c, CFG, "+1"), 0);
    assert_int_equal(at, T0);
    assert_int_equal(testutil_query_int(f->c,
                                        "SELECT count(*) FROM wa_last_inbound "
                                        "WHERE message_id = 'm1'"),
                     1);
    assert_int_equal(cache_begin(f->c), 0);
    assert_int_equal(wa_users_inbound_put(f->c, CFG, "+1", T0 + 9, "m2"), 0);
    assert_int_equal(cache_commit(f->c), 0);
    assert_int_equal(wa_users_inbound_get(&at, f->c, CFG, "+1"), 0);
    assert_int_equal(at, T0 + 9);
    assert_int_equal(wa_users_inbound_get(&at, f->c, "other", "+1"),
                     ERR_NOTFOUND);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_wa_users__links),
        T(test_wa_users__last_inbound),
    };

    return cmocka_run_group_tests_name("wa_users", tests, NULL, NULL);
}
