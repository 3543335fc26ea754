"""Crash sweep of `optsync serve`'s write-back: test_outbox_crash.py's 60
local changes in three $batch requests, with serve (poller, listener and
outbox running together) killed at every step of every batch: after the
claim is committed, after the answer arrived, after it is committed
(--test-outbox-stop-after N, exit 99), and with kill -9 while the emulator
holds a batch (which then commits with nobody listening).  Each time a
restarted serve must finish the job: no number lost, none duplicated,
nothing pending, inflight or dead; then SIGTERM exits 0.

ctest-labels: full;integration
ctest-timeout: 1200
"""

import os
import signal
import unittest

import test_outbox_crash
from serve_testlib import ServeCase

BATCH = test_outbox_crash.BATCH


class ServeCrashSweep(ServeCase, test_outbox_crash.OutboxCrashSweep):
    """setUp, fresh() and check_converged() from the outbox's sweep."""

    emu_port = None

    def emulator(self, seed=None, extra=(), mapping=None):
        # Every fresh emulator on the first one's port: the prepared
        # cache's delta links name it, and serve's poller follows them.
        if self.emu_port:
            extra = list(extra) + ["--port", str(self.emu_port)]
        emu = super().emulator(seed=seed, extra=extra, mapping=mapping)
        self.emu_port = emu.port
        return emu

    def restart_and_converge(self):
        self.start_serve("-o", "outbox.batch_size=%d" % BATCH,
                         "-o", "outbox.max_backoff=1s")
        self.wait_outbox_empty("the restarted serve writes everything")
        self.assertEqual(self.stop_serve(), 0)
        self.check_converged()

    def test_stop_after_every_step(self):
        batches = -(-len(self.changes) // BATCH)
        for step in range(1, batches * test_outbox_crash.STEPS_PER_BATCH +
                          1):
            with self.subTest(step=step):
                self.fresh()
                # It may stop before it logs that it started: run it.
                self.log_path = os.path.join(self.dir, "crash.log")
                res = self.optsync(
                    "serve", "--test-outbox-stop-after", str(step),
                    extra_overrides=self.serve_overrides(
                        "-o", "outbox.batch_size=%d" % BATCH), timeout=120)
                self.assertEqual(res.returncode, 99, res.stderr)
                self.restart_and_converge()

    def test_kill_while_a_batch_is_on_the_wire(self):
        for nth in (1, 2, 3):
            with self.subTest(batch=nth):
                self.fresh()
                status, out = self.emu.control("POST", "faults", {
                    "type": "hold", "match": {"kind": "batch"},
                    "after": nth - 1})
                self.assertEqual(status, 201)
                fault = out["faults"][0]["id"]
                self.start_serve("-o", "outbox.batch_size=%d" % BATCH)
                self.emu.wait(condition="held", fault=fault, timeout=120)
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(timeout=60)
                self.emu.control("POST", "release", {"fault": fault})
                self.emu.wait(condition="idle", timeout=60)
                self.assertGreater(self.query(
                    "SELECT count(*) FROM outbox WHERE state = "
                    "'inflight'")[0][0], 0)
                self.restart_and_converge()


if __name__ == "__main__":
    unittest.main()
