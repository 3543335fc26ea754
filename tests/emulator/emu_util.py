"""Small shared helpers of the Dataverse + Entra ID emulator.

Clock (real time plus an offset the control API can advance), GUID and
date helpers, and the error types the HTTP layer turns into responses.
Nothing here does I/O.
"""

import datetime
import re
import threading
import time
import uuid

GUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class Clock:
    """Emulated time: the real clock plus an offset.

    The offset moves only forward (POST /_emulator/clock). It drives
    access-token expiry, delta-token age, service-protection windows and
    platform timestamps. Client assertions are checked against the real
    clock, because the client signs them with its real clock.
    """

    def __init__(self):
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self):
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds):
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds
            return self._offset

    @property
    def offset(self):
        with self._lock:
            return self._offset


def new_guid():
    return str(uuid.uuid4())


# The one organization, its business unit and its users: stable ids, so
# WhoAmI, webhook payloads and tests agree.
_ORG_NS = uuid.UUID("0a9f6d5c-0000-4000-8000-00000000e4a1")
ORGANIZATION_NAME = "optsyncemu"


def organization_id():
    return str(uuid.uuid5(_ORG_NS, "organization"))


def business_unit_id():
    return str(uuid.uuid5(_ORG_NS, "businessunit"))


def user_id(client_id):
    """The systemuser id of the application user of a client id."""
    return str(uuid.uuid5(_ORG_NS, "user:" + client_id))


def is_guid(text):
    return isinstance(text, str) and GUID_RE.match(text) is not None


def guid_sort_key(guid):
    """SQL Server uniqueidentifier order as a string key.

    SQL Server compares the last six bytes first, then bytes 8-9, then the
    first three groups in their little-endian storage order. Dataverse pages
    by the primary key in that order, so the emulator does too: a client
    that assumes lexicographic GUID order notices.
    """
    g = guid.lower()
    a, b, c = g[0:8], g[9:13], g[14:18]
    d, e = g[19:23], g[24:36]
    swap_a = a[6:8] + a[4:6] + a[2:4] + a[0:2]
    swap_b = b[2:4] + b[0:2]
    swap_c = c[2:4] + c[0:2]
    return e + d + swap_c + swap_b + swap_a


def guid_from_sort_key(key):
    e, d = key[0:12], key[12:16]
    sc, sb, sa = key[16:20], key[20:24], key[24:32]
    c = sc[2:4] + sc[0:2]
    b = sb[2:4] + sb[0:2]
    a = sa[6:8] + sa[4:6] + sa[2:4] + sa[0:2]
    return "%s-%s-%s-%s-%s" % (a, b, c, d, e)


def iso_utc(epoch):
    """Edm.DateTimeOffset as Dataverse returns it: UTC, seconds, 'Z'."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))


_DTO_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,7})?)?"
    r"(Z|[+-]\d{2}:\d{2})$")
_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


_CANON_RE = re.compile(r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1\d|2[0-8])T"
                       r"(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\dZ")


def parse_datetimeoffset(text):
    """Parse an ISO-8601 DateTimeOffset; return the canonical UTC form.

    Returns None when the text is not a DateTimeOffset. Offset-less values
    are refused here (the seed and the filter always carry Z or an offset).
    """
    if _CANON_RE.fullmatch(text):
        return text         # already canonical (fast path for big seeds)
    m = _DTO_RE.match(text)
    if not m:
        return None
    year, mon, day, hh, mm = (int(x) for x in m.group(1, 2, 3, 4, 5))
    ss = int(m.group(6) or 0)
    tz = m.group(8)
    try:
        dt = datetime.datetime(year, mon, day, hh, mm, ss,
                               tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        delta = datetime.timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
        dt -= sign * delta
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_date(text):
    m = _DATE_RE.match(text)
    if not m:
        return None
    try:
        datetime.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None
    return text + "T00:00:00Z"


def epoch_of_iso(text):
    dt = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp()


def formatted_datetime(iso):
    """FormattedValue of a DateTime column for a user in UTC (en-US)."""
    dt = datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")
    hour = dt.hour % 12 or 12
    ampm = "AM" if dt.hour < 12 else "PM"
    return "%d/%d/%d %d:%02d %s" % (dt.month, dt.day, dt.year, hour,
                                    dt.minute, ampm)


class HttpError(Exception):
    """A finished HTTP answer raised from deep inside request handling."""

    def __init__(self, status, body=b"", headers=None, content_type=None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = list(headers or [])
        self.content_type = content_type


class ODataError(HttpError):
    """Dataverse's error shape: {"error":{"code":"0x…","message":"…"}}."""

    def __init__(self, status, code, message, headers=None):
        import json
        body = json.dumps({"error": {"code": code, "message": message}},
                          ensure_ascii=False).encode("utf-8")
        super().__init__(status, body, headers,
                         "application/json; odata.metadata=minimal")
        self.code = code
        self.message = message


def bad_request(message, code="0x0"):
    return ODataError(400, code, message)
