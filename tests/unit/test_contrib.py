"""
The systemd unit in C{contrib/} stays valid and hardened.
"""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess

from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

import spc
from spc.tap import Options

UNIT = FilePath(spc.__file__).parent().parent().child("contrib").child("spc.service")


def readUnit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str
    parser.read_string(UNIT.getContent().decode("utf-8"))
    return parser


class SystemdUnitTests(SynchronousTestCase):
    """
    C{contrib/spc.service} runs C{twistd --nodaemon --pidfile= spc} as an
    unprivileged user, hardened, restarting on failure and reloading
    C{authorized_keys} on C{systemctl reload}.
    """

    def setUp(self) -> None:
        self.unit = readUnit()
        self.service = self.unit["Service"]

    def test_command(self) -> None:
        """
        ExecStart runs twistd in the foreground without a pid file, and its
        spc options are valid daemon options.
        """
        argv = shlex.split(self.service["ExecStart"])
        self.assertTrue(os.path.isabs(argv[0]))
        self.assertEqual(argv[1:4], ["--nodaemon", "--pidfile=", "spc"])
        options = Options()
        options.parseOptions(argv[4:])
        self.assertEqual(len(options["endpoints"]), 4)
        paths = self.service["ReadWritePaths"].split()
        for needed in (options["inbox"], options["key-dir"]):
            self.assertTrue(
                any(needed == p or needed.startswith(p + "/") for p in paths), needed
            )

    def test_unprivileged(self) -> None:
        """
        It runs as its own user with no capabilities and no way to gain
        privileges.
        """
        self.assertNotIn(self.service["User"], ("", "root"))
        self.assertEqual(self.service["NoNewPrivileges"], "yes")
        self.assertEqual(self.service["CapabilityBoundingSet"], "")

    def test_hardening(self) -> None:
        """
        The file system is read-only but for the daemon's paths, /tmp is
        private, and only IP and UNIX sockets may be opened.
        """
        self.assertEqual(self.service["ProtectSystem"], "strict")
        self.assertEqual(self.service["PrivateTmp"], "yes")
        self.assertEqual(
            set(self.service["RestrictAddressFamilies"].split()),
            {"AF_INET", "AF_INET6", "AF_UNIX"},
        )

    def test_lifecycle(self) -> None:
        """
        Restart on failure; reload sends SIGHUP (re-read authorized_keys).
        """
        self.assertEqual(self.service["Restart"], "on-failure")
        self.assertIn("-HUP", self.service["ExecReload"])
        self.assertIn("$MAINPID", self.service["ExecReload"])
        self.assertEqual(self.unit["Install"]["WantedBy"], "multi-user.target")

    def test_systemdAnalyze(self) -> None:
        """
        Where systemd is installed, C{systemd-analyze verify} accepts the
        unit (with ExecStart pointing at a program that exists here).
        """
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            raise self.skipTest("systemd-analyze is not installed")
        directory = FilePath(self.mktemp())
        directory.makedirs()
        text = UNIT.getContent().decode("utf-8")
        executable = shlex.split(self.service["ExecStart"])[0]
        copy = directory.child("spc.service")
        copy.setContent(text.replace(executable, shutil.which("true")).encode("utf-8"))
        copy.chmod(0o644)
        result = subprocess.run(
            [analyze, "verify", copy.path], capture_output=True, text=True, timeout=60
        )
        problems = [
            line for line in (result.stdout + result.stderr).splitlines()
            if "spc.service" in line
        ]
        self.assertEqual(problems, [])
        self.assertEqual(result.returncode, 0, result.stderr)
