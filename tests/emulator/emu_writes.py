"""Web API writes: create, update, upsert (by id or alternate key), delete,
single-property PUT/DELETE and lookup $ref, as Microsoft Learn describes
them ("Create a table row using the Web API", "Update and delete table rows
using the Web API",
https://learn.microsoft.com/power-apps/developer/data-platform/webapi/update-delete-entities-using-web-api,
"Associate and disassociate table rows using the Web API").

  POST   {set}                          create: 204 + OData-EntityId, or
                                        201 + row (return=representation)
  PATCH  {set}({id} | k1=v,k2=v)        update: 204 / 200 + row; a missing
                                        row is created (upsert): 204 / 201
  DELETE {set}({key})                   204; 404 when missing
  PUT    {set}({key})/{prop}            {"value": v}: one column; 204
  DELETE {set}({key})/{prop}            null one column; 204
  PUT    {set}({key})/{nav}/$ref        {"@odata.id": uri}: set the lookup
  DELETE {set}({key})/{nav}/$ref        clear the lookup

Conditional headers ("Perform conditional operations using the Web API",
"Optimistic concurrency"): If-Match: W/"v" -> 412 0x80060882 on a
stale version; If-Match: * -> update only (404 when missing); If-None-Match:
* -> create only (412 0x80040237 when it exists). Any other If-None-Match
value (clients send `null`) is ignored on writes.

Every operation runs through emu_pipeline (a store transaction with the
webhook steps around it). Inside a $batch change set the operations join
the change set's transaction and Content-ID references ("$1") resolve
through `refs`.
"""

import time
from urllib.parse import quote

from emu_odata import parse_options, parse_select
from emu_payload import (Bind, convert, entity_reference_error, load_json,
                         parse_body, payload_error, odl, resolve_bind,
                         state_pair)
from emu_serialize import context_url, entity_body
from emu_store import StoreError
from emu_util import ODataError, bad_request, new_guid
from emu_webapi import (JSON_TYPE, Prefs, Response, missing_key, missing_row,
                        not_found_segment, parse_key, split_path)


def method_not_allowed(method):
    return ODataError(405, "0x0", "The requested resource does not support "
                      "http method '%s'." % method)


def stale_version():
    return ODataError(412, "0x80060882", "The version of the existing record "
                      "doesn't match the RowVersion property provided.")


def exists_already():
    return ODataError(412, "0x80040237", "A record with matching key values "
                      "already exists.")


def unknown_reference(ref):
    return bad_request("Content-ID Reference: '%s' does not exist in the "
                       "batch context." % ref)


def etag_matches(header, row, table):
    """If-Match: '*' or one of a comma list of ETags, compared exactly
    with W/"<versionnumber>" (Dataverse's ETags are weak; a client that
    drops the W/ gets 412)."""
    if header.strip() == "*":
        return True
    want = 'W/"%d"' % row[table.by_role["version"].slot]
    return any(tag.strip() == want for tag in header.split(","))


class Writes:
    def __init__(self, api, pipeline):
        self.api = api
        self.schema = api.schema
        self.store = api.store
        self.pipeline = pipeline
        self.op_ms = 0.0            # simulated server time per write
        self.trap = None            # callable(table, row_id): stale-ETag

    def handle(self, req, base, rest, ctx, refs=None):
        """One write request -> Response; ODataError when refused."""
        name, key, tail = split_path(rest)
        table = self.schema.by_set.get(name)
        if table is None:
            raise not_found_segment(name)
        w = _Write(self, req, base, table, ctx, refs)
        try:
            return w.route(key, tail)
        except StoreError as e:
            raise ODataError(e.status, e.code, str(e)) from None

    def pause(self):
        if self.op_ms > 0:
            time.sleep(self.op_ms / 1000.0)

    def target_of(self, table, key):
        """Committed row id a key segment names (None when missing or
        malformed): used to fire stale-ETag traps before a write."""
        try:
            kind, value = parse_key(table, key)
        except ODataError:
            return None
        if kind == "id":
            return value
        row = self.store.find_by_key(table, value)
        return None if row is None else row[table.pk.slot]


