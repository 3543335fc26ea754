"""Send bodies: the JSON of POST /{version}/{phone_number_id}/messages (and
360dialog's POST /messages) checked the way Meta checks it, turned into an
Outgoing record.

Two stages, because Meta answers them with different codes:
  parse()            shape of the body           -> GraphError 100
  check_template()   against the phone number's
                     templates                   -> 132000 / 132001 /
                                                    132015 / 132016
Recipient-side checks (24-hour window, undeliverable, rate limits) live in
the emulator, which holds the state they need.

The emulator implements the message types a consent connector sends:
`template` (with header/body parameters and quick-reply button payloads),
`text`, `interactive` reply buttons, and the mark-as-read request
(`"status": "read"`). Other Cloud API types are answered with code 100
saying the emulator does not emulate them.
"""

import json

from wa_errors import GraphError, invalid
from wa_model import digits

TOP_KEYS = {"messaging_product", "recipient_type", "to", "type", "template",
            "text", "interactive", "context", "biz_opaque_callback_data",
            "status", "message_id"}
OTHER_TYPES = ("audio", "contacts", "document", "image", "location",
               "reaction", "sticker", "video")
PARAM_TYPES = {"header": ("text", "currency", "date_time", "image",
                          "video", "document", "location"),
               "body": ("text", "currency", "date_time")}
MAX_TEXT = 4096


class Outgoing:
    """A send request that passed parse(): what the message would be."""

    def __init__(self, to, wa_id, mtype):
        self.to = to                    # as the client wrote it
        self.wa_id = wa_id              # digits
        self.type = mtype               # template | text | interactive
        self.template = None            # name
        self.language = None
        self.header_params = None       # list or None (no component)
        self.body_params = None
        self.buttons = {}               # index -> payload (None: no param)
        self.text = None
        self.preview_url = False
        self.interactive = None         # {"body": ..., "buttons": [...]}
        self.context = None             # message_id replied to
        self.biz_opaque = None

    def summary(self):
        """The parts a test wants to see in the message log."""
        out = {"to": self.to, "wa_id": self.wa_id, "type": self.type}
        if self.type == "template":
            out["template"] = {"name": self.template,
                               "language": self.language}
            out["header_params"] = self.header_params or []
            out["body_params"] = self.body_params or []
            out["button_payloads"] = {str(i): p for i, p in
                                      sorted(self.buttons.items())}
        elif self.type == "text":
            out["text"] = self.text
            out["preview_url"] = self.preview_url
        else:
            out["interactive"] = self.interactive
        out["context"] = self.context
        out["biz_opaque_callback_data"] = self.biz_opaque
        return out


class MarkRead:
    """The mark-as-read request: {"status": "read", "message_id": ...}."""

    def __init__(self, message_id):
        self.message_id = message_id


def load_json(raw):
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise invalid("The request body is not valid JSON.") from None
    if not isinstance(doc, dict):
        raise invalid("The request body must be a JSON object.")
    return doc


def _string(doc, key, where, required=True, limit=None):
    value = doc.get(key)
    if value is None:
        if required:
            raise GraphError(100, "The parameter %s%s is required."
                             % (where, key),
                             message="(#100) The parameter %s%s is "
                             "required." % (where, key))
        return None
    if not isinstance(value, str):
        raise invalid("Param %s%s must be a string." % (where, key))
    if required and not value.strip():
        raise invalid("Param %s%s must not be empty." % (where, key))
    if limit is not None and len(value) > limit:
        raise invalid("Param %s%s must be at most %d characters long."
                      % (where, key, limit))
    return value


def _only_keys(doc, allowed, where):
    if not isinstance(doc, dict):
        raise invalid("Param %s must be a JSON object." % where)
    for key in doc:
        if key not in allowed:
            raise invalid("Unexpected key \"%s\" on param \"%s\"."
                          % (key, where))


