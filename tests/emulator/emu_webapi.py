"""Dataverse Web API /api/data/v9.2/ for the two mapped tables (read side).

Resources:
  /                              service document
  $metadata                      CSDL of the two tables (minimal)
  WhoAmI                         the caller (application user)
  {set}                          collection: $select $filter $orderby $top
                                 $count, paging, change tracking, deltas
  {set}/$count                   text/plain count (UTF-8 BOM, capped 5000)
  {set}({id}) | {set}(k=v,…)     one row (by id or by alternate key)
  {set}({id})/{prop}             one property
  {configset}({id})/{relationship}[/$count]   the Related view
  {numberset}({id})/{navigation} the number's configuration

Paging is keyset paging: rows in primary-key order (SQL Server GUID order)
are found by bisecting the sorted key list with the last key of the
previous page, so page N costs O(page size), not O(N). $orderby queries
sort once per store generation and bisect on (order values, key).

Writes (POST/PATCH/PUT/DELETE) go to emu_writes, $batch to emu_batch;
both are wired in by dataverse_emulator.main().
"""

import bisect
import json
import re
import threading
from urllib.parse import unquote

from emu_odata import (literal_of, parse_count, parse_filter, parse_options,
                       parse_orderby, parse_select, parse_top, row_sort_key,
                       tokenize, values_sort_key)
from emu_paging import (Cookie, decode_cookie, encode_cookie, lower_encode,
                        make_delta_token, parse_delta_token, skiptoken_page)
from emu_pipeline import OpContext
from emu_serialize import (TOTAL_COUNT, TOTAL_EXCEEDED, Annotations,
                           Serializer, collection_body, context_url,
                           deleted_item, entity_body)
from emu_util import (ODataError, bad_request, business_unit_id,
                      guid_from_sort_key as unkey, guid_sort_key, is_guid,
                      organization_id, user_id)

API_RE = re.compile(r"^/api/data/(v9\.[012])/(.*)$", re.DOTALL)
MAX_PAGE = 5000
JSON_TYPE = ("application/json; odata.metadata=minimal; odata.streaming=true;"
             " IEEE754Compatible=false; charset=utf-8")
COUNT_CAP = 5000


class Request:
    """What the HTTP layer hands over."""

    def __init__(self, method, path, query, headers, origin, body=b""):
        self.method = method
        self.path = path            # still percent-encoded
        self.query = query          # raw query string
        self.headers = headers      # email.message.Message-like
        self.origin = origin        # scheme://host[:port] as the client saw
        self.body = body


