# -*- test-case-name: tests.memory.test_messenger -*-
"""
Tests for L{spc.session.messenger}: fragmentation, the pull-based scheduler over
channels and its send window, acknowledgement, retransmission and in-order
reassembly, driven through a recording L{FragmentSink} with no session and
no sockets, and with L{task.Clock} for time.
"""

from __future__ import annotations

import hashlib
import os
import random

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from spc.errors import MessageAbandoned, PeerBusy, ProtocolError, SessionClosed
from spc.interfaces import WAIT
from spc.protocol import filerecords, frames, records
from spc.protocol.records import messageDigest
from spc.session import messenger as messenger_module
from spc.session.messenger import BUSY_RETRIES, SEND_WINDOW, MultiChannelMessenger
from spc.session.reassembly import ACK_DELAY
from tests.fakes import FakeChannel

SIZE = frames.MIN_FRAGMENT_SIZE


def makeParams(**overrides) -> frames.Params:
    """
    Small session parameters: 16 KiB fragments, 8-fragment messages, four
    messages in flight.
    """
    values = dict(
        fragmentSize=SIZE,
        maxInner=frames.maxInnerSize(SIZE),
        maxMessageSize=8 * SIZE,
        maxInflightMessages=4,
        reassemblyBudget=64 * SIZE,
    )
    values.update(overrides)
    return frames.Params(**values)


class RecordingSink:
    """
    A L{spc.session.messenger.FragmentSink} with C{count} fake channels that records
    every C{(channel, record bytes)} sent, offering the live, unpaused
    channels in turn as L{spc.session.session.Session} does.

    @ivar channels: the fake channels, in order.
    @ivar sent: C{(channel, record)} pairs, oldest first; control records
        go on the first live channel, paused or not.
    @ivar control: the control records sent, in order.
    """

    def __init__(self, count: int) -> None:
        self.channels = [FakeChannel(index) for index in range(count)]
        self.sent: list[tuple[FakeChannel, bytes]] = []
        self.control: list[bytes] = []
        self._turn = 0

    def liveChannels(self) -> list[FakeChannel]:
        return [channel for channel in self.channels if not channel.dead]

    def writableChannel(self) -> FakeChannel | None:
        ready = [channel for channel in self.liveChannels() if not channel.writePaused]
        if not ready:
            return None
        channel = ready[self._turn % len(ready)]
        self._turn += 1
        return channel

    def sendOn(self, channel: FakeChannel, record: bytes) -> None:
        if channel.dead or channel.writePaused:
            raise AssertionError(f"data sent on {channel!r}, which cannot take it")
        self.sent.append((channel, bytes(record)))
        if channel.room is not None:
            channel.room -= 1
            if channel.room <= 0:
                channel.writePaused = True

    def sendControl(self, record: bytes) -> None:
        self.control.append(bytes(record))
        channels = self.liveChannels()
        if channels:
            self.sent.append((channels[0], bytes(record)))

    def take(self) -> list[tuple[FakeChannel, object]]:
        """
        Decode and forget everything sent so far.
        """
        sent, self.sent = self.sent, []
        return [(channel, records.decodeRecord(record)) for channel, record in sent]

    def takeRecords(self, kind: type | None = None) -> list:
        """
        Decode and forget everything sent so far, keeping only C{kind}.
        """
        return [
            record
            for _, record in self.take()
            if kind is None or type(record) is kind
        ]


def makeMessenger(
    channels: int = 3, deliver=None, clock=None, window=None, busyPolicy=None, **params
):
    """
    A messenger on a L{RecordingSink}.

    @param deliver: the delivery callable; by default one that records
        C{(data, kind)} in the returned list.
    @param clock: a L{task.Clock}; a new one by default (reachable as
        C{sink.clock}).
    @param window: the send window in bytes; the default otherwise.
    @param busyPolicy: the wait before sending refused messages again, by
        attempt; the jittered default otherwise.
    @return: C{(messenger, sink, delivered)}.
    """
    sink = RecordingSink(channels)
    sink.clock = clock if clock is not None else task.Clock()
    delivered: list[tuple[bytes, int]] = []
    if deliver is None:
        def deliver(data: bytes, kind: int) -> None:
            delivered.append((data, kind))
    extra = {} if window is None else {"window": window}
    if busyPolicy is not None:
        extra["busyPolicy"] = busyPolicy
    messenger = MultiChannelMessenger(sink, makeParams(**params), deliver, sink.clock, **extra)
    return messenger, sink, delivered


def fragment(
    msgID: int = 0,
    index: int = 0,
    count: int = 1,
    totalLength: int | None = None,
    kind: int = records.KIND_BINARY,
    digest: bytes | None = None,
    payload: bytes = b"payload",
) -> records.Fragment:
    """
    A fragment as the session hands it over: decoded from its encoding.
    """
    if totalLength is None:
        totalLength = len(payload)
    if digest is None:
        digest = messageDigest(kind, payload)
    record = records.Fragment(msgID, index, count, totalLength, kind, digest, payload)
    return records.decodeRecord(record.encode())


