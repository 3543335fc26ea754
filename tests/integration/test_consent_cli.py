"""Manual consent through the CLI (opt-out, opt-in, pause), the history,
the ledger (verify, tampering, an export verified outside optsync from
the documented byte form), and review of near-misses.

ctest-labels: quick;integration
ctest-timeout: 300
"""

import hashlib
import json
import unittest

from optsync_testlib import OptsyncCase

ZERO = "0" * 64


def byte_form(entry, prev_hash):
    """ledger.h's byte form (version 1), from an exported entry."""
    evidence = json.dumps(entry["evidence"], sort_keys=True,
                          separators=(",", ":"), ensure_ascii=False)
    fields = ["optsync-ledger-v1", str(entry["seq"]), str(entry["at_ms"]),
              entry["configuration_id"], entry["phone"], entry["from"],
              entry["to"], entry["source"], evidence, prev_hash]
    return ("\n".join(fields) + "\n").encode("utf-8")


def verify_export(lines):
    """Recomputes the chain; returns the first broken seq or None."""
    prev = ZERO
    for n, line in enumerate(lines, start=1):
        entry = json.loads(line)
        if entry["seq"] != n:
            return n
        if hashlib.sha256(byte_form(entry, prev)).hexdigest() != \
                entry["hash"]:
            return entry["seq"]
        prev = entry["hash"]
    return None