def parse(doc):
    """Check a send body's shape -> Outgoing or MarkRead; GraphError 100
    on the first problem."""
    _only_keys(doc, TOP_KEYS, "message")
    product = _string(doc, "messaging_product", "")
    if product != "whatsapp":
        raise invalid("Param messaging_product must be one of {WHATSAPP} - "
                      "got \"%s\"." % product)
    if "status" in doc:
        return _parse_mark_read(doc)
    rtype = doc.get("recipient_type", "individual")
    if rtype != "individual":
        raise invalid("Param recipient_type must be \"individual\" (the "
                      "emulator does not emulate groups) - got %s."
                      % json.dumps(rtype))
    to = _string(doc, "to", "")
    wa_id = digits(to)
    if wa_id is None:
        raise invalid("Param to is not a valid phone number: %s."
                      % json.dumps(to))
    mtype = doc.get("type", "text")
    if mtype in OTHER_TYPES:
        raise invalid("Message type %s is valid for Meta but not emulated "
                      "here (template, text, interactive)." % mtype)
    if mtype not in ("template", "text", "interactive"):
        raise invalid("Param type must be one of {AUDIO, CONTACTS, "
                      "DOCUMENT, IMAGE, INTERACTIVE, LOCATION, REACTION, "
                      "STICKER, TEMPLATE, TEXT, VIDEO} - got %s."
                      % json.dumps(mtype))
    for other in ("template", "text", "interactive"):
        if other != mtype and other in doc:
            raise invalid("Param %s is not allowed for a message of type "
                          "%s." % (other, mtype))
    if mtype not in doc:
        raise GraphError(100, "The parameter %s is required." % mtype,
                         message="(#100) The parameter %s is required."
                         % mtype)
    out = Outgoing(to, wa_id, mtype)
    {"template": _parse_template, "text": _parse_text,
     "interactive": _parse_interactive}[mtype](doc[mtype], out)
    if "context" in doc:
        _only_keys(doc["context"], {"message_id"}, "context")
        out.context = _string(doc["context"], "message_id", "context.")
    out.biz_opaque = _string(doc, "biz_opaque_callback_data", "",
                             required=False, limit=512)
    return out


def _parse_mark_read(doc):
    extra = set(doc) - {"messaging_product", "status", "message_id"}
    if extra:
        raise invalid("Unexpected key \"%s\" on a mark-as-read request."
                      % sorted(extra)[0])
    if doc["status"] != "read":
        raise invalid("Param status must be \"read\" - got %s."
                      % json.dumps(doc["status"]))
    return MarkRead(_string(doc, "message_id", ""))


def _parse_text(text, out):
    _only_keys(text, {"body", "preview_url"}, "text")
    out.text = _string(text, "body", "text.", limit=MAX_TEXT)
    preview = text.get("preview_url", False)
    if not isinstance(preview, bool):
        raise invalid("Param text.preview_url must be a boolean.")
    out.preview_url = preview


def _parse_template(tpl, out):
    _only_keys(tpl, {"name", "language", "components"}, "template")
    out.template = _string(tpl, "name", "template.")
    lang = tpl.get("language")
    if lang is None:
        raise GraphError(100, "The parameter template.language is "
                         "required.", message="(#100) The parameter "
                         "template.language is required.")
    _only_keys(lang, {"code", "policy"}, "template.language")
    out.language = _string(lang, "code", "template.language.")
    if lang.get("policy", "deterministic") != "deterministic":
        raise invalid("Param template.language.policy must be "
                      "\"deterministic\".")
    components = tpl.get("components", [])
    if not isinstance(components, list):
        raise invalid("Param template.components must be an array.")
    for comp in components:
        _parse_component(comp, out)


def _parse_component(comp, out):
    if not isinstance(comp, dict):
        raise invalid("Each template component must be a JSON object.")
    ctype = comp.get("type")
    if ctype in ("header", "body"):
        _only_keys(comp, {"type", "parameters"}, "components[%s]" % ctype)
        params = _parse_params(comp.get("parameters", []), ctype)
        attr = ctype + "_params"
        if getattr(out, attr) is not None:
            raise invalid("The template has more than one %s component."
                          % ctype)
        setattr(out, attr, params)
    elif ctype == "button":
        _parse_button(comp, out)
    else:
        raise invalid("Param template.components[].type must be one of "
                      "{HEADER, BODY, BUTTON} - got %s." % json.dumps(ctype))


def _parse_params(params, where):
    if not isinstance(params, list):
        raise invalid("Param components[%s].parameters must be an array."
                      % where)
    values = []
    for p in params:
        if not isinstance(p, dict) or p.get("type") not in \
                PARAM_TYPES[where]:
            raise invalid("Each %s parameter needs a type, one of {%s}."
                          % (where, ", ".join(PARAM_TYPES[where])))
        if p["type"] == "text":
            _only_keys(p, {"type", "text", "parameter_name"},
                       "components[%s].parameters[]" % where)
            values.append(_string(p, "text", "parameters[].",
                                  limit=32768))
        else:
            values.append(p.get(p["type"]))
    return values


