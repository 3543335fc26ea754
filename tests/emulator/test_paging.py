"""Server-driven paging (emu_paging, emu_webapi): Prefer odata.maxpagesize,
Preference-Applied, @odata.nextLink with the documented XML paging cookie,
and rejection of links a client re-encoded, decoded or edited."""

import re
import unittest
from urllib.parse import quote, unquote, unquote_plus

from emu_testlib import (CFG_A, LOOKUP, NUMBER_ID, NUMBERS, STATUS,
                         EmulatorTest)
from emu_util import guid_sort_key


def sql_order(ids):
    return sorted(ids, key=guid_sort_key)


class PagingTest(EmulatorTest):
    def first(self, size=5, params=(("$select", "inogic_name"),)):
        return self.get(NUMBERS, list(params),
                        prefer="odata.maxpagesize=%d" % size)

    def test_pages_cover_all_rows_once_in_key_order(self):
        r = self.first(5)
        self.assertEqual(r.headers["Preference-Applied"],
                         "odata.maxpagesize=5")
        rows, pages = self.all_pages(r, "odata.maxpagesize=5")
        self.assertEqual([len(p.json["value"]) for p in pages], [5, 5, 2])
        ids = [x[NUMBER_ID] for x in rows]
        self.assertEqual(len(set(ids)), 12)
        self.assertEqual(ids, sql_order(ids))
        self.assertNotEqual(ids, sorted(ids))    # not string order
        for p in pages[:-1]:
            self.assertEqual(list(p.json)[-1], "@odata.nextLink")
        self.assertNotIn("@odata.nextLink", pages[-1].json)
        self.assertNotIn("@odata.deltaLink", pages[-1].json)

    def test_next_link_shape(self):
        link = self.first(5).json["@odata.nextLink"]
        self.assertTrue(link.startswith(self.emu.api_url + NUMBERS +
                                        "?$select=inogic_name&$skiptoken="))
        token = unquote_plus(link.split("$skiptoken=")[1])
        m = re.fullmatch(r'<cookie pagenumber="2" pagingcookie="([^"]+)" '
                         r'istracking="False" />', token)
        self.assertIsNotNone(m, token)
        inner = unquote(m.group(1))
        self.assertRegex(inner, r'^<cookie page="1"><%s last="\{[0-9A-F-]{36}'
                         r'\}" first="\{[0-9A-F-]{36}\}" /></cookie>$'
                         % NUMBER_ID)
        self.assertIn("%3ccookie%20page%3d%221%22%3e", m.group(1))

    def test_next_link_keeps_options(self):
        params = [("$select", "inogic_name,%s" % STATUS),
                  ("$filter", "%s eq %s" % (LOOKUP, CFG_A))]
        r = self.first(2, params)
        link = r.json["@odata.nextLink"]
        self.assertIn("$filter=%s%%20eq%%20%s&" % (LOOKUP, CFG_A), link)
        rows, pages = self.all_pages(r, "odata.maxpagesize=2")
        self.assertEqual(len(rows), 5)
        self.assertEqual(len(pages), 3)

    def test_orderby_paging(self):
        params = [("$select", "inogic_name"), ("$orderby", "inogic_name desc")]
        r = self.first(4, params)
        rows, pages = self.all_pages(r, "odata.maxpagesize=4")
        names = [x["inogic_name"] for x in rows]
        whole = [x["inogic_name"] for x in
                 self.get(NUMBERS, params).json["value"]]
        self.assertEqual(names, whole)
        self.assertEqual(len(pages), 3)
        # the cookie of an ordered query cannot serve another ordering
        link = pages[0].json["@odata.nextLink"]
        other = link.replace("inogic_name%20desc", "inogic_name%20asc")
        self.assertNotEqual(link, other)
        self.assertODataError(self.follow(other), 400, "0x80040203")
        plain = link.replace("&$orderby=inogic_name%20desc", "")
        self.assertODataError(self.follow(plain), 400, "0x80040203")

    def test_maxpagesize_limits(self):
        r = self.first(5000)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["Preference-Applied"],
                         "odata.maxpagesize=5000")
        for bad in ("5001", "10000", "0", "-1", "abc"):
            r = self.get(NUMBERS, prefer="odata.maxpagesize=" + bad)
            self.assertODataError(r, 400, "0x0")

    def test_no_prefer_means_one_page_up_to_5000(self):
        r = self.get(NUMBERS)
        self.assertIsNone(r.headers["Preference-Applied"])
        self.assertEqual(len(r.json["value"]), 12)
        self.assertNotIn("@odata.nextLink", r.json)

    def test_top_alone_and_top_with_maxpagesize(self):
        r = self.get(NUMBERS, [("$top", "7")])
        self.assertEqual(len(r.json["value"]), 7)
        self.assertNotIn("@odata.nextLink", r.json)
        # both: $top is ignored (page-results, 2024 edition)
        r = self.get(NUMBERS, [("$top", "7")], prefer="odata.maxpagesize=5")
        self.assertEqual(len(r.json["value"]), 5)
        rows, pages = self.all_pages(r, "odata.maxpagesize=5")
        self.assertEqual(len(rows), 12)
        # a page link followed without the preference: $top + $skiptoken
        link = r.json["@odata.nextLink"]
        self.assertODataError(self.follow(link), 400, "0x0")

    def test_prefer_combined_with_annotations(self):
        r = self.get(NUMBERS, prefer='odata.include-annotations="OData.'
                     'Community.Display.V1.FormattedValue,Microsoft.'
                     'Dynamics.CRM.*", odata.maxpagesize=3')
        self.assertEqual(len(r.json["value"]), 3)
        applied = r.headers["Preference-Applied"]
        self.assertIn("odata.maxpagesize=3", applied)
        self.assertIn("odata.include-annotations=", applied)

    def test_re_encoded_link_is_rejected(self):
        link = self.first(5).json["@odata.nextLink"]
        path, query = link.split("?", 1)
        twice = path + "?" + quote(query, safe="=&$")
        self.assertODataError(self.follow(twice), 400, "0x80040203")
        token = link.split("$skiptoken=")[1]
        # decoded once by the client, then sent with only the outer layer
        # encoded again: the inner cookie arrives decoded
        once = unquote(unquote(token))
        mangled = link.split("$skiptoken=")[0] + "$skiptoken=" + \
            quote(once, safe="")
        self.assertODataError(self.follow(mangled), 400, "0x80040203")
        upper = re.sub(r"%25([0-9a-f]{2})",
                       lambda m: "%25" + m.group(1).upper(), link)
        self.assertNotEqual(upper, link)
        self.assertODataError(self.follow(upper), 400, "0x80040203")

    def test_decoded_link_is_not_a_request(self):
        link = self.first(5).json["@odata.nextLink"]
        raw = unquote(link)
        status, _, _ = self.emu.request("GET", "/api/data/v9.2/" + NUMBERS +
                                        "?" + raw.split("?", 1)[1]
                                        .replace(" ", "%20"),
                                        headers=self.headers())
        self.assertEqual(status, 400)

    def test_edited_cookie_is_rejected(self):
        link = self.first(5).json["@odata.nextLink"]
        for old, new in (("pagenumber=%222%22", "pagenumber=%223%22"),
                         ("istracking=%22False%22", "istracking=%22True%22"),
                         ("%257b", "%257c")):
            self.assertIn(old, link)
            r = self.follow(link.replace(old, new, 1))
            self.assertODataError(r, 400, "0x80040203")
        r = self.get(NUMBERS, raw_query="$skiptoken=garbage")
        self.assertODataError(r, 400, "0x80040203")

    def test_new_rows_after_the_cursor_are_seen(self):
        r = self.first(5)
        link = r.json["@odata.nextLink"]
        last = r.json["value"][-1][NUMBER_ID]
        key = guid_sort_key(last)
        # a new row sorting after the cursor shows up on a later page
        new_id = "ffffffff-0000-4000-8000-ffffffffffff"
        self.assertGreater(guid_sort_key(new_id), key)
        status, _ = self.control("POST", "admin/number", {
            "id": new_id, "name": "Late", "configuration": CFG_A,
            "phone": "+4915199999999", "status": "single_opt_in"})
        self.assertEqual(status, 201)
        try:
            rows = [x[NUMBER_ID] for x in r.json["value"]]
            more, _ = self.all_pages(self.follow(link, "odata.maxpagesize=5"),
                                     "odata.maxpagesize=5")
            rows += [x[NUMBER_ID] for x in more]
            self.assertIn(new_id, rows)
            self.assertEqual(len(rows), 13)
        finally:
            self.control("DELETE", "admin/number/" + new_id)


class ServerCapTest(EmulatorTest):
    args = ["--max-page-size", "4"]

    def test_server_cap_applies(self):
        r = self.get(NUMBERS, prefer="odata.maxpagesize=10")
        self.assertEqual(r.headers["Preference-Applied"],
                         "odata.maxpagesize=4")
        self.assertEqual(len(r.json["value"]), 4)
        r = self.get(NUMBERS)
        self.assertEqual(len(r.json["value"]), 4)
        rows, pages = self.all_pages(r)
        self.assertEqual(len(rows), 12)
        r = self.get(NUMBERS, prefer="odata.maxpagesize=5001")
        self.assertODataError(r, 400, "0x0")


if __name__ == "__main__":
    unittest.main()
