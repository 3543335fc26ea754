#!/usr/bin/env python3
"""bench_serve_path — the full path of a WhatsApp STOP through
`optsync serve`, run by `scripts/bench writeback` after bench_writeback
(never by the tests): the emulator with --latency-ms (80: a realistic
round trip to Dataverse) and its service protection limits raised (this
measures the connector, not the request budget), serve on a synced cache,
E signed STOPs from E different customers sent at R per second over
keep-alive connections.  Per STOP: from the moment serve answered 200 (the
reply is committed and the gate denies) to the moment serve committed
Dataverse's answer for that row (outbox.updated_at of the row when done;
the row was updated in the emulator before that answer left it, so this is
an upper bound of "STOP accepted -> row updated in Dynamics").  Prints
p50 / p99 / max, the 200s' own p50 / p99, the requests serve made, and
the load average before and after (the machine is shared).

Usage: bench_serve_path.py [--events E] [--rate R] [--latency-ms MS]
                           [--optsync PATH]   (other options are ignored)
"""

import argparse
import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

SOURCE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SOURCE, "tests", "emulator"))

from launcher import Emulator  # noqa: E402

APP_SECRET = b"optsync-demo-app-secret"  # config/optsync.ini


def loadavg(when):
    with open("/proc/loadavg", encoding="ascii") as f:
        print("load (%s): %s" % (when, f.read().strip()))


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * len(values))))]


def stop_body(pnid, phone, n):
    wa_id = phone.lstrip("+")
    return json.dumps({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111",
                         "phone_number_id": pnid},
            "contacts": [{"profile": {"name": "Bench"}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": "wamid.bench.%d" % n,
                          "timestamp": str(int(time.time())),
                          "type": "text", "text": {"body": "STOP"}}]}}]}],
    }).encode()


def pick_numbers(doc, events):
    """`events` seeded numbers that one STOP turns Opted-Out: active,
    opted in, the only row of their phone in their Configuration."""
    count = {}
    for n in doc["numbers"]:
        key = (n.get("configuration"), n.get("expected_e164"))
        count[key] = count.get(key, 0) + 1
    pnid = {c["id"]: c["phone_number_id"] for c in doc["configurations"]}
    out, seen = [], set()
    for n in doc["numbers"]:
        e164 = n.get("expected_e164")
        if (n.get("configuration") and e164 and e164 not in seen and
                n.get("active", True) and
                n.get("status") in ("single_opt_in", "double_opt_in") and
                count[(n["configuration"], e164)] == 1):
            seen.add(e164)  # one customer, one STOP, one row to time
            out.append((pnid[n["configuration"]], e164))
    if len(out) < events:
        sys.exit("bench_serve_path: only %d usable numbers" % len(out))
    return out[:events]


class Sender:
    """Sends the STOPs on schedule from a few threads, each with its own
    keep-alive connection; records when each 200 arrived (wall ms)."""

    def __init__(self, port, numbers, rate, threads=8):
        self.port, self.numbers, self.rate = port, numbers, rate
        self.accepted = {}  # e164 -> wall ms of the 200
        self.answer_ms = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i, threads))
                        for i in range(threads)]

    def run(self, first, step):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        for i in range(first, len(self.numbers), step):
            delay = self.t0 + i / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # the arrival schedule, not a sync
            pnid, phone = self.numbers[i]
            body = stop_body(pnid, phone, i)
            sig = hmac.new(APP_SECRET, body, hashlib.sha256).hexdigest()
            sent = time.monotonic()
            conn.request("POST", "/webhooks/whatsapp", body, {
                "Content-Type": "application/json",
                "X-Hub-Signature-256": "sha256=" + sig})
            resp = conn.getresponse()
            resp.read()
            now_ms = time.time() * 1000
            if resp.status != 200:
                sys.exit("bench_serve_path: HTTP %d" % resp.status)
            with self.lock:
                self.accepted[phone] = now_ms
                self.answer_ms.append((time.monotonic() - sent) * 1000)
        conn.close()

    def go(self):
        self.t0 = time.monotonic()
        for t in self.threads:
            t.start()
        for t in self.threads:
            t.join()


