"""
Tests for L{spc.client.observer} and what L{spc.client.send.send} tells
its observer and its summary (issue 12, part 2): a file's sender reports
first what the daemon held, the books tell resumed and delivered files
from new ones, the watch says when no channel is up and for how long, and
the summary names the files stored under another name.
"""

from __future__ import annotations

import os

from hypothesis import given, strategies as st
from twisted.internet import reactor, task
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.python.failure import Failure
from twisted.trial import unittest
from zope.interface import implementer

from spc.client.observer import WATCH_INTERVAL, ConnectionWatch, ProgressBooks, SendObserver
from spc.client.send import SendRequest, send
from spc.errors import MessageTooLarge, SessionClosed
from spc.files.sending import FileSender
from spc.files.store import FileStore
from spc.interfaces import IMessageReceiver
from spc.keys.identity import Identity, generateIdentity
from spc.keys.trust import AuthorizedKeys, PinnedKey
from spc.protocol import filerecords, frames
from spc.server.service import ServerService

FRAGMENT = 1024

_identities: dict[str, Identity] = {}


def identityNamed(name: str) -> Identity:
    """
    An RSA identity made once per test run and name: key generation is
    slow.
    """
    if name not in _identities:
        _identities[name] = generateIdentity()
    return _identities[name]


class RecordingObserver(SendObserver):
    """
    Keeps every event, as C{(method name, *arguments)}.
    """

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def starting(self, files, size):
        self.events.append(("starting", files, size))

    def fileStarted(self, name, size, held):
        self.events.append(("fileStarted", name, size, held))

    def progressed(self, held):
        self.events.append(("progressed", held))

    def fileDelivered(self, name):
        self.events.append(("fileDelivered", name))

    def connectionLost(self, seconds, limit):
        self.events.append(("connectionLost", seconds, limit))

    def connectionBack(self):
        self.events.append(("connectionBack",))

    def named(self, name: str) -> list[tuple]:
        return [event for event in self.events if event[0] == name]


class FakeMessenger:
    """
    As much of a messenger as a L{FileSender} calls: every key is
    acknowledged, and sources are kept.
    """

    def __init__(self) -> None:
        self.sources: list = []
        self.done: list = []

    def acknowledge(self, key) -> bool:
        return True

    def addSource(self, source) -> None:
        self.sources.append(source)

    def senderDone(self, sender) -> None:
        self.done.append(sender)

    def renameSender(self, sender, previous) -> None:
        pass


class FileSenderReportTests(unittest.SynchronousTestCase):
    """
    The contract L{ProgressBooks} relies on: a L{FileSender}'s first
    progress report is what the receiver held when it answered the offer.
    """

    def sender(self, size: int) -> tuple[FileSender, list[int]]:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(os.urandom(size))
        reports: list[int] = []
        sender = FileSender(
            path, "f.bin", b"s" * 32, "SHA256:server", FRAGMENT, task.Clock(), reports.append
        )
        sender.messenger = FakeMessenger()
        self.addCleanup(sender.sessionEnded, Failure(SessionClosed("test over")))
        sender.deferred.addErrback(lambda failure: None)
        sender.nextRecord()
        return sender, reports

    def test_resumedReportsHeldFirst(self) -> None:
        """
        Answered with the ranges it holds, the sender reports their total
        before it sends anything.
        """
        sender, reports = self.sender(10 * FRAGMENT)
        held = ((0, 3 * FRAGMENT), (5 * FRAGMENT, FRAGMENT))
        sender.ackReceived(filerecords.FileAck(sender.transferID, filerecords.FILE_RESUME, held))
        self.assertEqual(reports, [4 * FRAGMENT])

    def test_newReportsNothingHeld(self) -> None:
        """
        A file the receiver holds nothing of is first reported at 0.
        """
        sender, reports = self.sender(10 * FRAGMENT)
        sender.ackReceived(filerecords.FileAck(sender.transferID, filerecords.FILE_RESUME))
        self.assertEqual(reports, [0])

    def test_alreadyStoredReportsWholeFile(self) -> None:
        """
        A file an earlier transfer delivered is reported whole at once.
        """
        sender, reports = self.sender(10 * FRAGMENT)
        sender.ackReceived(filerecords.FileAck(
            sender.transferID, filerecords.FILE_ALREADY_STORED, detail="f.bin"
        ))
        self.assertEqual(reports, [10 * FRAGMENT])


