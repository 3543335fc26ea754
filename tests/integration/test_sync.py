"""optsync sync against the emulator: full sync row for row, deltas,
expired delta tokens, throttling, 5xx and dropped connections, token
expiry, bad credentials, a second mapping, the sync lock, and the admin
views (numbers, status).

ctest-labels: quick;integration
ctest-timeout: 600
"""

import json
import os
import subprocess
import unittest

from optsync_testlib import (ALT_MAPPING, SECRET, OptsyncCase,
                             expected_numbers)

NUMBERS_SET = "inogic_optinoptoutnumbers"


class FullSync(OptsyncCase):

    def test_full_sync_equals_emulator_row_for_row(self):
        path, doc = self.seed(configurations=3, numbers=1200)
        self.emulator(seed=path, extra=["--max-page-size", "250"])
        res = self.sync_ok()
        self.assertIn("sync ok: full", res.stdout)
        self.assertEqual(self.cache_numbers(), expected_numbers(doc))
        configs = {r[0]: r[1:] for r in self.query(
            "SELECT id, name, double_opt_in FROM configurations")}
        self.assertEqual(configs, {c["id"]: (c["name"],
                                             1 if c["double_opt_in"] else 0)
                                   for c in doc["configurations"]})
        # Pages followed to the end, page size as the server decided.
        self.assertGreaterEqual(self.counters()["requests"]["track"], 5)
        self.assert_no_violations()

    def test_second_sync_is_a_delta_and_changes_nothing(self):
        path, doc = self.seed(configurations=2, numbers=300)
        self.emulator(seed=path)
        self.sync_ok()
        before = self.query("SELECT * FROM numbers ORDER BY local_id")
        ledger = self.query("SELECT count(*) FROM ledger")
        res = self.sync_ok()
        self.assertIn("sync ok: delta", res.stdout)
        self.assertEqual(self.query("SELECT * FROM numbers ORDER BY "
                                    "local_id"), before)
        self.assertEqual(self.query("SELECT count(*) FROM ledger"), ledger)
        self.assertEqual(self.counters()["requests"]["delta"], 2)

    def test_second_mapping_works_unchanged(self):
        path, doc = self.seed(configurations=2, numbers=200,
                              mapping=ALT_MAPPING)
        self.emulator(seed=path, mapping=ALT_MAPPING)
        self.sync_ok()
        self.assertEqual(self.cache_numbers(), expected_numbers(doc))


class Deltas(OptsyncCase):

    def setUp(self):
        super().setUp()
        path, self.doc = self.seed(configurations=2, numbers=200)
        self.emulator(seed=path)
        self.sync_ok()
        self.cfg = self.doc["configurations"][0]["id"]

    def admin(self, method, route, doc=None):
        status, out = self.emu.control(method, "admin/" + route, doc)
        self.assertIn(status, (200, 201, 204), out)
        return out["row"] if out and "row" in out else out

    def test_admin_create_edit_phone_change_delete(self):
        created = self.admin("POST", "number", {
            "configuration": self.cfg, "phone": "+49 170 1234567",
            "status": "opted_out", "name": "new row"})
        victim = next(n for n in self.doc["numbers"]
                      if n.get("configuration") == self.cfg and
                      n.get("expected_e164") and n.get("active", True))
        self.admin("PATCH", "number/" + victim["id"],
                   {"phone": "+44 20 7946 0123", "status": "double_opt_in"})
        gone = next(n for n in self.doc["numbers"]
                    if n["id"] != victim["id"] and n.get("configuration") and
                    n.get("expected_e164") and n.get("active", True) and
                    not any(m is not n and m.get("expected_e164") ==
                            n["expected_e164"] for m in self.doc["numbers"]))
        self.admin("DELETE", "number/" + gone["id"])
        res = self.sync_ok()
        self.assertIn("sync ok: delta", res.stdout)
        rows = self.cache_numbers()
        self.assertEqual(rows[created["id"]][1:3], ("+491701234567", 3))
        self.assertEqual(rows[victim["id"]][1:3], ("+442079460123", 2))
        self.assertNotIn(gone["id"], rows)
        # The ledger keeps the deleted row's past.
        self.assertEqual(self.query(
            "SELECT to_status FROM ledger WHERE evidence LIKE ? AND "
            "evidence LIKE '%deleted in Dataverse%'",
            ("%" + gone["id"] + "%",)), [(0,)])

    def test_deleted_configuration_takes_its_numbers_along(self):
        gone = self.doc["configurations"][1]["id"]
        self.admin("DELETE", "configuration/" + gone)
        self.sync_ok()
        self.assertEqual(self.query("SELECT count(*) FROM configurations "
                                    "WHERE id = ?", (gone,)), [(0,)])
        # Dataverse cleared the lookups: the rows left every Related view.
        self.assertEqual(self.query("SELECT count(*) FROM numbers WHERE "
                                    "configuration_id = ?", (gone,)), [(0,)])
        self.assertEqual(self.optsync("ledger", "verify").returncode, 0)

    def test_expired_delta_token_falls_back_to_full_and_sweeps(self):
        gone = next(n for n in self.doc["numbers"] if n.get("configuration"))
        self.admin("DELETE", "number/" + gone["id"])
        status, _ = self.emu.control("POST", "expire", {"delta_tokens": True})
        self.assertEqual(status, 200)
        res = self.sync_ok()
        self.assertIn("sync ok: full", res.stdout)
        self.assertIn("event=sync_delta_refused", res.stderr)
        self.assertIn("0x80044352", res.stderr)
        self.assertEqual(res.stderr.count("event=sync_delta_refused"), 1)
        self.assertNotIn(gone["id"], self.cache_numbers())
        # And the next one is a delta again.
        self.assertIn("sync ok: delta", self.sync_ok().stdout)


