"""$batch: multipart/mixed requests with change sets, as Microsoft Learn's
"Execute batch operations using the Web API" describes them
(https://learn.microsoft.com/power-apps/developer/data-platform/webapi/execute-batch-operations-using-web-api)
and the OData 4.0 Protocol, section 11.7 "Batch Requests".

    POST /api/data/v9.2/$batch
    Content-Type: multipart/mixed; boundary="batch_X"   (any boundary)

Parsing is strict where Dataverse is:
  * every line of the multipart structure (delimiters, part headers, the
    inner request line and headers) ends in CRLF, and so does the closing
    delimiter; a bare LF anywhere there -> 400 0x80048d19 "... Stream was
    not readable." (Learn, "Troubleshoot Dataverse Web API client errors":
    https://learn.microsoft.com/troubleshoot/power-platform/power-apps/dataverse/web-api-client-errors),
    as a batch response with one error part;
  * parts are `Content-Type: application/http` with
    `Content-Transfer-Encoding: binary`, or a change set
    (`multipart/mixed; boundary=...`) of such parts; no GET inside a change
    set, no nested change sets or batches, Content-IDs unique;
  * at most 1000 operations (a change set counts its operations).
Inner request targets: an absolute URL, `/api/data/v9.x/...`, a path
relative to the service root, or `$n[/...]` (a Content-ID of an earlier
operation of the same change set; a forward or foreign reference -> 400
"Content-ID Reference: '$n' does not exist in the batch context.").

Execution, in order: an independent part runs in its own transaction; a
change set runs in one transaction (all or nothing; async webhook steps
are queued only after it committed). Without `Prefer:
odata.continue-on-error` the first failure stops the batch, which answers
400 with the parts so far (the failed one last); with it the batch
answers 200 and every part has its own status. A failed change set is
answered by one application/http part with the error (OData 4.0
Protocol, section 11.7.4).

Responses: `--batchresponse_<guid>` parts, change sets as
`multipart/mixed; boundary=changesetresponse_<guid>` repeating each
Content-ID, creates as `HTTP/1.1 204 No Content` with `Location` and
`OData-EntityId`, errors with a `REQ_ID` header, as in the examples of
"Execute batch operations using the Web API".

Service protection: the batch is admitted like any request; each inner
operation after the first then counts as one more request of the caller
(Limits.batch_operations, on by default; see README for why).
"""

import email.message
import http
import re
from urllib.parse import unquote, urlsplit

from emu_payload import HELP_LINK
from emu_pipeline import OpContext
from emu_util import ODataError, bad_request, new_guid
from emu_webapi import Prefs, Request, Response, split_path

MAX_OPERATIONS = 1000
CRLF = b"\r\n"
METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")
_REF_RE = re.compile(r"^\$([A-Za-z0-9_.-]+)(/.*)?$")


def not_readable(entity=""):
    return ODataError(400, "0x80048d19", "Error identified in Payload "
                      "provided by the user for Entity :'%s', For more "
                      "information on this error please follow this help "
                      "link %s ---->  InnerException : System.Argument"
                      "Exception: Stream was not readable." % (entity,
                                                               HELP_LINK))


def malformed(message):
    return bad_request(message)


class Operation:
    """One request inside the batch."""

    def __init__(self, method, target, headers, body, content_id):
        self.method = method
        self.target = target        # request-target as written
        self.headers = headers      # email.message.Message
        self.body = body            # bytes
        self.content_id = content_id


class ChangeSet:
    def __init__(self, ops):
        self.ops = ops


# -- parsing -----------------------------------------------------------------

def boundary_of(content_type):
    """boundary parameter of a multipart/mixed Content-Type, or None."""
    if not content_type:
        return None
    media, _, params = content_type.partition(";")
    if media.strip().lower() != "multipart/mixed":
        return None
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "boundary":
            value = value.strip()
            if len(value) > 1 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value or None
    return None


