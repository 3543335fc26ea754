"""Webhooks: service endpoints (contract 8) and steps, registered through
the control API, and the POSTs Dataverse sends, as Microsoft Learn's
"Use webhooks to create external handlers for server events"
(https://learn.microsoft.com/power-apps/developer/data-platform/use-webhooks)
and "Register a webhook" (.../data-platform/register-web-hook) describe them.

Design notes
------------
  (1) An endpoint is a URL plus one authentication: HttpHeader (headers),
      WebhookKey (`?code=<value>`) or HttpQueryString (`?K=V&…`). The
      authvalue is write-only: listings never show it.
  (2) A step is (message Create/Update/Delete, table, stage 10/20/40,
      mode 0 sync / 1 async, filtering attributes for Update, images).
      Async steps exist only at stage 40 (post-operation).
  (3) Sync steps run inline, inside the writer's transaction
      (emu_pipeline calls sync()); a failure raises StoreError and the
      write rolls back ("Register a webhook"). Async steps are queued by
      after_commit() with their body built at commit time, and one worker
      thread POSTs them in queue order.
  (4) Only 2xx counts; after 502, 503 or 504 exactly one more attempt is
      made, for sync and async steps alike (the documented rule is
      general); anything else, a timeout (endpoint `timeout`, default
      60 s) or a refused connection fails at once. A failed async delivery
      is recorded like a failed System Job; nothing redelivers it.
  (5) Every delivery is recorded (attempts, statuses, outcome) and the
      monitor is notified, so tests wait on counts instead of sleeping.

        delivery:  queued --POST--> succeeded
                      `--POST--> (502/503/504) --POST--> succeeded | failed
                      `--POST--> (other / timeout / refused) --> failed
"""

import collections
import http.client
import socket
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from urllib.parse import urlencode, urlsplit

from emu_remotectx import Encoder, build
from emu_store import StoreError
from emu_util import new_guid

AUTH_TYPES = {"WebhookKey": 4, "HttpHeader": 5, "HttpQueryString": 6}
MESSAGES = ("Create", "Update", "Delete")
RETRY_STATUSES = (502, 503, 504)
MAX_RECORDS = 10000


class WebhookError(ValueError):
    """A registration the control API refuses (400)."""


