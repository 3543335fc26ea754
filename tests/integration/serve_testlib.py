"""Helpers for the end-to-end tests of `optsync serve`: the process started
against the Dataverse emulator with its log in a file, WhatsApp deliveries
signed as Meta signs them, the emulator's Dataverse webhook pointed at
serve, and waits on conditions with generous deadlines (a deadline is a
guard against hangs, never a timing check).

    class T(ServeCase):
        def test_x(self):
            self.start_emulator(numbers=60)
            self.start_serve()
            self.wa_reply(cfg, phone, "STOP")
            self.wait_for(lambda: self.emu_status(row_id) == "opted_out",
                          "the opt-out reaches Dynamics")
"""

import hashlib
import hmac
import itertools
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request

from optsync_testlib import OptsyncCase

# config/optsync.ini's secrets (the embedded default is the emulator's)
API_KEY = "optsync-demo-api-key"
WA_SECRET = b"optsync-demo-app-secret"
DV_KEY = "optsync-demo-webhook-key"
DEADLINE = 60  # seconds
POLL = 0.02    # between two looks at a condition (not a synchronisation)

_wamids = itertools.count(1)


def wa_message(pnid, phone, text=None, payload=None, ts=None):
    """A WhatsApp Cloud API delivery of one customer message, as Meta
    sends it: text, or a quick-reply button with `payload`."""
    wa_id = phone.lstrip("+")
    msg = {"from": wa_id, "id": "wamid.serve%d.%d" % (os.getpid(),
                                                        next(_wamids)),
           "timestamp": str(int(ts if ts is not None else time.time()))}
    if payload is not None:
        msg.update(type="button", button={"payload": payload,
                                          "text": text or payload})
        msg["context"] = {"from": "15550001111",
                          "id": "wamid.business.%s" % msg["id"]}
    else:
        msg.update(type="text", text={"body": text})
    return json.dumps({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111",
                         "phone_number_id": pnid},
            "contacts": [{"profile": {"name": "Test"}, "wa_id": wa_id}],
            "messages": [msg]}}]}],
    }).encode()


def sign(body):
    return "sha256=" + hmac.new(WA_SECRET, body, hashlib.sha256).hexdigest()


