// conformance.js — drives the optsync Dataverse emulator with
// dynamics-web-api, a client we did not write (pinned in package.json).
//
//   node conformance.js '<json settings>'
//
// Settings (from tests/emulator/test_conformance.py): base (emulator
// origin, default mapping and small seed), alt_base (a second emulator
// with tests/data/mapping_alt.json), tenant, client_id, secret, and the
// names and ids the checks use.  Prints one JSON document
// {"checks": [{"name", "ok", "detail"}], "notes": [...]} on stdout and
// exits 1 when a check failed.  Each check is independent: a failure is
// recorded and the next check runs.
"use strict";

const { DynamicsWebApi } = require("dynamics-web-api");

const S = JSON.parse(process.argv[2]);
const checks = [];
const notes = [];
let tokenCalls = 0;
let tokenFetches = 0;
const tokens = {};

function check(name, ok, detail) {
    checks.push({ name, ok: !!ok, detail: detail === undefined ? null : detail });
}

async function expectError(promise) {
    try {
        const value = await promise;
        return { resolved: true, value };
    } catch (e) {
        return e;
    }
}

// The token callback: dynamics-web-api calls it before every request;
// it asks the emulator's Entra ID endpoint (client credentials) once per
// origin and reuses the token, as an application would.
function tokenFor(origin) {
    return async () => {
        tokenCalls += 1;
        if (!tokens[origin]) {
            tokenFetches += 1;
            const form = new URLSearchParams({
                client_id: S.client_id,
                client_secret: S.secret,
                grant_type: "client_credentials",
                scope: origin + "/.default",
            });
            const r = await fetch(`${origin}/${S.tenant}/oauth2/v2.0/token`, {
                method: "POST",
                headers: { "Content-Type": "application/x-www-form-urlencoded" },
                body: form.toString(),
            });
            const doc = await r.json();
            if (r.status !== 200) throw new Error("token: " + JSON.stringify(doc));
            tokens[origin] = doc.access_token;
        }
        return tokens[origin];
    };
}

function client(origin) {
    return new DynamicsWebApi({
        serverUrl: origin,
        dataApi: { version: "9.2" },
        onTokenRefresh: tokenFor(origin),
    });
}

const api = client(S.base);
const NUM = S.numbers;
const CFG = S.configs;
const NAV = S.navigation;
const STATUS = S.status;
const LOOKUP = S.lookup;
const PK = S.number_id;

async function allIds(request) {
    const ids = [];
    let page = await api.retrieveMultiple(request);
    let pages = 1;
    ids.push(...page.value.map((r) => r[PK]));
    while (page.oDataNextLink) {
        page = await api.retrieveMultiple(request, page.oDataNextLink);
        pages += 1;
        ids.push(...page.value.map((r) => r[PK]));
    }
    return { ids, pages, last: page };
}

async function run(name, fn) {
    try {
        await fn();
    } catch (e) {
        check(name, false, "threw: " + (e && (e.stack || JSON.stringify(e))));
    }
}

