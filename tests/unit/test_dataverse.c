/*
 * test_dataverse — the Web API client against the emulator (real HTTP on
 * loopback): paged reads with the links followed verbatim, change
 * tracking and deleted rows, one row by id, Dataverse errors with their
 * codes (expired delta token), a 401 answered by one token refresh, and
 * OData string literals.
 *
 * ctest-timeout: 300
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "caps.h"
#include "dataverse.h"
#include "emulator_control.h"
#include "fileio.h"
#include "testutil.h"
#include "xalloc.h"

#define CFG "6a1c0d6e-0000-0000-0000-000000000001"

static const char seed[] =
    "{\"format\":\"optsync-emulator-seed/1\",\"configurations\":[{\"id\":\"" CFG
    "\",\"name\":\"WA Main\",\"double_opt_in\":false,\"default_region\":"
    "\"DE\"}],\"numbers\":["
    "{\"id\":\"3f2e0000-0000-0000-0000-000000000001\",\"configuration\":"
    "\"" CFG "\",\"phone\":\"+49 151 1\",\"status\":\"opted_out\"},"
    "{\"id\":\"3f2e0000-0000-0000-0000-000000000002\",\"configuration\":"
    "\"" CFG "\",\"phone\":\"+49 151 2\",\"status\":\"single_opt_in\"},"
    "{\"id\":\"3f2e0000-0000-0000-0000-000000000003\",\"configuration\":"
    "\"" CFG "\",\"phone\":\"+49 151 3\",\"status\":\"double_opt_in\"},"
    "{\"id\":\"3f2e0000-0000-0000-0000-000000000004\",\"configuration\":"
    "\"" CFG "\",\"phone\":\"+49 151 4\",\"status\":\"opted_out\"},"
    "{\"id\":\"3f2e0000-0000-0000-0000-000000000005\",\"configuration\":"
    "\"" CFG "\",\"phone\":\"+49 151 5\",\"status\":\"opted_out\"}]}";

struct fixture {
    char *dir;
    struct emulator_proc emu;
    struct optsync_config *cfg;
    struct mapping *m;
    http *h;
    auth *a;
    dataverse *dv;
};

static struct mapping *load_mapping(void)
{
    char *path = testutil_source_path("mapping/whatsapp4dynamics.json");
    size_t len;
    char *text = testutil_read(path, &len);
    struct mapping_problems p = { 0 };
    struct mapping *m = NULL;

    assert_int_equal(mapping_load(&m, text, len, &p), 0);
    mapping_problems_dispose(&p);
    free(text);
    free(path);
    return m;
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    struct http_options o = HTTP_OPTIONS_INIT;
    char *seed_path;
    const char *args[] = { "--seed", NULL,      "--max-page-size",
                           "2",      "--quiet", NULL };
    static const char *const page2[] = { "dataverse.page_size=2", NULL };

    f->dir = testutil_tmpdir();
    seed_path = testutil_write(f->dir, "seed.json", seed, 0600);
    args[1] = seed_path;
    assert_int_equal(emulator_start(&f->emu, args), 0);
    free(seed_path);
    f->cfg = emulator_config(&f->emu, page2);
    f->m = load_mapping();
    o.base_backoff_ms = 10;
    assert_int_equal(http_new(&f->h, &o), 0);
    assert_int_equal(auth_new(&f->a, f->cfg, f->h), 0);
    assert_int_equal(dataverse_new(&f->dv, f->cfg, f->m, f->h, f->a), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    dataverse_free(f->dv);
    auth_free(f->a);
    http_free(f->h);
    mapping_free(f->m);
    config_free(f->cfg);
    emulator_stop(&f->emu);
    testutil_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* Reads every page from `url`; returns rows, stores the delta link. */
