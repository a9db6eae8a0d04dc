# -*- test-case-name: tests.unit.test_pairing -*-
"""
The client's side of a pairing (amendment A20): a sans-IO machine that
reads the receiver's F1, answers with PAIR frames and checks the
receiver's confirmation before anything is recorded.

It talks only to the L{spc.protocol.pairing.ClientPairingOwner} interface;
what it shares with the server's machine is in L{spc.protocol.pairing}.
"""

from __future__ import annotations

import hmac
import os
from typing import Callable, NamedTuple

from automat import MethodicalMachine

from spc.crypto import pake
from spc.errors import AuthenticationFailed, ConfigurationError, ProtocolError, SPCError
from spc.keys import identity
from spc.protocol import frames
from spc.protocol.paircode import PairCode
from spc.protocol.pairframes import (
    STEP_CLIENT_KEY,
    STEP_SERVER_KEY,
    ClientKey,
    PairAnswer,
    PairStart,
    SealedKey,
    ServerKey,
    header,
)
from spc.protocol.pairing import ClientPairingOwner, Paired, _Started, pairingRefusal

__all__ = ["ClientPairing"]


class _Answered(NamedTuple):
    hello: frames.ServerHello
    helloFrame: bytes
    startFrame: bytes
    exchange: pake.Exchange


class ClientPairing:
    """
    The client's side of one pairing.

    @ivar _checkServerKey: called with the receiver's fingerprint before
        anything is sent; raises L{spc.errors.TrustError} to stop (a key
        that differs from the one recorded for the address).
    """

    _machine = MethodicalMachine()

    def __init__(
        self,
        code: PairCode,
        identityKeyDER: bytes,
        checkServerKey: Callable[[str], None],
        owner: ClientPairingOwner,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._code = code
        self._identityKeyDER = identityKeyDER
        self._checkServerKey = checkServerKey
        self._owner = owner
        self._random = random
        self._answered: _Answered | None = None
        self._started: _Started | None = None
        self._ended = False

    @_machine.input()
    def gotGoodHello(self, answered: _Answered) -> None:
        "F1 came from the first channel and its key may be trusted."

    @_machine.input()
    def gotGoodAnswer(self, started: _Started, body: bytes) -> None:
        "Frame 2 carried a valid SPAKE2 message; frame 3 is ready."

    @_machine.input()
    def gotGoodServerKey(self, paired: Paired) -> None:
        "Frame 4 opened and confirmed the transcript."

    @_machine.input()
    def gotBad(self, error: SPCError) -> None:
        "Something ends the pairing."

    @_machine.input()
    def timedOut(self) -> None:
        "The receiver took too long."

    def frameReceived(self, body: bytes) -> None:
        """
        Parse and check one frame, then feed the machine.
        """
        try:
            if self._ended:
                raise ProtocolError("a frame after the pairing ended")
            if len(body) >= 2 and body[:2] == bytes((frames.WIRE_VERSION, frames.HS_ALERT)):
                raise pairingRefusal(frames.Alert.decode(body).code, self._code.slot)
            if self._answered is None:
                self.gotGoodHello(self._checkHello(body))
            elif self._started is None:
                self.gotGoodAnswer(*self._checkAnswer(body))
            else:
                self.gotGoodServerKey(self._checkServerFrame(body))
        except SPCError as error:
            self.gotBad(error)

    @_machine.state(initial=True)
    def awaitingHello(self) -> None:
        "Connected; the receiver speaks first."

    @_machine.state()
    def awaitingAnswer(self) -> None:
        "Frame 1 sent."

    @_machine.state()
    def awaitingServerKey(self) -> None:
        "Frame 3 sent."

    @_machine.state()
    def paired(self) -> None:
        "Done."

    @_machine.state()
    def closed(self) -> None:
        "The pairing failed."

    @_machine.output()
    def _sendStart(self, answered: _Answered) -> None:
        self._answered = answered
        self._owner.sendFrame(answered.startFrame)

    @_machine.output()
    def _sendKey(self, started: _Started, body: bytes) -> None:
        self._started = started
        self._owner.sendFrame(body)

    @_machine.output()
    def _succeed(self, paired: Paired) -> None:
        self._end()
        self._owner.pairingSucceeded(paired)

    @_machine.output()
    def _fail(self, error: SPCError) -> None:
        self._end()
        self._owner.pairingFailed(error)

    @_machine.output()
    def _timeOut(self) -> None:
        self._end()
        self._owner.pairingFailed(ProtocolError("the receiver did not finish the pairing in time"))

    awaitingHello.upon(gotGoodHello, enter=awaitingAnswer, outputs=[_sendStart])
    awaitingAnswer.upon(gotGoodAnswer, enter=awaitingServerKey, outputs=[_sendKey])
    awaitingServerKey.upon(gotGoodServerKey, enter=paired, outputs=[_succeed])
    for _state in (awaitingHello, awaitingAnswer, awaitingServerKey):
        _state.upon(gotBad, enter=closed, outputs=[_fail])
        _state.upon(timedOut, enter=closed, outputs=[_timeOut])
    for _state in (paired, closed):
        _state.upon(gotBad, enter=_state, outputs=[])
        _state.upon(timedOut, enter=_state, outputs=[])
    del _state

    def _end(self) -> None:
        self._answered = self._started = None
        self._ended = True

    def _checkHello(self, body: bytes) -> _Answered:
        hello = frames.ServerHello.decode(body)
        if not set(hello.versions) & set(frames.SUPPORTED_VERSIONS):
            raise ProtocolError("the receiver supports no version this client speaks")
        if hello.channel != 0:
            raise ConfigurationError(
                f"that port is channel {hello.channel} of the receiver; pair with its "
                "first port"
            )
        identity.loadPublicKey(hello.hostKey)
        self._checkServerKey(identity.fingerprint(hello.hostKey))
        exchange = pake.Exchange(True, self._code.password(), self._random)
        start = PairStart(self._code.slot, exchange.message).encode()
        return _Answered(hello, frames.framed(body), start, exchange)

    def _checkAnswer(self, body: bytes) -> tuple[_Started, bytes]:
        answered = self._answered
        answer = PairAnswer.decode(body)
        key = answered.exchange.finish(answer.message)
        transcript = pake.transcriptHash(
            answered.helloFrame, frames.framed(answered.startFrame), frames.framed(body)
        )
        keys = pake.pairKeys(key)
        plaintext = ClientKey(self._identityKeyDER, pake.confirmation(keys[0], transcript))
        sealed = pake.sealBox(keys[0], header(STEP_CLIENT_KEY), plaintext.encode())
        return _Started(b"", keys, transcript), SealedKey(STEP_CLIENT_KEY, sealed).encode()

    def _checkServerFrame(self, body: bytes) -> Paired:
        started, hello = self._started, self._answered.hello
        sealed = SealedKey.decode(body, STEP_SERVER_KEY)
        try:
            plaintext = pake.openBox(started.keys[1], header(STEP_SERVER_KEY), sealed.sealed)
        except AuthenticationFailed:
            raise ProtocolError("the receiver's confirmation was changed on the way") from None
        server = ServerKey.decode(plaintext)
        if not pake.confirmed(started.keys[1], started.transcript, server.mac):
            raise ProtocolError("the receiver's confirmation does not match the transcript")
        if not hmac.compare_digest(server.hostKey, hello.hostKey):
            raise ProtocolError("the receiver confirmed another key than it announced")
        return Paired(
            hello.hostKey,
            identity.fingerprint(hello.hostKey),
            server.name,
            server.permanent,
            hello.channelCount,
        )
