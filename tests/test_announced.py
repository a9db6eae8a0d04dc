"""
Tests for L{spc.server.announced} and for opening a session from one
address (amendment A19): what each connection is told of the server's
channels, and L{spc.client.connect.connect} given one endpoint, over real
loopback TCP, plain and TLS.
"""

from __future__ import annotations

from twisted.application.service import MultiService
from twisted.internet import reactor
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, serverFromString
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from spc.client.connect import connect
from spc.errors import ClientNotAuthorized
from spc.client.send import sameKindEndpoints
from spc.crypto import asymmetric
from spc.crypto.suites import A256CBC_HS512, AES256_GCM, CHACHA20_POLY1305
from spc.errors import ChannelsMismatch
from spc.keys.tlscert import writeCertificate
from spc.keys.trust import AuthorizedKeys, PinnedKey
from spc.protocol import records
from spc.protocol.channelmap import NO_PORT, ChannelEntry
from spc.protocol.handshake import channelSpecs
from spc.server.announced import AnnouncedChannels
from spc.server.service import ServerService
from spc.transport import tls
from tests.faultproxy import DOWN, FaultProxy, frame
from tests.integration.test_service import WaitingReceiver
from tests.common import cachedExchangeKey, cachedIdentity

CBC, CHACHA, GCM = (s.suiteID for s in (A256CBC_HS512, CHACHA20_POLY1305, AES256_GCM))


class FakePort:
    def __init__(self, address) -> None:
        self._address = address

    def getHost(self):
        return self._address


class FakeTransport:
    def __init__(self, address) -> None:
        self._address = address

    def getHost(self):
        return self._address


@implementer(ISSLTransport)
class FakeTLSTransport(FakeTransport):
    def getPeerCertificate(self):
        return None


def announced(*listeners, tlsChannels=()):
    """
    L{AnnouncedChannels} for one channel per listening address in
    C{listeners} (L{None}: it did not listen), with the default suites.
    """
    channels = AnnouncedChannels(
        channelSpecs(len(listeners)), [i in tlsChannels for i in range(len(listeners))]
    )
    for index, address in enumerate(listeners):
        channels.listening(index, None if address is None else FakePort(address))
    return channels


def tcp(host: str, port: int):
    return (IPv6Address if ":" in host else IPv4Address)("TCP", host, port)


class AnnouncedChannelsTests(SynchronousTestCase):
    """
    Which ports a connection is told: those it can reach the way it came.
    """

    def test_sameAddress(self) -> None:
        """
        Every channel listening on the address a connection arrived at is
        announced with its port, with every channel's suite.
        """
        channels = announced(*(tcp("127.0.0.1", 9000 + i) for i in range(4)))
        self.assertEqual(
            channels.forConnection(FakeTransport(tcp("127.0.0.1", 9000))),
            (ChannelEntry(CBC, 9000), ChannelEntry(CHACHA, 9001),
             ChannelEntry(CBC, 9002), ChannelEntry(CHACHA, 9003)),
        )

    def test_everyAddress(self) -> None:
        """
        A listener on every IPv4 address is reachable at any IPv4 address
        (an IPv4 address mapped into IPv6 included) but not at an IPv6 one;
        one on C{::} at any address.
        """
        channels = announced(tcp("0.0.0.0", 9000), tcp("::", 9001))
        for arrived, ports in [
            (tcp("10.1.2.3", 9000), [9000, 9001]),
            (tcp("::ffff:10.1.2.3", 9001), [9000, 9001]),
            (tcp("fe80::1", 9001), [NO_PORT, 9001]),
        ]:
            entries = channels.forConnection(FakeTransport(arrived))
            self.assertEqual([entry.port for entry in entries], ports, arrived)

    def test_otherAddress(self) -> None:
        """
        A channel that listens on another address than the connection
        reached, or not over TCP, or did not listen, is announced without
        a port, with its suite.
        """
        channels = announced(
            tcp("127.0.0.1", 9000), tcp("127.0.0.2", 9001), UNIXAddress("/tmp/s"), None
        )
        entries = channels.forConnection(FakeTransport(tcp("127.0.0.1", 9000)))
        self.assertEqual([entry.port for entry in entries], [9000, NO_PORT, NO_PORT, NO_PORT])
        self.assertEqual([entry.suite for entry in entries], [CBC, CHACHA, CBC, CHACHA])

    def test_sameKind(self) -> None:
        """
        A connection over TLS is told the TLS ports, a plain one the plain
        ports.
        """
        channels = announced(
            tcp("127.0.0.1", 9443), tcp("127.0.0.1", 9000), tcp("127.0.0.1", 9444),
            tlsChannels=(0, 2),
        )
        overTLS = channels.forConnection(FakeTLSTransport(tcp("127.0.0.1", 9443)))
        self.assertEqual([entry.port for entry in overTLS], [9443, NO_PORT, 9444])
        plain = channels.forConnection(FakeTransport(tcp("127.0.0.1", 9000)))
        self.assertEqual([entry.port for entry in plain], [NO_PORT, 9000, NO_PORT])

    def test_unixConnection(self) -> None:
        """
        A connection over a UNIX socket is told no port at all.
        """
        channels = announced(tcp("0.0.0.0", 9000))
        entries = channels.forConnection(FakeTransport(UNIXAddress("/tmp/s")))
        self.assertEqual(entries, (ChannelEntry(CBC, NO_PORT),))


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
