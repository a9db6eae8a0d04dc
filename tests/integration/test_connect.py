"""
Tests for L{spc.client.connect.connect} against real servers on loopback:
the session opened from one address (amendment A19), plain and TLS, and
what the client says when a connection goes wrong (issue 12, part 3).
"""

from __future__ import annotations

from twisted.application.service import MultiService
from twisted.internet import protocol, reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, serverFromString
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from spc.client.connect import connect
from spc.client.send import sameKindEndpoints
from spc.crypto import asymmetric
from spc.crypto.suites import A256CBC_HS512, AES256_GCM, CHACHA20_POLY1305
from spc.errors import ChannelsMismatch, ClientNotAuthorized, NoAnswer, NotTLS, TLSFailed
from spc.keys.tlscert import writeCertificate
from spc.keys.trust import AuthorizedKeys, PinnedKey
from spc.protocol import records
from spc.server.service import ServerService
from spc.transport import tls
from tests.common import cachedExchangeKey, cachedIdentity
from tests.faultproxy import DOWN, FaultProxy, frame
from tests.integration.test_send import ServerTestCase, sharedIdentity
from tests.integration.test_service import WaitingReceiver


class OneAddressTests(TestCase):
    """
    A real L{ServerService} on loopback and L{connect} given one endpoint.
    """

    timeout = 20

    def setUp(self):
        self.patch(asymmetric, "generateExchangeKey", cachedExchangeKey)
        self.client = cachedIdentity("client")
        self.server = cachedIdentity("server")
        self.receiver = WaitingReceiver()

    @inlineCallbacks
    def serve(self, endpoints, suites=None):
        """
        Start a server on C{endpoints}.

        @return: its listening ports, in channel order.
        """
        self.service = ServerService(
            reactor,
            endpoints,
            self.server,
            AuthorizedKeys("authorized_keys", [(self.client.fingerprint, "client")]),
            self.receiver,
            suites=suites,
        )
        application = MultiService()
        self.service.setServiceParent(application)
        application.startService()
        self.addCleanup(application.stopService)
        ports = yield self.service.whenListening()
        return ports

    @inlineCallbacks
    def open(self, endpoints, hostPort: str, **options):
        session = yield connect(
            reactor, endpoints, self.client, PinnedKey(self.server.fingerprint), hostPort,
            **options,
        )
        self.addCleanup(session.close)
        return session

    @inlineCallbacks
    def serverChannels(self, session, count: int):
        """
        The server's channels of C{session} once it counts C{count} (a
        joined channel counts once the client confirmed its keys).
        """
        for _ in range(100):
            serverSession = self.service.directory.sessions.get(session.id)
            if serverSession is not None and len(serverSession.channels) >= count:
                return sorted(serverSession.channels)
            yield deferLater(reactor, 0.02, lambda: None)
        return sorted(serverSession.channels) if serverSession else []

    @inlineCallbacks
    def test_everyChannelFromOneAddress(self):
        """
        Given only the first port, the client opens all four channels, each
        with the suite the server announces for it (here a map the client
        was never told), and a message gets through.
        """
        suites = [AES256_GCM, CHACHA20_POLY1305, A256CBC_HS512, AES256_GCM]
        ports = yield self.serve(
            [serverFromString(reactor, "tcp:0:interface=127.0.0.1") for _ in range(4)], suites
        )
        first = ports[0].getHost().port
        session = yield self.open(
            TCP4ClientEndpoint(reactor, "127.0.0.1", first), f"127.0.0.1:{first}"
        )
        self.assertEqual(sorted(session.channels), [0, 1, 2, 3])
        self.assertEqual([session.channels[i].result.keys.suite for i in range(4)], suites)
        self.assertEqual(
            [session.channels[i].transport.getPeer().port for i in range(4)],
            [port.getHost().port for port in ports],
        )
        channels = yield self.serverChannels(session, 4)
        self.assertEqual(channels, [0, 1, 2, 3])
        yield session.sendMessage(b"one address", records.KIND_TEXT)
        messages = yield self.receiver.waitFor(1)
        self.assertEqual(messages[0][1], b"one address")

    @inlineCallbacks
    def test_anyChannelFirst(self):
        """
        An address that is not the first channel's makes the session on
        its own channel, and the others are joined.
        """
        ports = yield self.serve(
            [serverFromString(reactor, "tcp:0:interface=127.0.0.1") for _ in range(3)]
        )
        second = ports[1].getHost().port
        session = yield self.open(
            TCP4ClientEndpoint(reactor, "127.0.0.1", second), f"127.0.0.1:{second}"
        )
        self.assertEqual(sorted(session.channels), [0, 1, 2])

    @inlineCallbacks
    def test_unreachableChannelSkipped(self):
        """
        A channel announced without a port (here one listening on another
        address than the client reached) is not opened; the session runs
        on the others.
        """
        ports = yield self.serve([
            serverFromString(reactor, "tcp:0:interface=127.0.0.1"),
            serverFromString(reactor, "tcp:0:interface=127.0.0.2"),
            serverFromString(reactor, "tcp:0:interface=127.0.0.1"),
        ])
        first = ports[0].getHost().port
        session = yield self.open(
            TCP4ClientEndpoint(reactor, "127.0.0.1", first), f"127.0.0.1:{first}"
        )
        self.assertEqual(sorted(session.channels), [0, 2])

    @inlineCallbacks
    def test_givenChannelsCounted(self):
        """
        The list form (one endpoint per channel) still works, and one that
        gives fewer channels than the server has is refused before
        anything is sent, saying how many it has.
        """
        ports = yield self.serve(
            [serverFromString(reactor, "tcp:0:interface=127.0.0.1") for _ in range(2)]
        )
        numbers = [port.getHost().port for port in ports]
        endpoints = [TCP4ClientEndpoint(reactor, "127.0.0.1", n) for n in numbers]
        session = yield self.open(endpoints, f"127.0.0.1:{numbers[0]}")
        self.assertEqual(sorted(session.channels), [0, 1])
        error = yield self.assertFailure(
            self.open(endpoints[:1], f"127.0.0.1:{numbers[0]}"), ChannelsMismatch
        )
        self.assertIn("the daemon has 2 channels", str(error))
        self.assertIn("you gave 1", str(error))

    @inlineCallbacks
    def test_tlsFirstChannel(self):
        """
        From one C{tls:} address, the other TLS channels are joined over
        TLS with the same pin, and the plain TCP channel, announced without
        a port on a TLS connection, is left out.
        """
        certificate = writeCertificate("localhost", self.mktemp())
        description = (
            f"ssl:0:privateKey={certificate.keyPath}:certKey={certificate.certificatePath}"
            ":interface=127.0.0.1"
        )
        ports = yield self.serve([
            tls.serverEndpoint(reactor, tls.parseServerDescription(description)),
            serverFromString(reactor, "tcp:0:interface=127.0.0.1"),
            tls.serverEndpoint(reactor, tls.parseServerDescription(description)),
        ])
        first = ports[0].getHost().port
        pins = [certificate.fingerprint]
        target = f"tls:127.0.0.1:{first}"
        session = yield self.open(
            tls.clientEndpoint(reactor, target, pins),
            f"127.0.0.1:{first}",
            endpointFor=sameKindEndpoints(reactor, target, pins),
        )
        self.assertEqual(sorted(session.channels), [0, 2])
        for index in (0, 2):
            self.assertTrue(ISSLTransport.providedBy(session.channels[index].transport))

    @inlineCallbacks
    def test_mapRewrittenOnTheWire(self):
        """
        T9 over real TCP: a man in the middle who flips a bit of a port in
        the map of channel 0's F1 gets no session (the server refuses the
        client's signature, alert 2), and the server keeps serving: an
        untouched client then connects.
        """
        ports = yield self.serve(
            [serverFromString(reactor, "tcp:0:interface=127.0.0.1") for _ in range(2)]
        )
        proxy = FaultProxy(reactor, [port.getHost().port for port in ports])
        yield proxy.start()
        self.addCleanup(proxy.stop)
        proxy.plan(0, DOWN).flip(frame(0), -1)
        endpoints = [TCP4ClientEndpoint(reactor, "127.0.0.1", port) for port in proxy.ports]
        name = f"127.0.0.1:{proxy.ports[0]}"
        yield self.assertFailure(self.open(endpoints, name), ClientNotAuthorized)
        self.assertEqual(self.service.directory.sessions, {})
        session = yield self.open(endpoints, name)
        self.assertEqual(sorted(session.channels), [0, 1])


class ConnectionErrorTests(ServerTestCase):
    """
    What L{connect} fails with when a connection goes wrong: a server that
    never answers, a port that does or does not speak TLS, a certificate
    no authority vouches for.
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
