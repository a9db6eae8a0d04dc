# -*- test-case-name: tests.unit.test_records -*-
"""
SPC/1 inner records: what a protected frame carries once it is opened.

Inner records are only ever parsed after authentication, so they live apart
from the framing and handshake frames of L{spc.protocol.frames}, which a peer reaches
before it has proved anything.  Parsing is as strict as there (exact sizes,
no trailing bytes, no unknown values) and every failure is a
L{ProtocolError}.  The byte-by-byte description is C{docs/protocol.rst}.
"""

from __future__ import annotations

import hashlib
import struct
from typing import NamedTuple, Union

from spc.errors import ProtocolError
from spc.protocol.filerecords import FileAck, FileData, FileEnd, FileOffer, FolderOffer
from spc.protocol.frames import (
    EXCHANGE_RSA_OUTPUT_SIZE,
    FRAGMENT_HEADER,
    FRAGMENT_HEADER_SIZE,
    TAG_SIZE,
    Reader,
    decodeRanges,
    encodeRanges,
    sized,
)

# Limits and sentinels of record fields.
MAX_BYE_REASON = 255
NO_EPOCH = 0xFFFFFFFF
NO_SEQUENCE = 0xFFFFFFFFFFFFFFFF

# Message kinds inside MSG: fragments.
KIND_TEXT = 0x01
KIND_BINARY = 0x03
MESSAGE_KINDS = frozenset({KIND_TEXT, KIND_BINARY})

# ACK: statuses.
ACK_PROGRESS = 0
ACK_COMPLETE = 1
ACK_ABANDONED = 2
ACK_BUSY = 3
ACK_STATUSES = frozenset(range(4))

# RKR: reasons.
REKEY_VOLUME = 1
REKEY_AGE = 2

# BYE: codes and scopes.
BYE_NORMAL = 0
BYE_PROTOCOL_ERROR = 1
BYE_REKEY_FAILED = 2
BYE_DESYNC = 3
BYE_RESOURCE_LIMIT = 4
BYE_REPLACED = 5
BYE_SHUTTING_DOWN = 6
BYE_UNAUTHORIZED = 7
BYE_CODES = frozenset(range(8))
SCOPE_CHANNEL = 0
SCOPE_SESSION = 1

_U8 = struct.Struct("!B")
_U16 = struct.Struct("!H")


def _encodeFixed(self) -> bytes:
    return self.TAG + self._LAYOUT.pack(*self)


def _decodeFixed(cls, body: memoryview):
    reader = Reader(body)
    values = reader.unpack(cls._LAYOUT)
    reader.end()
    return cls(*values)


def _fixedLayout(layout: str):
    """
    Give a record whose body is one fixed C{struct} layout, field by field,
    its strict encoder and decoder.
    """

    def decorate(cls):
        cls._LAYOUT = struct.Struct(layout)
        cls.encode = _encodeFixed
        cls.decode = classmethod(_decodeFixed)
        return cls

    return decorate


# Inner records: a 4-byte ASCII tag, then the body.  They are only ever
# decoded after authentication; strictness here catches bugs in honest
# peers and keeps a compromised one inside the limits.


def messageDigest(kind: int, data: bytes) -> bytes:
    """
    The digest every fragment of a message carries: it binds the kind and
    length too, so a fragment cannot be moved into another message.
    """
    digest = hashlib.sha256(bytes((kind,)) + len(data).to_bytes(8, "big"))
    digest.update(data)
    return digest.digest()


class Fragment(NamedTuple):
    """
    MSG: one piece of a message; the user's "MSG:" marker, now a type tag
    checked after authentication.  C{payload} is a view into the decrypted
    frame, not a copy.
    """

    TAG = b"MSG:"

    msgID: int
    index: int
    count: int
    totalLength: int
    kind: int
    digest: bytes
    payload: bytes | memoryview

    def encode(self) -> bytes:
        return b"".join((self.TAG, self.header(), self.payload))

    def header(self) -> bytes:
        """
        Tag-less header bytes, for callers that gather the payload
        themselves.
        """
        return FRAGMENT_HEADER.pack(
            self.msgID, self.index, self.count, self.totalLength, self.kind,
            self.digest,
        )

    @classmethod
    def decode(cls, body: memoryview) -> Fragment:
        if len(body) < FRAGMENT_HEADER_SIZE:
            raise ProtocolError("truncated fragment")
        msgID, index, count, total, kind, digest = FRAGMENT_HEADER.unpack_from(body)
        if kind not in MESSAGE_KINDS:
            raise ProtocolError(f"unknown message kind {kind}")
        if count == 0 or index >= count:
            raise ProtocolError("fragment index out of range")
        return cls(msgID, index, count, total, kind, digest, body[FRAGMENT_HEADER_SIZE:])


class Ack(NamedTuple):
    """
    ACK: which fragments of a message arrived (ranges of indexes), or that
    it was delivered, abandoned, or refused for want of memory (busy: the
    sender may send it again later).
    """

    TAG = b"ACK:"
    _FIXED = struct.Struct("!QB")
    _RANGE = struct.Struct("!II")

    msgID: int
    status: int
    ranges: tuple[tuple[int, int], ...] = ()

    def encode(self) -> bytes:
        return b"".join(
            [self.TAG, self._FIXED.pack(self.msgID, self.status),
             *encodeRanges(self._RANGE, self.ranges)]
        )

    @classmethod
    def decode(cls, body: memoryview) -> Ack:
        reader = Reader(body)
        msgID, status = reader.unpack(cls._FIXED)
        if status not in ACK_STATUSES:
            raise ProtocolError(f"unknown ACK status {status}")
        ranges = decodeRanges(reader, cls._RANGE)
        reader.end()
        return cls(msgID, status, ranges)


