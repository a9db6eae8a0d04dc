# -*- test-case-name: tests.test_tls -*-
"""
Tests for the TLS underlay: L{spc.keys.tlscert} (certificates and their
fingerprints), L{spc.transport.tls} (descriptions, endpoints, pinning and the errors
a user sees), C{spc tls-cert}, and the daemon and C{spc send} over TLS,
in-process over loopback TCP and as the real programs.
"""

from __future__ import annotations

import datetime
import io
import os
import shutil
import socket
import ssl
import stat

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from twisted.application.service import MultiService
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from spc.cli.main import main
from spc.client.connect import connect
from spc.crypto import asymmetric
from spc.errors import ConfigurationError, TLSFailed, TLSFilesExist
from spc.keys.identity import PRIVATE_KEY_NAME
from spc.keys.tlscert import certificateFingerprint, writeCertificate
from spc.keys.trust import AuthorizedKeys, PinnedKey
from spc.protocol import records
from spc.server.service import ServerService
from spc.tap import makeService
from spc.transport import tls
from spc.transport.channel import DEFAULT_HANDSHAKE_TIMEOUT
from tests.test_endtoend import Daemon, EndToEndTestCase, Output
from tests.test_service import WaitingReceiver
from tests.test_session import cachedExchangeKey, cachedIdentity
from tests.test_tap import HOST, keyDirWithIdentity, makeOptions


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


class LoopbackTests(TestCase):
    """
    A L{ServerService} behind a TLS listener and L{connect} through TLS
    client endpoints, over real loopback TCP.
    """

    timeout = 15

    @inlineCallbacks
    def setUp(self):
        self.patch(asymmetric, "generateExchangeKey", cachedExchangeKey)
        self.client = cachedIdentity("client")
        self.server = cachedIdentity("server")
        self.certificate = writeCertificate("localhost", self.mktemp())
        self.receiver = WaitingReceiver()
        self.service = ServerService(
            reactor,
            [tls.serverEndpoint(reactor, tls.parseServerDescription(
                f"ssl:0:privateKey={self.certificate.keyPath}"
                f":certKey={self.certificate.certificatePath}:interface=127.0.0.1"
            ))],
            self.server,
            AuthorizedKeys("authorized_keys", [(self.client.fingerprint, "client")]),
            self.receiver,
        )
        self.application = MultiService()
        self.service.setServiceParent(self.application)
        self.application.startService()
        self.addCleanup(self.application.stopService)
        ports = yield self.service.whenListening()
        self.port = ports[0].getHost().port

    @inlineCallbacks
    def connect(self, host: str = "127.0.0.1", **options):
        endpoint = tls.tlsClientEndpoint(reactor, host, self.port, **options)
        session = yield connect(
            reactor,
            [endpoint],
            self.client,
            PinnedKey(self.server.fingerprint),
            f"127.0.0.1:{self.port}",
        )
        self.addCleanup(session.close)
        return session

    @inlineCallbacks
    def assertDelivers(self, **options):
        session = yield self.connect(**options)
        yield session.sendMessage(b"through TLS", records.KIND_TEXT)
        messages = yield self.receiver.waitFor(1)
        self.assertEqual([m[1] for m in messages], [b"through TLS"])
        channel = session.channels[0]
        self.assertIsInstance(channel.transport, TLSMemoryBIOProtocol)
        self.assertEqual(channel.transport.getHandle().get_protocol_version_name(), "TLSv1.3")

    def test_trustedName(self):
        """
        Trusting the certificate and checking the name it holds, a message
        gets through over TLS 1.3, the channel reading straight from TLS.
        """
        return self.assertDelivers(host="localhost", trustRoots=self.certificate.certificatePath)

    @inlineCallbacks
    def test_wrongName(self):
        """
        A certificate that does not name the host is refused with a
        L{TLSFailed} naming the address reached and the name expected.
        """
        error = yield self.assertFailure(
            self.connect(trustRoots=self.certificate.certificatePath), TLSFailed
        )
        self.assertEqual(
            str(error),
            f'TLS: the certificate of 127.0.0.1:{self.port} is not valid for "127.0.0.1": '
            "no name in it matches",
        )
        self.assertEqual(error.exitCode, 3)

    @inlineCallbacks
    def test_untrusted(self):
        """
        Without the certificate among the trust roots, the handshake fails
        with a L{TLSFailed}.
        """
        other = writeCertificate("localhost", self.mktemp())
        error = yield self.assertFailure(
            self.connect("localhost", trustRoots=other.certificatePath), TLSFailed
        )
        self.assertTrue(
            str(error).startswith(f"TLS: the connection with localhost:{self.port} failed: "),
            str(error),
        )
        self.assertIn("certificate verify failed", str(error))

    def test_rightPin(self):
        """
        Pinning the certificate's fingerprint, a message gets through,
        whatever name the certificate holds (here not the address reached).
        """
        return self.assertDelivers(pins=[self.certificate.fingerprint])

    @inlineCallbacks
    def test_wrongPin(self):
        """
        Another fingerprint is refused with a L{TLSFailed} showing both.
        """
        wrong = writeCertificate("localhost", self.mktemp()).fingerprint
        error = yield self.assertFailure(self.connect(pins=[wrong]), TLSFailed)
        self.assertEqual(
            str(error),
            f"TLS: the certificate of 127.0.0.1:{self.port} has SPKI fingerprint "
            f"{self.certificate.fingerprint}, expected {wrong}",
        )

    def test_pinAndTrustRoots(self):
        """
        A pin and trust roots together are refused: it would be unclear
        which check applies.
        """
        self.assertRaises(
            ValueError, tls.tlsClientEndpoint, reactor, "127.0.0.1", 1,
            trustRoots=self.certificate.certificatePath, pins=[self.certificate.fingerprint],
        )


