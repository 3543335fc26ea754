"""What the WhatsApp emulator knows: business phone numbers with their
templates, the customers (users) on the other side, credentials, and the
emulated clock.

Plain data with validation and no locking: the emulator holds one lock
(`WhatsApp.cond`) around every use, so these classes stay simple. Errors
in control input raise ValueError with a message meant for the tester.

Templates file (`--templates`, default wa_templates.json beside this file):

  {"format": "optsync-wa-templates/1",
   "phone_numbers": {
     "<phone_number_id>": {"display_phone_number": "15550100001",
                           "waba_id": "...",
                           "templates": [{"name": "optin_confirm",
                                          "language": "en_US",
                                          "status": "APPROVED",
                                          "category": "MARKETING",
                                          "body_params": 1,
                                          "buttons": [{"type": "QUICK_REPLY",
                                                       "text": "Yes"}]}]}}}

A phone number's value may also be just the list of templates.
"""

import re
import threading
import time

FORMAT = "optsync-wa-templates/1"
STATUSES = ("APPROVED", "PAUSED", "DISABLED", "PENDING", "REJECTED")
CATEGORIES = ("MARKETING", "UTILITY", "AUTHENTICATION")
BUTTON_TYPES = ("QUICK_REPLY", "URL", "PHONE_NUMBER", "COPY_CODE")
DEFAULT_WABA = "220000000000001"
LANG_RE = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?$")
ID_RE = re.compile(r"^[0-9]{1,20}$")
WINDOW = 24 * 3600          # the customer-service window, seconds


class Clock:
    """Emulated time: real time plus an offset that only moves forward,
    optionally frozen (every reading the same until advanced), so tests
    can cross the 24-hour window or a rate window without waiting."""

    def __init__(self):
        self._offset = 0.0
        self._frozen = None
        self._lock = threading.Lock()

    def now(self):
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return time.time() + self._offset

    def advance(self, seconds):
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds
            if self._frozen is not None:
                self._frozen += seconds

    def freeze(self, on):
        with self._lock:
            if on and self._frozen is None:
                self._frozen = time.time() + self._offset
            elif not on and self._frozen is not None:
                # continue from the frozen reading, never backwards
                self._offset = max(self._offset,
                                   self._frozen - time.time())
                self._frozen = None

    def state(self):
        with self._lock:
            frozen = self._frozen is not None
        return {"now": self.now(), "offset": self._offset,
                "frozen": frozen}


def digits(number):
    """The wa_id of a phone number as clients write it: '+49 151 2345-67'
    -> '4915123456'. None when it is not a plausible number."""
    if not isinstance(number, str):
        return None
    text = number.strip()
    if text.startswith("+"):
        text = text[1:]
    if not re.fullmatch(r"[0-9 ().\-]+", text or "x"):
        return None
    out = re.sub(r"[^0-9]", "", text)
    return out if 7 <= len(out) <= 15 else None


def _need(cond, message):
    if not cond:
        raise ValueError(message)


