/*
 * cache_schema — the migrations, oldest first.  Migration N takes a file
 * from user_version N-1 to N.  Never edit a migration that has shipped:
 * add a new one.
 *
 * Times are INTEGER milliseconds since the Unix epoch (UTC).  Statuses are
 * enum consent_status (0 none, 1 single_opt_in, 2 double_opt_in,
 * 3 opted_out).
 */
#include <stddef.h>

#include "cache_p.h"

static const char *const migration_1[] = {
    /* One row per Dataverse Configuration. */
    "CREATE TABLE configurations ("
    "  id              TEXT PRIMARY KEY," /* Dataverse GUID, lower case */
    "  name            TEXT NOT NULL DEFAULT '',"
    "  double_opt_in   INTEGER NOT NULL DEFAULT 0,"
    "  phone_number_id TEXT,"
    "  waba_id         TEXT,"
    "  default_region  TEXT,"
    "  active          INTEGER NOT NULL DEFAULT 1,"
    "  modified_on     INTEGER,"
    "  version         INTEGER,"
    "  sweep_mark      INTEGER NOT NULL DEFAULT 0" /* last full sync seen */
    ") STRICT;",
    "CREATE INDEX configurations_by_name ON configurations(name);",
    "CREATE INDEX configurations_by_phone_number_id"
    "  ON configurations(phone_number_id);",

    /* Opt-In / Opt-Out Number rows.  Keyed locally so a number consented
     * over WhatsApp exists before Dataverse has given it an id. */
    "CREATE TABLE numbers ("
    "  local_id          INTEGER PRIMARY KEY,"
    "  dv_id             TEXT," /* NULL until created in Dataverse */
    "  configuration_id  TEXT NOT NULL,"
    "  raw_phone         TEXT," /* as typed in Dynamics */
    "  e164              TEXT," /* NULL: unparseable, kept out of the gate */
    "  phone_error       TEXT,"
    /* status: the effective local status; dv_status: the last status
     * read from Dataverse (NULL for a row not yet written there).  They
     * differ while a local change waits for its write-back. */
    "  status            INTEGER NOT NULL DEFAULT 0"
    "                    CHECK (status BETWEEN 0 AND 3),"
    "  dv_status         INTEGER CHECK (dv_status BETWEEN 0 AND 3),"
    "  active            INTEGER NOT NULL DEFAULT 1,"
    "  status_at         INTEGER NOT NULL DEFAULT 0," /* event time */
    "  source            TEXT," /* who set the status: dataverse, ... */
    "  topics            TEXT,"
    "  paused_until      INTEGER,"
    "  modified_on       INTEGER,"
    "  version           INTEGER,"
    "  pending_writeback INTEGER NOT NULL DEFAULT 0,"
    "  sweep_mark        INTEGER NOT NULL DEFAULT 0"
    ") STRICT;",
    /* Not unique: one number may be typed into several rows. */
    "CREATE INDEX numbers_by_phone ON numbers(configuration_id, e164);",
    /* A named index rather than a UNIQUE constraint, so a first load can
     * drop both indexes and build them once at the end (sync.c). */
    "CREATE UNIQUE INDEX numbers_by_dv_id ON numbers(dv_id);",

    /* Where each entity's sync stands. */
    "CREATE TABLE sync_state ("
    "  entity      TEXT PRIMARY KEY"
    "              CHECK (entity IN ('configuration', 'number')),"
    "  delta_link  TEXT," /* next delta starts here; NULL: full sync due */
    "  resume_link TEXT," /* nextLink of an interrupted full sync */
    "  sweep_mark  INTEGER NOT NULL DEFAULT 0,"
    "  baseline    INTEGER NOT NULL DEFAULT 0," /* full read into empty */
    "  pages       INTEGER NOT NULL DEFAULT 0,"
    "  rows        INTEGER NOT NULL DEFAULT 0,"
    "  updated_at  INTEGER"
    ") STRICT;",
    "INSERT INTO sync_state(entity) VALUES ('configuration'), ('number');",

    /* One row per sync run; the gate's staleness reads the newest ok one. */
    "CREATE TABLE sync_runs ("
    "  id          INTEGER PRIMARY KEY,"
    "  kind        TEXT NOT NULL CHECK (kind IN ('full', 'delta')),"
    "  started_at  INTEGER NOT NULL,"
    "  finished_at INTEGER,"
    "  ok          INTEGER NOT NULL DEFAULT 0,"
    "  rows        INTEGER NOT NULL DEFAULT 0,"
    "  error       TEXT"
    ") STRICT;",
    "CREATE INDEX sync_runs_ok ON sync_runs(ok, started_at);",

    /* Append-only consent ledger, hash-chained (see ledger.h). */
    "CREATE TABLE ledger ("
    "  seq              INTEGER PRIMARY KEY," /* 1, 2, 3, ... no gaps */
    "  at               INTEGER NOT NULL,"    /* event time */
    "  recorded_at      INTEGER NOT NULL,"
    "  configuration_id TEXT NOT NULL,"
    "  phone            TEXT NOT NULL,"
    "  from_status      INTEGER NOT NULL,"
    "  to_status        INTEGER NOT NULL,"
    "  source           TEXT NOT NULL,"
    "  evidence         TEXT NOT NULL," /* canonical JSON */
    "  hash             TEXT NOT NULL"  /* hex SHA-256 */
    ") STRICT;",
    "CREATE INDEX ledger_by_phone ON ledger(configuration_id, phone);",
    "CREATE TABLE ledger_head ("
    "  id        INTEGER PRIMARY KEY CHECK (id = 1),"
    "  count     INTEGER NOT NULL,"
    "  last_hash TEXT"
    ") STRICT;",
    "INSERT INTO ledger_head(id, count) VALUES (1, 0);",

    /* Write-backs to Dataverse; the outbox worker is their only reader. */
    "CREATE TABLE outbox ("
    "  id               INTEGER PRIMARY KEY,"
    "  number_local_id  INTEGER NOT NULL,"
    "  configuration_id TEXT NOT NULL,"
    "  e164             TEXT NOT NULL,"
    "  status           INTEGER NOT NULL,"
    "  event_at         INTEGER NOT NULL,"
    "  ledger_seq       INTEGER,"
    "  reason           TEXT NOT NULL," /* local_change | corrective */
    "  state            TEXT NOT NULL DEFAULT 'pending'"
    "                   CHECK (state IN ('pending', 'inflight', 'done',"
    "                                    'dead', 'superseded')),"
    "  attempts         INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_at  INTEGER NOT NULL DEFAULT 0,"
    "  last_error       TEXT,"
    "  created_at       INTEGER NOT NULL,"
    "  updated_at       INTEGER NOT NULL"
    ") STRICT;",
    "CREATE INDEX outbox_due ON outbox(state, next_attempt_at);",
    "CREATE INDEX outbox_by_number ON outbox(number_local_id, state);",

    /* Inbound ids already applied (wamid, Dataverse request id): dedupe. */
    "CREATE TABLE inbound_seen ("
    "  source  TEXT NOT NULL,"
    "  id      TEXT NOT NULL,"
    "  seen_at INTEGER NOT NULL,"
    "  PRIMARY KEY (source, id)"
    ") STRICT, WITHOUT ROWID;",

    /* Events that cannot be matched yet; replayed after every sync. */
    "CREATE TABLE quarantine ("
    "  id              INTEGER PRIMARY KEY,"
    "  received_at     INTEGER NOT NULL,"
    "  source          TEXT NOT NULL,"
    "  reason          TEXT NOT NULL,"
    "  hint            TEXT,"          /* phone_number_id, username, ... */
    "  payload         TEXT NOT NULL," /* the event as JSON, to replay */
    "  attempts        INTEGER NOT NULL DEFAULT 0,"
    "  last_attempt_at INTEGER,"
    "  resolved_at     INTEGER"
    ") STRICT;",
    "CREATE INDEX quarantine_open ON quarantine(resolved_at);",

    /* Messages that contain an opt-out word but matched no keyword:
     * a person decides (optsync review). */
    "CREATE TABLE near_misses ("
    "  id               INTEGER PRIMARY KEY,"
    "  at               INTEGER NOT NULL,"
    "  configuration_id TEXT,"
    "  phone            TEXT,"
    "  text             TEXT NOT NULL,"
    "  message_id       TEXT,"
    "  reviewed_at      INTEGER"
    ") STRICT;",
    "CREATE INDEX near_misses_open ON near_misses(reviewed_at, at);",

    /* Marketing sends recorded through the gate API (frequency caps). */
    "CREATE TABLE sends ("
    "  id               INTEGER PRIMARY KEY,"
    "  configuration_id TEXT NOT NULL,"
    "  e164             TEXT NOT NULL,"
    "  topic            TEXT,"
    "  at               INTEGER NOT NULL"
    ") STRICT;",
    "CREATE INDEX sends_by_number ON sends(configuration_id, e164, at);",
    NULL,
};

