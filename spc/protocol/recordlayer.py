# -*- test-case-name: tests.unit.test_recordlayer -*-
"""
The record layer of one connection: the keys its handshake left it
(L{ConnectionKeys}), sealing outgoing inner records and opening incoming
protected frames.

Everything a frame's header claims is checked against what the connection
knows (suite, session, channel), its sequence number must be exactly the next
one (so replay, reordering, deletion and truncation within a connection all
fail), and its epoch must be one whose keys this connection still holds.
Epochs only move forward per direction; the receive key of an epoch is
dropped at the first authenticated frame of a newer one (amendment A10).
Any failure raises L{ProtocolError}, which closes the connection.

Sealing and opening are each split in two, so that the cryptography of a
bulk frame may run in a worker lane (A22) while everything the record
layer decides stays on the reactor thread, in order: L{RecordLayer.prepare}
assigns the sequence number and epoch at hand-off and returns the sealing
to do, and L{RecordLayer.check} checks a frame's header, sequence number
and epoch and returns the opening to do, then L{RecordLayer.opened}
updates the epochs once it is authenticated.  A rotation's send-key
switch therefore applies from a sequence number on, never to a frame
already handed off; and a connection checks its next frame only once the
frame before it was opened and acted on, since that frame may have
installed the keys of a new epoch.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

from spc.crypto import keyschedule
from spc.crypto.suites import RecordCipher, Suite
from spc.errors import EpochAhead, ProtocolError, SequenceExhausted
from spc.protocol import frames

__all__ = ["ConnectionKeys", "MAX_SEQUENCE", "Opening", "RecordLayer"]

MAX_SEQUENCE = 1 << 48
# Volume limits per send key (PROTOCOL 4.5): far below the AEAD and CBC
# bounds; the soft ones ask for a rotation, the hard ones are never passed.
SOFT_BYTES = 1 << 34
SOFT_FRAMES = 1 << 24
HARD_BYTES = 1 << 36
HARD_FRAMES = 1 << 28


class ConnectionKeys:
    """
    What a finished handshake leaves one connection: the secret from which
    its traffic keys for every epoch are derived.

    @ivar session: the session id.
    @ivar suite: the connection's suite.
    @ivar channel: its channel index.
    """

    __slots__ = ("session", "suite", "channel", "_thConn", "_secret")

    def __init__(
        self, session: bytes, suite: Suite, channel: int, thConn: bytes, secret: bytes
    ) -> None:
        self.session = session
        self.suite = suite
        self.channel = channel
        self._thConn = thConn
        self._secret = secret

    def ciphers(
        self, epochSecret: bytes, isServer: bool
    ) -> tuple[RecordCipher, RecordCipher]:
        """
        The (send, receive) ciphers of this connection under one epoch.
        """
        suite = self.suite
        made = []
        for direction in (keyschedule.SERVER_TO_CLIENT, keyschedule.CLIENT_TO_SERVER):
            secrets = keyschedule.trafficSecrets(
                epochSecret, self._secret, suite.suiteID, self.channel, direction,
                self._thConn, suite.keyLength, suite.ivLength,
            )
            made.append(suite.cipher(secrets.key, secrets.iv))
        serverToClient, clientToServer = made
        if isServer:
            return serverToClient, clientToServer
        return clientToServer, serverToClient

    def __repr__(self) -> str:
        return f"<ConnectionKeys channel={self.channel} (redacted)>"


class Opening(NamedTuple):
    """
    A protected frame whose header checked out: what is left is to
    authenticate and decrypt it (L{open}, anywhere), then to tell the record
    layer (L{RecordLayer.opened}, on the reactor thread).

    @ivar epoch: the frame's epoch.
    @ivar open: returns the inner plaintext, or raises
        L{spc.errors.AuthenticationFailed}.
    """

    epoch: int
    open: Callable[[], bytes]


class RecordLayer:
    """
    Keys, epochs and sequence numbers of one connection.

    @ivar sendEpoch: the epoch outgoing frames are sealed under.
    @ivar sentFrames: frames sealed so far (the next send sequence number).
    @ivar receivedFrames: frames opened so far (the next expected one).
    @ivar sentBytes: plaintext bytes sealed under the current send key.
    @ivar keyFrames: frames sealed under the current send key.
    """

    def __init__(
        self,
        keys: ConnectionKeys,
        isServer: bool,
        epoch: int,
        epochSecret: bytes,
        maxInner: int,
    ) -> None:
        self._keys = keys
        self._isServer = isServer
        self._suiteID = keys.suite.suiteID
        self._session = keys.session
        self._channel = keys.channel
        self._maxInner = maxInner
        self._sendCiphers: dict[int, RecordCipher] = {}
        self._receiveCiphers: dict[int, RecordCipher] = {}
        self._lastReceiveEpoch = epoch
        self.installEpoch(epoch, epochSecret)
        self.sendEpoch = epoch
        self._sendCipher = self._sendCiphers[epoch]
        self.sentFrames = 0
        self.receivedFrames = 0
        self.sentBytes = 0
        self.keyFrames = 0

    def installEpoch(self, epoch: int, epochSecret: bytes) -> None:
        """
        Derive this connection's keys for C{epoch}: its frames are accepted
        from now on, and L{switchSendEpoch} may start sending under it.
        """
        send, receive = self._keys.ciphers(epochSecret, self._isServer)
        self._sendCiphers[epoch] = send
        if epoch >= self._lastReceiveEpoch:
            self._receiveCiphers[epoch] = receive

    def switchSendEpoch(self, epoch: int) -> None:
        """
        Seal from now on under C{epoch}, and forget older send keys.
        """
        if epoch < self.sendEpoch or epoch not in self._sendCiphers:
            raise RuntimeError(f"cannot send under epoch {epoch}")
        self.sendEpoch = epoch
        self._sendCipher = self._sendCiphers[epoch]
        self.sentBytes = 0
        self.keyFrames = 0
        for old in [e for e in self._sendCiphers if e < epoch]:
            del self._sendCiphers[old]

    def dropEpoch(self, epoch: int) -> None:
        """
        Forget every key of C{epoch}: an overlap ended or an offer was
        rolled back.  A frame of that epoch arriving later closes the
        connection.
        """
        self._receiveCiphers.pop(epoch, None)
        if epoch != self.sendEpoch:
            self._sendCiphers.pop(epoch, None)

    def receiveEpochs(self) -> frozenset[int]:
        """
        The epochs whose frames this connection still accepts.
        """
        return frozenset(self._receiveCiphers)

    def seal(self, plaintext: bytes) -> tuple[bytes, bytes]:
        """
        Protect one inner record.

        @return: the length prefix and header (which are the associated
            data), and the suite body; write them in that order.
        """
        aad, sealing = self.prepare(plaintext)
        return aad, sealing()

    def prepare(self, plaintext: bytes) -> tuple[bytes, Callable[[], bytes]]:
        """
        Hand one inner record to this connection: give it the next
        sequence number under the current send epoch.

        @return: the length prefix and header, and what makes the suite
            body (anywhere, once); write them in that order, and in the
            order they were prepared.
        """
        seq = self.sentFrames
        if seq >= MAX_SEQUENCE:
            raise SequenceExhausted("sequence numbers exhausted")
        if self.sentBytes >= HARD_BYTES or self.keyFrames >= HARD_FRAMES:
            raise SequenceExhausted("the send key carried all it may")
        cipher = self._sendCipher
        aad = frames.protectedAAD(
            frames.PROTECTED_HEADER_SIZE + cipher.sealedLength(len(plaintext)),
            self._suiteID,
            self._session,
            self._channel,
            self.sendEpoch,
            seq,
        )
        self.sentFrames = seq + 1
        self.keyFrames += 1
        self.sentBytes += len(plaintext)
        return aad, partial(cipher.seal, seq, aad, plaintext)

    def keyWornOut(self) -> bool:
        """
        Whether the send key passed its soft volume limit (PROTOCOL 4.5):
        time to rotate, well before the hard limit closes the connection.
        """
        return self.sentBytes >= SOFT_BYTES or self.keyFrames >= SOFT_FRAMES

    def open(self, frame: bytes) -> tuple[int, bytes]:
        """
        Authenticate and decrypt one protected frame body.

        @return: the frame's epoch and its inner plaintext.
        """
        opening = self.check(frame)
        plaintext = opening.open()
        self.opened(opening.epoch, plaintext)
        return opening.epoch, plaintext

    def check(self, frame: bytes | bytearray | memoryview) -> Opening:
        """
        Check the header of the next protected frame against what the
        connection knows; its sequence number is taken once it is opened
        (L{opened}), before the next frame is checked.

        @return: its epoch and the opening to do.
        """
        header = frames.ProtectedHeader.decode(frame)
        if header.suite != self._suiteID:
            raise ProtocolError("frame of another suite")
        if header.session != self._session or header.channel != self._channel:
            raise ProtocolError("frame of another session or channel")
        epoch = header.epoch
        cipher = self._receiveCiphers.get(epoch)
        if cipher is None and epoch > max(self._receiveCiphers, default=-1):
            raise EpochAhead(f"epoch {epoch} is ahead of every key this end holds")
        if cipher is None or epoch < self._lastReceiveEpoch:
            raise ProtocolError(f"epoch {epoch} is not acceptable")
        if header.seq != self.receivedFrames:
            raise ProtocolError(
                f"sequence {header.seq} where {self.receivedFrames} was due"
            )
        view = memoryview(frame)
        aad = frames.LENGTH.pack(len(frame)) + bytes(view[: frames.PROTECTED_HEADER_SIZE])
        return Opening(
            epoch, partial(cipher.open, header.seq, aad, view[frames.PROTECTED_HEADER_SIZE :])
        )

    def opened(self, epoch: int, plaintext: bytes) -> None:
        """
        The frame of L{check} was authenticated: its sequence number is
        taken, and the receive keys of older epochs go at the first frame
        of a newer one (A10).

        @raise ProtocolError: if its plaintext is larger than the session
            allows.
        """
        self.receivedFrames += 1
        if epoch > self._lastReceiveEpoch:
            for old in [e for e in self._receiveCiphers if e < epoch]:
                del self._receiveCiphers[old]
            self._lastReceiveEpoch = epoch
        if len(plaintext) > self._maxInner:
            raise ProtocolError("inner record larger than the session allows")
