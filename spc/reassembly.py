# -*- test-case-name: tests.test_reassembly -*-
"""
Incoming messages: fragments gathered into whole messages, verified, and
delivered in message-id order, exactly once.

Every size the peer declares is checked against the session's limits before
anything is allocated, and a message reserves its whole length from the
session's and the daemon's reassembly budgets when its first fragment
arrives.  A message that stops making progress is abandoned after a timeout,
so a peer cannot pin memory by sending all fragments but one.
"""

from __future__ import annotations

import hmac
from collections import deque
from typing import Callable

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from spc import records, wire
from spc.errors import ProtocolError, ResourceLimitExceeded
from spc.inflight import InFlight
from spc.ratelimit import RateWindow

__all__ = ["Budget", "Reassembler", "REASSEMBLY_TIMEOUT"]

REASSEMBLY_TIMEOUT = 60.0
DEFAULT_GLOBAL_BUDGET = 1 << 30
ACK_EVERY = 16
ACK_DELAY = 0.25
REMEMBERED_FAILURES = 1024
RECENT_FINAL = 64


class Budget:
    """
    Bytes that incoming messages may hold in memory, shared by every
    session of a daemon.

    @ivar limit: the most bytes reserved at once.
    @ivar reserved: bytes reserved now.
    """

    def __init__(self, limit: int = DEFAULT_GLOBAL_BUDGET) -> None:
        self.limit = limit
        self.reserved = 0

    def reserve(self, size: int) -> None:
        if self.reserved + size > self.limit:
            raise ResourceLimitExceeded("the daemon's reassembly budget is exhausted")
        self.reserved += size

    def release(self, size: int) -> None:
        self.reserved -= size


class _Incoming:
    """
    One message being gathered.

    @ivar done: fires with the message once every fragment arrived and the
        digest matched, or with C{None} once it was abandoned.
    """

    __slots__ = ("header", "parts", "received", "unacknowledged", "done", "timer")

    def __init__(self, header: tuple) -> None:
        self.header = header
        self.parts: dict[int, bytes] = {}
        self.received: set[int] = set()
        self.unacknowledged = 0
        self.done: Deferred = Deferred()
        self.timer: IDelayedCall | None = None


def _indexRanges(indexes: set[int]) -> tuple[tuple[int, int], ...]:
    """
    C{(start, count)} runs of fragment indexes, at most as many as one ACK
    carries (the rest are acknowledged later).
    """
    runs: list[tuple[int, int]] = []
    for index in sorted(indexes):
        if runs and runs[-1][0] + runs[-1][1] == index:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            if len(runs) == records.MAX_ACK_RANGES:
                break
            runs.append((index, 1))
    return tuple(runs)


