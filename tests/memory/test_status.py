# -*- test-case-name: tests.memory.test_status -*-
"""
Tests for L{spc.status.snapshot} and L{spc.status.control}: what a snapshot
holds of real sessions in memory under L{task.Clock}, and the AMP round trip
and its pages.
"""

from __future__ import annotations

import json

from twisted.internet import task
from twisted.internet.defer import succeed
from twisted.internet.endpoints import connectProtocol
from twisted.protocols import amp
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from spc.cli.options import MAX_CHANNELS
from spc.files.progress import TransferProgress
from spc.files.receiving import IncomingFiles
from spc.files.store import FileStore
from spc.logs import events
from spc.protocol import filerecords
from spc.status import control
from spc.status.control import PAGE_BYTES, ControlFactory, encodePage, fetchStatus
from spc.status.snapshot import (
    MAX_NAME,
    MAX_TRANSFERS_LISTED,
    DaemonStatus,
    SessionStatus,
    Snapshot,
    StatusSource,
)
from tests.fakes import FakeChannel, FakeDirectory, FakeSession, clockAt
from tests.memory.test_session import MemoryServer


class MemoryEndpoint:
    """
    A client endpoint that connects to a L{ControlFactory} in memory.

    @ivar pumps: the connections made.
    """

    def __init__(self, factory: ControlFactory) -> None:
        self.factory = factory
        self.pumps: list[iosim.IOPump] = []

    def connect(self, clientFactory):
        server = self.factory.buildProtocol(None)
        client = clientFactory.buildProtocol(None)
        self.pumps.append(
            iosim.connect(
                server, iosim.makeFakeServer(server), client, iosim.makeFakeClient(client),
                greet=False,
            )
        )
        return succeed(client)

    def flush(self) -> None:
        for pump in self.pumps:
            while pump.pump():
                pass


class _Terminate(amp.Command):
    """
    What a control protocol that changed state might offer.
    """


def fetch(testCase, source: StatusSource) -> Snapshot:
    endpoint = MemoryEndpoint(ControlFactory(source))
    fetching = fetchStatus(endpoint)
    endpoint.flush()
    return testCase.successResultOf(fetching)


class SnapshotTests(SynchronousTestCase):
    """
    A snapshot of a server's real sessions, four channels in memory.
    """

    def setUp(self) -> None:
        self.memory = MemoryServer(self)
        self.clock = self.memory.clock
        self.clock.advance(100)
        self.client = self.memory.connect(self)
        self.source = StatusSource(self.memory.directory, self.clock, "SHA256:host")

    def test_session(self) -> None:
        """
        A session shows its peer's fingerprint and authorized_keys name, its
        id as the log names it, its age on the injected clock, its epoch, and each channel's suite and
        epoch.
        """
        self.clock.advance(12.5)
        [status] = self.source.snapshot().sessions
        self.assertEqual(status.peer, self.memory.client.fingerprint)
        self.assertEqual(status.name, "client")
        self.assertEqual(status.age, 12.5)
        self.assertEqual(status.session, self.client.id.hex()[:16])
        self.assertEqual(status.session, events.shortID(self.client.id))
        self.assertEqual(status.epoch, self.memory.serverSession().epoch)
        self.assertEqual([c.index for c in status.channels], [0, 1, 2, 3])
        self.assertEqual(
            [c.suite for c in status.channels],
            ["A256CBC-HS512", "ChaCha20-Poly1305"] * 2,
        )
        self.assertEqual({c.epoch for c in status.channels}, {status.epoch})
        self.assertEqual(status.transfers, ())

    def test_bytesRise(self) -> None:
        """
        Sending a message raises the channels' byte counts on both sides of
        the server's view: what came in and the acknowledgements out.
        """
        before = self.source.snapshot().sessions[0].channels
        self.client.sendMessage(b"x" * 100_000)
        self.memory.network.flush()
        after = self.source.snapshot().sessions[0].channels
        received = sum(c.received for c in after) - sum(c.received for c in before)
        self.assertGreater(received, 100_000)
        self.assertGreater(sum(c.sent for c in after), sum(c.sent for c in before))

    def test_roundTrip(self) -> None:
        """
        A channel's RTT is the heartbeat round trip on the daemon's clock:
        unknown until a heartbeat is answered.
        """
        server = self.memory.serverSession()
        self.assertEqual(
            [c.rtt for c in self.source.snapshot().sessions[0].channels], [None] * 4
        )
        self.clock.advance(server.params.heartbeatInterval / 1000)
        self.clock.advance(0.025)
        self.memory.network.flush()
        rtts = [c.rtt for c in self.source.snapshot().sessions[0].channels]
        for rtt in rtts:
            self.assertAlmostEqual(rtt, 0.025)

    def test_daemon(self) -> None:
        """
        The daemon's own line: fingerprint, uptime since the source was
        made, channel and session counts.
        """
        self.clock.advance(3)
        daemon = self.source.daemon()
        self.assertEqual(daemon, DaemonStatus("SHA256:host", 3.0, 4, 1, 0))

    def test_closedSessionsLeave(self) -> None:
        """
        An ended session is not listed.
        """
        self.client.close()
        self.memory.network.flush()
        self.assertEqual(self.source.snapshot().sessions, [])

    def test_readOnly(self) -> None:
        """
        A command other than the reading ones is refused, and the sessions
        are as they were.
        """
        endpoint = MemoryEndpoint(ControlFactory(self.source))
        client = self.successResultOf(connectProtocol(endpoint, amp.AMP()))
        answers: list = []
        client.callRemote(_Terminate).addErrback(answers.append)
        endpoint.flush()
        [refusal] = answers
        self.assertTrue(refusal.check(amp.UnhandledCommand))
        self.assertEqual(len(self.source.snapshot().sessions), 1)

    def test_overAMP(self) -> None:
        """
        The control protocol carries the snapshot whole.
        """
        self.assertEqual(fetch(self, self.source), self.source.snapshot())


