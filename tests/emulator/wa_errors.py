"""Graph API error answers of the WhatsApp Cloud API emulator.

Meta answers every failed send with one JSON shape:

  {"error": {"message": "(#131047) Re-engagement message",
             "type": "OAuthException", "code": 131047,
             "error_subcode": 2494010,                       (sometimes)
             "error_data": {"messaging_product": "whatsapp",
                            "details": "..."},
             "fbtrace_id": "AbC..."}}

Clients are told to act on `code` (and `details`), never on the message
text, so the titles below only need to be recognisable. CODES holds the
HTTP status and title Meta documents for each code the emulator produces;
the same table gives the `errors[]` item of a `failed` status webhook.
Nothing here does I/O.
"""

import secrets
import string

ERROR_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/" \
    "support/error-codes/"

# code -> (HTTP status, title, default details)
CODES = {
    2: (503, "Service temporarily unavailable",
        "The service is temporarily unavailable. Try again later."),
    100: (400, "Invalid parameter", "Invalid parameter."),
    190: (401, "Access token has expired", None),
    2500: (400, "Unknown path components", None),
    80007: (400, "Rate limit issues",
            "The WhatsApp Business Account has reached its rate limit."),
    130429: (429, "Rate limit hit",
             "Cloud API message throughput has been reached."),
    131000: (500, "Something went wrong",
             "Message failed to send because of an unknown error."),
    131026: (400, "Message Undeliverable",
             "Message Undeliverable."),
    131047: (400, "Re-engagement message",
             "Message failed to send because more than 24 hours have "
             "passed since the customer last replied to this number."),
    131049: (400, "This message was not delivered to maintain healthy "
             "ecosystem engagement.",
             "In order to maintain a healthy ecosystem engagement, the "
             "message failed to be delivered."),
    131050: (400, "Unable to deliver the message. This recipient has "
             "chosen to stop receiving marketing messages on WhatsApp "
             "from your business",
             "The recipient has stopped marketing messages from this "
             "business."),
    131056: (400, "(Business Account, Consumer Account) pair rate limit "
             "hit",
             "Too many messages sent from the sender phone number to the "
             "same recipient phone number in a short period of time."),
    132000: (400, "Number of parameters does not match the expected "
             "number of params", None),
    132001: (404, "Template name does not exist in the translation", None),
    132015: (400, "Template is Paused",
             "The template is paused because of low quality."),
    132016: (400, "Template is disabled",
             "The template was paused too many times and is now "
             "permanently disabled."),
}

_TRACE_CHARS = string.ascii_letters + string.digits


def fbtrace_id():
    """A trace id shaped like Meta's (23 letters and digits)."""
    return "A" + "".join(secrets.choice(_TRACE_CHARS) for _ in range(22))


def title(code):
    entry = CODES.get(code)
    return entry[1] if entry else "Emulated error"


def http_status(code):
    entry = CODES.get(code)
    return entry[0] if entry else 400


class GraphError(Exception):
    """A send answered with Meta's error JSON.

    error_data=False leaves `error_data` out, as Graph does for errors
    raised before the WhatsApp layer (tokens, unknown objects, paths).
    """

    def __init__(self, code, details=None, status=None, subcode=None,
                 message=None, error_data=True, headers=()):
        self.code = int(code)
        entry = CODES.get(self.code)
        self.status = int(status) if status is not None else \
            (entry[0] if entry else 400)
        self.message = message or "(#%d) %s" % (self.code, title(self.code))
        if details is None and entry is not None:
            details = entry[2]
        self.details = details
        self.subcode = subcode
        self.error_data = error_data
        self.headers = list(headers)
        self.trace = fbtrace_id()
        super().__init__(self.message)

    def doc(self):
        err = {"message": self.message, "type": "OAuthException",
               "code": self.code}
        if self.subcode is not None:
            err["error_subcode"] = self.subcode
        if self.error_data:
            err["error_data"] = {"messaging_product": "whatsapp",
                                 "details": self.details or self.message}
        err["fbtrace_id"] = self.trace
        return {"error": err}


def invalid(details, subcode=None):
    """Code 100, the answer to every malformed request body."""
    return GraphError(100, details, subcode=subcode)


def webhook_error(code, details=None, error_title=None):
    """The errors[] item of a failed status webhook."""
    text = error_title or title(code)
    if details is None:
        entry = CODES.get(code)
        details = entry[2] if entry and entry[2] else text
    return {"code": int(code), "title": text, "message": text,
            "error_data": {"details": details}, "href": ERROR_HREF}
