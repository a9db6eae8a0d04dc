# -*- test-case-name: tests.memory.test_rotation -*-
"""
Tests for key rotation over channels, as L{spc.session.rotationdriver}
drives it (PROTOCOL section 5, heartbeats of section 8, the T13-T17, T26,
T28, T30 and T33 rows of section 10, amendments A10 and A11).  The machines
of L{spc.protocol.rotation} on their own are tested in
L{tests.unit.test_rotation}.

Two tiers (STYLE habit 14):
    - (b) whole client and server L{Session}s over real
      L{spc.transport.channel.ChannelProtocol}s connected in memory by
      L{twisted.test.iosim}, through a transport that keeps a copy of every
      frame and can push back like a real one;
    - (c) every timer (ACK timeout, overlap, heartbeats, rejoin delay) on a
      L{task.Clock}: nothing sleeps.

Plus the server's rotation rounds (L{spc.server.rounds.RotationRounds}).
"""

from __future__ import annotations

import os
import random
from collections import Counter
from types import SimpleNamespace

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.defer import succeed
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import Logger
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from spc.crypto import suites
from spc.errors import AuthenticationFailed, SessionReset
from spc.protocol import recordlayer as recordModule
from spc.protocol import frames, records
from spc.protocol.rotation import ClientRotation
from spc.server.rounds import RotationRounds
from spc.server.service import ROUND_JITTER, ServerService
from spc.session.session import Session
from tests.common import cachedIdentity
from tests.fakes import FakeChannel
from tests.faultproxy import EPOCH, SEQ
from tests.memory.test_session import (
    RETRY_DELAY,
    MemoryNetwork,
    MemoryServer,
    confirm,
    makeSession,
)
from tests.unit.test_rotation import (
    ACK,
    OTHER_SESSION,
    OVERLAP,
    RecordingOwner,
    S0,
    SESSION,
    exchangeKey,
)

# ---------------------------------------------------------------------------
# Tiers (b) and (c): sessions over in-memory channels, with a clock.

HEARTBEAT = 1.0
SESSION_ACK = 2.0
SESSION_OVERLAP = 3.0
FRAGMENT = frames.MIN_FRAGMENT_SIZE
PARAMS = frames.Params(
    heartbeatInterval=int(HEARTBEAT * 1000),
    rotationInterval=30_000,
    ackTimeout=int(SESSION_ACK * 1000),
    overlap=int(SESSION_OVERLAP * 1000),
    fragmentSize=FRAGMENT,
    maxInner=frames.maxInnerSize(FRAGMENT),
)
STEP = 0.25
AUTH_FAILED = str(AuthenticationFailed())


def frameEpoch(frame: bytes) -> int:
    return int.from_bytes(frame[EPOCH : EPOCH + 4], "big")


def frameSeq(frame: bytes) -> int:
    return int.from_bytes(frame[SEQ : SEQ + 8], "big")


