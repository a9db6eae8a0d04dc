"""
Tests for L{spc.cli}, the C{spc} command, driven through L{main} with
in-memory streams.
"""

from __future__ import annotations

import io
import os
import sys

from twisted.trial import unittest

import spc
from spc import cli, identity
from spc.identity import Identity

_identities: dict[int, Identity] = {}


def sharedIdentity(index: int) -> Identity:
    """
    RSA identities generated once per test run, since key generation is slow.
    """
    if index not in _identities:
        _identities[index] = identity.generateIdentity()
    return _identities[index]


class CLITestCase(unittest.TestCase):
    """
    Run C{spc} in-process and keep what it printed.
    """

    def setUp(self) -> None:
        self.keyDir = os.path.join(self.mktemp(), "keys")
        self.environ = {"SPC_HOME": os.path.join(self.mktemp(), "home")}

    def spc(self, *argv: str) -> int:
        """
        Run C{spc argv} and record C{self.out} and C{self.err}.
        """
        stdout, stderr = io.StringIO(), io.StringIO()
        code = cli.main(list(argv), stdout=stdout, stderr=stderr, environ=self.environ)
        self.out, self.err = stdout.getvalue(), stderr.getvalue()
        return code

    def useIdentity(self, index: int) -> None:
        """
        Make C{spc keygen} produce a pre-generated identity.
        """
        self.patch(cli, "generateIdentity", lambda bits: sharedIdentity(index))

    def forbidKeygen(self) -> None:
        """
        Fail the test if C{spc keygen} generates a key.
        """

        def refuse(bits: int) -> Identity:
            self.fail("a key was generated")

        self.patch(cli, "generateIdentity", refuse)

    def assertOneErrorLine(self, *fragments: str) -> None:
        self.assertEqual(self.out, "")
        self.assertEqual(self.err.count("\n"), 1, self.err)
        self.assertTrue(self.err.startswith("spc: "), self.err)
        self.assertNotIn("Traceback", self.err)
        for fragment in fragments:
            self.assertIn(fragment, self.err)

    def assertUsageError(self, command: str, *fragments: str) -> None:
        lines = self.err.splitlines()
        self.assertEqual(len(lines), 2, self.err)
        self.assertTrue(lines[0].startswith("spc: "), self.err)
        self.assertEqual(lines[1], f"Try '{command} --help' for more information.")
        for fragment in fragments:
            self.assertIn(fragment, lines[0])


class KeygenTests(CLITestCase):
    """
    Tests for C{spc keygen}.
    """

    def test_writesFilesAndPrintsFingerprint(self) -> None:
        """
        keygen writes a loadable identity and prints both paths and the
        fingerprint.
        """
        self.assertEqual(self.spc("keygen", "--key-dir", self.keyDir), 0)
        written = identity.loadIdentity(self.keyDir)
        private = os.path.join(self.keyDir, "id_rsa")
        self.assertEqual(
            self.out,
            f"Wrote {private} and {private}.pub\nFingerprint: {written.fingerprint}\n",
        )
        self.assertEqual(self.err, "")
        self.assertEqual(written.privateKey.key_size, 2048)

    def test_refusesOverwrite(self) -> None:
        """
        A second keygen fails with exit 1 and one line that mentions
        --force, before generating a key. The identity is unchanged.
        """
        self.useIdentity(0)
        self.assertEqual(self.spc("keygen", "--key-dir", self.keyDir), 0)
        self.forbidKeygen()
        self.assertEqual(self.spc("keygen", "--key-dir", self.keyDir), 1)
        self.assertOneErrorLine("--force", os.path.join(self.keyDir, "id_rsa"))
        self.assertEqual(
            identity.loadIdentity(self.keyDir).fingerprint, sharedIdentity(0).fingerprint
        )

    def test_force(self) -> None:
        """
        keygen --force replaces the identity.
        """
        self.useIdentity(0)
        self.assertEqual(self.spc("keygen", "--key-dir", self.keyDir), 0)
        self.useIdentity(1)
        self.assertEqual(self.spc("keygen", "--key-dir", self.keyDir, "--force"), 0)
        self.assertIn(sharedIdentity(1).fingerprint, self.out)
        self.assertEqual(
            identity.loadIdentity(self.keyDir).fingerprint, sharedIdentity(1).fingerprint
        )

    def test_spcHome(self) -> None:
        """
        Without --key-dir, keygen writes to $SPC_HOME.
        """
        self.useIdentity(0)
        self.assertEqual(self.spc("keygen"), 0)
        home = self.environ["SPC_HOME"]
        self.assertIn(f"Wrote {os.path.join(home, 'id_rsa')}", self.out)
        loaded = identity.loadIdentity(home)
        self.assertEqual(loaded.fingerprint, sharedIdentity(0).fingerprint)

    def test_bits(self) -> None:
        """
        --bits passes the size on; sizes outside 2048..4096 and non-numbers
        are usage errors (exit 2) and generate nothing.
        """
        sizes = []

        def generate(bits: int) -> Identity:
            sizes.append(bits)
            return sharedIdentity(0)

        self.patch(cli, "generateIdentity", generate)
        self.assertEqual(self.spc("keygen", "--key-dir", self.keyDir, "--bits", "3072"), 0)
        self.assertEqual(sizes, [3072])
        self.forbidKeygen()
        for bad in ["1024", "8192", "abc", "", "9" * 5000]:
            self.assertEqual(self.spc("keygen", "--key-dir", self.keyDir, "--bits", bad), 2)
            self.assertUsageError("spc keygen", "--bits")

    def test_keyDirIsAFile(self) -> None:
        """
        An operating-system error (the key directory is a file) is one line,
        exit 1.
        """
        self.useIdentity(0)
        os.makedirs(os.path.dirname(self.keyDir))
        with open(self.keyDir, "w"):
            pass
        self.assertEqual(self.spc("keygen", "--key-dir", self.keyDir), 1)
        self.assertOneErrorLine(self.keyDir)