class Response:
    def __init__(self, status, body=b"", content_type=JSON_TYPE,
                 headers=None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = list(headers or [])


def not_found_segment(segment):
    return ODataError(404, "0x8006088a",
                      "Resource not found for the segment '%s'." % segment)


class Prefs:
    """The Prefer header(s): comma-separated preferences, quoted values may
    hold commas, names are case-insensitive."""

    def __init__(self, headers):
        self.items = {}
        for value in headers.get_all("Prefer") or []:
            for pref in _split_prefer(value):
                name, _, val = pref.partition("=")
                name = name.split(";")[0].strip().lower()
                val = val.split(";")[0].strip()
                if val.startswith('"') and val.endswith('"') and len(val) > 1:
                    val = val[1:-1]
                if name:
                    self.items[name] = val

    @property
    def track(self):
        return "odata.track-changes" in self.items

    def maxpagesize(self):
        raw = self.items.get("odata.maxpagesize")
        if raw is None:
            return None
        if not re.fullmatch(r"\d{1,9}", raw) or int(raw) == 0:
            raise bad_request("The 'odata.maxpagesize' preference value "
                              "'%s' is not a positive integer." % raw)
        if int(raw) > MAX_PAGE:
            raise bad_request("The 'odata.maxpagesize' preference value %s "
                              "exceeds the maximum page size of %d."
                              % (raw, MAX_PAGE))
        return int(raw)

    @property
    def annotations(self):
        return Annotations(self.items.get("odata.include-annotations"))


def _split_prefer(value):
    out, cur, quoted = [], [], False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return [p for p in out if p]


def split_path(rest):
    """'set(key)/a/b' -> (set, key text or None, [a, b]); quotes inside
    the key may hold '/' and ')'."""
    i = 0
    while i < len(rest) and rest[i] not in "(/":
        i += 1
    name = rest[:i]
    key = None
    if i < len(rest) and rest[i] == "(":
        j, quoted = i + 1, False
        while j < len(rest):
            if rest[j] == "'":
                quoted = not quoted
            elif rest[j] == ")" and not quoted:
                break
            j += 1
        if j >= len(rest):
            raise bad_request("Bad Request - Error in query syntax.")
        key = rest[i + 1:j]
        i = j + 1
    tail = rest[i:]
    if tail and not tail.startswith("/"):
        raise bad_request("Bad Request - Error in query syntax.")
    segments = [s for s in tail.split("/")[1:]]
    if any(s == "" for s in segments):
        raise not_found_segment("")
    return name, key, segments


class WebApi:
    def __init__(self, schema, store, clock, max_page_size=MAX_PAGE,
                 delta_token_age=7 * 86400):
        self.schema = schema
        self.store = store
        self.clock = clock
        self.max_page_size = min(int(max_page_size), MAX_PAGE)
        self.delta_token_age = float(delta_token_age)
        self.ser = Serializer(schema, store)
        self.delta_tokens = {}          # token -> [issued epoch, expired]
        self.delta_floor = None         # unregistered tokens before: expired
        self.tlock = threading.Lock()
        self.sort_cache = {}
        self.writes = None              # emu_writes.Writes (wired by main)
        self.batch = None               # emu_batch.Batch (wired by main)

    # -- classification (before auth / faults) ------------------------------
    def describe(self, method, path, query, headers):
        """(kind, entity_set, page) of a request, never raising: used to
        count requests and to match faults."""
        m = API_RE.match(path)
        if not m:
            return "other", None, 1
        rest = unquote(m.group(2))
        if rest in ("", "$metadata", "WhoAmI", "WhoAmI()"):
            return "service", None, 1
        if rest == "$batch":
            return "batch", None, 1
        try:
            name, key, tail = split_path(rest)
            opts = parse_options(query)
        except ODataError:
            return "other", None, 1
        page = skiptoken_page(opts.get("$skiptoken"))
        if method != "GET":
            return "write", name, 1
        if tail and tail[-1] == "$count":
            return "count", name, 1
        if key is not None:
            return ("related" if tail and name in self.schema.by_set and
                    tail[0] == self.schema.config.relationship
                    else "retrieve"), name, page
        if opts.get("$deltatoken") is not None:
            return "delta", name, page
        if Prefs(headers).track:
            return "track", name, page
        return "query", name, page

    # -- entry point ----------------------------------------------------------
    def handle(self, req, client_id, ctx=None, refs=None):
        m = API_RE.match(req.path)
        if not m:
            raise not_found_segment(req.path.strip("/").split("/")[0])
        base = "%s/api/data/%s/" % (req.origin, m.group(1))
        rest = unquote(m.group(2))
        self._check_headers(req)
        if req.method != "GET":
            return self._write(req, base, rest, client_id, ctx, refs)
        if rest == "$batch":
            raise ODataError(405, "0x0", "The requested resource does not "
                             "support http method 'GET'.")
        if rest == "":
            return self._service_document(base)
        if rest == "$metadata":
            return self._metadata()
        if rest in ("WhoAmI", "WhoAmI()"):
            return self._whoami(base, client_id)
        name, key, tail = split_path(rest)
        table = self.schema.by_set.get(name)
        if table is None:
            raise not_found_segment(name)
        ctx = _Ctx(self, req, base, table)
        if key is None:
            if not tail:
                return ctx.collection()
            if tail == ["$count"]:
                return ctx.count()
            raise not_found_segment(tail[0])
        row = self._resolve_key(table, key)
        if not tail:
            return ctx.retrieve(row)
        return ctx.navigate(row, tail)

    def _write(self, req, base, rest, client_id, ctx, refs):
        if rest in ("", "$metadata", "WhoAmI", "WhoAmI()"):
            raise ODataError(404, "", "No HTTP resource was found that "
                             "matches the request URI '%s%s'."
                             % (base, rest))
        if rest == "$batch":
            if req.method != "POST":
                raise ODataError(405, "0x0", "The requested resource does "
                                 "not support http method '%s'."
                                 % req.method)
            return self.batch.handle(req, base, client_id)
        return self.writes.handle(
            req, base, rest, ctx or OpContext.for_client(client_id), refs)

    @staticmethod
    def _check_headers(req):
        accept = req.headers.get("Accept")
        if accept and not any(
                p.split(";")[0].strip().lower() in (
                    "*/*", "application/*", "application/json",
                    "text/plain", "application/xml")
                for p in accept.split(",")):
            raise ODataError(406, "0x0", "A supported MIME type could not "
                             "be found that matches the acceptable MIME "
                             "types for the request. The supported type(s) "
                             "'application/json;odata.metadata=minimal' do "
                             "not match any of the acceptable MIME types "
                             "'%s'." % accept)
        for name in ("OData-MaxVersion", "OData-Version"):
            value = req.headers.get(name)
            if value is None:
                continue
            try:
                ok = float(value.strip()) >= 4.0
            except ValueError:
                ok = False
            if not ok:
                raise bad_request("The value '%s' of the %s HTTP header is "
                                  "not supported; this service speaks "
                                  "OData 4.0." % (value, name))

    def _resolve_key(self, table, key):
        """Key segment -> row; 404 0x80040217 when missing."""
        kind, value = parse_key(table, key)
        if kind == "id":
            row = self.store.get(table, value)
            if row is None:
                raise missing_row(table, value)
            return row
        row = self.store.find_by_key(table, value)
        if row is None:
            raise missing_key(table)
        return row

    def _service_document(self, base):
        doc = {"@odata.context": base + "$metadata",
               "value": [{"name": t.entity_set, "kind": "EntitySet",
                          "url": t.entity_set}
                         for t in self.schema.tables.values()]}
        return Response(200, json.dumps(doc).encode())

    def _metadata(self):
        return Response(200, metadata_xml(self.schema).encode("utf-8"),
                        "application/xml")

    def _whoami(self, base, client_id):
        doc = {"@odata.context": base +
               "$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
               "BusinessUnitId": business_unit_id(),
               "UserId": user_id(client_id),
               "OrganizationId": organization_id()}
        return Response(200, json.dumps(doc).encode())

    # -- delta tokens ---------------------------------------------------------
    def issue_delta_token(self, version, epoch):
        token = make_delta_token(version, epoch)
        with self.tlock:
            if token not in self.delta_tokens:
                self.delta_tokens[token] = [epoch, False]
        return token

    def expire_delta_tokens(self):
        """Expire every token issued so far. The store's counter moves on
        one step, so tokens issued afterwards never repeat an expired
        token's text (same version, same second)."""
        with self.store.lock, self.tlock:
            for entry in self.delta_tokens.values():
                entry[1] = True
            self.delta_floor = self.clock.now()
            self.store.tick()
            return len(self.delta_tokens)

    def check_delta_token(self, text):
        """-> version the token stands for; 400 when garbled or expired."""
        parsed = parse_delta_token(text)
        if parsed is None or parsed[0] > self.store.version:
            raise bad_request("The $deltatoken value '%s' is not valid."
                              % text, "0x80040203")
        version, epoch = parsed
        now = self.clock.now()
        with self.tlock:
            entry = self.delta_tokens.get(text)
            if entry is not None:
                expired = entry[1]
                epoch = entry[0]
            else:
                expired = self.delta_floor is not None and \
                    epoch <= self.delta_floor
        if epoch > now + 60:
            raise bad_request("The $deltatoken value '%s' is not valid."
                              % text, "0x80040203")
        if expired or now - epoch > self.delta_token_age:
            raise bad_request("Version stamp associated with the client has "
                              "expired. Please perform a full sync.",
                              "0x80044352")
        return version

    def sorted_rows(self, table, key, pred, orderby):
        """Rows matching pred, sorted for $orderby; cached per generation.
        Call with the store lock held."""
        ck = (table.key, key, self.store.generation)
        hit = self.sort_cache.get(ck)
        if hit is not None:
            return hit
        rows = [r for r in self.store.state(table).rows.values()
                if pred is None or pred(r) is True]
        kf = row_sort_key(orderby, table.pk.slot, self.ser.lookup_name)
        keyed = sorted(((kf(r), r) for r in rows), key=lambda x: x[0])
        hit = ([k for k, _ in keyed], [r for _, r in keyed])
        if len(self.sort_cache) > 8:
            self.sort_cache.clear()
        self.sort_cache[ck] = hit
        return hit


def parse_key(table, key):
    """Key segment text (decoded) -> ("id", guid) or ("key", {slot:
    value}) for the table's alternate key; 400 when it is neither."""
    if is_guid(key):
        return "id", key.lower()
    pairs = _key_pairs(key)
    if pairs is None or not table.alternate_key or \
            sorted(pairs) != sorted(table.alternate_key):
        raise bad_request("Bad Request - Error in query syntax.")
    want = {}
    for name, lit in pairs.items():
        col = table.by_name[name]
        value = lit.value
        if col.kind == "lookup" and isinstance(value, str):
            value = value.lower()
        want[col.slot] = value
    return "key", want


def missing_row(table, row_id):
    return ODataError(404, "0x80040217", "%s With Id = %s Does Not Exist"
                      % (table.logical_name, row_id))


def missing_key(table):
    return ODataError(404, "0x80040217", "A record with the specified key "
                      "values does not exist in %s entity"
                      % table.logical_name)


def _key_pairs(text):
    """"a=1,b='x'" -> {name: Literal}; None when malformed."""
    pairs = {}
    for part in _split_key(text):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            return None
        try:
            sub = tokenize(value.strip())
        except ODataError:
            return None
        if len(sub) != 2:
            return None
        lit = literal_of(sub[0], value)
        if lit is None or lit.kind == "null":
            return None
        pairs[name.strip()] = lit
    return pairs


def _split_key(text):
    out, cur, quoted = [], [], False
    for ch in text:
        if ch == "'":
            quoted = not quoted
        if ch == "," and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


class _Ctx:
    """One Web API request on one table."""

    def __init__(self, api, req, base, table):
        self.api = api
        self.store = api.store
        self.req = req
        self.base = base
        self.table = table
        self.opts = parse_options(req.query)
        self.prefs = Prefs(req.headers)
        self.ann = self.prefs.annotations
        self.applied = []

    def _headers(self):
        h = [("OData-Version", "4.0")]
        if self.applied:
            h.append(("Preference-Applied", ",".join(self.applied)))
        return h

    def _apply_annotations(self):
        if self.ann.any:
            self.applied.append('odata.include-annotations="%s"'
                                % self.ann.text)

    # -- collections --------------------------------------------------------
    def collection(self, base_pred=None):
        t = self.table
        o = self.opts
        if o.get("$deltatoken") is not None or self.prefs.track:
            if base_pred is not None:
                raise bad_request("Change tracking is only supported on "
                                  "entity sets, not on navigation "
                                  "properties.")
            for opt in ("$filter", "$orderby", "$expand", "$top"):
                if o.get(opt) is not None:
                    raise bad_request('The "%s" query parameter isn\'t '
                                      'supported when Change Tracking is '
                                      'enabled.' % opt)
            if not self.store.state(t).tracking:
                raise bad_request("Entity %s isn't enabled for change "
                                  "tracking." % t.logical_name,
                                  "0x80072491")
        if o.get("$expand") is not None or o.get("$apply") is not None:
            raise bad_request("The emulator does not implement $expand or "
                              "$apply.")
        select = parse_select(t, o.get("$select"))
        pred = parse_filter(t, o.get("$filter"), o.aliases,
                            self.api.ser.lookup_name)
        if base_pred is not None:
            pred = base_pred if pred is None else _both(base_pred, pred)
        orderby = parse_orderby(t, o.get("$orderby"))
        top = parse_top(o.get("$top"))
        count = parse_count(o.get("$count"))
        page_size = self._page_size(top)
        if self.prefs.maxpagesize() is not None:
            top = None
        self._apply_annotations()
        if self.prefs.track:
            self.applied.append("odata.track-changes")
        if o.get("$deltatoken") is not None:
            return self._delta(select, page_size)
        return self._page(select, pred, orderby, top, count, page_size)

    def _page_size(self, top):
        """Rows per page. With both $top and odata.maxpagesize, $top is
        ignored (page-results, 2024 edition; the 2021 one said $top won):
        the caller then pages as if $top were absent."""
        requested = self.prefs.maxpagesize()
        size = self.api.max_page_size
        if requested is not None:
            size = min(requested, size)
            self.applied.append("odata.maxpagesize=%d" % size)
            return size
        if top is not None:
            return min(top, MAX_PAGE)
        return size

    def _page(self, select, pred, orderby, top, count, size):
        t = self.table
        st = self.store.state(t)
        token = self.opts.get("$skiptoken")
        tracking = self.prefs.track
        if token is not None:
            if top is not None:
                raise bad_request("$skiptoken cannot be combined with $top.")
            cookie = decode_cookie(token, t.pk.name, orderby)
            tracking = cookie.tracking
        else:
            cookie = Cookie(0, tracking)
        with self.store.lock:
            if tracking and cookie.tracking_version is None:
                cookie.tracking_version = self.store.visible_version()
                cookie.tracking_time = self.api.clock.now()
            if orderby:
                rows = self._ordered(pred, orderby, cookie, size)
            else:
                rows = self._by_key(st, pred, cookie, size)
            more = len(rows) > size and top is None
            rows = rows[:size]
            encoded = self.api.ser.rows(t, select, self.ann, rows)
            extra = []
            total = self._count(st, pred) if count else None
            if count and (self.ann.wants(TOTAL_COUNT) or
                          self.ann.wants(TOTAL_EXCEEDED)):
                extra = self._count_annotations(st, pred)
        link = None
        if more:
            nxt = Cookie(cookie.page + 1, tracking)
            nxt.tracking_version = cookie.tracking_version
            nxt.tracking_time = cookie.tracking_time
            last, first = rows[-1], rows[0]
            nxt.last_pk = last[t.pk.slot]
            nxt.first_pk = first[t.pk.slot]
            nxt.order_values = [last[c.slot] for c, _ in orderby]
            link = ("@odata.nextLink", self._next_link(
                encode_cookie(nxt, t.pk.name, orderby)))
        elif tracking:
            tok = self.api.issue_delta_token(cookie.tracking_version,
                                             cookie.tracking_time)
            link = ("@odata.deltaLink", self._delta_link(tok))
        ctx = context_url(self.base, t, select)
        body = collection_body(ctx, encoded, total, extra, link)
        return Response(200, body, headers=self._headers())

    def _by_key(self, st, pred, cookie, size):
        keys = st.keys
        i = 0 if cookie.last_pk is None else \
            bisect.bisect_right(keys, guid_sort_key(cookie.last_pk))
        rows_by_id = st.rows
        if pred is None:
            return [rows_by_id[unkey(k)] for k in keys[i:i + size + 1]]
        out = []
        n = len(keys)
        while i < n and len(out) <= size:
            row = rows_by_id[unkey(keys[i])]
            if pred(row) is True:
                out.append(row)
            i += 1
        return out

    def _ordered(self, pred, orderby, cookie, size):
        ckey = (self.opts.get("$filter"), self.opts.get("$orderby"),
                tuple(sorted(self.opts.aliases.items())), self.req.path)
        keys, rows = self.api.sorted_rows(self.table, ckey, pred, orderby)
        i = 0
        if cookie.last_pk is not None:
            k = values_sort_key(orderby, cookie.order_values, cookie.last_pk,
                                self.api.ser.lookup_name)
            i = bisect.bisect_right(keys, k)
        return rows[i:i + size + 1]

    def _count(self, st, pred):
        if pred is None:
            return min(len(st.rows), COUNT_CAP)
        n = 0
        for row in st.rows.values():
            if pred(row) is True:
                n += 1
                if n >= COUNT_CAP:
                    break
        return n

    def _count_annotations(self, st, pred):
        n = 0
        for row in st.rows.values():
            if pred is None or pred(row) is True:
                n += 1
                if n > COUNT_CAP:
                    break
        out = []
        if self.ann.wants(TOTAL_COUNT):
            out.append(("@" + TOTAL_COUNT, min(n, COUNT_CAP)))
        if self.ann.wants(TOTAL_EXCEEDED):
            out.append(("@" + TOTAL_EXCEEDED, n > COUNT_CAP))
        return out

    def _link_path(self):
        return self.req.origin + self.req.path

    def _next_link(self, skiptoken):
        pairs = self.opts.raw_pairs(drop=("$skiptoken",))
        pairs.append("$skiptoken=" + skiptoken)
        return self._link_path() + "?" + "&".join(pairs)

    def _delta_link(self, token):
        pairs = [p for n, p in self.opts.raw if n == "$select"]
        pairs.append("$deltatoken=" + lower_encode(token))
        return self._link_path() + "?" + "&".join(pairs)

    # -- deltas ---------------------------------------------------------------
    def _delta(self, select, size):
        t = self.table
        since = self.api.check_delta_token(self.opts.get("$deltatoken"))
        token = self.opts.get("$skiptoken")
        if token is not None:
            cookie = decode_cookie(token, t.pk.name, delta=True)
            if not since <= cookie.delta_upto <= self.store.version:
                raise bad_request("The $skiptoken value is not valid: use "
                                  "the @odata.nextLink exactly as it was "
                                  "returned.", "0x80040203")
        else:
            cookie = Cookie(0, True)
            cookie.delta_phase, cookie.delta_after = "changed", since
        with self.store.lock:
            if cookie.delta_upto is None:
                cookie.delta_upto = self.store.visible_version()
            items = self._delta_items(since, cookie, size)
            more = len(items) > size
            items = items[:size]
            changed = [r for kind, r in items if kind == "changed"]
            encoded = self.api.ser.rows(t, select, self.ann, changed)
            encoded += [deleted_item(self.base, t, r[0])
                        for kind, r in items if kind == "deleted"]
        if more:
            nxt = Cookie(cookie.page + 1, True)
            nxt.delta_upto = cookie.delta_upto
            kind, last = items[-1]
            nxt.delta_phase = kind
            nxt.delta_after = last[t.by_role["version"].slot] \
                if kind == "changed" else last[1]
            link = ("@odata.nextLink", self._next_link(
                encode_cookie(nxt, t.pk.name)))
        else:
            tok = self.api.issue_delta_token(cookie.delta_upto,
                                             self.api.clock.now())
            link = ("@odata.deltaLink", self._delta_link(tok))
        ctx = context_url(self.base, t, select, "/$delta")
        body = collection_body(ctx, encoded, None, (), link)
        return Response(200, body, headers=self._headers())

    def _delta_items(self, since, cookie, size):
        t, upto = self.table, cookie.delta_upto
        items = []
        if cookie.delta_phase == "changed":
            rows = self.store.changes(t, since, upto, cookie.delta_after,
                                      size)
            items = [("changed", r) for r in rows]
            after = since
        else:
            after = cookie.delta_after
        if len(items) <= size:
            dels = self.store.deletions(t, since, upto, after,
                                        size - len(items))
            items += [("deleted", d) for d in dels]
        return items

    # -- $count ---------------------------------------------------------------
    def count(self, base_pred=None):
        t = self.table
        o = self.opts
        if o.get("$deltatoken") is not None:
            since = self.api.check_delta_token(o.get("$deltatoken"))
            with self.store.lock:
                upto = self.store.visible_version()
                n = len(self.store.changes(t, since, upto, since, 10**9)) + \
                    len(self.store.deletions(t, since, upto, since, 10**9))
        else:
            pred = parse_filter(t, o.get("$filter"), o.aliases,
                                self.api.ser.lookup_name)
            if base_pred is not None:
                pred = base_pred if pred is None else _both(base_pred, pred)
            with self.store.lock:
                n = self._count(self.store.state(t), pred)
        body = b"\xef\xbb\xbf" + str(n).encode()
        return Response(200, body, "text/plain; charset=utf-8",
                        [("OData-Version", "4.0")])

    # -- single rows ----------------------------------------------------------
    def retrieve(self, row, table=None, context_suffix="/$entity"):
        t = table or self.table
        o = self.opts
        for opt in ("$filter", "$orderby", "$top", "$skiptoken",
                    "$deltatoken", "$count"):
            if o.get(opt) is not None:
                raise bad_request("The query option %s is not allowed when "
                                  "retrieving a single record." % opt)
        if o.get("$expand") is not None:
            raise bad_request("The emulator does not implement $expand.")
        select = parse_select(t, o.get("$select"))
        self._apply_annotations()
        vslot = t.by_role["version"].slot
        etag = 'W/"%d"' % row[vslot]
        inm = self.req.headers.get("If-None-Match")
        if inm and inm.strip() == etag and not self.ann.any:
            return Response(304, b"", None, [("ETag", etag),
                                             ("OData-Version", "4.0")])
        with self.store.lock:
            encoded = self.api.ser.rows(t, select, self.ann, [row])[0]
        ctx = context_url(self.base, t, select, context_suffix)
        headers = self._headers() + [("ETag", etag)]
        return Response(200, entity_body(ctx, encoded), headers=headers)

    def navigate(self, row, tail):
        t = self.table
        nav = tail[0]
        cfg, num = self.api.schema.config, self.api.schema.number
        if t is cfg and nav == cfg.relationship:
            config_id = row[cfg.pk.slot]
            slot = num.by_role["configuration"].slot
            sub = _Ctx(self.api, self.req, self.base, num)

            def pred(r):
                return r[slot] == config_id
            if len(tail) == 1:
                return sub.collection(base_pred=pred)
            if tail[1:] == ["$count"]:
                return sub.count(base_pred=pred)
            raise not_found_segment(tail[1])
        if len(tail) != 1:
            raise not_found_segment(tail[1])
        lookup = t.by_role.get("configuration")
        if lookup is not None and nav == lookup.navigation:
            target = row[lookup.slot]
            if target is None:
                return Response(204, b"", None, [("OData-Version", "4.0")])
            other = self.store.get(cfg, target)
            sub = _Ctx(self.api, self.req, self.base, cfg)
            return sub.retrieve(other, cfg)
        col = t.by_name.get(nav)
        if col is None:
            raise not_found_segment(nav)
        value = row[col.slot]
        if value is None:
            return Response(204, b"", None, [("OData-Version", "4.0")])
        doc = {"@odata.context": "%s$metadata#%s(%s)/%s" % (
            self.base, t.entity_set, row[t.pk.slot], nav), "value": value}
        return Response(200, json.dumps(doc, ensure_ascii=False)
                        .encode("utf-8"), headers=self._headers())


def _both(a, b):
    def pred(row):
        return a(row) is True and b(row) is True
    return pred


def metadata_xml(schema):
    """A minimal CSDL: entity types with keys and properties, the lookup
    navigation, the relationship, and the entity sets."""
    out = ['<?xml version="1.0" encoding="utf-8"?>',
           '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/'
           'odata/ns/edmx"><edmx:DataServices>',
           '<Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" '
           'xmlns="http://docs.oasis-open.org/odata/ns/edm">']
    for t in schema.tables.values():
        out.append('<EntityType Name="%s"><Key><PropertyRef Name="%s" />'
                   '</Key>' % (t.logical_name, t.pk.name))
        for col in t.columns:
            out.append('<Property Name="%s" Type="%s" />'
                       % (col.name, col.edm))
        lk = t.by_role.get("configuration")
        if lk is not None:
            out.append('<NavigationProperty Name="%s" Type="mscrm.%s" />'
                       % (lk.navigation, schema.config.logical_name))
        if t is schema.config:
            out.append('<NavigationProperty Name="%s" Type="Collection('
                       'mscrm.%s)" />' % (t.relationship,
                                          schema.number.logical_name))
        out.append("</EntityType>")
    out.append('<EntityContainer Name="System">')
    for t in schema.tables.values():
        out.append('<EntitySet Name="%s" EntityType="Microsoft.Dynamics.CRM.'
                   '%s" />' % (t.entity_set, t.logical_name))
    out.append("</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>")
    return "".join(out)
