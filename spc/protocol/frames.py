# -*- test-case-name: tests.unit.test_frames -*-
"""
SPC/1 frame layouts: bytes in, named tuples out, and back.  The inner
records that protected frames carry are in L{spc.protocol.records}.

Every length the peer controls is checked against a named limit before
anything is sliced or allocated, parsing is strict (exact sizes, no trailing
bytes, no unknown values), and every failure is a L{ProtocolError}; nothing
else escapes a decoder, whatever the input.  The byte-by-byte description is
C{docs/protocol.rst}.

No cryptography and no I/O: callers seal and open protected frames with
L{spc.crypto.suites} and write bytes themselves.
"""

from __future__ import annotations

import struct
from typing import Callable, NamedTuple, Union

from spc.errors import ProtocolError
from spc.protocol.timers import Timers

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
PAIR = 0x05  # the frames of a pairing (amendment A20), in spc.protocol.pairframes
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

# Inner records: the sizes the frame limits depend on (the records
# themselves are in spc.protocol.records).
TAG_SIZE = 4
FRAGMENT_HEADER = struct.Struct("!QIIQB32s")
FRAGMENT_HEADER_SIZE = FRAGMENT_HEADER.size
MIN_FRAGMENT_SIZE = 16 * 1024
MAX_FRAGMENT_SIZE = 1024 * 1024
DEFAULT_FRAGMENT_SIZE = 256 * 1024

# Alert codes: deliberately coarse, so a refusal is no oracle.
ALERT_UNSUPPORTED_VERSION = 1
ALERT_HANDSHAKE_FAILURE = 2
ALERT_BUSY = 3
ALERT_TIMEOUT = 4
ALERT_NO_INVITE = 5  # pairing: no open invite has the code's slot
ALERT_WRONG_CODE = 6  # pairing: the code's words were wrong; the invite is used up
ALERT_CODES = frozenset({1, 2, 3, 4, 5, 6})

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


class Reader:
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


def sized(value: bytes) -> bytes:
    """
    A variable field as encoded: its u16 length, then its bytes.
    """
    return _U16.pack(len(value)) + value


# Fields that inner records share (spc.protocol.records, spc.protocol.filerecords).

MAX_ACK_RANGES = 64


def encodeRanges(layout: struct.Struct, ranges) -> list[bytes]:
    """
    A range list as sent: a u16 count, then each range in C{layout}.

    @raise ValueError: for more than L{MAX_ACK_RANGES} ranges.
    """
    if len(ranges) > MAX_ACK_RANGES:
        raise ValueError("too many ranges for one acknowledgement")
    return [_U16.pack(len(ranges)), *(layout.pack(*pair) for pair in ranges)]


def decodeRanges(reader: Reader, layout: struct.Struct) -> tuple[tuple[int, int], ...]:
    """
    A range list, its count checked before any range is read.
    """
    (count,) = reader.unpack(_U16)
    if count > MAX_ACK_RANGES:
        raise ProtocolError("too many ranges in an acknowledgement")
    return tuple(reader.unpack(layout) for _ in range(count))


def encodeText(text: str, low: int, high: int, what: str) -> bytes:
    """
    A UTF-8 text field as sent, its length bounded as L{decodeText} bounds
    it.

    @raise ValueError: for a length outside C{low .. high} bytes.
    """
    raw = text.encode("utf-8")
    if not low <= len(raw) <= high:
        raise ValueError(f"{what} of {len(raw)} bytes, not {low} to {high}")
    return sized(raw)


def decodeText(reader: Reader, low: int, high: int, what: str) -> str:
    """
    A UTF-8 text field, its length checked before it is read.
    """
    try:
        return reader.sized(low, high, what).decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"{what} is not UTF-8") from None


def _start(body: bytes | memoryview, frameType: int) -> Reader:
    reader = Reader(body)
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
                sized(self.hostKey),
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
                sized(self.identityKey),
                sized(self.exchangeKey),
                sized(self.encryptedSecret),
            )
        )

    def encode(self) -> bytes:
        return self.unsigned() + sized(self.signature)

    @classmethod
    def decode(cls, body: bytes | memoryview) -> ClientAuth:
        reader = Reader(body)
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

    @property
    def seconds(self) -> Timers:
        """
        The timers in seconds: milliseconds are the wire's unit only.
        """
        return Timers.fromMilliseconds(self)


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
        reader = Reader(body)
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
        if version != WIRE_VERSION:
            raise ProtocolError(f"wire version {version} not supported")
        if kind != PROTECTED:
            raise ProtocolError(f"frame type 0x{kind:02x} not allowed after keys")
        if flags:
            raise ProtocolError("reserved flags set")
        return cls(suite, session, channel, epoch, seq)
