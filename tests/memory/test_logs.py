# -*- test-case-name: tests.memory.test_logs -*-
"""
Tests for spc's structured logs (L{spc.logs.events}) from channels and
sessions in memory: the rate limit on failures before authentication
(PROTOCOL T19, TLS failures included) and the named fields of each event.
C{twistd spc --log-format json} and a whole session's logs over loopback TCP
are tested in L{tests.unit.test_logs} and L{tests.integration.test_logs}.
"""

from __future__ import annotations

import unicodedata
from types import SimpleNamespace

from hypothesis import given, settings, strategies as st
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.trial import unittest

from spc.client.connect import connect
from spc.errors import SessionClosed
from spc.keys.tlscert import writeCertificate
from spc.keys.trust import AllowAny, PinnedKey
from spc.logs import events
from spc.protocol import frames
from spc.protocol.handshake import channelSpecs
from spc.server.directory import SessionDirectory
from spc.server.service import ServerChannelFactory
from spc.text import withoutControls
from spc.transport import tls
from tests.common import cachedIdentity
from tests.memory.test_session import RETRY_DELAY, MemoryServer
from tests.unit.test_logs import recorder


def named(logged: list[dict], fmt: str) -> list[dict]:
    """
    The events written with format C{fmt}.
    """
    return [event for event in logged if event.get("log_format") == fmt]


# ---------------------------------------------------------------------------
# The rate limit before authentication.


