# -*- test-case-name: tests.memory.test_receiving -*-
"""
Receiving files (amendments A3, A12, A13, A14; the sending side is
L{spc.files.sending}): each fragment is written at its offset into a partial
file, only fsynced ranges are claimed for resumption, and the file gets its
final name only once the whole-file digest matched.

This is the protocol's side: which records are accepted and what each is
answered.  What touches the disk is a job of the writer's lane
(L{spc.files.writing}), off the reactor thread: data is acknowledged once
the lane wrote it, and a file is verified from the digest computed while
it was written.
"""

from __future__ import annotations

import os
from typing import Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import LogLevel
from twisted.python.failure import Failure

from spc.errors import NameUnavailable, ProtocolError, ResourceLimitExceeded, TransferWithdrawn
from spc.files.openings import Openings
from spc.files.partial import PartialFile
from spc.files.progress import TransferProgress
from spc.files.ranges import RangeSet
from spc.files.store import FileStore
from spc.files.writing import DiskQueue, Receiving
from spc.inflight import InFlight
from spc.lanes import InlineLane
from spc.logs import events
from spc.protocol import filerecords, frames
from spc.protocol.acks import ACK_DELAY, ACK_EVERY, AckBatcher
from spc.ratelimit import RateWindow

__all__ = ["ACK_DELAY", "ACK_EVERY", "IncomingFiles"]

