# -*- test-case-name: tests.integration.test_service -*-
"""
Tests for L{spc.server.service} and L{spc.client.connect} over real
loopback TCP: sessions made, ended and refused, and the service stopped
while they run.
"""

from __future__ import annotations

from twisted.application.service import MultiService
from twisted.internet import protocol, reactor, task
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, serverFromString
from twisted.internet.error import ConnectionRefusedError
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from spc.client.connect import connect
from spc.crypto import asymmetric
from spc.crypto.suites import A256CBC_HS512, CHACHA20_POLY1305
from spc.errors import ServerShuttingDown
from spc.interfaces import IMessageReceiver
from spc.keys.trust import AuthorizedKeys, PinnedKey
from spc.protocol import frames, records
from spc.server.service import ServerService
from tests.common import cachedExchangeKey, cachedIdentity


FRAGMENT = frames.DEFAULT_FRAGMENT_SIZE


@implementer(IMessageReceiver)
class WaitingReceiver:
    """
    An application receiver whose messages can be waited for.

    @ivar messages: C{(session, data, kind)} in arrival order.
    """

    def __init__(self) -> None:
        self.messages: list = []
        self._waiters: list[Deferred] = []

    def messageReceived(self, session, data, kind):
        self.messages.append((session, data, kind))
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    @inlineCallbacks
    def waitFor(self, count: int):
        """
        Fire once C{count} messages arrived.
        """
        while len(self.messages) < count:
            waiter: Deferred = Deferred()
            self._waiters.append(waiter)
            yield waiter
        return self.messages


def whenLost(connection: protocol.Protocol) -> Deferred:
    """
    A Deferred firing after C{connection}'s C{connectionLost}.
    """
    lost: Deferred = Deferred()
    original = connection.connectionLost

    def connectionLost(reason=protocol.connectionDone):
        try:
            original(reason)
        finally:
            lost.callback(None)

    connection.connectionLost = connectionLost
    return lost


class TrackingFactory(protocol.Factory):
    """
    Wraps a server factory, keeping a L{whenLost} for every connection.
    """

    noisy = False

    def __init__(self, wrapped: protocol.Factory, lost: list[Deferred]) -> None:
        self.wrapped = wrapped
        self.lost = lost

    def buildProtocol(self, addr):
        connection = self.wrapped.buildProtocol(addr)
        if connection is not None:
            self.lost.append(whenLost(connection))
        return connection


class TrackingEndpoint:
    """
    Wraps a client endpoint, keeping a L{whenLost} for every connection.
    """

    def __init__(self, wrapped, lost: list[Deferred]) -> None:
        self.wrapped = wrapped
        self.lost = lost

    def connect(self, factory) -> Deferred:
        def track(connection):
            self.lost.append(whenLost(connection))
            return connection

        return self.wrapped.connect(factory).addCallback(track)


