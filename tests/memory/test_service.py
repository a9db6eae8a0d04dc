# -*- test-case-name: tests.memory.test_service -*-
"""
Tests for L{spc.server.service} and L{spc.client.connect}: the
L{SessionDirectory}'s admission rules and limits with L{task.Clock} and
in-memory transports.  The service over real loopback TCP is tested in
L{tests.integration.test_service}, the L{ListeningService} behind each port
in L{tests.unit.test_listening}.
"""

from __future__ import annotations

import os
from functools import lru_cache

from twisted.internet import task
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.trial.unittest import SynchronousTestCase

from spc.client.connect import ClientSessionFactory
from spc.crypto import asymmetric
from spc.errors import SessionClosed
from spc.files.store import FileStore
from spc.keys.identity import fingerprint
from spc.keys.trust import AllowAny, AuthorizedKeys, PinnedKey
from spc.protocol import frames, records
from spc.protocol.handshake import JoinTarget, channelSpecs
from spc.protocol.records import messageDigest
from spc.server.directory import Limits, SessionDirectory
from spc.server.service import ServerChannelFactory
from spc.session.session import DEFAULT_LINGER
from spc.transport.channel import DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_REPLY_TIMEOUT, ChannelProtocol
from tests.common import cachedExchangeKey, cachedIdentity
from tests.fakes import FakeChannel
from tests.memory.test_session import (
    OTHER_PEER,
    PARAMS,
    PEER,
    SECRET,
    SESSION_ID,
    SIZE,
    MemoryNetwork,
    MemoryServer,
    RecordingReceiver,
    confirm,
    decoded,
    serverResult,
)


def makeDirectory(clock=None, authorizer=AllowAny, channelCount: int = 4, **limits):
    """
    A directory with fake time and the given limits.
    """
    return SessionDirectory(
        clock if clock is not None else task.Clock(),
        cachedIdentity("server"),
        authorizer,
        RecordingReceiver(),
        channelCount,
        params=PARAMS,
        limits=Limits(**limits),
    )


def addSession(directory: SessionDirectory, sessionID: bytes = SESSION_ID, peer: str = PEER):
    """
    A NEW handshake's result reaches the directory: make the session,
    confirm its first channel.

    @return: C{(session, channel)}.
    """
    channel = FakeChannel(0)
    directory.channelEstablished(channel, serverResult(sessionID=sessionID, peer=peer))
    session = directory.sessions[sessionID]
    confirm(session, channel)
    return session, channel


class RateTests(SynchronousTestCase):
    """
    The directory's sliding-window limits, checked by handshakes before the
    private-key operation.
    """

    def test_newSessions(self) -> None:
        """
        An identity may open 5 sessions per 10 s; the sixth is refused, other
        identities are not, and after the window it may again.
        """
        clock = task.Clock()
        directory = makeDirectory(clock)
        self.assertEqual([directory.admitNewSession(PEER) for _ in range(6)], [True] * 5 + [False])
        self.assertTrue(directory.admitNewSession(OTHER_PEER))
        clock.advance(9.9)
        self.assertFalse(directory.admitNewSession(PEER))
        clock.advance(0.1)
        self.assertTrue(directory.admitNewSession(PEER))

    def test_joins(self) -> None:
        """
        A session may be joined 4 x channel count times per minute.
        """
        clock = task.Clock()
        directory = makeDirectory(clock, channelCount=3)
        self.assertEqual(
            [directory.admitJoin(SESSION_ID) for _ in range(13)], [True] * 12 + [False]
        )
        self.assertTrue(directory.admitJoin(b"another session."))
        clock.advance(59)
        self.assertFalse(directory.admitJoin(SESSION_ID))
        clock.advance(1)
        self.assertTrue(directory.admitJoin(SESSION_ID))

    def test_privateOperations(self) -> None:
        """
        Private-key operations are capped per second, server-wide.
        """
        clock = task.Clock()
        directory = makeDirectory(clock, privateOperationsPerSecond=3)
        self.assertEqual(
            [directory.admitPrivateOperation() for _ in range(4)], [True] * 3 + [False]
        )
        clock.advance(1)
        self.assertTrue(directory.admitPrivateOperation())

    def test_defaults(self) -> None:
        """
        The defaults are those of PROTOCOL section 9 with A8 and A16.
        """
        limits = Limits()
        self.assertEqual(
            (
                limits.pendingPerSource,
                limits.pendingTotal,
                limits.newSessionsPerIdentity,
                limits.newSessionWindow,
                limits.joinsPerChannelPerMinute,
                limits.privateOperationsPerSecond,
                limits.sessionsPerIdentity,
                limits.maxSessions,
            ),
            (64, 512, 5, 10.0, 4, 500, 4, 1024),
        )

    def test_unknownLimit(self) -> None:
        """
        A misspelt limit is an error, not silently ignored.
        """
        self.assertRaises(TypeError, Limits, pendingPerSauce=1)