class PreAuthLogTests(unittest.SynchronousTestCase):
    """
    L{events.PreAuthLog}: each kind of failure writes a few lines, then
    is counted and summed up once.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        log, self.logged = recorder()
        self.preAuth = events.PreAuthLog(self.clock, log, burst=3, period=60.0)

    def refuse(self, count: int, kind: str = "aborted") -> None:
        for number in range(count):
            self.preAuth.refused(kind, f"192.0.2.1:{1000 + number}", "garbage", alert=None)

    def test_burstThenSummary(self) -> None:
        """
        The first C{burst} failures are logged with their fields; the rest
        only count, and one line C{period} seconds after the first one held
        back says how many were held back, and of which kinds.
        """
        self.refuse(10)
        lines = named(self.logged, events.HANDSHAKE_REFUSED)
        self.assertEqual(len(lines), 3)
        self.assertEqual(
            {k: lines[0][k] for k in ("kind", "source", "reason", "alert", "log_namespace")},
            {
                "kind": "aborted",
                "source": "192.0.2.1:1000",
                "reason": "garbage",
                "alert": None,
                "log_namespace": events.HANDSHAKE,
            },
        )
        self.assertEqual(named(self.logged, events.PREAUTH_SUPPRESSED), [])
        self.clock.advance(60)
        [summary] = named(self.logged, events.PREAUTH_SUPPRESSED)
        self.assertEqual(
            (summary["count"], summary["kinds"], summary["seconds"]), (7, {"aborted": 7}, 60.0)
        )
        self.assertEqual(
            formatEvent(summary), "Suppressed 7 pre-authentication failures in the last 60 s"
        )
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_kindsApart(self) -> None:
        """
        A flood of one kind does not hide the first lines of another.
        """
        self.refuse(10, "aborted")
        self.refuse(2, "busy")
        kinds = [e["kind"] for e in named(self.logged, events.HANDSHAKE_REFUSED)]
        self.assertEqual(kinds, ["aborted"] * 3 + ["busy"] * 2)

    def test_refills(self) -> None:
        """
        The allowance comes back over the period: after it, lines are
        written again.
        """
        self.refuse(4)
        self.clock.advance(60)
        del self.logged[:]
        self.refuse(3)
        self.assertEqual(len(named(self.logged, events.HANDSHAKE_REFUSED)), 3)

    def test_flush(self) -> None:
        """
        L{PreAuthLog.flush} (the service stopping) writes the summary at
        once and leaves no timer; with nothing held back it writes nothing.
        """
        self.preAuth.flush()
        self.assertEqual(self.logged, [])
        self.refuse(5)
        self.clock.advance(10)
        self.preAuth.flush()
        [summary] = named(self.logged, events.PREAUTH_SUPPRESSED)
        self.assertEqual((summary["count"], summary["seconds"]), (2, 10.0))
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ThrottledLogTests(unittest.SynchronousTestCase):
    """
    L{events.ThrottledLog}, for lines other than the pre-authentication
    ones: the same limit, its own summary with its own fields.
    """

    def test_summaryFields(self) -> None:
        """
        Lines of a group beyond the burst are summed up in the given
        summary, at the given level, with the fields given for it.
        """
        clock = task.Clock()
        log, logged = recorder()
        throttled = events.ThrottledLog(
            clock, log, "Held back {count} for {peer}", burst=2, period=10.0, peer="SHA256:p"
        )
        for n in range(5):
            throttled.emit("refused", LogLevel.warn, "Line {n}", n=n)
        self.assertEqual([formatEvent(e) for e in logged], ["Line 0", "Line 1"])
        self.assertEqual(logged[0]["log_level"], LogLevel.warn)
        clock.advance(10)
        self.assertEqual(formatEvent(logged[-1]), "Held back 3 for SHA256:p")
        self.assertEqual(logged[-1]["kinds"], {"refused": 3})
        self.assertEqual(clock.getDelayedCalls(), [])


class GarbageFloodTests(unittest.SynchronousTestCase):
    """
    T19 through the real server path: connections that send garbage
    instead of a handshake are refused before any RSA work, and the log
    holds a few lines and one summary, not one line each.
    """

    def test_httpFlood(self) -> None:
        clock = task.Clock()
        directory = SessionDirectory(clock, cachedIdentity("server"), AllowAny, None, 1)
        [spec] = channelSpecs(1)
        factory = ServerChannelFactory(directory, spec)
        logged: list[dict] = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        for number in range(40):
            address = IPv4Address("TCP", "198.51.100.7", 2000 + number)
            channel = factory.buildProtocol(address)
            channel.makeConnection(StringTransport(peerAddress=address))
            channel.dataReceived(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
            self.assertTrue(channel.dead)
            channel.connectionLost()
        lines = named(logged, events.HANDSHAKE_REFUSED)
        self.assertEqual(len(lines), events.PREAUTH_BURST)
        self.assertEqual(lines[0]["source"], "198.51.100.7:2000")
        self.assertEqual(lines[0]["kind"], "aborted")
        self.assertIn("exceeds", lines[0]["reason"])
        clock.advance(events.PREAUTH_PERIOD)
        [summary] = named(logged, events.PREAUTH_SUPPRESSED)
        self.assertEqual(summary["count"], 40 - events.PREAUTH_BURST)
        self.assertEqual(directory.pendingHandshakes(), 0)

    def test_tlsFlood(self) -> None:
        """
        Garbage instead of a TLS handshake, from many sources, on a TLS
        listener's channels: each fails in TLS before spc's handshake, and
        the log holds a few "tls" lines naming the source and the TLS
        error, then one summary.
        """
        clock = task.Clock()
        directory = SessionDirectory(clock, cachedIdentity("server"), AllowAny, None, 1)
        [spec] = channelSpecs(1)
        written = writeCertificate("spc.test", self.mktemp())
        server = tls.parseServerDescription(
            f"ssl:0:privateKey={written.keyPath}:certKey={written.certificatePath}"
        )
        factory = TLSMemoryBIOFactory(
            tls.serverOptions(server), False, ServerChannelFactory(directory, spec), clock
        )
        logged: list[dict] = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        for number in range(40):
            address = IPv4Address("TCP", f"198.51.100.{number + 1}", 2000 + number)
            connection = factory.buildProtocol(address)
            connection.makeConnection(StringTransport(peerAddress=address))
            channel = connection.wrappedProtocol
            connection.dataReceived(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
            connection.connectionLost(Failure(ConnectionDone()))
            self.assertTrue(channel.dead)
        lines = named(logged, events.HANDSHAKE_REFUSED)
        self.assertEqual(len(lines), events.PREAUTH_BURST)
        self.assertEqual(
            (lines[0]["kind"], lines[0]["source"], lines[0]["alert"]),
            ("tls", "198.51.100.1:2000", None),
        )
        self.assertTrue(
            lines[0]["reason"].startswith("TLS: the connection with 198.51.100.1:2000 failed: "),
            lines[0]["reason"],
        )
        self.assertEqual(len(logged), events.PREAUTH_BURST)
        clock.advance(events.PREAUTH_PERIOD)
        [summary] = named(logged, events.PREAUTH_SUPPRESSED)
        self.assertEqual(
            (summary["count"], summary["kinds"]), (40 - events.PREAUTH_BURST, {"tls": 30})
        )
        self.assertEqual(directory.pendingHandshakes(), 0)


class SilentPeerTests(unittest.SynchronousTestCase):
    """
    A peer that connects and says nothing is logged as a timeout, with the
    alert it was sent.
    """

    def test_timeout(self) -> None:
        clock = task.Clock()
        directory = SessionDirectory(clock, cachedIdentity("server"), AllowAny, None, 1)
        [spec] = channelSpecs(1)
        address = IPv4Address("TCP", "203.0.113.5", 4444)
        channel = ServerChannelFactory(directory, spec).buildProtocol(address)
        logged: list[dict] = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        channel.makeConnection(StringTransport(peerAddress=address))
        clock.advance(directory.handshakeTimeout)
        [refused] = named(logged, events.HANDSHAKE_REFUSED)
        self.assertEqual(
            {k: refused[k] for k in ("kind", "source", "alert")},
            {"kind": "timeout", "source": "203.0.113.5:4444", "alert": frames.ALERT_TIMEOUT},
        )
        channel.connectionLost()


class EventsInMemoryTests(unittest.SynchronousTestCase):
    """
    The events of a session's life, client and server over in-memory
    channels on one L{task.Clock}, so every field is exact.
    """

    def setUp(self) -> None:
        self.logged: list[dict] = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)
        self.memory = MemoryServer(self)
        self.client = self.memory.connect(self)
        self.server = self.memory.serverSession()

    def test_opened(self) -> None:
        """
        The server logs one NEW handshake and three JOINs, each with the
        client's fingerprint and its name from C{authorized_keys}; both ends
        log the session opened, with their role.
        """
        accepted = named(self.logged, events.HANDSHAKE_ACCEPTED)
        self.assertEqual([e["mode"] for e in accepted], ["NEW", "JOIN", "JOIN", "JOIN"])
        self.assertEqual([e["channel"] for e in accepted], [0, 1, 2, 3])
        session = events.shortID(self.client.id)
        for event in accepted:
            self.assertEqual(
                {k: event[k] for k in ("session", "peer", "peer_name")},
                {"session": session, "peer": self.memory.client.fingerprint,
                 "peer_name": "client"},
            )
            self.assertTrue(event["source"].startswith("192.0.2.10:"), event)
        opened = named(self.logged, events.SESSION_OPENED)
        self.assertEqual(
            sorted((e["role"], e["peer"], e["session"]) for e in opened),
            [("client", self.memory.server.fingerprint, session),
             ("server", self.memory.client.fingerprint, session)],
        )

    def test_deadAndRejoined(self) -> None:
        """
        A cut connection is dead on both ends, with the reason and the
        peer's address; once the client joined it again, both ends log it
        rejoined after the time it was away.
        """
        self.network = self.memory.network
        self.network.cut(self.network.pumpFor(self.client.channels[2]))
        self.network.flush()
        dead = named(self.logged, events.CHANNEL_DEAD)
        self.assertEqual([(e["channel"], e["fault"]) for e in dead], [(2, False), (2, False)])
        self.assertEqual(
            {e["peer"] for e in dead},
            {self.memory.client.fingerprint, self.memory.server.fingerprint},
        )
        self.assertEqual({e["log_namespace"] for e in dead}, {events.CHANNEL})
        self.memory.clock.advance(RETRY_DELAY)
        self.network.flush()
        rejoined = named(self.logged, events.CHANNEL_REJOINED)
        self.assertEqual([(e["channel"], e["downtime"]) for e in rejoined], [(2, 1.0)] * 2)

    def test_faultIsDead(self) -> None:
        """
        A connection this end cuts for a peer fault is dead with the fault
        as its reason.
        """
        cut = self.server.channels[1]
        cut.fatal("a forged frame")
        self.memory.network.flush()
        dead = named(self.logged, events.CHANNEL_DEAD)
        [serverSide] = [e for e in dead if e["log_source"] is cut]
        [clientSide] = [e for e in dead if e["log_source"] is not cut]
        self.assertEqual((serverSide["fault"], serverSide["reason"]), (True, "a forged frame"))
        self.assertFalse(clientSide["fault"])

    def test_closed(self) -> None:
        """
        Closing the session is no channel's death: both ends log only the
        session ended, with its duration and reason.
        """
        for _ in range(42):
            self.memory.clock.advance(1)
            self.memory.network.flush()
        self.client.close()
        self.memory.network.flush()
        self.assertEqual(named(self.logged, events.CHANNEL_DEAD), [])
        ended = named(self.logged, events.SESSION_CLOSED)
        self.assertEqual(sorted(e["role"] for e in ended), ["client", "server"])
        self.assertEqual(
            sorted((e["role"], e["reason"], e["error"]) for e in ended),
            [("client", "closed locally", "SessionClosed"),
             ("server", "the peer closed the session: closed", "SessionClosed")],
        )
        for event in ended:
            self.assertEqual(event["duration"], 42.0)

    def test_unauthorizedRefused(self) -> None:
        """
        A client that is not authorized is refused, and the log says who it
        was and why.
        """
        other = cachedIdentity("other")
        connecting = connect(
            self.memory.clock,
            self.memory.endpoints("192.0.2.99"),
            other,
            PinnedKey(self.memory.server.fingerprint),
            "127.0.0.1:9000",
        )
        self.memory.network.flush()
        self.failureResultOf(connecting)
        [refused] = named(self.logged, events.HANDSHAKE_REFUSED)
        self.assertEqual(
            (refused["kind"], refused["alert"]), ("refused", frames.ALERT_HANDSHAKE_FAILURE)
        )
        self.assertIn(f"{other.fingerprint} is not authorized", refused["reason"])
        self.assertTrue(refused["source"].startswith("192.0.2.99:"), refused)


class TransferEventTests(unittest.SynchronousTestCase):
    """
    File names come from the sender; in a log line they lose the control
    characters that could drive the terminal of whoever reads it.
    """

    def test_reasonsWithoutControls(self) -> None:
        """
        Reasons may quote what a peer said (a goodbye's reason, a name in an
        error): the session-ended, channel-dead and pre-authentication
        events carry them without control characters, each on one line.
        """
        log, logged = recorder()
        evil = "why\n2026-01-01T00:00:00+0000 [spc.session#info] forged\x1b[2J"
        session = SimpleNamespace(
            id=b"s" * 16, peer="SHA256:p", started=0.0, rotationsCommitted=0,
            rotationsRolledBack=0, closedReason=Failure(SessionClosed(evil)),
        )
        events.sessionClosed(log, session, "server", 1.0)
        events.channelDead(log, 0, b"s" * 16, "SHA256:p", "192.0.2.1:1", evil, True)
        events.PreAuthLog(task.Clock(), log).refused("aborted", "192.0.2.1:1", evil)
        cleaned = "why2026-01-01T00:00:00+0000 [spc.session#info] forged[2J"
        self.assertEqual([event["reason"] for event in logged], [cleaned] * 3)
        for event in logged:
            self.assertNotIn("\n", formatEvent(event))

    def test_longNamesCut(self) -> None:
        """
        A name longer than C{LOGGED_NAME} characters is logged as its first
        C{LOGGED_NAME}, an ellipsis and its length; a shorter one whole.
        """
        log, logged = recorder()
        long = "a" * 4096
        events.fileStored(log, long, 10, "SHA256:p", "/inbox/x", 1.0, b"\0" * 32)
        events.fileStored(log, "short.txt", 10, "SHA256:p", "/inbox/y", 1.0, b"\0" * 32)
        self.assertEqual(
            [event["name"] for event in logged],
            ["a" * events.LOGGED_NAME + "… (4096 characters)", "short.txt"],
        )

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(st.text(max_size=5000))
    def test_shortNameBounded(self, name: str) -> None:
        """
        Whatever the name, what a log line shows of it has no character of
        Unicode category C and at most C{LOGGED_NAME} of the name's own,
        and is the cleaned name itself when that is short enough.
        """
        shown = events.shortName(name)
        self.assertFalse(any(unicodedata.category(c)[0] == "C" for c in shown))
        cleaned = withoutControls(name)
        if len(cleaned) <= events.LOGGED_NAME:
            self.assertEqual(shown, cleaned)
        else:
            self.assertEqual(
                shown, f"{cleaned[:events.LOGGED_NAME]}… ({len(cleaned)} characters)"
            )

    def test_namesWithoutControls(self) -> None:
        log, logged = recorder()
        name = "evil\x1b[2J\rname\u202e.txt"
        events.fileStored(log, name, 10, "SHA256:p", "/inbox/x", 1.0, b"\0" * 32)
        events.fileSent(log, name, 10, "SHA256:p", 1.0, None)
        self.assertEqual([event["name"] for event in logged], ["evil[2Jname.txt"] * 2)
        for event in logged:
            self.assertNotIn("\x1b", formatEvent(event))


# ---------------------------------------------------------------------------
# --log-format.


# ---------------------------------------------------------------------------
# No secret in any log line of a whole session.
