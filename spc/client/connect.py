# -*- test-case-name: tests.memory.test_service,tests.integration.test_service -*-
"""
The client end an application embeds: L{connect} opens a session with an
spc server over one connection per endpoint, through a
L{ClientSessionFactory} whose first connection makes the session and whose
others join it.

A channel that dies is joined again, after a growing wait
(C{backoffPolicy}), for as long as the session lives.  That is close to
what Twisted's C{ClientService} does for one connection, but its
semantics do not fit, so the factory keeps its own timer per channel:

  - A rejoin succeeds with its JOIN handshake, not with its TCP
    connection, and its failures are not alike: a join the server
    refuses, with no channel left, resets the whole session (A9), and a
    configuration error is not retried at all.  C{ClientService} retries
    every failure the same way until it is stopped.
  - Channel 0's first connection makes the session (NEW).  A
    C{ClientService} cannot adopt a connection it did not make, so that
    channel would rejoin through a service started at its first loss,
    which connects at once rather than after the first wait.
  - C{ClientService} gives its policy the attempt count after counting
    the failure (a first retry is attempt 1, not 0) and logs its own line
    per retry, so the waits and the log would change.
"""

from __future__ import annotations

from typing import Callable, Sequence

from twisted.application.internet import backoffPolicy
from twisted.internet import protocol
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.interfaces import IDelayedCall, IStreamClientEndpoint

from spc.crypto import asymmetric
from spc.crypto.suites import Suite
from spc.errors import ClientNotAuthorized, ConfigurationError, SessionReset, SPCError
from spc.files.store import FileStore
from spc.interfaces import IMessageReceiver
from spc.keys.identity import Identity, publicKeyDER
from spc.logs import events
from spc.protocol import records
from spc.protocol.clienthandshake import ClientHandshake
from spc.protocol.handshake import ClientResult, channelSpecs
from spc.session.session import DEFAULT_LINGER, Session
from spc.transport.channel import DEFAULT_HANDSHAKE_TIMEOUT, ChannelProtocol, HandshakeOwner

__all__ = ["ClientSessionFactory", "connect"]


class _Connector(HandshakeOwner):
    """
    Owns a client connection until its handshake ends, then hands it to
    the session.
    """

    def __init__(self) -> None:
        self.done: Deferred = Deferred()

    def channelEstablished(self, channel: ChannelProtocol, result: ClientResult) -> None:
        self.done.callback((channel, result))

    def channelFailed(self, channel: ChannelProtocol, error: SPCError) -> None:
        if not self.done.called:
            self.done.errback(error)

    def channelLost(self, channel: ChannelProtocol, reason: str) -> None:
        if not self.done.called:
            self.done.errback(SPCError(f"connection lost: {reason}"))


class _ClientChannelFactory(protocol.Factory):
    noisy = False

    def __init__(self, clock, connector: _Connector, makeHandshake, timeout: float) -> None:
        self._clock = clock
        self._connector = connector
        self._makeHandshake = makeHandshake
        self._timeout = timeout

    def buildProtocol(self, addr) -> ChannelProtocol:
        return ChannelProtocol(
            self._connector, self._makeHandshake, self._clock, self._timeout, isServer=False
        )