class Faults(OptsyncCase):

    def setUp(self):
        super().setUp()
        path, self.doc = self.seed(configurations=2, numbers=600)
        self.emulator(seed=path, extra=["--max-page-size", "100"])

    def fault(self, doc):
        status, out = self.emu.control("POST", "faults", doc)
        self.assertEqual(status, 201, out)
        return out["faults"][0]["id"]

    def test_429_storm_with_zero_violations(self):
        self.fault({"type": "throttle", "retry_after": 1,
                    "match": {"kind": ["track", "retrieve"]},
                    "every": 2, "count": 4})
        self.sync_ok()
        self.assertEqual(self.cache_numbers(), expected_numbers(self.doc))
        counters = self.counters()
        self.assertGreaterEqual(counters["responses"].get("429", 0), 4)
        self.assert_no_violations()

    def test_5xx_and_dropped_connections_mid_page(self):
        self.fault({"type": "status", "status": 503,
                    "match": {"kind": "track", "page": 2}, "count": 2})
        self.fault({"type": "drop", "fraction": 0.5,
                    "match": {"kind": "track", "page": 4}, "count": 1})
        res = self.sync_ok()
        self.assertIn("event=http_retry", res.stderr)
        self.assertEqual(self.cache_numbers(), expected_numbers(self.doc))

    def test_token_expiry_mid_sync(self):
        hold = self.fault({"type": "hold",
                           "match": {"kind": "track", "page": 3,
                                     "entity_set": NUMBERS_SET}})
        proc = subprocess.Popen(self.command("sync"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            self.emu.wait(condition="held", fault=hold, timeout=60)
            status, _ = self.emu.control("POST", "expire",
                                         {"access_tokens": True})
            self.assertEqual(status, 200)
            self.emu.control("POST", "release", {"fault": hold})
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        self.assertEqual(proc.returncode, 0, err)
        self.assertIn("event=dataverse_unauthorized", err)
        self.assertEqual(self.counters()["tokens_issued"], 2)
        self.assertEqual(self.cache_numbers(), expected_numbers(self.doc))

    def test_wrong_secret_is_a_clear_remote_error(self):
        wrong = "not-the-secret-x9"
        res = self.optsync("sync", extra_overrides=[
            "-o", "auth.client_secret=" + wrong])
        self.assertEqual(res.returncode, 3, res.stderr)
        self.assertIn("AADSTS7000215", res.stderr)
        self.assertIn("VALUE, not its id", res.stderr)
        self.assertNotIn(wrong, res.stderr + res.stdout)
        self.assertNotIn(SECRET, res.stderr + res.stdout)
        # Nothing was synced, and the failure is on record.
        self.assertEqual(self.query("SELECT count(*) FROM numbers"), [(0,)])
        status = json.loads(self.optsync("status", "--json").stdout)
        self.assertTrue(status["stale"])
        self.assertIn("AADSTS7000215", status["last_attempt"]["error"])

    def test_changes_during_a_long_full_sync_are_not_lost(self):
        hold = self.fault({"type": "hold",
                           "match": {"kind": "track", "page": 4,
                                     "entity_set": NUMBERS_SET}})
        proc = subprocess.Popen(self.command("sync"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            self.emu.wait(condition="held", fault=hold, timeout=60)
            # While pages 4.. are still to come, an admin changes a row
            # the sync has already read, and adds one.
            early = next(n for n in self.doc["numbers"][:50]
                         if n.get("configuration") and
                         n.get("expected_e164") and n.get("active", True))
            st, _ = self.emu.control("PATCH", "admin/number/" + early["id"],
                                     {"phone": "+49 170 7654321"})
            self.assertEqual(st, 200)
            st, added = self.emu.control("POST", "admin/number", {
                "configuration": early["configuration"],
                "phone": "+49 170 1111111", "status": "opted_out"})
            self.assertEqual(st, 201)
            self.emu.control("POST", "release", {"fault": hold})
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        self.assertEqual(proc.returncode, 0, err)
        # The next delta brings both: the deltaLink covers the whole read.
        res = self.sync_ok()
        self.assertIn("sync ok: delta", res.stdout)
        rows = self.cache_numbers()
        self.assertEqual(rows[early["id"]][1], "+491707654321")
        self.assertEqual(rows[added["row"]["id"]][1:3], ("+491701111111", 3))

    def test_sync_lock_keeps_a_second_sync_out(self):
        hold = self.fault({"type": "hold", "match": {"kind": "track",
                                                     "page": 2}})
        first = subprocess.Popen(self.command("sync"),
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        try:
            self.emu.wait(condition="held", fault=hold, timeout=60)
            second = self.optsync("sync")
            self.assertEqual(second.returncode, 4, second.stderr)
            self.assertIn("another optsync is syncing", second.stderr)
            self.emu.control("POST", "release", {"fault": hold})
            first.communicate(timeout=120)
        finally:
            if first.poll() is None:
                first.kill()
        self.assertEqual(first.returncode, 0)


class AdminViews(OptsyncCase):

    def setUp(self):
        super().setUp()
        path, self.doc = self.seed(configurations=2, numbers=150)
        self.emulator(seed=path)
        self.sync_ok()

    def test_numbers_json_shape_and_filters(self):
        cfg = self.doc["configurations"][0]
        res = self.optsync("numbers", "--configuration", cfg["name"],
                           "--json")
        self.assertEqual(res.returncode, 0, res.stderr)
        rows = json.loads(res.stdout)
        expect = {k: v for k, v in expected_numbers(self.doc).items()
                  if v[0] == cfg["id"]}
        self.assertEqual({r["id"] for r in rows}, set(expect))
        for r in rows:
            self.assertEqual(set(r) - {"phone_error"},
                             {"id", "configuration_id", "phone", "raw_phone",
                              "status", "active", "modified_on",
                              "pending_writeback"})
            self.assertEqual(r["phone"], expect[r["id"]][1])
        out = self.optsync("numbers", "--configuration", cfg["id"],
                           "--status", "opted_out", "--csv").stdout
        lines = out.strip().splitlines()
        self.assertEqual(lines[0].split(",")[:3],
                         ["id", "configuration_id", "phone"])
        self.assertTrue(all(",opted_out," in l for l in lines[1:]))
        bad = self.optsync("numbers", "--configuration", "No Such Config")
        self.assertEqual(bad.returncode, 2)

    def test_status_lists_unparseable_and_freshness(self):
        res = self.optsync("status", "--json")
        self.assertEqual(res.returncode, 0, res.stderr)
        doc = json.loads(res.stdout)
        self.assertFalse(doc["stale"])
        invalid = {n["id"] for n in self.doc["numbers"]
                   if n.get("configuration") and not n.get("expected_e164")}
        self.assertEqual({r["id"] for r in doc["unparseable_rows"]}, invalid)
        self.assertEqual(doc["unparseable"], len(invalid))
        self.assertEqual(len(doc["configurations"]), 2)


class StatusText(OptsyncCase):
    """The text report names every unparseable row's count but lists at
    most 20 of them, then says how many more and where they are."""

    def test_unparseable_rows_capped_with_the_total(self):
        path, doc = self.seed(configurations=1, numbers=1000)
        self.emulator(seed=path)
        self.sync_ok()
        invalid = [n for n in doc["numbers"]
                   if n.get("configuration") and not n.get("expected_e164")]
        self.assertGreater(len(invalid), 20)  # the seed has enough
        res = self.optsync("status")
        self.assertEqual(res.returncode, 0, res.stderr)
        lines = res.stdout.splitlines()
        head = lines.index("unparseable phones (%d):" % len(invalid))
        listed = [l for l in lines[head + 1:head + 22]
                  if l.startswith("  ") and not l.startswith("  ...")]
        self.assertEqual(len(listed), 20)
        ids = {n["id"] for n in invalid}
        self.assertTrue(all(l.split()[0] in ids for l in listed))
        self.assertEqual(lines[head + 21].split(" (")[0],
                         "  ... and %d more" % (len(invalid) - 20))


if __name__ == "__main__":
    unittest.main()
