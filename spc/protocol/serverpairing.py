# -*- test-case-name: tests.unit.test_pairing -*-
"""
The server's side of a pairing (amendment A20): a sans-IO machine that
takes over a connection whose client answered F1 with a PAIR frame.

It talks only to the L{spc.protocol.pairing.PairingDesk} and
L{spc.protocol.pairing.ServerPairingOwner} interfaces; what it shares with
the client's machine is in L{spc.protocol.pairing}.
"""

from __future__ import annotations

import hmac
import os
from typing import Callable

from automat import MethodicalMachine

from spc.crypto import pake
from spc.errors import AuthenticationFailed, ProtocolError, SPCError
from spc.keys import identity
from spc.protocol import frames
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
from spc.protocol.pairing import (
    Invite,
    PairingDesk,
    ServerPairingOwner,
    _Refusal,
    _Started,
)

__all__ = ["ServerPairing"]


class ServerPairing:
    """
    The server's side of one pairing, from the client's first PAIR frame.
    """

    _machine = MethodicalMachine()

    def __init__(
        self,
        helloFrame: bytes,
        hostKeyDER: bytes,
        desk: PairingDesk,
        owner: ServerPairingOwner,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._helloFrame = helloFrame
        self._hostKeyDER = hostKeyDER
        self._desk = desk
        self._owner = owner
        self._random = random
        self._source = owner.peerAddress()
        self._invite: Invite | None = None
        self._started: _Started | None = None
        self._ended = False

    @_machine.input()
    def gotGoodStart(self, started: _Started) -> None:
        "Frame 1 named a pending invite and carried a valid SPAKE2 message."

    @_machine.input()
    def gotGoodKey(self, invite: Invite) -> None:
        "Frame 3 opened, confirmed the transcript, and the client is trusted."

    @_machine.input()
    def gotBad(self, code: int, reason: str) -> None:
        "The pairing fails."

    @_machine.input()
    def timedOut(self) -> None:
        "The client took too long."

    def frameReceived(self, body: bytes) -> None:
        """
        Parse and check one frame, then feed the machine.
        """
        try:
            if self._ended:
                raise ProtocolError("a frame after the pairing ended")
            if self._started is None:
                self.gotGoodStart(self._checkStart(body))
            else:
                self.gotGoodKey(self._checkKey(body))
        except _Refusal as refusal:
            self.gotBad(refusal.code, refusal.reason)
        except (SPCError, OSError) as error:
            self.gotBad(frames.ALERT_HANDSHAKE_FAILURE, str(error))

    @_machine.state(initial=True)
    def awaitingStart(self) -> None:
        "F1 was sent and answered with a PAIR frame, about to be read."

    @_machine.state()
    def awaitingKey(self) -> None:
        "The invite is used; frame 2 was sent."

    @_machine.state()
    def paired(self) -> None:
        "The client is trusted and frame 4 was sent."

    @_machine.state()
    def closed(self) -> None:
        "The pairing failed."

    @_machine.output()
    def _answer(self, started: _Started) -> None:
        self._started = started
        self._owner.sendFrame(started.answer)

    @_machine.output()
    def _confirm(self, invite: Invite) -> None:
        started = self._started
        self._started, self._ended = None, True
        serverKeys = started.keys[1]
        plaintext = ServerKey(
            self._hostKeyDER,
            invite.permanent,
            invite.name,
            pake.confirmation(serverKeys, started.transcript),
        ).encode()
        sealed = pake.sealBox(serverKeys, header(STEP_SERVER_KEY), plaintext)
        self._owner.sendFrame(SealedKey(STEP_SERVER_KEY, sealed).encode())
        self._owner.endWithoutSession()

    @_machine.output()
    def _refuse(self, code: int, reason: str) -> None:
        self._fail(code, reason)

    @_machine.output()
    def _timeOut(self) -> None:
        self._fail(frames.ALERT_TIMEOUT, "the pairing timed out")

    awaitingStart.upon(gotGoodStart, enter=awaitingKey, outputs=[_answer])
    awaitingStart.upon(gotBad, enter=closed, outputs=[_refuse])
    awaitingStart.upon(timedOut, enter=closed, outputs=[_timeOut])
    awaitingKey.upon(gotGoodKey, enter=paired, outputs=[_confirm])
    awaitingKey.upon(gotBad, enter=closed, outputs=[_refuse])
    awaitingKey.upon(timedOut, enter=closed, outputs=[_timeOut])
    paired.upon(gotBad, enter=paired, outputs=[])
    paired.upon(timedOut, enter=paired, outputs=[])
    closed.upon(gotBad, enter=closed, outputs=[])
    closed.upon(timedOut, enter=closed, outputs=[])

    def _fail(self, code: int, reason: str) -> None:
        invite, self._invite, self._started = self._invite, None, None
        self._ended = True
        if invite is not None:
            self._desk.inviteFailed(invite, reason, self._source)
        self._owner.handshakeFailed(code, reason)

    def _checkStart(self, body: bytes) -> _Started:
        start = PairStart.decode(body)
        if not self._desk.admitPairing(self._source):
            raise _Refusal(frames.ALERT_BUSY, "pairing attempts over their rate limit")
        invite = self._desk.claimInvite(start.slot, self._source)
        if invite is None:
            raise _Refusal(frames.ALERT_NO_INVITE, f"no open invite {start.slot}")
        self._invite = invite
        exchange = pake.Exchange(False, invite.password, self._random)
        key = exchange.finish(start.message)
        answer = PairAnswer(exchange.message).encode()
        transcript = pake.transcriptHash(
            self._helloFrame, frames.framed(body), frames.framed(answer)
        )
        return _Started(answer, pake.pairKeys(key), transcript)

    def _checkKey(self, body: bytes) -> Invite:
        started, invite = self._started, self._invite
        sealed = SealedKey.decode(body, STEP_CLIENT_KEY)
        try:
            plaintext = pake.openBox(started.keys[0], header(STEP_CLIENT_KEY), sealed.sealed)
        except AuthenticationFailed:
            raise _Refusal(frames.ALERT_WRONG_CODE, "the code was wrong") from None
        client = ClientKey.decode(plaintext)
        if not pake.confirmed(started.keys[0], started.transcript, client.mac):
            raise _Refusal(
                frames.ALERT_HANDSHAKE_FAILURE,
                "the client saw another server hello (a man in the middle?)",
            )
        identity.loadPublicKey(client.identityKey)
        if hmac.compare_digest(client.identityKey, self._hostKeyDER):
            raise _Refusal(frames.ALERT_HANDSHAKE_FAILURE, "the client sent the host key")
        self._desk.invitePaired(invite, identity.fingerprint(client.identityKey), self._source)
        self._invite = None
        return invite
