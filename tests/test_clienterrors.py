"""
What the client says when a connection goes wrong (issue 12, part 3): a
server that never answers, a port that does or does not speak TLS, a
certificate no authority vouches for, a refusal of this client, a busy
server, and sending to one address (L{spc.client.send.send}).
"""

from __future__ import annotations

from OpenSSL import SSL
from twisted.internet import protocol, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from spc.client.connect import connect
from spc.client.send import send
from spc.errors import ClientNotAuthorized, NoAnswer, NotTLS, ProtocolError, TLSFailed
from spc.keys.tlscert import writeCertificate
from spc.keys.trust import AuthorizedKeys, PinnedKey
from spc.protocol.channelmap import ChannelExpectation
from spc.protocol.clienthandshake import ClientHandshake
from spc.server.directory import Limits
from spc.server.service import ServerService
from spc.transport import tls
from spc.transport.channel import DEFAULT_HANDSHAKE_TIMEOUT, ChannelProtocol
from spc.transport.tls import TLSPeer, explainFailure
from tests.common import RecordingChannelOwner, clientIdentity, exchangeKeyDER
from tests.integration.test_send import ServerTestCase, sharedIdentity


def clientChannel(clock: Clock):
    """
    A client connection on a L{StringTransport} to 127.0.0.1:9000, made.

    @return: C{(protocol, owner)}.
    """
    owner = RecordingChannelOwner()
    identity = clientIdentity()

    def makeHandshake(channel):
        return ClientHandshake(
            ChannelExpectation(), identity.privateKey, identity.publicDER, exchangeKeyDER(),
            lambda fingerprint: None, channel,
        )

    channel = ChannelProtocol(owner, makeHandshake, clock, isServer=False)
    channel.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 9000)))
    return channel, owner


class SilentServerTests(SynchronousTestCase):
    """
    A server that takes the connection and says nothing.
    """

    def test_noAnswer(self) -> None:
        """
        Silence until the handshake deadline is "no answer from HOST:PORT
        within 10 s", not a protocol error: the peer sent nothing.
        """
        clock = Clock()
        channel, owner = clientChannel(clock)
        clock.advance(DEFAULT_HANDSHAKE_TIMEOUT)
        [(_, error)] = owner.failed
        self.assertIsInstance(error, NoAnswer)
        self.assertNotIsInstance(error, ProtocolError)
        self.assertTrue(
            str(error).startswith("no answer from 127.0.0.1:9000 within 10 s; "), str(error)
        )
        self.assertIn("TLS port", str(error))
        self.assertTrue(channel.dead)

    def test_closedWithoutAWord(self) -> None:
        """
        A server that closes before sending a byte is said to have closed
        without answering.
        """
        channel, owner = clientChannel(Clock())
        channel.connectionLost(Failure(ConnectionResetError()))
        [(_, error)] = owner.failed
        self.assertEqual(
            str(error),
            f"127.0.0.1:9000 closed the connection without answering; {NoAnswer.HINT}",
        )

    def test_closedOverTLS(self) -> None:
        """
        Over TLS, a close before any SPC/1 byte more likely means a port
        without TLS, and the hint says so.
        """
        channel, owner = clientChannel(Clock())
        channel.tlsPeer = TLSPeer("spc.example:9443", "spc.example")
        channel.connectionLost(Failure(ConnectionResetError()))
        [(_, error)] = owner.failed
        self.assertEqual(
            str(error),
            f"spc.example:9443 closed the connection without answering; {NoAnswer.TLS_HINT}",
        )

    def test_closedMidHandshake(self) -> None:
        """
        One that closes after it spoke is still a handshake cut short.
        """
        channel, owner = clientChannel(Clock())
        channel.dataReceived(b"\x00\x00\x01")
        channel.connectionLost(Failure(ConnectionResetError()))
        [(_, error)] = owner.failed
        self.assertIsInstance(error, ProtocolError)
        self.assertIn("closed during the handshake", str(error))


class TLSExplanationTests(SynchronousTestCase):
    """
    L{explainFailure} for the TLS mistakes users make.
    """

    def explain(self, reason: str, hostname: str = "spc.example") -> Exception:
        error = SSL.Error([("SSL routines", "", reason)])
        return explainFailure(Failure(error), TLSPeer("spc.example:9000", hostname)).value

    def test_notTLS(self) -> None:
        """
        TLS to a port that does not speak it is not a trust failure: exit
        code 1, saying the port does not speak TLS.
        """
        error = self.explain("wrong version number")
        self.assertIsInstance(error, NotTLS)
        self.assertEqual(error.exitCode, 1)
        self.assertIn("spc.example:9000 does not speak TLS", str(error))
        self.assertIn("connect without tls:", str(error))

    def test_verifyFailedHint(self) -> None:
        """
        A certificate no trusted authority signed gets the client the two
        ways to trust it; the server's log gets no such advice.
        """
        error = self.explain("certificate verify failed")
        self.assertEqual(error.exitCode, 3)
        self.assertIn("trustRoots=", str(error))
        self.assertIn("--tls-fingerprint", str(error))
        self.assertNotIn("trustRoots=", str(self.explain("certificate verify failed", "")))


