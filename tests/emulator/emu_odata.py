"""OData query options as Dataverse applies them: $select, $filter,
$orderby, $top, $count, parameter aliases.

Parsing is strict where Dataverse is: option names and property names are
case-sensitive, every option may appear once, operators are lower case,
a lone quote is an unterminated literal, operand types must agree. The
filter compiles to a predicate over stored rows with SQL's three-valued
logic (a comparison with a null column is unknown, and unknown never
passes); string comparisons ignore case.
"""

import re
from urllib.parse import unquote_plus

from emu_util import bad_request, guid_sort_key, is_guid, parse_date, \
    parse_datetimeoffset

SUPPORTED = ("$select", "$filter", "$orderby", "$top", "$count", "$expand",
             "$apply", "$skiptoken", "$deltatoken")
NOT_SUPPORTED = ("$skip", "$search", "$format")


class Options:
    """The decoded query string of one request."""

    def __init__(self):
        self.raw = []           # (name, raw "k=v" pair) in request order
        self.values = {}        # system options, decoded
        self.aliases = {}       # "@p1" -> decoded text

    def get(self, name):
        return self.values.get(name)

    def raw_pairs(self, drop=()):
        return [pair for name, pair in self.raw if name not in drop]


def parse_options(query):
    """Split and decode a query string the way ASP.NET does ('+' is a
    space). Raises ODataError for repeated or unknown system options."""
    opts = Options()
    if not query:
        return opts
    for pair in query.split("&"):
        if not pair:
            continue
        name_raw, _, value_raw = pair.partition("=")
        name = unquote_plus(name_raw)
        value = unquote_plus(value_raw)
        opts.raw.append((name, pair))
        if name.startswith("@"):
            opts.aliases[name] = value
            continue
        if not name.startswith("$"):
            continue            # custom query option: ignored
        if name in NOT_SUPPORTED:
            raise bad_request("The query parameter %s is not supported"
                              % name)
        if name not in SUPPORTED:
            raise bad_request("The query parameter '%s' is not supported."
                              % name)
        if name in opts.values:
            raise bad_request(
                "Query option '%s' was specified more than once, but it "
                "must be specified at most once." % name)
        opts.values[name] = value
    return opts


def no_property(table, name):
    return bad_request("Could not find a property named '%s' on type '%s'."
                       % (name, table.type_name))


def parse_select(table, text):
    """$select -> list of Columns (request order, duplicates dropped)."""
    if text is None:
        return None
    cols = []
    for part in text.split(","):
        name = part.strip()
        if not name:
            raise bad_request("Syntax error at position %d in '%s'."
                              % (len(text), text))
        if name == "*":
            return None
        col = table.by_name.get(name)
        if col is None:
            raise no_property(table, name)
        if col not in cols:
            cols.append(col)
    return cols


def parse_top(text):
    if text is None:
        return None
    if not re.fullmatch(r"\d+", text):
        raise bad_request("Invalid value '%s' for $top query option found. "
                          "The $top query option requires a non-negative "
                          "integer value." % text)
    return int(text)


def parse_count(text):
    if text is None:
        return False
    if text not in ("true", "false"):
        raise bad_request("'%s' is not a valid count option." % text)
    return text == "true"


def parse_orderby(table, text):
    """$orderby -> [(Column, descending)]."""
    if text is None:
        return []
    out = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2 or (
                len(words) == 2 and words[1] not in ("asc", "desc")):
            raise bad_request("Syntax error at position %d in '%s'."
                              % (len(text), text))
        col = table.by_name.get(words[0])
        if col is None:
            raise no_property(table, words[0])
        out.append((col, len(words) == 2 and words[1] == "desc"))
    return out


# -- $filter ------------------------------------------------------------

_TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-
             [0-9a-fA-F]{12}(?![\w-]))
  | (?P<dto>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?
            (?:Z|[+-]\d{2}:\d{2})(?![\w:.]))
  | (?P<date>\d{4}-\d{2}-\d{2}(?![\w:-]))
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w.]))
  | (?P<alias>@[A-Za-z_]\w*)
  | (?P<ident>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?:/[A-Za-z_]\w*)*)
  | (?P<punct>[(),])
""", re.VERBOSE)

COMPARE = {"eq": "Equal", "ne": "NotEqual", "gt": "GreaterThan",
           "ge": "GreaterThanOrEqual", "lt": "LessThan",
           "le": "LessThanOrEqual"}
STRING_FUNCS = ("contains", "startswith", "endswith")


class Tok:
    __slots__ = ("kind", "text", "pos")

    def __init__(self, kind, text, pos):
        self.kind, self.text, self.pos = kind, text, pos


def tokenize(text):
    toks = []
    pos = 0
    while pos < len(text):
        if text[pos] == "'" and not re.match(r"'(?:[^']|'')*'", text[pos:]):
            raise bad_request("There is an unterminated literal at position "
                              "%d in '%s'." % (pos, text))
        m = _TOKEN_RE.match(text, pos)
        if not m:
            raise bad_request("Syntax error: character '%s' is not valid at "
                              "position %d in '%s'." % (text[pos], pos, text))
        kind = m.lastgroup
        if kind != "ws":
            toks.append(Tok(kind, m.group(), pos))
        pos = m.end()
    toks.append(Tok("end", "", len(text)))
    return toks


class Literal:
    """A typed constant: kind in string/guid/int/double/bool/null/dto/date."""

    EDM = {"string": "Edm.String", "guid": "Edm.Guid", "int": "Edm.Int32",
           "double": "Edm.Double", "bool": "Edm.Boolean", "null": None,
           "dto": "Edm.DateTimeOffset", "date": "Edm.Date"}

    def __init__(self, kind, value):
        self.kind, self.value = kind, value

    @property
    def edm(self):
        if self.kind == "int" and not -2**31 <= self.value < 2**31:
            return "Edm.Int64"
        return self.EDM[self.kind]


def literal_of(tok, text):
    kind, raw = tok.kind, tok.text
    if kind == "string":
        return Literal("string", raw[1:-1].replace("''", "'"))
    if kind == "guid":
        return Literal("guid", raw.lower())
    if kind == "dto":
        canon = parse_datetimeoffset(raw)
        if canon is None:
            raise bad_request("The DateTimeOffset text '%s' should be in "
                              "format 'yyyy-mm-ddThh:mm:ss('.'s+)?(zzzzzz)?' "
                              "and each field value is within valid range."
                              % raw)
        return Literal("dto", canon)
    if kind == "date":
        canon = parse_date(raw)
        if canon is None:
            raise bad_request("The Date text '%s' is not valid." % raw)
        return Literal("date", canon)
    if kind == "number":
        if re.fullmatch(r"-?\d+", raw):
            return Literal("int", int(raw))
        return Literal("double", float(raw))
    if kind == "ident" and raw in ("true", "false"):
        return Literal("bool", raw == "true")
    if kind == "ident" and raw == "null":
        return Literal("null", None)
    return None


class FilterParser:
    """Recursive descent over the token list; builds closures."""

    def __init__(self, table, text, aliases, lookup_name):
        self.table = table
        self.text = text
        self.aliases = aliases
        self.lookup_name = lookup_name
        self.toks = tokenize(text)
        self.i = 0

    def peek(self):
        return self.toks[self.i]

    def take(self):
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def error(self, tok=None):
        tok = tok or self.peek()
        return bad_request("Syntax error at position %d in '%s'."
                           % (tok.pos, self.text))

    def expect(self, text):
        tok = self.take()
        if tok.text != text:
            raise self.error(tok)

    def parse(self):
        if self.peek().kind == "end":
            raise self.error()
        pred = self.parse_or()
        if self.peek().kind != "end":
            raise self.error()
        return pred

    def parse_or(self):
        left = self.parse_and()
        while self.peek().kind == "ident" and self.peek().text == "or":
            self.take()
            left = _or(left, self.parse_and())
        return left

    def parse_and(self):
        left = self.parse_unary()
        while self.peek().kind == "ident" and self.peek().text == "and":
            self.take()
            left = _and(left, self.parse_unary())
        return left

    def parse_unary(self):
        tok = self.peek()
        if tok.kind == "ident" and tok.text == "not":
            self.take()
            return _not(self.parse_unary())
        if tok.text == "(":
            self.take()
            inner = self.parse_or()
            self.expect(")")
            return inner
        return self.parse_primary()

    def parse_primary(self):
        tok = self.take()
        if tok.kind != "ident":
            raise self.error(tok)
        if self.peek().text == "(":
            return self.parse_function(tok)
        if "/" in tok.text:
            raise bad_request("The emulator does not implement navigation "
                              "paths in $filter ('%s')." % tok.text)
        col = self.table.by_name.get(tok.text)
        if col is None:
            if tok.text in COMPARE or tok.text in ("and", "or"):
                raise self.error(tok)
            raise no_property(self.table, tok.text)
        op = self.take()
        if op.kind != "ident" or op.text not in COMPARE:
            raise self.error(op)
        lit = self.parse_literal()
        return compare(self.table, col, op.text, lit, self.lookup_name)

    def parse_literal(self):
        tok = self.take()
        if tok.kind == "alias":
            if tok.text not in self.aliases:
                raise bad_request("The parameter alias '%s' is not defined."
                                  % tok.text)
            sub = tokenize(self.aliases[tok.text])
            if len(sub) != 2:
                raise bad_request("Syntax error at position 0 in '%s'."
                                  % self.aliases[tok.text])
            lit = literal_of(sub[0], self.aliases[tok.text])
        else:
            lit = literal_of(tok, self.text)
        if lit is None:
            raise self.error(tok)
        return lit

    def parse_function(self, name_tok):
        name = name_tok.text
        if name not in STRING_FUNCS:
            if name.startswith("Microsoft.Dynamics.CRM.") or name in (
                    "tolower", "toupper", "trim", "length", "indexof",
                    "substring", "concat", "year", "month", "day", "any",
                    "all"):
                raise bad_request("The emulator does not implement the "
                                  "function '%s'." % name)
            raise bad_request(
                "An unknown function with name '%s' was found. This may "
                "also be a function import or a key lookup on a navigation "
                "property, which is not allowed." % name)
        self.expect("(")
        prop = self.take()
        col = self.table.by_name.get(prop.text) if prop.kind == "ident" \
            else None
        if col is None:
            if prop.kind == "ident":
                raise no_property(self.table, prop.text)
            raise self.error(prop)
        self.expect(",")
        lit = self.parse_literal()
        self.expect(")")
        if col.edm != "Edm.String" or lit.kind != "string":
            raise bad_request(
                "No function signature for the function with name '%s' "
                "matches the specified arguments. The function signatures "
                "considered are: %s(Edm.String Nullable=true, Edm.String "
                "Nullable=true)." % (name, name))
        return like(col.slot, name, lit.value)


def _or(a, b):
    def pred(row):
        x = a(row)
        if x is True:
            return True
        y = b(row)
        if y is True:
            return True
        return None if x is None or y is None else False
    return pred


def _and(a, b):
    def pred(row):
        x = a(row)
        if x is False:
            return False
        y = b(row)
        if y is False:
            return False
        return None if x is None or y is None else True
    return pred


def _not(a):
    def pred(row):
        x = a(row)
        return None if x is None else not x
    return pred


_ALLOWED = {
    "Edm.String": ("string",),
    "Edm.Guid": ("guid", "string"),
    "Edm.Int32": ("int",),
    "Edm.Int64": ("int",),
    "Edm.Boolean": ("bool",),
    "Edm.DateTimeOffset": ("dto", "date"),
}

_OPS = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
}


def compare(table, col, op, lit, lookup_name):
    slot = col.slot
    if lit.kind == "null":
        if op == "eq":
            return lambda row: row[slot] is None
        if op == "ne":
            return lambda row: row[slot] is not None
        return lambda row: None
    if lit.kind not in _ALLOWED[col.edm] or (
            col.edm == "Edm.Guid" and lit.kind == "string"
            and not is_guid(lit.value)):
        raise bad_request(
            "A binary operator with incompatible types was detected. Found "
            "operand types '%s' and '%s' for operator kind '%s'."
            % (col.edm, lit.edm, COMPARE[op]))
    fn = _OPS[op]
    value = lit.value
    if col.edm == "Edm.String":
        value = value.casefold()

        def pred(row):
            v = row[slot]
            return None if v is None else fn(v.casefold(), value)
        return pred
    if col.edm == "Edm.Guid":
        value = value.lower()
        if op in ("eq", "ne"):
            return lambda row: None if row[slot] is None \
                else fn(row[slot], value)
        key = guid_sort_key(value)
        return lambda row: None if row[slot] is None \
            else fn(guid_sort_key(row[slot]), key)
    return lambda row: None if row[slot] is None else fn(row[slot], value)


def like(slot, func, pattern):
    """contains/startswith/endswith become SQL LIKE: % _ [ ] are
    wildcards inside the string."""
    rx = _like_regex(pattern)
    if func in ("contains", "endswith"):
        rx = ".*" + rx
    if func in ("contains", "startswith"):
        rx = rx + ".*"
    compiled = re.compile(rx, re.IGNORECASE | re.DOTALL)

    def pred(row):
        v = row[slot]
        return None if v is None else compiled.fullmatch(v) is not None
    return pred


def _like_regex(pattern):
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "%":
            out.append(".*")
        elif c == "_":
            out.append(".")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:end]
                neg = body.startswith("^")
                body = body[1:] if neg else body
                out.append("[%s%s]" % ("^" if neg else "",
                                       re.escape(body).replace("\\-", "-")))
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def parse_filter(table, text, aliases, lookup_name=None):
    """$filter text -> predicate(row) returning True/False/None."""
    if text is None:
        return None
    return FilterParser(table, text, aliases, lookup_name).parse()


# -- $orderby keys ---------------------------------------------------------

class Desc:
    """Reverses the order of a sort-key component."""

    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v

    def __lt__(self, other):
        return other.v < self.v

    def __gt__(self, other):
        return other.v > self.v

    def __eq__(self, other):
        return self.v == other.v

    def __le__(self, other):
        return other.v <= self.v

    def __ge__(self, other):
        return other.v >= self.v


def value_sort_key(col, value, lookup_name):
    """One column's sort component: nulls first (SQL Server), strings
    case-insensitive, lookups by the related row's primary name, choices
    by their integer."""
    if value is None:
        return (0, "")
    if col.kind == "lookup":
        name = lookup_name(value) if lookup_name else None
        return (1, (name or "").casefold(), guid_sort_key(value))
    if col.edm == "Edm.String":
        return (1, value.casefold())
    if col.edm == "Edm.Guid":
        return (1, guid_sort_key(value))
    return (1, value)


def row_sort_key(orderby, pk_slot, lookup_name):
    """Sort key function for $orderby, ties broken by primary key."""
    def key(row):
        parts = []
        for col, desc in orderby:
            k = value_sort_key(col, row[col.slot], lookup_name)
            parts.append(Desc(k) if desc else k)
        parts.append(guid_sort_key(row[pk_slot]))
        return tuple(parts)
    return key


def values_sort_key(orderby, values, pk, lookup_name):
    """The same key built from a paging cookie's saved values."""
    parts = []
    for (col, desc), value in zip(orderby, values):
        k = value_sort_key(col, value, lookup_name)
        parts.append(Desc(k) if desc else k)
    parts.append(guid_sort_key(pk))
    return tuple(parts)