class JoinTargetTests(SynchronousTestCase):
    """
    L{SessionDirectory.joinTarget} gives the epoch secret only to the
    session's own identity with its own exchange key.
    """

    def setUp(self) -> None:
        self.directory = makeDirectory()
        self.session, self.channel = addSession(self.directory)

    def test_found(self) -> None:
        """
        The right identity, exchange key and committed epoch get S_e, the
        committed epoch and the session parameters.
        """
        self.assertEqual(
            self.directory.joinTarget(SESSION_ID, PEER, b"exchange key", 0),
            JoinTarget(SECRET, 0, PARAMS),
        )
        self.assertTrue(self.directory.sessionExists(SESSION_ID))

    def test_refused(self) -> None:
        """
        Another identity, another exchange key, an epoch the session does
        not hold, or an unknown session: nothing.
        """
        self.assertIsNone(self.directory.joinTarget(SESSION_ID, OTHER_PEER, b"exchange key", 0))
        self.assertIsNone(self.directory.joinTarget(SESSION_ID, PEER, b"exchange kez", 0))
        self.assertIsNone(self.directory.joinTarget(SESSION_ID, PEER, b"exchange key", 1))
        self.assertIsNone(self.directory.joinTarget(bytes(16), PEER, b"exchange key", 0))
        self.assertFalse(self.directory.sessionExists(bytes(16)))

    def test_closed(self) -> None:
        """
        A closed session cannot be joined.
        """
        self.session.close()
        self.assertIsNone(self.directory.joinTarget(SESSION_ID, PEER, b"exchange key", 0))
        self.assertFalse(self.directory.sessionExists(SESSION_ID))

    def test_joinAttaches(self) -> None:
        """
        A join's result attaches the connection to its session, which counts
        it once it confirmed its keys.
        """
        joined = FakeChannel(1)
        self.directory.channelEstablished(joined, serverResult(channel=1, isNew=False))
        self.assertIs(joined.owner, self.session)
        self.assertEqual(sorted(self.session.channels), [0])
        confirm(self.session, joined)
        self.assertEqual(sorted(self.session.channels), [0, 1])


class PendingChannel:
    """
    A connection still in its handshake, recording C{fatal}, which makes it
    dead (it is aborted) as in L{ChannelProtocol}.
    """

    def __init__(self) -> None:
        self.fatalReason: str | None = None
        self.dead = False

    def fatal(self, reason: str) -> None:
        self.fatalReason = reason
        self.dead = True


