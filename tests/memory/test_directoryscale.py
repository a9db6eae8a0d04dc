# -*- test-case-name: tests.memory.test_directoryscale -*-
"""
Tests for L{spc.server.directory.SessionDirectory} with many sessions: what
a new session or connection costs does not grow with the sessions the
daemon holds, nor with C{authorized_keys} more than once per session.
"""

from __future__ import annotations

import os

from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from spc.keys.identity import fingerprint
from spc.logs import events as logevents
from spc.protocol import records
from tests.fakes import FakeChannel
from tests.memory.test_logs import named
from tests.memory.test_service import addSession, makeDirectory
from tests.memory.test_session import serverResult


class CountingAuthorizer:
    """
    Admits everyone under one name, counting the lookups.
    """

    def __init__(self) -> None:
        self.lookups = {"isAuthorized": 0, "nameOf": 0}

    def isAuthorized(self, fingerprint: str) -> bool:
        self.lookups["isAuthorized"] += 1
        return True

    def nameOf(self, fingerprint: str) -> str | None:
        self.lookups["nameOf"] += 1
        return "alice"

    def describe(self) -> str:
        return "everyone, counted"


class CountingSessions(dict):
    """
    The directory's sessions, counting how often all of them are gone
    through.
    """

    scans = 0

    def values(self):
        self.scans += 1
        return super().values()


class DirectoryScaleTests(SynchronousTestCase):
    """
    Admitting sessions and connections does not go through every session,
    and names the client once per session.
    """

    def test_nameLookedUpOncePerSession(self) -> None:
        """
        A session's four handshakes are logged with the client's name, which
        is looked up in C{authorized_keys} once, when the session is made.
        """
        logged: list[dict] = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        authorizer = CountingAuthorizer()
        directory = makeDirectory(authorizer=authorizer)
        session, _ = addSession(directory)
        for index in range(1, 4):
            directory.channelEstablished(
                FakeChannel(index),
                serverResult(sessionID=session.id, channel=index, isNew=False),
            )
        accepted = named(logged, logevents.HANDSHAKE_ACCEPTED)
        self.assertEqual([event["peer_name"] for event in accepted], ["alice"] * 4)
        self.assertEqual(authorizer.lookups["nameOf"], 1)

    def test_admittedWithoutScan(self) -> None:
        """
        A new session is admitted without going through the sessions of
        other identities, however many there are.
        """
        directory = makeDirectory()
        directory.sessions = CountingSessions(directory.sessions)
        for n in range(20):
            addSession(directory, os.urandom(16), fingerprint(b"peer %d" % n))
        self.assertEqual(directory.sessions.scans, 0)

    def test_oldestOfIdentityReplaced(self) -> None:
        """
        Past C{sessionsPerIdentity}, the oldest session of that identity
        gives way, whatever the sessions of others in between.
        """
        directory = makeDirectory(sessionsPerIdentity=2)
        alice, bob = fingerprint(b"alice"), fingerprint(b"bob")
        first, firstChannel = addSession(directory, os.urandom(16), alice)
        addSession(directory, os.urandom(16), bob)
        second, _ = addSession(directory, os.urandom(16), alice)
        addSession(directory, os.urandom(16), bob)
        third, _ = addSession(directory, os.urandom(16), alice)
        self.assertIsNotNone(first.closedReason)
        [bye] = firstChannel.take(records.Bye)
        self.assertEqual(bye.code, records.BYE_REPLACED)
        self.assertEqual(
            sorted(session.peer for session in directory.sessions.values()),
            sorted([alice, alice, bob, bob]),
        )
        self.assertIn(second.id, directory.sessions)
        self.assertIn(third.id, directory.sessions)
