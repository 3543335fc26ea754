#!/usr/bin/env python3
"""Dataverse Web API + Entra ID emulator for optsync's tests and demo.

    python3 tests/emulator/dataverse_emulator.py --port 0 --mapping FILE \\
        [--seed FILE] [--tls-cert F --tls-key F] [--token-lifetime S] \\
        [--delta-token-age S] [--max-page-size N] [...]

Prints exactly one line, `READY port=N`, on stdout once it accepts
connections; everything else goes to stderr. SIGTERM/SIGINT stop it
cleanly (saving --snapshot-save first). Python 3 standard library only.

One origin serves everything:
  POST /{tenant}/oauth2/v2.0/token     Entra ID client credentials (emu_auth)
  GET  /api/data/v9.2/...              Dataverse Web API, reads (emu_webapi)
  POST/PATCH/PUT/DELETE /api/data/...  writes (emu_writes, emu_pipeline)
  POST /api/data/v9.2/$batch           batches (emu_batch)
  *    /_emulator/...                  control API (emu_control)
Webhook steps (emu_webhooks) POST to registered endpoints on writes.
See README.md next to this file for what is emulated and what is not.
"""

import argparse
import json
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from emu_auth import DEFAULT_TENANT, Auth  # noqa: E402
from emu_batch import Batch  # noqa: E402
from emu_control import Control  # noqa: E402
from emu_faults import Faults, Monitor, RequestInfo  # noqa: E402
from emu_respcache import ResponseCache  # noqa: E402
from emu_protection import (BURST, CONCURRENCY, TIME, Limits,  # noqa: E402
                            Protection, Refusal)
from emu_pipeline import OpContext, Pipeline  # noqa: E402
from emu_schema import Schema  # noqa: E402
from emu_store import Store, StoreError  # noqa: E402
from emu_util import Clock, HttpError, ODataError  # noqa: E402
from emu_webapi import Request, WebApi  # noqa: E402
from emu_webhooks import Webhooks  # noqa: E402
from emu_writes import Writes  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MAPPING = os.path.join(HERE, "..", "..", "mapping",
                               "whatsapp4dynamics.json")
TOKEN_RE = re.compile(r"^/([^/]+)/oauth2/v2\.0/token$")
MAX_BODY = 1 << 30
THROTTLE_REASONS = {"requests": BURST, "execution": TIME,
                    "concurrency": CONCURRENCY}


def log(msg):
    sys.stderr.write("dvemu: %s\n" % msg)
    sys.stderr.flush()


