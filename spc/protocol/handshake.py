# -*- test-case-name: tests.unit.test_handshake -*-
"""
The SPC/1 handshake, one sans-IO machine per role.

The user's three steps stay: the server sends its cipher choice and RSA
public key (F1), the client answers with a secret encrypted to that key plus
its own public key (F2), and the server takes the secret and the channel is
up (F3).  Each step gained what makes it sound: X25519 shares mixed into
every key (forward secrecy), a client signature over the transcript (the
client proves its key), a Finished MAC only the holder of the server's key
can compute (the server proves its key), and a pinned server key (no
man in the middle).

Bytes are parsed and checked in plain code first; the machines only ever
see frames that passed (C{gotGood...}) or a reason to stop (C{gotBad}).
They have no sockets and no clocks: the channel protocol feeds them frames
and timeouts and implements the small owner interfaces below.

The machines are L{spc.protocol.serverhandshake.ServerHandshake} and
L{spc.protocol.clienthandshake.ClientHandshake}; this module holds what both
roles share.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import NamedTuple, Protocol, Sequence

from cryptography.hazmat.primitives.asymmetric import rsa

from spc.crypto.suites import Suite, defaultSuiteFor
from spc.errors import (
    ClientNotAuthorized,
    HandshakeRefused,
    ProtocolError,
    ServerBusy,
    SPCError,
)
from spc.protocol import frames
from spc.protocol.recordlayer import ConnectionKeys

__all__ = [
    "ChannelSpec",
    "ClientResult",
    "JoinTarget",
    "JoinTicket",
    "ServerResult",
    "channelSpecs",
    "checkParams",
    "refusalFor",
]

CLIENT_AUTH_CONTEXT = b"SPC/1 client auth\x00"
HANDSHAKE_OAEP_LABEL = b"SPC/1 hs oaep"
SECRET_SIZE = 32

# Bounds a client accepts for the parameters a server announces (A7).
MIN_HEARTBEAT_MS = 100
MAX_HEARTBEAT_MS = 60_000
MAX_MISS_LIMIT = 100
MAX_MESSAGE_SIZE = 1 << 40
MAX_INFLIGHT = 1024


def _h(*parts: bytes) -> bytes:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.digest()


def _mac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


class ChannelSpec(NamedTuple):
    """
    What both sides configure for one port: they must agree, and nothing
    here is negotiated.

    @ivar channel: the port's index in the configured list.
    @ivar channelCount: how many ports the session spans.
    @ivar suite: the port's cipher suite.
    """

    channel: int
    channelCount: int
    suite: Suite


def channelSpecs(count: int, suites: Sequence[Suite | None] | None = None) -> list[ChannelSpec]:
    """
    The per-port configuration both ends must share: by default the user's
    rule, even ports AES-256-CBC and odd ports ChaCha20.
    """
    chosen = list(suites or [])
    return [
        ChannelSpec(
            index,
            count,
            chosen[index] if index < len(chosen) and chosen[index] else defaultSuiteFor(index),
        )
        for index in range(count)
    ]


def checkParams(params: frames.Params) -> None:
    """
    Refuse session parameters no sane server sends, before they size any
    buffer or timer.

    @raise ProtocolError: naming the parameter.
    """
    problems = []
    if not MIN_HEARTBEAT_MS <= params.heartbeatInterval <= MAX_HEARTBEAT_MS:
        problems.append("heartbeat interval")
    if not 1 <= params.heartbeatMissLimit <= MAX_MISS_LIMIT:
        problems.append("heartbeat miss limit")
    if params.rotationInterval <= params.ackTimeout + params.overlap:
        problems.append("rotation interval")
    if not frames.MIN_FRAGMENT_SIZE <= params.fragmentSize <= frames.MAX_FRAGMENT_SIZE:
        problems.append("fragment size")
    if params.maxInner != frames.maxInnerSize(params.fragmentSize):
        problems.append("inner size")
    if not 1 <= params.maxMessageSize <= MAX_MESSAGE_SIZE:
        problems.append("message size")
    if not 1 <= params.maxInflightMessages <= MAX_INFLIGHT:
        problems.append("in-flight messages")
    if params.reassemblyBudget < params.fragmentSize:
        problems.append("reassembly budget")
    if problems:
        raise ProtocolError("unacceptable session parameters: " + ", ".join(problems))


def refusalFor(alertCode: int) -> SPCError:
    """
    The error a client reports for a server's alert.  Alerts are not
    authenticated, so they only ever stop a handshake, never start anything.
    """
    if alertCode == frames.ALERT_HANDSHAKE_FAILURE:
        return ClientNotAuthorized()
    if alertCode == frames.ALERT_BUSY:
        return ServerBusy()
    if alertCode == frames.ALERT_TIMEOUT:
        return HandshakeRefused("the server timed the handshake out")
    return HandshakeRefused("the server supports no protocol version this client speaks")


# The server.


class JoinTarget(NamedTuple):
    """
    What the server's session directory tells a joining handshake.

    @ivar joinSecret: S_e of the epoch the client named.
    @ivar epoch: the session's committed epoch E, announced in F3.
    @ivar params: the session's parameters.
    """

    joinSecret: bytes
    epoch: int
    params: frames.Params


class ServerResult(NamedTuple):
    """
    A client the server accepted on this connection.

    @ivar session: the session id (new, or the one joined).
    @ivar isNew: whether this handshake created the session.
    @ivar fingerprint: the client identity's fingerprint.
    @ivar exchangeKey: the client's RSA exchange key, for rotation offers.
    @ivar exchangeKeyDER: the same, as sent.
    @ivar epoch: the epoch the connection starts in.
    @ivar epochSecret: S_0 for a new session; C{None} for a join.
    @ivar params: the session parameters.
    @ivar keys: the connection's keys.
    """

    session: bytes
    isNew: bool
    fingerprint: str
    exchangeKey: rsa.RSAPublicKey
    exchangeKeyDER: bytes
    epoch: int
    epochSecret: bytes | None
    params: frames.Params
    keys: ConnectionKeys


class ServerDirectory(Protocol):
    """
    What the server handshake asks of the daemon: authorization, limits
    and the sessions that connections may join.
    """

    def isAuthorized(self, fingerprint: str) -> bool:
        ...

    def admitNewSession(self, fingerprint: str) -> bool:
        ...

    def admitJoin(self, session: bytes) -> bool:
        ...

    def admitPrivateOperation(self) -> bool:
        ...

    def joinTarget(
        self, session: bytes, fingerprint: str, exchangeKey: bytes, epoch: int
    ) -> JoinTarget | None:
        ...

    def sessionExists(self, session: bytes) -> bool:
        ...


class ServerOwner(Protocol):
    """
    The connection that carries a server handshake.
    """

    def sendFrame(self, body: bytes) -> None:
        ...

    def handshakeSucceeded(self, result: ServerResult) -> None:
        ...

    def handshakeFailed(self, alertCode: int, reason: str) -> None:
        """
        Send the alert, log the reason (never to the peer), and close.
        """


# The client.


class JoinTicket(NamedTuple):
    """
    What a client needs to add a connection to its session.

    @ivar session: the session id.
    @ivar epoch: the client's committed epoch e.
    @ivar epochSecret: S_e.
    @ivar serverKey: the server key the session was made with, as DER.
    @ivar params: the session's parameters.
    @ivar acceptableEpochs: epochs F3 may announce (e and any pending one).
    """

    session: bytes
    epoch: int
    epochSecret: bytes
    serverKey: bytes
    params: frames.Params
    acceptableEpochs: frozenset[int]


class ClientResult(NamedTuple):
    """
    The client's view of a finished handshake.

    @ivar session: the session id.
    @ivar isNew: whether this handshake created the session.
    @ivar epoch: the epoch F3 announced.
    @ivar epochSecret: S_0 for a new session; C{None} for a join.
    @ivar params: the session parameters.
    @ivar serverKey: the server's host key, as DER.
    @ivar serverFingerprint: its fingerprint.
    @ivar keys: the connection's keys.
    """

    session: bytes
    isNew: bool
    epoch: int
    epochSecret: bytes | None
    params: frames.Params
    serverKey: bytes
    serverFingerprint: str
    keys: ConnectionKeys


class ClientOwner(Protocol):
    """
    The connection that carries a client handshake.
    """

    def sendFrame(self, body: bytes) -> None:
        ...

    def handshakeSucceeded(self, result: ClientResult) -> None:
        ...

    def handshakeFailed(self, error: SPCError) -> None:
        """
        Close the connection and report C{error}.
        """
