# -*- test-case-name: tests.unit.test_pairing -*-
"""
The PAIR frames (amendment A20): bytes in, named tuples out, and back.

A pairing runs on a connection's first channel in place of F2 and F3: the
client answers F1 with a PAIR frame, and four PAIR frames follow in turn,
told apart by their step byte.  Parsing is as strict as for the handshake
frames (L{spc.protocol.frames}): exact sizes, ranges checked before
slicing, no trailing bytes, and every failure a L{ProtocolError}.  The
byte-by-byte description is C{docs/protocol.rst}, section 14.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from spc.crypto.pake import MESSAGE_SIZE, SEAL_OVERHEAD
from spc.errors import ProtocolError
from spc.protocol import frames

__all__ = [
    "ClientKey",
    "MAX_NAME",
    "PairAnswer",
    "PairStart",
    "SealedKey",
    "ServerKey",
    "STEP_ANSWER",
    "STEP_CLIENT_KEY",
    "STEP_SERVER_KEY",
    "STEP_START",
    "header",
    "isPairFrame",
]

STEP_START = 1
STEP_ANSWER = 2
STEP_CLIENT_KEY = 3
STEP_SERVER_KEY = 4

MAX_NAME = 64
"""
Bytes of the name the receiver gives the client (UTF-8).
"""

FLAG_PERMANENT = 0x01

_HEADER = struct.Struct("!BBB")
_SLOT = struct.Struct("!H")
_U8 = struct.Struct("!B")


def header(step: int) -> bytes:
    """
    The first three bytes of a PAIR frame: version, type and step; the
    associated data of a sealed key.
    """
    return _HEADER.pack(frames.WIRE_VERSION, frames.PAIR, step)


def isPairFrame(body: bytes | memoryview) -> bool:
    """
    Whether a pre-authentication frame is a PAIR frame, by its first two
    bytes alone.
    """
    return len(body) >= 2 and body[0] == frames.WIRE_VERSION and body[1] == frames.PAIR


def _start(body: bytes | memoryview, step: int) -> frames.Reader:
    if len(body) > frames.MAX_BODY_PRE:
        raise ProtocolError("PAIR frame too large")
    reader = frames.Reader(body)
    version, kind, got = reader.unpack(_HEADER)
    if (version, kind) != (frames.WIRE_VERSION, frames.PAIR):
        raise ProtocolError("not a PAIR frame")
    if got != step:
        raise ProtocolError(f"PAIR step {got} where step {step} was due")
    return reader


def _message(reader: frames.Reader, side: bytes) -> bytes:
    message = reader.take(MESSAGE_SIZE)
    if message[:1] != side:
        raise ProtocolError("a SPAKE2 message from the wrong side")
    return message


class PairStart(NamedTuple):
    """
    Step 1, client to server: the invite's slot and the client's SPAKE2
    message.
    """

    slot: int
    message: bytes

    def encode(self) -> bytes:
        return header(STEP_START) + _SLOT.pack(self.slot) + self.message

    @classmethod
    def decode(cls, body: bytes | memoryview) -> PairStart:
        reader = _start(body, STEP_START)
        (slot,) = reader.unpack(_SLOT)
        if slot == 0:
            raise ProtocolError("slot 0 names no invite")
        message = _message(reader, b"A")
        reader.end()
        return cls(slot, message)


class PairAnswer(NamedTuple):
    """
    Step 2, server to client: the server's SPAKE2 message.
    """

    message: bytes

    def encode(self) -> bytes:
        return header(STEP_ANSWER) + self.message

    @classmethod
    def decode(cls, body: bytes | memoryview) -> PairAnswer:
        reader = _start(body, STEP_ANSWER)
        message = _message(reader, b"B")
        reader.end()
        return cls(message)


class SealedKey(NamedTuple):
    """
    Steps 3 (client) and 4 (server): a sealed L{ClientKey} or L{ServerKey}.
    """

    step: int
    sealed: bytes

    def encode(self) -> bytes:
        return header(self.step) + frames.sized(self.sealed)

    @classmethod
    def decode(cls, body: bytes | memoryview, step: int) -> SealedKey:
        reader = _start(body, step)
        low = 2 + frames.MIN_SPKI_SIZE + frames.MAC_SIZE + SEAL_OVERHEAD
        high = low + frames.MAX_SPKI_SIZE - frames.MIN_SPKI_SIZE
        if step == STEP_SERVER_KEY:
            low, high = low + 3, high + 3 + MAX_NAME
        sealed = reader.sized(low, high, "sealed key")
        reader.end()
        return cls(step, sealed)


class ClientKey(NamedTuple):
    """
    What the client seals: its identity key (SPKI DER) and its
    confirmation of the transcript.
    """

    identityKey: bytes
    mac: bytes

    def encode(self) -> bytes:
        return frames.sized(self.identityKey) + self.mac

    @classmethod
    def decode(cls, plaintext: bytes) -> ClientKey:
        reader = frames.Reader(plaintext)
        identityKey = reader.sized(frames.MIN_SPKI_SIZE, frames.MAX_SPKI_SIZE, "identity key")
        mac = reader.take(frames.MAC_SIZE)
        reader.end()
        return cls(identityKey, mac)


class ServerKey(NamedTuple):
    """
    What the server seals: its host key (SPKI DER), whether it keeps the
    client's key beyond this connection's session (C{permanent}), the
    name it gives the client, and its confirmation of the transcript.
    """

    hostKey: bytes
    permanent: bool
    name: str
    mac: bytes

    def encode(self) -> bytes:
        return b"".join(
            (
                frames.sized(self.hostKey),
                _U8.pack(FLAG_PERMANENT if self.permanent else 0),
                frames.encodeText(self.name, 0, MAX_NAME, "name"),
                self.mac,
            )
        )

    @classmethod
    def decode(cls, plaintext: bytes) -> ServerKey:
        reader = frames.Reader(plaintext)
        hostKey = reader.sized(frames.MIN_SPKI_SIZE, frames.MAX_SPKI_SIZE, "host key")
        flags = reader.u8()
        if flags & ~FLAG_PERMANENT:
            raise ProtocolError("reserved flags set")
        name = frames.decodeText(reader, 0, MAX_NAME, "name")
        mac = reader.take(frames.MAC_SIZE)
        reader.end()
        return cls(hostKey, bool(flags), name, mac)
