"""Shared pieces of the emulator's unit tests (not a test module itself).

EmulatorTest starts one emulator per test class (setUpClass) on --port 0
with a small hand-made seed whose rows every test may rely on, and offers
helpers to call the Web API, the token endpoint and the control API.
Receiver is a webhook endpoint (stdlib http.server) that records what the
emulator POSTs and answers with scripted statuses.
"""

import collections
import json
import os
import ssl
import subprocess
import tempfile
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from launcher import API, CLIENT_ID, CLIENT_SECRET, TENANT, Emulator

NUMBERS = "inogic_optinoptoutnumbers"
CONFIGS = "inogic_configurations"
PHONE = "inogic_phonenumber"
STATUS = "inogic_optinstatus"
LOOKUP = "_inogic_configurationid_value"
NUMBER_ID = "inogic_optinoptoutnumberid"
CONFIG_ID = "inogic_configurationid"
RELATIONSHIP = "inogic_configuration_inogic_optinoptoutnumber"
SINGLE, DOUBLE, OPTED_OUT = 100000000, 100000001, 100000002

CFG_A = "6a1c0d6e-0000-4000-8000-000000000001"
CFG_B = "6a1c0d6e-0000-4000-8000-000000000002"
CFG_C = "6a1c0d6e-0000-4000-8000-000000000003"


def nid(n):
    """Number ids whose SQL Server order differs from string order: the
    last group varies least, the first group most."""
    return "%08x-0000-4000-8000-%012x" % (0xf0000000 - n * 0x1000, n % 3)


def small_seed():
    configs = [
        {"id": CFG_A, "name": "WA Main", "double_opt_in": True,
         "default_region": "DE", "phone_number_id": "111", "waba_id": "w1"},
        {"id": CFG_B, "name": "Alpha Shop", "double_opt_in": False,
         "default_region": "+44", "phone_number_id": "222", "waba_id": "w1"},
        {"id": CFG_C, "name": "Zulu Old", "double_opt_in": False,
         "default_region": "1", "active": False},
    ]
    rows = [
        (CFG_A, "Zoë Müller", "+49 151 2345 6789", "double_opt_in", True),
        (CFG_A, "O'Bryan", "0151/23456789", "opted_out", True),
        (CFG_A, "José Núñez", "+4915111111111", "single_opt_in", True),
        (CFG_A, "łukasz", "0170 1234567", "single_opt_in", False),
        (CFG_A, None, "n/a", "opted_out", True),
        (CFG_B, "Siobhán", "0044 20 7946 0958", "double_opt_in", True),
        (CFG_B, "Grace", "+44 (0)20 7946 0958", "single_opt_in", True),
        (CFG_B, "Ahmed", "07400 123456", None, True),
        (CFG_B, "Priya 100%", "+44 7400 654321", "opted_out", True),
        (CFG_C, "Tomás", "(415) 555-0100", "single_opt_in", True),
        (CFG_C, "Kateřina", "415.555.0199", "double_opt_in", True),
        (None, "Orphan", "+1 212 555 0101", "single_opt_in", True),
    ]
    numbers = []
    for i, (cfg, name, phone, status, active) in enumerate(rows, 1):
        numbers.append({
            "id": nid(i), "configuration": cfg, "name": name,
            "phone": phone, "status": status, "active": active,
            "consent_at": "2025-01-%02dT10:00:00Z" % i,
            "source": None if i % 4 == 0 else "web form",
            "created_on": "2025-01-%02dT09:00:00Z" % i,
            "modified_on": "2025-02-%02dT09:00:00Z" % i})
    return {"format": "optsync-emulator-seed/1",
            "configurations": configs, "numbers": numbers}


def qs(params):
    """Query string the way a careful client encodes it ('+' -> %2B,
    space -> %20; $ , ' ( ) : / stay)."""
    return "&".join("%s=%s" % (k, quote(v, safe="$,'():/*@"))
                    for k, v in params)


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)

    @property
    def error(self):
        return self.json["error"]

    def __repr__(self):
        return "<Resp %d %r>" % (self.status, self.body[:300])


