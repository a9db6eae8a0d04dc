# -*- test-case-name: tests.unit.test_store -*-
"""
A file being received (A3, A12): written at the offsets its fragments
carry into a partial file under C{INBOX/.spc-partial/}, hashed in order
as it comes (L{spc.files.hashing}), so that it is verified the moment its
last byte is written, and claimed for a resume only once fsynced.

Once a transfer is under way, its partial file belongs to the thread that
writes it: the methods below, but the constructor, run there, one at a
time.  The store (L{spc.files.store}) it reports to is made to be shared
with that thread.
"""

from __future__ import annotations

import hmac
import os
from typing import TYPE_CHECKING

from spc.files.durable import fsyncFolder
from spc.files.hashing import InOrderHasher
from spc.files.inboxtree import StoredFile, finalAttributes
from spc.files.ranges import RangeSet
from spc.protocol.filerecords import NO_MTIME

if TYPE_CHECKING:
    from spc.files.store import FileStore

__all__ = ["PartialFile"]


class PartialFile:
    """
    A file being received.

    @ivar size: the size the sender declared.
    @ivar name: the sender's name for it.
    @ivar held: byte ranges written and fsynced (safe to claim on resume).
    @ivar written: byte ranges written, fsynced or not.
    @ivar claim: the store's record of this opening; once the store forgot
        it (the file completed, was discarded or revoked, or opened anew),
        nothing this object does touches the state file again.
    @ivar hasher: the SHA-256 of what is written, in order.
    @ivar peerName: the sender's name in C{authorized_keys}, for the
        receipt of the stored file.
    @ivar mtime: the sender's modification time of the file, in
        nanoseconds, which the stored file keeps; L{NO_MTIME} for none.
    """

    def __init__(
        self, store: FileStore, key: str, name: str, size: int, held: RangeSet,
        claim: tuple[str, int],
    ) -> None:
        self._store = store
        self.claim = claim
        self.peerName: str | None = None
        self.mtime = NO_MTIME
        self.key = key
        self.name = name
        self.size = size
        self.held = held
        self.written = RangeSet(held.ranges())
        self.path = store.partialPath(key)
        fresh = os.O_TRUNC if not len(held) else 0
        self._descriptor = os.open(
            self.path, os.O_RDWR | os.O_CREAT | fresh | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        self.hasher = InOrderHasher(size, store.earlyWindow, self._readBack, held)
        self._stateSaved = bool(len(held))

    def write(self, offset: int, data: bytes | memoryview) -> bool:
        """
        Write C{data} at C{offset}, unless those bytes are already written.

        @return: whether anything was written.
        """
        end = offset + len(data)
        if self.written.covers(offset, end):
            return False
        view = memoryview(data)
        done = 0
        while done < len(view):
            done += os.pwrite(self._descriptor, view[done:], offset + done)
        self.written.add(offset, end)
        self.hasher.written(offset, view)
        return True

    def _readBack(self, offset: int, length: int) -> bytes:
        return os.pread(self._descriptor, length, offset)

    def isComplete(self) -> bool:
        return self.written.covers(0, self.size) or self.size == 0

    def syncData(self) -> None:
        """
        Make what was written durable; safe to call from a thread while the
        reactor keeps writing (only ranges written before the call are
        covered).
        """
        os.fsync(self._descriptor)

    def saveHeld(self, durable: bool = True) -> None:
        """
        Record L{held} in the state file.
        """
        self._store.saveState(self, durable)
        self._stateSaved = True

    def sync(self) -> list[tuple[int, int]]:
        """
        Make what was written durable, then claim it in the state file: a
        resume never skips bytes a crash could have lost.

        @return: the ranges claimed, C{(start, length)}.
        """
        covered = self.written.ranges()
        self.syncData()
        self.held = RangeSet(covered)
        self.saveHeld()
        return covered

    def matches(self, expected: bytes) -> bool:
        """
        Whether the whole file, as written, has the SHA-256 C{expected}
        (compared in constant time).  Anything the hasher could not take
        from memory is read back now; call it once every byte is written.
        """
        self.hasher.advance()
        return hmac.compare_digest(self.hasher.digest(), expected)

    def digest(self) -> bytes:
        """
        SHA-256 of the file as written, once every byte is.
        """
        self.hasher.advance()
        return self.hasher.digest()

    def finish(self, digest: bytes | None = None) -> str:
        """
        Put the verified file, with its final mode and modification time,
        under its final name, forget the partial, durably, and record the
        file's receipt.

        @param digest: its SHA-256, as verified, for the receipt.
        @return: the final path.
        """
        finalAttributes(self._descriptor, self._store.fileMode, self.mtime)
        os.fsync(self._descriptor)
        folders: list[int] = []
        try:
            stored = self.place(folders)
            for folder in folders:
                fsyncFolder(folder)
        finally:
            for folder in folders:
                os.close(folder)
        self._store.syncCompleted()
        self._store.recordReceipts([(self, stored, digest)])
        return stored.path

    def place(self, syncLater: list[int]) -> StoredFile:
        """
        Link the file, whose data is durable already, under its final name,
        and forget the partial; the folders to sync for the name to be
        durable go to C{syncLater}, and the completion is durable after
        the store's next L{FileStore.syncCompleted}.
        """
        self._release()
        try:
            stored = self._store.place(self.path, self.name, syncLater)
        except BaseException:
            self.discard()
            raise
        self._store.forget(self.key, stored)
        return stored

    def discard(self) -> None:
        """
        Delete the partial file and its state (a digest mismatch, a revoked
        sender, an expired transfer).
        """
        self._release()
        self._store.forget(self.key)

    def close(self) -> None:
        """
        Close the file and keep it for a later resume.  A new transfer gets
        its state file only now, unless a claim wrote it before: it says
        who sent the file, for the quota, revocation and expiry after a
        restart, and it is not fsynced, as it claims nothing (a file stored
        at once, the common case of a small one, never has one).
        """
        if self._descriptor >= 0 and not self._stateSaved:
            self.saveHeld(durable=False)
        self._release()

    def _release(self) -> None:
        self.hasher.release()
        if self._descriptor >= 0:
            os.close(self._descriptor)
            self._descriptor = -1

    @property
    def descriptor(self) -> int:
        return self._descriptor
