"""Web API reads (emu_webapi, emu_odata, emu_serialize): $select, $filter,
$orderby, $top, $count, annotations, retrieve by id / alternate key, the
Related view, case-sensitive names and the documented error shapes."""

import json
import os
import re
import unittest

from emu_testlib import (CFG_A, CFG_B, CFG_C, CONFIGS, DOUBLE, LOOKUP,
                         NUMBER_ID, NUMBERS, OPTED_OUT, PHONE, RELATIONSHIP,
                         SINGLE, STATUS, EmulatorTest, nid)
from launcher import SOURCE_DIR

JSON_CT = ("application/json; odata.metadata=minimal; odata.streaming=true;"
           " IEEE754Compatible=false; charset=utf-8")
FORMATTED = "@OData.Community.Display.V1.FormattedValue"


class QueryTest(EmulatorTest):
    def names(self, resp):
        return [r["inogic_name"] for r in resp.json["value"]]

    def ids(self, resp):
        return {r[NUMBER_ID] for r in resp.json["value"]}

    def filt(self, expr, select="inogic_name"):
        return self.get(NUMBERS, [("$select", select), ("$filter", expr)])

    # -- shapes ---------------------------------------------------------------
    def test_collection_shape_without_select(self):
        r = self.get(NUMBERS)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["Content-Type"], JSON_CT)
        self.assertEqual(r.headers["OData-Version"], "4.0")
        self.assertIsNone(r.headers["Preference-Applied"])
        doc = r.json
        self.assertEqual(doc["@odata.context"], self.emu.api_url +
                         "$metadata#" + NUMBERS)
        self.assertEqual(len(doc["value"]), 12)
        row = doc["value"][0]
        self.assertEqual(list(row)[0], "@odata.etag")
        self.assertRegex(row["@odata.etag"], r'^W/"\d+"$')
        self.assertEqual(row["@odata.etag"],
                         'W/"%d"' % row["versionnumber"])
        for col in (NUMBER_ID, "inogic_name", PHONE, STATUS, LOOKUP,
                    "statecode", "statuscode", "inogic_consentdate",
                    "inogic_consentsource", "createdon", "modifiedon"):
            self.assertIn(col, row)
        self.assertNotIn("inogic_configurationid", row)
        self.assertFalse(any("@OData" in k or "@Microsoft" in k
                             for k in row))
        self.assertRegex(row["modifiedon"],
                         r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

    def test_select_shape_and_context(self):
        r = self.get(NUMBERS, [("$select", "%s,%s,%s" % (PHONE, STATUS,
                                                         LOOKUP))])
        doc = r.json
        self.assertEqual(doc["@odata.context"], "%s$metadata#%s(%s,%s,%s)" % (
            self.emu.api_url, NUMBERS, PHONE, STATUS, LOOKUP))
        for row in doc["value"]:
            self.assertEqual(list(row), ["@odata.etag", PHONE, STATUS,
                                         LOOKUP, NUMBER_ID])

    def test_unknown_or_wrong_case_property(self):
        for name in ("inogic_Phonenumber", "nosuch", "inogic_configurationid"):
            r = self.get(NUMBERS, [("$select", name)])
            self.assertODataError(
                r, 400, "0x0", "Could not find a property named '%s' on "
                "type 'Microsoft.Dynamics.CRM.inogic_optinoptoutnumber'."
                % name)
            r = self.filt("%s eq 'x'" % name)
            self.assertODataError(r, 400, "0x0")

    def test_wrong_case_entity_set(self):
        for name in ("Inogic_optinoptoutnumbers", "inogic_optinoptoutnumber",
                     "accounts"):
            r = self.get(name)
            self.assertODataError(r, 404, "0x8006088a",
                                  "Resource not found for the segment "
                                  "'%s'." % name)

    def test_wrong_case_option_and_unsupported_options(self):
        r = self.get(NUMBERS, raw_query="$Select=inogic_name")
        self.assertODataError(r, 400, "0x0")
        for opt in ("$skip=1", "$search=x", "$format=json"):
            r = self.get(NUMBERS, raw_query=opt)
            self.assertODataError(r, 400, "0x0")
            self.assertIn("not supported", r.error["message"])
        r = self.get(NUMBERS, raw_query="$top=1&$top=2")
        self.assertODataError(r, 400, "0x0")
        r = self.get(NUMBERS, raw_query="custom=1&$top=1")
        self.assertEqual(r.status, 200)

    # -- $filter --------------------------------------------------------------
    def test_filter_string_case_insensitive_and_quotes(self):
        self.assertEqual(self.names(self.filt("inogic_name eq 'o''bryan'")),
                         ["O'Bryan"])
        self.assertEqual(
            self.names(self.filt("inogic_name eq 'ZOË MÜLLER'")),
            ["Zoë Müller"])
        r = self.filt("inogic_name eq 'O'Bryan'")
        self.assertODataError(r, 400, "0x0")
        r = self.filt("inogic_name eq 'abc")
        self.assertODataError(r, 400, "0x0", "There is an unterminated "
                              "literal at position 15 in "
                              "'inogic_name eq 'abc'.")

    def test_filter_plus_must_be_encoded(self):
        r = self.get(NUMBERS, raw_query="$filter=%s%%20eq%%20"
                     "'%%2B4915111111111'" % PHONE)
        self.assertEqual(len(r.json["value"]), 1)
        r = self.get(NUMBERS, raw_query="$filter=%s%%20eq%%20'+4915111111111'"
                     % PHONE)
        self.assertEqual(r.json["value"], [])

    def test_filter_guid_bare_and_quoted(self):
        for lit in (CFG_B, "'%s'" % CFG_B, CFG_B.upper()):
            r = self.filt("%s eq %s" % (LOOKUP, lit))
            self.assertEqual(len(r.json["value"]), 4, lit)
        r = self.filt("%s eq 'not-a-guid'" % LOOKUP)
        self.assertODataError(r, 400, "0x0")
        r = self.filt("%s eq %s" % (NUMBER_ID, nid(3)))
        self.assertEqual(self.names(r), ["José Núñez"])

    def test_filter_null_bool_number(self):
        self.assertEqual(self.names(self.filt("%s eq null" % LOOKUP)),
                         ["Orphan"])
        self.assertEqual(len(self.filt("%s ne null" % LOOKUP)
                             .json["value"]), 11)
        self.assertEqual(self.names(self.filt("%s eq null" % STATUS)),
                         ["Ahmed"])
        r = self.filt("%s eq %d" % (STATUS, OPTED_OUT))
        self.assertEqual(sorted(self.names(r), key=str),
                         sorted(["O'Bryan", None, "Priya 100%"], key=str))
        r = self.filt("statecode eq 1")
        self.assertEqual(self.names(r), ["łukasz"])
        r = self.get(CONFIGS, [("$select", "inogic_name"),
                               ("$filter", "inogic_doubleoptin eq true")])
        self.assertEqual([x["inogic_name"] for x in r.json["value"]],
                         ["WA Main"])

    def test_filter_null_semantics(self):
        # a comparison with a null column is unknown: neither eq nor ne
        r = self.filt("%s ne %d" % (STATUS, OPTED_OUT))
        self.assertNotIn("Ahmed", self.names(r))
        self.assertEqual(len(r.json["value"]), 8)
        r = self.filt("not (%s eq %d)" % (STATUS, OPTED_OUT))
        self.assertNotIn("Ahmed", self.names(r))

    def test_filter_datetimeoffset(self):
        r = self.filt("modifiedon ge 2025-02-11T09:00:00Z")
        self.assertEqual(len(r.json["value"]), 2)
        r = self.get(NUMBERS, raw_query="$filter=modifiedon%20ge%20"
                     "2025-02-11T10:00:00%2B01:00")
        self.assertEqual(len(r.json["value"]), 2)
        r = self.filt("modifiedon gt 2025-02-11")
        self.assertEqual(len(r.json["value"]), 2)
        r = self.filt("modifiedon gt 'yesterday'")
        self.assertODataError(r, 400, "0x0")

    def test_filter_logic_and_functions(self):
        r = self.filt("(%s eq %s or %s eq %s) and statecode eq 0"
                      % (LOOKUP, CFG_A, LOOKUP, CFG_C))
        self.assertEqual(len(r.json["value"]), 6)
        r = self.filt("contains(inogic_name,'ü')")
        self.assertEqual(self.names(r), ["Zoë Müller"])
        r = self.filt("startswith(%s,'+44')" % PHONE)
        self.assertEqual(len(r.json["value"]), 2)
        r = self.filt("endswith(inogic_name,'100[%]')")
        self.assertEqual(self.names(r), ["Priya 100%"])
        r = self.filt("not contains(inogic_name,'a')")
        self.assertIn("Zoë Müller", self.names(r))

    def test_filter_errors(self):
        cases = ["%s EQ 'x'" % PHONE, "%s eq 1" % PHONE,
                 "%s eq 'x'" % STATUS, "%s eq" % PHONE, "(%s eq 'x'" % PHONE,
                 "tolower(%s) eq 'x'" % PHONE, "%s eq 'x' and" % PHONE,
                 "foo(%s,'x')" % PHONE, "contains(%s,1)" % PHONE]
        for expr in cases:
            r = self.filt(expr)
            self.assertODataError(r, 400, "0x0")
        r = self.filt("%s eq 'x'" % STATUS)
        self.assertEqual(r.error["message"], "A binary operator with "
                         "incompatible types was detected. Found operand "
                         "types 'Edm.Int32' and 'Edm.String' for operator "
                         "kind 'Equal'.")

    def test_parameter_alias(self):
        r = self.get(NUMBERS, raw_query="$select=inogic_name&$filter="
                     "inogic_name%20eq%20@p1&@p1='Grace'")
        self.assertEqual(self.names(r), ["Grace"])

    # -- $orderby / $top / $count ---------------------------------------------
    def test_orderby(self):
        r = self.get(NUMBERS, [("$select", "inogic_name"),
                               ("$orderby", "inogic_name asc")])
        names = self.names(r)
        self.assertIsNone(names[0])            # nulls first
        self.assertEqual(names[1:], sorted(names[1:], key=str.casefold))
        r = self.get(NUMBERS, [("$select", "inogic_name"),
                               ("$orderby", "inogic_name desc")])
        self.assertEqual(self.names(r), list(reversed(names)))
        r = self.get(NUMBERS, [("$select", "inogic_name"),
                               ("$orderby", "%s desc,inogic_name" % STATUS)])
        names = [x["inogic_name"] for x in r.json["value"]]
        self.assertEqual(names[:3], [None, "O'Bryan", "Priya 100%"])
        self.assertEqual(names[-1], "Ahmed")     # null status: last in desc
        r = self.get(NUMBERS, [("$select", "inogic_name,%s" % LOOKUP),
                               ("$orderby", LOOKUP)])
        order = [x[LOOKUP] for x in r.json["value"]]
        # lookups sort by the related name: Alpha Shop, WA Main, Zulu Old
        self.assertEqual(order, [None] + [CFG_B] * 4 + [CFG_A] * 5 +
                         [CFG_C] * 2)
        r = self.get(NUMBERS, [("$orderby", "inogic_name sideways")])
        self.assertODataError(r, 400, "0x0")

    def test_top_and_count(self):
        r = self.get(NUMBERS, [("$top", "3"), ("$count", "true")])
        self.assertEqual(len(r.json["value"]), 3)
        self.assertEqual(r.json["@odata.count"], 12)
        self.assertNotIn("@odata.nextLink", r.json)
        self.assertEqual(list(r.json).index("@odata.count"), 1)
        r = self.get(NUMBERS, [("$filter", "statecode eq 0"),
                               ("$count", "true")])
        self.assertEqual(r.json["@odata.count"], 11)
        for bad in (("$top", "-1"), ("$top", "x"), ("$count", "yes")):
            self.assertODataError(self.get(NUMBERS, [bad]), 400, "0x0")

    def test_count_segment(self):
        r = self.get(NUMBERS + "/$count")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["Content-Type"].startswith("text/plain"))
        self.assertEqual(r.body, b"\xef\xbb\xbf12")
        r = self.get(NUMBERS + "/$count", [("$filter", "%s eq %s"
                                            % (LOOKUP, CFG_B))])
        self.assertEqual(r.body.decode("utf-8-sig"), "4")
        r = self.get(NUMBERS + "/$Count")
        self.assertODataError(r, 404, "0x8006088a")

    def test_total_count_annotations(self):
        r = self.get(NUMBERS, [("$count", "true"), ("$top", "1")],
                     prefer='odata.include-annotations="Microsoft.Dynamics.'
                     'CRM.*"')
        doc = r.json
        self.assertEqual(doc["@Microsoft.Dynamics.CRM.totalrecordcount"], 12)
        self.assertFalse(
            doc["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"])

    # -- annotations ----------------------------------------------------------
    def test_annotations_only_on_request(self):
        select = [("$select", "%s,%s,statecode,modifiedon" % (STATUS,
                                                                LOOKUP)),
                  ("$filter", "%s eq %s" % (NUMBER_ID, nid(1)))]
        plain = self.get(NUMBERS, select).json["value"][0]
        self.assertFalse([k for k in plain if "@" in k[1:]])
        r = self.get(NUMBERS, select, prefer='odata.include-annotations='
                     '"OData.Community.Display.V1.FormattedValue"')
        row = r.json["value"][0]
        self.assertEqual(row[STATUS + FORMATTED], "Double Opt-In")
        self.assertEqual(row["statecode" + FORMATTED], "Active")
        self.assertEqual(row[LOOKUP + FORMATTED], "WA Main")
        self.assertEqual(row["modifiedon" + FORMATTED], "2/1/2025 9:00 AM")
        self.assertNotIn(LOOKUP + "@Microsoft.Dynamics.CRM.lookuplogicalname",
                         row)
        self.assertEqual(r.headers["Preference-Applied"],
                         'odata.include-annotations="OData.Community.'
                         'Display.V1.FormattedValue"')
        keys = list(row)
        self.assertLess(keys.index(STATUS + FORMATTED), keys.index(STATUS))
        row = self.get(NUMBERS, select, prefer='odata.include-annotations='
                       '"*"').json["value"][0]
        self.assertEqual(row[LOOKUP + "@Microsoft.Dynamics.CRM."
                             "lookuplogicalname"], "inogic_configuration")
        self.assertEqual(row[LOOKUP + "@Microsoft.Dynamics.CRM."
                             "associatednavigationproperty"],
                         "inogic_ConfigurationId")

    def test_boolean_formatted_value(self):
        r = self.get(CONFIGS, [("$select", "inogic_doubleoptin")],
                     prefer='odata.include-annotations="*"')
        labels = {x["inogic_doubleoptin" + FORMATTED]
                  for x in r.json["value"]}
        self.assertEqual(labels, {"Yes", "No"})

    # -- single rows ----------------------------------------------------------
    def test_retrieve_by_id(self):
        r = self.get("%s(%s)" % (NUMBERS, nid(2)),
                     [("$select", "inogic_name,%s" % STATUS)])
        self.assertEqual(r.status, 200)
        doc = r.json
        self.assertEqual(doc["@odata.context"], "%s$metadata#%s(inogic_name,"
                         "%s)/$entity" % (self.emu.api_url, NUMBERS, STATUS))
        self.assertEqual(doc["inogic_name"], "O'Bryan")
        self.assertEqual(doc[STATUS], OPTED_OUT)
        self.assertEqual(r.headers["ETag"], doc["@odata.etag"])
        full = self.get("%s(%s)" % (NUMBERS, nid(2))).json
        self.assertTrue(full["@odata.context"].endswith(
            "#%s/$entity" % NUMBERS))
        again = self.get("%s(%s)" % (NUMBERS, nid(2)),
                         extra={"If-None-Match": doc["@odata.etag"]})
        self.assertEqual(again.status, 304)

    def test_retrieve_missing_and_malformed(self):
        missing = "00000000-0000-4000-8000-0000000000ff"
        r = self.get("%s(%s)" % (NUMBERS, missing))
        self.assertODataError(r, 404, "0x80040217",
                              "inogic_optinoptoutnumber With Id = %s Does "
                              "Not Exist" % missing)
        r = self.get("%s(abc)" % NUMBERS)
        self.assertODataError(r, 400, "0x0")

    def test_related_view(self):
        r = self.get("%s(%s)/%s" % (CONFIGS, CFG_B, RELATIONSHIP),
                     [("$select", "inogic_name")])
        self.assertEqual(r.status, 200)
        self.assertEqual(sorted(self.names(r)), ["Ahmed", "Grace",
                                                 "Priya 100%", "Siobhán"])
        r = self.get("%s(%s)/%s" % (CONFIGS, CFG_B, RELATIONSHIP),
                     [("$filter", "%s eq %d" % (STATUS, SINGLE))])
        self.assertEqual(self.names(r), ["Grace"])
        r = self.get("%s(%s)/%s/$count" % (CONFIGS, CFG_A, RELATIONSHIP))
        self.assertEqual(r.body.decode("utf-8-sig"), "5")
        r = self.get("%s(%s)/%s" % (CONFIGS, CFG_A, RELATIONSHIP.upper()))
        self.assertODataError(r, 404, "0x8006088a")
        r = self.get("%s(%s)/%s" % (CONFIGS, nid(99), RELATIONSHIP))
        self.assertODataError(r, 404, "0x80040217")

    def test_navigation_and_property(self):
        r = self.get("%s(%s)/inogic_ConfigurationId" % (NUMBERS, nid(6)))
        self.assertEqual(r.json["inogic_name"], "Alpha Shop")
        r = self.get("%s(%s)/inogic_ConfigurationId" % (NUMBERS, nid(12)))
        self.assertEqual(r.status, 204)
        r = self.get("%s(%s)/inogic_configurationid" % (NUMBERS, nid(6)))
        self.assertODataError(r, 404, "0x8006088a")
        r = self.get("%s(%s)/%s" % (NUMBERS, nid(1), STATUS))
        self.assertEqual(r.json["value"], DOUBLE)

    def test_service_document_and_whoami(self):
        r = self.get("")
        self.assertEqual({x["name"] for x in r.json["value"]},
                         {NUMBERS, CONFIGS})
        r = self.get("WhoAmI")
        self.assertEqual(set(r.json) - {"@odata.context"},
                         {"BusinessUnitId", "UserId", "OrganizationId"})
        r = self.get("$metadata")
        self.assertIn(b'EntitySet Name="%s"' % NUMBERS.encode(), r.body)

    # -- headers --------------------------------------------------------------
    def test_header_checks(self):
        r = self.get(NUMBERS, extra={"Accept": "text/html"})
        self.assertODataError(r, 406, "0x0")
        r = self.get(NUMBERS, extra={"OData-MaxVersion": "3.0"})
        self.assertODataError(r, 400, "0x0")
        r = self.get(NUMBERS, extra={"Accept": "application/json;"
                                     "odata.metadata=full"})
        self.assertEqual(r.status, 200)

    def test_post_on_a_function_is_not_found(self):
        # Microsoft Learn, "Troubleshoot Dataverse Web API client errors":
        # the wrong HTTP method on a function -> 404, code ""
        r = self.emu.request("POST", "/api/data/v9.2/WhoAmI", b"{}",
                             self.headers(extra={"Content-Type":
                                                 "application/json"}))
        self.assertEqual(r[0], 404)
        self.assertEqual(json.loads(r[2])["error"]["code"], "")

    def test_unknown_path(self):
        r = self.emu.request("GET", "/nope", headers=self.headers())
        self.assertEqual(r[0], 404)


