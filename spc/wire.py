# -*- test-case-name: tests.test_wire -*-
"""
SPC/1 frame and record layouts: bytes in, named tuples out, and back.

Every length the peer controls is checked against a named limit before
anything is sliced or allocated, parsing is strict (exact sizes, no trailing
bytes, no unknown values), and every failure is a L{ProtocolError}; nothing
else escapes a decoder, whatever the input.  The byte-by-byte description is
C{docs/protocol.rst}.

No cryptography and no I/O: callers seal and open protected frames with
L{spc.suites} and write bytes themselves.
"""

from __future__ import annotations

import struct
from typing import Callable, NamedTuple, Union

from spc.errors import ProtocolError

# Framing.
LENGTH = struct.Struct("!I")
LENGTH_PREFIX_SIZE = LENGTH.size
WIRE_VERSION = 0x01
SUPPORTED_VERSIONS = (0x01,)
MAX_VERSIONS = 8

# Frame types (body byte 1).
SERVER_HELLO = 0x01
CLIENT_AUTH = 0x02
SERVER_FINISHED = 0x04
HS_ALERT = 0x0F
PROTECTED = 0x10

# Sizes of fixed fields.
NONCE_SIZE = 32
X25519_SIZE = 32
SESSION_ID_SIZE = 16
MAC_SIZE = 32
DIGEST_SIZE = 32
TRANSFER_ID_SIZE = 16
NEW_SESSION = bytes(SESSION_ID_SIZE)

# RSA public keys (SubjectPublicKeyInfo DER) and RSA outputs, 2048 to 4096
# bits.  The exchange key is always a fresh RSA-2048 key, which keeps the
# largest CLIENT_AUTH (4096-bit identity and server keys) under
# MAX_BODY_PRE.
MIN_SPKI_SIZE = 294
MAX_SPKI_SIZE = 550
EXCHANGE_SPKI_SIZE = 294
MIN_RSA_OUTPUT_SIZE = 256
MAX_RSA_OUTPUT_SIZE = 512
EXCHANGE_RSA_OUTPUT_SIZE = 256

# Frame body limits: before a connection's handshake completes, and after.
MAX_BODY_PRE = 2048
MAX_SUITE_OVERHEAD = 64
PROTECTED_HEADER = struct.Struct("!BBBB16sHIQ")
PROTECTED_HEADER_SIZE = PROTECTED_HEADER.size

# Inner records.
TAG_SIZE = 4
FRAGMENT_HEADER = struct.Struct("!QIIQB32s")
FRAGMENT_HEADER_SIZE = FRAGMENT_HEADER.size
MIN_FRAGMENT_SIZE = 16 * 1024
MAX_FRAGMENT_SIZE = 1024 * 1024
DEFAULT_FRAGMENT_SIZE = 64 * 1024
MAX_ACK_RANGES = 64
MAX_BYE_REASON = 255
NO_EPOCH = 0xFFFFFFFF
NO_SEQUENCE = 0xFFFFFFFFFFFFFFFF

# Alert codes: deliberately coarse, so a refusal is no oracle.
ALERT_UNSUPPORTED_VERSION = 1
ALERT_HANDSHAKE_FAILURE = 2
ALERT_BUSY = 3
ALERT_TIMEOUT = 4
ALERT_CODES = frozenset({1, 2, 3, 4})

# Message kinds inside MSG: fragments.
KIND_TEXT = 0x01
KIND_BINARY = 0x03
MESSAGE_KINDS = frozenset({KIND_TEXT, KIND_BINARY})

# ACK: statuses.
ACK_PROGRESS = 0
ACK_COMPLETE = 1
ACK_ABANDONED = 2

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
_VERSION_TYPE = struct.Struct("!BB")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_PARAMS = struct.Struct("!IHIIIIIQHI")
_FINISHED = struct.Struct("!BB16sI")
_HELLO_TAIL = struct.Struct("!BHH32s32s")


def maxInnerSize(fragmentSize: int) -> int:
    """
    The largest inner plaintext a connection accepts: one full fragment
    with its tag and header.
    """
    return TAG_SIZE + FRAGMENT_HEADER_SIZE + fragmentSize


