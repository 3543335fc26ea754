"""Service protection (emu_protection): request-rate, execution-time and
concurrency limits per identity, 429 + Retry-After with the documented
codes, and early retries counted as violations. No test sleeps: the
emulated clock is advanced and held requests are waited for."""

import threading
import unittest

from emu_testlib import NUMBERS, EmulatorTest

OTHER = "07e4c0de-0000-4000-8000-000000000005"


class ProtectionTest(EmulatorTest):
    args = ["--client", OTHER + ":other-secret"]

    def setUp(self):
        self.control("POST", "reset", {"keep_data": True})

    def tearDown(self):
        self.control("POST", "release", {})
        self.control("POST", "reset", {"keep_data": True})

    def violations(self):
        return self.control("GET", "counters")[1]["violations"]

    def test_request_rate(self):
        self.control("POST", "limits", {"requests": 3, "window": 60})
        for _ in range(3):
            self.assertEqual(self.get(NUMBERS).status, 200)
        r = self.get(NUMBERS)
        self.assertODataError(r, 429, "0x80072322", "Number of requests "
                              "exceeded the limit of 3 over time window of "
                              "60 seconds.")
        retry = int(r.headers["Retry-After"])
        self.assertTrue(1 <= retry <= 60, retry)
        self.assertEqual(self.violations(), 0)
        # retrying at once is a violation, answered 429 again
        r = self.get(NUMBERS)
        self.assertODataError(r, 429, "0x80072322")
        self.assertLessEqual(int(r.headers["Retry-After"]), retry)
        self.assertEqual(self.violations(), 1)
        log = self.control("GET", "counters")[1]["violation_log"]
        self.assertEqual(log[-1]["identity"], "0975c0de-0000-4000-8000-"
                         "000000000002")
        # waiting the full Retry-After is fine
        self.control("POST", "clock", {"advance": 61})
        self.assertEqual(self.get(NUMBERS).status, 200)
        self.assertEqual(self.violations(), 1)

    def test_limits_are_per_identity(self):
        self.control("POST", "limits", {"requests": 1, "window": 60})
        other = self.emu.token(OTHER, "other-secret")
        self.assertEqual(self.get(NUMBERS).status, 200)
        self.assertEqual(self.get(NUMBERS).status, 429)
        self.assertEqual(self.get(NUMBERS, token=other).status, 200)
        # the token endpoint is not the Web API: not throttled
        self.assertEqual(self.token_request(self.secret_form()).status, 200)
        self.assertEqual(self.violations(), 0)

    def test_execution_time(self):
        self.control("POST", "limits", {"execution_ms": 1, "window": 60})
        self.control("POST", "faults", {"type": "delay", "seconds": 0.05,
                                        "count": 1})
        self.assertEqual(self.get(NUMBERS).status, 200)
        r = self.get(NUMBERS)
        err = self.assertODataError(r, 429, "0x80072321")
        self.assertIn("Combined execution time of incoming requests "
                      "exceeded limit of 1 milliseconds", err["message"])

    def test_concurrency(self):
        self.control("POST", "limits", {"concurrency": 1})
        _, out = self.control("POST", "faults", {
            "type": "hold", "match": {"kind": "query"}})
        fid = out["faults"][0]["id"]
        result = {}

        def held():
            result["r"] = self.get(NUMBERS)
        t = threading.Thread(target=held)
        t.start()
        try:
            self.emu.wait(condition="held", fault=fid, count=1, timeout=30)
            r = self.get(NUMBERS + "(%s)" % "00000000-0000-4000-8000-"
                         "000000000001")
            self.assertODataError(r, 429, "0x80072326", "Number of "
                                  "concurrent requests exceeded the limit "
                                  "of 1.")
            self.assertEqual(r.headers["Retry-After"], "1")
        finally:
            self.control("POST", "release", {"fault": fid})
            t.join(30)
        self.assertEqual(result["r"].status, 200)
        self.control("POST", "clock", {"advance": 2})
        self.assertEqual(self.get(NUMBERS).status, 200)
        self.assertEqual(self.violations(), 0)

    def test_injected_throttle_every_nth(self):
        self.control("POST", "faults", {"type": "throttle", "every": 3,
                                        "retry_after": 5,
                                        "match": {"kind": "query"}})
        statuses = []
        for _ in range(3):
            statuses.append(self.get(NUMBERS).status)
        self.assertEqual(statuses, [200, 200, 429])
        r = self.get(NUMBERS + "/$count")          # early, other kind
        self.assertEqual(r.status, 429)
        self.assertEqual(self.violations(), 1)
        self.control("POST", "clock", {"advance": 5})
        self.assertEqual(self.get(NUMBERS).status, 200)
        self.assertEqual(self.violations(), 1)

    def test_injected_throttle_reason(self):
        self.control("POST", "faults", {"type": "throttle", "count": 1,
                                        "reason": "concurrency",
                                        "retry_after": 0})
        r = self.get(NUMBERS)
        self.assertODataError(r, 429, "0x80072326")
        self.assertEqual(r.headers["Retry-After"], "0")
        self.assertEqual(self.get(NUMBERS).status, 200)
        self.assertEqual(self.violations(), 0)

    def test_limits_api(self):
        status, out = self.control("POST", "limits", {"bogus": 1})
        self.assertEqual(status, 400)
        status, out = self.control("GET", "limits")
        self.assertEqual(out["requests"], 6000)
        self.assertEqual(out["window"], 300)
        self.assertEqual(out["concurrency"], 52)


if __name__ == "__main__":
    unittest.main()