class LoopbackTests(TestCase):
    """
    A L{ServerService} on four loopback ports inside an application's own
    C{MultiService}, and L{connect}, over real TCP.
    """

    timeout = 15

    @inlineCallbacks
    def setUp(self):
        self.patch(asymmetric, "generateExchangeKey", cachedExchangeKey)
        self.client = cachedIdentity("client")
        self.server = cachedIdentity("server")
        self.lost: list[Deferred] = []
        self.sessions: list = []
        self.serverReceiver = WaitingReceiver()
        self.clientReceiver = WaitingReceiver()
        self.service = ServerService(
            reactor,
            [serverFromString(reactor, "tcp:0:interface=127.0.0.1") for _ in range(4)],
            self.server,
            AuthorizedKeys("authorized_keys", [(self.client.fingerprint, "client")]),
            self.serverReceiver,
        )
        for child in self.service.endpointServices:
            child.factory = TrackingFactory(child.factory, self.lost)
        self.application = MultiService()
        self.service.setServiceParent(self.application)
        self.application.startService()
        self.addCleanup(self.cleanUp)
        ports = yield self.service.whenListening()
        self.ports = [port.getHost().port for port in ports]

    @inlineCallbacks
    def cleanUp(self):
        for session in self.sessions:
            yield session.close()
        if self.application.running:
            yield self.application.stopService()
        yield gatherResults(self.lost)

    @inlineCallbacks
    def connect(self):
        endpoints = [
            TrackingEndpoint(TCP4ClientEndpoint(reactor, "127.0.0.1", port), self.lost)
            for port in self.ports
        ]
        session = yield connect(
            reactor,
            endpoints,
            self.client,
            PinnedKey(self.server.fingerprint),
            f"127.0.0.1:{self.ports[0]}",
            receiver=self.clientReceiver,
        )
        self.sessions.append(session)
        return session

    @inlineCallbacks
    def test_fourChannels(self):
        """
        L{connect} opens one session of four channels, even ports with
        AES-256-CBC and odd ones with ChaCha20, the same on the server once
        every channel has carried a record.
        """
        session = yield self.connect()
        self.assertEqual(sorted(session.channels), [0, 1, 2, 3])
        expected = [A256CBC_HS512, CHACHA20_POLY1305, A256CBC_HS512, CHACHA20_POLY1305]
        self.assertEqual(
            [session.channels[i].result.keys.suite for i in range(4)], expected
        )
        yield session.sendMessage(b"f" * (4 * FRAGMENT))
        server = self.service.directory.sessions[session.id]
        self.assertEqual(server.peer, self.client.fingerprint)
        self.assertEqual(session.peer, self.server.fingerprint)
        self.assertEqual(sorted(server.channels), [0, 1, 2, 3])
        self.assertEqual([server.channels[i].result.keys.suite for i in range(4)], expected)

    @inlineCallbacks
    def test_messagesBothWays(self):
        """
        Messages of several fragments go client to server and server to
        client, intact, through the applications' L{IMessageReceiver}s; each
        send fires once the other end has the message.
        """
        session = yield self.connect()
        upstream = bytes(range(256)) * (5 * FRAGMENT // 256) + b"tail"
        yield session.sendMessage(upstream)
        yield session.sendMessage("text ✓".encode(), records.KIND_TEXT)
        messages = yield self.serverReceiver.waitFor(2)
        server = self.service.directory.sessions[session.id]
        self.assertEqual(
            messages,
            [
                (server, upstream, records.KIND_BINARY),
                (server, "text ✓".encode(), records.KIND_TEXT),
            ],
        )
        downstream = bytes(reversed(upstream))
        yield server.sendMessage(downstream)
        messages = yield self.clientReceiver.waitFor(1)
        self.assertEqual(messages, [(session, downstream, records.KIND_BINARY)])

    @inlineCallbacks
    def test_stopService(self):
        """
        The application stops its C{MultiService}: the server says C{BYE:}
        shutting_down to every session, stops listening, and the client's
        session ends.
        """
        byes: list[int] = []

        def observe(event):
            if event.get("log_namespace") == "spc.session" and "code" in event:
                byes.append(event["code"])

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        session = yield self.connect()
        closed = session.whenClosed()
        yield self.application.stopService()
        self.assertFalse(self.service.running)
        reason = yield closed
        self.assertIsInstance(reason, ServerShuttingDown)
        self.assertIn("shutting down", str(reason))
        self.assertEqual(byes, [records.BYE_SHUTTING_DOWN])
        self.assertEqual(self.service.directory.sessions, {})
        yield self.assertFailure(
            TCP4ClientEndpoint(reactor, "127.0.0.1", self.ports[0]).connect(
                protocol.Factory.forProtocol(protocol.Protocol)
            ),
            ConnectionRefusedError,
        )

    def holdDeliveries(self) -> list[Deferred]:
        """
        Make the server's application take its time storing messages.

        @return: the Deferreds it returns, one per message, for the test to
            fire.
        """
        pending: list[Deferred] = []

        def messageReceived(session, data, kind):
            pending.append(Deferred())
            return pending[-1]

        self.serverReceiver.messageReceived = messageReceived
        return pending

    @inlineCallbacks
    def test_stopLetsDeliveryFinish(self):
        """
        A message the server's application is still storing when the
        service stops is confirmed to the client before the goodbye: the
        client's send succeeds, then its session ends as shutting down.
        """
        pending = self.holdDeliveries()
        session = yield self.connect()
        sent = session.sendMessage(b"in flight")
        while not pending:
            yield task.deferLater(reactor, 0.01, lambda: None)
        stopped = self.application.stopService()
        self.assertNoResult(stopped)
        self.assertNoResult(sent)
        pending[0].callback(None)
        yield sent
        reason = yield session.whenClosed()
        self.assertIsInstance(reason, ServerShuttingDown)
        yield stopped

    @inlineCallbacks
    def test_stopEndsHandshakes(self):
        """
        A stopping server ends the handshakes in progress and admits no new
        connection, so no session can start after the goodbyes were said.
        """
        lost: Deferred = Deferred()

        class Silent(protocol.Protocol):
            def connectionLost(self, reason):
                lost.callback(None)

        yield TCP4ClientEndpoint(reactor, "127.0.0.1", self.ports[0]).connect(
            protocol.Factory.forProtocol(Silent)
        )
        while not self.service.directory.pendingHandshakes():
            yield task.deferLater(reactor, 0.01, lambda: None)
        yield self.application.stopService()
        yield lost
        self.assertEqual(self.service.directory.pendingHandshakes(), 0)
        self.assertFalse(self.service.directory.admitConnection(None, "127.0.0.1"))

    @inlineCallbacks
    def test_stopGraceExpires(self):
        """
        A delivery that outlasts the grace period does not hold the
        shutdown: the goodbye goes out after C{shutdownGrace} seconds and
        the client's send fails as shut down.
        """
        self.service.shutdownGrace = 0.2
        pending = self.holdDeliveries()
        session = yield self.connect()
        sent = session.sendMessage(b"stuck")
        while not pending:
            yield task.deferLater(reactor, 0.01, lambda: None)
        started = reactor.seconds()
        yield self.application.stopService()
        self.assertGreaterEqual(reactor.seconds() - started, 0.2)
        yield self.assertFailure(sent, ServerShuttingDown)
