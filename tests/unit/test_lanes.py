# -*- test-case-name: tests.unit.test_lanes -*-
"""
Tests for L{spc.lanes}: a L{Lane} runs its jobs in order and reports
them in order, in batches, on the reactor thread; here its worker loop
runs by hand (the thread start is injected) and the reactor's
C{callFromThread} is a list the test empties, so nothing depends on
timing.  Two tests run a real thread.  The lanes a reactor's sessions
share are tested in L{tests.memory.test_lanes}.
"""

from __future__ import annotations

import threading

from hypothesis import given, strategies as st
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from spc import lanes
from spc.lanes import InOrder, InlineLane, Lane


class ManualLane:
    """
    A L{Lane} whose worker loop and reactor calls the test runs.

    @ivar lane: the lane.
    @ivar calls: what the worker asked the reactor thread to call.
    @ivar reported: C{(tag, result)} of every report, in order.
    """

    def __init__(self) -> None:
        self.calls: list = []
        self.loops: list = []
        self.reported: list = []
        self.lane = Lane("test", self.calls.append, lambda target, name: self.loops.append(target))

    def submit(self, tag, job) -> None:
        self.lane.submit(job, lambda result: self.reported.append((tag, result)))

    def work(self) -> None:
        """
        Run every job queued: stop the lane, then run its loop, which ends
        at the stop.
        """
        self.lane.stop()
        [loop] = self.loops
        loop()

    def react(self) -> None:
        calls, self.calls[:] = list(self.calls), []
        for call in calls:
            call()