def start_serve(optsync, emu, tmp):
    log = os.path.join(tmp, "serve.log")
    cmd = [optsync, "-c", os.path.join(SOURCE, "config", "optsync.ini"),
           "-o", "dataverse.url=" + emu.base_url,
           "-o", "auth.authority=" + emu.base_url,
           "-o", "cache.path=" + os.path.join(tmp, "cache.db"),
           "-o", "mapping.file=" + os.path.join(
               SOURCE, "mapping", "whatsapp4dynamics.json"),
           "-o", "listener.port=0", "-o", "log.file=" + log,
           "serve"]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        with open(log, "a+", encoding="utf-8") as f:
            f.seek(0)
            text = f.read()
        m = re.search(r"event=listening .*port=(\d+)", text)
        if m:
            return proc, int(m.group(1))
        time.sleep(0.05)  # polling the log for a line
    proc.kill()
    sys.exit("bench_serve_path: serve did not start")


def wait_ready(port, proc):
    """Until /readyz says 200: the first sync is committed."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/readyz")
        status = conn.getresponse().status
        conn.close()
        if status == 200:
            return
        time.sleep(0.2)  # polling for a condition
    sys.exit("bench_serve_path: serve never got ready")


def written_at(cache_path, phones, deadline_s=600):
    """e164 -> wall ms of the outbox commit, once every row is done."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        db = sqlite3.connect(cache_path, timeout=30)
        rows = db.execute("SELECT e164, max(updated_at) FROM outbox WHERE "
                          "state = 'done' GROUP BY e164").fetchall()
        db.close()
        done = {e: at for e, at in rows if e in phones}
        if len(done) == len(phones):
            return done
        time.sleep(0.2)
    sys.exit("bench_serve_path: only %d of %d written" % (len(done),
                                                          len(phones)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--latency-ms", type=int, default=80)
    ap.add_argument("--optsync", default=os.path.join(
        os.environ.get("OPTSYNC_BENCH_BUILD", "build-bench"), "optsync"))
    args, _ = ap.parse_known_args()
    with tempfile.TemporaryDirectory(prefix="optsync-bench-serve-") as tmp:
        seed = os.path.join(tmp, "seed.json")
        subprocess.run([sys.executable, os.path.join(
            SOURCE, "tests", "emulator", "make_seed.py"),
            "--configurations", "3", "--numbers",
            str(max(3000, args.events * 3)), "--seed", "11", "-o", seed],
            check=True, capture_output=True)
        with open(seed, encoding="utf-8") as f:
            numbers = pick_numbers(json.load(f), args.events)
        emu = Emulator(seed=seed, extra=[
            "--quiet", "--latency-ms", str(args.latency_ms),
            "--limit-requests", "10000000", "--limit-concurrency", "1000",
            "--limit-execution-ms", "1000000000"])
        emu.start()
        proc = None
        try:
            proc, port = start_serve(args.optsync, emu, tmp)
            wait_ready(port, proc)
            loadavg("before")
            sender = Sender(port, numbers, args.rate)
            sender.go()
            done = written_at(os.path.join(tmp, "cache.db"),
                              set(sender.accepted))
            loadavg("after")
            lat = [done[p] - sender.accepted[p] for p in sender.accepted]
            _, counters = emu.control("GET", "counters")
            print("full path (serve): %d STOPs at %.0f/s, emulator latency "
                  "%d ms" % (len(lat), args.rate, args.latency_ms))
            print("  STOP answered 200: p50 %.1f ms, p99 %.1f ms" % (
                pct(sender.answer_ms, 50), pct(sender.answer_ms, 99)))
            print("  STOP 200 -> row written in Dataverse: p50 %.0f ms, "
                  "p99 %.0f ms, max %.0f ms (target p99 < 2000 ms)" % (
                      pct(lat, 50), pct(lat, 99), max(lat)))
            print("  write requests: %s" % json.dumps(
                {k: v for k, v in counters["requests"].items()
                 if k in ("batch", "write")}))
        finally:
            if proc and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
            emu.stop()
            emu.cleanup()


if __name__ == "__main__":
    main()
