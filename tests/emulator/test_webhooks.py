"""Webhooks (emu_webhooks, emu_remotectx, emu_pipeline): registration and
its rejections, the three authentication types, the RemoteExecutionContext
of Create / Update / Delete (key/value lists, __type, escaped slashes,
/Date()/, OptionSetValue, EntityReference, images), the x-ms-dynamics-*
headers, filtering attributes, sync failures rolling the write back,
the 502/503/504 retry rule, timeouts, the 256 KB trimming, change sets,
and readers never seeing a write whose sync step is still running.
A stdlib http.server (emu_testlib.Receiver) plays the endpoint."""

import shutil
import tempfile
import threading
import unittest

from emu_testlib import (CFG_A, CONFIGS, NUMBERS, STATUS, EmulatorTest,
                         Receiver, make_certificate, nid)
from launcher import API

CONTRACTS = "http://schemas.microsoft.com/xrm/2011/Contracts"
SINGLE, DOUBLE, OPTED_OUT = 100000000, 100000001, 100000002
NUMBER = "inogic_optinoptoutnumber"
CONFIG = "inogic_configuration"
DATE_RE = r"^/Date\(\d+\)/$"


def attrs(entity):
    return {a["key"]: a["value"] for a in entity["Attributes"]}


def kvs(items):
    return {a["key"]: a["value"] for a in items}


