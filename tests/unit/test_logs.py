# -*- test-case-name: tests.unit.test_logs -*-
"""
Tests for spc's structured logs (L{spc.logs.events}, L{spc.logs.jsonformat})
that need no clock: the fields of a rotation round event and
C{twistd spc --log-format json}.
"""

from __future__ import annotations

import json
import os

from twisted.application.service import Application
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import ILogObserver, Logger, formatEvent
from twisted.python import usage
from twisted.scripts.twistd import ServerOptions
from twisted.trial import unittest

from spc import tap
from spc.keys.identity import saveIdentity
from spc.logs import events
from tests.common import hostIdentity


def recorder():
    """
    A logger whose events land in a list, and the list.
    """
    logged: list[dict] = []
    return Logger(observer=logged.append), logged


class RotationRoundEventTests(unittest.SynchronousTestCase):
    """
    The rotation round's summary is an C{spc.protocol.rotation} event.
    """

    def test_fields(self) -> None:
        log, logged = recorder()
        events.rotationRound(log, 7, 3, 1, 4)
        [event] = logged
        self.assertEqual(event["log_namespace"], events.ROTATION)
        self.assertEqual(
            formatEvent(event), "Rotation round 7: 3 committed, 1 rolled back; 4 sessions now"
        )


class LogFormatOptionTests(unittest.SynchronousTestCase):
    """
    C{twistd spc --log-format}.
    """

    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        self.keyDir = os.path.join(self.root, "server")
        saveIdentity(hostIdentity(), self.keyDir)

    def twistd(self, *before: str, logFormat: str = "json") -> ServerOptions:
        config = ServerOptions()
        config.parseOptions(
            [*before, "spc", "--key-dir", self.keyDir, "--ports", "9000", "--allow-any-client",
             "--inbox", os.path.join(self.root, "inbox"), "--log-format", logFormat]
        )
        return config

    def application(self, config: ServerOptions) -> Application:
        service = tap.makeService(config.subOptions, reactor=MemoryReactorClock())
        application = Application("spc")
        service.setServiceParent(application)
        return application

    def test_textByDefault(self) -> None:
        """
        Without C{--log-format} the daemon leaves the log to twistd.
        """
        config = self.twistd("-n", logFormat="text")
        self.assertIsNone(ILogObserver(self.application(config), None))

    def test_unknown(self) -> None:
        self.assertRaises(usage.UsageError, self.twistd, "-n", logFormat="xml")

    def test_notWithSyslog(self) -> None:
        """
        JSON goes to a file or stdout; with C{--syslog} it is refused.
        """
        self.assertRaises(usage.UsageError, self.twistd, "--syslog")

    def test_logfile(self) -> None:
        """
        With C{--logfile}, the JSON lines go to that file, one event each,
        with the event's named fields.
        """
        path = os.path.join(self.root, "spc.log")
        application = self.application(self.twistd("--logfile", path))
        observer = ILogObserver(application)
        log = Logger(observer=observer)
        events.rotationRound(log, 2, 1, 0, 1)
        events.rotationRound(log, 3, 1, 0, 1)
        with open(path) as f:
            lines = f.read().splitlines()
        self.assertEqual(len(lines), 2)
        first = json.loads(lines[0])
        self.assertEqual(
            {k: first[k] for k in ("log_namespace", "round", "committed", "rolled_back")},
            {"log_namespace": events.ROTATION, "round": 2, "committed": 1, "rolled_back": 0},
        )
