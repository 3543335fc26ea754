"""--response-cache: answers to repeated Web API reads, for benchmarks.

`scripts/bench sync` walks every page once to learn the URLs, then has
optsync and curl read them all again.  Computing a 5,000-row page costs
the emulator more CPU than curl spends on it, on the same cores the
client under test needs; with the cache, a repeated page costs the
emulator one dictionary lookup, so a benchmark measures the client (and
`--latency-ms`, when given, plays the network).

An answer is reused only for the same client, method, URL and request
headers (but Authorization's token, Host, User-Agent, Connection and
Accept-Encoding), and only while the store is at the same version: any
write, committed or rolled back, moves the version on.  Every control
request (faults, expiry, clock, admin changes) empties the cache, since
some of them change answers without a write.  Faults, the request
counters and service protection see every request as before.  Off by
default: the emulator's tests see every answer computed; switched off
and on again at run time with POST /_emulator/response-cache
{"enabled": false} (a benchmark compares both in one emulator).
"""

import collections
import threading

IGNORED = {"authorization", "host", "user-agent", "connection",
           "accept-encoding", "content-length"}


class ResponseCache:
    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self.size = 0
        self.entries = collections.OrderedDict()   # LRU: oldest first
        self.lock = threading.Lock()
        self.hits = self.misses = 0
        self.enabled = True

    def key(self, identity, method, path, headers, version):
        """None when the request is no read to cache (or it is off)."""
        if method != "GET" or not self.enabled:
            return None
        shaped = tuple(sorted((k.lower(), v) for k, v in headers.items()
                              if k.lower() not in IGNORED))
        return (identity, path, shaped, version)

    def get(self, key):
        with self.lock:
            resp = self.entries.get(key)
            if resp is None:
                self.misses += 1
                return None
            self.entries.move_to_end(key)
            self.hits += 1
            return resp

    def put(self, key, resp):
        if resp.status != 200 or len(resp.body) > self.max_bytes:
            return
        with self.lock:
            old = self.entries.pop(key, None)
            if old is not None:
                self.size -= len(old.body)
            self.entries[key] = resp
            self.size += len(resp.body)
            while self.size > self.max_bytes:
                _, gone = self.entries.popitem(last=False)
                self.size -= len(gone.body)

    def clear(self):
        with self.lock:
            self.entries.clear()
            self.size = 0
