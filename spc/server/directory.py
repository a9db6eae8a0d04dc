# -*- test-case-name: tests.memory.test_service -*-
"""
What the server's handshakes consult: L{SessionDirectory} knows who is
authorized, which sessions a connection may join, and the L{Limits} that
keep unauthenticated peers from costing the daemon memory or private-key
work; failures before authentication go to its rate-limited log
(L{spc.logs.events.PreAuthLog}).  The listening ports and the rotation
rounds are L{spc.server.service.ServerService}'s.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from typing import Callable

from twisted.internet.interfaces import IReactorTime

from spc.errors import SPCError
from spc.files.store import FileStore
from spc.interfaces import IMessageReceiver
from spc.keys.identity import Identity, fingerprintsEqual
from spc.logs import events
from spc.protocol import frames, records
from spc.protocol.handshake import JoinTarget, ServerResult
from spc.ratelimit import RateWindow, TokenBuckets, sourceKey
from spc.session.reassembly import (
    DEFAULT_DEADLINE,
    DEFAULT_GLOBAL_BUDGET,
    DEFAULT_IDENTITY_BUDGET,
    Budget,
)
from spc.session.session import Session
from spc.transport.channel import DEFAULT_HANDSHAKE_TIMEOUT, ChannelProtocol, HandshakeOwner

__all__ = ["Limits", "SessionDirectory"]


class Limits:
    """
    The daemon's resource bounds (PROTOCOL section 9 with amendments A8 and
    A16).

    @ivar pendingPerSource: handshakes in progress from one IPv4 address or
        IPv6 /64.
    @ivar pendingTotal: handshakes in progress in all.
    @ivar connectionsPerSecond: new connections per second from one source,
        with bursts up to C{connectionBurst}.
    @ivar newSessionsPerIdentity: NEW handshakes one identity may make per
        C{newSessionWindow} seconds.
    @ivar joinsPerChannelPerMinute: joins per session per minute, times
        the channel count.
    @ivar privateOperationsPerSecond: the cap on host-key decryptions.
    @ivar sessionsPerIdentity: live sessions of one identity; a new one
        replaces the oldest.
    @ivar maxSessions: live sessions in all.
    @ivar reassemblyTotal: bytes all sessions' incoming messages may
        reserve together (each session also has its own C{reassemblyBudget}).
    @ivar reassemblyPerIdentity: bytes the sessions of one identity may
        reserve together; beyond either, a message is refused as busy and
        its sender sends it again later.  Below C{maxMessageSize}, the
        largest messages are always refused.
    @ivar reassemblyDeadline: seconds a message may take from its first
        fragment until its delivery begins, however steadily its fragments
        come.
    """

    pendingPerSource = 64
    pendingTotal = 512
    connectionsPerSecond = 50
    connectionBurst = 100
    newSessionsPerIdentity = 5
    newSessionWindow = 10.0
    joinsPerChannelPerMinute = 4
    privateOperationsPerSecond = 500
    sessionsPerIdentity = 4
    maxSessions = 1024
    reassemblyTotal = DEFAULT_GLOBAL_BUDGET
    reassemblyPerIdentity = DEFAULT_IDENTITY_BUDGET
    reassemblyDeadline = DEFAULT_DEADLINE

    def __init__(self, **overrides: float) -> None:
        for name, value in overrides.items():
            if not hasattr(Limits, name):
                raise TypeError(f"unknown limit {name}")
            setattr(self, name, value)


class SessionDirectory(HandshakeOwner):
    """
    The server's sessions, its handshake policy and its limits.

    @ivar sessions: live sessions by id.
    @ivar authorizer: decides which client identities are admitted; replace
        it with L{setAuthorizer}.
    @ivar channelCount: how many channels the daemon serves.
    @ivar preAuthLog: the rate-limited log of unauthenticated peers'
        failures.
    @ivar budget: the memory for incoming messages every session shares.
    @ivar pairing: the L{spc.protocol.pairing.PairingDesk} of channel 0 (A20).
    @ivar sessionOpened: called with each session the server opens.
    """

    log = events.NamedLogger(events.SESSION)

    def __init__(
        self,
        clock: IReactorTime,
        hostIdentity: Identity,
        authorizer,
        receiver: IMessageReceiver | None,
        channelCount: int,
        params: frames.Params = frames.Params(),
        limits: Limits | None = None,
        handshakeTimeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        linger: float = 60.0,
        files: FileStore | None = None,
    ) -> None:
        self.clock = clock
        self.hostIdentity = hostIdentity
        self.authorizer = authorizer
        self.receiver = receiver
        self.channelCount = channelCount
        self.params = params
        self.limits = limits or Limits()
        self.handshakeTimeout = handshakeTimeout
        self.linger = linger
        self.files = files
        self.budget = Budget(
            self.limits.reassemblyTotal,
            self.limits.reassemblyPerIdentity,
            self.limits.reassemblyDeadline,
        )
        self.roundOutcomes = {True: 0, False: 0}
        self.sessions: dict[bytes, Session] = {}
        self.preAuthLog = events.PreAuthLog(clock, self.log)
        self._pending: dict[ChannelProtocol, str] = {}
        self.stopping = False
        self.pairing = None
        self.sessionOpened: Callable[[Session], object] = lambda session: None
        self._pendingBySource: dict[str, int] = defaultdict(int)
        self._newSessions = RateWindow(clock, self.limits.newSessionWindow)
        self._joins = RateWindow(clock, 60.0)
        self._privateOperations = RateWindow(clock, 1.0)
        self._connections = TokenBuckets(
            clock, self.limits.connectionsPerSecond, self.limits.connectionBurst
        )

    # Authorization.

    def setAuthorizer(self, authorizer) -> None:
        """
        Replace the authorizer (after C{authorized_keys} was re-read), end
        every session whose identity it no longer admits and delete the
        unfinished files of such identities (A15); the others keep running.
        """
        self.authorizer = authorizer
        for session in list(self.sessions.values()):
            if not authorizer.isAuthorized(session.peer):
                self.log.info("Revoking the session of {peer}", peer=session.peer)
                session.terminate(records.BYE_UNAUTHORIZED, "no longer authorized")
        if self.files is not None:
            deleted = self.files.forgetUnless(authorizer.isAuthorized)
            if deleted:
                self.log.info(
                    "Deleted {count} unfinished file(s) of revoked senders", count=deleted
                )

    # ServerDirectory, for handshakes.

    def isAuthorized(self, fingerprint: str) -> bool:
        return self.authorizer.isAuthorized(fingerprint)

    def admitNewSession(self, fingerprint: str) -> bool:
        return self._newSessions.admit(fingerprint, self.limits.newSessionsPerIdentity)

    def admitJoin(self, session: bytes) -> bool:
        return self._joins.admit(
            session, self.limits.joinsPerChannelPerMinute * self.channelCount
        )

    def admitPrivateOperation(self) -> bool:
        return self._privateOperations.admit(None, self.limits.privateOperationsPerSecond)

    def joinTarget(
        self, session: bytes, fingerprint: str, exchangeKey: bytes, epoch: int
    ) -> JoinTarget | None:
        found = self.sessions.get(session)
        if found is None or found.closedReason is not None:
            return None
        if not fingerprintsEqual(found.peer, fingerprint):
            return None
        if exchangeKey != found.exchangeKeyDER:
            return None
        secret = found.epochSecret(epoch)
        if secret is None:
            return None
        return JoinTarget(secret, found.epoch, found.params)

    def sessionExists(self, session: bytes) -> bool:
        return session in self.sessions

    # Connections before they belong to a session.

    def admitConnection(self, channel: ChannelProtocol, host: str) -> bool:
        """
        Count a new connection against the pending-handshake caps and the
        per-source connection rate (A8).  Over a per-source limit the
        newcomer is answered "busy"; over the global cap a random connection
        still in its handshake is aborted to make room (A16), or, when every
        pending connection is already on its way out, the newcomer is
        answered "busy".  A connection counts until it is lost, not until
        it is told to go, so a peer that ignores a close cannot take more
        than its share.
        """
        if self.stopping:
            return False
        source = sourceKey(host)
        if self._pendingBySource[source] >= self.limits.pendingPerSource:
            self.preAuthLog.refused("busy", host, f"too many handshakes from {source}")
            return False
        if not self._connections.admit(source):
            self.preAuthLog.refused("busy", host, f"too many new connections from {source}")
            return False
        if len(self._pending) >= self.limits.pendingTotal:
            handshaking = [pending for pending in self._pending if not pending.dead]
            if not handshaking:
                self.preAuthLog.refused("busy", host, "too many handshakes in all")
                return False
            secrets.choice(handshaking).fatal("evicted to make room for a new handshake")
        self._pending[channel] = source
        self._pendingBySource[source] += 1
        return True

    def stop(self) -> None:
        """
        The server is stopping: no session starts or gains a channel from
        now on, so every session there is gets its goodbye.  Handshakes in
        progress end; new connections are answered "busy".
        """
        self.stopping = True
        for channel in list(self._pending):
            channel.fatal("the server is shutting down")

    def _forgetPending(self, channel: ChannelProtocol) -> None:
        source = self._pending.pop(channel, None)
        if source is not None:
            self._pendingBySource[source] -= 1
            if not self._pendingBySource[source]:
                del self._pendingBySource[source]

    def pendingHandshakes(self) -> int:
        """
        Connections still in their handshake, or refused and not yet gone.
        """
        return len(self._pending)

    # ChannelOwner, until a session takes the connection over.

    def handshakeRefused(
        self, channel: ChannelProtocol, kind: str, reason: str, alert: int | None
    ) -> None:
        self.preAuthLog.refused(kind, channel.peerAddress(), reason, alert=alert)

    def channelEstablished(self, channel: ChannelProtocol, result: ServerResult) -> None:
        self._forgetPending(channel)
        peerName = self.authorizer.nameOf(result.fingerprint)
        events.handshakeAccepted(
            self.log,
            channel.peerAddress(),
            "NEW" if result.isNew else "JOIN",
            result.keys.channel,
            result.session,
            result.fingerprint,
            peerName,
        )
        if result.isNew:
            session = Session(
                result.session,
                True,
                result.fingerprint,
                result.params,
                result.epoch,
                result.epochSecret,
                self.receiver,
                self.clock,
                linger=self.linger,
                exchangeKeyDER=result.exchangeKeyDER,
                files=self.files,
                budget=self.budget.account(result.fingerprint),
                exchangeKey=result.exchangeKey,
                peerName=peerName,
            )
            self._admitSession(session)
            events.sessionOpened(self.log, session, "server")
        else:
            session = self.sessions[result.session]
        session.attach(channel, result.epoch)

    def _admitSession(self, session: Session) -> None:
        mine = [s for s in self.sessions.values() if s.peer == session.peer]
        if len(mine) >= self.limits.sessionsPerIdentity:
            mine[0].terminate(records.BYE_REPLACED, "replaced by a newer session")
        if len(self.sessions) >= self.limits.maxSessions:
            next(iter(self.sessions.values())).terminate(
                records.BYE_RESOURCE_LIMIT, "too many sessions"
            )
        self.sessions[session.id] = session
        session.onEnd.append(self._sessionEnded)
        session.onRotationEnded.append(self._rotationEnded)
        self.sessionOpened(session)

    def _rotationEnded(self, committed: bool) -> None:
        self.roundOutcomes[committed] += 1

    def _sessionEnded(self, session: Session) -> None:
        self.sessions.pop(session.id, None)
        self._joins.forget(session.id)
        events.sessionClosed(self.log, session, "server", self.clock.seconds())

    def channelFailed(self, channel: ChannelProtocol, error: SPCError) -> None:
        self._forgetPending(channel)

    def channelLost(self, channel: ChannelProtocol, reason: str) -> None:
        self._forgetPending(channel)