class AltMappingTest(EmulatorTest):
    """Another publisher prefix, other choice values, alternate key."""

    mapping = os.path.join(SOURCE_DIR, "tests", "data", "mapping_alt.json")

    def test_alt_names_and_values(self):
        r = self.get("cts_consentnumbers",
                     [("$select", "cts_mobile,cts_consent,_cts_setup_value"),
                      ("$filter", "cts_consent eq 71230000")],
                     prefer='odata.include-annotations="*"')
        self.assertEqual(r.status, 200, r)
        rows = r.json["value"]
        self.assertEqual(len(rows), 3)
        self.assertEqual({x["cts_consent@OData.Community.Display.V1."
                            "FormattedValue"] for x in rows}, {"Opted-Out"})
        self.assertEqual(rows[0]["_cts_setup_value@Microsoft.Dynamics.CRM."
                                 "associatednavigationproperty"], "cts_Setup")
        r = self.get("inogic_optinoptoutnumbers")
        self.assertODataError(r, 404, "0x8006088a")

    def test_alternate_key_retrieve(self):
        r = self.get("cts_consentnumbers(cts_mobile='0151/23456789',"
                     "_cts_setup_value=%s)" % CFG_A)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["cts_label"], "O'Bryan")
        r = self.get("cts_consentnumbers(cts_mobile='nope',"
                     "_cts_setup_value=%s)" % CFG_A)
        self.assertODataError(r, 404, "0x80040217")
        r = self.get("cts_consentnumbers(cts_label='x')")
        self.assertODataError(r, 400, "0x0")

    def test_related_view_alt(self):
        r = self.get("cts_whatsappsetups(%s)/cts_whatsappsetup_cts_consent"
                     "number_setup" % CFG_C, [("$select", "cts_label")])
        self.assertEqual(len(r.json["value"]), 2)
        self.assertTrue(re.search(r"#cts_consentnumbers\(cts_label\)$",
                                  r.json["@odata.context"]))


if __name__ == "__main__":
    unittest.main()
