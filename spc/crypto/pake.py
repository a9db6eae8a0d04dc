# -*- test-case-name: tests.unit.test_pairing -*-
"""
The cryptography of a pairing (amendment A20): SPAKE2, keyed by a code's
words, and the keys that follow from it.

SPAKE2 is the C{spake2} package (the implementation magic-wormhole uses),
in its default group (Ed25519) with the side identities
C{"spc-pair-client"} (side A) and C{"spc-pair-server"} (side B); no group
arithmetic is done here.  Its key K is shared only by two sides that used
the same password, and an active attacker who does not know the password
learns from one run whether one guess was right, nothing more: a recorded
exchange cannot be tested against passwords offline.

From K, for each direction, C{LExpand(K, "pair c2s" or "pair s2c", "", 64)}
gives a sealing key and a MAC key.  A side seals one plaintext under its
sealing key (ChaCha20-Poly1305; the key is used once, so the nonce is
zero) and confirms the transcript with its MAC key.  Pure functions over
bytes, and one small object for the SPAKE2 state.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Callable, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from spake2 import SPAKE2_A, SPAKE2_B, SPAKEError
from spake2.ed25519_basic import NotOnCurve

from spc.crypto.keyschedule import expand
from spc.errors import AuthenticationFailed, ProtocolError

__all__ = [
    "CLIENT_IDENTITY",
    "Exchange",
    "MESSAGE_SIZE",
    "PairKeys",
    "SERVER_IDENTITY",
    "confirmation",
    "confirmed",
    "openBox",
    "pairKeys",
    "sealBox",
    "transcriptHash",
]

CLIENT_IDENTITY = b"spc-pair-client"
SERVER_IDENTITY = b"spc-pair-server"
MESSAGE_SIZE = 33
"""
A SPAKE2 message: its side byte (C{A} or C{B}) and a 32-byte group element.
"""
SEAL_OVERHEAD = 16
_NONCE = bytes(12)
_KEY_SIZE = 32


class Exchange:
    """
    One side's SPAKE2 run: L{message} to send, then L{finish} with the
    peer's.  A run is used once, as the library requires.

    @ivar message: this side's SPAKE2 message.
    """

    def __init__(
        self, isClient: bool, password: bytes, random: Callable[[int], bytes] = os.urandom
    ) -> None:
        side = SPAKE2_A if isClient else SPAKE2_B
        self._spake = side(
            password, idA=CLIENT_IDENTITY, idB=SERVER_IDENTITY, entropy_f=random
        )
        self.message: bytes = self._spake.start()

    def finish(self, peerMessage: bytes) -> bytes:
        """
        @return: K, the SPAKE2 key; both sides get the same K only if they
            used the same password.
        @raise ProtocolError: if the peer's message is not a group element
            of the other side.  The library reports a bad element in
            several ways of its own (C{ValueError}, its C{SPAKEError} and
            C{NotOnCurve}); each means the same here.
        """
        if len(peerMessage) != MESSAGE_SIZE:
            raise ProtocolError(f"a SPAKE2 message of {len(peerMessage)} bytes")
        try:
            return self._spake.finish(peerMessage)
        except (ValueError, SPAKEError, NotOnCurve):
            raise ProtocolError("the peer's SPAKE2 message is not valid") from None

    def __repr__(self) -> str:
        return "<Exchange (redacted)>"


class PairKeys(NamedTuple):
    """
    One direction's keys.

    @ivar seal: the ChaCha20-Poly1305 key of its one sealed box.
    @ivar mac: the key of its transcript confirmation.
    """

    seal: bytes
    mac: bytes

    def __repr__(self) -> str:
        return "<PairKeys (redacted)>"


def pairKeys(key: bytes) -> tuple[PairKeys, PairKeys]:
    """
    @return: the client-to-server and the server-to-client keys derived
        from K.
    """
    made = []
    for label in (b"pair c2s", b"pair s2c"):
        both = expand(key, label, b"", 2 * _KEY_SIZE)
        made.append(PairKeys(both[:_KEY_SIZE], both[_KEY_SIZE:]))
    return made[0], made[1]


def transcriptHash(*framedFrames: bytes) -> bytes:
    """
    H(F1 ‖ PAIR start ‖ PAIR answer), the frames as sent, prefixes
    included.
    """
    digest = hashlib.sha256()
    for frame in framedFrames:
        digest.update(frame)
    return digest.digest()


def sealBox(keys: PairKeys, header: bytes, plaintext: bytes) -> bytes:
    """
    Seal a direction's one plaintext, its frame header authenticated too.
    """
    return ChaCha20Poly1305(keys.seal).encrypt(_NONCE, plaintext, header)


def openBox(keys: PairKeys, header: bytes, sealed: bytes) -> bytes:
    """
    @raise AuthenticationFailed: when it was not sealed under these keys:
        the two sides' K differ, so the passwords did, or it was changed.
    """
    try:
        return ChaCha20Poly1305(keys.seal).decrypt(_NONCE, sealed, header)
    except InvalidTag:
        raise AuthenticationFailed() from None


def confirmation(keys: PairKeys, transcript: bytes) -> bytes:
    """
    HMAC-SHA256 of the transcript hash under a direction's MAC key.
    """
    return hmac.new(keys.mac, transcript, hashlib.sha256).digest()


def confirmed(keys: PairKeys, transcript: bytes, mac: bytes) -> bool:
    """
    Whether C{mac} confirms C{transcript}, compared in constant time.
    """
    return hmac.compare_digest(confirmation(keys, transcript), mac)
