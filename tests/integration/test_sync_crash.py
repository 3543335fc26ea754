"""Crash sweep (after isync's run-tests.pl): kill -9 the sync while the
emulator holds page N of the numbers' full read, for several N, then rerun.
Each time the cache must equal the emulator, nothing may be duplicated
(rows or ledger entries), the rerun must resume from the last committed
page, and one more run must change nothing.  Also a crash right after a
commit (--test-stop-after).

ctest-labels: full;integration
ctest-timeout: 900
"""

import os
import signal
import subprocess
import time
import unittest

from optsync_testlib import OptsyncCase, expected_numbers

NUMBERS_SET = "inogic_optinoptoutnumbers"
PAGES = 8  # 800 numbers in pages of 100


class CrashSweep(OptsyncCase):

    def setUp(self):
        super().setUp()
        self.seed_path, self.doc = self.seed(configurations=2, numbers=800)

    def fresh(self):
        """A new cache and a fresh emulator for one crash point."""
        if self.emu:
            self.emu.stop()
            self.emu.cleanup()
        self.remove_cache()
        self.emulator(seed=self.seed_path, extra=["--max-page-size", "100"])

    def remove_cache(self):
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(self.cache_path + suffix)
            except FileNotFoundError:
                pass

    def check_converged(self):
        self.assertEqual(self.cache_numbers(), expected_numbers(self.doc))
        self.assertEqual(self.query(
            "SELECT count(*), count(DISTINCT dv_id) FROM numbers WHERE "
            "dv_id IS NOT NULL")[0][0],
            len(expected_numbers(self.doc)))
        # One "first seen" ledger entry per number, never two.
        dup = self.query("SELECT evidence, count(*) FROM ledger WHERE "
                         "from_status = 0 GROUP BY configuration_id, phone, "
                         "evidence HAVING count(*) > 1")
        self.assertEqual(dup, [])
        verify = self.optsync("ledger", "verify")
        self.assertEqual(verify.returncode, 0, verify.stdout)
        self.assert_no_violations()

    def crash_at(self, page):
        status, out = self.emu.control("POST", "faults", {
            "type": "hold",
            "match": {"kind": "track", "entity_set": NUMBERS_SET,
                      "page": page}})
        self.assertEqual(status, 201)
        fault = out["faults"][0]["id"]
        proc = subprocess.Popen(self.command("sync"),
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            self.emu.wait(condition="held", fault=fault, timeout=120)
            # The pipeline asks for page N as soon as N-1 is in, maybe
            # before N-1 (or the pages before it) is stored: kill once
            # everything before the held page is committed.
            self.wait_committed(page - 1, proc)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        self.emu.control("POST", "release", {"fault": fault})
        self.emu.wait(condition="idle", timeout=60)

    def wait_committed(self, pages, proc, timeout=120):
        """Waits (polling the cache read-only) until the numbers' read has
        committed `pages` pages; the sync must still be running."""
        deadline = time.monotonic() + timeout
        while True:
            if os.path.exists(self.cache_path) and self.query(
                    "SELECT pages FROM sync_state WHERE entity = 'number'"
            ) == [(pages,)]:
                return
            self.assertIsNone(proc.poll(), "the sync ended early")
            self.assertLess(time.monotonic(), deadline,
                            "page %d was never committed" % pages)
            time.sleep(0.02)

    def test_kill_while_page_n_is_held(self):
        resumes = 0
        for page in (2, 5, PAGES):
            with self.subTest(page=page):
                self.fresh()
                self.crash_at(page)
                committed = self.query(
                    "SELECT pages FROM sync_state WHERE entity = 'number'")
                self.assertEqual(committed, [(page - 1,)])
                resumed = committed[0][0] > 0
                resumes += resumed
                res = self.sync_ok()
                self.assertEqual("event=sync_resume entity=numbers"
                                 in res.stderr, resumed)
                self.check_converged()
                # Resumed: the first numbers page was asked for once only.
                first_pages = self.emu.wait(
                    condition="requests", kind="track",
                    entity_set=NUMBERS_SET, page=1, count=1, timeout=5)
                self.assertEqual(first_pages, 1 if resumed else 2)
                ledger = self.query("SELECT count(*) FROM ledger")
                again = self.sync_ok()
                self.assertIn("sync ok: delta", again.stdout)
                self.assertEqual(self.query("SELECT count(*) FROM ledger"),
                                 ledger)
                self.check_converged()
        self.assertGreater(resumes, 0, "no crash point exercised a resume")

    def test_crash_right_after_a_commit(self):
        for stop_after in (1, 3):
            with self.subTest(stop_after=stop_after):
                self.fresh()
                res = self.optsync("sync", "--test-stop-after",
                                   str(stop_after))
                self.assertEqual(res.returncode, 99, res.stderr)
                self.sync_ok()
                self.check_converged()


if __name__ == "__main__":
    unittest.main()
