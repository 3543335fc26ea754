"""Injected faults and the request monitor (counters + blocking waits).

A fault is a JSON object posted to /_emulator/faults:

  {"type": "throttle" | "status" | "drop" | "delay" | "hold" |
           "lost_response" | "admin_edit",
   "match": {"kind": "track" | [...], "entity_set": "...", "page": 3,
             "method": "GET", "client_id": "..."},       all optional
   "after": 0,     skip this many matching requests first
   "every": 1,     then fire on every Nth matching request
   "count": null,  fire at most this many times (null: forever)
   ...type parameters}

  throttle  429 with "retry_after" (s, default 1) and "reason" "requests" |
            "execution" | "concurrency" (that limit's code and message, as
            in Learn's "Service protection API limits")
  status    "status" (e.g. 503) with optional "retry_after"
  drop      send the headers and "fraction" (default 0.5) of the body, then
            close the connection
  delay     wait "seconds" before answering (then serve normally)
  hold      block the request until POST /_emulator/release (or
            "timeout", default 300 s), then serve it normally
  lost_response  serve the request completely (a write commits), then
            close the connection without sending a byte of the answer:
            the client cannot know whether it succeeded
  admin_edit  the stale-ETag trap: "table" and "id" name a row; the next
            Web API write to it (PATCH/PUT/DELETE, also inside $batch)
            first gets an admin update of "values" (role- or attribute-
            keyed, default {}: just a new version) committed, as if a CRM
            admin saved the row between the client's read and its write.
            Not matched by request kind; "count" defaults to 1.

Request kinds: token, query, track, delta, related, retrieve, count,
service, write, batch, other. Pages are numbered from 1 (the request without a
$skiptoken) using the pagenumber of the skiptoken.
"""

import collections
import threading
import time

KINDS = ("token", "query", "track", "delta", "related", "retrieve", "count",
         "service", "write", "batch", "other")
TYPES = ("throttle", "status", "drop", "delay", "hold", "lost_response",
         "admin_edit")


class FaultError(ValueError):
    pass


class RequestInfo:
    """What faults and waits know about a request."""

    __slots__ = ("kind", "entity_set", "page", "method", "client_id",
                 "path", "status")

    def __init__(self, kind, entity_set, page, method, path):
        self.kind = kind
        self.entity_set = entity_set
        self.page = page
        self.method = method
        self.path = path
        self.client_id = None
        self.status = None


def _match(match, info):
    for key, want in match.items():
        have = getattr(info, key)
        if isinstance(want, list):
            if have not in want:
                return False
        elif have != want:
            return False
    return True


class Fault:
    def __init__(self, fid, spec):
        if not isinstance(spec, dict):
            raise FaultError("a fault is a JSON object")
        self.id = fid
        self.type = spec.get("type")
        if self.type not in TYPES:
            raise FaultError("fault type must be one of %s" % ", ".join(TYPES))
        self.match = spec.get("match") or {}
        for key in self.match:
            if key not in ("kind", "entity_set", "page", "method",
                           "client_id"):
                raise FaultError("unknown match key %r" % key)
        kinds = self.match.get("kind")
        for k in kinds if isinstance(kinds, list) else [kinds]:
            if k is not None and k not in KINDS:
                raise FaultError("unknown request kind %r" % k)
        self.after = int(spec.get("after", 0))
        self.every = int(spec.get("every", 1))
        count = spec.get("count", 1 if self.type in ("hold", "admin_edit")
                         else None)
        self.count = None if count is None else int(count)
        if self.every < 1:
            raise FaultError("every must be >= 1")
        self.params = {k: v for k, v in spec.items()
                       if k not in ("type", "match", "after", "every",
                                    "count")}
        self._check_params()
        self.seen = 0
        self.fired = 0
        self.waiting = 0            # hold: requests blocked right now
        self.released = threading.Event()

    def _check_params(self):
        p = self.params
        if self.type == "status":
            status = p.get("status")
            if not isinstance(status, int) or not 400 <= status <= 599:
                raise FaultError("status fault needs a 4xx/5xx 'status'")
        if self.type == "throttle" and p.get("reason", "requests") not in (
                "requests", "execution", "concurrency"):
            raise FaultError("throttle reason: requests, execution or "
                             "concurrency")
        if self.type == "delay" and not isinstance(
                p.get("seconds"), (int, float)):
            raise FaultError("delay fault needs 'seconds'")
        if self.type == "admin_edit":
            if not isinstance(p.get("table"), str) or \
                    not isinstance(p.get("id"), str):
                raise FaultError("admin_edit needs 'table' and 'id'")
            if not isinstance(p.get("values", {}), dict):
                raise FaultError("admin_edit 'values' is an object")
            p["id"] = p["id"].lower()

    def as_dict(self):
        d = {"id": self.id, "type": self.type, "match": self.match,
             "after": self.after, "every": self.every, "count": self.count,
             "seen": self.seen, "fired": self.fired}
        d.update(self.params)
        if self.type == "hold":
            d["waiting"] = self.waiting
            d["released"] = self.released.is_set()
        return d


