"""Row -> JSON as the Web API writes it.

Each (table, $select, annotation set) gets an encoder built once: a list
of pre-encoded property prefixes, so encoding a row is a short loop and a
join. Without annotations the bytes of a row are cached by (id, version):
serving a large full sync again costs a dictionary lookup per row.

Property order: `@odata.etag` first, then the selected columns in request
order (all columns in schema order without $select), then the primary key
when it was not selected (it is always returned). Annotations precede their
property, as in Microsoft's samples.
"""

import json

from emu_util import formatted_datetime

_enc_str = json.encoder.encode_basestring   # C accelerated, keeps Unicode

FORMATTED = "OData.Community.Display.V1.FormattedValue"
LOOKUP_LOGICAL = "Microsoft.Dynamics.CRM.lookuplogicalname"
LOOKUP_NAV = "Microsoft.Dynamics.CRM.associatednavigationproperty"
TOTAL_COUNT = "Microsoft.Dynamics.CRM.totalrecordcount"
TOTAL_EXCEEDED = "Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"
CACHE_SELECTS = 3       # cached $select shapes per table


def json_value(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    return _enc_str(v)


class Annotations:
    """The odata.include-annotations preference: patterns with '*'
    wildcards, '-' excludes."""

    def __init__(self, text=None):
        self.text = text
        self.include, self.exclude = [], []
        for part in (text or "").split(","):
            part = part.strip()
            if not part:
                continue
            if part.startswith("-"):
                self.exclude.append(part[1:])
            else:
                self.include.append(part)
        self.key = (tuple(self.include), tuple(self.exclude))

    @staticmethod
    def _match(pattern, name):
        if pattern.endswith("*"):
            return name.startswith(pattern[:-1])
        return pattern == name

    def wants(self, name):
        if not any(self._match(p, name) for p in self.include):
            return False
        return not any(self._match(p, name) for p in self.exclude)

    @property
    def any(self):
        return bool(self.include)


def columns_for(table, select):
    """Columns a response row carries, in order."""
    if select is None:
        return list(table.columns)
    cols = list(select)
    if table.pk not in cols:
        cols.append(table.pk)
    return cols


class Encoder:
    """Encodes rows of one table for one $select and annotation set."""

    def __init__(self, table, cols, ann, lookup_name):
        self.table = table
        self.vslot = table.by_role["version"].slot
        self.idslot = table.pk.slot
        self.lookup_name = lookup_name
        self.items = []          # (prefix, slot, column, annotation names)
        for col in cols:
            prefix = ',"%s":' % col.name
            extra = self._wanted(col, ann)
            self.items.append((prefix, col.slot, col, extra))
        self.annotated = any(item[3] for item in self.items)

    @staticmethod
    def _wanted(col, ann):
        if not ann.any:
            return ()
        names = []
        if col.labels is not None or col.kind in ("lookup", "datetime"):
            names.append(FORMATTED)
        if col.kind == "lookup":
            names += [LOOKUP_LOGICAL, LOOKUP_NAV]
        return tuple(n for n in names if ann.wants(n))

    def encode(self, row):
        out = ['{"@odata.etag":"W/\\"%d\\""' % row[self.vslot]]
        for prefix, slot, col, extra in self.items:
            v = row[slot]
            if extra and v is not None:
                self._annotate(out, col, v, extra)
            out.append(prefix)
            out.append(json_value(v))
        out.append("}")
        return "".join(out).encode("utf-8")

    def _annotate(self, out, col, v, names):
        for name in names:
            if name == FORMATTED:
                label = self._formatted(col, v)
                if label is None:
                    continue
                value = label
            elif name == LOOKUP_LOGICAL:
                value = self.lookup_logical
            else:
                value = col.navigation
            out.append(',"%s@%s":%s' % (col.name, name, _enc_str(value)))

    def _formatted(self, col, v):
        if col.kind == "lookup":
            return self.lookup_name(v)
        if col.kind == "datetime":
            return formatted_datetime(v)
        return col.labels.get(v)

    lookup_logical = None


class Serializer:
    """Builds and caches Encoders; caches plain row bytes."""

    def __init__(self, schema, store):
        self.schema = schema
        self.store = store
        self.encoders = {}

    def lookup_name(self, config_id):
        row = self.store.get("configuration", config_id)
        if row is None:
            return None
        return row[self.schema.config.by_role["name"].slot]

    def encoder(self, table, select, ann):
        key = (table.key, tuple(c.name for c in select) if select else None,
               ann.key)
        enc = self.encoders.get(key)
        if enc is None:
            enc = Encoder(table, columns_for(table, select), ann,
                          self.lookup_name)
            enc.lookup_logical = self.schema.config.logical_name
            if len(self.encoders) > 64:
                self.encoders.clear()
            self.encoders[key] = enc
        return enc

    def rows(self, table, select, ann, rows):
        """Encoded rows (list of bytes). Call with the store lock held."""
        enc = self.encoder(table, select, ann)
        if enc.annotated:
            return [enc.encode(r) for r in rows]
        st = self.store.state(table)
        skey = tuple(c.name for c in select) if select else None
        cache = st.frags.get(skey)
        if cache is None:
            if len(st.frags) >= CACHE_SELECTS:
                st.frags.pop(next(iter(st.frags)))
            cache = st.frags[skey] = {}
        vslot, idslot = enc.vslot, enc.idslot
        out = []
        for r in rows:
            hit = cache.get(r[idslot])
            if hit is not None and hit[0] == r[vslot]:
                out.append(hit[1])
            else:
                data = enc.encode(r)
                cache[r[idslot]] = (r[vslot], data)
                out.append(data)
        return out


def context_url(base, table, select, suffix=""):
    if select:
        return "%s$metadata#%s(%s)%s" % (
            base, table.entity_set, ",".join(c.name for c in select), suffix)
    return "%s$metadata#%s%s" % (base, table.entity_set, suffix)


def collection_body(context, rows, count=None, extra=(), link=None):
    """Assemble a collection response from encoded rows."""
    head = ['{"@odata.context":%s' % _enc_str(context)]
    if count is not None:
        head.append(',"@odata.count":%d' % count)
    for name, value in extra:
        head.append(',"%s":%s' % (name, json_value(value)))
    head.append(',"value":[')
    parts = ["".join(head).encode("utf-8"), b",".join(rows), b"]"]
    if link is not None:
        parts.append((',"%s":%s' % (link[0], _enc_str(link[1])))
                     .encode("utf-8"))
    parts.append(b"}")
    return b"".join(parts)


def deleted_item(base, table, row_id):
    return ('{"@odata.context":%s,"id":"%s","reason":"deleted"}' % (
        _enc_str("%s$metadata#%s/$deletedEntity" % (base, table.entity_set)),
        row_id)).encode("utf-8")


def entity_body(context, encoded_row):
    """A single row: the context goes first, then the row's properties."""
    return b'{"@odata.context":' + _enc_str(context).encode("utf-8") + \
        b"," + encoded_row[1:]
