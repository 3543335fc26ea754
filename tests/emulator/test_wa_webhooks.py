"""WhatsApp emulator, webhooks: status updates after every send (sent,
delivered, read; failed with errors[] for users who stopped marketing or
are configured to fail), the X-Hub-Signature-256 HMAC checked here
against the exact body bytes, the customer's side (text reply, template
quick-reply tap carrying the payload that was sent, interactive reply,
user_preferences stop/resume), retries with every attempt recorded, raw
fixture deliveries and the GET verification handshake."""

import hashlib
import hmac
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from wa_testlib import (APP_SECRET, DISPLAY1, KEY1, PN1, PN2, USER, USER2,
                        WABA, WaTest, optin, signature, template, text)


class StatusTest(WaTest):
    def statuses(self, wamid, count):
        got = self.deliveries(count, kind="status", wamid=wamid)
        self.assertEqual(len(got), count, got)
        out = []
        for r in got:
            self.assertSigned(r)
            field, value = self.value(r)
            self.assertEqual(field, "messages")
            self.assertEqual(len(value["statuses"]), 1)
            out.append(value["statuses"][0])
        return got, out

    def test_sent_then_delivered_signed(self):
        wamid = self.sent(optin())
        got, statuses = self.statuses(wamid, 2)
        self.assertEqual([s["status"] for s in statuses],
                         ["sent", "delivered"])
        body = got[0]["json"]
        self.assertEqual(body["object"], "whatsapp_business_account")
        self.assertEqual(body["entry"][0]["id"], WABA)
        _, value = self.value(got[0])
        self.assertEqual(value["messaging_product"], "whatsapp")
        self.assertEqual(value["metadata"], {
            "display_phone_number": DISPLAY1, "phone_number_id": PN1})
        for s in statuses:
            self.assertEqual(s["id"], wamid)
            self.assertEqual(s["recipient_id"], USER)
            self.assertRegex(s["timestamp"], r"^[0-9]{10}$")
            self.assertEqual(s["pricing"], {
                "billable": True, "pricing_model": "PMP",
                "type": "regular", "category": "marketing"})
        self.assertEqual(got[0]["headers"]["user-agent"],
                         "facebookexternalua")
        # the signature covers exactly these bytes: any change breaks it
        self.assertNotEqual(signature(got[0]["body"] + b" "),
                            got[0]["headers"]["x-hub-signature-256"])
        log = self.ok("GET", "webhooks?kind=status")["deliveries"]
        self.assertEqual([(d["status"], d["outcome"], d["listener_status"])
                          for d in log],
                         [("sent", "delivered", 200),
                          ("delivered", "delivered", 200)])
        self.assertEqual(log[0]["body"].encode(), got[0]["body"])

    def test_status_webhooks_for_360dialog_sends(self):
        status, out = self.wa.send360(KEY1, optin(), headers={})
        self.assertEqual(status, 200, out)
        _, statuses = self.statuses(out["messages"][0]["id"], 2)
        self.assertEqual(statuses[1]["status"], "delivered")

    def test_read_receipts_and_opaque_data(self):
        self.user(USER, read=True)
        doc = optin()
        doc["biz_opaque_callback_data"] = "campaign-7"
        wamid = self.sent(doc)
        _, statuses = self.statuses(wamid, 3)
        self.assertEqual([s["status"] for s in statuses],
                         ["sent", "delivered", "read"])
        for s in statuses:
            self.assertEqual(s["biz_opaque_callback_data"], "campaign-7")
        # others still stop at delivered; the flag turns it on for all
        self.ok("POST", "settings", {"read_receipts": True})
        wamid = self.sent(optin(to=USER2))
        _, statuses = self.statuses(wamid, 3)
        self.assertEqual(statuses[2]["status"], "read")

    def test_stopped_marketing_fails_131050(self):
        self.user(USER, stop_marketing=True)
        wamid = self.sent(optin())          # accepted: Meta answers 200
        _, statuses = self.statuses(wamid, 1)
        self.assertEqual(statuses[0]["status"], "failed")
        self.assertNotIn("pricing", statuses[0])
        err = statuses[0]["errors"][0]
        self.assertEqual(err["code"], 131050)
        self.assertIn("stop receiving marketing messages", err["title"])
        self.assertEqual(err["message"], err["title"])
        self.assertIsInstance(err["error_data"]["details"], str)
        self.assertTrue(err["href"].startswith("https://"))
        # utility templates still reach the user
        wamid = self.sent(template(name="doi_confirm"))
        _, statuses = self.statuses(wamid, 2)
        self.assertEqual(statuses[1]["status"], "delivered")
        self.assertEqual(statuses[0]["pricing"]["category"], "utility")

    def test_configured_failure(self):
        self.user(USER, fail={"code": 131049, "details": "healthy"})
        wamid = self.sent(optin())
        _, statuses = self.statuses(wamid, 1)
        self.assertEqual(statuses[0]["errors"][0]["code"], 131049)
        self.assertEqual(statuses[0]["errors"][0]["error_data"],
                         {"details": "healthy"})
        self.user(USER, fail=None)
        _, statuses = self.statuses(self.sent(optin()), 2)
        self.assertEqual(statuses[1]["status"], "delivered")

    def test_recipient_errors_as_webhooks(self):
        self.ok("POST", "settings", {"recipient_errors": "webhook"})
        self.user(USER2, undeliverable=True)
        for doc, code in ((text(), 131047), (optin(to=USER2), 131026)):
            with self.subTest(code=code):
                wamid = self.sent(doc)
                _, statuses = self.statuses(wamid, 1)
                self.assertEqual(statuses[0]["status"], "failed")
                self.assertEqual(statuses[0]["errors"][0]["code"], code)

    def test_no_statuses(self):
        self.ok("POST", "settings", {"statuses": False})
        self.sent(optin())
        # its statuses would be queued before the send is over
        self.wa.wait(condition="idle")
        self.wa.wait(condition="webhooks_idle")
        self.assertEqual(self.ok("GET", "webhooks")["deliveries"], [])


