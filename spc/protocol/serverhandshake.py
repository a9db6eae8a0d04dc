# -*- test-case-name: tests.unit.test_handshake -*-
"""
The server's side of the SPC/1 handshake: a sans-IO machine that sends F1,
checks the client's F2 in its security order and answers with F3.

It talks only to the L{spc.protocol.handshake.ServerDirectory} and
L{spc.protocol.handshake.ServerOwner} interfaces; what it shares with the client's
machine is in L{spc.protocol.handshake}.
"""

from __future__ import annotations

import os
from typing import Callable, NamedTuple

from automat import MethodicalMachine
from cryptography.hazmat.primitives.asymmetric import rsa

from spc.crypto import asymmetric, keyschedule
from spc.errors import BadPublicKey, ProtocolError, SPCError
from spc.keys import identity
from spc.protocol import frames
from spc.protocol.handshake import (
    CLIENT_AUTH_CONTEXT,
    HANDSHAKE_OAEP_LABEL,
    SECRET_SIZE,
    ChannelSpec,
    JoinTarget,
    ServerDirectory,
    ServerOwner,
    ServerResult,
    _h,
    _mac,
)
from spc.protocol.pairframes import isPairFrame
from spc.protocol.pairing import PairingDesk
from spc.protocol.recordlayer import ConnectionKeys
from spc.protocol.serverpairing import ServerPairing

__all__ = ["ServerHandshake"]