class PendingTests(SynchronousTestCase):
    """
    L{SessionDirectory.admitConnection}: caps on handshakes in progress.
    """

    def test_perSource(self) -> None:
        """
        Over the per-source cap the newcomer is refused; other sources are
        not affected; a handshake that ends frees its slot.
        """
        directory = makeDirectory(pendingPerSource=2)
        first, second, third = PendingChannel(), PendingChannel(), PendingChannel()
        self.assertTrue(directory.admitConnection(first, "192.0.2.1"))
        self.assertTrue(directory.admitConnection(second, "192.0.2.1"))
        self.assertFalse(directory.admitConnection(third, "192.0.2.1"))
        self.assertTrue(directory.admitConnection(PendingChannel(), "192.0.2.2"))
        self.assertEqual(directory.pendingHandshakes(), 3)
        directory.channelFailed(first, None)
        self.assertTrue(directory.admitConnection(third, "192.0.2.1"))
        directory.channelLost(second, "closed")
        self.assertTrue(directory.admitConnection(PendingChannel(), "192.0.2.1"))
        self.assertFalse(directory.admitConnection(PendingChannel(), "192.0.2.1"))
        self.assertIsNone(first.fatalReason)

    def test_connectionRate(self) -> None:
        """
        A source may open C{connectionBurst} connections at once and then
        C{connectionsPerSecond} a second (A8); each closed handshake frees
        its pending slot but not its token, and other sources keep theirs.
        """
        clock = task.Clock()
        directory = makeDirectory(clock, connectionsPerSecond=2, connectionBurst=3)

        def attempt(host="192.0.2.1"):
            channel = PendingChannel()
            admitted = directory.admitConnection(channel, host)
            directory.channelLost(channel, "closed")
            return admitted

        self.assertEqual([attempt() for _ in range(4)], [True, True, True, False])
        self.assertTrue(attempt("192.0.2.2"))
        clock.advance(0.5)
        self.assertEqual([attempt(), attempt()], [True, False])
        clock.advance(10)
        self.assertEqual([attempt() for _ in range(4)], [True, True, True, False])

    def test_perSourceIPv6(self) -> None:
        """
        Connections from one IPv6 /64 share a cap, and IPv4-mapped addresses
        share their IPv4 address's.
        """
        directory = makeDirectory(pendingPerSource=2)
        self.assertTrue(directory.admitConnection(PendingChannel(), "2001:db8::1"))
        self.assertTrue(directory.admitConnection(PendingChannel(), "2001:db8::2:3"))
        self.assertFalse(directory.admitConnection(PendingChannel(), "2001:db8::ffff"))
        self.assertTrue(directory.admitConnection(PendingChannel(), "2001:db8:0:1::1"))
        self.assertTrue(directory.admitConnection(PendingChannel(), "192.0.2.1"))
        self.assertTrue(directory.admitConnection(PendingChannel(), "::ffff:192.0.2.1"))
        self.assertFalse(directory.admitConnection(PendingChannel(), "192.0.2.1"))

    def test_globalCapEvicts(self) -> None:
        """
        A16: with the global cap full, a newcomer is admitted and one pending
        connection is aborted to make room; it counts until it is lost.
        """
        directory = makeDirectory(pendingTotal=3)
        pending = [PendingChannel() for _ in range(3)]
        for index, channel in enumerate(pending):
            self.assertTrue(directory.admitConnection(channel, f"192.0.2.{index}"))
        newcomer = PendingChannel()
        self.assertTrue(directory.admitConnection(newcomer, "198.51.100.1"))
        evicted = [channel for channel in pending if channel.fatalReason is not None]
        self.assertEqual(len(evicted), 1)
        self.assertIsNone(newcomer.fatalReason)
        self.assertEqual(directory.pendingHandshakes(), 4)
        directory.channelLost(evicted[0], "aborted")
        self.assertEqual(directory.pendingHandshakes(), 3)

    def test_established(self) -> None:
        """
        A connection whose handshake succeeded no longer counts as pending.
        """
        directory = makeDirectory(pendingPerSource=1)
        channel = FakeChannel(0)
        self.assertTrue(directory.admitConnection(channel, "192.0.2.1"))
        directory.channelEstablished(channel, serverResult())
        self.assertEqual(directory.pendingHandshakes(), 0)
        self.assertTrue(directory.admitConnection(PendingChannel(), "192.0.2.1"))


