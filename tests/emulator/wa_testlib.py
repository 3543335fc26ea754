"""Shared pieces of the WhatsApp emulator's tests (not a test module).

WaTest starts one emulator per test class on --port 0 with the default
templates file, a 360dialog key and an app secret, and points its
webhooks at an emu_testlib.Receiver. setUp resets the emulator; tearDown
first waits until no send and no webhook is in flight, so no delivery
of one test lands in the next. Nothing sleeps: tests wait through
/_emulator/wait or the receiver's own condition.
"""

import hashlib
import hmac
import json
import socket
import unittest

from emu_testlib import Receiver
from launcher import WhatsAppEmulator

PN1 = "110000000000001"         # wa_templates.json, display 15550100001
PN2 = "110000000000002"         # display 4930901820
WABA = "220000000000001"
DISPLAY1 = "15550100001"
KEY1 = "d360-test-key-1"
APP_SECRET = "test-app-secret"
USER = "4915112345678"
USER2 = "4917098765432"


def template(name="optin_request", lang="en_US", to=USER, body=None,
             payloads=None, header=None, **extra):
    """A template send body; payloads maps button index -> payload."""
    components = []
    if header is not None:
        components.append({"type": "header", "parameters": [
            {"type": "text", "text": t} for t in header]})
    if body is not None:
        components.append({"type": "body", "parameters": [
            {"type": "text", "text": t} for t in body]})
    for index, payload in sorted((payloads or {}).items()):
        components.append({"type": "button", "sub_type": "quick_reply",
                           "index": str(index), "parameters": [
                               {"type": "payload", "payload": payload}]})
    doc = {"messaging_product": "whatsapp", "recipient_type": "individual",
           "to": to, "type": "template",
           "template": {"name": name, "language": {"code": lang}}}
    if components:
        doc["template"]["components"] = components
    doc.update(extra)
    return doc


def optin(to=USER, payloads=None):
    """The seeded marketing template with its one body parameter."""
    return template(to=to, body=["Erika"],
                    payloads={0: "OPT_IN"} if payloads is None
                    else payloads)


def text(body="hello", to=USER):
    return {"messaging_product": "whatsapp", "recipient_type": "individual",
            "to": to, "type": "text", "text": {"body": body}}


def signature(body, secret=APP_SECRET):
    return "sha256=" + hmac.new(secret.encode(), body,
                                hashlib.sha256).hexdigest()


def fast_receiver():
    """An emu_testlib.Receiver whose answers leave at once: it writes
    headers and body separately, which Nagle's algorithm and the
    emulator's delayed ACK would turn into ~40 ms per webhook on a
    kept-alive connection."""
    rx = Receiver()
    base = rx.server.RequestHandlerClass

    class Handler(base):
        def setup(self):
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP,
                                       socket.TCP_NODELAY, 1)
    rx.server.RequestHandlerClass = Handler
    return rx


class WaTest(unittest.TestCase):
    """Base class: one emulator + one webhook receiver per class."""

    args = []                   # extra emulator arguments
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.rx = fast_receiver()
        cls.hook_url = cls.rx.url("/webhooks/whatsapp")
        cls.wa = WhatsAppEmulator(extra=[
            "--webhook-url", cls.hook_url, "--app-secret", APP_SECRET,
            "--d360-key", "%s:%s" % (KEY1, PN1),
            "--webhook-retry-ms", "5"] + list(cls.args))
        cls.wa.start()

    @classmethod
    def tearDownClass(cls):
        cls.wa.stop()
        cls.wa.cleanup()
        cls.rx.close()

    def setUp(self):
        self.control("POST", "reset")
        self.rx.statuses.clear()
        self.rx.take()

    def tearDown(self):
        self.rx.release()
        self.control("POST", "release", {})
        # A send's status webhooks are queued after its answer left: wait
        # for the sends to be over, then for their webhooks.
        self.wa.wait(condition="idle", timeout=60)
        self.wa.wait(condition="webhooks_idle", timeout=60)
        self.control("POST", "reset")

    # -- helpers ---------------------------------------------------------
    def control(self, method, route, doc=None):
        return self.wa.control(method, route, doc)

    def ok(self, method, route, doc=None, status=200):
        got, out = self.control(method, route, doc)
        self.assertEqual(got, status, out)
        return out

    def send(self, doc, pnid=PN1, **kw):
        return self.wa.send(pnid, doc, **kw)

    def sent(self, doc, pnid=PN1, **kw):
        """A send that must succeed -> its wamid."""
        status, out = self.send(doc, pnid, **kw)
        self.assertEqual(status, 200, out)
        return out["messages"][0]["id"]

    def user(self, wa_id=USER, **fields):
        return self.ok("POST", "users", dict(fields, wa_id=wa_id))

    def wrote_in(self, wa_id=USER, pnid=None, **when):
        spec = dict(when)
        if pnid:
            spec["phone_number_id"] = pnid
        return self.user(wa_id, wrote_in=spec)

    def assertGraphError(self, status_and_doc, http_status, code,
                         details=None, subcode=None, error_data=True):
        status, doc = status_and_doc
        self.assertEqual(status, http_status, doc)
        err = doc["error"]
        self.assertEqual(err["code"], code, err)
        self.assertEqual(err["type"], "OAuthException")
        self.assertIsInstance(err["message"], str)
        self.assertRegex(err["fbtrace_id"], r"^[A-Za-z0-9]{20,}$")
        if subcode is None:
            self.assertNotIn("error_subcode", err)
        else:
            self.assertEqual(err["error_subcode"], subcode)
        if error_data:
            self.assertEqual(err["error_data"]["messaging_product"],
                             "whatsapp")
            self.assertIsInstance(err["error_data"]["details"], str)
            if details is not None:
                self.assertIn(details, err["error_data"]["details"])
        else:
            self.assertNotIn("error_data", err)
        return err

    def deliveries(self, count, **cond):
        """Wait until `count` deliveries matching cond finished, then
        take what the receiver got (parsed, oldest first)."""
        self.wa.wait(condition="webhooks", count=count, **cond)
        return self.rx.take()

    def assertSigned(self, request):
        self.assertEqual(request["headers"]["x-hub-signature-256"],
                         signature(request["body"]))
        self.assertEqual(request["headers"]["content-type"],
                         "application/json")
        self.assertEqual(request["path"], "/webhooks/whatsapp")

    @staticmethod
    def value(request):
        """entry[0].changes[0] of a webhook body -> (field, value)."""
        change = request["json"]["entry"][0]["changes"][0]
        return change["field"], change["value"]

    @staticmethod
    def dump(doc):
        return json.dumps(doc, indent=1, ensure_ascii=False)