def split_multipart(data, boundary, outer):
    """Bodies of the parts between `--boundary` delimiters. Delimiter
    lines must end in CRLF; the outer closing delimiter too ("Troubleshoot
    Dataverse Web API client errors")."""
    delim = b"--" + boundary.encode("latin-1")
    if data.startswith(delim):
        pos = 0
    else:
        i = data.find(CRLF + delim)
        if i < 0:
            if b"\n" + delim in data:
                raise not_readable()
            raise malformed("The batch request body does not contain the "
                            "boundary '%s'." % boundary)
        pos = i + 2
    parts = []
    while True:
        after = pos + len(delim)
        if data[after:after + 2] == b"--":
            if outer and data[after + 2:after + 4] != CRLF:
                raise not_readable()
            return parts
        j = after
        while data[j:j + 1] in (b" ", b"\t"):
            j += 1
        if data[j:j + 2] != CRLF:
            raise not_readable()
        start = j + 2
        nxt = data.find(CRLF + delim, start)
        if nxt < 0:
            if data.find(b"\n" + delim, start) >= 0:
                raise not_readable()
            raise malformed("The batch request body ended before the "
                            "closing boundary '--%s--'." % boundary)
        parts.append(data[start:nxt])
        pos = nxt + 2


def parse_headers(block):
    """CRLF-separated header lines -> Message. A bare LF or CR -> not
    readable."""
    msg = email.message.Message()
    if not block:
        return msg
    for line in block.split(CRLF):
        if b"\n" in line or b"\r" in line:
            raise not_readable()
        name, colon, value = line.decode("utf-8", "replace").partition(":")
        if not colon or not name.strip() or name != name.strip():
            raise malformed("The header line '%s' in a batch part is not "
                            "valid." % line.decode("utf-8", "replace"))
        msg[name] = value.strip()
    return msg


def split_head(part, allow_open):
    """Part bytes -> (header Message, body). `allow_open`: the header
    block may end with the part (a GET without a blank line after its
    headers, as dynamics-web-api sends it)."""
    i = part.find(CRLF + CRLF)
    if i < 0:
        if part.startswith(CRLF):
            return email.message.Message(), part[2:]
        if not allow_open:
            if b"\n\n" in part or b"\r\n\n" in part:
                raise not_readable()
            raise malformed("A batch part has no blank line after its "
                            "headers.")
        block = part[:-2] if part.endswith(CRLF) else part
        return parse_headers_checked(block), b""
    return parse_headers_checked(part[:i]), part[i + 4:]


def parse_headers_checked(block):
    if block.startswith(CRLF):
        raise malformed("A batch part starts with an empty line.")
    return parse_headers(block)


def parse_operation(part, in_changeset):
    mime, rest = split_head(part, allow_open=False)
    ctype = (mime.get("Content-Type") or "").split(";")[0].strip().lower()
    if ctype != "application/http":
        raise malformed("Invalid 'Content-Type' header value '%s' found in "
                        "a batch part. The 'Content-Type' header of a batch "
                        "operation must be 'application/http'."
                        % mime.get("Content-Type", ""))
    cte = (mime.get("Content-Transfer-Encoding") or "").strip().lower()
    if cte != "binary":
        raise malformed("The 'Content-Transfer-Encoding' header of a batch "
                        "operation must be 'binary'.")
    line_end = rest.find(CRLF)
    request_line = rest if line_end < 0 else rest[:line_end]
    if b"\n" in request_line:
        raise not_readable()
    after = b"" if line_end < 0 else rest[line_end + 2:]
    method, target = _request_line(request_line.decode("utf-8", "replace"))
    headers, body = split_head(after, allow_open=True) if after else \
        (email.message.Message(), b"")
    if in_changeset and method == "GET":
        raise malformed("An invalid HTTP method 'GET' was detected for a "
                        "request in a change set. Requests in change sets "
                        "only support the HTTP methods 'POST', 'PUT', "
                        "'DELETE', and 'PATCH'.")
    cid = mime.get("Content-ID")
    return Operation(method, target, headers, body,
                     None if cid is None else cid.strip())


def _request_line(line):
    words = line.split(" ")
    if len(words) != 3 or not words[1]:
        raise malformed("The request line '%s' of a batch operation is not "
                        "valid." % line)
    method, target, version = words
    if version != "HTTP/1.1":
        raise malformed("The HTTP version '%s' used in a batch operation "
                        "request or response is not valid. The value must "
                        "be 'HTTP/1.1'." % version)
    if method not in METHODS:
        raise malformed("Invalid HTTP method '%s' specified." % method)
    return method, target