class SendTests(SynchronousTestCase):
    """
    L{MultiChannelMessenger.send} splits a message into C{MSG:} fragments
    spread over the live channels, and its Deferred follows the peer's
    C{ACK:}.
    """

    def test_fragments(self) -> None:
        """
        A message larger than the fragment size becomes ceil(n / size)
        fragments with consecutive indexes, one count, the total length, the
        kind, and the digest of the whole message; their payloads are full
        fragments except the last, and concatenate to the message.
        """
        messenger, sink, _ = makeMessenger()
        data = os.urandom(2 * SIZE + 100)
        messenger.send(data, records.KIND_TEXT)
        fragments = sink.takeRecords()
        self.assertEqual([type(r) for r in fragments], [records.Fragment] * 3)
        self.assertEqual([r.index for r in fragments], [0, 1, 2])
        digest = messageDigest(records.KIND_TEXT, data)
        for record in fragments:
            self.assertEqual(
                (record.msgID, record.count, record.totalLength, record.kind, record.digest),
                (0, 3, len(data), records.KIND_TEXT, digest),
            )
        self.assertEqual([len(r.payload) for r in fragments], [SIZE, SIZE, 100])
        self.assertEqual(b"".join(bytes(r.payload) for r in fragments), data)

    def test_fragmentCount(self) -> None:
        """
        The count is max(1, ceil(length / fragment size)): an empty message
        is one empty fragment, and an exact multiple has no empty tail.
        """
        for length, count in [(0, 1), (1, 1), (SIZE, 1), (SIZE + 1, 2), (3 * SIZE, 3)]:
            messenger, sink, _ = makeMessenger()
            messenger.send(b"x" * length)
            fragments = sink.takeRecords()
            self.assertEqual(len(fragments), count, f"length {length}")
            self.assertEqual({r.count for r in fragments}, {count})
            self.assertEqual(sum(len(r.payload) for r in fragments), length)

    def test_digestBindsKindAndLength(self) -> None:
        """
        The digest is H(kind || u64(length) || message), so the same bytes
        sent as another kind carry another digest.
        """
        data = b"hello"
        self.assertEqual(
            messageDigest(records.KIND_TEXT, data),
            hashlib.sha256(b"\x01" + (5).to_bytes(8, "big") + data).digest(),
        )
        self.assertNotEqual(
            messageDigest(records.KIND_TEXT, data), messageDigest(records.KIND_BINARY, data)
        )

    def test_spreadOverChannels(self) -> None:
        """
        The fragments of a message go out over every live channel, evenly.
        """
        messenger, sink, _ = makeMessenger(channels=3)
        messenger.send(b"y" * (6 * SIZE))
        perChannel: dict[FakeChannel, int] = {}
        for channel, record in sink.take():
            perChannel[channel] = perChannel.get(channel, 0) + 1
        self.assertEqual(perChannel, {channel: 2 for channel in sink.channels})

    def test_deadChannelsSkipped(self) -> None:
        """
        A channel the sink no longer lists as live gets nothing.
        """
        messenger, sink, _ = makeMessenger(channels=3)
        sink.channels[1].dead = True
        messenger.send(b"z" * (4 * SIZE))
        used = {channel for channel, _ in sink.take()}
        self.assertEqual(used, {sink.channels[0], sink.channels[2]})

    def test_messageIDs(self) -> None:
        """
        Each message gets the next id, from 0; L{nextSendID} says which.
        """
        messenger, sink, _ = makeMessenger()
        self.assertEqual(messenger.nextSendID, 0)
        messenger.send(b"a")
        messenger.send(b"b")
        self.assertEqual([r.msgID for r in sink.takeRecords()], [0, 1])
        self.assertEqual(messenger.nextSendID, 2)

    def test_tooLarge(self) -> None:
        """
        A message larger than the session's maximum is refused at once and
        nothing is sent.
        """
        messenger, sink, _ = makeMessenger()
        self.assertRaises(ValueError, messenger.send, b"x" * (8 * SIZE + 1))
        self.assertEqual(sink.sent, [])
        self.assertEqual(messenger.nextSendID, 0)

    def test_inflightWindow(self) -> None:
        """
        At most C{maxInflightMessages} messages are on the wire unacknowledged
        (the receiver refuses ids beyond its window); later sends wait, in
        order, and go out as ACKs free the window; every Deferred fires.
        """
        messenger, sink, _ = makeMessenger(maxInflightMessages=2)
        sends = [messenger.send(data) for data in (b"a", b"b", b"c", b"d")]
        self.assertEqual(
            [(r.msgID, bytes(r.payload)) for r in sink.takeRecords()], [(0, b"a"), (1, b"b")]
        )
        messenger.ackReceived(records.Ack(0, records.ACK_COMPLETE))
        self.assertEqual(
            [(r.msgID, bytes(r.payload)) for r in sink.takeRecords()], [(2, b"c")]
        )
        for msgID in (1, 2, 3):
            messenger.ackReceived(records.Ack(msgID, records.ACK_COMPLETE))
        self.assertEqual(
            [(r.msgID, bytes(r.payload)) for r in sink.takeRecords()], [(3, b"d")]
        )
        for sent in sends:
            self.successResultOf(sent)

    def test_waitingFailWithSession(self) -> None:
        """
        Messages still waiting for room in the window fail with the session
        too, and are never sent.
        """
        messenger, sink, _ = makeMessenger(maxInflightMessages=1)
        first = messenger.send(b"a")
        waiting = messenger.send(b"b")
        messenger.failAll(Failure(SessionClosed("gone")))
        self.failureResultOf(first, SessionClosed)
        self.failureResultOf(waiting, SessionClosed)
        self.assertEqual([bytes(r.payload) for r in sink.takeRecords()], [b"a"])

    def test_firesOnlyOnComplete(self) -> None:
        """
        The send Deferred waits through progress ACKs and fires on ACK
        complete.
        """
        messenger, sink, _ = makeMessenger()
        sent = messenger.send(b"x" * (2 * SIZE))
        self.assertNoResult(sent)
        messenger.ackReceived(records.Ack(0, records.ACK_PROGRESS, ((0, 2),)))
        self.assertNoResult(sent)
        messenger.ackReceived(records.Ack(0, records.ACK_COMPLETE))
        self.successResultOf(sent)

    def test_firesWithDigest(self) -> None:
        """
        The send Deferred fires with the message digest (what an
        application uses to de-duplicate across sessions), as
        L{MultiChannelMessenger.send} documents.
        """
        messenger, sink, _ = makeMessenger()
        data = b"digest me"
        sent = messenger.send(data, records.KIND_TEXT)
        messenger.ackReceived(records.Ack(0, records.ACK_COMPLETE))
        self.assertEqual(self.successResultOf(sent), messageDigest(records.KIND_TEXT, data))

    def test_abandoned(self) -> None:
        """
        ACK abandoned fails the send Deferred with L{MessageAbandoned}, and
        only that message's.
        """
        messenger, sink, _ = makeMessenger()
        first = messenger.send(b"a")
        second = messenger.send(b"b")
        messenger.ackReceived(records.Ack(0, records.ACK_ABANDONED))
        self.failureResultOf(first, MessageAbandoned)
        self.assertNoResult(second)

    def test_unknownAckIgnored(self) -> None:
        """
        An ACK for a message never sent, or acknowledged already, changes
        nothing.
        """
        messenger, sink, _ = makeMessenger()
        sent = messenger.send(b"a")
        messenger.ackReceived(records.Ack(7, records.ACK_COMPLETE))
        self.assertNoResult(sent)
        messenger.ackReceived(records.Ack(0, records.ACK_COMPLETE))
        messenger.ackReceived(records.Ack(0, records.ACK_ABANDONED))
        self.successResultOf(sent)

    def test_noLiveChannel(self) -> None:
        """
        Sent while no channel is live, a message is kept, not lost: it goes
        out at the next L{resendAll}.
        """
        messenger, sink, _ = makeMessenger(channels=1)
        sink.channels[0].dead = True
        sent = messenger.send(b"kept")
        self.assertEqual(sink.sent, [])
        sink.channels[0].dead = False
        messenger.resendAll()
        [record] = sink.takeRecords()
        self.assertEqual(bytes(record.payload), b"kept")
        self.assertNoResult(sent)


