"""WhatsApp emulator, send side: the launch contract, successful sends on
both routes (Cloud API with a bearer token, 360dialog with D360-API-KEY),
Meta's error JSON for malformed bodies (100), tokens (190), unknown
objects and paths, template checks (132000 / 132001 / 132015 / 132016),
undeliverable recipients (131026) and mark-as-read."""

import os
import re
import signal
import subprocess
import sys
import unittest

from launcher import WA_SCRIPT, WA_TOKEN
from wa_testlib import (KEY1, PN1, PN2, USER, USER2, WaTest, optin,
                        template, text)


class LaunchTest(unittest.TestCase):
    """--port 0 -> one stdout line READY port=N; SIGTERM/SIGINT exit 0."""

    def run_until(self, sig):
        proc = subprocess.Popen(
            [sys.executable, WA_SCRIPT, "--port", "0", "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL)
        try:
            line = proc.stdout.readline()
            self.assertRegex(line, rb"^READY port=[1-9][0-9]*\n$")
            port = int(line.split(b"=")[1])
            import http.client
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/_emulator/health")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertIn(b'"port": %d' % port, resp.read())
            conn.close()
            proc.send_signal(sig)
            rest, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        self.assertEqual(proc.returncode, 0, err)
        self.assertEqual(rest, b"", "stdout must hold only the READY line")

    def test_sigterm(self):
        self.run_until(signal.SIGTERM)

    def test_sigint(self):
        self.run_until(signal.SIGINT)

    def test_bad_templates_file_fails_to_start(self):
        proc = subprocess.run(
            [sys.executable, WA_SCRIPT, "--port", "0", "--templates",
             os.path.join(os.path.dirname(WA_SCRIPT), "no-such.json")],
            capture_output=True, timeout=30)
        self.assertEqual(proc.returncode, 2)
        self.assertEqual(proc.stdout, b"")
        self.assertIn(b"cannot start", proc.stderr)


class SendTest(WaTest):
    def test_template_send_cloud_api(self):
        status, out = self.send(optin(to="+49 151 1234-5678",
                                      payloads={0: "OPT_IN", 1: "OPT_OUT"}))
        self.assertEqual(status, 200, out)
        self.assertEqual(out["messaging_product"], "whatsapp")
        self.assertEqual(out["contacts"], [{"input": "+49 151 1234-5678",
                                            "wa_id": USER}])
        wamid = out["messages"][0]["id"]
        self.assertRegex(wamid, r"^wamid\.[A-Za-z0-9+/=]{20,}$")
        rec = self.ok("GET", "messages/" + wamid)
        self.assertEqual(rec["route"], "cloud")
        self.assertEqual(rec["auth"], "bearer")
        self.assertEqual(rec["credential"], WA_TOKEN)
        self.assertEqual(rec["version"], "v21.0")
        self.assertEqual(rec["phone_number_id"], PN1)
        self.assertEqual(rec["wa_id"], USER)
        self.assertEqual(rec["template"], {"name": "optin_request",
                                           "language": "en_US",
                                           "category": "MARKETING"})
        self.assertEqual(rec["body_params"], ["Erika"])
        self.assertEqual(rec["button_payloads"], {"0": "OPT_IN",
                                                  "1": "OPT_OUT"})
        # wamids are unique
        self.assertNotEqual(self.sent(optin()), wamid)

    def test_any_graph_version(self):
        for version in ("v17.0", "v21.0", "v24.0"):
            self.sent(optin(), version=version)
        status, out = self.send(optin(), version="latest")
        self.assertGraphError((status, out), 400, 2500, error_data=False)

    def test_send_360dialog(self):
        status, out = self.wa.send360(KEY1, optin())
        self.assertEqual(status, 200, out)
        rec = self.ok("GET", "messages/" + out["messages"][0]["id"])
        self.assertEqual((rec["route"], rec["auth"], rec["credential"],
                          rec["phone_number_id"], rec["version"]),
                         ("360dialog", "d360-api-key", KEY1, PN1, None))
        # a wrong or missing key: 360dialog's own 401
        for key in ("nope", None):
            status, out = self.wa.send360(key, optin())
            self.assertEqual(status, 401)
            self.assertEqual(out["meta"]["http_code"], 401)
            self.assertFalse(out["meta"]["success"])
        # a bearer token is not a 360dialog key
        status, _ = self.wa.send360(None, optin(), headers={
            "Authorization": "Bearer " + WA_TOKEN})
        self.assertEqual(status, 401)
        # a key added at run time, for the other number
        self.ok("POST", "tokens", {"key": "k2", "phone_number_id": PN2})
        status, out = self.wa.send360("k2", template(
            name="doi_confirm", lang="de"))
        self.assertEqual(status, 200, out)
        # revoked, then restored
        self.ok("POST", "tokens/revoke", {"key": KEY1})
        self.assertEqual(self.wa.send360(KEY1, optin())[0], 401)
        self.ok("POST", "tokens/restore", {"key": KEY1})
        self.assertEqual(self.wa.send360(KEY1, optin())[0], 200)

    def test_invalid_bodies(self):
        good = optin()

        def without(key):
            return {k: v for k, v in good.items() if k != key}

        def tpl(**over):
            doc = optin()
            doc["template"].update(over)
            return doc
        cases = [
            (without("messaging_product"), "messaging_product is required"),
            (dict(good, messaging_product="sms"), "messaging_product"),
            (without("to"), "to is required"),
            (dict(good, to="not a number"), "not a valid phone number"),
            (dict(good, to="+12"), "not a valid phone number"),
            (dict(good, recipient_type="group"), "recipient_type"),
            (dict(good, type="carrier_pigeon"), "Param type"),
            (dict(good, type="image"), "not emulated"),
            (without("template"), "template is required"),
            (dict(good, text={"body": "x"}), "not allowed"),
            (dict(good, colour="red"), "Unexpected key \"colour\""),
            (tpl(name=""), "template.name must not be empty"),
            (tpl(language="en_US"), "JSON object"),
            (tpl(language={"policy": "deterministic"}), "code is required"),
            (tpl(language={"code": "en_US", "policy": "fallback"}),
             "policy"),
            (tpl(components={"type": "body"}), "must be an array"),
            (tpl(components=[{"type": "footer"}]), "{HEADER, BODY, BUTTON}"),
            (tpl(components=[{"type": "button", "index": "0"}]),
             "sub_type is required"),
            (tpl(components=[{"type": "button", "sub_type": "url",
                              "index": "0"}]), "not emulated"),
            (tpl(components=[{"type": "button", "sub_type": "quick_reply",
                              "index": "x"}]), "index"),
            (tpl(components=[{"type": "button", "sub_type": "quick_reply",
                              "index": "0", "parameters": [
                                  {"type": "text", "text": "x"}]}]),
             "type payload"),
            (tpl(components=[{"type": "body", "parameters": [
                {"type": "text", "text": ""}]}]), "must not be empty"),
            (text(body=""), "text.body must not be empty"),
            (text(body="x" * 4097), "at most 4096"),
        ]
        dup = optin()
        dup["template"]["components"].append(
            dict(dup["template"]["components"][1]))
        cases.append((dup, "Two button components have index 0"))
        for doc, details in cases:
            with self.subTest(details=details, doc=doc):
                self.assertGraphError(self.send(doc), 400, 100, details)
        status, out = self.send(None, raw=b"{not json")
        self.assertGraphError((status, out), 400, 100, "not valid JSON")
        status, out = self.send(good, headers={
            "Content-Type": "text/plain"})
        self.assertGraphError((status, out), 400, 100, "Content-Type")
        # nothing was sent, every attempt is logged and counted
        self.assertEqual(self.ok("GET", "messages")["messages"], [])
        counters = self.ok("GET", "counters")["sends"]
        self.assertEqual(counters["accepted"], 0)
        self.assertEqual(counters["rejected"], {"100": len(cases) + 2})

    def test_unknown_phone_number_and_path(self):
        err = self.assertGraphError(self.send(optin(), pnid="999"), 400,
                                    100, subcode=33, error_data=False)
        self.assertIn("Object with ID '999' does not exist",
                      err["message"])
        status, _, body = self.wa.request("POST", "/v21.0/%s/stuff" % PN1,
                                          b"{}", {"Authorization": "x"})
        self.assertEqual(status, 400)
        self.assertIn(b'"code": 2500', body)

    def test_tokens(self):
        status, out = self.send(optin(), token=None)
        err = self.assertGraphError((status, out), 401, 190,
                                    error_data=False)
        self.assertIn("access token is required", err["message"])
        err = self.assertGraphError(self.send(optin(), token="wrong"), 401,
                                    190, error_data=False)
        self.assertIn("Cannot parse access token", err["message"])
        # revoke: every send 401 until restored
        self.ok("POST", "tokens/revoke", {"token": WA_TOKEN})
        for _ in range(2):
            self.assertGraphError(self.send(optin()), 401, 190,
                                  subcode=460, error_data=False)
        self.ok("POST", "tokens/restore", {"token": WA_TOKEN})
        self.sent(optin())
        self.ok("POST", "tokens/revoke", {"token": WA_TOKEN,
                                          "reason": "expired"})
        self.assertGraphError(self.send(optin()), 401, 190, subcode=463,
                              error_data=False)
        # other tokens are unaffected; a new one can be added
        self.ok("POST", "tokens", {"token": "second"})
        self.sent(optin(), token="second")
        status, _, _ = self.wa.request(
            "POST", self.wa.messages_path(PN1), b"{}",
            {"Authorization": "Bearer wrong"})
        self.assertEqual(status, 401)
        self.assertEqual(self.ok("GET", "counters")["sends"]["rejected"],
                         {"190": 6})

    def test_token_flag(self):
        # --token adds accepted tokens (this class passes none)
        self.assertEqual(self.ok("GET", "tokens")["tokens"],
                         [{"token": WA_TOKEN, "state": "active"}])

    def test_template_errors(self):
        def err(code, details, status=400, **kw):
            with self.subTest(code=code, details=details):
                self.assertGraphError(self.send(template(**kw)), status,
                                      code, details)
        err(132001, "template name (nope) does not exist in en_US", 404,
            name="nope")
        err(132001, "does not exist in fr", 404, lang="fr", body=["x"])
        err(132001, "not approved in en_US (status PENDING)", 404,
            name="autumn_offer")
        err(132001, "status REJECTED", 404, name="bad_offer")
        err(132015, "paused", name="summer_offer")
        err(132016, "disabled", name="old_offer")
        err(132000, "body: number of localizable_params (0) does not "
            "match the expected number of params (1)")
        err(132000, "body: number of localizable_params (2)",
            body=["a", "b"])
        err(132000, "no quick-reply button at index 2", body=["a"],
            payloads={2: "X"})
        # spring_offer: header 1, body 2, button 0 is a URL button
        err(132000, "header: number of localizable_params (0)",
            name="spring_offer", body=["a", "b"])
        err(132000, "no quick-reply button at index 0",
            name="spring_offer", header=["h"], body=["a", "b"],
            payloads={0: "X"})
        self.sent(template(name="spring_offer", header=["h"],
                           body=["a", "b"], payloads={1: "STOP_PROMO"}))
        # templates belong to a phone number
        self.assertGraphError(self.send(template(name="doi_confirm"),
                                        pnid=PN2), 404, 132001)
        self.sent(template(name="doi_confirm", lang="de"), pnid=PN2)

    def test_templates_change_at_run_time(self):
        self.ok("PATCH", "templates/%s/optin_request/en_US" % PN1,
                {"status": "PAUSED"})
        self.assertGraphError(self.send(optin()), 400, 132015)
        self.ok("PATCH", "templates/%s/optin_request/en_US" % PN1,
                {"status": "APPROVED", "body_params": 0})
        self.assertGraphError(self.send(optin()), 400, 132000)
        self.sent(template(payloads={1: "NO"}))
        # a missing template is fixed by adding it
        fr = template(lang="fr")
        self.assertGraphError(self.send(fr), 404, 132001)
        self.ok("POST", "templates", {
            "phone_number_id": PN1, "name": "optin_request",
            "language": "fr", "category": "MARKETING",
            "buttons": [{"type": "QUICK_REPLY", "text": "Oui"}]}, 201)
        self.sent(fr)
        self.ok("DELETE", "templates/%s/optin_request/fr" % PN1)
        self.assertGraphError(self.send(fr), 404, 132001)

    def test_undeliverable(self):
        self.user(USER2, undeliverable=True)
        self.assertGraphError(self.send(optin(to=USER2)), 400, 131026)
        self.sent(optin(to=USER))
        self.user(USER2, undeliverable=False)
        self.sent(optin(to=USER2))

    def test_mark_read(self):
        self.user(USER)         # a user, but no message from them yet
        doc = {"messaging_product": "whatsapp", "status": "read",
               "message_id": "wamid.unknown"}
        self.assertGraphError(self.send(doc), 400, 100, "wamid.unknown")
        inbound = self.ok("POST", "reply", {"from": USER, "text": "hi",
                                            "phone_number_id": PN1})
        doc["message_id"] = inbound["wamid"]
        self.assertEqual(self.send(doc), (200, {"success": True}))
        # received on PN1, not PN2
        self.assertGraphError(self.send(doc, pnid=PN2), 400, 100)
        self.assertEqual(self.ok("GET", "counters")["marked_read"], 1)
        self.assertTrue(self.ok("GET", "inbound")["inbound"][0]["read"])

    def test_attempt_log(self):
        self.sent(optin())
        self.send(optin(), token="wrong")
        attempts = self.ok("GET", "attempts")["attempts"]
        self.assertEqual([(a["status"], a["code"], a["route"])
                          for a in attempts],
                         [(200, None, "cloud"), (401, 190, "cloud")])
        self.assertTrue(re.match(r"^wamid\.", attempts[0]["wamid"]))


if __name__ == "__main__":
    unittest.main()