def parse(content_type, body):
    """The batch body -> list of Operation / ChangeSet. ODataError 400
    when it is malformed."""
    boundary = boundary_of(content_type)
    if boundary is None:
        raise malformed("The batch request must have a 'Content-Type' "
                        "header of 'multipart/mixed' with a 'boundary' "
                        "parameter.")
    items = []
    for part in split_multipart(body, boundary, outer=True):
        mime, rest = split_head(part, allow_open=False)
        inner = boundary_of(mime.get("Content-Type"))
        if inner is None:
            items.append(parse_operation(part, False))
            continue
        ops = [parse_operation(p, True)
               for p in split_multipart(rest, inner, outer=False)]
        if len(ops) > MAX_OPERATIONS:
            raise malformed("The current change set contains too many "
                            "operations. A maximum number of '%d' operations "
                            "are allowed in a change set." % MAX_OPERATIONS)
        items.append(ChangeSet(ops))
    _check(items)
    return items


def _check(items):
    total = sum(len(i.ops) if isinstance(i, ChangeSet) else 1 for i in items)
    if total > MAX_OPERATIONS:
        raise malformed("The current batch message contains too many parts. "
                        "Only batch messages with a maximum number of '%d' "
                        "query operations, including changeset operations, "
                        "are allowed." % MAX_OPERATIONS)
    seen = set()
    for item in items:
        for op in item.ops if isinstance(item, ChangeSet) else [item]:
            if op.content_id is None:
                continue
            if op.content_id in seen:
                raise malformed("The content ID '%s' was found more than "
                                "once in the same change set or same batch "
                                "request. Content IDs have to be unique "
                                "across all operations of a change set for "
                                "OData V4.0 and have to be unique across "
                                "all operations in the whole batch request "
                                "for OData V4.01." % op.content_id)
            seen.add(op.content_id)


# -- execution ----------------------------------------------------------------

class Batch:
    def __init__(self, api, pipeline):
        self.api = api
        self.pipeline = pipeline
        self.account = None     # callable(client_id, op kind info, status)

    def handle(self, req, base, client_id):
        """The $batch request -> Response (200, or 400 when stopped)."""
        ctx = OpContext.for_client(client_id)
        prefs = Prefs(req.headers)
        keep_going = "odata.continue-on-error" in prefs.items
        headers = [("OData-Version", "4.0")]
        if keep_going:
            headers.append(("Preference-Applied", "odata.continue-on-error"))
        try:
            items = parse(req.headers.get("Content-Type"), req.body)
        except ODataError as e:
            return self._answer(400, [render_part(error_response(e))],
                                headers[:1])
        run = _Run(self, req, base, client_id, ctx)
        parts, status = [], 200
        for item in items:
            if isinstance(item, ChangeSet):
                part, failed = run.changeset(item)
            else:
                part, failed = run.single(item)
            parts.append(part)
            if failed and not keep_going:
                status = 400
                break
        return self._answer(status, parts, headers)

    @staticmethod
    def _answer(status, parts, headers):
        boundary = "batchresponse_" + new_guid()
        delim = b"--" + boundary.encode()
        body = b"".join(delim + CRLF + p + CRLF for p in parts) + \
            delim + b"--" + CRLF
        return Response(status, body, "multipart/mixed; boundary=" + boundary,
                        headers)