def _parse_button(comp, out):
    _only_keys(comp, {"type", "sub_type", "index", "parameters"},
               "components[button]")
    sub = comp.get("sub_type")
    if sub is None:
        raise GraphError(100, "The parameter sub_type is required for a "
                         "button component.", message="(#100) The "
                         "parameter sub_type is required.")
    if sub != "quick_reply":
        raise invalid("Button sub_type %s is not emulated (only "
                      "quick_reply buttons carry parameters here)."
                      % json.dumps(sub))
    index = comp.get("index")
    if isinstance(index, bool) or not (
            (isinstance(index, int) and 0 <= index <= 9) or
            (isinstance(index, str) and index.isdigit() and
             len(index) == 1)):
        raise invalid("Param index of a button component must be a "
                      "number 0..9 (usually a string, \"0\") - got %s."
                      % json.dumps(index))
    index = int(index)
    if index in out.buttons:
        raise invalid("Two button components have index %d." % index)
    params = comp.get("parameters", [])
    if not isinstance(params, list) or len(params) > 1:
        raise invalid("A quick_reply button takes one parameter: "
                      "[{\"type\": \"payload\", \"payload\": \"...\"}].")
    payload = None
    if params:
        p = params[0]
        if not isinstance(p, dict) or p.get("type") != "payload":
            raise invalid("A quick_reply button parameter must have type "
                          "payload.")
        _only_keys(p, {"type", "payload"}, "button.parameters[]")
        payload = _string(p, "payload", "button.parameters[].",
                          limit=1000)
    out.buttons[index] = payload


def _parse_interactive(inter, out):
    _only_keys(inter, {"type", "header", "body", "footer", "action"},
               "interactive")
    if inter.get("type") != "button":
        raise invalid("Interactive type %s is not emulated (only reply "
                      "buttons, type button)." % json.dumps(inter.get("type")))
    body = inter.get("body")
    _only_keys(body, {"text"}, "interactive.body")
    text = _string(body, "text", "interactive.body.", limit=1024)
    action = inter.get("action")
    _only_keys(action, {"buttons"}, "interactive.action")
    buttons = action.get("buttons")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise invalid("Param interactive.action.buttons must hold 1 to 3 "
                      "buttons.")
    clean = []
    for b in buttons:
        _only_keys(b, {"type", "reply"}, "interactive.action.buttons[]")
        if b.get("type") != "reply":
            raise invalid("Each reply button has type reply.")
        reply = b.get("reply")
        _only_keys(reply, {"id", "title"}, "buttons[].reply")
        clean.append({"id": _string(reply, "id", "reply.", limit=256),
                      "title": _string(reply, "title", "reply.",
                                       limit=20)})
    if len({b["id"] for b in clean}) != len(clean) or \
            len({b["title"] for b in clean}) != len(clean):
        raise invalid("Reply buttons need unique ids and titles.")
    out.interactive = {"type": "button", "body": text, "buttons": clean}


def check_template(pn, out):
    """The phone number's template for this send -> Template, or the
    132xxx GraphError Meta answers."""
    t = pn.templates.get((out.template, out.language))
    if t is None or t.status in ("PENDING", "REJECTED"):
        why = "does not exist in %s" % out.language if t is None else \
            "is not approved in %s (status %s)" % (out.language, t.status)
        raise GraphError(132001, "template name (%s) %s"
                         % (out.template, why))
    if t.status == "PAUSED":
        raise GraphError(132015, "Template %s (%s) is paused."
                         % (t.name, t.language))
    if t.status == "DISABLED":
        raise GraphError(132016, "Template %s (%s) is disabled."
                         % (t.name, t.language))
    for where, want in (("header", t.header_params),
                        ("body", t.body_params)):
        got = len(getattr(out, where + "_params") or [])
        if got != want:
            raise GraphError(132000, "%s: number of localizable_params (%d) "
                             "does not match the expected number of params "
                             "(%d)" % (where, got, want))
    for index in sorted(out.buttons):
        if t.quick_reply(index) is None:
            raise GraphError(132000, "buttons: the template has no "
                             "quick-reply button at index %d (it has %d "
                             "button(s))" % (index, len(t.buttons)))
    return t
