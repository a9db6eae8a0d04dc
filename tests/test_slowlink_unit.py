# -*- test-case-name: tests.test_slowlink_unit -*-
"""
Tests for what keeps a slow link's queues short, called directly on a
L{task.Clock}: the test proxy's L{tests.throttle.Throttle}.
"""

from __future__ import annotations

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from tests.throttle import THROTTLE_TICK, Throttle


class ThrottleTests(SynchronousTestCase):
    """
    The test proxy's slow link: bytes go through at its rate, in order,
    and a backlog says so.
    """

    def test_rate(self) -> None:
        """
        1 MB given at once to a 100 kB/s throttle takes 10 s to go
        through, in order; the backlog is reported while it lasts.
        """
        clock = task.Clock()
        out: list[bytes] = []
        backlog: list[bool] = []
        throttle = Throttle(clock, 100_000, out.append, onBacklog=backlog.append)
        data = bytes(range(256)) * 4000
        throttle.send(data)
        self.assertEqual(backlog, [True])
        clock.pump([THROTTLE_TICK] * int(9.0 / THROTTLE_TICK))
        self.assertLess(throttle.written, len(data))
        self.assertGreater(throttle.written, 850_000)
        clock.pump([THROTTLE_TICK] * int(1.5 / THROTTLE_TICK))
        self.assertEqual(b"".join(out), data)
        self.assertEqual(backlog, [True, False])
        self.assertEqual(throttle.waiting, 0)

    def test_stop(self) -> None:
        """
        A stopped throttle writes nothing more and leaves no timer.
        """
        clock = task.Clock()
        out: list[bytes] = []
        throttle = Throttle(clock, 1000, out.append)
        throttle.send(b"x" * 100_000)
        throttle.stop()
        written = throttle.written
        clock.advance(10)
        self.assertEqual(throttle.written, written)
        self.assertEqual(clock.getDelayedCalls(), [])