class RetransmitTests(SynchronousTestCase):
    """
    L{MultiChannelMessenger.resendAll} and L{MultiChannelMessenger.failAll}:
    what happens to unacknowledged fragments when channels or the session
    die.
    """

    def test_resendAll(self) -> None:
        """
        L{resendAll} sends again, once, every unacknowledged fragment that is
        not on its way on a channel, and nothing of acknowledged messages.

        Changed with the window scheduler: fragments already handed to a
        live channel count as on their way and are not sent again (a dead
        channel gives its fragments back through C{channelDied}); so here
        every channel dies while nothing can be sent, and one comes back.
        """
        messenger, sink, _ = makeMessenger(channels=2)
        messenger.send(b"a" * (2 * SIZE + 1))
        messenger.send(b"b" * 10)
        messenger.send(b"c" * (SIZE + 1))
        first = sorted((r.msgID, r.index, bytes(r.payload)) for r in sink.takeRecords())
        messenger.resendAll()
        self.assertEqual(sink.sent, [])
        for channel in sink.channels:
            channel.dead = True
        for channel in sink.channels:
            messenger.channelDied(channel)
        self.assertEqual(sink.sent, [])
        messenger.ackReceived(records.Ack(1, records.ACK_COMPLETE))
        sink.channels[0].dead = False
        messenger.resendAll()
        again = sorted((r.msgID, r.index, bytes(r.payload)) for r in sink.takeRecords())
        self.assertEqual(again, [record for record in first if record[0] != 1])
        messenger.resendAll()
        self.assertEqual(sink.sent, [])

    def test_failAll(self) -> None:
        """
        L{failAll} errbacks every outstanding send with the reason, and
        every later send fails at once with it, sending nothing.
        """
        messenger, sink, _ = makeMessenger()
        first = messenger.send(b"a")
        second = messenger.send(b"b" * (3 * SIZE))
        messenger.failAll(Failure(SessionClosed("gone")))
        self.failureResultOf(first, SessionClosed)
        self.failureResultOf(second, SessionClosed)
        sink.take()
        later = messenger.send(b"c")
        self.failureResultOf(later, SessionClosed)
        self.assertEqual(sink.sent, [])
        messenger.resendAll()
        self.assertEqual(sink.sent, [])


RECORD = frames.TAG_SIZE + frames.FRAGMENT_HEADER_SIZE + SIZE


class ScriptedSource:
    """
    A L{spc.session.messenger.Source} that answers from a script.

    @ivar script: what the next calls return, in order; C{None} once it
        runs out.
    @ivar asked: how many times it was asked.
    """

    def __init__(self, *script) -> None:
        self.script = list(script)
        self.asked = 0

    def nextRecord(self):
        self.asked += 1
        return self.script.pop(0) if self.script else None


def keyed(name: str, number: int) -> tuple[tuple, bytes]:
    """
    A C{(key, record)} pair a scripted source hands out.
    """
    return (name, number), filerecords.FileData(name.encode() * 16, number, b"r").encode()


class FakeFileSender:
    """
    What the messenger uses of an L{spc.files.sending.FileSender}: it waits for
    the receiver's answer, so it has nothing to send.

    @ivar ended: the reasons given to L{sessionEnded}.
    @ivar heard: the answers given to L{ackReceived}.
    @ivar ready: what L{start} was given, to say it has records again.
    """

    name = "fake"
    size = 0

    def __init__(self, transferID: bytes = b"f" * 16) -> None:
        self.transferID = transferID
        self.deferred: Deferred = Deferred()
        self.ended: list[Failure] = []
        self.heard: list = []
        self.ready = None
        self.done = False

    def start(self, ready) -> None:
        self.ready = ready

    def nextRecord(self):
        return None

    def ackReceived(self, ack) -> list:
        self.heard.append(ack)
        return []

    def sessionEnded(self, reason: Failure) -> None:
        self.ended.append(reason)
        self.done = True
        self.deferred.errback(reason)


