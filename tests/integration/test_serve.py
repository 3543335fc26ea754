"""`optsync serve` end to end: the emulator with seed data, serve on a
free port, signed WhatsApp deliveries and the emulator's Dataverse webhook
over real HTTP.  A STOP denies at once and becomes Opted-Out on the right
row in Dynamics; a Subscribe from an unknown number becomes a new row
under its Configuration; double opt-in ends in Double Opt-In; an admin
edit reaches the cache through the webhook and, with the webhook off,
through the next poll; an admin edit racing a reply is settled by the
rule (with a corrective write-back when the reply wins); readiness
follows the sync; SIGTERM exits 0 with every answered reply committed;
SIGHUP reopens the log; the exit codes of a bad start.

ctest-labels: quick;integration
ctest-timeout: 600
"""

import fcntl
import json
import os
import signal
import socket
import threading
import time
import unittest

from serve_testlib import DEADLINE, ServeCase

UNKNOWN = "+4915123457001"


class ServeEndToEnd(ServeCase):

    def setUp(self):
        super().setUp()
        self.start_emulator(numbers=60)
        self.cfg = next(c for c in self.doc["configurations"]
                        if not c["double_opt_in"])
        self.doi = next(c for c in self.doc["configurations"]
                        if c["double_opt_in"])

    def test_stop_and_subscribe_reach_dynamics(self):
        n = self.pick_number(self.cfg)
        phone = n["expected_e164"]
        self.start_serve()
        self.wait_ready()
        self.assertEqual(self.gate(self.cfg["id"], phone)["decision"],
                         "allow")
        answer = self.wa_reply(self.cfg["phone_number_id"], phone, "STOP")
        self.assertEqual(answer["transitions"], 1)
        # The gate changed before the 200 went out.
        decision = self.gate(self.cfg["id"], phone)
        self.assertEqual((decision["decision"], decision["reason"]),
                         ("deny", "opted_out"))
        self.wait_for(lambda: self.emu_status(n["id"]) == "opted_out",
                      "the opt-out reaches the row in Dynamics")
        _, doc = self.emu.control("GET", "admin/number/" + n["id"])
        self.assertEqual(doc["row"]["configuration"], self.cfg["id"])
        # Subscribe from a number Dynamics does not know: a new row under
        # the Configuration (its Related view).
        self.wa_reply(self.cfg["phone_number_id"], UNKNOWN, "Subscribe")
        self.assertEqual(self.gate(self.cfg["id"], UNKNOWN)["decision"],
                         "allow")
        rows = self.wait_for(lambda: self.emu_rows(self.cfg["id"], UNKNOWN),
                             "a new row under the Configuration")
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]["status"], "single_opt_in")
        self.wait_outbox_empty()
        self.assertEqual(len(self.emu_rows(self.cfg["id"], UNKNOWN)), 1)
        self.assertEqual(self.emu_rows(self.doi["id"], UNKNOWN), [])
        self.assertEqual(self.stop_serve(), 0)
        log = self.log_since()
        self.assertIn("event=serve_sync_done mode=full", log)
        self.assertIn("event=serve_stopped", log)
        self.assertNotIn(WA_SECRET_TEXT, log)

    def test_double_opt_in_ends_in_double_opt_in(self):
        self.start_serve()
        self.wait_ready()
        pnid = self.doi["phone_number_id"]
        phone = "+447700900123"
        self.wa_reply(pnid, phone, "Subscribe")
        rows = self.wait_for(lambda: self.emu_rows(self.doi["id"], phone),
                             "the single opt-in reaches Dynamics")
        self.assertEqual(rows[0]["status"], "single_opt_in")
        answer = self.wa_reply(pnid, phone, "Yes", payload="DOI_CONFIRM")
        self.assertEqual(answer["transitions"], 1)
        self.assertEqual(self.gate(self.doi["id"], phone)["status"],
                         "double_opt_in")
        self.wait_for(lambda: [r["status"] for r in self.emu_rows(
            self.doi["id"], phone)] == ["double_opt_in"],
            "Double Opt-In on the one row in Dynamics")

    def test_admin_edit_through_the_webhook_then_the_poll(self):
        n = self.pick_number(self.cfg)
        phone = n["expected_e164"]
        # A long interval: only the webhook can bring the first edit.
        self.start_serve("-o", "sync.interval=1h")
        self.wait_for(lambda: self.cache_status(self.cfg["id"], phone),
                      "the first sync")
        endpoint = self.register_dv_webhook()
        status, _ = self.emu.control("PATCH", "admin/number/" + n["id"],
                                     {"status": "opted_out"})
        self.assertEqual(status, 200)
        self.wait_for(lambda: self.cache_status(self.cfg["id"], phone) == 3,
                      "the admin's opt-out arrives through the webhook")
        self.assertEqual(self.gate(self.cfg["id"], phone)["decision"],
                         "deny")
        self.assertEqual(self.stop_serve(), 0)
        # The webhook off, a short interval: the poll brings the next one.
        status, _ = self.emu.control("DELETE",
                                     "webhooks/endpoints/%s" % endpoint)
        self.assertEqual(status, 200)
        self.start_serve("-o", "sync.interval=1s")
        status, _ = self.emu.control("PATCH", "admin/number/" + n["id"],
                                     {"status": "double_opt_in"})
        self.assertEqual(status, 200)
        self.wait_for(lambda: self.cache_status(self.cfg["id"], phone) == 2,
                      "the admin's opt-in arrives with the next poll")
        self.assertEqual(self.gate(self.cfg["id"], phone)["decision"],
                         "allow")

    def race(self, values, stop_at):
        """A STOP dated `stop_at` while an admin saves the row with
        `values`: the admin's save lands between serve's read and its
        write (412), dated when it lands (whole seconds, as the STOP)."""
        n = self.pick_number(self.cfg)
        phone = n["expected_e164"]
        self.start_serve("-o", "sync.interval=1h")
        self.wait_for(lambda: self.cache_status(self.cfg["id"], phone),
                      "the first sync")
        status, _ = self.emu.control("POST", "faults", {
            "type": "admin_edit", "table": "number", "id": n["id"],
            "values": values})
        self.assertEqual(status, 201)
        self.wa_reply(self.cfg["phone_number_id"], phone, "STOP",
                      ts=stop_at)
        self.wait_outbox_empty("the conflict is settled")
        self.wait_for(lambda: "conflict" in self.log_since(),
                      "the 412 is logged")
        return n, phone

    def test_admin_edit_racing_a_reply_older_opt_in_loses(self):
        # The STOP is the newer expression (dated a minute after the
        # admin's save, so whole-second stamps cannot tie): it stands, and
        # serve writes it again over the admin's opt-in (corrective).
        n, phone = self.race({"status": "single_opt_in"},
                             stop_at=time.time() + 60)
        self.wait_for(lambda: self.emu_status(n["id"]) == "opted_out",
                      "the corrective write-back")
        self.assertEqual(self.cache_status(self.cfg["id"], phone), 3)

    def test_admin_edit_racing_a_reply_newer_opt_in_wins(self):
        # The STOP was sent a minute before the admin saved the row (a
        # delivery Meta retried): the admin's newer opt-in wins, the cache
        # follows Dynamics and nothing is written over it.
        n, phone = self.race({"status": "double_opt_in"},
                             stop_at=time.time() - 60)
        self.wait_for(lambda: self.cache_status(self.cfg["id"], phone) == 2,
                      "the cache follows the admin")
        self.assertEqual(self.emu_status(n["id"]), "double_opt_in")
        self.assertEqual(self.gate(self.cfg["id"], phone)["decision"],
                         "allow")

    def test_sigterm_exits_zero_with_every_answered_reply_committed(self):
        self.start_serve()
        pnid = self.cfg["phone_number_id"]
        phones = ["+491512345%04d" % (7000 + i) for i in range(40)]
        answered = []

        def send(chunk):
            for p in chunk:
                try:
                    self.wa_reply(pnid, p, "Subscribe")
                    answered.append(p)
                except (AssertionError, OSError):
                    return  # refused or cut off while stopping: not ours

        threads = [threading.Thread(target=send, args=(phones[i::4],))
                   for i in range(4)]
        for t in threads:
            t.start()
        self.wait_for(lambda: len(answered) >= 8, "replies are answered")
        self.assertEqual(self.stop_serve(signal.SIGTERM), 0)
        for t in threads:
            t.join(DEADLINE)
        log = self.log_since()
        self.assertIn("event=serve_stopping signal=TERM", log)
        self.assertIn("event=listener_stopped", log)
        self.assertIn("event=outbox_stopped", log)
        for p in answered:  # a 200 means committed: applied, or
            # quarantined when it came before serve's first sync knew the
            # Configuration (replayed after the next sync)
            quarantined = self.query(
                "SELECT count(*) FROM quarantine WHERE resolved_at IS NULL "
                "AND json_extract(payload, '$.e164') = ?", (p,))[0][0]
            self.assertTrue(self.cache_status(self.cfg["id"], p) == 1 or
                            quarantined == 1, p)
        # What was not yet written back goes out after a restart.
        self.start_serve()
        self.wait_for(lambda: all(self.cache_status(self.cfg["id"], p) == 1
                                  for p in answered),
                      "every answered reply applied")
        self.wait_outbox_empty()
        for p in answered:
            self.assertEqual(len(self.emu_rows(self.cfg["id"], p)), 1, p)
        self.assertEqual(self.stop_serve(signal.SIGINT), 0)

    def test_sigterm_while_a_write_is_on_the_wire(self):
        n = self.pick_number(self.cfg)
        self.start_serve()
        self.wait_ready()
        status, out = self.emu.control("POST", "faults", {
            "type": "hold", "match": {"kind": ["batch", "write"]}})
        self.assertEqual(status, 201)
        hold = out["faults"][0]["id"]
        self.wa_reply(self.cfg["phone_number_id"], n["expected_e164"],
                      "STOP")
        self.emu.wait(condition="held", fault=hold, timeout=DEADLINE)
        # The stop does not wait for Dynamics' answer.
        self.assertEqual(self.stop_serve(), 0)
        self.assertIn("event=outbox_stopped", self.log_since())
        self.emu.control("DELETE", "faults")
        self.emu.control("POST", "release", {"fault": hold})
        self.start_serve()
        self.wait_outbox_empty()
        self.assertEqual(self.emu_status(n["id"]), "opted_out")
        self.assertEqual(self.cache_status(self.cfg["id"],
                                           n["expected_e164"]), 3)

    def test_sigterm_while_a_sync_is_on_the_wire(self):
        self.start_serve()
        self.wait_ready()
        status, out = self.emu.control("POST", "faults", {
            "type": "hold", "match": {"kind": "delta"}})
        self.assertEqual(status, 201)
        self.emu.wait(condition="held", fault=out["faults"][0]["id"],
                      timeout=DEADLINE)
        self.assertEqual(self.stop_serve(), 0)
        self.assertIn("event=serve_sync_interrupted", self.log_since())
        self.emu.control("DELETE", "faults")

    def test_another_writer_holds_the_outbox_then_serve_takes_over(self):
        # `optsync outbox flush` (or a second serve) holds the outbox lock:
        # serve answers and gates as ever, and writes back once it is free.
        lock = open(self.cache_path + ".outbox.lock", "a+")
        self.addCleanup(lock.close)
        fcntl.flock(lock, fcntl.LOCK_EX)
        n = self.pick_number(self.cfg)
        self.start_serve()
        self.wait_ready()
        self.wait_for(lambda: "event=serve_outbox_waiting" in
                      self.log_since(), "serve says who holds the lock")
        self.wa_reply(self.cfg["phone_number_id"], n["expected_e164"],
                      "STOP")
        self.assertEqual(self.gate(self.cfg["id"], n["expected_e164"])
                         ["decision"], "deny")
        self.assertEqual(self.query("SELECT count(*) FROM outbox WHERE "
                                    "state = 'pending'"), [(1,)])
        fcntl.flock(lock, fcntl.LOCK_UN)
        self.wait_for(lambda: self.emu_status(n["id"]) == "opted_out",
                      "serve writes back once the lock is free")
        self.assertEqual(self.stop_serve(), 0)

    def test_sighup_reopens_the_log(self):
        self.start_serve()
        rotated = self.log_path + ".1"
        os.rename(self.log_path, rotated)
        self.proc.send_signal(signal.SIGHUP)
        self.wait_for(lambda: os.path.exists(self.log_path),
                      "a new log file")
        self.log_mark = 0
        self.wait_for(lambda: "event=log_reopened" in self.log_since(),
                      "the reopen is logged in the new file")
        self.assertEqual(self.http("GET", "/healthz")[0], 200)
        self.assertEqual(self.stop_serve(), 0)
        self.assertIn("event=serve_stopped", self.log_since())
        with open(rotated, encoding="utf-8") as f:
            old = f.read()
        self.assertIn("event=serve_started", old)
        self.assertNotIn("event=serve_stopped", old)

    def test_readiness_follows_the_sync(self):
        # Dynamics refuses every read: serve runs, but is not ready.
        status, _ = self.emu.control("POST", "faults", {
            "type": "status", "status": 400,
            "match": {"kind": ["query", "track", "delta"]}})
        self.assertEqual(status, 201)
        self.start_serve()
        self.wait_for(lambda: "event=serve_sync_failed" in self.log_since(),
                      "the failed sync is logged")
        status, body = self.http("GET", "/readyz")
        self.assertEqual(status, 503, body)
        self.assertEqual(json.loads(body)["reason"], "never_synced")
        self.assertEqual(self.http("GET", "/healthz")[0], 200)
        self.emu.control("DELETE", "faults")
        self.wait_for(lambda: self.http("GET", "/readyz")[0] == 200,
                      "ready after the next successful sync")

    def test_help_and_exit_codes(self):
        res = self.optsync("serve", "--help")
        self.assertEqual(res.returncode, 0)
        for word in ("SIGTERM", "SIGHUP", "/readyz", "Exit codes"):
            self.assertIn(word, res.stdout)
        self.assertEqual(self.optsync("serve", "extra").returncode, 2)
        res = self.optsync("serve", extra_overrides=[
            "-o", "listener.port=0",
            "-o", "log.file=" + os.path.join(self.dir, "no", "such.log")],
            timeout=DEADLINE)
        self.assertEqual(res.returncode, 2, res.stderr)
        res = self.optsync("serve", extra_overrides=[
            "-o", "listener.port=0", "-o", "auth.client_secret=wrong"],
            timeout=DEADLINE)
        self.assertEqual(res.returncode, 3, res.stderr)
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        try:
            res = self.optsync("serve", extra_overrides=[
                "-o", "listener.port=%d" % taken.getsockname()[1]],
                timeout=DEADLINE)
        finally:
            taken.close()
        self.assertEqual(res.returncode, 4, res.stderr)


WA_SECRET_TEXT = "optsync-demo-app-secret"

if __name__ == "__main__":
    unittest.main()
