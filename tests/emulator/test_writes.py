"""Web API writes (emu_writes, emu_payload, emu_pipeline, emu_store.Txn):
create (204 / 201), lookups by @odata.bind, update and upsert, alternate
keys, If-Match / If-None-Match, delete, single-property writes, every
payload rejection, change tracking of writes, and the write faults
(lost response, stale-ETag trap, latency).

Microsoft Learn pages cited below by short name:
  update-delete: "Update and delete table rows using the Web API"
    (current and 2022 editions),
    https://learn.microsoft.com/power-apps/developer/data-platform/webapi/update-delete-entities-using-web-api
  client-errors: "Troubleshoot Dataverse Web API client errors",
    https://learn.microsoft.com/troubleshoot/power-platform/power-apps/dataverse/web-api-client-errors
  date-time: "Behavior and format of the date and time column",
    https://learn.microsoft.com/power-apps/developer/data-platform/behavior-format-date-time-attribute
  compose-requests: "Compose HTTP requests and handle errors",
    https://learn.microsoft.com/power-apps/developer/data-platform/webapi/compose-http-requests-handle-errors
"""

import http.client
import json
import os
import time
import unittest

from emu_testlib import (CFG_A, CFG_B, CONFIG_ID, CONFIGS, LOOKUP, NUMBER_ID,
                         NUMBERS, PHONE, STATUS, EmulatorTest, nid)
from launcher import SOURCE_DIR

NAV = "inogic_ConfigurationId"
SINGLE, DOUBLE, OPTED_OUT = 100000000, 100000001, 100000002
STALE = ("The version of the existing record doesn't match the RowVersion "
         "property provided.")


def bind(cfg):
    return "/%s(%s)" % (CONFIGS, cfg)