class Faults:
    def __init__(self, monitor):
        self.monitor = monitor
        self.faults = collections.OrderedDict()
        self.next_id = 1
        self.lock = threading.Lock()

    def add(self, spec):
        with self.lock:
            fault = Fault(self.next_id, spec)
            self.faults[fault.id] = fault
            self.next_id += 1
            return fault

    def remove(self, fid):
        with self.lock:
            fault = self.faults.pop(fid, None)
        if fault is not None:
            fault.released.set()
        return fault is not None

    def clear(self):
        with self.lock:
            faults = list(self.faults.values())
            self.faults.clear()
        for fault in faults:
            fault.released.set()

    def release(self, fid=None):
        with self.lock:
            targets = [f for f in self.faults.values() if f.type == "hold"
                       and (fid is None or f.id == fid)]
        for fault in targets:
            fault.released.set()
        return len(targets)

    def fire(self, info):
        """Faults that apply to this request, in registration order."""
        out = []
        with self.lock:
            for fault in self.faults.values():
                if fault.type == "admin_edit" or \
                        not _match(fault.match, info):
                    continue
                fault.seen += 1
                n = fault.seen - fault.after
                if n <= 0 or n % fault.every != 0:
                    continue
                if fault.count is not None and fault.fired >= fault.count:
                    continue
                fault.fired += 1
                out.append(fault)
        return out

    def take_traps(self, matches):
        """admin_edit faults whose row `matches(table_param, id)` and that
        may still fire; each is counted as fired."""
        out = []
        with self.lock:
            for fault in self.faults.values():
                if fault.type != "admin_edit" or not matches(
                        fault.params["table"], fault.params["id"]):
                    continue
                fault.seen += 1
                if fault.count is not None and fault.fired >= fault.count:
                    continue
                fault.fired += 1
                out.append(fault)
        return out

    def hold(self, fault):
        """Block the calling request thread until the fault is released."""
        with self.lock:
            fault.waiting += 1
        self.monitor.notify()
        try:
            fault.released.wait(float(fault.params.get("timeout", 300)))
        finally:
            with self.lock:
                fault.waiting -= 1
            self.monitor.notify()

    def get(self, fid):
        with self.lock:
            return self.faults.get(fid)

    def listing(self):
        with self.lock:
            return [f.as_dict() for f in self.faults.values()]


class Monitor:
    """Counters of requests and a condition variable to wait on them."""

    def __init__(self):
        self.cond = threading.Condition()
        self.reset()

    def reset(self):
        with self.cond:
            self.arrived = collections.Counter()    # (kind, set, page)
            self.completed = collections.Counter()  # (kind, set, page, st)
            self.inflight = 0
            self.batch_operations = 0
            self.cond.notify_all()

    def notify(self):
        with self.cond:
            self.cond.notify_all()

    def arrive(self, info):
        with self.cond:
            self.arrived[(info.kind, info.entity_set, info.page)] += 1
            self.inflight += 1
            self.cond.notify_all()

    def complete(self, info):
        with self.cond:
            self.completed[(info.kind, info.entity_set, info.page,
                            info.status)] += 1
            self.inflight -= 1
            self.cond.notify_all()

    def inner(self, described, status):
        """An operation inside a $batch, (kind, entity set, page) as
        WebApi.describe() says: counted as arrived and completed (never
        in flight on its own)."""
        kind, entity_set, page = described
        with self.cond:
            self.arrived[(kind, entity_set, page)] += 1
            self.completed[(kind, entity_set, page, status)] += 1
            self.batch_operations += 1
            self.cond.notify_all()

    def count(self, event="arrived", kind=None, entity_set=None, page=None,
              status=None):
        kinds = kind if isinstance(kind, list) else (
            None if kind is None else [kind])
        table = self.arrived if event == "arrived" else self.completed
        n = 0
        for key, value in table.items():
            if kinds is not None and key[0] not in kinds:
                continue
            if entity_set is not None and key[1] != entity_set:
                continue
            if page is not None and key[2] != page:
                continue
            if status is not None and (event == "arrived" or
                                       key[3] != status):
                continue
            n += value
        return n

    def wait(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if predicate():
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 1.0))

    def summary(self):
        with self.cond:
            by_kind = collections.Counter()
            by_set = collections.Counter()
            for (kind, eset, _page), n in self.arrived.items():
                by_kind[kind] += n
                if eset:
                    by_set["%s %s" % (eset, kind)] += n
            by_status = collections.Counter()
            for key, n in self.completed.items():
                by_status[str(key[3])] += n
            return {"requests": dict(by_kind), "by_entity_set": dict(by_set),
                    "responses": dict(by_status),
                    "inflight": self.inflight,
                    "batch_operations": self.batch_operations}