SYNC_BYTES = 32 * 1024 * 1024
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

    At most one session receives a file (L{spc.files.openings}): an offer
    of a file another session receives takes it from that one, unless
    that one is verifying it.

    @ivar onStored: called with C{(name, path, size)} for each stored file.
    @ivar verifying: the files being verified and stored, so that a
        shutdown waits for their answers.
    @ivar _openings: the offers being looked up in the writer's lane, and
        this session's claims on the files it receives.
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
        writer=None,
        duplicateInterval: float = 5.0,
        onBacklog: Callable[[bool], None] = lambda full: None,
        peerName: str | None = None,
    ) -> None:
        """
        @param writer: the writer's lane (L{spc.lanes}); inline if not given.
        @param onBacklog: called with C{True} when data waits to be written
            beyond what an honest sender sends, so that the session stops
            reading from its peer, and with C{False} when it may read again.
        """
        self._store = store
        self._peer = peer
        self._peerName = peerName
        self._fragmentSize = fragmentSize
        self._send = sendControl
        self._clock = clock
        self.onStored = onStored
        self._disk = DiskQueue(store, writer or InlineLane("writer"), onBacklog)
        self._active: dict[bytes, Receiving] = {}
        self._openings = Openings(
            store, peer, peerName, self._disk, self._heldBytes, self._release
        )
        self._acks = AckBatcher(clock, self._progressDue)
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

    def _heldBytes(self, transfer: bytes) -> int:
        receiving = self._active.get(transfer)
        return 0 if receiving is None else receiving.held.total()

    def inProgress(self) -> list[TransferProgress]:
        """
        The files being received now, in the order they were offered.
        """
        return [
            TransferProgress(
                receiving.partial.name,
                receiving.partial.size,
                receiving.written.total(),
                receiving.held.total(),
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
                self._answer(transfer, filerecords.FILE_RESUME, receiving.held.ranges())
            return
        if self._store is None:
            self._answer(
                transfer, filerecords.FILE_REFUSED, (), filerecords.REFUSED_NO_FILES, NO_FILES
            )
            return
        if transfer in self._openings:
            return
        if len(self._active) + len(self._openings) + self._folders >= MAX_ACTIVE_FILES:
            raise ResourceLimitExceeded("too many files at once")
        self._openings.open(offer, lambda result: self._offerOpened(offer, result))

    def _offerOpened(self, offer: filerecords.FileOffer, result: object) -> None:
        """
        The writer's lane looked the offer up: the file is stored already
        (its name), its partial file is open, or it cannot be taken.
        """
        transfer = offer.transferID
        if isinstance(result, str):
            self._warnings.emit(
                "already", LogLevel.info, "{name} from {peer} is stored already, as {stored}",
                name=events.shortName(offer.name), peer=self._peer, stored=result,
            )
            self._answer(transfer, filerecords.FILE_ALREADY_STORED, (), 0, result)
        elif isinstance(result, PartialFile):
            self._active[transfer] = Receiving(result, self._clock.seconds())
            self._answer(
                transfer, filerecords.FILE_RESUME, result.held.ranges()[: frames.MAX_ACK_RANGES]
            )
            self._maybeFinish(transfer)
        else:
            why = self._whyRefused(offer.name, result)
            self._answer(transfer, filerecords.FILE_REFUSED, (), *why)

    def folderOffered(self, offer: filerecords.FolderOffer) -> None:
        """
        Make the folder, in the writer's lane (the store fsyncs), and
        answer stored, with its name, or refused.  Folders being made count
        against L{MAX_ACTIVE_FILES} with the files.
        """
        transfer = offer.transferID
        if self._store is None:
            self._answer(
                transfer, filerecords.FILE_REFUSED, (), filerecords.REFUSED_NO_FILES, NO_FILES
            )
            return
        if len(self._active) + len(self._openings) + self._folders >= MAX_ACTIVE_FILES:
            raise ResourceLimitExceeded("too many files at once")
        self._folders += 1

        work: Deferred = Deferred()
        self.verifying.track(work)

        def made(result: object) -> None:
            self._folders -= 1
            if isinstance(result, Failure):
                why = self._whyRefused(offer.name, result)
                self._answer(transfer, filerecords.FILE_REFUSED, (), *why)
            else:
                stored = self._storedName(result)
                self.log.info("Made folder {stored} for {peer}", stored=stored, peer=self._peer)
                self._answer(transfer, filerecords.FILE_COMPLETE, (), 0, stored)
            work.callback(None)

        self._disk.makeFolder(offer.name, made)

    def _release(self, transfer: bytes, reason: str) -> bool:
        """
        The store takes the file of C{transfer} from this session, for
        C{reason}: stop receiving it, tell the sender why, and close it
        once its pending disk work is done (or, still being opened, once
        it is open).  Its later records are dropped as those of any ended
        transfer.

        @return: whether it was let go; not while it is being verified.
        """
        receiving = self._active.get(transfer)
        if receiving is not None and receiving.finishing:
            return False
        opening = self._openings.withdraw(transfer)
        if opening is None and receiving is None:
            return True
        name = opening.name if opening is not None else receiving.partial.name
        self._warn("released", "Stopped receiving {name}: {reason}", name, reason=reason)
        self._end(transfer, filerecords.FILE_REFUSED, filerecords.REFUSED_WITHDRAWN, reason)
        if receiving is not None:
            self._disk.close(receiving.partial)
        return True

    def _whyRefused(self, name: str, failure: Failure) -> tuple[int, str]:
        """
        Storing failed: log why (a traceback only for the unexpected).

        @return: what to tell the sender (L{refusal}).
        """
        if failure.check(ResourceLimitExceeded, TransferWithdrawn, OSError):
            self._warn("refused", "Refusing {name}: {error}", name, error=str(failure.value))
        else:
            self.log.failure("Storing {name} failed", failure, name=events.shortName(name))
        return refusal(failure.value)

    def dataReceived(self, data: filerecords.FileData) -> None:
        """
        Give new data to the writer's lane; a duplicate of data written
        already is only acknowledged again, one of data not yet written
        is dropped (its write will be acknowledged).
        """
        transfer = data.transferID
        receiving = self._active.get(transfer)
        if receiving is None:
            if self._endedAnswer(transfer) is not None:
                return
            raise ProtocolError("file data for a transfer that was never offered")
        size = receiving.partial.size
        offset, length = data.offset, len(data.payload)
        if offset % self._fragmentSize or offset >= size or (
            length != min(self._fragmentSize, size - offset)
        ):
            raise ProtocolError("file data outside the file's fragment grid")
        end = offset + length
        if receiving.queued.covers(offset, end):
            if receiving.written.covers(offset, end):
                receiving.progress.add(offset, end)
                self._acks.arrived(transfer)
            return
        self._disk.write(
            receiving, offset, data.payload,
            lambda failure: self._written(transfer, receiving, offset, end, failure),
        )

    def _written(
        self, transfer: bytes, receiving: Receiving, offset: int, end: int, failure
    ) -> None:
        """
        The lane wrote (and hashed) data of a transfer, or failed to.
        """
        if self._active.get(transfer) is not receiving or receiving.finishing:
            return
        if failure is not None:
            error = failure.value
            self._warn("refused", "Refusing {name}: {error}", receiving.partial.name, error=str(error))
            self._disk.discard(receiving)
            self._end(transfer, filerecords.FILE_REFUSED, *refusal(error))
            return
        receiving.written.add(offset, end)
        receiving.progress.add(offset, end)
        receiving.unsynced += end - offset
        self._acks.arrived(transfer)
        if receiving.unsynced >= SYNC_BYTES:
            self._sync(receiving)
        self._maybeFinish(transfer)

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
        self._openings.letGo(transfer)
        self._acks.acknowledged(transfer)
        self._ended[transfer] = (status, reason, detail)
        if len(self._ended) > REMEMBERED_TRANSFERS:
            del self._ended[next(iter(self._ended))]
        self._answer(transfer, status, (), reason, detail)

    def _acknowledge(self, transfer: bytes, receiving: Receiving) -> None:
        """
        Say what was written of C{transfer} since the last time.
        """
        self._acks.acknowledged(transfer)
        ranges, receiving.progress = receiving.progress.ranges(), RangeSet()
        if ranges:
            self._answer(transfer, filerecords.FILE_PROGRESS, ranges)

    def _progressDue(self, transfer: bytes) -> None:
        receiving = self._active.get(transfer)
        if receiving is not None:
            self._acknowledge(transfer, receiving)

    def reacknowledge(self) -> None:
        """
        A channel died, perhaps with acknowledgements on it: say again the
        answer to every offer in progress (a sender still waiting for it
        starts; one already sending ignores it), what is written of each
        file, and how the latest transfers ended.
        """
        for transfer, receiving in list(self._active.items()):
            self._acks.acknowledged(transfer)
            receiving.progress = RangeSet()
            held = receiving.held.ranges()[: frames.MAX_ACK_RANGES]
            self._answer(transfer, filerecords.FILE_RESUME, held)
            written = receiving.written.ranges()
            if written:
                self._answer(transfer, filerecords.FILE_PROGRESS, written)
        for transfer in list(self._ended)[-RECENT_FINAL:]:
            status, reason, detail = self._ended[transfer]
            self._answer(transfer, status, (), reason, detail)

    def _sync(self, receiving: Receiving) -> None:
        """
        fsync in the lane, then claim what the fsync covered.
        """

        def claimed(result: object) -> None:
            if isinstance(result, Failure):
                self.log.failure("Syncing a partial file failed", result)
            else:
                receiving.held = RangeSet(result)

        self._disk.sync(receiving, claimed)

    def _maybeFinish(self, transfer: bytes) -> None:
        """
        Every byte written and the digest in: verify and store the file
        with the next commit.
        """
        receiving = self._active.get(transfer)
        if receiving is None or receiving.finishing or receiving.digest is None:
            return
        if not receiving.isComplete():
            return
        receiving.finishing = True
        self._acknowledge(transfer, receiving)
        work: Deferred = Deferred()
        self.verifying.track(work)

        def committed(result: object) -> None:
            if isinstance(result, BaseException):
                self._failed(transfer, receiving, Failure(result))
            else:
                self._finished(transfer, receiving, result)
            work.callback(None)

        self._disk.commit(receiving, committed)

    def _finished(self, transfer: bytes, receiving: Receiving, path: str | None) -> None:
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

    def _failed(self, transfer: bytes, receiving: Receiving, failure: Failure) -> None:
        """
        The file could not be stored (the store deleted it).
        """
        name = receiving.partial.name
        self._end(transfer, filerecords.FILE_REFUSED, *self._whyRefused(name, failure))

    def close(self) -> None:
        """
        The session ended: keep partial files for a later resume, close
        them, once the lane has written what it was given; files waiting
        to be committed are committed still, and stay this session's until
        they are.
        """
        self._acks.stop()
        self._warnings.flush()
        self._openings.close()
        for transfer, receiving in list(self._active.items()):
            if not receiving.finishing:
                self._openings.letGo(transfer)
                self._disk.keep(receiving, self._notKept(receiving))
                del self._active[transfer]
        self._disk.flush()

    def _notKept(self, receiving: Receiving) -> Callable[[Failure], None]:
        def failed(failure: Failure) -> None:
            self.log.warn(
                "Could not keep {name}: {error}",
                name=events.shortName(receiving.partial.name), error=str(failure.value),
            )

        return failed
