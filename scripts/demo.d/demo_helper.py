#!/usr/bin/env python3
"""scripts/demo's helper (Python standard library): what a shell script
cannot do well.  Each subcommand prints what it saw; every wait has a
deadline and exits 1 when it passes.

  pick SEED                     ids for the story: configuration id, name,
                                phone_number_id, a row and its phone, a
                                second row and its phone
  serve-port LOG                waits for event=serve_started, prints N
  wait-ready PORT               until /readyz answers 200
  register-webhook EMU PORT     the Dataverse webhook (async, post image)
  reply PORT PNID PHONE TEXT    a customer message, signed as Meta signs it
  gate PORT CONFIG PHONE...     POST /v1/gate, one line per phone
  wait-row EMU ID STATUS        until the emulator's row has that status
  wait-new EMU CONFIG PHONE     until a row for PHONE exists under CONFIG
  related EMU CONFIG ROW...     the Configuration's Related view in the
                                Web API: these rows (by id, or by the
                                phone a new row was created with)
  wait-gate PORT CONFIG PHONE DECISION   until the gate answers DECISION
"""

import hashlib
import hmac
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

# config/optsync.ini (the embedded default) and the emulator's identity
API_KEY = "optsync-demo-api-key"
APP_SECRET = b"optsync-demo-app-secret"
DV_KEY = "optsync-demo-webhook-key"
TENANT = "7e57e000-0000-4000-8000-000000000001"
CLIENT = ("0975c0de-0000-4000-8000-000000000002", "optsync-emulator-secret")
DEADLINE = 30
STATUS = {100000000: "Single Opt-In", 100000001: "Double Opt-In",
          100000002: "Opted-Out"}


def http(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) \
        else body
    req = urllib.request.Request(url, data=data, method=method,
                                 headers=dict({"Content-Type":
                                               "application/json"},
                                              **(headers or {})))
    try:
        with urllib.request.urlopen(req, timeout=DEADLINE) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


def wait(cond, what):
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    sys.exit("demo: timed out waiting: " + what)


def pick(seed):
    doc = json.load(open(seed, encoding="utf-8"))
    cfg = next(c for c in doc["configurations"] if not c["double_opt_in"])
    count = {}
    for n in doc["numbers"]:
        count[n.get("expected_e164")] = count.get(n.get("expected_e164"),
                                                  0) + 1
    rows = [n for n in doc["numbers"] if n.get("configuration") == cfg["id"]
            and n.get("expected_e164") and n.get("active", True) and
            count[n["expected_e164"]] == 1 and
            n.get("status") in ("single_opt_in", "double_opt_in")]
    print(cfg["id"], cfg["phone_number_id"], rows[0]["id"],
          rows[0]["expected_e164"], rows[1]["id"], rows[1]["expected_e164"])
    print(cfg["name"])


def serve_port(log):
    def port():
        try:
            m = re.search(r"event=serve_started port=(\d+)",
                          open(log, encoding="utf-8").read())
        except OSError:
            return None
        return m and m.group(1)
    print(wait(port, "optsync serve to start (see %s)" % log))


def wait_ready(port):
    wait(lambda: http("GET", "http://127.0.0.1:%s/readyz" % port)[0] == 200,
         "serve's first sync")


def register_webhook(emu, port):
    status, ep = http("POST", emu + "/_emulator/webhooks/endpoints", {
        "name": "optsync", "authtype": "HttpHeader",
        "url": "http://127.0.0.1:%s/webhooks/dataverse" % port,
        "authvalue": {"X-Optsync-Key": DV_KEY}})
    assert status == 201, ep
    ep = json.loads(ep)
    for message in ("Create", "Update"):
        status, step = http("POST", emu + "/_emulator/webhooks/steps", {
            "endpoint": ep["id"], "message": message, "table": "number",
            "stage": 40, "mode": 1,
            "images": [{"type": "post", "alias": "PostImage"}]})
        assert status == 201, step
    print("registered: service endpoint %s, steps Create and Update on the "
          "numbers table (asynchronous, post-operation, post image)"
          % ep["id"])