def maxProtectedBody(maxInner: int) -> int:
    """
    The post-handshake frame cap, enforced on the length prefix.
    """
    return PROTECTED_HEADER_SIZE + MAX_SUITE_OVERHEAD + maxInner


def framed(body: bytes) -> bytes:
    """
    A frame as sent and as hashed into transcripts: length prefix and body.
    """
    return LENGTH.pack(len(body)) + body


class _Reader:
    """
    Strict cursor over a buffer: every read is bounded by what remains, and
    L{end} insists nothing remains.
    """

    __slots__ = ("_data", "_offset")

    def __init__(self, data: bytes | memoryview) -> None:
        self._data = memoryview(data)
        self._offset = 0

    def take(self, size: int) -> bytes:
        if size > len(self._data) - self._offset:
            raise ProtocolError("truncated")
        start = self._offset
        self._offset += size
        return bytes(self._data[start : self._offset])

    def unpack(self, layout: struct.Struct) -> tuple:
        if layout.size > len(self._data) - self._offset:
            raise ProtocolError("truncated")
        values = layout.unpack_from(self._data, self._offset)
        self._offset += layout.size
        return values

    def u8(self) -> int:
        return self.unpack(_U8)[0]

    def sized(self, low: int, high: int, what: str) -> bytes:
        (size,) = self.unpack(_U16)
        if not low <= size <= high:
            raise ProtocolError(f"{what} length {size} out of range")
        return self.take(size)

    def end(self) -> None:
        if self._offset != len(self._data):
            raise ProtocolError("trailing bytes")


def _sized(value: bytes) -> bytes:
    return _U16.pack(len(value)) + value


def _start(body: bytes | memoryview, frameType: int) -> _Reader:
    reader = _Reader(body)
    version, kind = reader.unpack(_VERSION_TYPE)
    if version != WIRE_VERSION:
        raise ProtocolError(f"wire version {version} not supported")
    if kind != frameType:
        raise ProtocolError(f"frame type 0x{kind:02x} where 0x{frameType:02x} was due")
    return reader


# Handshake frames.


class ServerHello(NamedTuple):
    """
    F1: the server's choice of suite for this port, its fresh X25519 share
    and its RSA host key (the user's "server sends its cipher choice and RSA
    public key").
    """

    versions: tuple[int, ...]
    suite: int
    channel: int
    channelCount: int
    nonce: bytes
    ephemeral: bytes
    hostKey: bytes

    def encode(self) -> bytes:
        return b"".join(
            (
                bytes((WIRE_VERSION, SERVER_HELLO, len(self.versions))),
                bytes(self.versions),
                _HELLO_TAIL.pack(
                    self.suite,
                    self.channel,
                    self.channelCount,
                    self.nonce,
                    self.ephemeral,
                ),
                _sized(self.hostKey),
            )
        )

    @classmethod
    def decode(cls, body: bytes | memoryview) -> ServerHello:
        reader = _start(body, SERVER_HELLO)
        count = reader.u8()
        if not 1 <= count <= MAX_VERSIONS:
            raise ProtocolError("bad version list")
        versions = tuple(reader.take(count))
        suite, channel, channelCount, nonce, ephemeral = reader.unpack(_HELLO_TAIL)
        if channelCount == 0 or channel >= channelCount:
            raise ProtocolError("channel index out of range")
        hostKey = reader.sized(MIN_SPKI_SIZE, MAX_SPKI_SIZE, "host key")
        reader.end()
        return cls(versions, suite, channel, channelCount, nonce, ephemeral, hostKey)


