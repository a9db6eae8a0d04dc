# -*- test-case-name: tests.test_status -*-
"""
Tests for L{spc.status.snapshot}, L{spc.status.control}, L{spc.status.services} and
L{spc.cli.status}: what a snapshot holds of real sessions in memory
under L{task.Clock}, the AMP round trip and its pages, the control socket
on disk, and how C{spc status} prints and fails.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import stat
import tempfile
from types import SimpleNamespace

from twisted.internet import protocol, reactor, task
from twisted.internet.defer import inlineCallbacks, succeed
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    UNIXClientEndpoint,
    UNIXServerEndpoint,
    connectProtocol,
)
from twisted.internet.error import CannotListenError
from twisted.logger import LogLevel, capturedLogs
from twisted.protocols import amp
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase, TestCase

from spc.cli.command import Context
from spc.cli.main import main
from spc.cli.options import MAX_CHANNELS
from spc.cli.status import StatusOptions, formatJSON, formatTable
from spc.client.connect import connect
from spc.crypto.suites import A256CBC_HS512
from spc.errors import DaemonNotRunning, StatusUnavailable
from spc.files.receiving import IncomingFiles
from spc.files.sending import TransferProgress
from spc.files.store import FileStore
from spc.keys.trust import PinnedKey
from spc.logs import events as logevents
from spc.protocol import records
from spc.status import control
from spc.status.control import PAGE_BYTES, ControlFactory, encodePage, fetchStatus
from spc.status.services import statusServices
from spc.status.snapshot import (
    MAX_NAME,
    MAX_TRANSFERS_LISTED,
    ChannelStatus,
    DaemonStatus,
    SessionStatus,
    Snapshot,
    StatusSource,
    TransferStatus,
)
from tests.test_endtoend import EndToEndTestCase, sharedIdentity
from tests.test_session import MemoryServer


def shortTemporaryDirectory(testCase) -> str:
    """
    A directory whose paths fit a UNIX socket's 107 bytes, wherever trial
    keeps its own temporary files.
    """
    path = tempfile.mkdtemp(prefix="spc-status-")
    testCase.addCleanup(shutil.rmtree, path, True)
    return path


class FakeSession:
    """
    What L{StatusSource} reads of a session, without channels.
    """

    closedReason = None
    epoch = 7
    started = 0.0

    def __init__(self, number: int, transfers: int = 0, name: str = "file") -> None:
        self.id = number.to_bytes(8, "big") + bytes(8)
        self.peer = f"SHA256:peer{number}"
        self.channels: dict = {}
        progress = [TransferProgress(name, 100, 50, 25, False) for _ in range(transfers)]
        self.incomingFiles = _Listing(progress)
        self.messenger = _Listing([])

    def roundTrip(self, channel):
        return None


class FakeChannel:
    """
    A live channel as the status reads it.
    """

    bytesSent = 1 << 40
    bytesReceived = 1 << 40

    def __init__(self, index: int) -> None:
        self.records = _Records()
        self.result = _Result(index)


class _Records:
    sendEpoch = 1 << 31


class _Result:
    def __init__(self, index: int) -> None:
        self.keys = SimpleNamespace(suite=A256CBC_HS512, channel=index)


class _Listing:
    def __init__(self, items) -> None:
        self._items = items

    def inProgress(self):
        return self._items

    def outgoingFiles(self):
        return []


class FakeDirectory:
    """
    A daemon's directory of L{FakeSession}s.
    """

    channelCount = 4

    def __init__(self, sessions=(), names=None) -> None:
        self.sessions = {session.id: session for session in sessions}
        self._names = names or {}
        self.authorizer = self

    def nameOf(self, fingerprint: str):
        return self._names.get(fingerprint)

    def pendingHandshakes(self) -> int:
        return 2


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
        self.assertEqual(status.session, logevents.shortID(self.client.id))
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
        incoming.offerReceived(records.FileOffer(transfer, 40, "report.pdf"))
        incoming.dataReceived(records.FileData(transfer, 16, b"d" * 16))
        self.assertEqual(
            incoming.inProgress(), [TransferProgress("report.pdf", 40, 16, 0, False)]
        )

    def test_bounded(self) -> None:
        """
        At most L{MAX_TRANSFERS_LISTED} files are listed, the rest counted,
        and long names are cut.
        """
        session = FakeSession(1, MAX_TRANSFERS_LISTED + 3, "n" * 1000)
        [status] = StatusSource(FakeDirectory([session]), _Clock(), "h").sessions()
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
        [status] = StatusSource(directory, _Clock(), "h").sessions()
        self.assertEqual(status.transfers[0].name, "]0;ownedevil2Jname.txt")
        self.assertEqual(status.name, "[31malice")


class _Clock:
    def seconds(self) -> float:
        return 60.0


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
        [status] = StatusSource(directory, _Clock(), "h").sessions()
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
        source = StatusSource(directory, _Clock(), "h")
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


SNAPSHOT = Snapshot(
    DaemonStatus("SHA256:host", 3725.0, 4, 1, 0),
    [
        SessionStatus(
            "0123456789abcdef",
            "SHA256:client",
            "alice",
            65.0,
            3,
            (
                ChannelStatus(0, "A256CBC-HS512", 3, 0.0012, 2048, 3 * 1024 * 1024),
                ChannelStatus(1, "ChaCha20-Poly1305", 3, None, 10, 20),
            ),
            (TransferStatus("big.iso", 1000, 250, 200, "in"),),
        )
    ],
)


class FormatTests(SynchronousTestCase):
    """
    The table for people and the JSON for scripts.
    """

    def test_table(self) -> None:
        """
        The daemon line, then each session with its channels (suite, epoch,
        RTT in milliseconds, bytes in and out) and its files with percent.
        """
        text = formatTable(SNAPSHOT)
        lines = text.splitlines()
        self.assertEqual(
            lines[0],
            "spc daemon SHA256:host, up 1h02m, 4 channels, 1 session, "
            "0 handshakes pending",
        )
        self.assertEqual(
            lines[2], "session 0123456789abcdef  alice (SHA256:client)  age 1m05s  epoch 3"
        )
        self.assertEqual(lines[3].split(), ["CHANNEL", "SUITE", "EPOCH", "RTT", "ms", "IN", "OUT"])
        self.assertEqual(
            lines[4].split(), ["0", "A256CBC-HS512", "3", "1.2", "3.0", "MiB", "2.0", "KiB"]
        )
        self.assertEqual(lines[5].split(), ["1", "ChaCha20-Poly1305", "3", "-", "20", "B", "10", "B"])
        self.assertEqual(lines[7].split(), ["big.iso", "in", "25%", "1000", "B"])

    def test_json(self) -> None:
        """
        One JSON document with the snapshot's fields.
        """
        document = json.loads(formatJSON(SNAPSHOT))
        self.assertEqual(document["daemon"]["fingerprint"], "SHA256:host")
        [session] = document["sessions"]
        self.assertEqual(session["name"], "alice")
        self.assertEqual(session["channels"][0]["rtt"], 0.0012)
        self.assertEqual(session["transfers"][0]["done"], 250)
        self.assertEqual(SessionStatus.fromDict(session), SNAPSHOT.sessions[0])

    def test_jsonASCII(self) -> None:
        """
        The JSON is ASCII: characters beyond it, C1 controls included, are
        escaped, and read back as they were.
        """
        name = "caf\u00e9 \u009b2J \U0001f600"
        transfer = TransferStatus(name, 1, 0, None, "out")
        session = SessionStatus("ab", "SHA256:p", "\u00e9ve", 1.0, 0, (), (transfer,))
        text = formatJSON(Snapshot(SNAPSHOT.daemon, [session]))
        self.assertTrue(text.isascii(), text)
        [listed] = json.loads(text)["sessions"]
        self.assertEqual(listed["transfers"][0]["name"], name)
        self.assertEqual(listed["name"], "\u00e9ve")


class UsageTests(SynchronousTestCase):
    """
    C{spc status} options that cannot work are refused before anything
    connects.
    """

    def status(self, *argv: str) -> tuple[int, str]:
        err = io.StringIO()
        return main(["status", *argv], io.StringIO(), err, environ={}), err.getvalue()

    def test_both(self) -> None:
        """
        C{--key-dir} and C{--socket} together are a usage error.
        """
        code, err = self.status("--key-dir", "k", "--socket", "s")
        self.assertEqual(code, 2)
        self.assertIn("give --key-dir or --socket, not both", err)

    def test_tooLong(self) -> None:
        """
        A socket path no UNIX socket can have is a usage error.
        """
        code, err = self.status("--socket", "/tmp/" + "x" * 200)
        self.assertEqual(code, 2)
        self.assertIn("longer than the 107 bytes", err)

    def test_listed(self) -> None:
        """
        C{spc --help} lists the command.
        """
        out = io.StringIO()
        main(["--help"], out, io.StringIO(), environ={})
        self.assertIn("status", out.getvalue())


DEAD_PID = 999_999_999
"""
A process id above Linux's largest, so no process has it.
"""


class SocketTests(TestCase):
    """
    The control socket on disk, over the real reactor.
    """

    def setUp(self) -> None:
        self.path = os.path.join(shortTemporaryDirectory(self), "control.sock")
        self.source = StatusSource(FakeDirectory([FakeSession(1)]), reactor, "SHA256:h")

    def listen(self):
        [service] = statusServices(reactor, self.source, controlSocket=self.path)
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        return service

    def test_plainValues(self) -> None:
        """
        The services are built from plain values, with no parsed command
        line: no socket and no metrics make no service, and a default
        socket path that was too long is reported.
        """
        with capturedLogs() as events:
            services = statusServices(reactor, self.source, skippedSocket="/deep/control.sock")
        self.assertEqual(services, [])
        [event] = events
        self.assertEqual(event["log_level"], LogLevel.warn)
        self.assertEqual(event["path"], "/deep/control.sock")

    @inlineCallbacks
    def test_modeAndAnswer(self):
        """
        Only the owner may use the socket (mode 0600), and it answers.
        """
        self.listen()
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        snapshot = yield fetchStatus(UNIXClientEndpoint(reactor, self.path))
        self.assertEqual([s.peer for s in snapshot.sessions], ["SHA256:peer1"])

    @inlineCallbacks
    def test_staleSocket(self):
        """
        A socket file left by a killed daemon does not stop a new one.
        """
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(self.path)
        stale.close()
        os.symlink(str(DEAD_PID), self.path + ".lock")
        self.listen()
        snapshot = yield fetchStatus(UNIXClientEndpoint(reactor, self.path))
        self.assertEqual(snapshot.daemon.sessions, 1)

    def test_inUse(self) -> None:
        """
        A second daemon on the same socket cannot listen.
        """
        self.listen()
        [second] = statusServices(reactor, self.source, controlSocket=self.path)
        self.assertRaises(CannotListenError, second.privilegedStartService)

    @inlineCallbacks
    def test_noDaemon(self):
        """
        C{spc status} with nothing listening fails with L{DaemonNotRunning},
        which names the socket.
        """
        options = StatusOptions()
        options.parseOptions(["--socket", self.path])
        context = Context(io.StringIO(), io.StringIO(), {})
        error = yield self.assertFailure(
            options.runWithReactor(reactor, context), DaemonNotRunning
        )
        self.assertIn(self.path, str(error))
        self.assertIn("is it running?", str(error))

    @inlineCallbacks
    def test_command(self):
        """
        C{spc status --json} prints the daemon's snapshot.
        """
        self.listen()
        options = StatusOptions()
        options.parseOptions(["--socket", self.path, "--json"])
        out = io.StringIO()
        code = yield options.runWithReactor(reactor, Context(out, io.StringIO(), {}))
        self.assertEqual(code, 0)
        self.assertEqual(json.loads(out.getvalue())["sessions"][0]["epoch"], 7)


class _HalfAnswer(protocol.Protocol):
    """
    A daemon that dies mid-answer: the start of a box, then the end.
    """

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(b"\x00\x04_ans")
        self.transport.loseConnection()


class _OverlongKey(protocol.Protocol):
    """
    A daemon that answers with a key longer than AMP allows.
    """

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(b"\x01\x00" + b"k" * 256)


class _GetDaemonFailing(control.GetDaemon):
    """
    L{control.GetDaemon} as a daemon that reports its failures by name
    declares it.
    """

    commandName = b"GetDaemon"
    errors = {RuntimeError: b"BROKEN"}


class _Failing(amp.AMP):
    """
    A daemon whose status command fails, with a description that would
    clear the screen.
    """

    @_GetDaemonFailing.responder
    def getDaemon(self):
        raise RuntimeError("\x1b[2Jbroken")


class BrokenDaemonTests(TestCase):
    """
    C{spc status} against control sockets that do not answer as they
    should ends in L{StatusUnavailable} (one line, exit 1), never a
    traceback.
    """

    def setUp(self) -> None:
        self.path = os.path.join(shortTemporaryDirectory(self), "control.sock")

    @inlineCallbacks
    def status(self, factory):
        port = yield UNIXServerEndpoint(reactor, self.path).listen(factory)
        self.addCleanup(port.stopListening)
        options = StatusOptions()
        options.parseOptions(["--socket", self.path])
        out = io.StringIO()
        error = yield self.assertFailure(
            options.runWithReactor(reactor, Context(out, io.StringIO(), {})),
            StatusUnavailable,
        )
        self.assertEqual(out.getvalue(), "")
        self.assertEqual(error.exitCode, 1)
        self.assertEqual(len(str(error).splitlines()), 1)
        return str(error)

    @inlineCallbacks
    def test_closedMidAnswer(self):
        """
        A daemon that closes the connection halfway through an answer.
        """
        message = yield self.status(protocol.Factory.forProtocol(_HalfAnswer))
        self.assertIn("closed the connection before it answered", message)

    @inlineCallbacks
    def test_errorAnswer(self):
        """
        A daemon that answers with an AMP error; its description is shown
        without control characters.
        """
        message = yield self.status(protocol.Factory.forProtocol(_Failing))
        self.assertIn("answered with an error: [2Jbroken", message)

    @inlineCallbacks
    def test_tooLong(self):
        """
        A daemon that sends a key past AMP's length limit.
        """
        message = yield self.status(protocol.Factory.forProtocol(_OverlongKey))
        self.assertIn("longer than AMP allows", message)


class EndToEndTests(EndToEndTestCase):
    """
    C{spc status} against a real C{twistd -n spc}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.authorize(self.serverKeys, "client")
        self.socket = os.path.join(shortTemporaryDirectory(self), "control.sock")

    def startWithSocket(self):
        return self.startDaemon("--control-socket", self.socket)

    @inlineCallbacks
    def openSession(self):
        """
        Hold a session open from this process, as a sender would.
        """
        session = yield connect(
            reactor,
            [TCP4ClientEndpoint(reactor, self.server, port) for port in self.ports],
            sharedIdentity("client"),
            PinnedKey(self.serverFingerprint),
            f"{self.server}:{self.ports[0]}",
        )
        self.addCleanup(session.close)
        return session

    @inlineCallbacks
    def test_listsSession(self):
        """
        A connected session is listed with its identity, name, epoch and
        four channels, in JSON; the socket is the owner's only.
        """
        yield self.startWithSocket()
        self.assertEqual(stat.S_IMODE(os.stat(self.socket).st_mode), 0o600)
        session = yield self.openSession()
        yield session.sendMessage(b"hello")
        result = yield self.spc("status", "--socket", self.socket, "--json")
        self.assertEqual(result.code, 0, result.err)
        document = json.loads(result.out)
        self.assertEqual(document["daemon"]["fingerprint"], self.serverFingerprint)
        [listed] = document["sessions"]
        self.assertEqual(listed["peer"], sharedIdentity("client").fingerprint)
        self.assertEqual(listed["name"], "client")
        self.assertEqual(listed["session"], session.id.hex()[:16])
        self.assertEqual([c["index"] for c in listed["channels"]], [0, 1, 2, 3])
        self.assertGreater(sum(c["received"] for c in listed["channels"]), 0)

    @inlineCallbacks
    def test_noDaemon(self):
        """
        Without a daemon C{spc status} prints one line and exits 1.
        """
        result = yield self.spc("status", "--socket", self.socket)
        self.assertEqual(result.code, 1)
        self.assertEqual(result.out, "")
        self.assertEqual(len(result.err.splitlines()), 1, result.err)
        self.assertIn("is it running?", result.err)

    @inlineCallbacks
    def test_restartAfterKill(self):
        """
        A daemon killed with SIGKILL leaves its socket behind; the next one
        starts anyway and answers on it.
        """
        daemon = yield self.startWithSocket()
        daemon.signal("KILL")
        yield daemon.output.whenEnded()
        self.assertTrue(os.path.exists(self.socket))
        yield self.startWithSocket()
        result = yield self.spc("status", "--socket", self.socket)
        self.assertEqual(result.code, 0, result.err)
        self.assertIn("0 sessions", result.out)
