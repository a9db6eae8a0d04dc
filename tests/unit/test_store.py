# -*- test-case-name: tests.unit.test_store -*-
"""
Tests for L{spc.files.store}: names from the wire reduced to safe path
components, unique final names that never replace a file, partial files
and their state across restarts, the memory of completed transfers, and
L{RangeSet} against a model.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from spc.errors import NameUnavailable, ResourceLimitExceeded
from spc.files import completed, store
from spc.files.names import (
    MAX_COMPONENT_BYTES,
    MAX_DEPTH,
    MESSAGES_NAME,
    PARTIAL_DIRECTORY,
    safeParts,
)
from spc.files.ranges import RangeSet
from spc.files.store import KEEP_SECONDS, FileStore
from spc.protocol import records
from spc.server.inbox import InboxReceiver
from tests.fakes import clockAt
from tests.names import nameStrategy
from tests.unit.test_completed import completedRecords

PEER = "SHA256:peer"
HOSTILE = [
    "../../x",
    "a/../../b",
    "/etc/passwd",
    "C:\\x\\..\\y",
    "..\\..\\windows\\system32",
    "a\x00b/\x00/c\x01\x1f\x7f",
    "\x00\x00",
    "",
    "   ",
    ".",
    "..",
    "./././..",
    "x" * 1000,
    "é" * 300 + ".txt",
    "/".join(["d"] * 100) + "/leaf",
    ".spc-partial/completed.json",
    ".spc-partial",
    " .spc-partial /x",
    "a/.spc-partial-evil/b",
    "line\nbreak\r.txt",
    "\u202egnp.exe",
    "//server/share/file",
    "\\\\?\\C:\\file",
]


def makeStore(testCase: SynchronousTestCase, directory: str | None = None, **kw) -> FileStore:
    """
    A L{FileStore} in a new directory (or C{directory}).
    """
    return FileStore(directory or testCase.mktemp(), **kw)


def placeBytes(store: FileStore, name: str, data: bytes) -> str:
    """
    Receive C{data} as C{name} all at once and put it under its final name.
    """
    key = store.key(PEER, os.urandom(16))
    partial = store.open(key, name, len(data))
    partial.write(0, data)
    return partial.finish()


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class SafePartsTests(SynchronousTestCase):
    """
    L{safeParts}: whatever the peer names a file, the components that come
    out stay inside the inbox.
    """

    def assertSafe(self, name: str) -> list[str]:
        parts = safeParts(name)
        self.assertTrue(parts, name)
        self.assertLessEqual(len(parts), MAX_DEPTH, name)
        for part in parts:
            self.assertNotIn(part, ("", ".", ".."), name)
            self.assertNotIn("/", part, name)
            self.assertNotIn("\\", part, name)
            self.assertFalse(any(ord(c) < 0x20 or c == "\x7f" for c in part), repr(name))
            self.assertLessEqual(len(part.encode("utf-8")), MAX_COMPONENT_BYTES, name)
            self.assertEqual(part, part.strip(), repr(name))
        self.assertFalse(parts[0].startswith(PARTIAL_DIRECTORY), name)
        inbox = "/inbox"
        joined = os.path.normpath(os.path.join(inbox, *parts))
        self.assertTrue(joined.startswith(inbox + "/"), name)
        return parts

    def test_hostileNames(self) -> None:
        """
        Traversal, absolute paths of either kind, NUL and control
        characters, empty and dot names, overlong components, deep paths
        and the partial directory's own name all give safe components.
        """
        for name in HOSTILE:
            self.assertSafe(name)

    def test_examples(self) -> None:
        """
        What a few names become.
        """
        self.assertEqual(safeParts("../../x"), ["x"])
        self.assertEqual(safeParts("a/../../b"), ["a", "b"])
        self.assertEqual(safeParts("/etc/passwd"), ["etc", "passwd"])
        self.assertEqual(safeParts("C:\\x\\..\\y"), ["C:", "x", "y"])
        self.assertEqual(safeParts("a\x00b"), ["ab"])
        self.assertEqual(safeParts(""), ["unnamed"])
        self.assertEqual(safeParts("../.."), ["unnamed"])
        self.assertEqual(safeParts(".spc-partial/x"), ["_.spc-partial", "x"])
        self.assertEqual(safeParts("sub/dir/report.pdf"), ["sub", "dir", "report.pdf"])

    def test_longComponent(self) -> None:
        """
        A component is cut to 255 bytes of UTF-8, never inside a character.
        """
        [part] = safeParts("é" * 300)
        self.assertEqual(part, "é" * 127)

    def test_deepPath(self) -> None:
        """
        A path deeper than C{MAX_DEPTH} keeps its last components.
        """
        parts = safeParts("/".join(str(n) for n in range(100)))
        self.assertEqual(parts, [str(n) for n in range(68, 100)])

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
    def test_anyName(self, name: str) -> None:
        """
        Any string at all gives safe components.
        """
        self.assertSafe(name)

    def test_placedInsideInbox(self) -> None:
        """
        Each hostile name, stored, lands inside the inbox and outside its
        partial directory, and nothing is written anywhere else.
        """
        root = self.mktemp()
        inbox = os.path.join(root, "inbox")
        store = makeStore(self, inbox)
        for name in HOSTILE:
            path = placeBytes(store, name, name.encode("utf-8", "replace"))
            real = os.path.realpath(path)
            self.assertTrue(real.startswith(os.path.realpath(inbox) + os.sep), name)
            partials = os.path.realpath(os.path.join(inbox, PARTIAL_DIRECTORY))
            self.assertFalse(real.startswith(partials + os.sep), name)
        self.assertEqual(os.listdir(root), ["inbox"])


class PlaceTests(SynchronousTestCase):
    """
    L{FileStore.place}: unique final names; an existing file is never
    replaced.
    """

    def test_numbered(self) -> None:
        """
        A second and third file of one name get C{name (1).ext} and
        C{name (2).ext}; a name without an extension gets C{name (1)}.
        """
        store = makeStore(self)
        paths = [placeBytes(store, "report.pdf", b"%d" % n) for n in range(3)]
        self.assertEqual(
            [os.path.basename(p) for p in paths],
            ["report.pdf", "report (1).pdf", "report (2).pdf"],
        )
        self.assertEqual([read(p) for p in paths], [b"0", b"1", b"2"])
        bare = [placeBytes(store, "README", b"%d" % n) for n in range(3)]
        self.assertEqual(
            [os.path.basename(p) for p in bare], ["README", "README (1)", "README (2)"]
        )

    def test_existingNeverOverwritten(self) -> None:
        """
        A file or directory already in the inbox under the name is left
        alone; the new file gets the next free name.
        """
        store = makeStore(self)
        with open(os.path.join(store.directory, "notes.txt"), "wb") as f:
            f.write(b"mine")
        os.mkdir(os.path.join(store.directory, "notes (1).txt"))
        path = placeBytes(store, "notes.txt", b"theirs")
        self.assertEqual(os.path.basename(path), "notes (2).txt")
        self.assertEqual(read(os.path.join(store.directory, "notes.txt")), b"mine")
        self.assertEqual(read(path), b"theirs")

    def test_subdirectories(self) -> None:
        """
        A relative path creates its folders inside the inbox.
        """
        store = makeStore(self)
        path = placeBytes(store, "a/b/c.bin", b"deep")
        self.assertEqual(path, os.path.join(store.directory, "a", "b", "c.bin"))

    def test_longNameNumbered(self) -> None:
        """
        A second file whose name already has the longest component allowed
        is stored too, under a numbered name that still fits.
        """
        store = makeStore(self)
        name = "n" * (MAX_COMPONENT_BYTES - 4) + ".txt"
        first = placeBytes(store, name, b"1")
        second = placeBytes(store, name, b"2")
        self.assertNotEqual(first, second)
        self.assertLessEqual(len(os.path.basename(second).encode()), MAX_COMPONENT_BYTES)
        self.assertEqual(read(second), b"2")

    def test_symlinkOutside(self) -> None:
        """
        A folder of the inbox that is a symbolic link leading out of it is
        refused, and nothing is created out there.
        """
        root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(root, "outside"))
        store = makeStore(self, os.path.join(root, "inbox"))
        os.symlink(os.path.join(root, "outside"), os.path.join(store.directory, "link"))
        for name in ("link/file", "link/sub/file"):
            self.assertRaises(ResourceLimitExceeded, placeBytes, store, name, b"x")
        self.assertEqual(os.listdir(os.path.join(root, "outside")), [])


    def test_dotsRevealedByTheCut(self) -> None:
        """
        A component that is C{..} only once cut to 255 bytes and stripped
        (C{..}, 253 spaces, C{x}) does not lead out of the inbox: the file
        is stored inside it, and nothing is created beside the inbox.
        """
        root = os.path.abspath(self.mktemp())
        store = makeStore(self, os.path.join(root, "inbox"))
        dots = ".." + " " * 253 + "x"
        path = placeBytes(store, f"a/{dots}/{dots}/escaped", b"payload")
        self.assertEqual(os.listdir(root), ["inbox"])
        self.assertEqual(os.path.relpath(path, store.directory), os.path.join("a", "escaped"))
        self.assertEqual(read(path), b"payload")


    def test_brokenNameRulesCannotEscape(self) -> None:
        """
        Should the name rules ever let through a component that leaves its
        folder, the file is still never placed outside the inbox: folders
        are opened from the inbox one at a time and the file is linked
        relative to the last, and such a component is refused, with a
        message saying why.
        """
        root = os.path.abspath(self.mktemp())
        fileStore = makeStore(self, os.path.join(root, "inbox"))
        for parts in (["..", "escaped"], ["a", "..", "..", "escaped"], [".."], ["a", "."],
                      ["a/../../b"], ["a/../../made", "x"], ["a", "b\0c"]):
            self.patch(store, "safeParts", lambda name, reserved=(), parts=parts: parts)
            error = self.assertRaises(NameUnavailable, placeBytes, fileStore, "x", b"payload")
            self.assertIn("cannot be a name in the inbox", str(error))
        self.assertEqual(os.listdir(root), ["inbox"])
        self.assertEqual(
            sorted(os.listdir(fileStore.directory)), sorted(["a", PARTIAL_DIRECTORY])
        )

    def test_symlinkPlantedDeeper(self) -> None:
        """
        A symbolic link planted anywhere along the path, even to a folder
        inside the inbox, is not followed: the name is refused.
        """
        root = os.path.abspath(self.mktemp())
        outside = os.path.join(root, "outside")
        os.makedirs(outside)
        store = makeStore(self, os.path.join(root, "inbox"))
        os.makedirs(os.path.join(store.directory, "a", "real"))
        os.symlink(outside, os.path.join(store.directory, "a", "out"))
        os.symlink("real", os.path.join(store.directory, "a", "in"))
        for name in ("a/out/file", "a/out/sub/file", "a/in/file"):
            error = self.assertRaises(NameUnavailable, placeBytes, store, name, b"x")
            self.assertIn("in the inbox is not a folder", str(error))
        self.assertEqual(os.listdir(outside), [])
        self.assertEqual(os.listdir(os.path.join(store.directory, "a", "real")), [])

    def test_symlinkSwappedInAfterOffer(self) -> None:
        """
        A folder replaced by a symbolic link after the offer was accepted
        refuses the file when it is placed; nothing goes where it points.
        """
        root = os.path.abspath(self.mktemp())
        outside = os.path.join(root, "outside")
        os.makedirs(outside)
        store = makeStore(self, os.path.join(root, "inbox"))
        os.mkdir(os.path.join(store.directory, "a"))
        partial = store.open(store.key(PEER, b"s" * 16), "a/file", 1)
        partial.write(0, b"x")
        os.rmdir(os.path.join(store.directory, "a"))
        os.symlink(outside, os.path.join(store.directory, "a"))
        self.assertRaises(NameUnavailable, partial.finish)
        self.assertEqual(os.listdir(outside), [])

    def test_createdFoldersSynced(self) -> None:
        """
        Before a file counts as stored, its folder and the parent of every
        folder made for it are fsynced, from the deepest up: the file's
        entry and the entries leading to it survive a crash.
        """
        if not os.path.isdir("/proc/self/fd"):
            raise SkipTest("needs /proc/self/fd to name descriptors")
        store = makeStore(self)
        os.mkdir(os.path.join(store.directory, "a"))
        synced: list[str] = []
        realFsync = os.fsync

        def fsync(descriptor: int) -> None:
            synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
            realFsync(descriptor)

        self.patch(os, "fsync", fsync)
        placeBytes(store, "a/b/c/d.bin", b"x")
        inbox = os.path.realpath(store.directory)
        folders = [
            os.path.relpath(path, inbox) for path in synced
            if os.path.isdir(path) and not path.startswith(os.path.join(inbox, PARTIAL_DIRECTORY))
        ]
        self.assertEqual(folders, ["a/b/c", "a/b", "a"])


class PlaceAnyNameTests(SynchronousTestCase):
    """
    Whatever the name, a stored file ends up inside the inbox or is refused
    with a clear error; it never replaces anything.
    """

    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.root, "outside"))
        self.store = makeStore(self, os.path.join(self.root, "inbox"))
        inbox = self.store.directory
        with open(os.path.join(inbox, "existing.txt"), "wb") as f:
            f.write(b"mine")
        with open(os.path.join(inbox, "blocker"), "wb") as f:
            f.write(b"a file")
        os.symlink(os.path.join(self.root, "outside"), os.path.join(inbox, "link"))
        with open(os.path.join(inbox, MESSAGES_NAME), "wb") as f:
            f.write(b"{}\n")

    def snapshot(self) -> dict[str, object]:
        """
        Every entry under the root but the partial directory: a file's
        content, a link's target, or C{"folder"}.
        """
        found: dict[str, object] = {}
        for folder, folders, files in os.walk(self.root):
            if PARTIAL_DIRECTORY in folders:
                folders.remove(PARTIAL_DIRECTORY)
            for name in folders + files:
                path = os.path.join(folder, name)
                if os.path.islink(path):
                    found[path] = ("link", os.readlink(path))
                elif os.path.isdir(path):
                    found[path] = "folder"
                else:
                    found[path] = read(path)
        return found

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(
        st.one_of(
            nameStrategy,
            st.lists(
                st.sampled_from(["link", "blocker", "existing.txt", "sub", "..", MESSAGES_NAME]),
                min_size=1, max_size=4,
            ).map("/".join),
        ),
        st.binary(max_size=16),
    )
    def test_anyName(self, name: str, data: bytes) -> None:
        """
        For any name: either the file is stored, inside the inbox and
        outside its partial directory, with the content sent, and the only
        new entries are it and folders inside the inbox; or it is refused
        with L{NameUnavailable} saying why, and nothing changed.  Nothing
        that was there is changed either way.
        """
        inbox = os.path.realpath(self.store.directory)
        before = self.snapshot()
        try:
            path = placeBytes(self.store, name, data)
        except NameUnavailable as error:
            self.assertIn("in the inbox", str(error))
            self.assertEqual(self.snapshot(), before)
            return
        real = os.path.realpath(path)
        self.assertEqual(os.path.commonpath([real, inbox]), inbox, repr(name))
        self.assertNotEqual(os.path.relpath(real, inbox).split(os.sep)[0], PARTIAL_DIRECTORY)
        self.assertEqual(read(path), data)
        after = self.snapshot()
        self.assertEqual({k: after[k] for k in before}, before, repr(name))
        for new in set(after) - set(before):
            self.assertEqual(os.path.commonpath([new, inbox]), inbox, repr(name))
            if new != path:
                self.assertEqual(after[new], "folder", repr(name))


class Peer:
    """
    The part of a session an L{InboxReceiver} uses.
    """

    peer = PEER


class ReservedNameTests(SynchronousTestCase):
    """
    The daemon's own files keep their names, whichever comes first: a
    message or a file whose path names them at any depth.
    """

    def setUp(self) -> None:
        self.inbox = self.mktemp()
        self.store = FileStore(self.inbox)
        self.receiver = InboxReceiver(self.inbox)

    def message(self, text: bytes) -> None:
        self.receiver.messageReceived(Peer(), text, records.KIND_TEXT)

    def messages(self) -> list[str]:
        with open(self.receiver.messagesPath) as f:
            return [json.loads(line)["text"] for line in f]

    def stored(self, name: str, data: bytes) -> str:
        return os.path.relpath(placeBytes(self.store, name, data), self.inbox)

    def test_fileFirst(self) -> None:
        """
        A file named C{messages.jsonl/x} received before the first message
        does not make the message log a folder: it is stored as
        C{_messages.jsonl/x}, and messages are stored after it.
        """
        self.assertEqual(self.stored("messages.jsonl/x", b"file"), "_messages.jsonl/x")
        self.message(b"after")
        self.assertEqual(self.messages(), ["after"])
        self.assertTrue(stat.S_ISREG(os.lstat(self.receiver.messagesPath).st_mode))

    def test_messageFirst(self) -> None:
        """
        After a message, files named after the log at any depth, or the
        log itself, are stored under other names, and the log goes on.
        """
        self.message(b"before")
        for name, expected in [
            ("messages.jsonl/x", "_messages.jsonl/x"),
            ("MESSAGES.JSONL", "_MESSAGES.JSONL"),
            ("sub/messages.jsonl", "sub/_messages.jsonl"),
            ("messages.jsonl", "_messages (1).jsonl"),
        ]:
            self.assertEqual(self.stored(name, name.encode()), expected)
        self.message(b"after")
        self.assertEqual(self.messages(), ["before", "after"])

    def test_receiptLog(self) -> None:
        """
        C{files.jsonl}, the receipt log beside the message log, is
        reserved too, at any depth.
        """
        self.assertEqual(self.stored("files.jsonl", b"1"), "_files.jsonl")
        self.assertEqual(self.stored("sub/files.jsonl/x", b"2"), "sub/_files.jsonl/x")
        self.assertEqual(self.stored("a/Files.JSONL", b"3"), "a/_Files.JSONL")
        self.assertFalse(os.path.lexists(os.path.join(self.inbox, "files.jsonl")))


class PartialTests(SynchronousTestCase):
    """
    Partial files and their state file: only synced ranges are claimed,
    and they survive a new L{FileStore} on the same directory.
    """

    def test_stateRoundTrip(self) -> None:
        """
        Ranges made durable with L{PartialFile.sync} are held by a new store
        on the same inbox; ranges written after the last sync are not.
        """
        directory = self.mktemp()
        store = makeStore(self, directory)
        key = store.key(PEER, b"t" * 16)
        partial = store.open(key, "big.bin", 100)
        self.assertEqual(partial.held.ranges(), [])
        partial.write(0, b"a" * 10)
        partial.write(40, b"b" * 10)
        partial.sync()
        partial.write(10, b"c" * 10)
        partial.close()
        again = FileStore(directory).open(key, "big.bin", 100)
        self.assertEqual(again.held.ranges(), [(0, 10), (40, 10)])
        self.assertEqual(again.written.ranges(), [(0, 10), (40, 10)])
        again.close()
        with open(store.partialPath(key), "rb") as f:
            self.assertEqual(f.read(10), b"a" * 10)

    def test_partialSymlinkNotFollowed(self) -> None:
        """
        A symbolic link planted in place of a partial file (by anyone who
        can write the partial directory) is not written through: resuming
        the transfer fails, and the file it points to is untouched.
        """
        store = makeStore(self)
        key = store.key(PEER, b"l" * 16)
        partial = store.open(key, "f", 10)
        partial.write(0, b"x" * 5)
        partial.sync()
        partial.close()
        target = os.path.abspath(self.mktemp())
        with open(target, "wb") as f:
            f.write(b"precious")
        os.unlink(store.partialPath(key))
        os.symlink(target, store.partialPath(key))
        self.assertRaises(OSError, store.open, key, "f", 10)
        self.assertEqual(read(target), b"precious")

    def test_stateIgnoredWhenDifferent(self) -> None:
        """
        State for another size or name, or a state file that is not valid,
        is not trusted: the transfer starts empty, with a fresh partial.
        """
        directory = self.mktemp()
        store = makeStore(self, directory)
        key = store.key(PEER, b"t" * 16)
        partial = store.open(key, "f", 100)
        partial.write(0, b"x" * 50)
        partial.sync()
        partial.close()
        for name, size in (("f", 101), ("g", 100)):
            other = FileStore(directory).open(key, name, size)
            self.assertEqual(other.held.ranges(), [])
            other.close()
        with open(os.path.join(directory, PARTIAL_DIRECTORY, key + ".json"), "w") as f:
            f.write("{not json")
        broken = FileStore(directory).open(key, "f", 100)
        self.assertEqual(broken.held.ranges(), [])
        self.assertEqual(os.path.getsize(store.partialPath(key)), 0)
        broken.close()

    def test_keyPerIdentity(self) -> None:
        """
        Partial state is keyed by (identity, transfer id): another identity
        with the same transfer id gets another partial file.
        """
        store = makeStore(self)
        transfer = b"t" * 16
        self.assertNotEqual(store.key(PEER, transfer), store.key("SHA256:other", transfer))
        self.assertNotEqual(store.key(PEER, transfer), store.key(PEER, b"u" * 16))
        self.assertEqual(store.key(PEER, transfer), FileStore.key(PEER, transfer))

    def test_writeOnce(self) -> None:
        """
        Writing bytes already written does nothing and says so.
        """
        store = makeStore(self)
        partial = store.open(store.key(PEER, b"w" * 16), "f", 20)
        self.assertTrue(partial.write(0, b"1" * 10))
        self.assertFalse(partial.write(0, b"2" * 10))
        self.assertFalse(partial.isComplete())
        self.assertTrue(partial.write(10, b"3" * 10))
        self.assertTrue(partial.isComplete())
        self.assertEqual(read(partial.finish()), b"1" * 10 + b"3" * 10)

    def test_emptyComplete(self) -> None:
        """
        A 0-byte file is complete at once.
        """
        store = makeStore(self)
        partial = store.open(store.key(PEER, b"e" * 16), "empty", 0)
        self.assertTrue(partial.isComplete())
        self.assertEqual(read(partial.finish()), b"")

    def test_discard(self) -> None:
        """
        L{PartialFile.discard} removes the partial and its state, and does
        not count as completed.
        """
        store = makeStore(self)
        key = store.key(PEER, b"d" * 16)
        partial = store.open(key, "f", 10)
        partial.write(0, b"x" * 10)
        partial.discard()
        self.assertFalse(os.path.exists(store.partialPath(key)))
        self.assertEqual(os.listdir(os.path.join(store.directory, PARTIAL_DIRECTORY)), [])
        self.assertFalse(store.isCompleted(key))

    def test_noRoom(self) -> None:
        """
        A file that does not fit in the free space less the reserve is
        refused before anything is created; one that fits exactly is
        accepted; held ranges do not count against it.
        """
        store = makeStore(self, reserve=1000)
        stats = type("statvfs", (), {"f_bavail": 3, "f_frsize": 1000})
        self.patch(os, "statvfs", lambda path: stats)
        key = store.key(PEER, b"r" * 16)
        self.assertRaises(ResourceLimitExceeded, store.open, key, "f", 2001)
        self.assertFalse(os.path.exists(store.partialPath(key)))
        partial = store.open(key, "f", 2000)
        partial.write(0, b"x" * 1000)
        partial.sync()
        partial.close()
        stats.f_bavail = 2
        other = store.key(PEER, b"o" * 16)
        self.assertRaises(ResourceLimitExceeded, store.open, other, "f", 2000)
        resumed = store.open(key, "f", 2000)
        self.assertEqual(resumed.held.ranges(), [(0, 1000)])
        resumed.close()


class GroupCommitTests(SynchronousTestCase):
    """
    L{FileStore.commit} stores several complete files at once, and each
    keeps what one stored alone keeps: its mode and modification time
    given before it is placed, and its receipt.
    """

    def test_eachKeepsModeTimeAndReceipt(self) -> None:
        """
        Files stored by one commit each get the store's file mode, their
        sender's modification time and a receipt line naming their sender;
        a file whose digest does not match is deleted and gets none; the
        receipts of the batch cost one fsync of C{files.jsonl}.
        """
        files = makeStore(self, receipts=True, fileMode=0o640)
        receipts = os.path.join(files.directory, "files.jsonl")
        synced: list[int] = []
        realFsync = os.fsync

        def fsync(descriptor: int) -> None:
            if os.path.exists(receipts) and os.path.sameopenfile(
                descriptor, os.open(receipts, os.O_RDONLY)
            ):
                synced.append(descriptor)
            realFsync(descriptor)

        self.patch(os, "fsync", fsync)
        times = [(1_600_000_000 + n) * 10**9 + 123 for n in range(3)]
        batch = []
        for n, mtime in enumerate(times):
            partial = files.open(
                files.key(PEER, bytes([n]) * 16), f"f{n}.bin", 3, PEER, "alice", mtime
            )
            partial.write(0, b"ab" + bytes([n]))
            batch.append((partial, hashlib.sha256(b"ab" + bytes([n])).digest()))
        batch[1] = (batch[1][0], hashlib.sha256(b"not it").digest())
        results = files.commit(batch)
        self.assertIsNone(results[1])
        for n in (0, 2):
            status = os.stat(results[n])
            self.assertEqual((stat.S_IMODE(status.st_mode), status.st_mtime_ns), (0o640, times[n]))
        self.assertEqual(
            sorted(os.listdir(files.directory)), [".spc-partial", "f0.bin", "f2.bin", "files.jsonl"]
        )
        with open(receipts) as f:
            lines = [json.loads(line) for line in f]
        self.assertEqual(
            [(line["name"], line["from"], line["from_name"]) for line in lines],
            [("f0.bin", PEER, "alice"), ("f2.bin", PEER, "alice")],
        )
        self.assertEqual(len(synced), 1)


class CompletedTests(SynchronousTestCase):
    """
    Completed transfers are remembered for 24 h, across restarts.
    """

    def test_remembered(self) -> None:
        """
        A finished transfer is completed for this store and a new one on
        the same inbox, until 24 h after it finished.
        """
        directory = self.mktemp()
        clock = clockAt(1_000_000.0)
        store = FileStore(directory, now=clock.seconds)
        key = store.key(PEER, b"c" * 16)
        partial = store.open(key, "f", 1)
        partial.write(0, b"x")
        partial.finish()
        self.assertTrue(store.isCompleted(key))
        self.assertFalse(store.isCompleted(store.key(PEER, b"d" * 16)))
        clock.advance(KEEP_SECONDS - 1)
        self.assertTrue(FileStore(directory, now=clock.seconds).isCompleted(key))
        clock.advance(1)
        self.assertFalse(store.isCompleted(key))
        self.assertFalse(FileStore(directory, now=clock.seconds).isCompleted(key))

    def test_expiredForgotten(self) -> None:
        """
        Entries older than 24 h are dropped from the completed log when it
        is rewritten, here when another transfer completes.
        """
        directory = self.mktemp()
        clock = clockAt(1_000_000.0)
        store = FileStore(directory, now=clock.seconds)
        keys = [store.key(PEER, bytes([n]) * 16) for n in range(2)]
        self.patch(completed, "MAX_COMPLETED_BYTES", 250)
        for key in keys:
            store.open(key, "f", 0).finish()
            clock.advance(KEEP_SECONDS)
        self.assertEqual(list(completedRecords(directory)), [keys[1]])

    def test_corruptCompletedFile(self) -> None:
        """
        An unreadable completed file is treated as empty.
        """
        directory = self.mktemp()
        os.makedirs(os.path.join(directory, PARTIAL_DIRECTORY))
        with open(os.path.join(directory, PARTIAL_DIRECTORY, "completed.json"), "w") as f:
            f.write("[1, 2")
        self.assertFalse(FileStore(directory).isCompleted("x"))


class ExpireTests(SynchronousTestCase):
    """
    L{FileStore.expire}: partial files untouched for 24 h go.
    """

    def test_expire(self) -> None:
        """
        A partial whose state was last written more than 24 h ago is
        deleted with its state; a fresh one and the completed memory stay.
        """
        directory = self.mktemp()
        store = FileStore(directory)
        stale = store.key(PEER, b"s" * 16)
        fresh = store.key(PEER, b"f" * 16)
        for key in (stale, fresh):
            store.open(key, "f", 10).close()
        store.open(store.key(PEER, b"c" * 16), "c", 0).finish()
        old = time.time() - KEEP_SECONDS - 60
        os.utime(os.path.join(directory, PARTIAL_DIRECTORY, stale + ".json"), (old, old))
        self.assertEqual(store.expire(), 1)
        remaining = sorted(os.listdir(os.path.join(directory, PARTIAL_DIRECTORY)))
        self.assertEqual(
            remaining, sorted([completed.LOG_NAME, fresh + ".json", fresh + ".part"])
        )
        self.assertEqual(store.expire(), 0)

    def test_expireWithoutState(self) -> None:
        """
        A partial file left without a state file (a new transfer gets one
        only when it is closed or claims data, and the daemon stopped
        first) is deleted once untouched for a day; one still open is not.
        """
        clock = clockAt(time.time())
        directory = self.mktemp()
        store = makeStore(self, directory, now=clock.seconds)
        store.open(store.key(PEER, b"o" * 16), "f", 10)
        orphan = FileStore(directory, now=clock.seconds)
        self.assertEqual(orphan.expire(), 0)
        clock.advance(KEEP_SECONDS + 60)
        self.assertEqual(store.expire(), 0)
        self.assertEqual(orphan.expire(), 1)
        self.assertEqual(os.listdir(os.path.join(directory, PARTIAL_DIRECTORY)), [])

    def test_noStateForAFileStoredAtOnce(self) -> None:
        """
        A file stored in the session it was offered in never had a state
        file: nothing to write and delete for each small file.
        """
        files = makeStore(self)
        written: list[str] = []
        self.patch(store, "_overwrite", lambda path, data: written.append(path))
        self.patch(store, "replaceFile", lambda *a, **k: written.append(a[0]))
        placeBytes(files, "small.bin", b"x" * 10)
        self.assertEqual(written, [])

    def test_expireWithInjectedTime(self) -> None:
        """
        The store's own C{now} decides what is stale.
        """
        clock = clockAt(time.time())
        store = makeStore(self, now=clock.seconds)
        store.open(store.key(PEER, b"s" * 16), "f", 10).close()
        self.assertEqual(store.expire(), 0)
        clock.advance(KEEP_SECONDS + 60)
        self.assertEqual(store.expire(), 1)


def applyModel(operations) -> tuple[RangeSet, set[int]]:
    ranges, model = RangeSet(), set()
    for start, length in operations:
        ranges.add(start, start + length)
        model.update(range(start, start + length))
    return ranges, model


operationsStrategy = st.lists(
    st.tuples(st.integers(0, 200), st.integers(0, 40)), max_size=30
)


OTHER = "SHA256:other"


class QuotaTests(SynchronousTestCase):
    """
    One identity's unfinished files together may declare at most the
    store's quota (A12); a revoked identity's are deleted (A15).
    """

    def openFile(self, store: FileStore, peer: str, tid: bytes, size: int):
        partial = store.open(store.key(peer, tid), "f", size, peer)
        partial.close()
        return partial

    def test_quotaPerIdentity(self) -> None:
        """
        An offer that would take its sender's unfinished files over the
        quota is refused; another sender is not affected; offering again
        a file already counted does not count it twice.
        """
        store = makeStore(self, quota=100)
        self.openFile(store, PEER, b"a" * 16, 60)
        error = self.assertRaises(
            ResourceLimitExceeded, self.openFile, store, PEER, b"b" * 16, 41
        )
        self.assertIn("quota of 100 bytes", str(error))
        self.openFile(store, PEER, b"b" * 16, 40)
        self.openFile(store, OTHER, b"c" * 16, 100)
        self.openFile(store, PEER, b"a" * 16, 60)

    def test_finishedFilesFreeQuota(self) -> None:
        """
        A file that was stored or discarded no longer counts.
        """
        store = makeStore(self, quota=100)
        partial = store.open(store.key(PEER, b"a" * 16), "done.bin", 1, PEER)
        partial.write(0, b"x")
        self.assertTrue(os.path.exists(partial.finish()))
        discarded = store.open(store.key(PEER, b"b" * 16), "f", 100, PEER)
        discarded.discard()
        self.openFile(store, PEER, b"c" * 16, 100)

    def test_quotaAcrossRestart(self) -> None:
        """
        A new store on the same inbox counts the unfinished files left by
        the previous one.
        """
        directory = self.mktemp()
        self.openFile(makeStore(self, directory, quota=100), PEER, b"a" * 16, 70)
        again = makeStore(self, directory, quota=100)
        self.assertRaises(ResourceLimitExceeded, self.openFile, again, PEER, b"b" * 16, 31)

    def test_forgetUnless(self) -> None:
        """
        L{FileStore.forgetUnless} deletes the partial and state files of
        every identity it is told to refuse, and only those; files saved
        without their sender are left to expire.
        """
        directory = self.mktemp()
        store = makeStore(self, directory)
        revoked = self.openFile(store, PEER, b"a" * 16, 10)
        kept = self.openFile(store, OTHER, b"b" * 16, 10)
        legacy = os.path.join(directory, PARTIAL_DIRECTORY, "0" * 40 + ".json")
        with open(legacy, "w") as f:
            json.dump({"name": "old", "size": 5, "ranges": []}, f)
        store = makeStore(self, directory)
        self.assertEqual(store.forgetUnless(lambda peer: peer == OTHER), 1)
        self.assertFalse(os.path.exists(revoked.path))
        self.assertFalse(os.path.exists(revoked.path[: -len(".part")] + ".json"))
        self.assertTrue(os.path.exists(kept.path))
        self.assertTrue(os.path.exists(legacy))
        self.openFile(store, PEER, b"c" * 16, 10)


class RangeSetTests(SynchronousTestCase):
    """
    L{RangeSet} against a set of integers.
    """

    @settings(max_examples=400, deadline=None, derandomize=True)
    @given(operationsStrategy)
    def test_model(self, operations) -> None:
        """
        After any additions, the ranges are sorted, disjoint, not touching,
        non-empty, and cover exactly the integers added; L{RangeSet.total}
        is their count; and the set built from its own ranges is equal.
        """
        ranges, model = applyModel(operations)
        pairs = ranges.ranges()
        covered = set()
        previousEnd = None
        for start, length in pairs:
            self.assertGreater(length, 0)
            if previousEnd is not None:
                self.assertGreater(start, previousEnd)
            previousEnd = start + length
            covered.update(range(start, start + length))
        self.assertEqual(covered, model)
        self.assertEqual(ranges.total(), len(model))
        self.assertEqual(len(ranges), len(pairs))
        self.assertEqual(RangeSet(pairs).ranges(), pairs)

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(operationsStrategy, st.integers(0, 250), st.integers(1, 60))
    def test_covers(self, operations, start, length) -> None:
        """
        C{covers(a, b)} for a non-empty C{[a, b)} says whether every integer
        in it was added.
        """
        ranges, model = applyModel(operations)
        expected = all(i in model for i in range(start, start + length))
        self.assertEqual(ranges.covers(start, start + length), expected)

    def test_examples(self) -> None:
        """
        Adjacent ranges merge; a range spanning several swallows them.
        """
        ranges = RangeSet()
        ranges.add(10, 20)
        ranges.add(30, 40)
        ranges.add(20, 25)
        self.assertEqual(ranges.ranges(), [(10, 15), (30, 10)])
        ranges.add(0, 100)
        self.assertEqual(ranges.ranges(), [(0, 100)])
        ranges.add(5, 5)
        self.assertEqual(ranges.ranges(), [(0, 100)])
        self.assertTrue(ranges.covers(0, 100))
        self.assertFalse(ranges.covers(0, 101))
