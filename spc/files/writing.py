# -*- test-case-name: tests.memory.test_receiving -*-
"""
The disk side of receiving files: what the writer's lane does for one
session, in order, and what the reactor thread keeps of it (A22).

Every operation on a session's partial files (writing data and hashing it,
fsyncing and claiming, verifying and storing, keeping them at the end of
the session, deleting them) is a job of the writer's lane, a thread of
its own (L{spc.lanes}), so the reactor thread never waits for the disk.
The lane runs its jobs in the order they were given, so no write follows
the close of its file, no claim follows the file's completion, and no
state file is written after the file was stored.

Data is acknowledged only once it is written: the bytes given to the lane
and not yet written are bounded by the sender's send window.  Should a
peer send beyond its window (or the disk stall), L{DiskQueue} asks its
owner to stop reading from the peer once C{BACKLOG_LIMIT} bytes wait, and
to read again when half of them are written: back-pressure, not
buffering.

Files complete in batches (group commit): a file whose every byte is
written and whose digest arrived waits while a commit is in progress, or
while the session's other jobs (writes, offers) are in the lane, since
they often bring the next files to their end; then one commit verifies and
stores every file waiting, with one sync of their data and one of their
names (L{spc.files.store.FileStore.commit}).  A commit waits for at most
C{COMMIT_PATIENCE} job reports, so a stream of writes cannot hold it off.
"""

from __future__ import annotations

from typing import Callable

from twisted.python.failure import Failure

from spc.files.partial import PartialFile
from spc.files.ranges import RangeSet
from spc.files.store import FileStore

__all__ = ["BACKLOG_LIMIT", "COMMIT_PATIENCE", "DiskQueue", "Receiving"]

BACKLOG_LIMIT = 32 * 1024 * 1024
"""
Bytes of one session's file data waiting to be written before it stops
reading from its peer: twice the sender's window (docs/protocol.rst,
section 7.1), which an honest sender never passes.
"""
COMMIT_PATIENCE = 64
"""
Reports of other jobs a file ready to be committed may wait for.
"""


class Receiving:
    """
    One file being received, as the reactor thread knows it.

    @ivar partial: the partial file; from now on only the lane's jobs use it.
    @ivar started: when the offer arrived.
    @ivar digest: the SHA-256 the sender's C{FEN:} announced, once it came.
    @ivar queued: byte ranges given to the lane to write, or held already.
    @ivar written: byte ranges the lane reported written, or held already.
    @ivar held: byte ranges fsynced and claimed for a resume.
    @ivar progress: byte ranges to acknowledge in the next C{FAK:}.
    @ivar unsynced: bytes written since the last fsync.
    @ivar finishing: its completion is under way: nothing more is written.
    """

    __slots__ = (
        "partial", "started", "digest", "queued", "written", "held", "progress", "unsynced",
        "finishing",
    )

    def __init__(self, partial: PartialFile, started: float) -> None:
        self.partial = partial
        self.started = started
        self.digest: bytes | None = None
        self.held = RangeSet(partial.held.ranges())
        self.queued = RangeSet(partial.held.ranges())
        self.written = RangeSet(partial.held.ranges())
        self.progress = RangeSet()
        self.unsynced = 0
        self.finishing = False

    def isComplete(self) -> bool:
        """
        Whether every byte of the file is written.
        """
        size = self.partial.size
        return size == 0 or self.written.covers(0, size)


