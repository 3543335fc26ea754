"""The captured Dataverse webhook bodies (tests/data/dv_webhook/) are still
what the emulator sends: capture.py runs every case again against fresh
emulators and each body and its headers must equal the stored one once the
values that differ per run are normalised (correlation, operation, request
and step ids, timestamps, row versions).  The fuzz seeds must be the same
bytes as the stored bodies.  When the emulator changes on purpose, rerun
`python3 tests/data/dv_webhook/capture.py` and commit the result.
"""

import importlib.util
import json
import os
import re
import tempfile
import unittest

SOURCE_DIR = os.environ.get("OPTSYNC_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
DATA_DIR = os.path.join(SOURCE_DIR, "tests", "data", "dv_webhook")
FUZZ_DIR = os.path.join(SOURCE_DIR, "tests", "fuzz", "corpus",
                        "fuzz_remote_context")

GUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                     r"[0-9a-f]{12}$")
DATE_RE = re.compile(r"^/Date\(-?\d+([+-]\d{4})?\)/$")
ZERO = "00000000-0000-0000-0000-000000000000"
PER_RUN_IDS = ("CorrelationId", "OperationId", "RequestId")
PER_RUN_ATTRS = ("createdon", "modifiedon", "versionnumber")


def load_capture():
    spec = importlib.util.spec_from_file_location(
        "dv_webhook_capture", os.path.join(DATA_DIR, "capture.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def per_run(value, kind):
    if kind == "guid" and isinstance(value, str) and GUID_RE.match(value) \
            and value != ZERO:
        return "<guid>"
    if kind == "date" and isinstance(value, str) and DATE_RE.match(value):
        return "<date>"
    if kind == "attr" and value is not None:
        return "<%s>" % type(value).__name__
    return value


def normalise(doc):
    """The body with the values that differ per run replaced by their
    kind (a date stays a date, an id an id)."""
    if isinstance(doc, list):
        return [normalise(v) for v in doc]
    if not isinstance(doc, dict):
        return doc
    out = {}
    for k, v in doc.items():
        if k in PER_RUN_IDS:
            out[k] = per_run(v, "guid")
        elif k == "OperationCreatedOn":
            out[k] = per_run(v, "date")
        elif k == "OwningExtension" and isinstance(v, dict):
            out[k] = dict(v, Id=per_run(v.get("Id"), "guid"))
        else:
            out[k] = normalise(v)
    if set(out) == {"key", "value"} and out["key"] in PER_RUN_ATTRS:
        out["value"] = per_run(doc["value"], "attr")
    # Create answers the new id in OutputParameters; ids are from the seed.
    return out


def normalise_headers(h):
    h = dict(h)
    if "x-ms-correlation-request-id" in h:
        h["x-ms-correlation-request-id"] = per_run(
            h["x-ms-correlation-request-id"], "guid")
    return h


class CaptureTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.capture = load_capture()
        cls.tmp = tempfile.TemporaryDirectory(prefix="dvhook-capture-")
        cls.got = cls.capture.capture(cls.tmp.name)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def stored(self, name):
        with open(os.path.join(DATA_DIR, name + ".json"), "rb") as f:
            body = f.read()
        with open(os.path.join(DATA_DIR, name + ".headers.json"),
                  encoding="utf-8") as f:
            headers = json.load(f)
        return headers, body

    def test_every_case_is_stored_and_nothing_else(self):
        names = {c[0] for c in self.capture.CASES}
        self.assertEqual(set(self.got), names)
        stored = {f[:-len(".headers.json")] for f in os.listdir(DATA_DIR)
                  if f.endswith(".headers.json")}
        self.assertEqual(stored, names)

    def test_bodies_are_what_the_emulator_sends(self):
        for name, (headers, body) in sorted(self.got.items()):
            with self.subTest(case=name):
                want_h, want_b = self.stored(name)
                self.assertEqual(normalise(json.loads(body)),
                                 normalise(json.loads(want_b)))
                self.assertEqual(normalise_headers(headers),
                                 normalise_headers(want_h))
                # DataContractJsonSerializer's text: '/' escaped
                self.assertNotIn(b"http://", body)
                self.assertEqual(b"\\/" in body, b"\\/" in want_b)

    def test_fuzz_seeds_are_the_stored_bodies(self):
        for name in self.got:
            with self.subTest(case=name):
                with open(os.path.join(FUZZ_DIR, name + ".json"), "rb") as f:
                    self.assertEqual(f.read(), self.stored(name)[1])

    def test_normalising_keeps_what_matters(self):
        # The comparison must still see a changed status or row id.
        _, body = self.stored("number_update_async_images")
        doc = json.loads(body)
        target = doc["InputParameters"][0]["value"]
        before = normalise(doc)
        target["Attributes"][0]["value"]["Value"] += 1
        self.assertNotEqual(normalise(doc), before)
        doc = json.loads(body)
        doc["PrimaryEntityId"] = ZERO
        self.assertNotEqual(normalise(doc), before)


if __name__ == "__main__":
    unittest.main()
