# -*- test-case-name: tests.unit.test_liveness -*-
"""
Tests for L{spc.protocol.liveness}: when a peer counts as dead, the limit on
heartbeat requests and the epoch check, with the time given (a
L{task.Clock} that nothing is scheduled on).
"""

from __future__ import annotations

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from spc.protocol.liveness import Liveness, RequestLimiter, epochsAgree


class LivenessTests(SynchronousTestCase):
    """
    A channel is dead after C{missLimit} silent intervals or that many
    unanswered requests.
    """

    def test_silence(self) -> None:
        """
        Dead once nothing was heard for more than limit × interval.
        """
        liveness = Liveness(5.0, 3, now=0.0)
        self.assertFalse(liveness.isDead(15.0))
        self.assertTrue(liveness.isDead(15.1))
        liveness.heard(15.1)
        self.assertFalse(liveness.isDead(20.0))

    def test_unanswered(self) -> None:
        """
        Three unanswered requests make a channel dead even if other frames
        arrive; an answer resets the count and measures the round trip.
        """
        liveness = Liveness(5.0, 3, now=0.0)
        first = liveness.request(0.0)
        liveness.request(5.0)
        liveness.heard(9.0)
        self.assertFalse(liveness.isDead(9.0))
        liveness.request(10.0)
        self.assertTrue(liveness.isDead(10.0))
        liveness.answered(first, 10.5)
        self.assertFalse(liveness.isDead(10.5))
        self.assertEqual(liveness.rtt, 10.5)
        liveness.answered(12345, 11.0)
        self.assertEqual(liveness.rtt, 10.5)

    def test_blocked(self) -> None:
        """
        A connection whose transport has taken nothing for more than limit
        × interval is blocked, whatever its peer sends; one that takes data
        is not.
        """
        liveness = Liveness(5.0, 3, now=0.0)
        self.assertFalse(liveness.isBlocked(None, 100.0))
        self.assertFalse(liveness.isBlocked(10.0, 25.0))
        liveness.heard(25.0)
        self.assertTrue(liveness.isBlocked(10.0, 25.1))


CONNECTION = "a connection"


class LimiterTests(SynchronousTestCase):
    """
    Incoming requests: a burst of ten, then two per interval (A18).
    """

    def test_burstThenRate(self) -> None:
        """
        Ten at once are allowed, the eleventh is dropped; after half an
        interval one more is allowed.
        """
        clock = task.Clock()
        limiter = RequestLimiter(clock, 5.0)
        limiter.start(CONNECTION)
        self.assertEqual(
            [limiter.allow(CONNECTION) for _ in range(11)], [True] * 10 + [False]
        )
        clock.advance(2.5)
        self.assertTrue(limiter.allow(CONNECTION))
        self.assertFalse(limiter.abusive(CONNECTION))

    def test_abusive(self) -> None:
        """
        Only a sustained tenfold excess counts as abuse.
        """
        clock = task.Clock()
        limiter = RequestLimiter(clock, 1.0)
        limiter.start(CONNECTION)
        clock.advance(1.0)
        for _ in range(299):
            limiter.allow(CONNECTION)
        self.assertFalse(limiter.abusive(CONNECTION))
        for _ in range(2):
            limiter.allow(CONNECTION)
        self.assertTrue(limiter.abusive(CONNECTION))

    def test_epochs(self) -> None:
        """
        The peer's epoch agrees when it is ours or one we hold.
        """
        self.assertTrue(epochsAgree(3, 3, frozenset({3})))
        self.assertTrue(epochsAgree(2, 3, frozenset({2, 3})))
        self.assertFalse(epochsAgree(1, 3, frozenset({2, 3})))
