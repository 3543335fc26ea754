"""`optsync serve` through faults, end to end: Dynamics down for longer
than the (lowered) maximum backoff, then back: every reply accepted
meanwhile is delivered; a create committed in Dynamics whose answer was
lost, serve killed and started again: exactly one row; 429 storms on the
writes: everything delivered and zero violations recorded by the
emulator (no request before Retry-After).

ctest-labels: quick;integration
ctest-timeout: 600
"""

import os
import signal
import unittest

from serve_testlib import ServeCase

NEW = ["+491512345%04d" % (8000 + i) for i in range(10)]


class ServeFaults(ServeCase):

    def setUp(self):
        super().setUp()
        self.snapshot = os.path.join(self.dir, "emulator.snapshot")
        self.start_emulator(numbers=60,
                            extra=["--snapshot-save", self.snapshot])
        self.cfg = self.doc["configurations"][0]
        self.pnid = self.cfg["phone_number_id"]

    def delivered(self, phones, status="single_opt_in"):
        return all([r["status"] for r in self.emu_rows(self.cfg["id"], p)]
                   == [status] for p in phones)

    def test_dynamics_down_longer_than_the_maximum_backoff(self):
        known = self.pick_number(self.cfg)
        self.start_serve("-o", "outbox.max_backoff=1s",
                         "-o", "outbox.max_attempts=1000")
        self.wait_ready()
        port = self.emu.port
        self.emu.stop()  # saves its state in the snapshot
        self.wa_reply(self.pnid, known["expected_e164"], "STOP")
        for p in NEW:
            self.wa_reply(self.pnid, p, "Subscribe")
        # The gate does not wait for Dynamics.
        self.assertEqual(self.gate(self.cfg["id"], known["expected_e164"])
                         ["decision"], "deny")
        # Down for longer than the maximum backoff: several retries, each
        # waiting at most max_backoff.
        self.wait_for(lambda: self.log_since().count("event=outbox_retry ")
                      >= 4, "the outbox retries while Dynamics is down")
        self.emu.cleanup()
        self.emulator(seed=None, extra=["--port", str(port), "--quiet",
                                        "--snapshot-load", self.snapshot])
        self.wait_for(lambda: self.emu_status(known["id"]) == "opted_out",
                      "the STOP is delivered after the outage")
        self.wait_for(lambda: self.delivered(NEW),
                      "every Subscribe is delivered after the outage")
        self.wait_outbox_empty()
        self.assertEqual(self.query("SELECT count(*) FROM outbox WHERE "
                                    "state = 'dead'"), [(0,)])
        self.assertEqual(self.stop_serve(), 0)

    def test_lost_create_answer_then_kill_and_restart(self):
        phone = NEW[0]
        self.start_serve()
        self.wait_ready()
        # The create commits in Dynamics but its answer is lost; the retry
        # is held, and serve killed while it waits.
        status, out = self.emu.control("POST", "faults", [
            {"type": "lost_response", "match": {"kind": ["batch", "write"]},
             "count": 1},
            {"type": "hold", "match": {"kind": ["batch", "write"]},
             "after": 1}])
        self.assertEqual(status, 201, out)
        hold = out["faults"][1]["id"]
        self.wa_reply(self.pnid, phone, "Subscribe")
        self.emu.wait(condition="held", fault=hold, timeout=60)
        self.assertEqual(len(self.emu_rows(self.cfg["id"], phone)), 1)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.emu.control("DELETE", "faults")
        self.emu.control("POST", "release", {"fault": hold})
        self.emu.wait(condition="idle", timeout=60)
        self.start_serve()
        self.wait_outbox_empty()
        rows = self.emu_rows(self.cfg["id"], phone)
        self.assertEqual([r["status"] for r in rows], ["single_opt_in"])
        self.assertEqual(self.query(
            "SELECT count(*) FROM numbers WHERE e164 = ?", (phone,)), [(1,)])
        self.assertEqual(self.stop_serve(), 0)

    def test_429_storms_cause_no_violation(self):
        known = self.pick_number(self.cfg)
        # The poller sleeps through the storm: a delta GET already on the
        # wire when a write gets its 429 reaches the emulator inside the
        # Retry-After no client could know of yet (early_by = the whole
        # wait), which the emulator would count.  Every request sent
        # after a 429 arrived waits (the throttle is shared).
        self.start_serve("-o", "outbox.batch_size=3",
                         "-o", "sync.interval=1h")
        self.wait_ready()
        status, _ = self.emu.control("POST", "faults", {
            "type": "throttle", "retry_after": 1,
            "match": {"kind": ["batch", "write"]}, "every": 2, "count": 6})
        self.assertEqual(status, 201)
        self.wa_reply(self.pnid, known["expected_e164"], "STOP")
        for p in NEW:
            self.wa_reply(self.pnid, p, "Subscribe")
        self.wait_for(lambda: self.delivered(NEW),
                      "every Subscribe is delivered through the 429s")
        self.wait_for(lambda: self.emu_status(known["id"]) == "opted_out",
                      "the STOP is delivered through the 429s")
        self.wait_outbox_empty()
        counters = self.counters()
        self.assertGreater(counters["responses"].get("429", 0), 0, counters)
        self.assert_no_violations()
        self.assertEqual(self.stop_serve(), 0)


if __name__ == "__main__":
    unittest.main()
