"""
Tests for unfinished files (issue 12, part 4): one session receives a
file at a time, a newer session of the same sender taking it from an
older one (the session an interrupted C{spc send} leaves behind for a
minute), and the operator lists and removes them.
"""

from __future__ import annotations

import hashlib
import json
import os

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from spc.files import store as storeModule
from spc.files.receiving import IncomingFiles
from spc.files.store import FileStore
from spc.files.unfinished import REMOVED
from spc.protocol import filerecords, records
from tests.test_transfer import PEER, SIZE, runNow

TRANSFER = b"t" * 16
DATA = bytes(range(256)) * (4 * SIZE // 256)


class Receiver:
    """
    One session's L{IncomingFiles} over a shared store, and what it
    answered.

    @ivar answers: its decoded C{FAK:}s, in order.
    @ivar work: its thread jobs, when it runs them by hand.
    """

    def __init__(
        self, testCase: SynchronousTestCase, store: FileStore, byHand: bool = False
    ) -> None:
        self.answers: list[filerecords.FileAck] = []
        self.work: list[tuple[Deferred, object]] = []
        self.stored: list = []
        self.incoming = IncomingFiles(
            store, PEER, SIZE, lambda data: self.answers.append(records.decodeRecord(data)),
            task.Clock(), lambda *stored: self.stored.append(stored),
            self.later if byHand else runNow,
        )
        testCase.addCleanup(self.incoming.close)

    def later(self, function, *args) -> Deferred:
        done: Deferred = Deferred()
        self.work.append((done, lambda: function(*args)))
        return done

    def runWork(self) -> None:
        while self.work:
            done, function = self.work.pop(0)
            try:
                done.callback(function())
            except Exception:
                done.errback()

    def offer(self, size: int = len(DATA)) -> None:
        self.incoming.offerReceived(filerecords.FileOffer(TRANSFER, size, "big2.bin"))

    def data(self, *offsets: int) -> None:
        for offset in offsets:
            self.incoming.dataReceived(
                filerecords.FileData(TRANSFER, offset, DATA[offset : offset + SIZE])
            )

    def end(self) -> None:
        self.incoming.endReceived(filerecords.FileEnd(TRANSFER, hashlib.sha256(DATA).digest()))

    def statuses(self) -> list[int]:
        return [answer.status for answer in self.answers]


class TakeOverTests(SynchronousTestCase):
    """
    When a newer session of the same sender offers a file an older one is
    receiving, the older one's claim on it ends.
    """

    def setUp(self) -> None:
        self.store = FileStore(self.mktemp())

    def statePath(self) -> str:
        return self.store._statePath(self.store.key(PEER, TRANSFER))

    def test_newerTakesOver(self) -> None:
        """
        The older session stops receiving the file: it no longer lists it
        as in progress, and tells its sender (if still there) why, with
        reason withdrawn; the newer one is answered resume and receives it.
        """
        older, newer = Receiver(self, self.store), Receiver(self, self.store)
        older.offer()
        older.data(0)
        self.assertEqual([p.name for p in older.incoming.inProgress()], ["big2.bin"])
        newer.offer()
        self.assertEqual(older.incoming.inProgress(), [])
        refusal = older.answers[-1]
        self.assertEqual(
            (refusal.status, refusal.reason, refusal.detail),
            (filerecords.FILE_REFUSED, filerecords.REFUSED_WITHDRAWN, storeModule.TAKEN_OVER),
        )
        self.assertEqual(newer.statuses(), [filerecords.FILE_RESUME])
        self.assertEqual([p.name for p in newer.incoming.inProgress()], ["big2.bin"])

    def test_lateRecordsOfOlderDropped(self) -> None:
        """
        What reaches the older session of that file afterwards is dropped
        as late records of an ended transfer, not taken for a protocol
        error, and writes nothing.
        """
        older, newer = Receiver(self, self.store), Receiver(self, self.store)
        older.offer()
        newer.offer()
        older.data(SIZE)
        older.end()
        newer.data(0, SIZE, 2 * SIZE, 3 * SIZE)
        newer.end()
        self.assertEqual(newer.statuses()[-1], filerecords.FILE_COMPLETE)
        with open(os.path.join(self.store.directory, "big2.bin"), "rb") as f:
            self.assertEqual(f.read(), DATA)

    def test_ghostEndsAfterNewerFinished(self) -> None:
        """
        The older session ending after the newer one stored the file (its
        linger running out) writes no state file back and leaves no
        partial file.
        """
        older, newer = Receiver(self, self.store), Receiver(self, self.store)
        older.offer()
        older.data(0)
        newer.offer()
        newer.data(0, SIZE, 2 * SIZE, 3 * SIZE)
        newer.end()
        older.incoming.close()
        self.assertFalse(os.path.exists(self.statePath()))
        self.assertEqual(self.store.unfinished(), [])

    def test_ghostEndsWhileNewerReceives(self) -> None:
        """
        The older session ending while the newer one receives leaves the
        newer one's state as the newer one wrote it.
        """
        older, newer = Receiver(self, self.store), Receiver(self, self.store)
        older.offer()
        older.data(0, SIZE)
        newer.offer()
        with open(self.statePath()) as f:
            before = json.load(f)
        older.incoming.close()
        with open(self.statePath()) as f:
            self.assertEqual(json.load(f), before)
        [entry] = self.store.unfinished()
        self.assertTrue(entry.receiving)

    def test_olderVerifying(self) -> None:
        """
        An older session verifying the whole file keeps it: the newer
        session's offer is refused, saying to send it again, and once the
        older one stored it, the next offer is answered "already stored".
        """
        older = Receiver(self, self.store, byHand=True)
        older.offer()
        older.data(0, SIZE, 2 * SIZE, 3 * SIZE)
        older.end()
        newer = Receiver(self, self.store)
        newer.offer()
        [refusal] = newer.answers
        self.assertEqual(
            (refusal.status, refusal.reason),
            (filerecords.FILE_REFUSED, filerecords.REFUSED_WITHDRAWN),
        )
        self.assertIn("being verified", refusal.detail)
        older.runWork()
        self.assertEqual(older.statuses()[-1], filerecords.FILE_COMPLETE)
        newer.offer()
        self.assertEqual(newer.statuses()[-1], filerecords.FILE_ALREADY_STORED)
