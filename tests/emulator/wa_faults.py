"""Injected faults of the WhatsApp emulator (POST /_emulator/faults).

  {"type": "error" | "status" | "drop" | "lost_response" | "delay" | "hold",
   "match": {"phone_number_id": "...", "route": "cloud" | "360dialog",
             "to": "<wa_id digits>", "type": "template", "template": "name"},
   "after": 0,      skip this many matching sends first
   "every": 1,      then fire on every Nth matching send
   "count": 1,      fire this many times (null: forever)
   ...type parameters}

  error          Meta's error JSON for "code" (e.g. 80007, 130429, 131000);
                 HTTP status from the code table unless "status" is given;
                 optional "subcode", "message", "details"
  status         HTTP "status" (4xx/5xx) with a Graph error body (code 2
                 for 503, 131000 otherwise), or exactly "body" if given
  drop           close the connection without answering; nothing is sent
  lost_response  send the message (logged, webhooks follow), then close
                 the connection without answering
  delay          wait "seconds" before handling the send
  hold           block the send until POST /_emulator/release (or
                 "timeout" seconds, default 300), then handle it

Faults apply to send requests (both routes, after authentication), not
to the control API. Unlike the Dataverse emulator, "count" defaults to 1:
the usual test says "the next send fails".
"""

import threading

from wa_errors import CODES

TYPES = ("error", "status", "drop", "lost_response", "delay", "hold")
MATCH_KEYS = ("phone_number_id", "route", "to", "type", "template")


class FaultError(ValueError):
    pass


class SendInfo:
    """What faults can match on: known once the body is parsed (fields
    stay None when it is not valid)."""

    def __init__(self, route, pnid):
        self.route = route
        self.phone_number_id = pnid
        self.to = None
        self.type = None
        self.template = None


class Fault:
    def __init__(self, fid, spec):
        if not isinstance(spec, dict):
            raise FaultError("a fault is a JSON object")
        self.id = fid
        self.type = spec.get("type")
        if self.type not in TYPES:
            raise FaultError("fault type must be one of %s"
                             % ", ".join(TYPES))
        self.match = spec.get("match") or {}
        if not isinstance(self.match, dict):
            raise FaultError("match is a JSON object")
        for key in self.match:
            if key not in MATCH_KEYS:
                raise FaultError("unknown match key %r (one of %s)"
                                 % (key, ", ".join(MATCH_KEYS)))
        self.after = int(spec.get("after", 0))
        self.every = int(spec.get("every", 1))
        count = spec.get("count", 1)
        self.count = None if count is None else int(count)
        if self.every < 1 or self.after < 0 or \
                (self.count is not None and self.count < 1):
            raise FaultError("after >= 0, every >= 1, count >= 1 or null")
        self.params = {k: v for k, v in spec.items()
                       if k not in ("type", "match", "after", "every",
                                    "count")}
        self._check_params()
        self.seen = 0
        self.fired = 0
        self.waiting = 0
        self.released = threading.Event()

    def _check_params(self):
        p = self.params
        allowed = {"error": {"code", "status", "subcode", "message",
                             "details"},
                   "status": {"status", "body"}, "drop": set(),
                   "lost_response": set(), "delay": {"seconds"},
                   "hold": {"timeout"}}[self.type]
        extra = set(p) - allowed
        if extra:
            raise FaultError("%s fault: unknown parameter(s) %s"
                             % (self.type, ", ".join(sorted(extra))))
        if self.type == "error":
            if not isinstance(p.get("code"), int):
                raise FaultError("error fault needs an integer 'code'")
            if p["code"] not in CODES and "message" not in p:
                p["message"] = "(#%d) Emulated error" % p["code"]
        status = p.get("status")
        if self.type == "status" or status is not None:
            if not isinstance(status, int) or not 400 <= status <= 599:
                raise FaultError("'status' must be a 4xx/5xx integer")
        if self.type == "delay" and not isinstance(p.get("seconds"),
                                                   (int, float)):
            raise FaultError("delay fault needs 'seconds'")

    def matches(self, info):
        for key, want in self.match.items():
            have = getattr(info, key)
            if isinstance(want, list):
                if have not in want:
                    return False
            elif have != want:
                return False
        return True

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
    """Registered faults. The caller holds the emulator's lock for every
    method except hold(), which blocks and takes the lock itself."""

    def __init__(self, cond):
        self.cond = cond
        self.faults = {}
        self.next_id = 1

    def add(self, spec):
        fault = Fault(self.next_id, spec)
        self.faults[fault.id] = fault
        self.next_id += 1
        return fault

    def remove(self, fid):
        fault = self.faults.pop(fid, None)
        if fault is not None:
            fault.released.set()
        return fault is not None

    def clear(self):
        for fault in self.faults.values():
            fault.released.set()
        self.faults.clear()

    def release(self, fid=None):
        targets = [f for f in self.faults.values() if f.type == "hold" and
                   (fid is None or f.id == fid)]
        for fault in targets:
            fault.released.set()
        return len(targets)

    def fire(self, info):
        """Faults that apply to this send, in registration order; each
        is counted as fired."""
        out = []
        for fault in self.faults.values():
            if not fault.matches(info):
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

    def hold(self, fault):
        """Block the calling request thread until released (lock not
        held by the caller)."""
        with self.cond:
            fault.waiting += 1
            self.cond.notify_all()
        try:
            fault.released.wait(float(fault.params.get("timeout", 300)))
        finally:
            with self.cond:
                fault.waiting -= 1
                self.cond.notify_all()

    def listing(self):
        return [f.as_dict() for f in self.faults.values()]
