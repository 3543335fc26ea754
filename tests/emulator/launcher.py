"""Start and stop the emulator from Python tests and scripts.

    from launcher import Emulator
    with Emulator(seed="seed.json", extra=["--max-page-size", "100"]) as emu:
        emu.base_url        # http://127.0.0.1:N
        emu.control("POST", "faults", {...})
        token = emu.token()

    from launcher import WhatsAppEmulator
    with WhatsAppEmulator(extra=["--app-secret", "s"]) as wa:
        wa.send(PHONE_NUMBER_ID, {...})      # -> (status, JSON)
        wa.wait(condition="messages", count=1)

The emulator runs as a child process on --port 0; start() reads its one
stdout line `READY port=N` (with a timeout, no sleeping) and stop() sends
SIGTERM, waits, and falls back to SIGKILL. Its stderr goes to a file
(emu.log_path) unless stderr= is given, so a chatty emulator never blocks
on a full pipe. WhatsAppEmulator does the same for whatsapp_emulator.py.
"""

import http.client
import json
import os
import select
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("OPTSYNC_SOURCE_DIR") or \
    os.path.abspath(os.path.join(HERE, "..", ".."))
SCRIPT = os.path.join(SOURCE_DIR, "tests", "emulator", "dataverse_emulator.py")
DEFAULT_MAPPING = os.path.join(SOURCE_DIR, "mapping", "whatsapp4dynamics.json")
TENANT = "7e57e000-0000-4000-8000-000000000001"
CLIENT_ID = "0975c0de-0000-4000-8000-000000000002"
CLIENT_SECRET = "optsync-emulator-secret"
API = "/api/data/v9.2/"
WA_SCRIPT = os.path.join(SOURCE_DIR, "tests", "emulator",
                         "whatsapp_emulator.py")
WA_TOKEN = "optsync-wa-emulator-token"
WA_VERSION = "v21.0"


class EmulatorError(RuntimeError):
    pass


class Emulator:
    """One emulator child process."""

    def __init__(self, mapping=None, seed=None, extra=(), tls=None,
                 stderr=None, start_timeout=60.0, quiet=True):
        self.mapping = mapping or DEFAULT_MAPPING
        self.seed = seed
        self.extra = list(extra)
        self.tls = tls                  # (certfile, keyfile) or None
        self.stderr = stderr
        self.start_timeout = start_timeout
        self.quiet = quiet
        self.proc = None
        self.port = None
        self.log_path = None
        self._log = None

    # -- lifecycle -----------------------------------------------------
    def argv(self):
        cmd = [sys.executable, SCRIPT, "--port", "0",
               "--mapping", self.mapping]
        if self.seed:
            cmd += ["--seed", self.seed]
        if self.tls:
            cmd += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
        if self.quiet:
            cmd.append("--quiet")
        return cmd + self.extra

    def start(self):
        err = self.stderr
        if err is None:
            fd, self.log_path = tempfile.mkstemp(prefix="dvemu-",
                                                 suffix=".log")
            self._log = os.fdopen(fd, "wb")
            err = self._log
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.PIPE,
                                     stderr=err, stdin=subprocess.DEVNULL)
        line = self._read_ready()
        if not line.startswith(b"READY port="):
            self.stop()
            raise EmulatorError("emulator did not start: %r%s"
                                % (line, self._log_tail()))
        self.port = int(line.split(b"=", 1)[1])
        return self

    def _read_ready(self):
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + self.start_timeout
        buf = b""
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return buf
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 256)
            if not chunk:
                return buf
            buf += chunk
        return buf.split(b"\n", 1)[0]

    def _log_tail(self):
        if not self.log_path:
            return ""
        with open(self.log_path, "rb") as f:
            return "\n--- emulator stderr ---\n" + \
                f.read()[-4000:].decode("utf-8", "replace")

    def stop(self, timeout=10.0):
        """SIGTERM, wait, SIGKILL fallback. Returns the exit status."""
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
        self.proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        self.proc = None
        return rc

    def cleanup(self):
        if self.log_path and os.path.exists(self.log_path):
            os.unlink(self.log_path)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        self.cleanup()
        return False

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    # -- addresses -----------------------------------------------------
    @property
    def scheme(self):
        return "https" if self.tls else "http"

    @property
    def base_url(self):
        return "%s://127.0.0.1:%d" % (self.scheme, self.port)

    @property
    def api_url(self):
        return self.base_url + API

    @property
    def token_url(self):
        return "%s/%s/oauth2/v2.0/token" % (self.base_url, TENANT)

    # -- HTTP helpers ----------------------------------------------------
    def connection(self, timeout=60):
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.tls[0])
            ctx.check_hostname = False
            return http.client.HTTPSConnection("127.0.0.1", self.port,
                                               timeout=timeout, context=ctx)
        return http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=60):
        """One request on a fresh connection -> (status, headers, bytes)."""
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()

    def control(self, method, route, doc=None, timeout=60):
        """Call /_emulator/<route>; returns (status, parsed JSON)."""
        body = None if doc is None else json.dumps(doc).encode()
        status, _, data = self.request(
            method, "/_emulator/" + route, body,
            {"Content-Type": "application/json"}, timeout)
        return status, json.loads(data) if data else None

    def wait(self, timeout=30, **condition):
        """Block until a control-API condition holds; raises on timeout."""
        doc = dict(condition, timeout=timeout)
        status, out = self.control("POST", "wait", doc, timeout + 30)
        if status != 200:
            raise EmulatorError("wait %r timed out: %r" % (condition, out))
        return out["value"]

    def token(self, client_id=CLIENT_ID, secret=CLIENT_SECRET, scope=None):
        form = urllib.parse.urlencode({
            "client_id": client_id, "client_secret": secret,
            "grant_type": "client_credentials",
            "scope": scope or self.base_url + "/.default"})
        status, _, data = self.request(
            "POST", "/%s/oauth2/v2.0/token" % TENANT, form,
            {"Content-Type": "application/x-www-form-urlencoded"})
        if status != 200:
            raise EmulatorError("token request failed: %d %r"
                                % (status, data))
        return json.loads(data)["access_token"]


