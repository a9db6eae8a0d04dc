# -*- test-case-name: tests.unit.test_tls -*-
"""
Tests for the TLS underlay that need no connection: L{spc.keys.tlscert}
(certificates and their fingerprints), L{spc.transport.tls} descriptions,
and the daemon's TLS listeners as L{spc.tap} configures them.
"""

from __future__ import annotations

import datetime
import io
import os
import stat

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from spc.cli.main import main
from spc.errors import ConfigurationError, TLSFilesExist
from spc.keys.identity import PRIVATE_KEY_NAME
from spc.keys.tlscert import certificateFingerprint, writeCertificate
from spc.tap import makeService
from spc.transport import tls
from tests.unit.test_tap import HOST, keyDirWithIdentity, makeOptions


def loadCertificate(path: str) -> x509.Certificate:
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def alternativeNames(certificate: x509.Certificate) -> list:
    return list(certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)


class CertificateTests(SynchronousTestCase):
    """
    L{writeCertificate} and C{spc tls-cert}.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())

    def test_dnsName(self) -> None:
        """
        A host name gets a certificate for exactly that DNS name, a key
        readable only by its owner, and the fingerprint of the
        certificate's key.
        """
        written = writeCertificate("spc.test", self.directory, days=3)
        self.assertEqual(written.certificatePath, os.path.join(self.directory, "spc.test.crt"))
        self.assertEqual(written.keyPath, os.path.join(self.directory, "spc.test.key"))
        self.assertEqual(stat.S_IMODE(os.stat(written.keyPath).st_mode), 0o600)
        certificate = loadCertificate(written.certificatePath)
        self.assertEqual(alternativeNames(certificate), [x509.DNSName("spc.test")])
        self.assertEqual(certificateFingerprint(certificate), written.fingerprint)
        lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
        self.assertEqual(round(lifetime.total_seconds() / 86400), 3)
        with open(written.keyPath, "rb") as f:
            self.assertTrue(f.read().startswith(b"-----BEGIN PRIVATE KEY-----"))

    def test_address(self) -> None:
        """
        An IP address gets an IP subjectAltName, not a DNS one.
        """
        written = writeCertificate("127.0.0.1", self.directory)
        names = alternativeNames(loadCertificate(written.certificatePath))
        self.assertEqual([type(name) for name in names], [x509.IPAddress])
        self.assertEqual(str(names[0].value), "127.0.0.1")

    def test_refusesOverwrite(self) -> None:
        """
        An existing certificate is kept unless C{force} is given.
        """
        first = writeCertificate("spc.test", self.directory)
        self.assertRaises(TLSFilesExist, writeCertificate, "spc.test", self.directory)
        self.assertEqual(
            certificateFingerprint(loadCertificate(first.certificatePath)), first.fingerprint
        )
        second = writeCertificate("spc.test", self.directory, force=True)
        self.assertNotEqual(second.fingerprint, first.fingerprint)

    def test_badHostName(self) -> None:
        """
        A name that is neither a host name nor an address is refused before
        anything is written.
        """
        for name in ["../etc", "a b", "", "-x.test"]:
            self.assertRaises(ConfigurationError, writeCertificate, name, self.directory)
        self.assertFalse(os.path.exists(self.directory))

    def spc(self, *args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(list(args), out, err, environ={"SPC_HOME": self.directory})
        return code, out.getvalue(), err.getvalue()

    def test_command(self) -> None:
        """
        C{spc tls-cert --host NAME} writes into the key directory and prints
        both paths, the fingerprint of the certificate it wrote, and how to
        use them.
        """
        code, out, err = self.spc("tls-cert", "--host", "spc.test")
        self.assertEqual((code, err), (0, ""))
        certificatePath = os.path.join(self.directory, "spc.test.crt")
        keyPath = os.path.join(self.directory, "spc.test.key")
        fingerprint = certificateFingerprint(loadCertificate(certificatePath))
        self.assertIn(certificatePath, out)
        self.assertIn(keyPath, out)
        self.assertIn(f"--tls-fingerprint {fingerprint}", out)
        self.assertIn("--listen ssl:", out)
        self.assertIn("--connect tls:spc.test:", out)

    def test_commandRefusesOverwrite(self) -> None:
        """
        A second C{spc tls-cert} for the same host fails with one line and
        changes nothing; C{--force} replaces the pair.
        """
        self.spc("tls-cert", "--host", "spc.test", "--out-dir", self.directory)
        path = os.path.join(self.directory, "spc.test.crt")
        before = loadCertificate(path)
        code, out, err = self.spc("tls-cert", "--host", "spc.test")
        self.assertEqual(code, 1)
        self.assertEqual(err.count("\n"), 1, err)
        self.assertIn("--force", err)
        self.assertEqual(loadCertificate(path), before)
        code, out, err = self.spc("tls-cert", "--host", "spc.test", "--force")
        self.assertEqual(code, 0, err)
        self.assertNotEqual(loadCertificate(path), before)

    def test_commandUsage(self) -> None:
        """
        C{--host} is required, C{--days} is a positive number.
        """
        for args in (["tls-cert"], ["tls-cert", "--host", "x.test", "--days", "0"],
                     ["tls-cert", "--host", "x.test", "--days", "soon"]):
            code, out, err = self.spc(*args)
            self.assertEqual(code, 2, err)
            self.assertTrue(err.startswith("spc: "), err)


class DescriptionTests(SynchronousTestCase):
    """
    L{tls.parseClientDescription} and L{tls.parseServerDescription}.
    """

    def test_client(self) -> None:
        """
        C{tls:HOST:PORT}, with optional trust roots; an IPv6 address in
        brackets or with escaped colons.  Port 0 names no server.
        """
        parse = tls.parseClientDescription
        self.assertEqual(parse("tls:spc.test:9443"), ("spc.test", 9443, None))
        self.assertEqual(
            parse("tls:spc.test:9443:trustRoots=/a\\:b.crt"), ("spc.test", 9443, "/a:b.crt")
        )
        self.assertEqual(parse("tls:[::1]:9443"), ("::1", 9443, None))
        self.assertEqual(parse("tls:\\:\\:1:9443"), ("::1", 9443, None))
        for bad in ["tls:spc.test", "tls:spc.test:x", "tls:spc.test:1:bogus=1",
                    "tcp:spc.test:1", "tls:spc.test:1:trustRoots=a:trustRoots=b",
                    "tls:spc.test:1\\", "tls:spc.test:0", "tls:spc.test:+1"]:
            self.assertRaises(ValueError, parse, bad)

    def test_server(self) -> None:
        """
        C{ssl:PORT:privateKey=KEY:certKey=CERT:interface=ADDRESS} reads and
        matches the key and the certificate.
        """
        written = writeCertificate("spc.test", self.mktemp())
        server = tls.parseServerDescription(
            f"ssl:9443:privateKey={written.keyPath}:certKey={written.certificatePath}"
            ":interface=\\:\\:1"
        )
        self.assertEqual((server.port, server.interface, server.backlog), (9443, "::1", 50))
        self.assertEqual(certificateFingerprint(server.chain[0]), written.fingerprint)

    def test_serverErrors(self) -> None:
        """
        A missing file, a certificate of another key, or an unknown
        parameter is refused with a message naming it.
        """
        one = writeCertificate("one.test", self.mktemp())
        two = writeCertificate("two.test", self.mktemp())
        error = self.assertRaises(
            ConfigurationError, tls.parseServerDescription,
            f"ssl:9443:privateKey={one.keyPath}:certKey={two.certificatePath}",
        )
        self.assertIn("is not for the key", str(error))
        error = self.assertRaises(
            ConfigurationError, tls.parseServerDescription, "ssl:9443:privateKey=/nonexistent"
        )
        self.assertIn("/nonexistent", str(error))
        self.assertRaises(
            ValueError, tls.parseServerDescription, f"ssl:9443:privateKey={one.keyPath}:x=1"
        )
        self.assertRaises(ValueError, tls.parseServerDescription, "ssl:9443")


def certificateFor(privateKey, path: str) -> str:
    """
    Write a self-signed certificate for an existing key to C{path}.
    """
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "spc.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(privateKey.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(privateKey, hashes.SHA256())
    )
    with open(path, "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
    return path


class DaemonTLSTests(SynchronousTestCase):
    """
    The daemon's service with C{--listen ssl:...}.
    """

    def makeService(self, description: str):
        return makeService(
            makeOptions(
                "--key-dir", self.keyDir, "--listen", description, "--inbox", self.mktemp(),
                "--allow-any-client",
            ),
            reactor=MemoryReactorClock(),
        )

    def setUp(self) -> None:
        self.keyDir = keyDirWithIdentity(self)

    def test_tlsEndpoint(self) -> None:
        """
        A certificate with its own key gives one TLS channel.
        """
        written = writeCertificate("spc.test", self.mktemp())
        service = self.makeService(
            f"ssl:0:privateKey={written.keyPath}:certKey={written.certificatePath}"
        )
        self.assertEqual(len(service.endpointServices), 1)

    def test_hostKeyRefused(self) -> None:
        """
        The host key as TLS key stops the daemon with one line saying so:
        each key has one purpose.
        """
        certificate = certificateFor(HOST.privateKey, os.path.join(self.keyDir, "host.crt"))
        error = self.assertRaises(
            SystemExit,
            self.makeService,
            f"ssl:9443:privateKey={os.path.join(self.keyDir, PRIVATE_KEY_NAME)}"
            f":certKey={certificate}",
        )
        self.assertIn("the TLS key is the spc host key", str(error))
        self.assertTrue(str(error).startswith("spc: "), str(error))
