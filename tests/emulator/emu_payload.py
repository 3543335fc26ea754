"""Request bodies of Web API writes -> column values, checked the way
Dataverse checks them (Microsoft Learn: "Create a table row using the Web
API", "Update and delete table rows using the Web API", "Web API
properties", "Behavior and format of the date and time column", and the
messages of "Troubleshoot Dataverse Web API client errors",
https://learn.microsoft.com/troubleshoot/power-platform/power-apps/dataverse/web-api-client-errors).

A body is one JSON object. Each member is one of:

  "@odata.context" / "@odata.etag" / "@odata.type"   instance annotations:
                     accepted (InitializeFrom output and retrieved rows
                     carry them); a wrong @odata.type is refused
  "<nav>@odata.bind": "/set(guid)" | "set(guid)" | absolute URL | "$n" |
                     null        sets / clears the lookup
  "<prop>@<other>"   property annotations: ignored when <prop> is declared
  "<prop>": value    a writable column

and is refused with the error Dataverse gives:

  lookup logical name or unknown name with @odata.bind      400 0x80048d19
      "...An undeclared property 'x' which only has property annotations
      in the payload but no property value was found in the payload..."
  "_x_value" or the plain lookup logical name              400 0x80060888
      "CRM do not support direct update of Entity Reference properties,
      Use Navigation properties instead." (field reports, [F])
  unknown property                                          400 0x0
      "...Invalid property 'x' was found in entity '...'..." (client errors
      page)
  read-only columns (createdon, modifiedon, versionnumber)  400 0x80048d19
  wrong JSON type, bad date, bad GUID, null for Yes/No      400 0x80048d19
  choice value outside the mapping's values                 400 0x8004431a
  statecode/statuscode that do not belong together          400 0x8004431a
  duplicate member, not an object, not JSON                 400 0x80048d19

Nothing here touches the store: lookup targets are returned as Bind
objects and checked by the caller (they may be rows created earlier in
the same change set).
"""

import json
import re

from emu_util import ODataError, is_guid, parse_datetimeoffset

HELP_LINK = "https://go.microsoft.com/fwlink/?linkid=2195293"
MAX_INT32 = 2 ** 31 - 1
_BIND_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\((.*)\)$")
_LOCAL_DT_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?$")
_INT_RE = re.compile(r"^-?\d{1,10}$")


def payload_error(entity_set, inner):
    """400 0x80048d19, the shape "Troubleshoot Dataverse Web API client
    errors" shows for ODL payload errors."""
    return ODataError(400, "0x80048d19", "Error identified in Payload "
                      "provided by the user for Entity :'%s', For more "
                      "information on this error please follow this help "
                      "link %s ---->  InnerException : %s"
                      % (entity_set, HELP_LINK, inner))


def odl(message):
    return "Microsoft.OData.ODataException: " + message


def undeclared(entity_set, name):
    return payload_error(entity_set, odl(
        "An undeclared property '%s' which only has property annotations "
        "in the payload but no property value was found in the payload. "
        "In OData, only declared navigation properties and declared named "
        "streams can be represented as properties without values." % name))


def entity_reference_error():
    return ODataError(400, "0x80060888", "CRM do not support direct update "
                      "of Entity Reference properties, Use Navigation "
                      "properties instead.")


def invalid_property(table, name):
    return ODataError(400, "0x0", "An error occurred while validating input "
                      "parameters: Microsoft.Crm.CrmException: Invalid "
                      "property '%s' was found in entity '%s'. ---> "
                      "Microsoft.OData.ODataException: Does not support "
                      "untyped value in non-open type." % (name,
                                                            table.type_name))


def out_of_range(table, col, value, accepted):
    return ODataError(400, "0x8004431a", "A validation error occurred. The "
                      "value %s of '%s' on record of type '%s' is outside the "
                      "valid range. Accepted Values: %s"
                      % (value, col, table.logical_name,
                         ",".join(str(v) for v in accepted)))


class Bind:
    """A lookup target named in a body: a URI (resolve_bind() reads it)
    or a change-set reference ("$1")."""

    def __init__(self, uri=None, ref=None):
        self.uri = uri
        self.ref = ref              # "$n"