class Template:
    """One message template of one phone number (name + language)."""

    FIELDS = ("name", "language", "status", "category", "body_params",
              "header_params", "buttons")

    def __init__(self, spec, tid):
        _need(isinstance(spec, dict), "a template is a JSON object")
        unknown = set(spec) - set(self.FIELDS) - {"id"}
        _need(not unknown, "unknown template field(s): %s"
              % ", ".join(sorted(unknown)))
        self.id = str(spec.get("id") or tid)
        self.name = spec.get("name")
        self.language = spec.get("language")
        _need(isinstance(self.name, str) and
              re.fullmatch(r"[a-z0-9_]{1,512}", self.name or ""),
              "template name must be lower case letters, digits and _ "
              "(got %r)" % (self.name,))
        _need(isinstance(self.language, str) and
              LANG_RE.match(self.language),
              "template language must look like en or en_US (got %r)"
              % (self.language,))
        self.status = "APPROVED"
        self.category = "MARKETING"
        self.body_params = 0
        self.header_params = 0
        self.buttons = []
        self.update(spec)

    def update(self, spec):
        """Change status, category, parameter counts or buttons."""
        for key in ("name", "language", "id"):
            _need(key not in spec or spec[key] == getattr(self, key),
                  "a template's %s cannot change" % key)
        status = spec.get("status", self.status)
        _need(status in STATUSES, "template status must be one of %s"
              % ", ".join(STATUSES))
        category = spec.get("category", self.category)
        _need(category in CATEGORIES, "template category must be one of %s"
              % ", ".join(CATEGORIES))
        counts = {}
        for key in ("body_params", "header_params"):
            n = spec.get(key, getattr(self, key))
            _need(isinstance(n, int) and not isinstance(n, bool) and
                  0 <= n <= 100, "%s must be an integer 0..100" % key)
            counts[key] = n
        buttons = spec.get("buttons", self.buttons)
        _need(isinstance(buttons, list) and len(buttons) <= 10,
              "buttons must be a list of at most 10")
        clean = []
        for b in buttons:
            _need(isinstance(b, dict) and b.get("type") in BUTTON_TYPES and
                  isinstance(b.get("text"), str) and b["text"],
                  "a button is {\"type\": %s, \"text\": \"label\"}"
                  % "|".join(BUTTON_TYPES))
            clean.append({"type": b["type"], "text": b["text"]})
        self.status, self.category = status, category
        self.body_params = counts["body_params"]
        self.header_params = counts["header_params"]
        self.buttons = clean

    def quick_reply(self, index):
        """The label of quick-reply button `index`, or None."""
        if 0 <= index < len(self.buttons) and \
                self.buttons[index]["type"] == "QUICK_REPLY":
            return self.buttons[index]["text"]
        return None

    def as_dict(self):
        return {"id": self.id, "name": self.name, "language": self.language,
                "status": self.status, "category": self.category,
                "body_params": self.body_params,
                "header_params": self.header_params,
                "buttons": [dict(b) for b in self.buttons]}


class PhoneNumber:
    """A business phone number: its ids, webhook target and templates."""

    def __init__(self, pnid, spec=None):
        _need(isinstance(pnid, str) and ID_RE.match(pnid),
              "phone_number_id must be digits (got %r)" % (pnid,))
        self.id = pnid
        self.display = "1555" + pnid[-7:].rjust(7, "0")
        self.waba_id = DEFAULT_WABA
        self.webhook_url = None     # None: the emulator-wide URL
        self.templates = {}         # (name, language) -> Template
        self.configure(spec or {})

    def configure(self, spec):
        _need(isinstance(spec, dict), "a phone number is a JSON object")
        unknown = set(spec) - {"display_phone_number", "waba_id",
                               "webhook_url", "templates",
                               "phone_number_id"}
        _need(not unknown, "unknown phone number field(s): %s"
              % ", ".join(sorted(unknown)))
        display = spec.get("display_phone_number", self.display)
        _need(isinstance(display, str) and display,
              "display_phone_number must be a string")
        waba = spec.get("waba_id", self.waba_id)
        _need(isinstance(waba, str) and ID_RE.match(waba),
              "waba_id must be digits")
        url = spec.get("webhook_url", self.webhook_url)
        _need(url is None or (isinstance(url, str) and
                              url.startswith(("http://", "https://"))),
              "webhook_url must be an http(s) URL or null")
        self.display, self.waba_id, self.webhook_url = display, waba, url

    def add_template(self, spec, tid):
        t = Template(spec, tid)
        key = (t.name, t.language)
        _need(key not in self.templates, "template %s/%s already exists "
              "on %s (PATCH it instead)" % (t.name, t.language, self.id))
        self.templates[key] = t
        return t

    def as_dict(self, templates=True):
        out = {"phone_number_id": self.id,
               "display_phone_number": self.display,
               "waba_id": self.waba_id, "webhook_url": self.webhook_url}
        if templates:
            out["templates"] = [t.as_dict() for t in
                                sorted(self.templates.values(),
                                       key=lambda t: (t.name, t.language))]
        return out