class WritesTest(EmulatorTest):
    def tearDown(self):
        self.control("DELETE", "faults")

    def create(self, **extra):
        doc = {"inogic_name": "W", PHONE: "+4915100000000",
               STATUS: SINGLE, NAV + "@odata.bind": bind(CFG_A)}
        doc.update(extra)
        r = self.send("POST", NUMBERS, doc)
        self.assertEqual(r.status, 204, r)
        return r.headers["OData-EntityId"].rsplit("(", 1)[1][:-1]

    def row(self, row_id):
        r = self.get("%s(%s)" % (NUMBERS, row_id))
        self.assertEqual(r.status, 200, r)
        return r.json

    def payload_error(self, r, fragment):
        err = self.assertODataError(r, 400, "0x80048d19")
        self.assertTrue(err["message"].startswith(
            "Error identified in Payload provided by the user for Entity "
            ":'%s'" % NUMBERS), err)
        self.assertIn(fragment, err["message"])

    # -- create -------------------------------------------------------------
    def test_create_answers_204_with_entity_id(self):
        before = self.control("GET", "counters")[1]["version"]
        r = self.send("POST", NUMBERS, {
            "inogic_name": "Neu", PHONE: "+49 170 1", STATUS: DOUBLE,
            NAV + "@odata.bind": bind(CFG_A)})
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.body, b"")
        self.assertEqual(r.headers["OData-Version"], "4.0")
        link = r.headers["OData-EntityId"]
        self.assertRegex(link, r"^%s%s\([0-9a-f-]{36}\)$" % (
            self.emu.api_url.replace(".", r"\."), NUMBERS))
        row = self.row(link.rsplit("(", 1)[1][:-1])
        self.assertEqual(row[LOOKUP], CFG_A)
        self.assertEqual(row[STATUS], DOUBLE)
        self.assertEqual((row["statecode"], row["statuscode"]), (0, 1))
        self.assertGreater(row["versionnumber"], before)
        self.assertEqual(row["@odata.etag"], 'W/"%d"' % row["versionnumber"])
        self.assertEqual(row["createdon"], row["modifiedon"])

    def test_create_with_representation(self):
        r = self.send("POST", NUMBERS, {"inogic_name": "Rep", STATUS: SINGLE},
                      prefer="return=representation",
                      query="$select=inogic_name," + STATUS)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.headers["Preference-Applied"],
                         "return=representation")
        self.assertNotIn("OData-EntityId", r.headers)
        doc = r.json
        self.assertEqual(doc["@odata.context"], "%s$metadata#%s/$entity"
                         % (self.emu.api_url, NUMBERS))
        self.assertEqual(list(doc), ["@odata.context", "@odata.etag",
                                     "inogic_name", STATUS, NUMBER_ID])
        self.assertEqual(r.headers["ETag"], doc["@odata.etag"])
        self.assertEqual(self.row(doc[NUMBER_ID])["inogic_name"], "Rep")

    def test_create_with_client_chosen_id_and_duplicate(self):
        rid = "0c11e47e-0000-4000-8000-000000000001"
        r = self.send("POST", NUMBERS, {NUMBER_ID: rid.upper(),
                                        "inogic_name": "Mine"})
        self.assertEqual(r.status, 204, r)
        self.assertTrue(r.headers["OData-EntityId"].endswith("(%s)" % rid))
        r = self.send("POST", NUMBERS, {NUMBER_ID: rid})
        self.assertODataError(r, 412, "0x80040237", "A record with matching "
                              "key values already exists.")
        r = self.send("POST", NUMBERS, {NUMBER_ID: "not-a-guid"})
        self.payload_error(r, "Cannot convert the literal 'not-a-guid' to "
                           "the expected type 'Edm.Guid'.")

    # -- lookups ----------------------------------------------------------
    def test_bind_forms(self):
        forms = [bind(CFG_B), bind(CFG_B)[1:],
                 self.emu.api_url + bind(CFG_B)[1:],
                 "/api/data/v9.2" + bind(CFG_B),
                 "/%s({%s})" % (CONFIGS, CFG_B.upper())]
        for form in forms:
            rid = self.create(**{NAV + "@odata.bind": form})
            self.assertEqual(self.row(rid)[LOOKUP], CFG_B, form)
        r = self.send("PATCH", "%s(%s)" % (NUMBERS, rid),
                      {NAV + "@odata.bind": None})
        self.assertEqual(r.status, 204, r)
        self.assertIsNone(self.row(rid)[LOOKUP])

    def test_bind_rejections(self):
        missing = "6a1c0d6e-0000-4000-8000-00000000dead"
        r = self.send("POST", NUMBERS, {NAV + "@odata.bind": bind(missing)})
        self.assertODataError(r, 404, "0x80040217", "inogic_configuration "
                              "With Id = %s Does Not Exist" % missing)
        for value, fragment in [
                ("/%s(%s)" % (NUMBERS, nid(1)), "does not match its type"),
                ("/%s(1)" % CONFIGS, "is not a valid entity URI"),
                ("http://elsewhere.example/api/data/v9.2" + bind(CFG_A),
                 "is not a valid entity URI"),
                (42, "must be a string URI")]:
            r = self.send("POST", NUMBERS, {NAV + "@odata.bind": value})
            self.payload_error(r, fragment)
        # $n references exist only inside a change set
        r = self.send("POST", NUMBERS, {NAV + "@odata.bind": "$1"})
        self.assertODataError(r, 400, "0x0", "Content-ID Reference: '$1' "
                              "does not exist in the batch context.")

    def test_lookup_written_by_its_other_names(self):
        # the lookup's logical name with @odata.bind (client-errors'
        # message)
        r = self.send("POST", NUMBERS, {
            "inogic_configurationid@odata.bind": bind(CFG_A)})
        self.payload_error(r, "InnerException : Microsoft.OData.OData"
                           "Exception: An undeclared property "
                           "'inogic_configurationid' which only has property "
                           "annotations in the payload but no property value "
                           "was found in the payload. In OData, only "
                           "declared navigation properties and declared "
                           "named streams can be represented as properties "
                           "without values.")
        # navigation property names are case-sensitive
        r = self.send("POST", NUMBERS, {
            "inogic_configurationId@odata.bind": bind(CFG_A)})
        self.payload_error(r, "An undeclared property "
                           "'inogic_configurationId'")
        # _x_value and the plain logical name: field-reported 0x80060888
        for name in (LOOKUP, "inogic_configurationid"):
            r = self.send("POST", NUMBERS, {name: CFG_A})
            self.assertODataError(r, 400, "0x80060888", "CRM do not support "
                                  "direct update of Entity Reference "
                                  "properties, Use Navigation properties "
                                  "instead.")
        r = self.send("POST", NUMBERS, {LOOKUP + "@odata.bind": bind(CFG_A)})
        self.payload_error(r, "is not a navigation property")
        r = self.send("POST", NUMBERS, {NAV: CFG_A})
        self.payload_error(r, "navigation property 'inogic_Configuration"
                           "Id'; however, a 'StartObject' node was expected")
        r = self.send("POST", NUMBERS, {NAV: {"inogic_name": "deep"}})
        self.assertODataError(r, 501, "0x0")

    # -- payload rejections ---------------------------------------------------
    def test_unknown_and_read_only_columns(self):
        r = self.send("POST", NUMBERS, {"Inogic_Name": "x"})
        self.assertODataError(r, 400, "0x0", "An error occurred while "
                              "validating input parameters: Microsoft.Crm."
                              "CrmException: Invalid property 'Inogic_Name' "
                              "was found in entity 'Microsoft.Dynamics.CRM."
                              "inogic_optinoptoutnumber'. ---> Microsoft."
                              "OData.ODataException: Does not support untyped "
                              "value in non-open type.")
        for name, value in (("versionnumber", 1),
                            ("modifiedon", "2025-01-01T00:00:00Z"),
                            ("createdon", "2025-01-01T00:00:00Z")):
            r = self.send("POST", NUMBERS, {name: value})
            self.payload_error(r, "The property '%s' is read-only" % name)

    def test_value_types(self):
        cases = [({STATUS: "abc"}, "Cannot convert the literal 'abc' to the "
                  "expected type 'Edm.Int32'."),
                 ({STATUS: True}, "Cannot convert the literal 'true'"),
                 ({STATUS: 1.5}, "'Edm.Int32'"),
                 ({"inogic_name": 5}, "'Edm.String'"),
                 ({"statecode": None}, "A null value was found for the "
                  "property named 'statecode', which has the expected type "
                  "'Edm.Int32[Nullable=False]'."),
                 ({"inogic_consentdate": "yesterday"}, "'Edm.DateTimeOffset'"),
                 ({"inogic_consentdate": "1700-01-01T00:00:00Z"},
                  "'Edm.DateTimeOffset'"),
                 ({"inogic_consentdate": "2025-01-28"},
                  "'Edm.DateTimeOffset'")]
        for doc, fragment in cases:
            self.payload_error(self.send("POST", NUMBERS, doc), fragment)
        # numeric strings are Int32 too (Microsoft's own example posts one);
        # offset-less dates are stored as UTC, offsets converted (date-time)
        rid = self.create(**{STATUS: str(OPTED_OUT),
                             "inogic_consentdate": "2025-01-28T10:00:00"})
        self.assertEqual(self.row(rid)[STATUS], OPTED_OUT)
        self.assertEqual(self.row(rid)["inogic_consentdate"],
                         "2025-01-28T10:00:00Z")
        self.send("PATCH", "%s(%s)" % (NUMBERS, rid),
                  {"inogic_consentdate": "2025-01-28T10:00:00+02:00"})
        self.assertEqual(self.row(rid)["inogic_consentdate"],
                         "2025-01-28T08:00:00Z")

    def test_choice_values(self):
        r = self.send("POST", NUMBERS, {STATUS: 42})
        self.assertODataError(r, 400, "0x8004431a", "A validation error "
                              "occurred. The value 42 of 'inogic_optinstatus' "
                              "on record of type 'inogic_optinoptoutnumber' "
                              "is outside the valid range. Accepted Values: "
                              "100000000,100000001,100000002")
        self.assertODataError(self.send("POST", NUMBERS, {"statecode": 2}),
                              400, "0x8004431a")
        rid = self.create(statuscode=2)        # a status sets its state
        self.assertEqual((self.row(rid)["statecode"],
                          self.row(rid)["statuscode"]), (1, 2))
        r = self.send("PATCH", "%s(%s)" % (NUMBERS, rid),
                      {"statecode": 0, "statuscode": 2})
        self.assertODataError(r, 400, "0x8004431a")
        r = self.send("PATCH", "%s(%s)" % (NUMBERS, rid), {"statecode": 0})
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.row(rid)["statuscode"], 1)

    def test_body_rejections(self):
        cases = [(b"not json", "Invalid JSON."),
                 (b"[1, 2]", "An unexpected 'StartArray' node was found"),
                 (b'"x"', "An unexpected 'PrimitiveValue' node"),
                 (b'{"inogic_name": "a", "inogic_name": "b"}',
                  "Multiple property annotations or values with the name "
                  "'inogic_name'"),
                 (b'{"@odata.type": "#Microsoft.Dynamics.CRM.account"}',
                  "A type named 'Microsoft.Dynamics.CRM.account' could not "
                  "be resolved"),
                 (b'{"nothing@OData.Community.Display.V1.FormattedValue": '
                  b'"x"}', "An undeclared property 'nothing'")]
        for raw, fragment in cases:
            self.payload_error(self.send("POST", NUMBERS, raw=raw), fragment)
        r = self.send("POST", NUMBERS, raw=b"{}",
                      extra={"Content-Type": None})
        self.assertODataError(r, 415, "0x0")
        r = self.send("POST", NUMBERS, raw=b"{}",
                      extra={"Content-Type": "text/plain"})
        self.assertODataError(r, 415, "0x0", "The request entity's media type "
                              "'text/plain' is not supported for this "
                              "resource.")
        # accepted: instance annotations of retrieved rows / InitializeFrom,
        # annotations on declared properties, charset and type parameters
        r = self.send("POST", NUMBERS, {
            "@odata.context": "x", "@odata.etag": 'W/"1"',
            "@odata.type": "#Microsoft.Dynamics.CRM.inogic_optinoptoutnumber",
            STATUS + "@OData.Community.Display.V1.FormattedValue": "Single",
            STATUS: SINGLE},
            extra={"Content-Type": "application/json; charset=utf-8; "
                                   "type=entry"})
        self.assertEqual(r.status, 204, r)

    def test_query_options_and_methods(self):
        r = self.send("POST", NUMBERS, {}, query="$filter=statecode%20eq%200")
        self.assertODataError(r, 400, "0x0")
        r = self.send("POST", NUMBERS, {}, query="$select=nope")
        self.assertODataError(r, 400, "0x0")
        rid = self.create()
        r = self.send("PATCH", "%s(%s)" % (NUMBERS, rid), {}, query=(
            "$expand=" + NAV), prefer="return=representation")
        self.assertEqual(r.status, 200, r)   # $expand ignored (update-delete)
        for method, res in (("PATCH", NUMBERS), ("DELETE", NUMBERS),
                            ("POST", "%s(%s)" % (NUMBERS, rid)),
                            ("PUT", "%s(%s)" % (NUMBERS, rid))):
            self.assertODataError(self.send(method, res, {}), 405, "0x0")
        self.assertODataError(self.send("POST", "Nope", {}), 404,
                              "0x8006088a")
        self.assertODataError(self.send("DELETE", "%s(%s)/nope" % (
            NUMBERS, rid)), 404, "0x8006088a")

    # -- update / upsert ------------------------------------------------------
    def test_update(self):
        rid = self.create()
        old = self.row(rid)
        self.control("POST", "clock", {"advance": 61})
        r = self.send("PATCH", "%s(%s)" % (NUMBERS, rid), {STATUS: OPTED_OUT})
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.headers["OData-EntityId"], "%s%s(%s)" % (
            self.emu.api_url, NUMBERS, rid))
        new = self.row(rid)
        self.assertEqual(new[STATUS], OPTED_OUT)
        self.assertGreater(new["versionnumber"], old["versionnumber"])
        self.assertGreater(new["modifiedon"], old["modifiedon"])
        self.assertEqual(new["createdon"], old["createdon"])
        self.assertEqual(new[PHONE], old[PHONE])
        # an update that changes nothing is still an update (update-delete)
        self.send("PATCH", "%s(%s)" % (NUMBERS, rid), {STATUS: OPTED_OUT})
        self.assertGreater(self.row(rid)["versionnumber"],
                           new["versionnumber"])
        r = self.send("PATCH", "%s(%s)" % (NUMBERS, rid), {STATUS: SINGLE},
                      prefer="return=representation",
                      query="$select=" + STATUS)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["Preference-Applied"],
                         "return=representation")
        self.assertEqual(r.json[STATUS], SINGLE)
        self.assertEqual(r.json["@odata.context"], "%s$metadata#%s/$entity"
                         % (self.emu.api_url, NUMBERS))

    def test_upsert_creates_a_missing_row(self):
        rid = "0c11e47e-0000-4000-8000-000000000101"
        r = self.send("PATCH", "%s(%s)" % (NUMBERS, rid),
                      {"inogic_name": "Ups", NAV + "@odata.bind": bind(CFG_A)})
        self.assertEqual(r.status, 204, r)
        self.assertTrue(r.headers["OData-EntityId"].endswith("(%s)" % rid))
        self.assertEqual(self.row(rid)["inogic_name"], "Ups")
        rid2 = "0c11e47e-0000-4000-8000-000000000102"
        r = self.send("PATCH", "%s(%s)" % (NUMBERS, rid2),
                      {"inogic_name": "2"}, prefer="return=representation")
        self.assertEqual(r.status, 201, r)   # created (update-delete, 2022)
        r = self.send("PATCH", "%s(%s)" % (NUMBERS, rid2),
                      {"inogic_name": "3"}, prefer="return=representation")
        self.assertEqual(r.status, 200, r)       # updated
        r = self.send("PATCH", "%s(%s)" % (NUMBERS, rid2),
                      {NUMBER_ID: rid, "inogic_name": "x"})
        self.assertODataError(r, 400, "0x0")

    def test_if_match(self):
        rid = self.create()
        etag = self.row(rid)["@odata.etag"]
        version = int(etag[3:-1])
        res = "%s(%s)" % (NUMBERS, rid)
        stale = 'W/"%d"' % (version - 1)
        for header in (stale, '"%d"' % version, "W/%d" % version):
            r = self.send("PATCH", res, {STATUS: DOUBLE},
                          extra={"If-Match": header})
            self.assertODataError(r, 412, "0x80060882", STALE)
        self.assertEqual(self.row(rid)["@odata.etag"], etag)  # untouched
        r = self.send("PATCH", res, {STATUS: DOUBLE},
                      extra={"If-Match": '%s, %s' % (stale, etag)})
        self.assertEqual(r.status, 204, r)
        r = self.send("PATCH", res, {STATUS: SINGLE}, extra={"If-Match": "*"})
        self.assertEqual(r.status, 204, r)
        missing = "0c11e47e-0000-4000-8000-0000000000ff"
        r = self.send("PATCH", "%s(%s)" % (NUMBERS, missing), {STATUS: SINGLE},
                      extra={"If-Match": "*"})
        self.assertODataError(r, 404, "0x80040217", "inogic_optinoptoutnumber "
                              "With Id = %s Does Not Exist" % missing)
        self.assertEqual(self.get("%s(%s)" % (NUMBERS, missing)).status, 404)
        r = self.send("DELETE", res, extra={"If-Match": etag})
        self.assertODataError(r, 412, "0x80060882", STALE)
        r = self.send("DELETE", res, extra={
            "If-Match": self.row(rid)["@odata.etag"]})
        self.assertEqual(r.status, 204, r)

    def test_if_none_match(self):
        rid = self.create()
        res = "%s(%s)" % (NUMBERS, rid)
        r = self.send("PATCH", res, {STATUS: DOUBLE},
                      extra={"If-None-Match": "*"})
        self.assertODataError(r, 412, "0x80040237", "A record with matching "
                              "key values already exists.")
        r = self.send("PATCH", res, {STATUS: DOUBLE},
                      extra={"If-None-Match": "null"})
        self.assertEqual(r.status, 204, r)   # compose-requests' null: ignored
        new = "0c11e47e-0000-4000-8000-000000000201"
        r = self.send("PATCH", "%s(%s)" % (NUMBERS, new), {STATUS: DOUBLE},
                      extra={"If-None-Match": "*"})
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.row(new)[STATUS], DOUBLE)

    # -- delete ---------------------------------------------------------------
    def test_delete(self):
        rid = self.create()
        res = "%s(%s)" % (NUMBERS, rid)
        r = self.send("DELETE", res)
        self.assertEqual((r.status, r.body), (204, b""))
        self.assertODataError(self.send("DELETE", res), 404, "0x80040217")
        self.assertODataError(self.send("PATCH", res, {STATUS: SINGLE},
                                        extra={"If-Match": "*"}),
                              404, "0x80040217")

    def test_single_property_and_ref(self):
        rid = self.create()
        res = "%s(%s)" % (NUMBERS, rid)
        r = self.send("PUT", res + "/inogic_name", {"value": "Put"})
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.row(rid)["inogic_name"], "Put")
        self.assertEqual(self.send("DELETE", res + "/inogic_name").status,
                         204)
        self.assertIsNone(self.row(rid)["inogic_name"])
        self.payload_error(self.send("DELETE", res + "/statecode"),
                           "A null value was found")
        self.payload_error(self.send("PUT", res + "/inogic_name",
                                     {"val": "x"}), "{\"value\": ...}")
        self.assertODataError(self.send("PUT", res + "/" + LOOKUP,
                                        {"value": CFG_A}), 400, "0x80060888")
        self.payload_error(self.send("PUT", res + "/versionnumber",
                                     {"value": 1}), "read-only")
        r = self.send("PUT", res + "/%s/$ref" % NAV, {
            "@odata.id": self.emu.api_url + bind(CFG_B)[1:]})
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.row(rid)[LOOKUP], CFG_B)
        self.assertEqual(self.send("DELETE", res + "/%s/$ref" % NAV).status,
                         204)
        self.assertIsNone(self.row(rid)[LOOKUP])
        self.payload_error(self.send("PUT", res + "/%s/$ref" % NAV, {}),
                           "'@odata.id'")
        self.assertODataError(self.send("POST", res + "/inogic_name",
                                        {"value": "x"}), 405, "0x0")

    # -- change tracking ------------------------------------------------------
    def test_writes_feed_change_tracking(self):
        prefer = "odata.track-changes, odata.maxpagesize=100"
        r = self.get(NUMBERS, [("$select", "%s,%s" % (STATUS, LOOKUP))],
                     prefer=prefer)
        rows, pages = self.all_pages(r, prefer)
        link = pages[-1].json["@odata.deltaLink"]
        created = self.create()
        updated = nid(5)
        self.send("PATCH", "%s(%s)" % (NUMBERS, updated), {STATUS: SINGLE})
        deleted = self.create()
        self.send("DELETE", "%s(%s)" % (NUMBERS, deleted))
        r = self.follow(link)
        items = r.json["value"]
        changed = [i[NUMBER_ID] for i in items if "reason" not in i]
        gone = [i["id"] for i in items if i.get("reason") == "deleted"]
        self.assertEqual(sorted(changed), sorted([created, updated]))
        self.assertEqual(gone, [deleted])
        by_id = {i[NUMBER_ID]: i for i in items if "reason" not in i}
        self.assertEqual(by_id[updated][STATUS], SINGLE)

    def test_deleting_a_configuration_unlinks_its_numbers(self):
        cfg = "6a1c0d6e-0000-4000-8000-0000000000c1"
        r = self.send("POST", CONFIGS, {CONFIG_ID: cfg, "inogic_name": "Tmp"})
        self.assertEqual(r.status, 204, r)
        rid = self.create(**{NAV + "@odata.bind": bind(cfg)})
        version = self.row(rid)["versionnumber"]
        self.assertEqual(self.send("DELETE", "%s(%s)" % (CONFIGS, cfg)).status,
                         204)
        row = self.row(rid)
        self.assertIsNone(row[LOOKUP])
        self.assertGreater(row["versionnumber"], version)