class EmulatorTest(unittest.TestCase):
    """Base class: one emulator per class, seeded with small_seed()."""

    args = []               # extra emulator arguments
    mapping = None
    seed = "small"          # "small", None or a dict
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="dvemu-test-")
        seed_path = None
        seed = small_seed() if cls.seed == "small" else cls.seed
        if seed is not None:
            seed_path = os.path.join(cls.tmp, "seed.json")
            with open(seed_path, "w", encoding="utf-8") as f:
                json.dump(seed, f, ensure_ascii=False)
        cls.emu = Emulator(mapping=cls.mapping, seed=seed_path,
                           extra=cls.extra_args(), tls=cls.tls())
        cls.emu.start()
        cls.tok = cls.emu.token()

    @classmethod
    def extra_args(cls):
        return list(cls.args)

    @classmethod
    def tls(cls):
        return None

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()
        cls.emu.cleanup()
        for name in os.listdir(cls.tmp):
            os.unlink(os.path.join(cls.tmp, name))
        os.rmdir(cls.tmp)

    # -- helpers ---------------------------------------------------------
    def headers(self, prefer=None, token=None, extra=None):
        h = {"Authorization": "Bearer " + (token or self.tok),
             "Accept": "application/json", "OData-MaxVersion": "4.0",
             "OData-Version": "4.0"}
        if prefer:
            h["Prefer"] = prefer
        h.update(extra or {})
        return h

    def get(self, resource, params=(), prefer=None, token=None, extra=None,
            raw_query=None):
        path = API + resource
        query = raw_query if raw_query is not None else qs(params)
        if query:
            path += "?" + query
        return Resp(*self.emu.request("GET", path,
                                      headers=self.headers(prefer, token,
                                                           extra)))

    def send(self, method, resource, doc=None, prefer=None, extra=None,
             raw=None, query=None):
        """A write: JSON body (or raw bytes) with Content-Type
        application/json unless extra sets it (None removes a header)."""
        path = API + resource + ("?" + query if query else "")
        body = raw if raw is not None else \
            (None if doc is None else json.dumps(doc).encode())
        h = self.headers(prefer)
        if body is not None:
            h["Content-Type"] = "application/json"
        for name, value in (extra or {}).items():
            if value is None:
                h.pop(name, None)
            else:
                h[name] = value
        return Resp(*self.emu.request(method, path, body, h))

    def follow(self, link, prefer=None, token=None):
        """GET an @odata.nextLink / deltaLink exactly as received."""
        base = self.emu.base_url
        self.assertTrue(link.startswith(base), link)
        return Resp(*self.emu.request("GET", link[len(base):],
                                      headers=self.headers(prefer, token)))

    def all_pages(self, resp, prefer=None):
        """Follow nextLinks to the end; returns (rows, responses)."""
        pages = [resp]
        rows = list(resp.json["value"])
        while "@odata.nextLink" in pages[-1].json:
            nxt = self.follow(pages[-1].json["@odata.nextLink"], prefer)
            self.assertEqual(nxt.status, 200, nxt)
            pages.append(nxt)
            rows += nxt.json["value"]
        return rows, pages

    def control(self, method, route, doc=None):
        return self.emu.control(method, route, doc)

    def token_request(self, form, tenant=TENANT, headers=None, raw=None):
        body = raw if raw is not None else urlencode(form)
        h = {"Content-Type": "application/x-www-form-urlencoded"}
        h.update(headers or {})
        return Resp(*self.emu.request(
            "POST", "/%s/oauth2/v2.0/token" % tenant, body, h))

    def secret_form(self, **over):
        form = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                "grant_type": "client_credentials",
                "scope": self.emu.base_url + "/.default"}
        form.update(over)
        return {k: v for k, v in form.items() if v is not None}

    def assertODataError(self, resp, status, code, message=None):
        self.assertEqual(resp.status, status, resp)
        self.assertTrue(resp.headers["Content-Type"].startswith(
            "application/json"), resp.headers["Content-Type"])
        err = resp.error
        self.assertEqual(set(err), {"code", "message"})
        self.assertEqual(err["code"], code, err)
        if message is not None:
            self.assertEqual(err["message"], message)
        return err

    def assertAadError(self, resp, status, error, code):
        self.assertEqual(resp.status, status, resp)
        doc = resp.json
        self.assertEqual(doc["error"], error, doc)
        self.assertEqual(doc["error_codes"], [code], doc)
        self.assertTrue(doc["error_description"].startswith(
            "AADSTS%d: " % code), doc)
        for key in ("timestamp", "trace_id", "correlation_id"):
            self.assertIn(key, doc)
        self.assertIn("Trace ID: ", doc["error_description"])
        return doc


class Receiver:
    """A webhook endpoint on 127.0.0.1:<free port>. Every POST is recorded
    as a dict (path, query, headers, body, json); the answer's status is
    taken from `statuses` (a queue; 200 when empty). `hold` makes the
    handler block until release() (for timeouts); nothing sleeps."""

    def __init__(self, tls=None):
        self.requests = []
        self.statuses = collections.deque()
        self.tls = tls              # (certfile, keyfile) or None
        self.lock = threading.Condition()
        self.received = 0
        self.gate = threading.Event()
        self.gate.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                parts = urlsplit(self.path)
                with receiver.lock:
                    receiver.requests.append({
                        "path": parts.path, "query": parse_qs(parts.query),
                        "headers": {k.lower(): v for k, v in
                                    self.headers.items()},
                        "body": body})
                    receiver.received += 1
                    receiver.lock.notify_all()
                    status = receiver.statuses.popleft() \
                        if receiver.statuses else 200
                receiver.gate.wait(60)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:     # the sender gave up (a timeout test)
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket,
                                                 server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def url(self, path="/hook"):
        return "%s://127.0.0.1:%d%s" % ("https" if self.tls else "http",
                                        self.port, path)

    def hold(self):
        self.gate.clear()

    def release(self):
        self.gate.set()

    def answer(self, *statuses):
        with self.lock:
            self.statuses.extend(statuses)

    def wait_for(self, count, timeout=30):
        """Block until `count` POSTs arrived in total (no sleeping)."""
        with self.lock:
            if not self.lock.wait_for(lambda: self.received >= count,
                                      timeout):
                raise AssertionError("receiver got %d of %d requests"
                                     % (self.received, count))

    def take(self):
        """Requests received so far (cleared)."""
        with self.lock:
            out, self.requests = self.requests, []
        for r in out:
            r["json"] = json.loads(r["body"].decode("utf-8"))
        return out

    def close(self):
        self.release()
        self.server.shutdown()
        self.server.server_close()


def make_certificate(directory):
    """A throwaway self-signed certificate for 127.0.0.1 (openssl
    command) -> (certfile, keyfile)."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "1",
                    "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key
