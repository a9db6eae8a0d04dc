# -*- test-case-name: tests.integration.test_tls -*-
"""
Tests for the TLS underlay over real connections: L{spc.transport.tls}
(endpoints, pinning and the errors a user sees) in-process over loopback TCP,
and the daemon and C{spc send} over TLS as the real programs.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl

from twisted.application.service import MultiService
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.trial.unittest import SkipTest, TestCase

from spc.client.connect import connect
from spc.crypto import asymmetric
from spc.errors import TLSFailed
from spc.keys.tlscert import writeCertificate
from spc.keys.trust import AuthorizedKeys, PinnedKey
from spc.protocol import records
from spc.server.service import ServerService
from spc.transport import tls
from spc.transport.channel import DEFAULT_HANDSHAKE_TIMEOUT
from tests.common import cachedExchangeKey, cachedIdentity
from tests.integration.test_endtoend import Daemon, EndToEndTestCase, Output
from tests.integration.test_service import WaitingReceiver


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
