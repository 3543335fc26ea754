"""In-memory state of the emulated Dataverse environment.

Design notes
------------
Rows are Python lists indexed by column slot (emu_schema). Each table keeps:

  rows        id -> row
  keys        sorted list of guid_sort_key(id): the primary-key order that
              keyset paging bisects into (SQL Server uniqueidentifier order)
  log_v/log_id  change log, appended on every create/update, version order
  tomb_v/tomb_id  delete log, appended on every delete, version order
  tombstone   id -> version of its latest delete

Invariants:
  (1) One global counter numbers every write (SQL rowversion): a row's
      `versionnumber` is the counter value of its last write; ETags are
      W/"<versionnumber>".
  (2) log_v and tomb_v are strictly increasing, so "changes in (V, W]" is
      two bisects plus a forward scan; an entry is current only while the
      row (or tombstone) still carries that version.
  (3) Every mutation of committed state happens under `lock` and bumps
      `generation`, which invalidates query caches.
  (4) Writes run in a transaction (Txn, under `wlock`: one writer at a
      time). A transaction stages copies of the rows it touches; readers
      never see them until commit() installs them under `lock`. A rolled
      back transaction leaves no trace except unused version numbers.
  (5) Versions are handed out when a row is staged, so a transaction that
      is open while a reader starts a tracked query holds versions the
      reader must not cover: visible_version() is the highest version below
      every open transaction's first one. Delta tokens and delta windows
      use it, so a change committed later is always reported later.

        Txn states:   open --commit()--> committed
                        `---rollback()--> discarded (any exception)

Writes from the control API (admin create/update/delete), from the Web
API and from $batch change sets all go through Txn (emu_pipeline runs the
webhook steps around each operation), so change tracking sees them all.
"""

import bisect
import contextlib
import threading
from array import array

from emu_util import (guid_from_sort_key, guid_sort_key, is_guid, iso_utc,
                      new_guid, parse_datetimeoffset)

SEED_FORMAT = "optsync-emulator-seed/1"
SNAPSHOT_FORMAT = "optsync-emulator-snapshot/1"
FIRST_VERSION = 1000000


class StoreError(Exception):
    """A write the platform refuses; `code` is a Dataverse hex code."""

    def __init__(self, message, code="0x80040203", status=400):
        super().__init__(message)
        self.code = code
        self.status = status


class TableState:
    def __init__(self, schema):
        self.schema = schema
        self.rows = {}
        self.keys = []
        self.log_v = array("q")
        self.log_id = []
        self.tomb_v = array("q")
        self.tomb_id = []
        self.tombstone = {}
        self.akey = {}              # alternate-key value -> set of ids
        self.tracking = True
        self.frags = {}             # serializer cache, see emu_webapi

    def clear(self):
        self.__init__(self.schema)

    def ordered_ids_after(self, key):
        """Ids in primary-key order, starting after sort key `key`
        (None: from the start). A generator: cheap to stop early."""
        keys = self.keys
        i = 0 if key is None else bisect.bisect_right(keys, key)
        n = len(keys)
        while i < n:
            yield guid_from_sort_key(keys[i])
            i += 1


