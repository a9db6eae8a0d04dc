# -*- test-case-name: tests.memory.test_channels -*-
"""
Tests for L{spc.session.channels}: the books a session keeps of its
connections, which one carries each record, and the linger timer, on a
L{task.Clock}.
"""

from __future__ import annotations

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from spc.protocol import records
from spc.session.channels import ChannelSet
from tests.fakes import FakeChannel

LINGER = 60.0


def makeSet():
    """
    A L{ChannelSet} on a clock, and the list of times it was abandoned.
    """
    clock = task.Clock()
    abandoned: list[float] = []
    channels = ChannelSet(clock, LINGER, lambda: abandoned.append(clock.seconds()))
    return channels, clock, abandoned


def admitted(channels: ChannelSet, *indexes: int) -> list[FakeChannel]:
    made = []
    for index in indexes:
        channel = FakeChannel(index)
        channels.attached(channel, confirmed=True)
        channels.admit(channel)
        made.append(channel)
    return made


class BooksTests(SynchronousTestCase):
    """
    Which connections the set holds, and in what order.
    """

    def test_liveInChannelOrder(self) -> None:
        """
        The live channels come in channel order, without the dead ones.
        """
        channels, _, _ = makeSet()
        two, zero, one = admitted(channels, 2, 0, 1)
        one.dead = True
        self.assertEqual(channels.live(), [zero, two])

    def test_unconfirmed(self) -> None:
        """
        A connection attached unconfirmed is one of the connections but
        carries nothing until confirmed, once.
        """
        channels, _, _ = makeSet()
        [zero] = admitted(channels, 0)
        joining = FakeChannel(1)
        channels.attached(joining, confirmed=False)
        self.assertEqual(channels.live(), [zero])
        self.assertEqual(channels.connections(), [zero, joining])
        self.assertTrue(channels.confirmed(joining))
        self.assertFalse(channels.confirmed(joining))
        self.assertFalse(channels.confirmed(zero))

    def test_replaced(self) -> None:
        """
        Admitting a connection for a taken index replaces the one there and
        says so; admitting the same one again replaces nothing.
        """
        channels, _, _ = makeSet()
        [old] = admitted(channels, 3)
        new = FakeChannel(3)
        self.assertEqual(channels.admit(new), (old, None))
        self.assertEqual(channels.byIndex, {3: new})
        self.assertEqual(channels.admit(new), (None, None))

    def test_rejoinedAfter(self) -> None:
        """
        A connection admitted for an index that was lost says how long the
        index had none; a lost connection that was replaced already counts
        no loss.
        """
        channels, clock, _ = makeSet()
        first, other = admitted(channels, 0, 1)
        clock.advance(5)
        channels.lost(first)
        clock.advance(2.5)
        self.assertEqual(channels.admit(FakeChannel(0)), (None, 2.5))
        replaced = FakeChannel(1)
        channels.admit(replaced)
        channels.lost(other)
        self.assertEqual(channels.byIndex[1], replaced)
        self.assertEqual(channels.admit(FakeChannel(1))[1], None)

    def test_clear(self) -> None:
        """
        Clearing returns every connection, confirmed or not, and forgets
        them.
        """
        channels, _, _ = makeSet()
        [zero] = admitted(channels, 0)
        joining = FakeChannel(1)
        channels.attached(joining, confirmed=False)
        self.assertEqual(channels.clear(), [zero, joining])
        self.assertEqual((channels.byIndex, channels.connections()), ({}, []))


class LingerTests(SynchronousTestCase):
    """
    A session without a live channel ends if none comes back in time.
    """

    def test_abandonedAfterLinger(self) -> None:
        """
        With no live channel left, the session is abandoned exactly one
        linger time later, once.
        """
        channels, clock, abandoned = makeSet()
        [zero] = admitted(channels, 0)
        channels.lost(zero)
        channels.linger()
        channels.linger()
        clock.advance(LINGER - 0.01)
        self.assertEqual(abandoned, [])
        clock.advance(0.01)
        self.assertEqual(abandoned, [LINGER])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_liveChannelLeft(self) -> None:
        """
        While a channel is live, a loss starts no linger.
        """
        channels, clock, abandoned = makeSet()
        zero, _ = admitted(channels, 0, 1)
        channels.lost(zero)
        channels.linger()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_attachCancels(self) -> None:
        """
        A connection that attaches, even unconfirmed, ends the lingering;
        so does clearing.
        """
        for confirmed in (True, False):
            channels, clock, abandoned = makeSet()
            [zero] = admitted(channels, 0)
            channels.lost(zero)
            channels.linger()
            channels.attached(FakeChannel(0), confirmed)
            clock.advance(LINGER)
            self.assertEqual(abandoned, [])
        channels.linger()
        channels.clear()
        self.assertEqual(clock.getDelayedCalls(), [])