static int read_all(struct fixture *f, const char *url, int track,
                    char **delta_link, int *pages)
{
    struct dv_page p;
    char *next = xstrdup(url);
    int rows = 0;

    *pages = 0;
    while (next) {
        assert_int_equal(dataverse_get_page(&p, f->dv, next, track), 0);
        free(next);
        next = p.next_link ? xstrdup(p.next_link) : NULL;
        rows += cJSON_GetArraySize(p.rows);
        (*pages)++;
        if (!next && delta_link)
            *delta_link = p.delta_link ? xstrdup(p.delta_link) : NULL;
        else if (next)
            assert_null(p.delta_link); /* only on the last page */
        dv_page_dispose(&p);
    }
    return rows;
}

static void test_dataverse__pages_followed_to_the_delta_link(void **state)
{
    struct fixture *f = *state;
    char *url = dataverse_query_url(f->dv, DV_NUMBER);
    char *delta = NULL;
    int pages;

    assert_non_null(strstr(url, "/api/data/v9.2/inogic_optinoptoutnumbers"
                                "?$select=inogic_optinoptoutnumberid,"));
    assert_int_equal(read_all(f, url, 1, &delta, &pages), 5);
    assert_int_equal(pages, 3);
    assert_non_null(delta);
    assert_non_null(strstr(delta, "$deltatoken="));
    free(delta);
    free(url);
}

static void test_dataverse__delta_with_changes_and_deletions(void **state)
{
    struct fixture *f = *state;
    char *url = dataverse_query_url(f->dv, DV_NUMBER);
    char *delta = NULL, *delta2 = NULL, id[MAPPING_GUID_LEN + 1];
    struct dv_page p;
    int pages, deleted = 0;
    const cJSON *row;

    read_all(f, url, 1, &delta, &pages);
    assert_int_equal(emulator_control(&f->emu, "PATCH",
                                      "admin/number/"
                                      "3f2e0000-0000-0000-0000-000000000002",
                                      "{\"status\":\"opted_out\"}", NULL),
                     200);
    assert_int_equal(emulator_control(&f->emu, "DELETE",
                                      "admin/number/"
                                      "3f2e0000-0000-0000-0000-000000000003",
                                      NULL, NULL),
                     200);
    assert_int_equal(dataverse_get_page(&p, f->dv, delta, 0), 0);
    cJSON_ArrayForEach(row, p.rows)
    {
        if (dataverse_row_deleted(id, row)) {
            assert_string_equal(id, "3f2e0000-0000-0000-0000-000000000003");
            deleted++;
        }
    }
    assert_int_equal(cJSON_GetArraySize(p.rows), 2);
    assert_int_equal(deleted, 1);
    assert_non_null(p.delta_link);
    delta2 = xstrdup(p.delta_link);
    dv_page_dispose(&p);
    /* The new link: nothing more to report. */
    assert_int_equal(dataverse_get_page(&p, f->dv, delta2, 0), 0);
    assert_int_equal(cJSON_GetArraySize(p.rows), 0);
    dv_page_dispose(&p);
    free(delta);
    free(delta2);
    free(url);
}

static void test_dataverse__expired_delta_token_has_its_code(void **state)
{
    struct fixture *f = *state;
    char *url = dataverse_query_url(f->dv, DV_NUMBER), *delta = NULL;
    struct dv_page p;
    int pages;

    read_all(f, url, 1, &delta, &pages);
    assert_int_equal(emulator_control(&f->emu, "POST", "expire",
                                      "{\"delta_tokens\":true}", NULL),
                     200);
    assert_int_equal(dataverse_get_page(&p, f->dv, delta, 0), ERR_BADINPUT);
    assert_int_equal(dataverse_last_error(f->dv)->status, 400);
    assert_string_equal(dataverse_last_error(f->dv)->code,
                        DV_CODE_EXPIRED_VERSION_STAMP);
    assert_non_null(strstr(err_message(), "0x80044352"));
    assert_int_equal(err_exit_code(), EXIT_REMOTE);
    free(delta);
    free(url);
}

