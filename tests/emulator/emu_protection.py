"""Service protection limits, per identity (client id), as Microsoft
Learn's "Service protection API limits" describes them
(https://learn.microsoft.com/power-apps/developer/data-platform/api-limits).

Three sliding-window facets, as Dataverse enforces them per user:
  requests     N requests per window            0x80072322
  execution    combined ms of requests/window   0x80072321
  concurrency  requests in flight at once       0x80072326
A refused request gets 429 + Retry-After (whole seconds). From then until
Retry-After has elapsed the identity is blocked: every request it sends in
that time is a *violation* (a client that retried too early), is counted,
and gets 429 again with the remaining time. Injected 429 faults block the
same way (block()).

$batch: the batch is admitted as one request; each of its operations
after the first then adds one more request to the caller's window
(count_operation(); Limits.batch_operations = 0 turns that off, which is
what api-limits describes for the request facet: "A batch ... will avoid
the number of requests limit"). The window may overshoot inside a batch,
as the documentation says it can; the next request then waits.
"""

import collections
import math
import threading

BURST = ("0x80072322", "Number of requests exceeded the limit of %d over "
         "time window of %d seconds.")
TIME = ("0x80072321", "Combined execution time of incoming requests "
        "exceeded limit of %s milliseconds over time window of %d seconds. "
        "Decrease number of concurrent requests or reduce the duration of "
        "requests and try again later.")
CONCURRENCY = ("0x80072326", "Number of concurrent requests exceeded the "
               "limit of %d.")


class Limits:
    def __init__(self, requests=6000, window=300, concurrency=52,
                 execution_ms=1200000, concurrency_retry_after=1,
                 batch_operations=1):
        self.requests = int(requests)
        self.window = float(window)
        self.concurrency = int(concurrency)
        self.execution_ms = int(execution_ms)
        self.concurrency_retry_after = int(concurrency_retry_after)
        self.batch_operations = int(batch_operations)

    def as_dict(self):
        return dict(self.__dict__)

    def update(self, values):
        for key, value in values.items():
            if key not in self.__dict__:
                raise ValueError("unknown limit %r" % key)
            cast = float if key == "window" else int
            if cast(value) < 0:
                raise ValueError("limit %s must not be negative" % key)
            setattr(self, key, cast(value))


class Refusal:
    """A 429 to send: code, message, Retry-After seconds."""

    def __init__(self, code, message, retry_after, violation=False):
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.violation = violation


class _Identity:
    def __init__(self):
        self.times = collections.deque()
        self.exec = collections.deque()     # (time, ms)
        self.exec_sum = 0.0
        self.inflight = 0
        self.blocked_until = 0.0
        self.block_reason = None            # (code, message)
        self.violations = 0
        self.throttled = 0


class Protection:
    def __init__(self, clock, limits=None):
        self.clock = clock
        self.limits = limits or Limits()
        self.defaults = Limits(**self.limits.as_dict())
        self.ids = collections.defaultdict(_Identity)
        self.lock = threading.Lock()
        self.violations = 0
        self.violation_log = collections.deque(maxlen=200)

    def reset(self):
        with self.lock:
            self.ids.clear()
            self.violations = 0
            self.violation_log.clear()
            self.limits = Limits(**self.defaults.as_dict())

    def _prune(self, st, now):
        horizon = now - self.limits.window
        while st.times and st.times[0] <= horizon:
            st.times.popleft()
        while st.exec and st.exec[0][0] <= horizon:
            st.exec_sum -= st.exec.popleft()[1]

    def admit(self, identity, what=""):
        """None when the request may run (it is then in flight until
        release()), else a Refusal."""
        lim = self.limits
        with self.lock:
            st = self.ids[identity]
            now = self.clock.now()
            if now < st.blocked_until:
                st.violations += 1
                self.violations += 1
                self.violation_log.append({
                    "identity": identity, "at": now, "request": what,
                    "early_by": round(st.blocked_until - now, 3)})
                code, msg = st.block_reason
                return Refusal(code, msg, _ceil(st.blocked_until - now),
                               violation=True)
            self._prune(st, now)
            refusal = None
            if st.inflight >= lim.concurrency:
                refusal = Refusal(CONCURRENCY[0],
                                  CONCURRENCY[1] % lim.concurrency,
                                  lim.concurrency_retry_after)
            elif len(st.times) >= lim.requests:
                # the oldest entries must leave the window until there is
                # room for one more (a batch may have overshot)
                wait = st.times[len(st.times) - lim.requests] + \
                    lim.window - now
                refusal = Refusal(BURST[0], BURST[1] % (
                    lim.requests, lim.window), _ceil(wait))
            elif st.exec_sum >= lim.execution_ms:
                wait = st.exec[0][0] + lim.window - now
                refusal = Refusal(TIME[0], TIME[1] % (
                    "{:,}".format(lim.execution_ms), lim.window),
                    _ceil(wait))
            if refusal is not None:
                self._block_locked(st, now, refusal)
                return refusal
            st.times.append(now)
            st.inflight += 1
            return None

    def count_operation(self, identity):
        """One more operation of a $batch counts as a request."""
        if not self.limits.batch_operations:
            return
        with self.lock:
            self.ids[identity].times.append(self.clock.now())

    def release(self, identity, ms):
        with self.lock:
            st = self.ids[identity]
            st.inflight -= 1
            st.exec.append((self.clock.now(), ms))
            st.exec_sum += ms

    def block(self, identity, refusal):
        """Record a 429 sent for other reasons (an injected fault)."""
        with self.lock:
            self._block_locked(self.ids[identity], self.clock.now(), refusal)

    @staticmethod
    def _block_locked(st, now, refusal):
        st.throttled += 1
        until = now + refusal.retry_after
        if until > st.blocked_until:
            st.blocked_until = until
            st.block_reason = (refusal.code, refusal.message)

    def snapshot(self):
        with self.lock:
            return {
                "violations": self.violations,
                "violation_log": list(self.violation_log),
                "identities": {
                    k: {"inflight": v.inflight, "violations": v.violations,
                        "throttled": v.throttled,
                        "requests_in_window": len(v.times),
                        "blocked_for": max(0.0, round(
                            v.blocked_until - self.clock.now(), 3))}
                    for k, v in self.ids.items()},
                "limits": self.limits.as_dict()}


def _ceil(seconds):
    return max(1, int(math.ceil(seconds - 1e-9)))