class Directory:
    """All business phone numbers, loaded from the templates file and
    extended through the control API."""

    def __init__(self):
        self.numbers = {}
        self._next_template = 1

    def template_id(self):
        self._next_template += 1
        return str(900000000000000 + self._next_template)

    def get(self, pnid):
        return self.numbers.get(pnid)

    def ensure(self, pnid, spec=None):
        """The phone number, created if new; spec (without templates)
        updates its fields."""
        pn = self.numbers.get(pnid)
        if pn is None:
            pn = PhoneNumber(pnid)
            self.numbers[pnid] = pn
        if spec:
            pn.configure({k: v for k, v in spec.items()
                          if k != "templates"})
        return pn

    def load(self, doc):
        _need(isinstance(doc, dict), "templates file: a JSON object")
        fmt = doc.get("format", FORMAT)
        _need(fmt == FORMAT, "templates file format must be %r" % FORMAT)
        numbers = doc.get("phone_numbers")
        _need(isinstance(numbers, dict), "templates file: "
              "\"phone_numbers\" maps phone_number_id to its templates")
        for pnid, spec in numbers.items():
            if isinstance(spec, list):
                spec = {"templates": spec}
            pn = self.ensure(pnid, spec)
            for t in spec.get("templates") or []:
                pn.add_template(t, self.template_id())

    def only(self):
        """The single phone number when there is exactly one."""
        return next(iter(self.numbers.values())) \
            if len(self.numbers) == 1 else None

    def listing(self):
        return [self.numbers[k].as_dict() for k in sorted(self.numbers)]


class User:
    """A WhatsApp user (customer), keyed by wa_id (digits)."""

    def __init__(self, wa_id):
        self.wa_id = wa_id
        self.name = "Test User %s" % wa_id[-4:]
        self.wrote_in = {}          # phone_number_id -> last inbound time
        self.last_sent = {}         # phone_number_id -> last accepted send
        self.undeliverable = False
        self.stop_marketing = False
        self.read = None            # None: the emulator-wide setting
        self.fail = None            # {"code", "title"?, "details"?}

    def window_open(self, pnid, now):
        last = self.wrote_in.get(pnid)
        return last is not None and now - last < WINDOW

    def configure(self, spec, directory, now):
        """Apply a control-API user update (validated first, all or
        nothing)."""
        known = {"wa_id", "name", "wrote_in", "undeliverable",
                 "stop_marketing", "read", "fail"}
        unknown = set(spec) - known
        _need(not unknown, "unknown user field(s): %s"
              % ", ".join(sorted(unknown)))
        changes = {}
        if "name" in spec:
            _need(isinstance(spec["name"], str), "name is a string")
            changes["name"] = spec["name"]
        for key in ("undeliverable", "stop_marketing"):
            if key in spec:
                _need(isinstance(spec[key], bool), "%s is true/false" % key)
                changes[key] = spec[key]
        if "read" in spec:
            _need(spec["read"] is None or isinstance(spec["read"], bool),
                  "read is true, false or null")
            changes["read"] = spec["read"]
        if "fail" in spec:
            changes["fail"] = _fail_spec(spec["fail"])
        wrote = None
        if "wrote_in" in spec:
            wrote = _wrote_in(spec["wrote_in"], directory, now)
        for key, value in changes.items():
            setattr(self, key, value)
        if wrote is not None:
            pnids, at = wrote
            for pnid in pnids:
                if at is None:
                    self.wrote_in.pop(pnid, None)
                else:
                    self.wrote_in[pnid] = at

    def as_dict(self, now):
        return {"wa_id": self.wa_id, "name": self.name,
                "wrote_in": dict(self.wrote_in),
                "window_open": sorted(p for p in self.wrote_in
                                      if self.window_open(p, now)),
                "undeliverable": self.undeliverable,
                "stop_marketing": self.stop_marketing,
                "read": self.read, "fail": self.fail}


