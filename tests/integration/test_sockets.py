# -*- test-case-name: tests.integration.test_sockets -*-
"""
Tests for L{spc.transport.sockets}: every channel's socket, under TLS too,
sends without Nagle's delay and is probed by TCP keepalive; a pairing's
connection sends without Nagle's delay too.
"""

from __future__ import annotations

import socket

from twisted.application.service import MultiService
from twisted.internet import reactor, task
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, serverFromString
from twisted.trial.unittest import SynchronousTestCase, TestCase

from spc.client.connect import connect
from spc.client.pair import PairingProtocol
from spc.crypto import asymmetric
from spc.keys.tlscert import writeCertificate
from spc.keys.trust import AuthorizedKeys, PinnedKey
from spc.protocol import frames
from spc.protocol.paircode import parseCode
from spc.server.service import ServerService
from spc.transport import tls
from spc.transport.sockets import keepAlive, lowLatency, socketOf
from tests.common import cachedExchangeKey, cachedIdentity, inlineKeyPool


class Wrapper:
    """
    A transport over another one whose handle is not a socket, as TLS is.
    """

    def __init__(self, transport) -> None:
        self.transport = transport

    def getHandle(self) -> object:
        return object()


class Plain:
    """
    A transport whose handle is C{handle}.
    """

    def __init__(self, handle) -> None:
        self._handle = handle

    def getHandle(self):
        return self._handle


def tcpSocket(testCase) -> socket.socket:
    """
    A TCP socket connected over loopback, closed after the test.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    for each in (listener, client, server):
        testCase.addCleanup(each.close)
    return client


def option(sock: socket.socket, level: int, name: int) -> int:
    return sock.getsockopt(level, name)


class SocketOptionTests(SynchronousTestCase):
    """
    The options are set on the socket under a transport, whatever wraps it.
    """

    def test_socketOf(self) -> None:
        """
        The socket is found under TLS-like wrappers; a transport in memory
        has none.
        """
        sock = tcpSocket(self)
        self.assertIs(socketOf(Wrapper(Plain(sock))), sock)
        self.assertIs(socketOf(Plain(sock)), sock)
        self.assertIsNone(socketOf(Wrapper(Plain(None))))
        self.assertIsNone(socketOf(object()))
        self.assertIsNone(socketOf(None))

    def test_lowLatency(self) -> None:
        """
        C{TCP_NODELAY} is on, and on Linux C{TCP_NOTSENT_LOWAT} is the given
        bound.
        """
        sock = tcpSocket(self)
        lowLatency(Wrapper(Plain(sock)), 65536)
        self.assertTrue(option(sock, socket.IPPROTO_TCP, socket.TCP_NODELAY))
        if hasattr(socket, "TCP_NOTSENT_LOWAT"):
            self.assertEqual(
                option(sock, socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT), 65536
            )

    def test_keepAlive(self) -> None:
        """
        Keepalive is on, probing after the interval (whole seconds, at least
        one), every interval, C{count} times.
        """
        sock = tcpSocket(self)
        keepAlive(Plain(sock), 4.2, 3)
        self.assertTrue(option(sock, socket.SOL_SOCKET, socket.SO_KEEPALIVE))
        if hasattr(socket, "TCP_KEEPIDLE"):
            self.assertEqual(
                [option(sock, socket.IPPROTO_TCP, name)
                 for name in (socket.TCP_KEEPIDLE, socket.TCP_KEEPINTVL, socket.TCP_KEEPCNT)],
                [5, 5, 3],
            )
        keepAlive(Plain(sock), 0.1, 3)
        if hasattr(socket, "TCP_KEEPIDLE"):
            self.assertEqual(option(sock, socket.IPPROTO_TCP, socket.TCP_KEEPIDLE), 1)

    def test_unixSocket(self) -> None:
        """
        A socket without TCP options goes without them, silently.
        """
        one, two = socket.socketpair()
        self.addCleanup(one.close)
        self.addCleanup(two.close)
        lowLatency(Plain(one), 65536)
        keepAlive(Plain(one), 5.0, 3)


class PairingSocketTests(SynchronousTestCase):
    """
    The client's pairing connection (C{spc pair}, C{spc send --code}) has
    the channels' socket options.
    """

    def test_noDelay(self) -> None:
        """
        C{TCP_NODELAY} is on once the pairing connection is made.
        """
        sock = tcpSocket(self)
        pairing = PairingProtocol(
            parseCode("4-acorn-actor"),
            cachedIdentity("client").publicDER,
            lambda fingerprint: None,
            task.Clock(),
        )
        pairing.makeConnection(Plain(sock))
        self.assertTrue(option(sock, socket.IPPROTO_TCP, socket.TCP_NODELAY))


class ChannelSocketTests(TestCase):
    """
    Every channel of a real session, at both ends, over TCP and over TLS,
    has no Nagle delay and has keepalive from the heartbeat interval.
    """

    timeout = 15

    def setUp(self) -> None:
        self.patch(asymmetric, "generateExchangeKey", cachedExchangeKey)
        self.client = cachedIdentity("client")
        self.server = cachedIdentity("server")

    @inlineCallbacks
    def openSession(self, serverEndpoint, clientEndpoint):
        service = ServerService(
            reactor,
            [serverEndpoint],
            self.server,
            AuthorizedKeys("authorized_keys", [(self.client.fingerprint, "client")]),
            None,
            params=frames.Params(heartbeatInterval=2000),
        )
        application = MultiService()
        service.setServiceParent(application)
        application.startService()
        self.addCleanup(application.stopService)
        [port] = yield service.whenListening()
        session = yield connect(
            reactor,
            [clientEndpoint(port.getHost().port)],
            self.client,
            PinnedKey(self.server.fingerprint),
            "127.0.0.1:1",
            exchangeKeys=inlineKeyPool(),
        )
        self.addCleanup(session.close)
        [serverSession] = service.directory.sessions.values()
        return [*session.liveChannels(), *serverSession.channelSet.connections()]

    def assertOptions(self, channels) -> None:
        self.assertEqual(len(channels), 2)
        for channel in channels:
            sock = socketOf(channel.transport)
            self.assertTrue(option(sock, socket.IPPROTO_TCP, socket.TCP_NODELAY))
            self.assertTrue(option(sock, socket.SOL_SOCKET, socket.SO_KEEPALIVE))
            if hasattr(socket, "TCP_KEEPIDLE"):
                self.assertEqual(option(sock, socket.IPPROTO_TCP, socket.TCP_KEEPIDLE), 2)

    @inlineCallbacks
    def test_tcp(self):
        """
        Over plain TCP.
        """
        channels = yield self.openSession(
            serverFromString(reactor, "tcp:0:interface=127.0.0.1"),
            lambda port: TCP4ClientEndpoint(reactor, "127.0.0.1", port),
        )
        self.assertOptions(channels)

    @inlineCallbacks
    def test_tls(self):
        """
        Over TLS, on the TCP socket below it.
        """
        certificate = writeCertificate("localhost", self.mktemp())
        channels = yield self.openSession(
            tls.serverEndpoint(reactor, tls.parseServerDescription(
                f"ssl:0:privateKey={certificate.keyPath}"
                f":certKey={certificate.certificatePath}:interface=127.0.0.1"
            )),
            lambda port: tls.tlsClientEndpoint(
                reactor, "localhost", port, trustRoots=certificate.certificatePath
            ),
        )
        self.assertOptions(channels)
