"""Paging cookies ($skiptoken) and change-tracking tokens ($deltatoken).

A nextLink carries, URL-encoded once, the XML Dataverse documents:

    <cookie pagenumber="2" pagingcookie="ENC" istracking="False" />

where ENC is itself a percent-encoded (lower-case hex) XML document that
records the previous page number and its last/first primary key, upper-case
GUIDs in braces:

    <cookie page="1"><new_xid last="{D5026A4D-…}" first="{49B0BE2E-…}" />
    </cookie>

The decoder accepts exactly what the encoder produced after the one URL
decode of the query string: a client that re-encodes the link (so `%`
arrives as `%25`), decodes it once too often (raw `<` inside the
pagingcookie) or edits it gets 400, like Dataverse.

The inner cookie also carries the emulator's own state: the tracking
start version for a full sync (`trackingversion`), or the delta window
(`deltaupto`) and phase for delta pages; and, for $orderby queries, the
last row's values of each ordered column.

Delta tokens are `<version>!<MM/dd/yyyy HH:mm:ss>` (UTC), the shape of the
example in Microsoft Learn's "Use change tracking to synchronize data with
external systems"; that the time is UTC is not documented (chosen here).
"""

import calendar
import datetime
import re
import time
import xml.etree.ElementTree as ET
from urllib.parse import quote, unquote

from emu_util import bad_request, is_guid

_UNRESERVED = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")

_OUTER_RE = re.compile(
    r'<cookie pagenumber="([1-9]\d{0,8})" pagingcookie="((?:%[0-9a-f]{2}|'
    r'[A-Za-z0-9_.\-])*)" istracking="(True|False)" />\Z')
_TOKEN_RE = re.compile(
    r"([1-9]\d{0,18})!(\d{2})/(\d{2})/(\d{4}) (\d{2}):(\d{2}):(\d{2})\Z")


def lower_encode(text):
    """Percent-encode everything but unreserved characters, lower-case hex
    (the form Dataverse uses inside cookies and delta tokens)."""
    out = []
    for ch in text:
        if ch in _UNRESERVED:
            out.append(ch)
        else:
            out.extend("%%%02x" % b for b in ch.encode("utf-8"))
    return "".join(out)


def link_encode(text):
    """URL-encode a skiptoken for a nextLink ('=' and '/' stay literal,
    as in the documented links)."""
    return quote(text, safe="=/")


def brace_guid(guid):
    return "{%s}" % guid.upper()


class Cookie:
    """Decoded paging state."""

    def __init__(self, page=1, tracking=False):
        self.page = page                # number of the page just served
        self.tracking = tracking
        self.last_pk = None             # lower-case GUID
        self.first_pk = None
        self.order_values = []          # raw values for $orderby columns
        self.tracking_version = None    # full sync with change tracking
        self.tracking_time = None
        self.delta_upto = None          # delta pages: window end
        self.delta_phase = None         # "changed" / "deleted"
        self.delta_after = None         # last version served


def encode_cookie(cookie, pk_name, orderby=()):
    """Cookie -> the URL-encoded $skiptoken value of the next page."""
    root = ET.Element("cookie", page=str(cookie.page))
    if cookie.tracking_version is not None:
        root.set("trackingversion", str(cookie.tracking_version))
        root.set("trackingtime", str(int(cookie.tracking_time)))
    if cookie.delta_upto is not None:
        root.set("deltaupto", str(cookie.delta_upto))
        ET.SubElement(root, cookie.delta_phase,
                      last=str(cookie.delta_after))
    for (col, desc), value in zip(orderby, cookie.order_values):
        el = ET.SubElement(root, col.name)
        if desc:
            el.set("desc", "1")
        if value is None:
            el.set("lastnull", "1")
        else:
            el.set("last", _cookie_text(value))
    if cookie.last_pk is not None:
        ET.SubElement(root, pk_name, last=brace_guid(cookie.last_pk),
                      first=brace_guid(cookie.first_pk))
    inner = ET.tostring(root, encoding="unicode", short_empty_elements=True)
    outer = '<cookie pagenumber="%d" pagingcookie="%s" istracking="%s" />' % (
        cookie.page + 1, lower_encode(inner),
        "True" if cookie.tracking else "False")
    return link_encode(outer)


