"""
Tests for C{spc forget-host} (L{spc.cli.forget}) and
L{spc.keys.trust.KnownHosts.forget}: a server's lines leave
C{known_hosts} in one atomic rewrite, every other line stays as it was, and
the file is checked as every read of it is.
"""

from __future__ import annotations

import io
import os
import stat

from twisted.trial import unittest

from spc.cli import main
from spc.errors import InsecurePath, TrustFileError
from spc.keys.trust import KnownHosts
from tests.unit.test_identity import OTHER_FINGERPRINT, TEST_FINGERPRINT, writeFile

TEXT = f"""\
# servers I trust
example.com:9000 {TEST_FINGERPRINT}
[::1]:9000 {OTHER_FINGERPRINT}\r
tls:Example.com:9000 {OTHER_FINGERPRINT}
example.com:9001 {OTHER_FINGERPRINT}
"""


class ForgetTests(unittest.TestCase):
    """
    L{KnownHosts.forget}.
    """

    def setUp(self) -> None:
        self.keyDir = os.path.abspath(self.mktemp())
        os.makedirs(self.keyDir, mode=0o700)
        self.path = os.path.join(self.keyDir, "known_hosts")
        writeFile(self.path, TEXT.encode("utf-8"), 0o640)

    def read(self) -> str:
        with open(self.path, newline="") as f:
            return f.read()

    def test_removesKeyAndTLSPin(self) -> None:
        """
        The server's key line and its TLS pin go, whatever case or spelling
        they were written in; every other line, comments and line ends
        included, stays byte for byte; the mode is kept.
        """
        known = KnownHosts.fromFile(self.path)
        removed = known.forget("EXAMPLE.com:9000")
        self.assertEqual(
            removed,
            [f"example.com:9000 {TEST_FINGERPRINT}", f"tls:Example.com:9000 {OTHER_FINGERPRINT}"],
        )
        self.assertEqual(
            self.read(),
            f"# servers I trust\n[::1]:9000 {OTHER_FINGERPRINT}\r\n"
            f"example.com:9001 {OTHER_FINGERPRINT}\n",
        )
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o640)
        self.assertIsNone(known.lookup("example.com:9000"))
        self.assertEqual(known.lookup("example.com:9001"), OTHER_FINGERPRINT)

    def test_ipv6(self) -> None:
        """
        An IPv6 server is named as known_hosts names it.
        """
        self.assertEqual(
            KnownHosts.fromFile(self.path).forget("[0::1]:9000"),
            [f"[::1]:9000 {OTHER_FINGERPRINT}"],
        )

    def test_nothingToRemove(self) -> None:
        """
        An unknown server changes nothing: the file is not rewritten.
        """
        before = os.stat(self.path)
        self.assertEqual(KnownHosts.fromFile(self.path).forget("other.example:9000"), [])
        self.assertEqual(self.read(), TEXT)
        self.assertEqual(os.stat(self.path).st_ino, before.st_ino)

    def test_symlinkKept(self) -> None:
        """
        A known_hosts that is a symbolic link stays one; its target is
        rewritten.
        """
        link = os.path.join(self.keyDir, "link")
        os.symlink(self.path, link)
        KnownHosts.fromFile(link).forget("example.com:9001")
        self.assertTrue(os.path.islink(link))
        self.assertNotIn("9001", self.read())

    def test_unsafeFileRefused(self) -> None:
        """
        A file another user could write is refused, as every read of it is,
        and left alone.
        """
        known = KnownHosts.fromFile(self.path)
        os.chmod(self.path, 0o666)
        self.assertRaises(InsecurePath, known.forget, "example.com:9000")
        self.assertEqual(self.read(), TEXT)

    def test_invalidFileRefused(self) -> None:
        """
        A file with a bad line is refused, naming it, and left alone.
        """
        known = KnownHosts.fromFile(self.path)
        with open(self.path, "a") as f:
            f.write("example.com:9000 SHA256:nope\n")
        error = self.assertRaises(TrustFileError, known.forget, "example.com:9000")
        self.assertIn("line 6", str(error))
        self.assertNotEqual(self.read(), TEXT)


class CommandTests(unittest.TestCase):
    """
    C{spc forget-host}.
    """

    def setUp(self) -> None:
        self.keyDir = os.path.abspath(self.mktemp())
        os.makedirs(self.keyDir, mode=0o700)
        self.path = os.path.join(self.keyDir, "known_hosts")
        writeFile(self.path, TEXT.encode("utf-8"), 0o600)

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