class ManualConsent(OptsyncCase):

    def setUp(self):
        super().setUp()
        path, self.doc = self.seed(configurations=2, numbers=100)
        self.emulator(seed=path)
        self.sync_ok()
        self.cfg = self.doc["configurations"][0]
        self.number = next(
            n for n in self.doc["numbers"]
            if n.get("configuration") == self.cfg["id"] and
            n.get("expected_e164") and n.get("active", True) and
            n.get("status") in ("single_opt_in", "double_opt_in"))
        self.phone = self.number["expected_e164"]

    def manual(self, verb, *extra):
        return self.optsync(verb, self.phone, "--configuration",
                            self.cfg["name"], *extra)

    def test_opt_out_then_history_and_pending_writeback(self):
        res = self.manual("opt-out", "--source", "customer-service",
                          "--note", "called in", "--json")
        self.assertEqual(res.returncode, 0, res.stderr)
        out = json.loads(res.stdout)
        self.assertEqual((out["outcome"], out["to"]), ("changed", "opted_out"))
        # The second time is no transition.
        again = json.loads(self.manual("opt-out", "--source", "cs",
                                       "--json").stdout)
        self.assertEqual(again["outcome"], "unchanged")
        hist = json.loads(self.manual("history", "--json").stdout)
        self.assertEqual([h["to"] for h in hist][-1], "opted_out")
        self.assertEqual(hist[-1]["source"], "manual")
        self.assertEqual(hist[-1]["evidence"],
                         {"note": "called in", "taken_by": "customer-service"})
        # The first load is a baseline (one ledger entry per page), so the
        # number's own history starts with this opt-out.
        self.assertEqual(len(hist), 1)
        rows = json.loads(self.optsync("numbers", "--configuration",
                                       self.cfg["id"], "--json").stdout)
        mine = [r for r in rows if r["phone"] == self.phone]
        self.assertTrue(mine and all(r["pending_writeback"] for r in mine))
        self.assertTrue(all(r["status"] == "opted_out" for r in mine))
        self.assertEqual(self.query(
            "SELECT count(*) FROM outbox WHERE e164 = ? AND "
            "state = 'pending'", (self.phone,)), [(len(mine),)])

    def test_opt_in_and_pause(self):
        self.manual("opt-out", "--source", "cs")
        res = self.manual("opt-in", "--source", "signed-form")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("opted_out -> single_opt_in", res.stdout)
        res = self.manual("pause", "--until", "7d")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(self.query(
            "SELECT count(*) FROM numbers WHERE e164 = ? AND "
            "paused_until > 0", (self.phone,))[0][0] > 0, True)

    def test_bad_input_is_a_usage_error(self):
        res = self.optsync("opt-out", self.phone, "--configuration",
                           "No Such Configuration", "--source", "cs")
        self.assertEqual(res.returncode, 2)
        self.assertIn("no configuration", res.stderr)
        res = self.optsync("opt-out", "call me", "--configuration",
                           self.cfg["id"], "--source", "cs")
        self.assertEqual(res.returncode, 2)
        self.assertIn("not a usable phone number", res.stderr)
        res = self.optsync("opt-out", self.phone, "--configuration",
                           self.cfg["id"])
        self.assertEqual(res.returncode, 2)
        self.assertIn("--source is required", res.stderr)
        self.assertEqual(self.query("SELECT count(*) FROM outbox"), [(0,)])

    def test_commands_read_only_their_own_secrets(self):
        # An admin's shell without the daemon's secrets: the listener's
        # and the Dataverse client's variables are unset.
        unset = ["-o", "whatsapp.app_secret_env=OPTSYNC_IT_UNSET_APP",
                 "-o", "auth.client_secret_env=OPTSYNC_IT_UNSET_CLIENT"]
        env = {"OPTSYNC_IT_UNSET_APP": "", "OPTSYNC_IT_UNSET_CLIENT": ""}
        for args in (["status"], ["numbers", "--configuration",
                                  self.cfg["id"]],
                     ["gate", "--configuration", self.cfg["id"], self.phone],
                     ["history", self.phone, "--configuration",
                      self.cfg["id"]],
                     ["review"], ["ledger", "verify"]):
            res = self.optsync(*args, extra_overrides=unset, env=env)
            self.assertIn(res.returncode, (0, 1), " ".join(args) + ":\n" +
                          res.stderr)
            self.assertNotIn("OPTSYNC_IT_UNSET", res.stderr)
        # sync needs the Dataverse credential, not the listener's secret.
        res = self.optsync("sync", extra_overrides=unset, env=env)
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn("OPTSYNC_IT_UNSET_CLIENT", res.stderr)
        self.assertNotIn("OPTSYNC_IT_UNSET_APP", res.stderr)
        # check-config checks every secret and says who reads which.
        res = self.optsync("check-config", extra_overrides=unset, env=env)
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn("OPTSYNC_IT_UNSET_CLIENT", res.stderr)
        self.assertIn("OPTSYNC_IT_UNSET_APP", res.stderr)
        res = self.optsync("check-config")
        self.assertRegex(res.stdout, r"\[auth\] client_secret +sync")

    def test_ledger_export_verifies_outside_optsync(self):
        # Changes in Dynamics after the first load are ledgered row by row.
        changed = [n for n in self.doc["numbers"]
                   if n.get("configuration") and n.get("expected_e164") and
                   n.get("active", True)][:20]
        for n in changed:
            status, _ = self.emu.control("PATCH", "admin/number/" + n["id"],
                                         {"status": "opted_out"
                                          if n.get("status") != "opted_out"
                                          else "single_opt_in"})
            self.assertEqual(status, 200)
        self.sync_ok()
        self.manual("opt-out", "--source", "cs", "--note", "Grüße \"x\"")
        res = self.optsync("ledger", "export")
        self.assertEqual(res.returncode, 0, res.stderr)
        lines = res.stdout.splitlines()
        entries = [json.loads(l) for l in lines]
        baseline = [e for e in entries
                    if e["evidence"].get("kind") == "baseline"]
        self.assertEqual(len(baseline), 1)
        self.assertEqual(baseline[0]["evidence"]["rows"],
                         sum(1 for n in self.doc["numbers"]
                             if n.get("configuration")))
        self.assertGreaterEqual(len(entries), 1 + 1)
        self.assertGreaterEqual(sum(1 for e in entries
                                    if e["source"] == "dataverse" and
                                    e["phone"] != "*"), 15)
        self.assertIsNone(verify_export(lines))
        # --since filters by event time.
        since = self.optsync("ledger", "export", "--since",
                             "2100-01-01T00:00:00Z")
        self.assertEqual(since.stdout, "")

    def test_tampering_is_found(self):
        self.manual("opt-out", "--source", "cs")
        self.assertEqual(self.optsync("ledger", "verify").returncode, 0)
        seq = self.query("SELECT max(seq) FROM ledger")[0][0]
        import sqlite3
        db = sqlite3.connect(self.cache_path)
        db.execute("UPDATE ledger SET to_status = 1 WHERE seq = ?", (seq,))
        db.commit()
        db.close()
        res = self.optsync("ledger", "verify")
        self.assertEqual(res.returncode, 1)
        self.assertIn("broken at entry %d" % seq, res.stdout)
        lines = self.optsync("ledger", "export").stdout.splitlines()
        self.assertEqual(verify_export(lines), seq)

    def test_review_lists_and_marks_near_misses(self):
        import sqlite3
        db = sqlite3.connect(self.cache_path)
        db.execute("INSERT INTO near_misses(at, configuration_id, phone, "
                   "text, message_id) VALUES (1767225600000, ?, ?, "
                   "'please stop sending these', 'wamid.N')",
                   (self.cfg["id"], self.phone))
        db.commit()
        db.close()
        listed = json.loads(self.optsync("review", "--json").stdout)
        self.assertEqual([r["text"] for r in listed],
                         ["please stop sending these"])
        done = self.optsync("review", "--done", str(listed[0]["id"]))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(json.loads(self.optsync("review", "--json").stdout),
                         [])
        self.assertEqual(self.optsync("review", "--done",
                                      str(listed[0]["id"])).returncode, 2)


if __name__ == "__main__":
    unittest.main()