class Store:
    def __init__(self, schema, clock):
        self.schema = schema
        self.clock = clock
        self.lock = threading.RLock()       # committed state
        self.wlock = threading.RLock()      # one writer (Txn) at a time
        self.version = FIRST_VERSION
        self.pending_floor = None           # first version of the open Txn
        self.generation = 0
        self.tables = {k: TableState(t) for k, t in schema.tables.items()}
        self._templates = {}
        self._local = threading.local()

    # -- lookup ----------------------------------------------------------
    def state(self, table):
        return self.tables[table.key if hasattr(table, "key") else table]

    def get(self, table, row_id):
        return self.state(table).rows.get(row_id)

    # -- input conversion ------------------------------------------------
    def convert_roles(self, t, values, txn=None):
        """Role- or attribute-keyed values (control API) -> {slot: value};
        lookups are checked against `txn`'s view when given."""
        return self._convert(t, values, False, txn)

    def _convert(self, t, values, seed, txn=None):
        """Role- or attribute-keyed values -> {slot: value}. Raises
        StoreError naming the offending key."""
        out = {}
        for key, value in values.items():
            col = t.by_role.get(key) or t.by_name.get(key)
            if col is None and t.by_role.get("configuration") is not None:
                lk = t.by_role["configuration"]
                if key == lk.lookup_attr:
                    col = lk
            if col is None:
                raise StoreError("%s has no column or role %r"
                                 % (t.logical_name, key), "0x0")
            if col.kind == "statuscode":
                continue            # derived from the state
            if col.platform and not (seed and col.role in (
                    "created_on", "modified_on", "version")):
                continue            # platform-set; silently ignored
            if col.kind == "pk":
                continue            # handled by create
            out[col.slot] = self._value(t, col, value, txn)
        return out

    def _value(self, t, col, value, txn=None):
        kind = col.kind
        if value is None:
            if kind in ("bool", "state"):
                raise StoreError("%s cannot be null" % col.name)
            return None
        if kind == "string":
            if not isinstance(value, str):
                raise StoreError("%s must be a string" % col.name)
            return value
        if kind == "bool":
            if not isinstance(value, bool):
                raise StoreError("%s must be true or false" % col.name)
            return value
        if kind == "choice":
            if isinstance(value, str) and value in t.status_values:
                return t.status_values[value]
            if isinstance(value, int) and not isinstance(value, bool) \
                    and value in t.status_names:
                return value
            raise StoreError(
                "A validation error occurred. The value %r of '%s' on "
                "record of type '%s' is outside the valid range. Accepted "
                "Values: %s" % (value, col.name, t.logical_name,
                                ",".join(str(v) for v in
                                         sorted(t.status_names))),
                "0x8004431a")
        if kind == "state":
            if isinstance(value, bool):
                return t.active_value if value else 1 - t.active_value
            if value in (0, 1) and not isinstance(value, bool):
                return value
            raise StoreError("%s must be true/false (role active) or 0/1"
                             % col.name)
        if kind == "lookup":
            if not is_guid(value):
                raise StoreError("%s must be a GUID" % col.name)
            tt = self.schema.tables[col.target]
            target = txn.get(tt, value.lower()) if txn is not None else \
                self.tables[col.target].rows.get(value.lower())
            if target is None:
                raise StoreError("%s With Id = %s Does Not Exist" % (
                    self.schema.tables[col.target].logical_name,
                    value.lower()), "0x80040217", 404)
            # share the target's id string: one object for many rows
            return target[self.schema.tables[col.target].pk.slot]
        if kind == "datetime":
            canon = parse_datetimeoffset(value) if isinstance(value, str) \
                else None
            if canon is None:
                raise StoreError("%s must be an ISO-8601 date-time with Z "
                                 "or an offset" % col.name)
            return canon
        if kind == "version":
            if not isinstance(value, int):
                raise StoreError("version must be an integer")
            return value
        raise StoreError("cannot set %s" % col.name)

    # -- writes ----------------------------------------------------------
    def _next_version(self):
        self.version += 1
        return self.version

    def visible_version(self):
        """The highest version every reader may cover (design note 5)."""
        with self.lock:
            if self.pending_floor is not None:
                return self.pending_floor - 1
            return self.version

    def current_txn(self):
        """The transaction open in this thread, or None."""
        return getattr(self._local, "txn", None)

    @contextlib.contextmanager
    def transaction(self):
        """Open a write transaction (or join the one open in this thread:
        the outermost one commits). Any exception rolls it back."""
        txn = self.current_txn()
        if txn is not None:
            yield txn
            return
        with self.wlock:
            txn = Txn(self)
            self._local.txn = txn
            try:
                yield txn
            except BaseException:
                txn.rollback()
                raise
            else:
                txn.commit()
            finally:
                self._local.txn = None

    def stamp(self, t, row, version, when=None):
        row[t.by_role["version"].slot] = version
        iso = when or iso_utc(self.clock.now())
        row[t.by_role["modified_on"].slot] = iso
        if "modifiedon" in t.by_name:
            row[t.by_name["modifiedon"].slot] = iso

    @staticmethod
    def sync_status(t, row):
        sc = t.by_name.get("statuscode")
        if sc is not None and t.state_attr:
            state = row[t.by_role["active"].slot]
            row[sc.slot] = 1 if state == 0 else 2

    def new_row(self, t, row_id):
        template = self._templates.get(t.key)
        if template is None:
            template = [None] * t.width
            if t.col("double_opt_in") is not None:
                template[t.col("double_opt_in").slot] = False
            if t.col("active") is not None:
                template[t.col("active").slot] = t.active_value
            self._templates[t.key] = template
        row = list(template)
        row[t.pk.slot] = row_id
        return row

    @staticmethod
    def key_of(t, row):
        """Alternate-key value of a row, normalized (strings compare
        without case, like SQL Server's collation); None when the table
        has no key or a part is null (such rows are not indexed)."""
        if not t.alternate_key:
            return None
        out = []
        for name in t.alternate_key:
            v = row[t.by_name[name].slot]
            if v is None:
                return None
            out.append(v.casefold() if isinstance(v, str) else v)
        return tuple(out)

    def find_by_key(self, t, row):
        """Committed row with the alternate-key value of `row` (a row-shaped
        list or a {slot: value} dict), or None."""
        if isinstance(row, dict):
            probe = [None] * t.width
            for slot, value in row.items():
                probe[slot] = value
            row = probe
        k = self.key_of(t, row)
        with self.lock:
            st = self.tables[t.key]
            for row_id in st.akey.get(k, ()):
                return st.rows[row_id]
        return None

    def _index(self, t, st, row, add):
        k = self.key_of(t, row)
        if k is None:
            return
        ids = st.akey.get(k)
        if add:
            if ids is None:
                ids = st.akey[k] = set()
            ids.add(row[t.pk.slot])
        elif ids is not None:
            ids.discard(row[t.pk.slot])
            if not ids:
                del st.akey[k]

    def _install(self, t, row_id, row, v):
        """Commit one staged row (call with `lock` held)."""
        st = self.tables[t.key]
        old = st.rows.get(row_id)
        if old is None:
            bisect.insort(st.keys, guid_sort_key(row_id))
        else:
            self._index(t, st, old, False)
        st.rows[row_id] = row
        self._index(t, st, row, True)
        st.tombstone.pop(row_id, None)
        st.log_v.append(v)
        st.log_id.append(row_id)

    def _uninstall(self, t, row_id, v):
        """Commit one delete (call with `lock` held)."""
        st = self.tables[t.key]
        row = st.rows.pop(row_id)
        self._index(t, st, row, False)
        i = bisect.bisect_left(st.keys, guid_sort_key(row_id))
        del st.keys[i]
        st.tombstone[row_id] = v
        st.tomb_v.append(v)
        st.tomb_id.append(row_id)

    def _delete_all(self, st):
        """Delete every row of a table (a replacing seed): one tombstone
        each, without a per-row bisect."""
        for row_id in sorted(st.rows, key=guid_sort_key):
            v = self._next_version()
            st.tombstone[row_id] = v
            st.tomb_v.append(v)
            st.tomb_id.append(row_id)
        st.rows.clear()
        st.keys = []
        st.akey = {}
        self.generation += 1

    def tick(self):
        """Advance the version counter without a write."""
        with self.lock:
            return self._next_version()

    def set_tracking(self, table, enabled):
        with self.lock:
            self.tables[self.schema.table(table).key].tracking = bool(enabled)
            self.generation += 1

    # -- change tracking reads -------------------------------------------
    def changes(self, table, since, upto, after, limit):
        """Current rows written in (since, upto], in version order, after
        version `after`; at most limit+1 rows (the extra one tells the
        caller there is more). Call with `lock` held."""
        st = self.tables[table.key]
        vslot = table.by_role["version"].slot
        i = bisect.bisect_right(st.log_v, max(since, after))
        out = []
        n = len(st.log_v)
        while i < n and len(out) <= limit:
            v = st.log_v[i]
            if v > upto:
                break
            row = st.rows.get(st.log_id[i])
            if row is not None and row[vslot] == v:
                out.append(row)
            i += 1
        return out

    def deletions(self, table, since, upto, after, limit):
        """(id, version) of rows deleted in (since, upto] and not created
        again since, version order, after `after`; at most limit+1."""
        st = self.tables[table.key]
        i = bisect.bisect_right(st.tomb_v, max(since, after))
        out = []
        n = len(st.tomb_v)
        while i < n and len(out) <= limit:
            v = st.tomb_v[i]
            if v > upto:
                break
            row_id = st.tomb_id[i]
            if st.tombstone.get(row_id) == v and row_id not in st.rows:
                out.append((row_id, v))
            i += 1
        return out

    # -- seed / dump / snapshot -------------------------------------------
    def load_seed(self, seed, replace=True, keep_versions=False):
        """Load a seed document (format in README.md). Rows get fresh
        versions in file order; a snapshot (keep_versions) keeps its own."""
        if not isinstance(seed, dict):
            raise StoreError("seed must be a JSON object")
        fmt = seed.get("format", SEED_FORMAT)
        if fmt not in (SEED_FORMAT, SNAPSHOT_FORMAT):
            raise StoreError("unknown seed format %r" % fmt)
        with self.wlock, self.lock:
            if replace:
                for st in self.tables.values():
                    self._delete_all(st)
            counts = {}
            for key, section in (("configuration", "configurations"),
                                 ("number", "numbers")):
                rows = seed.get(section, [])
                if not isinstance(rows, list):
                    raise StoreError("seed: %s must be a list" % section)
                counts[section] = self._load_rows(key, rows, keep_versions)
            self.generation += 1
            return counts

    def _seed_plan(self, t):
        """key -> Column (or None: a known role this mapping drops)."""
        plan = {}
        for col in t.columns:
            if col.kind in ("pk", "statuscode"):
                continue
            if col.role:
                plan[col.role] = col
            plan[col.name] = col
        lk = t.by_role.get("configuration")
        if lk is not None:
            plan[lk.lookup_attr] = lk
        for role in OPTIONAL_ROLES:
            plan.setdefault(role, None)
        return plan

    def _load_rows(self, key, items, keep_versions=False):
        t = self.schema.tables[key]
        st = self.tables[key]
        now = iso_utc(self.clock.now())
        vslot = t.by_role["version"].slot
        cslot = t.by_role["created_on"].slot
        mslot = t.by_role["modified_on"].slot
        mirror = t.by_name["modifiedon"].slot \
            if t.by_name["modifiedon"] is not t.by_role["modified_on"] \
            else None
        plan = self._seed_plan(t)
        value = self._value
        index = bool(t.alternate_key)
        new_keys = []
        loaded = []
        for n, item in enumerate(items):
            if not isinstance(item, dict):
                raise StoreError("seed: %s[%d] is not an object" % (key, n))
            row = self.new_row(t, None)
            row_id = None
            try:
                for k, v in item.items():
                    if k == "id":
                        row_id = v
                        continue
                    if k not in plan:
                        if k.startswith(("expected", "_", "note")):
                            continue
                        raise StoreError("unknown key %r" % k)
                    col = plan[k]
                    if col is not None:
                        row[col.slot] = value(t, col, v)
            except StoreError as e:
                raise StoreError("seed: %s[%d]: %s" % (key, n, e)) from None
            row_id = row_id or new_guid()
            if not is_guid(row_id):
                raise StoreError("seed: %s[%d]: id is not a GUID" % (key, n))
            row_id = row_id.lower()
            if row_id in st.rows:
                raise StoreError("seed: duplicate id %s" % row_id)
            row[t.pk.slot] = row_id
            row[cslot] = row[cslot] or row[mslot] or now
            row[mslot] = row[mslot] or row[cslot]
            if mirror is not None:
                row[mirror] = row[mslot]
            self.sync_status(t, row)
            v = row[vslot]
            if keep_versions and v is not None:
                self.version = max(self.version, v)
            else:
                v = self._next_version()
            row[vslot] = v
            st.rows[row_id] = row
            if index:
                self._index(t, st, row, True)
            new_keys.append(guid_sort_key(row_id))
            loaded.append((v, row_id))
        if st.keys:
            st.keys.extend(new_keys)
            st.keys.sort()
        else:
            new_keys.sort()
            st.keys = new_keys
        loaded.sort()
        for v, row_id in loaded:
            st.tombstone.pop(row_id, None)
            st.log_v.append(v)
            st.log_id.append(row_id)
        return len(loaded)

    def row_to_roles(self, t, row):
        """A stored row as the role-keyed dict seeds and dumps use."""
        out = {}
        for col in t.columns:
            if not col.role:
                continue
            value = row[col.slot]
            if col.kind == "choice" and value is not None:
                value = t.status_names.get(value, value)
            elif col.kind == "state":
                value = value == t.active_value
            out[col.role] = value
        return out

    def dump(self, with_tombstones=True):
        with self.lock:
            out = {"format": SNAPSHOT_FORMAT, "version": self.version}
            for key, section in (("configuration", "configurations"),
                                 ("number", "numbers")):
                t = self.schema.tables[key]
                st = self.tables[key]
                out[section] = [self.row_to_roles(t, st.rows[i])
                                for i in st.ordered_ids_after(None)]
                if with_tombstones:
                    out["deleted_" + section] = [
                        [i, v] for i, v in sorted(st.tombstone.items(),
                                                  key=lambda x: x[1])]
                out["tracking_" + section] = st.tracking
            return out

    def load_snapshot(self, snap):
        """Restore a dump: rows keep their versions; tombstones and the
        counter come back, so saved delta tokens keep working."""
        with self.wlock, self.lock:
            for st in self.tables.values():
                st.clear()
            self.version = FIRST_VERSION
            self.load_seed(snap, replace=False, keep_versions=True)
            for key, section in (("configuration", "configurations"),
                                 ("number", "numbers")):
                st = self.tables[key]
                st.tracking = bool(snap.get("tracking_" + section, True))
                for row_id, v in snap.get("deleted_" + section, []):
                    if row_id in st.rows:
                        continue
                    st.tombstone[row_id] = v
                    st.tomb_v.append(v)
                    st.tomb_id.append(row_id)
            self.version = max(self.version, int(snap.get("version", 0)))
            self.generation += 1