class Payload:
    """A parsed body."""

    def __init__(self):
        self.values = {}        # Column -> value (typed, validated)
        self.binds = {}         # lookup Column -> Bind or None (clear)
        self.order = []         # Columns in body order (webhook Target)
        self.pk = None          # primary key given in the body


def load_json(entity_set, body):
    """Body bytes -> dict; duplicate members and non-objects refused."""
    def pairs(items):
        out = {}
        for k, v in items:
            if k in out:
                raise payload_error(entity_set, odl(
                    "Multiple property annotations or values with the name "
                    "'%s' were found in the payload." % k))
            out[k] = v
        return out
    try:
        text = body.decode("utf-8-sig")
        doc = json.loads(text, object_pairs_hook=pairs)
    except (UnicodeDecodeError, ValueError) as e:
        if isinstance(e, ODataError):
            raise
        raise payload_error(entity_set, odl(
            "Invalid JSON. %s" % e)) from None
    if not isinstance(doc, dict):
        raise payload_error(entity_set, odl(
            "An unexpected '%s' node was found when reading from the JSON "
            "reader. A 'StartObject' node was expected."
            % ("StartArray" if isinstance(doc, list) else "PrimitiveValue")))
    return doc


def parse_body(table, entity_set, body):
    """Body bytes of a POST/PATCH -> Payload. Raises ODataError."""
    doc = load_json(entity_set, body)
    out = Payload()
    lookup = table.by_role.get("configuration")
    nav = lookup.navigation if lookup is not None else None
    for name, value in doc.items():
        if name.startswith("@"):
            _instance_annotation(table, entity_set, name, value)
            continue
        prop, at, annotation = name.partition("@")
        if at:
            if annotation == "odata.bind":
                _bind_member(table, entity_set, prop, value, nav, out)
            elif prop not in table.by_name and prop != nav and \
                    prop not in doc:
                raise undeclared(entity_set, prop)
            continue
        _property(table, entity_set, name, value, nav, out)
    return out


def _instance_annotation(table, entity_set, name, value):
    if name == "@odata.type":
        want = ("#" + table.type_name, table.type_name)
        if value not in want:
            raise payload_error(entity_set, odl(
                "A type named '%s' could not be resolved by the model. When "
                "a model is available, each type name must resolve to a "
                "valid type." % str(value).lstrip("#")))


def _bind_member(table, entity_set, prop, value, nav, out):
    if prop != nav:
        col = table.by_name.get(prop)
        if col is not None:
            raise payload_error(entity_set, odl(
                "The property '%s' has an 'odata.bind' annotation, but it "
                "is not a navigation property." % prop))
        raise undeclared(entity_set, prop)
    col = table.by_role["configuration"]
    out.binds[col] = parse_bind(entity_set, prop, value)
    out.order.append(col)