/*
 * Migration 2: the send-gate's change journal (gate.h note 3).  The gate
 * keeps an in-memory index and must see every commit of every process;
 * these triggers tell it which numbers changed, whoever wrote them.
 *  - Inserts are not journaled: the gate finds new rows by local_id, so
 *    the sync's bulk inserts pay nothing.  A deletion records the highest
 *    local_id left (rowid_floor), below which a reused rowid may appear.
 *  - Updates are journaled only when a column the gate reads changed
 *    (UPDATE OF keeps sweep-mark touches out of the trigger entirely),
 *    as the row's local_id alone: the gate reads the row's key itself,
 *    and a small row is cheap to append and to prune.
 *  - kind: 0 number row local_id changed; 1 a number row was deleted
 *    (its key and rowid_floor); 2 a Configuration changed (its id);
 *    3 a number row left this key (configuration_id / e164 changed).
 *  - The newest 64 Ki entries are kept: every 1024th entry drops the
 *    entries older than that (a gate that fell further behind rebuilds).
 *    The prune reads last_insert_rowid(), which inside a trigger is the
 *    trigger's own last insert: the first INSERT of each trigger below
 *    always inserts, so it is a journal seq.
 */
#define GATE_JOURNAL_PRUNE                                                     \
    "DELETE FROM gate_journal WHERE seq <= CASE WHEN "                         \
    "last_insert_rowid() % 1024 = 0 THEN last_insert_rowid() - 65536 "         \
    "ELSE 0 END;"