class TappedTransport(iosim.FakeTransport):
    """
    An iosim transport that keeps a copy of every frame written (each
    write of a L{ChannelProtocol} is one whole frame) and, when given a
    C{limit}, pushes back like a TCP transport: it pauses its streaming
    producer while C{limit} bytes or more wait, and resumes it once they
    are taken.

    @ivar frames: every frame written, in order.
    """

    def __init__(self, *args, limit: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.frames: list[bytes] = []
        self.limit = limit
        self._paused = False

    def write(self, data) -> None:
        if self.disconnecting:
            return
        self.frames.append(bytes(data))
        super().write(data)
        if (
            self.limit is not None
            and not self._paused
            and self.producer is not None
            and self.streamingProducer
            and sum(map(len, self.stream)) >= self.limit
        ):
            self._paused = True
            self.producer.pauseProducing()

    def getOutBuffer(self):
        data = super().getOutBuffer()
        if self._paused and self.producer is not None and not self.disconnecting:
            self._paused = False
            self.producer.resumeProducing()
        return data


class TappedNetwork(MemoryNetwork):
    """
    A L{MemoryNetwork} of L{TappedTransport}s whose L{flush} moves every
    connection one step at a time, as concurrent TCP connections would (the
    base class drains one connection before the next).
    """

    def __init__(self, clock: task.Clock, limit: int | None = None) -> None:
        super().__init__(clock)
        self.limit = limit

    def connect(self, serverFactory, clientFactory, host: str) -> iosim.IOPump:
        self._port += 1
        clientAddress = IPv4Address("TCP", host, self._port)
        serverAddress = IPv4Address("TCP", "127.0.0.1", 9000)
        server = serverFactory.buildProtocol(clientAddress)
        client = clientFactory.buildProtocol(serverAddress)
        pump = iosim.connect(
            server,
            TappedTransport(server, True, serverAddress, clientAddress, limit=self.limit),
            client,
            TappedTransport(client, False, clientAddress, serverAddress, limit=self.limit),
            greet=False,
            clock=self.clock,
        )
        self.pumps.append(pump)
        return pump

    def flush(self) -> None:
        for _ in range(100_000):
            if not any([pump.pump() for pump in list(self.pumps)]):
                return
        raise AssertionError("the network never settled")


class Tap:
    """
    Wraps a session's rotation and control sends and its record dispatch,
    keeping what passed (and dropping what a test asks to lose).

    @ivar sent: C{(time, record)} of every offer and control record the
        session's rotation machine and heartbeat code sent, decoded.
    @ivar received: C{(time, channel index, epoch, record)} of every
        record that reached the session.
    @ivar lost: C{(channel index, reason)} of every connection it lost.
    @ivar drop: tags (C{b"RKA:"}...) of control records to lose.
    @ivar dropped: the records lost.
    """

    def __init__(self, session: Session, clock: task.Clock) -> None:
        self.sent: list[tuple[float, object]] = []
        self.received: list[tuple[float, int, int, object]] = []
        self.lost: list[tuple[int, str]] = []
        self.drop: set[bytes] = set()
        self.dropped: list[object] = []
        self._clock = clock
        session.sendControl = self._outgoing(session.sendControl)
        session.sendRotation = self._outgoing(session.sendRotation)
        original, lose = session.recordReceived, session.channelLost

        def recordReceived(channel, epoch, record):
            self.received.append(
                (clock.seconds(), channel.result.keys.channel, epoch, record)
            )
            original(channel, epoch, record)

        def channelLost(channel, reason):
            self.lost.append((channel.result.keys.channel if channel.result else None, reason))
            lose(channel, reason)

        session.recordReceived = recordReceived
        session.channelLost = channelLost

    def _outgoing(self, send):
        def tapped(record):
            decoded = records.decodeRecord(record)
            if bytes(record[:4]) in self.drop:
                self.dropped.append(decoded)
                return
            self.sent.append((self._clock.seconds(), decoded))
            return send(record)

        return tapped

    def lostWith(self, text: str) -> list[int]:
        """
        The channel indexes of the connections lost for a reason saying
        C{text}.
        """
        return [index for index, reason in self.lost if text in reason]

    def sentOf(self, kind: type) -> list:
        return [record for _, record in self.sent if type(record) is kind]

    def receivedOf(self, kind: type) -> list[tuple[float, int, int, object]]:
        return [entry for entry in self.received if type(entry[3]) is kind]


class Pair:
    """
    A client session and the server's session over four in-memory channels
    with L{PARAMS} (or others), both tapped.

    @ivar memory: the L{MemoryServer} (directory, factories, receivers).
    @ivar network: the L{TappedNetwork}.
    @ivar client: the client's L{Session}.
    @ivar server: the server's L{Session}.
    @ivar clientTap: the client's L{Tap}.
    @ivar serverTap: the server's L{Tap}.
    """

    def __init__(
        self, testCase: SynchronousTestCase, params: frames.Params, limit: int | None,
        retry: float,
    ):
        self.testCase = testCase
        self.memory = MemoryServer(testCase)
        self.memory.retryPolicy = lambda attempt: retry
        self.memory.directory.params = params
        self.clock = self.memory.clock
        self.network = self.memory.network = TappedNetwork(self.clock, limit)
        self.client = self.memory.connect(testCase)
        self.server = self.memory.serverSession()
        self.clientTap = Tap(self.client, self.clock)
        self.serverTap = Tap(self.server, self.clock)

    def run(self, seconds: float, step: float = STEP) -> None:
        """
        Let C{seconds} pass in steps, moving every byte after each.
        """
        end = self.clock.seconds() + seconds
        while self.clock.seconds() < end - 1e-9:
            self.clock.advance(min(step, end - self.clock.seconds()))
            self.network.flush()

    def rotate(self) -> None:
        """
        A rotation round reaches the server's session; every byte moves.
        """
        self.server.rotate()
        self.network.flush()

    def exchange(self, size: int = 3 * FRAGMENT + 5) -> None:
        """
        A message each way, delivered and confirmed.
        """
        up, down = os.urandom(size), os.urandom(size)
        upSent = self.client.sendMessage(up)
        downSent = self.server.sendMessage(down)
        self.network.flush()
        self.testCase.successResultOf(upSent)
        self.testCase.successResultOf(downSent)
        self.testCase.assertEqual(self.memory.serverReceiver.data()[-1], up)
        self.testCase.assertEqual(self.memory.clientReceiver.data()[-1], down)

    def pump(self, index: int) -> iosim.IOPump:
        """
        The live connection of channel C{index}.
        """
        return self.network.pumpFor(self.client.channels[index])

    def epochs(self) -> tuple[int, int]:
        return self.client.epoch, self.server.epoch


def makePair(
    testCase, params: frames.Params = PARAMS, limit: int | None = None,
    retry: float = RETRY_DELAY,
) -> Pair:
    """
    A L{Pair}; C{limit} makes its transports push back beyond that many
    waiting bytes, C{retry} is the client's constant rejoin delay.
    """
    return Pair(testCase, params, limit, retry)


def forgedFrame(receiver, plaintext: bytes, epoch: int | None = None) -> bytes:
    """
    A protected frame carrying C{plaintext} with exactly the clear header
    C{receiver} (a L{ChannelProtocol}) expects next, sealed under a fresh
    random key of its suite: only the cryptography can refuse it.
    """
    keys = receiver.result.keys
    suite = keys.suite
    cipher = suite.cipher(os.urandom(suite.keyLength), os.urandom(suite.ivLength))
    seq = receiver.records.receivedFrames
    aad = frames.protectedAAD(
        frames.PROTECTED_HEADER_SIZE + cipher.sealedLength(len(plaintext)),
        suite.suiteID,
        keys.session,
        keys.channel,
        receiver.records.sendEpoch if epoch is None else epoch,
        seq,
    )
    return aad + cipher.seal(seq, aad, plaintext)


def injectTo(pair: Pair, receiver, frame: bytes) -> None:
    """
    Put C{frame} on the wire towards C{receiver}, as an attacker on the
    path would, and let the network settle.
    """
    pump = pair.network.pumpFor(receiver)
    towards = pump.clientIO if receiver is pump.server else pump.serverIO
    towards.stream.append(frame)
    pair.network.flush()


class RotationOverChannelsTests(SynchronousTestCase):
    """
    A plain rotation between real sessions.
    """

    def test_commitEverywhere(self) -> None:
        """
        A round commits epoch 1 on both ends: every connection on both ends
        sends under it, both count one commit, and the client received the
        server's RKC under epoch 1; after the overlap no connection
        accepts epoch 0 any more and neither session holds its secret
        (T15: epoch-e keys released).
        """
        pair = makePair(self)
        pair.rotate()
        self.assertEqual(pair.epochs(), (1, 1))
        self.assertEqual(
            (pair.client.rotationsCommitted, pair.server.rotationsCommitted), (1, 1)
        )
        firstKinds = {type(e[3]) for e in pair.clientTap.received if e[2] == 1}
        self.assertIn(records.RotationCommit, firstKinds)
        for session in (pair.client, pair.server):
            for channel in session.channels.values():
                self.assertEqual(channel.records.sendEpoch, 1)
        pair.exchange()
        pair.run(SESSION_OVERLAP + STEP)
        for session in (pair.client, pair.server):
            self.assertIsNone(session.epochSecret(0))
            self.assertIsNotNone(session.epochSecret(1))
            for channel in session.channels.values():
                self.assertEqual(channel.records.receiveEpochs(), frozenset({1}))
        pair.exchange()


class DroppedAckTests(SynchronousTestCase):
    """
    T13: the client's RKA is lost.
    """

    def test_rollbackAtAckTimeout(self) -> None:
        """
        Without an RKA the server rolls back at exactly the ACK timeout:
        nothing a moment before, RKX a moment after, and the client drops
        its pending epoch on it.  Both stay at epoch 0, messages flow both
        ways throughout, and the next round commits (as epoch 2, epoch 1
        is never reused).
        """
        pair = makePair(self)
        pair.clientTap.drop.add(records.RotationAck.TAG)
        started = pair.clock.seconds()
        pair.rotate()
        self.assertEqual(len(pair.clientTap.dropped), 1)
        self.assertEqual(pair.client.rotations.machine.pending, 1)
        pair.exchange()
        pair.run(SESSION_ACK - 0.01)
        self.assertEqual(pair.serverTap.sentOf(records.RotationAbort), [])
        self.assertEqual(pair.server.rotationsRolledBack, 0)
        self.assertEqual(pair.client.rotations.machine.pending, 1)
        pair.clock.advance(0.01)
        pair.network.flush()
        [(when, abort)] = [
            (t, r) for t, r in pair.serverTap.sent if type(r) is records.RotationAbort
        ]
        self.assertAlmostEqual(when - started, SESSION_ACK, places=6)
        self.assertEqual(abort.newEpoch, 1)
        self.assertEqual(pair.server.rotationsRolledBack, 1)
        self.assertIsNone(pair.client.rotations.machine.pending)
        self.assertEqual(pair.epochs(), (0, 0))
        self.assertIsNone(pair.client.epochSecret(1))
        pair.exchange()
        pair.clientTap.drop.clear()
        pair.rotate()
        self.assertEqual(pair.epochs(), (2, 2))
        self.assertEqual(
            (pair.client.rotationsCommitted, pair.server.rotationsCommitted), (1, 1)
        )
        pair.exchange()

    def test_threeInARow(self) -> None:
        """
        Three lost RKAs in a row: the third rollback ends the session with
        C{BYE:} rekey_failed (code 2, session scope); both ends close with
        L{SessionReset} and what was unconfirmed fails with it (so the
        sender resends it in a new session); a fresh session then works.
        """
        pair = makePair(self)
        pair.clientTap.drop.add(records.RotationAck.TAG)
        clientClosed = pair.client.whenClosed()
        for attempt in range(3):
            pair.rotate()
            self.assertNoResult(clientClosed)
            pair.run(SESSION_ACK + 0.01)
        self.assertEqual(
            [r.newEpoch for r in pair.serverTap.sentOf(records.RotationAbort)], [1, 2, 3]
        )
        byes = {(r.code, r.scope) for _, _, _, r in pair.clientTap.receivedOf(records.Bye)}
        self.assertEqual(byes, {(records.BYE_REKEY_FAILED, records.SCOPE_SESSION)})
        self.assertIsInstance(self.successResultOf(clientClosed), SessionReset)
        self.assertIsInstance(pair.server.closedReason.value, SessionReset)
        self.assertEqual(pair.memory.directory.sessions, {})
        fresh = pair.memory.connect(self)
        self.assertNotEqual(fresh.id, pair.client.id)
        sent = fresh.sendMessage(b"after the reset")
        pair.network.flush()
        self.successResultOf(sent)


class DroppedCommitTests(SynchronousTestCase):
    """
    T14: the server's RKC is lost.
    """

    def test_rkcLostWithItsChannel(self) -> None:
        """
        The server commits and writes RKC on channel 0, and that connection
        dies before it arrives: the client commits implicitly on the first
        epoch-1 frame on another channel (the heartbeat the server sends on
        every channel right after a commit), and traffic goes on.
        """
        pair = makePair(self)
        pair.server.rotate()
        [offer] = pair.serverTap.sentOf(records.RotationOffer)
        zero = pair.pump(0)
        zero.pump()
        self.assertEqual(pair.client.rotations.machine.pending, 1)
        zero.pump()
        self.assertEqual(pair.server.epoch, 1)
        self.assertEqual(pair.serverTap.sentOf(records.RotationCommit), [records.RotationCommit(1)])
        pair.network.cut(zero)
        pair.network.flush()
        self.assertEqual(pair.epochs(), (1, 1))
        self.assertIsNone(pair.client.rotations.machine.pending)
        sent = pair.server.sendMessage(b"under epoch 1")
        pair.network.flush()
        self.successResultOf(sent)
        self.assertEqual(pair.epochs(), (1, 1))
        firstUnderOne = [e for e in pair.clientTap.received if e[2] == 1][0]
        self.assertNotEqual(firstUnderOne[1], 0)
        self.assertNotIsInstance(firstUnderOne[3], records.RotationCommit)
        self.assertEqual(pair.clientTap.receivedOf(records.RotationCommit), [])
        self.assertEqual(pair.client.rotationsCommitted, 1)
        pair.run(RETRY_DELAY)
        self.assertEqual(sorted(pair.client.channels), [0, 1, 2, 3])
        pair.exchange()

    def commitThenCutAll(self, pair: Pair) -> None:
        """
        The server commits epoch 1, then every connection dies before its
        RKC (or any frame under epoch 1) reaches the client.
        """
        pair.server.rotate()
        zero = pair.pump(0)
        zero.pump()
        zero.pump()
        self.assertEqual(pair.server.epoch, 1)
        for pump in list(pair.network.pumps):
            pair.network.cut(pump)
        pair.network.flush()
        self.assertEqual(pair.client.channels, {})
        self.assertEqual((pair.client.epoch, pair.client.rotations.machine.pending), (0, 1))

    def test_allLostRejoinInOverlap(self) -> None:
        """
        Every channel dies between the server's commit and the client's: the
        client rejoins within the overlap with its old epoch, the server's
        F3 announces epoch 1, which the client holds pending, so it commits
        implicitly; the session goes on at epoch 1.
        """
        pair = makePair(self)
        self.commitThenCutAll(pair)
        pair.run(RETRY_DELAY)
        self.assertEqual(sorted(pair.client.channels), [0, 1, 2, 3])
        self.assertEqual(pair.epochs(), (1, 1))
        self.assertEqual(pair.client.rotationsCommitted, 1)
        pair.exchange()
        pair.run(SESSION_OVERLAP)
        pair.exchange()
        self.assertIsNone(pair.client.closedReason)

    def test_allLostRejoinTooLate(self) -> None:
        """
        The same, but the client can only rejoin after the server's
        overlap: its join with epoch 0 is refused, and the client falls
        back to a NEW handshake (PROTOCOL T14, section 5.6): its session
        ends with L{SessionReset}, which makes C{spc send} open a fresh
        session and resend, rather than retrying the dead join until its
        linger time and ending with a plain L{SessionClosed}.
        """
        pair = makePair(self, retry=SESSION_OVERLAP + 1)
        closed = pair.client.whenClosed()
        self.commitThenCutAll(pair)
        pair.run(4 * (SESSION_OVERLAP + 1))
        self.assertEqual(pair.client.channels, {})
        self.assertIsInstance(self.successResultOf(closed), SessionReset)

    def test_rkcDropped(self) -> None:
        """
        The RKC record itself is lost: the client's first frame under
        epoch 1 (the heartbeat the server sends right after committing)
        commits it.
        """
        pair = makePair(self)
        pair.serverTap.drop.add(records.RotationCommit.TAG)
        pair.rotate()
        self.assertEqual(pair.epochs(), (1, 1))
        self.assertEqual(pair.serverTap.sentOf(records.RotationCommit), [])
        self.assertEqual(pair.client.rotationsCommitted, 1)
        pair.run(SESSION_OVERLAP + STEP)
        self.assertIsNone(pair.client.epochSecret(0))
        pair.exchange()


class MidMessageTests(SynchronousTestCase):
    """
    T15: a rotation while a message is on its way.
    """

    def test_straddling(self) -> None:
        """
        A 160-fragment message over four channels whose transports push
        back (64 KiB each): a rotation in the middle commits, the
        message's fragments reach the server under both epochs and over
        all four channels, and it is delivered intact, once.
        """
        pair = makePair(self, limit=4 * FRAGMENT)
        data = os.urandom(160 * FRAGMENT)
        sent = pair.client.sendMessage(data)
        pair.server.rotate()
        pair.network.flush()
        self.successResultOf(sent)
        self.assertEqual(pair.memory.serverReceiver.data(), [data])
        self.assertEqual(pair.epochs(), (1, 1))
        fragments = pair.serverTap.receivedOf(records.Fragment)
        byEpoch = Counter(epoch for _, _, epoch, _ in fragments)
        self.assertEqual(set(byEpoch), {0, 1}, byEpoch)
        self.assertEqual({index for _, index, _, _ in fragments}, {0, 1, 2, 3})
        self.assertEqual(len({r.index for _, _, _, r in fragments}), 160)


class OldEpochFrameTests(SynchronousTestCase):
    """
    T16 and A10: frames of a retired epoch.
    """

    def test_injectedAfterOverlap(self) -> None:
        """
        A frame recorded under epoch 0 and put back on its connection after
        the overlap closes that connection ("epoch 0 is not acceptable")
        on the receiving end, either way; the session goes on over the
        other channels and the connection rejoins.
        """
        pair = makePair(self)
        pair.exchange()
        upFrame = pair.pump(2).clientIO.frames[-1]
        downFrame = pair.pump(3).serverIO.frames[-1]
        self.assertEqual((frameEpoch(upFrame), frameEpoch(downFrame)), (0, 0))
        pair.rotate()
        pair.exchange()
        pair.run(SESSION_OVERLAP + STEP)
        injectTo(pair, pair.server.channels[2], upFrame)
        injectTo(pair, pair.client.channels[3], downFrame)
        self.assertEqual(pair.serverTap.lostWith("epoch 0 is not acceptable"), [2])
        self.assertEqual(pair.clientTap.lostWith("epoch 0 is not acceptable"), [3])
        self.assertEqual(sorted(pair.server.channels), [0, 1])
        self.assertIsNone(pair.server.closedReason)
        pair.exchange()
        pair.run(RETRY_DELAY)
        self.assertEqual(sorted(pair.server.channels), [0, 1, 2, 3])
        pair.exchange()

    def test_retiredPerConnection(self) -> None:
        """
        A10: a connection forgets the old epoch's receive key at its first
        frame under the new one, during the overlap already; the session
        still holds the old secret (for joins) until the overlap ends.
        """
        pair = makePair(self)
        pair.rotate()
        pair.run(HEARTBEAT)
        self.assertIsNotNone(pair.server.epochSecret(0))
        for session in (pair.client, pair.server):
            for channel in session.channels.values():
                self.assertEqual(channel.records.receiveEpochs(), frozenset({1}))


class ForgedRotationTests(SynchronousTestCase):
    """
    T17: rotation records forged without the keys, or replayed.
    """

    def test_forgedOffer(self) -> None:
        """
        An RKO sealed under a key nobody holds, with a perfect header,
        closes the connection it arrives on (authentication fails) and is
        never answered; rotation goes on as if it never came.
        """
        pair = makePair(self)
        offer = records.RotationOffer(1, os.urandom(32), os.urandom(256)).encode()
        injectTo(pair, pair.client.channels[1], forgedFrame(pair.client.channels[1], offer))
        self.assertEqual(pair.clientTap.lostWith(AUTH_FAILED), [1])
        self.assertEqual(pair.clientTap.sentOf(records.RotationAck), [])
        self.assertIsNone(pair.client.rotations.machine.pending)
        pair.rotate()
        self.assertEqual(pair.epochs(), (1, 1))

    def test_forgedAck(self) -> None:
        """
        A forged RKA arriving while an offer is out closes its connection
        and does not count: the real RKA commits, nothing rolls back.
        """
        pair = makePair(self)
        pair.server.rotate()
        ack = records.RotationAck(1, os.urandom(32), os.urandom(32)).encode()
        injectTo(pair, pair.server.channels[2], forgedFrame(pair.server.channels[2], ack))
        self.assertEqual(pair.serverTap.lostWith(AUTH_FAILED), [2])
        self.assertEqual(pair.epochs(), (1, 1))
        self.assertEqual(pair.server.rotationsRolledBack, 0)

    def test_forgedCommit(self) -> None:
        """
        A forged RKC (real RKA lost, so epoch 1 is only pending) closes its
        connection and commits nothing; the server rolls back at its ACK
        timeout and the client drops epoch 1.
        """
        pair = makePair(self)
        pair.clientTap.drop.add(records.RotationAck.TAG)
        pair.rotate()
        commit = records.RotationCommit(1).encode()
        channel = pair.client.channels[3]
        injectTo(pair, channel, forgedFrame(channel, commit, epoch=1))
        self.assertEqual(pair.clientTap.lostWith(AUTH_FAILED), [3])
        self.assertEqual(pair.epochs(), (0, 0))
        pair.run(SESSION_ACK + STEP)
        self.assertEqual(pair.server.rotationsRolledBack, 1)
        self.assertIsNone(pair.client.rotations.machine.pending)
        self.assertEqual(pair.client.rotationsCommitted, 0)
        pair.exchange()

    def test_replayedOffer(self) -> None:
        """
        A captured valid RKO replayed right behind the original on its own
        connection fails the sequence check there; retargeted to another
        connection (header rewritten to what that one expects), it fails
        authentication.  The client answered only the original, and the
        rotation it belonged to commits.
        """
        pair = makePair(self)
        server = pair.server.channels[0]
        towards = pair.network.pumpFor(server).serverIO
        pair.server.rotate()
        offerFrame = towards.frames[-1]
        self.assertEqual(frameEpoch(offerFrame), 0)
        seq = frameSeq(offerFrame)
        towards.stream.append(offerFrame)
        pair.network.flush()
        self.assertEqual(
            pair.clientTap.lostWith(f"sequence {seq} where {seq + 1} was due"), [0]
        )
        self.assertEqual(len(pair.clientTap.sentOf(records.RotationAck)), 1)
        self.assertEqual(pair.server.epoch, 1)
        pair.exchange()
        self.assertEqual(pair.epochs(), (1, 1))
        other = pair.client.channels[1]
        retargeted = bytearray(offerFrame)
        retargeted[6] = other.result.keys.suite.suiteID
        retargeted[24:26] = (1).to_bytes(2, "big")
        retargeted[EPOCH : EPOCH + 4] = max(other.records.receiveEpochs()).to_bytes(4, "big")
        retargeted[SEQ : SEQ + 8] = other.records.receivedFrames.to_bytes(8, "big")
        injectTo(pair, other, bytes(retargeted))
        self.assertEqual(pair.clientTap.lostWith(AUTH_FAILED), [1])
        self.assertEqual(len(pair.clientTap.sentOf(records.RotationAck)), 1)
        self.assertEqual(pair.epochs(), (1, 1))
        self.assertIsNone(pair.client.closedReason)
        pair.exchange()


class DesyncTests(SynchronousTestCase):
    """
    T30: a client that ignores RKC and every frame under the new epoch.
    """

    def test_heartbeatsDetect(self) -> None:
        """
        The client never commits epoch 1 (its machine ignores RKC and
        implicit commits) and keeps sending under epoch 0.  Heartbeats
        carry the committed epochs, so the disagreement is detected; once
        it outlives the overlap the server ends the session with C{BYE:}
        desync (code 3, session scope), and the client's session ends with
        L{SessionReset} (so C{spc send} opens a fresh session and resends),
        not with a silent loss of its channels.
        """
        pair = makePair(self)
        pair.client.rotations.machine.committed = lambda epoch: None
        clientClosed = pair.client.whenClosed()
        pair.rotate()
        self.assertEqual(pair.epochs(), (0, 1))
        pair.run(SESSION_OVERLAP - STEP)
        self.assertNoResult(clientClosed)
        pair.run(3 * SESSION_OVERLAP + 4 * HEARTBEAT)
        byes = {(r.code, r.scope) for _, _, _, r in pair.clientTap.receivedOf(records.Bye)}
        self.assertEqual(
            byes,
            {(records.BYE_DESYNC, records.SCOPE_SESSION)},
            f"client lost {pair.clientTap.lost}; server lost {pair.serverTap.lost}",
        )
        self.assertIsInstance(self.successResultOf(clientClosed), SessionReset)

    def test_missedCommitAtOverlapEnd(self) -> None:
        """
        The server asks every channel for a heartbeat right after its
        commit; a client that answers it with the old epoch missed the
        commit, and the session is reset as soon as the overlap ends.
        """
        pair = makePair(self)
        pair.client.rotations.machine.committed = lambda epoch: None
        serverClosed = pair.server.whenClosed()
        pair.rotate()
        self.assertEqual(pair.epochs(), (0, 1))
        pair.run(SESSION_OVERLAP - STEP)
        self.assertNoResult(serverClosed)
        pair.run(2 * STEP)
        self.assertIsInstance(self.successResultOf(serverClosed), SessionReset)

    def test_heartbeatInTheCommitMillisecond(self) -> None:
        """
        A heartbeat the server sends just before its commit, in the same
        millisecond, is answered by an honest client with the old epoch
        (it read the request before anything under the new one): that
        answer proves no missed commit, and the session outlives the
        overlap at the new epoch.  Only the answers to the requests sent
        after the commit count.
        """
        pair = makePair(self)
        pair.server.rotate()
        for pump in list(pair.network.pumps):
            pump.pump()  # the offer reaches the client; its RKA waits
        beat = pair.server.heartbeats._beats.call.getTime()
        pair.clock.advance(beat - pair.clock.seconds())
        pair.network.flush()
        self.assertEqual(pair.server.epoch, 1)
        early = [
            answer for answer in pair.serverTap.receivedOf(records.HeartbeatResponse)
            if answer[3].committedEpoch == 0
        ]
        self.assertNotEqual(early, [])
        self.assertEqual(
            [answer[3].originTime for answer in early], [int(beat * 1000)] * len(early)
        )
        pair.run(SESSION_OVERLAP + 2 * HEARTBEAT)
        self.assertIsNone(pair.server.closedReason)
        self.assertIsNone(pair.client.closedReason)
        self.assertEqual(pair.epochs(), (1, 1))
        pair.exchange()


class NonceUniquenessTests(SynchronousTestCase):
    """
    T28: no key ever meets the same nonce (AEAD) or IV (CBC) twice, over
    many rotations and reconnects.
    """

    def recordSeals(self) -> list[tuple]:
        """
        Record C{(suite, key, nonce or IV)} for every frame sealed from now
        on, and C{(suite, key)} for every key made.
        """
        uses: list[tuple] = []
        self.keysMade: list[tuple] = []
        keyOf: dict[int, tuple[int, bytes]] = {}
        keep: list = []
        makeCipher = suites.Suite.cipher
        aeadSeal = suites._AEADCipher.seal
        cbcSeal = suites._CBCHMACCipher.sealWithIV

        def cipher(suite, key, iv=b""):
            made = makeCipher(suite, key, iv)
            keep.append(made)
            keyOf[id(made)] = (suite.suiteID, bytes(key))
            self.keysMade.append(keyOf[id(made)])
            return made

        def sealAEAD(cipher, seq, aad, plaintext):
            uses.append((*keyOf[id(cipher)], cipher._nonce(seq)))
            return aeadSeal(cipher, seq, aad, plaintext)

        def sealCBC(cipher, iv, aad, plaintext):
            uses.append((*keyOf[id(cipher)], bytes(iv)))
            return cbcSeal(cipher, iv, aad, plaintext)

        self.patch(suites.Suite, "cipher", cipher)
        self.patch(suites._AEADCipher, "seal", sealAEAD)
        self.patch(suites._CBCHMACCipher, "sealWithIV", sealCBC)
        return uses

    def assertNoRepeats(self, uses: list[tuple]) -> None:
        repeated = [use for use, count in Counter(uses).items() if count > 1]
        self.assertEqual(repeated, [], f"{len(repeated)} (key, nonce) pairs used twice")

    def test_rotationsAndReconnects(self) -> None:
        """
        Twelve rotations (one rolled back), three channels cut and
        rejoined, messages both ways between them: every (key, nonce) and
        every (key, IV) pair is used at most once, and keys are never
        derived twice.
        """
        uses = self.recordSeals()
        sizes = random.Random(28)
        pair = makePair(self)
        for round in range(12):
            if round == 5:
                pair.clientTap.drop.add(records.RotationAck.TAG)
            pair.rotate()
            pair.exchange(sizes.randrange(1, 5 * FRAGMENT))
            if round == 5:
                pair.run(SESSION_ACK + STEP)
                pair.clientTap.drop.clear()
            if round in (2, 6, 9):
                pair.network.cut(pair.pump(round % 4))
                pair.network.flush()
                pair.exchange()
                pair.run(RETRY_DELAY)
                self.assertEqual(len(pair.client.channels), 4)
            pair.run(SESSION_OVERLAP + STEP)
            pair.exchange(sizes.randrange(1, 5 * FRAGMENT))
            pair.exchange()
        self.assertEqual(pair.client.rotationsCommitted, 11)
        self.assertEqual(pair.server.rotationsRolledBack, 1)
        self.assertGreater(len(uses), 1000)
        self.assertEqual({suite for suite, _, _ in uses}, {0x01, 0x02})
        self.assertNoRepeats(uses)
        self.assertEqual(
            [key for key, count in Counter(k for _, k in self.keysMade).items() if count > 2],
            [],
        )

    def test_hardLimitLowered(self) -> None:
        """
        Under test-lowered volume limits (soft 20 frames, hard 40 per key)
        and a large message: the soft limit makes the client ask for a
        rotation (RKR, volume), which commits; a key that reaches the hard
        limit closes its connection instead of sealing one more frame (the
        rotation asked for next waits for the overlap, A11); no key seals
        more than 40 frames, nonces stay unique, and the message arrives
        intact, once, over rejoined connections.
        """
        self.patch(recordModule, "SOFT_FRAMES", 20)
        self.patch(recordModule, "HARD_FRAMES", 40)
        uses = self.recordSeals()
        pair = makePair(self, limit=4 * FRAGMENT)
        data = os.urandom(300 * FRAGMENT)
        sent = pair.client.sendMessage(data)
        for _ in range(40):
            pair.run(STEP)
            if sent.called:
                break
        self.successResultOf(sent)
        self.assertEqual(pair.memory.serverReceiver.data(), [data])
        self.assertEqual(
            pair.clientTap.sentOf(records.RotationRequest)[0],
            records.RotationRequest(records.REKEY_VOLUME),
        )
        self.assertGreaterEqual(pair.server.rotationsCommitted, 1)
        self.assertTrue(pair.clientTap.lostWith("the send key carried all it may"))
        perKey = Counter((suite, key) for suite, key, _ in uses)
        self.assertLessEqual(max(perKey.values()), 40)
        self.assertNoRepeats(uses)


# ---------------------------------------------------------------------------
# The rotation round, and the session's part in it.


class FakeRotatingSession:
    """
    What a rotation round uses of a session.

    @ivar rotated: the clock times L{rotate} was called at.
    @ivar scheduled: whether each call said it came from a round.
    """

    def __init__(self, clock) -> None:
        self._clock = clock
        self.rotated: list[float] = []
        self.scheduled: list[bool] = []
        self.rotationsCommitted = 0
        self.rotationsRolledBack = 0

    def rotate(self, scheduled: bool = False) -> None:
        self.rotated.append(self._clock.seconds())
        self.scheduled.append(scheduled)

    def whenSettled(self):
        return succeed(None)

    def close(self, code, reason):
        return succeed(None)


INTERVAL = 30.0


def makeService(clock=None, sessions: int = 0):
    """
    A L{ServerService} on a memory reactor with C{sessions} fake sessions.
    """
    clock = clock or MemoryReactorClock()
    service = ServerService(
        clock,
        [TCP4ServerEndpoint(clock, 0)],
        cachedIdentity("server"),
        None,
        None,
        params=frames.Params(rotationInterval=int(INTERVAL * 1000)),
    )
    events: list[dict] = []
    service.rotationRounds.log = Logger(observer=events.append)
    fakes = []
    for number in range(sessions):
        fake = FakeRotatingSession(clock)
        service.directory.sessions[bytes([number]) * 16] = fake
        fakes.append(fake)
    return SimpleNamespace(service=service, clock=clock, events=events, sessions=fakes)


class RotationRoundTests(SynchronousTestCase):
    """
    L{RotationRounds.runRound}: every session, spread over the first
    tenth of the interval, reported as a whole.
    """

    def test_everySessionWithinJitter(self) -> None:
        """
        Each session's C{rotate} runs once per round, at a moment within
        the first C{ROUND_JITTER} (10 %) of the interval, not all at the
        same one.
        """
        made = makeService(sessions=20)
        made.clock.advance(100)
        made.service.rotationRounds.runRound()
        spread = INTERVAL * ROUND_JITTER
        times = [call.getTime() - 100 for call in made.clock.getDelayedCalls()]
        self.assertEqual(len(times), 20)
        self.assertTrue(all(0 <= t <= spread for t in times), times)
        self.assertGreater(len(set(times)), 1)
        made.clock.advance(spread)
        self.assertEqual([fake.scheduled for fake in made.sessions], [[True]] * 20)

    def test_stopCancelsScheduledRotations(self) -> None:
        """
        A service that stops cancels the rotations its last round had
        scheduled: no key change starts while sessions wind down.
        """
        made = makeService(sessions=3)
        made.service.startService()
        made.clock.advance(INTERVAL)
        self.assertEqual(len(made.clock.getDelayedCalls()), 3 + 1)  # and the next round
        made.service.stopService()
        made.clock.advance(INTERVAL * ROUND_JITTER)
        self.assertEqual([fake.rotated for fake in made.sessions], [[], [], []])

    def test_roundsEveryInterval(self) -> None:
        """
        Once started, the service runs a round every rotation interval (not
        at start).
        """
        made = makeService(sessions=1)
        made.service.startService()
        self.addCleanup(made.service.stopService)
        made.clock.advance(INTERVAL - 1)
        self.assertEqual(made.service.rotationRounds.count, 0)
        made.clock.advance(1)
        self.assertEqual(made.service.rotationRounds.count, 1)
        for _ in range(int(INTERVAL * (1 + ROUND_JITTER))):
            made.clock.advance(1)
        self.assertEqual(made.service.rotationRounds.count, 2)
        self.assertEqual(len(made.sessions[0].rotated), 2)

    def test_summaryLogged(self) -> None:
        """
        The round after one where a session committed and another rolled
        back logs a summary naming the round, the sessions and the counts of
        that round; the next round starts counting afresh.
        """
        made = makeService(sessions=2)
        made.service.rotationRounds.runRound()
        self.assertEqual(made.events, [])
        made.clock.advance(INTERVAL)
        made.service.directory._rotationEnded(True)
        made.service.directory._rotationEnded(False)
        made.service.rotationRounds.runRound()
        [event] = made.events
        self.assertEqual(
            {k: event[k] for k in ("round", "sessions", "committed", "rolled_back")},
            {"round": 1, "sessions": 2, "committed": 1, "rolled_back": 1},
        )
        self.assertIn("Rotation round", event["log_format"])
        del made.events[:]
        made.service.rotationRounds.runRound()
        [event] = made.events
        self.assertEqual((event["committed"], event["rolled_back"]), (0, 0))

    def test_sessionWithoutChannelSkipped(self) -> None:
        """
        A11: a real server session with no live channel makes no offer in a
        round (and it is not a rollback); one with a channel does.
        """
        clock = MemoryReactorClock()
        made = makeService(clock)
        live = makeSession(True, clock=clock, exchangeKey=exchangeKey().public_key())
        idle = makeSession(True, clock=clock, exchangeKey=exchangeKey().public_key())
        idle.id = OTHER_SESSION
        channel = FakeChannel(0)
        live.attach(channel, 0)
        confirm(live, channel)
        made.service.directory.sessions.update({live.id: live, idle.id: idle})
        made.service.rotationRounds.runRound()
        clock.advance(INTERVAL * ROUND_JITTER)
        self.assertEqual(len(channel.take(records.RotationOffer)), 1)
        self.assertEqual(idle.rotations.machine.epoch, 0)
        self.assertEqual(idle.rotationsRolledBack, 0)
        clock.advance(ACK)
        self.assertEqual(idle.rotationsRolledBack, 0)
        self.assertEqual(live.rotationsRolledBack, 1)

    def test_roundTickSoonAfterCommitSkipped(self) -> None:
        """
        A11: a round tick within rotation_interval / 2 of the session's last
        commit is skipped.  Here the client asked for a rotation (RKR,
        volume) shortly before the round; it committed, its overlap ended,
        and the round that follows makes no offer.
        """
        clock = MemoryReactorClock()
        made = makeService(clock)
        params = PARAMS._replace(
            rotationInterval=int(INTERVAL * 1000), heartbeatInterval=60_000
        )
        server = Session(
            SESSION, True, "peer", params, 0, S0, None, clock,
            exchangeKey=exchangeKey().public_key(),
        )
        channel = FakeChannel(0)
        channel.records.installEpoch = lambda epoch, secret: None
        channel.records.switchSendEpoch = lambda epoch: None
        channel.records.dropEpoch = lambda epoch: None
        server.attach(channel, 0)
        confirm(server, channel)
        made.service.directory.sessions[server.id] = server
        owner = RecordingOwner(0, S0)
        client = ClientRotation(owner, owner.keys, SESSION, exchangeKey(), OVERLAP)
        server.recordReceived(channel, 0, records.RotationRequest(records.REKEY_VOLUME))
        [offer] = channel.take(records.RotationOffer)
        client.offerReceived(offer)
        [ack] = owner.sent(records.RotationAck)
        server.recordReceived(channel, 0, ack)
        self.assertEqual(server.epoch, 1)
        clock.advance(SESSION_OVERLAP + 1)
        channel.take()
        made.service.rotationRounds.runRound()
        clock.advance(INTERVAL * ROUND_JITTER)
        self.assertEqual(channel.take(records.RotationOffer), [])
        self.assertEqual(server.rotationsRolledBack, 0)


class RotationRoundsTests(SynchronousTestCase):
    """
    L{RotationRounds} without a service: its sessions are asked anew at
    every round, and its outcomes start again at 0.
    """

    def test_sessionsAskedEachRound(self) -> None:
        """
        A session that appears between two rounds rotates in the second;
        the outcomes counted since a round are reported and reset by the
        next one.
        """
        clock = task.Clock()
        sessions = [FakeRotatingSession(clock)]
        outcomes = {True: 2, False: 1}
        rounds = RotationRounds(clock, INTERVAL, lambda: sessions, outcomes)
        rounds.start()
        clock.advance(INTERVAL)
        self.assertEqual(outcomes, {True: 0, False: 0})
        sessions.append(FakeRotatingSession(clock))
        clock.advance(INTERVAL)
        clock.advance(INTERVAL * ROUND_JITTER)
        self.assertEqual([len(fake.rotated) for fake in sessions], [2, 1])
        self.assertEqual(rounds.count, 2)
        rounds.stop()
        self.assertEqual(clock.getDelayedCalls(), [])
