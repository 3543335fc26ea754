/*
 * test_emulator_proc — the test support that starts the emulators: both
 * the Dataverse and the WhatsApp emulator come up through the same READY
 * contract, side by side on their own ports, each answering its own
 * control API (/_emulator/health and a route only it has); names that are
 * not a script in tests/emulator/, or a script that never says READY, are
 * refused with the child reaped.
 *
 * ctest-timeout: 300
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emulator_control.h"
#include "emulator_proc.h"
#include "jsonutil.h"

/* GET /_emulator/health: {"ok": true, "port": <the port READY gave>}. */
static void assert_healthy(const struct emulator_proc *emu)
{
    cJSON *doc = NULL;
    char url[64];

    assert_true(emu->pid > 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", emu->port);
    assert_string_equal(emu->base_url, url);
    assert_int_equal(emulator_control_json(emu, "GET", "health", NULL, &doc),
                     200);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(doc, "ok")));
    assert_int_equal(jsonutil_int(doc, "port", -1), emu->port);
    cJSON_Delete(doc);
}

/* The default templates file's phone number, as the WhatsApp emulator
 * lists it: only that emulator has the route. */
static int has_whatsapp_templates(const struct emulator_proc *emu)
{
    char *body = NULL;
    long status = emulator_control(emu, "GET", "templates", NULL, &body);
    int found = status == 200 && body != NULL &&
                strstr(body, "\"optin_request\"") != NULL &&
                strstr(body, "\"110000000000001\"") != NULL;

    free(body);
    return found;
}

/* Emulators a test starts; teardown stops them even after a failed
 * assertion, so no child outlives the test binary. */
struct fixture {
    struct emulator_proc dv, wa, other;
};

static int setup(void **state)
{
    *state = calloc(1, sizeof(struct fixture));
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    emulator_stop(&f->wa);
    emulator_stop(&f->dv);
    emulator_stop(&f->other);
    free(f);
    return 0;
}

static void test_emulator_proc__starts_both_emulators(void **state)
{
    static const char *const quiet[] = { "--quiet", NULL };
    struct fixture *f = *state;

    assert_int_equal(emulator_start(&f->dv, quiet), 0);
    assert_int_equal(emulator_start_script(&f->wa, EMULATOR_WHATSAPP, quiet),
                     0);
    assert_int_not_equal(f->dv.port, f->wa.port);
    assert_int_not_equal(f->dv.pid, f->wa.pid);
    assert_healthy(&f->dv);
    assert_healthy(&f->wa);
    /* Each is the emulator it was asked for. */
    assert_true(has_whatsapp_templates(&f->wa));
    assert_false(has_whatsapp_templates(&f->dv));
    assert_int_equal(emulator_control(&f->dv, "GET", "state", NULL, NULL), 200);
    assert_int_equal(emulator_control(&f->wa, "GET", "state", NULL, NULL), 404);
    emulator_stop(&f->wa);
    emulator_stop(&f->dv);
    assert_int_equal(f->wa.pid, 0);
    assert_int_equal(f->dv.pid, 0);
}

static void test_emulator_proc__dataverse_by_name(void **state)
{
    static const char *const quiet[] = { "--quiet", NULL };
    struct fixture *f = *state;

    assert_int_equal(emulator_start_script(&f->dv, EMULATOR_DATAVERSE, quiet),
                     0);
    assert_healthy(&f->dv);
    assert_false(has_whatsapp_templates(&f->dv));
}

static void test_emulator_proc__refuses_paths(void **state)
{
    struct fixture *f = *state;
    struct emulator_proc *emu = &f->other;

    assert_int_equal(emulator_start_script(emu, NULL, NULL), -1);
    assert_int_equal(emulator_start_script(emu, "", NULL), -1);
    assert_int_equal(emulator_start_script(emu, "..", NULL), -1);
    assert_int_equal(
        emulator_start_script(emu, "../emulator/whatsapp_emulator.py", NULL),
        -1);
    assert_int_equal(emu->pid, 0);
}

static void test_emulator_proc__no_ready_line_fails(void **state)
{
    static const char *const bad_flag[] = { "--no-such-flag", NULL };
    struct fixture *f = *state;

    /* No such script: python exits at once, stdout closes unread. */
    assert_int_equal(
        emulator_start_script(&f->other, "no_such_emulator.py", NULL), -1);
    /* A real emulator refusing its arguments exits 2 before READY. */
    assert_int_equal(
        emulator_start_script(&f->other, EMULATOR_WHATSAPP, bad_flag), -1);
    assert_int_equal(f->other.pid, 0);
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_emulator_proc__starts_both_emulators),
        TEST(test_emulator_proc__dataverse_by_name),
        TEST(test_emulator_proc__refuses_paths),
        TEST(test_emulator_proc__no_ready_line_fails),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