def parse_settings(text):
    """`<settings><setting name="K" value="V"/></settings>` -> {K: V}."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise WebhookError("authvalue is not <settings> XML: %s" % e) \
            from None
    if root.tag != "settings":
        raise WebhookError("authvalue XML must be <settings>")
    out = {}
    for el in root:
        if el.tag != "setting" or "name" not in el.attrib:
            raise WebhookError("authvalue: <setting name=… value=…/> only")
        out[el.attrib["name"]] = el.attrib.get("value", "")
    return out


class Endpoint:
    def __init__(self, spec):
        if not isinstance(spec, dict):
            raise WebhookError("an endpoint is a JSON object")
        self.id = new_guid()
        self.name = str(spec.get("name") or "webhook")
        self.url = spec.get("url")
        parts = urlsplit(self.url) if isinstance(self.url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or \
                not parts.hostname:
            raise WebhookError("url must be an http:// or https:// URL")
        self.parts = parts
        auth = spec.get("authtype")
        names = {v: k for k, v in AUTH_TYPES.items()}
        auth = names.get(auth, auth)
        if auth not in AUTH_TYPES:
            raise WebhookError("authtype: WebhookKey (4), HttpHeader (5) or "
                               "HttpQueryString (6)")
        self.authtype = auth
        self.values = self._auth_values(auth, spec.get("authvalue"))
        self.timeout = float(spec.get("timeout", 60))
        if not 0 < self.timeout <= 600:
            raise WebhookError("timeout must be in (0, 600] seconds")
        self.ca_file = spec.get("ca_file")

    @staticmethod
    def _auth_values(auth, value):
        if auth == "WebhookKey":
            if not isinstance(value, str) or not value:
                raise WebhookError("WebhookKey needs the key as authvalue")
            return value
        if isinstance(value, str):
            value = parse_settings(value)
        if not isinstance(value, dict) or not value or not all(
                isinstance(k, str) and k and isinstance(v, str)
                for k, v in value.items()):
            raise WebhookError("%s needs authvalue {\"Key\": \"Value\", …} "
                               "or <settings> XML" % auth)
        return dict(value)

    def request(self):
        """(path with query, auth headers) of a POST to this endpoint."""
        path = self.parts.path or "/"
        query = self.parts.query
        headers = {}
        extra = None
        if self.authtype == "WebhookKey":
            extra = urlencode({"code": self.values})
        elif self.authtype == "HttpQueryString":
            extra = urlencode(self.values)
        else:
            headers = dict(self.values)
        if extra:
            query = "%s&%s" % (query, extra) if query else extra
        return (path + ("?" + query if query else "")), headers

    def as_dict(self):
        return {"id": self.id, "name": self.name, "url": self.url,
                "contract": 8, "authtype": self.authtype,
                "authtype_value": AUTH_TYPES[self.authtype],
                "timeout": self.timeout}


class Step:
    def __init__(self, spec, schema, endpoints):
        if not isinstance(spec, dict):
            raise WebhookError("a step is a JSON object")
        self.id = new_guid()
        self.endpoint = spec.get("endpoint")
        if self.endpoint not in endpoints:
            raise WebhookError("endpoint: the id of a registered endpoint")
        self.message = spec.get("message")
        if self.message not in MESSAGES:
            raise WebhookError("message: Create, Update or Delete")
        self.table = schema.table(spec.get("table") or "")
        if self.table is None:
            raise WebhookError("table: configuration / number, an entity "
                               "set or a logical name")
        self.stage = spec.get("stage", 40)
        self.mode = spec.get("mode", 0)
        if self.stage not in (10, 20, 40) or self.mode not in (0, 1):
            raise WebhookError("stage 10/20/40, mode 0 (sync) or 1 (async)")
        if self.mode == 1 and self.stage != 40:
            raise WebhookError("async steps run only in post-operation (40)")
        self.name = str(spec.get("name") or "%s of %s: %s" % (
            self.message, self.table.logical_name, endpoints[self.endpoint]
            .name))
        attrs = self._attr_names()
        self.filtering = self._filtering(spec.get("filtering_attributes"),
                                         attrs)
        self.images = [self._image(i, attrs) for i in
                       spec.get("images") or []]
        aliases = [i["alias"] for i in self.images]
        if len(set(aliases)) != len(aliases):
            raise WebhookError("image aliases must be unique")

    def _attr_names(self):
        return {Encoder.attr_name(c) for c in self.table.columns}

    def _filtering(self, value, attrs):
        if value is None:
            return None
        if self.message != "Update":
            raise WebhookError("filtering_attributes apply to Update only")
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        bad = [v for v in value if v not in attrs]
        if bad or not value:
            raise WebhookError("unknown filtering attribute(s) %s" % bad)
        return set(value)

    def _image(self, spec, attrs):
        kind = spec.get("type") if isinstance(spec, dict) else None
        if kind not in ("pre", "post", "both"):
            raise WebhookError("image type: pre, post or both")
        alias = spec.get("alias")
        if not isinstance(alias, str) or not alias:
            raise WebhookError("image alias is required")
        if kind in ("pre", "both") and self.message == "Create":
            raise WebhookError("a pre image is not available on Create")
        if kind in ("post", "both") and (self.message == "Delete" or
                                         self.stage != 40):
            raise WebhookError("a post image needs Create/Update in "
                               "post-operation (40)")
        names = spec.get("attributes")
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",") if n.strip()]
        if names is not None:
            bad = [n for n in names if n not in attrs]
            if bad:
                raise WebhookError("unknown image attribute(s) %s" % bad)
            names = set(names)
        return {"type": kind, "alias": alias, "attributes": names}

    def matches(self, ev):
        if ev.message != self.message or ev.table is not self.table:
            return False
        if self.filtering is None or ev.message != "Update":
            return True
        sent = {Encoder.attr_name(c) for c in ev.submitted}
        if sent & {"statecode", "statuscode"}:
            sent |= {"statecode", "statuscode"}
        return bool(sent & self.filtering)

    def as_dict(self):
        return {"id": self.id, "name": self.name, "endpoint": self.endpoint,
                "message": self.message, "table": self.table.key,
                "entity": self.table.logical_name, "stage": self.stage,
                "mode": self.mode,
                "filtering_attributes": sorted(self.filtering)
                if self.filtering is not None else None,
                "images": [{"type": i["type"], "alias": i["alias"],
                            "attributes": sorted(i["attributes"])
                            if i["attributes"] is not None else None}
                           for i in self.images]}


class Delivery:
    """One event sent (or to be sent) to one step's endpoint."""

    def __init__(self, step, ev, body, size_exceeded):
        self.id = new_guid()
        self.endpoint = step.endpoint
        self.step = step.id
        self.message = ev.message
        self.entity = ev.table.logical_name
        self.row_id = ev.row_id
        self.mode = step.mode
        self.stage = step.stage
        self.correlation_id = ev.ctx.correlation_id
        self.body = body
        self.size = len(body)
        self.size_exceeded = size_exceeded
        self.attempts = []          # {"status": int|None, "error": str|None}
        self.outcome = "pending"    # -> "succeeded" / "failed"

    def as_dict(self):
        return {"id": self.id, "endpoint": self.endpoint, "step": self.step,
                "message": self.message, "entity": self.entity,
                "row_id": self.row_id, "mode": self.mode,
                "stage": self.stage, "correlation_id": self.correlation_id,
                "size": self.size, "size_exceeded": self.size_exceeded,
                "attempts": list(self.attempts), "outcome": self.outcome}


