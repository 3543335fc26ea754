/*
 * test_dv_batch — the $batch multipart writer (byte for byte: CRLF
 * everywhere, independent parts, Content-IDs) and the response parser:
 * Dataverse's documented answer shape, mixed part results, change set
 * answers flattened, bare LF tolerated, quoted and missing boundaries,
 * and bodies that are no batch response at all.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "dv_batch.h"

static void test_dv_batch__writer_is_byte_exact(void **state)
{
    static const char *const h1[] = { "Prefer: return=representation",
                                      "If-Match: W/\"5019\"", NULL };
    static const char *const h2[] = { "If-None-Match: *", NULL };
    const struct dv_batch_op ops[] = {
        { "PATCH", "http://h/api/data/v9.2/s(1)?$select=a", h1, "{\"x\":1}" },
        { "PATCH", "http://h/api/data/v9.2/s(2)", h2, "{}" },
        { "GET", "http://h/api/data/v9.2/s(3)", NULL, NULL },
    };
    static const char expected[] =
        "--batch_B\r\n"
        "Content-Type: application/http\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        "Content-ID: 1\r\n"
        "\r\n"
        "PATCH http://h/api/data/v9.2/s(1)?$select=a HTTP/1.1\r\n"
        "Prefer: return=representation\r\n"
        "If-Match: W/\"5019\"\r\n"
        "Content-Type: application/json; type=entry\r\n"
        "\r\n"
        "{\"x\":1}\r\n"
        "--batch_B\r\n"
        "Content-Type: application/http\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        "Content-ID: 2\r\n"
        "\r\n"
        "PATCH http://h/api/data/v9.2/s(2) HTTP/1.1\r\n"
        "If-None-Match: *\r\n"
        "Content-Type: application/json; type=entry\r\n"
        "\r\n"
        "{}\r\n"
        "--batch_B\r\n"
        "Content-Type: application/http\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        "Content-ID: 3\r\n"
        "\r\n"
        "GET http://h/api/data/v9.2/s(3) HTTP/1.1\r\n"
        "\r\n"
        "\r\n"
        "--batch_B--\r\n";
    struct strbuf sb;

    (void)state;
    strbuf_init(&sb, 1 << 20);
    dv_batch_write(&sb, "batch_B", ops, 3);
    assert_string_equal(sb.data, expected);
    assert_int_equal(sb.len, sizeof(expected) - 1);
    strbuf_dispose(&sb);
}

static void test_dv_batch__boundaries_are_fresh(void **state)
{
    char a[DV_BATCH_BOUNDARY_MAX], b[DV_BATCH_BOUNDARY_MAX];

    (void)state;
    dv_batch_boundary_new(a);
    dv_batch_boundary_new(b);
    assert_int_equal(strlen(a), 6 + 32);
    assert_memory_equal(a, "batch_", 6);
    assert_string_not_equal(a, b);
}

/* The shape Dataverse documents (S22) and the emulator sends: a 200 with
 * a representation, a 412 error part with REQ_ID, a 204 with headers. */
static const char mixed[] =
    "--batchresponse_9f\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "Content-ID: 1\r\n"
    "\r\n"
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: application/json; odata.metadata=minimal\r\n"
    "OData-Version: 4.0\r\n"
    "ETag: W/\"77\"\r\n"
    "\r\n"
    "{\"@odata.etag\":\"W/\\\"77\\\"\",\"id\":\"a\"}\r\n"
    "--batchresponse_9f\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "Content-ID: 2\r\n"
    "\r\n"
    "HTTP/1.1 412 Precondition Failed\r\n"
    "REQ_ID: 5e1c\r\n"
    "Content-Type: application/json; odata.metadata=minimal\r\n"
    "\r\n"
    "{\"error\":{\"code\":\"0x80060882\",\"message\":\"stale\"}}\r\n"
    "--batchresponse_9f\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "Content-ID: 3\r\n"
    "\r\n"
    "HTTP/1.1 204 No Content\r\n"
    "OData-Version: 4.0\r\n"
    "Location: http://h/api/data/v9.2/s(loc)\r\n"
    "OData-EntityId: http://h/api/data/v9.2/s(eid)\r\n"
    "\r\n"
    "\r\n"
    "--batchresponse_9f\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "\r\n"
    "HTTP/1.1 429 Too Many Requests\r\n"
    "Retry-After: 7\r\n"
    "\r\n"
    "--batchresponse_9f--\r\n";

