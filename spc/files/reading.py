# -*- test-case-name: tests.memory.test_receiving -*-
"""
The reader's side of sending a file (A22): jobs of the reader's lane
(L{spc.lanes}) read a file's next fragments straight into the records
that carry them, and hash every byte in order as they read, so the
reactor thread neither reads nor hashes.

A record is allocated once, at its final size: C{FDT:}, its header packed
in place, then the payload read into it (C{preadv} into a view, where the
platform has it).  That buffer is what the messenger keeps until the peer
acknowledges it, and what a retransmission sends again (A14).  Ranges the
receiver holds from an earlier attempt (A12) are read and hashed too, but
make no record; a job hashes at most C{HELD_PER_JOB} bytes of them, so a
file the receiver holds almost whole keeps the lane no longer than any
other.  Each file keeps at most C{READ_AHEAD} fragments read ahead of
the channels: enough to keep them busy, little memory.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from typing import Callable

from spc.files.ranges import RangeSet
from spc.protocol.filerecords import FileData
from spc.protocol.frames import TAG_SIZE

__all__ = ["Attempt", "FileChanged", "HELD_PER_JOB", "READ_AHEAD"]

READ_AHEAD = 4
HELD_PER_JOB = 8 * 1024 * 1024
_HEADER = TAG_SIZE + FileData.HEADER.size


class FileChanged(Exception):
    """
    The file changed while it was being read: it shrank, or its size,
    modification or change time moved.
    """


def _readInto(descriptor: int, view: memoryview, offset: int) -> int:
    """
    Fill C{view} from the file at C{offset}.

    @return: how many bytes were read (fewer only at the end of the file).
    """
    done = 0
    while done < len(view):
        if _preadv is not None:
            got = _preadv(descriptor, [view[done:]], offset + done)
        else:
            data = os.pread(descriptor, len(view) - done, offset + done)
            view[done : done + len(data)] = data
            got = len(data)
        if not got:
            break
        done += got
    return done


_preadv = getattr(os, "preadv", None)


class Attempt:
    """
    One attempt at sending a file, under one transfer id.

    What the reactor thread keeps: C{ready}, C{requested}, C{digest},
    C{outstanding}, C{acked}.  What the reader's jobs keep, one at a time
    and in order: the hash and the position of the reading.

    @ivar transferID: the id of this attempt.
    @ivar held: what the receiver holds: read and hashed, not sent.
    @ivar ready: C{(offset, record)} read and waiting to be sent.
    @ivar requested: fragments asked of the lane and not yet reported.
    @ivar digest: the SHA-256 of the whole file, once the lane read it all.
    @ivar outstanding: offsets sent and not yet acknowledged, and their
        lengths.
    @ivar acked: bytes the receiver has, held ones included.
    """

    def __init__(self, transferID: bytes, held: RangeSet) -> None:
        self.transferID = transferID
        self.held = held
        self.ready: deque[tuple[int, bytearray]] = deque()
        self.requested = 0
        self.digest: bytes | None = None
        self.outstanding: dict[int, int] = {}
        self.acked = held.total()
        self._hash = hashlib.sha256()
        self._offset = 0

    def read(
        self, descriptor: int, size: int, fragmentSize: int, count: int,
        unchanged: Callable[[], bool],
    ) -> tuple[list[tuple[int, bytearray]], bytes | None]:
        """
        In the reader's lane: read up to C{count} fragments to send from
        where the last job stopped, hashing every byte, held ones too.

        @param unchanged: whether the file is as it was when it was
            opened; asked once it is read to its end.
        @return: the records read, and the digest of the whole file if
            this job read its last byte.
        @raise FileChanged: if the file shrank or changed.
        """
        made: list[tuple[int, bytearray]] = []
        heldRead = 0
        offset = self._offset
        scratch: bytearray | None = None
        while offset < size and len(made) < count and heldRead < HELD_PER_JOB:
            length = min(fragmentSize, size - offset)
            if self.held.covers(offset, offset + length):
                if scratch is None:
                    scratch = bytearray(fragmentSize)
                view = memoryview(scratch)[:length]
                heldRead += length
            else:
                record = bytearray(_HEADER + length)
                record[:TAG_SIZE] = FileData.TAG
                FileData.HEADER.pack_into(record, TAG_SIZE, self.transferID, offset)
                view = memoryview(record)[_HEADER:]
                made.append((offset, record))
            if _readInto(descriptor, view, offset) != length:
                raise FileChanged("shrank while it was being sent")
            self._hash.update(view)
            offset += length
        self._offset = offset
        if offset < size:
            return made, None
        if not unchanged():
            raise FileChanged("changed while it was being sent")
        return made, self._hash.digest()
