# -*- test-case-name: tests.memory.test_reassembly -*-
"""
Incoming messages: fragments gathered into whole messages, verified, and
delivered in message-id order, exactly once.

Every size the peer declares is checked against the session's limits before
anything is allocated, and a message reserves its whole length when its
first fragment arrives: from the session's budget, which the peer's sender
respects (so breaking it is fatal), and from the daemon's L{Budget}, shared
by every session, where each identity may hold only its share.  A message
the shared budget cannot take is refused with C{ACK:} busy, the session
going on, and its sender sends it again later: memory that other peers hold
is back-pressure, never a fault of this one.  A message is abandoned after
C{REASSEMBLY_TIMEOUT} without a new fragment, and at its absolute deadline
however steadily its fragments come, so no peer can pin memory for long.
"""

from __future__ import annotations

import hmac
from collections import deque
from typing import Callable

from twisted.internet.defer import maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import LogLevel
from twisted.python.failure import Failure

from spc.errors import ProtocolError, ResourceLimitExceeded
from spc.inflight import InFlight
from spc.logs import events
from spc.protocol import frames, records
from spc.protocol.acks import ACK_DELAY, ACK_EVERY, AckBatcher
from spc.ratelimit import RateWindow

__all__ = ["ACK_DELAY", "ACK_EVERY", "Account", "Budget", "Reassembler", "REASSEMBLY_TIMEOUT"]

REASSEMBLY_TIMEOUT = 60.0
DEFAULT_GLOBAL_BUDGET = 1 << 30
DEFAULT_IDENTITY_BUDGET = 256 << 20
DEFAULT_DEADLINE = 1800.0
REMEMBERED_FAILURES = 1024
RECENT_FINAL = 64


