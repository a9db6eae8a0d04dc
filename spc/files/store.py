# -*- test-case-name: tests.unit.test_store -*-
"""
Where received files live on disk before and after they are complete.

A file being received is a partial file under C{INBOX/.spc-partial/}, named
after the sender's identity and the transfer id, never after anything the
peer chose; next to it a small state file lists the byte ranges that are
written and fsynced, which is what a resumed transfer may skip (A12).  Only
after the whole-file SHA-256 matched is the file linked under its final
name: the sender's name reduced to safe path components
(L{spc.files.names}), placed through directory descriptors opened from the
inbox (L{spc.files.inboxtree}) and made unique.  An existing file is never
replaced, and a partial or corrupt file never appears under a final name.
A name that could not be stored is refused when it is offered, before any
data is sent.  A completed transfer is remembered with the file it stored
(L{spc.files.completed}), and counts as complete only while that file is there.
The daemon's store also records each stored file in C{INBOX/files.jsonl}
(L{spc.files.journal}), before the sender is told it is stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Callable, Iterator

from spc.errors import ResourceLimitExceeded, TransferWithdrawn
from spc.files.completed import CompletedTransfers, fileIdentity
from spc.files.inboxtree import (
    FILE_MODE,
    FOLDER_MODE,
    StoredFile,
    checkFolders,
    finalAttributes,
    findFile,
    makeFolders,
    placeFile,
)
from spc.files.journal import Journal, receiptRecord
from spc.files.names import PARTIAL_DIRECTORY, RECEIPTS_NAME, RESERVED_NAMES, safeParts
from spc.files.ranges import RangeSet
from spc.files.unfinished import KEEP_SECONDS, UnfinishedFiles
from spc.keys.keyfiles import replaceFile, unlinkQuietly
from spc.logs import events
from spc.protocol.filerecords import NO_MTIME

__all__ = ["KEEP_SECONDS", "FileStore", "PartialFile"]

MAX_NAME_BYTES = 4096
DEFAULT_RESERVE = 64 * 1024 * 1024
DEFAULT_QUOTA = 256 * 1024**3
EXPIRY_INTERVAL = 3600
_HASH_BLOCK = 1024 * 1024
TAKEN_OVER = "a newer session of this sender is receiving it"

log = events.NamedLogger(events.TRANSFER)


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
    @ivar peerName: the sender's name in C{authorized_keys}, for the
        receipt of the stored file.
    @ivar mtime: the sender's modification time of the file, in
        nanoseconds, which the stored file keeps; L{NO_MTIME} for none.
    @ivar onRelease: set by whoever receives the file: called with a
        reason when the store takes the file from this opening (a newer
        one of the same sender, or the operator), it stops receiving and
        answers C{True}, or C{False} when it cannot let go (the file is
        being verified).
    """

    def __init__(
        self, store: FileStore, key: str, name: str, size: int, held: RangeSet,
        claim: tuple[str, int],
    ) -> None:
        self._store = store
        self.claim = claim
        self.peerName: str | None = None
        self.mtime = NO_MTIME
        self.onRelease: Callable[[str], bool] | None = None
        self.key = key
        self.name = name
        self.size = size
        self.held = held
        self.written = RangeSet(held.ranges())
        self.path = store.partialPath(key)
        self._descriptor = os.open(
            self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )

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
        return True

    def isComplete(self) -> bool:
        return self.written.covers(0, self.size) or self.size == 0

    def syncData(self) -> None:
        """
        Make what was written durable; safe to call from a thread while the
        reactor keeps writing (only ranges written before the call are
        covered).
        """
        os.fsync(self._descriptor)

    def saveHeld(self) -> None:
        """
        Record L{held} in the state file.
        """
        self._store.saveState(self)

    def sync(self) -> None:
        """
        Make what was written durable, then claim it in the state file: a
        resume never skips bytes a crash could have lost.
        """
        covered = self.written.ranges()
        self.syncData()
        self.held = RangeSet(covered)
        self.saveHeld()

    def digest(self) -> bytes:
        """
        SHA-256 of the file as written; reads it all, so call it off the
        reactor thread.
        """
        digest = hashlib.sha256()
        offset = 0
        while offset < self.size:
            block = os.pread(self._descriptor, min(_HASH_BLOCK, self.size - offset), offset)
            if not block:
                break
            digest.update(block)
            offset += len(block)
        return digest.digest()

    def finish(self, digest: bytes | None = None) -> str:
        """
        Put the verified file under its final name, forget the partial and
        record the file's receipt.

        @param digest: its SHA-256, as verified, for the receipt.
        @return: the final path.
        """
        os.fsync(self._descriptor)
        try:
            finalAttributes(self._descriptor, self._store.fileMode, self.mtime)
        finally:
            os.close(self._descriptor)
            self._descriptor = -1
        try:
            stored = self._store.place(self.path, self.name)
        except BaseException:
            self.discard()
            raise
        self._store.forget(self.key, stored)
        self._store.recordReceipt(self, stored, digest)
        return stored.path

    def discard(self) -> None:
        """
        Delete the partial file and its state (a digest mismatch, a revoked
        sender, an expired transfer).
        """
        self.close()
        self._store.forget(self.key)

    def release(self, reason: str) -> bool:
        """
        Ask whoever receives this file to let it go, for C{reason}.

        @return: whether it did (or nobody receives it).
        """
        return self.onRelease is None or self.onRelease(reason)

    def close(self) -> None:
        self._store.closed(self)
        if self._descriptor >= 0:
            os.close(self._descriptor)
            self._descriptor = -1


