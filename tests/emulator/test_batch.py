"""$batch (emu_batch): independent parts and change sets, Content-ID
references, atomic change sets, stop-on-error and continue-on-error, the
response shape of Microsoft Learn's "Execute batch operations using the
Web API" (the batch page,
https://learn.microsoft.com/power-apps/developer/data-platform/webapi/execute-batch-operations-using-web-api),
CRLF strictness ("Stream was not readable.", from "Troubleshoot Dataverse
Web API client errors", the client-errors page,
https://learn.microsoft.com/troubleshoot/power-platform/power-apps/dataverse/web-api-client-errors),
malformed batches, the 1000-operation limit, and service protection
counting each inner operation."""

import http.client
import json
import re
import unittest

from emu_testlib import (CFG_B, CONFIGS, LOOKUP, NUMBER_ID, NUMBERS, STATUS,
                         EmulatorTest, nid)
from launcher import API

NAV = "inogic_ConfigurationId"
SINGLE, DOUBLE, OPTED_OUT = 100000000, 100000001, 100000002


def op(method, url, body=None, content_id=None, headers=None):
    return {"method": method, "url": url, "body": body,
            "content_id": content_id, "headers": headers or {}}


def render_op(o, eol):
    lines = ["Content-Type: application/http",
             "Content-Transfer-Encoding: binary"]
    if o["content_id"] is not None:
        lines.append("Content-ID: %s" % o["content_id"])
    lines += ["", "%s %s HTTP/1.1" % (o["method"], o["url"])]
    headers = dict(o["headers"])
    if o["body"] is not None:
        headers.setdefault("Content-Type", "application/json; type=entry")
    lines += ["%s: %s" % kv for kv in headers.items()]
    lines.append("")
    body = o["body"]
    if body is not None and not isinstance(body, str):
        body = json.dumps(body)
    lines.append(body or "")
    return eol.join(lines)


def batch_body(items, boundary="batch_B1", eol="\r\n", final=True):
    """items: op dicts, or ("changeset", [ops]) tuples."""
    out = []
    for n, item in enumerate(items):
        out.append("--" + boundary)
        if isinstance(item, tuple):
            cs = "changeset_C%d" % n
            out.append("Content-Type: multipart/mixed; boundary=%s" % cs)
            out.append("")
            for o in item[1]:
                out.append("--" + cs)
                out.append(render_op(o, eol))
            out.append("--%s--" % cs)
        else:
            out.append(render_op(item, eol))
    out.append("--%s--" % boundary)
    text = eol.join(out) + (eol if final else "")
    return text.encode("utf-8")


def parse_parts(body, boundary):
    """Response parts -> list of dicts (status, reason, headers, body,
    mime) or lists of them for change sets."""
    text = body.decode("utf-8")
    delim = "--" + boundary
    assert text.startswith(delim), text[:100]
    assert text.endswith(delim + "--\r\n"), text[-100:]
    chunks = text[len(delim):-len("\r\n" + delim + "--\r\n")].split(
        "\r\n" + delim)
    out = []
    for chunk in chunks:
        assert chunk.startswith("\r\n"), chunk[:50]
        mime_block, _, rest = chunk[2:].partition("\r\n\r\n")
        mime = dict(line.split(": ", 1) for line in mime_block.split("\r\n"))
        ctype = mime["Content-Type"]
        if ctype.startswith("multipart/mixed; boundary="):
            inner = ctype.split("=", 1)[1]
            out.append(parse_parts((rest + "\r\n").encode(), inner))
            continue
        out.append(parse_http(rest, mime))
    return out


def parse_http(text, mime):
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    m = re.match(r"^HTTP/1\.1 (\d{3}) (.*)$", lines[0])
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return {"status": int(m.group(1)), "reason": m.group(2),
            "headers": headers, "body": body, "mime": mime,
            "json": json.loads(body) if body.strip() else None}


