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

A partial file (L{spc.files.partial}) hashes what is written to it as it
comes, so a file is verified the moment its last byte is written.  The
store is shared with the thread that writes partial files: its state files
and its memory of completed transfers are changed under locks.  Many files
complete together (L{FileStore.commit}): their data, then their names,
made durable by one sync each (L{spc.files.durable}), then their receipts.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from typing import Callable, Iterator, Sequence

from spc.errors import ResourceLimitExceeded, TransferWithdrawn
from spc.files.completed import CompletedTransfers, fileIdentity
from spc.files.durable import syncTogether
from spc.files.hashing import EarlyWindow
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
from spc.files.partial import PartialFile
from spc.files.ranges import RangeSet
from spc.files.unfinished import KEEP_SECONDS, Receiver, UnfinishedFiles
from spc.keys.keyfiles import replaceFile, unlinkQuietly
from spc.logs import events
from spc.protocol.filerecords import NO_MTIME

__all__ = ["KEEP_SECONDS", "TAKEN_OVER", "FileStore"]

MAX_NAME_BYTES = 4096
DEFAULT_RESERVE = 64 * 1024 * 1024
DEFAULT_QUOTA = 256 * 1024**3
EXPIRY_INTERVAL = 3600
EARLY_WINDOW = 16 * 1024 * 1024
"""
Bytes of data that arrived ahead of its file's hash cursor the store's
partial files may keep in memory together (L{spc.files.hashing}).
"""
TAKEN_OVER = "a newer session of this sender is receiving it"

