# -*- test-case-name: tests.unit.test_keyschedule -*-
"""
The SPC/1 key schedule: every secret spc uses comes from HKDF-SHA256 here.

Each derivation has its own ASCII label, written into HKDF-Expand's C{info}
as C{"SPC/1 " + label + 0x00 + context}.  The 0x00 ends the label, so no label
is a prefix of another, and every context is fixed-length or last, so two
derivations can never share an C{info} (the idea of TLS 1.3's
HKDF-Expand-Label).  Keys are separated by suite, channel, direction,
connection transcript and epoch; see C{docs/protocol.rst}.

Pure functions over bytes: nothing here touches the network, the clock or the
randomness source.
"""

from __future__ import annotations

import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

__all__ = [
    "CLIENT_TO_SERVER",
    "SERVER_TO_CLIENT",
    "TrafficSecrets",
    "connectionSecret",
    "expand",
    "extract",
    "finishedKey",
    "handshakeSecret",
    "hkdfExpand",
    "initialEpochSecret",
    "joinSecret",
    "rotationConfirmKey",
    "rotationEpochSecret",
    "sessionID",
    "trafficSecrets",
]

HASH_LENGTH = 32
SESSION_ID_LENGTH = 16
PREFIX = b"SPC/1 "
HANDSHAKE_SALT = b"SPC/1 hs"

CLIENT_TO_SERVER = b"c2s"
SERVER_TO_CLIENT = b"s2c"

_U32 = struct.Struct("!I")
_SUITE_CHANNEL = struct.Struct("!BH")


def extract(salt: bytes, ikm: bytes) -> bytes:
    """
    HKDF-Extract-SHA256 (RFC 5869 section 2.2).
    """
    return HKDF.extract(hashes.SHA256(), salt, ikm)


def hkdfExpand(prk: bytes, info: bytes, length: int) -> bytes:
    """
    HKDF-Expand-SHA256 (RFC 5869 section 2.3).
    """
    return HKDFExpand(hashes.SHA256(), length, info).derive(prk)


def expand(secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """
    HKDF-Expand with the labelled C{info} that keeps every derivation in its
    own domain.
    """
    return hkdfExpand(secret, b"".join((PREFIX, label, b"\x00", context)), length)


def handshakeSecret(sharedSecret: bytes, transportedSecret: bytes) -> bytes:
    """
    HS: both the X25519 result and the RSA-transported secret are needed,
    so a later theft of the server's RSA key alone decrypts nothing recorded.
    """
    return extract(HANDSHAKE_SALT, sharedSecret + transportedSecret)


def sessionID(handshake: bytes, th2: bytes) -> bytes:
    """
    The public handle of a new session, bound to its transcript.
    """
    return expand(handshake, b"sid", th2, SESSION_ID_LENGTH)


def finishedKey(secret: bytes, th2: bytes) -> bytes:
    """
    The key of the server's Finished MAC, from HS for a new session and from
    the join secret for a join.
    """
    return expand(secret, b"s fin", th2, HASH_LENGTH)


def initialEpochSecret(handshake: bytes, thConn: bytes) -> bytes:
    """
    S_0, the first epoch secret of a new session.
    """
    return expand(handshake, b"epoch", _U32.pack(0) + thConn, HASH_LENGTH)


def joinSecret(
    epochSecret: bytes,
    session: bytes,
    epoch: int,
    sharedSecret: bytes,
    transportedSecret: bytes,
) -> bytes:
    """
    JS for a connection joining a session at C{epoch}: only a holder of the
    session's epoch secret, who also ran this connection's fresh exchange,
    can compute it.
    """
    salt = expand(epochSecret, b"join", session + _U32.pack(epoch), HASH_LENGTH)
    return extract(salt, sharedSecret + transportedSecret)


def connectionSecret(secret: bytes, thConn: bytes) -> bytes:
    """
    cs, kept for the connection's lifetime, from HS (new) or JS (join).
    """
    return expand(secret, b"conn", thConn, HASH_LENGTH)


class TrafficSecrets:
    """
    The key and IV for one connection, direction and epoch.

    @ivar key: the suite key.
    @ivar iv: the per-key IV (empty for suites that draw a random IV).
    """

    __slots__ = ("key", "iv")

    def __init__(self, key: bytes, iv: bytes) -> None:
        self.key = key
        self.iv = iv

    def __repr__(self) -> str:
        return "<TrafficSecrets (redacted)>"


def trafficSecrets(
    epochSecret: bytes,
    connection: bytes,
    suiteID: int,
    channel: int,
    direction: bytes,
    thConn: bytes,
    keyLength: int,
    ivLength: int,
) -> TrafficSecrets:
    """
    K = Extract(S_x, cs), then key and IV expanded with a context of suite,
    channel, direction and connection transcript: no key is ever used with
    two algorithms, in two directions or on two connections.
    """
    prk = extract(epochSecret, connection)
    context = _SUITE_CHANNEL.pack(suiteID, channel) + direction + thConn
    key = expand(prk, b"key", context, keyLength)
    iv = expand(prk, b"iv", context, ivLength) if ivLength else b""
    return TrafficSecrets(key, iv)


def rotationEpochSecret(
    previous: bytes,
    newEpoch: int,
    rotationSecret: bytes,
    sharedSecret: bytes,
    rotationTranscript: bytes,
) -> bytes:
    """
    S_n: the chain only moves forward (salted by S_e) and mixes the
    RSA-transported secret with a fresh X25519 result.
    """
    prk = extract(previous, rotationSecret + sharedSecret)
    return expand(prk, b"epoch", _U32.pack(newEpoch) + rotationTranscript, HASH_LENGTH)


def rotationConfirmKey(epochSecret: bytes) -> bytes:
    """
    The key of the client's RKA confirmation, proving it derived S_n.
    """
    return expand(epochSecret, b"rk c", b"", HASH_LENGTH)
