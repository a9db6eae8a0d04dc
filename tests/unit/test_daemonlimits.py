# -*- test-case-name: tests.unit.test_daemonlimits -*-
"""
Tests for the daemon's limit options (L{spc.tap.Options}): each sets its
field of L{spc.server.directory.Limits}.  That the daemon's directory uses
them, and that the per-identity limit on new sessions leaves room for
scripts, is tested in L{tests.memory.test_daemonlimits}.
"""

from __future__ import annotations

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from spc.server.directory import Limits
from tests.unit.test_tap import makeOptions

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
