# -*- test-case-name: tests.unit.test_handshake -*-
"""
The client's side of the SPC/1 handshake: a sans-IO machine that answers
the server's F1 with F2 and checks its F3 before the connection has keys.

It talks only to the L{spc.protocol.handshake.ClientOwner} interface; what it shares
with the server's machine is in L{spc.protocol.handshake}.
"""

from __future__ import annotations

import hmac
import os
from typing import Callable, NamedTuple

from automat import MethodicalMachine
from cryptography.hazmat.primitives.asymmetric import rsa

from spc.crypto import asymmetric, keyschedule
from spc.crypto.suites import suiteByID
from spc.errors import ConfigurationError, ProtocolError, SPCError
from spc.keys import identity
from spc.protocol import frames
from spc.protocol.handshake import (
    CLIENT_AUTH_CONTEXT,
    HANDSHAKE_OAEP_LABEL,
    SECRET_SIZE,
    ChannelSpec,
    ClientOwner,
    ClientResult,
    JoinTicket,
    _h,
    _mac,
    checkParams,
    refusalFor,
)
from spc.protocol.recordlayer import ConnectionKeys

__all__ = ["ClientHandshake"]


def _suiteName(suiteID: int) -> str:
    try:
        return suiteByID(suiteID).name
    except KeyError:
        return f"unknown suite 0x{suiteID:02x}"


class _Answer(NamedTuple):
    hello: frames.ServerHello
    body: bytes
    th2Input: bytes
    secret: bytes
    fingerprint: str