static const char *const migration_2[] = {
    "CREATE TABLE gate_journal ("
    "  seq              INTEGER PRIMARY KEY,"
    "  kind             INTEGER NOT NULL,"
    "  local_id         INTEGER,"
    "  configuration_id TEXT,"
    "  e164             TEXT,"
    "  rowid_floor      INTEGER"
    ") STRICT;",

    "CREATE TRIGGER gate_journal_number_update"
    "  AFTER UPDATE OF configuration_id, e164, status, active, topics,"
    "  paused_until ON numbers"
    "  WHEN (OLD.active = 1 OR NEW.active = 1) AND ("
    "    OLD.configuration_id IS NOT NEW.configuration_id OR"
    "    OLD.e164 IS NOT NEW.e164 OR OLD.status IS NOT NEW.status OR"
    "    OLD.active IS NOT NEW.active OR OLD.topics IS NOT NEW.topics OR"
    "    OLD.paused_until IS NOT NEW.paused_until)"
    "BEGIN"
    "  INSERT INTO gate_journal(kind, local_id) VALUES (0, NEW.local_id);"
    "  INSERT INTO gate_journal(kind, configuration_id, e164)"
    "    SELECT 3, OLD.configuration_id, OLD.e164"
    "    WHERE OLD.e164 IS NOT NULL AND"
    "    (OLD.configuration_id IS NOT NEW.configuration_id OR"
    "     OLD.e164 IS NOT NEW.e164);"
    "  " GATE_JOURNAL_PRUNE "END;",

    "CREATE TRIGGER gate_journal_number_delete AFTER DELETE ON numbers "
    "BEGIN"
    "  INSERT INTO gate_journal(kind, configuration_id, e164, rowid_floor)"
    "    VALUES (1, OLD.configuration_id, OLD.e164,"
    "            (SELECT coalesce(max(local_id), 0) FROM numbers));"
    "  " GATE_JOURNAL_PRUNE "END;",

    "CREATE TRIGGER gate_journal_configuration_insert"
    "  AFTER INSERT ON configurations "
    "BEGIN"
    "  INSERT INTO gate_journal(kind, configuration_id) VALUES (2, NEW.id);"
    "END;",

    "CREATE TRIGGER gate_journal_configuration_update"
    "  AFTER UPDATE OF id, name, double_opt_in, default_region, active"
    "  ON configurations"
    "  WHEN OLD.id IS NOT NEW.id OR OLD.name IS NOT NEW.name OR"
    "    OLD.double_opt_in IS NOT NEW.double_opt_in OR"
    "    OLD.default_region IS NOT NEW.default_region OR"
    "    OLD.active IS NOT NEW.active "
    "BEGIN"
    "  INSERT INTO gate_journal(kind, configuration_id) VALUES (2, NEW.id);"
    "END;",

    "CREATE TRIGGER gate_journal_configuration_delete"
    "  AFTER DELETE ON configurations "
    "BEGIN"
    "  INSERT INTO gate_journal(kind, configuration_id) VALUES (2, OLD.id);"
    "END;",
    NULL,
};

