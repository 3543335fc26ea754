"""Webhooks the WhatsApp emulator POSTs to optsync's listener.

Bodies are the Cloud API envelope

  {"object": "whatsapp_business_account",
   "entry": [{"id": <WABA id>, "changes": [{"field": "messages" |
              "user_preferences", "value": {"messaging_product": "whatsapp",
              "metadata": {"display_phone_number", "phone_number_id"},
              "contacts"?, "messages"? | "statuses"? |
              "user_preferences"?}}]}]}

one event per POST, serialised once: the signature header
`X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, body bytes)>`
is computed over exactly the bytes sent.

Deliveries go through one worker thread in queue order, so a test sees
`sent` before `delivered` and a reply after the statuses queued before it
(Meta promises no order; the emulator picks the easy one). Only HTTP 200
counts as delivered; anything else, a refused connection or a timeout is
retried `retries` more times after retry_ms, 2*retry_ms, ... then given
up. Every attempt is recorded.
"""

import collections
import hashlib
import hmac
import http.client
import json
import queue
import ssl
import threading
import time
import urllib.parse

USER_AGENT = "facebookexternalua"


def sign(secret, body):
    return "sha256=" + hmac.new(secret.encode("utf-8"), body,
                                hashlib.sha256).hexdigest()


def envelope(pn, field, value):
    """Wrap one change value for phone number pn."""
    inner = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": pn.display,
                          "phone_number_id": pn.id}}
    inner.update(value)
    return {"object": "whatsapp_business_account",
            "entry": [{"id": pn.waba_id,
                       "changes": [{"value": inner, "field": field}]}]}


def contact(user):
    return {"profile": {"name": user.name}, "wa_id": user.wa_id}


def message_body(pn, user, message):
    return envelope(pn, "messages", {"contacts": [contact(user)],
                                     "messages": [message]})


def status_body(pn, status):
    return envelope(pn, "messages", {"statuses": [status]})


def preferences_body(pn, user, item):
    return envelope(pn, "user_preferences", {
        "contacts": [contact(user)], "user_preferences": [item]})


class Delivery:
    """One webhook POST (with its retries)."""

    __slots__ = ("id", "kind", "url", "body", "headers", "wamid",
                 "status", "phone_number_id", "attempts", "outcome",
                 "done", "queued_at")

    def __init__(self, did, kind, url, body, headers, wamid=None,
                 status=None, pnid=None):
        self.id = did
        self.kind = kind            # status | message | user_preferences
        self.url = url              # | raw
        self.body = body            # bytes, exactly as sent
        self.headers = headers
        self.wamid = wamid
        self.status = status        # sent | delivered | read | failed
        self.phone_number_id = pnid
        self.attempts = []
        self.outcome = "pending"    # delivered | failed | cancelled
        self.done = threading.Event()
        self.queued_at = time.time()

    def as_dict(self, body=True):
        out = {"id": self.id, "kind": self.kind, "url": self.url,
               "wamid": self.wamid, "status": self.status,
               "phone_number_id": self.phone_number_id,
               "outcome": self.outcome,
               "attempts": [dict(a) for a in self.attempts],
               "listener_status": self.attempts[-1].get("status")
               if self.attempts else None}
        if body:
            out["headers"] = dict(self.headers)
            out["body"] = self.body.decode("utf-8")
        return out


class Settings:
    """Delivery knobs the control API can change at run time."""

    def __init__(self, args):
        self.url = args.webhook_url
        self.app_secret = args.app_secret
        self.headers = dict(h.split(":", 1) for h in args.webhook_header)
        self.retries = args.webhook_retries
        self.retry_ms = args.webhook_retry_ms
        self.timeout = args.webhook_timeout

    def as_dict(self):
        return {"webhook_url": self.url, "app_secret": self.app_secret,
                "webhook_headers": dict(self.headers),
                "webhook_retries": self.retries,
                "webhook_retry_ms": self.retry_ms,
                "webhook_timeout": self.timeout}


