# -*- test-case-name: tests.memory.test_pacing -*-
"""
Tests for the slow-link rules wired into a session, on fake channels and a
L{task.Clock}: the scheduler gives a channel no more data than its pace
allows (L{spc.session.channels}, L{spc.session.messenger}), rotation
records go on the channel with the shortest queue and their deadline
follows its round trip (L{spc.session.rotationdriver}), and heartbeat
round trips feed the pace (L{spc.session.heartbeatdriver}).
"""

from __future__ import annotations

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from spc.protocol import records
from spc.session.channels import ChannelSet
from spc.session.messenger import MultiChannelMessenger
from spc.session.pacing import ACK_RTTS, Pacing
from tests.common import cachedExchangeKey
from tests.fakes import FakeChannel
from tests.memory.test_messenger import SIZE, makeParams
from tests.memory.test_rotationdriver import TIMERS, makeDriver
from tests.memory.test_session import attached, decoded, makeSession

LIMIT = 2 * SIZE


def pacedMessenger(count: int = 2):
    """
    A messenger on a real L{ChannelSet} of C{count} fake channels, whose
    pace allows each channel two 16 KiB fragments in flight.

    @return: C{(messenger, channels, clock)}.
    """
    clock = task.Clock()
    channelSet = ChannelSet(clock, 60.0, lambda: None)
    channelSet.pacing = Pacing(clock, floor=LIMIT, initial=LIMIT)
    channels = []
    for index in range(count):
        channel = FakeChannel(index)
        channelSet.attached(channel, confirmed=True)
        channelSet.admit(channel)
        channels.append(channel)
    params = makeParams(maxMessageSize=64 * SIZE, reassemblyBudget=256 * SIZE)
    messenger = MultiChannelMessenger(
        channelSet, params, lambda data, kind: None, clock, pacing=channelSet.pacing
    )
    return messenger, channels, clock


def sentOf(channel: FakeChannel, kind: type) -> list:
    """
    The records of C{kind} sent on C{channel}, decoded.
    """
    return [
        record
        for record in map(records.decodeRecord, channel.sent)
        if isinstance(record, kind)
    ]


def fragmentsOn(channel: FakeChannel) -> list[records.Fragment]:
    return sentOf(channel, records.Fragment)


class SchedulerTests(SynchronousTestCase):
    """
    A channel takes data only while its data in flight is within its pace.
    """

    def test_heldToPace(self) -> None:
        """
        A message of 40 fragments over two channels: each channel takes
        what its pace allows (the check is before each record), and no
        more until the peer acknowledges some.
        """
        messenger, (zero, one), _ = pacedMessenger()
        messenger.send(b"x" * (40 * SIZE))
        self.assertEqual(len(fragmentsOn(zero)), 2)
        self.assertEqual(len(fragmentsOn(one)), 2)
        first = fragmentsOn(zero)[0].index
        messenger.ackReceived(records.Ack(0, records.ACK_PROGRESS, ((first, 1),)))
        self.assertEqual(len(fragmentsOn(zero)), 3)
        self.assertEqual(len(fragmentsOn(one)), 2)

    def test_messageNotBehindFile(self) -> None:
        """
        While a large message fills every channel's pace, a second message
        waits in spc's hands, not behind megabytes handed to TCP: it takes
        its turn as soon as the peer acknowledges (one record per source
        in turn, so the second freed place is its).
        """
        messenger, channels, _ = pacedMessenger()
        messenger.send(b"x" * (40 * SIZE))
        messenger.send(b"urgent")
        sent = [fragment for channel in channels for fragment in fragmentsOn(channel)]
        self.assertEqual([fragment.msgID for fragment in sent], [0, 0, 0, 0])
        acknowledged = tuple((fragment.index, 1) for fragment in sent[:2])
        messenger.ackReceived(records.Ack(0, records.ACK_PROGRESS, acknowledged))
        urgent = [
            fragment
            for channel in channels
            for fragment in fragmentsOn(channel)
            if fragment.msgID == 1
        ]
        self.assertEqual([fragment.payload for fragment in urgent], [b"urgent"])

    def test_deadChannelForgotten(self) -> None:
        """
        A lost channel's pace is forgotten: its replacement starts afresh.
        """
        clock = task.Clock()
        channelSet = ChannelSet(clock, 60.0, lambda: None)
        [zero] = attachedTo(channelSet, 0)
        channelSet.pacing.sent(zero, "k", 10)
        channelSet.lost(zero)
        self.assertEqual(channelSet.pacing.inFlight(zero), 0)


def attachedTo(channelSet: ChannelSet, *indexes: int) -> list[FakeChannel]:
    made = []
    for index in indexes:
        channel = FakeChannel(index)
        channelSet.attached(channel, confirmed=True)
        channelSet.admit(channel)
        made.append(channel)
    return made


