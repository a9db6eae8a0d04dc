# -*- test-case-name: tests.unit.test_pacing -*-
"""
Tests for what keeps a slow link's queues short, called directly on a
L{task.Clock}: each channel's pace (L{spc.session.pacing}), the deadline of
a rotation's acknowledgement, the heartbeat dead-time that follows the
measured round trip (L{spc.protocol.liveness}), and the test proxy's
L{tests.throttle.Throttle}.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from spc.protocol.liveness import MAX_GRACE, Liveness
from spc.protocol.timers import Timers
from spc.session.pacing import (
    ACK_RTTS,
    FLOOR,
    INITIAL,
    TARGET_DELAY,
    ChannelPace,
    Pacing,
    ackDeadline,
    ackDeadlineCap,
)
from tests.throttle import THROTTLE_TICK, Throttle

KiB = 1024
MiB = 1024 * KiB
FRAGMENT = 256 * KiB
TEST_TIMERS = Timers(5.0, 8.0, 3.0, 2.0)
DEFAULT_TIMERS = Timers(5.0, 30.0, 5.0, 10.0)
PROPERTY = dict(
    max_examples=200, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
"""
Settings of the property tests: the machine running them may be busy.
"""


class Link:
    """
    A simulated path behind one channel: a bottleneck of C{rate} bytes a
    second with a FIFO queue, a fixed one-way C{delay}, and a receiver that
    acknowledges what arrived every C{ackEvery} seconds.  It drives a
    L{ChannelPace} as the messenger does: send while it allows, then let
    time pass.

    @ivar queueDelays: how long each record waited in the bottleneck.
    """

    def __init__(
        self, rate: float, delay: float = 0.005, ackEvery: float = 0.25, **pace
    ) -> None:
        self.clock = task.Clock()
        self.pace = ChannelPace(self.clock, **pace)
        self.rate = rate
        self.delay = delay
        self.ackEvery = ackEvery
        self._next = 0
        self._busyUntil = 0.0
        self._arrivals: list[tuple[float, int]] = []
        self._lastAck = 0.0
        self.queueDelays: list[float] = []
        self.delivered = 0

    def run(self, seconds: float, step: float = 0.01) -> None:
        end = self.clock.seconds() + seconds
        while self.clock.seconds() < end:
            now = self.clock.seconds()
            while self.pace.allows():
                key = self._next
                self._next += 1
                self.pace.sent(key, FRAGMENT)
                start = max(now, self._busyUntil)
                self.queueDelays.append(start - now)
                self._busyUntil = start + FRAGMENT / self.rate
                self._arrivals.append((self._busyUntil + self.delay, key))
            if now - self._lastAck >= self.ackEvery:
                self._lastAck = now
                arrived = [key for at, key in self._arrivals if at + self.delay <= now]
                self._arrivals = [(at, key) for at, key in self._arrivals if at + self.delay > now]
                self.delivered += len(arrived) * FRAGMENT
                self.pace.acked(arrived)
            self.clock.advance(step)


class ChannelPaceTests(SynchronousTestCase):
    """
    A channel's data in flight stays near its delivery rate times the
    target delay, never below the floor.
    """

    def test_initial(self) -> None:
        """
        Before the first acknowledgement a channel may have C{INITIAL} in
        flight, and no more than one record beyond it.
        """
        pace = ChannelPace(task.Clock())
        self.assertEqual(pace.limit, INITIAL)
        sent = 0
        while pace.allows():
            pace.sent(sent, FRAGMENT)
            sent += 1
        self.assertEqual(pace.inFlight, INITIAL)
        self.assertIsNone(pace.rate)

    def test_rateFromAcknowledgements(self) -> None:
        """
        Records acknowledged over time give the delivery rate, the round
        trip from hand-off to acknowledgement, and a limit of rate times
        target.
        """
        clock = task.Clock()
        pace = ChannelPace(clock)
        for key in range(4):
            pace.sent(key, FRAGMENT)
        clock.advance(0.5)
        pace.acked([0, 1])
        self.assertEqual(pace.inFlight, 2 * FRAGMENT)
        self.assertEqual(pace.delivered, 2 * FRAGMENT)
        self.assertEqual(pace.rate, 2 * FRAGMENT / 0.5)
        self.assertEqual(pace.srtt, 0.5)
        self.assertEqual(pace.limit, int(2 * FRAGMENT / 0.5 * TARGET_DELAY))
        clock.advance(0.5)
        pace.acked([2, 3, 17])
        self.assertEqual(pace.inFlight, 0)
        self.assertEqual(pace.rate, 4 * FRAGMENT / 1.0)
        once = 0.5 + 0.125 * (1.0 - 0.5)
        self.assertAlmostEqual(pace.srtt, once + 0.125 * (1.0 - once))

    def test_floor(self) -> None:
        """
        However slow the channel, it may have C{FLOOR} in flight.
        """
        clock = task.Clock()
        pace = ChannelPace(clock)
        pace.sent("a", FRAGMENT)
        clock.advance(100)
        pace.acked(["a"])
        self.assertEqual(pace.rate, FRAGMENT / 100)
        self.assertEqual(pace.limit, FLOOR)

    def test_smallRecordNoRateSample(self) -> None:
        """
        A lone small record acknowledged late (a file's offer, answered
        once the receiver opened the file) gives no rate: the channel keeps
        its initial allowance rather than falling to the floor.
        """
        clock = task.Clock()
        pace = ChannelPace(clock)
        pace.sent("offer", 300)
        clock.advance(0.3)
        pace.acked(["offer"])
        self.assertIsNone(pace.rate)
        self.assertEqual(pace.limit, INITIAL)
        self.assertEqual(pace.srtt, 0.3)

    def test_idleTimeIsNoDeliveryTime(self) -> None:
        """
        A channel that had nothing in flight for a while measures its rate
        from its next send, not from its last acknowledgement.
        """
        clock = task.Clock()
        pace = ChannelPace(clock)
        pace.sent("a", FRAGMENT)
        clock.advance(0.1)
        pace.acked(["a"])
        clock.advance(60)
        pace.sent("b", FRAGMENT)
        clock.advance(0.1)
        pace.acked(["b"])
        self.assertAlmostEqual(pace.rate, FRAGMENT / 0.1)

    def test_slowLinkKeepsQueueShort(self) -> None:
        """
        On a 1 MB/s path the limit settles near rate times target: the path
        stays busy, and after the start no record waits in the bottleneck
        for much more than the target delay.
        """
        link = Link(1_000_000)
        link.run(30)
        self.assertGreater(link.delivered / 30, 0.9 * 1_000_000)
        settled = link.queueDelays[len(link.queueDelays) // 2 :]
        self.assertLess(max(settled), TARGET_DELAY + 0.3)
        self.assertLess(link.pace.limit, 1_000_000 * (TARGET_DELAY + 0.5))

    def test_slowLinksStayBusy(self) -> None:
        """
        At 0.25 and 0.5 MB/s, slower than a 256 KiB fragment per target
        delay, two fragments stay in flight: one crosses while the other's
        acknowledgement (held up to C{ACK_DELAY} by the receiver) comes
        back, so the path stays busy.
        """
        for rate in (250_000, 500_000):
            link = Link(rate)
            link.run(30)
            self.assertGreater(link.delivered / 30, 0.9 * rate, rate)

    def test_twoRecords(self) -> None:
        """
        Below two records in flight a channel always takes one more,
        whatever their size.
        """
        pace = ChannelPace(task.Clock(), floor=1, initial=1)
        pace.sent("a", 10 * FLOOR)
        self.assertTrue(pace.allows())
        pace.sent("b", 10 * FLOOR)
        self.assertFalse(pace.allows())

    def test_fastLinkIsNotHeldBack(self) -> None:
        """
        On a fast path the limit grows with the measured rate, within a
        second, far above anything the send window would let out.
        """
        link = Link(500_000_000, delay=0.0005, ackEvery=0.01)
        link.run(1.0, step=0.001)
        self.assertGreater(link.pace.limit, 64 * MiB)
        self.assertGreater(link.delivered, 300_000_000)

    @settings(**PROPERTY)
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["send", "ack", "wait", "rtt"]),
                st.integers(min_value=0, max_value=40),
                st.floats(min_value=0, max_value=120, allow_nan=False),
            ),
            max_size=60,
        )
    )
    def test_neverBelowFloor(self, steps) -> None:
        """
        Whatever is sent, acknowledged (twice, or never sent), measured or
        waited for, the limit is never below the floor, and what is in
        flight is exactly what was sent on it and not acknowledged.
        """
        clock = task.Clock()
        pace = ChannelPace(clock)
        outstanding: dict[int, int] = {}
        for action, key, amount in steps:
            if action == "send":
                size = 1 + int(amount * 10_000)
                pace.sent(key, size)
                outstanding[key] = size
            elif action == "ack":
                pace.acked([key, key + 1])
                outstanding.pop(key, None)
                outstanding.pop(key + 1, None)
            elif action == "wait":
                clock.advance(amount)
            else:
                pace.roundTrip(amount)
            self.assertGreaterEqual(pace.limit, FLOOR)
            self.assertEqual(pace.inFlight, sum(outstanding.values()))


class PacingTests(SynchronousTestCase):
    """
    The paces of a session's channels.
    """

    def test_unknownChannelAllowed(self) -> None:
        """
        A channel nothing was sent on may take data, and has nothing in
        flight.
        """
        pacing = Pacing(task.Clock())
        self.assertTrue(pacing.allows("a"))
        self.assertEqual(pacing.inFlight("a"), 0)
        self.assertIsNone(pacing.smoothedRoundTrip("a"))

    def test_perChannel(self) -> None:
        """
        What is sent and acknowledged counts on its own channel; a channel
        forgotten starts again.
        """
        pacing = Pacing(task.Clock(), initial=FLOOR)
        pacing.sent("a", 1, FLOOR // 2)
        pacing.sent("a", 3, FLOOR // 2)
        pacing.sent("b", 2, 10)
        self.assertFalse(pacing.allows("a"))
        self.assertTrue(pacing.allows("b"))
        pacing.acked("a", [2])
        self.assertEqual(pacing.inFlight("a"), FLOOR)
        pacing.acked("a", [1])
        self.assertTrue(pacing.allows("a"))
        pacing.forget("b")
        self.assertEqual(pacing.inFlight("b"), 0)

    def test_shortestQueue(self) -> None:
        """
        The channel with the fewest bytes in flight; among equals the one
        with the shortest round trip, then the first.
        """
        pacing = Pacing(task.Clock())
        self.assertIsNone(pacing.shortestQueue([]))
        self.assertEqual(pacing.shortestQueue(["a", "b"]), "a")
        pacing.sent("a", 1, 100)
        self.assertEqual(pacing.shortestQueue(["a", "b", "c"]), "b")
        pacing.roundTrip("b", 2.0)
        pacing.roundTrip("c", 0.5)
        self.assertEqual(pacing.shortestQueue(["a", "b", "c"]), "c")


class AckDeadlineTests(SynchronousTestCase):
    """
    A rotation's acknowledgement is given the configured timeout or
    C{ACK_RTTS} round trips under load, within what the interval leaves.
    """

    def test_noRoundTrip(self) -> None:
        self.assertEqual(ackDeadline(3.0, None, TEST_TIMERS), 3.0)

    def test_fastPath(self) -> None:
        """
        A short round trip leaves the configured timeout as it is.
        """
        self.assertEqual(ackDeadline(3.0, 0.2, TEST_TIMERS), 3.0)

    def test_loadedPath(self) -> None:
        """
        A long round trip under load lengthens the deadline.
        """
        self.assertEqual(ackDeadline(3.0, 1.0, TEST_TIMERS), ACK_RTTS * 1.0)

    def test_capped(self) -> None:
        """
        The deadline stops where the next round's offer could start: the
        interval less its jitter and the transition.
        """
        self.assertAlmostEqual(ackDeadlineCap(3.0, TEST_TIMERS), 8 * 0.9 - 2)
        self.assertAlmostEqual(ackDeadline(3.0, 10.0, TEST_TIMERS), 8 * 0.9 - 2)
        self.assertAlmostEqual(ackDeadline(5.0, 10.0, DEFAULT_TIMERS), 30 * 0.9 - 10)

    @settings(**PROPERTY)
    @given(
        st.floats(min_value=0.001, max_value=100, allow_nan=False),
        st.floats(min_value=0.001, max_value=1000, allow_nan=False),
        st.floats(min_value=0.001, max_value=100, allow_nan=False),
        st.one_of(st.none(), st.floats(min_value=0, max_value=1e6, allow_nan=False)),
    )
    def test_bounds(self, configured, interval, overlap, roundTrip) -> None:
        """
        Whatever the timers and the round trip, the deadline is never below
        the configured timeout and never past the cap.
        """
        timers = Timers(5.0, interval, configured, overlap)
        deadline = ackDeadline(configured, roundTrip, timers)
        self.assertGreaterEqual(deadline, configured)
        self.assertLessEqual(deadline, ackDeadlineCap(configured, timers))


def answerAfter(liveness: Liveness, roundTrip: float, interval: float, until: float):
    """
    Beat every C{interval} until C{until}, each request answered
    C{roundTrip} later.

    @return: the times at which L{Liveness.isDead} said yes, at a beat.
    """
    clock = task.Clock()
    dead = []

    def beat():
        now = clock.seconds()
        if liveness.isDead(now):
            dead.append(now)
        hbID = liveness.request(now)
        clock.callLater(roundTrip, answer, hbID)

    def answer(hbID):
        now = clock.seconds()
        liveness.heard(now)
        liveness.answered(hbID, now)

    call = task.LoopingCall(beat)
    call.clock = clock
    call.start(interval, now=False)
    while clock.seconds() < until:
        clock.advance(min(interval, roundTrip) / 2)
    call.stop()
    return dead


class DeadTimeTests(SynchronousTestCase):
    """
    The heartbeat dead-time follows the measured round trip: a slow but
    live channel is never dead, a dead one is still found in bounded time.
    """

    def test_slowButLive(self) -> None:
        """
        Answers that take 2 s, four of the 0.5 s intervals, do not make a
        channel dead once one of them measured the round trip.
        """
        liveness = Liveness(0.5, 3, now=0.0)
        liveness.request(0.0)
        liveness.answered(1, 2.0)
        liveness.heard(2.0)
        self.assertEqual(liveness.grace, 8.0)
        self.assertEqual(answerAfter(liveness, 2.0, 0.5, 60.0), [])

    def test_slowButLiveBefore(self) -> None:
        """
        Without the grace, the same channel was dead: three requests in a
        row unanswered at a beat, as the interval rule alone says.
        """
        liveness = Liveness(0.5, 3, now=0.0)
        self.assertNotEqual(answerAfter(liveness, 2.0, 0.5, 60.0), [])

    def test_deadStillFound(self) -> None:
        """
        A channel whose answers stop is dead within the interval rule plus
        the grace (and one beat), for a measured round trip of 2 s.
        """
        liveness = Liveness(0.5, 3, now=0.0)
        liveness.request(0.0)
        liveness.answered(1, 2.0)
        liveness.heard(2.0)
        beat = 2.0
        while not liveness.isDead(beat):
            liveness.request(beat)
            beat += 0.5
        self.assertLessEqual(beat - 2.0, liveness.deadTime + 0.5)
        self.assertGreaterEqual(beat - 2.0, liveness.grace)

    @settings(**PROPERTY)
    @given(
        st.floats(min_value=0.1, max_value=60, allow_nan=False),
        st.floats(min_value=0, max_value=1e6, allow_nan=False),
    )
    def test_graceBounded(self, interval, roundTrip) -> None:
        """
        Whatever the round trip measured, the dead-time is the interval
        rule plus at most C{MAX_GRACE}, and never less than the interval
        rule.
        """
        liveness = Liveness(interval, 3, now=0.0)
        hbID = liveness.request(0.0)
        liveness.answered(hbID, roundTrip)
        self.assertGreaterEqual(liveness.deadTime, 3 * interval)
        self.assertLessEqual(liveness.deadTime, 3 * interval + MAX_GRACE)


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
