# -*- test-case-name: tests.memory.test_acks -*-
"""
Tests for L{spc.protocol.acks}: the one rule by which messages and files
are acknowledged.
"""

from __future__ import annotations

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from spc.files import receiving
from spc.protocol.acks import ACK_DELAY, ACK_EVERY, AckBatcher
from spc.session import reassembly


def makeBatcher():
    clock = task.Clock()
    acknowledged: list = []
    return AckBatcher(clock, acknowledged.append), clock, acknowledged


class AckBatcherTests(SynchronousTestCase):
    """
    L{AckBatcher}: an item is acknowledged after C{ACK_EVERY} new pieces,
    or C{ACK_DELAY} after the first of fewer.
    """

    def test_constantsOnce(self) -> None:
        """
        Messages and files follow the same constants, defined once.
        """
        self.assertEqual((ACK_EVERY, ACK_DELAY), (16, 0.25))
        self.assertIs(reassembly.ACK_EVERY, ACK_EVERY)
        self.assertIs(receiving.ACK_DELAY, ACK_DELAY)

    def test_every(self) -> None:
        """
        The C{ACK_EVERY}-th new piece of an item acknowledges it at once;
        the count starts again after.
        """
        batcher, clock, acknowledged = makeBatcher()
        for _ in range(ACK_EVERY - 1):
            batcher.arrived("a")
        self.assertEqual(acknowledged, [])
        batcher.arrived("a")
        self.assertEqual(acknowledged, ["a"])
        batcher.arrived("a")
        self.assertEqual(acknowledged, ["a"])

    def test_delay(self) -> None:
        """
        Fewer pieces are acknowledged C{ACK_DELAY} after the first, every
        item with pieces due at once, by one timer.
        """
        batcher, clock, acknowledged = makeBatcher()
        batcher.arrived("a")
        batcher.arrived("b", 3)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(ACK_DELAY - 0.01)
        self.assertEqual(acknowledged, [])
        clock.advance(0.01)
        self.assertEqual(acknowledged, ["a", "b"])
        clock.advance(ACK_DELAY)
        self.assertEqual(acknowledged, ["a", "b"])

    def test_acknowledgedOtherwise(self) -> None:
        """
        An item its owner acknowledged another way is not due any more.
        """
        batcher, clock, acknowledged = makeBatcher()
        batcher.arrived("a")
        batcher.acknowledged("a")
        clock.advance(ACK_DELAY)
        self.assertEqual(acknowledged, [])

    def test_stop(self) -> None:
        """
        A stopped batcher acknowledges nothing and leaves no timer.
        """
        batcher, clock, acknowledged = makeBatcher()
        batcher.arrived("a")
        batcher.stop()
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(batcher.due, {})
