"""One key per person (phone.h note 1) end to end: CRM rows typed in
ranges libphonenumber's metadata does not know (UK 07700 900xxx, German
0154...) get their E.164 key through the sync, with a warning that
`numbers --json` and `status` show; the gate and the CLI take every
spelling of them; and a cache written under the old rule (such rows
without a key) converges after the upgrade on the next sync, delta or
full.

ctest-labels: quick;integration
ctest-timeout: 300
"""

import json
import sqlite3
import unittest

from optsync_testlib import OptsyncCase

WARNING = "not a valid number in libphonenumber's metadata"
HEADING = WARNING + " \u2014 a typo, or a range newer than the metadata"


class PossibleNumbers(OptsyncCase):

    def setUp(self):
        super().setUp()
        path, self.doc = self.seed(configurations=3, numbers=60)
        self.emulator(seed=path)
        # make_seed's configurations cycle DE, GB, US.
        self.de, self.gb = self.doc["configurations"][:2]
        self.assertEqual((self.de["default_region"], self.gb["default_region"]),
                         ("DE", "GB"))
        self.uk_out = self.admin(self.gb, "07700 900251", "opted_out")
        self.uk_in = self.admin(self.gb, "+44 7700 900252", "double_opt_in")
        self.de_new = self.admin(self.de, "0154 12345678", "double_opt_in")
        self.sync_ok()

    def admin(self, cfg, phone, status):
        st, out = self.emu.control("POST", "admin/number", {
            "configuration": cfg["id"], "phone": phone, "status": status})
        self.assertEqual(st, 201, out)
        return out["row"]["id"]

    def numbers_json(self, cfg):
        res = self.optsync("numbers", "--configuration", cfg["id"], "--json")
        self.assertEqual(res.returncode, 0, res.stderr)
        return {r["id"]: r for r in json.loads(res.stdout)}

    def gate(self, cfg, *phones):
        res = self.optsync("gate", "--configuration", cfg["name"], "--json",
                           *phones)
        self.assertIn(res.returncode, (0, 1), res.stderr)
        return [(r["e164"], r["reason"]) for r in json.loads(res.stdout)]

    def test_sync_keys_them_with_a_warning(self):
        rows = self.cache_numbers()
        self.assertEqual(rows[self.uk_out][1:3], ("+447700900251", 3))
        self.assertEqual(rows[self.uk_in][1:3], ("+447700900252", 2))
        self.assertEqual(rows[self.de_new][1:3], ("+4915412345678", 2))
        gb = self.numbers_json(self.gb)
        self.assertEqual(gb[self.uk_out]["phone_warning"], WARNING)
        self.assertEqual(gb[self.uk_in]["phone_warning"], WARNING)
        self.assertEqual(self.numbers_json(self.de)[self.de_new]
                         ["phone_warning"], WARNING)
        # The seed's own numbers are valid: no warning on any of them.
        warned = [r for r in gb.values() if "phone_warning" in r]
        self.assertEqual({r["id"] for r in warned},
                         {self.uk_out, self.uk_in})
        status = json.loads(self.optsync("status", "--json").stdout)
        self.assertEqual(status["phone_warnings"], 3)
        self.assertEqual({r["id"] for r in status["phone_warning_rows"]},
                         {self.uk_out, self.uk_in, self.de_new})
        self.assertNotIn(self.uk_out,
                         {r["id"] for r in status["unparseable_rows"]})
        text = self.optsync("status").stdout
        self.assertIn(HEADING + " (3):", text)
        self.assertIn('%s "07700 900251": +447700900251' % self.uk_out, text)

    def test_gate_decides_every_spelling(self):
        self.assertEqual(self.gate(self.gb, "07700 900251", "+447700900251",
                                   "0044 7700 900251"),
                         [("+447700900251", "opted_out")] * 3)
        self.assertEqual(self.gate(self.gb, "07700 900252"),
                         [("+447700900252", "allowed")])
        self.assertEqual(self.gate(self.de, "0154 1234 5678"),
                         [("+4915412345678", "allowed")])
        self.assertEqual(self.gate(self.gb, "07700 9002"),
                         [(None, "invalid_phone")])

    def test_cli_opt_out_lands_on_the_crm_row(self):
        # The WhatsApp spelling of the CRM's national number.
        res = self.optsync("opt-out", "+447700900252", "--configuration",
                           self.gb["name"], "--source", "customer-service")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("warning: +447700900252 is " + WARNING, res.stderr)
        self.assertEqual(self.query(
            "SELECT dv_id, status, pending_writeback FROM numbers "
            "WHERE e164 = '+447700900252'"), [(self.uk_in, 3, 1)])
        self.assertEqual(self.gate(self.gb, "07700 900252"),
                         [("+447700900252", "opted_out")])

    def old_rule(self):
        """The cache as the old rule left it, upgraded by migration 6:
        no key, the old reason, not checked under the current rule."""
        db = sqlite3.connect(self.cache_path)
        try:
            db.execute(
                "UPDATE numbers SET e164 = NULL, phone_warning = NULL, "
                "phone_error = 'not a valid number (no such range in its "
                "country: a typo?)', phone_checked = 0 WHERE dv_id IN "
                "(?, ?, ?)", (self.uk_out, self.uk_in, self.de_new))
            db.commit()
        finally:
            db.close()
        self.assertEqual(self.gate(self.gb, "07700 900251"),
                         [("+447700900251", "no_consent")])

    def converged(self, res):
        self.assertIn("3 phones parsed again", res.stdout)
        self.assertIn("event=sync_phones_rechecked rows=3 rekeyed=3",
                      res.stderr)
        rows = self.cache_numbers()
        self.assertEqual(rows[self.uk_out][1], "+447700900251")
        self.assertEqual(rows[self.de_new][1], "+4915412345678")
        self.assertEqual(self.query(
            "SELECT count(*) FROM numbers WHERE phone_checked = 0"), [(0,)])
        self.assertEqual(self.gate(self.gb, "07700 900251"),
                         [("+447700900251", "opted_out")])
        self.assertEqual(self.optsync("ledger", "verify").returncode, 0)

    def test_upgrade_converges_on_a_delta(self):
        self.old_rule()
        res = self.sync_ok()
        self.assertIn("sync ok: delta", res.stdout)
        self.converged(res)
        again = self.sync_ok()
        self.assertNotIn("parsed again", again.stdout)

    def test_upgrade_converges_on_a_full_read(self):
        self.old_rule()
        self.converged(self.sync_ok("--full"))


if __name__ == "__main__":
    unittest.main()
