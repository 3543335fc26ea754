"""The event pipeline: every create, update and delete, whoever sends it
(Web API, $batch, control-API admin), runs here, inside a store
transaction (emu_store.Txn), with the registered webhook steps around it.

    pre-validation (10) and pre-operation (20) sync steps
        -> the store operation (staged in the transaction)
        -> post-operation (40) sync steps
    commit -> async (40) steps are queued (emu_webhooks)

A sync step that fails raises StoreError, which rolls the whole
transaction back: the caller's write fails (Learn: "Register a webhook").
Deleting a
configuration first clears the lookup on its numbers (custom 1:N default
*Referential, Remove Link*); those updates run through the pipeline too
(Depth 2), so steps on the number table see them.

The pipeline never builds HTTP answers; it returns staged rows and raises
StoreError. It knows webhooks only through the small `hooks` interface:
sync(event, stages) and after_commit(events).
"""

from emu_util import new_guid, user_id

PRE_STAGES = (10, 20)
ADMIN_USER = user_id("crm-admin")
POST_STAGES = (40,)


class OpContext:
    """Who runs an operation, and the request it belongs to."""

    def __init__(self, user_id, correlation_id=None, depth=1,
                 request_id=None):
        self.user_id = user_id
        self.correlation_id = correlation_id or new_guid()
        self.request_id = request_id or new_guid()
        self.depth = depth

    def child(self):
        """Context of an operation the platform runs on behalf of this
        one (a cascade): same correlation, one level deeper."""
        return OpContext(self.user_id, self.correlation_id, self.depth + 1,
                         self.request_id)

    @classmethod
    def for_client(cls, client_id):
        return cls(user_id(client_id))

    @classmethod
    def admin(cls):
        """A CRM admin working in the Dynamics UI (control API writes)."""
        return cls(ADMIN_USER)


class Event:
    """One operation, as webhook steps see it."""

    __slots__ = ("message", "table", "row_id", "before", "after",
                 "submitted", "key_attrs", "ctx", "at")

    def __init__(self, message, table, row_id, ctx, submitted=(),
                 key_attrs=None, at=None):
        self.message = message          # "Create" / "Update" / "Delete"
        self.table = table              # emu_schema.Table
        self.row_id = row_id
        self.before = None              # row before (Update/Delete)
        self.after = None               # row after (Create/Update)
        self.submitted = list(submitted)    # Columns the caller sent
        self.key_attrs = key_attrs      # {property: value} (alt-key upsert)
        self.ctx = ctx
        self.at = at                    # epoch of the operation


class Pipeline:
    def __init__(self, store, hooks=None):
        self.store = store
        self.hooks = hooks

    def run(self, fn):
        """fn(txn) inside a transaction. Joins the transaction open in
        this thread (a change set); otherwise commits it and queues the
        async steps of every operation it ran."""
        txn = self.store.current_txn()
        if txn is not None:
            return fn(txn)
        with self.store.transaction() as txn:
            result = fn(txn)
        if self.hooks is not None and txn.events:
            self.hooks.after_commit(txn.events)
        return result

    # -- operations (call inside run()) ---------------------------------------
    def create(self, txn, t, row_id, slots, ctx, submitted=None,
               key_attrs=None):
        """Create a row -> the staged row. StoreError when refused."""
        ev = self._event("Create", t, row_id, ctx, slots, submitted,
                         key_attrs)
        ev.after = self._provisional(self.store.new_row(t, row_id), t, slots)
        self._sync(ev, PRE_STAGES)
        ev.after = txn.insert(t, row_id, slots)
        self._sync(ev, POST_STAGES)
        txn.events.append(ev)
        return ev.after

    def update(self, txn, t, row_id, slots, ctx, submitted=None,
               key_attrs=None):
        """Update a row -> the staged row. StoreError when refused (404
        0x80040217 when it does not exist)."""
        ev = self._event("Update", t, row_id, ctx, slots, submitted,
                         key_attrs)
        current = txn.get(t, row_id)
        if current is not None:
            ev.before = list(current)
            ev.after = self._provisional(list(current), t, slots)
            self._sync(ev, PRE_STAGES)
        ev.before, ev.after = txn.modify(t, row_id, slots)
        self._sync(ev, POST_STAGES)
        txn.events.append(ev)
        return ev.after

    def delete(self, txn, t, row_id, ctx):
        """Delete a row (and unlink its dependants) -> the row as it was."""
        ev = self._event("Delete", t, row_id, ctx, {}, (), None)
        current = txn.get(t, row_id)
        if current is not None:
            ev.before = list(current)
            self._sync(ev, PRE_STAGES)
            self._remove_links(txn, t, row_id, ctx)
        ev.before = txn.remove(t, row_id)
        self._sync(ev, POST_STAGES)
        txn.events.append(ev)
        return ev.before

    # -- helpers --------------------------------------------------------------
    def _event(self, message, t, row_id, ctx, slots, submitted, key_attrs):
        if submitted is None:
            by_slot = {c.slot: c for c in t.columns}
            submitted = [by_slot[s] for s in slots]
        return Event(message, t, row_id, ctx, submitted, key_attrs,
                     self.store.clock.now())

    def _provisional(self, row, t, slots):
        """The row as pre-stage steps see it: what the caller sent applied,
        nothing stamped yet."""
        for slot, value in slots.items():
            row[slot] = value
        self.store.sync_status(t, row)
        return row

    def _sync(self, ev, stages):
        if self.hooks is not None:
            self.hooks.sync(ev, stages)

    def _remove_links(self, txn, t, row_id, ctx):
        """Custom 1:N relationships default to Referential, Remove Link:
        deleting a configuration clears the lookup on its numbers."""
        schema = self.store.schema
        if t is not schema.config:
            return
        num = schema.number
        lookup = num.by_role["configuration"]
        for nid in txn.rows_where(num, lookup.slot, row_id):
            self.update(txn, num, nid, {lookup.slot: None}, ctx.child())
