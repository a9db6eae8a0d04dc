"""
Tests for L{spc.inflight}.
"""

from twisted.internet.defer import CancelledError, Deferred
from twisted.trial.unittest import SynchronousTestCase

from spc.inflight import InFlight


class InFlightTests(SynchronousTestCase):
    def test_idleAtFirst(self) -> None:
        """
        With nothing tracked, L{InFlight.whenIdle} has already fired.
        """
        self.assertIsNone(self.successResultOf(InFlight().whenIdle()))

    def test_firesWhenAllFinished(self) -> None:
        """
        A waiter fires only once every tracked piece of work fired,
        whether it succeeded or failed, and results pass through.
        """
        work = InFlight()
        first, second = Deferred(), Deferred()
        work.track(first)
        work.track(second)
        idle = work.whenIdle()
        first.callback("stored")
        self.assertNoResult(idle)
        self.assertEqual(self.successResultOf(first), "stored")
        second.errback(ValueError("disk"))
        self.successResultOf(idle)
        self.failureResultOf(second, ValueError)
        self.assertEqual(work.count, 0)

    def test_cancelForgetsWaiter(self) -> None:
        """
        Cancelling a waiter fails it and leaves the others waiting; work
        finishing later does not touch the cancelled one.
        """
        work = InFlight()
        pending = Deferred()
        work.track(pending)
        cancelled, kept = work.whenIdle(), work.whenIdle()
        cancelled.cancel()
        self.failureResultOf(cancelled, CancelledError)
        pending.callback(None)
        self.successResultOf(kept)