class Webhooks:
    def __init__(self, schema, serializer, monitor, organization):
        self.schema = schema
        self.monitor = monitor
        self.organization = organization    # x-ms-dynamics-organization
        self.encoder = Encoder(schema, serializer.lookup_name)
        self.lock = threading.Condition()
        self.endpoints = collections.OrderedDict()
        self.steps = collections.OrderedDict()
        self.records = collections.deque(maxlen=MAX_RECORDS)
        self.queue = collections.deque()
        self.busy = 0
        self.generation = 0
        self.worker = threading.Thread(target=self._work, daemon=True,
                                       name="webhook-worker")
        self.worker.start()

    # -- registry ---------------------------------------------------------
    def add_endpoint(self, spec):
        ep = Endpoint(spec)
        with self.lock:
            self.endpoints[ep.id] = ep
        return ep.as_dict()

    def remove_endpoint(self, eid):
        with self.lock:
            if self.endpoints.pop(eid, None) is None:
                return False
            for sid in [s.id for s in self.steps.values()
                        if s.endpoint == eid]:
                del self.steps[sid]
            return True

    def add_step(self, spec):
        with self.lock:
            step = Step(spec, self.schema, self.endpoints)
            self.steps[step.id] = step
        return step.as_dict()

    def remove_step(self, sid):
        with self.lock:
            return self.steps.pop(sid, None) is not None

    def listing(self):
        with self.lock:
            return {"endpoints": [e.as_dict() for e in
                                  self.endpoints.values()],
                    "steps": [s.as_dict() for s in self.steps.values()]}

    def reset(self):
        """Forget registrations, queued deliveries and records."""
        with self.lock:
            self.endpoints.clear()
            self.steps.clear()
            self.queue.clear()
            self.records.clear()
            self.generation += 1
            self.lock.notify_all()
        self.monitor.notify()

    # -- pipeline hooks -----------------------------------------------------
    def sync(self, ev, stages):
        """Deliver the sync steps of these stages now; StoreError when one
        fails (the write is rolled back)."""
        for stage in stages:
            with self.lock:
                steps = [s for s in self.steps.values() if s.mode == 0 and
                         s.stage == stage and s.matches(ev)]
            for step in steps:
                d, ep = self._prepare(step, ev)
                if ep is None:
                    continue
                self._record(d)
                self._deliver(d, ep)
                if d.outcome != "succeeded":
                    last = d.attempts[-1]
                    why = last["error"] or "HTTP %d" % last["status"]
                    raise StoreError(
                        "The synchronous webhook step '%s' failed: the call "
                        "to %s://%s%s returned %s. The operation was rolled "
                        "back." % (step.name, ep.parts.scheme, ep.parts.netloc,
                                   ep.parts.path, why), "0x80040265", 400)

    def after_commit(self, events):
        """Queue the async steps of committed operations."""
        with self.lock:
            steps = [s for s in self.steps.values() if s.mode == 1]
        for ev in events:
            for step in steps:
                if step.matches(ev):
                    d, ep = self._prepare(step, ev)
                    if ep is None:
                        continue
                    with self.lock:
                        self.records.append(d)
                        self.queue.append((self.generation, d, ep))
                        self.lock.notify_all()
        self.monitor.notify()

    def _prepare(self, step, ev):
        with self.lock:
            ep = self.endpoints.get(step.endpoint)
        if ep is None:
            return None, None
        operation_id = new_guid()
        body, exceeded = build(self.encoder, ev, step, step.stage, step.mode,
                               operation_id)
        d = Delivery(step, ev, body, exceeded)
        d.id = operation_id
        return d, ep

    def _record(self, d):
        with self.lock:
            self.records.append(d)

    # -- delivery -------------------------------------------------------------
    def _work(self):
        while True:
            with self.lock:
                while not self.queue:
                    self.lock.wait()
                gen, d, ep = self.queue.popleft()
                if gen != self.generation:
                    continue
                self.busy += 1
            try:
                self._deliver(d, ep)
            finally:
                with self.lock:
                    self.busy -= 1
                    self.lock.notify_all()
                self.monitor.notify()

    def _deliver(self, d, ep):
        """POST with the documented retry rule; sets d.outcome."""
        for attempt in (1, 2):
            status, error = self._post(d, ep)
            with self.lock:
                d.attempts.append({"status": status, "error": error,
                                   "at": time.time()})
            if status is not None and 200 <= status < 300:
                d.outcome = "succeeded"
                break
            if attempt == 2 or status not in RETRY_STATUSES:
                d.outcome = "failed"
                break
        d.body = None           # sent: keep only its size
        self.monitor.notify()

    def _post(self, d, ep):
        path, headers = ep.request()
        headers.update({
            "Content-Type": "application/json",
            "x-ms-dynamics-organization": self.organization,
            "x-ms-dynamics-entity-name": d.entity,
            "x-ms-dynamics-request-name": d.message,
            "x-ms-correlation-request-id": d.correlation_id,
            "Connection": "close"})
        if d.size_exceeded:
            headers["x-ms-dynamics-msg-size-exceeded"] = "true"
        port = ep.parts.port or (443 if ep.parts.scheme == "https" else 80)
        if ep.parts.scheme == "https":
            ctx = ssl.create_default_context(cafile=ep.ca_file)
            conn = http.client.HTTPSConnection(ep.parts.hostname, port,
                                               timeout=ep.timeout,
                                               context=ctx)
        else:
            conn = http.client.HTTPConnection(ep.parts.hostname, port,
                                              timeout=ep.timeout)
        try:
            conn.request("POST", path, body=d.body, headers=headers)
            resp = conn.getresponse()
            resp.read()         # the body is ignored ("Use webhooks")
            return resp.status, None
        except socket.timeout:
            return None, "timeout after %gs" % ep.timeout
        except (OSError, http.client.HTTPException) as e:
            return None, "%s: %s" % (type(e).__name__, e)
        finally:
            conn.close()

    # -- results and waits ----------------------------------------------------
    def deliveries(self, endpoint=None):
        with self.lock:
            return [d.as_dict() for d in self.records
                    if endpoint is None or d.endpoint == endpoint]

    def finished(self, endpoint=None, outcome=None, mode=None):
        with self.lock:
            return sum(1 for d in self.records
                       if d.outcome != "pending" and
                       (endpoint is None or d.endpoint == endpoint) and
                       (outcome is None or d.outcome == outcome) and
                       (mode is None or d.mode == mode))

    def idle(self):
        with self.lock:
            return not self.queue and self.busy == 0

    def summary(self):
        with self.lock:
            out = {}
            for d in self.records:
                c = out.setdefault(d.endpoint, {"succeeded": 0, "failed": 0,
                                                "pending": 0})
                c[d.outcome] += 1
            return {"by_endpoint": out, "queued": len(self.queue)}