class ReplyTest(WaTest):
    def reply(self, spec, status=200):
        """POST reply; to PN1 unless the spec says otherwise (the
        emulator wants the number named when it knows several)."""
        if "wamid" not in spec:
            spec = dict({"phone_number_id": PN1}, **spec)
        return self.ok("POST", "reply", spec, status)

    def message(self, out):
        """The delivered messages webhook of a reply call -> message."""
        self.assertEqual(out["delivery"]["outcome"], "delivered")
        self.assertEqual(out["delivery"]["listener_status"], 200)
        got = self.rx.take()
        mine = [r for r in got if self.value(r)[0] == "messages" and
                "messages" in self.value(r)[1]]
        self.assertEqual(len(mine), 1, got)
        self.assertSigned(mine[0])
        _, value = self.value(mine[0])
        self.assertEqual(value["contacts"][0]["wa_id"],
                         value["messages"][0]["from"])
        self.assertEqual(value["metadata"]["phone_number_id"], PN1)
        msg = value["messages"][0]
        self.assertEqual(msg["id"], out["wamid"])
        self.assertRegex(msg["id"], r"^wamid\.")
        self.assertRegex(msg["timestamp"], r"^[0-9]{10}$")
        return value, msg

    def test_text_reply_opens_the_window(self):
        self.assertGraphError(self.send(text()), 400, 131047)
        out = self.reply({"from": "+" + USER, "text": "STOP",
                          "name": "Erika M.", "phone_number_id": PN1})
        value, msg = self.message(out)
        self.assertEqual(value["contacts"], [{"profile": {"name":
                                                          "Erika M."},
                                              "wa_id": USER}])
        self.assertEqual((msg["from"], msg["type"], msg["text"]),
                         (USER, "text", {"body": "STOP"}))
        self.assertNotIn("context", msg)
        self.sent(text("Thanks, you are unsubscribed."))
        # only for the number the user wrote to
        self.assertGraphError(self.send(text(), pnid=PN2), 400, 131047)
        user = self.ok("GET", "users/" + USER)
        self.assertEqual(user["window_open"], [PN1])

    def test_button_tap_carries_the_sent_payload(self):
        wamid = self.sent(optin(payloads={0: "OPT_IN", 1: "OPT_OUT"}))
        self.deliveries(2, kind="status", wamid=wamid)
        out = self.reply({"type": "button", "wamid": wamid, "index": 1})
        _, msg = self.message(out)
        self.assertEqual(msg["type"], "button")
        self.assertEqual(msg["from"], USER)
        self.assertEqual(msg["button"], {"payload": "OPT_OUT",
                                         "text": "No thanks"})
        self.assertEqual(msg["context"], {"from": DISPLAY1, "id": wamid})
        # index 0 by default
        _, msg = self.message(self.reply({"type": "button",
                                          "wamid": wamid}))
        self.assertEqual(msg["button"], {"payload": "OPT_IN",
                                         "text": "Yes, sign me up"})

    def test_button_without_payload_and_explicit_taps(self):
        wamid = self.sent(template(name="doi_confirm", lang="de"))
        _, msg = self.message(self.reply({"type": "button",
                                          "wamid": wamid}))
        # no payload was sent for the button: the label comes back
        self.assertEqual(msg["button"], {"payload": "Ja, bestätigen",
                                         "text": "Ja, bestätigen"})
        _, msg = self.message(self.reply({
            "type": "button", "from": USER2, "phone_number_id": PN1,
            "payload": "DOI_CONFIRM", "button_text": "Yes"}))
        self.assertEqual(msg["button"]["payload"], "DOI_CONFIRM")
        self.assertNotIn("context", msg)
        for bad in ({"type": "button", "wamid": wamid, "index": 1},
                    {"type": "button", "wamid": "wamid.nope"},
                    {"type": "button", "from": USER},
                    {"type": "interactive", "wamid": wamid},
                    {"type": "sticker", "from": USER},
                    {"from": USER, "text": "x", "colour": "red"},
                    {"from": USER, "text": "x"}):     # which number?
            with self.subTest(bad=bad):
                self.assertEqual(self.control("POST", "reply", bad)[0], 400)

    def test_interactive_reply(self):
        self.wrote_in(USER)
        doc = {"messaging_product": "whatsapp", "to": USER,
               "type": "interactive", "interactive": {
                   "type": "button", "body": {"text": "Confirm?"},
                   "action": {"buttons": [
                       {"type": "reply", "reply": {"id": "doi_yes",
                                                   "title": "Yes"}},
                       {"type": "reply", "reply": {"id": "doi_no",
                                                   "title": "No"}}]}}}
        wamid = self.sent(doc)
        _, msg = self.message(self.reply({"type": "interactive",
                                          "wamid": wamid, "id": "doi_no"}))
        self.assertEqual(msg["interactive"], {
            "type": "button_reply",
            "button_reply": {"id": "doi_no", "title": "No"}})
        self.assertEqual(msg["context"]["id"], wamid)
        # interactive messages need the window too
        self.assertGraphError(self.send(dict(doc, to=USER2)), 400, 131047)

    def test_forwarded_text_and_quoted_reply(self):
        wamid = self.sent(optin())
        _, msg = self.message(self.reply({
            "wamid": wamid, "text": "Subscribe", "frequently_forwarded":
            True, "forwarded": True}))
        self.assertEqual(msg["context"], {
            "from": DISPLAY1, "id": wamid, "forwarded": True,
            "frequently_forwarded": True})

    def test_listener_status_recorded(self):
        self.ok("POST", "settings", {"webhook_retries": 0})
        self.rx.answer(401)
        out = self.reply({"from": USER, "text": "hi"}, 200)
        self.assertEqual(out["delivery"]["outcome"], "failed")
        self.assertEqual(out["delivery"]["listener_status"], 401)
        self.assertEqual(len(out["delivery"]["attempts"]), 1)
        # the user wrote anyway: the window is open
        self.sent(text())

    def test_retries(self):
        self.rx.answer(500, 503)
        out = self.reply({"from": USER, "text": "hi"})
        attempts = out["delivery"]["attempts"]
        self.assertEqual([a.get("status") for a in attempts],
                         [500, 503, 200])
        self.assertEqual(out["delivery"]["outcome"], "delivered")
        got = self.rx.take()
        self.assertEqual(len({r["body"] for r in got}), 1)   # same bytes
        # give up after 1 + retries attempts
        self.ok("POST", "settings", {"webhook_retries": 2})
        self.rx.answer(500, 500, 500, 500)
        out = self.reply({"from": USER, "text": "again"})
        self.assertEqual(out["delivery"]["outcome"], "failed")
        self.assertEqual(len(out["delivery"]["attempts"]), 3)
        self.rx.statuses.clear()
        counters = self.ok("GET", "counters")["webhooks"]
        self.assertEqual((counters["delivered"], counters["failed"],
                          counters["attempts"]), (1, 1, 6))

    def test_unreachable_listener(self):
        self.ok("POST", "settings", {"webhook_url":
                                     "http://127.0.0.1:9/hook",
                                     "webhook_retries": 1})
        out = self.reply({"from": USER, "text": "hi"})
        self.assertEqual(out["delivery"]["outcome"], "failed")
        self.assertEqual(len(out["delivery"]["attempts"]), 2)
        self.assertIn("error", out["delivery"]["attempts"][0])

    def test_no_webhook_url(self):
        self.ok("POST", "settings", {"webhook_url": None})
        status, out = self.control("POST", "reply", {
            "from": USER, "text": "x", "phone_number_id": PN1})
        self.assertEqual(status, 409, out)
        self.sent(optin())          # sends still work, no statuses
        self.wa.wait(condition="idle")      # statuses follow the answer
        self.assertEqual(self.ok("GET", "counters")["webhooks"]["skipped"],
                         2)

    def test_webhook_headers_and_secret_at_run_time(self):
        self.ok("POST", "settings", {"app_secret": "other",
                                     "webhook_headers": {"X-Key": "k"}})
        self.reply({"from": USER, "text": "hi"})
        r = self.rx.take()[0]
        self.assertEqual(r["headers"]["x-key"], "k")
        self.assertEqual(r["headers"]["x-hub-signature-256"],
                         signature(r["body"], "other"))
        self.ok("POST", "settings", {"app_secret": None})
        self.reply({"from": USER, "text": "hi"})
        self.assertNotIn("x-hub-signature-256", self.rx.take()[0]["headers"])

    def test_user_preferences(self):
        out = self.ok("POST", "preferences", {"wa_id": USER,
                                              "value": "stop",
                                              "phone_number_id": PN1})
        r = self.rx.take()[0]
        self.assertSigned(r)
        field, value = self.value(r)
        self.assertEqual(field, "user_preferences")
        item = value["user_preferences"][0]
        self.assertEqual(item, out["user_preferences"])
        self.assertEqual((item["wa_id"], item["category"], item["value"]),
                         (USER, "marketing_messages", "stop"))
        self.assertIsInstance(item["timestamp"], int)
        self.assertEqual(item["detail"],
                         "User requested to stop marketing messages")
        self.assertEqual(value["contacts"][0]["wa_id"], USER)
        self.assertTrue(self.ok("GET", "users/" + USER)["stop_marketing"])
        # marketing now fails with 131050; resume lifts it
        _, statuses = self.status_of(self.sent(optin()), 1)
        self.assertEqual(statuses[0]["errors"][0]["code"], 131050)
        self.ok("POST", "preferences", {"wa_id": USER, "value": "resume",
                                        "phone_number_id": PN1})
        self.assertFalse(self.ok("GET", "users/" + USER)["stop_marketing"])
        self.rx.take()
        # the user did not write: no window
        self.assertGraphError(self.send(text()), 400, 131047)

    def status_of(self, wamid, count):
        got = self.deliveries(count, kind="status", wamid=wamid)
        return got, [self.value(r)[1]["statuses"][0] for r in got]