class ClientAuth(NamedTuple):
    """
    F2: the client's answer on every connection (the user's "symmetric key
    encrypted to the RSA key, plus its own public key").

    C{session} is all zeros to ask for a new session, or the id of the
    session this connection joins at C{epoch}.  The signature covers every
    byte before its own length field, L{unsigned}; parsing is strict, so
    re-encoding a decoded frame gives back exactly the bytes received.
    """

    version: int
    nonce: bytes
    session: bytes
    epoch: int
    ephemeral: bytes
    identityKey: bytes
    exchangeKey: bytes
    encryptedSecret: bytes
    signature: bytes

    _FIXED = struct.Struct("!BBB32s16sI32s")

    def unsigned(self) -> bytes:
        """
        The body up to the signature's length field: what is signed.
        """
        return b"".join(
            (
                self._FIXED.pack(
                    WIRE_VERSION,
                    CLIENT_AUTH,
                    self.version,
                    self.nonce,
                    self.session,
                    self.epoch,
                    self.ephemeral,
                ),
                _sized(self.identityKey),
                _sized(self.exchangeKey),
                _sized(self.encryptedSecret),
            )
        )

    def encode(self) -> bytes:
        return self.unsigned() + _sized(self.signature)

    @classmethod
    def decode(cls, body: bytes | memoryview) -> ClientAuth:
        reader = _Reader(body)
        fixed = reader.unpack(cls._FIXED)
        if fixed[0] != WIRE_VERSION or fixed[1] != CLIENT_AUTH:
            raise ProtocolError("not a CLIENT_AUTH frame")
        identityKey = reader.sized(MIN_SPKI_SIZE, MAX_SPKI_SIZE, "identity key")
        exchangeKey = reader.sized(EXCHANGE_SPKI_SIZE, EXCHANGE_SPKI_SIZE, "exchange key")
        secret = reader.sized(MIN_RSA_OUTPUT_SIZE, MAX_RSA_OUTPUT_SIZE, "secret")
        signature = reader.sized(MIN_RSA_OUTPUT_SIZE, MAX_RSA_OUTPUT_SIZE, "signature")
        reader.end()
        return cls(*fixed[2:], identityKey, exchangeKey, secret, signature)


class Params(NamedTuple):
    """
    The session parameters the server announces in F3; the client checks
    them against its own bounds before using them.
    """

    heartbeatInterval: int = 5000
    heartbeatMissLimit: int = 3
    rotationInterval: int = 30000
    ackTimeout: int = 5000
    overlap: int = 10000
    maxInner: int = maxInnerSize(DEFAULT_FRAGMENT_SIZE)
    fragmentSize: int = DEFAULT_FRAGMENT_SIZE
    maxMessageSize: int = 64 * 1024 * 1024
    maxInflightMessages: int = 32
    reassemblyBudget: int = 128 * 1024 * 1024

    def encode(self) -> bytes:
        return _PARAMS.pack(*self)


PARAMS_SIZE = _PARAMS.size


class ServerFinished(NamedTuple):
    """
    F3: the session this connection now belongs to, its epoch and
    parameters, and the server's Finished MAC over the whole transcript.
    """

    session: bytes
    epoch: int
    params: Params
    mac: bytes

    def unsigned(self) -> bytes:
        """
        The body before the MAC: what the MAC covers, after F1 and F2.
        """
        return (
            _FINISHED.pack(WIRE_VERSION, SERVER_FINISHED, self.session, self.epoch)
            + self.params.encode()
        )

    def encode(self) -> bytes:
        return self.unsigned() + self.mac

    @classmethod
    def decode(cls, body: bytes | memoryview) -> ServerFinished:
        reader = _Reader(body)
        version, kind, session, epoch = reader.unpack(_FINISHED)
        if version != WIRE_VERSION or kind != SERVER_FINISHED:
            raise ProtocolError("not a SERVER_FINISHED frame")
        params = Params(*reader.unpack(_PARAMS))
        mac = reader.take(MAC_SIZE)
        reader.end()
        return cls(session, epoch, params, mac)


class Alert(NamedTuple):
    """
    HS_ALERT: why a handshake was refused, in one coarse code; it is never
    authenticated, so its only effect is that the receiver closes.
    """

    code: int

    def encode(self) -> bytes:
        return bytes((WIRE_VERSION, HS_ALERT, self.code))

    @classmethod
    def decode(cls, body: bytes | memoryview) -> Alert:
        reader = _start(body, HS_ALERT)
        code = reader.u8()
        reader.end()
        if code not in ALERT_CODES:
            raise ProtocolError(f"unknown alert {code}")
        return cls(code)


