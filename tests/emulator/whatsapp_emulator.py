#!/usr/bin/env python3
"""WhatsApp Cloud API (and 360dialog) emulator for optsync's tests.

    python3 tests/emulator/whatsapp_emulator.py --port 0 \\
        [--templates FILE] [--token T] [--d360-key KEY:PHONE_NUMBER_ID] \\
        [--webhook-url URL --app-secret S] [--max-rate N] [...]

Prints exactly one line, `READY port=N`, on stdout once it accepts
connections; everything else goes to stderr. SIGTERM/SIGINT stop it
cleanly (exit 0). Python 3 standard library only.

  POST /{version}/{phone_number_id}/messages   Cloud API send (Bearer token)
  POST /messages                               360dialog send (D360-API-KEY)
  *    /_emulator/...                          control API (wa_control)

The emulator plays Meta (templates, tokens, limits, errors) and the
customer (replies, button taps, marketing stop/resume), and POSTs signed
webhooks to optsync's listener: status updates for every message sent,
and the customer's messages. See README.md next to this file.
"""

import argparse
import json
import os
import re
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wa_control import Control  # noqa: E402
from wa_core import D360Error, WhatsApp  # noqa: E402
from wa_errors import GraphError  # noqa: E402
from wa_faults import SendInfo  # noqa: E402
from wa_send import MarkRead  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_TEMPLATES = os.path.join(HERE, "wa_templates.json")
CLOUD_RE = re.compile(r"^/(v\d{1,3}\.\d{1,2})/([^/]+)/messages$")
MAX_BODY = 4 << 20
JSON_TYPE = "application/json; charset=UTF-8"


def log(msg):
    sys.stderr.write("waemu: %s\n" % msg)
    sys.stderr.flush()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, socket.timeout)):
            return
        super().handle_error(request, client_address)


class Dropped(Exception):
    """The connection was closed on purpose (drop fault)."""


