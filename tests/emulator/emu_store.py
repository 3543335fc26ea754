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
  (3) Every mutation goes through _write_row / _delete_row under `lock`
      and bumps `generation`, which invalidates query caches.

Writes from the control API (admin create/update/delete) and, in part 2,
from the Web API use the same methods, so change tracking sees them all.
"""

import bisect
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
        self.lock = threading.RLock()
        self.version = FIRST_VERSION
        self.generation = 0
        self.tables = {k: TableState(t) for k, t in schema.tables.items()}
        self._templates = {}

    # -- lookup ----------------------------------------------------------
    def state(self, table):
        return self.tables[table.key if hasattr(table, "key") else table]

    def get(self, table, row_id):
        return self.state(table).rows.get(row_id)

    # -- input conversion ------------------------------------------------
    def _convert(self, t, values, seed):
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
            out[col.slot] = self._value(t, col, value)
        return out

    def _value(self, t, col, value):
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
            target = self.tables[col.target].rows.get(value.lower())
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

    def _stamp(self, t, row, when=None, version=None):
        v = version if version is not None else self._next_version()
        row[t.by_role["version"].slot] = v
        iso = when or iso_utc(self.clock.now())
        row[t.by_role["modified_on"].slot] = iso
        if "modifiedon" in t.by_name:
            row[t.by_name["modifiedon"].slot] = iso
        return v

    def _log(self, st, row_id, v):
        st.log_v.append(v)
        st.log_id.append(row_id)
        self.generation += 1

    @staticmethod
    def _sync_status(t, row):
        sc = t.by_name.get("statuscode")
        if sc is not None and t.state_attr:
            state = row[t.by_role["active"].slot]
            row[sc.slot] = 1 if state == 0 else 2

    def _new_row(self, t, row_id):
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

    def create(self, table, values, row_id=None):
        """Create a row; returns a copy. Raises StoreError."""
        t = self.schema.table(table)
        with self.lock:
            st = self.tables[t.key]
            row_id = (row_id or values.get("id") or
                      values.get(t.pk.name) or new_guid())
            if not is_guid(row_id):
                raise StoreError("id must be a GUID")
            row_id = row_id.lower()
            if row_id in st.rows:
                raise StoreError("A record with matching key values already "
                                 "exists.", "0x80040237", 412)
            slots = self._convert(t, values, False)
            row = self._new_row(t, row_id)
            for slot, value in slots.items():
                row[slot] = value
            now = iso_utc(self.clock.now())
            row[t.by_role["created_on"].slot] = now
            self._sync_status(t, row)
            v = self._stamp(t, row, now)
            st.rows[row_id] = row
            bisect.insort(st.keys, guid_sort_key(row_id))
            st.tombstone.pop(row_id, None)
            self._log(st, row_id, v)
            return list(row)

    def update(self, table, row_id, values):
        """Update columns of a row; every update bumps the version, even
        when nothing changed (Dataverse counts it as an update)."""
        t = self.schema.table(table)
        with self.lock:
            st = self.tables[t.key]
            row = st.rows.get(str(row_id).lower())
            if row is None:
                raise StoreError("%s With Id = %s Does Not Exist"
                                 % (t.logical_name, row_id),
                                 "0x80040217", 404)
            slots = self._convert(t, values, False)
            for slot, value in slots.items():
                row[slot] = value
            self._sync_status(t, row)
            v = self._stamp(t, row)
            self._log(st, row[t.pk.slot], v)
            return list(row)

    def delete(self, table, row_id):
        t = self.schema.table(table)
        with self.lock:
            st = self.tables[t.key]
            row_id = str(row_id).lower()
            if row_id not in st.rows:
                raise StoreError("%s With Id = %s Does Not Exist"
                                 % (t.logical_name, row_id),
                                 "0x80040217", 404)
            if t.key == "configuration":
                self._remove_links(row_id)
            self._delete_row(st, row_id)

    def _delete_row(self, st, row_id):
        del st.rows[row_id]
        key = guid_sort_key(row_id)
        i = bisect.bisect_left(st.keys, key)
        del st.keys[i]
        v = self._next_version()
        st.tombstone[row_id] = v
        st.tomb_v.append(v)
        st.tomb_id.append(row_id)
        self.generation += 1

    def _delete_all(self, st):
        """Delete every row of a table (a replacing seed): one tombstone
        each, without the per-row bisect of _delete_row."""
        for row_id in sorted(st.rows, key=guid_sort_key):
            v = self._next_version()
            st.tombstone[row_id] = v
            st.tomb_v.append(v)
            st.tomb_id.append(row_id)
        st.rows.clear()
        st.keys = []
        self.generation += 1

    def _remove_links(self, config_id):
        """Custom 1:N relationships default to Referential, Remove Link:
        deleting a configuration clears the lookup on its numbers."""
        t = self.schema.number
        slot = t.by_role["configuration"].slot
        st = self.tables["number"]
        for row_id, row in st.rows.items():
            if row[slot] == config_id:
                row[slot] = None
                v = self._stamp(t, row)
                self._log(st, row_id, v)

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
        with self.lock:
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
        new_keys = []
        loaded = []
        for n, item in enumerate(items):
            if not isinstance(item, dict):
                raise StoreError("seed: %s[%d] is not an object" % (key, n))
            row = self._new_row(t, None)
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
            self._sync_status(t, row)
            v = row[vslot]
            if keep_versions and v is not None:
                self.version = max(self.version, v)
            else:
                v = self._next_version()
            row[vslot] = v
            st.rows[row_id] = row
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
        with self.lock:
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


# Roles a seed may carry even when the mapping does not map them: a seed
# made for one mapping loads under another (the value is dropped).
OPTIONAL_ROLES = ("phone_number_id", "waba_id", "default_region", "active",
                  "consent_at", "source", "topics", "paused_until",
                  "created_on", "modified_on", "version")