async function main() {
    await run("WhoAmI (token callback, function call)", async () => {
        const who = await api.callFunction("WhoAmI");
        check("WhoAmI (token callback, function call)",
            /^[0-9a-f-]{36}$/.test(who.UserId), who);
    });

    await run("retrieveMultiple pages with maxPageSize", async () => {
        const req = { collection: NUM, select: ["inogic_name", STATUS], maxPageSize: 5 };
        const { ids, pages } = await allIds(req);
        check("retrieveMultiple pages with maxPageSize",
            ids.length === S.seed_numbers && new Set(ids).size === ids.length && pages === 3,
            { rows: ids.length, pages });
        const all = await api.retrieveAll(req);
        check("retrieveAll follows every nextLink",
            all.value.length === S.seed_numbers, { rows: all.value.length });
        const n = await api.count({ collection: NUM });
        check("count ($count segment, text/plain with BOM)", n === S.seed_numbers, n);
        const filtered = await api.retrieveMultiple({
            collection: NUM, select: ["inogic_name"],
            filter: "startswith(inogic_name,'Zo') or inogic_name eq 'O''Bryan'",
            orderBy: ["inogic_name asc"],
        });
        check("filter with quotes and orderBy",
            filtered.value.map((r) => r.inogic_name).join("|") === "O'Bryan|Zoë Müller",
            filtered.value);
    });

    let deltaLink = null;
    await run("change tracking: initial sync to the deltaLink", async () => {
        const full = await api.retrieveAll({
            collection: NUM, select: [STATUS, LOOKUP], trackChanges: true, maxPageSize: 5,
        });
        deltaLink = full.oDataDeltaLink;
        check("change tracking: initial sync to the deltaLink",
            full.value.length === S.seed_numbers && /\$deltatoken=/.test(deltaLink || ""),
            { rows: full.value.length, deltaLink });
    });

    let created = null;
    await run("create with a lookup bind", async () => {
        created = await api.create({
            collection: NUM,
            data: { inogic_name: "dwa", inogic_phonenumber: "+4915200000001",
                [STATUS]: S.double, [NAV + "@odata.bind"]: `${CFG}(${S.cfg_a})` },
        });
        const row = await api.retrieve({ collection: NUM, key: created, select: [LOOKUP, STATUS] });
        check("create with a lookup bind",
            row[LOOKUP] === S.cfg_a && row[STATUS] === S.double && row[PK] === created,
            { created, row });
        const rep = await api.create({
            collection: NUM, data: { inogic_name: "dwa-rep" },
            returnRepresentation: true, select: ["inogic_name"],
        });
        check("create with returnRepresentation (201)",
            rep.inogic_name === "dwa-rep" && /^[0-9a-f-]{36}$/.test(rep[PK]), rep);
        await api.deleteRecord({ collection: NUM, key: rep[PK] });
        const bad = await expectError(api.create({
            collection: NUM, data: { [S.lookup_attr + "@odata.bind"]: `/${CFG}(${S.cfg_a})` },
        }));
        check("a bind on the lookup's logical name is refused (0x80048d19)",
            bad.status === 400 && bad.code === "0x80048d19", { status: bad.status, code: bad.code });
    });

    await run("update with If-Match", async () => {
        const row = await api.retrieve({ collection: NUM, key: S.update_id, select: [STATUS] });
        const etag = row["@odata.etag"];
        const ok = await api.update({
            collection: NUM, key: S.update_id, data: { [STATUS]: S.opted_out }, ifmatch: etag,
        });
        const stale = await api.update({
            collection: NUM, key: S.update_id, data: { [STATUS]: S.single }, ifmatch: etag,
        });
        const after = await api.retrieve({ collection: NUM, key: S.update_id, select: [STATUS] });
        check("update with If-Match",
            ok === true && stale === false && after[STATUS] === S.opted_out &&
            after["@odata.etag"] !== etag,
            { ok, stale, after });
        // update() sends If-Match: * by default: no accidental upsert
        const missing = await expectError(api.update({
            collection: NUM, key: S.missing_id, data: { inogic_name: "x" },
        }));
        check("update of a missing row is 404 (If-Match: *)",
            missing.status === 404 && missing.code === "0x80040217", missing);
    });

    await run("upsert", async () => {
        const id = await api.upsert({ collection: NUM, key: S.upsert_id, data: { inogic_name: "upserted" } });
        const again = await api.upsert({
            collection: NUM, key: S.upsert_id, data: { inogic_name: "no" }, ifnonematch: "*",
        });
        const row = await api.retrieve({ collection: NUM, key: S.upsert_id, select: ["inogic_name"] });
        check("upsert", id === S.upsert_id && again === null && row.inogic_name === "upserted",
            { id, again, row });
    });

    await run("upsert by alternate key", async () => {
        const alt = client(S.alt_base);
        const key = `cts_mobile='+4917099',_cts_setup_value=${S.cfg_a}`;
        const first = await alt.upsert({ collection: "cts_consentnumbers", key, data: { cts_label: "alt" } });
        const second = await alt.upsert({ collection: "cts_consentnumbers", key, data: { cts_label: "alt2" } });
        const row = await alt.retrieve({ collection: "cts_consentnumbers", key, select: ["cts_label"] });
        const count = await alt.count({ collection: "cts_consentnumbers" });
        check("upsert by alternate key", row.cts_label === "alt2" && count === S.seed_numbers + 1,
            { first, second, row, count });
        // Microsoft Learn, "Update and delete table rows using the Web API":
        // OData-EntityId names the row by its key values; the client
        // takes the trailing GUID of that URL as "the id"
        notes.push({ alt_key_upsert_returned: first, configuration_id: S.cfg_a,
            row_id: row.cts_consentnumberid });
    });

    await run("delete", async () => {
        const ok = await api.deleteRecord({ collection: NUM, key: created });
        const again = await expectError(api.deleteRecord({ collection: NUM, key: created }));
        const gone = await expectError(api.retrieve({ collection: NUM, key: created }));
        check("delete", ok === true && again.status === 404 && gone.status === 404 &&
            gone.code === "0x80040217", { ok, again: again.status, gone: gone.status });
        const row = await api.retrieve({ collection: NUM, key: S.delete_id, select: [STATUS] });
        await api.update({ collection: NUM, key: S.delete_id, data: { inogic_name: "moved on" } });
        const stale = await api.deleteRecord({ collection: NUM, key: S.delete_id, ifmatch: row["@odata.etag"] });
        check("delete with a stale If-Match answers false (412)", stale === false, stale);
    });

    await run("change tracking: delta after the writes", async () => {
        const delta = await api.retrieveMultiple({ collection: NUM, select: [STATUS, LOOKUP] }, deltaLink);
        const changed = delta.value.filter((r) => !r.reason).map((r) => r[PK]).sort();
        const deleted = delta.value.filter((r) => r.reason === "deleted").map((r) => r.id);
        const want = [S.update_id, S.upsert_id, S.delete_id].sort();
        check("change tracking: delta after the writes",
            JSON.stringify(changed) === JSON.stringify(want) &&
            deleted.length === 2 && deleted.includes(created) &&
            /\$deltatoken=/.test(delta.oDataDeltaLink || ""),
            { changed, deleted, deltaLink: delta.oDataDeltaLink });
    });

    await run("batch with a change set and a query", async () => {
        api.startBatch();
        api.create({ collection: CFG, data: { inogic_name: "batch cfg" }, contentId: "1" });
        api.create({ collection: NUM, data: { inogic_name: "batch num", [NAV + "@odata.bind"]: "$1" } });
        api.update({ collection: NUM, key: S.update_id, data: { [STATUS]: S.single } });
        api.retrieveMultiple({ collection: NUM, select: ["inogic_name"], filter: "inogic_name eq 'batch num'" });
        const res = await api.executeBatch();
        const [cfgId, numId, updated, query] = res;
        const row = await api.retrieve({ collection: NUM, key: numId, select: [LOOKUP] });
        check("batch with a change set and a query",
            res.length === 4 && /^[0-9a-f-]{36}$/.test(cfgId) && row[LOOKUP] === cfgId &&
            updated === true && query.value.length === 1 && query.value[0][PK] === numId,
            { res, row });
    });

    await run("a failing change set is rolled back", async () => {
        const before = await api.count({ collection: NUM });
        api.startBatch();
        api.create({ collection: NUM, data: { inogic_name: "rolled back" } });
        api.create({ collection: NUM, data: { [STATUS]: 42 } });
        const err = await expectError(api.executeBatch());
        const after = await api.count({ collection: NUM });
        const first = Array.isArray(err) ? err[0] : err;
        // inside a batch the client keeps the body's {"error": {...}}
        // wrapper (outside it copies error.code up): read both
        const code = first.code || (first.error && first.error.code);
        check("a failing change set is rolled back",
            Array.isArray(err) && err.length === 1 && first.status === 400 &&
            code === "0x8004431a" && before === after,
            { err, before, after });
    });

    check("token callback was used for every request",
        tokenCalls > 10 && tokenFetches === 2, { tokenCalls, tokenFetches });
}

main().then(
    () => {
        process.stdout.write(JSON.stringify({ checks, notes }, null, 1) + "\n");
        process.exit(checks.every((c) => c.ok) && checks.length > 0 ? 0 : 1);
    },
    (e) => {
        process.stdout.write(JSON.stringify({ checks, notes, fatal: String(e && e.stack) }) + "\n");
        process.exit(1);
    },
);
