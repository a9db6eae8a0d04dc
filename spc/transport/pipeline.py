# -*- test-case-name: tests.unit.test_pipeline,tests.memory.test_lifetime -*-
"""
A connection's bulk frames through a crypto lane, in order (A22).

Sealing or opening a large frame of suite 0x01 (A256CBC-HS512) takes about
0.7 and 0.4 ms per 256 KiB here, ten times what AES-GCM takes; a
connection of that suite hands that work to a crypto lane (L{spc.lanes}),
one per connection, so the reactor thread goes on with the others.  What
the record layer decides stays on the reactor thread, in order: sequence
numbers and epochs are assigned when a record is handed to the connection
(L{RecordLayer.prepare}), and the connection writes its frames strictly in
that order, whichever of them were sealed at once (control records, small
ones) and whichever in the lane (L{spc.lanes.InOrder}).  Incoming frames
are checked, opened and acted on one at a time: the next frame is checked
only once the one before it was acted on, which may have installed the
keys of a new epoch (L{RecordLayer.check}).

Both directions are bounded: the scheduler gives a connection no data
while C{MAX_QUEUED} of its frames wait to be sealed, and a connection whose
frame is being opened stops reading until it is (L{ReadPauses}).
"""

from __future__ import annotations

from typing import Callable

from twisted.python.failure import Failure

from spc.errors import SPCError
from spc.lanes import InOrder
from spc.protocol.recordlayer import RecordLayer

__all__ = ["BULK_BYTES", "MAX_QUEUED", "Opener", "ReadPauses", "Sealer"]

BULK_BYTES = 16 * 1024
"""
Records (and frames) at least this large are sealed (and opened) in the
lane; smaller ones, such as control records, on the reactor thread.
"""
MAX_QUEUED = 2
"""
Outgoing frames of a connection that may wait for its lane.
"""


class Sealer:
    """
    One connection's outgoing frames.

    @ivar queued: frames handed over and not yet written.
    """

    def __init__(self, lane, write: Callable[[bytes, bytes], None]) -> None:
        """
        @param lane: the connection's crypto lane, or L{None} to seal
            everything at once.
        @param write: writes one frame's prefix and header, then its body.
        """
        self._lane = lane
        self._order = InOrder(lambda frame: write(*frame))

    @property
    def queued(self) -> int:
        return self._order.waiting

    def send(self, aad: bytes, sealing: Callable[[], bytes], size: int) -> None:
        """
        Seal a record of C{size} bytes (at once, or in the lane) and write
        it after every frame handed over before it.
        """
        if self._lane is None or size < BULK_BYTES:
            self._order.now((aad, sealing()))
        else:
            self._order.later(self._lane, lambda: (aad, sealing()))

    def clear(self) -> None:
        """
        The connection is gone: write nothing more.
        """
        self._order.clear()


class Opener:
    """
    One connection's incoming protected frames, one at a time: a frame
    handed to the lane stops the connection's framer until it is opened
    and acted on, so nothing after a forged frame is ever parsed, let
    alone acted on, and the bytes waiting meanwhile are bounded by one
    read of the transport.
    """

    def __init__(
        self,
        records: RecordLayer,
        lane,
        act: Callable[[int, bytes], None],
        fault: Callable[[SPCError], None],
        ready: Callable[[], None],
    ) -> None:
        """
        @param lane: the connection's crypto lane, or L{None} to open
            everything at once.
        @param act: called on the reactor thread with each frame's epoch and
            plaintext, in order.
        @param fault: called with the error of a frame that does not check
            out or does not authenticate; nothing after it is acted on.
        @param ready: called when a frame opened in the lane was acted on,
            and the next may come.
        """
        self._records = records
        self._lane = lane
        self._act = act
        self._fault = fault
        self._ready = ready
        self._busy = False
        self._submitting = False
        self._stopped = False

    @property
    def busy(self) -> bool:
        """
        Whether a frame is in the lane: the next must wait.
        """
        return self._busy

    def received(self, body) -> bool:
        """
        Check, open and act on one frame body, or hand it to the lane.

        @return: whether the next frame may come now.
        """
        if self._busy:
            raise RuntimeError("a frame came while the one before it was being opened")
        try:
            opening = self._records.check(body)
        except SPCError as error:
            self._failed(error)
            return False
        if self._lane is None or len(body) < BULK_BYTES:
            try:
                plaintext = opening.open()
            except SPCError as error:
                self._failed(error)
                return False
            self._act(opening.epoch, plaintext)
            return not self._stopped
        self._busy = self._submitting = True
        epoch = opening.epoch
        self._lane.submit(opening.open, lambda result: self._opened(epoch, result))
        self._submitting = False
        return not (self._busy or self._stopped)

    def stop(self) -> None:
        """
        The connection is gone: act on nothing more.
        """
        self._stopped = True

    def _opened(self, epoch: int, result: object) -> None:
        self._busy = False
        if self._stopped:
            return
        if isinstance(result, Failure):
            if not result.check(SPCError):
                result.raiseException()
            self._failed(result.value)
            return
        self._act(epoch, result)
        if not (self._stopped or self._submitting):
            self._ready()

    def _failed(self, error: SPCError) -> None:
        self.stop()
        self._fault(error)


class ReadPauses:
    """
    Why a connection reads nothing from its peer for a while: its owner
    asked (its session's writer is behind), or a frame is being opened.
    TCP's own flow control then holds the peer back; the connection reads
    again once no reason is left.
    """

    def __init__(self) -> None:
        self._reasons: set[str] = set()

    def pause(self, transport, reason: str) -> None:
        if not self._reasons:
            transport.pauseProducing()
        self._reasons.add(reason)

    def resume(self, transport, reason: str) -> None:
        """
        Drop C{reason}; read again if it was the last, unless C{transport}
        is L{None} (the connection is dead).
        """
        self._reasons.discard(reason)
        if not self._reasons and transport is not None:
            transport.resumeProducing()