class LaneTests(SynchronousTestCase):
    """
    Jobs in order, reports in order and in batches, failures reported,
    and a stopped lane finishes what it was given.
    """

    def test_orderAndBatches(self) -> None:
        """
        Jobs run in the order submitted, nothing is reported before the
        reactor thread runs, and the results of jobs finished meanwhile
        are reported together after a single call from the worker.
        """
        manual = ManualLane()
        ran: list[int] = []
        for number in range(5):
            manual.submit(number, lambda number=number: ran.append(number) or number * 10)
        self.assertEqual((ran, manual.reported, manual.lane.pending), ([], [], 5))
        manual.work()
        self.assertEqual(ran, [0, 1, 2, 3, 4])
        self.assertEqual(len(manual.calls), 1)
        self.assertEqual(manual.reported, [])
        manual.react()
        self.assertEqual(manual.reported, [(n, n * 10) for n in range(5)])
        self.assertEqual(manual.lane.pending, 0)

    def test_wakesAgainAfterReport(self) -> None:
        """
        Once the reactor thread read the results, the next result wakes
        it again: no result waits for a call that will not come.
        """
        manual = ManualLane()
        [loop] = manual.loops
        manual.submit("first", lambda: 1)
        pause(manual.lane)
        loop()
        self.assertEqual(len(manual.calls), 1)
        manual.react()
        manual.submit("second", lambda: 2)
        pause(manual.lane)
        loop()
        self.assertEqual(len(manual.calls), 1)
        manual.react()
        self.assertEqual(manual.reported, [("first", 1), ("second", 2)])

    def test_failureReported(self) -> None:
        """
        A job that raises is reported as a L{Failure} of its exception,
        and the jobs after it still run.
        """
        manual = ManualLane()
        manual.submit("bad", lambda: 1 / 0)
        manual.submit("good", lambda: "fine")
        manual.work()
        manual.react()
        [(_, failure), good] = manual.reported
        self.assertIsInstance(failure, Failure)
        self.assertTrue(failure.check(ZeroDivisionError))
        self.assertEqual(good, ("good", "fine"))

    def test_reportRaisesLogged(self) -> None:
        """
        A report that raises is logged, and the reports after it are made.
        """
        reported: list = []
        calls: list = []
        loops: list = []
        lane = Lane("test", calls.append, lambda target, name: loops.append(target))
        lane.submit(lambda: None, lambda result: 1 / 0)
        lane.submit(lambda: "after", reported.append)
        lane.stop()
        loops[0]()
        calls[0]()
        self.assertEqual(reported, ["after"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_stop(self) -> None:
        """
        A stopped lane runs what was queued before the stop in its thread,
        and a job given after the stop at once, on the caller's thread.
        """
        manual = ManualLane()
        manual.submit("queued", lambda: "done")
        manual.lane.stop()
        manual.submit("late", lambda: "at once")
        self.assertEqual(manual.reported, [("late", "at once")])
        manual.work()
        manual.react()
        self.assertEqual(manual.reported, [("late", "at once"), ("queued", "done")])

    def test_stopWaits(self) -> None:
        """
        Stopping a lane with a real thread waits for the jobs it was given.
        """
        ran: list = []
        lane = Lane("real", lambda function: None)
        gate = threading.Event()
        lane.submit(lambda: gate.wait(10), lambda result: None)
        lane.submit(lambda: ran.append("last"), lambda result: None)
        gate.set()
        lane.stop()
        self.assertEqual(ran, ["last"])

    def test_pendingBoundsTheCaller(self) -> None:
        """
        L{Lane.pending} counts the jobs not yet reported, so a caller that
        submits only below its bound never has more than that in the
        lane (back-pressure, not buffering).
        """
        manual = ManualLane()
        bound, submitted = 3, 0
        for _ in range(10):
            if manual.lane.pending < bound:
                manual.submit(submitted, lambda: None)
                submitted += 1
        self.assertEqual((submitted, manual.lane.pending), (3, 3))

    def test_realThread(self) -> None:
        """
        With a real thread, results come back through C{callFromThread},
        in order, and the jobs ran on another thread.
        """
        arrived = threading.Event()
        calls: list = []

        def callFromThread(function) -> None:
            calls.append(function)
            arrived.set()

        lane = Lane("real", callFromThread)
        self.addCleanup(lane.stop)
        reported: list = []
        for number in range(20):
            lane.submit(lambda number=number: (number, threading.get_ident()), reported.append)
        while len(reported) < 20:
            self.assertTrue(arrived.wait(10))
            arrived.clear()
            while calls:
                calls.pop(0)()
        self.assertEqual([number for number, _ in reported], list(range(20)))
        self.assertNotIn(threading.get_ident(), {ident for _, ident in reported})


def pause(lane: Lane) -> None:
    """
    Make the worker loop of C{lane}, run by hand, return once it has run
    what is queued, without stopping the lane.
    """
    lane._jobs.put(lanes._STOP)


class InlineTests(SynchronousTestCase):
    """
    An L{InlineLane}: the lane of work too small for a hand-off, and the
    synchronous runner of tests.
    """

    def test_inline(self) -> None:
        """
        An L{InlineLane} runs and reports each job before C{submit}
        returns, failures as L{Failure}s.
        """
        lane = InlineLane()
        reported: list = []
        lane.submit(lambda: 5, reported.append)
        lane.submit(lambda: 1 / 0, reported.append)
        self.assertEqual(reported[0], 5)
        self.assertTrue(reported[1].check(ZeroDivisionError))
        self.assertEqual(lane.pending, 0)


class InOrderTests(SynchronousTestCase):
    """
    L{InOrder} releases results in the order their work went in.
    """

    @given(st.lists(st.booleans(), max_size=30), st.randoms(use_true_random=False))
    def test_released_in_order(self, inLane: list[bool], random) -> None:
        """
        Whatever mix of results made at once and made in a lane, and in
        whatever order the lane's results arrive, they are released in
        the order they went in, each once.
        """
        released: list[int] = []
        ordered = InOrder(released.append)
        waiting: list = []

        class Lane:
            def submit(self, job, report):
                waiting.append(lambda: report(job()))

        for number, later in enumerate(inLane):
            if later:
                ordered.later(Lane(), lambda number=number: number)
            else:
                ordered.now(number)
            if waiting and random.random() < 0.3:
                waiting.pop(random.randrange(len(waiting)))()
        random.shuffle(waiting)
        for finish in waiting:
            finish()
        self.assertEqual(released, list(range(len(inLane))))
        self.assertEqual(ordered.waiting, 0)

    def test_clear(self) -> None:
        """
        After L{InOrder.clear} nothing more is released, not even results
        that arrive later.
        """
        released: list = []
        ordered = InOrder(released.append)
        reports: list = []

        class Lane:
            def submit(self, job, report):
                reports.append(report)

        ordered.later(Lane(), lambda: 1)
        ordered.now(2)
        ordered.clear()
        reports[0](1)
        ordered.now(3)
        self.assertEqual(released, [3])