class DiskQueue:
    """
    One session's jobs for the writer's lane.

    @ivar backlog: bytes given to the lane and not yet written.
    @ivar paused: whether the owner was asked to stop reading.
    """

    def __init__(
        self,
        store: FileStore | None,
        lane,
        onBacklog: Callable[[bool], None] = lambda full: None,
    ) -> None:
        """
        @param lane: the writer's L{spc.lanes.Lane} (or an inline one).
        @param onBacklog: called with C{True} when the owner should stop
            reading from the peer, and with C{False} when it may again.
        """
        self._store = store
        self._lane = lane
        self._onBacklog = onBacklog
        self.backlog = 0
        self.paused = False
        self._waiting: list[tuple[Receiving, Callable[[object], None]]] = []
        self._committing = False
        self._jobs = 0
        self._waited = 0

    def offer(
        self, peer: str, peerName: str | None, offer, done: Callable[[object], None]
    ) -> None:
        """
        Look a file offer from C{peer} (named C{peerName}) up: C{done} gets
        the name a completed transfer stored it under, the partial file
        opened for it (L{spc.files.store.FileStore.open}), or the
        L{Failure} of a refusal.
        """
        store = self._store

        def look():
            key = store.key(peer, offer.transferID)
            stored = store.completedName(key)
            if stored is not None:
                return stored
            return store.open(key, offer.name, offer.size, peer, peerName, offer.mtime)

        self._submit(look, done)

    def admit(self, peer: str, offer, done: Callable[[object], None]) -> None:
        """
        Check that a file offer from C{peer} may be received
        (L{spc.files.store.FileStore.admit}): C{done} gets L{None}, or the
        L{Failure} of a refusal.
        """
        store = self._store

        def check() -> None:
            store.admit(store.key(peer, offer.transferID), offer.name, offer.size, peer)

        self._submit(check, done)

    def close(self, partial: PartialFile) -> None:
        """
        Close a partial file opened after its session ended.
        """
        self._lane.submit(partial.close, lambda result: None)

    def write(
        self, receiving: Receiving, offset: int, payload, done: Callable[[object], None]
    ) -> None:
        """
        Write and hash C{payload} at C{offset}; C{done} gets C{None}, or the
        L{Failure} of the write.
        """
        size = len(payload)
        receiving.queued.add(offset, offset + size)
        self.backlog += size
        if self.backlog > BACKLOG_LIMIT and not self.paused:
            self.paused = True
            self._onBacklog(True)
        partial = receiving.partial

        def written(result: object) -> None:
            self.backlog -= size
            if self.paused and self.backlog <= BACKLOG_LIMIT // 2:
                self.paused = False
                self._onBacklog(False)
            done(result if isinstance(result, Failure) else None)

        self._submit(lambda: partial.write(offset, payload), written)

    def sync(self, receiving: Receiving, done: Callable[[object], None]) -> None:
        """
        fsync what was written so far and claim it for a resume (unless the
        store forgot the file meanwhile); C{done} gets the ranges claimed
        or a L{Failure}.
        """
        receiving.unsynced = 0
        self._submit(receiving.partial.sync, done)

    def _submit(self, job, done: Callable[[object], None]) -> None:
        """
        Submit one of the session's jobs that may bring files to their end,
        and see, once it is reported, whether files waiting are committed.
        """
        self._jobs += 1

        def reported(result: object) -> None:
            self._jobs -= 1
            done(result)
            self._waited += 1
            self._maybeCommit()

        self._lane.submit(job, reported)

    def commit(self, receiving: Receiving, done: Callable[[object], None]) -> None:
        """
        Verify and store the file with the next batch; C{done} gets its
        final path, L{None} if its digest did not match (it is deleted),
        or the exception that kept it from being stored.
        """
        if not self._waiting:
            self._waited = 0
        self._waiting.append((receiving, done))
        self._maybeCommit()

    def _maybeCommit(self) -> None:
        if self._waiting and not self._committing and (
            not self._jobs or self._waited >= COMMIT_PATIENCE
        ):
            self._commitWaiting()

    def _commitWaiting(self) -> None:
        batch, self._waiting = self._waiting, []
        if not batch:
            return
        self._committing = True
        store = self._store
        files = [(receiving.partial, receiving.digest) for receiving, _ in batch]

        def committed(results: object) -> None:
            self._committing = False
            if isinstance(results, Failure):
                results = [results.value] * len(batch)
            for (_, done), result in zip(batch, results):
                done(result)
            self._waited = 0
            self._maybeCommit()

        self._lane.submit(lambda: store.commit(files), committed)

    def keep(self, receiving: Receiving, failed: Callable[[Failure], None]) -> None:
        """
        The session ended: after what is queued for it, fsync the file,
        claim everything written, and close it, for a later resume.
        """
        partial = receiving.partial

        def keep() -> None:
            try:
                partial.sync()
            finally:
                partial.close()

        self._lane.submit(keep, lambda result: failed(result) if isinstance(result, Failure) else None)

    def discard(self, receiving: Receiving) -> None:
        """
        Delete the file and its state, after what is queued for it.
        """
        self._lane.submit(receiving.partial.discard, lambda result: None)

    def makeFolder(self, name: str, done: Callable[[object], None]) -> None:
        """
        Make the folder C{name} in the inbox; C{done} gets its path or a
        L{Failure}.
        """
        store = self._store
        self._lane.submit(lambda: store.makeDirectory(name), done)

    def flush(self) -> None:
        """
        The session ended: files waiting for a commit are committed still,
        now, whatever is in progress (their every byte is there, and a
        later session will hear they are stored).
        """
        self._commitWaiting()