class _HeartbeatLayout(NamedTuple):
    hbID: int
    originTime: int
    committedEpoch: int
    pendingEpoch: int
    lastSeqReceived: int
    nextTxMsgID: int
    rxLowMsgID: int


@_fixedLayout("!IQIIQQQ")
class _Heartbeat(_HeartbeatLayout):
    TAG = b""


class HeartbeatRequest(_Heartbeat):
    """
    HBQ: a liveness probe carrying the sender's view of epochs, sequence
    numbers and message watermarks, so desyncs surface within one interval.
    """

    TAG = b"HBQ:"


class HeartbeatResponse(_Heartbeat):
    """
    HBR: the answer to an HBQ, echoing its id and origin time.
    """

    TAG = b"HBR:"


class RotationOffer(NamedTuple):
    """
    RKO: a new epoch's secret, RSA-OAEP-encrypted to the client's exchange
    key, with the server's fresh X25519 share.
    """

    TAG = b"RKO:"
    _FIXED = struct.Struct("!I32s")

    newEpoch: int
    ephemeral: bytes
    ciphertext: bytes

    def encode(self) -> bytes:
        return b"".join(
            (self.TAG, self._FIXED.pack(self.newEpoch, self.ephemeral), sized(self.ciphertext))
        )

    @classmethod
    def decode(cls, body: memoryview) -> RotationOffer:
        reader = Reader(body)
        newEpoch, ephemeral = reader.unpack(cls._FIXED)
        ciphertext = reader.sized(
            EXCHANGE_RSA_OUTPUT_SIZE, EXCHANGE_RSA_OUTPUT_SIZE, "rotation secret"
        )
        reader.end()
        return cls(newEpoch, ephemeral, ciphertext)


@_fixedLayout("!I32s32s")
class RotationAck(NamedTuple):
    """
    RKA: the client's X25519 share and its proof that it derived the new
    epoch secret.
    """

    TAG = b"RKA:"

    newEpoch: int
    ephemeral: bytes
    confirm: bytes


@_fixedLayout("!I")
class RotationCommit(NamedTuple):
    """
    RKC: the server switched to the new epoch; sent under it.
    """

    TAG = b"RKC:"

    newEpoch: int


@_fixedLayout("!IB")
class RotationAbort(NamedTuple):
    """
    RKX: the offer of C{newEpoch} is rolled back; both sides stay put.
    """

    TAG = b"RKX:"

    newEpoch: int
    reason: int


class RotationRequest(NamedTuple):
    """
    RKR: the client asks for a rotation, because a key carried too much
    data or lived too long.
    """

    TAG = b"RKR:"

    reason: int

    def encode(self) -> bytes:
        return self.TAG + _U8.pack(self.reason)

    @classmethod
    def decode(cls, body: memoryview) -> RotationRequest:
        reader = Reader(body)
        reason = reader.u8()
        reader.end()
        if reason not in (REKEY_VOLUME, REKEY_AGE):
            raise ProtocolError(f"unknown rotation request reason {reason}")
        return cls(reason)


class Bye(NamedTuple):
    """
    BYE: an orderly close of one channel or the whole session, so that a
    close without it is known to be abnormal.
    """

    TAG = b"BYE:"
    _FIXED = struct.Struct("!HBB")

    code: int
    scope: int
    reason: str = ""

    def encode(self) -> bytes:
        reason = self.reason.encode("utf-8")
        if len(reason) > MAX_BYE_REASON:
            raise ValueError("BYE reason too long")
        return self.TAG + self._FIXED.pack(self.code, self.scope, len(reason)) + reason

    @classmethod
    def decode(cls, body: memoryview) -> Bye:
        reader = Reader(body)
        code, scope, size = reader.unpack(cls._FIXED)
        if code not in BYE_CODES or scope not in (SCOPE_CHANNEL, SCOPE_SESSION):
            raise ProtocolError("bad BYE")
        raw = reader.take(size)
        reader.end()
        try:
            reason = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("BYE reason is not UTF-8") from None
        return cls(code, scope, reason)


RECORD_TYPES: tuple[type, ...] = (
    Fragment,
    Ack,
    HeartbeatRequest,
    HeartbeatResponse,
    RotationOffer,
    RotationAck,
    RotationCommit,
    RotationAbort,
    RotationRequest,
    Bye,
    FileOffer,
    FileData,
    FileEnd,
    FileAck,
    FolderOffer,
)
Record = Union[RECORD_TYPES]
_RECORD_DECODERS = {kind.TAG: kind.decode for kind in RECORD_TYPES}


def decodeRecord(plaintext: bytes | memoryview) -> Record:
    """
    Dispatch an authenticated inner plaintext on its tag.
    """
    view = memoryview(plaintext)
    decoder = _RECORD_DECODERS.get(bytes(view[:TAG_SIZE]))
    if decoder is None:
        raise ProtocolError("unknown record tag")
    return decoder(view[TAG_SIZE:])