class FingerprintTests(CLITestCase):
    """
    Tests for C{spc fingerprint}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.useIdentity(0)
        self.assertEqual(self.spc("keygen", "--key-dir", self.keyDir), 0)
        self.keygenOutput = self.out

    def test_byKeyDir(self) -> None:
        """
        fingerprint --key-dir prints only the fingerprint that keygen
        printed.
        """
        self.assertEqual(self.spc("fingerprint", "--key-dir", self.keyDir), 0)
        self.assertEqual(self.out, sharedIdentity(0).fingerprint + "\n")
        self.assertIn(f"Fingerprint: {self.out}", self.keygenOutput)

    def test_byFile(self) -> None:
        """
        fingerprint PUBKEY_FILE prints the same fingerprint.
        """
        path = os.path.join(self.keyDir, "id_rsa.pub")
        self.assertEqual(self.spc("fingerprint", path), 0)
        self.assertEqual(self.out, sharedIdentity(0).fingerprint + "\n")

    def test_spcHome(self) -> None:
        """
        Without arguments, the identity in $SPC_HOME is used.
        """
        self.environ["SPC_HOME"] = self.keyDir
        self.assertEqual(self.spc("fingerprint"), 0)
        self.assertEqual(self.out, sharedIdentity(0).fingerprint + "\n")

    def test_missingKeyDir(self) -> None:
        """
        A missing key directory is one line, exit 1, with the keygen hint.
        """
        missing = os.path.join(self.mktemp(), "none")
        self.assertEqual(self.spc("fingerprint", "--key-dir", missing), 1)
        self.assertOneErrorLine("does not exist", f"spc keygen --key-dir {missing}")

    def test_notAPublicKey(self) -> None:
        """
        Pointing at the private key is one line, exit 1.
        """
        self.assertEqual(self.spc("fingerprint", os.path.join(self.keyDir, "id_rsa")), 1)
        self.assertOneErrorLine("not a PEM public key")

    def test_bothSources(self) -> None:
        """
        --key-dir and PUBKEY_FILE together, or two files, are usage errors.
        """
        path = os.path.join(self.keyDir, "id_rsa.pub")
        self.assertEqual(self.spc("fingerprint", "--key-dir", self.keyDir, path), 2)
        self.assertUsageError("spc fingerprint", "not both")
        self.assertEqual(self.spc("fingerprint", path, path), 2)
        self.assertUsageError("spc fingerprint")


class TopLevelTests(CLITestCase):
    """
    Tests for the C{spc} command as a whole: help, version, usage errors
    and the console-script entry point.
    """

    def test_help(self) -> None:
        """
        --help prints the commands to stdout and exits 0, at both levels.
        """
        self.assertEqual(self.spc("--help"), 0)
        self.assertIn("keygen", self.out)
        self.assertIn("fingerprint", self.out)
        self.assertTrue(self.out.startswith("Usage: spc "))
        self.assertEqual(self.err, "")
        self.assertEqual(self.spc("keygen", "--help"), 0)
        self.assertTrue(self.out.startswith("Usage: spc keygen "))
        self.assertIn("--force", self.out)

    def test_version(self) -> None:
        """
        --version prints the spc version.
        """
        self.assertEqual(self.spc("--version"), 0)
        self.assertEqual(self.out, f"spc {spc.__version__}\n")

    def test_usageErrors(self) -> None:
        """
        An unknown command, an unknown option or no command at all is one
        line plus a --help hint, exit 2.
        """
        self.assertEqual(self.spc("frobnicate"), 2)
        self.assertUsageError("spc", "frobnicate")
        self.assertEqual(self.spc("--frob"), 2)
        self.assertUsageError("spc", "frob")
        self.assertEqual(self.spc("keygen", "--frob"), 2)
        self.assertUsageError("spc keygen", "frob")
        self.assertEqual(self.spc(), 2)
        self.assertUsageError("spc", "no command")

    def test_run(self) -> None:
        """
        L{cli.run} exits with L{cli.main}'s code, using the process's argv
        and streams.
        """
        stdout = io.StringIO()
        self.patch(sys, "argv", ["spc", "--version"])
        self.patch(sys, "stdout", stdout)
        error = self.assertRaises(SystemExit, cli.run)
        self.assertEqual(error.code, 0)
        self.assertEqual(stdout.getvalue(), f"spc {spc.__version__}\n")
