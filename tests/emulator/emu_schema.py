"""Table schemas derived from the mapping file.

The mapping (mapping/whatsapp4dynamics.json and friends) names the two
tables and their columns by role. Each role has a fixed Dataverse type, so
the emulator knows every column's Edm type, its formatted-value labels and
which columns the platform sets. Rows are stored as Python lists; a column's
`slot` is its index in that list.

Roles (seed / control API keys) -> column kinds:

  configuration: id, name, double_opt_in (Yes/No), phone_number_id, waba_id,
                 default_region, double_opt_in_template,
                 opt_in_confirmation_template, opt_out_confirmation_template
                 (strings), active (statecode/statuscode)
  number:        id, name, configuration (lookup), phone, status (choice),
                 active, consent_at, paused_until (DateTimeOffset), source,
                 topics (strings)
  both:          created_on, modified_on, version (platform columns)
"""

import json

STATUS_LABELS = {
    "single_opt_in": "Single Opt-In",
    "double_opt_in": "Double Opt-In",
    "opted_out": "Opted-Out",
}
STATE_LABELS = {0: "Active", 1: "Inactive"}
STATUSCODE_LABELS = {1: "Active", 2: "Inactive"}
BOOL_LABELS = {True: "Yes", False: "No"}

# kind -> Edm type
EDM = {
    "pk": "Edm.Guid",
    "lookup": "Edm.Guid",
    "string": "Edm.String",
    "bool": "Edm.Boolean",
    "choice": "Edm.Int32",
    "state": "Edm.Int32",
    "statuscode": "Edm.Int32",
    "datetime": "Edm.DateTimeOffset",
    "version": "Edm.Int64",
}


class MappingError(Exception):
    pass


class Column:
    """One Web API property of a table."""

    __slots__ = ("name", "role", "kind", "edm", "slot", "labels",
                 "platform", "lookup_attr", "target", "navigation")

    def __init__(self, name, role, kind, slot, labels=None, platform=False):
        self.name = name            # property name as the Web API shows it
        self.role = role            # role key in seeds / control API
        self.kind = kind            # see EDM
        self.edm = EDM[kind]
        self.slot = slot            # index in the stored row list
        self.labels = labels        # value -> FormattedValue label
        self.platform = platform    # set by the platform, not by writes
        self.lookup_attr = None     # lookup: the attribute logical name
        self.target = None          # lookup: target table key
        self.navigation = None      # lookup: single-valued navigation


class Table:
    """Schema of one table (configuration or number)."""

    def __init__(self, key, section):
        self.key = key                              # "configuration"/"number"
        self.entity_set = _req(section, "entity_set", key)
        self.logical_name = _req(section, "logical_name", key)
        self.columns = []
        self.by_name = {}
        self.by_role = {}
        self.state_attr = None
        self.active_value = 0
        self.status_values = None       # role name -> choice int
        self.status_names = None        # choice int -> role name
        self.relationship = None        # configuration: collection nav
        self.alternate_key = None       # list of property names
        self.topics = None

    @property
    def type_name(self):
        return "Microsoft.Dynamics.CRM." + self.logical_name

    def add(self, name, role, kind, labels=None, platform=False):
        if name in self.by_name:
            raise MappingError("%s: column %r is mapped twice"
                               % (self.key, name))
        col = Column(name, role, kind, len(self.columns), labels, platform)
        self.columns.append(col)
        self.by_name[name] = col
        if role:
            self.by_role[role] = col
        return col

    @property
    def pk(self):
        return self.by_role["id"]

    @property
    def width(self):
        return len(self.columns)

    def col(self, role):
        return self.by_role.get(role)


def _req(section, key, where):
    value = section.get(key)
    if not isinstance(value, str) or not value:
        raise MappingError("mapping: %s.%s is required" % (where, key))
    return value


def _opt(section, key, where):
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise MappingError("mapping: %s.%s must be a string" % (where, key))
    return value


def _add_state(table, section):
    state = section.get("state")
    if state is None:
        return
    if not isinstance(state, dict) or "attribute" not in state:
        raise MappingError("mapping: %s.state needs attribute" % table.key)
    table.state_attr = state["attribute"]
    table.active_value = int(state.get("active_value", 0))
    table.add(table.state_attr, "active", "state", STATE_LABELS)
    if table.state_attr == "statecode":
        table.add("statuscode", None, "statuscode", STATUSCODE_LABELS)