class Emulator:
    """Everything one emulator process holds."""

    def __init__(self, args):
        self.args = args
        self.clock = Clock()
        self.schema = Schema.load(args.mapping)
        self.store = Store(self.schema, self.clock)
        self.auth = Auth(self.clock, args.tenant, args.token_lifetime)
        for spec in args.client:
            cid, _, secret = spec.partition(":")
            self.auth.add_client(cid, secret=secret)
        for spec in args.client_cert:
            cid, _, path = spec.partition(":")
            self.auth.add_client(cid, cert_path=path)
        self.webapi = WebApi(self.schema, self.store, self.clock,
                             args.max_page_size, args.delta_token_age)
        self.protection = Protection(self.clock, Limits(
            args.limit_requests, args.limit_window, args.limit_concurrency,
            args.limit_execution_ms, args.concurrency_retry_after))
        self.monitor = Monitor()
        self.faults = Faults(self.monitor)
        self.webhooks = Webhooks(self.schema, self.webapi.ser, self.monitor,
                                 args.host)
        self.pipeline = Pipeline(self.store, self.webhooks)
        self.webapi.writes = Writes(self.webapi, self.pipeline)
        self.webapi.writes.trap = self.apply_traps
        self.webapi.batch = Batch(self.webapi, self.pipeline)
        self.webapi.batch.account = self.account_inner
        self.latency_ms = 0.0
        self.set_latency(args.latency_ms, args.op_ms)
        self.responses = (ResponseCache(args.response_cache << 20)
                          if args.response_cache > 0 else None)
        self.control = Control(self)
        self.port = None
        self.tls = bool(args.tls_cert)
        self.quiet = args.quiet

    def set_latency(self, latency_ms, op_ms):
        """Round-trip latency added to every Web API request, and server
        time added to every write operation (also each one in a batch)."""
        self.latency_ms = float(latency_ms)
        self.webapi.writes.op_ms = float(op_ms)

    def latency(self):
        return {"latency_ms": self.latency_ms,
                "op_ms": self.webapi.writes.op_ms}

    def apply_traps(self, table, row_id):
        """Stale-ETag traps (admin_edit faults) on this row: the admin's
        edit is committed (webhooks and all) before the client's write."""
        def matches(name, fid):
            return self.schema.table(name) is table and fid == row_id
        for fault in self.faults.take_traps(matches):
            values = fault.params.get("values") or {}
            ctx = OpContext.admin()
            try:
                self.pipeline.run(lambda txn: self.pipeline.update(
                    txn, table, row_id,
                    self.store.convert_roles(table, values, txn), ctx))
            except StoreError as e:
                log("admin_edit fault %d not applied: %s" % (fault.id, e))
        self.monitor.notify()

    def account_inner(self, client_id, info, status, counts):
        """One operation of a $batch: counted in the monitor and, after
        the first, as one more request of the caller (emu_protection)."""
        self.monitor.inner(info, status)
        if counts:
            self.protection.count_operation(client_id)

    def origins(self):
        scheme = "https" if self.tls else "http"
        return {"%s://%s:%d" % (scheme, host, self.port)
                for host in ("127.0.0.1", "localhost")}

    def load_files(self):
        if self.args.snapshot_load and os.path.exists(
                self.args.snapshot_load):
            with open(self.args.snapshot_load, encoding="utf-8") as f:
                snap = json.load(f)
            self.store.load_snapshot(snap)
            for tok, entry in snap.get("delta_tokens", {}).items():
                self.webapi.delta_tokens[tok] = list(entry)
        if self.args.seed:
            t0 = time.monotonic()
            with open(self.args.seed, encoding="utf-8") as f:
                counts = self.store.load_seed(json.load(f), replace=False)
            log("seed %s loaded: %s in %.1fs" % (
                self.args.seed, counts, time.monotonic() - t0))

    def save_snapshot(self, path):
        snap = self.store.dump()
        with self.webapi.tlock:
            snap["delta_tokens"] = {k: list(v) for k, v in
                                    self.webapi.delta_tokens.items()}
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(snap, f, ensure_ascii=False)
        os.replace(tmp, path)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True
    ssl_context = None

    def get_request(self):
        sock, addr = super().get_request()
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, socket.timeout)):
            return
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "dvemu/1"
    timeout = 120
    emu = None          # set by main()

    def version_string(self):
        return self.server_version

    def setup(self):
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def log_message(self, fmt, *args):
        if not self.emu.quiet:
            log("%s %s" % (self.address_string(), fmt % args))

    def do_GET(self):
        try:
            self.dispatch()
        except (ConnectionError, socket.timeout, ssl.SSLError):
            self.close_connection = True
        except Exception:   # a bug: answer 500, log the traceback
            import traceback
            log("internal error on %s %s\n%s" % (
                self.command, self.path, traceback.format_exc()))
            self.close_connection = True
            try:
                self.send(500, json.dumps({"error": {
                    "code": "0x80040216", "message": "emulator internal "
                    "error (see its stderr)"}}).encode(),
                    "application/json; odata.metadata=minimal")
            except OSError:
                pass

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    # -- plumbing --------------------------------------------------------
    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            raise HttpError(413, b"")
        return self.rfile.read(length) if length else b""

    def send(self, status, body=b"", content_type=None, headers=(),
             drop=None):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if content_type and status != 304:
            self.send_header("Content-Type", content_type)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if status in (204, 304) or self.command == "HEAD":
            return
        if drop is not None:
            self.wfile.write(body[:int(len(body) * drop)])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(body)

    def lose_response(self):
        """The request was served (a write committed); the answer never
        reaches the client: close without sending a byte."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def send_json(self, status, doc, headers=()):
        self.send(status, json.dumps(doc, ensure_ascii=False).encode(),
                  "application/json; charset=utf-8", headers)

    def origin(self):
        scheme = "https" if self.emu.tls else "http"
        return "%s://%s" % (scheme, self.headers.get("Host"))

    def dispatch(self):
        try:
            body = self.read_body()
        except (ValueError, HttpError):
            self.close_connection = True
            self.send(400, b"bad request body\n", "text/plain")
            return
        path, _, query = self.path.partition("?")
        if not self.headers.get("Host"):
            self.send(400, b"Bad Request - Invalid Hostname\n", "text/plain")
            return
        if path.startswith("/_emulator/"):
            if self.emu.responses:
                self.emu.responses.clear()
            status, doc = self.emu.control.handle(
                self.command, path[len("/_emulator/"):].rstrip("/"),
                {k: v[0] for k, v in parse_qs(query).items()}, body)
            self.send_json(status, doc)
            return
        m = TOKEN_RE.match(path)
        if m:
            self.serve_token(m.group(1), body)
        elif path.startswith("/api/data/"):
            self.serve_api(path, query, body)
        else:
            self.send(404, b"Not Found\n", "text/plain")

    # -- token endpoint ------------------------------------------------
    def serve_token(self, tenant, body):
        e = self.emu
        info = RequestInfo("token", None, 1, self.command, self.path)
        e.monitor.arrive(info)
        try:
            drop = None
            for fault in e.faults.fire(info):
                outcome = self.apply_fault(fault, info, token=True)
                if outcome == "answered":
                    return
                if outcome is not None:
                    drop = outcome
            status, headers, doc = e.auth.token_endpoint(
                tenant, self.command, self.headers, body, e.origins(),
                self.origin())
            info.status = status
            if drop == "lost":
                self.lose_response()
                return
            self.send(status, doc, None, headers, drop)
        finally:
            e.monitor.complete(info)

    # -- Web API -------------------------------------------------------
    def serve_api(self, path, query, body):
        e = self.emu
        kind, eset, page = e.webapi.describe(self.command, path, query,
                                             self.headers)
        info = RequestInfo(kind, eset, page, self.command, self.path)
        e.monitor.arrive(info)
        try:
            self.serve_api_admitted(info, path, query, body)
        except HttpError as err:
            info.status = err.status
            self.send(err.status, err.body, err.content_type, err.headers)
        finally:
            e.monitor.complete(info)

    def serve_api_admitted(self, info, path, query, body):
        e = self.emu
        if e.latency_ms > 0:
            time.sleep(e.latency_ms / 1000.0)     # the network round trip
        identity = e.auth.bearer(self.headers.get("Authorization"))
        info.client_id = identity
        refusal = e.protection.admit(identity, "%s %s" % (self.command,
                                                          self.path))
        if refusal is not None:
            raise throttled(refusal)
        started = time.monotonic()
        released = False

        def release():
            # Before the answer goes out: a client that sends its next
            # request the moment it has this answer must find this
            # request's execution time already counted.
            nonlocal released
            if not released:
                released = True
                e.protection.release(identity,
                                     (time.monotonic() - started) * 1000)
        try:
            drop = None
            for fault in e.faults.fire(info):
                outcome = self.apply_fault(fault, info)
                if outcome == "answered":
                    return
                if outcome is not None:
                    drop = outcome
            req = Request(self.command, path, query, self.headers,
                          self.origin(), body)
            key = resp = None
            if e.responses:
                key = e.responses.key(identity, self.command, self.path,
                                      self.headers, e.store.version)
                resp = e.responses.get(key) if key else None
            try:
                if resp is None:
                    resp = e.webapi.handle(req, identity)
                    if key:
                        e.responses.put(key, resp)
            except HttpError as err:
                if drop != "lost":
                    raise
                info.status = err.status
                self.lose_response()
                return
            info.status = resp.status
            release()
            if drop == "lost":
                self.lose_response()
                return
            self.send(resp.status, resp.body, resp.content_type,
                      resp.headers, drop)
        finally:
            release()

    def apply_fault(self, fault, info, token=False):
        """Act out one fault: "answered" when a response was sent, a drop
        fraction for drop faults, None otherwise."""
        e = self.emu
        p = fault.params
        if fault.type == "delay":
            time.sleep(float(p["seconds"]))
            return None
        if fault.type == "hold":
            e.faults.hold(fault)
            return None
        if fault.type == "drop":
            return float(p.get("fraction", 0.5))
        if fault.type == "lost_response":
            return "lost"
        retry = p.get("retry_after")
        if fault.type == "throttle":
            code, msg = THROTTLE_REASONS[p.get("reason", "requests")]
            lim = e.protection.limits
            msg = msg % {"requests": (lim.requests, lim.window),
                         "execution": ("{:,}".format(lim.execution_ms),
                                       lim.window),
                         "concurrency": (lim.concurrency,)}[
                             p.get("reason", "requests")]
            refusal = Refusal(code, msg, int(1 if retry is None else retry))
            if info.client_id is not None:
                e.protection.block(info.client_id, refusal)
            err = throttled(refusal)
        else:
            status = int(p["status"])
            headers = [("Retry-After", str(int(retry)))] if retry is not \
                None else []
            if token:
                err = HttpError(status, json.dumps({
                    "error": "temporarily_unavailable",
                    "error_description": "AADSTS90006: The service is "
                    "temporarily unavailable (emulated fault).",
                    "error_codes": [90006]}).encode(), headers,
                    "application/json; charset=utf-8")
            else:
                err = ODataError(status, "0x80040216", "Emulated fault: "
                                 "HTTP %d." % status, headers)
        info.status = err.status
        self.send(err.status, err.body, err.content_type, err.headers)
        return "answered"


def throttled(refusal):
    return ODataError(429, refusal.code, refusal.message,
                      [("Retry-After", str(refusal.retry_after))])


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--mapping", default=DEFAULT_MAPPING)
    ap.add_argument("--seed")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--tenant", default=DEFAULT_TENANT)
    ap.add_argument("--client", action="append", default=[],
                    metavar="ID:SECRET")
    ap.add_argument("--client-cert", action="append", default=[],
                    metavar="ID:PEMFILE")
    ap.add_argument("--token-lifetime", type=int, default=3599)
    ap.add_argument("--delta-token-age", type=float, default=7 * 86400)
    ap.add_argument("--max-page-size", type=int, default=5000)
    ap.add_argument("--limit-requests", type=int, default=6000)
    ap.add_argument("--limit-window", type=float, default=300)
    ap.add_argument("--limit-concurrency", type=int, default=52)
    ap.add_argument("--limit-execution-ms", type=int, default=1200000)
    ap.add_argument("--concurrency-retry-after", type=int, default=1)
    ap.add_argument("--latency-ms", type=float, default=0.0,
                    help="round-trip latency added to each Web API request")
    ap.add_argument("--op-ms", type=float, default=0.0,
                    help="server time added to each write operation")
    ap.add_argument("--response-cache", type=int, default=0, metavar="MIB",
                    help="reuse answers to repeated reads while nothing "
                    "changed, up to MIB MiB (benchmarks; emu_respcache.py)")
    ap.add_argument("--snapshot-load")
    ap.add_argument("--snapshot-save")
    ap.add_argument("--quiet", action="store_true",
                    help="do not log each request to stderr")
    args = ap.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    if not 1 <= args.max_page_size <= 5000:
        ap.error("--max-page-size must be 1..5000")
    return args


def main(argv=None):
    args = parse_args(argv)
    emu = Emulator(args)
    emu.load_files()
    Handler.emu = emu
    server = Server((args.host, args.port), Handler)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.ssl_context = ctx
    emu.port = server.server_address[1]
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(target=server.serve_forever,
                              kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    sys.stdout.write("READY port=%d\n" % emu.port)
    sys.stdout.flush()
    log("listening on %s://%s:%d" % ("https" if emu.tls else "http",
                                     args.host, emu.port))
    while not stop.wait(3600):
        pass
    server.shutdown()
    server.server_close()
    if args.snapshot_save:
        emu.save_snapshot(args.snapshot_save)
    emu.auth.close()
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