class SessionPolicyTests(SynchronousTestCase):
    """
    Session counts and revocation.
    """

    def test_perIdentityEvictsOldest(self) -> None:
        """
        Over C{sessionsPerIdentity}, a new session of an identity evicts its
        oldest with C{BYE:} replaced; other identities' sessions stay.
        """
        directory = makeDirectory(sessionsPerIdentity=2)
        other, otherChannel = addSession(directory, b"o" * 16, OTHER_PEER)
        oldest, oldestChannel = addSession(directory, b"1" * 16)
        addSession(directory, b"2" * 16)
        self.assertIsNone(oldest.closedReason)
        addSession(directory, b"3" * 16)
        [bye] = oldestChannel.take(records.Bye)
        self.assertEqual((bye.code, bye.scope), (records.BYE_REPLACED, records.SCOPE_SESSION))
        self.assertIsInstance(oldest.closedReason.value, SessionClosed)
        self.assertEqual(sorted(directory.sessions), [b"2" * 16, b"3" * 16, b"o" * 16])
        self.assertIsNone(other.closedReason)
        self.assertEqual(otherChannel.take(records.Bye), [])

    def test_totalEvictsOldest(self) -> None:
        """
        Over C{maxSessions}, the oldest session overall ends with C{BYE:}
        resource_limit.
        """
        directory = makeDirectory(maxSessions=2)
        oldest, channel = addSession(directory, b"1" * 16, OTHER_PEER)
        addSession(directory, b"2" * 16)
        addSession(directory, b"3" * 16)
        [bye] = channel.take(records.Bye)
        self.assertEqual(bye.code, records.BYE_RESOURCE_LIMIT)
        self.assertEqual(sorted(directory.sessions), [b"2" * 16, b"3" * 16])

    def test_revocation(self) -> None:
        """
        A15: a new authorizer ends, with C{BYE:} code 7 (session scope),
        every session whose identity it no longer admits, and keeps the
        others running.
        """
        directory = makeDirectory()
        revoked = [addSession(directory, bytes([n]) * 16, PEER) for n in (1, 2)]
        kept, keptChannel = addSession(directory, b"k" * 16, OTHER_PEER)
        directory.setAuthorizer(AuthorizedKeys("authorized_keys", [(OTHER_PEER, "other")]))
        for session, channel in revoked:
            [bye] = channel.take(records.Bye)
            self.assertEqual(
                (bye.code, bye.scope), (records.BYE_UNAUTHORIZED, records.SCOPE_SESSION)
            )
            self.assertIsInstance(session.closedReason.value, SessionClosed)
        self.assertEqual(list(directory.sessions), [b"k" * 16])
        self.assertIsNone(kept.closedReason)
        self.assertEqual(keptChannel.take(records.Bye), [])
        self.assertFalse(directory.isAuthorized(PEER))
        self.assertTrue(directory.isAuthorized(OTHER_PEER))

    def test_revocationDeletesUnfinishedFiles(self) -> None:
        """
        A15: the unfinished files of an identity no longer admitted are
        deleted with its sessions, whether it is connected or not; those
        of admitted identities stay.
        """
        directory = makeDirectory()
        directory.files = FileStore(self.mktemp())
        partials = {}
        for peer in (PEER, OTHER_PEER):
            partial = directory.files.open(directory.files.key(peer, b"t" * 16), "f", 10, peer)
            partial.close()
            partials[peer] = partial.path
        directory.setAuthorizer(AuthorizedKeys("authorized_keys", [(OTHER_PEER, "other")]))
        self.assertFalse(os.path.exists(partials[PEER]))
        self.assertTrue(os.path.exists(partials[OTHER_PEER]))