class AltKeyWritesTest(EmulatorTest):
    """Upsert by alternate key (mapping_alt: cts_mobile + cts_setup)."""

    mapping = os.path.join(SOURCE_DIR, "tests", "data", "mapping_alt.json")
    SET = "cts_consentnumbers"

    def key(self, phone, cfg=CFG_A):
        return "%s(cts_mobile='%s',_cts_setup_value=%s)" % (
            self.SET, phone.replace("'", "''"), cfg)

    def test_upsert_by_key_creates_then_updates(self):
        r = self.send("PATCH", self.key("+491700000001"), {"cts_label": "A"})
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.headers["OData-EntityId"], "%s%s" % (
            self.emu.api_url, self.key("+491700000001")))
        r = self.get(self.key("+491700000001"))
        self.assertEqual(r.status, 200, r)
        first = r.json
        self.assertEqual((first["cts_label"], first["_cts_setup_value"]),
                         ("A", CFG_A))
        # again: the same row is updated; key values in the body are
        # ignored on update (update-delete)
        r = self.send("PATCH", self.key("+491700000001"),
                      {"cts_label": "B", "cts_mobile": "+49999"},
                      prefer="return=representation")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["cts_consentnumberid"],
                         first["cts_consentnumberid"])
        self.assertEqual((r.json["cts_label"], r.json["cts_mobile"]),
                         ("B", "+491700000001"))
        # key strings compare without case, like SQL Server
        r = self.send("PATCH", self.key("+491700000001".upper()),
                      {"cts_label": "C"})
        self.assertEqual(r.status, 204, r)
        r = self.send("PATCH", self.key("+491700000002"), {"cts_label": "N"},
                      prefer="return=representation")
        self.assertEqual(r.status, 201, r)

    def test_key_rejections(self):
        r = self.send("PATCH", self.key("+491700000009"), {"cts_label": "x"},
                      extra={"If-Match": "*"})
        self.assertODataError(r, 404, "0x80040217", "A record with the "
                              "specified key values does not exist in "
                              "cts_consentnumber entity")
        missing = "6a1c0d6e-0000-4000-8000-00000000dead"
        r = self.send("PATCH", self.key("+491700000009", missing), {})
        self.assertODataError(r, 404, "0x80040217")
        r = self.send("PATCH", "%s(cts_mobile='x')" % self.SET, {})
        self.assertODataError(r, 400, "0x0")

    def test_duplicate_key(self):
        doc = {"cts_mobile": "+491700000077",
               "cts_Setup@odata.bind": "/cts_whatsappsetups(%s)" % CFG_A}
        self.assertEqual(self.send("POST", self.SET, doc).status, 204)
        r = self.send("POST", self.SET, dict(doc, cts_mobile="+491700000077"))
        err = self.assertODataError(r, 412, "0x80060892")
        self.assertTrue(err["message"].startswith("Entity Key "), err)
        self.assertIn("A duplicate record cannot be created.", err["message"])
        # another configuration: another key; then an update that clashes
        other = dict(doc, **{"cts_Setup@odata.bind":
                             "/cts_whatsappsetups(%s)" % CFG_B})
        r = self.send("POST", self.SET, other)
        self.assertEqual(r.status, 204, r)
        rid = r.headers["OData-EntityId"].rsplit("(", 1)[1][:-1]
        r = self.send("PATCH", "%s(%s)" % (self.SET, rid), {
            "cts_Setup@odata.bind": "/cts_whatsappsetups(%s)" % CFG_A})
        self.assertODataError(r, 412, "0x80060892")
        # rows with a null key part are not in the key (filtered index)
        for _ in range(2):
            self.assertEqual(self.send("POST", self.SET, {
                "cts_mobile": "+491700000077"}).status, 204)


