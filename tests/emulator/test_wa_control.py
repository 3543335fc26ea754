"""WhatsApp emulator, control API: the 24-hour customer-service window
driven by the emulated clock (never by waiting), users, templates and
phone numbers at run time, settings, reset, the message / attempt logs
and counters, and blocking waits that return as soon as their condition
holds or fail after their timeout."""

import threading
import time
import unittest

from launcher import EmulatorError
from wa_testlib import (KEY1, PN1, PN2, USER, USER2, WaTest, optin,
                        template, text)

DAY = 24 * 3600


class WindowTest(WaTest):
    def setUp(self):
        super().setUp()
        self.ok("POST", "clock", {"freeze": True})

    def test_window_closes_after_24_hours(self):
        self.assertGraphError(self.send(text()), 400, 131047,
                              "more than 24 hours")
        self.wrote_in(USER, PN1)
        self.sent(text())
        self.ok("POST", "clock", {"advance": DAY - 1})
        self.sent(text())
        self.ok("POST", "clock", {"advance": 1})
        self.assertGraphError(self.send(text()), 400, 131047)
        # templates need no window
        self.sent(optin())
        # the user writes again: open for another day
        self.ok("POST", "reply", {"from": USER, "text": "ok",
                                  "phone_number_id": PN1})
        self.sent(text())

    def test_wrote_in_at_a_given_time(self):
        now = self.ok("GET", "clock")["now"]
        self.wrote_in(USER, PN1, at=now - DAY + 10)
        self.sent(text())
        self.wrote_in(USER, PN1, ago=DAY)
        self.assertGraphError(self.send(text()), 400, 131047)
        # without a phone number: every number; null forgets it
        self.wrote_in(USER)
        self.sent(text())
        self.sent(text(), pnid=PN2)
        self.user(USER, wrote_in=None)
        self.assertGraphError(self.send(text(), pnid=PN2), 400, 131047)
        self.assertEqual(self.ok("GET", "users/" + USER)["window_open"], [])

    def test_window_is_per_user_and_number(self):
        self.wrote_in(USER, PN1)
        self.assertGraphError(self.send(text(to=USER2)), 400, 131047)
        self.assertGraphError(self.send(text(), pnid=PN2), 400, 131047)
        status, out = self.wa.send360(KEY1, text())
        self.assertEqual(status, 200, out)

    def test_clock(self):
        before = self.ok("GET", "clock")
        self.assertTrue(before["frozen"])
        self.assertEqual(self.ok("GET", "clock")["now"], before["now"])
        after = self.ok("POST", "clock", {"advance": 3600})
        self.assertAlmostEqual(after["now"] - before["now"], 3600, places=3)
        self.assertEqual(self.control("POST", "clock",
                                      {"advance": -1})[0], 400)
        running = self.ok("POST", "clock", {"freeze": False})
        self.assertFalse(running["frozen"])
        self.assertGreaterEqual(running["now"], after["now"])
        # status timestamps come from the emulated clock
        wamid = self.sent(optin())
        got = self.deliveries(1, kind="status", wamid=wamid)
        stamp = int(self.value(got[0])[1]["statuses"][0]["timestamp"])
        self.assertGreaterEqual(stamp, int(after["now"]))


