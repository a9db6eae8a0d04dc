# -*- test-case-name: tests.memory.test_receiving -*-
"""
Sending a file: a L{spc.session.messenger.Source} that reads the next fragment
only when the messenger can send it, hashes every byte in order as it
reads (the digest goes in the final record; nothing is read twice, and
nothing is pre-hashed), and skips what the receiver said it already holds.
A folder with nothing in it to send is one offer and its answer.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Callable, NamedTuple

from automat import MethodicalMachine
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from spc.errors import FileFailed, FileRefused
from spc.files.progress import TransferProgress
from spc.files.ranges import RangeSet
from spc.interfaces import YIELD
from spc.logs import events
from spc.protocol import filerecords
from spc.text import withoutControls

__all__ = ["Delivered", "FileSender", "FolderSender", "transferID"]

HELD_CHUNKS_PER_TURN = 256


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
    The machine is a C{MethodicalMachine}, not a C{TypeMachineBuilder} one:
    its outputs call the messenger, which pumps this sender at once and so
    feeds the machine its next input from inside a transition, and a
    typed machine would postpone that input until the transition is over,
    letting the step being left produce once more.

    @ivar deferred: fires with a L{Delivered} once the receiver stored and
        verified the file, or held it already, or fails with L{FileFailed}
        (L{FileRefused} when the receiver refused it).
    @ivar size: the file's size, fixed when the transfer starts.
    @ivar digest: the SHA-256 of what was read, once all of it was; it
        stays L{None} when the receiver already had the whole file.
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
        self._sent = 0
        self._reset(RangeSet())
        self._produce: Callable[[], object] = self._offer
        self.messenger = None

    def _reset(self, held: RangeSet) -> None:
        self._held = held
        self._offset = 0
        self._hash = hashlib.sha256()
        self._acked = held.total()

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

    def _readNext(self):
        skipped = 0
        while self._offset < self.size:
            offset = self._offset
            chunk = os.pread(self._file.fileno(), min(self._fragmentSize, self.size - offset), offset)
            if len(chunk) != min(self._fragmentSize, self.size - offset):
                self._failed(FileFailed(self.name, "shrank while it was being sent"))
                return None
            self._hash.update(chunk)
            self._offset = offset + len(chunk)
            if not self._held.covers(offset, self._offset):
                self._sent += len(chunk)
                data = filerecords.FileData(self.transferID, offset, chunk).encode()
                return ("f", self.transferID, offset), data
            skipped += 1
            if skipped >= HELD_CHUNKS_PER_TURN:
                return YIELD
        self._allRead()
        if self._changed():
            self._failed(FileFailed(self.name, "changed while it was being sent"))
            return None
        self.digest = self._hash.digest()
        end = filerecords.FileEnd(self.transferID, self.digest).encode()
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

    def ackReceived(self, ack: filerecords.FileAck) -> None:
        status = ack.status
        if status == filerecords.FILE_PROGRESS:
            for start, length in ack.ranges:
                end = min(start + length, self.size)
                first = start - start % self._fragmentSize
                for offset in range(first, end, self._fragmentSize):
                    if offset >= start and self.messenger.acknowledge(
                        ("f", self.transferID, offset)
                    ):
                        self._acked += min(self._fragmentSize, self.size - offset)
            self._progress(self._acked)
        elif status == filerecords.FILE_RESUME:
            self._resumed(RangeSet(ack.ranges))
        elif status in (filerecords.FILE_COMPLETE, filerecords.FILE_ALREADY_STORED):
            self._delivered(ack)
        elif status == filerecords.FILE_RESTART and not self._restarted:
            self._restartedAs(ack.transferID)
        elif status == filerecords.FILE_RESTART:
            self._failed(FileFailed(self.name, "arrived corrupt twice"))
        elif status == filerecords.FILE_REFUSED:
            self._failed(_refused(self.name, ack))

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
    def _waiting(self) -> None:
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
        self.messenger.acknowledge(("o", self.transferID))
        self._reset(held)
        self._produce = self._readNext
        self._progress(self._acked)
        self.messenger.addSource(self)

    @_machine.output()
    def _offerAgain(self, previous: bytes) -> None:
        self._produce = self._nothing
        self._forgetKeys()
        self._restarted = True
        self.transferID = os.urandom(16)
        self._reset(RangeSet())
        self._produce = self._offer
        self.messenger.renameSender(self, previous)
        self.messenger.addSource(self)

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
        self._produce = self._nothing
        self._file.close()
        self.deferred.errback(reason)

    def _finish(self) -> None:
        self._produce = self._nothing
        self._forgetKeys()
        self._file.close()
        self.messenger.senderDone(self)

    def _forgetKeys(self) -> None:
        messenger = self.messenger
        for key in (("o", self.transferID), ("e", self.transferID)):
            messenger.acknowledge(key)
        for offset in range(0, self.size, self._fragmentSize):
            messenger.acknowledge(("f", self.transferID, offset))

    _offering.upon(_offerTaken, enter=_waiting, outputs=[_quiet])
    _waiting.upon(_resumed, enter=_sending, outputs=[_startSending])
    _sending.upon(_allRead, enter=_ending, outputs=[_quiet])
    for _state in (_offering, _sending, _ending):
        _state.upon(_resumed, enter=_state, outputs=[])
    for _state in (_offering, _waiting, _sending, _ending):
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

    def __init__(self, name: str) -> None:
        self.name = name
        self.transferID = os.urandom(16)
        self.deferred: Deferred = Deferred()
        self.messenger = None
        self._offered = False

    def nextRecord(self):
        if self._offered or self.deferred.called:
            return None
        self._offered = True
        return ("d", self.transferID), filerecords.FolderOffer(self.transferID, self.name).encode()

    def progress(self) -> TransferProgress:
        return TransferProgress(self.name, 0, 0, None, True)

    def ackReceived(self, ack: filerecords.FileAck) -> None:
        if ack.status in (filerecords.FILE_COMPLETE, filerecords.FILE_ALREADY_STORED):
            self._done()
            self.deferred.callback(_delivered(self.name, ack, 0))
        elif ack.status == filerecords.FILE_REFUSED:
            self._done()
            self.deferred.errback(_refused(self.name, ack))

    def _done(self) -> None:
        self.messenger.acknowledge(("d", self.transferID))
        self.messenger.senderDone(self)

    def sessionEnded(self, reason: Failure) -> None:
        if not self.deferred.called:
            self.deferred.errback(reason)