class SchedulerTests(SynchronousTestCase):
    """
    The pull-based scheduler (A6, A10): records are made only when a
    channel can take them and the send window has room; retransmissions go
    first; a dead channel's unacknowledged records go out again.
    """

    def test_onlyWritableChannels(self) -> None:
        """
        A6: a channel whose transport paused it gets no fragment; the others
        take turns.
        """
        messenger, sink, _ = makeMessenger(channels=3)
        sink.channels[1].writePaused = True
        messenger.send(b"x" * (6 * SIZE))
        used = [channel for channel, _ in sink.take()]
        self.assertEqual(used.count(sink.channels[0]), 3)
        self.assertEqual(used.count(sink.channels[2]), 3)
        self.assertNotIn(sink.channels[1], used)

    def test_pausedGetsNothingUntilPump(self) -> None:
        """
        While every channel is paused nothing is sent and no source is even
        asked for a record; a channel that resumes gets data only when the
        messenger is pumped again (what C{channelWritable} does).
        """
        messenger, sink, _ = makeMessenger(channels=1)
        [channel] = sink.channels
        channel.writePaused = True
        source = ScriptedSource(keyed("a", 0), keyed("a", 1))
        messenger.addSource(source)
        sent = messenger.send(b"m" * (2 * SIZE))
        self.assertEqual(sink.sent, [])
        self.assertEqual(source.asked, 0)
        channel.writePaused = False
        self.assertEqual(sink.sent, [])
        messenger.pump()
        self.assertEqual(len(sink.sent), 4)
        self.assertNoResult(sent)

    def test_transportPausesMidway(self) -> None:
        """
        A transport that pauses its channel partway stops the pump there;
        after it resumes, the rest follows in order, nothing twice.
        """
        messenger, sink, _ = makeMessenger(channels=1)
        [channel] = sink.channels
        channel.room = 2
        messenger.send(b"m" * (5 * SIZE))
        self.assertEqual([r.index for r in sink.takeRecords()], [0, 1])
        self.assertTrue(channel.writePaused)
        channel.writePaused, channel.room = False, None
        messenger.pump()
        self.assertEqual([r.index for r in sink.takeRecords()], [2, 3, 4])

    def test_windowStopsPulling(self) -> None:
        """
        Once the bytes awaiting acknowledgement reach the send window, no
        source is asked for a new record, though channels could take more;
        each acknowledgement that frees room lets more out, the sources
        taking turns.
        """
        messenger, sink, _ = makeMessenger(channels=2, window=2 * RECORD)
        sent = messenger.send(b"w" * (6 * SIZE))
        self.assertEqual([r.index for r in sink.takeRecords()], [0, 1])
        source = ScriptedSource(keyed("s", 0))
        messenger.addSource(source)
        self.assertEqual((sink.sent, source.asked), ([], 0))

        def names() -> list:
            return [
                r.index if type(r) is records.Fragment else "small"
                for r in sink.takeRecords()
            ]

        messenger.ackReceived(records.Ack(0, records.ACK_PROGRESS, ((0, 1),)))
        self.assertEqual((names(), source.asked), ([2], 0))
        messenger.ackReceived(records.Ack(0, records.ACK_PROGRESS, ((1, 2),)))
        self.assertEqual(names(), ["small", 3, 4])
        messenger.ackReceived(records.Ack(0, records.ACK_PROGRESS, ((3, 1),)))
        self.assertEqual(names(), [5])
        self.assertTrue(messenger.acknowledge(("s", 0)))
        self.assertFalse(messenger.acknowledge(("s", 0)))
        self.assertEqual(names(), [])
        messenger.ackReceived(records.Ack(0, records.ACK_COMPLETE))
        self.successResultOf(sent)

    def test_defaultWindow(self) -> None:
        """
        The default send window is 16 MiB.
        """
        self.assertEqual(SEND_WINDOW, 16 * 1024 * 1024)

    def test_retransmissionsFirst(self) -> None:
        """
        Records to send again go before any new record.
        """
        messenger, sink, _ = makeMessenger(channels=2)
        messenger.send(b"a" * (2 * SIZE))
        byChannel = {channel: record.index for channel, record in sink.take()}
        for channel in sink.channels:
            channel.writePaused = True
        messenger.send(b"b" * (2 * SIZE))
        dead, alive = sink.channels
        dead.dead = True
        messenger.channelDied(dead)
        self.assertEqual(sink.sent, [])
        alive.writePaused = False
        messenger.pump()
        self.assertEqual(
            [(r.msgID, r.index) for r in sink.takeRecords()],
            [(0, byChannel[dead]), (1, 0), (1, 1)],
        )

    def test_channelDiedRequeuesItsOwn(self) -> None:
        """
        C{channelDied} sends again exactly what the dead channel carried and
        nobody acknowledged: not what it carried that was acknowledged, and
        not what the other channels carry.
        """
        messenger, sink, _ = makeMessenger(channels=3)
        messenger.send(b"d" * (6 * SIZE))
        carried: dict[FakeChannel, list[int]] = {}
        for channel, record in sink.take():
            carried.setdefault(channel, []).append(record.index)
        victim = sink.channels[1]
        acked, lost = carried[victim]
        messenger.ackReceived(records.Ack(0, records.ACK_PROGRESS, ((acked, 1),)))
        victim.dead = True
        messenger.channelDied(victim)
        resent = sink.take()
        self.assertEqual([record.index for _, record in resent], [lost])
        [(resentOn, _)] = resent
        self.assertIsNot(resentOn, victim)
        messenger.channelDied(victim)
        first = sink.channels[0]
        messenger.channelDied(first)
        self.assertEqual(
            sorted(record.index for _, record in sink.take()),
            sorted(carried[first] + ([lost] if resentOn is first else [])),
        )

    def test_acknowledgedWhileQueued(self) -> None:
        """
        A record queued for retransmission that is acknowledged before a
        channel can take it is not sent.
        """
        messenger, sink, _ = makeMessenger(channels=1)
        messenger.send(b"q" * (3 * SIZE))
        sink.take()
        [channel] = sink.channels
        channel.dead = True
        messenger.channelDied(channel)
        messenger.ackReceived(records.Ack(0, records.ACK_PROGRESS, ((1, 1),)))
        channel.dead = False
        messenger.pump()
        self.assertEqual([r.index for r in sink.takeRecords()], [0, 2])

    def test_waitAskedWhenReady(self) -> None:
        """
        A source that answers L{WAIT} (its records are being read) is
        asked nothing more, while the others go on, until it is added
        again: then it is asked at once.
        """
        messenger, sink, _ = makeMessenger(channels=1)
        source = ScriptedSource(keyed("w", 0), WAIT, keyed("w", 1))
        other = ScriptedSource(keyed("o", 0), keyed("o", 1), keyed("o", 2))
        messenger.addSource(source)
        messenger.addSource(other)
        self.assertEqual(source.asked, 2)
        self.assertEqual(len(sink.takeRecords()), 4)
        [channel] = sink.channels
        channel.writePaused = True
        messenger.addSource(source)
        messenger.addSource(source)
        channel.writePaused = False
        messenger.pump()
        self.assertEqual(source.asked, 4)
        self.assertEqual([r.offset for r in sink.takeRecords()], [1])
        self.assertEqual(sink.clock.getDelayedCalls(), [])

    def test_sourcesTakeTurns(self) -> None:
        """
        Sources take turns record by record, so one large file does not
        hold back a message.
        """
        messenger, sink, _ = makeMessenger(channels=1)
        for channel in sink.channels:
            channel.writePaused = True
        first = ScriptedSource(keyed("a", 0), keyed("a", 1), keyed("a", 2))
        second = ScriptedSource(keyed("b", 0), keyed("b", 1))
        messenger.addSource(first)
        messenger.addSource(second)
        sink.channels[0].writePaused = False
        messenger.pump()
        order = [(bytes(r.transferID[:1]), r.offset) for r in sink.takeRecords()]
        self.assertEqual(
            order, [(b"a", 0), (b"b", 0), (b"a", 1), (b"b", 1), (b"a", 2)]
        )

    def test_failAllEverything(self) -> None:
        """
        Habit 10: L{failAll} errbacks every outstanding Deferred with the
        reason: messages on the wire, messages waiting for the in-flight
        limit, and file senders (through C{sessionEnded}), those not
        started yet too; a source waiting for its records is forgotten,
        and nothing more is sent.
        """
        self.patch(messenger_module, "FILES_AT_ONCE", 1)
        messenger, sink, _ = makeMessenger(channels=1, maxInflightMessages=1)
        onWire = messenger.send(b"a")
        waiting = messenger.send(b"b")
        sender = FakeFileSender()
        fileSent = messenger.sendFile(sender)
        queued = FakeFileSender(b"q" * 16)
        queuedSent = messenger.sendFile(queued)
        self.assertIsNone(queued.ready)
        source = ScriptedSource(WAIT, keyed("y", 0))
        messenger.addSource(source)
        sink.take()
        reason = Failure(SessionClosed("gone"))
        messenger.failAll(reason)
        self.failureResultOf(onWire, SessionClosed)
        self.failureResultOf(waiting, SessionClosed)
        self.failureResultOf(fileSent, SessionClosed)
        self.failureResultOf(queuedSent, SessionClosed)
        self.assertEqual(sender.ended, [reason])
        self.assertEqual(sink.clock.getDelayedCalls(), [])
        messenger.addSource(source)
        messenger.pump()
        messenger.resendAll()
        self.assertEqual(sink.sent, [])

    def test_sendFileAfterFailAll(self) -> None:
        """
        A file given to a messenger whose session ended fails at once.
        """
        messenger, sink, _ = makeMessenger()
        messenger.failAll(Failure(SessionClosed("gone")))
        sender = FakeFileSender()
        self.failureResultOf(messenger.sendFile(sender), SessionClosed)
        self.assertEqual(len(sender.ended), 1)

    def test_fileAcksRouted(self) -> None:
        """
        A C{FAK:} goes to the sender of its transfer id, and to no other;
        one for an unknown transfer is ignored.
        """
        messenger, sink, _ = makeMessenger()
        sender = FakeFileSender(b"1" * 16)
        messenger.sendFile(sender)
        ack = filerecords.FileAck(b"1" * 16, filerecords.FILE_PROGRESS, ((0, 5),))
        messenger.fileAckReceived(ack)
        messenger.fileAckReceived(filerecords.FileAck(b"2" * 16, filerecords.FILE_REFUSED))
        self.assertEqual(sender.heard, [ack])
        sender.done = True
        messenger.fileAckReceived(ack)
        messenger.fileAckReceived(ack)
        self.assertEqual(sender.heard, [ack, ack])

    def test_filesAtOnce(self) -> None:
        """
        At most C{FILES_AT_ONCE} files are under way; the next starts when
        one is over.
        """
        self.patch(messenger_module, "FILES_AT_ONCE", 2)
        messenger, sink, _ = makeMessenger()
        senders = [FakeFileSender(bytes([n]) * 16) for n in range(4)]
        for sender in senders:
            messenger.sendFile(sender)
        self.assertEqual([s.ready is not None for s in senders], [True, True, False, False])
        senders[0].done = True
        messenger.fileAckReceived(
            filerecords.FileAck(bytes([0]) * 16, filerecords.FILE_COMPLETE, (), 0, "x")
        )
        self.assertEqual([s.ready is not None for s in senders], [True, True, True, False])
        senders[1].sessionEnded(Failure(SessionClosed("x")))
        self.failureResultOf(senders[1].deferred, SessionClosed)
        senders[1].ready()
        self.assertIsNotNone(senders[3].ready)

    def test_fileBytesAtOnce(self) -> None:
        """
        No file starts while those under way declare C{FILE_BYTES_AT_ONCE}
        or more; a file that large starts when none is under way.
        """
        self.patch(messenger_module, "FILE_BYTES_AT_ONCE", 100)
        messenger, sink, _ = makeMessenger()
        big, small = FakeFileSender(b"b" * 16), FakeFileSender(b"s" * 16)
        big.size = 100
        messenger.sendFile(big)
        messenger.sendFile(small)
        self.assertIsNotNone(big.ready)
        self.assertIsNone(small.ready)
        big.done = True
        big.ready()
        self.assertIsNotNone(small.ready)

    def test_oneAnswerOnePump(self) -> None:
        """
        An answer that acknowledges many records makes the messenger pump
        once, not once for each record.
        """
        messenger, sink, _ = makeMessenger(channels=1)
        messenger.send(b"p" * (8 * SIZE))
        sink.take()
        pumps: list = []
        pump = messenger.pump
        self.patch(messenger, "pump", lambda: pumps.append(1) or pump())
        messenger.ackReceived(records.Ack(0, records.ACK_PROGRESS, ((0, 8),)))
        self.assertEqual(len(pumps), 1)