class ControlTest(WaTest):
    def test_users(self):
        out = self.user("+49 170 9876-5432", name="Kim",
                        undeliverable=True)["users"][0]
        self.assertEqual(out["wa_id"], USER2)
        self.assertEqual((out["name"], out["undeliverable"],
                          out["stop_marketing"]), ("Kim", True, False))
        listed = self.ok("GET", "users")["users"]
        self.assertEqual([u["wa_id"] for u in listed], [USER2])
        self.assertEqual(self.control("GET", "users/123")[0], 404)
        # several at once; a bad update changes nothing of that user
        self.ok("POST", "users", [{"wa_id": USER, "stop_marketing": True},
                                  {"wa_id": USER2, "undeliverable": False}])
        for bad in ({"wa_id": "abc"}, {"wa_id": USER, "colour": 1},
                    {"wa_id": USER, "undeliverable": "yes"},
                    {"wa_id": USER, "fail": {"code": "x"}},
                    {"wa_id": USER, "wrote_in": {"phone_number_id": "9"}},
                    {"wa_id": USER, "name": "X", "wrote_in": {"ago": -1}}):
            with self.subTest(bad=bad):
                self.assertEqual(self.control("POST", "users", bad)[0], 400)
        self.assertEqual(self.ok("GET", "users/" + USER)["name"],
                         "Test User 5678")

    def test_templates_crud(self):
        listed = self.ok("GET", "templates?phone_number_id=" + PN2)
        self.assertEqual([(t["name"], t["language"], t["status"])
                          for t in listed["templates"]],
                         [("doi_confirm", "de", "APPROVED")])
        spec = {"phone_number_id": PN2, "name": "optin_request",
                "language": "de", "category": "MARKETING",
                "body_params": 1,
                "buttons": [{"type": "QUICK_REPLY", "text": "Ja"}]}
        made = self.ok("POST", "templates", spec, 201)
        self.assertEqual(made["status"], "APPROVED")
        self.assertRegex(made["id"], r"^[0-9]+$")
        self.assertEqual(self.control("POST", "templates", spec)[0], 400)
        self.sent(template(lang="de", body=["x"], payloads={0: "P"}),
                  pnid=PN2)
        for bad in ({"status": "ARCHIVED"}, {"category": "SPAM"},
                    {"body_params": -1}, {"name": "other"},
                    {"buttons": [{"type": "QUICK_REPLY"}]}):
            with self.subTest(bad=bad):
                self.assertEqual(self.control(
                    "PATCH", "templates/%s/optin_request/de" % PN2,
                    bad)[0], 400)
        self.ok("PATCH", "templates/%s/optin_request/de" % PN2,
                {"status": "DISABLED"})
        self.assertGraphError(self.send(template(lang="de", body=["x"]),
                                        pnid=PN2), 400, 132016)
        self.ok("DELETE", "templates/%s/optin_request/de" % PN2)
        self.assertEqual(self.control(
            "DELETE", "templates/%s/optin_request/de" % PN2)[0], 404)
        for bad in ({"phone_number_id": "9", "name": "a",
                     "language": "en"},
                    {"phone_number_id": PN1, "name": "Bad Name",
                     "language": "en"},
                    {"phone_number_id": PN1, "name": "a",
                     "language": "english"}):
            with self.subTest(bad=bad):
                self.assertIn(self.control("POST", "templates", bad)[0],
                              (400, 404))

    def test_phone_numbers(self):
        numbers = self.ok("GET", "phone_numbers")["phone_numbers"]
        self.assertEqual([n["phone_number_id"] for n in numbers],
                         [PN1, PN2])
        self.ok("POST", "phone_numbers", {
            "phone_number_id": "110000000000003",
            "display_phone_number": "+44 20 7946 0000",
            "waba_id": "220000000000009"})
        self.ok("POST", "templates", {
            "phone_number_id": "110000000000003", "name": "hello",
            "language": "en_GB", "category": "UTILITY"}, 201)
        wamid = self.sent(template(name="hello", lang="en_GB"),
                          pnid="110000000000003")
        got = self.deliveries(1, kind="status", wamid=wamid)
        body = got[0]["json"]
        self.assertEqual(body["entry"][0]["id"], "220000000000009")
        self.assertEqual(self.value(got[0])[1]["metadata"][
            "display_phone_number"], "+44 20 7946 0000")
        self.assertEqual(self.control("POST", "phone_numbers", {
            "phone_number_id": "abc"})[0], 400)

    def test_reset(self):
        self.ok("PATCH", "templates/%s/optin_request/en_US" % PN1,
                {"status": "PAUSED"})
        self.ok("POST", "tokens/revoke", {"token": self.wa.token()})
        self.ok("POST", "settings", {"max_rate": 1, "webhook_url": None})
        self.user(USER, undeliverable=True)
        self.ok("POST", "faults", {"type": "drop"}, 201)
        self.ok("POST", "reset")
        self.assertEqual(self.ok("GET", "users")["users"], [])
        self.assertEqual(self.ok("GET", "faults")["faults"], [])
        settings = self.ok("GET", "settings")
        self.assertEqual(settings["max_rate"], 80)
        self.assertEqual(settings["webhook_url"], self.hook_url)
        self.sent(optin())
        self.sent(optin(to=USER2))
        counters = self.ok("GET", "counters")["sends"]
        self.assertEqual((counters["accepted"], counters["rejected"]),
                         (2, {}))

    def test_settings(self):
        out = self.ok("POST", "settings", {"pair_limit_seconds": 2,
                                           "webhook_retries": 0})
        self.assertEqual((out["pair_limit_seconds"], out["webhook_retries"]),
                         (2, 0))
        for bad in ({"colour": 1}, {"max_rate": 1.5},
                    {"recipient_errors": "later"},
                    {"webhook_url": "ftp://x"}, {"latency_ms": -1},
                    {"webhook_headers": {"X": 1}}):
            with self.subTest(bad=bad):
                self.assertEqual(self.control("POST", "settings", bad)[0],
                                 400)

    def test_message_log_and_counters(self):
        self.sent(optin())
        self.sent(template(name="doi_confirm"))
        self.wa.send360(KEY1, optin(to=USER2))
        self.send(template(name="nope"))
        log = self.ok("GET", "messages")["messages"]
        self.assertEqual([(m["template"]["name"], m["route"], m["wa_id"])
                          for m in log],
                         [("optin_request", "cloud", USER),
                          ("doi_confirm", "cloud", USER),
                          ("optin_request", "360dialog", USER2)])
        only = self.ok("GET", "messages?template=doi_confirm")["messages"]
        self.assertEqual(len(only), 1)
        self.assertEqual(len(self.ok("GET", "messages?route=360dialog&to="
                                     + USER2)["messages"]), 1)
        c = self.ok("GET", "counters")
        self.assertEqual(c["sends"]["requests"], 4)
        self.assertEqual(c["sends"]["accepted"], 3)
        self.assertEqual(c["sends"]["accepted_360dialog"], 1)
        self.assertEqual(c["sends"]["rejected"], {"132001": 1})
        self.assertEqual(c["rate_limit_violations"], 0)

    def test_control_errors(self):
        self.assertEqual(self.control("GET", "nothing")[0], 404)
        self.assertEqual(self.control("DELETE", "users")[0], 405)
        status, _, body = self.wa.request("POST", "/_emulator/users",
                                          b"{oops")
        self.assertEqual(status, 400)
        self.assertIn(b"not JSON", body)


