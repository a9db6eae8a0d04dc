# -*- test-case-name: tests.memory.test_lanes -*-
"""
Tests for L{spc.lanes}' L{Workers}: the lanes a reactor's sessions share,
made once per reactor and stopped when it shuts down; the reactor is a
L{task.Clock} that says it runs threads.  A single lane is tested in
L{tests.unit.test_lanes}.
"""

from __future__ import annotations

from twisted.internet import task
from twisted.internet.interfaces import IReactorThreads
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from spc.lanes import InlineLane, Workers, workersFor


@implementer(IReactorThreads)
class ThreadedClock(task.Clock):
    """
    A clock that says it runs threads, and records what it was asked.
    """

    def __init__(self) -> None:
        super().__init__()
        self.triggers: list = []

    def callFromThread(self, function, *args) -> None:
        function(*args)

    def addSystemEventTrigger(self, phase, event, function, *args):
        self.triggers.append((phase, event, function))


class WorkersTests(SynchronousTestCase):
    """
    L{workersFor} and L{Workers}: few lanes, shared, made once per reactor.
    """

    def test_clockRunsInline(self) -> None:
        """
        A reactor that runs no threads (a test's clock) gets inline lanes.
        """
        workers = workersFor(task.Clock())
        self.assertFalse(workers.threaded)
        self.assertIsInstance(workers.writer, InlineLane)

    def test_oneSetPerReactor(self) -> None:
        """
        A reactor that runs threads gets one set of threaded lanes, the
        same each time, stopped (and waited for) when the reactor shuts
        down, once its services have stopped.
        """
        reactor = ThreadedClock()
        workers = workersFor(reactor)
        self.assertTrue(workers.threaded)
        self.assertIs(workersFor(reactor), workers)
        [(phase, event, stop)] = reactor.triggers
        self.assertEqual((phase, event), ("during", "shutdown"))
        stop()
        self.assertFalse(workers.writer._thread.is_alive())
        self.assertIsNot(workersFor(reactor), workers)
        workersFor(reactor).stop()

    def test_cryptoLanesInTurn(self) -> None:
        """
        New connections get the crypto lanes in turn.
        """
        workers = Workers.threads(lambda f: None, 2, lambda target, name: None)
        lanes = [workers.cryptoLane() for _ in range(4)]
        self.assertIsNot(lanes[0], lanes[1])
        self.assertEqual(lanes[:2], lanes[2:])
