# -*- test-case-name: tests.memory.test_daemonlimits -*-
"""
Tests for the daemon's limits as it runs, on a fake reactor and clock: the
daemon's directory enforces the limit options of its command line, and the
per-identity limit on new sessions leaves room for scripts.
"""

from __future__ import annotations

from twisted.internet import task
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from spc.tap import makeService
from tests.memory.test_service import makeDirectory
from tests.memory.test_session import PEER
from tests.unit.test_tap import keyDirWithIdentity, makeOptions


class DaemonLimitTests(SynchronousTestCase):
    """
    The limits of the command line are the daemon's.
    """

    def test_daemonUsesThem(self) -> None:
        """
        The daemon's directory enforces the limits of its command line.
        """
        service = makeService(
            makeOptions(
                "--key-dir", keyDirWithIdentity(self), "--ports", "9000",
                "--inbox", self.mktemp(), "--allow-any-client", "--control-socket", "none",
                "--max-sessions", "5000", "--sessions-per-identity", "9",
            ),
            reactor=MemoryReactorClock(),
        )
        limits = service.directory.limits
        self.assertEqual((limits.maxSessions, limits.sessionsPerIdentity), (5000, 9))


class NewSessionLimitTests(SynchronousTestCase):
    """
    Ordinary scripting does not meet the per-identity limit on new
    sessions.
    """

    def test_scriptInALoop(self) -> None:
        """
        Thirty new sessions of one identity within 10 s, as a loop of
        C{spc send} or a few in parallel make, are all admitted.
        """
        clock = task.Clock()
        directory = makeDirectory(clock)
        admitted = []
        for _ in range(30):
            admitted.append(directory.admitNewSession(PEER))
            clock.advance(0.3)
        self.assertEqual(admitted, [True] * 30)