def descriptors(pid: int) -> int:
    """
    How many file descriptors process C{pid} holds.
    """
    return len(os.listdir(f"/proc/{pid}/fd"))


_HOLDING_STATES = {"01", "08"}
"""
ESTABLISHED and CLOSE_WAIT in C{/proc/net/tcp}: a socket its process has
not closed.
"""


def openServerSockets(ports: list[int]) -> int:
    """
    How many TCP sockets with a local port in C{ports} (the daemon's end of
    a connection) their process has not closed.
    """
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                port = int(fields[1].rsplit(":", 1)[1], 16)
                count += port in ports and fields[3] in _HOLDING_STATES
    return count


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


class ProgramTests(EndToEndTestCase):
    """
    The real C{twistd -n spc} with two C{--listen ssl:} channels, the real
    C{spc send --connect tls:...}, and the real C{openssl s_client}.
    """

    @inlineCallbacks
    def setUp(self):
        super().setUp()
        self.authorize(self.serverKeys, "client")
        self.certificate = writeCertificate("localhost", os.path.join(self.root, "tls"))
        self.tlsPorts = self.ports[:2]
        listen = []
        for port in self.tlsPorts:
            listen += [
                "--listen",
                f"ssl:{port}:privateKey={self.certificate.keyPath}"
                f":certKey={self.certificate.certificatePath}:interface=127.0.0.1",
            ]
        self.daemon = Daemon(
            self.root,
            self.env,
            ["--key-dir", self.serverKeys, "--inbox", self.inbox, *listen],
        )
        self.addCleanup(self.checkDaemonLog, self.daemon)
        self.addCleanup(self.daemon.stop)
        yield self.daemon.start()

    def sendTLS(self, host: str, *extra: str):
        connect = []
        for port in self.tlsPorts:
            connect += ["--connect", f"tls:{host}:{port}{extra[0] if extra else ''}"]
        return self.spc(
            "send", "--key-dir", self.clientKeys, *connect,
            "--server-fingerprint", self.serverFingerprint, "--message", "über TLS",
            *extra[1:],
        )

    @inlineCallbacks
    def test_delivered(self):
        """
        Trusting the daemon's certificate and checking its name, C{spc
        send} delivers over both TLS channels and exits 0.
        """
        result = yield self.sendTLS(
            "localhost", f":trustRoots={self.certificate.certificatePath}"
        )
        self.assertDelivered(result, 1, channels=2)
        (record,) = self.storedMessages()
        self.assertRecord(record, "über TLS")

    @inlineCallbacks
    def test_wrongName(self):
        """
        Reaching the daemon by an address its certificate does not name:
        one line saying so, exit code 3, nothing stored.
        """
        result = yield self.sendTLS(
            "127.0.0.1", f":trustRoots={self.certificate.certificatePath}"
        )
        self.assertFailed(
            result, 3,
            f'spc: TLS: the certificate of 127.0.0.1:{self.tlsPorts[0]} is not valid for '
            '"127.0.0.1"',
        )
        self.assertEqual(self.storedMessages(), [])

    @inlineCallbacks
    def test_wrongPin(self):
        """
        A pin of another certificate: one line showing both fingerprints,
        exit code 3, nothing stored.
        """
        other = writeCertificate("localhost", os.path.join(self.root, "other")).fingerprint
        result = yield self.sendTLS("127.0.0.1", "", "--tls-fingerprint", other)
        self.assertFailed(
            result, 3,
            f"spc: TLS: the certificate of 127.0.0.1:{self.tlsPorts[0]} has SPKI fingerprint "
            f"{self.certificate.fingerprint}, expected {other}",
        )
        self.assertEqual(self.storedMessages(), [])

    @inlineCallbacks
    def idleDescriptors(self, pid: int):
        """
        @return: a Deferred firing with the descriptors the daemon holds
            once that number stayed the same for half a second.
        """
        previous = None
        while True:
            count = descriptors(pid)
            if count == previous and not openServerSockets(self.tlsPorts):
                return count
            previous = count
            yield deferLater(reactor, 0.5, lambda: None)

    @inlineCallbacks
    def test_silentConnectionsReleased(self):
        """
        From the address spc send uses: 100 TCP connections that send
        nothing (no TLS handshake) to one channel, 50 before and 50 after
        100 to the other channel that finish TLS and then say nothing.  The
        first 64 wait in their handshake and time out; beyond the
        per-address cap the others are answered "busy", over TLS once its
        handshake is done.  Within the handshake timeout + 2 s the daemon
        has closed every one of them and holds no more descriptors than
        when idle, and a good C{spc send} over C{tls:} from the same
        address delivers.
        """
        pid = self.daemon.transport.pid
        if not os.path.isdir(f"/proc/{pid}/fd") or not os.path.exists("/proc/net/tcp"):
            raise SkipTest("needs Linux's /proc")
        send = ("127.0.0.1", "", "--tls-fingerprint", self.certificate.fingerprint)
        self.assertDelivered((yield self.sendTLS(*send)), 1, channels=2)
        idle = yield self.idleDescriptors(pid)
        started = reactor.seconds()
        held: list[socket.socket] = []
        self.addCleanup(lambda: [s.close() for s in held])

        def bare(count: int) -> None:
            for _ in range(count):
                held.append(socket.create_connection(("127.0.0.1", self.tlsPorts[0]), 5))

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        bare(50)
        handshakes = 0
        for _ in range(100):
            raw = socket.create_connection(("127.0.0.1", self.tlsPorts[1]), 5)
            held.append(raw)
            try:
                held.append(context.wrap_socket(raw))
                handshakes += 1
            except OSError:
                pass  # answered busy and cut off before its handshake ended
        bare(50)
        self.assertGreater(handshakes, 0)
        self.assertGreater(descriptors(pid), idle + 64)
        deadline = started + DEFAULT_HANDSHAKE_TIMEOUT + 2
        while openServerSockets(self.tlsPorts) or descriptors(pid) > idle:
            self.assertLess(
                reactor.seconds(), deadline,
                f"{openServerSockets(self.tlsPorts)} connections still open, "
                f"{descriptors(pid)} descriptors (idle: {idle})",
            )
            yield deferLater(reactor, 0.1, lambda: None)
        self.assertDelivered((yield self.sendTLS(*send)), 1, channels=2)
        self.assertEqual(len(self.storedMessages()), 2)

    def openssl(self, openssl: str, *args: str):
        """
        Run C{openssl s_client args} with its input closed, for at most 10 s.

        @return: a Deferred firing with its L{Result}.
        """
        output = Output()
        transport = reactor.spawnProcess(
            output, "/usr/bin/timeout", ["timeout", "10", openssl, "s_client", *args],
            env=self.env,
        )
        transport.closeStdin()
        return output.whenEnded()

    @inlineCallbacks
    def test_openssl(self):
        """
        C{openssl s_client} completes a TLS 1.3 handshake with the daemon
        and receives F1; one limited to TLS 1.2 is refused, which the
        daemon logs in one line.
        """
        openssl = shutil.which("openssl")
        if openssl is None:
            raise SkipTest("openssl is not installed")
        address = f"127.0.0.1:{self.tlsPorts[0]}"
        common = ["-connect", address, "-servername", "localhost", "-brief", "-no_ign_eof"]
        result = yield self.openssl(openssl, "-tls1_3", *common)
        self.assertEqual(result.code, 0, result)
        self.assertIn("CONNECTION ESTABLISHED", result.err)
        self.assertIn("Protocol version: TLSv1.3", result.err)
        result = yield self.openssl(openssl, "-tls1_2", *common)
        self.assertNotEqual(result.code, 0, result)
        self.assertNotIn("CONNECTION ESTABLISHED", result.err)
        yield self.daemon.output.waitFor("TLS: the connection with 127.0.0.1:", 5)
