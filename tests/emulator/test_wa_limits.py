"""WhatsApp emulator, limits and faults: throughput per phone number
(130429, sliding one-second window), the pair rate limit (131056),
injected errors (80007 and others), 5xx answers, dropped connections and
lost responses, latency, and concurrent sends not being serialised. The
clock is frozen and advanced instead of sleeping; concurrency is proven
with hold faults, not timings."""

import http.client
import json
import threading
import time
import unittest

from launcher import WA_TOKEN
from wa_testlib import KEY1, PN1, PN2, USER, USER2, WaTest, optin, template


def burst(fn, n):
    """Run fn(i) on n threads at once -> results in order."""
    results = [None] * n
    gate = threading.Barrier(n)

    def run(i):
        gate.wait()
        results[i] = fn(i)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


class ThroughputTest(WaTest):
    args = ["--max-rate", "5"]

    def setUp(self):
        super().setUp()
        self.ok("POST", "clock", {"freeze": True})

    def to(self, i):
        return "49151000000%02d" % i

    def test_burst_rejects_exactly_the_excess(self):
        results = burst(lambda i: self.send(optin(to=self.to(i))), 10)
        ok = [r for r in results if r[0] == 200]
        limited = [r for r in results if r[0] != 200]
        self.assertEqual(len(ok), 5)
        self.assertEqual(len(limited), 5)
        for r in limited:
            self.assertGraphError(r, 429, 130429, "throughput")
        counters = self.ok("GET", "counters")
        self.assertEqual(counters["rate_limit_violations"], 5)
        self.assertEqual(counters["sends"]["accepted"], 5)
        self.assertEqual(counters["sends"]["rejected"], {"130429": 5})
        # one second later the window has room again, for five
        self.ok("POST", "clock", {"advance": 1})
        results = burst(lambda i: self.send(optin(to=self.to(i)))[0], 7)
        self.assertEqual(sorted(results), [200] * 5 + [429] * 2)

    def test_window_slides(self):
        for i in range(3):
            self.sent(optin(to=self.to(i)))
        self.ok("POST", "clock", {"advance": 0.6})
        for i in range(2):
            self.sent(optin(to=self.to(i)))
        self.assertGraphError(self.send(optin()), 429, 130429)
        # the first three leave the window, the last two stay
        self.ok("POST", "clock", {"advance": 0.4})
        for i in range(3):
            self.sent(optin(to=self.to(i)))
        self.assertGraphError(self.send(optin()), 429, 130429)

    def test_per_phone_number_and_both_routes(self):
        for i in range(3):
            self.sent(optin(to=self.to(i)))
        for i in range(2):
            status, out = self.wa.send360(KEY1, optin(to=self.to(i)))
            self.assertEqual(status, 200, out)
        # 360dialog and Cloud API share the number's throughput
        self.assertGraphError(self.wa.send360(KEY1, optin()), 429, 130429)
        self.assertGraphError(self.send(optin()), 429, 130429)
        # the other number has its own
        self.sent(template(name="doi_confirm", lang="de"), pnid=PN2)

    def test_rejected_sends_do_not_fill_the_window(self):
        for _ in range(5):
            self.assertGraphError(self.send(template(name="nope")), 404,
                                  132001)
        for i in range(5):
            self.sent(optin(to=self.to(i)))

    def test_limit_changes_at_run_time(self):
        self.ok("POST", "settings", {"max_rate": 2})
        self.sent(optin(to=self.to(1)))
        self.sent(optin(to=self.to(2)))
        self.assertGraphError(self.send(optin()), 429, 130429)
        self.assertEqual(self.control("POST", "settings",
                                      {"max_rate": 0})[0], 400)


class PairLimitTest(WaTest):
    args = ["--pair-limit-seconds", "6"]

    def test_pair_rate_limit(self):
        self.ok("POST", "clock", {"freeze": True})
        self.sent(optin(to=USER))
        self.assertGraphError(self.send(optin(to=USER)), 400, 131056)
        self.sent(optin(to=USER2))          # another user: fine
        self.ok("POST", "clock", {"advance": 5.9})
        self.assertGraphError(self.send(optin(to=USER)), 400, 131056)
        self.ok("POST", "clock", {"advance": 0.1})
        self.sent(optin(to=USER))
        self.assertEqual(self.ok("GET", "counters")["pair_limit_violations"],
                         2)
        self.ok("POST", "settings", {"pair_limit_seconds": 0})
        self.sent(optin(to=USER))


