# -*- test-case-name: tests.unit.test_records -*-
"""
SPC/1 inner records of file transfer (amendments A12, A13): the offer of a
file or a folder, file data, the file's end, and the receiver's answers.
L{spc.protocol.records} dispatches them with the other inner records; like them,
they are parsed only after authentication, as strictly (exact sizes, no
trailing bytes, no unknown values, every length checked before it is
read), and every failure is a L{ProtocolError}.  The byte-by-byte
description is C{docs/protocol.rst}, sections 6.6 to 6.10.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from spc.errors import ProtocolError
from spc.protocol.frames import Reader, decodeRanges, decodeText, encodeRanges, encodeText, sized

# FAK: statuses.
FILE_PROGRESS = 0
FILE_COMPLETE = 1
FILE_RESUME = 2
FILE_RESTART = 3
FILE_REFUSED = 4
FILE_ALREADY_STORED = 5
FILE_STATUSES = frozenset(range(6))
MAX_FILE_NAME = 4096
NO_MTIME = -(2**63)
"""
C{FIL:}'s modification time when the sender gives none (a stream, not a
file): the lowest signed 64-bit number, some 292 years before 1970.
"""

# FAK: refused, its reasons; the receiver's sentence after the code says more.
REFUSED_NO_FILES = 1
REFUSED_LIMIT = 2
REFUSED_NAME = 3
REFUSED_STORAGE = 4
REFUSED_WITHDRAWN = 5
REFUSAL_REASONS = frozenset(range(1, 6))
MAX_REFUSAL_TEXT = 255

_U8 = struct.Struct("!B")


class FileOffer(NamedTuple):
    """
    FIL: a file transfer begins (A12): its id, its size, fixed now, its
    modification time, and the sender's name for it (a relative path; the
    receiver makes it safe).

    @ivar mtime: the file's modification time in nanoseconds since the
        epoch, as the sender's C{fstat} gave it, which the receiver gives
        the stored file; L{NO_MTIME} when the sender gives none.
    """

    TAG = b"FIL:"
    _FIXED = struct.Struct("!16sQq")

    transferID: bytes
    size: int
    name: str
    mtime: int = NO_MTIME

    def encode(self) -> bytes:
        return b"".join(
            (self.TAG, self._FIXED.pack(self.transferID, self.size, self.mtime),
             sized(self.name.encode("utf-8")))
        )

    @classmethod
    def decode(cls, body: memoryview) -> FileOffer:
        reader = Reader(body)
        transferID, size, mtime = reader.unpack(cls._FIXED)
        name = decodeText(reader, 1, MAX_FILE_NAME, "file name")
        reader.end()
        return cls(transferID, size, name, mtime)


class FolderOffer(NamedTuple):
    """
    DIR: make a folder, named like a file (a relative path; the receiver
    makes it safe), so that a folder with nothing in it to send still
    arrives.  The id only pairs the offer with its C{FAK:} answer.
    """

    TAG = b"DIR:"
    _FIXED = struct.Struct("!16s")

    transferID: bytes
    name: str

    def encode(self) -> bytes:
        return b"".join(
            (self.TAG, self._FIXED.pack(self.transferID), sized(self.name.encode("utf-8")))
        )

    @classmethod
    def decode(cls, body: memoryview) -> FolderOffer:
        reader = Reader(body)
        (transferID,) = reader.unpack(cls._FIXED)
        name = decodeText(reader, 1, MAX_FILE_NAME, "folder name")
        reader.end()
        return cls(transferID, name)


class FileData(NamedTuple):
    """
    FDT: bytes of a file at an offset (A13).  The whole-file digest in
    L{FileEnd} vouches for them; C{payload} is a view, not a copy.
    """

    TAG = b"FDT:"
    HEADER = struct.Struct("!16sQ")

    transferID: bytes
    offset: int
    payload: bytes | memoryview

    def encode(self) -> bytes:
        return b"".join(
            (self.TAG, self.HEADER.pack(self.transferID, self.offset), self.payload)
        )

    @classmethod
    def decode(cls, body: memoryview) -> FileData:
        if len(body) < cls.HEADER.size:
            raise ProtocolError("truncated file data")
        transferID, offset = cls.HEADER.unpack_from(body)
        return cls(transferID, offset, body[cls.HEADER.size :])


class FileEnd(NamedTuple):
    """
    FEN: every byte of the file was handed out; its SHA-256, computed while
    reading, covers the whole file as this attempt read it.
    """

    TAG = b"FEN:"
    _LAYOUT = struct.Struct("!16s32s")

    transferID: bytes
    digest: bytes

    def encode(self) -> bytes:
        return self.TAG + self._LAYOUT.pack(*self)

    @classmethod
    def decode(cls, body: memoryview) -> FileEnd:
        reader = Reader(body)
        values = reader.unpack(cls._LAYOUT)
        reader.end()
        return cls(*values)


_STATUSES_WITH_RANGES = frozenset({FILE_PROGRESS, FILE_RESUME})
_STATUSES_WITH_NAME = frozenset({FILE_COMPLETE, FILE_ALREADY_STORED})


def _detailBounds(status: int) -> tuple[int, int]:
    """
    How many bytes the detail of a C{FAK:} with C{status} may have: the
    stored name of a file that is stored, the receiver's sentence of a
    refusal, nothing otherwise.
    """
    if status in _STATUSES_WITH_NAME:
        return 1, MAX_FILE_NAME
    if status == FILE_REFUSED:
        return 0, MAX_REFUSAL_TEXT
    return 0, 0


def _reasonFits(status: int, reason: int) -> bool:
    """
    A refusal has one of L{REFUSAL_REASONS}; every other answer has 0.
    """
    return reason in REFUSAL_REASONS if status == FILE_REFUSED else reason == 0


class FileAck(NamedTuple):
    """
    FAK: the receiver's word on a transfer: byte ranges written (progress)
    or already held (the answer to an offer); stored now or stored by an
    earlier transfer, with the name it is stored under; restart; or
    refused, with a reason code and the receiver's sentence.

    @ivar reason: for refused, one of L{REFUSAL_REASONS}; otherwise 0.
    @ivar detail: for stored and already stored, the stored name (a path
        relative to the receiver's inbox, C{/}-separated); for refused,
        the receiver's sentence, at most L{MAX_REFUSAL_TEXT} bytes;
        otherwise empty.  It comes from the peer: clean it
        (L{spc.text.withoutControls}) before showing it.
    """

    TAG = b"FAK:"
    _FIXED = struct.Struct("!16sB")
    _RANGE = struct.Struct("!QQ")

    transferID: bytes
    status: int
    ranges: tuple[tuple[int, int], ...] = ()
    reason: int = 0
    detail: str = ""

    def encode(self) -> bytes:
        if self.ranges and self.status not in _STATUSES_WITH_RANGES:
            raise ValueError("only progress and resume answers carry ranges")
        if not _reasonFits(self.status, self.reason):
            raise ValueError("a reason goes with a refusal, and only with one")
        return b"".join(
            [self.TAG, self._FIXED.pack(self.transferID, self.status),
             *encodeRanges(self._RANGE, self.ranges), _U8.pack(self.reason),
             encodeText(self.detail, *_detailBounds(self.status), "file answer detail")]
        )

    @classmethod
    def decode(cls, body: memoryview) -> FileAck:
        reader = Reader(body)
        transferID, status = reader.unpack(cls._FIXED)
        if status not in FILE_STATUSES:
            raise ProtocolError(f"unknown file status {status}")
        ranges = decodeRanges(reader, cls._RANGE)
        if ranges and status not in _STATUSES_WITH_RANGES:
            raise ProtocolError(f"ranges in a file answer of status {status}")
        reason = reader.u8()
        if not _reasonFits(status, reason):
            raise ProtocolError(f"refusal reason {reason} with file status {status}")
        detail = decodeText(reader, *_detailBounds(status), "file answer detail")
        reader.end()
        return cls(transferID, status, ranges, reason, detail)