class RotationChannelTests(SynchronousTestCase):
    """
    A rotation record goes on the live channel with the shortest queue.
    """

    def test_shortestQueue(self) -> None:
        """
        The channel with the fewest bytes in flight takes it; a paused one
        only when every channel is paused.
        """
        channelSet = ChannelSet(task.Clock(), 60.0, lambda: None)
        zero, one, two = attachedTo(channelSet, 0, 1, 2)
        channelSet.pacing.sent(zero, "a", 1000)
        channelSet.pacing.sent(one, "b", 10)
        channelSet.pacing.sent(two, "c", 100)
        self.assertIs(channelSet.sendRotation(b"RKO:1"), one)
        one.writePaused = True
        self.assertIs(channelSet.sendRotation(b"RKO:2"), two)
        zero.writePaused = two.writePaused = True
        self.assertIs(channelSet.sendRotation(b"RKO:3"), one)
        self.assertEqual(one.sent, [b"RKO:1", b"RKO:3"])
        self.assertEqual(two.sent, [b"RKO:2"])

    def test_noChannel(self) -> None:
        channelSet = ChannelSet(task.Clock(), 60.0, lambda: None)
        self.assertIsNone(channelSet.sendRotation(b"RKO:1"))

    def test_sessionSendsRotationRecords(self) -> None:
        """
        A session's rotation records take the channel with the shortest
        queue, where its acknowledgements take the first free channel.
        """
        session = makeSession(isServer=False)
        zero, one = attached(session, 0, 1)
        session.channelSet.pacing.sent(zero, "file data", 10_000)
        self.assertIs(session.sendRotation(b"RKR:x"), one)
        self.assertEqual(one.sent[-1:], [b"RKR:x"])

    def test_requestOnShortestQueue(self) -> None:
        """
        A client whose key wore out asks for a rotation on the channel with
        the shortest queue, not on the first one.
        """
        session = makeSession(isServer=False, exchangeKey=cachedExchangeKey())
        zero, one = attached(session, 0, 1)
        session.channelSet.pacing.sent(zero, "file data", 10_000)
        session.keyWornOut(zero)
        self.assertEqual(sentOf(zero, records.RotationRequest), [])
        self.assertEqual(
            sentOf(one, records.RotationRequest), [records.RotationRequest(records.REKEY_VOLUME)]
        )


class AckDeadlineTests(SynchronousTestCase):
    """
    The server waits for a rotation's acknowledgement as long as its
    offer's channel's round trip under load asks, within the cap.
    """

    def test_loadedChannel(self) -> None:
        """
        With a measured round trip of 1.5 s on the offer's channel, the
        offer waits 6 s (four round trips), not the configured 5 s.
        """
        driver, session, _, _, clock = makeDriver(fake=False)
        session.roundTrips["a channel"] = 1.5
        driver.rotate()
        [offer] = session.sent
        self.assertIsInstance(offer, records.RotationOffer)
        clock.advance(TIMERS.ackTimeout + 0.5)
        self.assertEqual(driver.rolledBack, 0)
        clock.advance(ACK_RTTS * 1.5 - TIMERS.ackTimeout - 0.5)
        self.assertEqual(driver.rolledBack, 1)

    def test_capped(self) -> None:
        """
        However long the round trip, the offer is rolled back once what the
        interval leaves after the transition has passed (27 - 10 s).
        """
        driver, session, _, _, clock = makeDriver(fake=False)
        session.roundTrips["a channel"] = 100.0
        driver.rotate()
        clock.advance(16.9)
        self.assertEqual(driver.rolledBack, 0)
        clock.advance(0.2)
        self.assertEqual(driver.rolledBack, 1)

    def test_unmeasured(self) -> None:
        """
        Without a measured round trip the configured timeout holds.
        """
        driver, session, _, _, clock = makeDriver(fake=False)
        driver.rotate()
        clock.advance(TIMERS.ackTimeout)
        self.assertEqual(driver.rolledBack, 1)


class HeartbeatRoundTripTests(SynchronousTestCase):
    """
    Heartbeat round trips feed the channel's round trip under load, so an
    end that only receives knows how long its peer's answers take.
    """

    def test_answerMeasures(self) -> None:
        clock = task.Clock()
        session = makeSession(isServer=False, clock=clock)
        [zero] = attached(session, 0)
        clock.advance(session.params.seconds.heartbeatInterval)
        request = sentOf(zero, records.HeartbeatRequest)[-1]
        clock.advance(0.75)
        session.recordReceived(
            zero,
            0,
            decoded(
                records.HeartbeatResponse(
                    request.hbID, request.originTime, 0, records.NO_EPOCH,
                    records.NO_SEQUENCE, 0, 0,
                )
            ),
        )
        self.assertEqual(session.loadedRoundTrip(zero), 0.75)
