/*
 * test_ledger — the hash chain: the documented byte form (a fixed test
 * vector, so the form cannot drift), appends, and tampering done straight
 * to the SQLite file (edit, reorder, delete a middle entry, delete the
 * last entry, edit the head): verify names the first broken entry.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "clock.h"
#include "ledger.h"
#include "testutil.h"
#include "xalloc.h"

#define CFG "6a1c0d6e-0000-0000-0000-000000000001"

static int setup(void **state)
{
    *state = testutil_cache_new(1738077570123LL);
    return 0;
}

static int teardown(void **state)
{
    testutil_cache_free(*state);
    return 0;
}

static void append(cache *c, const char *phone, enum consent_status from,
                   enum consent_status to, int64_t at)
{
    struct ledger_entry e;

    memset(&e, 0, sizeof(e));
    e.at = at;
    e.configuration_id = CFG;
    e.phone = phone;
    e.from = from;
    e.to = to;
    e.source = "whatsapp";
    e.evidence = "{\"message_id\":\"wamid.X\",\"text\":\"STOP\"}";
    assert_int_equal(cache_begin(c), 0);
    assert_int_equal(ledger_append(c, &e), 0);
    assert_int_equal(cache_commit(c), 0);
}

static void append_five(cache *c)
{
    int i;

    for (i = 0; i < 5; i++)
        append(c, i % 2 ? "+4915123456789" : "+441234567890", CONSENT_NONE,
               i % 2 ? CONSENT_OPTED_OUT : CONSENT_SINGLE_OPT_IN,
               1738077570000LL + i);
}

static void expect_broken_at(cache *c, int64_t seq, const char *why)
{
    struct ledger_verify_result r;

    assert_int_equal(ledger_verify(&r, c), 0);
    assert_false(r.intact);
    if (r.bad_seq != seq || !strstr(r.reason, why))
        fail_msg("expected entry %lld (%s), got %lld: %s", (long long)seq, why,
                 (long long)r.bad_seq, r.reason);
}

static void sql(cache *c, const char *text)
{
    assert_int_equal(sqlite3_exec(cache_db(c), text, NULL, NULL, NULL),
                     SQLITE_OK);
}

static void test_ledger__byte_form_test_vector(void **state)
{
    struct ledger_entry e;
    char *form;

    (void)state;
    memset(&e, 0, sizeof(e));
    e.seq = 1;
    e.at = 1738077570123LL;
    e.configuration_id = CFG;
    e.phone = "+4915123456789";
    e.from = CONSENT_NONE;
    e.to = CONSENT_OPTED_OUT;
    e.source = "whatsapp";
    e.evidence = "{\"message_id\":\"wamid.X\",\"text\":\"STOP\"}";
    form = ledger_byte_form(&e, NULL);
    assert_string_equal(form, "optsync-ledger-v1\n1\n1738077570123\n" CFG "\n"
                              "+4915123456789\nnone\nopted_out\nwhatsapp\n"
                              "{\"message_id\":\"wamid.X\",\"text\":\"STOP\"}\n"
                              "00000000000000000000000000000000"
                              "00000000000000000000000000000000\n");
    free(form);
    /* sha256sum of exactly those bytes (computed outside optsync). */
    ledger_hash(&e);
    assert_string_equal(e.hash, "e82c89ad30d2912400b9aeca5555ebbf"
                                "83b2c57bc373231e2cfca0a88757333a");
}

static void test_ledger__append_chains_and_verifies(void **state)
{
    struct testutil_cache *f = *state;
    struct ledger_verify_result r;

    assert_int_equal(ledger_verify(&r, f->c), 0);
    assert_true(r.intact); /* empty is intact */
    append_five(f->c);
    assert_int_equal(ledger_verify(&r, f->c), 0);
    assert_true(r.intact);
    assert_int_equal(r.count, 5);
}

static void test_ledger__edit_detected(void **state)
{
    struct testutil_cache *f = *state;

    append_five(f->c);
    sql(f->c, "UPDATE ledger SET to_status = 2 WHERE seq = 3");
    expect_broken_at(f->c, 3, "does not match its hash");
}

static void test_ledger__evidence_edit_detected(void **state)
{
    struct testutil_cache *f = *state;

    append_five(f->c);
    sql(f->c, "UPDATE ledger SET evidence = '{}' WHERE seq = 2");
    expect_broken_at(f->c, 2, "does not match its hash");
}

