# -*- test-case-name: tests.test_transfer -*-
"""
Receiving files (amendments A3, A12, A13, A14; the sending side is
L{spc.filesender}): each fragment is written at its offset into a partial
file, only fsynced ranges are claimed for resumption, and the file gets its
final name only once the whole-file digest matched.
"""

from __future__ import annotations

import hmac
from typing import Callable

from twisted.internet.defer import Deferred, DeferredLock
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python.failure import Failure

from spc import logevents, records
from spc.errors import ProtocolError, ResourceLimitExceeded
from spc.filestore import FileStore, PartialFile, RangeSet, withoutControls
from spc.inflight import InFlight
from spc.filesender import TransferProgress
from spc.ratelimit import RateWindow

__all__ = ["IncomingFiles"]

SYNC_BYTES = 32 * 1024 * 1024
ACK_EVERY = 16
ACK_DELAY = 0.25
MAX_ACTIVE_FILES = 64
REMEMBERED_TRANSFERS = 1024
RECENT_FINAL = 64


class _Receiving:
    __slots__ = (
        "partial", "digest", "fragments", "unsynced", "progress", "finishing", "disk", "started"
    )

    def __init__(self, partial: PartialFile, started: float) -> None:
        self.partial = partial
        self.started = started
        # One thread job at a time per file: an fsync never meets the
        # final close, and a late claim never follows the verification.
        self.disk = DeferredLock()
        self.digest: bytes | None = None
        self.fragments = 0
        self.unsynced = 0
        self.progress = RangeSet()
        self.finishing = False