class Txn:
    """One write transaction (design notes 4 and 5). Staged rows are
    private copies; get()/rows_where()/key_ids() show this transaction's
    view, commit() installs everything under the store lock at once."""

    def __init__(self, store):
        self.store = store
        self.staged = {}        # (table key, id) -> row, or None: deleted
        self.replay = []        # (table, id, version, row or None), in order
        self.events = []        # emu_pipeline's record of the operations
        self.first_version = None

    # -- reads through the transaction --------------------------------------
    def get(self, t, row_id):
        """The row as this transaction sees it (do not modify it)."""
        hit = self.staged.get((t.key, row_id), False)
        if hit is not False:
            return hit
        with self.store.lock:
            return self.store.tables[t.key].rows.get(row_id)

    def rows_where(self, t, slot, value):
        """Ids of rows whose column `slot` equals `value` (a full scan)."""
        with self.store.lock:
            ids = {rid for rid, row in self.store.tables[t.key].rows.items()
                   if row[slot] == value}
        for (tk, rid), row in self.staged.items():
            if tk == t.key:
                ids.discard(rid)
                if row is not None and row[slot] == value:
                    ids.add(rid)
        return sorted(ids, key=guid_sort_key)

    def key_ids(self, t, k):
        """Ids whose alternate-key value is `k` in this transaction."""
        with self.store.lock:
            ids = set(self.store.tables[t.key].akey.get(k, ()))
        for (tk, rid), row in self.staged.items():
            if tk == t.key:
                ids.discard(rid)
                if row is not None and Store.key_of(t, row) == k:
                    ids.add(rid)
        return ids

    def find_by_key(self, t, k):
        ids = self.key_ids(t, k)
        return self.get(t, min(ids)) if ids else None

    # -- staging --------------------------------------------------------------
    def _version(self):
        s = self.store
        with s.lock:
            v = s._next_version()
            if self.first_version is None:
                self.first_version = v
                s.pending_floor = v
        return v

    def _check_key(self, t, row):
        k = Store.key_of(t, row)
        if k is None:
            return
        if self.key_ids(t, k) - {row[t.pk.slot]}:
            cols = ",".join(t.alternate_key)
            raise StoreError(
                "Entity Key %s_key violated. A record with the same value "
                "for %s already exists. A duplicate record cannot be "
                "created. Try again with a different value."
                % (t.logical_name, cols), "0x80060892", 412)

    def _stage(self, t, row_id, row, v):
        self.staged[(t.key, row_id)] = row
        self.replay.append((t, row_id, v, row))

    def insert(self, t, row_id, slots):
        """Create a row with {slot: value}; returns the staged row."""
        if self.get(t, row_id) is not None:
            raise StoreError("A record with matching key values already "
                             "exists.", "0x80040237", 412)
        s = self.store
        row = s.new_row(t, row_id)
        for slot, value in slots.items():
            row[slot] = value
        s.sync_status(t, row)
        self._check_key(t, row)
        now = iso_utc(s.clock.now())
        row[t.by_role["created_on"].slot] = now
        s.stamp(t, row, self._version(), now)
        self._stage(t, row_id, row, row[t.by_role["version"].slot])
        return row

    def modify(self, t, row_id, slots):
        """Update columns of a row -> (copy before, staged row after).
        Every update bumps the version, even when nothing changed
        (Dataverse counts it as an update)."""
        old = self.get(t, row_id)
        if old is None:
            raise StoreError("%s With Id = %s Does Not Exist"
                             % (t.logical_name, row_id), "0x80040217", 404)
        before = list(old)
        row = list(old)
        for slot, value in slots.items():
            row[slot] = value
        self.store.sync_status(t, row)
        self._check_key(t, row)
        v = self._version()
        self.store.stamp(t, row, v)
        self._stage(t, row_id, row, v)
        return before, row

    def remove(self, t, row_id):
        """Delete a row -> a copy of it as it was."""
        old = self.get(t, row_id)
        if old is None:
            raise StoreError("%s With Id = %s Does Not Exist"
                             % (t.logical_name, row_id), "0x80040217", 404)
        v = self._version()
        self.staged[(t.key, row_id)] = None
        self.replay.append((t, row_id, v, None))
        return list(old)

    # -- end ------------------------------------------------------------------
    def commit(self):
        s = self.store
        with s.lock:
            for t, row_id, v, row in self.replay:
                if row is None:
                    s._uninstall(t, row_id, v)
                else:
                    s._install(t, row_id, row, v)
            if self.replay:
                s.generation += 1
            s.pending_floor = None

    def rollback(self):
        with self.store.lock:
            self.store.pending_floor = None
        self.staged.clear()
        self.replay = []


# Roles a seed may carry even when the mapping does not map them: a seed
# made for one mapping loads under another (the value is dropped).
OPTIONAL_ROLES = ("phone_number_id", "waba_id", "default_region",
                  "double_opt_in_template", "opt_in_confirmation_template",
                  "opt_out_confirmation_template", "active",
                  "consent_at", "source", "topics", "paused_until",
                  "created_on", "modified_on", "version")