class PickingTests(SynchronousTestCase):
    """
    The messenger's sink: which channel carries the next fragment, and
    which a control record.
    """

    def test_takesTurns(self) -> None:
        """
        Fragments go round the live channels whose transport takes data,
        skipping a paused one; with all paused, none is writable.
        """
        channels, _, _ = makeSet()
        zero, one, two = admitted(channels, 0, 1, 2)
        one.writePaused = True
        picked = [channels.writableChannel() for _ in range(4)]
        self.assertEqual(picked, [two, zero, two, zero])
        zero.writePaused = two.writePaused = True
        self.assertIsNone(channels.writableChannel())

    def shares(self, channels: ChannelSet, count: int) -> dict:
        """
        Send C{count} equal records the way the messenger does, and count
        them by channel.
        """
        taken: dict = {}
        for _ in range(count):
            channel = channels.writableChannel()
            channels.sendOn(channel, b"r" * 100)
            taken[channel] = taken.get(channel, 0) + 1
        return taken

    def test_sharesByCost(self) -> None:
        """
        Channels of mixed costs that can all take data get shares in
        inverse proportion to their costs: the costly ones keep carrying
        traffic, less of it.
        """
        channels, _, _ = makeSet()
        cheap, costly, middling = admitted(channels, 0, 1, 2)
        cheap.cost, costly.cost, middling.cost = 1.0, 15.0, 2.0
        taken = self.shares(channels, 600)
        self.assertLess(abs(taken[cheap] / taken[costly] - 15), 1)
        self.assertLess(abs(taken[cheap] / taken[middling] - 2), 0.2)

    def test_pausedGivesWay(self) -> None:
        """
        While the cheap channel is paused, the costly one takes every
        record; once it resumes it starts level, with no burst to catch up
        (which would keep the costly one idle for 150 records here).
        """
        channels, _, _ = makeSet()
        cheap, costly = admitted(channels, 0, 1)
        cheap.cost, costly.cost = 1.0, 15.0
        self.shares(channels, 10)
        cheap.writePaused = True
        self.assertEqual(self.shares(channels, 10), {costly: 10})
        cheap.writePaused = False
        taken = self.shares(channels, 32)
        self.assertEqual((taken[cheap], taken[costly]), (31, 1))

    def test_controlRecord(self) -> None:
        """
        A control record goes on the first live channel that takes data,
        on the first live one if all are paused, and nowhere without a live
        channel.
        """
        channels, _, _ = makeSet()
        record = records.Ack(0, records.ACK_COMPLETE).encode()
        zero, one = admitted(channels, 0, 1)
        zero.writePaused = True
        channels.sendControl(record)
        self.assertEqual((zero.sent, one.sent), ([], [record]))
        one.writePaused = True
        channels.sendControl(record)
        self.assertEqual(zero.sent, [record])
        zero.dead = one.dead = True
        channels.sendControl(record)
        self.assertEqual(len(zero.sent + one.sent), 2)

    def test_controlRecordWhateverCost(self) -> None:
        """
        A control record goes on the first live channel that takes data,
        whatever the channels cost: where a rotation's records travel is
        part of the protocol (docs/protocol.rst, section 13, items 25 and
        26), and a control record is too small for its seal to matter.
        """
        channels, _, _ = makeSet()
        record = records.Ack(0, records.ACK_COMPLETE).encode()
        zero, one, two = admitted(channels, 0, 1, 2)
        zero.cost, one.cost, two.cost = 15.0, 2.0, 2.0
        channels.sendControl(record)
        self.assertEqual((zero.sent, one.sent, two.sent), ([record], [], []))

    def test_sendOn(self) -> None:
        """
        A fragment goes on the channel the messenger picked.
        """
        channels, _, _ = makeSet()
        [zero] = admitted(channels, 0)
        channels.sendOn(zero, b"record")
        self.assertEqual(zero.sent, [b"record"])
