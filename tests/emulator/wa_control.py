"""The WhatsApp emulator's control API under /_emulator/ (JSON in, JSON
out, no auth).

Tests use it to play Meta's side (templates, tokens, faults, clock) and
the customer's side (replies, button taps, marketing stop/resume), to read
what the connector sent, and to wait for conditions instead of sleeping.
README.md lists the routes; each handler returns (status, JSON-able).
"""

import json
import re
import secrets

from wa_core import message_field
from wa_faults import FaultError
from wa_model import digits
from wa_webhooks import verify as verify_webhook


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


def _object(body):
    if not isinstance(body, dict):
        raise ControlError(400, "body must be a JSON object")
    return body


class Control:
    def __init__(self, wa):
        self.wa = wa
        self.routes = [
            ("GET", r"health", self.health),
            ("GET", r"counters", self.counters),
            ("POST", r"reset", self.reset),
            ("GET", r"settings", self.settings_get),
            ("POST", r"settings", self.settings_set),
            ("GET", r"clock", self.clock_get),
            ("POST", r"clock", self.clock_set),
            ("GET", r"phone_numbers", self.numbers_get),
            ("POST", r"phone_numbers", self.numbers_set),
            ("GET", r"templates", self.templates_get),
            ("POST", r"templates", self.template_add),
            ("PATCH", r"templates/([^/]+)/([^/]+)/([^/]+)",
             self.template_update),
            ("DELETE", r"templates/([^/]+)/([^/]+)/([^/]+)",
             self.template_delete),
            ("GET", r"tokens", self.tokens_get),
            ("POST", r"tokens", self.tokens_add),
            ("POST", r"tokens/revoke", self.tokens_revoke),
            ("POST", r"tokens/restore", self.tokens_restore),
            ("GET", r"users", self.users_get),
            ("GET", r"users/([^/]+)", self.user_get),
            ("POST", r"users", self.users_set),
            ("POST", r"reply", self.reply),
            ("POST", r"preferences", self.preferences),
            ("POST", r"deliver", self.deliver),
            ("POST", r"verify", self.verify),
            ("GET", r"messages", self.messages),
            ("GET", r"messages/([^/]+)", self.message),
            ("GET", r"attempts", self.attempts),
            ("GET", r"inbound", self.inbound),
            ("GET", r"webhooks", self.webhooks),
            ("GET", r"faults", self.faults_list),
            ("POST", r"faults", self.faults_add),
            ("DELETE", r"faults", self.faults_clear),
            ("DELETE", r"faults/(\d+)", self.faults_remove),
            ("POST", r"release", self.release),
            ("POST", r"wait", self.wait),
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
                except ControlError as e:
                    return e.status, {"error": str(e)}
                except (FaultError, ValueError, TypeError, KeyError) as e:
                    return 400, {"error": str(e)}
        if known:
            return 405, {"error": "method %s not allowed on %s"
                         % (method, sub)}
        return 404, {"error": "no control route /_emulator/%s" % sub}

    # -- info and settings ------------------------------------------------
    def health(self, body, query):
        return 200, {"ok": True, "port": self.wa.port}

    def counters(self, body, query):
        with self.wa.cond:
            return 200, self.wa.summary()

    def reset(self, body, query):
        self.wa.reset()
        return 200, {"ok": True}

    def settings_get(self, body, query):
        with self.wa.cond:
            out = self.wa.settings.as_dict()
            out.update(self.wa.hooks_settings.as_dict())
            return 200, out

    def settings_set(self, body, query):
        body = _object(body)
        hooks = {"webhook_url", "app_secret", "webhook_headers",
                 "webhook_retries", "webhook_retry_ms", "webhook_timeout"}
        known = hooks | set(self.wa.settings.FIELDS)
        unknown = set(body) - known
        if unknown:
            raise ControlError(400, "unknown setting(s): %s (known: %s)" % (
                ", ".join(sorted(unknown)), ", ".join(sorted(known))))
        with self.wa.cond:
            new_hooks = _hook_settings(body)
            self.wa.settings.update(body)
            for key, value in new_hooks.items():
                setattr(self.wa.hooks_settings, key, value)
        return self.settings_get({}, query)

    def clock_get(self, body, query):
        return 200, self.wa.clock.state()

    def clock_set(self, body, query):
        body = _object(body)
        if "freeze" in body:
            if not isinstance(body["freeze"], bool):
                raise ControlError(400, "freeze: true or false")
            self.wa.clock.freeze(body["freeze"])
        self.wa.clock.advance(float(body.get("advance", 0)))
        with self.wa.cond:
            self.wa.cond.notify_all()
        return 200, self.wa.clock.state()

    # -- phone numbers and templates --------------------------------------
    def numbers_get(self, body, query):
        with self.wa.cond:
            return 200, {"phone_numbers": self.wa.directory.listing()}

    def numbers_set(self, body, query):
        """Add or change a phone number (templates go through
        /templates)."""
        body = _object(body)
        pnid = body.get("phone_number_id")
        if "templates" in body:
            raise ControlError(400, "add templates with POST templates")
        with self.wa.cond:
            pn = self.wa.directory.ensure(pnid, body)
            return 200, pn.as_dict(templates=False)

    def templates_get(self, body, query):
        with self.wa.cond:
            pnid = query.get("phone_number_id")
            numbers = [self._number(pnid)] if pnid else \
                self.wa.directory.numbers.values()
            out = []
            for pn in numbers:
                for t in pn.as_dict()["templates"]:
                    t["phone_number_id"] = pn.id
                    out.append(t)
            return 200, {"templates": out}

    def _number(self, pnid):
        pn = self.wa.directory.get(pnid)
        if pn is None:
            raise ControlError(404, "unknown phone_number_id %r" % pnid)
        return pn

    def _template(self, pnid, name, lang):
        t = self._number(pnid).templates.get((name, lang))
        if t is None:
            raise ControlError(404, "no template %s/%s on %s"
                               % (name, lang, pnid))
        return t

    def template_add(self, body, query):
        body = dict(_object(body))
        pnid = body.pop("phone_number_id", None)
        with self.wa.cond:
            pn = self._number(pnid)
            t = pn.add_template(body, self.wa.directory.template_id())
            return 201, dict(t.as_dict(), phone_number_id=pn.id)

    def template_update(self, body, query, pnid, name, lang):
        with self.wa.cond:
            t = self._template(pnid, name, lang)
            t.update(_object(body))
            return 200, dict(t.as_dict(), phone_number_id=pnid)

    def template_delete(self, body, query, pnid, name, lang):
        with self.wa.cond:
            self._template(pnid, name, lang)
            del self.wa.directory.get(pnid).templates[(name, lang)]
            return 200, {"ok": True}

    # -- credentials ------------------------------------------------------
    def tokens_get(self, body, query):
        with self.wa.cond:
            return 200, self.wa.creds.listing()

    def tokens_add(self, body, query):
        """{"token": T} adds a bearer token; {"key": K,
        "phone_number_id": P} a D360-API-KEY."""
        body = _object(body)
        with self.wa.cond:
            if "token" in body:
                self.wa.creds.add_token(body["token"])
            elif "key" in body:
                self.wa.creds.add_key(body["key"],
                                      body.get("phone_number_id"))
                self.wa.directory.ensure(body["phone_number_id"])
            else:
                raise ControlError(400, "name a \"token\" or a \"key\" "
                                   "(with \"phone_number_id\")")
            return 200, self.wa.creds.listing()

    def tokens_revoke(self, body, query):
        body = _object(body)
        reason = body.get("reason", "revoked")
        if reason not in ("revoked", "expired"):
            raise ControlError(400, "reason: revoked or expired")
        with self.wa.cond:
            self.wa.creds.set_state({k: v for k, v in body.items()
                                     if k != "reason"}, reason)
            return 200, self.wa.creds.listing()

    def tokens_restore(self, body, query):
        with self.wa.cond:
            self.wa.creds.set_state(_object(body), None)
            return 200, self.wa.creds.listing()

    # -- users --------------------------------------------------------------
    def users_get(self, body, query):
        with self.wa.cond:
            now = self.wa.clock.now()
            return 200, {"users": [u.as_dict(now) for u in
                                   self.wa.users.users.values()]}

    def user_get(self, body, query, wa_id):
        with self.wa.cond:
            user = self.wa.users.get(wa_id, create=False)
            if user is None:
                raise ControlError(404, "no user %s" % wa_id)
            return 200, user.as_dict(self.wa.clock.now())

    def users_set(self, body, query):
        """Create or change one user ({"wa_id": ..., ...}) or several
        (a list)."""
        specs = body if isinstance(body, list) else [_object(body)]
        out = []
        with self.wa.cond:
            for spec in specs:
                wa_id = digits(_object(spec).get("wa_id"))
                if wa_id is None:
                    raise ControlError(400, "wa_id: a phone number")
                user = self.wa.users.get(wa_id)
                now = self.wa.clock.now()
                user.configure(spec, self.wa.directory, now)
                out.append(user.as_dict(now))
            self.wa.cond.notify_all()
        return 200, {"users": out}

    # -- the customer's side: webhooks ---------------------------------
    def _send_webhook(self, body, make):
        """Run make() under the lock (it queues a delivery), then wait for
        the delivery unless "wait": false."""
        body = _object(body)
        wait = body.get("wait", True)
        timeout = float(body.get("timeout", 30))
        if not 0 <= timeout <= 600:
            raise ControlError(400, "timeout: 0..600 s")
        with self.wa.cond:
            if not self.wa.hooks_settings.url and not any(
                    pn.webhook_url for pn in
                    self.wa.directory.numbers.values()) and \
                    not body.get("url"):
                raise ControlError(409, "no webhook URL: start with "
                                   "--webhook-url or POST settings "
                                   "{\"webhook_url\": ...}")
            out, delivery = make(body)
        if delivery is None:
            raise ControlError(409, "no webhook URL for this phone number")
        if wait and not delivery.done.wait(timeout):
            with self.wa.cond:
                return 408, dict(out, delivery=delivery.as_dict())
        with self.wa.cond:
            return 200, dict(out, delivery=delivery.as_dict())

    def reply(self, body, query):
        def make(spec):
            rec, d = self.wa.reply(spec)
            return {"wamid": rec["wamid"], "message": rec["message"]}, d
        return self._send_webhook(body, make)

    def preferences(self, body, query):
        def make(spec):
            item, d = self.wa.preferences(spec)
            return {"user_preferences": item}, d
        return self._send_webhook(body, make)

    def deliver(self, body, query):
        """POST any body (a fixture), signed with the app secret unless
        "signature" says "none", "wrong" or gives the header value."""
        def make(spec):
            if "body" not in spec:
                raise ControlError(400, "deliver needs \"body\" (JSON or a "
                                   "string sent as it is)")
            unknown = set(spec) - {"body", "signature", "url",
                                   "phone_number_id", "wait", "timeout"}
            if unknown:
                raise ControlError(400, "unknown deliver field(s): %s"
                                   % ", ".join(sorted(unknown)))
            pn = self.wa.directory.get(spec.get("phone_number_id"))
            d = self.wa.webhooks.enqueue(
                "raw", spec["body"], pn, url=spec.get("url"),
                signature=spec.get("signature", "valid"))
            return {}, d
        return self._send_webhook(body, make)

    def verify(self, body, query):
        """Meta's GET handshake against the webhook URL."""
        body = _object(body)
        token = body.get("verify_token")
        if not isinstance(token, str):
            raise ControlError(400, "verify needs \"verify_token\"")
        challenge = str(body.get("challenge") or secrets.randbelow(10**9))
        with self.wa.cond:
            url = body.get("url") or self.wa.hooks_settings.url
        if not url:
            raise ControlError(409, "no webhook URL")
        out = verify_webhook(url, token, challenge)
        out["challenge"] = challenge
        out["verified"] = out.get("status") == 200 and \
            out.get("body") == challenge
        return 200, out

    # -- logs -------------------------------------------------------------
    def messages(self, body, query):
        keys = ("phone_number_id", "to", "type", "template", "route")
        f = {k: query[k] for k in keys if k in query}
        with self.wa.cond:
            return 200, {"messages": [
                dict(r) for r in self.wa.messages.values()
                if all(message_field(r, k) == v for k, v in f.items())]}

    def message(self, body, query, wamid):
        with self.wa.cond:
            rec = self.wa.messages.get(wamid)
            if rec is None:
                raise ControlError(404, "no sent message %s" % wamid)
            return 200, dict(rec)

    def attempts(self, body, query):
        with self.wa.cond:
            return 200, {"attempts": [dict(a) for a in self.wa.attempts]}

    def inbound(self, body, query):
        with self.wa.cond:
            return 200, {"inbound": [dict(r) for r in
                                     self.wa.inbound.values()]}

    def webhooks(self, body, query):
        with self.wa.cond:
            return 200, {"deliveries": self.wa.webhooks.listing(
                query.get("kind"), query.get("wamid"),
                query.get("body", "true") != "false")}

    # -- faults -------------------------------------------------------------
    def faults_list(self, body, query):
        with self.wa.cond:
            return 200, {"faults": self.wa.faults.listing()}

    def faults_add(self, body, query):
        specs = body if isinstance(body, list) else [body]
        with self.wa.cond:
            added = [self.wa.faults.add(s).as_dict() for s in specs]
        return 201, {"faults": added}

    def faults_clear(self, body, query):
        with self.wa.cond:
            self.wa.faults.clear()
        return 200, {"ok": True}

    def faults_remove(self, body, query, fid):
        with self.wa.cond:
            if not self.wa.faults.remove(int(fid)):
                raise ControlError(404, "no fault %s" % fid)
        return 200, {"ok": True}

    def release(self, body, query):
        fid = _object(body).get("fault")
        with self.wa.cond:
            return 200, {"released": self.wa.faults.release(
                None if fid is None else int(fid))}

    # -- wait ---------------------------------------------------------------
    def wait(self, body, query):
        body = _object(body)
        timeout = float(body.get("timeout", 30))
        if not 0 <= timeout <= 600:
            raise ControlError(400, "timeout must be 0..600 s")
        with self.wa.cond:
            pred, value = self._condition(body)
        ok = self.wa.wait(pred, timeout)
        with self.wa.cond:
            return (200 if ok else 408), {"ok": ok, "value": value()}

    def _condition(self, body):
        wa = self.wa
        cond = body.get("condition")
        count = int(body.get("count", 1))

        def pick(keys):
            return {k: body[k] for k in keys if k in body}
        if cond == "messages":
            f = pick(("phone_number_id", "to", "type", "template", "route"))

            def value():
                return wa.count_messages(f)
        elif cond == "attempts":
            f = pick(("status", "code", "route", "phone_number_id"))

            def value():
                return wa.count_attempts(f)
        elif cond == "webhooks":
            f = pick(("kind", "status", "wamid", "outcome"))
            if "phone_number_id" in body:
                f["pnid"] = body["phone_number_id"]

            def value():
                return wa.webhooks.finished(**f)
        elif cond == "webhooks_idle":
            return wa.webhooks.idle, (lambda: wa.webhooks.inflight)
        elif cond == "idle":
            return (lambda: wa.inflight <= 0), (lambda: wa.inflight)
        elif cond == "held":
            fault = wa.faults.faults.get(int(body.get("fault", -1)))
            if fault is None or fault.type != "hold":
                raise ControlError(404, "no hold fault %r"
                                   % body.get("fault"))

            def value():
                return fault.waiting
        else:
            raise ControlError(400, "condition must be messages, attempts, "
                               "webhooks, webhooks_idle, idle or held")
        return (lambda: value() >= count), value


def _hook_settings(body):
    """Validated webhook settings from a settings body."""
    out = {}
    if "webhook_url" in body:
        url = body["webhook_url"]
        if url is not None and not (isinstance(url, str) and
                                    url.startswith(("http://", "https://"))):
            raise ControlError(400, "webhook_url: an http(s) URL or null")
        out["url"] = url
    if "app_secret" in body:
        if body["app_secret"] is not None and \
                not isinstance(body["app_secret"], str):
            raise ControlError(400, "app_secret: a string or null")
        out["app_secret"] = body["app_secret"]
    if "webhook_headers" in body:
        headers = body["webhook_headers"]
        if not isinstance(headers, dict) or not all(
                isinstance(k, str) and isinstance(v, str)
                for k, v in headers.items()):
            raise ControlError(400, "webhook_headers: {\"Name\": \"value\"}")
        out["headers"] = dict(headers)
    for key, attr, top in (("webhook_retries", "retries", 20),
                           ("webhook_retry_ms", "retry_ms", 60000),
                           ("webhook_timeout", "timeout", 600)):
        if key in body:
            v = body[key]
            if not isinstance(v, (int, float)) or isinstance(v, bool) or \
                    not 0 <= v <= top:
                raise ControlError(400, "%s: 0..%d" % (key, top))
            out[attr] = int(v) if key == "webhook_retries" else float(v)
    return out