static void test_dv_batch__mixed_part_results(void **state)
{
    struct dv_batch_response r;
    const struct dv_batch_part *p;

    (void)state;
    assert_int_equal(dv_batch_response_parse(
                         &r, "multipart/mixed; boundary=batchresponse_9f",
                         mixed, sizeof(mixed) - 1),
                     0);
    assert_int_equal(r.count, 4);
    p = &r.parts[0];
    assert_int_equal(p->content_id, 1);
    assert_int_equal(p->status, 200);
    assert_string_equal(p->etag, "W/\"77\"");
    assert_string_equal(p->body,
                        "{\"@odata.etag\":\"W/\\\"77\\\"\",\"id\":\"a\"}");
    p = &r.parts[1];
    assert_int_equal(p->status, 412);
    assert_string_equal(
        p->body, "{\"error\":{\"code\":\"0x80060882\",\"message\":\"stale\"}}");
    assert_null(p->etag);
    p = &r.parts[2];
    assert_int_equal(p->content_id, 3);
    assert_int_equal(p->status, 204);
    assert_string_equal(p->entity_id, "http://h/api/data/v9.2/s(eid)");
    assert_int_equal(p->body_len, 0);
    p = &r.parts[3];
    assert_int_equal(p->content_id, -1);
    assert_int_equal(p->status, 429);
    assert_int_equal(p->retry_after_ms, 7000);
    dv_batch_response_dispose(&r);
}

static void test_dv_batch__changeset_answers_are_flattened(void **state)
{
    static const char body[] =
        "--batchresponse_1\r\n"
        "Content-Type: multipart/mixed; boundary=changesetresponse_2\r\n"
        "\r\n"
        "--changesetresponse_2\r\n"
        "Content-Type: application/http\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        "Content-ID: 1\r\n"
        "\r\n"
        "HTTP/1.1 204 No Content\r\n"
        "\r\n"
        "\r\n"
        "--changesetresponse_2\r\n"
        "Content-Type: application/http\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        "Content-ID: 2\r\n"
        "\r\n"
        "HTTP/1.1 201 Created\r\n"
        "\r\n"
        "{}\r\n"
        "--changesetresponse_2--\r\n"
        "--batchresponse_1\r\n"
        "Content-Type: application/http\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        "\r\n"
        "HTTP/1.1 200 OK\r\n"
        "\r\n"
        "{\"value\":[]}\r\n"
        "--batchresponse_1--\r\n";
    struct dv_batch_response r;

    (void)state;
    assert_int_equal(dv_batch_response_parse(&r, NULL, body, sizeof(body) - 1),
                     0);
    assert_int_equal(r.count, 3);
    assert_int_equal(r.parts[0].content_id, 1);
    assert_int_equal(r.parts[0].status, 204);
    assert_int_equal(r.parts[1].content_id, 2);
    assert_string_equal(r.parts[1].body, "{}");
    assert_int_equal(r.parts[2].status, 200);
    assert_string_equal(r.parts[2].body, "{\"value\":[]}");
    dv_batch_response_dispose(&r);
}

static void test_dv_batch__bare_lf_and_quoted_boundary(void **state)
{
    static const char body[] = "--b q\n"
                               "Content-Type: application/http\n"
                               "\n"
                               "HTTP/1.1 404 Not Found\n"
                               "\n"
                               "{}\n"
                               "--b q--";
    struct dv_batch_response r;

    (void)state;
    assert_int_equal(dv_batch_response_parse(
                         &r, "multipart/mixed;boundary=\"b q\"; charset=x",
                         body, sizeof(body) - 1),
                     0);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.parts[0].status, 404);
    assert_string_equal(r.parts[0].body, "{}");
    dv_batch_response_dispose(&r);
}

static void test_dv_batch__not_a_batch_response(void **state)
{
    static const struct {
        const char *ct, *body;
    } bad[] = {
        { "application/json", "{\"error\":{}}" },
        { "multipart/mixed; boundary=x", "--x\r\nContent-Type: a\r\n\r\n"
                                         "HTTP/1.1 200 OK\r\n" },
        { "multipart/mixed; boundary=x", "--x\r\n\r\nnot a status\r\n--x--" },
        { "multipart/mixed; boundary=x", "--x\r\n\r\nHTTP/1.1 99 X\r\n--x--" },
        { "multipart/mixed; boundary=x", "" },
        { "multipart/mixed; boundary=x",
          "--x\r\nContent-Type: multipart/mixed; boundary=y\r\n\r\n"
          "--y\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n"
          "--z\r\n\r\nHTTP/1.1 200 OK\r\n--z--\r\n--y--\r\n--x--\r\n" },
    };
    struct dv_batch_response r;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(dv_batch_response_parse(&r, bad[i].ct, bad[i].body,
                                                 strlen(bad[i].body)),
                         ERR_BADINPUT);
        assert_int_equal(r.count, 0);
        assert_null(r.parts);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dv_batch__writer_is_byte_exact),
        cmocka_unit_test(test_dv_batch__boundaries_are_fresh),
        cmocka_unit_test(test_dv_batch__mixed_part_results),
        cmocka_unit_test(test_dv_batch__changeset_answers_are_flattened),
        cmocka_unit_test(test_dv_batch__bare_lf_and_quoted_boundary),
        cmocka_unit_test(test_dv_batch__not_a_batch_response),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