class _Peer:
    """
    A client's side of one session with a directory, on a fake channel: it
    answers the server's heartbeats, so the session lives as long as a
    test wants, and keeps the final C{ACK:}s it was sent.

    @ivar acks: C{(msgID, status)} of the final C{ACK:}s, oldest first.
    """

    def __init__(self, directory: SessionDirectory, sessionID: bytes, peer: str) -> None:
        self.session, self.channel = addSession(directory, sessionID, peer)
        self.acks: list[tuple[int, int]] = []

    def send(self, record) -> None:
        self.session.recordReceived(self.channel, 0, record)
        self.read()

    def read(self) -> None:
        for record in self.channel.take():
            if isinstance(record, records.HeartbeatRequest):
                self.session.recordReceived(
                    self.channel,
                    0,
                    decoded(
                        records.HeartbeatResponse(
                            record.hbID, record.originTime, 0, records.NO_EPOCH,
                            records.NO_SEQUENCE, 0, 0,
                        )
                    ),
                )
            elif isinstance(record, records.Ack) and record.status != records.ACK_PROGRESS:
                self.acks.append((record.msgID, record.status))

    def taken(self) -> list[tuple[int, int]]:
        """
        The final C{ACK:}s since the last call.
        """
        acks, self.acks = self.acks, []
        return acks


@lru_cache
def _digest(length: int) -> bytes:
    return messageDigest(records.KIND_BINARY, b"b" * length)