static void test_ledger__reorder_detected(void **state)
{
    struct testutil_cache *f = *state;

    append_five(f->c);
    /* Swap entries 2 and 4 wholesale (contents and hashes). */
    sql(f->c, "UPDATE ledger SET seq = -2 WHERE seq = 2;"
              "UPDATE ledger SET seq = 2 WHERE seq = 4;"
              "UPDATE ledger SET seq = 4 WHERE seq = -2;");
    expect_broken_at(f->c, 2, "does not match its hash");
}

static void test_ledger__middle_deletion_detected(void **state)
{
    struct testutil_cache *f = *state;

    append_five(f->c);
    sql(f->c, "DELETE FROM ledger WHERE seq = 3");
    expect_broken_at(f->c, 3, "missing");
}

static void test_ledger__renumbered_deletion_detected(void **state)
{
    struct testutil_cache *f = *state;

    append_five(f->c);
    /* Delete 3 and close the gap: the chain breaks at the new 3. */
    sql(f->c, "DELETE FROM ledger WHERE seq = 3;"
              "UPDATE ledger SET seq = seq - 1 WHERE seq > 3;");
    expect_broken_at(f->c, 3, "does not match its hash");
}

static void test_ledger__last_deletion_detected(void **state)
{
    struct testutil_cache *f = *state;

    append_five(f->c);
    sql(f->c, "DELETE FROM ledger WHERE seq = 5");
    expect_broken_at(f->c, 5, "deleted");
}

static void test_ledger__head_edit_detected(void **state)
{
    struct testutil_cache *f = *state;

    append_five(f->c);
    sql(f->c, "UPDATE ledger_head SET last_hash = 'x'");
    expect_broken_at(f->c, 6, "does not match the chain");
}

static void test_ledger__appends_after_tamper_do_not_heal(void **state)
{
    struct testutil_cache *f = *state;

    append_five(f->c);
    sql(f->c, "UPDATE ledger SET phone = '+4900' WHERE seq = 1");
    append(f->c, "+4915123456789", CONSENT_OPTED_OUT, CONSENT_SINGLE_OPT_IN,
           1738077580000LL);
    expect_broken_at(f->c, 1, "does not match its hash");
}

struct collected {
    int n;
    int64_t seqs[16];
};

static int collect(const struct ledger_entry *e, void *payload)
{
    struct collected *c = payload;

    c->seqs[c->n++] = e->seq;
    return 0;
}

static void test_ledger__foreach_filters(void **state)
{
    struct testutil_cache *f = *state;
    struct ledger_filter filter = { CFG, "+4915123456789", 0 };
    struct collected got = { 0 };

    append_five(f->c);
    assert_int_equal(ledger_foreach(f->c, &filter, collect, &got), 0);
    assert_int_equal(got.n, 2);
    assert_int_equal(got.seqs[0], 2);
    assert_int_equal(got.seqs[1], 4);
    memset(&got, 0, sizeof(got));
    filter.phone = NULL;
    filter.since = 1738077570003LL;
    assert_int_equal(ledger_foreach(f->c, &filter, collect, &got), 0);
    assert_int_equal(got.n, 2);
    assert_int_equal(got.seqs[0], 4);
}

static void test_ledger__entry_json(void **state)
{
    struct ledger_entry e;
    cJSON *o;

    (void)state;
    memset(&e, 0, sizeof(e));
    e.seq = 7;
    e.at = 1738077570123LL;
    e.recorded_at = 1738077570123LL;
    e.configuration_id = CFG;
    e.phone = "+4915123456789";
    e.from = CONSENT_SINGLE_OPT_IN;
    e.to = CONSENT_OPTED_OUT;
    e.source = "manual";
    e.evidence = "{\"note\":\"x\"}";
    o = ledger_entry_json(&e);
    assert_string_equal(cJSON_GetObjectItem(o, "at")->valuestring,
                        "2025-01-28T15:19:30.123Z");
    assert_string_equal(cJSON_GetObjectItem(o, "from")->valuestring,
                        "single_opt_in");
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(o, "evidence"), "note")
            ->valuestring,
        "x");
    cJSON_Delete(o);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ledger__byte_form_test_vector),
        T(test_ledger__append_chains_and_verifies),
        T(test_ledger__edit_detected),
        T(test_ledger__evidence_edit_detected),
        T(test_ledger__reorder_detected),
        T(test_ledger__middle_deletion_detected),
        T(test_ledger__renumbered_deletion_detected),
        T(test_ledger__last_deletion_detected),
        T(test_ledger__head_edit_detected),
        T(test_ledger__appends_after_tamper_do_not_heal),
        T(test_ledger__foreach_filters),
        T(test_ledger__entry_json),
    };

    return cmocka_run_group_tests_name("ledger", tests, NULL, NULL);
}
