"""
Tests for L{spc.server.inbox}: the daemon's default receiver, which appends each
message to C{INBOX/messages.jsonl} as one JSON line (DESIGN.md section 1).
"""

from __future__ import annotations

import base64
import datetime
import errno
import json
import os
import stat
import subprocess

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from spc.files.names import MESSAGES_NAME
from spc.protocol import records
from spc.server import inbox
from spc.server.inbox import InboxReceiver, messageRecord
from tests.fakes import FakeSession

SENDER = "SHA256:" + "A" * 43
"""
A client fingerprint, as C{session.peer} holds it.
"""

WHEN = datetime.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=datetime.timezone.utc)
"""
A fixed receive time, with microseconds that the record rounds down to
milliseconds.
"""


def makeReceiver(testCase: SynchronousTestCase, directory: str | None = None, **kw):
    """
    An L{InboxReceiver} on a new directory under C{testCase}'s temporary
    path, with a fixed clock unless C{now} is given.
    """
    kw.setdefault("now", lambda: WHEN)
    return InboxReceiver(directory or testCase.mktemp(), **kw)


def readLines(receiver: InboxReceiver) -> list[dict]:
    """
    The JSON objects of C{messages.jsonl}, one per line; every line ends in a
    newline.
    """
    with open(receiver.messagesPath, "rb") as f:
        data = f.read()
    assert data.endswith(b"\n"), data
    return [json.loads(line) for line in data.decode("utf-8").split("\n")[:-1]]


class MessageRecordTests(SynchronousTestCase):
    """
    L{messageRecord} is the JSON object stored for one message.
    """

    def test_text(self) -> None:
        """
        A UTF-8 message is stored as C{text} with the sender's fingerprint,
        the receive time (ISO-8601, milliseconds, UTC offset) and its length
        in bytes, not characters.
        """
        self.assertEqual(
            messageRecord(SENDER, "wörld".encode("utf-8"), WHEN),
            {
                "from": SENDER,
                "from_name": None,
                "received": "2024-02-29T23:59:58.123+00:00",
                "bytes": 6,
                "text": "wörld",
            },
        )

    def test_receivedParses(self) -> None:
        """
        C{received} reads back as the same instant, to the millisecond.
        """
        received = messageRecord(SENDER, b"x", WHEN)["received"]
        self.assertEqual(
            datetime.datetime.fromisoformat(received),
            WHEN.replace(microsecond=123000),
        )

    def test_notUTF8(self) -> None:
        """
        Bytes that are not UTF-8 are stored as C{base64} instead of C{text},
        so every message can be stored.
        """
        data = b"\xff\xfe\x00binary"
        record = messageRecord(SENDER, data, WHEN)
        self.assertNotIn("text", record)
        self.assertEqual(record["bytes"], len(data))
        self.assertEqual(base64.b64decode(record["base64"]), data)

    def test_encodedSurrogate(self) -> None:
        """
        An encoded UTF-16 surrogate is not valid UTF-8, so it is stored as
        base64 rather than as a string JSON cannot encode as UTF-8.
        """
        data = b"\xed\xa0\x80"
        record = messageRecord(SENDER, data, WHEN)
        self.assertEqual(base64.b64decode(record["base64"]), data)
        self.assertNotIn("text", record)

    def test_empty(self) -> None:
        """
        An empty message is an empty text of zero bytes.
        """
        record = messageRecord(SENDER, b"", WHEN)
        self.assertEqual((record["text"], record["bytes"]), ("", 0))


