"""The WhatsApp emulator's state and behaviour, without HTTP.

One object (WhatsApp) holds everything behind one lock, `cond` (a
Condition on an RLock): sends, control calls and the webhook worker all
take it for the few microseconds they touch state, and every change
notifies it, so /_emulator/wait blocks on real conditions. Latency,
delay and hold faults and webhook POSTs happen outside the lock, so
concurrent sends are never serialised.

A send goes: authenticate -> parse the body (code 100) -> faults ->
throughput per phone number (130429) -> template (132xxx) -> recipient:
undeliverable (131026), 24-hour window for free-form messages (131047),
pair rate limit (131056) -> accepted: a wamid, a log entry, and after the
answer went out the status webhooks (sent, delivered[, read] or failed).
"""

import base64
import collections
import json
import secrets
import threading

from wa_errors import GraphError, webhook_error
from wa_faults import Faults
from wa_model import Clock, Credentials, Directory, Users, digits
from wa_send import MarkRead, check_template, load_json, parse
from wa_webhooks import (Settings as HookSettings, Webhooks, message_body,
                         preferences_body, status_body)

DEFAULT_TOKEN = "optsync-wa-emulator-token"
RECIPIENT_ERRORS = ("sync", "webhook")


class D360Error(Exception):
    """360dialog's own refusal of a request (bad D360-API-KEY)."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message
        self.trace = secrets.token_hex(16)

    def doc(self):
        return {"meta": {"success": False, "http_code": self.status,
                         "developer_message": self.message,
                         "360dialog_trace_id": self.trace}}


def _wamid(wa_id, serial, inbound=False):
    """An id shaped like Meta's: 'wamid.' + base64 of a small binary
    record holding the user's number and a unique serial."""
    tag = b"\x12\x18\x14" if inbound else b"\x11\x18\x12"
    digits_ = wa_id.encode()[:30]
    unique = ("%06X%s" % (serial % 0x1000000,
                          secrets.token_hex(6).upper())).encode()
    raw = b"\x1c\x18" + bytes([len(digits_)]) + digits_ + b"\x15\x02\x00" + \
        tag + unique + b"\x00"
    return "wamid." + base64.b64encode(raw).decode()


class SendSettings:
    """Send-side knobs: CLI defaults, changeable via /_emulator/settings."""

    FIELDS = ("max_rate", "pair_limit_seconds", "latency_ms",
              "read_receipts", "statuses", "recipient_errors")

    def __init__(self, args):
        self.max_rate = args.max_rate
        self.pair_limit_seconds = args.pair_limit_seconds
        self.latency_ms = args.latency_ms
        self.read_receipts = args.read_receipts
        self.statuses = not args.no_statuses
        self.recipient_errors = args.recipient_errors

    def update(self, spec):
        new = {}
        for key in ("max_rate",):
            if key in spec:
                if not isinstance(spec[key], int) or spec[key] < 1:
                    raise ValueError("max_rate: an integer >= 1")
                new[key] = spec[key]
        for key, top in (("pair_limit_seconds", 86400),
                         ("latency_ms", 60000)):
            if key in spec:
                v = spec[key]
                if not isinstance(v, (int, float)) or not 0 <= v <= top:
                    raise ValueError("%s: 0..%d" % (key, top))
                new[key] = float(v)
        for key in ("read_receipts", "statuses"):
            if key in spec:
                if not isinstance(spec[key], bool):
                    raise ValueError("%s: true or false" % key)
                new[key] = spec[key]
        if "recipient_errors" in spec:
            if spec["recipient_errors"] not in RECIPIENT_ERRORS:
                raise ValueError("recipient_errors: sync or webhook")
            new["recipient_errors"] = spec["recipient_errors"]
        for key, value in new.items():
            setattr(self, key, value)

    def as_dict(self):
        return {k: getattr(self, k) for k in self.FIELDS}


class Bounded(collections.OrderedDict):
    """A dict that forgets its oldest entries beyond `limit`."""

    def __init__(self, limit):
        super().__init__()
        self.limit = limit

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        while len(self) > self.limit:
            self.popitem(last=False)