/*
 * Migration 3: the Dataverse webhook (dv_webhook.h notes 4, 5 and 7).
 *  - dv_refetch: rows a webhook only hinted at (a trimmed or partial
 *    body, a synchronous step, a number whose Configuration is not
 *    cached), read again by id later; one row per (entity, dv_id).  A new
 *    hint bumps `generation`; a run dequeues only the generation it read.
 *    Failures back a row off (attempts, next_attempt_at, last_error).
 *  - dv_webhook_tombstones: rows a webhook Delete removed, so a late
 *    Create/Update older than the delete is not mirrored back in.
 *  Dedupe keys go to inbound_seen (source 'dataverse_webhook').
 */
static const char *const migration_3[] = {
    "CREATE TABLE dv_refetch ("
    "  entity          TEXT NOT NULL"
    "                  CHECK (entity IN ('configuration', 'number')),"
    "  dv_id           TEXT NOT NULL,"
    "  reason          TEXT NOT NULL,"
    "  queued_at       INTEGER NOT NULL,"
    "  generation      INTEGER NOT NULL DEFAULT 1,"
    "  attempts        INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_at INTEGER NOT NULL,"
    "  last_error      TEXT,"
    "  PRIMARY KEY (entity, dv_id)"
    ") STRICT, WITHOUT ROWID;",
    "CREATE INDEX dv_refetch_due ON dv_refetch(next_attempt_at);",
    "CREATE TABLE dv_webhook_tombstones ("
    "  entity     TEXT NOT NULL"
    "             CHECK (entity IN ('configuration', 'number')),"
    "  dv_id      TEXT NOT NULL,"
    "  deleted_at INTEGER NOT NULL,"
    "  PRIMARY KEY (entity, dv_id)"
    ") STRICT, WITHOUT ROWID;",
    NULL,
};

/*
 * Migration 4: what the WhatsApp webhook learns about the people who
 * write (connector/webhooks/whatsapp.h, connector/cache/wa_users.h).
 *  - wa_identities: a business-scoped user id (BSUID, Meta's usernames)
 *    beside the phone number it was seen with, so a later event that
 *    carries only the BSUID can be keyed (and a quarantined one replayed).
 *  - wa_last_inbound: per (configuration, number) the event time of the
 *    newest message the number sent: the 24-hour customer-service window.
 *  - inbound_seen by time: the de-duplication keys are pruned by age.
 */