class TransferTests(SynchronousTestCase):
    """
    Files in progress, from a real receiver and in bounded numbers.
    """

    def test_incoming(self) -> None:
        """
        A file being received shows its name, size and the bytes written.
        """
        store = FileStore(self.mktemp(), reserve=0)
        incoming = IncomingFiles(store, "SHA256:peer", 16, lambda record: None, task.Clock())
        self.addCleanup(incoming.close)
        transfer = b"t" * 16
        incoming.offerReceived(filerecords.FileOffer(transfer, 40, "report.pdf"))
        incoming.dataReceived(filerecords.FileData(transfer, 16, b"d" * 16))
        self.assertEqual(
            incoming.inProgress(), [TransferProgress("report.pdf", 40, 16, 0, False)]
        )

    def test_bounded(self) -> None:
        """
        At most L{MAX_TRANSFERS_LISTED} files are listed, the rest counted,
        and long names are cut.
        """
        session = FakeSession(1, MAX_TRANSFERS_LISTED + 3, "n" * 1000)
        [status] = StatusSource(FakeDirectory([session]), clockAt(60.0), "h").sessions()
        self.assertEqual(len(status.transfers), MAX_TRANSFERS_LISTED)
        self.assertEqual(status.transfersOmitted, 3)
        self.assertEqual(len(status.transfers[0].name), MAX_NAME)
        self.assertEqual(status.transfers[0].direction, "in")
        self.assertEqual(status.transfers[0].percent, 50.0)


    def test_controlsDropped(self) -> None:
        """
        A file name from the wire and a peer's name from authorized_keys
        lose their control and format characters (ESC, CR, BEL, the C1
        CSI U+009B, a right-to-left override), so that printing them cannot
        drive the operator's terminal.
        """
        hostile = "\x1b]0;owned\x07evil\r\u009b2J\u202ename.txt"
        session = FakeSession(1, 1, hostile)
        directory = FakeDirectory([session], {session.peer: "\x1b[31malice\x00"})
        [status] = StatusSource(directory, clockAt(60.0), "h").sessions()
        self.assertEqual(status.transfers[0].name, "]0;ownedevil2Jname.txt")
        self.assertEqual(status.name, "[31malice")


class PageTests(SynchronousTestCase):
    """
    Sessions cross the control socket in pages that each fit one AMP value.
    """

    def test_largestSession(self) -> None:
        """
        The largest session record there can be (every list full, every
        name as long as allowed and in escaped astral characters) fits in
        one page.
        """
        worst = "\U0001f600" * 1000
        session = FakeSession(1, MAX_TRANSFERS_LISTED + 1, worst)
        session.channels = {index: FakeChannel(index) for index in range(MAX_CHANNELS)}
        session.roundTrip = lambda channel: 1 / 3
        directory = FakeDirectory([session], {session.peer: worst})
        [status] = StatusSource(directory, clockAt(60.0), "h").sessions()
        self.assertEqual(len(status.channels), MAX_CHANNELS)
        page, more = encodePage([status])
        self.assertLess(len(page), PAGE_BYTES)

    def test_manySessions(self) -> None:
        """
        1024 sessions (the daemon's cap), each with files in progress, all
        arrive in order, in pages under AMP's limit.
        """
        name = "n" * MAX_NAME
        sessions = [FakeSession(n, MAX_TRANSFERS_LISTED, name) for n in range(1024)]
        directory = FakeDirectory(sessions, {s.peer: name for s in sessions})
        source = StatusSource(directory, clockAt(60.0), "h")
        endpoint = MemoryEndpoint(ControlFactory(source))
        sizes = []
        original = encodePage

        def measured(items, limit=PAGE_BYTES):
            page, more = original(items, limit)
            sizes.append(len(page))
            return page, more

        self.patch(control, "encodePage", measured)
        fetching = fetchStatus(endpoint)
        endpoint.flush()
        snapshot = self.successResultOf(fetching)
        self.assertEqual(
            [s.peer for s in snapshot.sessions], [s.peer for s in sessions]
        )
        self.assertGreater(len(sizes), 1)
        self.assertLessEqual(max(sizes), PAGE_BYTES)

    def test_atLeastOne(self) -> None:
        """
        A page holds one session even when it alone passes the limit.
        """
        status = SessionStatus("ab", "SHA256:p", None, 1.0, 0)
        page, more = encodePage(iter([status, status]), limit=10)
        self.assertEqual(len(json.loads(page)), 1)
        self.assertTrue(more)