class WriteFaultsTest(EmulatorTest):
    def setUp(self):
        self.control("POST", "reset", {"keep_data": True})

    def tearDown(self):
        self.control("POST", "reset", {"keep_data": True})

    def test_lost_response_after_commit(self):
        self.control("POST", "faults", {"type": "lost_response",
                                        "match": {"kind": "write"},
                                        "count": 1})
        rid = "0c11e47e-0000-4000-8000-000000000301"
        conn = self.emu.connection()
        h = self.headers()
        h["Content-Type"] = "application/json"
        conn.request("POST", "/api/data/v9.2/" + NUMBERS,
                     json.dumps({NUMBER_ID: rid, "inogic_name": "Lost"}), h)
        with self.assertRaises((http.client.RemoteDisconnected,
                                ConnectionError)):
            conn.getresponse()
        conn.close()
        # the create committed all the same; retrying it is a duplicate
        self.assertEqual(self.get("%s(%s)" % (NUMBERS, rid)).status, 200)
        r = self.send("POST", NUMBERS, {NUMBER_ID: rid})
        self.assertODataError(r, 412, "0x80040237")
        _, c = self.control("GET", "counters")
        self.assertEqual(c["faults"][0]["fired"], 1)

    def test_lost_response_on_update(self):
        row = self.get("%s(%s)" % (NUMBERS, nid(3))).json
        self.control("POST", "faults", {"type": "lost_response", "count": 1,
                                        "match": {"method": "PATCH"}})
        with self.assertRaises((http.client.RemoteDisconnected,
                                ConnectionError)):
            self.send("PATCH", "%s(%s)" % (NUMBERS, nid(3)),
                      {STATUS: OPTED_OUT},
                      extra={"If-Match": row["@odata.etag"]})
        r = self.send("PATCH", "%s(%s)" % (NUMBERS, nid(3)),
                      {STATUS: OPTED_OUT},
                      extra={"If-Match": row["@odata.etag"]})
        self.assertODataError(r, 412, "0x80060882")   # it did happen

    def test_stale_etag_trap(self):
        row = self.get("%s(%s)" % (NUMBERS, nid(4))).json
        status, out = self.control("POST", "faults", {
            "type": "admin_edit", "table": "number", "id": nid(4).upper(),
            "values": {"status": "opted_out"}})
        self.assertEqual(status, 201, out)
        fid = out["faults"][0]["id"]
        # reads do not trip it; the next write does
        self.assertEqual(self.get("%s(%s)" % (NUMBERS, nid(4))).json,
                         row)
        r = self.send("PATCH", "%s(%s)" % (NUMBERS, nid(4)),
                      {STATUS: DOUBLE}, extra={"If-Match": row["@odata.etag"]})
        self.assertODataError(r, 412, "0x80060882", STALE)
        fresh = self.get("%s(%s)" % (NUMBERS, nid(4))).json
        self.assertEqual(fresh[STATUS], OPTED_OUT)         # the admin's edit
        r = self.send("PATCH", "%s(%s)" % (NUMBERS, nid(4)),
                      {STATUS: DOUBLE},
                      extra={"If-Match": fresh["@odata.etag"]})
        self.assertEqual(r.status, 204, r)                 # count 1: spent
        fault = [f for f in self.control("GET", "faults")[1]["faults"]
                 if f["id"] == fid][0]
        self.assertEqual(fault["fired"], 1)
        # values default to {}: a new version only; by entity set name
        self.control("POST", "faults", {"type": "admin_edit", "id": nid(4),
                                        "table": NUMBERS})
        etag = self.get("%s(%s)" % (NUMBERS, nid(4))).json["@odata.etag"]
        r = self.send("DELETE", "%s(%s)" % (NUMBERS, nid(4)),
                      extra={"If-Match": etag})
        self.assertODataError(r, 412, "0x80060882")
        bad = self.control("POST", "faults", {"type": "admin_edit"})
        self.assertEqual(bad[0], 400)

    def test_latency(self):
        status, out = self.control("POST", "latency", {"latency_ms": 150})
        self.assertEqual((status, out), (200, {"latency_ms": 150.0,
                                               "op_ms": 0.0}))
        t0 = time.monotonic()
        self.assertEqual(self.get(NUMBERS).status, 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.15)
        self.control("POST", "latency", {"latency_ms": 0, "op_ms": 120})
        t0 = time.monotonic()
        self.assertEqual(self.get(NUMBERS).status, 200)
        self.assertLess(time.monotonic() - t0, 0.12)     # reads: no op time
        t0 = time.monotonic()
        self.send("PATCH", "%s(%s)" % (NUMBERS, nid(6)), {STATUS: SINGLE})
        self.assertGreaterEqual(time.monotonic() - t0, 0.12)
        self.assertEqual(self.control("POST", "latency",
                                      {"latency_ms": -1})[0], 400)
        self.control("POST", "reset", {"keep_data": True})
        self.assertEqual(self.control("GET", "latency")[1],
                         {"latency_ms": 0.0, "op_ms": 0.0})


class LatencyFlagTest(EmulatorTest):
    args = ["--latency-ms", "120"]
    seed = None

    def test_flag_sets_the_latency(self):
        self.assertEqual(self.control("GET", "latency")[1]["latency_ms"],
                         120.0)
        t0 = time.monotonic()
        self.get(NUMBERS)
        self.assertGreaterEqual(time.monotonic() - t0, 0.12)
        t0 = time.monotonic()
        self.control("GET", "health")          # not the control API
        self.assertLess(time.monotonic() - t0, 0.12)


if __name__ == "__main__":
    unittest.main()
