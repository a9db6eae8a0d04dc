# -*- test-case-name: tests.unit.test_handshake,tests.unit.test_earlyjoin -*-
"""
The client's side of the SPC/1 handshake: a sans-IO machine that answers
the server's F1 with F2 and checks its F3 before the connection has keys.

A join may be started before the session it joins exists, while the
session's first connection is still in its handshake: its F1 is then held,
unchecked, until L{ClientHandshake.ticketReady} brings the session's join
ticket, and answered only then.  The connection and the server's hello
overlap the first handshake instead of following it.

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
from spc.crypto.suites import Suite
from spc.errors import NoAnswer, ProtocolError, SPCError
from spc.keys import identity
from spc.protocol import frames
from spc.protocol.channelmap import ChannelEntry, ChannelExpectation
from spc.protocol.handshake import (
    CLIENT_AUTH_CONTEXT,
    HANDSHAKE_OAEP_LABEL,
    SECRET_SIZE,
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


class _Answer(NamedTuple):
    hello: frames.ServerHello
    suite: Suite
    body: bytes
    th2Input: bytes
    secret: bytes
    fingerprint: str


class ClientHandshake:
    """
    The client's side of one connection's handshake.

    @ivar _expect: what this client accepts of F1's channel announcement,
        checked before anything secret is sent.
    @ivar _verifyServerKey: called with the server's fingerprint before
        anything secret is sent; raises L{spc.errors.TrustError} to stop.
    @ivar _heldHello: the server's F1, kept until the join ticket comes.
    """

    _machine = MethodicalMachine()

    def __init__(
        self,
        expect: ChannelExpectation,
        identityKey: rsa.RSAPrivateKey,
        identityKeyDER: bytes,
        exchangeKeyDER: bytes,
        verifyServerKey: Callable[[str], None],
        owner: ClientOwner,
        join: JoinTicket | None = None,
        random: Callable[[int], bytes] = os.urandom,
        ticketLater: bool = False,
    ) -> None:
        """
        @param join: what a join needs of its session, or L{None} for a
            new session.
        @param ticketLater: this is a join whose ticket L{ticketReady}
            brings later.
        """
        self._expect = expect
        self._identityKey = identityKey
        self._identityKeyDER = identityKeyDER
        self._exchangeKeyDER = exchangeKeyDER
        self._verifyServerKey = verifyServerKey
        self._owner = owner
        self._join = join
        self._random = random
        self._ticketLater = ticketLater and join is None
        self._heldHello: frames.ServerHello | None = None
        self._answer: _Answer | None = None

    @_machine.input()
    def gotGoodHello(self, answer: _Answer) -> None:
        "F1 checked out and F2 is ready."

    @_machine.input()
    def gotHelloBeforeTicket(self) -> None:
        "F1 came before the ticket of the session to join."

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
            firstHello = self._answer is None and self._heldHello is None
            if isinstance(frame, frames.ServerHello) and firstHello and self._ticketLater:
                self._heldHello = frame
                self.gotHelloBeforeTicket()
            elif isinstance(frame, frames.ServerHello) and firstHello:
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
    def awaitingTicket(self) -> None:
        "F1 held until the session to join exists."

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
        self._answer = self._heldHello = None
        self._owner.handshakeFailed(error)

    @_machine.output()
    def _timeOut(self) -> None:
        self._answer = self._heldHello = None
        self._owner.handshakeFailed(
            ProtocolError("the server did not complete the handshake in time")
        )

    @_machine.output()
    def _noAnswer(self) -> None:
        self._answer = self._heldHello = None
        self._owner.handshakeFailed(NoAnswer())

    awaitingHello.upon(gotGoodHello, enter=awaitingFinished, outputs=[_sendAuth])
    awaitingHello.upon(gotHelloBeforeTicket, enter=awaitingTicket, outputs=[])
    awaitingHello.upon(gotBad, enter=closed, outputs=[_fail])
    awaitingHello.upon(timedOut, enter=closed, outputs=[_noAnswer])
    awaitingTicket.upon(gotGoodHello, enter=awaitingFinished, outputs=[_sendAuth])
    awaitingTicket.upon(gotBad, enter=closed, outputs=[_fail])
    awaitingTicket.upon(timedOut, enter=closed, outputs=[_timeOut])
    awaitingFinished.upon(gotGoodFinished, enter=established, outputs=[_succeed])
    awaitingFinished.upon(gotBad, enter=closed, outputs=[_fail])
    awaitingFinished.upon(timedOut, enter=closed, outputs=[_timeOut])
    established.upon(gotBad, enter=closed, outputs=[_fail])
    established.upon(timedOut, enter=established, outputs=[])
    closed.upon(gotBad, enter=closed, outputs=[])
    closed.upon(timedOut, enter=closed, outputs=[])

    def ticketReady(
        self, join: JoinTicket, sessionMap: tuple[ChannelEntry, ...] | None = None
    ) -> None:
        """
        The session this connection joins exists now: answer the F1 held,
        or the F1 to come, with a join to it.  Every check of F1 is made
        now, as for an F1 answered at once.

        @param sessionMap: the channels the session's first connection
            announced, which this F1 may not contradict.
        """
        self._join = join
        if sessionMap is not None:
            self._expect = self._expect._replace(sessionMap=sessionMap)
        self._ticketLater = False
        hello, self._heldHello = self._heldHello, None
        if hello is None:
            return
        try:
            answer = self._answerHello(hello)
        except SPCError as error:
            self.gotBad(error)
        else:
            self.gotGoodHello(answer)

    def _answerHello(self, hello: frames.ServerHello) -> _Answer:
        common = set(hello.versions) & set(frames.SUPPORTED_VERSIONS)
        if not common:
            raise ProtocolError("the server supports no version this client speaks")
        suite = self._expect.check(hello.channel, hello.channelMap)
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
        return _Answer(
            hello, suite, body, helloFrame + frames.framed(body), keySecret, fingerprint
        )

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
            answer.suite,
            answer.hello.channel,
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
            answer.hello.channelMap,
        )
