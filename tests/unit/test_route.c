/*
 * test_route — the listener's route table on its own: literal and {name}
 * segments, percent-decoded parameters, the first registered match
 * winning, the methods of a path that matched with others (405), paths
 * that must not match (trailing slash, empty segments, extra segments,
 * an encoded NUL), and patterns refused at registration.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "err.h"
#include "route.h"

static void fn_a(struct route_req *r, void *arg)
{
    (void)r;
    (void)arg;
}

static void fn_b(struct route_req *r, void *arg)
{
    (void)r;
    (void)arg;
}

static int marker_a, marker_b;

static void table(struct route_table *t)
{
    route_table_init(t);
    assert_int_equal(route_table_add(t, ROUTE_GET, "/v1/gate", fn_a, &marker_a,
                                     ROUTE_API_KEY),
                     0);
    assert_int_equal(
        route_table_add(t, ROUTE_POST, "/v1/gate", fn_b, &marker_b, 0), 0);
    assert_int_equal(route_table_add(t, ROUTE_GET,
                                     "/v1/configurations/{id}/numbers", fn_a,
                                     NULL, 0),
                     0);
    assert_int_equal(route_table_add(t, ROUTE_POST,
                                     "/webhooks/whatsapp/{configuration}", fn_b,
                                     NULL, 0),
                     0);
    assert_int_equal(
        route_table_add(t, ROUTE_POST, "/webhooks/whatsapp", fn_a, NULL, 0), 0);
    assert_int_equal(
        route_table_add(t, ROUTE_GET | ROUTE_POST, "/a/{x}/{y}", fn_a, NULL, 0),
        0);
}

static void test_route__literal_and_method(void **state)
{
    struct route_table t;
    struct route_params p;
    const struct route *rt;
    unsigned allowed;

    (void)state;
    table(&t);
    rt = route_table_match(&t, ROUTE_GET, "/v1/gate", &p, &allowed);
    assert_non_null(rt);
    assert_ptr_equal(rt->arg, &marker_a);
    assert_int_equal(rt->flags, ROUTE_API_KEY);
    rt = route_table_match(&t, ROUTE_POST, "/v1/gate", &p, &allowed);
    assert_non_null(rt);
    assert_ptr_equal(rt->arg, &marker_b);
    rt = route_table_match(&t, ROUTE_DELETE, "/v1/gate", &p, &allowed);
    assert_null(rt);
    assert_int_equal(allowed, ROUTE_GET | ROUTE_POST); /* a 405 */
    rt = route_table_match(&t, ROUTE_GET, "/v1/nothing", &p, &allowed);
    assert_null(rt);
    assert_int_equal(allowed, 0); /* a 404 */
    route_table_dispose(&t);
}

static void test_route__parameters_are_decoded(void **state)
{
    struct route_table t;
    struct route_params p;
    const struct route *rt;
    unsigned allowed;

    (void)state;
    table(&t);
    rt = route_table_match(&t, ROUTE_GET,
                           "/v1/configurations/WA%20Main%2Fx/numbers", &p,
                           &allowed);
    assert_non_null(rt);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.names[0], "{id}");
    assert_string_equal(p.values[0], "WA Main/x");
    route_params_dispose(&p);

    rt = route_table_match(&t, ROUTE_POST, "/webhooks/whatsapp/WA+Main", &p,
                           &allowed);
    assert_non_null(rt);
    assert_ptr_equal(rt->fn, fn_b);
    assert_string_equal(p.values[0], "WA+Main"); /* '+' is not a space */
    route_params_dispose(&p);

    rt = route_table_match(&t, ROUTE_POST, "/webhooks/whatsapp", &p, &allowed);
    assert_non_null(rt);
    assert_ptr_equal(rt->fn, fn_a);
    assert_int_equal(p.n, 0);

    rt = route_table_match(&t, ROUTE_POST, "/a/1/2", &p, &allowed);
    assert_non_null(rt);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.values[0], "1");
    assert_string_equal(p.values[1], "2");
    route_params_dispose(&p);
    route_table_dispose(&t);
}

static void test_route__near_misses_do_not_match(void **state)
{
    static const char *const paths[] = {
        "/v1/gate/",
        "/v1//gate",
        "/v1/gate/x",
        "/v1/configurations//numbers",
        "/v1/configurations/x/numbers/",
        "/v1/configurations/a%00b/numbers",
        "/a/1",
        "/a/1/2/3",
        "v1/gate",
        "",
    };
    struct route_table t;
    struct route_params p;
    unsigned allowed;
    size_t i;

    (void)state;
    table(&t);
    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        assert_null(route_table_match(&t, ROUTE_GET, paths[i], &p, &allowed));
        assert_int_equal(p.n, 0);
    }
    assert_null(route_table_match(&t, ROUTE_GET, NULL, &p, &allowed));
    route_table_dispose(&t);
}

static void test_route__bad_patterns_are_refused(void **state)
{
    static const char *const bad[] = {
        "nope", "/a//b", "/a/", "/{", "/{}", "/a{b}", "/x/{a}/{b}/{c}/{d}/{e}",
    };
    struct route_table t;
    size_t i;

    (void)state;
    route_table_init(&t);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(route_table_add(&t, ROUTE_GET, bad[i], fn_a, NULL, 0),
                         ERR_BADINPUT);
    assert_int_equal(t.n, 0);
    route_table_dispose(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route__literal_and_method),
        cmocka_unit_test(test_route__parameters_are_decoded),
        cmocka_unit_test(test_route__near_misses_do_not_match),
        cmocka_unit_test(test_route__bad_patterns_are_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