class ProgressBooksTests(unittest.SynchronousTestCase):
    """
    L{ProgressBooks} turns the senders' reports into observer events.
    """

    def setUp(self) -> None:
        self.observer = RecordingObserver()
        self.books = ProgressBooks(
            self.observer, [(0, "a.bin", 100), (1, "b.bin", 50), (2, "c.bin", 30)]
        )

    def test_starting(self) -> None:
        """
        The observer hears first how many files there are and their size.
        """
        self.assertEqual(self.observer.events, [("starting", 3, 180)])

    def test_firstReportIsHeld(self) -> None:
        """
        Each file's first report is what the daemon held: a new file 0, a
        resumed one a part, a delivered one all; later reports are
        progress, and the total held is kept across files.
        """
        self.books.reporter(0)(0)
        self.books.reporter(1)(20)
        self.books.reporter(2)(30)
        self.books.reporter(0)(40)
        self.books.reporter(1)(50)
        self.assertEqual(
            self.observer.named("fileStarted"),
            [
                ("fileStarted", "a.bin", 100, 0),
                ("fileStarted", "b.bin", 50, 20),
                ("fileStarted", "c.bin", 30, 30),
            ],
        )
        self.assertEqual(
            [held for _, held in self.observer.named("progressed")], [0, 20, 50, 90, 120]
        )
        self.assertEqual(self.books.held, 120)

    def test_sessionAgain(self) -> None:
        """
        A file sent again by a new session (the first was reset) is not
        started again: its new first report is progress.
        """
        self.books.reporter(0)(60)
        self.books.reporter(0)(60)
        self.books.reporter(0)(100)
        self.assertEqual(len(self.observer.named("fileStarted")), 1)
        self.assertEqual(self.books.held, 100)

    def test_delivered(self) -> None:
        """
        L{ProgressBooks.delivered} tells the observer, and passes the
        result on, as a callback does.
        """
        self.assertEqual(self.books.delivered("result", 1), "result")
        self.assertEqual(self.observer.named("fileDelivered"), [("fileDelivered", "b.bin")])

    @given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 100)), max_size=40))
    def test_heldIsLastReports(self, reports) -> None:
        """
        Whatever the order of the reports, the total held is the sum of
        each file's last report, and each file starts once, with its first.
        """
        observer = RecordingObserver()
        books = ProgressBooks(observer, [(0, "a", 100), (1, "b", 100), (2, "c", 100)])
        last: dict[int, int] = {}
        first: dict[int, int] = {}
        for key, held in reports:
            books.reporter(key)(held)
            last[key] = held
            first.setdefault(key, held)
        self.assertEqual(books.held, sum(last.values()))
        self.assertEqual(
            [event[3] for event in observer.named("fileStarted")], list(first.values())
        )


class FakeSession:
    """
    What L{ConnectionWatch} looks at in a session.
    """

    def __init__(self) -> None:
        self.live = ["channel 0"]
        self.onChannelLost: list = []
        self.closedReason = None

    def liveChannels(self) -> list:
        return list(self.live)

    def lose(self) -> None:
        self.live = []
        for callback in list(self.onChannelLost):
            callback(0)


