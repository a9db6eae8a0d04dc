# -*- test-case-name: tests.memory.test_receiving -*-
"""
Sending a file: a L{spc.interfaces.Sender} whose fragments are read, and
every byte hashed in order, by jobs of the reader's lane
(L{spc.files.reading}) a few fragments ahead of the channels; the digest
goes in the final record (nothing is read twice, and nothing is
pre-hashed), and what the receiver said it already holds is read and
hashed but not sent.  A folder with nothing in it to send is one offer
and its answer.

Neither calls the messenger: it asks them for records and tells them the
receiver's answers, and each answers with the keys those acknowledge.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Callable, Hashable, NamedTuple

from automat import MethodicalMachine
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from spc.errors import FileFailed, FileRefused
from spc.files.progress import TransferProgress
from spc.files.ranges import RangeSet
from spc.files.reading import READ_AHEAD, Attempt, FileChanged
from spc.interfaces import WAIT
from spc.lanes import InlineLane
from spc.logs import events
from spc.protocol import filerecords
from spc.text import withoutControls

__all__ = ["Delivered", "FileSender", "FolderSender", "transferID"]


class Delivered(NamedTuple):
    """
    What the receiver said of a file or folder it holds.

    @ivar name: the sender's name for it.
    @ivar storedAs: the receiver's name for it, a path relative to its
        inbox, without control characters.
    @ivar already: whether the receiver held it from an earlier transfer
        (an earlier run), so that nothing of it was sent now.
    @ivar sent: the bytes of file data this end sent for it in this
        session; retransmissions are not counted again.
    """

    name: str
    storedAs: str
    already: bool
    sent: int


def _delivered(name: str, ack: filerecords.FileAck, sent: int) -> Delivered:
    """
    The peer's stored name comes from the peer: it may carry a terminal
    escape, so it is kept only without control characters.
    """
    return Delivered(
        name, withoutControls(ack.detail), ack.status == filerecords.FILE_ALREADY_STORED, sent
    )


def _refused(name: str, ack: filerecords.FileAck) -> FileRefused:
    """
    The peer's sentence, like its names, is kept only without control
    characters.
    """
    return FileRefused(name, ack.reason, withoutControls(ack.detail))


def transferID(
    secret: bytes, server: str, path: str, name: str, stat: os.stat_result
) -> bytes:
    """
    The id of sending one file to one server under one name: the same while
    the file is unchanged (path, device, inode, size, modification and
    change times), so a re-run resumes, and unlinkable by anyone without
    the sender's secret.  The change time is there because a modification
    time can be set back (C{touch -r}) after an edit that kept the size; a
    change time cannot.  A path that is not UTF-8 (a folder above the file
    may have any name) goes in as its own bytes.
    """
    identity = "\0".join(
        (server, os.path.abspath(path), name, str(stat.st_dev), str(stat.st_ino),
         str(stat.st_size), str(stat.st_mtime_ns), str(stat.st_ctime_ns))
    ).encode("utf-8", "surrogateescape")
    return hmac.new(secret, identity, hashlib.sha256).digest()[:16]


class FileSender:
    """
    One file on its way out.

    Its steps are an explicit machine: it offers the file, waits for the
    receiver's answer, sends what the receiver lacks, ends with the digest,
    and waits for the verdict; a restart offers it again under a new id,
    and delivery, failure or the end of the session makes it done.  What it
    gives the messenger in each step is the function the step set
    (L{_produce}), so the fragments of a file cost no transition each.

    Each attempt (L{Attempt}) has its own hash and reading position, so
    reads of an attempt abandoned for a restart that are still in the lane
    change nothing of the next one; their reports are dropped.

    @ivar deferred: fires with a L{Delivered} once the receiver stored and
        verified the file, or held it already, or fails with L{FileFailed}
        (L{FileRefused} when the receiver refused it).
    @ivar size: the file's size, fixed when the transfer starts.
    @ivar digest: the SHA-256 of what was read, once all of it was; it
        stays L{None} when the receiver already had the whole file.
    @ivar transferID: the id of the current attempt; L{None} until it
        started.
    @ivar done: whether it is over.
    """

    log = events.NamedLogger(events.TRANSFER)
    _machine = MethodicalMachine()

    def __init__(
        self,
        path: str,
        name: str,
        secret: bytes,
        server: str,
        fragmentSize: int,
        clock: IReactorTime,
        progress: Callable[[int], None] | None = None,
        reader=None,
    ) -> None:
        """
        @param reader: the reader's lane (L{spc.lanes}); inline if not
            given.
        """
        self.path = path
        self.name = name
        self._secret = secret
        self._server = server
        self._fragmentSize = fragmentSize
        self._progress = progress or (lambda done: None)
        self._reader = reader or InlineLane("reader")
        self._descriptor = -1
        self._stat: os.stat_result | None = None
        self.size = 0
        self.transferID: bytes | None = None
        self.deferred: Deferred = Deferred()
        self.digest: bytes | None = None
        self.done = False
        self._clock = clock
        self._started = clock.seconds()
        self._restarted = False
        self._sent = 0
        self._attempt: Attempt | None = None
        self._waiting = False
        self._ready: Callable[[], None] = lambda: None
        self._produce: Callable[[], object] = self._offer

    def start(self, ready: Callable[[], None]) -> None:
        """
        Open the file, now that the messenger starts it: its size and
        transfer id are fixed from here on.  A file that cannot be opened
        fails at once, with the C{OSError}.
        """
        self._ready = ready
        try:
            self._descriptor = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            self._stat = os.fstat(self._descriptor)
        except OSError as error:
            self._failed(error)
            return
        self.size = self._stat.st_size
        self.transferID = transferID(self._secret, self._server, self.path, self.name, self._stat)
        self._attempt = Attempt(self.transferID, RangeSet())

    # Source.

    def nextRecord(self):
        return self._produce()

    def _nothing(self) -> None:
        return None

    def _offer(self):
        offer = filerecords.FileOffer(
            self.transferID, self.size, self.name, self._stat.st_mtime_ns
        ).encode()
        self._offerTaken()
        return ("o", self.transferID), offer

    def _sendNext(self):
        """
        The next fragment read, or the end record once every byte was read
        and handed out; L{WAIT} while the lane reads.
        """
        attempt = self._attempt
        if not attempt.ready and attempt.digest is None:
            self._readAhead(attempt)
        if attempt.ready:
            offset, record = attempt.ready.popleft()
            self._readAhead(attempt)
            length = min(self._fragmentSize, self.size - offset)
            attempt.outstanding[offset] = length
            self._sent += length
            return ("f", attempt.transferID, offset), record
        if attempt.digest is None:
            self._waiting = True
            return WAIT
        self.digest = attempt.digest
        self._allRead()
        end = filerecords.FileEnd(attempt.transferID, self.digest).encode()
        return ("e", attempt.transferID), end

    def _readAhead(self, attempt: Attempt) -> None:
        """
        Ask the lane for fragments, up to C{READ_AHEAD} read or being read.
        """
        count = READ_AHEAD - len(attempt.ready) - attempt.requested
        if attempt.digest is not None or count < (READ_AHEAD // 2 if attempt.requested else 1):
            return
        attempt.requested += count
        descriptor, size, fragment = self._descriptor, self.size, self._fragmentSize
        self._reader.submit(
            lambda: attempt.read(descriptor, size, fragment, count, self._unchanged),
            lambda result: self._readDone(attempt, count, result),
        )

    def _readDone(self, attempt: Attempt, count: int, result: object) -> None:
        attempt.requested -= count
        if attempt is not self._attempt or self.done:
            return
        if isinstance(result, Failure):
            if result.check(FileChanged):
                self._failed(FileFailed(self.name, str(result.value)))
            else:
                self._failed(FileFailed(self.name, f"could not be read ({result.value})"))
        else:
            made, digest = result
            attempt.ready.extend(made)
            attempt.digest = digest
            if not made and digest is None:
                self._readAhead(attempt)
                return
        if self._waiting:
            self._waiting = False
            self._ready()

    def _unchanged(self) -> bool:
        """
        Whether the file is as it was when it was opened, by the same
        measures as its transfer id.
        """
        now, then = os.fstat(self._descriptor), self._stat
        return (now.st_size, now.st_mtime_ns, now.st_ctime_ns) == (
            then.st_size, then.st_mtime_ns, then.st_ctime_ns
        )

    def progress(self) -> TransferProgress:
        """
        The receiver acknowledges what it has written, not when it fsyncs,
        so this end knows nothing of what is held.
        """
        acked = self._attempt.acked if self._attempt is not None else 0
        return TransferProgress(self.name, self.size, acked, None, True)

    # What the receiver says.

    def ackReceived(self, ack: filerecords.FileAck) -> list[Hashable]:
        """
        Take the receiver's answer.

        @return: the keys of the records it acknowledges.
        """
        status = ack.status
        attempt = self._attempt
        if status == filerecords.FILE_PROGRESS and attempt is not None:
            keys = []
            outstanding = attempt.outstanding
            for start, length in ack.ranges:
                end = min(start + length, self.size)
                first = start + (-start % self._fragmentSize)
                for offset in range(first, end, self._fragmentSize):
                    sent = outstanding.pop(offset, None)
                    if sent is not None:
                        attempt.acked += sent
                        keys.append(("f", attempt.transferID, offset))
            self._progress(attempt.acked)
            return keys
        if status == filerecords.FILE_RESUME:
            self._resumed(RangeSet(ack.ranges))
            return [("o", ack.transferID)]
        if status in (filerecords.FILE_COMPLETE, filerecords.FILE_ALREADY_STORED):
            self._delivered(ack)
        elif status == filerecords.FILE_RESTART and not self._restarted:
            self._restartedAs(ack.transferID)
        elif status == filerecords.FILE_RESTART:
            self._failed(FileFailed(self.name, "arrived corrupt twice"))
        elif status == filerecords.FILE_REFUSED:
            self._failed(_refused(self.name, ack))
        return []

    # The steps.

    @_machine.input()
    def _offerTaken(self) -> None:
        "The messenger took the offer."

    @_machine.input()
    def _resumed(self, held: RangeSet) -> None:
        "The receiver answered the offer with what it holds already."

    @_machine.input()
    def _allRead(self) -> None:
        "Every byte was read: the end record is next."

    @_machine.input()
    def _restartedAs(self, previous: bytes) -> None:
        "The file arrived corrupt: send it again, under a new id."

    @_machine.input()
    def _delivered(self, ack: filerecords.FileAck) -> None:
        "The receiver stored and verified the file, or held it already."

    @_machine.input()
    def _failed(self, error: Exception) -> None:
        "The file cannot be delivered."

    @_machine.input()
    def sessionEnded(self, reason: Failure) -> None:
        "The session ended before the file was delivered."

    @_machine.state(initial=True)
    def _offering(self) -> None:
        "The offer is the next record."

    @_machine.state()
    def _waitingForAnswer(self) -> None:
        "The offer is out; the receiver's answer is awaited."

    @_machine.state()
    def _sending(self) -> None:
        "Fragments go out as the messenger asks."

    @_machine.state()
    def _ending(self) -> None:
        "The end record is out; the receiver's verdict is awaited."

    @_machine.state()
    def _done(self) -> None:
        "Delivered, failed or cut off with the session: nothing more."

    @_machine.output()
    def _quiet(self) -> None:
        self._produce = self._nothing

    @_machine.output()
    def _startSending(self, held: RangeSet) -> None:
        self._attempt = Attempt(self.transferID, held)
        self._produce = self._sendNext
        self._progress(self._attempt.acked)

    @_machine.output()
    def _offerAgain(self, previous: bytes) -> None:
        self._restarted = True
        self.transferID = os.urandom(16)
        self._attempt = Attempt(self.transferID, RangeSet())
        self._waiting = False
        self._produce = self._offer

    @_machine.output()
    def _succeed(self, ack: filerecords.FileAck) -> None:
        self._finish()
        elapsed = self._clock.seconds() - self._started
        events.fileSent(self.log, self.name, self.size, self._server, elapsed, self.digest)
        self._progress(self.size)
        self.deferred.callback(_delivered(self.name, ack, self._sent))

    @_machine.output()
    def _fail(self, error: Exception) -> None:
        self._finish()
        self.deferred.errback(error)

    @_machine.output()
    def _abandon(self, reason: Failure) -> None:
        self._finish()
        self.deferred.errback(reason)

    def _finish(self) -> None:
        """
        Nothing more to send; close the file once the reads in the lane are
        over, and tell the messenger if it waits for this sender.
        """
        self._produce = self._nothing
        self.done = True
        descriptor, self._descriptor = self._descriptor, -1
        if descriptor >= 0:
            self._reader.submit(lambda: os.close(descriptor), lambda result: None)
        if self._waiting:
            self._waiting = False
            self._ready()

    _offering.upon(_offerTaken, enter=_waitingForAnswer, outputs=[_quiet])
    _waitingForAnswer.upon(_resumed, enter=_sending, outputs=[_startSending])
    _sending.upon(_allRead, enter=_ending, outputs=[_quiet])
    for _state in (_offering, _sending, _ending):
        _state.upon(_resumed, enter=_state, outputs=[])
    for _state in (_offering, _waitingForAnswer, _sending, _ending):
        _state.upon(_restartedAs, enter=_offering, outputs=[_offerAgain])
        _state.upon(_delivered, enter=_done, outputs=[_succeed])
        _state.upon(_failed, enter=_done, outputs=[_fail])
        _state.upon(sessionEnded, enter=_done, outputs=[_abandon])
    for _input in (_resumed, _restartedAs, _delivered, _failed, sessionEnded):
        _done.upon(_input, enter=_done, outputs=[])
    del _state, _input


class FolderSender:
    """
    A folder on its way out: one C{DIR:}, kept until the receiver answers
    it (made, with its name, or refused), like a file's offer.  Its id is
    random: making a folder twice does no harm, so nothing needs resuming.

    @ivar deferred: fires with a L{Delivered} once the receiver made the
        folder or had it, or fails with L{FileRefused}.
    """

    size = 0

    def __init__(self, name: str) -> None:
        self.name = name
        self.transferID = os.urandom(16)
        self.deferred: Deferred = Deferred()
        self._offered = False

    @property
    def done(self) -> bool:
        return self.deferred.called

    def start(self, ready: Callable[[], None]) -> None:
        """
        A folder is one record: nothing to prepare.
        """

    def nextRecord(self):
        if self._offered or self.done:
            return None
        self._offered = True
        return ("d", self.transferID), filerecords.FolderOffer(self.transferID, self.name).encode()

    def progress(self) -> TransferProgress:
        return TransferProgress(self.name, 0, 0, None, True)

    def ackReceived(self, ack: filerecords.FileAck) -> list[Hashable]:
        """
        @return: the offer's key, once the answer is final.
        """
        if self.done:
            return []
        if ack.status in (filerecords.FILE_COMPLETE, filerecords.FILE_ALREADY_STORED):
            self.deferred.callback(_delivered(self.name, ack, 0))
        elif ack.status == filerecords.FILE_REFUSED:
            self.deferred.errback(_refused(self.name, ack))
        else:
            return []
        return [("d", self.transferID)]

    def sessionEnded(self, reason: Failure) -> None:
        if not self.deferred.called:
            self.deferred.errback(reason)