class Answered(Exception):
    """A status fault already wrote its literal answer."""

    def __init__(self, status):
        super().__init__(status)
        self.status = status


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "waemu/1"
    timeout = 120
    wa = None           # set by main()
    control = None
    quiet = False
    send_entry = None   # the send being served, until record_send()

    def version_string(self):
        return self.server_version

    def setup(self):
        super().setup()
        # Headers and body go out in two writes; without this, Nagle's
        # algorithm and the client's delayed ACK add ~40 ms to every
        # answer on a kept-alive connection.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY,
                                   1)

    def log_message(self, fmt, *args):
        if not self.quiet:
            log("%s %s" % (self.address_string(), fmt % args))

    def do_GET(self):
        try:
            self.dispatch()
        except (ConnectionError, socket.timeout, Dropped):
            self.close_connection = True
        except Exception:   # a bug: answer 500, log the traceback
            import traceback
            log("internal error on %s %s\n%s" % (
                self.command, self.path, traceback.format_exc()))
            self.close_connection = True
            try:
                self.send_json(500, {"error": {
                    "message": "emulator internal error (see its stderr)",
                    "type": "OAuthException", "code": 1}})
            except OSError:
                pass

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    # -- plumbing --------------------------------------------------------
    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self.read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length) if length else b""

    def read_chunked(self):
        chunks, total = [], 0
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                raise ValueError("body too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def record_send(self):
        """Log the send being served (once), before its answer goes out:
        counters must never lag an answer the client already holds."""
        entry, self.send_entry = self.send_entry, None
        if entry is not None:
            self.wa.record(entry)

    def send_json(self, status, doc, headers=()):
        body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
        self.record_send()
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", JSON_TYPE)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def drop(self):
        """Close without a byte of answer."""
        self.close_connection = True
        if self.send_entry is not None:
            self.send_entry["status"] = self.send_entry["status"] or \
                "dropped"
        self.record_send()
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise Dropped()

    def dispatch(self):
        try:
            body = self.read_body()
        except ValueError:
            self.close_connection = True
            self.send_json(413, {"error": "request body too large"})
            return
        path, _, query = self.path.partition("?")
        if path.startswith("/_emulator/"):
            status, doc = self.control.handle(
                self.command, path[len("/_emulator/"):].rstrip("/"),
                {k: v[0] for k, v in parse_qs(query).items()}, body)
            self.send_json(status, doc)
            return
        m = CLOUD_RE.match(path)
        if m:
            self.serve_send("cloud", body, version=m.group(1),
                            pnid=m.group(2))
        elif path == "/messages":
            self.serve_send("360dialog", body)
        else:
            err = GraphError(2500, error_data=False,
                             message="Unknown path components: %s" % path)
            self.send_json(err.status, err.doc(),
                           [("x-fb-trace-id", err.trace)])

    # -- sends -------------------------------------------------------------
    def serve_send(self, route, body, version=None, pnid=None):
        wa = self.wa
        entry = {"route": route, "phone_number_id": pnid, "status": None,
                 "code": None, "wamid": None}
        self.send_entry = entry
        wa.arrive()
        try:
            if wa.settings.latency_ms > 0:
                time.sleep(wa.settings.latency_ms / 1000.0)  # round trip
            self.serve_send_admitted(route, body, version, pnid, entry)
        except GraphError as err:
            entry["status"], entry["code"] = err.status, err.code
            headers = [("x-fb-trace-id", err.trace)] + err.headers
            self.send_json(err.status, err.doc(), headers)
        except D360Error as err:
            entry["status"] = err.status
            self.send_json(err.status, err.doc())
        except Answered:
            pass
        finally:
            self.record_send()      # when the answer never went out
            wa.leave()

    def serve_send_admitted(self, route, body, version, pnid, entry):
        wa = self.wa
        if self.command != "POST":
            raise GraphError(100, subcode=33, error_data=False, message=(
                "Unsupported %s request." % self.command.lower()))
        with wa.cond:
            if route == "cloud":
                credential = wa.bearer(self.headers.get("Authorization"))
            else:
                credential = self.headers.get("D360-API-KEY")
                pnid = wa.d360_key(credential)
                entry["phone_number_id"] = pnid
            pn = wa.phone_number(pnid)
        out, problem = None, None
        ctype = self.headers.get("Content-Type", "")
        try:
            if not ctype.lower().startswith("application/json"):
                raise GraphError(100, "Send the body as JSON with "
                                 "Content-Type: application/json (got %r)."
                                 % ctype)
            out = wa.parse_send(body)
        except GraphError as e:
            problem = e
        lost = self.apply_faults(self.send_info(route, pnid, out))
        if problem is not None:
            raise problem
        rec, answer = wa.accept(pn, out, route, credential, version)
        entry["status"] = 200
        if rec is not None:
            entry["wamid"] = rec["wamid"]
            entry["to"] = rec["wa_id"]
        headers = [("facebook-api-version", version)] if version else []
        if lost:
            wa.after_send(rec)
            entry["status"] = "lost_response"
            self.drop()
        self.send_json(200, answer, headers)
        wa.after_send(rec)

    @staticmethod
    def send_info(route, pnid, out):
        info = SendInfo(route, pnid)
        if out is not None and not isinstance(out, MarkRead):
            info.to, info.type = out.wa_id, out.type
            info.template = out.template
        return info

    def apply_faults(self, info):
        """Act out the faults for this send: delays and holds first, then
        the first answering one. Returns True for lost_response."""
        wa = self.wa
        with wa.cond:
            faults = wa.faults.fire(info)
        for fault in faults:
            if fault.type == "delay":
                time.sleep(float(fault.params["seconds"]))
            elif fault.type == "hold":
                wa.faults.hold(fault)
        lost = False
        for fault in faults:
            p = fault.params
            if fault.type == "error":
                raise GraphError(p["code"], p.get("details"),
                                 status=p.get("status"),
                                 subcode=p.get("subcode"),
                                 message=p.get("message"))
            if fault.type == "status":
                self.answer_status(p)
            if fault.type == "drop":
                self.drop()
            if fault.type == "lost_response":
                lost = True
        return lost

    def answer_status(self, p):
        status = p["status"]
        if "body" in p:
            raw = p["body"]
            body = raw.encode() if isinstance(raw, str) else \
                json.dumps(raw).encode()
            self.send_entry["status"] = status
            self.record_send()
            self.send_response(status)
            self.send_header("Content-Type", JSON_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            raise Answered(status)
        code = 2 if status == 503 else 131000
        raise GraphError(code, status=status)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--templates", default=DEFAULT_TEMPLATES,
                    help="phone numbers and their templates (JSON); "
                    "'' for none")
    ap.add_argument("--token", action="append", default=[],
                    help="accepted bearer token (repeatable; the fixed "
                    "token optsync-wa-emulator-token is always accepted)")
    ap.add_argument("--d360-key", action="append", default=[],
                    metavar="KEY:PHONE_NUMBER_ID",
                    help="360dialog API key for one phone number "
                    "(repeatable)")
    ap.add_argument("--webhook-url", help="optsync's webhook listener")
    ap.add_argument("--app-secret", help="sign webhooks with it "
                    "(X-Hub-Signature-256)")
    ap.add_argument("--webhook-header", action="append", default=[],
                    metavar="NAME:VALUE",
                    help="extra header on every webhook (repeatable)")
    ap.add_argument("--webhook-retries", type=int, default=3,
                    help="retries after a non-200 answer")
    ap.add_argument("--webhook-retry-ms", type=float, default=50.0,
                    help="first retry delay; doubles per retry")
    ap.add_argument("--webhook-timeout", type=float, default=10.0)
    ap.add_argument("--max-rate", type=int, default=80,
                    help="messages per second per phone number")
    ap.add_argument("--pair-limit-seconds", type=float, default=0.0,
                    help="min seconds between messages to one user "
                    "(0: off)")
    ap.add_argument("--latency-ms", type=float, default=0.0,
                    help="round-trip latency added to every send")
    ap.add_argument("--read-receipts", action="store_true",
                    help="send a 'read' status after 'delivered'")
    ap.add_argument("--no-statuses", action="store_true",
                    help="send no status webhooks")
    ap.add_argument("--recipient-errors", choices=("sync", "webhook"),
                    default="sync", help="131047/131026 as the send's "
                    "answer (sync) or as a failed status webhook")
    ap.add_argument("--log-limit", type=int, default=100000,
                    help="messages/attempts/deliveries kept in the logs")
    ap.add_argument("--quiet", action="store_true",
                    help="do not log each request to stderr")
    args = ap.parse_args(argv)
    for spec in args.d360_key:
        key, sep, pnid = spec.partition(":")
        if not (key and sep and pnid.isdigit()):
            ap.error("--d360-key wants KEY:PHONE_NUMBER_ID, got %r" % spec)
    for spec in args.webhook_header:
        if ":" not in spec:
            ap.error("--webhook-header wants NAME:VALUE, got %r" % spec)
    if args.max_rate < 1:
        ap.error("--max-rate must be >= 1")
    if args.webhook_url and not args.webhook_url.startswith(
            ("http://", "https://")):
        ap.error("--webhook-url must be an http(s) URL")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        wa = WhatsApp(args)
    except (OSError, ValueError) as e:
        log("cannot start: %s" % e)
        return 2
    Handler.wa = wa
    Handler.control = Control(wa)
    Handler.quiet = args.quiet
    server = Server((args.host, args.port), Handler)
    wa.port = server.server_address[1]
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(target=server.serve_forever,
                              kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    sys.stdout.write("READY port=%d\n" % wa.port)
    sys.stdout.flush()
    log("listening on http://%s:%d (%d phone numbers)" % (
        args.host, wa.port, len(wa.directory.numbers)))
    while not stop.wait(3600):
        pass
    server.shutdown()
    server.server_close()
    wa.webhooks.stop()
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