class FaultTest(WaTest):
    def fault(self, spec):
        return self.ok("POST", "faults", spec, 201)["faults"][0]

    def test_injected_error_next_n_sends(self):
        self.fault({"type": "error", "code": 80007, "count": 2,
                    "match": {"phone_number_id": PN1}})
        # another number is not matched
        self.sent(template(name="doi_confirm", lang="de"), pnid=PN2)
        for _ in range(2):
            self.assertGraphError(self.send(optin()), 400, 80007,
                                  "rate limit")
        self.sent(optin())
        faults = self.ok("GET", "faults")["faults"]
        self.assertEqual((faults[0]["seen"], faults[0]["fired"]), (3, 2))

    def test_injected_error_details_and_matching(self):
        self.fault({"type": "error", "code": 131000, "status": 502,
                    "details": "upstream hiccup", "subcode": 7,
                    "match": {"route": "360dialog", "to": USER2}})
        self.sent(optin(to=USER2))                      # cloud: no match
        self.assertEqual(self.wa.send360(KEY1, optin(to=USER))[0], 200)
        err = self.assertGraphError(self.wa.send360(KEY1, optin(to=USER2)),
                                    502, 131000, "upstream hiccup",
                                    subcode=7)
        self.assertEqual(err["message"], "(#131000) Something went wrong")
        # a code outside the table, and 130429 by injection
        self.fault({"type": "error", "code": 123456})
        self.assertGraphError(self.send(optin()), 400, 123456)
        self.fault({"type": "error", "code": 130429, "count": None,
                    "every": 2})
        statuses = [self.send(optin(to=USER2))[0] for _ in range(4)]
        self.assertEqual(statuses, [200, 429, 200, 429])
        self.assertEqual(self.ok("GET", "counters")["rate_limit_violations"],
                         2)

    def test_injected_5xx(self):
        self.fault({"type": "status", "status": 503})
        self.assertGraphError(self.send(optin()), 503, 2)
        self.fault({"type": "status", "status": 500})
        self.assertGraphError(self.send(optin()), 500, 131000)
        self.fault({"type": "status", "status": 502,
                    "body": "<html>Bad Gateway</html>"})
        status, _, body = self.wa.request(
            "POST", self.wa.messages_path(PN1), json.dumps(optin()),
            {"Authorization": "Bearer " + WA_TOKEN,
             "Content-Type": "application/json"})
        self.assertEqual((status, body), (502, b"<html>Bad Gateway</html>"))
        self.assertEqual(self.ok("GET", "messages")["messages"], [])
        self.sent(optin())

    def raw_send(self, conn):
        conn.request("POST", self.wa.messages_path(PN1),
                     json.dumps(optin()),
                     {"Authorization": "Bearer " + WA_TOKEN,
                      "Content-Type": "application/json"})
        return conn.getresponse()

    def test_drop_and_lost_response(self):
        self.fault({"type": "drop"})
        conn = self.wa.connection(10)
        with self.assertRaises((http.client.RemoteDisconnected,
                                ConnectionError)):
            self.raw_send(conn)
        conn.close()
        self.assertEqual(self.ok("GET", "messages")["messages"], [])
        # lost response: the message is sent (and reported by webhooks),
        # the client never hears about it
        self.fault({"type": "lost_response"})
        conn = self.wa.connection(10)
        with self.assertRaises((http.client.RemoteDisconnected,
                                ConnectionError)):
            self.raw_send(conn)
        conn.close()
        messages = self.ok("GET", "messages")["messages"]
        self.assertEqual(len(messages), 1)
        got = self.deliveries(2, kind="status", wamid=messages[0]["wamid"])
        self.assertEqual([self.value(r)[1]["statuses"][0]["status"]
                          for r in got], ["sent", "delivered"])
        attempts = self.ok("GET", "attempts")["attempts"]
        self.assertEqual([a["status"] for a in attempts],
                         ["dropped", "lost_response"])

    def test_keep_alive(self):
        conn = self.wa.connection(10)
        try:
            for _ in range(3):
                resp = self.raw_send(conn)
                self.assertEqual(resp.status, 200)
                resp.read()
                self.assertFalse(resp.will_close)
        finally:
            conn.close()

    def test_chunked_body(self):
        body = json.dumps(optin()).encode()
        conn = self.wa.connection(10)
        try:
            conn.request("POST", self.wa.messages_path(PN1),
                         iter([body[:20], body[20:]]),
                         {"Authorization": "Bearer " + WA_TOKEN,
                          "Content-Type": "application/json",
                          "Transfer-Encoding": "chunked"},
                         encode_chunked=True)
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200, resp.read())
            resp.read()
        finally:
            conn.close()
        self.assertEqual(len(self.ok("GET", "messages")["messages"]), 1)

    def test_concurrent_sends_are_not_serialised(self):
        # Every send is held inside the emulator until released: all five
        # can only be held at once if none waits for another. Latency is
        # on, so its sleep must not serialise them either.
        self.ok("POST", "settings", {"latency_ms": 50})
        fault = self.fault({"type": "hold", "count": 5})
        results = []
        threads = [threading.Thread(
            target=lambda i=i: results.append(self.send(
                optin(to="49151000000%02d" % i))[0])) for i in range(5)]
        for t in threads:
            t.start()
        self.wa.wait(condition="held", fault=fault["id"], count=5,
                     timeout=10)
        self.assertEqual(self.ok("GET", "counters")["sends"]["inflight"], 5)
        self.ok("POST", "release", {"fault": fault["id"]})
        for t in threads:
            t.join(30)
        self.assertEqual(results, [200] * 5)
        self.wa.wait(condition="idle")

    def test_latency(self):
        self.ok("POST", "settings", {"latency_ms": 120})
        started = time.monotonic()
        self.sent(optin())
        self.assertGreaterEqual(time.monotonic() - started, 0.12)
        # the control API is not delayed, and latency can be switched off
        self.assertEqual(self.ok("GET", "settings")["latency_ms"], 120)
        self.ok("POST", "settings", {"latency_ms": 0})

    def test_delay_fault(self):
        self.fault({"type": "delay", "seconds": 0.1})
        started = time.monotonic()
        self.sent(optin())
        self.assertGreaterEqual(time.monotonic() - started, 0.1)

    def test_bad_faults(self):
        for spec in ({"type": "boom"}, {"type": "error"},
                     {"type": "status", "status": 200},
                     {"type": "drop", "match": {"colour": "red"}},
                     {"type": "drop", "count": 0},
                     {"type": "delay"}, {"type": "drop", "code": 1}):
            with self.subTest(spec=spec):
                status, out = self.control("POST", "faults", spec)
                self.assertEqual(status, 400, out)
        fid = self.fault({"type": "drop"})["id"]
        self.ok("DELETE", "faults/%d" % fid)
        self.assertEqual(self.control("DELETE", "faults/%d" % fid)[0], 404)
        self.sent(optin())


if __name__ == "__main__":
    unittest.main()