class ConnectionWatchTests(unittest.SynchronousTestCase):
    """
    L{ConnectionWatch} says when no channel is up, counts the seconds, and
    says when one is back.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.session = FakeSession()
        self.observer = RecordingObserver()
        self.watch = ConnectionWatch(self.clock, self.session, self.observer, 60.0)
        self.watch.start()
        self.addCleanup(self.watch.stop)

    def test_quietWhileConnected(self) -> None:
        """
        With a channel up, the observer hears nothing.
        """
        self.clock.pump([WATCH_INTERVAL] * 5)
        self.assertEqual(self.observer.events, [])

    def test_lostCounted(self) -> None:
        """
        The loss of the last channel is told at once, then every second
        with the seconds since and the time the session waits.
        """
        self.clock.advance(0.5)
        self.session.lose()
        self.clock.pump([WATCH_INTERVAL] * 3)
        self.assertEqual(
            self.observer.events,
            [("connectionLost", seconds, 60.0) for seconds in (0, 1, 2, 3)],
        )

    def test_back(self) -> None:
        """
        A channel that rejoined is told once; a later loss counts from 0.
        """
        self.session.lose()
        self.clock.advance(WATCH_INTERVAL)
        self.session.live = ["channel 1"]
        self.clock.pump([WATCH_INTERVAL] * 2)
        self.assertEqual(self.observer.named("connectionBack"), [("connectionBack",)])
        self.session.lose()
        self.assertEqual(self.observer.events[-1], ("connectionLost", 0, 60.0))

    def test_endedSessionQuiet(self) -> None:
        """
        A session that ended is not a lost connection.
        """
        self.session.closedReason = "closed"
        self.session.lose()
        self.clock.advance(WATCH_INTERVAL)
        self.assertEqual(self.observer.events, [])

    def test_stop(self) -> None:
        """
        Once stopped, the watch neither looks nor listens.
        """
        self.watch.stop()
        self.assertEqual(self.session.onChannelLost, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])


@implementer(IMessageReceiver)
class Messages:
    def __init__(self) -> None:
        self.received: list[bytes] = []

    def messageReceived(self, session, data: bytes, kind: int) -> None:
        self.received.append(data)


class SendReportsTests(unittest.TestCase):
    """
    L{send} against a real server on loopback: what its observer hears
    and what its summary says of stored names and oversized messages.
    """

    timeout = 30

    @inlineCallbacks
    def setUp(self):
        self.inbox = self.mktemp()
        self.sources = self.mktemp()
        os.makedirs(self.sources)
        self.messages = Messages()
        self.service = ServerService(
            reactor,
            [serverFromString(reactor, "tcp:0:interface=127.0.0.1") for _ in range(2)],
            identityNamed("server"),
            AuthorizedKeys.parse(f"{identityNamed('client').fingerprint} test\n", "test"),
            self.messages,
            files=FileStore(self.inbox),
            params=frames.Params(maxMessageSize=1000),
        )
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.ports = [port.getHost().port for port in (yield self.service.whenListening())]

    def source(self, name: str, data: bytes) -> tuple[str, str]:
        path = os.path.join(self.sources, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return path, name

    def request(self, messages=(), **kw) -> SendRequest:
        return SendRequest(
            identityNamed("client"),
            PinnedKey(identityNamed("server").fingerprint),
            f"127.0.0.1:{self.ports[0]}",
            [f"tcp:127.0.0.1:{port}" for port in self.ports],
            list(messages),
            transferSecret=b"s" * 32,
            **kw,
        )

    @inlineCallbacks
    def test_observerHearsFiles(self):
        """
        A new file starts at 0 held and ends delivered, all of it held; the
        same file sent again starts with all of it held.
        """
        file = self.source("a.bin", os.urandom(5000))
        observer = RecordingObserver()
        yield send(reactor, self.request(files=[file], progress=observer))
        self.assertEqual(observer.events[0], ("starting", 1, 5000))
        self.assertEqual(observer.named("fileStarted"), [("fileStarted", "a.bin", 5000, 0)])
        self.assertEqual(observer.named("progressed")[-1], ("progressed", 5000))
        self.assertEqual(observer.named("fileDelivered"), [("fileDelivered", "a.bin")])
        again = RecordingObserver()
        yield send(reactor, self.request(files=[file], progress=again))
        self.assertEqual(again.named("fileStarted"), [("fileStarted", "a.bin", 5000, 5000)])

    @inlineCallbacks
    def test_renamed(self):
        """
        A file stored under another name than the one sent (the name was
        taken) is in the summary's C{renamed}, with its stored name; one
        stored under its own name is not.
        """
        os.makedirs(os.path.join(self.inbox, "album"))
        with open(os.path.join(self.inbox, "album", "big.bin"), "wb") as f:
            f.write(b"someone else's")
        taken = self.source("album/big.bin", b"mine")
        free = self.source("album/free.bin", b"free")
        summary = yield send(reactor, self.request(files=[taken, free]))
        self.assertEqual(summary.files, 2)
        self.assertEqual(summary.renamed, (("album/big.bin", "album/big (1).bin"),))
        self.assertEqual(summary.already, ())

    @inlineCallbacks
    def test_messageOverDaemonLimit(self):
        """
        A message over the limit the daemon announced fails alone with
        L{MessageTooLarge}, naming both sizes; the others are delivered.
        """
        summary = yield send(reactor, self.request([b"small", b"x" * 1001, b"also"]))
        self.assertEqual(summary.messages, 2)
        [(item, error)] = summary.failed
        self.assertTrue(item.startswith("message 2 "), item)
        self.assertIsInstance(error, MessageTooLarge)
        self.assertEqual((error.size, error.limit, error.exitCode), (1001, 1000, 4))
        self.assertEqual(self.messages.received, [b"small", b"also"])
