# -*- test-case-name: tests.memory.test_receiving -*-
"""
Tests for L{spc.files.receiving}: a L{FileSender} on a real
L{MultiChannelMessenger} and an L{IncomingFiles} on a real L{FileStore},
joined by a L{Link} that carries records one at a time in order, with
L{task.Clock} for time and a synchronous stand-in for the thread pool.
"""

from __future__ import annotations

import hashlib
import json
import os

import unicodedata

from hypothesis import given, settings, strategies as st
from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.logger import Logger, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from spc.errors import (
    FileRefused,
    NameUnavailable,
    ProtocolError,
    ResourceLimitExceeded,
    SessionClosed,
    TransferFailed,
)
from spc.files import reading, receiving, writing
from spc.files.names import PARTIAL_DIRECTORY
from spc.files.receiving import IncomingFiles
from spc.files.sending import Delivered, FileSender, FolderSender, transferID
from spc.files.store import FileStore
from spc.lanes import InlineLane
from spc.logs import events
from spc.protocol import filerecords, frames, records
from spc.session.messenger import MultiChannelMessenger
from tests.files import rewriteKeepingTimes
from tests.fakes import QueuedLane

SIZE = 16 * 1024
PARAMS = frames.Params(fragmentSize=SIZE, maxInner=frames.maxInnerSize(SIZE))
PEER = "SHA256:sender"
SERVER = "SHA256:server"
SECRET = b"s" * 32


class Sink:
    """
    The sending session as its messenger sees it: one channel, every record
    kept in order.
    """

    channel = "the channel"

    def __init__(self) -> None:
        self.outbound: list[bytes] = []

    def writableChannel(self):
        return self.channel

    def sendOn(self, channel, record: bytes) -> None:
        self.outbound.append(bytes(record))

    def sendControl(self, record: bytes) -> None:
        raise AssertionError("the sender sends no control records here")


class Link:
    """
    A sending messenger and a receiving L{IncomingFiles}, and the records
    between them.

    @ivar seen: every record the sender sent, decoded, in order.
    @ivar answers: every C{FAK:} the receiver sent, decoded, in order.
    @ivar stored: C{(name, path, size)} for each file stored.
    @ivar held: records kept back by L{flow}, in order.
    """

    def __init__(self, testCase: SynchronousTestCase, store: FileStore | None, **kw) -> None:
        self.testCase = testCase
        self.clock = task.Clock()
        self.store = store
        self.sink = Sink()
        self.messenger = MultiChannelMessenger(
            self.sink, PARAMS, lambda data, kind: None, self.clock, **kw
        )
        self.faks: list[bytes] = []
        self.stored: list[tuple[str, str, int]] = []
        self.incoming = IncomingFiles(
            store, PEER, SIZE, self.faks.append, self.clock,
            lambda *stored: self.stored.append(stored), InlineLane(),
        )
        self.seen: list = []
        self.answers: list[filerecords.FileAck] = []
        self.held: list = []
        self._deferreds: list[Deferred] = []
        testCase.addCleanup(self.close)

    def send(
        self, path: str, name: str = "file.bin", secret: bytes = SECRET, progress=None,
        reader=None,
    ):
        """
        Start sending C{path}, reading it in C{reader} (inline by default).

        @return: the L{FileSender} and its Deferred.
        """
        sender = FileSender(path, name, secret, SERVER, SIZE, task.Clock(), progress, reader)
        sent = self.messenger.sendFile(sender)
        self._deferreds.append(sent)
        return sender, sent

    def sendFolder(self, name: str):
        """
        Start sending the folder C{name}.

        @return: the L{FolderSender} and its Deferred.
        """
        sender = FolderSender(name)
        sent = self.messenger.sendFile(sender)
        self._deferreds.append(sent)
        return sender, sent

    def step(self, hold=()) -> bool:
        """
        Move one record: the receiver's answers first, then the sender's
        oldest record, unless its type is in C{hold}.

        @return: whether anything moved.
        """
        if self.faks:
            answer = records.decodeRecord(self.faks.pop(0))
            self.answers.append(answer)
            self.messenger.fileAckReceived(answer)
            return True
        if self.sink.outbound:
            record = records.decodeRecord(self.sink.outbound.pop(0))
            self.seen.append(record)
            if type(record) in hold:
                self.held.append(record)
            else:
                self.deliver(record)
            return True
        return False

    def deliver(self, record) -> None:
        kind = type(record)
        if kind is filerecords.FileOffer:
            self.incoming.offerReceived(record)
        elif kind is filerecords.FileData:
            self.incoming.dataReceived(record)
        elif kind is filerecords.FileEnd:
            self.incoming.endReceived(record)
        elif kind is filerecords.FolderOffer:
            self.incoming.folderOffered(record)
        else:
            raise AssertionError(f"unexpected {record!r}")

    def flow(self, hold=(), check=None) -> None:
        """
        Move records until none moves, calling C{check} after each.
        """
        while self.step(hold):
            if check is not None:
                check()

    def release(self) -> None:
        """
        Deliver the records L{flow} held back, then let everything flow.
        """
        held, self.held = self.held, []
        for record in held:
            self.deliver(record)
        self.flow()

    def sent(self, kind: type) -> list:
        return [record for record in self.seen if type(record) is kind]

    def statuses(self) -> list[int]:
        return [answer.status for answer in self.answers]

    def end(self) -> None:
        """
        The session ends on both sides.
        """
        self.incoming.close()
        self.messenger.failAll(Failure(SessionClosed("session over")))

    def close(self) -> None:
        self.end()
        for sent in self._deferreds:
            sent.addErrback(lambda failure: None)


class TransferTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.inbox = self.mktemp()
        self.store = FileStore(self.inbox)
        self.sources = self.mktemp()
        os.makedirs(self.sources)

    def source(self, data: bytes, name: str = "source.bin") -> str:
        path = os.path.join(self.sources, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def inboxFiles(self) -> list[str]:
        """
        Every file under the inbox, outside the partial directory, relative.
        """
        found = []
        for folder, directories, files in os.walk(self.inbox):
            if PARTIAL_DIRECTORY in directories:
                directories.remove(PARTIAL_DIRECTORY)
            found += [os.path.relpath(os.path.join(folder, f), self.inbox) for f in files]
        return sorted(found)

    def partials(self) -> list[str]:
        return sorted(
            name for name in os.listdir(os.path.join(self.inbox, PARTIAL_DIRECTORY))
            if name not in ("completed.json", "completed.jsonl")
        )

    def read(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()


class DeliveryTests(TransferTestCase):
    """
    A whole file goes across and is stored under its sanitized name, and
    only once its digest matched.
    """

    def assertArrives(self, data: bytes, name: str, expected: str) -> Link:
        link = Link(self, self.store)
        sender, sent = link.send(self.source(data), name)
        link.flow()
        self.successResultOf(sent)
        [(storedName, path, size)] = link.stored
        self.assertEqual((storedName, size), (name, len(data)))
        self.assertEqual(path, os.path.join(self.inbox, expected))
        self.assertEqual(self.read(path), data)
        self.assertEqual(self.inboxFiles(), [expected])
        self.assertEqual(self.partials(), [])
        self.assertEqual(link.statuses()[0], filerecords.FILE_RESUME)
        self.assertEqual(link.statuses()[-1], filerecords.FILE_COMPLETE)
        return link

    def test_severalFragments(self) -> None:
        """
        A file of several fragments and a tail arrives intact: one C{FIL:},
        one C{FDT:} per fragment at its offset, one C{FEN:} with the
        SHA-256 of the file; the sender's Deferred fires.
        """
        data = os.urandom(5 * SIZE + 123)
        link = self.assertArrives(data, "report.bin", "report.bin")
        self.assertEqual(len(link.sent(filerecords.FileOffer)), 1)
        self.assertEqual(
            [d.offset for d in link.sent(filerecords.FileData)], [n * SIZE for n in range(6)]
        )
        [end] = link.sent(filerecords.FileEnd)
        self.assertEqual(end.digest, hashlib.sha256(data).digest())

    def test_empty(self) -> None:
        """
        A 0-byte file is an offer and an end, no data, and is stored.
        """
        link = self.assertArrives(b"", "empty", "empty")
        self.assertEqual(link.sent(filerecords.FileData), [])

    def test_exactFragments(self) -> None:
        """
        A file of exactly N fragments has no empty tail fragment.
        """
        link = self.assertArrives(os.urandom(3 * SIZE), "exact.bin", "exact.bin")
        self.assertEqual([len(d.payload) for d in link.sent(filerecords.FileData)], [SIZE] * 3)

    def test_sanitizedName(self) -> None:
        """
        A hostile name is stored under its safe form, inside the inbox.
        """
        self.assertArrives(b"x" * 10, "../../etc/../passwd", "etc/passwd")

    def test_notFinalBeforeDigest(self) -> None:
        """
        No file appears under a final name while data is arriving, nor
        after all data arrived but before the digest did, nor when the
        digest arrives before the last data; it appears once both are in.
        """
        link = Link(self, self.store)
        data = os.urandom(4 * SIZE + 1)
        sender, sent = link.send(self.source(data), "final.bin")
        link.flow(
            hold=(filerecords.FileEnd,), check=lambda: self.assertEqual(self.inboxFiles(), [])
        )
        self.assertEqual(len(link.held), 1)
        self.assertEqual(self.inboxFiles(), [])
        self.assertNoResult(sent)
        link.release()
        self.assertEqual(self.inboxFiles(), ["final.bin"])
        self.successResultOf(sent)

        early = Link(self, self.store)
        early.send(self.source(data, "again.bin"), "early.bin")
        early.flow(hold=(filerecords.FileData,))
        self.assertEqual(len(early.sent(filerecords.FileEnd)), 1)
        *firstData, lastData = early.held
        early.held = []
        for record in firstData:
            early.deliver(record)
            self.assertEqual(self.inboxFiles(), ["final.bin"])
        early.deliver(lastData)
        self.assertEqual(self.inboxFiles(), ["early.bin", "final.bin"])

    def test_progress(self) -> None:
        """
        The progress callback climbs with the receiver's acknowledgements
        and ends at the file size.
        """
        link = Link(self, self.store)
        seen: list[int] = []
        data = os.urandom(20 * SIZE + 5)
        link.send(self.source(data), progress=seen.append)
        link.flow()
        link.clock.advance(receiving.ACK_DELAY)
        link.flow()
        self.assertEqual(seen[-1], len(data))
        self.assertEqual(seen, sorted(seen))
        self.assertIn(16 * SIZE, seen)

    def test_progressAcks(self) -> None:
        """
        The receiver acknowledges data every 16 fragments at once, and the
        rest after C{ACK_DELAY}; acknowledged data leaves the sender's send
        window.
        """
        link = Link(self, self.store)
        data = os.urandom(18 * SIZE)
        link.send(self.source(data))
        link.flow(hold=(filerecords.FileEnd,))
        progress = [a for a in link.answers if a.status == filerecords.FILE_PROGRESS]
        self.assertEqual([a.ranges for a in progress], [((0, 16 * SIZE),)])
        link.clock.advance(receiving.ACK_DELAY)
        link.flow(hold=(filerecords.FileEnd,))
        progress = [a for a in link.answers if a.status == filerecords.FILE_PROGRESS]
        self.assertEqual(progress[-1].ranges, ((16 * SIZE, 2 * SIZE),))
        self.assertFalse(link.messenger.acknowledge(("f", progress[0].transferID, 0)))

    def test_offerAgainWhileActive(self) -> None:
        """
        An offer repeated for a transfer in progress (resent after a channel
        died) is answered with what is held, and changes nothing else.
        """
        link = Link(self, self.store)
        sender, sent = link.send(self.source(os.urandom(2 * SIZE)))
        link.flow(hold=(filerecords.FileEnd,))
        [offer] = link.sent(filerecords.FileOffer)
        link.incoming.offerReceived(offer)
        link.release()
        self.assertEqual(link.statuses().count(filerecords.FILE_RESUME), 2)
        self.successResultOf(sent)


class ResumeTests(TransferTestCase):
    """
    A12: an interrupted transfer resumes; the receiver claims only fsynced
    byte ranges and the sender sends only the rest.
    """

    def test_transferIDs(self) -> None:
        """
        The transfer id is the same while the file (path, device, inode,
        size, modification time), the secret and the server are; any change
        gives another.
        """
        path = self.source(b"a" * 100)
        first = transferID(SECRET, SERVER, path, "f.bin", os.stat(path))
        self.assertEqual(first, transferID(SECRET, SERVER, path, "f.bin", os.stat(path)))
        self.assertEqual(len(first), 16)
        self.assertNotEqual(first, transferID(b"t" * 32, SERVER, path, "f.bin", os.stat(path)))
        self.assertNotEqual(first, transferID(SECRET, "SHA256:other", path, "f.bin", os.stat(path)))
        self.assertNotEqual(first, transferID(SECRET, SERVER, path, "g.bin", os.stat(path)))
        stat = os.stat(path)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
        touched = transferID(SECRET, SERVER, path, "f.bin", os.stat(path))
        self.assertNotEqual(first, touched)
        with open(path, "ab") as f:
            f.write(b"b")
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
        self.assertNotEqual(touched, transferID(SECRET, SERVER, path, "f.bin", os.stat(path)))
        link = Link(self, self.store)
        self.assertEqual(
            link.send(path, "f.bin")[0].transferID,
            transferID(SECRET, SERVER, path, "f.bin", os.stat(path)),
        )

    def test_transferIDPathNotUTF8(self) -> None:
        """
        Issue 9, item 15: a file in a folder whose name is not UTF-8 has a
        transfer id (the path goes in as its bytes), stable and its own,
        instead of an encoding error once other files were sent.
        """
        folder = os.fsencode(os.path.abspath(self.sources))
        path = os.fsdecode(folder + b"/\xff.d/f.bin")
        os.makedirs(os.path.dirname(path))
        with open(path, "wb") as f:
            f.write(b"x")
        first = transferID(SECRET, SERVER, path, "f.bin", os.stat(path))
        self.assertEqual(first, transferID(SECRET, SERVER, path, "f.bin", os.stat(path)))
        other = os.fsdecode(folder + b"/\xfe.d/f.bin")
        self.assertNotEqual(first, transferID(SECRET, SERVER, other, "f.bin", os.stat(path)))

    def test_resume(self) -> None:
        """
        A transfer cut after some data was written resumes in a new session
        with a new store on the same inbox: the end of the session fsyncs
        what was written and claims it, so the offer is answered with every
        written range, the sender sends only the other chunks, its digest
        still covers the whole file, and the file is stored intact.
        """
        self.patch(receiving, "SYNC_BYTES", 4 * SIZE)
        data = os.urandom(10 * SIZE + 77)
        path = self.source(data)
        first = Link(self, self.store)
        sender, sent = first.send(path)
        while len(first.sent(filerecords.FileData)) < 6:
            first.step(hold=(filerecords.FileEnd,))
        first.end()
        self.failureResultOf(sent, SessionClosed)
        self.assertEqual(self.inboxFiles(), [])

        second = Link(self, FileStore(self.inbox))
        resumed, again = second.send(path)
        self.assertEqual(resumed.transferID, sender.transferID)
        second.flow()
        self.successResultOf(again)
        [resume] = [a for a in second.answers if a.status == filerecords.FILE_RESUME]
        self.assertEqual(resume.ranges, ((0, 6 * SIZE),))
        self.assertEqual(
            [d.offset for d in second.sent(filerecords.FileData)],
            [n * SIZE for n in range(6, 11)],
        )
        [end] = second.sent(filerecords.FileEnd)
        self.assertEqual(end.digest, hashlib.sha256(data).digest())
        self.assertEqual(self.read(os.path.join(self.inbox, "file.bin")), data)

    def test_resumeEverythingHeld(self) -> None:
        """
        When the receiver holds every byte, no data is sent; the sender
        still reads and hashes it all, in the reader's lane, at most
        C{HELD_PER_JOB} bytes a job (and a last job closes the file).
        """
        self.patch(receiving, "SYNC_BYTES", SIZE)
        self.patch(reading, "HELD_PER_JOB", 2 * SIZE)
        data = os.urandom(6 * SIZE)
        path = self.source(data)
        first = Link(self, self.store)
        first.send(path)
        first.flow(hold=(filerecords.FileEnd,))
        self.assertEqual(self.inboxFiles(), [])
        first.close()

        second = Link(self, FileStore(self.inbox))
        reader = QueuedLane()
        sender, sent = second.send(path, reader=reader)
        second.flow()
        self.assertEqual(second.sent(filerecords.FileEnd), [])
        for _ in range(2):
            self.assertEqual(len(reader.jobs), 1)
            reader.runOne()
            second.flow()
            self.assertEqual(second.sent(filerecords.FileEnd), [])
        reader.runAll()
        second.flow()
        self.assertEqual(reader.ran, 3)
        self.assertEqual(len(second.sent(filerecords.FileEnd)), 1)
        self.assertEqual(second.sent(filerecords.FileData), [])
        self.successResultOf(sent)
        self.assertEqual(len(reader.jobs), 1)
        reader.runAll()
        self.assertEqual(sender._descriptor, -1)
        self.assertEqual(self.read(os.path.join(self.inbox, "file.bin")), data)

    def test_completedAnsweredAlreadyStored(self) -> None:
        """
        An offer of a transfer this receiver completed within 24 h, whose
        file is still stored, is answered "already stored" with the name it
        is stored under, and the file is not stored again; the sender's
        Deferred says so, with nothing sent.
        """
        path = self.source(os.urandom(SIZE + 1))
        first = Link(self, self.store)
        first.send(path, "sub/f.bin")
        first.flow()
        second = Link(self, self.store)
        sender, sent = second.send(path, "sub/f.bin")
        second.flow()
        self.assertEqual(self.successResultOf(sent), Delivered("sub/f.bin", "sub/f.bin", True, 0))
        [answer] = second.answers
        self.assertEqual(
            (answer.status, answer.detail), (filerecords.FILE_ALREADY_STORED, "sub/f.bin")
        )
        self.assertEqual(second.sent(filerecords.FileData), [])
        self.assertEqual(self.inboxFiles(), [os.path.join("sub", "f.bin")])

    def test_completedButMovedAway(self) -> None:
        """
        Issue 9, item 13: once the stored file was moved away, the same
        transfer is not answered "complete" (nothing would be delivered):
        it is received and stored again, and the sender hears it was
        stored now.
        """
        data = os.urandom(2 * SIZE + 3)
        path = self.source(data)
        first = Link(self, self.store)
        first.send(path, "report.pdf")
        first.flow()
        os.rename(os.path.join(self.inbox, "report.pdf"), os.path.join(self.sources, "moved"))
        second = Link(self, self.store)
        sender, sent = second.send(path, "report.pdf")
        second.flow()
        self.assertEqual(
            self.successResultOf(sent), Delivered("report.pdf", "report.pdf", False, len(data))
        )
        self.assertEqual(self.read(os.path.join(self.inbox, "report.pdf")), data)
        self.assertEqual(second.statuses()[-1], filerecords.FILE_COMPLETE)

    def test_completedButMovedAwayResent(self) -> None:
        """
        An offer of a completed transfer whose stored file was moved away
        is not answered "complete": the file is received and stored again.
        """
        data = os.urandom(SIZE + 1)
        path = self.source(data)
        first = Link(self, self.store)
        first.send(path)
        first.flow()
        os.rename(os.path.join(self.inbox, "file.bin"), os.path.join(self.sources, "moved"))
        self.assertEqual(self.inboxFiles(), [])
        second = Link(self, self.store)
        sender, sent = second.send(path)
        second.flow()
        self.successResultOf(sent)
        self.assertEqual(second.statuses()[0], filerecords.FILE_RESUME)
        self.assertEqual(second.statuses()[-1], filerecords.FILE_COMPLETE)
        self.assertEqual(len(second.sent(filerecords.FileData)), 2)
        self.assertEqual(self.inboxFiles(), ["file.bin"])
        self.assertEqual(self.read(os.path.join(self.inbox, "file.bin")), data)

    def test_transferIDChangeTime(self) -> None:
        """
        A file edited in place with its size, inode and modification time
        kept (C{touch -r}) has another transfer id: it is not taken for the
        file already sent.
        """
        path = self.source(b"a" * 100)
        first = transferID(SECRET, SERVER, path, "f.bin", os.stat(path))
        edited = rewriteKeepingTimes(path, b"b" * 100)
        self.assertNotEqual(first, transferID(SECRET, SERVER, path, "f.bin", edited))

    def test_newIdentityNoResume(self) -> None:
        """
        Another identity offering the same transfer id does not get the
        first one's ranges (partial state is keyed by identity).
        """
        self.patch(receiving, "SYNC_BYTES", SIZE)
        path = self.source(os.urandom(4 * SIZE))
        first = Link(self, self.store)
        sender, _ = first.send(path)
        first.flow(hold=(filerecords.FileEnd,))
        first.close()
        answers: list = []
        other = IncomingFiles(self.store, "SHA256:someone else", SIZE, answers.append, task.Clock())
        other.offerReceived(filerecords.FileOffer(sender.transferID, 4 * SIZE, "file.bin"))
        [answer] = [records.decodeRecord(a) for a in answers]
        self.assertEqual((answer.status, answer.ranges), (filerecords.FILE_RESUME, ()))
        other.close()


class ThreadTests(TransferTestCase):
    """
    Opening, writing, fsync and verification run in the writer's lane
    (here: a queue the test runs by hand); the reactor side claims only
    what an fsync covered, and names a file only once verification
    finished.
    """

    def setUp(self) -> None:
        super().setUp()
        self.lane = QueuedLane()
        self.answers: list[bytes] = []
        self.stored: list = []
        self.incoming = IncomingFiles(
            self.store, PEER, SIZE, self.answers.append, task.Clock(),
            lambda *stored: self.stored.append(stored), self.lane,
        )
        self.addCleanup(self.incoming.close)

    def test_claimsOnlyWhatFsyncCovered(self) -> None:
        """
        Bytes written while an fsync runs are not claimed by it.
        """
        self.patch(receiving, "SYNC_BYTES", 2 * SIZE)
        tid = b"y" * 16
        self.incoming.offerReceived(filerecords.FileOffer(tid, 4 * SIZE, "f"))
        self.lane.runOne()
        for offset in (0, SIZE):
            self.incoming.dataReceived(filerecords.FileData(tid, offset, b"a" * SIZE))
        self.lane.runOne()
        self.lane.runOne()
        self.assertEqual(len(self.lane.jobs), 1)
        self.incoming.dataReceived(filerecords.FileData(tid, 2 * SIZE, b"b" * SIZE))
        self.lane.runOne()
        with open(os.path.join(self.inbox, PARTIAL_DIRECTORY,
                               self.store.key(PEER, tid) + ".json")) as f:
            self.assertEqual(json.load(f)["ranges"], [[0, 2 * SIZE]])

    def test_nameOnlyAfterVerification(self) -> None:
        """
        The file gets its final name, and the sender its "complete", only
        when the verification in the lane finished; a repeated end
        meanwhile starts no second verification.
        """
        tid = b"v" * 16
        content = os.urandom(SIZE + 1)
        self.incoming.offerReceived(filerecords.FileOffer(tid, len(content), "v.bin"))
        self.lane.runOne()
        self.incoming.dataReceived(filerecords.FileData(tid, 0, content[:SIZE]))
        self.incoming.dataReceived(filerecords.FileData(tid, SIZE, content[SIZE:]))
        end = filerecords.FileEnd(tid, hashlib.sha256(content).digest())
        self.incoming.endReceived(end)
        self.lane.runOne()
        self.lane.runOne()
        self.incoming.endReceived(end)
        self.assertEqual(len(self.lane.jobs), 1)
        self.assertEqual(self.inboxFiles(), [])
        self.assertNotIn(
            filerecords.FILE_COMPLETE, [records.decodeRecord(a).status for a in self.answers]
        )
        self.lane.runAll()
        self.assertEqual(self.inboxFiles(), ["v.bin"])
        self.assertEqual(records.decodeRecord(self.answers[-1]).status, filerecords.FILE_COMPLETE)
        self.assertEqual(len(self.stored), 1)

    def test_syncInFlightWhenComplete(self) -> None:
        """
        A file that completes while an fsync of it is still in the lane is
        verified only after that fsync, and the fsync's late claim leaves
        no state file behind the finished file.
        """
        self.patch(receiving, "SYNC_BYTES", 2 * SIZE)
        tid = b"r" * 16
        content = os.urandom(2 * SIZE)
        self.incoming.offerReceived(filerecords.FileOffer(tid, len(content), "r.bin"))
        self.lane.runOne()
        self.incoming.dataReceived(filerecords.FileData(tid, 0, content[:SIZE]))
        self.incoming.dataReceived(filerecords.FileData(tid, SIZE, content[SIZE:]))
        self.incoming.endReceived(filerecords.FileEnd(tid, hashlib.sha256(content).digest()))
        self.lane.runOne()
        self.lane.runOne()
        [sync] = self.lane.jobs
        self.lane.runOne()
        self.assertEqual(self.inboxFiles(), [])
        [commit] = self.lane.jobs
        self.lane.runOne()
        self.assertEqual(self.inboxFiles(), ["r.bin"])
        self.assertEqual(self.partials(), [])

    def test_closeWaitsForSync(self) -> None:
        """
        A session that ends while an fsync of a file is in the lane keeps
        the file only after that fsync: the descriptor is not closed under
        it, and what was written is claimed.
        """
        self.patch(receiving, "SYNC_BYTES", SIZE)
        tid = b"c" * 16
        self.incoming.offerReceived(filerecords.FileOffer(tid, 4 * SIZE, "c.bin"))
        self.lane.runOne()
        self.incoming.dataReceived(filerecords.FileData(tid, 0, b"c" * SIZE))
        self.incoming.dataReceived(filerecords.FileData(tid, SIZE, b"d" * SIZE))
        partial = self.incoming._active[tid].partial
        self.lane.runOne()
        self.incoming.close()
        self.assertGreaterEqual(partial.descriptor, 0)
        self.lane.runAll()
        self.assertEqual(partial.descriptor, -1)
        with open(partial.path[: -len(".part")] + ".json") as f:
            self.assertEqual(json.load(f)["ranges"], [[0, 2 * SIZE]])

    def test_writtenBeforeClose(self) -> None:
        """
        Data still waiting for the lane when the session ends is written,
        and claimed, before the file is closed.
        """
        tid = b"n" * 16
        self.incoming.offerReceived(filerecords.FileOffer(tid, 4 * SIZE, "n.bin"))
        self.lane.runOne()
        self.incoming.dataReceived(filerecords.FileData(tid, 0, b"n" * SIZE))
        partial = self.incoming._active[tid].partial
        self.incoming.close()
        self.lane.runAll()
        with open(partial.path, "rb") as f:
            self.assertEqual(f.read(), b"n" * SIZE)
        with open(partial.path[: -len(".part")] + ".json") as f:
            self.assertEqual(json.load(f)["ranges"], [[0, SIZE]])

    def test_verificationInFlight(self) -> None:
        """
        A file being verified counts as in flight until its final answer
        went out, so a shutdown waits for it.
        """
        tid = b"i" * 16
        self.incoming.offerReceived(filerecords.FileOffer(tid, 1, "i.bin"))
        self.lane.runOne()
        self.incoming.dataReceived(filerecords.FileData(tid, 0, b"i"))
        self.incoming.endReceived(filerecords.FileEnd(tid, hashlib.sha256(b"i").digest()))
        self.lane.runOne()
        idle = self.incoming.verifying.whenIdle()
        self.assertNoResult(idle)
        self.lane.runAll()
        self.successResultOf(idle)
        self.assertEqual(records.decodeRecord(self.answers[-1]).status, filerecords.FILE_COMPLETE)

    def test_storeFailureRefuses(self) -> None:
        """
        Verification or naming that fails in the lane (the disk gave out)
        is logged and answered "refused".
        """
        tid = b"e" * 16
        self.incoming.offerReceived(filerecords.FileOffer(tid, 1, "e.bin"))
        self.lane.runOne()
        self.incoming.dataReceived(filerecords.FileData(tid, 0, b"e"))
        self.patch(self.store, "place", lambda source, name, syncLater=None: 1 / 0)
        self.incoming.endReceived(filerecords.FileEnd(tid, hashlib.sha256(b"e").digest()))
        self.lane.runAll()
        self.assertEqual(records.decodeRecord(self.answers[-1]).status, filerecords.FILE_REFUSED)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(self.stored, [])

    def test_revokedWhileSyncing(self) -> None:
        """
        A sender revoked while an fsync of its file is in the lane: the
        session ends, the store deletes the sender's unfinished files
        (A15), and when the fsync runs, neither its claim nor the
        session's final sync brings the state file back.
        """
        self.patch(receiving, "SYNC_BYTES", SIZE)
        tid = b"k" * 16
        self.incoming.offerReceived(filerecords.FileOffer(tid, 4 * SIZE, "k.bin"))
        self.lane.runOne()
        self.incoming.dataReceived(filerecords.FileData(tid, 0, b"k" * SIZE))
        self.lane.runOne()
        self.assertEqual(len(self.lane.jobs), 1)
        self.incoming.close()
        self.assertEqual(self.store.forgetUnless(lambda peer: False), 1)
        self.assertEqual(self.partials(), [])
        self.lane.runAll()
        self.assertEqual(self.partials(), [])

    def test_revokedBeforeClaim(self) -> None:
        """
        A sender's files deleted while an fsync is in the lane and its
        session still open: the fsync's claim does not bring the state
        file back either.
        """
        self.patch(receiving, "SYNC_BYTES", SIZE)
        tid = b"q" * 16
        self.incoming.offerReceived(filerecords.FileOffer(tid, 4 * SIZE, "q.bin"))
        self.lane.runOne()
        self.incoming.dataReceived(filerecords.FileData(tid, 0, b"q" * SIZE))
        self.lane.runOne()
        self.store.forgetUnless(lambda peer: False)
        self.lane.runAll()
        self.assertEqual(self.partials(), [])

    def test_groupCommit(self) -> None:
        """
        Files that complete while the session's writes are in the lane wait
        for them: then one commit verifies and stores them together, one
        job for all of them.
        """
        contents = [os.urandom(10 + n) for n in range(5)]
        for n, content in enumerate(contents):
            tid = bytes([n]) * 16
            self.incoming.offerReceived(filerecords.FileOffer(tid, len(content), f"g{n}"))
        self.lane.runAll()
        for n, content in enumerate(contents):
            tid = bytes([n]) * 16
            self.incoming.dataReceived(filerecords.FileData(tid, 0, content))
            self.incoming.endReceived(filerecords.FileEnd(tid, hashlib.sha256(content).digest()))
        for _ in contents:
            self.assertEqual(self.inboxFiles(), [])
            self.lane.runOne()
        self.assertEqual(len(self.lane.jobs), 1)
        self.lane.runOne()
        self.assertEqual(self.lane.jobs, [])
        self.assertEqual(self.inboxFiles(), [f"g{n}" for n in range(5)])
        self.assertEqual(len(self.stored), 5)

    def test_commitPatience(self) -> None:
        """
        A file ready to be committed waits for the session's other jobs at
        most C{COMMIT_PATIENCE} reports: a stream of writes does not hold
        it off for good.
        """
        self.patch(writing, "COMMIT_PATIENCE", 3)
        self.incoming.offerReceived(filerecords.FileOffer(b"s" * 16, 1, "small"))
        self.incoming.offerReceived(filerecords.FileOffer(b"b" * 16, 64 * SIZE, "big"))
        self.lane.runAll()
        self.incoming.dataReceived(filerecords.FileData(b"s" * 16, 0, b"s"))
        self.incoming.endReceived(filerecords.FileEnd(b"s" * 16, hashlib.sha256(b"s").digest()))
        for n in range(10):
            self.incoming.dataReceived(filerecords.FileData(b"b" * 16, n * SIZE, b"b" * SIZE))
        self.lane.runOne()
        self.assertEqual(len(self.lane.jobs), 10)
        for _ in range(3):
            self.lane.runOne()
        self.assertEqual(len(self.lane.jobs), 7 + 1)
        self.lane.runAll()
        self.assertEqual(self.inboxFiles(), ["small"])

    def test_backlogPausesReading(self) -> None:
        """
        Once more data waits for the lane than an honest sender sends, the
        session is asked to stop reading; once half of it is written, to
        read again.
        """
        self.patch(writing, "BACKLOG_LIMIT", 3 * SIZE)
        asked: list[bool] = []
        incoming = IncomingFiles(
            self.store, PEER, SIZE, self.answers.append, task.Clock(),
            writer=self.lane, onBacklog=asked.append,
        )
        self.addCleanup(incoming.close)
        tid = b"b" * 16
        incoming.offerReceived(filerecords.FileOffer(tid, 8 * SIZE, "b"))
        self.lane.runOne()
        for n in range(4):
            incoming.dataReceived(filerecords.FileData(tid, n * SIZE, b"b" * SIZE))
        self.assertEqual(asked, [True])
        self.lane.runOne()
        self.lane.runOne()
        self.assertEqual(asked, [True])
        self.lane.runOne()
        self.assertEqual(asked, [True, False])


class CorruptionTests(TransferTestCase):
    """
    A12: a digest mismatch deletes the partial file and asks for a restart;
    the sender restarts once from offset 0 with a new transfer id.
    """

    def corrupt(self, link: Link, attempts: int = 1) -> None:
        """
        Flip one byte of the second fragment of the first C{attempts}
        attempts to send a file over C{link}, as it is handed to the
        receiver: what the receiver writes is not what was read.  (The
        receiver hashes what it writes as it writes it, so a byte changed
        on its disk afterwards goes unseen; a changed fragment is what the
        digest catches.)
        """
        deliver = link.deliver
        corrupted: set[bytes] = set()

        def tampering(record) -> None:
            if (
                type(record) is filerecords.FileData and record.offset == SIZE
                and len(corrupted) < attempts and record.transferID not in corrupted
            ):
                corrupted.add(record.transferID)
                payload = bytearray(record.payload)
                payload[3] ^= 0xFF
                record = record._replace(payload=bytes(payload))
            deliver(record)

        link.deliver = tampering

    def test_restartOnce(self) -> None:
        """
        One corrupted byte: C{FAK:} restart, the partial is deleted,
        nothing is stored under a final name; the sender offers again under
        a new transfer id, sends everything again, and succeeds.
        """
        data = os.urandom(3 * SIZE + 9)
        link = Link(self, self.store)
        self.corrupt(link)
        sender, sent = link.send(self.source(data))
        firstID = sender.transferID
        link.flow(hold=(filerecords.FileEnd,))
        link.release()
        self.assertIn(filerecords.FILE_RESTART, link.statuses())
        self.assertNotEqual(sender.transferID, firstID)
        offers = link.sent(filerecords.FileOffer)
        self.assertEqual([o.transferID for o in offers], [firstID, sender.transferID])
        self.assertEqual(len(link.sent(filerecords.FileData)), 8)
        self.successResultOf(sent)
        self.assertEqual(self.read(os.path.join(self.inbox, "file.bin")), data)
        self.assertEqual(self.inboxFiles(), ["file.bin"])
        self.assertEqual(self.partials(), [])

    def test_restartCrossesRetransmission(self) -> None:
        """
        The receiver's "restart" and the sender's retransmission of that
        attempt's end (its channel died before the answer arrived) cross:
        the late end is dropped, and the restarted transfer succeeds.
        """
        data = os.urandom(2 * SIZE + 9)
        link = Link(self, self.store)
        self.corrupt(link)
        sender, sent = link.send(self.source(data))
        link.flow(hold=(filerecords.FileEnd,))
        [end] = link.held
        link.held = []
        link.deliver(end)
        self.assertEqual(records.decodeRecord(link.faks[-1]).status, filerecords.FILE_RESTART)
        link.messenger.channelDied(Sink.channel)
        resent = [records.decodeRecord(r) for r in link.sink.outbound]
        del link.sink.outbound[:]
        self.assertIn(end, resent)
        for record in resent:
            link.deliver(record)
        link.flow()
        self.successResultOf(sent)
        self.assertEqual(self.read(os.path.join(self.inbox, "file.bin")), data)

    def test_twiceFails(self) -> None:
        """
        A second mismatch fails the item with L{TransferFailed}; nothing is
        stored and no partial is left.
        """
        link = Link(self, self.store)
        self.corrupt(link, attempts=2)
        sender, sent = link.send(self.source(os.urandom(2 * SIZE + 1)))
        for _ in range(2):
            link.flow(hold=(filerecords.FileEnd,))
            held, link.held = link.held, []
            for record in held:
                link.deliver(record)
        link.flow()
        self.failureResultOf(sent, TransferFailed)
        self.assertEqual(link.statuses().count(filerecords.FILE_RESTART), 2)
        self.assertEqual(self.inboxFiles(), [])
        self.assertEqual(self.partials(), [])

    def test_wrongDigest(self) -> None:
        """
        A C{FEN:} whose digest does not match what arrived gives restart.
        """
        link = Link(self, self.store)
        sender, sent = link.send(self.source(b"abc"))
        link.flow(hold=(filerecords.FileEnd,))
        [end] = link.held
        link.held = []
        link.incoming.endReceived(end._replace(digest=bytes(32)))
        self.assertEqual(
            records.decodeRecord(link.faks[-1]).status, filerecords.FILE_RESTART
        )
        self.assertEqual(self.inboxFiles(), [])


class RefusalTests(TransferTestCase):
    """
    Files the receiver will not take.
    """

    def test_noStore(self) -> None:
        """
        A receiver without a store refuses; the sender fails with
        L{TransferFailed} and sends no data.
        """
        link = Link(self, None)
        sender, sent = link.send(self.source(b"data"))
        link.flow()
        self.assertEqual(link.statuses(), [filerecords.FILE_REFUSED])
        self.failureResultOf(sent, TransferFailed)
        self.assertEqual(link.sent(filerecords.FileData), [])

    def test_diskFull(self) -> None:
        """
        A12: a file larger than the free space less the reserve is refused
        before its first byte.
        """
        stats = type("statvfs", (), {"f_bavail": 1, "f_frsize": 4096})
        self.patch(os, "statvfs", lambda path: stats)
        link = Link(self, FileStore(self.mktemp(), reserve=0))
        sender, sent = link.send(self.source(os.urandom(4097)))
        link.flow()
        self.assertEqual(link.statuses(), [filerecords.FILE_REFUSED])
        self.failureResultOf(sent, TransferFailed)
        self.assertEqual(link.sent(filerecords.FileData), [])

    def test_unstorableNameRefusedAtOffer(self) -> None:
        """
        A name that could not be stored (a file stands where one of its
        folders must go) is refused at the offer, before any data is sent,
        and no partial file is made; the file in the way is untouched.
        """
        with open(os.path.join(self.inbox, "blocker"), "wb") as f:
            f.write(b"in the way")
        link = Link(self, self.store)
        sender, sent = link.send(self.source(os.urandom(3 * SIZE)), "blocker/x")
        link.flow()
        failure = self.failureResultOf(sent, TransferFailed)
        self.assertIn("refused", str(failure.value))
        self.assertEqual(link.statuses(), [filerecords.FILE_REFUSED])
        self.assertEqual(link.sent(filerecords.FileData), [])
        self.assertEqual(self.partials(), [])
        self.assertEqual(self.inboxFiles(), ["blocker"])

    def test_refusalsThrottled(self) -> None:
        """
        A peer that makes a thousand offers with 4 KiB names, each refused
        for want of room, gets a few warnings, each with its name cut
        short, then one line saying how many were held back; not a
        thousand 4 KiB lines.  The summary is written at the latest when
        the session ends.
        """
        logged: list[dict] = []
        self.patch(IncomingFiles, "log", Logger(observer=logged.append))
        stats = type("statvfs", (), {"f_bavail": 1, "f_frsize": 4096})
        self.patch(os, "statvfs", lambda path: stats)
        clock = task.Clock()
        answers: list[bytes] = []
        store = FileStore(self.mktemp(), reserve=0)
        incoming = IncomingFiles(store, PEER, SIZE, answers.append, clock)
        for n in range(1000):
            name = f"{n:04d}" + "n" * 4092
            incoming.offerReceived(filerecords.FileOffer(n.to_bytes(16, "big"), 10**6, name))
        self.assertEqual(len(answers), 1000)
        refusals = [e for e in logged if e["log_format"] == "Refusing {name}: {error}"]
        self.assertEqual(len(refusals), 10)
        self.assertEqual(
            refusals[0]["name"],
            "0000" + "n" * (events.LOGGED_NAME - 4) + "… (4096 characters)",
        )
        for event in logged:
            self.assertLess(len(formatEvent(event)), 300)
        incoming.close()
        [summary] = [e for e in logged if e["log_format"] == events.FILE_WARNINGS_SUPPRESSED]
        self.assertEqual(
            (summary["count"], summary["kinds"], summary["peer"]),
            (990, {"refused": 990}, PEER),
        )
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_tooManyAtOnce(self) -> None:
        """
        More than C{MAX_ACTIVE_FILES} transfers at once from one peer is a
        resource limit.
        """
        self.patch(receiving, "MAX_ACTIVE_FILES", 2)
        incoming = IncomingFiles(self.store, PEER, SIZE, [].append, task.Clock())
        self.addCleanup(incoming.close)
        for n in range(2):
            incoming.offerReceived(filerecords.FileOffer(bytes([n]) * 16, 10, "f"))
        self.assertRaises(
            ResourceLimitExceeded,
            incoming.offerReceived,
            filerecords.FileOffer(b"\x09" * 16, 10, "f"),
        )


class HostileDataTests(TransferTestCase):
    """
    File data that does not fit the offered transfer is a protocol error.
    """

    def setUp(self) -> None:
        super().setUp()
        self.answers: list[bytes] = []
        self.incoming = IncomingFiles(
            self.store, PEER, SIZE, self.answers.append, task.Clock(), writer=InlineLane()
        )
        self.addCleanup(self.incoming.close)
        self.transfer = b"h" * 16
        self.incoming.offerReceived(filerecords.FileOffer(self.transfer, 2 * SIZE + 10, "f"))

    def data(self, offset: int, length: int, transfer: bytes | None = None):
        return filerecords.FileData(transfer or self.transfer, offset, b"d" * length)

    def test_offGrid(self) -> None:
        """
        An offset not on the fragment grid is refused.
        """
        self.assertRaises(ProtocolError, self.incoming.dataReceived, self.data(100, SIZE))

    def test_beyondSize(self) -> None:
        """
        An offset at or past the size, or a last fragment of the wrong
        length, is refused.
        """
        for offset, length in [(3 * SIZE, 10), (2 * SIZE, 11), (2 * SIZE, 9), (0, SIZE + 1)]:
            self.assertRaises(
                ProtocolError, self.incoming.dataReceived, self.data(offset, length)
            )

    def test_unknownTransfer(self) -> None:
        """
        Data or an end for a transfer never offered is refused.
        """
        self.assertRaises(
            ProtocolError, self.incoming.dataReceived, self.data(0, SIZE, b"u" * 16)
        )
        self.assertRaises(
            ProtocolError, self.incoming.endReceived, filerecords.FileEnd(b"u" * 16, bytes(32))
        )

    def test_emptyFileData(self) -> None:
        """
        Any data for a 0-byte file is refused.
        """
        self.incoming.offerReceived(filerecords.FileOffer(b"z" * 16, 0, "empty"))
        self.assertRaises(
            ProtocolError, self.incoming.dataReceived, self.data(0, 0, b"z" * 16)
        )

    def test_afterCompletionIgnored(self) -> None:
        """
        Data arriving after the transfer completed (a retransmission) is
        ignored; an end is answered "complete" again.
        """
        content = os.urandom(2 * SIZE + 10)
        for offset in (0, SIZE, 2 * SIZE):
            self.incoming.dataReceived(
                filerecords.FileData(self.transfer, offset, content[offset : offset + SIZE])
            )
        end = filerecords.FileEnd(self.transfer, hashlib.sha256(content).digest())
        self.incoming.endReceived(end)
        self.assertEqual(records.decodeRecord(self.answers[-1]).status, filerecords.FILE_COMPLETE)
        del self.answers[:]
        self.incoming.dataReceived(filerecords.FileData(self.transfer, SIZE, b"x" * SIZE))
        self.assertEqual(self.answers, [])
        self.incoming.endReceived(end)
        [again] = [records.decodeRecord(a) for a in self.answers]
        self.assertEqual(again.status, filerecords.FILE_COMPLETE)
        with open(os.path.join(self.inbox, "f"), "rb") as f:
            self.assertEqual(f.read(), content)


class LateRecordTests(TransferTestCase):
    """
    A14: records of a transfer this receiver has already finished with
    (retransmissions that crossed its answer) are dropped, never fatal.
    """

    def setUp(self) -> None:
        super().setUp()
        self.answers: list[bytes] = []
        self.clock = task.Clock()
        self.incoming = IncomingFiles(
            self.store, PEER, SIZE, self.answers.append, self.clock, writer=InlineLane(),
            duplicateInterval=2.0,
        )
        self.addCleanup(self.incoming.close)
        self.transfer = b"l" * 16
        self.content = os.urandom(SIZE + 5)
        self.incoming.offerReceived(filerecords.FileOffer(self.transfer, len(self.content), "l"))
        self.data = [
            filerecords.FileData(self.transfer, offset, self.content[offset : offset + SIZE])
            for offset in (0, SIZE)
        ]
        for record in self.data:
            self.incoming.dataReceived(record)

    def test_afterRestart(self) -> None:
        """
        After a digest mismatch the receiver answered "restart"; a copy of
        that attempt's data or end, resent by the sender before the answer
        reached it (its channel died), is dropped: the session must not end
        over a race the receiver started.
        """
        self.incoming.endReceived(filerecords.FileEnd(self.transfer, bytes(32)))
        self.assertEqual(records.decodeRecord(self.answers[-1]).status, filerecords.FILE_RESTART)
        self.incoming.dataReceived(self.data[1])
        self.incoming.endReceived(filerecords.FileEnd(self.transfer, bytes(32)))
        self.assertEqual(self.inboxFiles(), [])

    def statuses(self) -> list[int]:
        answers, self.answers[:] = list(self.answers), []
        return [records.decodeRecord(answer).status for answer in answers]

    def test_repeatedOfferAnsweredOncePerInterval(self) -> None:
        """
        An offer replayed a thousand times while its file is received gets
        one answer per interval, however many ranges it carries.
        """
        self.clock.advance(1)
        self.statuses()
        offer = filerecords.FileOffer(self.transfer, len(self.content), "l")
        for _ in range(1000):
            self.incoming.offerReceived(offer)
        self.assertEqual(self.statuses(), [filerecords.FILE_RESUME])
        self.clock.advance(1.9)
        self.incoming.offerReceived(offer)
        self.assertEqual(self.statuses(), [])
        self.clock.advance(0.1)
        self.incoming.offerReceived(offer)
        self.assertEqual(self.statuses(), [filerecords.FILE_RESUME])

    def test_repeatedEndAnsweredOncePerInterval(self) -> None:
        """
        The end of a finished transfer replayed a thousand times gets one
        answer per interval.
        """
        end = filerecords.FileEnd(self.transfer, bytes(32))
        self.incoming.endReceived(end)
        self.assertEqual(self.statuses()[-1], filerecords.FILE_RESTART)
        for _ in range(1000):
            self.incoming.endReceived(end)
        self.assertEqual(self.statuses(), [filerecords.FILE_RESTART])
        self.clock.advance(2.0)
        for _ in range(1000):
            self.incoming.endReceived(end)
        self.assertEqual(self.statuses(), [filerecords.FILE_RESTART])


class SenderFailureTests(TransferTestCase):
    """
    A12: the sender fails the item if the file changes while it reads.
    """

    def test_shrinks(self) -> None:
        """
        A file that shrinks while being sent fails with L{TransferFailed};
        no C{FEN:} is sent and nothing is stored.
        """
        data = os.urandom(8 * SIZE)
        path = self.source(data)
        link = Link(self, self.store, window=3 * SIZE)
        sender, sent = link.send(path)
        while len(link.sent(filerecords.FileData)) < 2:
            link.step()
        with open(path, "r+b") as f:
            f.truncate(4 * SIZE + 5)
        link.flow()
        link.clock.advance(receiving.ACK_DELAY)
        link.flow()
        failure = self.failureResultOf(sent, TransferFailed)
        self.assertIn("shrank", str(failure.value))
        self.assertEqual(len(link.sent(filerecords.FileData)), 4)
        self.assertEqual(link.sent(filerecords.FileEnd), [])
        self.assertEqual(self.inboxFiles(), [])

    def test_modified(self) -> None:
        """
        A file whose modification time changes while it is read fails with
        L{TransferFailed} before its end record.
        """
        path = self.source(os.urandom(2 * SIZE))
        link = Link(self, self.store)
        sender, sent = link.send(path)
        link.step()
        stat = os.stat(path)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        link.flow()
        self.failureResultOf(sent, TransferFailed)
        self.assertEqual(link.sent(filerecords.FileEnd), [])

    def test_editedInPlaceTimesKept(self) -> None:
        """
        A file rewritten in place while it is read, with its size and
        modification time set back (C{touch -r}), fails with
        L{TransferFailed} before its end record: its change time moved.
        """
        path = self.source(os.urandom(2 * SIZE))
        link = Link(self, self.store)
        sender, sent = link.send(path)
        link.step()
        rewriteKeepingTimes(path, os.urandom(2 * SIZE))
        link.flow()
        self.failureResultOf(sent, TransferFailed)
        self.assertEqual(link.sent(filerecords.FileEnd), [])
        self.assertEqual(self.inboxFiles(), [])

    def test_sessionEnds(self) -> None:
        """
        A transfer still on its way when the session ends fails with the
        session's reason, and the receiver keeps its partial file for a
        later resume.
        """
        self.patch(receiving, "SYNC_BYTES", SIZE)
        link = Link(self, self.store)
        sender, sent = link.send(self.source(os.urandom(3 * SIZE)))
        link.flow(hold=(filerecords.FileEnd,))
        link.end()
        self.failureResultOf(sent, SessionClosed)
        self.assertEqual(len(self.partials()), 2)


class SenderStepsTests(TransferTestCase):
    """
    The steps of a L{FileSender}, fed the receiver's answers by hand
    through its messenger: each answer counts only in the step that
    expects it, and a done sender ignores everything.
    """

    def answer(self, sender, status: int, ranges=()) -> None:
        self.messenger.fileAckReceived(
            filerecords.FileAck(sender.transferID, status, tuple(ranges))
        )

    def start(self, size: int = 2 * SIZE):
        sink = Sink()
        messenger = MultiChannelMessenger(sink, PARAMS, lambda data, kind: None, task.Clock())
        self.messenger = messenger
        sender = FileSender(self.source(os.urandom(size)), "f", SECRET, SERVER, SIZE, task.Clock())
        sent = messenger.sendFile(sender)
        self.addCleanup(sent.addErrback, lambda failure: None)
        return sender, sent, sink

    def kinds(self, sink: Sink) -> list[type]:
        kinds = [type(records.decodeRecord(record)) for record in sink.outbound]
        del sink.outbound[:]
        return kinds

    def test_offerThenWait(self) -> None:
        """
        The offer goes out once; until the receiver answers it the sender
        has nothing more, and a second answer to it changes nothing.
        """
        sender, sent, sink = self.start()
        self.assertEqual(self.kinds(sink), [filerecords.FileOffer])
        self.assertIsNone(sender.nextRecord())
        self.answer(sender, filerecords.FILE_RESUME)
        self.assertEqual(
            self.kinds(sink), [filerecords.FileData, filerecords.FileData, filerecords.FileEnd]
        )
        self.answer(sender, filerecords.FILE_RESUME)
        self.assertEqual(self.kinds(sink), [])
        self.assertIsNone(sender.nextRecord())
        self.assertNoResult(sent)

    def test_doneIgnoresAll(self) -> None:
        """
        Once delivered, the sender ignores a restart, a refusal, another
        verdict and the end of the session.
        """
        sender, sent, sink = self.start()
        self.answer(sender, filerecords.FILE_RESUME)
        self.answer(sender, filerecords.FILE_COMPLETE)
        delivered = self.successResultOf(sent)
        for status in (filerecords.FILE_RESTART, filerecords.FILE_REFUSED, filerecords.FILE_COMPLETE):
            self.answer(sender, status)
            sender.ackReceived(filerecords.FileAck(sender.transferID, status))
        sender.sessionEnded(Failure(SessionClosed("over")))
        self.assertEqual(delivered.sent, 2 * SIZE)
        self.assertIsNone(sender.nextRecord())

    def test_restartOffersAgain(self) -> None:
        """
        A first restart offers the file again under a new id, from any step
        before done; a second fails it.
        """
        sender, sent, sink = self.start()
        first = sender.transferID
        self.kinds(sink)
        self.answer(sender, filerecords.FILE_RESTART)
        self.assertNotEqual(sender.transferID, first)
        self.assertEqual(self.kinds(sink), [filerecords.FileOffer])
        self.answer(sender, filerecords.FILE_RESTART)
        self.assertIn("corrupt twice", str(self.failureResultOf(sent, TransferFailed).value))

    def test_sessionEndsOnce(self) -> None:
        """
        The end of the session fails a sender still waiting, once.
        """
        sender, sent, sink = self.start()
        sender.sessionEnded(Failure(SessionClosed("over")))
        sender.sessionEnded(Failure(SessionClosed("again")))
        self.assertIn("over", str(self.failureResultOf(sent, SessionClosed).value))
        self.assertIsNone(sender.nextRecord())


class AnswerTests(TransferTestCase):
    """
    Issue 9, items 13 and 17: the receiver's answers say where a file or
    folder is stored, or why it was refused, in a sentence of its own
    (never an operating system's message), and the sender keeps both,
    cleaned of control characters.
    """

    def test_storedName(self) -> None:
        """
        "Complete" names the file as stored: the sanitized path, numbered
        when the name was taken, relative to the inbox; the sender's
        L{Delivered} has it, and the bytes it sent.
        """
        data = os.urandom(3 * SIZE)
        link = Link(self, self.store)
        _, first = link.send(self.source(data, "a"), "../x/report.pdf")
        _, second = link.send(self.source(b"other", "b"), "x/report.pdf")
        link.flow()
        self.assertEqual(
            self.successResultOf(first), Delivered("../x/report.pdf", "x/report.pdf", False, len(data))
        )
        self.assertEqual(
            self.successResultOf(second), Delivered("x/report.pdf", "x/report (1).pdf", False, 5)
        )

    def test_sentCountsOnlyWhatWasSent(self) -> None:
        """
        A resumed file's L{Delivered} counts only the bytes sent this time,
        not those the receiver held.
        """
        self.patch(receiving, "SYNC_BYTES", SIZE)
        data = os.urandom(6 * SIZE)
        path = self.source(data)
        first = Link(self, self.store)
        first.send(path)
        while len(first.sent(filerecords.FileData)) < 4:
            first.step(hold=(filerecords.FileEnd,))
        first.end()
        second = Link(self, FileStore(self.inbox))
        _, sent = second.send(path)
        second.flow()
        delivered = self.successResultOf(sent)
        self.assertEqual(delivered.sent, len(second.sent(filerecords.FileData)) * SIZE)
        self.assertLess(delivered.sent, len(data))

    def assertRefused(self, link: Link, sent: Deferred, reason: int, *fragments: str):
        """
        The last answer refused with C{reason}, and the sender failed with a
        L{FileRefused} carrying the reason and the receiver's sentence.
        """
        answer = link.answers[-1]
        self.assertEqual((answer.status, answer.reason), (filerecords.FILE_REFUSED, reason))
        failure = self.failureResultOf(sent, FileRefused)
        self.assertEqual((failure.value.reason, failure.value.text), (reason, answer.detail))
        for fragment in fragments:
            self.assertIn(fragment, answer.detail)
        return answer

    def test_quota(self) -> None:
        """
        An offer over the sender's quota of unfinished files is refused
        with the limit reason and the store's sentence, which names the
        quota.
        """
        link = Link(self, FileStore(self.mktemp(), quota=100))
        _, sent = link.send(self.source(os.urandom(101)))
        link.flow()
        self.assertRefused(link, sent, filerecords.REFUSED_LIMIT, "quota of 100 bytes")

    def test_noStore(self) -> None:
        """
        A receiver without a store says it takes no files.
        """
        link = Link(self, None)
        _, sent = link.send(self.source(b"data"))
        _, folder = link.sendFolder("empty")
        link.flow()
        self.assertRefused(link, folder, filerecords.REFUSED_NO_FILES, receiving.NO_FILES)
        self.assertEqual(link.answers[0].reason, filerecords.REFUSED_NO_FILES)
        self.failureResultOf(sent, FileRefused)

    def test_nameUnavailable(self) -> None:
        """
        A file whose folder is taken by a file is refused for its name,
        with the store's sentence naming the component.
        """
        with open(os.path.join(self.inbox, "blocker"), "wb") as f:
            f.write(b"in the way")
        link = Link(self, self.store)
        _, sent = link.send(self.source(b"x"), "blocker/x")
        link.flow()
        self.assertRefused(link, sent, filerecords.REFUSED_NAME, "'blocker'", "not a folder")

    def test_storageFailureHidesDetails(self) -> None:
        """
        A failure of the receiver's disk is refused with the storage reason
        and a fixed sentence: the operating system's message, with the
        receiver's paths, stays in its log.
        """
        secret = os.path.join(self.inbox, "private", "path")

        def broken(source, name, syncLater=None):
            raise PermissionError(13, "Permission denied", secret)

        self.patch(self.store, "place", broken)
        link = Link(self, self.store)
        _, sent = link.send(self.source(b"x"))
        link.flow()
        answer = self.assertRefused(link, sent, filerecords.REFUSED_STORAGE)
        self.assertEqual(answer.detail, receiving.STORAGE_FAILED)
        self.assertNotIn("private", answer.detail)

    def test_lateEndAnsweredAgain(self) -> None:
        """
        A late copy of a stored file's end is answered as the first time,
        with the stored name.
        """
        link = Link(self, self.store)
        _, sent = link.send(self.source(b"abc"), "late.txt")
        link.flow()
        [end] = link.sent(filerecords.FileEnd)
        link.incoming.endReceived(end)
        again = records.decodeRecord(link.faks[-1])
        self.assertEqual((again.status, again.detail), (filerecords.FILE_COMPLETE, "late.txt"))

    @settings(max_examples=200)
    @given(st.text(max_size=400), st.integers(0, 3))
    def test_refusalBounded(self, text: str, kind: int) -> None:
        """
        Whatever an error says, the refusal's sentence fits a C{FAK:}; an
        operating system's error, whatever its text and path, gives the
        fixed sentence.
        """
        error = [
            NameUnavailable(text), ResourceLimitExceeded(text),
            OSError(5, text, text), ValueError(text),
        ][kind]
        reason, sentence = receiving.refusal(error)
        encoded = filerecords.FileAck(
            bytes(16), filerecords.FILE_REFUSED, (), reason, sentence
        ).encode()
        self.assertEqual(records.decodeRecord(encoded).detail, sentence)
        if kind >= 2:
            self.assertEqual(
                (reason, sentence), (filerecords.REFUSED_STORAGE, receiving.STORAGE_FAILED)
            )

    @settings(max_examples=200)
    @given(st.text(min_size=1, max_size=100))
    def test_senderCleansDetails(self, detail: str) -> None:
        """
        Whatever name or sentence the receiver sends, what the sender keeps
        has no control characters (Unicode category C).
        """
        def clean(text: str) -> bool:
            return not any(unicodedata.category(c)[0] == "C" for c in text)

        for status, reason in ((filerecords.FILE_COMPLETE, 0), (filerecords.FILE_REFUSED, 2)):
            sender = FolderSender("f")
            sender.ackReceived(filerecords.FileAck(sender.transferID, status, (), reason, detail))
            if status == filerecords.FILE_COMPLETE:
                self.assertTrue(clean(self.successResultOf(sender.deferred).storedAs))
            else:
                self.assertTrue(clean(self.failureResultOf(sender.deferred).value.text))


class FolderTests(TransferTestCase):
    """
    Issue 9, item 14: a folder with nothing in it to send is offered with
    C{DIR:} and made by the store, with the rules of file names.
    """

    def test_made(self) -> None:
        """
        The folder and those above it are made; the answer names it.
        """
        link = Link(self, self.store)
        _, sent = link.sendFolder("album/empty")
        link.flow()
        self.assertEqual(self.successResultOf(sent), Delivered("album/empty", "album/empty", False, 0))
        self.assertTrue(os.path.isdir(os.path.join(self.inbox, "album", "empty")))
        self.assertEqual(link.statuses(), [filerecords.FILE_COMPLETE])

    def test_existingKept(self) -> None:
        """
        A folder that exists already is kept, with what is in it.
        """
        os.makedirs(os.path.join(self.inbox, "kept"))
        with open(os.path.join(self.inbox, "kept", "f"), "wb") as f:
            f.write(b"f")
        link = Link(self, self.store)
        _, sent = link.sendFolder("kept")
        link.flow()
        self.assertEqual(self.successResultOf(sent).storedAs, "kept")
        self.assertEqual(self.inboxFiles(), [os.path.join("kept", "f")])

    def test_sanitized(self) -> None:
        """
        A hostile folder name is made under its safe form, inside the inbox.
        """
        link = Link(self, self.store)
        _, sent = link.sendFolder("../../etc/./x\x00y")
        link.flow()
        self.assertEqual(self.successResultOf(sent).storedAs, "etc/xy")
        self.assertTrue(os.path.isdir(os.path.join(self.inbox, "etc", "xy")))

    def test_fileInTheWay(self) -> None:
        """
        A file where the folder must go refuses the folder for its name.
        """
        with open(os.path.join(self.inbox, "taken"), "wb") as f:
            f.write(b"x")
        link = Link(self, self.store)
        _, sent = link.sendFolder("taken/sub")
        link.flow()
        failure = self.failureResultOf(sent, FileRefused)
        self.assertEqual(failure.value.reason, filerecords.REFUSED_NAME)
        self.assertIn("not a folder", failure.value.text)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.sampled_from(["..", ".", "", " ", "a", "é", "\x00", "\\", "\u202e", "x" * 300]),
                    min_size=1, max_size=8))
    def test_staysInside(self, pieces: list[str]) -> None:
        """
        Whatever the folder name, the folder made is inside the inbox, or
        the offer is refused.
        """
        inbox = os.path.realpath(self.mktemp())
        store = FileStore(inbox)
        try:
            made = store.makeDirectory("/".join(pieces))
        except NameUnavailable:
            return
        self.assertTrue(os.path.isdir(made))
        self.assertEqual(os.path.commonpath([inbox, os.path.realpath(made)]), inbox)
        self.assertNotEqual(os.path.realpath(made), inbox)

    def test_tooManyAtOnce(self) -> None:
        """
        Folders being made count with the files against
        C{MAX_ACTIVE_FILES}.
        """
        self.patch(receiving, "MAX_ACTIVE_FILES", 2)
        incoming = IncomingFiles(
            self.store, PEER, SIZE, [].append, task.Clock(), writer=QueuedLane()
        )
        self.addCleanup(incoming.close)
        incoming.offerReceived(filerecords.FileOffer(b"f" * 16, 10, "f"))
        incoming.folderOffered(filerecords.FolderOffer(b"d" * 16, "d"))
        self.assertRaises(
            ResourceLimitExceeded, incoming.folderOffered, filerecords.FolderOffer(b"e" * 16, "e")
        )

    def test_sessionEnds(self) -> None:
        """
        A folder offer still unanswered when the session ends fails with the
        session's reason.
        """
        link = Link(self, self.store)
        _, sent = link.sendFolder("late")
        link.end()
        self.failureResultOf(sent, SessionClosed)
