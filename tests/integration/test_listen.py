"""`optsync listen` as a process: a synced cache served over HTTP, the
gate API answering as `optsync gate --json` does, readiness, SIGTERM and
SIGINT ending it with exit 0 after answering, and its documented exit
codes for a bad TLS file (2) and a port already taken (4).  The webhook
routes with the secrets of config/optsync.ini: a signed WhatsApp STOP
seen at once by `optsync gate` (another process) and `optsync history`,
a wrong signature refused, a Dataverse hint queued.

ctest-labels: quick;integration
"""

import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import time
import unittest
import urllib.error
import urllib.request

from optsync_testlib import OptsyncCase

KEY = "listen-test-key-0123456789"
# config/optsync.ini's [whatsapp] app_secret and [dataverse_webhook] key
WA_SECRET = b"optsync-demo-app-secret"
DV_KEY = "optsync-demo-webhook-key"
DEADLINE = 60  # seconds; a guard against hangs, never a timing check


class ListenTest(OptsyncCase):

    def start_listen(self, *extra):
        log_path = os.path.join(self.dir, "listen.log")
        self.log = open(log_path, "w+")
        cmd = self.command("listen", extra_overrides=[
            "-o", "listener.port=0", "-o", "listener.api_key=" + KEY,
            *extra])
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=self.log)
        self.addCleanup(self.stop_listen)
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            self.log.seek(0)
            m = re.search(r"event=listening .*port=(\d+)", self.log.read())
            if m:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)  # polling the log for a line, not a sleep-sync
        self.log.seek(0)
        self.fail("optsync listen did not start:\n" + self.log.read())

    def stop_listen(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def http(self, path, key=KEY, body=None):
        req = urllib.request.Request(
            "http://127.0.0.1:%d%s" % (self.port, path),
            data=json.dumps(body).encode() if body is not None else None,
            headers={"X-API-Key": key} if key else {})
        try:
            with urllib.request.urlopen(req, timeout=DEADLINE) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def test_serves_the_synced_cache_and_stops_on_sigterm(self):
        path, _ = self.seed(configurations=2, numbers=60)
        self.emulator(seed=path)
        self.sync_ok()
        conf = self.query("SELECT id, name FROM configurations "
                          "ORDER BY name LIMIT 1")[0]
        phones = [r[0] for r in self.query(
            "SELECT raw_phone FROM numbers WHERE configuration_id = ? "
            "ORDER BY local_id LIMIT 12", (conf[0],))] + ["not a phone"]
        self.start_listen()

        status, body = self.http("/readyz", key=None)
        self.assertEqual(status, 200, body)
        status, _ = self.http("/v1/gate", key=None,
                              body={"configuration": conf[1], "phones": []})
        self.assertEqual(status, 401)
        status, body = self.http("/v1/gate", body={
            "configuration": conf[1], "phones": phones})
        self.assertEqual(status, 200, body)
        cli = self.optsync("gate", "--configuration", conf[1], "--json",
                           *phones)
        self.assertIn(cli.returncode, (0, 1), cli.stderr)
        self.assertEqual(json.loads(body), json.loads(cli.stdout))

        status, body = self.http("/v1/configurations/%s/numbers?limit=1000"
                                 % conf[0])
        self.assertEqual(status, 200, body)
        listed = json.loads(body)["numbers"]
        cli = self.optsync("numbers", "--configuration", conf[0], "--json")
        self.assertEqual(sorted(json.dumps(n, sort_keys=True)
                                for n in listed),
                         sorted(json.dumps(n, sort_keys=True)
                                for n in json.loads(cli.stdout)))

        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=DEADLINE), 0)
        self.log.seek(0)
        self.assertIn("event=listener_stopped", self.log.read())

    def post(self, path, body, headers):
        req = urllib.request.Request(
            "http://127.0.0.1:%d%s" % (self.port, path), data=body,
            headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=DEADLINE) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def test_webhooks(self):
        path, _ = self.seed(configurations=2, numbers=60)
        self.emulator(seed=path)
        self.sync_ok()
        conf, pnid, phone = self.query(
            "SELECT c.id, c.phone_number_id, n.e164 FROM configurations c "
            "JOIN numbers n ON n.configuration_id = c.id WHERE "
            "c.phone_number_id IS NOT NULL AND n.e164 IS NOT NULL AND "
            "n.status IN (1, 2) AND n.active = 1 AND NOT EXISTS (SELECT 1 "
            "FROM numbers o WHERE o.e164 = n.e164 AND o.configuration_id = "
            "c.id AND o.status = 3) ORDER BY n.local_id LIMIT 1")[0]
        self.start_listen()
        body = json.dumps({
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"phone_number_id": pnid},
                "contacts": [{"wa_id": phone[1:]}],
                "messages": [{"from": phone[1:], "id": "wamid.listen1",
                              "timestamp": str(int(time.time())),
                              "type": "text", "text": {"body": "STOP"}}]}}]}],
        }).encode()
        sig = "sha256=" + hmac.new(WA_SECRET, body, hashlib.sha256).hexdigest()
        status, answer = self.post("/webhooks/whatsapp", body,
                                   {"X-Hub-Signature-256": "sha256=" +
                                    "0" * 64})
        self.assertEqual(status, 401, answer)
        status, answer = self.post("/webhooks/whatsapp", body,
                                   {"X-Hub-Signature-256": sig})
        self.assertEqual(status, 200, answer)
        self.assertEqual(json.loads(answer)["transitions"], 1)
        # committed before the 200: another process sees it now
        res = self.optsync("gate", "--json", "--configuration", conf, phone)
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertEqual(json.loads(res.stdout)[0]["reason"], "opted_out")
        res = self.optsync("history", "--json", "--configuration", conf,
                           phone)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(json.loads(res.stdout)[-1]["source"], "whatsapp")
        with open(os.path.join(os.environ["OPTSYNC_SOURCE_DIR"], "tests",
                               "data", "dv_webhook",
                               "number_update_async.json"), "rb") as f:
            dv_body = f.read()
        status, answer = self.post("/webhooks/dataverse", dv_body,
                                   {"X-Optsync-Key": DV_KEY + "x"})
        self.assertEqual(status, 401, answer)
        status, answer = self.post("/webhooks/dataverse", dv_body,
                                   {"X-Optsync-Key": DV_KEY,
                                    "Content-Type": "application/json"})
        self.assertEqual(status, 200, answer)
        self.assertEqual(json.loads(answer)["outcome"], "queued")
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=DEADLINE), 0)
        self.log.seek(0)
        log = self.log.read()
        self.assertIn("event=whatsapp_delivery result=applied", log)
        self.assertNotIn(WA_SECRET.decode(), log)

    def test_sigint_exits_zero(self):
        self.start_listen()
        self.assertEqual(self.http("/healthz", key=None)[0], 200)
        status, body = self.http("/readyz", key=None)
        self.assertEqual(status, 503)
        self.assertEqual(json.loads(body)["reason"], "never_synced")
        self.proc.send_signal(signal.SIGINT)
        self.assertEqual(self.proc.wait(timeout=DEADLINE), 0)

    def test_exit_codes(self):
        res = self.optsync("listen", "--help")
        self.assertEqual(res.returncode, 0)
        self.assertIn("SIGTERM", res.stdout)
        res = self.optsync("listen", extra_overrides=[
            "-o", "listener.port=0",
            "-o", "listener.tls_cert=" + os.path.join(self.dir, "none.pem"),
            "-o", "listener.tls_key=" + os.path.join(self.dir, "none.pem")],
            timeout=DEADLINE)
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn("tls_cert", res.stderr)
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        try:
            res = self.optsync("listen", extra_overrides=[
                "-o", "listener.port=%d" % taken.getsockname()[1]],
                timeout=DEADLINE)
        finally:
            taken.close()
        self.assertEqual(res.returncode, 4, res.stderr)


if __name__ == "__main__":
    unittest.main()