class Budget:
    """
    Bytes that incoming messages may hold in memory, shared by every
    session of a daemon, and how long one message may hold them.

    @ivar limit: the most bytes reserved at once, by all identities.
    @ivar perIdentity: the most bytes the sessions of one identity may
        reserve at once, so a few peers cannot take it all.
    @ivar deadline: seconds from a message's first fragment until its
        delivery begins, after which it is abandoned however steadily its
        fragments came.
    @ivar reserved: bytes reserved now.
    """

    def __init__(
        self,
        limit: int = DEFAULT_GLOBAL_BUDGET,
        perIdentity: int = DEFAULT_IDENTITY_BUDGET,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        self.limit = limit
        self.perIdentity = perIdentity
        self.deadline = deadline
        self.reserved = 0
        self._byIdentity: dict[str, int] = {}

    def account(self, identity: str) -> Account:
        """
        @return: what the sessions of C{identity} reserve through.
        """
        return Account(self, identity)

    def reservedBy(self, identity: str) -> int:
        """
        @return: the bytes the sessions of C{identity} hold now.
        """
        return self._byIdentity.get(identity, 0)

    def reserve(self, identity: str, size: int) -> bool:
        """
        @return: whether C{size} more bytes fit both the daemon's limit and
            the identity's share; if not, nothing is reserved.
        """
        held = self.reservedBy(identity)
        if self.reserved + size > self.limit or held + size > self.perIdentity:
            return False
        self.reserved += size
        self._byIdentity[identity] = held + size
        return True

    def release(self, identity: str, size: int) -> None:
        self.reserved -= size
        held = self._byIdentity.pop(identity) - size
        if held:
            self._byIdentity[identity] = held


class Account:
    """
    One identity's use of a L{Budget}: what its sessions' reassemblers
    reserve through.

    @ivar budget: the shared budget.
    @ivar identity: the peer's fingerprint.
    """

    def __init__(self, budget: Budget, identity: str) -> None:
        self.budget = budget
        self.identity = identity

    @property
    def deadline(self) -> float:
        return self.budget.deadline

    def reserve(self, size: int) -> bool:
        return self.budget.reserve(self.identity, size)

    def release(self, size: int) -> None:
        self.budget.release(self.identity, size)


class _Incoming:
    """
    One message being gathered, then waiting for its turn.

    @ivar gathered: whether it needs no more fragments: every one arrived
        and the digest matched, or it was given up.
    @ivar data: the message, once gathered and until delivered; C{None}
        if it was given up.
    @ivar verdict: why it was given up: C{ACK_ABANDONED} or C{ACK_BUSY}.
    @ivar reserved: the bytes it holds of the session's and the shared
        budget (none once given up).
    @ivar idle: the timer of C{REASSEMBLY_TIMEOUT} without a new fragment.
    @ivar deadline: the timer of the budget's deadline, which runs until
        its delivery begins, so a gathered message waiting for an earlier
        one that never comes is not kept either.
    """

    __slots__ = (
        "header", "parts", "received", "gathered", "data", "verdict",
        "reserved", "idle", "deadline",
    )

    def __init__(self, header: tuple) -> None:
        self.header = header
        self.parts: dict[int, bytes] = {}
        self.received: set[int] = set()
        self.gathered = False
        self.data: bytes | None = None
        self.verdict = records.ACK_ABANDONED
        self.reserved = 0
        self.idle: IDelayedCall | None = None
        self.deadline: IDelayedCall | None = None


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
            if len(runs) == frames.MAX_ACK_RANGES:
                break
            runs.append((index, 1))
    return tuple(runs)


class Reassembler:
    """
    The receiving half of a session's messenger.

    @ivar nextDeliveryID: the lowest message id not yet delivered.
    """

    log = events.NamedLogger(events.MESSAGE)

    def __init__(
        self,
        params: frames.Params,
        deliver: Callable[[bytes, int], object],
        acknowledge: Callable[[bytes], None],
        clock: IReactorTime,
        budget: Account | None = None,
    ) -> None:
        self._params = params
        self._deliver = deliver
        self._acknowledge = acknowledge
        self._clock = clock
        self._budget = budget or Budget().account("")
        self._incoming: dict[int, _Incoming] = {}
        self._reserved = 0
        self.nextDeliveryID = 0
        self._delivering = False
        self.delivering = InFlight()
        self._closed = False
        self._acks = AckBatcher(clock, self._progressDue)
        self._unsuccessful: dict[int, int] = {}
        self._recentFinal: deque[tuple[int, int]] = deque(maxlen=RECENT_FINAL)
        self._refusals = events.ThrottledLog(
            clock, self.log, events.MESSAGES_REFUSED_SUPPRESSED, peer=self._budget.identity
        )
        self._duplicateAnswers = RateWindow(clock, params.seconds.heartbeatInterval)

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
        if incoming.verdict == records.ACK_BUSY:
            self._acknowledge(records.Ack(msgID, records.ACK_BUSY).encode())
            return
        if incoming.gathered or fragment.index in incoming.received:
            if self._answersDuplicate(msgID):
                self._sendProgress(msgID, incoming)
            return
        incoming.parts[fragment.index] = bytes(fragment.payload)
        incoming.received.add(fragment.index)
        incoming.idle.reset(REASSEMBLY_TIMEOUT)
        if len(incoming.received) == fragment.count:
            self._acks.acknowledged(msgID)
            self._complete(msgID, incoming)
        else:
            self._acks.arrived(msgID)

    def _begin(self, fragment: records.Fragment) -> _Incoming:
        """
        A message's first fragment: check what it declares, then reserve
        its length, or refuse it as busy when the shared budget has no
        room for it now.
        """
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
        msgID = fragment.msgID
        incoming = _Incoming(
            (fragment.count, fragment.totalLength, fragment.kind, fragment.digest)
        )
        self._incoming[msgID] = incoming
        if not self._budget.reserve(fragment.totalLength):
            self._refused(msgID, fragment.totalLength)
            incoming.verdict = records.ACK_BUSY
            incoming.gathered = True
            self._deliverReady()
            return incoming
        incoming.reserved = fragment.totalLength
        self._reserved += fragment.totalLength
        incoming.idle = self._clock.callLater(
            REASSEMBLY_TIMEOUT, self._abandon, msgID, "no progress"
        )
        incoming.deadline = self._clock.callLater(
            self._budget.deadline, self._abandon, msgID, "deadline passed"
        )
        return incoming

    def _refused(self, msgID: int, size: int) -> None:
        """
        Tell the operator that messages wait for memory, a few lines a
        minute however fast the peer starts new ones.
        """
        budget, identity = self._budget.budget, self._budget.identity
        self._refusals.emit(
            "busy",
            LogLevel.warn,
            events.MESSAGE_REFUSED,
            msgID=msgID,
            size=size,
            peer=identity,
            reserved=budget.reserved,
            held=budget.reservedBy(identity),
        )

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
        if incoming.idle is not None and incoming.idle.active():
            incoming.idle.cancel()
        incoming.idle = None
        incoming.gathered = True
        incoming.data = data
        self._deliverReady()

    def _abandon(self, msgID: int, why: str) -> None:
        """
        No progress for too long, or the deadline passed before its
        delivery began: free the message's memory and its reservation at
        once; its turn in order tells the sender and lets later messages be
        delivered.
        """
        incoming = self._incoming.get(msgID)
        if incoming is None or incoming.reserved == 0:
            return
        self.log.warn("Abandoning message {msgID}: {why}", msgID=msgID, why=why)
        self._cancelTimers(incoming)
        incoming.parts.clear()
        incoming.data = None
        incoming.gathered = True
        self._release(incoming)
        self._deliverReady()

    def _deliverReady(self) -> None:
        if self._delivering or self._closed:
            return
        incoming = self._incoming.get(self.nextDeliveryID)
        if incoming is None or not incoming.gathered:
            return
        msgID = self.nextDeliveryID
        data, incoming.data = incoming.data, None
        if data is None:
            self._delivered(msgID, incoming.verdict)
            return
        self._cancelTimers(incoming)
        self._delivering = True
        self.delivering.track(
            maybeDeferred(self._deliver, data, incoming.header[2]).addCallbacks(
                lambda _: self._delivered(msgID, records.ACK_COMPLETE),
                lambda failure: self._delivered(msgID, records.ACK_ABANDONED, failure),
            )
        )

    def _delivered(self, msgID: int, status: int, failure: Failure | None = None) -> None:
        """
        Message C{msgID}'s turn is over: free it, remember how it ended and
        tell the sender (a busy refusal was told when it was made).
        """
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
            if status != records.ACK_BUSY:
                self._acknowledge(records.Ack(msgID, status).encode())
            self._deliverReady()

    def _release(self, incoming: _Incoming) -> None:
        size, incoming.reserved = incoming.reserved, 0
        if size:
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

    # Progress acknowledgements: when the AckBatcher says so (every
    # ACK_EVERY fragments, or ACK_DELAY after the first unacknowledged one).

    def _sendProgress(self, msgID: int, incoming: _Incoming) -> None:
        self._acks.acknowledged(msgID)
        self._acknowledge(
            records.Ack(msgID, records.ACK_PROGRESS, _indexRanges(incoming.received)).encode()
        )

    def _progressDue(self, msgID: int) -> None:
        incoming = self._incoming.get(msgID)
        if incoming is not None and not incoming.gathered:
            self._sendProgress(msgID, incoming)

    def reacknowledge(self) -> None:
        """
        Acknowledgements travel on one channel; when a channel dies, some
        may have died with it.  Say again what arrived of every message in
        progress, that refused ones were refused, and how the latest ones
        ended, so the sender forgets them and none waits for an answer
        that will not come.
        """
        for msgID, incoming in list(self._incoming.items()):
            if incoming.verdict == records.ACK_BUSY:
                self._acknowledge(records.Ack(msgID, records.ACK_BUSY).encode())
            elif not incoming.gathered:
                self._sendProgress(msgID, incoming)
        for msgID, status in self._recentFinal:
            self._acknowledge(records.Ack(msgID, status).encode())

    def _cancelTimers(self, incoming: _Incoming) -> None:
        for timer in (incoming.idle, incoming.deadline):
            if timer is not None and timer.active():
                timer.cancel()
        incoming.idle = incoming.deadline = None

    def close(self) -> None:
        """
        The session ended: free everything, deliver nothing more.
        """
        self._closed = True
        self._acks.stop()
        self._refusals.flush()
        for incoming in self._incoming.values():
            self._cancelTimers(incoming)
            self._release(incoming)
        self._incoming.clear()
