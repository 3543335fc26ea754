"""Write-back through the CLI, without a daemon: `optsync outbox flush`,
`optsync sync` writing back after a successful sync, `optsync outbox list`
and `retry` for dead letters, `optsync status`, and echo suppression (our
own write coming back through the next delta is no ledger entry).

ctest-labels: quick;integration
ctest-timeout: 300
"""

import json
import unittest

from optsync_testlib import OptsyncCase

NEW_PHONE = "+4915123456799"


class OutboxCli(OptsyncCase):

    def setUp(self):
        super().setUp()
        path, self.doc = self.seed(configurations=2, numbers=60)
        self.emulator(seed=path)
        self.sync_ok()
        self.cfg = self.doc["configurations"][0]
        self.other = self.doc["configurations"][1]
        self.number = next(
            n for n in self.doc["numbers"]
            if n.get("configuration") == self.cfg["id"] and
            n.get("expected_e164") and n.get("active", True) and
            n.get("status") in ("single_opt_in", "double_opt_in") and
            sum(m.get("expected_e164") == n["expected_e164"] and
                m.get("configuration") == self.cfg["id"]
                for m in self.doc["numbers"]) == 1)
        self.phone = self.number["expected_e164"]

    def manual(self, verb, phone, cfg):
        res = self.optsync(verb, phone, "--configuration", cfg["id"],
                           "--source", "customer-service")
        self.assertEqual(res.returncode, 0, res.stderr)

    def emu_row(self, row_id):
        status, doc = self.emu.control("GET", "admin/number/" + row_id)
        self.assertEqual(status, 200)
        return doc["row"]

    def emu_rows(self, cfg_id, phone):
        _, doc = self.emu.control("GET", "state?table=number")
        return [r for r in doc["numbers"]
                if r.get("configuration") == cfg_id and
                r.get("phone") == phone]

    def outbox(self, *args, **kw):
        return self.optsync("outbox", *args, **kw)

    def listed(self, *args):
        res = self.outbox("list", "--json", *args)
        self.assertEqual(res.returncode, 0, res.stderr)
        return json.loads(res.stdout)

    def test_flush_writes_back_and_the_echo_is_no_transition(self):
        self.manual("opt-out", self.phone, self.cfg)
        self.manual("opt-in", NEW_PHONE, self.cfg)
        pending = self.listed()
        self.assertEqual(sorted(r["state"] for r in pending),
                         ["pending", "pending"])
        self.assertEqual({r["kind"] for r in pending}, {"dataverse"})
        res = self.outbox("flush")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("write-back: 2 written", res.stdout)
        self.assertIn("1 requests", res.stdout)  # one $batch
        self.assertEqual(self.emu_row(self.number["id"])["status"],
                         "opted_out")
        created = self.emu_rows(self.cfg["id"], NEW_PHONE)
        self.assertEqual(len(created), 1)
        self.assertEqual(created[0]["status"], "single_opt_in")
        self.assertEqual(self.listed(), [])
        self.assertEqual(len(self.listed("--state", "done")), 2)
        # Echo suppression: the delta brings both rows back unchanged.
        ledger = self.query("SELECT count FROM ledger_head")
        again = self.sync_ok()
        self.assertNotIn("write-back:", again.stdout)
        self.assertEqual(self.query("SELECT count FROM ledger_head"), ledger)
        self.assertEqual(self.query(
            "SELECT count(*) FROM numbers WHERE e164 = ?", (NEW_PHONE,)),
            [(1,)])
        verify = self.optsync("ledger", "verify")
        self.assertEqual(verify.returncode, 0, verify.stdout)
        # Nothing left: one more flush sends nothing.
        before = self.counters()["requests"]
        res = self.outbox("flush")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("0 requests", res.stdout)
        self.assertEqual(self.counters()["requests"].get("batch"),
                         before.get("batch"))

    def test_sync_writes_back_after_a_successful_sync(self):
        self.manual("opt-out", self.phone, self.cfg)
        res = self.optsync("sync", "--no-writeback")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(len(self.listed("--state", "pending")), 1)
        res = self.sync_ok()
        self.assertIn("write-back: 1 written", res.stdout)
        self.assertEqual(self.emu_row(self.number["id"])["status"],
                         "opted_out")
        self.assertEqual(self.query(
            "SELECT pending_writeback, dv_status FROM numbers "
            "WHERE dv_id = ?", (self.number["id"],)), [(0, 3)])

    def test_dead_letter_listed_in_status_and_retried(self):
        self.manual("opt-in", NEW_PHONE, self.other)
        # The Configuration is deleted in Dynamics: the create cannot
        # bind to it (404), which no retry can fix.
        status, _ = self.emu.control(
            "DELETE", "admin/configuration/" + self.other["id"])
        self.assertEqual(status, 200)
        res = self.outbox("flush")
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn("1 dead", res.stdout)
        dead = self.listed("--state", "dead")
        self.assertEqual(len(dead), 1)
        self.assertEqual(dead[0]["phone"], NEW_PHONE)
        self.assertIn("HTTP 404 (0x80040217)", dead[0]["last_error"])
        text = self.outbox("list")
        self.assertIn("dead", text.stdout)
        status = json.loads(self.optsync("status", "--json").stdout)
        self.assertEqual(status["outbox"], {"pending": 0, "dead": 1})
        self.assertIn("1 dead", self.optsync("status").stdout)
        # Not a dead letter: nothing retried (exit 1); usage errors: 2.
        self.assertEqual(self.outbox("retry", "99999").returncode, 1)
        self.assertEqual(self.outbox("retry").returncode, 2)
        self.assertEqual(self.outbox("retry", "x").returncode, 2)
        self.assertEqual(self.outbox("frobnicate").returncode, 2)
        # The admin restores the Configuration; the operator retries.
        status, _ = self.emu.control(
            "POST", "admin/configuration",
            {"id": self.other["id"], "name": self.other["name"]})
        self.assertEqual(status, 201)
        res = self.outbox("retry", str(dead[0]["id"]))
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(len(self.listed("--state", "pending")), 1)
        res = self.outbox("flush")
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertEqual(len(self.emu_rows(self.other["id"], NEW_PHONE)), 1)
        self.assertEqual(self.outbox("retry", "--all").returncode, 1)

    def test_flush_fails_closed_on_refused_credentials(self):
        self.manual("opt-out", self.phone, self.cfg)
        res = self.outbox("flush", extra_overrides=[
            "-o", "auth.client_secret=wrong"])
        self.assertEqual(res.returncode, 3, res.stdout + res.stderr)
        # Nothing was lost or spent: the row waits, no attempt counted.
        rows = self.listed("--state", "pending")
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]["attempts"], 0)

    def test_help(self):
        res = self.outbox("--help")
        self.assertEqual(res.returncode, 0)
        for word in ("list", "retry", "flush", "Exit codes"):
            self.assertIn(word, res.stdout)


if __name__ == "__main__":
    unittest.main()