class Reassembler:
    """
    The receiving half of a session's messenger.

    @ivar nextDeliveryID: the lowest message id not yet delivered.
    """

    log = Logger()

    def __init__(
        self,
        params: wire.Params,
        deliver: Callable[[bytes, int], object],
        acknowledge: Callable[[bytes], None],
        clock: IReactorTime,
        budget: Budget | None = None,
    ) -> None:
        self._params = params
        self._deliver = deliver
        self._acknowledge = acknowledge
        self._clock = clock
        self._budget = budget or Budget()
        self._incoming: dict[int, _Incoming] = {}
        self._reserved = 0
        self.nextDeliveryID = 0
        self._delivering = False
        self.delivering = InFlight()
        self._closed = False
        self._ackCall: IDelayedCall | None = None
        self._unsuccessful: dict[int, int] = {}
        self._recentFinal: deque[tuple[int, int]] = deque(maxlen=RECENT_FINAL)
        self._duplicateAnswers = RateWindow(clock, params.heartbeatInterval / 1000)

    def fragmentReceived(self, fragment: records.Fragment) -> None:
        """
        Take one authenticated fragment.

        @raise ProtocolError: when the peer breaks a rule of the session.
        """
        msgID = fragment.msgID
        if msgID < self.nextDeliveryID:
            if self._answersDuplicate(msgID):
                status = self._unsuccessful.get(msgID, records.ACK_COMPLETE)
                self._acknowledge(records.Ack(msgID, status).encode())
            return
        incoming = self._incoming.get(msgID) or self._begin(fragment)
        header = (fragment.count, fragment.totalLength, fragment.kind, fragment.digest)
        if incoming.header != header:
            raise ProtocolError("fragments of one message disagree")
        self._checkLength(fragment)
        if incoming.done.called or fragment.index in incoming.received:
            if self._answersDuplicate(msgID):
                self._sendProgress(msgID, incoming)
            return
        incoming.parts[fragment.index] = bytes(fragment.payload)
        incoming.received.add(fragment.index)
        incoming.unacknowledged += 1
        incoming.timer.reset(REASSEMBLY_TIMEOUT)
        if len(incoming.received) == fragment.count:
            self._complete(msgID, incoming)
        elif incoming.unacknowledged >= ACK_EVERY:
            self._sendProgress(msgID, incoming)
        else:
            self._scheduleAcks()

    def _begin(self, fragment: records.Fragment) -> _Incoming:
        params = self._params
        if fragment.msgID >= self.nextDeliveryID + params.maxInflightMessages:
            raise ResourceLimitExceeded("message id beyond the in-flight window")
        if fragment.totalLength > params.maxMessageSize:
            raise ResourceLimitExceeded("message larger than the session allows")
        size = params.fragmentSize
        if fragment.count != max(1, -(-fragment.totalLength // size)):
            raise ProtocolError("fragment count does not match the message size")
        if self._reserved + fragment.totalLength > params.reassemblyBudget:
            raise ResourceLimitExceeded("reassembly budget exceeded")
        self._budget.reserve(fragment.totalLength)
        self._reserved += fragment.totalLength
        incoming = _Incoming(
            (fragment.count, fragment.totalLength, fragment.kind, fragment.digest)
        )
        incoming.timer = self._clock.callLater(
            REASSEMBLY_TIMEOUT, self._abandon, fragment.msgID
        )
        incoming.done.addCallback(self._gathered)
        self._incoming[fragment.msgID] = incoming
        return incoming

    def _checkLength(self, fragment: records.Fragment) -> None:
        size = self._params.fragmentSize
        last = fragment.index == fragment.count - 1
        expected = fragment.totalLength - size * (fragment.count - 1) if last else size
        if len(fragment.payload) != expected:
            raise ProtocolError("fragment payload of the wrong length")

    def _complete(self, msgID: int, incoming: _Incoming) -> None:
        count, _, kind, digest = incoming.header
        data = b"".join(incoming.parts[i] for i in range(count))
        incoming.parts.clear()
        if not hmac.compare_digest(records.messageDigest(kind, data), digest):
            raise ProtocolError("message digest mismatch")
        self._cancelTimer(incoming)
        incoming.done.callback(data)

    def _abandon(self, msgID: int) -> None:
        """
        No progress for too long: free the message's memory, tell the
        sender, and let later messages be delivered.
        """
        incoming = self._incoming.get(msgID)
        if incoming is None or incoming.done.called:
            return
        self.log.warn("Abandoning message {msgID}: no progress", msgID=msgID)
        incoming.timer = None
        incoming.parts.clear()
        incoming.done.callback(None)

    def _gathered(self, data: bytes | None) -> bytes | None:
        self._deliverReady()
        return data

    def _deliverReady(self) -> None:
        if self._delivering or self._closed:
            return
        incoming = self._incoming.get(self.nextDeliveryID)
        if incoming is None or not incoming.done.called:
            return
        msgID = self.nextDeliveryID
        data = incoming.done.result
        if data is None:
            self._delivered(msgID, records.ACK_ABANDONED)
            return
        self._delivering = True
        self.delivering.track(
            maybeDeferred(self._deliver, data, incoming.header[2]).addCallbacks(
                lambda _: self._delivered(msgID, records.ACK_COMPLETE),
                lambda failure: self._delivered(msgID, records.ACK_ABANDONED, failure),
            )
        )

    def _delivered(self, msgID: int, status: int, failure: Failure | None = None) -> None:
        if failure is not None:
            self.log.failure("Delivering message {msgID} failed", failure, msgID=msgID)
        self._delivering = False
        done = self._incoming.pop(msgID, None)
        if done is not None:
            self._release(done)
        self.nextDeliveryID = msgID + 1
        if status != records.ACK_COMPLETE:
            self._unsuccessful[msgID] = status
            if len(self._unsuccessful) > REMEMBERED_FAILURES:
                del self._unsuccessful[min(self._unsuccessful)]
        self._recentFinal.append((msgID, status))
        if not self._closed:
            self._acknowledge(records.Ack(msgID, status).encode())
            self._deliverReady()

    def _release(self, incoming: _Incoming) -> None:
        size = incoming.header[1]
        self._reserved -= size
        self._budget.release(size)

    def _answersDuplicate(self, msgID: int) -> bool:
        """
        Whether a duplicate of message C{msgID} gets an answer: one per
        message per heartbeat interval, so a peer replaying a fragment
        cannot make this end write more than it receives.  The sender only
        resends after losing a channel, and then every message is
        acknowledged again anyway (L{reacknowledge}).
        """
        return self._duplicateAnswers.admit(msgID, 1)

    # Progress acknowledgements: every ACK_EVERY fragments, or ACK_DELAY
    # after the first unacknowledged one.

    def _sendProgress(self, msgID: int, incoming: _Incoming) -> None:
        incoming.unacknowledged = 0
        self._acknowledge(
            records.Ack(msgID, records.ACK_PROGRESS, _indexRanges(incoming.received)).encode()
        )

    def _scheduleAcks(self) -> None:
        if self._ackCall is None:
            self._ackCall = self._clock.callLater(ACK_DELAY, self._flushAcks)

    def _flushAcks(self) -> None:
        self._ackCall = None
        for msgID, incoming in list(self._incoming.items()):
            if incoming.unacknowledged and not incoming.done.called:
                self._sendProgress(msgID, incoming)

    def reacknowledge(self) -> None:
        """
        Acknowledgements travel on one channel; when a channel dies, some
        may have died with it.  Say again what arrived of every message in
        progress and how the latest ones ended, so the sender forgets them
        and none waits for an answer that will not come.
        """
        for msgID, incoming in list(self._incoming.items()):
            if not incoming.done.called:
                self._sendProgress(msgID, incoming)
        for msgID, status in self._recentFinal:
            self._acknowledge(records.Ack(msgID, status).encode())

    def _cancelTimer(self, incoming: _Incoming) -> None:
        if incoming.timer is not None and incoming.timer.active():
            incoming.timer.cancel()
        incoming.timer = None

    def close(self) -> None:
        """
        The session ended: free everything, deliver nothing more.
        """
        self._closed = True
        if self._ackCall is not None and self._ackCall.active():
            self._ackCall.cancel()
        self._ackCall = None
        for incoming in self._incoming.values():
            self._cancelTimer(incoming)
            self._release(incoming)
        self._incoming.clear()