class Webhooks:
    """The delivery queue, its worker and the delivery log.

    `cond` is the emulator's one lock/condition: every change to the
    log notifies it, so /_emulator/wait can block on deliveries.
    """

    def __init__(self, cond, settings, log_limit):
        self.cond = cond
        self.settings = settings
        self.log = collections.deque(maxlen=log_limit)
        self.queue = queue.Queue()
        self.next_id = 1
        self.inflight = 0           # queued or being sent
        self.generation = 0         # bumped by reset: drop old work
        self.counts = collections.Counter()
        self.stopping = threading.Event()
        self._conns = {}
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name="webhooks")
        self.thread.start()

    # -- queueing (caller holds cond) -------------------------------------
    def enqueue(self, kind, doc, pn=None, wamid=None, status=None,
                url=None, signature="valid"):
        """Serialise doc (or take bytes/str as they are), sign and queue
        it. Returns the Delivery, or None when no URL is configured."""
        target = url or (pn.webhook_url if pn is not None else None) or \
            self.settings.url
        if not target:
            self.counts["skipped"] += 1
            return None
        if isinstance(doc, bytes):
            body = doc
        elif isinstance(doc, str):
            body = doc.encode("utf-8")
        else:
            body = json.dumps(doc, ensure_ascii=False,
                              separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json",
                   "User-Agent": USER_AGENT}
        headers.update(self.settings.headers)
        secret = self.settings.app_secret
        if signature == "valid" and secret:
            headers["X-Hub-Signature-256"] = sign(secret, body)
        elif signature == "wrong":
            headers["X-Hub-Signature-256"] = sign(
                (secret or "") + "-wrong", body)
        elif signature not in ("valid", "none", None):
            headers["X-Hub-Signature-256"] = signature
        d = Delivery(self.next_id, kind, target, body, headers, wamid,
                     status, pn.id if pn is not None else None)
        self.next_id += 1
        self.log.append(d)
        self.inflight += 1
        self.counts["queued"] += 1
        self.queue.put((self.generation, d))
        self.cond.notify_all()
        return d

    def reset(self):
        """Forget the log; queued deliveries are cancelled (caller holds
        cond)."""
        self.generation += 1
        for d in self.log:
            if d.outcome == "pending":
                d.outcome = "cancelled"
                d.done.set()
        self.log.clear()
        self.counts.clear()
        self.inflight = 0
        self.cond.notify_all()

    # -- queries (caller holds cond) ------------------------------------
    def idle(self):
        return self.inflight == 0

    def finished(self, kind=None, status=None, wamid=None, outcome=None,
                 pnid=None):
        n = 0
        for d in self.log:
            if d.outcome == "pending":
                continue
            if (kind is None or d.kind == kind) and \
                    (status is None or d.status == status) and \
                    (wamid is None or d.wamid == wamid) and \
                    (outcome is None or d.outcome == outcome) and \
                    (pnid is None or d.phone_number_id == pnid):
                n += 1
        return n

    def listing(self, kind=None, wamid=None, body=True):
        return [d.as_dict(body) for d in self.log
                if (kind is None or d.kind == kind) and
                (wamid is None or d.wamid == wamid)]

    def summary(self):
        out = dict(self.counts)
        out["pending"] = self.inflight
        return out

    # -- the worker ---------------------------------------------------------
    def stop(self):
        self.stopping.set()
        self.queue.put(None)
        self.thread.join(5)

    def _run(self):
        while not self.stopping.is_set():
            item = self.queue.get()
            if item is None:
                break
            generation, d = item
            try:
                self._deliver(generation, d)
            finally:
                with self.cond:
                    if generation == self.generation:
                        self.inflight -= 1
                    d.done.set()
                    self.cond.notify_all()
        for conn in self._conns.values():
            conn.close()

    def _deliver(self, generation, d):
        with self.cond:
            retries = self.settings.retries
            delay = self.settings.retry_ms / 1000.0
            timeout = self.settings.timeout
        for attempt in range(retries + 1):
            if attempt:
                # Meta backs off between retries; ours are quick and
                # bounded. An interruptible wait, not synchronisation.
                if self.stopping.wait(delay * (2 ** (attempt - 1))):
                    return
            with self.cond:
                if generation != self.generation:
                    return          # reset while queued: drop it
            record = self._post(d, timeout)
            with self.cond:
                if generation != self.generation:
                    return
                d.attempts.append(record)
                self.counts["attempts"] += 1
                if record.get("status") == 200:
                    d.outcome = "delivered"
                    self.counts["delivered"] += 1
                    return
                self.cond.notify_all()
        with self.cond:
            if generation == self.generation:
                d.outcome = "failed"
                self.counts["failed"] += 1

    def _post(self, d, timeout):
        """One attempt -> {"at", "status"} or {"at", "error"}."""
        started = time.time()
        parts = urllib.parse.urlsplit(d.url)
        path = (parts.path or "/") + ("?" + parts.query if parts.query
                                      else "")
        key = (parts.scheme, parts.netloc)
        for fresh in (False, True):
            conn = self._conns.get(key)
            if conn is None or fresh:
                if conn is not None:
                    conn.close()
                conn = self._connect(parts, timeout)
                self._conns[key] = conn
            reused = not fresh and conn.sock is not None
            try:
                conn.request("POST", path, body=d.body, headers=d.headers)
                resp = conn.getresponse()
                resp.read()
                if resp.will_close:
                    conn.close()
                return {"at": started, "status": resp.status,
                        "ms": round((time.time() - started) * 1000, 1)}
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                # A kept-alive connection the listener closed meanwhile:
                # retry once on a fresh one before calling it a failure.
                if reused and not isinstance(e, TimeoutError):
                    continue
                return {"at": started, "error": "%s: %s"
                        % (type(e).__name__, e)}
        return {"at": started, "error": "no connection"}

    @staticmethod
    def _connect(parts, timeout):
        host = parts.hostname
        port = parts.port
        if parts.scheme == "https":
            return http.client.HTTPSConnection(
                host, port or 443, timeout=timeout,
                context=ssl.create_default_context())
        return http.client.HTTPConnection(host, port or 80,
                                          timeout=timeout)


def verify(url, verify_token, challenge, timeout=10):
    """Meta's GET handshake against url -> {"status", "body"} or
    {"error"}."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.urlencode({"hub.mode": "subscribe",
                                    "hub.challenge": challenge,
                                    "hub.verify_token": verify_token})
    path = (parts.path or "/") + "?" + \
        (parts.query + "&" if parts.query else "") + query
    conn = Webhooks._connect(parts, timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": USER_AGENT})
        resp = conn.getresponse()
        return {"status": resp.status,
                "body": resp.read().decode("utf-8", "replace")}
    except (OSError, http.client.HTTPException) as e:
        return {"error": "%s: %s" % (type(e).__name__, e)}
    finally:
        conn.close()