static const char *const migration_4[] = {
    "CREATE TABLE wa_identities ("
    "  user_id          TEXT NOT NULL," /* BSUID, e.g. US.1349120865... */
    "  e164             TEXT NOT NULL,"
    "  waba_id          TEXT," /* the WABA it was seen under; NULL: none */
    "  configuration_id TEXT," /* NULL: not known when seen */
    "  first_seen       INTEGER NOT NULL,"
    "  last_seen        INTEGER NOT NULL,"
    "  PRIMARY KEY (user_id, e164)"
    ") STRICT, WITHOUT ROWID;",
    "CREATE INDEX wa_identities_by_phone ON wa_identities(e164);",
    "CREATE TABLE wa_last_inbound ("
    "  configuration_id TEXT NOT NULL,"
    "  e164             TEXT NOT NULL,"
    "  last_at          INTEGER NOT NULL," /* event time of the message */
    "  message_id       TEXT,"
    "  PRIMARY KEY (configuration_id, e164)"
    ") STRICT, WITHOUT ROWID;",
    "CREATE INDEX inbound_seen_by_time ON inbound_seen(source, seen_at);",
    NULL,
};

/*
 * Migration 5: the outbox worker (outbox.h).
 *  - kind: which sender handles a row ('dataverse' now; WhatsApp consent
 *    messages later).  No CHECK, so a new kind needs no table rebuild;
 *    the worker ignores kinds it does not know.
 *  - claimed_at: when the row last went inflight (outbox list).
 *  - sent_mask: bit s set when a write carrying status s went out and
 *    its outcome is not known yet (in flight, or recovered after a
 *    crash): a Dataverse row showing s is then our own write coming
 *    back, not an admin's expression (echo suppression).
 *  - dv_id: the Dataverse row the write created or updated.
 *  - At most one pending row per number row and kind (consent.h note 6),
 *    enforced; older duplicates, if any, are superseded first.
 */
static const char *const migration_5[] = {
    "ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'dataverse';",
    "ALTER TABLE outbox ADD COLUMN claimed_at INTEGER;",
    "ALTER TABLE outbox ADD COLUMN sent_mask INTEGER NOT NULL DEFAULT 0;",
    "ALTER TABLE outbox ADD COLUMN dv_id TEXT;",
    "UPDATE outbox SET state = 'superseded' WHERE state = 'pending' AND "
    "id NOT IN (SELECT max(id) FROM outbox WHERE state = 'pending' "
    "GROUP BY number_local_id, kind);",
    "CREATE UNIQUE INDEX outbox_one_pending ON outbox(number_local_id, kind)"
    "  WHERE state = 'pending';",
    "DROP INDEX outbox_due;",
    "CREATE INDEX outbox_due ON outbox(kind, state, next_attempt_at);",
    NULL,
};

/*
 * Migration 6: phone keys under the possible-number rule (phone.h note 1).
 *  - phone_warning: why libphonenumber's metadata calls the row's key no
 *    valid number (a typo, or a range newer than the metadata); NULL when
 *    it is valid or there is no key.  The gate ignores it.
 *  - phone_checked: 1 once the row's phone was parsed under the current
 *    rule.  Every row stored before reads 0 (the column default: no
 *    table rewrite), so the next sync, delta or full, parses raw_phone
 *    again (consent_phones_recheck): rows the old rule left unparseable
 *    although they are possible numbers get their key, key-form rows it
 *    trusted unchecked get their length check and their warning.  Rows
 *    written by code that parses no phones keep 0 until the next sync.
 *  - Partial indexes: the rows still to check, the unparseable rows and
 *    the rows with a warning (status, the sync's count), so none of
 *    these reads the whole table, and a first load pays nearly nothing.
 */
