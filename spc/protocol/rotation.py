# -*- test-case-name: tests.unit.test_rotation -*-
"""
Key rotation, one sans-IO machine per role (PROTOCOL section 5 with
amendments A10 and A11).

The user's rotation stays: every interval the server sends each client a new
secret encrypted to the client's RSA key, the client acknowledges, the
server commits or, without a valid acknowledgement in time, rolls back, and
for an overlap both keys are accepted.  What makes it sound: the new epoch
secret also mixes a fresh X25519 exchange and the old secret, so it only
moves forward; the acknowledgement proves the client derived it; epoch
numbers are never reused; and old keys are dropped when the overlap ends.

The machines hold no timers, no sockets and no secrets of their own.  Their
owner (L{spc.session.rotationdriver.RotationDriver}) feeds them records and
timer expiries and carries out what they ask through the L{RotationOwner}
interface; the epochs and their secrets live in a L{RotationKeys} (the
session's L{spc.session.epochkeys.EpochKeys}), which the machines read and
change directly.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from typing import Protocol

from automat import MethodicalMachine
from cryptography.hazmat.primitives.asymmetric import rsa

from spc.crypto import asymmetric, keyschedule
from spc.errors import ProtocolError
from spc.protocol import records

__all__ = [
    "ClientRotation",
    "MAX_ROLLBACKS",
    "RotationKeys",
    "RotationOwner",
    "ServerRotation",
    "offerLabel",
]

MAX_ROLLBACKS = 3
SECRET_SIZE = 32
_U32 = struct.Struct("!I")


def offerLabel(session: bytes, epoch: int) -> bytes:
    """
    The OAEP label of a rotation secret: it binds the ciphertext to one
    session and one epoch (T33).
    """
    return b"SPC/1 rekey" + session + _U32.pack(epoch)


def _confirm(epochSecret: bytes, transcript: bytes) -> bytes:
    return hmac.new(
        keyschedule.rotationConfirmKey(epochSecret), transcript, hashlib.sha256
    ).digest()


def _newEpoch(previous: bytes, epoch: int, secret: bytes, shared: bytes, offer: bytes,
              clientShare: bytes) -> tuple[bytes, bytes]:
    """
    S_n and the transcript hash H_rk both sides derive from one offer.
    """
    transcript = hashlib.sha256(offer + clientShare).digest()
    return (
        keyschedule.rotationEpochSecret(previous, epoch, secret, shared, transcript),
        transcript,
    )


class RotationKeys(Protocol):
    """
    A session's epochs, as the machines read and change them.

    @ivar committed: the epoch the session sends under.
    @ivar pending: the epoch installed above the committed one and neither
        switched to nor dropped yet, or L{None}.
    """

    committed: int
    pending: int | None

    def secret(self, epoch: int) -> bytes | None:
        """
        The secret of an epoch the session holds, or L{None}.
        """

    def install(self, epoch: int, secret: bytes) -> None:
        """
        Every connection derives its keys for C{epoch} and accepts its
        frames; above the committed epoch, C{epoch} is pending.
        """

    def switch(self, epoch: int) -> None:
        """
        Every connection sends under C{epoch} from now on; it is committed.
        """

    def drop(self, epoch: int) -> None:
        """
        Every connection forgets C{epoch}'s keys; the session forgets its
        secret.
        """


class RotationOwner(Protocol):
    """
    What a rotation machine asks of whoever drives it: the records it sends,
    the timers it needs (each one at a time, started again when started
    while running) and what it reports.
    """

    def sendOffer(self, record: bytes) -> None:
        """
        Send an RKO on a live channel that can take data now.
        """

    def sendControl(self, record: bytes) -> None:
        ...

    def startAckTimeout(self, seconds: float) -> None:
        """
        Call the server machine's C{ackTimedOut} in C{seconds}.
        """

    def cancelAckTimeout(self) -> None:
        ...

    def startOverlap(self, seconds: float) -> None:
        """
        Call the machine's C{overlapEnded} in C{seconds}.
        """

    def cancelOverlap(self) -> None:
        ...

    def rotateSoon(self) -> None:
        """
        A trigger came during the rotation whose overlap just ended: rotate
        again, on the next turn of the reactor.
        """

    def rotationEnded(self, epoch: int, committed: bool, reason: str) -> None:
        """
        Report (and log) how one rotation ended.
        """

    def rekeyFailed(self) -> None:
        """
        Too many rotations in a row failed: end the session.
        """


class ServerRotation:
    """
    The server's side: offers, commits or rolls back, and ends overlaps.

    @ivar rollbacks: rotations that failed in a row.
    """

    _machine = MethodicalMachine()

    def __init__(
        self,
        owner: RotationOwner,
        keys: RotationKeys,
        session: bytes,
        exchangeKey: rsa.RSAPublicKey,
        ackTimeout: float,
        overlap: float,
    ) -> None:
        self._owner = owner
        self._keys = keys
        self._session = session
        self._exchangeKey = exchangeKey
        self._highest = keys.committed
        self._ackTimeout = ackTimeout
        self._overlap = overlap
        self.rollbacks = 0
        self._offer: tuple[int, bytes, bytes, asymmetric.Ephemeral] | None = None
        self._previous: int | None = None
        self._waiting = False

    @property
    def epoch(self) -> int:
        """
        The committed epoch.
        """
        return self._keys.committed

    @_machine.input()
    def tick(self) -> None:
        "Time for a rotation (a round, a volume or age trigger, an RKR)."

    @_machine.input()
    def gotGoodAck(self, epoch: int, secret: bytes) -> None:
        "The client proved it derived the offered epoch."

    @_machine.input()
    def gotBadAck(self, reason: str) -> None:
        "An acknowledgement of the current offer did not verify."

    @_machine.input()
    def ackTimedOut(self) -> None:
        "No valid acknowledgement within the ACK timeout."

    @_machine.input()
    def overlapEnded(self) -> None:
        "The old epoch's grace period is over."

    @_machine.state(initial=True)
    def steady(self) -> None:
        "One committed epoch, no rotation in flight."

    @_machine.state()
    def offered(self) -> None:
        "An RKO is out; its RKA is awaited."

    @_machine.state()
    def overlapping(self) -> None:
        "Just committed: the previous epoch is still accepted."

    @_machine.output()
    def _makeOffer(self) -> None:
        self._waiting = False
        epoch = self._highest = self._highest + 1
        secret = os.urandom(SECRET_SIZE)
        ephemeral = asymmetric.Ephemeral()
        ciphertext = asymmetric.encrypt(
            self._exchangeKey, secret, offerLabel(self._session, epoch)
        )
        offer = records.RotationOffer(epoch, ephemeral.public, ciphertext).encode()
        self._offer = (epoch, secret, offer, ephemeral)
        self._owner.sendOffer(offer)
        self._owner.startAckTimeout(self._ackTimeout)

    @_machine.output()
    def _rememberTrigger(self) -> None:
        self._waiting = True

    @_machine.output()
    def _commit(self, epoch: int, secret: bytes) -> None:
        self._owner.cancelAckTimeout()
        self._offer = None
        previous = self._keys.committed
        self.rollbacks = 0
        self._keys.install(epoch, secret)
        self._keys.switch(epoch)
        self._owner.sendControl(records.RotationCommit(epoch).encode())
        self._previous = previous
        self._owner.startOverlap(self._overlap)
        self._owner.rotationEnded(epoch, True, "committed")

    @_machine.output()
    def _rejectAck(self, reason: str) -> None:
        self._rollBack(reason)

    @_machine.output()
    def _ackMissing(self) -> None:
        self._rollBack("no acknowledgement in time")

    def _rollBack(self, reason: str) -> None:
        self._owner.cancelAckTimeout()
        epoch = self._offer[0]
        self._offer = None
        self.rollbacks += 1
        self._owner.sendControl(records.RotationAbort(epoch, 0).encode())
        self._owner.rotationEnded(epoch, False, reason)
        if self.rollbacks >= MAX_ROLLBACKS:
            self._owner.rekeyFailed()

    @_machine.output()
    def _retire(self) -> None:
        self._keys.drop(self._previous)
        self._previous = None
        if self._waiting:
            self._owner.rotateSoon()

    steady.upon(tick, enter=offered, outputs=[_makeOffer])
    steady.upon(overlapEnded, enter=steady, outputs=[])
    steady.upon(ackTimedOut, enter=steady, outputs=[])
    offered.upon(tick, enter=offered, outputs=[_rememberTrigger])
    offered.upon(gotGoodAck, enter=overlapping, outputs=[_commit])
    offered.upon(gotBadAck, enter=steady, outputs=[_rejectAck])
    offered.upon(ackTimedOut, enter=steady, outputs=[_ackMissing])
    overlapping.upon(tick, enter=overlapping, outputs=[_rememberTrigger])
    overlapping.upon(overlapEnded, enter=steady, outputs=[_retire])
    overlapping.upon(ackTimedOut, enter=overlapping, outputs=[])

    def ackReceived(self, ack: records.RotationAck) -> None:
        """
        Check an RKA; one for an epoch that is not on offer (late, or for
        an offer already rolled back) is ignored (A11).
        """
        offer = self._offer
        if offer is None or ack.newEpoch != offer[0]:
            return
        epoch, secret, offerRecord, ephemeral = offer
        try:
            shared = ephemeral.exchange(ack.ephemeral)
        except ValueError:
            self.gotBadAck("the client's X25519 share is invalid")
            return
        newSecret, transcript = _newEpoch(
            self._keys.secret(self.epoch), epoch, secret, shared, offerRecord,
            ack.ephemeral,
        )
        if not hmac.compare_digest(_confirm(newSecret, transcript), ack.confirm):
            self.gotBadAck("the client's confirmation is wrong")
            return
        self.gotGoodAck(epoch, newSecret)


class ClientRotation:
    """
    The client's side: answers offers, commits on the server's word or its
    first frame under the new epoch, forgets aborted epochs.
    """

    _machine = MethodicalMachine()

    def __init__(
        self,
        owner: RotationOwner,
        keys: RotationKeys,
        session: bytes,
        exchangeKey: rsa.RSAPrivateKey,
        overlap: float,
    ) -> None:
        self._owner = owner
        self._keys = keys
        self._session = session
        self._exchangeKey = exchangeKey
        self._overlap = overlap
        self._previous: int | None = None

    @property
    def epoch(self) -> int:
        """
        The committed epoch.
        """
        return self._keys.committed

    @property
    def pending(self) -> int | None:
        """
        The epoch offered and acknowledged, not yet committed.
        """
        return self._keys.pending

    @_machine.input()
    def gotGoodOffer(self, epoch: int, secret: bytes, ack: bytes) -> None:
        "An offer decrypted and its new epoch is derived."

    @_machine.input()
    def gotCommit(self, epoch: int) -> None:
        "RKC, or the first authenticated frame under the pending epoch."

    @_machine.input()
    def gotAbort(self, epoch: int) -> None:
        "RKX for the pending epoch."

    def committed(self, epoch: int) -> None:
        """
        The server committed C{epoch}; a commit of any epoch but the pending
        one (a late RKC overtaken by a newer offer) means nothing.
        """
        if epoch == self.pending:
            self.gotCommit(epoch)

    def aborted(self, epoch: int) -> None:
        """
        The server rolled C{epoch} back; an RKX for an epoch this client
        does not hold is ignored (A11).
        """
        if epoch == self.pending:
            self.gotAbort(epoch)

    @_machine.input()
    def overlapEnded(self) -> None:
        "The old epoch's grace period is over."

    @_machine.state(initial=True)
    def steady(self) -> None:
        "One committed epoch."

    @_machine.state()
    def pendingCommit(self) -> None:
        "An offer was acknowledged; its epoch is accepted but not used."

    @_machine.state()
    def overlapping(self) -> None:
        "Just committed; the previous epoch is still accepted."

    @_machine.output()
    def _acknowledge(self, epoch: int, secret: bytes, ack: bytes) -> None:
        pending = self.pending
        if pending is not None and pending != epoch:
            self._keys.drop(pending)
        self._keys.install(epoch, secret)
        self._owner.sendControl(ack)

    @_machine.output()
    def _switch(self, epoch: int) -> None:
        self._previous = self.epoch
        self._keys.switch(epoch)
        self._owner.startOverlap(self._overlap)
        self._owner.rotationEnded(epoch, True, "committed")

    @_machine.output()
    def _forget(self, epoch: int) -> None:
        self._keys.drop(epoch)

    @_machine.output()
    def _retire(self) -> None:
        self._dropPrevious()

    @_machine.output()
    def _retireEarly(self, epoch: int, secret: bytes, ack: bytes) -> None:
        """
        A new offer during the overlap: the previous epoch goes now.
        """
        self._owner.cancelOverlap()
        self._dropPrevious()

    def _dropPrevious(self) -> None:
        if self._previous is not None:
            self._keys.drop(self._previous)
            self._previous = None

    steady.upon(gotGoodOffer, enter=pendingCommit, outputs=[_acknowledge])
    steady.upon(gotCommit, enter=steady, outputs=[])
    steady.upon(gotAbort, enter=steady, outputs=[])
    steady.upon(overlapEnded, enter=steady, outputs=[])
    pendingCommit.upon(gotGoodOffer, enter=pendingCommit, outputs=[_acknowledge])
    pendingCommit.upon(gotCommit, enter=overlapping, outputs=[_switch])
    pendingCommit.upon(gotAbort, enter=steady, outputs=[_forget])
    pendingCommit.upon(overlapEnded, enter=pendingCommit, outputs=[_retire])
    overlapping.upon(gotGoodOffer, enter=pendingCommit, outputs=[_retireEarly, _acknowledge])
    overlapping.upon(gotCommit, enter=overlapping, outputs=[])
    overlapping.upon(gotAbort, enter=overlapping, outputs=[])
    overlapping.upon(overlapEnded, enter=steady, outputs=[_retire])

    def offerReceived(self, offer: records.RotationOffer) -> None:
        """
        Decrypt and answer an RKO.  An offer that does not decrypt (wrong
        session or epoch in its label, T33) is not answered: the server
        rolls back.

        @raise ProtocolError: for an epoch not above every epoch seen.
        """
        if offer.newEpoch <= max(self.epoch, self.pending or 0):
            raise ProtocolError("a rotation offer for an old epoch")
        try:
            secret = asymmetric.decrypt(
                self._exchangeKey, offer.ciphertext, offerLabel(self._session, offer.newEpoch)
            )
        except ValueError:
            return
        ephemeral = asymmetric.Ephemeral()
        try:
            shared = ephemeral.exchange(offer.ephemeral)
        except ValueError:
            return
        newSecret, transcript = _newEpoch(
            self._keys.secret(self.epoch), offer.newEpoch, secret, shared,
            offer.encode(), ephemeral.public,
        )
        ack = records.RotationAck(
            offer.newEpoch, ephemeral.public, _confirm(newSecret, transcript)
        ).encode()
        self.gotGoodOffer(offer.newEpoch, newSecret, ack)