class WaitTest(WaTest):
    def test_wait_returns_when_the_condition_holds(self):
        results = {}

        def waiter():
            results["value"] = self.wa.wait(condition="messages", count=2,
                                            template="optin_request",
                                            timeout=30)
        t = threading.Thread(target=waiter)
        t.start()
        self.sent(optin())
        self.sent(template(name="doi_confirm"))     # does not count
        self.sent(optin(to=USER2))
        t.join(30)
        self.assertFalse(t.is_alive())
        self.assertEqual(results["value"], 2)

    def test_wait_times_out(self):
        started = time.monotonic()
        status, out = self.control("POST", "wait", {
            "condition": "messages", "count": 1, "timeout": 0.2})
        self.assertEqual((status, out), (408, {"ok": False, "value": 0}))
        self.assertGreaterEqual(time.monotonic() - started, 0.2)
        with self.assertRaises(EmulatorError):
            self.wa.wait(condition="webhooks", count=1, timeout=0.1)

    def test_wait_conditions(self):
        self.send(optin(), token="wrong")
        self.assertEqual(self.wa.wait(condition="attempts", code=190), 1)
        self.assertEqual(self.wa.wait(condition="attempts", status=401), 1)
        wamid = self.sent(optin())
        self.assertEqual(self.wa.wait(condition="webhooks", kind="status",
                                      wamid=wamid, count=2), 2)
        self.assertEqual(self.wa.wait(condition="webhooks", status="sent"),
                         1)
        self.assertEqual(self.wa.wait(condition="webhooks_idle"), 0)
        self.assertEqual(self.wa.wait(condition="idle"), 0)
        # a listener that holds its answer keeps the queue busy
        self.rx.hold()
        self.sent(optin(to=USER2))
        self.wa.wait(condition="idle")      # its statuses are queued
        status, out = self.control("POST", "wait", {
            "condition": "webhooks_idle", "timeout": 0.1})
        self.assertEqual(status, 408)
        self.assertGreater(out["value"], 0)
        self.rx.release()
        self.wa.wait(condition="webhooks_idle")
        for bad in ({"condition": "nothing"},
                    {"condition": "held", "fault": 99},
                    {"condition": "messages", "timeout": 601}):
            with self.subTest(bad=bad):
                self.assertEqual(self.control("POST", "wait", bad)[0], 400
                                 if bad.get("condition") != "held" else 404)


if __name__ == "__main__":
    unittest.main()