class DeliverTest(WaTest):
    FIXTURE = {"object": "whatsapp_business_account", "entry": [{
        "id": WABA, "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": DISPLAY1,
                         "phone_number_id": PN1},
            "messages": [{"from": USER, "id": "wamid.X", "timestamp":
                          "1767225600", "type": "text",
                          "text": {"body": "STOP"}}]}}]}]}

    def test_raw_bodies_and_signatures(self):
        raw = '{"object":"whatsapp_business_account", "entry":[]}'
        self.ok("POST", "deliver", {"body": raw})
        r = self.rx.take()[0]
        self.assertEqual(r["body"], raw.encode())
        self.assertSigned(r)
        self.ok("POST", "deliver", {"body": self.FIXTURE,
                                    "signature": "wrong"})
        r = self.rx.take()[0]
        self.assertEqual(r["json"], self.FIXTURE)
        self.assertNotEqual(r["headers"]["x-hub-signature-256"],
                            signature(r["body"]))
        self.ok("POST", "deliver", {"body": self.FIXTURE,
                                    "signature": "none"})
        self.assertNotIn("x-hub-signature-256",
                         self.rx.take()[0]["headers"])
        self.ok("POST", "deliver", {"body": self.FIXTURE,
                                    "signature": "sha1=abc"})
        self.assertEqual(self.rx.take()[0]["headers"]
                         ["x-hub-signature-256"], "sha1=abc")
        self.assertEqual(self.control("POST", "deliver", {})[0], 400)

    def test_hmac_by_hand(self):
        self.ok("POST", "deliver", {"body": self.FIXTURE})
        r = self.rx.take()[0]
        mac = hmac.new(APP_SECRET.encode(), r["body"], hashlib.sha256)
        self.assertEqual(r["headers"]["x-hub-signature-256"],
                         "sha256=" + mac.hexdigest())

    def test_verification_handshake(self):
        seen = []

        class Listener(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                q = parse_qs(urlsplit(self.path).query)
                seen.append(q)
                good = q.get("hub.verify_token") == ["vt"] and \
                    q.get("hub.mode") == ["subscribe"]
                body = q["hub.challenge"][0].encode() if good else b"no"
                self.send_response(200 if good else 403)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
        server = ThreadingHTTPServer(("127.0.0.1", 0), Listener)
        thread = threading.Thread(target=server.serve_forever, daemon=True,
                                  kwargs={"poll_interval": 0.05})
        thread.start()
        try:
            url = "http://127.0.0.1:%d/webhooks/whatsapp" % \
                server.server_address[1]
            out = self.ok("POST", "verify", {"verify_token": "vt",
                                             "url": url})
            self.assertTrue(out["verified"], out)
            self.assertEqual(out["body"], out["challenge"])
            out = self.ok("POST", "verify", {"verify_token": "bad",
                                             "url": url})
            self.assertFalse(out["verified"])
            self.assertEqual(out["status"], 403)
            self.assertEqual(len(seen), 2)
        finally:
            server.shutdown()
            server.server_close()


if __name__ == "__main__":
    unittest.main()