def transfer(sender: RecordingSink, receiver: MultiChannelMessenger, shuffle=None) -> None:
    """
    Feed every fragment C{sender} recorded to C{receiver}, shuffled by
    C{shuffle} (a L{random.Random}) if given.
    """
    fragments = sender.takeRecords(records.Fragment)
    if shuffle is not None:
        shuffle.shuffle(fragments)
    for record in fragments:
        receiver.fragmentReceived(record)


def acknowledge(receiver: RecordingSink, sender: MultiChannelMessenger) -> list[records.Ack]:
    """
    Feed every ACK C{receiver} recorded back to C{sender}.
    """
    acks = receiver.takeRecords(records.Ack)
    for ack in acks:
        sender.ackReceived(ack)
    return acks


class ReceiveTests(SynchronousTestCase):
    """
    Reassembly: fragments in any order become whole messages, delivered
    exactly once and in message-id order, each acknowledged.
    """

    def test_roundTrip(self) -> None:
        """
        Fragments fed in shuffled order to a second messenger deliver each
        message once, in msg-id order, and the ACKs it sends complete the
        sender's Deferreds.
        """
        sender, senderSink, _ = makeMessenger(channels=3)
        receiver, receiverSink, delivered = makeMessenger(channels=2)
        messages = [os.urandom(3 * SIZE + 7), b"", os.urandom(SIZE), os.urandom(5 * SIZE)]
        kinds = [records.KIND_BINARY, records.KIND_TEXT, records.KIND_BINARY, records.KIND_TEXT]
        sends = [sender.send(data, kind) for data, kind in zip(messages, kinds)]
        transfer(senderSink, receiver, random.Random(1234))
        self.assertEqual(delivered, list(zip(messages, kinds)))
        acks = acknowledge(receiverSink, sender)
        self.assertEqual(
            [(a.msgID, a.status) for a in acks], [(i, records.ACK_COMPLETE) for i in range(4)]
        )
        for sent in sends:
            self.successResultOf(sent)
        self.assertEqual(receiver.nextDeliveryID, 4)

    def test_laterMessageWaits(self) -> None:
        """
        Message 1, complete before message 0, is neither delivered nor
        acknowledged as complete until message 0 completes; then both are,
        in order.

        Changed: the receiver now sends progress C{ACK:}s after
        C{ACK_DELAY}; they cover the fragments of the message still being
        gathered and say nothing of message 1, which is complete and waits.
        """
        sender, senderSink, _ = makeMessenger()
        receiver, receiverSink, delivered = makeMessenger()
        sender.send(b"zero" * SIZE)
        zero = senderSink.takeRecords()
        sender.send(b"one")
        one = senderSink.takeRecords()
        for record in one + zero[:-1]:
            receiver.fragmentReceived(record)
        self.assertEqual(delivered, [])
        self.assertEqual(receiverSink.takeRecords(records.Ack), [])
        receiverSink.clock.advance(ACK_DELAY)
        [progress] = receiverSink.takeRecords(records.Ack)
        self.assertEqual(
            (progress.msgID, progress.status, progress.ranges),
            (0, records.ACK_PROGRESS, ((0, len(zero) - 1),)),
        )
        self.assertEqual(receiver.nextDeliveryID, 0)
        receiver.fragmentReceived(zero[-1])
        self.assertEqual(
            delivered, [(b"zero" * SIZE, records.KIND_BINARY), (b"one", records.KIND_BINARY)]
        )
        self.assertEqual(
            [(a.msgID, a.status) for a in receiverSink.takeRecords(records.Ack)],
            [(0, records.ACK_COMPLETE), (1, records.ACK_COMPLETE)],
        )

    def test_duplicateFragmentsDropped(self) -> None:
        """
        A fragment received twice while its message is being gathered (or
        waits for an earlier one) is dropped: the message is delivered once.
        A14: a duplicate is answered with a progress C{ACK:} of what is
        held (so the sender stops resending it), and once the messages are
        delivered a later duplicate is answered with C{ACK:} complete; each
        message gets at most one such answer per heartbeat interval.
        """
        sender, senderSink, _ = makeMessenger()
        receiver, receiverSink, delivered = makeMessenger()
        sender.send(b"a" * (2 * SIZE))
        zero = senderSink.takeRecords()
        sender.send(b"b" * 10)
        one = senderSink.takeRecords()
        receiver.fragmentReceived(zero[0])
        receiver.fragmentReceived(zero[0])
        [progress] = receiverSink.takeRecords(records.Ack)
        self.assertEqual(
            (progress.msgID, progress.status, progress.ranges),
            (0, records.ACK_PROGRESS, ((0, 1),)),
        )
        for record in [one[0], one[0], zero[0], zero[1], one[0], zero[1]]:
            receiver.fragmentReceived(record)
        self.assertEqual(
            delivered, [(b"a" * (2 * SIZE), records.KIND_BINARY), (b"b" * 10, records.KIND_BINARY)]
        )
        complete = [
            a.msgID for a in receiverSink.takeRecords(records.Ack)
            if a.status == records.ACK_COMPLETE
        ]
        self.assertEqual(sorted(complete), [0, 1])
        receiverSink.clock.advance(makeParams().heartbeatInterval / 1000)
        for record in [one[0], zero[1]]:
            receiver.fragmentReceived(record)
        complete = [
            a.msgID for a in receiverSink.takeRecords(records.Ack)
            if a.status == records.ACK_COMPLETE
        ]
        self.assertEqual(sorted(complete), [0, 1])

    def test_deliveredDuplicateReAcknowledged(self) -> None:
        """
        A fragment of a message already delivered is not delivered again but
        acknowledged again (the first ACK may have been lost with its
        channel).
        """
        sender, senderSink, _ = makeMessenger()
        receiver, receiverSink, delivered = makeMessenger()
        sender.send(b"a" * (2 * SIZE))
        fragments = senderSink.takeRecords()
        for record in fragments:
            receiver.fragmentReceived(record)
        self.assertEqual(len(receiverSink.takeRecords(records.Ack)), 1)
        receiver.fragmentReceived(fragments[1])
        self.assertEqual(len(delivered), 1)
        [ack] = receiverSink.takeRecords(records.Ack)
        self.assertEqual((ack.msgID, ack.status), (0, records.ACK_COMPLETE))

    def test_acksAreControl(self) -> None:
        """
        ACKs go through the sink's control path (A10: control first), not
        the data scheduler: they leave at once even while every channel's
        transport has paused data.
        """
        receiver, sink, delivered = makeMessenger(channels=2)
        for channel in sink.channels:
            channel.writePaused = True
        receiver.fragmentReceived(fragment())
        [ack] = [records.decodeRecord(record) for record in sink.control]
        self.assertEqual((type(ack), ack.status), (records.Ack, records.ACK_COMPLETE))


