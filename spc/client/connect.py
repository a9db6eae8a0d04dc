# -*- test-case-name: tests.memory.test_service,tests.memory.test_earlyjoin,tests.memory.test_keypool,tests.integration.test_service,tests.integration.test_connect -*-
"""
The client end an application embeds: L{connect} opens a session with an
spc server over one connection per channel, through a
L{ClientSessionFactory} whose first connection makes the session and whose
others join it.  Given one endpoint, it opens the other channels at the
ports the server announces in that connection's F1 (amendment A19); given
a list, one endpoint per channel, the server's channel count must be the
list's.

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

from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.application.internet import backoffPolicy
from twisted.internet import protocol
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IDelayedCall, IStreamClientEndpoint

from spc.addresses import parseHostPort
from spc.client import keypool
from spc.crypto import asymmetric
from spc.crypto.suites import SUITES, Suite, defaultSuiteFor
from spc.errors import ClientNotAuthorized, ConfigurationError, SessionReset, SPCError
from spc.files.store import FileStore
from spc.interfaces import IMessageReceiver
from spc.keys.identity import Identity, publicKeyDER
from spc.logs import events
from spc.protocol import records
from spc.protocol.channelmap import NO_PORT, ChannelEntry, ChannelExpectation
from spc.protocol.clienthandshake import ClientHandshake
from spc.protocol.handshake import ClientResult
from spc.session.session import DEFAULT_LINGER, Session
from spc.transport.channel import DEFAULT_HANDSHAKE_TIMEOUT, ChannelProtocol, HandshakeOwner

__all__ = ["ClientSessionFactory", "acceptedSuites", "connect"]


def acceptedSuites(suites: Sequence[Suite | None] | None) -> frozenset[Suite]:
    """
    The suites a client accepts on any channel: all of them, or those
    named, where C{None} (in a per-channel map of old) names its channel's
    default suite.
    """
    if not suites:
        return frozenset(SUITES)
    return frozenset(suite or defaultSuiteFor(index) for index, suite in enumerate(suites))


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


class _EarlyJoin:
    """
    A join started before its session exists.

    @ivar connected: its endpoint's connection attempt.
    @ivar handshake: its handshake, once connected.
    """

    def __init__(self) -> None:
        self.connected: Deferred | None = None
        self.handshake: ClientHandshake | None = None


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

    @ivar endpoints: the endpoint of each channel, by index: given, or,
        from one endpoint, the first connection's and those of the ports
        its F1 announced, once it is up.
    @ivar channelMap: the channels the first connection's F1 announced.
    @ivar allowed: the suites this client accepts.
    """

    log = events.NamedLogger(events.CLIENT)

    def __init__(
        self,
        reactor,
        endpoints: Sequence[IStreamClientEndpoint] | IStreamClientEndpoint,
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
        endpointFor: Callable[[int], IStreamClientEndpoint] | None = None,
        exchangeKey: rsa.RSAPrivateKey | None = None,
    ) -> None:
        """
        @param endpoints: one endpoint per channel, in the server's order;
            or one endpoint, and the others are opened from the ports the
            server announces, with C{endpointFor}.
        @param endpointFor: makes the endpoint of an announced port; by
            default a TCP connection to the host of C{hostPort}.
        @param exchangeKey: the session's exchange key, made for it and
            used by no other session (L{connect} takes one from a
            L{spc.client.keypool.ExchangeKeyPool}); without one, a key is
            made now, which takes the reactor 50 to 300 ms.
        """
        self.reactor = reactor
        if IStreamClientEndpoint.providedBy(endpoints):
            self._first: IStreamClientEndpoint | None = endpoints
            self.endpoints: dict[int, IStreamClientEndpoint] = {}
        else:
            self._first = None
            self.endpoints = dict(enumerate(endpoints))
        self.identity = identity
        self.trust = trust
        self.hostPort = hostPort
        self.receiver = receiver
        self.allowed = acceptedSuites(suites)
        self.channelMap: tuple[ChannelEntry, ...] | None = None
        self.handshakeTimeout = handshakeTimeout
        if exchangeKey is None:
            exchangeKey = asymmetric.generateExchangeKey()
        self.exchangeKey = exchangeKey
        self.exchangeKeyDER = publicKeyDER(self.exchangeKey.public_key())
        self.session: Session | None = None
        self._files = files
        self._transferSecret = transferSecret
        self._linger = linger
        self._retryPolicy = retryPolicy or backoffPolicy(initialDelay=0.5, maxDelay=8.0)
        self._endpointFor = endpointFor or self._sameHost
        self._retries: dict[int, int] = {}
        self._pendingRetries: dict[int, IDelayedCall] = {}
        self._early: list[_EarlyJoin] = []

    def _sameHost(self, port: int) -> IStreamClientEndpoint:
        host, _ = parseHostPort(self.hostPort)
        return HostnameEndpoint(self.reactor, host, port)

    def openFirst(self) -> Deferred:
        """
        Connect the first channel and make the session: at the one
        endpoint given, whichever channel that is, or at the first of the
        list, which must be channel 0 of as many.

        @return: a Deferred firing with the connection once the session
            is made.
        """
        if self._first is not None:
            return self._open(self._first, ChannelExpectation(allowed=self.allowed))
        expect = ChannelExpectation(0, len(self.endpoints), self.allowed)
        return self._open(self.endpoints[0], expect)

    def openChannel(self, index: int, early: bool = False) -> Deferred:
        """
        Connect channel C{index} and run its handshake: a join once there
        is a session.

        @param early: join the session the first channel's handshake is
            opening: connect now, and answer the server's hello once the
            session exists (L{ClientHandshake.ticketReady}), so that the
            connection overlaps that handshake instead of following it.
        @return: a Deferred firing with the connection once it belongs to
            the session.
        """
        if early and self.session is None:
            expect = ChannelExpectation(index, len(self.endpoints), self.allowed)
            return self._open(self.endpoints[index], expect, early=True)
        if self.session is None:
            return self.openFirst()
        expect = ChannelExpectation(index, None, self.allowed, self.channelMap)
        return self._open(self.endpoints[index], expect)

    def unopened(self) -> list[int]:
        """
        The channels with an endpoint that belong to no session yet, in
        order.
        """
        opened = self.session.channels if self.session is not None else {}
        return [index for index in sorted(self.endpoints) if index not in opened]

    def _open(
        self, endpoint: IStreamClientEndpoint, expect: ChannelExpectation, early: bool = False
    ) -> Deferred:
        connector = _Connector()
        join = self.session.joinTicket() if self.session is not None else None
        earlyJoin = _EarlyJoin() if early and join is None else None

        def makeHandshake(channel: ChannelProtocol) -> ClientHandshake:
            ticket = join
            if earlyJoin is not None and self.session is not None:
                ticket = self.session.joinTicket()
            handshake = ClientHandshake(
                expect,
                self.identity.privateKey,
                self.identity.publicDER,
                self.exchangeKeyDER,
                lambda fingerprint: self.trust.check(self.hostPort, fingerprint),
                channel,
                join=ticket,
                ticketLater=earlyJoin is not None,
            )
            if earlyJoin is not None:
                earlyJoin.handshake = handshake
            return handshake

        factory = _ClientChannelFactory(
            self.reactor, connector, makeHandshake, self.handshakeTimeout
        )
        connected = endpoint.connect(factory)
        if earlyJoin is not None:
            earlyJoin.connected = connected
            self._early.append(earlyJoin)
        connected.addErrback(self._connectFailed, connector)
        connector.done.addCallbacks(self._established, self._nameThisClient)
        return connector.done

    def abandonEarlyJoins(self) -> None:
        """
        The first channel could not open the session: the joins started
        early end, those still connecting at once.
        """
        early, self._early = self._early, []
        for join in early:
            if join.handshake is not None:
                join.handshake.gotBad(SPCError("the session to join was not opened"))
            else:
                join.connected.cancel()

    def _nameThisClient(self, failure):
        """
        A refusal says which fingerprint to authorize.
        """
        if failure.check(ClientNotAuthorized) and not failure.value.args:
            raise ClientNotAuthorized(self.identity.fingerprint)
        return failure

    def _connectFailed(self, failure, connector: _Connector):
        if not connector.done.called:
            connector.done.errback(failure)

    def _established(self, established: tuple[ChannelProtocol, ClientResult]):
        channel, result = established
        if self.session is None:
            self._follow(result)
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
        early, self._early = self._early, []
        for join in early:
            if join.handshake is not None:
                join.handshake.ticketReady(self.session.joinTicket(), self.channelMap)
        return channel

    def _follow(self, result: ClientResult) -> None:
        """
        Keep the map the session's first connection announced; from one
        endpoint, take the ports it names for the other channels.
        """
        self.channelMap = result.channelMap
        if self._first is None:
            return
        self.endpoints = {result.keys.channel: self._first}
        for index, entry in enumerate(result.channelMap):
            if index == result.keys.channel:
                continue
            if entry.port == NO_PORT:
                self.log.info(
                    "Channel {index} has no port this client can reach; the session "
                    "runs without it", index=index,
                )
            else:
                self.endpoints[index] = self._endpointFor(entry.port)

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
def connect(reactor, endpoints, identity, trust, hostPort, exchangeKeys=None, **options):
    """
    Open a session with an spc server over one connection per channel.

    @param endpoints: one client endpoint, the server's first address: the
        other channels are opened at the ports it announces, on the host of
        C{hostPort} (or with the C{endpointFor} option); or a list of one
        client endpoint per channel, in the server's channel order, for
        channels a client must reach otherwise (NAT, proxies).
    @param identity: this client's L{Identity}.
    @param trust: checks the server key: a C{PinnedKey} or C{KnownHosts}.
    @param hostPort: the name the server key is pinned under
        (C{"host:first-port"}).
    @param options: C{receiver} (an L{IMessageReceiver} for what the
        server sends), C{files} (a L{FileStore} for the files it sends),
        C{suites} (the suites accepted on any channel; all by default),
        C{handshakeTimeout}, C{transferSecret} (keeps file transfer ids
        stable across runs, so they resume), C{linger}, C{retryPolicy} and
        C{endpointFor} (makes the endpoint of an announced port), as
        L{ClientSessionFactory} takes them.
    @param exchangeKeys: the L{spc.client.keypool.ExchangeKeyPool} the
        session's exchange key comes from; the process's
        (L{spc.client.keypool.defaultPool}) by default.
    @return: a Deferred firing with the L{Session} once the first channel
        is up and every other channel joined or failed once.  Given every
        endpoint, the other channels connect while the first one's
        handshake runs, and join as soon as it made the session; given
        one, they connect once its handshake announced their ports.
    @raise ChannelsMismatch: if the server has another number of channels
        than the list gives, uses a suite not accepted, or the list is not
        in its channel order.
    """
    pool = exchangeKeys if exchangeKeys is not None else keypool.defaultPool()
    exchangeKey = yield pool.take()
    factory = ClientSessionFactory(
        reactor, endpoints, identity, trust, hostPort, exchangeKey=exchangeKey, **options
    )
    first = factory.openFirst()
    others = factory.unopened()[1:]
    joins = [factory.openChannel(index, early=True) for index in others]
    try:
        yield first
    except Exception:
        factory.abandonEarlyJoins()
        yield DeferredList(joins, consumeErrors=True)
        raise
    if not joins:
        others = factory.unopened()
        joins = [factory.openChannel(index) for index in others]
    results = yield DeferredList(joins, consumeErrors=True)
    for index, (ok, value) in zip(others, results):
        if not ok:
            factory.log.warn(
                "Channel {index} could not join: {error}", index=index, error=value.value
            )
            if not value.check(ConfigurationError):
                factory.reconnectLater(index)
    return factory.session
