# -*- test-case-name: tests.unit.test_completed -*-
"""
Tests for L{spc.files.completed} and L{spc.files.store.FileStore.completedName}: a
completed transfer counts as complete only while the file it stored is
still there, unchanged, and the memory of completed transfers is bounded
and survives a restart and an older format.
"""

from __future__ import annotations

import json
import os

from twisted.trial.unittest import SynchronousTestCase

from spc.files import completed
from spc.files.names import PARTIAL_DIRECTORY
from spc.files.store import KEEP_SECONDS, FileStore
from tests.fakes import clockAt
from tests.files import rewriteKeepingTimes, waitForChangeTimeAfter

PEER = "SHA256:peer"


def completedRecords(inbox: str) -> dict:
    """
    The records the completed log of C{inbox} keeps, by key, oldest
    first: its lines replayed (a drop removing a key), and only the newest
    C{MAX_COMPLETED}.  This test's own reading of the format.
    """
    records: dict = {}
    with open(os.path.join(inbox, PARTIAL_DIRECTORY, completed.LOG_NAME)) as f:
        for line in f:
            entry = json.loads(line)
            key = entry.pop("key")
            records.pop(key, None)
            if not entry.get("drop"):
                records[key] = entry
    return dict(list(records.items())[-completed.MAX_COMPLETED :])