class ClientSessionFactory:
    """
    Opens the connections of one client session: the first makes the
    session, the others join it.
    """

    log = events.NamedLogger(events.CLIENT)

    def __init__(
        self,
        reactor,
        endpoints: Sequence[IStreamClientEndpoint],
        identity: Identity,
        trust,
        hostPort: str,
        receiver: IMessageReceiver | None = None,
        suites: Sequence[Suite | None] | None = None,
        handshakeTimeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        files: FileStore | None = None,
        transferSecret: bytes | None = None,
        linger: float = DEFAULT_LINGER,
        retryPolicy: Callable[[int], float] | None = None,
    ) -> None:
        self.reactor = reactor
        self.endpoints = list(endpoints)
        self.identity = identity
        self.trust = trust
        self.hostPort = hostPort
        self.receiver = receiver
        self.specs = channelSpecs(len(self.endpoints), suites)
        self.handshakeTimeout = handshakeTimeout
        self.exchangeKey = asymmetric.generateExchangeKey()
        self.exchangeKeyDER = publicKeyDER(self.exchangeKey.public_key())
        self.session: Session | None = None
        self._files = files
        self._transferSecret = transferSecret
        self._linger = linger
        self._retryPolicy = retryPolicy or backoffPolicy(initialDelay=0.5, maxDelay=8.0)
        self._retries: dict[int, int] = {}
        self._pendingRetries: dict[int, IDelayedCall] = {}

    def openChannel(self, index: int) -> Deferred:
        """
        Connect channel C{index} and run its handshake: NEW while there is
        no session, a join afterwards.

        @return: a Deferred firing with the connection once it belongs to
            the session.
        """
        connector = _Connector()
        join = self.session.joinTicket() if self.session is not None else None

        def makeHandshake(channel: ChannelProtocol) -> ClientHandshake:
            return ClientHandshake(
                self.specs[index],
                self.identity.privateKey,
                self.identity.publicDER,
                self.exchangeKeyDER,
                lambda fingerprint: self.trust.check(self.hostPort, fingerprint),
                channel,
                join=join,
            )

        factory = _ClientChannelFactory(
            self.reactor, connector, makeHandshake, self.handshakeTimeout
        )
        connected = self.endpoints[index].connect(factory)
        connected.addErrback(self._connectFailed, connector)
        connector.done.addCallback(self._established)
        return connector.done

    def _connectFailed(self, failure, connector: _Connector):
        if not connector.done.called:
            connector.done.errback(failure)

    def _established(self, established: tuple[ChannelProtocol, ClientResult]):
        channel, result = established
        if self.session is None:
            self.session = Session(
                result.session,
                False,
                result.serverFingerprint,
                result.params,
                result.epoch,
                result.epochSecret,
                self.receiver,
                self.reactor,
                exchangeKeyDER=self.exchangeKeyDER,
                serverKey=result.serverKey,
                files=self._files,
                transferSecret=self._transferSecret,
                linger=self._linger,
                exchangeKey=self.exchangeKey,
            )
            self.session.onChannelLost.append(self.reconnectLater)
            self.session.onEnd.append(self._sessionEnded)
            events.sessionOpened(self.log, self.session, "client")
        self._retries.pop(result.keys.channel, None)
        self.session.attach(channel, result.epoch)
        return channel

    # Reconnection: a dead channel is joined again, with backoff, for as
    # long as the session lives (the server keeps it for a while after its
    # last channel dropped, so transfers resume).

    def reconnectLater(self, index: int) -> None:
        """
        Join channel C{index} again after the backoff delay for its number
        of failed attempts.
        """
        session = self.session
        if session is None or session.closedReason is not None:
            return
        if index in self._pendingRetries:
            return
        attempt = self._retries.get(index, 0)
        self._retries[index] = attempt + 1
        delay = self._retryPolicy(attempt)
        self.log.info("Rejoining channel {index} in {delay:.1f} s", index=index, delay=delay)
        self._pendingRetries[index] = self.reactor.callLater(delay, self._reconnect, index)

    def _reconnect(self, index: int) -> None:
        del self._pendingRetries[index]
        session = self.session
        if session.closedReason is not None or index in session.channels:
            return
        self.openChannel(index).addErrback(self._rejoinFailed, index)

    def _rejoinFailed(self, failure, index: int) -> None:
        """
        A join the server refuses (alert 2) means it no longer has this
        session at this epoch (it restarted, or moved on to an epoch this
        client never saw) or no longer admits this client; joining again
        cannot help.  With no channel left the session is reset, so a
        caller may start a NEW one (A9), which also finds out which it was.
        """
        refused = failure.check(ClientNotAuthorized)
        self.log.info(
            "Channel {index} could not rejoin: {error}",
            index=index,
            error="the server refused the join" if refused else failure.value,
        )
        session = self.session
        if refused and not session.liveChannels():
            session.terminate(
                records.BYE_DESYNC, "the server no longer has this session", SessionReset
            )
            return
        if not failure.check(ConfigurationError):
            self.reconnectLater(index)

    def _sessionEnded(self, session: Session) -> None:
        events.sessionClosed(self.log, session, "client", self.reactor.seconds())
        pending, self._pendingRetries = self._pendingRetries, {}
        for call in pending.values():
            if call.active():
                call.cancel()


@inlineCallbacks
def connect(reactor, endpoints, identity, trust, hostPort, **options):
    """
    Open a session with an spc server over one connection per endpoint.

    @param endpoints: one client endpoint per channel, in the server's
        port order.
    @param identity: this client's L{Identity}.
    @param trust: checks the server key: a C{PinnedKey} or C{KnownHosts}.
    @param hostPort: the name the server key is pinned under
        (C{"host:first-port"}).
    @param options: C{receiver} (an L{IMessageReceiver} for what the
        server sends), C{files} (a L{FileStore} for the files it sends),
        C{suites}, C{handshakeTimeout}, C{transferSecret} (keeps file
        transfer ids stable across runs, so they resume), C{linger} and
        C{retryPolicy}, as L{ClientSessionFactory} takes them.
    @return: a Deferred firing with the L{Session} once the first channel
        is up and every other channel joined or failed once.
    """
    factory = ClientSessionFactory(reactor, endpoints, identity, trust, hostPort, **options)
    yield factory.openChannel(0)
    joins = [factory.openChannel(index) for index in range(1, len(factory.endpoints))]
    results = yield DeferredList(joins, consumeErrors=True)
    for index, (ok, value) in enumerate(results, start=1):
        if not ok:
            factory.log.warn(
                "Channel {index} could not join: {error}", index=index, error=value.value
            )
            if not value.check(ConfigurationError):
                factory.reconnectLater(index)
    return factory.session
