"""RemoteExecutionContext: the JSON body of a webhook POST, as .NET's
DataContractJsonSerializer writes it (Microsoft Learn: "Use webhooks to
create external handlers for server events",
https://learn.microsoft.com/power-apps/developer/data-platform/use-webhooks).

  * members in alphabetical order, `__type` first where the declared type
    is `object` (attribute values, InputParameters values); none where the
    declared type already says it (OwningExtension, image entities);
  * every dictionary is an array of {"key": …, "value": …};
  * every '/' in a string is escaped as '\\/' ("http:\\/\\/schemas…",
    "\\/Date(1738054800000)\\/"); non-ASCII stays UTF-8;
  * dates are \\/Date(ms since epoch)\\/ (attribute values are UTC);
    OperationCreatedOn carries an offset, \\/Date(ms+0000)\\/, as in
    Microsoft's captured example;
  * choices, statecode and statuscode are OptionSetValue, lookups
    EntityReference (Name filled in images, null in Target), Yes/No
    booleans, versionnumber a number;
  * Target of Create/Update: the submitted columns, the primary key, then
    what the platform set (statecode/statuscode on create, createdon/
    createdby on create, modifiedon, modifiedby, …onbehalfby); Target of
    Delete: an EntityReference (the JSON form is not documented by
    Microsoft; chosen here);
  * images hold the registered attributes (all when none are listed)
    without nulls, with FormattedValues for choices and Yes/No; async
    steps also get the AsynchronousStepPrimaryName post image;
  * above 256 KB the body loses ParentContext, InputParameters,
    PreEntityImages and PostEntityImages (caller sets the header).
Pure functions: no I/O, no locks.
"""

import json

from emu_util import (ORGANIZATION_NAME, business_unit_id, epoch_of_iso,
                      organization_id)

CONTRACTS = "http://schemas.microsoft.com/xrm/2011/Contracts"
SIZE_LIMIT = 256 * 1024
TRIMMED = ("ParentContext", "InputParameters", "PreEntityImages",
           "PostEntityImages")
EMPTY_GUID = "00000000-0000-0000-0000-000000000000"


def dumps(doc):
    """JSON the way DataContractJsonSerializer writes it ('/' escaped;
    outside strings JSON has no '/', so replacing all of them is safe)."""
    return json.dumps(doc, ensure_ascii=False,
                      separators=(",", ":")).replace("/", "\\/")


def date(iso):
    return "/Date(%d)/" % (int(epoch_of_iso(iso)) * 1000)


def kv(key, value):
    return {"key": key, "value": value}


def entity_ref(logical, row_id, name=None, typed=True):
    out = {"__type": "EntityReference:" + CONTRACTS} if typed else {}
    out.update({"Id": row_id, "KeyAttributes": [], "LogicalName": logical,
                "Name": name, "RowVersion": None})
    return out


def option(value):
    return {"__type": "OptionSetValue:" + CONTRACTS, "Value": value}


def entity(logical, row_id, attributes, formatted=(), keys=(), typed=True):
    out = {"__type": "Entity:" + CONTRACTS} if typed else {}
    out.update({"Attributes": list(attributes), "EntityState": None,
                "FormattedValues": list(formatted), "Id": row_id,
                "KeyAttributes": list(keys), "LogicalName": logical,
                "RelatedEntities": [], "RowVersion": None})
    return out


class Encoder:
    """Turns rows of one schema into context pieces."""

    def __init__(self, schema, lookup_name):
        self.schema = schema
        self.lookup_name = lookup_name      # config id -> name (images)

    @staticmethod
    def attr_name(col):
        return col.lookup_attr if col.kind == "lookup" else col.name

    def value(self, col, v, in_image):
        if v is None:
            return None
        if col.kind in ("choice", "state", "statuscode"):
            return option(v)
        if col.kind == "datetime":
            return date(v)
        if col.kind == "lookup":
            target = self.schema.tables[col.target]
            name = self.lookup_name(v) if in_image else None
            return entity_ref(target.logical_name, v, name)
        return v

    def target(self, ev, user_ref, stage):
        """InputParameters' Target of a Create or Update event; before the
        main operation (stages 10, 20) only what the caller sent."""
        t, row = ev.table, ev.after
        cols, seen = [], set()

        def add(col):
            if col is not None and col.name not in seen:
                seen.add(col.name)
                cols.append(col)
        for col in ev.submitted:
            add(col)
            if col.kind in ("state", "statuscode"):
                add(t.by_role.get("active"))
                add(t.by_name.get("statuscode"))
        add(t.pk)
        attrs = [kv(self.attr_name(c), self.value(c, row[c.slot], False))
                 for c in cols]
        keys = [kv(k, self._key_value(t, k, v))
                for k, v in (ev.key_attrs or {}).items()]
        if stage < 40:
            return entity(t.logical_name, ev.row_id, attrs, (), keys)
        if ev.message == "Create":
            for col in (t.by_role.get("active"), t.by_name.get("statuscode")):
                if col is not None and col.name not in seen:
                    attrs.append(kv(col.name, self.value(col, row[col.slot],
                                                         False)))
            attrs.append(kv("createdon", date(
                row[t.by_role["created_on"].slot])))
            attrs.append(kv("createdby", user_ref))
        attrs.append(kv("modifiedon", date(
            row[t.by_role["modified_on"].slot])))
        attrs.append(kv("modifiedby", user_ref))
        if ev.message == "Create":
            attrs.append(kv("createdonbehalfby", None))
        attrs.append(kv("modifiedonbehalfby", None))
        return entity(t.logical_name, ev.row_id, attrs, (), keys)

    def _key_value(self, t, prop, v):
        col = t.by_name[prop]
        if col.kind == "lookup":
            return entity_ref(self.schema.tables[col.target].logical_name, v)
        return v

    def image(self, t, row, attributes=None):
        """An entity image (untyped): the listed attribute logical names,
        or every column; nulls left out."""
        attrs, formatted = [], []
        for col in t.columns:
            name = self.attr_name(col)
            if attributes is not None and name not in attributes:
                continue
            v = row[col.slot]
            if v is None:
                continue
            attrs.append(kv(name, self.value(col, v, True)))
            if col.labels is not None and v in col.labels:
                formatted.append(kv(name, col.labels[v]))
        return entity(t.logical_name, row[t.pk.slot], attrs, formatted,
                      typed=False)

    def primary_name_image(self, t, row):
        attrs = []
        name_col = t.by_role.get("name")
        if name_col is not None and row[name_col.slot] is not None:
            attrs.append(kv(name_col.name, row[name_col.slot]))
        attrs.append(kv(t.pk.name, row[t.pk.slot]))
        return entity(t.logical_name, row[t.pk.slot], attrs, typed=False)