class ClientHandshake:
    """
    The client's side of one connection's handshake.

    @ivar _verifyServerKey: called with the server's fingerprint before
        anything secret is sent; raises L{spc.errors.TrustError} to stop.
    """

    _machine = MethodicalMachine()

    def __init__(
        self,
        spec: ChannelSpec,
        identityKey: rsa.RSAPrivateKey,
        identityKeyDER: bytes,
        exchangeKeyDER: bytes,
        verifyServerKey: Callable[[str], None],
        owner: ClientOwner,
        join: JoinTicket | None = None,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._spec = spec
        self._identityKey = identityKey
        self._identityKeyDER = identityKeyDER
        self._exchangeKeyDER = exchangeKeyDER
        self._verifyServerKey = verifyServerKey
        self._owner = owner
        self._join = join
        self._random = random
        self._answer: _Answer | None = None

    @_machine.input()
    def gotGoodHello(self, answer: _Answer) -> None:
        "F1 checked out and F2 is ready."

    @_machine.input()
    def gotGoodFinished(self, result: ClientResult) -> None:
        "F3 checked out."

    @_machine.input()
    def gotBad(self, error: SPCError) -> None:
        "Something ends the handshake."

    @_machine.input()
    def timedOut(self) -> None:
        "The server took too long."

    def frameReceived(self, body: bytes) -> None:
        """
        Parse and check one pre-authentication frame, then feed the machine.
        """
        try:
            frame = frames.decodeHandshake(body)
            if isinstance(frame, frames.Alert):
                raise refusalFor(frame.code)
            if isinstance(frame, frames.ServerHello) and self._answer is None:
                self.gotGoodHello(self._answerHello(frame))
            elif isinstance(frame, frames.ServerFinished) and self._answer is not None:
                self.gotGoodFinished(self._checkFinished(frame, body))
            else:
                raise ProtocolError("unexpected handshake frame")
        except SPCError as error:
            self.gotBad(error)

    @_machine.state(initial=True)
    def awaitingHello(self) -> None:
        "Connected; the server speaks first."

    @_machine.state()
    def awaitingFinished(self) -> None:
        "F2 sent."

    @_machine.state()
    def established(self) -> None:
        "The connection has keys."

    @_machine.state()
    def closed(self) -> None:
        "The handshake failed."

    @_machine.output()
    def _sendAuth(self, answer: _Answer) -> None:
        self._answer = answer
        self._owner.sendFrame(answer.body)

    @_machine.output()
    def _succeed(self, result: ClientResult) -> None:
        self._answer = None
        self._owner.handshakeSucceeded(result)

    @_machine.output()
    def _fail(self, error: SPCError) -> None:
        self._answer = None
        self._owner.handshakeFailed(error)

    @_machine.output()
    def _timeOut(self) -> None:
        self._answer = None
        self._owner.handshakeFailed(
            ProtocolError("the server did not complete the handshake in time")
        )

    awaitingHello.upon(gotGoodHello, enter=awaitingFinished, outputs=[_sendAuth])
    awaitingHello.upon(gotBad, enter=closed, outputs=[_fail])
    awaitingHello.upon(timedOut, enter=closed, outputs=[_timeOut])
    awaitingFinished.upon(gotGoodFinished, enter=established, outputs=[_succeed])
    awaitingFinished.upon(gotBad, enter=closed, outputs=[_fail])
    awaitingFinished.upon(timedOut, enter=closed, outputs=[_timeOut])
    established.upon(gotBad, enter=closed, outputs=[_fail])
    established.upon(timedOut, enter=established, outputs=[])
    closed.upon(gotBad, enter=closed, outputs=[])
    closed.upon(timedOut, enter=closed, outputs=[])

    def _answerHello(self, hello: frames.ServerHello) -> _Answer:
        common = set(hello.versions) & set(frames.SUPPORTED_VERSIONS)
        if not common:
            raise ProtocolError("the server supports no version this client speaks")
        spec = self._spec
        if (hello.channel, hello.channelCount, hello.suite) != (
            spec.channel,
            spec.channelCount,
            spec.suite.suiteID,
        ):
            raise ConfigurationError(
                f"the server's port {hello.channel} of {hello.channelCount} uses "
                f"{_suiteName(hello.suite)}; this client expected port "
                f"{spec.channel} of {spec.channelCount} with {spec.suite.name} "
                "(both ends need the same ports and --suites)"
            )
        serverKey = identity.loadPublicKey(hello.hostKey)
        fingerprint = identity.fingerprint(hello.hostKey)
        if self._join is not None:
            if not hmac.compare_digest(hello.hostKey, self._join.serverKey):
                raise ProtocolError("the server key changed within a session")
        else:
            self._verifyServerKey(fingerprint)
        helloFrame = frames.framed(hello.encode())
        ephemeral = asymmetric.Ephemeral()
        secret = self._random(SECRET_SIZE)
        join = self._join
        auth = frames.ClientAuth(
            version=max(common),
            nonce=self._random(frames.NONCE_SIZE),
            session=join.session if join else frames.NEW_SESSION,
            epoch=join.epoch if join else 0,
            ephemeral=ephemeral.public,
            identityKey=self._identityKeyDER,
            exchangeKey=self._exchangeKeyDER,
            encryptedSecret=asymmetric.encrypt(
                serverKey, secret, HANDSHAKE_OAEP_LABEL + _h(helloFrame)
            ),
            signature=b"",
        )
        unsigned = auth.unsigned()
        signedLength = len(unsigned) + 2 + (self._identityKey.key_size + 7) // 8
        signature = asymmetric.sign(
            self._identityKey,
            CLIENT_AUTH_CONTEXT + _h(helloFrame, frames.LENGTH.pack(signedLength), unsigned),
        )
        body = auth._replace(signature=signature).encode()
        try:
            shared = ephemeral.exchange(hello.ephemeral)
        except ValueError:
            raise ProtocolError("the server's X25519 share is invalid") from None
        if join is None:
            keySecret = keyschedule.handshakeSecret(shared, secret)
        else:
            keySecret = keyschedule.joinSecret(
                join.epochSecret, join.session, join.epoch, shared, secret
            )
        return _Answer(hello, body, helloFrame + frames.framed(body), keySecret, fingerprint)

    def _checkFinished(self, finished: frames.ServerFinished, body: bytes) -> ClientResult:
        answer = self._answer
        th2 = _h(answer.th2Input)
        unsigned = body[: len(body) - frames.MAC_SIZE]
        expected = _mac(
            keyschedule.finishedKey(answer.secret, th2),
            _h(answer.th2Input, frames.LENGTH.pack(len(body)), unsigned),
        )
        if not hmac.compare_digest(expected, finished.mac):
            raise ProtocolError("the server's Finished MAC is wrong")
        join = self._join
        if join is None:
            if finished.session != keyschedule.sessionID(answer.secret, th2):
                raise ProtocolError("the server announced the wrong session id")
            if finished.epoch != 0:
                raise ProtocolError("a new session must start at epoch 0")
        else:
            if finished.session != join.session or finished.params != join.params:
                raise ProtocolError("the server changed the session in a join")
            if finished.epoch < join.epoch:
                raise ProtocolError("the server went back to an older epoch")
            if finished.epoch not in join.acceptableEpochs:
                raise ProtocolError("the session moved on to an epoch this client lacks")
        checkParams(finished.params)
        thConn = _h(answer.th2Input, frames.framed(body))
        keys = ConnectionKeys(
            finished.session,
            self._spec.suite,
            self._spec.channel,
            thConn,
            keyschedule.connectionSecret(answer.secret, thConn),
        )
        return ClientResult(
            finished.session,
            join is None,
            finished.epoch,
            keyschedule.initialEpochSecret(answer.secret, thConn) if join is None else None,
            finished.params,
            answer.hello.hostKey,
            answer.fingerprint,
            keys,
        )