def _cookie_text(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _cookie_value(col, text):
    if col.edm in ("Edm.Int32", "Edm.Int64"):
        return int(text)
    if col.edm == "Edm.Boolean":
        return text == "1"
    if col.edm == "Edm.Guid":
        return _unbrace(text)
    return text


def _unbrace(text):
    if text.startswith("{") and text.endswith("}") and is_guid(text[1:-1]):
        return text[1:-1].lower()
    raise ValueError("bad guid")


def invalid_skiptoken():
    return bad_request("The $skiptoken value is not valid: use the "
                       "@odata.nextLink exactly as it was returned.",
                       "0x80040203")


def decode_cookie(value, pk_name, orderby=(), delta=False):
    """The once-decoded $skiptoken -> Cookie; ODataError 400 if it is not
    exactly what this server produced for a query of this shape."""
    m = _OUTER_RE.match(value)
    if not m:
        raise invalid_skiptoken()
    pagenumber = int(m.group(1))
    inner = unquote(m.group(2), errors="strict")
    if "<!" in inner or "<?" in inner:
        raise invalid_skiptoken()
    try:
        root = ET.fromstring(inner)
        return _read_inner(root, pagenumber, m.group(3) == "True",
                           pk_name, orderby, delta)
    except (ET.ParseError, ValueError, KeyError, TypeError):
        raise invalid_skiptoken() from None


def _read_inner(root, pagenumber, tracking, pk_name, orderby, delta):
    if root.tag != "cookie" or int(root.get("page")) != pagenumber - 1:
        raise ValueError("page")
    c = Cookie(pagenumber - 1, tracking)
    children = list(root)
    if delta:
        if not tracking or len(children) != 1:
            raise ValueError("delta")
        c.delta_upto = int(root.attrib["deltaupto"])
        c.delta_phase = children[0].tag
        if c.delta_phase not in ("changed", "deleted"):
            raise ValueError("phase")
        c.delta_after = int(children[0].attrib["last"])
        return c
    if "trackingversion" in root.attrib:
        if not tracking:
            raise ValueError("tracking")
        c.tracking_version = int(root.attrib["trackingversion"])
        c.tracking_time = int(root.attrib["trackingtime"])
    elif tracking:
        raise ValueError("tracking")
    if len(children) != len(orderby) + 1:
        raise ValueError("shape")
    for (col, desc), el in zip(orderby, children):
        if el.tag != col.name or (el.get("desc") == "1") != desc:
            raise ValueError("order column")
        if el.get("lastnull") == "1":
            c.order_values.append(None)
        else:
            c.order_values.append(_cookie_value(col, el.attrib["last"]))
    pk = children[-1]
    if pk.tag != pk_name or set(pk.attrib) != {"last", "first"}:
        raise ValueError("pk")
    c.last_pk = _unbrace(pk.attrib["last"])
    c.first_pk = _unbrace(pk.attrib["first"])
    return c


def skiptoken_page(value):
    """Page number a raw (decoded) skiptoken asks for, 1 when unreadable:
    used only to match faults before the request is validated."""
    m = re.match(r'<cookie pagenumber="(\d+)"', value or "")
    return int(m.group(1)) if m else 1


# -- delta tokens ------------------------------------------------------------

def make_delta_token(version, epoch):
    return "%d!%s" % (version, time.strftime("%m/%d/%Y %H:%M:%S",
                                             time.gmtime(int(epoch))))


def parse_delta_token(text):
    """-> (version, epoch) or None when garbled."""
    m = _TOKEN_RE.match(text or "")
    if not m:
        return None
    mon, day, year, hh, mm, ss = (int(x) for x in m.group(2, 3, 4, 5, 6, 7))
    try:
        epoch = calendar.timegm(
            datetime.datetime(year, mon, day, hh, mm, ss).timetuple())
    except (OverflowError, ValueError):
        return None
    return int(m.group(1)), epoch
