"""The systemd examples under config/systemd/: `systemd-analyze verify`
accepts them (when it is installed; with ExecStart pointed at the built
binary, which it checks), and, always, a structural check: the service
runs `optsync serve` hardened (a dynamic user, the cache in its state
directory, the file system read-only), reloads with SIGHUP, does not
restart on a config or credentials error; the timer starts the one-shot
`optsync sync` service; the state directory is [cache] path's directory
in config/optsync.example.ini; every option the units pass exists.

ctest-labels: quick
"""

import os
import shutil
import subprocess
import tempfile
import unittest

from optsync_testlib import OPTSYNC_BIN, SOURCE_DIR

UNITS = os.path.join(SOURCE_DIR, "config", "systemd")
INSTALLED_BIN = "/usr/local/bin/optsync"


def parse_unit(path):
    """{section: {key: [values]}} (systemd keys may repeat; lines ending
    in a backslash continue)."""
    out, section, pending = {}, None, ""
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = pending + raw.rstrip("\n")
            pending = ""
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = out.setdefault(line.strip("[]"), {})
                continue
            key, _, value = line.partition("=")
            section.setdefault(key.strip(), []).append(value.strip())
    return out


def one(unit, section, key):
    values = unit[section].get(key, [])
    return values[-1] if values else None


HARDENING = {
    "DynamicUser": "yes", "StateDirectory": "optsync",
    "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "PrivateDevices": "yes", "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "", "RestrictSUIDSGID": "yes",
    "MemoryDenyWriteExecute": "yes", "ProtectKernelTunables": "yes",
    "ProtectControlGroups": "yes", "UMask": "0077",
}


class SystemdUnits(unittest.TestCase):

    def setUp(self):
        self.serve = parse_unit(os.path.join(UNITS, "optsync.service"))
        self.sync = parse_unit(os.path.join(UNITS, "optsync-sync.service"))
        self.timer = parse_unit(os.path.join(UNITS, "optsync-sync.timer"))

    def test_serve_service(self):
        svc = self.serve["Service"]
        argv = one(self.serve, "Service", "ExecStart").split()
        self.assertEqual(argv[0], INSTALLED_BIN)
        self.assertEqual(argv[-1], "serve")
        self.assertEqual(one(self.serve, "Service", "ExecReload"),
                         "/bin/kill -HUP $MAINPID")
        self.assertEqual(one(self.serve, "Service", "KillSignal"), "SIGTERM")
        self.assertEqual(one(self.serve, "Service", "Restart"), "on-failure")
        self.assertEqual(
            one(self.serve, "Service", "RestartPreventExitStatus").split(),
            ["2", "3"])
        for key, value in HARDENING.items():
            self.assertEqual(svc.get(key, [None])[-1], value, key)
        self.assertEqual(one(self.serve, "Install", "WantedBy"),
                         "multi-user.target")

    def test_sync_service_and_timer(self):
        argv = one(self.sync, "Service", "ExecStart").split()
        self.assertEqual((argv[0], argv[-1]), (INSTALLED_BIN, "sync"))
        self.assertEqual(one(self.sync, "Service", "Type"), "oneshot")
        for key, value in HARDENING.items():
            self.assertEqual(self.sync["Service"].get(key, [None])[-1],
                             value, key)
        self.assertEqual(one(self.timer, "Timer", "Unit"),
                         "optsync-sync.service")
        self.assertTrue(one(self.timer, "Timer", "OnUnitActiveSec"))
        self.assertEqual(one(self.timer, "Timer", "Persistent"), "true")
        self.assertEqual(one(self.timer, "Install", "WantedBy"),
                         "timers.target")

    def test_state_directory_holds_the_example_cache(self):
        with open(os.path.join(SOURCE_DIR, "config", "optsync.example.ini"),
                  encoding="utf-8") as f:
            lines = [ln.strip() for ln in f]
        section, cache_path = None, None
        for ln in lines:
            if ln.startswith("["):
                section = ln
            elif section == "[cache]" and ln.startswith("path"):
                cache_path = ln.partition("=")[2].strip()
        self.assertEqual(os.path.dirname(cache_path), "/var/lib/optsync")

    def test_the_options_the_units_pass_exist(self):
        # Every -o key and every command the units use, known to optsync.
        for unit in (self.serve, self.sync):
            argv = one(unit, "Service", "ExecStart").split()
            cmd = argv[-1]
            res = subprocess.run([OPTSYNC_BIN, cmd, "--help"],
                                 capture_output=True, text=True)
            self.assertEqual(res.returncode, 0, res.stderr)
            keys = [argv[i + 1].split("=")[0] for i, a in enumerate(argv)
                    if a == "-o"]
            for key in keys:
                res = subprocess.run(
                    [OPTSYNC_BIN, "check-config", "-q", "-o",
                     key + "=/nonexistent"], capture_output=True, text=True)
                self.assertNotIn("unknown key", res.stdout + res.stderr,
                                 key)

    @unittest.skipUnless(shutil.which("systemd-analyze"),
                         "systemd-analyze is not installed")
    def test_systemd_analyze_verify(self):
        with tempfile.TemporaryDirectory() as tmp:
            names = sorted(os.listdir(UNITS))
            for name in names:
                with open(os.path.join(UNITS, name), encoding="utf-8") as f:
                    text = f.read().replace(INSTALLED_BIN, OPTSYNC_BIN)
                with open(os.path.join(tmp, name), "w",
                          encoding="utf-8") as f:
                    f.write(text)
            res = subprocess.run(
                ["systemd-analyze", "verify"] +
                [os.path.join(tmp, n) for n in names],
                capture_output=True, text=True, cwd=tmp)
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
            self.assertEqual(res.stderr.strip(), "", res.stderr)


if __name__ == "__main__":
    unittest.main()