class _Run:
    """One batch being executed."""

    def __init__(self, batch, req, base, client_id, ctx):
        self.batch = batch
        self.api = batch.api
        self.req = req
        self.base = base
        self.client_id = client_id
        self.ctx = ctx
        self.count = 0

    def single(self, op):
        try:
            resp = self.execute(op, None)
        except ODataError as e:
            return render_part(error_response(e), op.content_id), True
        return render_part(resp, op.content_id), resp.status >= 400

    def changeset(self, cs):
        self._fire_traps(cs)
        refs, done = {}, []

        def run_all(txn):
            for op in cs.ops:
                resp = self.execute(op, refs)
                done.append((op, resp))
                entity = getattr(resp, "entity", None)
                if op.content_id is not None and entity is not None:
                    refs["$" + op.content_id] = entity
        failed_op = None
        try:
            self.batch.pipeline.run(run_all)
        except ODataError as e:
            failed_op = cs.ops[len(done)] if len(done) < len(cs.ops) \
                else None
            cid = None if failed_op is None else failed_op.content_id
            return render_part(error_response(e), cid), True
        boundary = "changesetresponse_" + new_guid()
        delim = b"--" + boundary.encode()
        inner = b"".join(delim + CRLF + render_part(r, op.content_id) + CRLF
                         for op, r in done) + delim + b"--"
        head = ("Content-Type: multipart/mixed; boundary=%s" % boundary)
        return head.encode() + CRLF + CRLF + inner, False

    def _fire_traps(self, cs):
        writes = self.api.writes
        if writes.trap is None:
            return
        for op in cs.ops:
            if op.method == "POST" or _REF_RE.match(op.target):
                continue
            try:
                path, _ = self.resolve(op.target, None)
                rest = re.sub(r"^/api/data/v9\.[012]/", "", path)
                name, key, _ = split_path(unquote(rest))
            except ODataError:
                continue
            table = self.api.schema.by_set.get(name)
            if table is not None and key is not None:
                row_id = writes.target_of(table, key)
                if row_id is not None:
                    writes.trap(table, row_id)

    def resolve(self, target, refs):
        """Request-target -> (path, query)."""
        m = _REF_RE.match(target.split("?", 1)[0])
        if m:
            ref = "$" + m.group(1)
            if refs is None or ref not in refs:
                raise bad_request("Content-ID Reference: '%s' does not exist "
                                  "in the batch context." % ref)
            set_name, row_id = refs[ref]
            tail = target[len(ref):]
            target = "%s%s(%s)%s" % (self._api_root(), set_name, row_id,
                                     tail)
        if re.match(r"^[a-z][a-z0-9+.-]*://", target, re.I):
            parts = urlsplit(target)
            path, query = parts.path, parts.query
        else:
            path, _, query = target.partition("?")
            if not path.startswith("/"):
                path = self._api_root() + path
        if not re.match(r"^/api/data/v9\.[012]/", path):
            raise malformed("The request URI '%s' of a batch operation is "
                            "not a Web API URI." % target)
        if re.match(r"^/api/data/v9\.[012]/\$batch(\?|$)", path):
            raise malformed("A batch request cannot contain another batch "
                            "request.")
        return path, query

    def _api_root(self):
        return "/" + self.base.split("/", 3)[3]

    def execute(self, op, refs):
        """Run one operation -> Response; ODataError when it fails."""
        path, query = self.resolve(op.target, refs)
        req = Request(op.method, path, query, op.headers, self.req.origin,
                      op.body)
        info = self.api.describe(op.method, path, query, op.headers)
        self.count += 1
        status = 500
        try:
            resp = self.api.handle(req, self.client_id, ctx=self.ctx,
                                   refs=refs)
            status = resp.status
            return resp
        except ODataError as e:
            status = e.status
            raise
        finally:
            if self.batch.account is not None:
                self.batch.account(self.client_id, info, status,
                                   self.count > 1)


# -- rendering ----------------------------------------------------------------

def error_response(err):
    headers = [("REQ_ID", new_guid()), ("OData-Version", "4.0")]
    headers += [h for h in err.headers if h[0] != "OData-Version"]
    return Response(err.status, err.body, err.content_type, headers)


def render_part(resp, content_id=None):
    """One response as a batch part (MIME headers, status line, headers,
    blank line, body)."""
    lines = ["Content-Type: application/http",
             "Content-Transfer-Encoding: binary"]
    if content_id is not None:
        lines.append("Content-ID: %s" % content_id)
    try:
        reason = http.HTTPStatus(resp.status).phrase
    except ValueError:
        reason = "Unknown"
    lines += ["", "HTTP/1.1 %d %s" % (resp.status, reason)]
    hdrs = list(resp.headers)
    if any(n == "REQ_ID" for n, _ in hdrs):
        lines.append("REQ_ID: %s" % dict(hdrs)["REQ_ID"])
        hdrs = [h for h in hdrs if h[0] != "REQ_ID"]
    if resp.body and resp.content_type:
        lines.append("Content-Type: %s" % resp.content_type)
    for name, value in hdrs:
        if name == "OData-EntityId":
            lines.append("Location: %s" % value)
        lines.append("%s: %s" % (name, value))
    head = "\r\n".join(lines).encode("utf-8") + CRLF + CRLF
    return head + (resp.body or b"")