def _add_platform(table, section):
    modified = section.get("modified_on") or "modifiedon"
    table.add("createdon", "created_on", "datetime", platform=True)
    if modified != "modifiedon":
        table.add("modifiedon", None, "datetime", platform=True)
    table.add(modified, "modified_on", "datetime", platform=True)
    table.add("versionnumber", "version", "version", platform=True)


def _config_table(section):
    t = Table("configuration", section)
    t.add(_req(section, "id", "configuration"), "id", "pk")
    t.add(_req(section, "name", "configuration"), "name", "string")
    t.add(_req(section, "double_opt_in", "configuration"), "double_opt_in",
          "bool", BOOL_LABELS)
    for role in ("phone_number_id", "waba_id", "default_region",
                 "double_opt_in_template", "opt_in_confirmation_template",
                 "opt_out_confirmation_template"):
        name = _opt(section, role, "configuration")
        if name:
            t.add(name, role, "string")
    _add_state(t, section)
    _add_platform(t, section)
    return t


def _number_table(section):
    t = Table("number", section)
    t.add(_req(section, "id", "number"), "id", "pk")
    t.add(_req(section, "name", "number"), "name", "string")
    lookup = _req(section, "configuration_lookup", "number")
    col = t.add("_%s_value" % lookup, "configuration", "lookup")
    col.lookup_attr = lookup
    col.target = "configuration"
    col.navigation = _req(section, "configuration_navigation", "number")
    t.add(_req(section, "phone", "number"), "phone", "string")
    values = section.get("status_values")
    if not isinstance(values, dict) or set(values) != set(STATUS_LABELS):
        raise MappingError("mapping: number.status_values needs exactly "
                           "single_opt_in, double_opt_in, opted_out")
    t.status_values = {k: int(v) for k, v in values.items()}
    t.status_names = {v: k for k, v in t.status_values.items()}
    if len(t.status_names) != 3:
        raise MappingError("mapping: number.status_values are not distinct")
    labels = {v: STATUS_LABELS[k] for k, v in t.status_values.items()}
    t.add(_req(section, "status", "number"), "status", "choice", labels)
    _add_state(t, section)
    for role, kind in (("consent_at", "datetime"), ("source", "string"),
                       ("topics", "string"), ("paused_until", "datetime")):
        name = _opt(section, role, "number")
        if name:
            t.add(name, role, kind)
    _add_platform(t, section)
    t.relationship = None
    key = section.get("alternate_key")
    if key is not None:
        t.alternate_key = [_key_property(t, k) for k in key]
    return t


def _key_property(table, attr):
    """Alternate key parts are attribute logical names; lookups become
    their `_x_value` property, as in the key segment syntax."""
    if attr in table.by_name:
        return attr
    prop = "_%s_value" % attr
    if prop in table.by_name:
        return prop
    raise MappingError("mapping: alternate_key names unknown column %r"
                       % attr)


class Schema:
    """Both tables plus the relationship between them."""

    def __init__(self, mapping):
        if not isinstance(mapping, dict):
            raise MappingError("mapping: top level must be an object")
        for key in ("configuration", "number"):
            if not isinstance(mapping.get(key), dict):
                raise MappingError("mapping: %s section missing" % key)
        self.config = _config_table(mapping["configuration"])
        self.number = _number_table(mapping["number"])
        self.config.relationship = _req(mapping["number"], "relationship",
                                        "number")
        self.tables = {"configuration": self.config, "number": self.number}
        self.by_set = {t.entity_set: t for t in self.tables.values()}
        if len(self.by_set) != 2:
            raise MappingError("mapping: both tables share an entity set")

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            try:
                return cls(json.load(f))
            except ValueError as e:
                raise MappingError("mapping %s: %s" % (path, e)) from e

    def table(self, name):
        """Table by key ("configuration"/"number"), its entity set or its
        logical name (a Table is returned as is); None when unknown."""
        if isinstance(name, Table):
            return name
        if name in self.tables:
            return self.tables[name]
        if name in self.by_set:
            return self.by_set[name]
        for t in self.tables.values():
            if t.logical_name == name:
                return t
        return None