static const char *const migration_6[] = {
    "ALTER TABLE numbers ADD COLUMN phone_warning TEXT;",
    "ALTER TABLE numbers ADD COLUMN phone_checked INTEGER NOT NULL "
    "DEFAULT 0;",
    "CREATE INDEX numbers_phone_unchecked ON numbers(local_id) "
    "WHERE phone_checked = 0;",
    "CREATE INDEX numbers_unparseable ON numbers(configuration_id, dv_id) "
    "WHERE e164 IS NULL;",
    "CREATE INDEX numbers_phone_warning ON numbers(configuration_id, dv_id) "
    "WHERE phone_warning IS NOT NULL;",
    NULL,
};

/*
 * Migration 7: consent messages sent through WhatsApp (outbox kind
 * "whatsapp", outbox_whatsapp.c).
 *  - configurations.*_template: a Configuration's own consent templates
 *    (optional mapping keys; WhatsApp4Dynamics keeps them in Dynamics),
 *    overriding [messages].
 *  - message: which one (double_opt_in_request, opt_in_confirmation,
 *    opt_out_confirmation); NULL on Dataverse rows.
 *  - wamid, delivery, delivery_at: Meta's id of the sent message and the
 *    last status webhook for it (sent, delivered, read, failed).
 *  - outbox_messages: "never twice within double_opt_in_window" looks up
 *    the number's earlier requests.
 *  - wa_status_early: statuses Meta sent before our commit of the wamid
 *    they are about (the answer and the webhook race), kept a day.
 *  - sender_state: one row; paused_reason is set while Meta refuses the
 *    token (190 / 401) and every send waits, so `status` and /metrics
 *    can say why from any process.
 */
static const char *const migration_7[] = {
    "ALTER TABLE outbox ADD COLUMN message TEXT;",
    /* A Configuration's own templates (mapping keys), NAME:LANG. */
    "ALTER TABLE configurations ADD COLUMN double_opt_in_template TEXT;",
    "ALTER TABLE configurations ADD COLUMN opt_in_confirmation_template "
    "TEXT;",
    "ALTER TABLE configurations ADD COLUMN opt_out_confirmation_template "
    "TEXT;",
    "ALTER TABLE outbox ADD COLUMN wamid TEXT;",
    "ALTER TABLE outbox ADD COLUMN delivery TEXT;",
    "ALTER TABLE outbox ADD COLUMN delivery_at INTEGER;",
    "CREATE INDEX outbox_by_wamid ON outbox(wamid) WHERE wamid IS NOT NULL;",
    "CREATE INDEX outbox_messages ON outbox(configuration_id, e164, message)"
    "  WHERE message IS NOT NULL;",
    "CREATE TABLE sender_state ("
    "  id            INTEGER PRIMARY KEY CHECK (id = 1),"
    "  paused_reason TEXT," /* NULL: sending */
    "  paused_since  INTEGER,"
    "  updated_at    INTEGER"
    ") STRICT;",
    "INSERT INTO sender_state(id) VALUES (1);",
    /* Statuses that came before the send's commit (wa_messages.h). */
    "CREATE TABLE wa_status_early ("
    "  wamid      TEXT PRIMARY KEY,"
    "  delivery   TEXT NOT NULL,"
    "  at         INTEGER NOT NULL,"
    "  error_code INTEGER NOT NULL DEFAULT 0,"
    "  seen_at    INTEGER NOT NULL"
    ") STRICT, WITHOUT ROWID;",
    "CREATE INDEX wa_status_early_by_time ON wa_status_early(seen_at);",
    NULL,
};

/*
 * Migration 8: retention (retention.h).  The finished outbox rows by the
 * time they finished, so each pruning batch reads only what it deletes
 * and the table is not scanned while the write lock is held.
 */
static const char *const migration_8[] = {
    "CREATE INDEX outbox_finished ON outbox(updated_at)"
    "  WHERE state IN ('done', 'superseded');",
    NULL,
};

const char *const *const cache__migrations[] = {
    migration_1, migration_2, migration_3, migration_4,
    migration_5, migration_6, migration_7, migration_8,
};

const int cache__migration_count =
    (int)(sizeof(cache__migrations) / sizeof(cache__migrations[0]));
