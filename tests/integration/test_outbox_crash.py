"""Crash sweep of the write-back (after isync's run-tests.pl): 60 local
changes (30 rows Dynamics has, 30 numbers it does not) written back in
three $batch requests, and `optsync outbox flush` killed at every step
of every batch: right after the claim is committed, after the answer
arrived but before it is committed, right after it is committed
(--test-stop-after N, exit 99), and with kill -9 while the emulator holds
a batch request (which then commits in the emulator with nobody
listening).  Each time a second flush must finish the job and leave: no
number lost (every change is in the emulator), no row duplicated (one
row per number and Configuration), nothing pending, inflight or dead, and
one more flush sends nothing.

ctest-labels: full;integration
ctest-timeout: 900
"""

import os
import shutil
import signal
import subprocess
import unittest

from optsync_testlib import OptsyncCase

BATCH = 25
EXISTING = 30
NEW = 30
STEPS_PER_BATCH = 3  # claim committed, answer received, answer committed


class OutboxCrashSweep(OptsyncCase):

    def setUp(self):
        super().setUp()
        self.seed_path, self.doc = self.seed(configurations=2, numbers=120)
        self.emulator(seed=self.seed_path)
        self.sync_ok()
        self.cfg = self.doc["configurations"][0]["id"]
        self.changes = {}  # (configuration, e164) -> expected status
        seen = set()
        for n in self.doc["numbers"]:
            e164 = n.get("expected_e164")
            if (n.get("configuration") != self.cfg or not e164 or
                    not n.get("active", True) or e164 in seen or
                    n.get("status") == "opted_out"):
                continue
            seen.add(e164)
            if len(self.changes) < EXISTING:
                self.changes[(self.cfg, e164)] = "opted_out"
        for i in range(NEW):
            self.changes[(self.cfg, "+491512345%04d" % (6000 + i))] = \
                "opted_out"
        for (cfg, e164) in self.changes:
            res = self.optsync("opt-out", e164, "--configuration", cfg,
                               "--source", "crash-test")
            self.assertEqual(res.returncode, 0, res.stderr)
        # The prepared cache: every scenario starts from a copy.
        self.prepared = os.path.join(self.dir, "prepared")
        os.mkdir(self.prepared)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.cache_path + suffix):
                shutil.copy(self.cache_path + suffix, self.prepared)

    def fresh(self):
        """A fresh emulator (the seed) and the prepared cache."""
        self.emu.stop()
        self.emu.cleanup()
        for suffix in ("", "-wal", "-shm"):
            for path in (self.cache_path + suffix,):
                if os.path.exists(path):
                    os.unlink(path)
            src = os.path.join(self.prepared,
                               os.path.basename(self.cache_path) + suffix)
            if os.path.exists(src):
                shutil.copy(src, self.cache_path + suffix)
        self.emulator(seed=self.seed_path)

    def flush(self, *args):
        return self.optsync("outbox", "flush", "--wait", "60s", *args,
                            extra_overrides=[
                                "-o", "outbox.batch_size=%d" % BATCH,
                                "-o", "outbox.max_backoff=1s"])

    def check_converged(self):
        res = self.flush()
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        _, state = self.emu.control("GET", "state?table=number")
        by_number = {}
        for row in state["numbers"]:
            key = (row.get("configuration"), row.get("phone"))
            by_number.setdefault(key, []).append(row)
        for (cfg, e164), status in self.changes.items():
            # Rows Dynamics had keep their typed phone: find them by id.
            rows = by_number.get((cfg, e164), [])
            ids = [r[0] for r in self.query(
                "SELECT dv_id FROM numbers WHERE configuration_id = ? AND "
                "e164 = ?", (cfg, e164))]
            self.assertTrue(ids and all(ids), (e164, ids))
            for row_id in ids:
                st, doc = self.emu.control("GET", "admin/number/" + row_id)
                self.assertEqual(st, 200, (e164, row_id))
                self.assertEqual(doc["row"]["status"], status, e164)
            self.assertLessEqual(len(rows), 1, "duplicated: %s" % e164)
        created = [k for k, v in by_number.items() if k[1] and
                   k[1].startswith("+4915123456") and len(v) > 1]
        self.assertEqual(created, [])
        self.assertEqual(self.query(
            "SELECT count(*) FROM outbox WHERE state IN "
            "('pending', 'inflight', 'dead')"), [(0,)])
        self.assertEqual(self.query(
            "SELECT count(*) FROM numbers WHERE pending_writeback = 1"),
            [(0,)])
        verify = self.optsync("ledger", "verify")
        self.assertEqual(verify.returncode, 0, verify.stdout)
        self.assert_no_violations()
        # One more run changes nothing and sends nothing.
        before = self.counters()["requests"].get("batch", 0)
        res = self.flush()
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("0 requests", res.stdout)
        self.assertEqual(self.counters()["requests"].get("batch", 0), before)

    def test_stop_after_every_step(self):
        batches = -(-len(self.changes) // BATCH)
        for step in range(1, batches * STEPS_PER_BATCH + 1):
            with self.subTest(step=step):
                self.fresh()
                res = self.flush("--test-stop-after", str(step))
                self.assertEqual(res.returncode, 99,
                                 res.stdout + res.stderr)
                self.check_converged()

    def test_kill_while_a_batch_is_on_the_wire(self):
        for nth in (1, 2, 3):
            with self.subTest(batch=nth):
                self.fresh()
                status, out = self.emu.control("POST", "faults", {
                    "type": "hold", "match": {"kind": "batch"},
                    "after": nth - 1})
                self.assertEqual(status, 201)
                fault = out["faults"][0]["id"]
                proc = subprocess.Popen(
                    self.command("outbox", "flush", extra_overrides=[
                        "-o", "outbox.batch_size=%d" % BATCH]),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    self.emu.wait(condition="held", fault=fault, timeout=120)
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(timeout=60)
                finally:
                    if proc.poll() is None:
                        proc.kill()
                # The held batch now commits with nobody listening.
                self.emu.control("POST", "release", {"fault": fault})
                self.emu.wait(condition="idle", timeout=60)
                self.assertGreater(self.query(
                    "SELECT count(*) FROM outbox WHERE state = "
                    "'inflight'")[0][0], 0)
                self.check_converged()


if __name__ == "__main__":
    unittest.main()