class SharedBudgetTests(SynchronousTestCase):
    """
    Every session of a directory reserves incoming messages from the
    directory's one L{spc.session.reassembly.Budget}, so many sessions together
    cannot pin more memory than the daemon allows; each identity may hold
    only its share, a message that does not fit is refused as busy with the
    session going on, and every message has an absolute deadline.
    """

    def fragment(self, length: int, msgID: int = 0, index: int = 0) -> records.Fragment:
        """
        Fragment C{index} of a message of C{length} bytes C{b"b"}.
        """
        count = max(1, -(-length // SIZE))
        size = length - SIZE * (count - 1) if index == count - 1 else SIZE
        return decoded(
            records.Fragment(
                msgID, index, count, length, records.KIND_BINARY, _digest(length), b"b" * size
            )
        )

    def acks(self, channel: FakeChannel) -> list[tuple[int, int]]:
        """
        C{(msgID, status)} of the final C{ACK:}s C{channel} carried since
        the last call.
        """
        return [
            (ack.msgID, ack.status)
            for ack in channel.take(records.Ack)
            if ack.status != records.ACK_PROGRESS
        ]

    def test_sharedAcrossSessions(self) -> None:
        """
        Two sessions of different identities, each within its own session
        budget, together exceed the directory's: the second's message is
        refused with C{ACK:} busy and its session goes on, as does the
        first; the first's reservation counts against the directory until
        its session ends.
        """
        directory = makeDirectory()
        directory.budget.limit = 6 * SIZE
        first, firstChannel = addSession(directory, b"1" * 16, PEER)
        second, secondChannel = addSession(directory, b"2" * 16, OTHER_PEER)
        first.recordReceived(firstChannel, 0, self.fragment(4 * SIZE))
        self.assertEqual(directory.budget.reserved, 4 * SIZE)
        second.recordReceived(secondChannel, 0, self.fragment(4 * SIZE))
        self.assertIsNone(second.closedReason)
        self.assertEqual(self.acks(secondChannel), [(0, records.ACK_BUSY)])
        self.assertEqual(secondChannel.take(records.Bye), [])
        self.assertIsNone(first.closedReason)
        self.assertEqual(directory.budget.reserved, 4 * SIZE)
        first.close()
        self.assertEqual(directory.budget.reserved, 0)

    def test_limits(self) -> None:
        """
        The directory's budget takes its limits from L{Limits}.
        """
        directory = makeDirectory(
            reassemblyTotal=10, reassemblyPerIdentity=5, reassemblyDeadline=7.0
        )
        budget = directory.budget
        self.assertEqual((budget.limit, budget.perIdentity, budget.deadline), (10, 5, 7.0))

    def test_pinningAttack(self) -> None:
        """
        Two identities with four sessions each declare two 64 MiB messages
        per session, one fragment each, enough to take the whole 1 GiB
        budget: each identity gets its 256 MiB share, the rest of its
        messages are refused as busy, and no session ends.  A third
        identity's message is delivered meanwhile.  One more fragment of
        every pinning message each 59 s does not keep them: at the deadline
        all are abandoned and the budget is free.
        """
        directory = makeDirectory()
        budget, clock = directory.budget, directory.clock
        largest = PARAMS.maxMessageSize
        pinners = []
        for peer in (PEER, OTHER_PEER):
            for _ in range(4):
                pinner = _Peer(directory, bytes([len(pinners) + 1]) * 16, peer)
                for msgID in (0, 1):
                    pinner.send(self.fragment(largest, msgID))
                pinners.append(pinner)
        honest = _Peer(directory, b"h" * 16, fingerprint(b"a third peer"))
        honest.send(self.fragment(1000))
        self.assertIsNone(honest.session.closedReason)
        self.assertEqual(honest.taken(), [(0, records.ACK_COMPLETE)])
        self.assertEqual(directory.receiver.messages[-1][1:], (b"b" * 1000, records.KIND_BINARY))

        for peer in (PEER, OTHER_PEER):
            self.assertEqual(budget.reservedBy(peer), budget.perIdentity)
        self.assertEqual(budget.reserved, 2 * budget.perIdentity)
        refused = [(0, records.ACK_BUSY), (1, records.ACK_BUSY)]
        self.assertEqual([pinner.taken() for pinner in pinners].count(refused), 4)

        everyone = pinners + [honest]
        for index in range(1, 31):
            self.passTime(clock, 59, everyone)
            for pinner in pinners:
                for msgID in (0, 1):
                    pinner.send(self.fragment(largest, msgID, index))
                pinner.taken()
        self.passTime(clock, budget.deadline - 30 * 59 - 0.5, everyone)
        self.assertEqual(budget.reserved, 2 * budget.perIdentity)
        self.assertEqual([pinner.taken() for pinner in pinners], [[]] * 8)
        self.passTime(clock, 0.5, everyone)
        self.assertEqual(budget.reserved, 0)
        abandoned = [(0, records.ACK_ABANDONED), (1, records.ACK_ABANDONED)]
        self.assertEqual([pinner.taken() for pinner in pinners].count(abandoned), 4)
        for peer in everyone:
            self.assertIsNone(peer.session.closedReason)

    def passTime(self, clock: task.Clock, seconds: float, peers: list[_Peer]) -> None:
        """
        Let C{seconds} pass, a second at a time, with every peer answering
        its heartbeats.
        """
        while seconds > 0:
            step = min(1.0, seconds)
            clock.advance(step)
            seconds -= step
            for peer in peers:
                peer.read()

    def test_busyMessageSentAgain(self) -> None:
        """
        A client whose message the server refuses as busy, because other
        identities hold the whole budget, keeps its session and sends the
        message again after a short wait; once there is room it is
        delivered and its Deferred fires.
        """
        memory = MemoryServer(self)
        budget = memory.directory.budget
        others = [f"other {n}" for n in range(budget.limit // budget.perIdentity)]
        for other in others:
            self.assertTrue(budget.reserve(other, budget.perIdentity))
        client = memory.connect(self)
        sent = client.sendMessage(b"hello")
        memory.network.flush()
        self.assertNoResult(sent)
        self.assertEqual(memory.serverReceiver.messages, [])
        for other in others:
            budget.release(other, budget.perIdentity)
        memory.clock.advance(2)
        memory.network.flush()
        self.assertEqual(self.successResultOf(sent), messageDigest(records.KIND_BINARY, b"hello"))
        self.assertEqual([m[1] for m in memory.serverReceiver.messages], [b"hello"])
        self.assertIsNone(client.closedReason)
        self.assertIsNone(memory.serverSession().closedReason)


class ClientRetryTests(SynchronousTestCase):
    """
    L{ClientSessionFactory.reconnectLater}: a dead client channel is joined
    again after the retry policy's delay for its count of failed attempts.
    """

    def setUp(self) -> None:
        self.memory = MemoryServer(self)
        self.clock = self.memory.clock
        self.asked: list[int] = []

        def policy(attempt: int) -> float:
            self.asked.append(attempt)
            return 2.0

        self.memory.retryPolicy = policy
        self.factory = self.memory.clientFactory()
        opening = self.factory.openChannel(0)
        self.memory.network.flush()
        self.successResultOf(opening)
        self.joining = self.factory.openChannel(1)
        self.memory.network.flush()
        self.session = self.factory.session

    def cutChannel(self, index: int) -> None:
        network = self.memory.network
        network.cut(network.pumpFor(self.session.channels[index]))
        network.flush()

    def test_rejoinsAfterDelay(self) -> None:
        """
        A lost channel is rejoined only once the policy's delay has passed.
        """
        self.cutChannel(1)
        self.assertEqual(self.asked, [0])
        self.clock.advance(1.9)
        self.memory.network.flush()
        self.assertNotIn(1, self.session.channels)
        self.clock.advance(0.1)
        self.memory.network.flush()
        self.assertIn(1, self.session.channels)

    def test_backoffGrowsThenResets(self) -> None:
        """
        Each failed rejoin asks the policy with the next attempt number; a
        successful one starts the count again.
        """
        self.cutChannel(1)
        busy = self.memory.directory.limits
        busy.joinsPerChannelPerMinute = 0
        for _ in range(3):
            self.clock.advance(2.0)
            self.memory.network.flush()
        self.assertEqual(self.asked, [0, 1, 2, 3])
        self.assertNotIn(1, self.session.channels)
        busy.joinsPerChannelPerMinute = 4
        self.clock.advance(2.0)
        self.memory.network.flush()
        self.assertIn(1, self.session.channels)
        self.cutChannel(1)
        self.assertEqual(self.asked, [0, 1, 2, 3, 0])

    def test_oneRetryPerChannel(self) -> None:
        """
        Asking again for a channel whose rejoin is already scheduled changes
        nothing.
        """
        self.cutChannel(1)
        scheduled = len(self.clock.getDelayedCalls())
        self.factory.reconnectLater(1)
        self.assertEqual(self.asked, [0])
        self.assertEqual(len(self.clock.getDelayedCalls()), scheduled)

    def test_endedSessionCancelsRetries(self) -> None:
        """
        A session that ends (here: closed locally) cancels its scheduled
        rejoins, and no new one is scheduled for it.
        """
        self.cutChannel(1)
        closing = self.session.close()
        self.memory.network.flush()
        self.successResultOf(closing)
        self.factory.reconnectLater(1)
        self.assertEqual(self.asked, [0])
        self.clock.advance(DEFAULT_LINGER)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class SlowlorisTests(SynchronousTestCase):
    """
    T21: connections from one address that never finish their handshake.
    """

    FLOOD = "192.0.2.66"

    def setUp(self) -> None:
        self.patch(asymmetric, "generateExchangeKey", cachedExchangeKey)
        self.clock = task.Clock()
        self.client = cachedIdentity("client")
        self.directory = makeDirectory(
            self.clock,
            AuthorizedKeys("authorized_keys", [(self.client.fingerprint, None)]),
            channelCount=1,
            pendingPerSource=8,
        )
        self.factory = ServerChannelFactory(self.directory, channelSpecs(1)[0])
        self._port = 50000

    def open(self, host: str):
        """
        A connection from C{host} that sends nothing.

        @return: its protocol and transport.
        """
        self._port += 1
        address = (IPv6Address if ":" in host else IPv4Address)("TCP", host, self._port)
        connection = self.factory.buildProtocol(address)
        transport = StringTransportWithDisconnection(peerAddress=address)
        transport.protocol = connection
        connection.makeConnection(transport)
        return connection, transport

    def legitimate(self):
        """
        A real client from another address runs a whole handshake in memory.

        @return: the client's session.
        """
        network = MemoryNetwork(self.clock)
        factory = ClientSessionFactory(
            self.clock,
            [network.endpoint(self.factory, "198.51.100.7")],
            self.client,
            PinnedKey(cachedIdentity("server").fingerprint),
            "127.0.0.1:9000",
        )
        opening = factory.openChannel(0)
        network.flush()
        self.successResultOf(opening)
        return factory.session

    def flood(self, count: int = 20):
        connections = [self.open(self.FLOOD) for _ in range(count)]
        busy = frames.framed(frames.Alert(frames.ALERT_BUSY).encode())
        pending = [(c, t) for c, t in connections if isinstance(c, ChannelProtocol)]
        refused = [(c, t) for c, t in connections if not isinstance(c, ChannelProtocol)]
        return pending, refused, busy

    def test_slowloris(self) -> None:
        """
        Of 20 connections from one address that never complete F2, 8 are
        pending (each got the server's hello) and 12 are answered "busy" and
        closed; each pending one is aborted with a timeout alert at the F2
        deadline (A16: 3 s, well inside the 10 s handshake limit), even one
        that dribbles bytes; a client from another address completes its
        handshake throughout.
        """
        pending, refused, busy = self.flood()
        self.assertEqual((len(pending), len(refused)), (8, 12))
        for _, transport in refused:
            self.assertEqual(transport.value(), busy)
            self.assertFalse(transport.connected)
        for _, transport in pending:
            (length,) = frames.LENGTH.unpack(transport.value()[:4])
            hello = frames.decodeHandshake(transport.value()[4 : 4 + length])
            self.assertIsInstance(hello, frames.ServerHello)
            self.assertTrue(transport.connected)
        self.assertEqual(self.directory.pendingHandshakes(), 8)

        session = self.legitimate()
        self.assertIn(session.id, self.directory.sessions)

        self.clock.advance(DEFAULT_REPLY_TIMEOUT - 0.1)
        self.assertTrue(all(t.connected for _, t in pending))
        for connection, _ in pending:
            connection.dataReceived(b"\x00")
        self.legitimate()
        self.clock.advance(0.1)
        timeout = frames.framed(frames.Alert(frames.ALERT_TIMEOUT).encode())
        for connection, transport in pending:
            self.assertFalse(transport.connected)
            self.assertTrue(transport.value().endswith(timeout))
            self.assertTrue(connection.dead)
        self.assertEqual(len(self.directory.sessions), 2)

    def test_timedOutFreesSlot(self) -> None:
        """
        A pending connection aborted at the handshake timeout stops counting
        against its source: after the flood times out, that address may
        connect again.
        """
        pending, _, _ = self.flood(8)
        self.assertEqual(len(pending), 8)
        self.clock.advance(DEFAULT_HANDSHAKE_TIMEOUT)
        self.assertEqual(self.directory.pendingHandshakes(), 0)
        connection, _ = self.open(self.FLOOD)
        self.assertIsInstance(connection, ChannelProtocol)

    def test_closedFreesSlot(self) -> None:
        """
        A pending connection that the peer closes stops counting too.
        """
        pending, _, _ = self.flood(8)
        for _, transport in pending:
            transport.loseConnection()
        self.assertEqual(self.directory.pendingHandshakes(), 0)
        connection, _ = self.open(self.FLOOD)
        self.assertIsInstance(connection, ChannelProtocol)