class CompletedNameTests(SynchronousTestCase):
    """
    L{FileStore.completedName} names the stored file while it is there.
    """

    def setUp(self) -> None:
        self.inbox = os.path.abspath(self.mktemp())
        self.clock = clockAt(1_000_000.0)
        self.store = FileStore(self.inbox, now=self.clock.seconds)

    def complete(self, name: str, data: bytes, tid: bytes = b"t" * 16) -> tuple[str, str]:
        """
        Receive C{data} as C{name} in one go.

        @return: the transfer's key and the stored file's path.
        """
        key = self.store.key(PEER, tid)
        partial = self.store.open(key, name, len(data), PEER)
        partial.write(0, data)
        return key, partial.finish()

    def completedFile(self) -> dict:
        return completedRecords(self.inbox)

    def test_name(self) -> None:
        """
        A completed transfer names the file it stored, relative to the
        inbox with C{/}, numbered if the name was taken, for this store
        and for a new one on the same inbox.
        """
        key, _ = self.complete("sub/f.bin", b"one")
        other, _ = self.complete("sub/f.bin", b"two", b"u" * 16)
        self.assertEqual(self.store.completedName(key), "sub/f.bin")
        self.assertEqual(self.store.completedName(other), "sub/f (1).bin")
        self.assertTrue(self.store.isCompleted(key))
        again = FileStore(self.inbox, now=self.clock.seconds)
        self.assertEqual(again.completedName(other), "sub/f (1).bin")
        self.assertIsNone(again.completedName(again.key(PEER, b"v" * 16)))

    def assertForgotten(self, key: str) -> None:
        """
        C{key} is not complete, now or after a restart: its record is gone.
        """
        self.assertFalse(self.store.isCompleted(key))
        self.assertIsNone(self.store.completedName(key))
        self.assertNotIn(key, self.completedFile())
        self.assertFalse(FileStore(self.inbox, now=self.clock.seconds).isCompleted(key))

    def test_movedAway(self) -> None:
        """
        A stored file moved away (even within the inbox) is no longer
        complete, and its record is dropped, so it is received again.
        """
        key, path = self.complete("report.pdf", b"pdf")
        os.rename(path, os.path.join(self.inbox, "elsewhere.pdf"))
        self.assertForgotten(key)

    def test_deleted(self) -> None:
        """
        A stored file deleted is no longer complete.
        """
        key, path = self.complete("report.pdf", b"pdf")
        os.unlink(path)
        self.assertForgotten(key)

    def test_movedBack(self) -> None:
        """
        A file moved away and back is not taken for the one stored: a
        move changes its change time.
        """
        key, path = self.complete("report.pdf", b"pdf")
        waitForChangeTimeAfter(os.stat(path).st_ctime_ns, self.inbox)
        os.rename(path, path + ".away")
        os.rename(path + ".away", path)
        self.assertForgotten(key)

    def test_editedInPlaceTimesKept(self) -> None:
        """
        A stored file rewritten in place with its size and modification
        time kept (C{touch -r}) is no longer complete.
        """
        key, path = self.complete("report.pdf", b"pdf")
        rewriteKeepingTimes(path, b"PDF")
        self.assertForgotten(key)

    def test_replacedBySymlink(self) -> None:
        """
        A symbolic link where the file was, even to the very file, is not
        the stored file.
        """
        key, path = self.complete("report.pdf", b"pdf")
        os.rename(path, os.path.join(self.inbox, "moved.pdf"))
        os.symlink("moved.pdf", path)
        self.assertForgotten(key)

    def test_folderReplacedBySymlink(self) -> None:
        """
        The file is looked up without following symbolic links: a folder
        of its path moved and replaced by a link to it (a move of the
        folder leaves the file's own times alone) does not hold it.
        """
        key, _ = self.complete("sub/report.pdf", b"pdf")
        os.rename(os.path.join(self.inbox, "sub"), os.path.join(self.inbox, "moved"))
        os.symlink("moved", os.path.join(self.inbox, "sub"))
        self.assertForgotten(key)

    def test_expired(self) -> None:
        """
        After C{KEEP_SECONDS}, a transfer is no longer complete even with
        its file in place.
        """
        key, _ = self.complete("f", b"x")
        self.clock.advance(KEEP_SECONDS)
        self.assertIsNone(self.store.completedName(key))

    def test_oldFormat(self) -> None:
        """
        A completed file in the older format (completion times only)
        loads, but its transfers cannot be checked and are not complete;
        the next completion rewrites it in the new format.
        """
        old = self.store.key(PEER, b"o" * 16)
        path = os.path.join(self.inbox, PARTIAL_DIRECTORY, "completed.json")
        with open(path, "w") as f:
            json.dump({old: self.clock.seconds()}, f)
        store = FileStore(self.inbox, now=self.clock.seconds)
        self.assertFalse(store.isCompleted(old))
        self.store = store
        key, _ = self.complete("f", b"x")
        self.assertEqual(list(self.completedFile()), [key])
        self.assertEqual(FileStore(self.inbox, now=self.clock.seconds).completedName(key), "f")

    def test_garbage(self) -> None:
        """
        Records that are not what this version writes are ignored, one by
        one, in the log and in an older version's file; an older file that
        is not a JSON object is ignored whole.
        """
        key, _ = self.complete("f", b"x")
        record = self.completedFile()[key]
        log = os.path.join(self.inbox, PARTIAL_DIRECTORY, completed.LOG_NAME)
        garbage = {"a": [1], "b": {"finished": "x"}, "c": {"finished": float("nan"),
                   "name": "f", "file": [1, 2, 3, 4, 5]}, "d": {"name": "f"}}
        with open(log, "a") as f:
            for other, value in garbage.items():
                f.write(json.dumps({"key": other, **(value if isinstance(value, dict) else {})}))
                f.write("\n")
            f.write("[1, 2]\n{\"key\": 5}\n{\"truncated")
        store = FileStore(self.inbox, now=self.clock.seconds)
        self.assertEqual(store.completedName(key), "f")
        for other in garbage:
            self.assertIsNone(store.completedName(other))
        old = os.path.join(self.inbox, PARTIAL_DIRECTORY, "completed.json")
        os.unlink(log)
        with open(old, "w") as f:
            json.dump({key: record, **garbage}, f)
        store = FileStore(self.inbox, now=self.clock.seconds)
        self.assertEqual(store.completedName(key), "f")
        for other in garbage:
            self.assertIsNone(store.completedName(other))
        os.unlink(log)
        with open(old, "w") as f:
            f.write("[1, 2]")
        self.assertFalse(FileStore(self.inbox, now=self.clock.seconds).isCompleted(key))

    def test_appendedNotRewritten(self) -> None:
        """
        Each completion appends one line to the log: the log is not
        rewritten whole for every file stored, and a line is durable once
        the store syncs the log (one fsync for many completions).
        """
        self.complete("first", b"1", b"0" * 16)
        log = os.path.join(self.inbox, PARTIAL_DIRECTORY, completed.LOG_NAME)
        before = os.stat(log)
        for n in range(1, 10):
            self.complete(f"f{n}", b"x", bytes([n]) * 16)
        after = os.stat(log)
        self.assertEqual(after.st_ino, before.st_ino)
        with open(log) as f:
            self.assertEqual(len(f.readlines()), 10)

    def test_boundedInCount(self) -> None:
        """
        At most C{MAX_COMPLETED} transfers are remembered; the oldest are
        forgotten first.
        """
        self.patch(completed, "MAX_COMPLETED", 3)
        keys = []
        for n in range(5):
            self.clock.advance(1)
            keys.append(self.complete(f"f{n}", b"x", bytes([n]) * 16)[0])
        self.assertEqual(list(self.completedFile()), keys[2:])
        self.assertEqual([self.store.isCompleted(key) for key in keys], [False] * 2 + [True] * 3)

    def test_boundedInBytes(self) -> None:
        """
        The completed file stays within C{MAX_COMPLETED_BYTES}, however
        long the names, and a larger one is not read.
        """
        self.patch(completed, "MAX_COMPLETED_BYTES", 1000)
        keys = [self.complete("n" * 200 + str(n), b"x", bytes([n]) * 16)[0] for n in range(6)]
        path = os.path.join(self.inbox, PARTIAL_DIRECTORY, completed.LOG_NAME)
        self.assertLessEqual(os.path.getsize(path), 1000)
        remembered = list(self.completedFile())
        self.assertEqual(remembered, keys[-len(remembered):])
        self.assertGreaterEqual(len(remembered), 2)
        with open(path, "a") as f:
            f.write(" " * 1000)
        self.assertFalse(FileStore(self.inbox, now=self.clock.seconds).isCompleted(keys[-1]))