class BatchTest(EmulatorTest):
    def setUp(self):
        self.control("POST", "reset", {"keep_data": True})

    def batch(self, items=None, raw=None, prefer=None, boundary="batch_B1",
              content_type=None):
        body = raw if raw is not None else batch_body(items, boundary)
        h = self.headers(prefer)
        h["Content-Type"] = content_type or \
            'multipart/mixed; boundary="%s"' % boundary
        status, headers, data = self.emu.request("POST", API + "$batch",
                                                 body, h)
        ctype = headers["Content-Type"]
        m = re.match(r"^multipart/mixed; boundary=(batchresponse_"
                     r"[0-9a-f-]{36})$", ctype)
        self.assertIsNotNone(m, ctype)
        self.assertEqual(headers["OData-Version"], "4.0")
        return status, headers, parse_parts(data, m.group(1)), data

    def number(self, row_id):
        r = self.get("%s(%s)" % (NUMBERS, row_id))
        return r.json if r.status == 200 else None

    def id_of(self, part):
        return part["headers"]["OData-EntityId"].rsplit("(", 1)[1][:-1]

    def assertBatchError(self, part, status, code, message=None):
        self.assertEqual(part["status"], status, part)
        self.assertRegex(part["headers"]["REQ_ID"], r"^[0-9a-f-]{36}$")
        self.assertTrue(part["headers"]["Content-Type"].startswith(
            "application/json"))
        self.assertEqual(part["json"]["error"]["code"], code, part)
        if message is not None:
            self.assertEqual(part["json"]["error"]["message"], message)
        return part["json"]["error"]["message"]

    # -- success shapes -------------------------------------------------------
    def test_independent_parts(self):
        url = "/api/data/v9.2/" + NUMBERS
        status, _, parts, raw = self.batch([
            op("POST", url, {"inogic_name": "B1",
                             NAV + "@odata.bind": "/%s(%s)" % (CONFIGS,
                                                              CFG_B)}),
            op("POST", self.emu.api_url + NUMBERS, {"inogic_name": "B2"}),
            op("POST", NUMBERS, {"inogic_name": "B3"}),     # relative
            op("GET", "/api/data/v9.2/%s/%s?$select=inogic_name&$filter="
               "startswith(inogic_name,'B')&$orderby=inogic_name" % (
                   CONFIGS + "(%s)" % CFG_B, "inogic_configuration_inogic_"
                   "optinoptoutnumber"), headers={"Accept":
                                                  "application/json"})])
        self.assertEqual(status, 200)
        self.assertEqual(len(parts), 4)
        for p in parts[:3]:
            self.assertEqual((p["status"], p["reason"], p["body"]),
                             (204, "No Content", ""))
            self.assertEqual(p["mime"], {
                "Content-Type": "application/http",
                "Content-Transfer-Encoding": "binary"})
            self.assertEqual(p["headers"]["Location"],
                             p["headers"]["OData-EntityId"])
            self.assertEqual(p["headers"]["OData-Version"], "4.0")
            self.assertIsNotNone(self.number(self.id_of(p)))
        # the batch page's layout: status line, headers, two empty lines
        # before the
        # next delimiter
        self.assertIn(b"\r\nHTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\n"
                      b"Location: ", raw)
        self.assertRegex(raw, rb"OData-EntityId: [^\r]+\)\r\n\r\n\r\n--batch"
                              rb"response_")
        get = parts[3]
        self.assertEqual(get["status"], 200)
        self.assertEqual([r["inogic_name"] for r in get["json"]["value"]],
                         ["B1"])

    def test_change_set_with_references(self):
        cfg = {"inogic_name": "Made in a change set"}
        status, _, parts, raw = self.batch([("changeset", [
            op("POST", "/api/data/v9.2/" + CONFIGS, cfg, "1"),
            op("POST", "/api/data/v9.2/" + NUMBERS, {
                "inogic_name": "Ref", NAV + "@odata.bind": "$1"}, "2"),
            op("PATCH", "$2", {STATUS: DOUBLE}, "3"),
            op("PUT", "$2/inogic_phonenumber", {"value": "+4917012"}, "4"),
            op("POST", "/api/data/v9.2/" + NUMBERS, {"inogic_name": "Rep"},
               "5", {"Prefer": "return=representation"}),
            op("DELETE", "$5", None, "6")])])
        self.assertEqual(status, 200, parts)
        self.assertEqual(len(parts), 1)
        cs = parts[0]
        self.assertIsInstance(cs, list)
        self.assertEqual([p["mime"].get("Content-ID") for p in cs],
                         ["1", "2", "3", "4", "5", "6"])
        self.assertEqual([p["status"] for p in cs],
                         [204, 204, 204, 204, 201, 204])
        self.assertRegex(raw.decode(), r"Content-Type: multipart/mixed; "
                         r"boundary=changesetresponse_[0-9a-f-]{36}\r\n\r\n")
        self.assertIn(b"--\r\n--batchresponse_", raw)
        cfg_id, num_id = self.id_of(cs[0]), self.id_of(cs[1])
        self.assertEqual(self.id_of(cs[2]), num_id)     # PATCH $2
        self.assertNotIn("OData-EntityId", cs[3]["headers"])
        row = self.number(num_id)
        self.assertEqual((row[LOOKUP], row[STATUS], row["inogic_phonenumber"]),
                         (cfg_id, DOUBLE, "+4917012"))
        self.assertIsNone(self.number(cs[4]["json"][NUMBER_ID]))   # $5 gone

    def test_change_set_is_atomic(self):
        before = self.get(NUMBERS + "/$count").body
        status, _, parts, raw = self.batch([("changeset", [
            op("POST", "/api/data/v9.2/" + NUMBERS, {"inogic_name": "A"},
               "1"),
            op("PATCH", "/api/data/v9.2/%s(%s)" % (NUMBERS, nid(2)),
               {STATUS: OPTED_OUT}, "2"),
            op("POST", "/api/data/v9.2/" + NUMBERS, {STATUS: 42}, "3"),
            op("POST", "/api/data/v9.2/" + NUMBERS, {"inogic_name": "D"},
               "4")])])
        self.assertEqual(status, 400)
        self.assertEqual(len(parts), 1)
        part = parts[0]
        self.assertIsInstance(part, dict)        # one response, no changeset
        self.assertEqual(part["mime"]["Content-ID"], "3")
        self.assertBatchError(part, 400, "0x8004431a")
        self.assertEqual(self.get(NUMBERS + "/$count").body, before)
        self.assertEqual(self.number(nid(2))[STATUS], OPTED_OUT)
        # nothing of it shows in change tracking either
        self.assertNotIn(b"changesetresponse", raw)

    def test_stop_at_first_error(self):
        status, _, parts, _ = self.batch([
            op("POST", NUMBERS, {"inogic_name": "S1"}),
            op("DELETE", "%s(%s)" % (NUMBERS, "0c11e47e-0000-4000-8000-"
                                     "0000000009aa")),
            op("POST", NUMBERS, {"inogic_name": "S3"})])
        self.assertEqual(status, 400)
        self.assertEqual([p["status"] for p in parts], [204, 404])
        self.assertIsNotNone(self.number(self.id_of(parts[0])))  # committed
        self.assertBatchError(parts[1], 404, "0x80040217")

    def test_continue_on_error(self):
        status, headers, parts, _ = self.batch([
            ("changeset", [op("POST", NUMBERS, {STATUS: 7}, "1")]),
            op("POST", NUMBERS, {"inogic_name": "C2"}),
            op("PATCH", "%s(%s)" % (NUMBERS, nid(3)), {STATUS: SINGLE},
               headers={"If-Match": 'W/"1"'}),
            ("changeset", [op("POST", NUMBERS, {"inogic_name": "C4"}, "9")])],
            prefer="odata.continue-on-error")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Preference-Applied"],
                         "odata.continue-on-error")
        self.assertEqual(len(parts), 4)
        self.assertBatchError(parts[0], 400, "0x8004431a")
        self.assertEqual(parts[1]["status"], 204)
        self.assertBatchError(parts[2], 412, "0x80060882")
        self.assertEqual(parts[3][0]["status"], 204)

    def test_references(self):
        # forward reference (the batch page's note) and a reference to
        # another change set: both 400 with the documented message
        status, _, parts, _ = self.batch([("changeset", [
            op("POST", NUMBERS, {NAV + "@odata.bind": "$2"}, "1"),
            op("POST", CONFIGS, {"inogic_name": "late"}, "2")])])
        self.assertEqual(status, 400)
        self.assertBatchError(parts[0], 400, "0x0", "Content-ID Reference: "
                              "'$2' does not exist in the batch context.")
        status, _, parts, _ = self.batch([
            ("changeset", [op("POST", CONFIGS, {"inogic_name": "x"}, "1")]),
            ("changeset", [op("PATCH", "$1", {"inogic_name": "y"}, "2")])],
            prefer="odata.continue-on-error")
        self.assertEqual(parts[0][0]["status"], 204)
        self.assertBatchError(parts[1], 400, "0x0", "Content-ID Reference: "
                              "'$1' does not exist in the batch context.")

    def test_dynamics_web_api_layout(self):
        """The layout dynamics-web-api 2.x writes: unquoted boundaries
        without a space, absolute URLs, Content-IDs 100001…, a GET whose
        headers are not followed by a blank line, an extra CRLF after each
        body."""
        base = self.emu.api_url
        body = "\r\n".join([
            "\r\n--dwa_batch_X", "Content-Type: multipart/mixed;boundary="
            "changeset_Y", "\r\n--changeset_Y",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary", "Content-ID: 100001",
            "\r\nPOST %s%s HTTP/1.1" % (base, NUMBERS),
            "Content-Type: application/json",
            "\r\n" + json.dumps({"inogic_name": "dwa"}),
            "\r\n--changeset_Y--", "\r\n--dwa_batch_X",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            "\r\nGET %s%s(%s)?$select=inogic_name HTTP/1.1" % (
                base, NUMBERS, nid(1)), "Accept: application/json",
            "\r\n--dwa_batch_X--\r\n"]).encode()
        status, _, parts, raw = self.batch(
            raw=body, content_type="multipart/mixed;boundary=dwa_batch_X")
        self.assertEqual(status, 200, raw)
        self.assertEqual(parts[0][0]["status"], 204)
        self.assertEqual(parts[0][0]["mime"]["Content-ID"], "100001")
        self.assertEqual(parts[1]["json"]["inogic_name"], "Zoë Müller")

    # -- rejections -----------------------------------------------------------
    def test_lf_line_endings_are_not_readable(self):
        ops = [op("POST", NUMBERS, {"inogic_name": "LF"})]
        # the client-errors page: without a CRLF after the last line too
        for raw in (batch_body(ops, eol="\n"),
                    batch_body(ops, final=False),
                    batch_body(ops).replace(b"binary\r\n", b"binary\n")):
            status, _, parts, _ = self.batch(raw=raw)
            self.assertEqual(status, 400)
            self.assertEqual(len(parts), 1)
            msg = self.assertBatchError(parts[0], 400, "0x80048d19")
            self.assertTrue(msg.endswith("InnerException : System.Argument"
                                         "Exception: Stream was not "
                                         "readable."), msg)
        # a bare LF inside a JSON body is only whitespace
        raw = batch_body([op("POST", NUMBERS, '{\n"inogic_name": "ok"\n}')])
        self.assertEqual(self.batch(raw=raw)[0], 200)

    def test_malformed_batches(self):
        good = op("POST", NUMBERS, {"inogic_name": "m"})
        cases = [
            (batch_body([good]), "multipart/mixed", "'boundary'"),
            (batch_body([good]), "application/json", "'boundary'"),
            (batch_body([good]).replace(b"application/http", b"text/plain"),
             None, "must be 'application/http'"),
            (batch_body([good]).replace(
                b"Content-Transfer-Encoding: binary\r\n", b""), None,
             "'Content-Transfer-Encoding'"),
            (batch_body([good]).replace(b"HTTP/1.1", b"HTTP/2"), None,
             "The HTTP version 'HTTP/2'"),
            (batch_body([good]).replace(b"POST ", b"MERGE "), None,
             "Invalid HTTP method 'MERGE'"),
            (batch_body([good])[:-len(b"--batch_B1--\r\n")], None,
             "ended before the closing boundary"),
            (batch_body([("changeset", [op("GET", NUMBERS)])]), None,
             "An invalid HTTP method 'GET' was detected for a request in a "
             "change set."),
            (batch_body([op("POST", NUMBERS, {}, "1"),
                         op("POST", NUMBERS, {}, "1")]), None,
             "The content ID '1' was found more than once"),
            (batch_body([op("POST", "/api/data/v9.2/$batch", {})]), None,
             "cannot contain another batch"),
            (batch_body([op("POST", "/elsewhere/x", {})]), None,
             "not a Web API URI")]
        for raw, ctype, fragment in cases:
            status, _, parts, _ = self.batch(raw=raw, content_type=ctype)
            self.assertEqual(status, 400, fragment)
            msg = self.assertBatchError(parts[0], 400, "0x0")
            self.assertIn(fragment, msg)
        r = self.get("$batch")
        self.assertODataError(r, 405, "0x0")

    def test_at_most_1000_operations(self):
        ops = [op("POST", NUMBERS, {"inogic_name": "n%d" % i}, str(i))
               for i in range(1000)]
        before = int(self.get(NUMBERS + "/$count").body.decode("utf-8-sig"))
        status, _, parts, _ = self.batch([("changeset", ops)])
        self.assertEqual(status, 200)
        self.assertEqual(len(parts[0]), 1000)
        after = int(self.get(NUMBERS + "/$count").body.decode("utf-8-sig"))
        self.assertEqual(after, min(before + 1000, 5000))
        _, c = self.control("GET", "counters")
        self.assertEqual(c["batch_operations"], 1000)
        self.assertEqual(c["requests"]["batch"], 1)
        status, _, parts, _ = self.batch([("changeset", ops + [
            op("DELETE", "%s(%s)" % (NUMBERS, nid(1)), None, "x")])])
        self.assertBatchError(parts[0], 400, "0x0", "The current change set "
                              "contains too many operations. A maximum number "
                              "of '1000' operations are allowed in a change "
                              "set.")
        many = [op("DELETE", "%s(%s)" % (NUMBERS, nid(1)))] * 1001
        status, _, parts, _ = self.batch(many)
        self.assertEqual(status, 400)
        self.assertIn("maximum number of '1000'", self.assertBatchError(
            parts[0], 400, "0x0"))
        self.assertNotEqual(self.number(nid(1)), None)   # nothing ran

    # -- service protection, faults, traps -----------------------------------
    def test_each_operation_counts_as_a_request(self):
        self.control("POST", "limits", {"requests": 6, "window": 60})
        ops = [op("PATCH", "%s(%s)" % (NUMBERS, nid(7)), {STATUS: SINGLE})
               for _ in range(4)]
        self.assertEqual(self.batch(ops)[0], 200)
        _, c = self.control("GET", "counters")
        ident = list(c["identities"].values())[0]
        self.assertEqual(ident["requests_in_window"], 4)
        self.assertEqual(self.get(NUMBERS).status, 200)     # 5
        self.assertEqual(self.batch(ops[:1])[0], 200)       # 6
        r = self.get(NUMBERS)
        self.assertODataError(r, 429, "0x80072322")
        # the documented reading (api-limits: batches avoid the request
        # count) is available as a limit setting
        self.control("POST", "reset", {"keep_data": True})
        self.control("POST", "limits", {"requests": 6, "window": 60,
                                        "batch_operations": 0})
        self.assertEqual(self.batch(ops)[0], 200)
        _, c = self.control("GET", "counters")
        self.assertEqual(list(c["identities"].values())[0]
                         ["requests_in_window"], 1)

    def test_lost_batch_response(self):
        self.control("POST", "faults", {"type": "lost_response",
                                        "match": {"kind": "batch"}})
        h = self.headers()
        h["Content-Type"] = 'multipart/mixed; boundary="batch_B1"'
        conn = self.emu.connection()
        rid = "0c11e47e-0000-4000-8000-000000000401"
        conn.request("POST", API + "$batch", batch_body([("changeset", [
            op("POST", NUMBERS, {NUMBER_ID: rid}, "1")])]), h)
        with self.assertRaises((http.client.RemoteDisconnected,
                                ConnectionError)):
            conn.getresponse()
        conn.close()
        self.assertIsNotNone(self.number(rid))

    def test_stale_etag_trap_inside_a_change_set(self):
        etag = self.number(nid(8))["@odata.etag"]
        self.control("POST", "faults", {"type": "admin_edit",
                                        "table": "number", "id": nid(8)})
        status, _, parts, _ = self.batch([("changeset", [
            op("POST", NUMBERS, {"inogic_name": "with trap"}, "1"),
            op("PATCH", "%s(%s)" % (NUMBERS, nid(8)), {STATUS: DOUBLE}, "2",
               {"If-Match": etag})])])
        self.assertEqual(status, 400)
        self.assertEqual(parts[0]["mime"]["Content-ID"], "2")
        self.assertBatchError(parts[0], 412, "0x80060882")
        self.assertNotEqual(self.number(nid(8))["@odata.etag"], etag)


if __name__ == "__main__":
    unittest.main()
