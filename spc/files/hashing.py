# -*- test-case-name: tests.unit.test_hashing -*-
"""
The SHA-256 of a file being received, computed as its pieces are written,
whatever order they arrive in (A3, A12): when the last byte is written the
digest is known, and the file is never read again in a second pass.

SHA-256 takes its input in order.  Pieces at the hash cursor are hashed at
once, from the buffer that was just written; pieces that arrive early
(another channel was faster) wait in memory, within a window of bytes
shared by every file the writer works on (L{EarlyWindow}); a piece that
does not fit the window is only written, and read back from the file when
the cursor reaches it.  So are the ranges a resumed transfer held from an
earlier attempt (A12).  Memory stays within the window whatever the order
of arrival; the cost of a late piece is one read of it.

The objects here belong to the thread that writes the file: nothing else
may call them while it does.
"""

from __future__ import annotations

import hashlib
from typing import Callable

from spc.files.ranges import RangeSet

__all__ = ["EarlyWindow", "InOrderHasher", "READ_BACK_BLOCK"]

READ_BACK_BLOCK = 1024 * 1024
"""
The most bytes read back from a file at once to hash them.
"""


class EarlyWindow:
    """
    Bytes of early pieces the hashers of one writer may keep in memory.

    @ivar limit: the most bytes kept at once.
    @ivar used: the bytes kept now.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> bool:
        """
        @return: whether C{size} more bytes fit; if they do, they are kept.
        """
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def give(self, size: int) -> None:
        self.used -= size


class InOrderHasher:
    """
    The running SHA-256 of one file.

    @ivar size: the file's size.
    @ivar cursor: how many bytes from the start are hashed.
    """

    def __init__(
        self,
        size: int,
        window: EarlyWindow,
        readBack: Callable[[int, int], bytes],
        onDisk: RangeSet | None = None,
    ) -> None:
        """
        @param readBack: reads C{(offset, length)} bytes of the file.
        @param onDisk: ranges already in the file (held from an earlier
            attempt), hashed by reading them back when their turn comes.
        """
        self.size = size
        self.cursor = 0
        self._window = window
        self._readBack = readBack
        self._onDisk = RangeSet(onDisk.ranges()) if onDisk is not None else RangeSet()
        self._early: dict[int, bytes | bytearray | memoryview] = {}
        self._sha = hashlib.sha256()

    @property
    def done(self) -> bool:
        return self.cursor >= self.size

    def written(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """
        C{data} was just written at C{offset}: hash it now if its turn
        came, keep it if the window has room, or leave it to be read back.
        Bytes already written before are ignored.
        """
        end = offset + len(data)
        if not data or self._onDisk.covers(offset, end):
            return
        self._onDisk.add(offset, end)
        if offset <= self.cursor < end:
            self._sha.update(memoryview(data)[self.cursor - offset :])
            self.cursor = end
        elif offset > self.cursor and self._window.take(len(data)):
            self._early[offset] = data
        self.advance()

    def advance(self) -> None:
        """
        Hash whatever is next: kept pieces, and ranges on disk, read back
        up to the next kept piece.
        """
        early = self._early
        while self.cursor < self.size:
            piece = early.pop(self.cursor, None)
            if piece is not None:
                self._window.give(len(piece))
                self._sha.update(piece)
                self.cursor += len(piece)
                continue
            end = self._onDisk.runEnd(self.cursor)
            if end is None:
                return
            stop = min([end, self.cursor + READ_BACK_BLOCK, *(o for o in early if o > self.cursor)])
            data = self._readBack(self.cursor, stop - self.cursor)
            if len(data) != stop - self.cursor:
                raise OSError(f"read {len(data)} of {stop - self.cursor} bytes at {self.cursor}")
            self._sha.update(data)
            self.cursor = stop

    def digest(self) -> bytes:
        """
        The digest of the whole file, once L{done}.
        """
        if not self.done:
            raise RuntimeError("the file is not hashed to its end")
        return self._sha.digest()

    def release(self) -> None:
        """
        The file is finished or abandoned: give back the window it holds.
        """
        for piece in self._early.values():
            self._window.give(len(piece))
        self._early.clear()