def reply(port, pnid, phone, text):
    wa_id = phone.lstrip("+")
    body = json.dumps({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111",
                         "phone_number_id": pnid},
            "contacts": [{"profile": {"name": "Demo"}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": "wamid.demo.%s.%d" % (
                wa_id, time.time_ns()), "timestamp": str(int(time.time())),
                "type": "text", "text": {"body": text}}]}}]}]}).encode()
    sig = "sha256=" + hmac.new(APP_SECRET, body, hashlib.sha256).hexdigest()
    status, answer = http("POST",
                          "http://127.0.0.1:%s/webhooks/whatsapp" % port,
                          body, {"X-Hub-Signature-256": sig})
    print("POST /webhooks/whatsapp (X-Hub-Signature-256: sha256=%s...) -> "
          "%d %s" % (sig[7:19], status, answer.decode()))
    if status != 200:
        sys.exit(1)


def gate_decisions(port, cfg, phones):
    status, body = http("POST", "http://127.0.0.1:%s/v1/gate" % port,
                        {"configuration": cfg, "phones": phones},
                        {"X-API-Key": API_KEY})
    return json.loads(body) if status == 200 else []


def gate(port, cfg, *phones):
    for d in gate_decisions(port, cfg, list(phones)):
        print("  %-16s %-5s %-22s status=%s" % (d["phone"], d["decision"],
                                                d["reason"], d["status"]))


def wait_gate(port, cfg, phone, decision):
    wait(lambda: [d["decision"] for d in gate_decisions(port, cfg, [phone])]
         == [decision], "the gate to answer %s for %s" % (decision, phone))
    gate(port, cfg, phone)


def emu_status(emu, row_id):
    status, body = http("GET", emu + "/_emulator/admin/number/" + row_id)
    return json.loads(body)["row"]["status"] if status == 200 else None


def wait_row(emu, row_id, status):
    wait(lambda: emu_status(emu, row_id) == status,
         "row %s to become %s in the emulator" % (row_id, status))


def rows_of(emu, cfg, phone):
    _, body = http("GET", emu + "/_emulator/state?table=number")
    return [r for r in json.loads(body)["numbers"]
            if r.get("configuration") == cfg and r.get("phone") == phone]


def wait_new(emu, cfg, phone):
    wait(lambda: rows_of(emu, cfg, phone),
         "a row for %s under the Configuration" % phone)


def token(emu):
    form = urllib.parse.urlencode({
        "grant_type": "client_credentials", "client_id": CLIENT[0],
        "client_secret": CLIENT[1], "scope": emu + "/.default"}).encode()
    req = urllib.request.Request(
        "%s/%s/oauth2/v2.0/token" % (emu, TENANT), data=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=DEADLINE) as r:
        return json.load(r)["access_token"]


def related(emu, cfg, *rows):
    # What a CRM user sees under Configuration > Related > Opt-In /
    # Opt-Out Numbers, read through the Web API.
    flt = " or ".join(
        "inogic_phonenumber eq '%s'" % r.replace("'", "''")
        if r.startswith("+") else "inogic_optinoptoutnumberid eq %s" % r
        for r in rows)
    url = ("%s/api/data/v9.2/inogic_configurations(%s)/"
           "inogic_configuration_inogic_optinoptoutnumber?$select="
           "inogic_name,inogic_phonenumber,inogic_optinstatus,"
           "inogic_consentsource,modifiedon&$filter=%s"
           % (emu, cfg, urllib.parse.quote(flt)))
    status, body = http("GET", url, None,
                        {"Authorization": "Bearer " + token(emu)})
    if status != 200:
        sys.exit("demo: the Related view answered %d" % status)
    print("GET .../inogic_configurations(%s)/"
          "inogic_configuration_inogic_optinoptoutnumber" % cfg[:8])
    for r in json.loads(body)["value"]:
        print("  %-16s %-14s source=%-18s modified %s" % (
            r["inogic_phonenumber"], STATUS.get(r["inogic_optinstatus"]),
            r.get("inogic_consentsource"), r["modifiedon"]))


COMMANDS = {"pick": pick, "serve-port": serve_port, "wait-ready": wait_ready,
            "register-webhook": register_webhook, "reply": reply,
            "gate": gate, "wait-gate": wait_gate, "wait-row": wait_row,
            "wait-new": wait_new, "related": related}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[sys.argv[1]](*sys.argv[2:])