class HostileTests(SynchronousTestCase):
    """
    Every size and header field an authenticated peer declares is checked;
    a violation raises L{ProtocolError} (the session then ends), and nothing
    is delivered.
    """

    def assertRefused(self, receiver: MultiChannelMessenger, record: records.Fragment) -> None:
        self.assertRaises(ProtocolError, receiver.fragmentReceived, record)

    def test_totalLengthTooLarge(self) -> None:
        """
        T23: a total length beyond C{maxMessageSize}, even 2**40 with a
        consistent count, is refused on the first fragment.
        """
        receiver, _, delivered = makeMessenger()
        for total in (8 * SIZE + 1, 2**40):
            count = -(-total // SIZE)
            self.assertRefused(
                receiver,
                fragment(count=count, totalLength=total, payload=b"x" * SIZE),
            )
        self.assertEqual(delivered, [])

    def test_countInconsistent(self) -> None:
        """
        A count that is not max(1, ceil(total / size)) is refused, too many
        or too few.
        """
        receiver, _, _ = makeMessenger()
        self.assertRefused(receiver, fragment(count=3, totalLength=2 * SIZE, payload=b"x" * SIZE))
        self.assertRefused(receiver, fragment(count=1, totalLength=2 * SIZE, payload=b"x" * SIZE))
        self.assertRefused(receiver, fragment(count=2, totalLength=0, payload=b""))

    def test_wrongPayloadLength(self) -> None:
        """
        A payload is exactly one fragment size, except the last, which holds
        exactly the rest.
        """
        receiver, _, _ = makeMessenger()
        total = 2 * SIZE + 10
        self.assertRefused(
            receiver, fragment(index=0, count=3, totalLength=total, payload=b"x" * (SIZE - 1))
        )
        self.assertRefused(
            receiver, fragment(index=1, count=3, totalLength=total, payload=b"x" * (SIZE + 1))
        )
        self.assertRefused(
            receiver, fragment(index=2, count=3, totalLength=total, payload=b"x" * 11)
        )
        self.assertRefused(
            receiver, fragment(index=2, count=3, totalLength=total, payload=b"x" * SIZE)
        )

    def test_headerDisagrees(self) -> None:
        """
        T24: a second fragment of the same message id with another count,
        total length, kind or digest is refused.
        """
        total = 2 * SIZE
        digest = messageDigest(records.KIND_BINARY, b"x" * total)
        changes = [
            dict(count=3, totalLength=2 * SIZE + 5),
            dict(kind=records.KIND_TEXT),
            dict(digest=bytes(32)),
        ]
        for change in changes:
            receiver, _, delivered = makeMessenger()
            receiver.fragmentReceived(
                fragment(index=0, count=2, totalLength=total, digest=digest, payload=b"x" * SIZE)
            )
            second = dict(index=1, count=2, totalLength=total, digest=digest, payload=b"x" * SIZE)
            second.update(change)
            self.assertRefused(receiver, fragment(**second))
            self.assertEqual(delivered, [], change)

    def test_digestMismatch(self) -> None:
        """
        A complete message whose bytes do not match its digest is refused,
        not delivered.
        """
        receiver, sink, delivered = makeMessenger()
        self.assertRefused(
            receiver,
            fragment(payload=b"tampered", digest=messageDigest(records.KIND_BINARY, b"original")),
        )
        self.assertEqual(delivered, [])
        self.assertEqual(sink.takeRecords(records.Ack), [])

    def test_beyondWindow(self) -> None:
        """
        T23: a message id C{maxInflightMessages} or more ahead of the next
        one to deliver is refused; the last id inside the window is
        accepted, and the window moves with delivery.
        """
        receiver, _, delivered = makeMessenger(maxInflightMessages=4)
        self.assertRefused(receiver, fragment(msgID=4))
        self.assertRefused(receiver, fragment(msgID=2**63))
        receiver.fragmentReceived(fragment(msgID=3, payload=b"three"))
        receiver.fragmentReceived(fragment(msgID=0, payload=b"zero"))
        self.assertEqual(delivered, [(b"zero", records.KIND_BINARY)])
        receiver.fragmentReceived(fragment(msgID=4, payload=b"four"))
        self.assertRefused(receiver, fragment(msgID=5))

    def test_reassemblyBudget(self) -> None:
        """
        T23 and PROTOCOL 7.3: the first fragment of a message reserves its
        total length from the session's reassembly budget; messages that
        together declare more than the budget are refused before they are
        gathered, though each alone is within C{maxMessageSize}.
        """
        receiver, _, _ = makeMessenger(
            maxMessageSize=8 * SIZE, maxInflightMessages=8, reassemblyBudget=16 * SIZE
        )
        total = 8 * SIZE
        for msgID in (1, 2):
            receiver.fragmentReceived(
                fragment(msgID=msgID, count=8, totalLength=total, payload=b"x" * SIZE)
            )
        self.assertRefused(
            receiver, fragment(msgID=3, count=8, totalLength=total, payload=b"x" * SIZE)
        )


class DeliveryTests(SynchronousTestCase):
    """
    The application's delivery callable decides when a message counts as
    delivered.
    """

    def test_deferredDelaysAck(self) -> None:
        """
        A delivery that returns a Deferred delays the ACK (and the next
        message's delivery) until it fires.
        """
        calls: list[tuple[bytes, Deferred]] = []

        def deliver(data: bytes, kind: int) -> Deferred:
            waiting: Deferred = Deferred()
            calls.append((data, waiting))
            return waiting

        receiver, sink, _ = makeMessenger(deliver=deliver)
        receiver.fragmentReceived(fragment(msgID=0, payload=b"zero"))
        receiver.fragmentReceived(fragment(msgID=1, payload=b"one"))
        self.assertEqual([data for data, _ in calls], [b"zero"])
        self.assertEqual(sink.takeRecords(records.Ack), [])
        self.assertEqual(receiver.nextDeliveryID, 0)
        calls[0][1].callback(None)
        [ack] = sink.takeRecords(records.Ack)
        self.assertEqual((ack.msgID, ack.status), (0, records.ACK_COMPLETE))
        self.assertEqual([data for data, _ in calls], [b"zero", b"one"])
        calls[1][1].callback(None)
        [ack] = sink.takeRecords(records.Ack)
        self.assertEqual((ack.msgID, ack.status), (1, records.ACK_COMPLETE))

    def test_failingDeliveryAbandons(self) -> None:
        """
        A delivery that fails (raising, or through its Deferred) is
        acknowledged as abandoned and logged; later messages are still
        delivered.
        """
        results: list = [ValueError("disk full"), Deferred(), None]
        seen: list[bytes] = []

        def deliver(data: bytes, kind: int):
            seen.append(data)
            result = results[len(seen) - 1]
            if isinstance(result, Exception):
                raise result
            return result

        receiver, sink, _ = makeMessenger(deliver=deliver)
        for msgID in range(3):
            receiver.fragmentReceived(fragment(msgID=msgID, payload=b"m%d" % msgID))
        results[1].errback(KeyError("gone"))
        self.assertEqual(seen, [b"m0", b"m1", b"m2"])
        self.assertEqual(
            [(a.msgID, a.status) for a in sink.takeRecords(records.Ack)],
            [(0, records.ACK_ABANDONED), (1, records.ACK_ABANDONED), (2, records.ACK_COMPLETE)],
        )
        self.assertEqual(len(self.flushLoggedErrors(ValueError, KeyError)), 2)

    def test_noAckAfterFailAll(self) -> None:
        """
        A delivery still pending when the session ends sends no ACK when it
        finally fires.
        """
        waiting: Deferred = Deferred()
        receiver, sink, _ = makeMessenger(deliver=lambda data, kind: waiting)
        receiver.fragmentReceived(fragment())
        receiver.failAll(Failure(SessionClosed("gone")))
        waiting.callback(None)
        self.assertEqual(sink.takeRecords(records.Ack), [])


class DeclaredBytesTests(SynchronousTestCase):
    """
    The receiver reserves a message's whole length when its first fragment
    arrives, so the sender never has more declared bytes in flight than the
    peer's reassembly budget.
    """

    def test_budgetBoundsInflight(self) -> None:
        """
        Messages whose lengths would together exceed the budget wait until
        earlier ones are acknowledged; a single message is always started.
        """
        messenger, sink, _ = makeMessenger(channels=1, reassemblyBudget=3 * SIZE)
        first = messenger.send(b"a" * (2 * SIZE))
        second = messenger.send(b"b" * (2 * SIZE))
        self.assertEqual({r.msgID for r in sink.takeRecords()}, {0})
        messenger.ackReceived(records.Ack(0, records.ACK_COMPLETE))
        self.successResultOf(first)
        self.assertEqual({r.msgID for r in sink.takeRecords()}, {1})
        messenger.ackReceived(records.Ack(1, records.ACK_COMPLETE))
        self.successResultOf(second)



class BusyTests(SynchronousTestCase):
    """
    C{ACK:} busy: the peer had no memory for a message.  The messenger
    stops sending it, sends its bytes again under a new id after a wait,
    keeps the refused id's place in the peer's window until the peer has
    passed it, and gives up on the message alone after C{BUSY_RETRIES}
    refusals; the session goes on.
    """

    def setUp(self) -> None:
        self.waits: list[int] = []

        def policy(attempt: int) -> float:
            self.waits.append(attempt)
            return 2.0

        self.policy = policy

    def test_sentAgainUnderNewID(self) -> None:
        """
        A refused message is not sent further; after the policy's wait its
        bytes go out again as the next message id, and the Deferred fires
        with the digest once that one is complete.
        """
        messenger, sink, _ = makeMessenger(
            channels=1, window=2 * SIZE, busyPolicy=self.policy, maxMessageSize=8 * SIZE
        )
        data = os.urandom(6 * SIZE)
        sent = messenger.send(data)
        first = sink.takeRecords(records.Fragment)
        self.assertEqual([(f.msgID, f.index) for f in first], [(0, 0), (0, 1)])
        messenger.ackReceived(records.Ack(0, records.ACK_BUSY))
        self.assertEqual(sink.takeRecords(records.Fragment), [])
        self.assertNoResult(sent)
        sink.clock.advance(1.9)
        self.assertEqual(sink.takeRecords(records.Fragment), [])
        sink.clock.advance(0.1)
        again = sink.takeRecords(records.Fragment)
        self.assertEqual([(f.msgID, f.index) for f in again], [(1, 0), (1, 1)])
        self.assertEqual(again[0].digest, first[0].digest)
        self.assertEqual(self.waits, [0])
        messenger.ackReceived(records.Ack(1, records.ACK_COMPLETE))
        self.assertEqual(self.successResultOf(sent), messageDigest(records.KIND_BINARY, data))

    def test_sentAgainAsGiven(self) -> None:
        """
        The bytes sent again are exactly those given to C{send}, even when
        they were a view into a larger buffer.
        """
        messenger, sink, _ = makeMessenger(channels=1, busyPolicy=self.policy)
        sent = messenger.send(memoryview(b"before|the message|after")[7:18])
        sink.take()
        messenger.ackReceived(records.Ack(0, records.ACK_BUSY))
        sink.clock.advance(2)
        [again] = sink.takeRecords(records.Fragment)
        self.assertEqual(bytes(again.payload), b"the message")
        self.assertEqual(again.digest, messageDigest(records.KIND_BINARY, b"the message"))
        self.assertNoResult(sent)

    def test_repeatedBusyOnce(self) -> None:
        """
        Later fragments of a refused message are each answered busy; the
        message is sent again once all the same.
        """
        messenger, sink, _ = makeMessenger(channels=1, busyPolicy=self.policy)
        sent = messenger.send(b"x" * (3 * SIZE))
        sink.take()
        for _ in range(3):
            messenger.ackReceived(records.Ack(0, records.ACK_BUSY))
        sink.clock.advance(2)
        self.assertEqual({f.msgID for f in sink.takeRecords(records.Fragment)}, {1})
        self.assertEqual(sink.clock.getDelayedCalls(), [])
        self.assertNoResult(sent)

    def test_refusedKeepsWindowPlace(self) -> None:
        """
        The peer passes a refused id only once every earlier message is
        finished there, so until then it counts against
        C{maxInflightMessages}: no id is started beyond the peer's window.
        The refused bytes go again ahead of the messages still queued.
        """
        messenger, sink, _ = makeMessenger(channels=1, busyPolicy=self.policy)
        sent = [messenger.send(bytes([n]) * 10) for n in range(5)]
        self.assertEqual({f.msgID for f in sink.takeRecords(records.Fragment)}, {0, 1, 2, 3})
        messenger.ackReceived(records.Ack(2, records.ACK_BUSY))
        sink.clock.advance(2)
        self.assertEqual(sink.takeRecords(records.Fragment), [])
        messenger.ackReceived(records.Ack(0, records.ACK_COMPLETE))
        started = sink.takeRecords(records.Fragment)
        self.assertEqual([(f.msgID, bytes(f.payload)) for f in started], [(4, b"\2" * 10)])
        messenger.ackReceived(records.Ack(1, records.ACK_COMPLETE))
        started = sink.takeRecords(records.Fragment)
        self.assertEqual([(f.msgID, bytes(f.payload)) for f in started], [(5, b"\4" * 10)])
        for msgID in (3, 4, 5):
            messenger.ackReceived(records.Ack(msgID, records.ACK_COMPLETE))
        for deferred in sent:
            self.successResultOf(deferred)

    def test_givesUp(self) -> None:
        """
        After C{BUSY_RETRIES} refusals the message fails with L{PeerBusy},
        a L{MessageAbandoned}; the next message is sent as usual.
        """
        messenger, sink, _ = makeMessenger(channels=1, busyPolicy=self.policy)
        sent = messenger.send(b"refused")
        for msgID in range(BUSY_RETRIES):
            self.assertEqual({f.msgID for f in sink.takeRecords(records.Fragment)}, {msgID})
            messenger.ackReceived(records.Ack(msgID, records.ACK_BUSY))
            sink.clock.advance(2)
        failure = self.failureResultOf(sent, PeerBusy)
        self.assertIsInstance(failure.value, MessageAbandoned)
        self.assertEqual(self.waits, list(range(BUSY_RETRIES - 1)))
        later = messenger.send(b"later")
        self.assertEqual(
            {f.msgID for f in sink.takeRecords(records.Fragment)}, {BUSY_RETRIES}
        )
        self.assertNoResult(later)

    def test_sessionEndsWhileWaiting(self) -> None:
        """
        A refused message waiting to go again fails with the session's
        reason when the session ends, and its timer is cancelled.
        """
        messenger, sink, _ = makeMessenger(channels=1, busyPolicy=self.policy)
        sent = messenger.send(b"refused")
        messenger.ackReceived(records.Ack(0, records.ACK_BUSY))
        messenger.failAll(Failure(SessionClosed("gone")))
        self.failureResultOf(sent, SessionClosed)
        self.assertEqual(sink.clock.getDelayedCalls(), [])

    def test_defaultPolicy(self) -> None:
        """
        The default wait starts at half a second and grows to at most 30 s,
        plus up to a second of jitter.
        """
        from spc.session.messenger import BUSY_POLICY

        self.assertTrue(0.5 <= BUSY_POLICY(0) <= 1.5)
        self.assertTrue(30 <= BUSY_POLICY(BUSY_RETRIES) <= 31)