HandshakeFrame = Union[ServerHello, ClientAuth, ServerFinished, Alert]
_HANDSHAKE_DECODERS: dict[int, Callable[[bytes | memoryview], HandshakeFrame]] = {
    SERVER_HELLO: ServerHello.decode,
    CLIENT_AUTH: ClientAuth.decode,
    SERVER_FINISHED: ServerFinished.decode,
    HS_ALERT: Alert.decode,
}


def decodeHandshake(body: bytes | memoryview) -> HandshakeFrame:
    """
    Decode any pre-authentication frame; the caller decides whether its
    type is allowed in the current state.
    """
    if len(body) > MAX_BODY_PRE:
        raise ProtocolError("handshake frame too large")
    if len(body) < 2 or body[0] != WIRE_VERSION:
        raise ProtocolError("not an SPC/1 frame")
    decoder = _HANDSHAKE_DECODERS.get(body[1])
    if decoder is None:
        raise ProtocolError(f"frame type 0x{body[1]:02x} not allowed before keys")
    return decoder(body)


# Protected frames.


_AAD = struct.Struct("!IBBBB16sHIQ")
AAD_SIZE = _AAD.size


def protectedAAD(
    bodyLength: int, suite: int, session: bytes, channel: int, epoch: int, seq: int
) -> bytes:
    """
    Length prefix and header of a protected frame: the bytes written before
    its suite body, and the associated data that authenticates them.
    """
    return _AAD.pack(
        bodyLength, WIRE_VERSION, PROTECTED, suite, 0, session, channel, epoch, seq
    )


class ProtectedHeader(NamedTuple):
    """
    The 34 clear bytes before a protected frame's suite body.  With the
    length prefix they are the AEAD's associated data, so every field is
    authenticated.
    """

    suite: int
    session: bytes
    channel: int
    epoch: int
    seq: int

    def aad(self, bodyLength: int) -> bytes:
        """
        The associated data of a frame whose body is C{bodyLength} long.
        """
        return protectedAAD(
            bodyLength, self.suite, self.session, self.channel, self.epoch, self.seq
        )

    @classmethod
    def decode(cls, body: bytes | memoryview) -> ProtectedHeader:
        """
        Decode the header at the start of a protected frame body; the suite
        body follows at L{PROTECTED_HEADER_SIZE}.
        """
        if len(body) < PROTECTED_HEADER_SIZE:
            raise ProtocolError("truncated protected frame")
        version, kind, suite, flags, session, channel, epoch, seq = (
            PROTECTED_HEADER.unpack_from(body)
        )
        if version != WIRE_VERSION or kind != PROTECTED:
            raise ProtocolError(f"frame type 0x{kind:02x} not allowed after keys")
        if flags:
            raise ProtocolError("reserved flags set")
        return cls(suite, session, channel, epoch, seq)


def _encodeFixed(self) -> bytes:
    return self.TAG + self._LAYOUT.pack(*self)


def _decodeFixed(cls, body: memoryview):
    reader = _Reader(body)
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
    it was delivered or abandoned.
    """

    TAG = b"ACK:"
    _FIXED = struct.Struct("!QBH")
    _RANGE = struct.Struct("!II")

    msgID: int
    status: int
    ranges: tuple[tuple[int, int], ...] = ()

    def encode(self) -> bytes:
        parts = [self.TAG, self._FIXED.pack(self.msgID, self.status, len(self.ranges))]
        parts.extend(self._RANGE.pack(start, count) for start, count in self.ranges)
        return b"".join(parts)

    @classmethod
    def decode(cls, body: memoryview) -> Ack:
        reader = _Reader(body)
        msgID, status, count = reader.unpack(cls._FIXED)
        if status not in (ACK_PROGRESS, ACK_COMPLETE, ACK_ABANDONED):
            raise ProtocolError(f"unknown ACK status {status}")
        if count > MAX_ACK_RANGES:
            raise ProtocolError("too many ACK ranges")
        ranges = tuple(reader.unpack(cls._RANGE) for _ in range(count))
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
            (self.TAG, self._FIXED.pack(self.newEpoch, self.ephemeral), _sized(self.ciphertext))
        )

    @classmethod
    def decode(cls, body: memoryview) -> RotationOffer:
        reader = _Reader(body)
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
        reader = _Reader(body)
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
        reader = _Reader(body)
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


Record = Union[
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
]
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
)
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
