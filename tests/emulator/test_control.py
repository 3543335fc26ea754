"""Control API (emu_control, emu_faults): seed, admin writes, dump, faults
(status, drop, delay, throttle, hold), counters, blocking waits, reset,
snapshots, and the launcher's start/stop contract."""

import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import unittest

from emu_testlib import (CFG_A, CFG_B, NUMBERS, STATUS, EmulatorTest, nid,
                         small_seed)
from launcher import API, Emulator, EmulatorError

CLIENT_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from launcher import Emulator
    emu = Emulator()
    emu.port = int(sys.argv[2])
    token = emu.token()
    conn = emu.connection()
    path = "/api/data/v9.2/inogic_optinoptoutnumbers"
    h = {"Authorization": "Bearer " + token,
         "Prefer": "odata.track-changes, odata.maxpagesize=2"}
    while path:
        conn.request("GET", path, headers=h)
        doc = json.loads(conn.getresponse().read())
        link = doc.get("@odata.nextLink")
        path = link[len(emu.base_url):] if link else None
    print("finished")
""")


class ControlTest(EmulatorTest):
    def tearDown(self):
        self.control("POST", "release", {})
        self.control("DELETE", "faults")

    def test_health_and_unknown_routes(self):
        status, out = self.control("GET", "health")
        self.assertEqual((status, out["port"]), (200, self.emu.port))
        self.assertEqual(self.control("GET", "nope")[0], 404)
        self.assertEqual(self.control("PUT", "health")[0], 405)

    def test_counters_by_kind(self):
        self.control("POST", "reset", {"keep_data": True})
        self.get(NUMBERS)
        self.get(NUMBERS, prefer="odata.track-changes")
        self.get(NUMBERS + "(%s)" % nid(1))
        self.get(NUMBERS + "/$count")
        _, c = self.control("GET", "counters")
        self.assertEqual(c["requests"], {"query": 1, "track": 1,
                                         "retrieve": 1, "count": 1})
        self.assertEqual(c["by_entity_set"]["%s query" % NUMBERS], 1)
        self.assertEqual(c["responses"], {"200": 4})
        self.assertEqual(c["violations"], 0)

    def test_admin_writes_and_validation(self):
        status, out = self.control("POST", "admin/number", {
            "name": "Admin", "configuration": CFG_A, "phone": "+491701",
            "status": "double_opt_in", "active": False})
        self.assertEqual(status, 201, out)
        row = out["row"]
        self.assertEqual(row["status"], "double_opt_in")
        self.assertFalse(row["active"])
        r = self.get(NUMBERS + "(%s)" % row["id"])
        self.assertEqual(r.json["statecode"], 1)
        self.assertEqual(r.json["statuscode"], 2)
        self.assertEqual(r.json[STATUS], 100000001)
        status, out = self.control("PATCH", "admin/number/" + row["id"],
                                   {"inogic_optinstatus": 100000002,
                                    "active": True})
        self.assertEqual(status, 200, out)
        self.assertEqual(out["row"]["status"], "opted_out")
        self.assertGreater(out["row"]["version"], row["version"])
        bad = [({"status": 42}, 400, "0x8004431a"),
               ({"status": "maybe"}, 400, "0x8004431a"),
               ({"configuration": "00000000-0000-4000-8000-00000000dead"},
                404, "0x80040217"),
               ({"double_opt_in": True}, 400, "0x0"),
               ({"consent_at": "yesterday"}, 400, "0x80040203")]
        for values, st, code in bad:
            status, out = self.control("PATCH", "admin/number/" + row["id"],
                                       values)
            self.assertEqual((status, out["error"]["code"]), (st, code),
                             values)
        status, _ = self.control("DELETE", "admin/number/" + row["id"])
        self.assertEqual(status, 200)
        status, out = self.control("DELETE", "admin/number/" + row["id"])
        self.assertEqual((status, out["error"]["code"]), (404, "0x80040217"))
        status, _ = self.control("POST", "admin/" + NUMBERS, {"id": nid(1)})
        self.assertEqual(status, 412)
        self.assertEqual(self.control("POST", "admin/nosuch", {})[0], 404)

    def test_state_dump(self):
        status, out = self.control("GET", "state?table=number")
        self.assertEqual(status, 200)
        rows = {r["id"]: r for r in out["numbers"]}
        self.assertEqual(rows[nid(2)]["name"], "O'Bryan")
        self.assertEqual(rows[nid(2)]["status"], "opted_out")
        self.assertIn("deleted_numbers", out)
        _, full = self.control("GET", "state")
        self.assertEqual(len(full["configurations"]), 3)

    def test_status_fault(self):
        self.control("POST", "faults", {"type": "status", "status": 503,
                                        "count": 2, "retry_after": 7,
                                        "match": {"entity_set": NUMBERS}})
        r1, r2, r3 = (self.get(NUMBERS) for _ in range(3))
        self.assertODataError(r1, 503, "0x80040216")
        self.assertEqual(r1.headers["Retry-After"], "7")
        self.assertEqual(r2.status, 503)
        self.assertEqual(r3.status, 200)
        self.control("POST", "faults", {"type": "status", "status": 503,
                                        "count": 1,
                                        "match": {"kind": "token"}})
        r = self.token_request(self.secret_form())
        self.assertEqual(r.status, 503)
        self.assertEqual(r.json["error"], "temporarily_unavailable")
        self.assertEqual(self.token_request(self.secret_form()).status, 200)

    def test_drop_fault(self):
        self.control("POST", "faults", {"type": "drop", "count": 1})
        conn = self.emu.connection()
        conn.request("GET", API + NUMBERS, headers=self.headers())
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        with self.assertRaises(http.client.IncompleteRead):
            resp.read()
        conn.close()
        self.assertEqual(self.get(NUMBERS).status, 200)

    def test_delay_fault(self):
        # Only the query is delayed (not a token request), and by far more
        # than the client waits, so a loaded machine cannot blur the two.
        self.control("POST", "faults", {"type": "delay", "seconds": 1.0,
                                        "count": 1,
                                        "match": {"kind": "query"}})
        conn = self.emu.connection(timeout=0.1)
        conn.request("GET", API + NUMBERS, headers=self.headers())
        with self.assertRaises(OSError):
            conn.getresponse()
        conn.close()
        self.emu.wait(condition="requests", event="completed",
                      kind="query", count=1)

    def test_fault_validation(self):
        for spec in ({"type": "explode"}, {"type": "status"},
                     {"type": "hold", "match": {"kind": "nope"}},
                     {"type": "delay"}, {"type": "throttle", "every": 0},
                     {"type": "status", "status": 503, "match": {"x": 1}}):
            self.assertEqual(self.control("POST", "faults", spec)[0], 400,
                             spec)

    def test_hold_page_three_then_kill_the_client(self):
        _, out = self.control("POST", "faults", {
            "type": "hold", "match": {"kind": "track", "page": 3,
                                      "entity_set": NUMBERS}})
        fid = out["faults"][0]["id"]
        here = os.path.dirname(os.path.abspath(__file__))
        client = subprocess.Popen([sys.executable, "-c", CLIENT_SCRIPT,
                                   here, str(self.emu.port)],
                                  stdout=subprocess.PIPE)
        try:
            self.emu.wait(condition="held", fault=fid, timeout=30)
            self.assertEqual(self.emu.wait(condition="requests",
                                           kind="track", entity_set=NUMBERS,
                                           page=2, event="completed"), 1)
            client.send_signal(signal.SIGKILL)
            client.wait(30)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
            client.stdout.close()
        _, listed = self.control("GET", "faults")
        self.assertEqual(listed["faults"][0]["waiting"], 1)
        self.control("POST", "release", {"fault": fid})
        self.emu.wait(condition="idle", timeout=30)
        # the emulator is fine afterwards, the hold was used up
        r = self.get(NUMBERS, prefer="odata.track-changes, "
                     "odata.maxpagesize=2")
        rows, pages = self.all_pages(r, "odata.track-changes, "
                                     "odata.maxpagesize=2")
        self.assertEqual(len(rows), 12)

    def test_wait_timeout(self):
        status, out = self.control("POST", "wait", {
            "condition": "requests", "kind": "delta", "count": 1000,
            "timeout": 0.2})
        self.assertEqual(status, 408)
        self.assertFalse(out["ok"])
        self.assertEqual(self.control("POST", "wait", {"condition": "x"})[0],
                         400)
        with self.assertRaises(EmulatorError):
            self.emu.wait(condition="violations", count=5, timeout=0.1)

    def test_expire_needs_a_target(self):
        self.assertEqual(self.control("POST", "expire", {})[0], 400)


class SeedAndResetTest(EmulatorTest):
    seed = None

    def test_seed_reset_and_replace(self):
        status, out = self.control("POST", "seed", small_seed())
        self.assertEqual(status, 200, out)
        self.assertEqual(out["loaded"], {"configurations": 3, "numbers": 12})
        r = self.get(NUMBERS, prefer="odata.track-changes")
        link = r.json["@odata.deltaLink"]
        seed = small_seed()
        seed["numbers"] = seed["numbers"][:2]
        self.control("POST", "seed", seed)
        r = self.follow(link)
        deleted = [x for x in r.json["value"] if "reason" in x]
        # replaced rows with the same id come back as changed, not deleted
        self.assertEqual(len(deleted), 10)
        self.assertEqual(len(r.json["value"]), 12)
        status, out = self.control("POST", "seed?replace=false",
                                   {"numbers": [{"id": nid(50),
                                                 "configuration": CFG_B}]})
        self.assertEqual(status, 200, out)
        self.assertEqual(self.get(NUMBERS + "/$count").body, b"\xef\xbb\xbf3")
        self.control("POST", "reset", {})
        self.assertEqual(self.get(NUMBERS + "/$count").body, b"\xef\xbb\xbf0")

    def test_seed_errors(self):
        for bad in ({"format": "other"}, {"numbers": {}},
                    {"numbers": [{"id": "x"}]},
                    {"numbers": [{"bogus": 1}]},
                    {"numbers": [{"configuration": nid(77)}]}):
            status, _ = self.control("POST", "seed", bad)
            self.assertIn(status, (400, 404), bad)

    def test_tracking_control(self):
        self.assertEqual(self.control("POST", "tracking",
                                      {"table": "nope"})[0], 404)


class SnapshotTest(unittest.TestCase):
    def test_snapshot_round_trip_keeps_delta_tokens(self):
        tmp = tempfile.mkdtemp(prefix="dvemu-snap-")
        seed = os.path.join(tmp, "seed.json")
        snap = os.path.join(tmp, "snap.json")
        with open(seed, "w") as f:
            json.dump(small_seed(), f)
        try:
            with Emulator(seed=seed, extra=["--snapshot-save", snap]) as emu:
                h = {"Authorization": "Bearer " + emu.token(),
                     "Prefer": "odata.track-changes"}
                _, _, body = emu.request("GET", API + NUMBERS, headers=h)
                link = json.loads(body)["@odata.deltaLink"]
                emu.control("DELETE", "admin/number/" + nid(3))
                rc = emu.stop()
                self.assertEqual(rc, 0)
            self.assertTrue(os.path.exists(snap))
            with Emulator(extra=["--snapshot-load", snap]) as emu:
                h = {"Authorization": "Bearer " + emu.token()}
                path = link.split("/api/data/v9.2/", 1)[1]
                path = path.split("?")[0] + "?" + path.split("?")[1]
                status, _, body = emu.request("GET", API + path, headers=h)
                self.assertEqual(status, 200, body)
                items = json.loads(body)["value"]
                self.assertEqual([x.get("id") for x in items], [nid(3)])
                _, _, body = emu.request("GET", API + NUMBERS + "/$count",
                                         headers=h)
                self.assertEqual(body, b"\xef\xbb\xbf11")
        finally:
            for name in os.listdir(tmp):
                os.unlink(os.path.join(tmp, name))
            os.rmdir(tmp)


class LauncherTest(unittest.TestCase):
    def test_start_stop_and_failure(self):
        emu = Emulator()
        emu.start()
        pid = emu.pid
        self.assertEqual(emu.control("GET", "health")[0], 200)
        self.assertEqual(emu.stop(), 0)
        with self.assertRaises(ProcessLookupError):
            os.kill(pid, 0)
        emu.cleanup()
        bad = Emulator(extra=["--max-page-size", "0"])
        with self.assertRaises(EmulatorError):
            bad.start()
        bad.cleanup()

    def test_ready_is_the_only_stdout_line(self):
        proc = subprocess.Popen(
            [sys.executable, os.path.join(os.path.dirname(
                os.path.abspath(__file__)), "dataverse_emulator.py"),
             "--port", "0"], stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL)
        line = proc.stdout.readline()
        self.assertRegex(line.decode(), r"^READY port=\d+\n$")
        proc.send_signal(signal.SIGTERM)
        rest = proc.stdout.read()
        self.assertEqual(proc.wait(30), 0)
        self.assertEqual(rest, b"")
        proc.stdout.close()


if __name__ == "__main__":
    unittest.main()
