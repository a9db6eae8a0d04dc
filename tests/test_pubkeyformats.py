"""
Tests for the public key files C{spc fingerprint} reads
(L{spc.keys.identity.readPublicKeyFile}): PEM, DER and OpenSSH C{ssh-rsa}
lines, and an error that says which formats it reads.
"""

from __future__ import annotations

import io
import os

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.trial import unittest

from spc.cli import main
from spc.errors import BadPublicKey, KeyFileError
from spc.keys import identity
from tests.common import clientIdentity
from tests.unit.test_identity import writeFile


class PublicKeyFormatTests(unittest.TestCase):
    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)

    def write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.directory, name)
        writeFile(path, data, 0o644)
        return path

    def spc(self, *argv: str) -> tuple[int, str, str]:
        stdout, stderr = io.StringIO(), io.StringIO()
        code = main.main(list(argv), stdout=stdout, stderr=stderr, environ={})
        return code, stdout.getvalue(), stderr.getvalue()

    def test_openSSH(self) -> None:
        """
        An OpenSSH C{ssh-rsa} public key line, comment and newline
        included, gives the key's spc fingerprint.
        """
        key = clientIdentity().publicKey
        line = key.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        path = self.write("id_rsa.pub", line + b" alice@laptop\n")
        self.assertEqual(identity.readPublicKeyFile(path), clientIdentity().publicDER)
        printed = clientIdentity().fingerprint + "\n"
        self.assertEqual(self.spc("fingerprint", path), (0, printed, ""))

    def test_openSSHOtherKind(self) -> None:
        """
        An OpenSSH key that is not RSA is outside spc's policy, said so.
        """
        line = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        path = self.write("id_ed25519.pub", line + b"\n")
        error = self.assertRaises(BadPublicKey, identity.readPublicKeyFile, path)
        self.assertIn("not an RSA key", str(error))

    def test_unreadableNamesTheFormats(self) -> None:
        """
        Anything else is refused in one line that names the formats read,
        not "not a DER SubjectPublicKeyInfo".
        """
        for name, data in [("text.pub", b"hello\n"), ("broken.pub", b"ssh-rsa AAAA!!\n")]:
            path = self.write(name, data)
            error = self.assertRaises(KeyFileError, identity.readPublicKeyFile, path)
            self.assertIn("PEM PUBLIC KEY", str(error))
            self.assertIn("OpenSSH ssh-rsa", str(error))
            code, out, err = self.spc("fingerprint", path)
            self.assertEqual((code, out), (1, ""))
            self.assertEqual(err.count("\n"), 1)
            self.assertNotIn("DER SubjectPublicKeyInfo)", err)
            self.assertIn("DER SubjectPublicKeyInfo, or an OpenSSH ssh-rsa", err)
