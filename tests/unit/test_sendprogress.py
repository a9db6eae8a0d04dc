"""
Tests for L{spc.client.observer} (issue 12, part 2): a file's sender
reports first what the daemon held, the books tell resumed and delivered
files from new ones, and the watch says when no channel is up and for how
long.  What L{spc.client.send.send} tells its observer against a real
server is in L{tests.integration.test_sendreports}.
"""

from __future__ import annotations

import os

from hypothesis import given, strategies as st
from twisted.internet import task
from twisted.python.failure import Failure
from twisted.trial import unittest

from spc.client.observer import WATCH_INTERVAL, ConnectionWatch, ProgressBooks, SendObserver
from spc.errors import SessionClosed
from spc.files.sending import FileSender
from spc.protocol import filerecords
from tests.fakes import FakeSession

FRAGMENT = 1024


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
        sender.start(lambda: None)
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


def lose(session: FakeSession) -> None:
    """
    C{session} loses its last channel, and tells as a session does.
    """
    session.live = []
    for callback in list(session.onChannelLost):
        callback(0)


class ConnectionWatchTests(unittest.SynchronousTestCase):
    """
    L{ConnectionWatch} says when no channel is up, counts the seconds, and
    says when one is back.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.session = FakeSession(isServer=False)
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
        lose(self.session)
        self.clock.pump([WATCH_INTERVAL] * 3)
        self.assertEqual(
            self.observer.events,
            [("connectionLost", seconds, 60.0) for seconds in (0, 1, 2, 3)],
        )

    def test_back(self) -> None:
        """
        A channel that rejoined is told once; a later loss counts from 0.
        """
        lose(self.session)
        self.clock.advance(WATCH_INTERVAL)
        self.session.live = ["a channel back"]
        self.clock.pump([WATCH_INTERVAL] * 2)
        self.assertEqual(self.observer.named("connectionBack"), [("connectionBack",)])
        lose(self.session)
        self.assertEqual(self.observer.events[-1], ("connectionLost", 0, 60.0))

    def test_endedSessionQuiet(self) -> None:
        """
        A session that ended is not a lost connection.
        """
        self.session.closedReason = "closed"
        lose(self.session)
        self.clock.advance(WATCH_INTERVAL)
        self.assertEqual(self.observer.events, [])

    def test_stop(self) -> None:
        """
        Once stopped, the watch neither looks nor listens.
        """
        self.watch.stop()
        self.assertEqual(self.session.onChannelLost, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])