class WhatsApp:
    def __init__(self, args):
        self.args = args
        self.cond = threading.Condition(threading.RLock())
        self.clock = Clock()
        self.settings = SendSettings(args)
        self.hooks_settings = HookSettings(args)
        self.webhooks = Webhooks(self.cond, self.hooks_settings,
                                 args.log_limit)
        self.faults = Faults(self.cond)
        self.port = None
        self.inflight = 0           # sends being served (kept by reset)
        self.serial = 0             # wamid serials, unique across resets
        self._load()

    # -- state that reset() rebuilds -------------------------------------
    def _load(self):
        self.directory = Directory()
        if self.args.templates:
            with open(self.args.templates, encoding="utf-8") as f:
                self.directory.load(json.load(f))
        self.creds = Credentials()
        for token in [DEFAULT_TOKEN] + list(self.args.token):
            self.creds.add_token(token)
        for spec in self.args.d360_key:
            key, _, pnid = spec.partition(":")
            self.creds.add_key(key, pnid)
            self.directory.ensure(pnid)
        self.users = Users()
        self.messages = Bounded(self.args.log_limit)    # wamid -> record
        self.inbound = Bounded(self.args.log_limit)     # wamid -> record
        self.attempts = collections.deque(maxlen=self.args.log_limit)
        self.counters = collections.Counter()
        self.rejected = collections.Counter()           # code -> n
        self.rate = collections.defaultdict(collections.deque)

    def reset(self):
        with self.cond:
            self.faults.clear()
            self.webhooks.reset()
            self.settings = SendSettings(self.args)
            fresh = HookSettings(self.args)
            self.hooks_settings.__dict__.update(fresh.__dict__)
            self.clock.freeze(False)
            self._load()
            self.cond.notify_all()

    # -- authentication ---------------------------------------------------
    def bearer(self, header):
        """Authorization header -> token, or GraphError 190 (HTTP 401)."""
        token = None
        if header and header[:7].lower() == "bearer ":
            token = header[7:].strip()
        if not token:
            raise self._auth_error("An access token is required to "
                                   "request this resource.")
        state = self.creds.tokens.get(token, "unknown")
        if state == "unknown":
            raise self._auth_error("Invalid OAuth access token - Cannot "
                                   "parse access token")
        if state == "revoked":
            raise self._auth_error(
                "Error validating access token: The session has been "
                "invalidated because the user changed their password or "
                "Facebook has changed the session for security reasons.",
                460)
        if state == "expired":
            raise self._auth_error("Error validating access token: "
                                   "Session has expired.", 463)
        return token

    @staticmethod
    def _auth_error(message, subcode=None):
        return GraphError(190, status=401, subcode=subcode, message=message,
                          error_data=False, headers=[(
                              "WWW-Authenticate", 'OAuth "Facebook '
                              'Platform" "invalid_token" "%s"' % message)])

    def d360_key(self, key):
        """D360-API-KEY header -> phone_number_id, or D360Error 401."""
        entry = self.creds.keys.get(key or "")
        if not key or entry is None or entry[1] is not None:
            raise D360Error(401, "Invalid api_key")
        return entry[0]

    def phone_number(self, pnid):
        pn = self.directory.get(pnid)
        if pn is None:
            raise GraphError(
                100, subcode=33, error_data=False,
                message="Unsupported post request. Object with ID '%s' "
                "does not exist, cannot be loaded due to missing "
                "permissions, or does not support this operation. Please "
                "read the Graph API documentation at "
                "https://developers.facebook.com/docs/graph-api" % pnid)
        return pn

    # -- a send -----------------------------------------------------------
    def arrive(self):
        with self.cond:
            self.inflight += 1
            self.cond.notify_all()

    def record(self, entry):
        """Log a send's outcome (status, code, wamid) and count it. Called
        before the answer's first byte leaves: a client holding the answer
        finds the send in `attempts` and `counters` already."""
        with self.cond:
            entry["time"] = self.clock.now()
            self.attempts.append(entry)
            self.counters["requests"] += 1
            code = entry.get("code")
            if entry.get("wamid") is None and entry.get("status") != 200:
                self.rejected[str(code if code is not None else
                                  entry.get("status"))] += 1
            if code == 130429:
                self.counters["rate_limit_violations"] += 1
            elif code == 131056:
                self.counters["pair_limit_violations"] += 1
            self.cond.notify_all()

    def leave(self):
        """A send request is over, its status webhooks queued (`idle`)."""
        with self.cond:
            self.inflight -= 1
            self.cond.notify_all()

    def parse_send(self, raw):
        """Body -> Outgoing/MarkRead, or GraphError 100 (no lock needed)."""
        return parse(load_json(raw))

    def accept(self, pn, out, route, credential, version):
        """Decide a parsed send (caller holds no lock) -> (record, answer
        document), or raise GraphError."""
        with self.cond:
            if isinstance(out, MarkRead):
                return None, self._mark_read(pn, out)
            now = self.clock.now()
            window = self.rate[pn.id]
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= self.settings.max_rate:
                raise GraphError(130429, "Cloud API message throughput has "
                                 "been reached: more than %d messages in "
                                 "one second from phone number %s."
                                 % (self.settings.max_rate, pn.id))
            template = check_template(pn, out) \
                if out.type == "template" else None
            user = self.users.get(out.wa_id)
            failure = self._recipient_failure(pn, out, user, template, now)
            if self.settings.pair_limit_seconds > 0:
                last = user.last_sent.get(pn.id)
                if last is not None and \
                        now - last < self.settings.pair_limit_seconds:
                    raise GraphError(131056)
            return self._record(pn, out, user, template, failure, now,
                                route, credential, version)

    def _recipient_failure(self, pn, out, user, template, now):
        """Raise (sync mode) or return (webhook mode, or 131050 / a
        user's configured failure) why the message cannot reach the
        user; None when it can."""
        code = None
        if user.undeliverable:
            code = 131026
        elif out.type != "template" and not user.window_open(pn.id, now):
            code = 131047
        if code is not None:
            if self.settings.recipient_errors == "sync":
                raise GraphError(code)
            return {"code": code}
        if template is not None and template.category == "MARKETING" and \
                user.stop_marketing:
            return {"code": 131050}
        return dict(user.fail) if user.fail else None

    def _record(self, pn, out, user, template, failure, now, route,
                credential, version):
        self.serial += 1
        wamid = _wamid(out.wa_id, self.serial)
        self.rate[pn.id].append(now)
        user.last_sent[pn.id] = now
        rec = {"wamid": wamid, "time": now, "phone_number_id": pn.id,
               "route": route,
               "auth": "bearer" if route == "cloud" else "d360-api-key",
               "credential": credential, "version": version}
        rec.update(out.summary())
        if template is not None:
            rec["template"]["category"] = template.category
            rec["buttons"] = [
                {"index": i, "type": b["type"], "text": b["text"],
                 "payload": out.buttons.get(i)}
                for i, b in enumerate(template.buttons)]
        rec["failure"] = failure
        self.messages[wamid] = rec
        self.counters["accepted"] += 1
        self.counters["accepted_" + route] += 1
        self.cond.notify_all()
        answer = {"messaging_product": "whatsapp",
                  "contacts": [{"input": out.to, "wa_id": out.wa_id}],
                  "messages": [{"id": wamid}]}
        if template is not None:
            answer["messages"][0]["message_status"] = "accepted"
        return rec, answer

    def _mark_read(self, pn, req):
        msg = self.inbound.get(req.message_id)
        if msg is None or msg["phone_number_id"] != pn.id:
            raise GraphError(100, "message_id %s is not a message phone "
                             "number %s received." % (req.message_id,
                                                      pn.id))
        msg["read"] = True
        self.counters["marked_read"] += 1
        self.cond.notify_all()
        return {"success": True}

    def after_send(self, rec):
        """Queue the status webhooks of an accepted send; called after
        the answer went out, so the sender knows the wamid first."""
        if rec is None:
            return
        with self.cond:
            if not self.settings.statuses or \
                    self.messages.get(rec["wamid"]) is not rec:
                return
            pn = self.directory.get(rec["phone_number_id"])
            user = self.users.get(rec["wa_id"])
            failure = rec["failure"]
            if failure:
                self._status(pn, rec, "failed", errors=[webhook_error(
                    failure["code"], failure.get("details"),
                    failure.get("title"))])
                return
            steps = ["sent", "delivered"]
            read = user.read if user.read is not None else \
                self.settings.read_receipts
            if read:
                steps.append("read")
            for step in steps:
                self._status(pn, rec, step)

    def _status(self, pn, rec, step, errors=None):
        status = {"id": rec["wamid"], "status": step,
                  "timestamp": str(int(self.clock.now())),
                  "recipient_id": rec["wa_id"]}
        if rec.get("biz_opaque_callback_data") is not None:
            status["biz_opaque_callback_data"] = \
                rec["biz_opaque_callback_data"]
        if errors:
            status["errors"] = errors
        else:
            status["pricing"] = self._pricing(rec)
        rec.setdefault("statuses", []).append(step)
        self.webhooks.enqueue("status", status_body(pn, status), pn,
                              wamid=rec["wamid"], status=step)

    def _pricing(self, rec):
        if rec["type"] == "template":
            category = rec["template"]["category"].lower()
            free = category == "utility" and self.users.get(
                rec["wa_id"]).window_open(rec["phone_number_id"],
                                          rec["time"])
        else:
            category, free = "service", True
        return {"billable": not free, "pricing_model": "PMP",
                "type": "free_customer_service" if free else "regular",
                "category": category}

    # -- the user's side --------------------------------------------------
    def _reply_target(self, spec):
        """(phone number, sent record or None, wa_id) of a reply."""
        sent = None
        if spec.get("wamid") is not None:
            sent = self.messages.get(spec["wamid"])
            if sent is None:
                raise ValueError("no sent message %r (or it left the log)"
                                 % spec["wamid"])
        pnid = spec.get("phone_number_id") or \
            (sent["phone_number_id"] if sent else None)
        if pnid is None:
            only = self.directory.only()
            if only is None:
                raise ValueError("say which phone_number_id the user "
                                 "writes to")
            pnid = only.id
        pn = self.directory.get(pnid)
        if pn is None:
            raise ValueError("unknown phone_number_id %r" % pnid)
        wa_id = digits(spec["from"]) if spec.get("from") is not None \
            else (sent["wa_id"] if sent else None)
        if wa_id is None:
            raise ValueError("say who replies: \"from\" (a phone number) "
                             "or \"wamid\" of a message sent to them")
        return pn, sent, wa_id

    def reply(self, spec):
        """A customer writes (text, template button tap, interactive
        reply): build the messages webhook, queue it, open the window.
        Caller holds cond. -> (inbound record, Delivery or None)."""
        allowed = {"type", "from", "phone_number_id", "wamid", "text",
                   "index", "payload", "button_text", "id", "title", "name",
                   "forwarded", "frequently_forwarded", "timestamp",
                   "wait", "timeout"}
        extra = set(spec) - allowed
        if extra:
            raise ValueError("unknown reply field(s): %s"
                             % ", ".join(sorted(extra)))
        mtype = spec.get("type", "text")
        pn, sent, wa_id = self._reply_target(spec)
        user = self.users.get(wa_id)
        if isinstance(spec.get("name"), str):
            user.name = spec["name"]
        now = self.clock.now()
        ts = spec.get("timestamp", now)
        if not isinstance(ts, (int, float)):
            raise ValueError("timestamp: epoch seconds")
        self.serial += 1
        msg = {"from": wa_id, "id": _wamid(wa_id, self.serial, True),
               "timestamp": str(int(ts)), "type": mtype}
        context = {}
        if sent is not None:
            context = {"from": pn.display, "id": sent["wamid"]}
        for flag in ("forwarded", "frequently_forwarded"):
            if spec.get(flag):
                context[flag] = True
        if mtype == "text":
            if not isinstance(spec.get("text"), str) or not spec["text"]:
                raise ValueError("a text reply needs \"text\"")
            msg["text"] = {"body": spec["text"]}
        elif mtype == "button":
            msg["button"] = self._button_tap(spec, sent)
        elif mtype == "interactive":
            msg["interactive"] = self._interactive_tap(spec, sent)
        else:
            raise ValueError("reply type: text, button or interactive")
        if context:
            msg["context"] = context
        user.wrote_in[pn.id] = now
        self.inbound[msg["id"]] = {"wamid": msg["id"], "time": now,
                                   "phone_number_id": pn.id,
                                   "wa_id": wa_id, "message": msg,
                                   "read": False}
        self.counters["replies"] += 1
        d = self.webhooks.enqueue("message", message_body(pn, user, msg),
                                  pn, wamid=msg["id"])
        self.cond.notify_all()
        return self.inbound[msg["id"]], d

    @staticmethod
    def _button_tap(spec, sent):
        """button.payload / button.text of a template quick-reply tap:
        from the sent message's button `index` (the payload optsync sent,
        else the label), or given explicitly."""
        if sent is None:
            if not isinstance(spec.get("payload"), str) or \
                    not isinstance(spec.get("button_text"), str):
                raise ValueError("a button tap names the sent template's "
                                 "\"wamid\" (and \"index\"), or gives "
                                 "\"payload\" and \"button_text\"")
            return {"payload": spec["payload"], "text": spec["button_text"]}
        if sent["type"] != "template":
            raise ValueError("message %s is not a template" % sent["wamid"])
        index = spec.get("index", 0)
        quick = [b for b in sent["buttons"] if b["type"] == "QUICK_REPLY"]
        button = next((b for b in quick if b["index"] == index), None)
        if button is None:
            raise ValueError("template %s has no quick-reply button at "
                             "index %r" % (sent["template"]["name"], index))
        payload = button["payload"] if button["payload"] is not None \
            else button["text"]
        return {"payload": spec.get("payload", payload),
                "text": spec.get("button_text", button["text"])}

    @staticmethod
    def _interactive_tap(spec, sent):
        if sent is None:
            if not isinstance(spec.get("id"), str) or \
                    not isinstance(spec.get("title"), str):
                raise ValueError("an interactive reply names the sent "
                                 "message's \"wamid\" (and \"index\" or "
                                 "\"id\"), or gives \"id\" and \"title\"")
            reply = {"id": spec["id"], "title": spec["title"]}
        else:
            if sent["type"] != "interactive":
                raise ValueError("message %s is not an interactive message"
                                 % sent["wamid"])
            buttons = sent["interactive"]["buttons"]
            if "id" in spec:
                reply = next((b for b in buttons if b["id"] == spec["id"]),
                             None)
            else:
                index = spec.get("index", 0)
                reply = buttons[index] if isinstance(index, int) and \
                    0 <= index < len(buttons) else None
            if reply is None:
                raise ValueError("message %s has no such reply button"
                                 % sent["wamid"])
        return {"type": "button_reply", "button_reply": dict(reply)}

    def preferences(self, spec):
        """The user stops/resumes marketing inside WhatsApp: queue the
        user_preferences webhook and remember it (a stopped user's
        MARKETING templates then fail with 131050). Caller holds cond."""
        allowed = {"wa_id", "from", "phone_number_id", "value", "category",
                   "detail", "timestamp", "wait", "timeout"}
        extra = set(spec) - allowed
        if extra:
            raise ValueError("unknown preferences field(s): %s"
                             % ", ".join(sorted(extra)))
        pn, _, wa_id = self._reply_target(
            {"from": spec.get("wa_id", spec.get("from")),
             "phone_number_id": spec.get("phone_number_id")})
        value = spec.get("value")
        if not isinstance(value, str) or not value:
            raise ValueError("value: stop or resume (other strings are "
                             "sent as given)")
        category = spec.get("category", "marketing_messages")
        user = self.users.get(wa_id)
        if category == "marketing_messages" and value in ("stop", "resume"):
            user.stop_marketing = value == "stop"
        default_detail = "User requested to %s marketing messages" % value
        item = {"wa_id": wa_id,
                "detail": spec.get("detail", default_detail),
                "category": category, "value": value,
                "timestamp": int(spec.get("timestamp", self.clock.now()))}
        self.counters["preferences"] += 1
        d = self.webhooks.enqueue("user_preferences",
                                  preferences_body(pn, user, item), pn)
        self.cond.notify_all()
        return item, d

    # -- waits --------------------------------------------------------------
    def wait(self, predicate, timeout):
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def count_messages(self, f):
        n = 0
        for rec in self.messages.values():
            if all(message_field(rec, k) == v for k, v in f.items()):
                n += 1
        return n

    def count_attempts(self, f):
        return sum(1 for a in self.attempts
                   if all(a.get(k) == v for k, v in f.items()))

    def summary(self):
        c = self.counters
        return {"sends": {"requests": c["requests"],
                          "accepted": c["accepted"],
                          "accepted_cloud": c["accepted_cloud"],
                          "accepted_360dialog": c["accepted_360dialog"],
                          "rejected": dict(self.rejected),
                          "inflight": self.inflight},
                "rate_limit_violations": c["rate_limit_violations"],
                "pair_limit_violations": c["pair_limit_violations"],
                "marked_read": c["marked_read"],
                "replies": c["replies"], "preferences": c["preferences"],
                "webhooks": self.webhooks.summary(),
                "faults": self.faults.listing()}


def message_field(rec, key):
    """Wait filters on the message log: template means its name."""
    if key == "template":
        return (rec.get("template") or {}).get("name")
    if key == "to":
        return rec.get("wa_id")
    return rec.get(key)
