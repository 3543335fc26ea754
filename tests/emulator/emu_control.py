"""The control API under /_emulator/ (JSON in, JSON out, no auth).

Tests use it to act as a CRM admin, to inject faults and to wait for
conditions instead of sleeping. Routes are listed in README.md; each
handler returns (status, JSON-able object).
"""

import json
import re

from emu_faults import FaultError
from emu_pipeline import OpContext
from emu_store import StoreError
from emu_util import is_guid, new_guid
from emu_webhooks import WebhookError


class ControlError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _body(raw):
    if not raw:
        return {}
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ControlError(400, "body is not JSON: %s" % e) from None


class Control:
    def __init__(self, emu):
        self.emu = emu
        self.routes = [
            ("GET", r"health", self.health),
            ("GET", r"counters", self.counters),
            ("POST", r"reset", self.reset),
            ("POST", r"seed", self.seed),
            ("GET", r"state", self.state),
            ("POST", r"admin/([^/]+)", self.admin_create),
            ("GET", r"admin/([^/]+)/([^/]+)", self.admin_get),
            ("PATCH", r"admin/([^/]+)/([^/]+)", self.admin_update),
            ("DELETE", r"admin/([^/]+)/([^/]+)", self.admin_delete),
            ("GET", r"faults", self.faults_list),
            ("POST", r"faults", self.faults_add),
            ("DELETE", r"faults", self.faults_clear),
            ("DELETE", r"faults/(\d+)", self.faults_remove),
            ("POST", r"release", self.release),
            ("POST", r"expire", self.expire),
            ("GET", r"limits", self.limits_get),
            ("POST", r"limits", self.limits_set),
            ("GET", r"clock", self.clock_get),
            ("POST", r"clock", self.clock_advance),
            ("POST", r"tracking", self.tracking),
            ("POST", r"clients", self.clients),
            ("POST", r"snapshot", self.snapshot),
            ("POST", r"wait", self.wait),
            ("GET", r"latency", self.latency_get),
            ("POST", r"response-cache", self.response_cache_set),
            ("POST", r"latency", self.latency_set),
            ("GET", r"webhooks", self.webhooks_list),
            ("POST", r"webhooks/endpoints", self.endpoint_add),
            ("DELETE", r"webhooks/endpoints/([^/]+)", self.endpoint_remove),
            ("POST", r"webhooks/steps", self.step_add),
            ("DELETE", r"webhooks/steps/([^/]+)", self.step_remove),
            ("GET", r"webhooks/deliveries", self.deliveries),
        ]

    def handle(self, method, sub, query, raw):
        known = False
        for m, pattern, fn in self.routes:
            match = re.fullmatch(pattern, sub)
            if not match:
                continue
            known = True
            if m == method:
                try:
                    return fn(_body(raw), query, *match.groups())
                except StoreError as e:
                    return e.status, {"error": {"code": e.code,
                                                "message": str(e)}}
                except (FaultError, WebhookError, ValueError,
                        TypeError) as e:
                    return 400, {"error": str(e)}
                except ControlError as e:
                    return e.status, {"error": str(e)}
        if known:
            return 405, {"error": "method %s not allowed on %s"
                         % (method, sub)}
        return 404, {"error": "no control route /_emulator/%s" % sub}

    # -- info ---------------------------------------------------------------
    def health(self, body, query):
        return 200, {"ok": True, "port": self.emu.port}

    def counters(self, body, query):
        e = self.emu
        out = e.monitor.summary()
        prot = e.protection.snapshot()
        out["violations"] = prot["violations"]
        out["violation_log"] = prot["violation_log"]
        out["identities"] = prot["identities"]
        out["tokens_issued"] = e.auth.issued
        out["delta_tokens_issued"] = len(e.webapi.delta_tokens)
        out["faults"] = e.faults.listing()
        out["version"] = e.store.version
        out["webhooks"] = e.webhooks.summary()
        if e.responses:
            out["response_cache"] = {"hits": e.responses.hits,
                                     "misses": e.responses.misses,
                                     "enabled": e.responses.enabled}
        return 200, out

    def state(self, body, query):
        dump = self.emu.store.dump()
        table = query.get("table")
        if table:
            t = self.emu.schema.table(table)
            if t is None:
                raise ControlError(404, "unknown table %r" % table)
            section = "configurations" if t.key == "configuration" \
                else "numbers"
            return 200, {"version": dump["version"],
                         section: dump[section],
                         "deleted_" + section: dump["deleted_" + section]}
        return 200, dump

    # -- data ---------------------------------------------------------------
    def reset(self, body, query):
        e = self.emu
        e.faults.clear()
        e.webhooks.reset()
        e.monitor.reset()
        e.protection.reset()
        e.set_latency(e.args.latency_ms, e.args.op_ms)
        for key in ("configuration", "number"):
            e.store.set_tracking(key, True)
        if not body.get("keep_data", False):
            e.store.load_seed({}, replace=True)
        if body.get("tokens", False):
            e.auth.expire_tokens()
        return 200, {"ok": True}

    def seed(self, body, query):
        replace = query.get("replace", "true") != "false"
        counts = self.emu.store.load_seed(body, replace=replace)
        return 200, {"ok": True, "loaded": counts,
                     "version": self.emu.store.version}

    def _table(self, name):
        t = self.emu.schema.table(name)
        if t is None:
            raise ControlError(404, "unknown table %r" % name)
        return t

    def _row_out(self, t, row):
        return {"table": t.key, "row": self.emu.store.row_to_roles(t, row)}

    def _admin(self, fn):
        """Run fn(txn, ctx) as a CRM admin: through the pipeline, so
        webhook steps fire and a failing sync step refuses the write."""
        pipeline = self.emu.pipeline
        ctx = OpContext.admin()
        return pipeline.run(lambda txn: fn(txn, ctx))

    def admin_create(self, body, query, table):
        t = self._table(table)
        row_id = body.get("id") or body.get(t.pk.name) or new_guid()
        if not is_guid(row_id):
            raise StoreError("id must be a GUID")
        p, store = self.emu.pipeline, self.emu.store
        row = self._admin(lambda txn, ctx: p.create(
            txn, t, row_id.lower(), store.convert_roles(t, body, txn), ctx))
        return 201, self._row_out(t, row)

    def admin_get(self, body, query, table, row_id):
        t = self._table(table)
        row = self.emu.store.get(t, row_id.lower())
        if row is None:
            raise ControlError(404, "no %s %s" % (t.key, row_id))
        return 200, self._row_out(t, row)

    def admin_update(self, body, query, table, row_id):
        t = self._table(table)
        p, store = self.emu.pipeline, self.emu.store
        row = self._admin(lambda txn, ctx: p.update(
            txn, t, row_id.lower(), store.convert_roles(t, body, txn), ctx))
        return 200, self._row_out(t, row)

    def admin_delete(self, body, query, table, row_id):
        t = self._table(table)
        p = self.emu.pipeline
        self._admin(lambda txn, ctx: p.delete(txn, t, row_id.lower(), ctx))
        return 200, {"ok": True, "version": self.emu.store.version}

    def tracking(self, body, query):
        t = self._table(body.get("table", ""))
        self.emu.store.set_tracking(t, body.get("enabled", True))
        return 200, {"ok": True}

    def clients(self, body, query):
        cid = body.get("client_id")
        self.emu.auth.add_client(cid, secret=body.get("secret"),
                                 cert_path=body.get("certificate"))
        return 200, {"ok": True}

    def snapshot(self, body, query):
        path = body.get("path")
        if not path:
            raise ControlError(400, "snapshot needs 'path'")
        self.emu.save_snapshot(path)
        return 200, {"ok": True, "path": path}

    # -- faults -------------------------------------------------------------
    def faults_list(self, body, query):
        return 200, {"faults": self.emu.faults.listing()}

    def faults_add(self, body, query):
        specs = body if isinstance(body, list) else [body]
        added = [self.emu.faults.add(s).as_dict() for s in specs]
        return 201, {"faults": added}

    def faults_clear(self, body, query):
        self.emu.faults.clear()
        return 200, {"ok": True}

    def faults_remove(self, body, query, fid):
        if not self.emu.faults.remove(int(fid)):
            raise ControlError(404, "no fault %s" % fid)
        return 200, {"ok": True}

    def release(self, body, query):
        fid = body.get("fault")
        return 200, {"released": self.emu.faults.release(
            None if fid is None else int(fid))}

    def expire(self, body, query):
        out = {}
        if body.get("delta_tokens"):
            out["delta_tokens"] = self.emu.webapi.expire_delta_tokens()
        if body.get("access_tokens"):
            out["access_tokens"] = self.emu.auth.expire_tokens()
        if not out:
            raise ControlError(400, "say what to expire: delta_tokens "
                               "and/or access_tokens")
        return 200, out

    def limits_get(self, body, query):
        return 200, self.emu.protection.limits.as_dict()

    def limits_set(self, body, query):
        self.emu.protection.limits.update(body)
        return 200, self.emu.protection.limits.as_dict()

    def clock_get(self, body, query):
        return 200, {"now": self.emu.clock.now(),
                     "offset": self.emu.clock.offset}

    def clock_advance(self, body, query):
        offset = self.emu.clock.advance(float(body.get("advance", 0)))
        self.emu.monitor.notify()
        return 200, {"now": self.emu.clock.now(), "offset": offset}

    # -- response cache (emu_respcache.py) -------------------------------------
    def response_cache_set(self, body, query):
        cache = self.emu.responses
        if cache is None:
            raise ControlError(400, "start the emulator with --response-cache")
        cache.enabled = bool(body.get("enabled", True))
        return 200, {"enabled": cache.enabled}

    # -- latency --------------------------------------------------------------
    def latency_get(self, body, query):
        return 200, self.emu.latency()

    def latency_set(self, body, query):
        cur = self.emu.latency()
        ms = float(body.get("latency_ms", cur["latency_ms"]))
        op = float(body.get("op_ms", cur["op_ms"]))
        if not (0 <= ms <= 60000 and 0 <= op <= 60000):
            raise ControlError(400, "latency_ms / op_ms: 0..60000")
        self.emu.set_latency(ms, op)
        return 200, self.emu.latency()

    # -- webhooks -------------------------------------------------------------
    def webhooks_list(self, body, query):
        return 200, self.emu.webhooks.listing()

    def endpoint_add(self, body, query):
        return 201, self.emu.webhooks.add_endpoint(body)

    def endpoint_remove(self, body, query, eid):
        if not self.emu.webhooks.remove_endpoint(eid):
            raise ControlError(404, "no endpoint %s" % eid)
        return 200, {"ok": True}

    def step_add(self, body, query):
        return 201, self.emu.webhooks.add_step(body)

    def step_remove(self, body, query, sid):
        if not self.emu.webhooks.remove_step(sid):
            raise ControlError(404, "no step %s" % sid)
        return 200, {"ok": True}

    def deliveries(self, body, query):
        return 200, {"deliveries": self.emu.webhooks.deliveries(
            query.get("endpoint"))}

    # -- wait ---------------------------------------------------------------
    def wait(self, body, query):
        timeout = float(body.get("timeout", 30))
        if not 0 <= timeout <= 600:
            raise ControlError(400, "timeout must be 0..600 s")
        pred, describe = self._condition(body)
        ok = self.emu.monitor.wait(pred, timeout)
        return (200 if ok else 408), {"ok": ok, "value": describe()}

    def _condition(self, body):
        e = self.emu
        cond = body.get("condition")
        count = int(body.get("count", 1))
        if cond == "held":
            fault = e.faults.get(int(body.get("fault", -1)))
            if fault is None or fault.type != "hold":
                raise ControlError(404, "no hold fault %r"
                                   % body.get("fault"))
            return (lambda: fault.waiting >= count), \
                (lambda: fault.waiting)
        if cond == "requests":
            event = body.get("event", "arrived")
            if event not in ("arrived", "completed"):
                raise ControlError(400, "event: arrived or completed")

            def n():
                return e.monitor.count(event, body.get("kind"),
                                       body.get("entity_set"),
                                       body.get("page"), body.get("status"))
            return (lambda: n() >= count), n
        if cond == "violations":
            def v():
                return e.protection.violations
            return (lambda: v() >= count), v
        if cond == "tokens":
            return (lambda: e.auth.issued >= count), (lambda: e.auth.issued)
        if cond == "idle":
            return (lambda: e.monitor.inflight <= 0), \
                (lambda: e.monitor.inflight)
        if cond == "deliveries":
            mode = body.get("mode")

            def d():
                return e.webhooks.finished(body.get("endpoint"),
                                           body.get("outcome"), mode)
            return (lambda: d() >= count), d
        if cond == "webhooks_idle":
            return e.webhooks.idle, (lambda: int(not e.webhooks.idle()))
        raise ControlError(400, "condition must be held, requests, "
                           "violations, tokens, idle, deliveries or "
                           "webhooks_idle")