class _Refusal(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _Accepted(NamedTuple):
    session: bytes
    fingerprint: str
    exchangeKey: rsa.RSAPublicKey
    exchangeKeyDER: bytes
    th2Input: bytes
    secret: bytes
    join: JoinTarget | None


class ServerHandshake:
    """
    The server's side of one connection's handshake.

    The order of checks is the security argument: strict parse, then the
    client's signature (a public-key operation), then authorization and
    limits, and only then the one private-key operation; every refusal
    before that point costs the server no private-key work and tells the
    client only "handshake failure".

    Given a C{pairing} desk, the connection may run a pairing instead
    (amendment A20): a client that answers F1 with a PAIR frame hands the
    connection to a L{ServerPairing}, and no session follows.
    """

    _machine = MethodicalMachine()

    def __init__(
        self,
        spec: ChannelSpec,
        hostKey: rsa.RSAPrivateKey,
        hostKeyDER: bytes,
        params: frames.Params,
        directory: ServerDirectory,
        owner: ServerOwner,
        random: Callable[[int], bytes] = os.urandom,
        pairing: PairingDesk | None = None,
    ) -> None:
        self._spec = spec
        self._hostKey = hostKey
        self._hostKeyDER = hostKeyDER
        self._params = params
        self._directory = directory
        self._owner = owner
        self._random = random
        self._ephemeral: asymmetric.Ephemeral | None = None
        self._helloFrame = b""
        self._desk = pairing
        self._pairing: ServerPairing | None = None

    # Inputs.

    @_machine.input()
    def start(self) -> None:
        "The connection is up: say hello."

    @_machine.input()
    def gotGoodAuth(self, accepted: _Accepted) -> None:
        "A CLIENT_AUTH passed every check."

    @_machine.input()
    def gotBad(self, code: int, reason: str) -> None:
        "The peer sent something that ends the handshake."

    @_machine.input()
    def gotPairing(self, body: bytes) -> None:
        "The client answered F1 with a PAIR frame."

    @_machine.input()
    def timedOut(self) -> None:
        "The peer took too long."

    def frameReceived(self, body: bytes) -> None:
        """
        Parse and check one pre-authentication frame, then feed the machine.
        """
        if self._pairing is not None:
            self._pairing.frameReceived(body)
            return
        if self._desk is not None and self._ephemeral is not None and isPairFrame(body):
            self.gotPairing(body)
            return
        try:
            accepted = self._check(body)
        except _Refusal as refusal:
            self.gotBad(refusal.code, refusal.reason)
        except SPCError as error:
            self.gotBad(frames.ALERT_HANDSHAKE_FAILURE, str(error))
        else:
            self.gotGoodAuth(accepted)

    # States.

    @_machine.state(initial=True)
    def idle(self) -> None:
        "Nothing sent yet."

    @_machine.state()
    def awaitingAuth(self) -> None:
        "F1 sent; the client's F2 is due."

    @_machine.state()
    def established(self) -> None:
        "F3 sent: the connection belongs to a session."

    @_machine.state()
    def pairing(self) -> None:
        "A pairing runs on the connection instead."

    @_machine.state()
    def closed(self) -> None:
        "The handshake failed; the connection is being closed."

    # Outputs.

    @_machine.output()
    def _sendHello(self) -> None:
        self._ephemeral = asymmetric.Ephemeral()
        hello = frames.ServerHello(
            versions=frames.SUPPORTED_VERSIONS,
            suite=self._spec.suite.suiteID,
            channel=self._spec.channel,
            channelCount=self._spec.channelCount,
            nonce=self._random(frames.NONCE_SIZE),
            ephemeral=self._ephemeral.public,
            hostKey=self._hostKeyDER,
        ).encode()
        self._helloFrame = frames.framed(hello)
        self._owner.sendFrame(hello)

    @_machine.output()
    def _finish(self, accepted: _Accepted) -> None:
        self._owner.handshakeSucceeded(self._finishWith(accepted))

    @_machine.output()
    def _refuse(self, code: int, reason: str) -> None:
        self._forget()
        self._owner.handshakeFailed(code, reason)

    @_machine.output()
    def _timeOut(self) -> None:
        self._forget()
        self._owner.handshakeFailed(frames.ALERT_TIMEOUT, "handshake timed out")

    @_machine.output()
    def _handOver(self, body: bytes) -> None:
        self._forget()
        self._pairing = ServerPairing(
            self._helloFrame, self._hostKeyDER, self._desk, self._owner, self._random
        )
        self._pairing.frameReceived(body)

    @_machine.output()
    def _pairingTimedOut(self) -> None:
        self._pairing.timedOut()

    idle.upon(start, enter=awaitingAuth, outputs=[_sendHello])
    idle.upon(gotBad, enter=closed, outputs=[_refuse])
    idle.upon(timedOut, enter=closed, outputs=[_timeOut])
    awaitingAuth.upon(gotGoodAuth, enter=established, outputs=[_finish])
    awaitingAuth.upon(gotBad, enter=closed, outputs=[_refuse])
    awaitingAuth.upon(timedOut, enter=closed, outputs=[_timeOut])
    awaitingAuth.upon(gotPairing, enter=pairing, outputs=[_handOver])
    pairing.upon(timedOut, enter=closed, outputs=[_pairingTimedOut])
    pairing.upon(gotBad, enter=closed, outputs=[_refuse])
    established.upon(gotBad, enter=closed, outputs=[_refuse])
    established.upon(timedOut, enter=established, outputs=[])
    closed.upon(gotBad, enter=closed, outputs=[])
    closed.upon(timedOut, enter=closed, outputs=[])

    # Plain code: the checks, in their security order.

    def _forget(self) -> None:
        self._ephemeral = None

    def _check(self, body: bytes) -> _Accepted:
        if self._ephemeral is None:
            raise ProtocolError("frame before or after the handshake")
        frame = frames.decodeHandshake(body)
        if not isinstance(frame, frames.ClientAuth):
            raise ProtocolError("expected CLIENT_AUTH")
        if frame.version not in frames.SUPPORTED_VERSIONS:
            raise _Refusal(frames.ALERT_UNSUPPORTED_VERSION, "unsupported version")
        identityKey = identity.loadPublicKey(frame.identityKey)
        exchangeKey = identity.loadPublicKey(frame.exchangeKey)
        if exchangeKey.key_size != asymmetric.EXCHANGE_KEY_BITS:
            raise BadPublicKey("exchange key must be RSA-2048")
        if frame.identityKey == frame.exchangeKey:
            raise BadPublicKey("identity and exchange keys are the same key")
        authFrame = frames.framed(body)
        signed = self._signedData(frame, body)
        if not asymmetric.verify(identityKey, frame.signature, signed):
            raise _Refusal(frames.ALERT_HANDSHAKE_FAILURE, "bad client signature")
        fingerprint = identity.fingerprint(frame.identityKey)
        if not self._directory.isAuthorized(fingerprint):
            raise _Refusal(
                frames.ALERT_HANDSHAKE_FAILURE, f"client {fingerprint} is not authorized"
            )
        join = None
        if frame.session == frames.NEW_SESSION:
            if not self._directory.admitNewSession(fingerprint):
                raise _Refusal(frames.ALERT_BUSY, f"new-session limit for {fingerprint}")
        else:
            join = self._directory.joinTarget(
                frame.session, fingerprint, frame.exchangeKey, frame.epoch
            )
            if join is None:
                raise _Refusal(frames.ALERT_HANDSHAKE_FAILURE, "no such session to join")
            if not self._directory.admitJoin(frame.session):
                raise _Refusal(frames.ALERT_BUSY, "join limit for the session")
        if not self._directory.admitPrivateOperation():
            raise _Refusal(frames.ALERT_BUSY, "private-key operation limit")
        try:
            secret = asymmetric.decrypt(
                self._hostKey,
                frame.encryptedSecret,
                HANDSHAKE_OAEP_LABEL + _h(self._helloFrame),
            )
        except ValueError:
            raise _Refusal(frames.ALERT_HANDSHAKE_FAILURE, "undecryptable secret") from None
        if len(secret) != SECRET_SIZE:
            raise _Refusal(frames.ALERT_HANDSHAKE_FAILURE, "secret of the wrong size")
        ephemeral, self._ephemeral = self._ephemeral, None
        try:
            shared = ephemeral.exchange(frame.ephemeral)
        except ValueError:
            raise _Refusal(frames.ALERT_HANDSHAKE_FAILURE, "bad X25519 share") from None
        th2Input = self._helloFrame + authFrame
        if join is None:
            keySecret = keyschedule.handshakeSecret(shared, secret)
            session = keyschedule.sessionID(keySecret, _h(th2Input))
            if session == frames.NEW_SESSION or self._directory.sessionExists(session):
                raise _Refusal(frames.ALERT_HANDSHAKE_FAILURE, "session id collision")
        else:
            session = frame.session
            keySecret = keyschedule.joinSecret(
                join.joinSecret, session, frame.epoch, shared, secret
            )
        return _Accepted(
            session, fingerprint, exchangeKey, frame.exchangeKey, th2Input, keySecret, join
        )

    def _signedData(self, frame: frames.ClientAuth, body: bytes) -> bytes:
        unsigned = body[: len(body) - 2 - len(frame.signature)]
        return CLIENT_AUTH_CONTEXT + _h(
            self._helloFrame, frames.LENGTH.pack(len(body)), unsigned
        )

    def _finishWith(self, accepted: _Accepted) -> ServerResult:
        isNew = accepted.join is None
        epoch, params = (0, self._params) if isNew else accepted.join[1:]
        th2 = _h(accepted.th2Input)
        unsigned = frames.ServerFinished(accepted.session, epoch, params, b"").unsigned()
        body = unsigned + _mac(
            keyschedule.finishedKey(accepted.secret, th2),
            _h(
                accepted.th2Input,
                frames.LENGTH.pack(len(unsigned) + frames.MAC_SIZE),
                unsigned,
            ),
        )
        thConn = _h(accepted.th2Input, frames.framed(body))
        self._owner.sendFrame(body)
        keys = ConnectionKeys(
            accepted.session,
            self._spec.suite,
            self._spec.channel,
            thConn,
            keyschedule.connectionSecret(accepted.secret, thConn),
        )
        return ServerResult(
            accepted.session,
            isNew,
            accepted.fingerprint,
            accepted.exchangeKey,
            accepted.exchangeKeyDER,
            epoch,
            keyschedule.initialEpochSecret(accepted.secret, thConn) if isNew else None,
            params,
            keys,
        )