class InboxReceiverTests(SynchronousTestCase):
    """
    L{InboxReceiver} appends one fsynced JSON line per message.
    """

    def test_providesInterface(self) -> None:
        """
        The receiver is an L{IMessageReceiver}, as the service expects.
        """
        from zope.interface.verify import verifyObject

        from spc.interfaces import IMessageReceiver

        self.assertTrue(verifyObject(IMessageReceiver, makeReceiver(self)))

    def test_oneLinePerMessage(self) -> None:
        """
        Each message adds exactly one line, in arrival order, holding its
        L{messageRecord}; a newline inside a message stays inside its line.
        """
        receiver = makeReceiver(self)
        session = FakeSession(peer=SENDER)
        messages = [b"hello", "wörld".encode("utf-8"), b"two\nlines", b"\x80\x81"]
        for data in messages:
            receiver.messageReceived(session, data, records.KIND_TEXT)
        self.assertEqual(
            readLines(receiver),
            [messageRecord(SENDER, data, WHEN) for data in messages],
        )

    def test_storedAsUTF8(self) -> None:
        """
        Text is written as UTF-8 characters, not as C{\\u} escapes, so the
        file is readable as it is.
        """
        receiver = makeReceiver(self)
        receiver.messageReceived(FakeSession(peer=SENDER), "wörld".encode("utf-8"), records.KIND_TEXT)
        with open(receiver.messagesPath, "rb") as f:
            self.assertIn("wörld".encode("utf-8"), f.read())

    def test_fromIsThePeer(self) -> None:
        """
        C{from} is the fingerprint of the session the message came on.
        """
        receiver = makeReceiver(self)
        other = "SHA256:" + "B" * 43
        receiver.messageReceived(FakeSession(peer=other), b"x", records.KIND_BINARY)
        self.assertEqual(readLines(receiver)[0]["from"], other)

    def test_fsyncedBeforeReturning(self) -> None:
        """
        The file is fsynced once per message, after the whole line is
        written: a confirmed message survives a crash of the daemon.
        """
        receiver = makeReceiver(self)
        synced: list[bytes] = []
        realFsync = os.fsync

        def fsync(descriptor: int) -> None:
            if stat.S_ISDIR(os.fstat(descriptor).st_mode):
                return realFsync(descriptor)  # the inbox's, see test_inboxSynced
            with open(receiver.messagesPath, "rb") as f:
                synced.append(f.read())

        self.patch(inbox.os, "fsync", fsync)
        receiver.messageReceived(FakeSession(peer=SENDER), b"one", records.KIND_TEXT)
        self.assertEqual(len(synced), 1)
        first = synced[0]
        receiver.messageReceived(FakeSession(peer=SENDER), b"two", records.KIND_TEXT)
        self.assertEqual(len(synced), 2)
        self.assertTrue(first.endswith(b"\n"))
        self.assertTrue(synced[1].startswith(first))
        self.assertTrue(synced[1].endswith(b"\n"))
        self.assertEqual(synced[1].count(b"\n"), 2)

    def test_fsyncFailurePropagates(self) -> None:
        """
        If the line cannot be made durable the receiver raises, so the
        sender is told the message was abandoned, not delivered; the file
        descriptor is closed all the same.
        """
        receiver = makeReceiver(self)
        opened: list[int] = []
        realOpen = os.open

        def recordingOpen(*args, **kw):
            descriptor = realOpen(*args, **kw)
            opened.append(descriptor)
            return descriptor

        def failingFsync(descriptor: int) -> None:
            raise OSError(5, "Input/output error")

        self.patch(inbox.os, "open", recordingOpen)
        self.patch(inbox.os, "fsync", failingFsync)
        self.assertRaises(
            OSError, receiver.messageReceived, FakeSession(peer=SENDER), b"x", records.KIND_TEXT
        )
        self.assertEqual(len(opened), 1)
        self.assertRaises(OSError, os.fstat, opened[0])

    def test_inboxSynced(self) -> None:
        """
        When the first line of the log is written, the inbox is fsynced
        after the log and before the receiver returns: the log's entry in
        the inbox is durable, not only its content.  Later lines need no
        such fsync.
        """
        receiver = makeReceiver(self)
        synced: list[str] = []
        realFsync = os.fsync

        def fsync(descriptor: int) -> None:
            isFolder = stat.S_ISDIR(os.fstat(descriptor).st_mode)
            synced.append("inbox" if isFolder else "log")
            realFsync(descriptor)

        self.patch(os, "fsync", fsync)
        receiver.messageReceived(FakeSession(peer=SENDER), b"one", records.KIND_TEXT)
        self.assertEqual(synced, ["log", "inbox"])
        receiver.messageReceived(FakeSession(peer=SENDER), b"two", records.KIND_TEXT)
        self.assertEqual(synced, ["log", "inbox", "log"])

    def test_tornLineRemoved(self) -> None:
        """
        An append that fails part-way (the disk is full) raises, and what it
        wrote is cut off again: the next message is stored on a line of its
        own, and every line of the log parses.
        """
        receiver = makeReceiver(self)
        receiver.messageReceived(FakeSession(peer=SENDER), b"first", records.KIND_TEXT)
        with open(receiver.messagesPath, "rb") as f:
            before = f.read()
        realWrite = os.write

        def fullDisk(descriptor: int, data) -> int:
            if len(data) > 10:
                return realWrite(descriptor, bytes(data[:10]))
            raise OSError(errno.ENOSPC, "No space left on device")

        self.patch(inbox.os, "write", fullDisk)
        error = self.assertRaises(
            OSError, receiver.messageReceived, FakeSession(peer=SENDER), b"lost" * 10, records.KIND_TEXT
        )
        self.assertEqual(error.errno, errno.ENOSPC)
        with open(receiver.messagesPath, "rb") as f:
            self.assertEqual(f.read(), before)
        self.patch(inbox.os, "write", realWrite)
        receiver.messageReceived(FakeSession(peer=SENDER), b"third", records.KIND_TEXT)
        self.assertEqual([r["text"] for r in readLines(receiver)], ["first", "third"])

    def test_tornLineRemovedOnFullFileSystem(self) -> None:
        """
        On a real file system that fills up (a small tmpfs, where the test
        may mount one), a message that does not fit raises and leaves no
        torn line; once there is room again, messages are stored whole.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", directory],
            capture_output=True,
        )
        if mounted.returncode != 0:
            raise SkipTest("cannot mount a small tmpfs here: " + mounted.stderr.decode().strip())
        self.addCleanup(subprocess.run, ["umount", directory], check=True)
        receiver = makeReceiver(self, directory)
        receiver.messageReceived(FakeSession(peer=SENDER), b"first", records.KIND_TEXT)
        filler = os.path.join(directory, "filler")
        with open(filler, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError as error:
                self.assertEqual(error.errno, errno.ENOSPC)
        with open(filler, "r+b") as f:
            f.truncate(os.path.getsize(filler) - 4096)
        with open(receiver.messagesPath, "rb") as f:
            before = f.read()
        error = self.assertRaises(
            OSError, receiver.messageReceived, FakeSession(peer=SENDER), b"x" * 20000, records.KIND_TEXT
        )
        self.assertEqual(error.errno, errno.ENOSPC)
        with open(receiver.messagesPath, "rb") as f:
            self.assertEqual(f.read(), before)
        os.unlink(filler)
        receiver.messageReceived(FakeSession(peer=SENDER), b"third", records.KIND_TEXT)
        self.assertEqual([r["text"] for r in readLines(receiver)], ["first", "third"])

    def test_symlinkNotFollowed(self) -> None:
        """
        A symbolic link planted as C{messages.jsonl} is not followed: the
        message is not stored (the sender is told so), and the file it
        points to is untouched.
        """
        receiver = makeReceiver(self)
        target = os.path.abspath(self.mktemp())
        with open(target, "wb") as f:
            f.write(b"someone else's file\n")
        os.symlink(target, receiver.messagesPath)
        self.assertRaises(
            OSError, receiver.messageReceived, FakeSession(peer=SENDER), b"x", records.KIND_TEXT
        )
        with open(target, "rb") as f:
            self.assertEqual(f.read(), b"someone else's file\n")

    def test_keepsEarlierLines(self) -> None:
        """
        A new receiver on an existing inbox appends after what is there.
        """
        directory = self.mktemp()
        makeReceiver(self, directory).messageReceived(FakeSession(peer=SENDER), b"first", 1)
        receiver = makeReceiver(self, directory)
        receiver.messageReceived(FakeSession(peer=SENDER), b"second", 1)
        self.assertEqual([r["text"] for r in readLines(receiver)], ["first", "second"])

    def test_fileMode(self) -> None:
        """
        C{messages.jsonl} is created readable by its owner only.
        """
        receiver = makeReceiver(self)
        receiver.messageReceived(FakeSession(peer=SENDER), b"secret", records.KIND_TEXT)
        mode = stat.S_IMODE(os.stat(receiver.messagesPath).st_mode)
        self.assertEqual(mode, 0o600)

    def test_directoryCreated(self) -> None:
        """
        A missing inbox is created, with its parents, accessible by its
        owner only; no messages file exists before the first message.
        """
        directory = os.path.join(self.mktemp(), "nested", "inbox")
        receiver = InboxReceiver(directory)
        self.assertEqual(stat.S_IMODE(os.stat(directory).st_mode), 0o700)
        self.assertEqual(receiver.messagesPath, os.path.join(directory, MESSAGES_NAME))
        self.assertFalse(os.path.exists(receiver.messagesPath))

    def test_existingDirectory(self) -> None:
        """
        An existing inbox directory is used as it is.
        """
        directory = self.mktemp()
        os.makedirs(directory, mode=0o750)
        os.chmod(directory, 0o750)
        InboxReceiver(directory).messageReceived(FakeSession(peer=SENDER), b"x", 1)
        self.assertEqual(stat.S_IMODE(os.stat(directory).st_mode), 0o750)

    def test_defaultClockIsUTC(self) -> None:
        """
        Without an injected clock, C{received} is the current time in UTC.
        """
        receiver = InboxReceiver(self.mktemp())
        before = datetime.datetime.now(datetime.timezone.utc)
        receiver.messageReceived(FakeSession(peer=SENDER), b"x", records.KIND_TEXT)
        after = datetime.datetime.now(datetime.timezone.utc)
        received = datetime.datetime.fromisoformat(readLines(receiver)[0]["received"])
        self.assertEqual(received.utcoffset(), datetime.timedelta(0))
        self.assertTrue(
            before.replace(microsecond=before.microsecond // 1000 * 1000)
            <= received <= after,
            (before, received, after),
        )