static void test_dataverse__one_row_by_id(void **state)
{
    struct fixture *f = *state;
    cJSON *row = NULL;

    assert_int_equal(dataverse_get_row(&row, f->dv, DV_CONFIGURATION,
                                       "{6A1C0D6E-0000-0000-0000-"
                                       "000000000001}"),
                     0);
    assert_string_equal(cJSON_GetObjectItem(row, "inogic_name")->valuestring,
                        "WA Main");
    cJSON_Delete(row);
    assert_int_equal(dataverse_get_row(&row, f->dv, DV_CONFIGURATION,
                                       "6a1c0d6e-0000-0000-0000-00000000ffff"),
                     ERR_NOTFOUND);
    assert_int_equal(
        dataverse_get_row(&row, f->dv, DV_CONFIGURATION, "1 or 1=1"),
        ERR_BADINPUT);
}

static void test_dataverse__401_refreshes_the_token_once(void **state)
{
    struct fixture *f = *state;
    char *url = dataverse_query_url(f->dv, DV_CONFIGURATION);
    struct dv_page p;

    assert_int_equal(dataverse_get_page(&p, f->dv, url, 0), 0);
    dv_page_dispose(&p);
    assert_int_equal(auth_tokens_fetched(f->a), 1);
    assert_int_equal(emulator_control(&f->emu, "POST", "expire",
                                      "{\"access_tokens\":true}", NULL),
                     200);
    assert_int_equal(dataverse_get_page(&p, f->dv, url, 0), 0);
    dv_page_dispose(&p);
    assert_int_equal(auth_tokens_fetched(f->a), 2);
    free(url);
}

static void test_dataverse__wrong_entity_set_is_a_clear_error(void **state)
{
    struct fixture *f = *state;
    char *url = xasprintf("%s/api/data/v9.2/Inogic_optinoptoutnumbers",
                          f->emu.base_url);
    struct dv_page p;

    assert_int_equal(dataverse_get_page(&p, f->dv, url, 0), ERR_BADINPUT);
    assert_non_null(strstr(err_message(), "HTTP 404"));
    assert_non_null(strstr(err_message(), "0x8006088a"));
    assert_non_null(strstr(err_message(), "entity set names"));
    free(url);
}

static void test_dataverse__odata_string_literals(void **state)
{
    char *s;

    (void)state;
    s = dataverse_odata_string("O'Bryan");
    assert_string_equal(s, "%27O%27%27Bryan%27");
    free(s);
    s = dataverse_odata_string("+49 & co/?");
    assert_string_equal(s, "%27%2B49%20%26%20co%2F%3F%27");
    free(s);
}

static void test_dataverse__error_bodies(void **state)
{
    struct dv_error e;
    const char *body = "{\"error\":{\"code\":\"0x80060882\",\"message\":"
                       "\"The version of the existing record doesn't match "
                       "the RowVersion property provided.\"}}";

    (void)state;
    dataverse_error_parse(&e, 412, body, strlen(body));
    assert_string_equal(e.code, DV_CODE_CONCURRENCY_MISMATCH);
    assert_non_null(strstr(e.message, "RowVersion"));
    dataverse_error_parse(&e, 502, "<html>", 6);
    assert_string_equal(e.code, "");
    assert_int_equal(e.status, 502);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_dataverse__pages_followed_to_the_delta_link),
        T(test_dataverse__delta_with_changes_and_deletions),
        T(test_dataverse__expired_delta_token_has_its_code),
        T(test_dataverse__one_row_by_id),
        T(test_dataverse__401_refreshes_the_token_once),
        T(test_dataverse__wrong_entity_set_is_a_clear_error),
        cmocka_unit_test(test_dataverse__odata_string_literals),
        cmocka_unit_test(test_dataverse__error_bodies),
    };

    return cmocka_run_group_tests_name("dataverse", tests, NULL, NULL);
}