class _Write:
    """One write request on one table."""

    def __init__(self, writes, req, base, table, ctx, refs):
        self.w = writes
        self.req = req
        self.base = base
        self.t = table
        self.ctx = ctx
        self.refs = refs
        self.pipeline = writes.pipeline
        self.prefs = Prefs(req.headers)
        self.applied = []
        lookup = table.by_role.get("configuration")
        self.nav = lookup.navigation if lookup is not None else None

    # -- routing ----------------------------------------------------------
    def route(self, key, tail):
        m = self.req.method
        if key is None:
            if tail:
                raise not_found_segment(tail[0])
            if m == "POST":
                return self.create()
            raise method_not_allowed(m)
        if m in ("PATCH", "PUT", "DELETE"):
            self._fire_traps(key)
        if not tail:
            if m == "PATCH":
                return self.upsert(key)
            if m == "DELETE":
                return self.delete(key)
            raise method_not_allowed(m)
        if len(tail) == 2 and tail[0] == self.nav and tail[1] == "$ref":
            if m in ("PUT", "DELETE"):
                return self.set_ref(key, m == "PUT")
            raise method_not_allowed(m)
        if len(tail) == 1 and tail[0] in self.t.by_name:
            if m in ("PUT", "DELETE"):
                return self.put_property(key, self.t.by_name[tail[0]],
                                         m == "PUT")
            raise method_not_allowed(m)
        raise not_found_segment(tail[-1])

    def _fire_traps(self, key):
        """A stale-ETag trap: an admin edit lands just before this write
        (only outside change sets; $batch fires them before it starts)."""
        if self.w.trap is None or self.w.store.current_txn() is not None:
            return
        row_id = self.w.target_of(self.t, key)
        if row_id is not None:
            self.w.trap(self.t, row_id)

    # -- create -------------------------------------------------------------
    def create(self):
        select = self._options(expand_ok=False)
        payload = self._payload()
        row_id = payload.pk or new_guid()

        def op(txn):
            slots = self._slots(payload, txn)
            return self.pipeline.create(txn, self.t, row_id, slots,
                                        self.ctx, payload.order)
        self.w.pause()
        row = self.pipeline.run(op)
        if self._representation():
            resp = self._row_response(201, row, select)
        else:
            resp = self._empty(self._entity_id(row_id))
        resp.entity = (self.t.entity_set, row_id)
        return resp

    # -- update / upsert ----------------------------------------------------
    def upsert(self, key):
        select = self._options(expand_ok=True)
        payload = self._payload()
        kind, value = parse_key(self.t, key)
        if_match = self.req.headers.get("If-Match")
        if_none = (self.req.headers.get("If-None-Match") or "").strip()

        def op(txn):
            current = self._current(txn, kind, value)
            if current is None:
                if if_match is not None:
                    raise missing_row(self.t, value) if kind == "id" \
                        else missing_key(self.t)
                return True, self._upsert_create(txn, kind, value, payload)
            if if_none == "*":
                raise exists_already()
            if if_match is not None and not etag_matches(if_match, current,
                                                         self.t):
                raise stale_version()
            row_id = current[self.t.pk.slot]
            if payload.pk is not None and payload.pk != row_id:
                raise bad_request("The primary key in the body does not "
                                  "match the key in the URL.")
            slots = self._slots(payload, txn)
            if kind == "key":       # key values are ignored on update
                for slot in value:
                    slots.pop(slot, None)
            return False, self.pipeline.update(
                txn, self.t, row_id, slots, self.ctx, payload.order,
                self._key_attrs(kind, value))
        self.w.pause()
        created, row = self.pipeline.run(op)
        if self._representation():
            resp = self._row_response(201 if created else 200, row, select)
        else:
            resp = self._empty(self._entity_id(
                row[self.t.pk.slot] if kind == "id" else None, key))
        resp.entity = (self.t.entity_set, row[self.t.pk.slot])
        return resp

    def _upsert_create(self, txn, kind, value, payload):
        slots = self._slots(payload, txn)
        if kind == "id":
            if payload.pk is not None and payload.pk != value:
                raise bad_request("The primary key in the body does not "
                                  "match the key in the URL.")
            row_id = value
        else:
            row_id = payload.pk or new_guid()
            for slot, v in value.items():
                if slot not in slots:
                    slots[slot] = self._key_value(txn, slot, v)
        return self.pipeline.create(txn, self.t, row_id, slots, self.ctx,
                                    payload.order,
                                    self._key_attrs(kind, value))

    def _key_value(self, txn, slot, v):
        """A key part from the URL as a stored value (lookups must exist)."""
        col = self.t.columns[slot]
        if col.kind != "lookup":
            return v
        target = self.w.schema.tables[col.target]
        row = txn.get(target, v)
        if row is None:
            raise missing_row(target, v)
        return row[target.pk.slot]

    def _key_attrs(self, kind, value):
        if kind != "key":
            return None
        return {self.t.columns[s].name: v for s, v in value.items()}

    # -- delete -------------------------------------------------------------
    def delete(self, key):
        self._no_options()
        kind, value = parse_key(self.t, key)
        if_match = self.req.headers.get("If-Match")

        def op(txn):
            current = self._existing(txn, kind, value, if_match)
            self.pipeline.delete(txn, self.t, current[self.t.pk.slot],
                                 self.ctx)
        self.w.pause()
        self.pipeline.run(op)
        return self._empty()

    # -- single property / $ref -----------------------------------------
    def put_property(self, key, col, put):
        self._no_options()
        kind, value = parse_key(self.t, key)
        es = self.t.entity_set
        if col.kind == "lookup":
            raise entity_reference_error()
        if col.platform or col.kind == "pk":
            raise payload_error(es, odl("The property '%s' is read-only and "
                                        "cannot be set." % col.name))
        new = None
        if put:
            self._content_type()
            doc = load_json(es, self.req.body)
            if set(doc) - {"value", "@odata.context"} or "value" not in doc:
                raise payload_error(es, odl("A property value must be sent "
                                            "as {\"value\": ...}."))
            new = doc["value"]
        stored = convert(self.t, es, col, new)
        values = {col: stored}
        state_pair(self.t, values)
        slots = {c.slot: v for c, v in values.items()
                 if c.kind != "statuscode"}
        return self._update_existing(kind, value, slots, [col])

    def set_ref(self, key, put):
        self._no_options()
        kind, value = parse_key(self.t, key)
        col = self.t.by_role["configuration"]
        bind = None
        if put:
            self._content_type()
            doc = load_json(self.t.entity_set, self.req.body)
            uri = doc.get("@odata.id")
            if not isinstance(uri, str):
                raise payload_error(self.t.entity_set, odl(
                    "The '@odata.id' of an entity reference is missing."))
            bind = Bind(ref=uri) if uri.startswith("$") else Bind(uri=uri)

        def slots_of(txn):
            return {col.slot: self._bind_target(txn, col, bind)}
        return self._update_existing(kind, value, slots_of, [col])

    def _update_existing(self, kind, value, slots, submitted):
        if_match = self.req.headers.get("If-Match")

        def op(txn):
            current = self._existing(txn, kind, value, if_match)
            s = slots(txn) if callable(slots) else slots
            self.pipeline.update(txn, self.t, current[self.t.pk.slot], s,
                                 self.ctx, submitted)
        self.w.pause()
        self.pipeline.run(op)
        return self._empty()

    # -- helpers ------------------------------------------------------------
    def _current(self, txn, kind, value):
        if kind == "id":
            return txn.get(self.t, value)
        probe = [None] * self.t.width
        for slot, v in value.items():
            probe[slot] = v
        return txn.find_by_key(self.t, self.w.store.key_of(self.t, probe))

    def _existing(self, txn, kind, value, if_match):
        current = self._current(txn, kind, value)
        if current is None:
            raise missing_row(self.t, value) if kind == "id" \
                else missing_key(self.t)
        if if_match is not None and not etag_matches(if_match, current,
                                                     self.t):
            raise stale_version()
        return current

    def _options(self, expand_ok):
        opts = parse_options(self.req.query)
        for name in opts.values:
            if name == "$expand" and expand_ok:
                continue            # ignored on PATCH (update-delete page)
            if name == "$expand":
                raise bad_request("The emulator does not implement $expand.")
            if name != "$select":
                raise bad_request("The query option %s is not allowed on "
                                  "a create or update." % name)
        return parse_select(self.t, opts.get("$select"))

    def _no_options(self):
        opts = parse_options(self.req.query)
        if opts.values:
            raise bad_request("The query option %s is not allowed here."
                              % next(iter(opts.values)))

    def _content_type(self):
        ct = self.req.headers.get("Content-Type")
        if ct is None:
            raise ODataError(415, "0x0", "The request contains an entity "
                             "body but no Content-Type header. The inferred "
                             "media type 'application/octet-stream' is not "
                             "supported for this resource.")
        media = ct.split(";")[0].strip().lower()
        if media != "application/json":
            raise ODataError(415, "0x0", "The request entity's media type "
                             "'%s' is not supported for this resource."
                             % media)

    def _payload(self):
        self._content_type()
        payload = parse_body(self.t, self.t.entity_set, self.req.body)
        state_pair(self.t, payload.values)
        return payload

    def _slots(self, payload, txn):
        slots = {c.slot: v for c, v in payload.values.items()
                 if c.kind != "statuscode"}
        for col, bind in payload.binds.items():
            slots[col.slot] = self._bind_target(txn, col, bind)
        return slots

    def _bind_target(self, txn, col, bind):
        """A Bind -> the target row's id (None clears the lookup)."""
        if bind is None:
            return None
        es = self.t.entity_set
        target = self.w.schema.tables[col.target]
        if bind.ref is not None:
            if self.refs is None or bind.ref not in self.refs:
                raise unknown_reference(bind.ref)
            set_name, key = self.refs[bind.ref]
        else:
            prefixes = ["%s/api/data/%s/" % (self.req.origin, v)
                        for v in ("v9.2", "v9.1", "v9.0")]
            set_name, key = resolve_bind(es, col.navigation, bind.uri,
                                         prefixes)
        if set_name != target.entity_set:
            raise payload_error(es, odl(
                "The entity set '%s' named in the 'odata.bind' annotation "
                "of the navigation property '%s' does not match its type "
                "'%s'." % (set_name, col.navigation, target.type_name)))
        row = txn.get(target, key)
        if row is None:
            raise missing_row(target, key)
        return row[target.pk.slot]

    def _representation(self):
        return self.prefs.items.get("return") == "representation"

    def _entity_id(self, row_id, key_text=None):
        """OData-EntityId: by id, or by the alternate key as the client
        wrote it (the upsert example of "Update and delete table rows using
        the Web API"); non-ASCII is percent-encoded."""
        key = row_id if key_text is None else \
            quote(key_text, safe="=,'()$-_.:+@!*~/")
        return "%s%s(%s)" % (self.base, self.t.entity_set, key)

    def _empty(self, entity_id=None):
        headers = [("OData-Version", "4.0")]
        if entity_id is not None:
            headers.append(("OData-EntityId", entity_id))
        return Response(204, b"", None, headers)

    def _row_response(self, status, row, select):
        ann = self.prefs.annotations
        applied = ["return=representation"]
        if ann.any:
            applied.append('odata.include-annotations="%s"' % ann.text)
        with self.w.store.lock:
            encoded = self.w.api.ser.rows(self.t, select, ann, [row])[0]
        ctx = context_url(self.base, self.t, None, "/$entity")
        etag = 'W/"%d"' % row[self.t.by_role["version"].slot]
        return Response(status, entity_body(ctx, encoded), JSON_TYPE,
                        [("OData-Version", "4.0"),
                         ("Preference-Applied", ",".join(applied)),
                         ("ETag", etag)])
