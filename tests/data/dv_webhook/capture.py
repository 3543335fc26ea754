#!/usr/bin/env python3
"""Captures the Dataverse webhook POSTs (RemoteExecutionContext bodies and
their x-ms-dynamics-* headers) that the emulator sends for every message
the connector handles, so the C tests and the fuzz corpus use exactly what
the peer sends.

    python3 tests/data/dv_webhook/capture.py            # rewrite the files
    python3 tests/data/dv_webhook/capture.py --out DIR  # elsewhere

For each case it starts from the same seed, registers one service endpoint
(HttpHeader auth) and the case's step on a fresh emulator state, makes the
case's change as a CRM admin (control API), waits for the delivery and
writes

    <case>.json          the body, byte for byte
    <case>.headers.json  the request headers that describe it (x-ms-*,
                         Content-Type, the auth header)

into tests/data/dv_webhook/ and the body alone into
tests/fuzz/corpus/fuzz_remote_context/ (the fuzz seeds).
tests/integration/test_dv_webhook_capture.py runs capture() again and
checks the emulator still sends the same documents (ids of operations,
correlations and steps, and timestamps, are normalised).

Cases: Create / Update / Delete on both tables; with and without images;
synchronous and asynchronous steps; a cascaded update (Depth 2); a body over
256 KB (trimmed); both mappings (whatsapp4dynamics.json, mapping_alt.json).
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "emulator"))

from emu_testlib import Receiver  # noqa: E402
from launcher import Emulator  # noqa: E402

DEFAULT_MAPPING = os.path.join(SOURCE_DIR, "mapping", "whatsapp4dynamics.json")
ALT_MAPPING = os.path.join(SOURCE_DIR, "tests", "data", "mapping_alt.json")
FUZZ_DIR = os.path.join(SOURCE_DIR, "tests", "fuzz", "corpus",
                        "fuzz_remote_context")

AUTH_HEADER = "X-Optsync-Key"
AUTH_VALUE = "capture-key"

CFG_A = "6a1c0d6e-0000-4000-8000-00000000000a"
CFG_B = "6a1c0d6e-0000-4000-8000-00000000000b"
CFG_NEW = "6a1c0d6e-0000-4000-8000-0000000000c1"
NUM = ["3f2e0000-0000-4000-8000-%012x" % i for i in range(8)]
NUM_NEW = "3f2e0000-0000-4000-8000-0000000000d1"
NUM_NEW2 = "3f2e0000-0000-4000-8000-0000000000d2"

# Headers kept in <case>.headers.json (lower case, as received).
KEPT_HEADERS = ("content-type", "x-ms-dynamics-organization",
                "x-ms-dynamics-entity-name", "x-ms-dynamics-request-name",
                "x-ms-correlation-request-id",
                "x-ms-dynamics-msg-size-exceeded", AUTH_HEADER.lower())


def seed():
    configs = [
        {"id": CFG_A, "name": "WA Main", "double_opt_in": True,
         "phone_number_id": "106540352242922", "waba_id": "102290129340398",
         "default_region": "DE", "created_on": "2025-01-01T09:00:00Z",
         "modified_on": "2025-01-02T09:00:00Z"},
        {"id": CFG_B, "name": "Alpha Shop", "double_opt_in": False,
         "default_region": "+44", "created_on": "2025-01-01T09:00:00Z",
         "modified_on": "2025-01-02T09:00:00Z"}]
    rows = [(CFG_A, "Zoë Müller", "+49 151 2345 6789", "double_opt_in"),
            (CFG_A, "O'Bryan", "0151/23456789", "opted_out"),
            (CFG_A, "José Núñez", "+4915111111111", "single_opt_in"),
            (CFG_B, "Siobhán", "020 7946 0958", "double_opt_in"),
            (CFG_B, "Ahmed", "07400 123456", None)]
    numbers = []
    for i, (cfg, name, phone, status) in enumerate(rows, 1):
        numbers.append({
            "id": NUM[i], "configuration": cfg, "name": name,
            "phone": phone, "status": status, "active": True,
            "consent_at": "2025-01-%02dT10:00:00Z" % i, "source": "web form",
            "created_on": "2025-01-%02dT09:00:00Z" % i,
            "modified_on": "2025-02-%02dT09:00:00Z" % i})
    return {"format": "optsync-emulator-seed/1",
            "configurations": configs, "numbers": numbers}


def alt_extra(values):
    """mapping_alt.json maps topics and paused_until too."""
    values = dict(values)
    values.update({"topics": "promotions,news",
                   "paused_until": "2025-03-01T08:30:00Z"})
    return values


NEW_NUMBER = {"id": NUM_NEW, "configuration": CFG_A, "name": "Léa",
              "phone": "+49 170 1234567", "status": "single_opt_in",
              "consent_at": "2025-02-20T10:00:00Z", "source": "web form"}
NEW_CONFIG = {"id": CFG_NEW, "name": "WA Promo", "double_opt_in": False,
              "phone_number_id": "106540352242999", "default_region": "FR"}
POST_ALL = [{"type": "post", "alias": "PostImage"}]
BIG = "x" * (300 * 1024)

# (case, mapping, [steps], [admin actions]); a step is the control API's
# step document without "endpoint"; an action is (method, route, body).
# Actions before "|" only prepare the state (their steps are not yet
# registered: registration happens between the two lists).
CASES = [
    ("number_create_async", "default",
     [{"message": "Create", "table": "number", "mode": 1}],
     [("POST", "admin/number", NEW_NUMBER)]),
    ("number_create_async_postimage", "default",
     [{"message": "Create", "table": "number", "mode": 1,
       "images": POST_ALL}],
     [("POST", "admin/number", NEW_NUMBER)]),
    ("number_update_async", "default",
     [{"message": "Update", "table": "number", "mode": 1}],
     [("PATCH", "admin/number/" + NUM[1], {"status": "opted_out"})]),
    ("number_update_async_images", "default",
     [{"message": "Update", "table": "number", "mode": 1,
       "images": [{"type": "pre", "alias": "PreImage",
                   "attributes": ["inogic_optinstatus"]},
                  {"type": "post", "alias": "PostImage"}]}],
     [("PATCH", "admin/number/" + NUM[2], {"status": "single_opt_in"})]),
    ("number_update_async_deactivate", "default",
     [{"message": "Update", "table": "number", "mode": 1,
       "images": POST_ALL}],
     [("PATCH", "admin/number/" + NUM[3], {"active": False})]),
    ("number_update_sync", "default",
     [{"message": "Update", "table": "number", "stage": 40, "mode": 0,
       "images": POST_ALL}],
     [("PATCH", "admin/number/" + NUM[3], {"status": "opted_out"})]),
    ("number_update_prevalidation", "default",
     [{"message": "Update", "table": "number", "stage": 10, "mode": 0}],
     [("PATCH", "admin/number/" + NUM[4], {"phone": "020 7946 0959"})]),
    ("number_update_trimmed", "default",
     [{"message": "Update", "table": "number", "mode": 1,
       "images": [{"type": "pre", "alias": "PreImage"}]}],
     [("PATCH", "admin/number/" + NUM[1], {"source": BIG})]),
    ("number_delete_async", "default",
     [{"message": "Delete", "table": "number", "mode": 1}],
     [("DELETE", "admin/number/" + NUM[5], None)]),
    ("number_delete_async_preimage", "default",
     [{"message": "Delete", "table": "number", "mode": 1,
       "images": [{"type": "pre", "alias": "PreImage"}]}],
     [("DELETE", "admin/number/" + NUM[2], None)]),
    ("configuration_create_async_postimage", "default",
     [{"message": "Create", "table": "configuration", "mode": 1,
       "images": POST_ALL}],
     [("POST", "admin/configuration", NEW_CONFIG)]),
    ("configuration_update_async", "default",
     [{"message": "Update", "table": "configuration", "mode": 1}],
     [("PATCH", "admin/configuration/" + CFG_A, {"double_opt_in": False})]),
    ("configuration_update_async_postimage", "default",
     [{"message": "Update", "table": "configuration", "mode": 1,
       "images": POST_ALL}],
     [("PATCH", "admin/configuration/" + CFG_A,
       {"name": "WA Main DE", "default_region": "49"})]),
    ("configuration_delete_async", "default",
     [{"message": "Delete", "table": "configuration", "mode": 1}],
     [("POST", "admin/configuration", NEW_CONFIG), "|",
      ("DELETE", "admin/configuration/" + CFG_NEW, None)]),
    ("number_update_cascade", "default",
     [{"message": "Update", "table": "number", "mode": 1,
       "images": POST_ALL}],
     [("POST", "admin/configuration", NEW_CONFIG),
      ("POST", "admin/number", dict(NEW_NUMBER, id=NUM_NEW2,
                                    configuration=CFG_NEW)), "|",
      ("DELETE", "admin/configuration/" + CFG_NEW, None)]),
    ("alt_number_create_async_postimage", "alt",
     [{"message": "Create", "table": "number", "mode": 1,
       "images": POST_ALL}],
     [("POST", "admin/number", alt_extra(NEW_NUMBER))]),
    ("alt_number_update_async", "alt",
     [{"message": "Update", "table": "number", "mode": 1}],
     [("PATCH", "admin/number/" + NUM[1],
       {"status": "opted_out", "topics": None,
        "paused_until": "2025-04-01T00:00:00Z"})]),
]


def split_actions(actions):
    if "|" in actions:
        i = actions.index("|")
        return actions[:i], actions[i + 1:]
    return [], actions


def run_case(emu, rx, seed_doc, steps, actions):
    """One case on a reset emulator -> list of received requests."""
    status, out = emu.control("POST", "reset", {"keep_data": False})
    assert status == 200, out
    status, out = emu.control("POST", "seed", seed_doc)
    assert status in (200, 201), out
    rx.take()
    before, after = split_actions(actions)
    for method, route, body in before:
        status, out = emu.control(method, route, body)
        assert status in (200, 201), (route, out)
    status, ep = emu.control("POST", "webhooks/endpoints", {
        "name": "optsync", "url": rx.url("/webhooks/dataverse"),
        "authtype": "HttpHeader", "authvalue": {AUTH_HEADER: AUTH_VALUE}})
    assert status == 201, ep
    for step in steps:
        status, out = emu.control("POST", "webhooks/steps",
                                  dict(step, endpoint=ep["id"]))
        assert status == 201, out
    for method, route, body in after:
        status, out = emu.control(method, route, body)
        assert status in (200, 201), (route, out)
    emu.wait(condition="webhooks_idle")
    return rx.take()


def capture(out_dir, fuzz_dir=None):
    """Runs every case; writes the files; returns {case: (headers, body)}."""
    got = {}
    doc = seed()
    rx = Receiver()
    try:
        for mapping_name, path in (("default", DEFAULT_MAPPING),
                                   ("alt", ALT_MAPPING)):
            cases = [c for c in CASES if c[1] == mapping_name]
            emu = Emulator(mapping=path)
            emu.start()
            try:
                for name, _, steps, actions in cases:
                    reqs = run_case(emu, rx, doc, steps, actions)
                    if len(reqs) != 1:
                        raise AssertionError("%s: %d POSTs" %
                                             (name, len(reqs)))
                    got[name] = keep(reqs[0])
            finally:
                emu.stop()
                emu.cleanup()
    finally:
        rx.close()
    for name, (headers, body) in got.items():
        write(out_dir, fuzz_dir, name, headers, body)
    return got


def keep(req):
    h = {k: v for k, v in req["headers"].items() if k in KEPT_HEADERS}
    return dict(sorted(h.items())), req["body"]


def write(out_dir, fuzz_dir, name, headers, body):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, name + ".json"), "wb") as f:
        f.write(body)
    with open(os.path.join(out_dir, name + ".headers.json"), "w",
              encoding="utf-8") as f:
        json.dump(headers, f, indent=1, sort_keys=True)
        f.write("\n")
    if fuzz_dir:
        os.makedirs(fuzz_dir, exist_ok=True)
        with open(os.path.join(fuzz_dir, name + ".json"), "wb") as f:
            f.write(body)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--fuzz-corpus", default=None,
                    help="also write the bodies here (default: the fuzz "
                         "corpus when --out is this directory)")
    args = ap.parse_args(argv)
    fuzz = args.fuzz_corpus or (FUZZ_DIR if os.path.abspath(args.out) ==
                                HERE else None)
    got = capture(args.out, fuzz)
    print("captured %d cases into %s" % (len(got), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
