"""Change tracking (emu_webapi deltas, emu_store change log): the initial
tracked sync, delta answers with changed rows and $deletedEntity items,
delta paging, restrictions, and expired or garbled delta tokens."""

import re
import unittest
from urllib.parse import quote, unquote

from emu_testlib import (CFG_A, CFG_B, CONFIGS, LOOKUP, NUMBER_ID, NUMBERS,
                         PHONE, STATUS, EmulatorTest, nid)

TRACK = "odata.track-changes, odata.maxpagesize=%d"
SELECT = [("$select", "%s,%s,%s" % (PHONE, STATUS, LOOKUP))]
TOKEN_RE = r"^(\d+)!(\d\d)/(\d\d)/(\d{4}) (\d\d):(\d\d):(\d\d)$"


class TrackingTest(EmulatorTest):
    def setUp(self):
        self.created = []

    def tearDown(self):
        for row_id in self.created:
            self.control("DELETE", "admin/number/" + row_id)

    def full_sync(self, size=5):
        r = self.get(NUMBERS, SELECT, prefer=TRACK % size)
        self.assertEqual(r.status, 200, r)
        rows, pages = self.all_pages(r, TRACK % size)
        return rows, pages, pages[-1].json["@odata.deltaLink"]

    def delta(self, link, size=None):
        prefer = None if size is None else "odata.maxpagesize=%d" % size
        r = self.follow(link, prefer)
        self.assertEqual(r.status, 200, r)
        items, pages = self.all_pages(r, prefer)
        return items, pages, pages[-1].json["@odata.deltaLink"]

    def create(self, **values):
        values.setdefault("configuration", CFG_A)
        values.setdefault("status", "single_opt_in")
        status, out = self.control("POST", "admin/number", values)
        self.assertEqual(status, 201, out)
        self.created.append(out["row"]["id"])
        return out["row"]["id"]

    # -------------------------------------------------------------------------
    def test_initial_sync_shape(self):
        r = self.get(NUMBERS, SELECT, prefer=TRACK % 5)
        applied = r.headers["Preference-Applied"].split(",")
        self.assertIn("odata.track-changes", applied)
        self.assertIn("odata.maxpagesize=5", applied)
        rows, pages, link = self.full_sync(5)
        self.assertEqual(len(rows), 12)
        self.assertEqual(len(pages), 3)
        for p in pages[:-1]:
            self.assertNotIn("@odata.deltaLink", p.json)
            self.assertIn('istracking=%22True%22',
                          p.json["@odata.nextLink"])
        self.assertNotIn("@odata.nextLink", pages[-1].json)
        self.assertTrue(link.startswith(
            "%s%s?$select=%s,%s,%s&$deltatoken=" % (
                self.emu.api_url, NUMBERS, PHONE, STATUS, LOOKUP)))
        token = unquote(link.split("$deltatoken=")[1])
        self.assertRegex(token, TOKEN_RE)
        self.assertIn("%21", link)      # '!' arrives URL-encoded

    def test_no_changes(self):
        _, _, link = self.full_sync()
        r = self.follow(link)
        doc = r.json
        self.assertEqual(doc["value"], [])
        self.assertTrue(doc["@odata.context"].endswith(
            "#%s(%s,%s,%s)/$delta" % (NUMBERS, PHONE, STATUS, LOOKUP)))
        self.assertIn("@odata.deltaLink", doc)
        self.assertNotIn("Preference-Applied", r.headers)

    def test_changes_then_deletes(self):
        _, _, link = self.full_sync()
        new_id = self.create(name="Neu", phone="+49 170 5555555")
        gone_id = self.create(name="Kurz", phone="+49 170 6666666")
        self.control("PATCH", "admin/number/" + nid(1),
                     {"status": "opted_out"})
        self.control("PATCH", "admin/number/" + nid(1),
                     {"phone": "+4915100000000"})
        self.control("DELETE", "admin/number/" + gone_id)
        self.created.remove(gone_id)
        self.control("DELETE", "admin/number/" + nid(2))
        items, pages, link2 = self.delta(link)
        self.assertEqual(len(pages), 1)
        kinds = ["deleted" if "reason" in x else "changed" for x in items]
        self.assertEqual(kinds, ["changed", "changed", "deleted", "deleted"])
        changed = {x[NUMBER_ID]: x for x in items if "reason" not in x}
        self.assertEqual(set(changed), {new_id, nid(1)})
        row = changed[nid(1)]
        self.assertEqual(row[STATUS], 100000002)
        self.assertEqual(row[PHONE], "+4915100000000")
        self.assertEqual(list(row), ["@odata.etag", PHONE, STATUS, LOOKUP,
                                     NUMBER_ID])
        deleted = [x for x in items if "reason" in x]
        self.assertEqual({x["id"] for x in deleted}, {gone_id, nid(2)})
        for x in deleted:
            self.assertEqual(set(x), {"@odata.context", "id", "reason"})
            self.assertEqual(x["reason"], "deleted")
            self.assertEqual(x["@odata.context"], "%s$metadata#%s/"
                             "$deletedEntity" % (self.emu.api_url, NUMBERS))
        self.assertNotEqual(link, link2)
        again, _, _ = self.delta(link2)
        self.assertEqual(again, [])
        self.create(id=nid(2), name="O'Bryan", phone="0151/23456789",
                    status="opted_out")
        self.created.remove(nid(2))     # restored, keep it

    def test_delta_with_and_without_prefer(self):
        _, _, link = self.full_sync()
        self.create(name="Eins", phone="+4917011111111")
        r1 = self.follow(link)
        r2 = self.follow(link, "odata.track-changes")
        self.assertEqual(len(r1.json["value"]), 1)
        self.assertEqual(r1.json["value"], r2.json["value"])
        self.assertIn("odata.track-changes",
                      r2.headers["Preference-Applied"])

    def test_delta_paging(self):
        _, _, link = self.full_sync()
        ids = [self.create(name="P%d" % i, phone="+49170222222%d" % i)
               for i in range(5)]
        self.control("DELETE", "admin/number/" + ids[0])
        self.created.remove(ids[0])
        items, pages, _ = self.delta(link, size=2)
        self.assertEqual([len(p.json["value"]) for p in pages], [2, 2, 1])
        for p in pages:
            self.assertTrue(p.json["@odata.context"].endswith("/$delta"))
        for p in pages[:-1]:
            self.assertNotIn("@odata.deltaLink", p.json)
            self.assertIn("$deltatoken=", p.json["@odata.nextLink"])
        self.assertEqual(items[-1], {"@odata.context": items[-1]
                                     ["@odata.context"], "id": ids[0],
                                     "reason": "deleted"})
        self.assertEqual({x[NUMBER_ID] for x in items[:-1]}, set(ids[1:]))

    def test_changes_during_full_sync_come_in_next_delta(self):
        r = self.get(NUMBERS, SELECT, prefer=TRACK % 5)
        new_id = self.create(name="Mittendrin", phone="+4917033333333")
        self.control("PATCH", "admin/number/" + nid(12),
                     {"name": "Orphan 2"})
        rows, pages = self.all_pages(r, TRACK % 5)
        link = pages[-1].json["@odata.deltaLink"]
        items, _, _ = self.delta(link)
        self.assertEqual({x[NUMBER_ID] for x in items}, {new_id, nid(12)})

    def test_restrictions(self):
        for opt, value in (("$filter", "statecode eq 0"),
                           ("$orderby", PHONE), ("$top", "5"),
                           ("$expand", "inogic_ConfigurationId")):
            r = self.get(NUMBERS, SELECT + [(opt, value)],
                         prefer="odata.track-changes")
            self.assertODataError(
                r, 400, "0x0", 'The "%s" query parameter isn\'t supported '
                'when Change Tracking is enabled.' % opt)
        _, _, link = self.full_sync()
        r = self.follow(link + "&$filter=statecode%20eq%200")
        self.assertODataError(r, 400, "0x0")
        r = self.get("%s(%s)/inogic_configuration_inogic_optinoptoutnumber"
                     % (CONFIGS, CFG_A), prefer="odata.track-changes")
        self.assertODataError(r, 400, "0x0")

    def test_expired_by_control(self):
        _, _, link = self.full_sync()
        _, _, link2 = self.delta(link)
        status, out = self.control("POST", "expire", {"delta_tokens": True})
        self.assertEqual(status, 200)
        for old in (link, link2):
            r = self.follow(old)
            self.assertODataError(r, 400, "0x80044352",
                                  "Version stamp associated with the client "
                                  "has expired. Please perform a full sync.")
        _, _, fresh = self.full_sync()
        self.assertEqual(self.follow(fresh).status, 200)

    def test_garbled_or_re_encoded_token(self):
        _, _, link = self.full_sync()
        base, token = link.split("$deltatoken=")
        for bad in ("garbage", "12345", quote(token, safe=""),
                    token.replace("%21", "!") + "x",
                    "999999999%2101%2f01%2f2025%2000%3a00%3a00"):
            r = self.follow(base + "$deltatoken=" + bad)
            err = self.assertODataError(r, 400, "0x80040203")
            self.assertNotEqual(err["code"], "0x80044352")

    def test_tracking_disabled(self):
        self.control("POST", "tracking", {"table": "number",
                                          "enabled": False})
        try:
            r = self.get(NUMBERS, SELECT, prefer="odata.track-changes")
            self.assertODataError(r, 400, "0x80072491",
                                  "Entity inogic_optinoptoutnumber isn't "
                                  "enabled for change tracking.")
        finally:
            self.control("POST", "tracking", {"table": "number",
                                              "enabled": True})

    def test_pending_change_count(self):
        _, _, link = self.full_sync()
        self.create(name="C1", phone="+4917044444444")
        self.create(name="C2", phone="+4917044444445")
        token = link.split("$deltatoken=")[1]
        r = self.get(NUMBERS + "/$count", raw_query="$deltatoken=" + token)
        self.assertEqual(r.body.decode("utf-8-sig"), "2")

    def test_configuration_delete_clears_the_lookup(self):
        _, _, link = self.full_sync()
        cfg = "6a1c0d6e-0000-4000-8000-0000000000aa"
        self.control("POST", "admin/configuration",
                     {"id": cfg, "name": "Temp", "double_opt_in": False})
        a = self.create(name="T1", phone="+4917077777777", configuration=cfg)
        self.created.remove(a)
        _, _, link = self.delta(link)
        self.control("DELETE", "admin/configuration/" + cfg)
        items, _, _ = self.delta(link)
        self.assertEqual([(x[NUMBER_ID], x[LOOKUP]) for x in items],
                         [(a, None)])
        self.control("DELETE", "admin/number/" + a)

    def test_configuration_table_tracks_too(self):
        r = self.get(CONFIGS, [("$select", "inogic_name,inogic_doubleoptin")],
                     prefer="odata.track-changes")
        link = r.json["@odata.deltaLink"]
        self.control("PATCH", "admin/configuration/" + CFG_B,
                     {"double_opt_in": True})
        try:
            r = self.follow(link)
            self.assertEqual([x["inogic_doubleoptin"]
                              for x in r.json["value"]], [True])
        finally:
            self.control("PATCH", "admin/configuration/" + CFG_B,
                         {"double_opt_in": False})

    def test_etag_tracks_versionnumber(self):
        before = self.get("%s(%s)" % (NUMBERS, nid(5))).json
        self.control("PATCH", "admin/number/" + nid(5), {"name": None})
        after = self.get("%s(%s)" % (NUMBERS, nid(5))).json
        self.assertGreater(after["versionnumber"], before["versionnumber"])
        self.assertEqual(after["@odata.etag"],
                         'W/"%d"' % after["versionnumber"])
        self.assertGreaterEqual(after["modifiedon"], before["modifiedon"])
        self.assertTrue(re.match(r"^\d{4}-", after["modifiedon"]))


class TokenAgeTest(EmulatorTest):
    args = ["--delta-token-age", "600"]

    def test_token_older_than_age(self):
        r = self.get(NUMBERS, SELECT, prefer="odata.track-changes")
        link = r.json["@odata.deltaLink"]
        self.assertEqual(self.follow(link).status, 200)
        self.control("POST", "clock", {"advance": 601})
        r = self.follow(link)
        self.assertODataError(r, 400, "0x80044352")


if __name__ == "__main__":
    unittest.main()