def parse_bind(entity_set, prop, value):
    """An @odata.bind value -> Bind, or None for null (clear the lookup)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise payload_error(entity_set, odl(
            "An 'odata.bind' annotation for the navigation property '%s' "
            "must be a string URI." % prop))
    if re.fullmatch(r"\$[A-Za-z0-9_.-]+", value):
        return Bind(ref=value)
    return Bind(uri=value)


def resolve_bind(entity_set, prop, text, api_prefixes):
    """The URI text of a bind -> (entity set, lower-case GUID). Accepts
    "/set(id)", "set(id)", "/api/data/v9.x/set(id)" and the absolute URL
    of this service; anything else is a payload error."""
    rest = text
    for prefix in api_prefixes:
        if rest.startswith(prefix):
            rest = rest[len(prefix):]
            break
    else:
        if re.match(r"^[a-z][a-z0-9+.-]*://", rest, re.I):
            raise bad_uri(entity_set, prop, text)
        rest = rest[1:] if rest.startswith("/") else rest
        if rest.startswith("api/data/"):
            rest = re.sub(r"^api/data/v9\.[012]/", "", rest)
    m = _BIND_RE.match(rest)
    if not m:
        raise bad_uri(entity_set, prop, text)
    key = m.group(2)
    if key.startswith("{") and key.endswith("}"):
        key = key[1:-1]
    if not is_guid(key):
        raise bad_uri(entity_set, prop, text)
    return m.group(1), key.lower()


def bad_uri(entity_set, prop, text):
    return payload_error(entity_set, odl(
        "The URI '%s' in the 'odata.bind' annotation for the navigation "
        "property '%s' is not a valid entity URI." % (text, prop)))


def _property(table, entity_set, name, value, nav, out):
    col = table.by_name.get(name)
    lookup = table.by_role.get("configuration")
    if col is None:
        if lookup is not None and name == lookup.lookup_attr:
            raise entity_reference_error()
        if name == nav:
            if isinstance(value, dict):
                raise ODataError(501, "0x0", "The emulator does not "
                                 "implement deep insert ('%s')." % name)
            raise payload_error(entity_set, odl(
                "A node of type 'PrimitiveValue' was read from the JSON "
                "reader when trying to read the contents of the navigation "
                "property '%s'; however, a 'StartObject' node was expected."
                % name))
        raise invalid_property(table, name)
    if col.kind == "lookup":
        raise entity_reference_error()
    if col.platform:
        raise payload_error(entity_set, odl(
            "The property '%s' is read-only and cannot be set in a create "
            "or update request." % name))
    if col.kind == "pk":
        if not isinstance(value, str) or not is_guid(value):
            raise cannot_convert(entity_set, value, "Edm.Guid")
        out.pk = value.lower()
        return
    out.values[col] = convert(table, entity_set, col, value)
    out.order.append(col)


def cannot_convert(entity_set, value, edm):
    shown = value if isinstance(value, str) else json.dumps(value)
    return payload_error(entity_set, odl(
        "Cannot convert the literal '%s' to the expected type '%s'."
        % (shown, edm)))


def not_nullable(entity_set, col):
    return payload_error(entity_set, odl(
        "A null value was found for the property named '%s', which has the "
        "expected type '%s[Nullable=False]'. The expected type '%s"
        "[Nullable=False]' does not allow null values."
        % (col.name, col.edm, col.edm)))


def convert(table, entity_set, col, value):
    """One JSON value -> the stored value for `col`."""
    kind = col.kind
    if value is None:
        if kind in ("bool", "state", "statuscode"):
            raise not_nullable(entity_set, col)
        return None
    if kind == "string":
        if not isinstance(value, str):
            raise cannot_convert(entity_set, value, col.edm)
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise cannot_convert(entity_set, value, col.edm)
        return value
    if kind == "datetime":
        return _datetime(entity_set, col, value)
    number = _int32(entity_set, col, value)
    if kind == "choice":
        if number not in table.status_names:
            raise out_of_range(table, col.name, number,
                               sorted(table.status_names))
        return number
    if kind == "state":
        if number not in (0, 1):
            raise out_of_range(table, col.name, number, [0, 1])
        return number
    if kind == "statuscode":
        if number not in (1, 2):
            raise out_of_range(table, col.name, number, [1, 2])
        return number
    raise cannot_convert(entity_set, value, col.edm)


def _int32(entity_set, col, value):
    """Edm.Int32 from a JSON number; numeric strings are accepted too
    (Microsoft's InitializeFrom example posts "numberofemployees":"200")."""
    if isinstance(value, bool):
        raise cannot_convert(entity_set, value, col.edm)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _INT_RE.match(value):
        number = int(value)
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        raise cannot_convert(entity_set, value, col.edm)
    if not -MAX_INT32 - 1 <= number <= MAX_INT32:
        raise cannot_convert(entity_set, value, col.edm)
    return number


def _datetime(entity_set, col, value):
    """DateTimeOffset: 'Z' or an offset; an offset-less value is stored as
    UTC as it is (Learn: "Behavior and format of the date and time
    column")."""
    if isinstance(value, str):
        if _LOCAL_DT_RE.match(value):
            value += "Z"
        canon = parse_datetimeoffset(value)
        if canon is not None and canon >= "1753-01-01":
            return canon
    raise cannot_convert(entity_set, value, col.edm)


def state_pair(table, values):
    """statecode / statuscode written together must belong together; a
    statuscode alone sets its state. Mutates `values` (Column -> value)."""
    state = table.by_role.get("active")
    status = table.by_name.get("statuscode")
    if status is None or status not in values:
        return
    want_state = 0 if values[status] == 1 else 1
    if state in values and values[state] != want_state:
        raise out_of_range(table, "statuscode", values[status],
                           [1 if values[state] == 0 else 2])
    values[state] = want_state