def _fail_spec(fail):
    if fail is None:
        return None
    _need(isinstance(fail, dict) and isinstance(fail.get("code"), int),
          "fail is null or {\"code\": 131049, \"title\"?: ..., "
          "\"details\"?: ...}")
    unknown = set(fail) - {"code", "title", "details"}
    _need(not unknown, "unknown fail field(s): %s"
          % ", ".join(sorted(unknown)))
    return dict(fail)


def _wrote_in(spec, directory, now):
    """{"phone_number_id"?, "at"? | "ago"?} or null -> (pnids, time or
    None to forget). Without a phone number: every known one."""
    if spec is None:
        return list(directory.numbers), None
    if spec is True:
        spec = {}
    _need(isinstance(spec, dict), "wrote_in is true, null or "
          "{\"phone_number_id\"?, \"at\"? (epoch s) | \"ago\"? (s)}")
    unknown = set(spec) - {"phone_number_id", "at", "ago"}
    _need(not unknown, "unknown wrote_in field(s): %s"
          % ", ".join(sorted(unknown)))
    _need(not ("at" in spec and "ago" in spec), "wrote_in: at or ago")
    at = now
    if "at" in spec:
        _need(isinstance(spec["at"], (int, float)), "at: epoch seconds")
        at = float(spec["at"])
    elif "ago" in spec:
        _need(isinstance(spec["ago"], (int, float)) and spec["ago"] >= 0,
              "ago: seconds >= 0")
        at = now - float(spec["ago"])
    pnid = spec.get("phone_number_id")
    if pnid is None:
        return list(directory.numbers), at
    _need(directory.get(pnid) is not None, "unknown phone_number_id %r"
          % (pnid,))
    return [pnid], at


class Users:
    def __init__(self):
        self.users = {}

    def get(self, wa_id, create=True):
        user = self.users.get(wa_id)
        if user is None and create:
            user = User(wa_id)
            self.users[wa_id] = user
        return user


class Credentials:
    """Bearer tokens (Cloud API) and D360-API-KEYs (360dialog, each bound
    to one phone number). Revoked credentials stay known, so the emulator
    can say *why* it refuses them."""

    def __init__(self):
        self.tokens = {}            # token -> None | "revoked" | "expired"
        self.keys = {}              # key -> [phone_number_id, state]

    def add_token(self, token):
        _need(isinstance(token, str) and token and " " not in token,
              "a token is a non-empty string without spaces")
        self.tokens[token] = None

    def add_key(self, key, pnid):
        _need(isinstance(key, str) and key and " " not in key,
              "a D360-API-KEY is a non-empty string without spaces")
        _need(isinstance(pnid, str) and ID_RE.match(pnid),
              "phone_number_id must be digits")
        self.keys[key] = [pnid, None]

    def set_state(self, spec, state):
        """Revoke (state "revoked"/"expired") or restore (None) a token
        or key named in spec."""
        _need(isinstance(spec, dict) and (("token" in spec) !=
                                          ("key" in spec)),
              "name either \"token\" or \"key\"")
        if "token" in spec:
            _need(spec["token"] in self.tokens, "unknown token")
            self.tokens[spec["token"]] = state
        else:
            _need(spec["key"] in self.keys, "unknown D360-API-KEY")
            self.keys[spec["key"]][1] = state

    def listing(self):
        return {"tokens": [{"token": t, "state": s or "active"}
                           for t, s in self.tokens.items()],
                "d360_keys": [{"key": k, "phone_number_id": v[0],
                               "state": v[1] or "active"}
                              for k, v in self.keys.items()]}
