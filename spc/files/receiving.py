# -*- test-case-name: tests.memory.test_receiving -*-
"""
Receiving files (amendments A3, A12, A13, A14; the sending side is
L{spc.files.sending}): each fragment is written at its offset into a partial
file, only fsynced ranges are claimed for resumption, and the file gets its
final name only once the whole-file digest matched.
"""

from __future__ import annotations

import hmac
import os
from typing import Callable

from twisted.internet.defer import Deferred, DeferredLock
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.threads import deferToThread
from twisted.logger import LogLevel
from twisted.python.failure import Failure

from spc.errors import NameUnavailable, ProtocolError, ResourceLimitExceeded, TransferWithdrawn
from spc.files.progress import TransferProgress
from spc.files.ranges import RangeSet
from spc.files.store import FileStore, PartialFile
from spc.inflight import InFlight
from spc.logs import events
from spc.protocol import filerecords, frames
from spc.ratelimit import RateWindow

__all__ = ["IncomingFiles"]

SYNC_BYTES = 32 * 1024 * 1024
ACK_EVERY = 16
ACK_DELAY = 0.25
MAX_ACTIVE_FILES = 64
REMEMBERED_TRANSFERS = 1024
RECENT_FINAL = 64

NO_FILES = "it takes no files"
STORAGE_FAILED = "it could not write the file; its log says why"