class WhatsAppEmulator(Emulator):
    """One WhatsApp Cloud API emulator child process (same lifecycle,
    request(), control() and wait() as Emulator)."""

    def __init__(self, templates=None, extra=(), stderr=None,
                 start_timeout=60.0, quiet=True):
        super().__init__(extra=extra, stderr=stderr,
                         start_timeout=start_timeout, quiet=quiet)
        self.templates = templates      # None: the emulator's default

    def argv(self):
        cmd = [sys.executable, WA_SCRIPT, "--port", "0"]
        if self.templates is not None:
            cmd += ["--templates", self.templates]
        if self.quiet:
            cmd.append("--quiet")
        return cmd + self.extra

    def token(self, *args, **kwargs):
        """The bearer token the emulator always accepts."""
        return WA_TOKEN

    def messages_path(self, phone_number_id, version=WA_VERSION):
        return "/%s/%s/messages" % (version, phone_number_id)

    def send(self, phone_number_id, doc, token=WA_TOKEN, version=WA_VERSION,
             headers=None, raw=None):
        """A Cloud API send -> (status, parsed JSON or None)."""
        h = {"Content-Type": "application/json"}
        if token is not None:
            h["Authorization"] = "Bearer " + token
        h.update(headers or {})
        body = raw if raw is not None else json.dumps(doc).encode()
        status, _, data = self.request(
            "POST", self.messages_path(phone_number_id, version), body, h)
        return status, json.loads(data) if data else None

    def send360(self, key, doc, headers=None):
        """A 360dialog send (D360-API-KEY) -> (status, parsed JSON)."""
        h = {"Content-Type": "application/json"}
        if key is not None:
            h["D360-API-KEY"] = key
        h.update(headers or {})
        status, _, data = self.request("POST", "/messages",
                                       json.dumps(doc).encode(), h)
        return status, json.loads(data) if data else None


def main(argv):
    """`python3 launcher.py [emulator args]`: run until Ctrl-C, print the
    base URL (handy for manual testing)."""
    emu = Emulator(extra=argv, stderr=sys.stderr, quiet=False)
    emu.start()
    print(emu.base_url, flush=True)
    try:
        emu.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