log = events.NamedLogger(events.TRANSFER)


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
    @ivar _stateLock: held while a state file is written or a partial
        forgotten: the writer's thread claims ranges while the reactor
        thread may forget the transfer (revocation), and a state file must
        not come back after it was forgotten.
    @ivar earlyWindow: what the partial files' hashers may keep in memory.
    @ivar _receipts: the C{files.jsonl} a receipt of each stored file goes
        to, or L{None} for none.
    @ivar _receiving: what receives each key now, and since when
        (L{takeOver}): at most one session receives a file, and a newer
        one takes it from an older one.  Only the reactor thread uses it.
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
        self._completed = CompletedTransfers(self._partials, now, KEEP_SECONDS)
        self._stateLock = threading.Lock()
        self.earlyWindow = EarlyWindow(EARLY_WINDOW)
        self._owners: dict[str, tuple[str, int]] = dict(self._loadOwners())
        self._receiving: dict[str, tuple[Receiver, float]] = {}
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

    def admit(self, key: str, name: str, size: int, peer: str = "") -> RangeSet:
        """
        Check that the transfer C{key} of a file C{name} of C{size} bytes
        from C{peer} may be received, as L{open} does before it opens
        anything.

        @return: the byte ranges its state file says are held.
        @raise NameUnavailable: when the name could not be stored.
        @raise ResourceLimitExceeded: when the file would not fit on disk
            beyond the reserve, or would take C{peer} over its quota.
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
        with self._stateLock:
            owing = sum(n for k, (owner, n) in self._owners.items() if owner == peer and k != key)
        if owing + size > self.quota:
            raise ResourceLimitExceeded(
                f"{size} bytes would take the sender's unfinished files over "
                f"its quota of {self.quota} bytes"
            )
        missing = size - held.total()
        stats = os.statvfs(self._partials)
        if missing > stats.f_bavail * stats.f_frsize - self.reserve:
            raise ResourceLimitExceeded(f"no room for a file of {size} bytes")
        return held

    def open(
        self, key: str, name: str, size: int, peer: str = "", peerName: str | None = None,
        mtime: int = NO_MTIME,
    ) -> PartialFile:
        """
        The partial file for a transfer from C{peer} (named C{peerName} in
        C{authorized_keys}): resumed if its state matches, new otherwise.
        Stored, it keeps the modification time C{mtime} (nanoseconds).

        @raise NameUnavailable: when the name could not be stored.
        @raise ResourceLimitExceeded: when the file would not fit on disk
            beyond the reserve, or would take C{peer} over its quota.
        """
        held = self.admit(key, name, size, peer)
        claim = (peer, size)
        partial = PartialFile(self, key, name, size, held, claim)
        partial.peerName, partial.mtime = peerName, mtime
        with self._stateLock:
            self._owners[key] = claim
        if len(held):
            self.saveState(partial)
        return partial

    def receiver(self, key: str) -> Receiver | None:
        """
        What receives the file C{key} now, if anything does.
        """
        found = self._receiving.get(key)
        return None if found is None else found[0]

    def takeOver(self, key: str, receiver: Receiver) -> None:
        """
        Make C{receiver} the one that receives the file C{key}.  An older
        receiver of it (a session that lingers after its sender was
        interrupted, or runs beside a newer one) is asked to let it go
        first, so that one session receives a file.  Called on the
        reactor thread, before the file is opened for C{receiver}.

        @raise TransferWithdrawn: when the older one is verifying it.
        """
        older = self.receiver(key)
        if older is not None and older is not receiver and not older.release(TAKEN_OVER):
            raise TransferWithdrawn(
                "an earlier transfer of this file is being verified; send it again "
                "to learn how that ended"
            )
        self._receiving[key] = (receiver, self._now())

    def letGo(self, key: str, receiver: Receiver) -> None:
        """
        C{receiver} receives the file C{key} no more.
        """
        if self.receiver(key) is receiver:
            del self._receiving[key]

    def saveState(self, partial: PartialFile, durable: bool = True) -> None:
        """
        Record what C{partial} holds, unless the store forgot that opening
        meanwhile: a transfer completed, discarded or revoked (A15) while
        an fsync of it was still running must not get its state file back,
        nor may an older opening's late claim replace a newer one's.

        @param durable: whether the state must survive a crash.  A new
            transfer's first state claims nothing: lost in a crash, it
            costs no data, only the quota's count of an unfinished file
            until it expires, so it is not fsynced (two fsyncs a file
            would make small files slow).
        """
        state = json.dumps(
            {
                "peer": partial.claim[0],
                "name": partial.name,
                "size": partial.size,
                "ranges": partial.held.ranges(),
                "updated": self._now(),
            }
        ).encode("utf-8")
        with self._stateLock:
            if self._owners.get(partial.key) is not partial.claim:
                return
            if durable:
                replaceFile(self._statePath(partial.key), state, 0o600)
            else:
                _overwrite(self._statePath(partial.key), state)

    def place(self, source: str, name: str, syncLater: list[int] | None = None) -> StoredFile:
        """
        Link C{source} under the safe, unique final path for C{name}
        (L{placeFile}, which says what C{syncLater} is for).
        """
        return placeFile(
            self.directory, source, safeParts(name, self.reserved), self.folderMode, syncLater
        )

    def commit(self, files: Sequence[tuple[PartialFile, bytes]]) -> list[object]:
        """
        Verify and store several complete files at once (group commit):
        compare each one's digest with the one expected, give those that
        match their final mode and modification time (before they are
        placed: L{finalAttributes}), make their data durable together,
        link them under their final names, and make the names and their
        completion records durable together; then record their receipts.
        Only then is any of them stored.

        @param files: C{(partial, expected SHA-256)} pairs.
        @return: for each file, in order, its final path; L{None} if its
            digest did not match (it is deleted); or the exception that
            kept it from being stored (it is deleted).
        """
        results: list[object] = [None] * len(files)
        matching = []
        for index, (partial, expected) in enumerate(files):
            try:
                if partial.matches(expected):
                    finalAttributes(partial.descriptor, self.fileMode, partial.mtime)
                    matching.append(index)
                    continue
            except Exception as error:
                results[index] = error
            partial.discard()
        try:
            syncTogether([files[index][0].descriptor for index in matching])
        except OSError as error:
            for index in matching:
                files[index][0].discard()
                results[index] = error
            return results
        folders: list[int] = []
        stored: list[tuple[PartialFile, StoredFile, bytes | None]] = []
        try:
            for index in matching:
                partial, expected = files[index]
                try:
                    placed = partial.place(folders)
                except Exception as error:
                    results[index] = error
                else:
                    results[index] = placed.path
                    stored.append((partial, placed, expected))
            completions = self._completed.descriptor()
            syncTogether([completions] if completions >= 0 else [], folders)
        except OSError as error:
            results = [error if isinstance(result, str) else result for result in results]
            stored = []
        finally:
            for folder in folders:
                os.close(folder)
        self.recordReceipts(stored)
        return results

    def syncCompleted(self) -> None:
        """
        Make the completions recorded so far durable.
        """
        self._completed.sync()

    def recordReceipts(
        self, stored: Sequence[tuple[PartialFile, StoredFile, bytes | None]]
    ) -> None:
        """
        Append the receipts of files just stored, durably, to
        C{files.jsonl}, if this store keeps receipts: one line each, with
        one fsync for them all.  The files are stored whether or not their
        receipts could be written, so a failure is logged, not raised.

        @param stored: C{(partial, where it was stored, its SHA-256 as
            verified)} of each file.
        """
        if self._receipts is None or not stored:
            return
        now = self._now()
        records = [
            receiptRecord(
                partial.claim[0], partial.peerName, partial.name, placed.name, partial.size,
                digest, now,
            )
            for partial, placed, digest in stored
        ]
        try:
            self._receipts.append(*records)
        except OSError as error:
            log.error(
                "Stored {stored} but could not record it in {path}: {error}",
                stored=", ".join(placed.name for _, placed, _ in stored),
                path=self._receipts.path, error=str(error),
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

    def forget(self, key: str, stored: StoredFile | None = None) -> None:
        """
        Delete the partial file and state of C{key}; remember it as
        completed if it C{stored} a file (whose placing took the partial's
        name away already).
        """
        with self._stateLock:
            self._owners.pop(key, None)
            if stored is None:
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


_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _overwrite(path: str, data: bytes) -> None:
    """
    Write C{data} over the file at C{path}, in place and without fsync: for
    a state that claims nothing, where a torn or lost write (read as no
    state at all) costs nothing, and a rename would cost a directory
    change more.
    """
    descriptor = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_NOFOLLOW | _O_CLOEXEC, 0o600
    )
    try:
        os.write(descriptor, data)
    finally:
        os.close(descriptor)
