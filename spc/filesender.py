# -*- test-case-name: tests.test_transfer -*-
"""
Sending a file: a L{spc.messenger.Source} that reads the next fragment
only when the messenger can send it, hashes every byte in order as it
reads (the digest goes in the final record; nothing is read twice, and
nothing is pre-hashed), and skips what the receiver said it already holds.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Callable, NamedTuple

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from spc import logevents, records
from spc.errors import TransferFailed
from spc.filestore import RangeSet
from spc.messenger import YIELD

__all__ = ["FileSender", "TransferProgress", "transferID"]

HELD_CHUNKS_PER_TURN = 256


class TransferProgress(NamedTuple):
    """
    How far one file in progress has come, for an operator's status view.

    @ivar name: the sender's name for the file.
    @ivar size: its declared size.
    @ivar done: bytes the receiver has (outgoing: acknowledged; incoming:
        written).
    @ivar held: of those, bytes fsynced; known only on the receiving end
        (C{None} on the sending one).
    @ivar outgoing: whether this end is the sender.
    """

    name: str
    size: int
    done: int
    held: int | None
    outgoing: bool


def transferID(
    secret: bytes, server: str, path: str, name: str, stat: os.stat_result
) -> bytes:
    """
    The id of sending one file to one server under one name: the same while
    the file is unchanged (path, device, inode, size, modification and
    change times), so a re-run resumes, and unlinkable by anyone without
    the sender's secret.  The change time is there because a modification
    time can be set back (C{touch -r}) after an edit that kept the size; a
    change time cannot.
    """
    identity = "\0".join(
        (server, os.path.abspath(path), name, str(stat.st_dev), str(stat.st_ino),
         str(stat.st_size), str(stat.st_mtime_ns), str(stat.st_ctime_ns))
    ).encode("utf-8")
    return hmac.new(secret, identity, hashlib.sha256).digest()[:16]


class FileSender:
    """
    One file on its way out.

    @ivar deferred: fires with the file's name once the receiver stored and
        verified it, or fails with L{TransferFailed}.
    @ivar size: the file's size, fixed when the transfer starts.
    @ivar digest: the SHA-256 of what was read, once all of it was; it
        stays L{None} when the receiver already had the whole file.
    """

    log = Logger()

    def __init__(
        self,
        path: str,
        name: str,
        secret: bytes,
        server: str,
        fragmentSize: int,
        clock: IReactorTime,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.path = path
        self.name = name
        self._secret = secret
        self._server = server
        self._fragmentSize = fragmentSize
        self._progress = progress or (lambda done: None)
        self._file = open(path, "rb", buffering=0)
        self._stat = os.fstat(self._file.fileno())
        self.size = self._stat.st_size
        self.transferID = transferID(secret, server, path, name, self._stat)
        self.deferred: Deferred = Deferred()
        self.digest: bytes | None = None
        self._clock = clock
        self._started = clock.seconds()
        self._restarted = False
        self._reset(RangeSet())
        self._state = "offer"
        self.messenger = None

    def _reset(self, held: RangeSet) -> None:
        self._held = held
        self._offset = 0
        self._hash = hashlib.sha256()
        self._acked = held.total()

    # Source.

    def nextRecord(self):
        if self._state == "offer":
            self._state = "waiting"
            offer = records.FileOffer(self.transferID, self.size, self.name).encode()
            return ("o", self.transferID), offer
        if self._state != "sending":
            return None
        skipped = 0
        while self._offset < self.size:
            offset = self._offset
            chunk = os.pread(self._file.fileno(), min(self._fragmentSize, self.size - offset), offset)
            if len(chunk) != min(self._fragmentSize, self.size - offset):
                self._fail(TransferFailed(f"{self.path} shrank while it was being sent"))
                return None
            self._hash.update(chunk)
            self._offset = offset + len(chunk)
            if not self._held.covers(offset, self._offset):
                data = records.FileData(self.transferID, offset, chunk).encode()
                return ("f", self.transferID, offset), data
            skipped += 1
            if skipped >= HELD_CHUNKS_PER_TURN:
                return YIELD
        self._state = "ending"
        if self._changed():
            self._fail(TransferFailed(f"{self.path} changed while it was being sent"))
            return None
        self.digest = self._hash.digest()
        end = records.FileEnd(self.transferID, self.digest).encode()
        return ("e", self.transferID), end

    def progress(self) -> TransferProgress:
        """
        The receiver acknowledges what it has written, not when it fsyncs,
        so this end knows nothing of what is held.
        """
        return TransferProgress(self.name, self.size, self._acked, None, True)

    def _changed(self) -> bool:
        """
        Whether the file changed since it was opened, by the same measures
        as its transfer id.
        """
        now, then = os.fstat(self._file.fileno()), self._stat
        return (now.st_size, now.st_mtime_ns, now.st_ctime_ns) != (
            then.st_size, then.st_mtime_ns, then.st_ctime_ns
        )

    # What the receiver says.

    def ackReceived(self, ack: records.FileAck) -> None:
        messenger = self.messenger
        status = ack.status
        if status == records.FILE_PROGRESS:
            for start, length in ack.ranges:
                end = min(start + length, self.size)
                first = start - start % self._fragmentSize
                for offset in range(first, end, self._fragmentSize):
                    if offset >= start and messenger.acknowledge(("f", self.transferID, offset)):
                        self._acked += min(self._fragmentSize, self.size - offset)
            self._progress(self._acked)
        elif status == records.FILE_RESUME and self._state == "waiting":
            messenger.acknowledge(("o", self.transferID))
            self._reset(RangeSet(ack.ranges))
            self._state = "sending"
            self._progress(self._acked)
            messenger.addSource(self)
        elif status == records.FILE_COMPLETE:
            self._finish()
            elapsed = self._clock.seconds() - self._started
            logevents.fileSent(self.log, self.name, self.size, self._server, elapsed, self.digest)
            self._progress(self.size)
            self.deferred.callback(self.name)
        elif status == records.FILE_RESTART and not self._restarted:
            self._forgetKeys()
            self._restarted = True
            self.transferID = os.urandom(16)
            self._reset(RangeSet())
            self._state = "offer"
            messenger.renameSender(self, ack.transferID)
            messenger.addSource(self)
        elif status in (records.FILE_RESTART, records.FILE_REFUSED):
            why = "was refused" if status == records.FILE_REFUSED else "arrived corrupt twice"
            self._fail(TransferFailed(f"{self.name} {why}"))

    def _forgetKeys(self) -> None:
        messenger = self.messenger
        for key in (("o", self.transferID), ("e", self.transferID)):
            messenger.acknowledge(key)
        for offset in range(0, self.size, self._fragmentSize):
            messenger.acknowledge(("f", self.transferID, offset))

    def _finish(self) -> None:
        self._state = "done"
        self._forgetKeys()
        self._file.close()
        self.messenger.senderDone(self)

    def _fail(self, error: Exception) -> None:
        if self._state == "done":
            return
        self._finish()
        self.deferred.errback(error)

    def sessionEnded(self, reason: Failure) -> None:
        if self._state != "done":
            self._state = "done"
            self._file.close()
            self.deferred.errback(reason)
