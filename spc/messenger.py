# -*- test-case-name: tests.test_messenger -*-
"""
The MultiChannelMessenger: messages out as fragments over a session's
channels, fragments in as whole messages, each acknowledged once delivered.

Sending, every fragment is kept until the peer's C{ACK:} says its message
was delivered, so the Deferred returned by L{MultiChannelMessenger.send}
fires only when the peer has the message (for the daemon: stored).
Receiving, fragments are gathered per message id, checked against the
message digest, and delivered in message-id order, exactly once; duplicates
are dropped and acknowledged again.  Every size the peer declares is checked
against the session's limits before anything is allocated.

The messenger knows the session only through L{FragmentSink}: which
channels are live, and how to send a record on one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import deque
from typing import Callable, Protocol

from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from spc import records, wire
from spc.errors import MessageAbandoned, ProtocolError, ResourceLimitExceeded

__all__ = ["FragmentSink", "MultiChannelMessenger", "messageDigest"]


def messageDigest(kind: int, data: bytes) -> bytes:
    """
    The digest every fragment of a message carries: it binds the kind and
    length too, so a fragment cannot be moved into another message.
    """
    return hashlib.sha256(
        bytes((kind,)) + len(data).to_bytes(8, "big") + data
    ).digest()


class FragmentSink(Protocol):
    """
    The session, as the messenger sees it.
    """

    def liveChannels(self) -> list:
        ...

    def sendOn(self, channel, record: bytes) -> None:
        ...

    def protocolError(self, reason: str) -> None:
        """
        The peer broke a session-wide rule; end the session.
        """


class _Outgoing:
    __slots__ = ("msgID", "fragments", "deferred", "digest")

    def __init__(
        self, msgID: int, fragments: list[bytes], deferred: Deferred, digest: bytes
    ) -> None:
        self.digest = digest
        self.msgID = msgID
        self.fragments = fragments
        self.deferred = deferred


class _Incoming:
    __slots__ = ("header", "parts", "received", "complete")

    def __init__(self, header: tuple) -> None:
        self.header = header
        self.parts: dict[int, bytes] = {}
        self.received = 0
        self.complete: bytes | None = None


class MultiChannelMessenger:
    """
    One per session and direction pair.

    @ivar deliver: called with C{(data, kind)} for each message, in order;
        may return a Deferred, and the message is acknowledged when it fires.
    """

    log = Logger()

    def __init__(
        self,
        sink: FragmentSink,
        params: wire.Params,
        deliver: Callable[[bytes, int], object],
    ) -> None:
        self._sink = sink
        self._params = params
        self.deliver = deliver
        self._nextID = 0
        self._outgoing: dict[int, _Outgoing] = {}
        self._incoming: dict[int, _Incoming] = {}
        self._nextDelivery = 0
        self._delivering = False
        self._closed: Failure | None = None
        self._turn = 0
        self._reserved = 0
        self._waiting: deque = deque()

    @property
    def nextSendID(self) -> int:
        """
        The id the next message sent will get.
        """
        return self._nextID

    @property
    def nextDeliveryID(self) -> int:
        """
        The lowest message id not yet delivered here.
        """
        return self._nextDelivery

    # Sending.

    def send(self, data: bytes, kind: int = records.KIND_BINARY) -> Deferred:
        """
        Send one message.

        @return: a Deferred that fires with the message digest once the
            peer confirmed delivery, or fails with the reason it could not.
            Beyond the session's in-flight limit, messages wait their turn.
        """
        if self._closed is not None:
            return fail(self._closed)
        params = self._params
        if len(data) > params.maxMessageSize:
            raise ValueError("message larger than the session allows")
        deferred = Deferred()
        self._waiting.append((bytes(data), kind, deferred))
        self._startWaiting()
        return deferred

    def _startWaiting(self) -> None:
        while self._waiting and len(self._outgoing) < self._params.maxInflightMessages:
            data, kind, deferred = self._waiting.popleft()
            self._start(data, kind, deferred)

    def _start(self, data: bytes, kind: int, deferred: Deferred) -> None:
        params = self._params
        msgID = self._nextID
        self._nextID += 1
        digest = messageDigest(kind, data)
        size = params.fragmentSize
        count = max(1, -(-len(data) // size))
        view = memoryview(data)
        fragments = [
            records.Fragment(
                msgID, index, count, len(data), kind, digest,
                view[index * size : (index + 1) * size],
            ).encode()
            for index in range(count)
        ]
        self._outgoing[msgID] = _Outgoing(msgID, fragments, deferred, digest)
        for fragment in fragments:
            self._sendFragment(fragment)

    def _sendFragment(self, record: bytes) -> None:
        channels = self._sink.liveChannels()
        if not channels:
            return
        self._turn = (self._turn + 1) % len(channels)
        self._sink.sendOn(channels[self._turn], record)

    def ackReceived(self, ack: records.Ack) -> None:
        outgoing = self._outgoing.get(ack.msgID)
        if outgoing is None or ack.status == records.ACK_PROGRESS:
            return
        del self._outgoing[ack.msgID]
        if ack.status == records.ACK_COMPLETE:
            outgoing.deferred.callback(outgoing.digest)
        else:
            outgoing.deferred.errback(MessageAbandoned(f"message {ack.msgID}"))
        self._startWaiting()

    def resendAll(self) -> None:
        """
        Send every unacknowledged fragment again on the live channels: a
        channel died, and what it carried may be lost.
        """
        for outgoing in list(self._outgoing.values()):
            for fragment in outgoing.fragments:
                self._sendFragment(fragment)

    def failAll(self, reason: Failure) -> None:
        """
        The session is over: every outstanding send fails with C{reason}.
        """
        self._closed = reason
        outgoing, self._outgoing = self._outgoing, {}
        waiting, self._waiting = self._waiting, deque()
        for pending in outgoing.values():
            pending.deferred.errback(reason)
        for _, _, deferred in waiting:
            deferred.errback(reason)
        self._incoming.clear()
        self._reserved = 0

    # Receiving.

    def fragmentReceived(self, fragment: records.Fragment) -> None:
        msgID = fragment.msgID
        if msgID < self._nextDelivery:
            self._acknowledge(msgID, records.ACK_COMPLETE)
            return
        params = self._params
        if msgID >= self._nextDelivery + params.maxInflightMessages:
            raise ResourceLimitExceeded("message id beyond the in-flight window")
        size = params.fragmentSize
        expectedCount = max(1, -(-fragment.totalLength // size))
        if fragment.totalLength > params.maxMessageSize:
            raise ResourceLimitExceeded("message larger than the session allows")
        if fragment.count != expectedCount:
            raise ProtocolError("fragment count does not match the message size")
        last = fragment.index == fragment.count - 1
        expectedLength = fragment.totalLength - size * (fragment.count - 1) if last else size
        if len(fragment.payload) != expectedLength:
            raise ProtocolError("fragment payload of the wrong length")
        header = (fragment.count, fragment.totalLength, fragment.kind, fragment.digest)
        incoming = self._incoming.get(msgID)
        if incoming is None:
            if self._reserved + fragment.totalLength > params.reassemblyBudget:
                raise ResourceLimitExceeded("reassembly budget exceeded")
            self._reserved += fragment.totalLength
            incoming = self._incoming[msgID] = _Incoming(header)
        elif incoming.header != header:
            raise ProtocolError("fragments of one message disagree")
        if incoming.complete is not None or fragment.index in incoming.parts:
            return
        incoming.parts[fragment.index] = bytes(fragment.payload)
        incoming.received += 1
        if incoming.received == fragment.count:
            data = b"".join(incoming.parts[i] for i in range(fragment.count))
            incoming.parts.clear()
            if not hmac.compare_digest(messageDigest(fragment.kind, data), fragment.digest):
                raise ProtocolError("message digest mismatch")
            incoming.complete = data
            self._deliverReady()

    def _deliverReady(self) -> None:
        if self._delivering:
            return
        incoming = self._incoming.get(self._nextDelivery)
        if incoming is None or incoming.complete is None:
            return
        msgID = self._nextDelivery
        self._delivering = True
        result = maybeDeferred(self.deliver, incoming.complete, incoming.header[2])
        result.addCallbacks(
            lambda _: self._delivered(msgID, records.ACK_COMPLETE),
            lambda failure: self._delivered(msgID, records.ACK_ABANDONED, failure),
        )

    def _delivered(self, msgID: int, status: int, failure: Failure | None = None) -> None:
        if failure is not None:
            self.log.failure("Delivering message {msgID} failed", failure, msgID=msgID)
        self._delivering = False
        done = self._incoming.pop(msgID, None)
        if done is not None:
            self._reserved -= done.header[1]
        self._nextDelivery = msgID + 1
        if self._closed is None:
            self._acknowledge(msgID, status)
            self._deliverReady()

    def _acknowledge(self, msgID: int, status: int) -> None:
        channels = self._sink.liveChannels()
        if channels:
            self._sink.sendOn(channels[0], records.Ack(msgID, status).encode())