def _bounded(text: str, limit: int) -> str:
    """
    C{text} cut to at most C{limit} bytes of UTF-8, never inside a
    character.
    """
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def refusal(error: BaseException) -> tuple[int, str]:
    """
    What a refused offer tells the sender: a reason code and a sentence
    chosen here, never an operating system's message, which may name
    paths of this machine.  The store's own errors are written for the
    sender (a limit and its size, or the component of the name that cannot
    be stored), so their text goes along, bounded.

    @return: C{(reason, sentence)} for a refused C{FAK:}.
    """
    if isinstance(error, NameUnavailable):
        return filerecords.REFUSED_NAME, _bounded(str(error), filerecords.MAX_REFUSAL_TEXT)
    if isinstance(error, TransferWithdrawn):
        return filerecords.REFUSED_WITHDRAWN, _bounded(error.args[0], filerecords.MAX_REFUSAL_TEXT)
    if isinstance(error, ResourceLimitExceeded):
        text = error.args[0] if error.args and isinstance(error.args[0], str) else str(error)
        return filerecords.REFUSED_LIMIT, _bounded(text, filerecords.MAX_REFUSAL_TEXT)
    return filerecords.REFUSED_STORAGE, STORAGE_FAILED


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

    The peer can make the warnings about its files as often as it likes (an
    offer refused for want of room, a file that arrives corrupt), so they
    go through a L{events.ThrottledLog} of the session's own, with the
    names cut short.

    An offer repeated while its file is being received, and the end of a
    transfer that already ended, get one answer per transfer per
    C{duplicateInterval} seconds (the heartbeat interval): the sender
    repeats them only after losing a channel, when every transfer is
    answered again anyway (L{reacknowledge}), and a peer replaying them
    cannot make this end write more than it receives.

    @ivar onStored: called with C{(name, path, size)} for each stored file.
    """

    log = events.NamedLogger(events.TRANSFER)

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
        peerName: str | None = None,
    ) -> None:
        self._store = store
        self._peer = peer
        self._peerName = peerName
        self._fragmentSize = fragmentSize
        self._send = sendControl
        self._clock = clock
        self.onStored = onStored
        self._runInThread = runInThread
        self._active: dict[bytes, _Receiving] = {}
        self._ackCall: IDelayedCall | None = None
        self._closed = False
        self._ended: dict[bytes, tuple[int, int, str]] = {}
        self._folders = 0
        self._duplicateAnswers = RateWindow(clock, duplicateInterval)
        self.verifying = InFlight()
        self._warnings = events.ThrottledLog(
            clock, self.log, events.FILE_WARNINGS_SUPPRESSED, peer=peer
        )

    def _warn(self, group: str, format: str, name: str, **fields: object) -> None:
        self._warnings.emit(
            group, LogLevel.warn, format, name=events.shortName(name), **fields
        )

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

    def _answer(
        self, transfer: bytes, status: int, ranges=(), reason: int = 0, detail: str = ""
    ) -> None:
        ranges = tuple(ranges)
        for start in range(0, max(1, len(ranges)), frames.MAX_ACK_RANGES):
            chunk = ranges[start : start + frames.MAX_ACK_RANGES]
            self._send(filerecords.FileAck(transfer, status, chunk, reason, detail).encode())

    def _storedName(self, path: str) -> str:
        """
        How the sender is told where its file or folder went: the path
        relative to the inbox, C{/}-separated, bounded as C{FAK:} bounds it.
        """
        relative = os.path.relpath(path, self._store.directory).replace(os.sep, "/")
        return _bounded(relative, filerecords.MAX_FILE_NAME)

    def offerReceived(self, offer: filerecords.FileOffer) -> None:
        transfer = offer.transferID
        receiving = self._active.get(transfer)
        if receiving is not None:
            if self._duplicateAnswers.admit(transfer, 1):
                self._answer(transfer, filerecords.FILE_RESUME, receiving.partial.held.ranges())
            return
        if self._store is None:
            self._answer(
                transfer, filerecords.FILE_REFUSED, (), filerecords.REFUSED_NO_FILES, NO_FILES
            )
            return
        key = self._store.key(self._peer, transfer)
        stored = self._store.completedName(key)
        if stored is not None:
            self._warnings.emit(
                "already", LogLevel.info, "{name} from {peer} is stored already, as {stored}",
                name=events.shortName(offer.name), peer=self._peer, stored=stored,
            )
            self._answer(transfer, filerecords.FILE_ALREADY_STORED, (), 0, stored)
            return
        if len(self._active) >= MAX_ACTIVE_FILES:
            raise ResourceLimitExceeded("too many files at once")
        try:
            partial = self._store.open(
                key, offer.name, offer.size, self._peer, self._peerName, offer.mtime
            )
        except (ResourceLimitExceeded, TransferWithdrawn, OSError) as error:
            self._warn("refused", "Refusing {name}: {error}", offer.name, error=str(error))
            self._answer(transfer, filerecords.FILE_REFUSED, (), *refusal(error))
            return
        partial.onRelease = lambda reason: self._release(transfer, reason)
        self._active[transfer] = _Receiving(partial, self._clock.seconds())
        self._answer(
            transfer, filerecords.FILE_RESUME, partial.held.ranges()[: frames.MAX_ACK_RANGES]
        )
        self._maybeFinish(transfer)

    def folderOffered(self, offer: filerecords.FolderOffer) -> None:
        """
        Make the folder, in a thread (the store may fsync), and answer
        stored, with its name, or refused.  Folders being made count
        against L{MAX_ACTIVE_FILES} with the files.
        """
        transfer = offer.transferID
        if self._store is None:
            self._answer(
                transfer, filerecords.FILE_REFUSED, (), filerecords.REFUSED_NO_FILES, NO_FILES
            )
            return
        if len(self._active) + self._folders >= MAX_ACTIVE_FILES:
            raise ResourceLimitExceeded("too many files at once")
        self._folders += 1

        def made(path: str) -> None:
            self._folders -= 1
            stored = self._storedName(path)
            self.log.info("Made folder {stored} for {peer}", stored=stored, peer=self._peer)
            self._answer(transfer, filerecords.FILE_COMPLETE, (), 0, stored)

        def failed(failure: Failure) -> None:
            self._folders -= 1
            self._answer(
                transfer, filerecords.FILE_REFUSED, (), *self._whyRefused(offer.name, failure)
            )

        self.verifying.track(
            self._runInThread(self._store.makeDirectory, offer.name).addCallbacks(made, failed)
        )

    def _release(self, transfer: bytes, reason: str) -> bool:
        """
        The store takes the file of C{transfer} from this session, for
        C{reason}: stop receiving it, tell the sender why, and close it
        once its pending disk work is done.  Its later records are dropped
        as those of any ended transfer.

        @return: whether it was let go; not while it is being verified.
        """
        receiving = self._active.get(transfer)
        if receiving is None:
            return True
        if receiving.finishing:
            return False
        self._warn("released", "Stopped receiving {name}: {reason}", receiving.partial.name,
                   reason=reason)
        self._end(transfer, filerecords.FILE_REFUSED, filerecords.REFUSED_WITHDRAWN, reason)
        receiving.disk.run(receiving.partial.close)
        return True

    def _whyRefused(self, name: str, failure: Failure) -> tuple[int, str]:
        """
        Storing failed: log why (a traceback only for the unexpected).

        @return: what to tell the sender (L{refusal}).
        """
        if failure.check(ResourceLimitExceeded, OSError):
            self._warn("refused", "Refusing {name}: {error}", name, error=str(failure.value))
        else:
            self.log.failure("Storing {name} failed", failure, name=events.shortName(name))
        return refusal(failure.value)

    def dataReceived(self, data: filerecords.FileData) -> None:
        receiving = self._active.get(data.transferID)
        if receiving is None:
            if self._endedAnswer(data.transferID) is not None:
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
            self._warn("refused", "Refusing {name}: {error}", partial.name, error=str(error))
            partial.discard()
            self._end(data.transferID, filerecords.FILE_REFUSED, *refusal(error))
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

    def endReceived(self, end: filerecords.FileEnd) -> None:
        receiving = self._active.get(end.transferID)
        if receiving is None:
            answer = self._endedAnswer(end.transferID)
            if answer is None:
                raise ProtocolError("file end for a transfer that was never offered")
            if self._duplicateAnswers.admit(end.transferID, 1):
                self._answer(end.transferID, answer[0], (), *answer[1:])
            return
        receiving.digest = end.digest
        self._maybeFinish(end.transferID)

    def _endedAnswer(self, transfer: bytes) -> tuple[int, int, str] | None:
        """
        How a transfer that is no longer active ended, C{(status, reason,
        detail)}, so late copies of its records (retransmitted over another
        channel) are answered instead of being taken for a protocol
        violation.
        """
        answer = self._ended.get(transfer)
        if answer is None and self._store is not None:
            stored = self._store.completedName(self._store.key(self._peer, transfer))
            if stored is not None:
                answer = (filerecords.FILE_ALREADY_STORED, 0, stored)
        return answer

    def _end(self, transfer: bytes, status: int, reason: int = 0, detail: str = "") -> None:
        self._active.pop(transfer, None)
        self._ended[transfer] = (status, reason, detail)
        if len(self._ended) > REMEMBERED_TRANSFERS:
            del self._ended[next(iter(self._ended))]
        self._answer(transfer, status, (), reason, detail)

    def _acknowledge(self, transfer: bytes, receiving: _Receiving) -> None:
        receiving.fragments = 0
        ranges, receiving.progress = receiving.progress.ranges(), RangeSet()
        if ranges:
            self._answer(transfer, filerecords.FILE_PROGRESS, ranges)

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
            held = receiving.partial.held.ranges()[: frames.MAX_ACK_RANGES]
            self._answer(transfer, filerecords.FILE_RESUME, held)
            written = receiving.partial.written.ranges()
            if written:
                self._answer(transfer, filerecords.FILE_PROGRESS, written)
        for transfer in list(self._ended)[-RECENT_FINAL:]:
            status, reason, detail = self._ended[transfer]
            self._answer(transfer, status, (), reason, detail)

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
            return partial.finish(expected)

        self.verifying.track(
            receiving.disk.run(self._runInThread, verify).addCallbacks(
                lambda path: self._finished(transfer, receiving, path),
                lambda failure: self._failed(transfer, partial, failure),
            )
        )

    def _finished(self, transfer: bytes, receiving: _Receiving, path: str | None) -> None:
        partial = receiving.partial
        if path is None:
            self._warn("corrupt", "{name} arrived corrupt; asking for it again", partial.name)
            self._end(transfer, filerecords.FILE_RESTART)
            return
        self._end(transfer, filerecords.FILE_COMPLETE, 0, self._storedName(path))
        events.fileStored(
            self.log, partial.name, partial.size, self._peer, path,
            self._clock.seconds() - receiving.started, receiving.digest,
        )
        self.onStored(partial.name, path, partial.size)

    def _failed(self, transfer: bytes, partial: PartialFile, failure: Failure) -> None:
        partial.discard()
        self._end(transfer, filerecords.FILE_REFUSED, *self._whyRefused(partial.name, failure))

    def close(self) -> None:
        """
        The session ended: keep partial files for a later resume, close
        them.
        """
        self._closed = True
        if self._ackCall is not None and self._ackCall.active():
            self._ackCall.cancel()
        self._ackCall = None
        self._warnings.flush()
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
            self.log.warn(
                "Could not keep {name}: {error}",
                name=events.shortName(partial.name), error=str(error),
            )
        partial.close()
