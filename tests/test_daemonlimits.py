"""
Tests for the daemon's limit options (L{spc.tap.Options}): each sets its
field of L{spc.server.directory.Limits}, the daemon's directory uses them,
and the per-identity limit on new sessions leaves room for scripts.
"""

from __future__ import annotations

from twisted.internet import task
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from spc.server.directory import Limits
from spc.tap import makeService
from tests.test_service import PEER, makeDirectory
from tests.test_tap import keyDirWithIdentity, makeOptions

BASE = ("--ports", "9000", "--inbox", "in")
OPTIONS = {
    "--max-sessions": "maxSessions",
    "--sessions-per-identity": "sessionsPerIdentity",
    "--new-sessions-per-identity": "newSessionsPerIdentity",
    "--private-key-rate": "privateOperationsPerSecond",
    "--pending-per-source": "pendingPerSource",
    "--connection-rate": "connectionsPerSecond",
}


class LimitOptionTests(SynchronousTestCase):
    """
    Every limit an operator may need is a C{twistd spc} option.
    """

    def test_defaults(self) -> None:
        """
        Without the options, the limits are L{Limits}' defaults.
        """
        limits = makeOptions(*BASE)["limits"]
        for field in [*OPTIONS.values(), "connectionBurst"]:
            self.assertEqual(getattr(limits, field), getattr(Limits, field), field)

    def test_eachOption(self) -> None:
        """
        Each option sets its limit; a connection rate sets a burst of twice
        it.
        """
        for number, (option, field) in enumerate(OPTIONS.items(), start=7):
            limits = makeOptions(*BASE, option, str(number))["limits"]
            self.assertEqual(getattr(limits, field), number, option)
        limits = makeOptions(*BASE, "--connection-rate", "300")["limits"]
        self.assertEqual(limits.connectionBurst, 600)

    def test_refused(self) -> None:
        """
        A limit that is not a whole number from 1 to a million is refused,
        naming the option.
        """
        for value in ("0", "-1", "1.5", "ten", "1000001", "", "１２"):
            error = self.assertRaises(
                usage.UsageError, makeOptions, *BASE, "--max-sessions", value
            )
            self.assertIn("--max-sessions", str(error))

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
