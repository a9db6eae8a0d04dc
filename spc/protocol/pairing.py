# -*- test-case-name: tests.unit.test_pairing -*-
"""
PAIR (amendment A20): two machines that make trust from a one-time code,
sans-IO like the handshakes.

The client opens the receiver's first channel as for a session and reads
F1, but answers with PAIR frames instead of F2:

    1. client: the invite's slot and its SPAKE2 message;
    2. server: its SPAKE2 message; both now hold K, the same only if both
       used the code's words;
    3. client: sealed under its key from K, its identity key and a MAC of
       the transcript (F1 and frames 1 and 2);
    4. server: sealed likewise, its host key, whether it keeps the
       client's key, the client's name there, and its own MAC.

The server uses the invite up on frame 1, whatever follows: one attempt
per code.  A wrong code fails frame 3's seal (alert C{ALERT_WRONG_CODE});
a man in the middle who changed F1 fails its MAC, since F1 is no part of K
(alert C{ALERT_HANDSHAKE_FAILURE}).  No private-key operation happens:
SPAKE2, HKDF, an AEAD and an HMAC are the server's whole work.  What the
owners record (C{authorized_keys}, C{known_hosts}) they record only after
the peer's frame 3 or 4 checked out.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from spc.crypto import pake
from spc.errors import (
    HandshakeRefused,
    NoInvite,
    PairingRefused,
    ServerBusy,
    SPCError,
    WrongCode,
)
from spc.protocol import frames

__all__ = [
    "ClientPairingOwner",
    "Invite",
    "PairingDesk",
    "Paired",
    "ServerPairingOwner",
    "pairingRefusal",
]


class Invite(NamedTuple):
    """
    What the receiver's desk knows of a pending invite.

    @ivar slot: the number its code starts with.
    @ivar password: the code's words, as L{spc.protocol.paircode.PairCode.password} makes them.
    @ivar name: what the receiver will call the client, or C{""}.
    @ivar permanent: whether the receiver keeps the client's key beyond
        this connection's session (C{spc invite}, C{spc receive
        --remember}).
    """

    slot: int
    password: bytes
    name: str
    permanent: bool

    def __repr__(self) -> str:
        return f"<Invite {self.slot} {self.name!r} (redacted)>"


class PairingDesk(Protocol):
    """
    The receiver's invites and what it does with a paired client.
    """

    def admitPairing(self, source: str) -> bool:
        """
        Whether C{source} (C{host:port}) may try a pairing now.
        """

    def claimInvite(self, slot: int, source: str) -> Invite | None:
        """
        Take the pending invite in C{slot}, if any: from now on it is used.
        """

    def invitePaired(self, invite: Invite, fingerprint: str, source: str) -> None:
        """
        Trust the client: the code checked out.

        @raise SPCError: or C{OSError}, if that could not be recorded.
        """

    def inviteFailed(self, invite: Invite, reason: str, source: str) -> None:
        """
        The attempt that used C{invite} failed.
        """


class ServerPairingOwner(Protocol):
    """
    The connection a server pairing runs on.
    """

    def sendFrame(self, body: bytes) -> None:
        ...

    def handshakeFailed(self, alertCode: int, reason: str) -> None:
        ...

    def endWithoutSession(self) -> None:
        """
        Close once the last frame has left: the pairing is done.
        """

    def peerAddress(self) -> str:
        ...


class _Refusal(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _Started(NamedTuple):
    answer: bytes
    keys: tuple[pake.PairKeys, pake.PairKeys]
    transcript: bytes


class Paired(NamedTuple):
    """
    A pairing, as the client sees it once it succeeded.

    @ivar serverKey: the receiver's host key, SPKI DER.
    @ivar serverFingerprint: its fingerprint.
    @ivar name: what the receiver calls this client (C{""} for no name).
    @ivar permanent: whether the receiver keeps this client's key beyond
        the next session.
    @ivar channelCount: how many channels the receiver announced in F1.
    """

    serverKey: bytes
    serverFingerprint: str
    name: str
    permanent: bool
    channelCount: int


class ClientPairingOwner(Protocol):
    """
    The connection a client pairing runs on.
    """

    def sendFrame(self, body: bytes) -> None:
        ...

    def pairingSucceeded(self, paired: Paired) -> None:
        ...

    def pairingFailed(self, error: SPCError) -> None:
        ...


def pairingRefusal(alertCode: int, slot: int) -> SPCError:
    """
    The error a client reports for the receiver's alert during a pairing.
    """
    if alertCode == frames.ALERT_NO_INVITE:
        return NoInvite(
            f"{slot}; the code expired, was used already or was never made: ask for a new one"
        )
    if alertCode == frames.ALERT_WRONG_CODE:
        return WrongCode()
    if alertCode == frames.ALERT_BUSY:
        return ServerBusy()
    if alertCode == frames.ALERT_TIMEOUT:
        return HandshakeRefused("the receiver timed the pairing out")
    if alertCode == frames.ALERT_HANDSHAKE_FAILURE:
        return PairingRefused(
            "the receiver refused it; either it takes no codes on this port, or "
            "what this end saw of the receiver was changed on the way"
        )
    return HandshakeRefused("the receiver supports no protocol version this client speaks")