class WebhookTest(EmulatorTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.rx = Receiver()

    @classmethod
    def tearDownClass(cls):
        cls.rx.close()
        super().tearDownClass()

    def setUp(self):
        self.control("POST", "reset", {"keep_data": True})
        self.rx.take()
        self.rx.statuses.clear()
        self.seen = self.rx.received

    def tearDown(self):
        self.rx.release()
        self.control("POST", "reset", {"keep_data": True})

    # -- helpers --------------------------------------------------------------
    def endpoint(self, authtype="HttpHeader", authvalue=None, **extra):
        spec = {"name": "optsync", "url": self.rx.url(), "authtype": authtype,
                "authvalue": authvalue or {"X-Key": "s3cret"}}
        spec.update(extra)
        status, out = self.control("POST", "webhooks/endpoints", spec)
        self.assertEqual(status, 201, out)
        return out["id"]

    def step(self, endpoint, message, table="number", **extra):
        spec = {"endpoint": endpoint, "message": message, "table": table}
        spec.update(extra)
        status, out = self.control("POST", "webhooks/steps", spec)
        self.assertEqual(status, 201, out)
        return out["id"]

    def wait_deliveries(self, count, **cond):
        return self.emu.wait(condition="deliveries", count=count, **cond)

    def deliveries(self):
        return self.control("GET", "webhooks/deliveries")[1]["deliveries"]

    def user_id(self):
        return self.get("WhoAmI").json["UserId"]

    # -- payloads -------------------------------------------------------------
    def test_async_update_context(self):
        ep = self.endpoint()
        sid = self.step(ep, "Update", mode=1, images=[
            {"type": "pre", "alias": "pre", "attributes": [STATUS]},
            {"type": "post", "alias": "post"}])
        before = self.get("%s(%s)" % (NUMBERS, nid(1))).json
        r = self.send("PATCH", "%s(%s)" % (NUMBERS, nid(1)),
                      {STATUS: OPTED_OUT})
        self.assertEqual(r.status, 204, r)
        self.wait_deliveries(1, endpoint=ep)
        (req,) = self.rx.take()
        h, raw, ctx = req["headers"], req["body"], req["json"]
        self.assertEqual(req["path"], "/hook")
        self.assertEqual(h["x-key"], "s3cret")
        self.assertEqual(h["content-type"], "application/json")
        self.assertEqual(h["x-ms-dynamics-organization"], "127.0.0.1")
        self.assertEqual(h["x-ms-dynamics-entity-name"], NUMBER)
        self.assertEqual(h["x-ms-dynamics-request-name"], "Update")
        self.assertEqual(h["x-ms-correlation-request-id"],
                         ctx["CorrelationId"])
        self.assertNotIn("x-ms-dynamics-msg-size-exceeded", h)
        # DataContractJsonSerializer's text: sorted members, '/' escaped
        self.assertEqual(list(ctx), sorted(ctx))
        self.assertIn(b'"__type":"Entity:http:\\/\\/schemas.microsoft.com'
                      b'\\/xrm\\/2011\\/Contracts"', raw)
        self.assertRegex(raw.decode(), r'"OperationCreatedOn":"\\/Date\(\d+'
                                       r'\+0000\)\\/"')
        self.assertNotIn(b"http://", raw)
        user = self.user_id()
        self.assertEqual(
            {k: ctx[k] for k in ("MessageName", "Mode", "Stage", "Depth",
                                 "PrimaryEntityName", "PrimaryEntityId",
                                 "SecondaryEntityName", "IsInTransaction",
                                 "UserId", "InitiatingUserId",
                                 "OrganizationName", "RequestId",
                                 "OutputParameters", "SharedVariables")},
            {"MessageName": "Update", "Mode": 1, "Stage": 40, "Depth": 1,
             "PrimaryEntityName": NUMBER, "PrimaryEntityId": nid(1),
             "SecondaryEntityName": "none", "IsInTransaction": False,
             "UserId": user, "InitiatingUserId": user,
             "OrganizationName": "optsyncemu", "RequestId": None,
             "OutputParameters": [], "SharedVariables": []})
        self.assertEqual(ctx["OwningExtension"], {
            "Id": sid, "KeyAttributes": [],
            "LogicalName": "sdkmessageprocessingstep", "Name": None,
            "RowVersion": None})
        self.assertEqual(ctx["OperationId"], self.deliveries()[0]["id"])
        (param,) = ctx["InputParameters"]
        self.assertEqual(param["key"], "Target")
        target = param["value"]
        self.assertEqual(target["__type"], "Entity:" + CONTRACTS)
        self.assertEqual((target["LogicalName"], target["Id"]),
                         (NUMBER, nid(1)))
        self.assertEqual([a["key"] for a in target["Attributes"]],
                         [STATUS, "inogic_optinoptoutnumberid", "modifiedon",
                          "modifiedby", "modifiedonbehalfby"])
        a = attrs(target)
        self.assertEqual(a[STATUS], {"__type": "OptionSetValue:" + CONTRACTS,
                                     "Value": OPTED_OUT})
        self.assertRegex(a["modifiedon"], DATE_RE)
        self.assertEqual(a["modifiedby"], {
            "__type": "EntityReference:" + CONTRACTS, "Id": user,
            "KeyAttributes": [], "LogicalName": "systemuser", "Name": None,
            "RowVersion": None})
        self.assertIsNone(a["modifiedonbehalfby"])
        self.assertEqual((target["EntityState"], target["FormattedValues"],
                          target["RelatedEntities"], target["RowVersion"]),
                         (None, [], [], None))
        # images: pre with the listed attribute only, post with all
        # non-null ones, plus AsynchronousStepPrimaryName
        pre = kvs(ctx["PreEntityImages"])["pre"]
        self.assertNotIn("__type", pre)
        self.assertEqual(attrs(pre), {STATUS: {
            "__type": "OptionSetValue:" + CONTRACTS,
            "Value": before[STATUS]}})
        self.assertEqual(kvs(pre["FormattedValues"]),
                         {STATUS: "Double Opt-In"})
        post = kvs(ctx["PostEntityImages"])
        self.assertEqual(list(post), ["post", "AsynchronousStepPrimaryName"])
        pa = attrs(post["post"])
        self.assertEqual(pa["inogic_configurationid"], {
            "__type": "EntityReference:" + CONTRACTS, "Id": CFG_A,
            "KeyAttributes": [], "LogicalName": CONFIG, "Name": "WA Main",
            "RowVersion": None})
        self.assertEqual(pa["inogic_name"], "Zoë Müller")
        self.assertEqual(pa["statecode"]["Value"], 0)
        self.assertEqual(pa["versionnumber"], self.get(
            "%s(%s)" % (NUMBERS, nid(1))).json["versionnumber"])
        self.assertNotIn("_inogic_configurationid_value", pa)
        self.assertEqual(attrs(post["AsynchronousStepPrimaryName"]), {
            "inogic_name": "Zoë Müller",
            "inogic_optinoptoutnumberid": nid(1)})
        parent = ctx["ParentContext"]
        self.assertEqual((parent["Stage"], parent["Mode"],
                          parent["ParentContext"]), (30, 0, None))
        self.assertEqual(list(attrs(parent["InputParameters"][0]["value"])),
                         [STATUS, "inogic_optinoptoutnumberid"])
        d = self.deliveries()[0]
        self.assertEqual((d["outcome"], d["mode"], d["message"],
                          len(d["attempts"]), d["attempts"][0]["status"]),
                         ("succeeded", 1, "Update", 1, 200))

    def test_sync_create_and_delete_contexts(self):
        ep = self.endpoint()
        self.step(ep, "Create", table=CONFIGS, stage=40, mode=0,
                  images=[{"type": "post", "alias": "img"}])
        self.step(ep, "Delete", table="inogic_configuration", stage=20,
                  images=[{"type": "pre", "alias": "gone",
                           "attributes": "inogic_name,inogic_doubleoptin"}])
        cfg = "6a1c0d6e-0000-4000-8000-0000000000e1"
        status, out = self.control("POST", "admin/configuration", {
            "id": cfg, "name": "Hooked", "double_opt_in": True})
        self.assertEqual(status, 201, out)
        # sync: delivered before the admin's write returned
        self.assertEqual(self.rx.received, self.seen + 1)
        ctx = self.rx.take()[0]["json"]
        self.assertEqual((ctx["MessageName"], ctx["Mode"], ctx["Stage"],
                          ctx["IsInTransaction"], ctx["ParentContext"],
                          ctx["OperationId"]),
                         ("Create", 0, 40, True, None,
                          "00000000-0000-0000-0000-000000000000"))
        self.assertRegex(ctx["RequestId"], r"^[0-9a-f-]{36}$")
        self.assertEqual(ctx["OutputParameters"], [{"key": "id",
                                                    "value": cfg}])
        a = attrs(ctx["InputParameters"][0]["value"])
        self.assertEqual(a["inogic_doubleoptin"], True)
        self.assertEqual(a["statecode"], {
            "__type": "OptionSetValue:" + CONTRACTS, "Value": 0})
        self.assertEqual(a["statuscode"]["Value"], 1)
        for key in ("createdon", "modifiedon"):
            self.assertRegex(a[key], DATE_RE)
        self.assertEqual(a["createdby"]["LogicalName"], "systemuser")
        img = kvs(ctx["PostEntityImages"])["img"]
        self.assertEqual(attrs(img)["inogic_name"], "Hooked")
        self.assertEqual(kvs(img["FormattedValues"])["inogic_doubleoptin"],
                         "Yes")
        self.assertEqual(ctx["PreEntityImages"], [])
        r = self.send("DELETE", "%s(%s)" % (CONFIGS, cfg))
        self.assertEqual(r.status, 204, r)
        ctx = self.rx.take()[0]["json"]
        self.assertEqual((ctx["MessageName"], ctx["Stage"],
                          ctx["IsInTransaction"]), ("Delete", 20, True))
        self.assertEqual(ctx["InputParameters"], [{"key": "Target", "value": {
            "__type": "EntityReference:" + CONTRACTS, "Id": cfg,
            "KeyAttributes": [], "LogicalName": CONFIG, "Name": None,
            "RowVersion": None}}])
        self.assertEqual(attrs(kvs(ctx["PreEntityImages"])["gone"]),
                         {"inogic_name": "Hooked",
                          "inogic_doubleoptin": True})
        self.assertEqual(ctx["PostEntityImages"], [])

    def test_authentication_types(self):
        cases = [("WebhookKey", "k3y", {"code": ["k3y"]}, None),
                 ("HttpQueryString", '<settings><setting name="a" value="1"'
                  ' /><setting name="b" value="x y" /></settings>',
                  {"a": ["1"], "b": ["x y"]}, None),
                 ("HttpHeader", '<settings><setting name="X-Api-Key" '
                  'value="v" /></settings>', {}, ("x-api-key", "v")),
                 (4, "four", {"code": ["four"]}, None)]
        for authtype, value, query, header in cases:
            self.control("POST", "reset", {"keep_data": True})
            ep = self.endpoint(authtype, value)
            listed = self.control("GET", "webhooks")[1]["endpoints"][0]
            self.assertNotIn("authvalue", listed)           # write-only
            self.assertEqual(listed["contract"], 8)
            self.step(ep, "Update", mode=1)
            self.send("PATCH", "%s(%s)" % (NUMBERS, nid(2)), {STATUS: DOUBLE})
            self.wait_deliveries(1)
            req = self.rx.take()[0]
            self.assertEqual(req["query"], query, authtype)
            if header:
                self.assertEqual(req["headers"][header[0]], header[1])
        # a URL with its own query keeps it
        self.control("POST", "reset", {"keep_data": True})
        status, out = self.control("POST", "webhooks/endpoints", {
            "url": self.rx.url("/h?tenant=t1"), "authtype": "WebhookKey",
            "authvalue": "c"})
        self.step(out["id"], "Update", mode=1)
        self.send("PATCH", "%s(%s)" % (NUMBERS, nid(2)), {STATUS: DOUBLE})
        self.wait_deliveries(1)
        req = self.rx.take()[0]
        self.assertEqual((req["path"], req["query"]),
                         ("/h", {"tenant": ["t1"], "code": ["c"]}))

    def test_filtering_attributes(self):
        ep = self.endpoint()
        self.step(ep, "Update", mode=1,
                  filtering_attributes=["inogic_phonenumber", "statuscode"])
        self.send("PATCH", "%s(%s)" % (NUMBERS, nid(3)), {STATUS: SINGLE})
        self.emu.wait(condition="webhooks_idle")
        self.assertEqual(self.deliveries(), [])
        self.send("PATCH", "%s(%s)" % (NUMBERS, nid(3)),
                  {"inogic_phonenumber": "+44 1"})
        self.send("PATCH", "%s(%s)" % (NUMBERS, nid(3)), {"statecode": 0})
        self.wait_deliveries(2)
        self.assertEqual(len(self.rx.take()), 2)

    def test_cascade_from_a_configuration_delete(self):
        ep = self.endpoint()
        self.step(ep, "Update", mode=1)
        cfg = "6a1c0d6e-0000-4000-8000-0000000000e2"
        self.control("POST", "admin/configuration", {"id": cfg, "name": "T"})
        rid = "0c11e47e-0000-4000-8000-0000000005e1"
        self.control("POST", "admin/number", {"id": rid, "configuration": cfg})
        self.send("DELETE", "%s(%s)" % (CONFIGS, cfg))
        self.wait_deliveries(1)
        ctx = self.rx.take()[0]["json"]
        self.assertEqual((ctx["PrimaryEntityId"], ctx["Depth"]), (rid, 2))
        self.assertIsNone(attrs(ctx["InputParameters"][0]["value"])
                          ["inogic_configurationid"])

    # -- failures and retries -------------------------------------------------
    def test_failing_sync_step_rolls_the_write_back(self):
        ep = self.endpoint()
        self.step(ep, "Update", stage=40, mode=0)
        row = self.get("%s(%s)" % (NUMBERS, nid(4))).json
        self.rx.answer(500)
        r = self.send("PATCH", "%s(%s)" % (NUMBERS, nid(4)),
                      {STATUS: OPTED_OUT})
        err = self.assertODataError(r, 400, "0x80040265")
        self.assertIn("returned HTTP 500", err["message"])
        self.assertEqual(self.get("%s(%s)" % (NUMBERS, nid(4))).json, row)
        # the CRM admin's save fails the same way
        self.rx.answer(401)
        status, out = self.control("PATCH", "admin/number/" + nid(4),
                                   {"status": "opted_out"})
        self.assertEqual((status, out["error"]["code"]), (400, "0x80040265"))
        # 503 then 200: one retry, the write goes through
        self.rx.answer(503)
        r = self.send("PATCH", "%s(%s)" % (NUMBERS, nid(4)),
                      {STATUS: OPTED_OUT})
        self.assertEqual(r.status, 204, r)
        # 504 twice: the retry fails too
        self.rx.answer(504, 504)
        r = self.send("PATCH", "%s(%s)" % (NUMBERS, nid(4)),
                      {STATUS: SINGLE})
        self.assertODataError(r, 400, "0x80040265")
        self.assertEqual(self.get("%s(%s)" % (NUMBERS, nid(4))).json[STATUS],
                         OPTED_OUT)
        attempts = [[a["status"] for a in d["attempts"]]
                    for d in self.deliveries()]
        self.assertEqual(attempts, [[500], [401], [503, 200], [504, 504]])

    def test_async_retry_rule(self):
        ep = self.endpoint()
        self.step(ep, "Update", mode=1)
        self.rx.answer(502, 200, 500, 503, 504, 401)
        for status in (DOUBLE, SINGLE, DOUBLE, SINGLE):
            r = self.send("PATCH", "%s(%s)" % (NUMBERS, nid(5)),
                          {STATUS: status})
            self.assertEqual(r.status, 204, r)      # async: write unaffected
        self.wait_deliveries(4, endpoint=ep)
        got = [([a["status"] for a in d["attempts"]], d["outcome"])
               for d in self.deliveries()]
        self.assertEqual(got, [([502, 200], "succeeded"), ([500], "failed"),
                               ([503, 504], "failed"), ([401], "failed")])
        self.assertEqual(self.emu.wait(condition="deliveries", count=3,
                                       outcome="failed"), 3)
        _, c = self.control("GET", "counters")
        self.assertEqual(c["webhooks"]["by_endpoint"][ep],
                         {"succeeded": 1, "failed": 3, "pending": 0})

    def test_timeout_and_refused_connection(self):
        ep = self.endpoint(timeout=0.3)
        self.step(ep, "Update", mode=1)
        self.rx.hold()
        self.send("PATCH", "%s(%s)" % (NUMBERS, nid(6)), {STATUS: DOUBLE})
        self.wait_deliveries(1)
        self.rx.release()
        d = self.deliveries()[0]
        self.assertEqual(d["outcome"], "failed")
        self.assertEqual(len(d["attempts"]), 1)      # no retry on timeout
        self.assertIn("timeout", d["attempts"][0]["error"])
        self.control("POST", "reset", {"keep_data": True})
        status, out = self.control("POST", "webhooks/endpoints", {
            "url": "http://127.0.0.1:1/nothing", "authtype": "WebhookKey",
            "authvalue": "k"})
        self.step(out["id"], "Update", mode=0)
        r = self.send("PATCH", "%s(%s)" % (NUMBERS, nid(6)), {STATUS: DOUBLE})
        self.assertODataError(r, 400, "0x80040265")

    def test_payloads_over_256_kb_are_trimmed(self):
        ep = self.endpoint()
        self.step(ep, "Update", mode=1,
                  images=[{"type": "pre", "alias": "pre"}])
        big = "x" * (300 * 1024)
        self.send("PATCH", "%s(%s)" % (NUMBERS, nid(7)),
                  {"inogic_consentsource": big})
        self.send("PATCH", "%s(%s)" % (NUMBERS, nid(7)),
                  {"inogic_consentsource": "small"})
        self.wait_deliveries(2)
        first, second = self.rx.take()
        self.assertEqual(first["headers"]["x-ms-dynamics-msg-size-exceeded"],
                         "true")
        ctx = first["json"]
        for key in ("ParentContext", "InputParameters", "PreEntityImages",
                    "PostEntityImages"):
            self.assertNotIn(key, ctx)
        self.assertEqual((ctx["PrimaryEntityId"], ctx["PrimaryEntityName"]),
                         (nid(7), NUMBER))
        self.assertLess(len(first["body"]), 256 * 1024)
        # the pre image of the next update still holds the big value
        self.assertIn("x-ms-dynamics-msg-size-exceeded", second["headers"])
        self.assertTrue(self.deliveries()[0]["size_exceeded"])

    def test_change_sets_deliver_after_commit_only(self):
        ep = self.endpoint()
        self.step(ep, "Create", mode=1)
        body = ("--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n"
                "--c\r\nContent-Type: application/http\r\n"
                "Content-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n"
                "POST %s HTTP/1.1\r\nContent-Type: application/json\r\n\r\n"
                "{\"inogic_name\": \"cs\"}\r\n--c\r\n"
                "Content-Type: application/http\r\n"
                "Content-Transfer-Encoding: binary\r\nContent-ID: 2\r\n\r\n"
                "POST %s HTTP/1.1\r\nContent-Type: application/json\r\n\r\n"
                "{\"inogic_optinstatus\": %s}\r\n--c--\r\n--b--\r\n")
        h = self.headers()
        h["Content-Type"] = "multipart/mixed; boundary=b"
        url = API + NUMBERS
        status, _, data = self.emu.request(
            "POST", API + "$batch", (body % (url, url, 5)).encode(), h)
        self.assertEqual(status, 400, data)
        self.emu.wait(condition="webhooks_idle")
        self.assertEqual(self.deliveries(), [])
        status, _, data = self.emu.request(
            "POST", API + "$batch", (body % (url, url, SINGLE)).encode(), h)
        self.assertEqual(status, 200, data)
        self.wait_deliveries(2)
        ctxs = [r["json"] for r in self.rx.take()]
        self.assertEqual(ctxs[0]["CorrelationId"], ctxs[1]["CorrelationId"])

    def test_readers_do_not_see_a_write_in_its_sync_step(self):
        ep = self.endpoint()
        self.step(ep, "Update", mode=0, stage=40)
        prefer = "odata.track-changes"
        before = self.get("%s(%s)" % (NUMBERS, nid(8))).json
        self.assertIsNone(before[STATUS])
        r = self.get(NUMBERS, [("$select", STATUS)], prefer=prefer)
        rows, pages = self.all_pages(r, prefer)
        link = pages[-1].json["@odata.deltaLink"]
        self.rx.hold()
        result = {}

        def write():
            result["r"] = self.send("PATCH", "%s(%s)" % (NUMBERS, nid(8)),
                                    {STATUS: SINGLE})
        t = threading.Thread(target=write)
        t.start()
        self.rx.wait_for(self.seen + 1)     # the step is being delivered
        r = self.get("%s(%s)" % (NUMBERS, nid(8)))
        self.assertEqual(r.json, before)                 # not yet visible
        d1 = self.follow(link)
        self.assertEqual(d1.json["value"], [])
        link2 = d1.json["@odata.deltaLink"]
        self.rx.release()
        t.join(30)
        self.assertEqual(result["r"].status, 204)
        # the next delta (from the token issued meanwhile) has the change
        d2 = self.follow(link2)
        self.assertEqual([i["inogic_optinoptoutnumberid"]
                          for i in d2.json["value"]], [nid(8)])

    def test_https_endpoint(self):
        tmp = tempfile.mkdtemp(prefix="dvemu-tls-")
        cert, key = make_certificate(tmp)
        rx = Receiver(tls=(cert, key))
        try:
            errors = []
            for ca_file, outcome in ((None, "failed"), (cert, "succeeded")):
                self.control("POST", "reset", {"keep_data": True})
                spec = {"url": rx.url(), "authtype": "WebhookKey",
                        "authvalue": "tls"}
                if ca_file:
                    spec["ca_file"] = ca_file
                ep = self.control("POST", "webhooks/endpoints", spec)[1]["id"]
                self.step(ep, "Update", mode=1)
                self.send("PATCH", "%s(%s)" % (NUMBERS, nid(9)),
                          {STATUS: DOUBLE})
                self.wait_deliveries(1)
                d = self.deliveries()[0]
                self.assertEqual(d["outcome"], outcome, d)
                errors.append(d["attempts"][0]["error"])
            # an untrusted certificate fails like a refused connection
            self.assertIn("CERTIFICATE_VERIFY_FAILED", errors[0])
            self.assertIsNone(errors[1])
            (req,) = rx.take()
            self.assertEqual(req["query"], {"code": ["tls"]})
        finally:
            rx.close()
            shutil.rmtree(tmp, ignore_errors=True)

    # -- registration ---------------------------------------------------------
    def test_registration_rejections(self):
        ep = self.endpoint()
        bad_endpoints = [
            {"url": "ftp://x/", "authtype": "WebhookKey", "authvalue": "k"},
            {"url": self.rx.url(), "authtype": "Basic", "authvalue": "k"},
            {"url": self.rx.url(), "authtype": "WebhookKey"},
            {"url": self.rx.url(), "authtype": "HttpHeader", "authvalue": {}},
            {"url": self.rx.url(), "authtype": "HttpHeader",
             "authvalue": "<nope"},
            {"url": self.rx.url(), "authtype": "WebhookKey",
             "authvalue": "k", "timeout": 0}]
        for spec in bad_endpoints:
            status, out = self.control("POST", "webhooks/endpoints", spec)
            self.assertEqual(status, 400, (spec, out))
        bad_steps = [
            {"endpoint": "nope", "message": "Update", "table": "number"},
            {"endpoint": ep, "message": "Upsert", "table": "number"},
            {"endpoint": ep, "message": "Update", "table": "account"},
            {"endpoint": ep, "message": "Update", "table": "number",
             "stage": 30},
            {"endpoint": ep, "message": "Update", "table": "number",
             "stage": 20, "mode": 1},
            {"endpoint": ep, "message": "Create", "table": "number",
             "filtering_attributes": [STATUS]},
            {"endpoint": ep, "message": "Update", "table": "number",
             "filtering_attributes": ["nope"]},
            {"endpoint": ep, "message": "Create", "table": "number",
             "images": [{"type": "pre", "alias": "p"}]},
            {"endpoint": ep, "message": "Delete", "table": "number",
             "images": [{"type": "post", "alias": "p"}]},
            {"endpoint": ep, "message": "Update", "table": "number",
             "stage": 20, "images": [{"type": "both", "alias": "p"}]},
            {"endpoint": ep, "message": "Update", "table": "number",
             "images": [{"type": "pre", "alias": "p", "attributes": ["x"]}]},
            {"endpoint": ep, "message": "Update", "table": "number",
             "images": [{"type": "pre", "alias": "p"},
                        {"type": "post", "alias": "p"}]}]
        for spec in bad_steps:
            status, out = self.control("POST", "webhooks/steps", spec)
            self.assertEqual(status, 400, (spec, out))
        sid = self.step(ep, "Update")
        listed = self.control("GET", "webhooks")[1]
        self.assertEqual([s["id"] for s in listed["steps"]], [sid])
        self.assertEqual(self.control("DELETE", "webhooks/steps/x")[0], 404)
        self.assertEqual(self.control("DELETE", "webhooks/endpoints/" +
                                      ep)[0], 200)
        self.assertEqual(self.control("GET", "webhooks")[1],
                         {"endpoints": [], "steps": []})
        self.assertEqual(self.control("DELETE", "webhooks/endpoints/" +
                                      ep)[0], 404)
        status, out = self.control("POST", "wait", {"condition": "nope"})
        self.assertEqual(status, 400)


if __name__ == "__main__":
    unittest.main()
