"""Shared helpers for the integration tests: the optsync binary against the
Dataverse emulator, real SQLite files, real HTTP over loopback.

    class T(OptsyncCase):
        def test_x(self):
            emu = self.emulator(seed=self.seed(configurations=2, numbers=50))
            res = self.optsync("sync")           # -> CompletedProcess
            self.assertEqual(res.returncode, 0, res.stderr)
            rows = self.query("SELECT ... FROM numbers")

Every optsync run gets the emulator's URL and a cache in the test's own
temporary directory through -o overrides of config/optsync.ini.
"""

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import unittest

SOURCE_DIR = os.environ.get("OPTSYNC_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "emulator"))

from launcher import Emulator, EmulatorError  # noqa: E402

OPTSYNC_BIN = os.environ.get("OPTSYNC_BIN") or os.path.join(
    SOURCE_DIR, "build", "optsync")
MAKE_SEED = os.path.join(SOURCE_DIR, "tests", "emulator", "make_seed.py")
DEFAULT_MAPPING = os.path.join(SOURCE_DIR, "mapping",
                               "whatsapp4dynamics.json")
ALT_MAPPING = os.path.join(SOURCE_DIR, "tests", "data", "mapping_alt.json")
SECRET = "optsync-emulator-secret"


class OptsyncCase(unittest.TestCase):
    """A temporary directory, at most one emulator, one cache per test."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="optsync-it-")
        self.dir = self._tmp.name
        self.cache_path = os.path.join(self.dir, "cache.db")
        self.emu = None
        self.mapping = DEFAULT_MAPPING

    def tearDown(self):
        if self.emu:
            self.emu.stop()
            self.emu.cleanup()
        self._tmp.cleanup()

    # -- fixtures -----------------------------------------------------

    def seed(self, configurations=2, numbers=100, rng=1, name="seed.json",
             mapping=None):
        """Generates a seed file; returns (path, parsed document)."""
        path = os.path.join(self.dir, name)
        subprocess.run([sys.executable, MAKE_SEED, "--configurations",
                        str(configurations), "--numbers", str(numbers),
                        "--seed", str(rng), "--mapping",
                        mapping or self.mapping, "-o", path],
                       check=True, capture_output=True)
        with open(path, encoding="utf-8") as f:
            return path, json.load(f)

    def emulator(self, seed=None, extra=(), mapping=None):
        if mapping:
            self.mapping = mapping
        self.emu = Emulator(mapping=self.mapping, seed=seed,
                            extra=list(extra))
        self.emu.start()
        return self.emu

    # -- running optsync -------------------------------------------------

    def overrides(self):
        o = ["-o", "cache.path=" + self.cache_path,
             "-o", "mapping.file=" + self.mapping]
        if self.emu:
            o += ["-o", "dataverse.url=" + self.emu.base_url,
                  "-o", "auth.authority=" + self.emu.base_url]
        return o

    def command(self, *args, extra_overrides=()):
        return [OPTSYNC_BIN, "-c",
                os.path.join(SOURCE_DIR, "config", "optsync.ini")] + \
            self.overrides() + list(extra_overrides) + list(args)

    def optsync(self, *args, extra_overrides=(), env=None, timeout=300,
                stdin=None):
        full_env = dict(os.environ)
        full_env.update(env or {})
        return subprocess.run(self.command(*args,
                                           extra_overrides=extra_overrides),
                              capture_output=True, text=True,
                              timeout=timeout, env=full_env, input=stdin)

    def sync_ok(self, *args):
        res = self.optsync("sync", *args)
        self.assertEqual(res.returncode, 0,
                         "sync failed:\n" + res.stdout + res.stderr)
        return res

    # -- looking at the cache --------------------------------------------

    def query(self, sql, params=()):
        db = sqlite3.connect(self.cache_path)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def cache_numbers(self):
        """dv_id -> (configuration_id, e164, status, active)."""
        return {r[0]: r[1:] for r in self.query(
            "SELECT dv_id, configuration_id, e164, status, active "
            "FROM numbers WHERE dv_id IS NOT NULL")}

    def counters(self):
        status, doc = self.emu.control("GET", "counters")
        self.assertEqual(status, 200)
        return doc

    def assert_no_violations(self):
        self.assertEqual(self.counters()["violations"], 0,
                         "the connector retried before Retry-After")


STATUS = {"single_opt_in": 1, "double_opt_in": 2, "opted_out": 3,
          None: 0}


def expected_numbers(seed_doc):
    """dv_id -> (configuration_id, expected e164, status, active)."""
    out = {}
    for n in seed_doc["numbers"]:
        if not n.get("configuration"):
            continue  # no lookup: belongs to no Related view
        out[n["id"]] = (n["configuration"], n.get("expected_e164"),
                        STATUS[n.get("status")],
                        1 if n.get("active", True) else 0)
    return out