class ServeCase(OptsyncCase):
    """An emulator with seed data and `optsync serve` on a free port."""

    proc = None
    stderr = None

    # -- processes -----------------------------------------------------

    def start_emulator(self, configurations=2, numbers=60, extra=()):
        self.seed_path, self.doc = self.seed(configurations=configurations,
                                             numbers=numbers)
        self.emulator(seed=self.seed_path, extra=list(extra) + ["--quiet"])

    def serve_overrides(self, *extra):
        return ["-o", "listener.port=0", "-o", "sync.interval=1s",
                "-o", "log.file=" + self.log_path] + list(extra)

    def start_serve(self, *extra, args=()):
        """Starts serve; waits for event=serve_started (its port)."""
        self.log_path = os.path.join(self.dir, "serve.log")
        self.log_mark = self.log_size()
        cmd = self.command("serve", *args,
                           extra_overrides=self.serve_overrides(*extra))
        if self.stderr and not self.stderr.closed:
            self.stderr.close()  # of the serve before a restart
        self.stderr = open(os.path.join(self.dir, "serve.stderr"), "a+")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=self.stderr)
        self.addCleanup(self.kill_serve)
        started = r"event=serve_started port=(\d+)"
        self.wait_for(lambda: re.search(started, self.log_since()) or
                      self.proc.poll() is not None, "serve starts")
        m = re.search(started, self.log_since())
        if not m:
            self.fail("serve exited %d:\n%s" % (self.proc.returncode,
                                                 self.read_logs()))
        self.port = int(m.group(1))
        return self.proc

    def wait_ready(self):
        """Until /readyz says 200: the first sync is committed."""
        self.wait_for(lambda: self.http("GET", "/readyz")[0] == 200,
                      "serve is ready (a successful sync)")

    def kill_serve(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.stderr.closed:
            self.stderr.close()

    def stop_serve(self, sig=signal.SIGTERM):
        """Signals serve and returns its exit code."""
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=DEADLINE)

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_since(self):
        """The log from this serve's start on."""
        try:
            with open(self.log_path, encoding="utf-8") as f:
                f.seek(self.log_mark)
                return f.read()
        except OSError:
            return ""

    def read_logs(self):
        self.stderr.seek(0)
        return self.log_since() + self.stderr.read()

    # -- waiting ---------------------------------------------------------

    def wait_for(self, cond, what, deadline=DEADLINE):
        """Polls cond() until it returns something true; fails with `what`
        and serve's log at the deadline."""
        end = time.monotonic() + deadline
        while True:
            value = cond()
            if value:
                return value
            if time.monotonic() > end:
                self.fail("timed out waiting: %s\n%s" % (what,
                                                          self.read_logs()))
            time.sleep(POLL)

    def wait_outbox_empty(self, what="the outbox is empty"):
        self.wait_for(lambda: self.query(
            "SELECT count(*) FROM outbox WHERE state IN "
            "('pending', 'inflight')") == [(0,)], what)

    # -- HTTP ------------------------------------------------------------

    def http(self, method, path, body=None, headers=None):
        req = urllib.request.Request(
            "http://127.0.0.1:%d%s" % (self.port, path), data=body,
            headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(req, timeout=DEADLINE) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def wa_reply(self, pnid, phone, text=None, payload=None, ts=None):
        """Posts a signed customer message; returns the JSON answer."""
        body = wa_message(pnid, phone, text, payload, ts)
        status, answer = self.http("POST", "/webhooks/whatsapp", body,
                                   {"X-Hub-Signature-256": sign(body),
                                    "Content-Type": "application/json"})
        self.assertEqual(status, 200, answer)
        return json.loads(answer)

    def gate(self, configuration, phone):
        status, answer = self.http(
            "POST", "/v1/gate", json.dumps({
                "configuration": configuration, "phones": [phone]}).encode(),
            {"X-API-Key": API_KEY, "Content-Type": "application/json"})
        self.assertEqual(status, 200, answer)
        return json.loads(answer)[0]

    # -- the emulator ----------------------------------------------------

    def emu_status(self, row_id):
        status, doc = self.emu.control("GET", "admin/number/" + row_id)
        return doc["row"]["status"] if status == 200 else None

    def emu_rows(self, cfg_id, phone):
        _, doc = self.emu.control("GET", "state?table=number")
        return [r for r in doc["numbers"]
                if r.get("configuration") == cfg_id and
                r.get("phone") == phone]

    def register_dv_webhook(self, message="Update"):
        """Points the emulator's Dataverse webhook (async, post-operation,
        with a post image, as README's operations section registers it)
        at serve; returns the endpoint id."""
        status, ep = self.emu.control("POST", "webhooks/endpoints", {
            "name": "optsync", "authtype": "HttpHeader",
            "url": "http://127.0.0.1:%d/webhooks/dataverse" % self.port,
            "authvalue": {"X-Optsync-Key": DV_KEY}})
        self.assertEqual(status, 201, ep)
        for msg in (message,) if isinstance(message, str) else message:
            status, step = self.emu.control("POST", "webhooks/steps", {
                "endpoint": ep["id"], "message": msg, "table": "number",
                "stage": 40, "mode": 1,
                "images": [{"type": "post", "alias": "PostImage"}]
                if msg != "Delete" else []})
            self.assertEqual(status, 201, step)
        return ep["id"]

    # -- the seed ----------------------------------------------------------

    def pick_number(self, cfg, statuses=("single_opt_in", "double_opt_in")):
        """A seeded, active number of `cfg` that is the only row of its
        phone there, with one of `statuses`."""
        return next(
            n for n in self.doc["numbers"]
            if n.get("configuration") == cfg["id"] and
            n.get("expected_e164") and n.get("active", True) and
            n.get("status") in statuses and
            sum(m.get("expected_e164") == n["expected_e164"] and
                m.get("configuration") == cfg["id"]
                for m in self.doc["numbers"]) == 1)

    def cache_status(self, cfg_id, phone):
        rows = self.query("SELECT status FROM numbers WHERE "
                          "configuration_id = ? AND e164 = ? AND active = 1",
                          (cfg_id, phone))
        return rows[0][0] if rows else None