class FileStore(UnfinishedFiles):
    """
    Partial and finished files of an inbox directory; its unfinished files
    as a whole are listed, removed, expired and revoked by
    L{UnfinishedFiles}.

    @ivar directory: the inbox.
    @ivar quota: the most bytes one identity's unfinished files may
        declare together (A12), so one sender cannot fill the disk with
        transfers it never finishes.
    @ivar reserved: names no component of a stored file may take, at any
        depth and in any case (L{RESERVED_NAMES}, the daemon's own files,
        and whatever the caller adds): a folder named C{messages.jsonl}
        would stop every later message.
    @ivar _owners: C{key -> (identity, declared size)} of every partial
        file, kept in memory so an offer costs no directory scan; the
        tuple is also the L{PartialFile.claim} of its latest opening.
    @ivar _completed: the completed transfers and what they stored.
    @ivar _receipts: the C{files.jsonl} a receipt of each stored file goes
        to, or L{None} for none.
    @ivar _receiving: the open L{PartialFile} of each key being received:
        at most one opening receives a file, and a newer one takes it from
        an older one (L{open}).
    @ivar fileMode: the permissions of a stored file (and of the receipts);
        a partial file is 0600 until it is verified.
    @ivar folderMode: the permissions of a folder made for stored files.
    """

    def __init__(
        self,
        directory: str,
        reserve: int = DEFAULT_RESERVE,
        now: Callable[[], float] = time.time,
        reserved: frozenset[str] = frozenset(),
        quota: int = DEFAULT_QUOTA,
        receipts: bool = False,
        fileMode: int = FILE_MODE,
        folderMode: int = FOLDER_MODE,
    ) -> None:
        """
        @param receipts: whether to record each stored file in
            C{INBOX/files.jsonl} (the daemon does).
        """
        self.directory = directory
        self.reserved = RESERVED_NAMES | frozenset(reserved)
        self.reserve = reserve
        self.quota = quota
        self.fileMode = fileMode
        self.folderMode = folderMode
        self._now = now
        self._receipts = (
            Journal(directory, RECEIPTS_NAME, log, fileMode) if receipts else None
        )
        self._partials = os.path.join(directory, PARTIAL_DIRECTORY)
        os.makedirs(self._partials, mode=0o700, exist_ok=True)
        self._completed = CompletedTransfers(
            os.path.join(self._partials, "completed.json"), now, KEEP_SECONDS
        )
        self._owners: dict[str, tuple[str, int]] = dict(self._loadOwners())
        self._receiving: dict[str, PartialFile] = {}
        self._lastExpiry = self._now()
        self.expire()

    @staticmethod
    def key(peer: str, transferID: bytes) -> str:
        """
        Partial state belongs to one identity and transfer id: another
        sender can neither resume nor learn it.
        """
        return hashlib.sha256(peer.encode("utf-8") + b"\0" + transferID).hexdigest()[:40]

    def partialPath(self, key: str) -> str:
        return os.path.join(self._partials, key + ".part")

    def completedName(self, key: str) -> str | None:
        """
        Where the transfer C{key} stored its file, if it completed within
        C{KEEP_SECONDS} and that file is still there, unchanged: a sender
        told "complete" acts on the file being in the inbox.  Otherwise
        the record is dropped, and the file is received again.

        "Unchanged" means a regular file, reached without following a
        symbolic link, with the device, inode, size, modification and
        change times it had right after it was stored.  The content is not
        hashed again (too slow for large files), so this misses a change
        that keeps all of those: a rewrite of the same size within the
        file system's timestamp granularity right after the file was
        stored, or any rewrite on a file system that keeps no change time.
        A user can set a modification time back (C{touch -r}), not a
        change time.

        @return: the path relative to the inbox, C{/}-separated, or
            L{None}.
        """
        record = self._completed.get(key)
        if record is None:
            return None
        status = findFile(self.directory, record.name)
        if status is not None and fileIdentity(status) == record.identity:
            return record.name
        self._completed.drop(key)
        return None

    def isCompleted(self, key: str) -> bool:
        return self.completedName(key) is not None

    def checkName(self, name: str) -> list[str]:
        """
        The components C{name} would be stored under, checked against the
        inbox as it is now, so that a name which could not be stored is
        refused before any data is sent.

        @raise NameUnavailable: if a folder of the path exists and is not
            a folder (a file, or a symbolic link).
        """
        parts = safeParts(name, self.reserved)
        checkFolders(self.directory, parts[:-1])
        return parts

    def open(
        self, key: str, name: str, size: int, peer: str = "", peerName: str | None = None,
        mtime: int = NO_MTIME,
    ) -> PartialFile:
        """
        The partial file for a transfer from C{peer} (named C{peerName} in
        C{authorized_keys}): resumed if its state matches, new otherwise.
        Stored, it keeps the modification time C{mtime} (nanoseconds).

        An older opening of the same transfer (a session that lingers after
        its sender was interrupted, or runs beside a newer one) is asked to
        let the file go first, so that one opening receives it.

        @raise NameUnavailable: when the name could not be stored.
        @raise ResourceLimitExceeded: when the file would not fit on disk
            beyond the reserve, or would take C{peer} over its quota.
        @raise TransferWithdrawn: when an older opening is verifying it.
        """
        self.checkName(name)
        if self._now() - self._lastExpiry > EXPIRY_INTERVAL:
            self._lastExpiry = self._now()
            self.expire()
        held = RangeSet()
        try:
            with open(self._statePath(key)) as f:
                state = json.load(f)
            if state.get("size") == size and state.get("name") == name:
                held = RangeSet((int(s), int(n)) for s, n in state["ranges"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        owing = sum(n for k, (owner, n) in list(self._owners.items()) if owner == peer and k != key)
        if owing + size > self.quota:
            raise ResourceLimitExceeded(
                f"{size} bytes would take the sender's unfinished files over "
                f"its quota of {self.quota} bytes"
            )
        missing = size - held.total()
        stats = os.statvfs(self._partials)
        if missing > stats.f_bavail * stats.f_frsize - self.reserve:
            raise ResourceLimitExceeded(f"no room for a file of {size} bytes")
        older = self._receiving.get(key)
        if older is not None and not older.release(TAKEN_OVER):
            raise TransferWithdrawn(
                "an earlier transfer of this file is being verified; send it again "
                "to learn how that ended"
            )
        if not len(held):
            unlinkQuietly(self.partialPath(key))
        claim = (peer, size)
        partial = PartialFile(self, key, name, size, held, claim)
        partial.peerName, partial.mtime = peerName, mtime
        self._owners[key] = claim
        self._receiving[key] = partial
        self.saveState(partial)
        return partial

    def saveState(self, partial: PartialFile) -> None:
        """
        Record what C{partial} holds, unless the store forgot that opening
        meanwhile: a transfer completed, discarded or revoked (A15) while
        an fsync of it was still running must not get its state file back,
        nor may an older opening's late claim replace a newer one's.
        """
        if self._owners.get(partial.key) is not partial.claim:
            return
        replaceFile(
            self._statePath(partial.key),
            json.dumps(
                {
                    "peer": self._owners[partial.key][0],
                    "name": partial.name,
                    "size": partial.size,
                    "ranges": partial.held.ranges(),
                    "updated": self._now(),
                }
            ).encode("utf-8"),
            0o600,
        )

    def recordReceipt(
        self, partial: PartialFile, stored: StoredFile, digest: bytes | None
    ) -> None:
        """
        Append the receipt of a file just stored to C{files.jsonl}, if this
        store keeps receipts.  The file is stored whether or not its
        receipt could be written, so a failure is logged, not raised.
        """
        if self._receipts is None:
            return
        record = receiptRecord(
            partial.claim[0], partial.peerName, partial.name, stored.name, partial.size,
            digest, self._now(),
        )
        try:
            self._receipts.append(record)
        except OSError as error:
            log.error(
                "Stored {stored} but could not record it in {path}: {error}",
                stored=stored.name, path=self._receipts.path, error=str(error),
            )

    def place(self, source: str, name: str) -> StoredFile:
        """
        Link C{source} under the safe, unique final path for C{name}.
        """
        return placeFile(
            self.directory, source, safeParts(name, self.reserved), self.folderMode
        )

    def makeDirectory(self, name: str) -> str:
        """
        Make the folder C{name}, a path from the wire reduced to safe
        components as a file's name is, with the folders above it, through
        the same directory descriptors as L{place}; a folder that exists
        already is kept.

        @return: its path.
        @raise NameUnavailable: when a component names something that is not
            a folder.
        """
        return makeFolders(self.directory, safeParts(name, self.reserved), self.folderMode)

    def closed(self, partial: PartialFile) -> None:
        """
        C{partial} is closed: it receives its file no more.
        """
        if self._receiving.get(partial.key) is partial:
            del self._receiving[partial.key]

    def forget(self, key: str, stored: StoredFile | None = None) -> None:
        """
        Delete the partial file and state of C{key}; remember it as
        completed if it C{stored} a file.
        """
        self._owners.pop(key, None)
        self._receiving.pop(key, None)
        unlinkQuietly(self.partialPath(key))
        unlinkQuietly(self._statePath(key))
        if stored is not None:
            self._completed.add(key, stored.name, stored.status)

    def _loadOwners(self) -> Iterator[tuple[str, tuple[str, int]]]:
        for entry in os.scandir(self._partials):
            if entry.name.endswith(".json") and entry.name != "completed.json":
                try:
                    with open(entry.path) as f:
                        state = json.load(f)
                    owner = (str(state.get("peer", "")), int(state["size"]))
                except (OSError, ValueError, KeyError, TypeError, AttributeError):
                    continue
                yield entry.name[: -len(".json")], owner