class ConnectionErrorTests(ServerTestCase):
    """
    The same, against real servers on loopback.
    """

    timeout = 20

    @inlineCallbacks
    def startTLSServer(self):
        """
        Start a server with one TLS channel.

        @return: its certificate.
        """
        certificate = writeCertificate("localhost", self.mktemp())
        description = (
            f"ssl:0:privateKey={certificate.keyPath}:certKey={certificate.certificatePath}"
            ":interface=127.0.0.1"
        )
        self.server = sharedIdentity("server")
        self.service = ServerService(
            reactor,
            [tls.serverEndpoint(reactor, tls.parseServerDescription(description))],
            self.server,
            AuthorizedKeys.parse(f"{sharedIdentity('client').fingerprint} test\n", "test"),
            None,
        )
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.ports = [port.getHost().port for port in (yield self.service.whenListening())]
        return certificate

    def listen(self, factory):
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return port.getHost().port

    def open(self, endpoint, hostPort: str, **options):
        return connect(
            reactor, endpoint, sharedIdentity("client"),
            PinnedKey(sharedIdentity("server").fingerprint), hostPort, **options,
        )

    @inlineCallbacks
    def test_silentPort(self):
        """
        A port that accepts and never answers fails with L{NoAnswer} at the
        handshake deadline, naming the address.
        """
        port = self.listen(protocol.Factory.forProtocol(protocol.Protocol))
        error = yield self.assertFailure(
            self.open(TCP4ClientEndpoint(reactor, "127.0.0.1", port), f"127.0.0.1:{port}",
                      handshakeTimeout=0.2),
            NoAnswer,
        )
        self.assertTrue(str(error).startswith(f"no answer from 127.0.0.1:{port} within 0.2 s"))

    @inlineCallbacks
    def test_plainToTLSPort(self):
        """
        Plain TCP to a TLS port gets no answer (TLS waits for the client
        to speak first), and the message says a TLS port wants tls:.
        """
        yield self.startTLSServer()
        port = self.ports[0]
        error = yield self.assertFailure(
            self.open(TCP4ClientEndpoint(reactor, "127.0.0.1", port), f"127.0.0.1:{port}",
                      handshakeTimeout=0.5),
            NoAnswer,
        )
        self.assertIn("then connect with tls:", str(error))

    @inlineCallbacks
    def test_tlsToPlainPort(self):
        """
        TLS to a plain spc port fails with L{NotTLS}, exit code 1.
        """
        yield self.startServer(channels=1)
        port = self.ports[0]
        error = yield self.assertFailure(
            self.open(
                tls.tlsClientEndpoint(reactor, "127.0.0.1", port, pins=["SHA256:" + "A" * 43]),
                f"127.0.0.1:{port}",
            ),
            NotTLS,
        )
        self.assertEqual(error.exitCode, 1)
        self.assertIn(f"127.0.0.1:{port} does not speak TLS", str(error))

    @inlineCallbacks
    def test_untrustedCertificateHint(self):
        """
        A certificate that the trust roots do not vouch for is refused
        (exit code 3) with the ways to trust it.
        """
        yield self.startTLSServer()
        other = writeCertificate("localhost", self.mktemp())
        port = self.ports[0]
        error = yield self.assertFailure(
            self.open(
                tls.tlsClientEndpoint(reactor, "localhost", port, other.certificatePath),
                f"localhost:{port}",
            ),
            TLSFailed,
        )
        self.assertEqual(error.exitCode, 3)
        self.assertIn("certificate verify failed", str(error))
        self.assertIn("--tls-fingerprint", str(error))

    @inlineCallbacks
    def test_refusedClientNamed(self):
        """
        A client the server does not list is told its own fingerprint, to
        paste into the server's authorized_keys.
        """
        yield self.startServer(authorized="other")
        error = yield self.assertFailure(
            send(reactor, self.makeRequest([b"x"])), ClientNotAuthorized
        )
        self.assertTrue(
            str(error).endswith(
                f"fingerprint to its authorized_keys: {sharedIdentity('client').fingerprint}"
            ),
            str(error),
        )
        self.assertEqual(error.exitCode, 3)

    @inlineCallbacks
    def test_busySaid(self):
        """
        A busy server is retried, and the user is told how long the wait
        is each time.
        """
        yield self.startServer(limits=Limits(newSessionsPerIdentity=1, newSessionWindow=1.0))
        yield send(reactor, self.makeRequest([b"first"]))
        said = []
        summary = yield send(reactor, self.makeRequest([b"second"], notify=said.append))
        self.assertEqual(summary.messages, 1)
        self.assertTrue(said)
        for line in said:
            self.assertRegex(line, r"^server busy, retrying in \d+\.\d s$")

    @inlineCallbacks
    def test_sendToOneAddress(self):
        """
        L{send} given only the first address opens every channel the
        server announces.
        """
        yield self.startServer()
        request = self.makeRequest(
            [b"x"], endpoints=[f"tcp:127.0.0.1:{self.ports[0]}"], oneAddress=True
        )
        summary = yield send(reactor, request)
        self.assertEqual((summary.messages, summary.channels), (1, 4))

