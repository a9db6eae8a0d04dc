"""
Tests for C{spc forget-host} (L{spc.cli.forget}): it says what it removed
from which file, and a server that is not there changes nothing.
"""

from __future__ import annotations

import io
import os

from twisted.trial import unittest

from spc.cli import main
from tests.unit.test_identity import OTHER_FINGERPRINT, writeFile
from tests.unit.test_trust import PINNED_HOSTS


class CommandTests(unittest.SynchronousTestCase):
    """
    C{spc forget-host}.
    """

    def setUp(self) -> None:
        self.keyDir = os.path.abspath(self.mktemp())
        os.makedirs(self.keyDir, mode=0o700)
        self.path = os.path.join(self.keyDir, "known_hosts")
        writeFile(self.path, PINNED_HOSTS.encode("utf-8"), 0o600)

    def spc(self, *argv: str) -> tuple[int, str, str]:
        stdout, stderr = io.StringIO(), io.StringIO()
        code = main.main(list(argv), stdout=stdout, stderr=stderr, environ={})
        return code, stdout.getvalue(), stderr.getvalue()

    def test_forgets(self) -> None:
        """
        It says what it removed from which file, and exits 0.
        """
        code, out, err = self.spc("forget-host", "--key-dir", self.keyDir, "example.com:9001")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(out, f"Removed from {self.path}: example.com:9001 {OTHER_FINGERPRINT}\n")

    def test_unknown(self) -> None:
        """
        A server that is not there is said so; nothing changes; exit 0, as
        C{ssh-keygen -R}.
        """
        code, out, err = self.spc("forget-host", "--key-dir", self.keyDir, "h.example:1")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(out, f"h.example:1 is not in {self.path}; nothing changed\n")

    def test_usage(self) -> None:
        """
        No server, or one that is not C{HOST:PORT}, is a usage error.
        """
        for argv in ((), ("example.com",), ("a", "b")):
            code, out, err = self.spc("forget-host", "--key-dir", self.keyDir, *argv)
            self.assertEqual(code, 2, argv)
            self.assertIn("Try 'spc forget-host --help'", err)