class IncomingFiles:
    """
    The files one peer is sending to this end.

    An offer repeated while its file is being received, and the end of a
    transfer that already ended, get one answer per transfer per
    C{duplicateInterval} seconds (the heartbeat interval): the sender
    repeats them only after losing a channel, when every transfer is
    answered again anyway (L{reacknowledge}), and a peer replaying them
    cannot make this end write more than it receives.

    @ivar onStored: called with C{(name, path, size)} for each stored file.
    """

    log = Logger()

    def __init__(
        self,
        store: FileStore | None,
        peer: str,
        fragmentSize: int,
        sendControl: Callable[[bytes], None],
        clock: IReactorTime,
        onStored: Callable[[str, str, int], None] = lambda name, path, size: None,
        runInThread: Callable[..., Deferred] = deferToThread,
        duplicateInterval: float = 5.0,
    ) -> None:
        self._store = store
        self._peer = peer
        self._fragmentSize = fragmentSize
        self._send = sendControl
        self._clock = clock
        self.onStored = onStored
        self._runInThread = runInThread
        self._active: dict[bytes, _Receiving] = {}
        self._ackCall: IDelayedCall | None = None
        self._closed = False
        self._ended: dict[bytes, int] = {}
        self._duplicateAnswers = RateWindow(clock, duplicateInterval)
        self.verifying = InFlight()

    def inProgress(self) -> list[TransferProgress]:
        """
        The files being received now, in the order they were offered.
        """
        return [
            TransferProgress(
                receiving.partial.name,
                receiving.partial.size,
                receiving.partial.written.total(),
                receiving.partial.held.total(),
                False,
            )
            for receiving in self._active.values()
        ]

    def _answer(self, transfer: bytes, status: int, ranges=()) -> None:
        ranges = tuple(ranges)
        for start in range(0, max(1, len(ranges)), records.MAX_ACK_RANGES):
            chunk = ranges[start : start + records.MAX_ACK_RANGES]
            self._send(records.FileAck(transfer, status, chunk).encode())

    def offerReceived(self, offer: records.FileOffer) -> None:
        transfer = offer.transferID
        receiving = self._active.get(transfer)
        if receiving is not None:
            if self._duplicateAnswers.admit(transfer, 1):
                self._answer(transfer, records.FILE_RESUME, receiving.partial.held.ranges())
            return
        if self._store is None:
            self._answer(transfer, records.FILE_REFUSED)
            return
        key = self._store.key(self._peer, transfer)
        if self._store.isCompleted(key):
            self._answer(transfer, records.FILE_COMPLETE)
            return
        if len(self._active) >= MAX_ACTIVE_FILES:
            raise ResourceLimitExceeded("too many files at once")
        try:
            partial = self._store.open(key, offer.name, offer.size, self._peer)
        except (ResourceLimitExceeded, OSError) as error:
            self.log.warn("Refusing {name}: {error}", name=withoutControls(offer.name), error=str(error))
            self._answer(transfer, records.FILE_REFUSED)
            return
        self._active[transfer] = _Receiving(partial, self._clock.seconds())
        self._answer(transfer, records.FILE_RESUME, partial.held.ranges()[: records.MAX_ACK_RANGES])
        self._maybeFinish(transfer)

    def dataReceived(self, data: records.FileData) -> None:
        receiving = self._active.get(data.transferID)
        if receiving is None:
            if self._endedStatus(data.transferID) is not None:
                return
            raise ProtocolError("file data for a transfer that was never offered")
        partial = receiving.partial
        offset, length = data.offset, len(data.payload)
        if offset % self._fragmentSize or offset >= partial.size or (
            length != min(self._fragmentSize, partial.size - offset)
        ):
            raise ProtocolError("file data outside the file's fragment grid")
        try:
            written = partial.write(offset, data.payload)
        except OSError as error:
            self.log.warn("Refusing {name}: {error}", name=withoutControls(partial.name), error=str(error))
            partial.discard()
            self._end(data.transferID, records.FILE_REFUSED)
            return
        if written:
            receiving.unsynced += length
        receiving.progress.add(offset, offset + length)
        receiving.fragments += 1
        if receiving.fragments >= ACK_EVERY:
            self._acknowledge(data.transferID, receiving)
        elif self._ackCall is None:
            self._ackCall = self._clock.callLater(ACK_DELAY, self._flushAcks)
        if receiving.unsynced >= SYNC_BYTES:
            self._sync(receiving)
        self._maybeFinish(data.transferID)

    def endReceived(self, end: records.FileEnd) -> None:
        receiving = self._active.get(end.transferID)
        if receiving is None:
            status = self._endedStatus(end.transferID)
            if status is None:
                raise ProtocolError("file end for a transfer that was never offered")
            if self._duplicateAnswers.admit(end.transferID, 1):
                self._answer(end.transferID, status)
            return
        receiving.digest = end.digest
        self._maybeFinish(end.transferID)

    def _endedStatus(self, transfer: bytes) -> int | None:
        """
        How a transfer that is no longer active ended, so late copies of
        its records (retransmitted over another channel) are answered
        instead of being taken for a protocol violation.
        """
        status = self._ended.get(transfer)
        if status is None and self._store is not None:
            if self._store.isCompleted(self._store.key(self._peer, transfer)):
                status = records.FILE_COMPLETE
        return status

    def _end(self, transfer: bytes, status: int) -> None:
        self._active.pop(transfer, None)
        self._ended[transfer] = status
        if len(self._ended) > REMEMBERED_TRANSFERS:
            del self._ended[next(iter(self._ended))]
        self._answer(transfer, status)

    def _acknowledge(self, transfer: bytes, receiving: _Receiving) -> None:
        receiving.fragments = 0
        ranges, receiving.progress = receiving.progress.ranges(), RangeSet()
        if ranges:
            self._answer(transfer, records.FILE_PROGRESS, ranges)

    def reacknowledge(self) -> None:
        """
        A channel died, perhaps with acknowledgements on it: say again the
        answer to every offer in progress (a sender still waiting for it
        starts; one already sending ignores it), what is written of each
        file, and how the latest transfers ended.
        """
        for transfer, receiving in list(self._active.items()):
            receiving.fragments = 0
            receiving.progress = RangeSet()
            self._answer(
                transfer, records.FILE_RESUME, receiving.partial.held.ranges()[: records.MAX_ACK_RANGES]
            )
            written = receiving.partial.written.ranges()
            if written:
                self._answer(transfer, records.FILE_PROGRESS, written)
        for transfer in list(self._ended)[-RECENT_FINAL:]:
            self._answer(transfer, self._ended[transfer])

    def _flushAcks(self) -> None:
        self._ackCall = None
        for transfer, receiving in list(self._active.items()):
            self._acknowledge(transfer, receiving)

    def _sync(self, receiving: _Receiving) -> None:
        """
        fsync in a thread, then claim what the fsync covered.
        """
        receiving.unsynced = 0
        partial = receiving.partial
        covered = partial.written.ranges()

        def claim(_):
            partial.held = RangeSet(covered)
            if not (self._closed or receiving.finishing):
                partial.saveHeld()

        receiving.disk.run(self._runInThread, partial.syncData).addCallback(claim).addErrback(
            self.log.failure, "Syncing a partial file failed"
        )

    def _maybeFinish(self, transfer: bytes) -> None:
        receiving = self._active.get(transfer)
        if receiving is None or receiving.finishing or receiving.digest is None:
            return
        if not receiving.partial.isComplete():
            return
        receiving.finishing = True
        self._acknowledge(transfer, receiving)
        partial = receiving.partial
        expected = receiving.digest

        def verify():
            if not hmac.compare_digest(partial.digest(), expected):
                partial.discard()
                return None
            return partial.finish()

        self.verifying.track(
            receiving.disk.run(self._runInThread, verify).addCallbacks(
                lambda path: self._finished(transfer, receiving, path),
                lambda failure: self._failed(transfer, partial, failure),
            )
        )

    def _finished(self, transfer: bytes, receiving: _Receiving, path: str | None) -> None:
        partial = receiving.partial
        if path is None:
            self.log.warn("{name} arrived corrupt; asking for it again", name=withoutControls(partial.name))
            self._end(transfer, records.FILE_RESTART)
            return
        self._end(transfer, records.FILE_COMPLETE)
        logevents.fileStored(
            self.log, partial.name, partial.size, self._peer, path,
            self._clock.seconds() - receiving.started, receiving.digest,
        )
        self.onStored(partial.name, path, partial.size)

    def _failed(self, transfer: bytes, partial: PartialFile, failure: Failure) -> None:
        if failure.check(ResourceLimitExceeded, OSError):
            self.log.warn(
                "Refusing {name}: {error}", name=withoutControls(partial.name), error=str(failure.value)
            )
        else:
            self.log.failure("Storing {name} failed", failure, name=withoutControls(partial.name))
        partial.discard()
        self._end(transfer, records.FILE_REFUSED)

    def close(self) -> None:
        """
        The session ended: keep partial files for a later resume, close
        them.
        """
        self._closed = True
        if self._ackCall is not None and self._ackCall.active():
            self._ackCall.cancel()
        self._ackCall = None
        for receiving in self._active.values():
            if not receiving.finishing:
                receiving.disk.run(self._keep, receiving.partial)
        self._active.clear()

    def _keep(self, partial: PartialFile) -> None:
        """
        Claim and close a partial file for a later resume; run under the
        file's lock, after any fsync still in its thread.
        """
        try:
            partial.sync()
        except OSError as error:
            self.log.warn("Could not keep {name}: {error}", name=withoutControls(partial.name), error=str(error))
        partial.close()