def build(enc, ev, step, stage, mode, operation_id):
    """The RemoteExecutionContext of one delivery -> (body bytes,
    size_exceeded)."""
    t = ev.table
    user_ref = entity_ref("systemuser", ev.ctx.user_id)
    if ev.message == "Delete":
        target = entity_ref(t.logical_name, ev.row_id)
    else:
        target = enc.target(ev, user_ref, stage)
    doc = _context(ev, step, stage, mode, operation_id, [kv("Target", target)])
    doc["PreEntityImages"] = _images(enc, ev, step, "pre")
    doc["PostEntityImages"] = _images(enc, ev, step, "post")
    if mode == 1 and ev.after is not None:
        doc["PostEntityImages"].append(kv("AsynchronousStepPrimaryName",
                                          enc.primary_name_image(t,
                                                                 ev.after)))
    if ev.message == "Create" and stage == 40:
        doc["OutputParameters"] = [kv("id", ev.row_id)]
    if mode == 1:
        parent = _context(ev, step, 30, 0, operation_id, [kv("Target", (
            entity_ref(t.logical_name, ev.row_id) if ev.message == "Delete"
            else _submitted_only(enc, ev)))])
        parent["PreEntityImages"] = []
        parent["PostEntityImages"] = []
        doc["ParentContext"] = dict(sorted(parent.items()))
    doc = dict(sorted(doc.items()))
    body = dumps(doc).encode("utf-8")
    if len(body) <= SIZE_LIMIT:
        return body, False
    for key in TRIMMED:
        doc.pop(key, None)
    return dumps(doc).encode("utf-8"), True


def _context(ev, step, stage, mode, operation_id, inputs):
    t = ev.table
    return {
        "BusinessUnitId": business_unit_id(),
        "CorrelationId": ev.ctx.correlation_id,
        "Depth": ev.ctx.depth,
        "InitiatingUserId": ev.ctx.user_id,
        "InputParameters": inputs,
        "IsExecutingOffline": False,
        "IsInTransaction": mode == 0 and stage in (20, 30, 40),
        "IsOfflinePlayback": False,
        "IsolationMode": 1,
        "MessageName": ev.message,
        "Mode": mode,
        "OperationCreatedOn": "/Date(%d+0000)/" % int(ev.at * 1000),
        "OperationId": operation_id if mode == 1 else EMPTY_GUID,
        "OrganizationId": organization_id(),
        "OrganizationName": ORGANIZATION_NAME,
        "OutputParameters": [],
        "OwningExtension": entity_ref("sdkmessageprocessingstep", step.id,
                                      None, typed=False),
        "ParentContext": None,
        "PrimaryEntityId": ev.row_id,
        "PrimaryEntityName": t.logical_name,
        "RequestId": None if mode == 1 else ev.ctx.request_id,
        "SecondaryEntityName": "none",
        "SharedVariables": [],
        "Stage": stage,
        "UserId": ev.ctx.user_id,
    }


def _submitted_only(enc, ev):
    t, row = ev.table, ev.after
    attrs = [kv(enc.attr_name(c), enc.value(c, row[c.slot], False))
             for c in ev.submitted]
    attrs.append(kv(t.pk.name, ev.row_id))
    return entity(t.logical_name, ev.row_id, attrs)


def _images(enc, ev, step, which):
    row = ev.before if which == "pre" else ev.after
    if row is None:
        return []
    return [kv(img["alias"], enc.image(ev.table, row, img["attributes"]))
            for img in step.images if img["type"] in (which, "both")]
