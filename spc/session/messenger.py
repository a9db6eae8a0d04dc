# -*- test-case-name: tests.memory.test_messenger -*-
"""
The MultiChannelMessenger: what a session sends, fragment by fragment, over
whichever of its channels has room, and what it receives, gathered back into
whole messages.

Sending is pull-based.  Messages and files are I{sources} that make their
next record only when asked, and L{MultiChannelMessenger.pump} asks only
while some channel can take data (its transport has not paused it, A6/A10)
and the bytes awaiting acknowledgement stay within the send window.  Every
record handed out is kept until the peer acknowledges it; when a channel
dies, what it carried and nobody acknowledged goes out again on the others.
So a slow channel never sets the pace, memory stays bounded whatever the
size of a file, and nothing is lost with a path.

A message the peer refuses as busy (its memory for messages is taken, by
other peers perhaps) is sent again under a new id after a growing wait,
and given up with L{PeerBusy} only after C{BUSY_RETRIES} refusals: the
peer's load delays a message, it does not end the session.

The pump is not a C{task.Cooperator} task.  It is driven by the channels,
not by a loop of its own: it runs when a transport takes data again, when
something is queued or acknowledged, and stops as soon as no channel can
take more; a task run in time slices would have to be paused and resumed
with every transport, and would send on a later turn of the reactor what
is sent now.  It would also cost more on the path every fragment takes:
in a micro-benchmark, a task yielding after each record took more than
twice this loop's time per record.  The one source that wants a later
turn (a file skipping what the receiver holds, L{YIELD}) gets it from one
C{callLater(0)}.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Hashable, Protocol

from twisted.application.internet import backoffPolicy
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from spc.errors import MessageAbandoned, PeerBusy, TransferFailed
from spc.interfaces import YIELD, Source
from spc.logs import events
from spc.protocol import filerecords, frames, records
from spc.session.reassembly import Account, Reassembler

__all__ = ["FragmentSink", "MultiChannelMessenger", "SEND_WINDOW"]

SEND_WINDOW = 16 * 1024 * 1024
BUSY_RETRIES = 20
BUSY_POLICY = backoffPolicy(initialDelay=0.5, maxDelay=30.0)
"""
How long to wait before sending again the messages the peer refused as
busy, by how often the first of them was refused: 0.5 s growing by half
each time to at most 30 s, plus up to 1 s of jitter; the 19 waits before
the 20th refusal come to about five and a half minutes.
"""


class FragmentSink(Protocol):
    """
    The session, as the messenger sees it.
    """

    def writableChannel(self):
        """
        @return: a live channel whose transport can take data now, or
            C{None}.
        """

    def sendOn(self, channel, record: bytes) -> None:
        ...

    def sendControl(self, record: bytes) -> None:
        """
        Send a small control record on any live channel.
        """


class _Message:
    """
    A message being sent, until the peer confirms, abandons or refuses it.

    @ivar over: the peer's answer is final; send no more of it.
    @ivar refused: the peer refused it as busy; its data went back to the
        queue under a new id, and this one only keeps its id's place in
        the peer's window until every earlier message is finished there.
    @ivar refusals: how often the peer refused these bytes before.
    """

    __slots__ = (
        "msgID", "data", "kind", "digest", "count", "deferred", "over", "refused", "refusals"
    )

    def __init__(
        self, msgID: int, data: bytes, kind: int, size: int, deferred: Deferred, refusals: int
    ):
        self.msgID = msgID
        self.data = data
        self.kind = kind
        self.digest = records.messageDigest(kind, data)
        self.count = max(1, -(-len(data) // size))
        self.deferred = deferred
        self.over = False
        self.refused = False
        self.refusals = refusals


class MultiChannelMessenger:
    """
    One per session.

    @ivar reassembler: the receiving half.
    """

    log = events.NamedLogger(events.MESSAGE)

    def __init__(
        self,
        sink: FragmentSink,
        params: frames.Params,
        deliver: Callable[[bytes, int], object],
        clock: IReactorTime,
        budget: Account | None = None,
        window: int = SEND_WINDOW,
        busyPolicy: Callable[[int], float] = BUSY_POLICY,
    ) -> None:
        self._sink = sink
        self._params = params
        self._clock = clock
        self._window = window
        self._busyPolicy = busyPolicy
        self.reassembler = Reassembler(params, deliver, sink.sendControl, clock, budget)
        self._nextID = 0
        self._messages: dict[int, _Message] = {}
        self._declared = 0
        self._files: dict[bytes, object] = {}
        self._waiting: deque[tuple[bytes, int, Deferred, int]] = deque()
        self._refused: list[tuple[bytes, int, Deferred, int]] = []
        self._retryCall: IDelayedCall | None = None
        self._sources: deque[Source] = deque()
        self._unacked: dict[Hashable, bytes] = {}
        self._unackedBytes = 0
        self._sentOn: dict[Hashable, object] = {}
        self._retransmit: deque[Hashable] = deque()
        self._closed: Failure | None = None
        self._pumping = False
        self._pumpLater = None

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
        return self.reassembler.nextDeliveryID

    # Sending messages.

    def send(self, data: bytes, kind: int = records.KIND_BINARY) -> Deferred:
        """
        Send one message.

        @return: a Deferred that fires with the message digest once the
            peer confirmed delivery, or fails with the reason it could not.
            Beyond the session's in-flight limit, messages wait their turn.
        """
        if self._closed is not None:
            return fail(self._closed)
        if len(data) > self._params.maxMessageSize:
            raise ValueError("message larger than the session allows")
        deferred: Deferred = Deferred()
        self._waiting.append((data, kind, deferred, 0))
        self._startWaiting()
        return deferred

    def _startWaiting(self) -> None:
        """
        Start waiting messages while the peer's limits allow: at most
        C{maxInflightMessages} at once, and never more declared bytes than
        its reassembly budget (it reserves a message's whole length when the
        first fragment arrives).  A message refused as busy keeps its place
        until the peer's window has passed it (L{_forgetPassed}).
        """
        params = self._params
        while self._waiting and len(self._messages) < params.maxInflightMessages:
            size = len(self._waiting[0][0])
            if self._messages and self._declared + size > params.reassemblyBudget:
                break
            self._declared += size
            data, kind, deferred, refusals = self._waiting.popleft()
            message = _Message(
                self._nextID, data, kind, self._params.fragmentSize, deferred, refusals
            )
            self._nextID += 1
            self._messages[message.msgID] = message
            self.addSource(_MessageSource(message, self._params.fragmentSize))
        self.pump()

    def ackReceived(self, ack: records.Ack) -> None:
        message = self._messages.get(ack.msgID)
        if message is None or message.refused:
            return
        if ack.status == records.ACK_PROGRESS:
            for start, count in ack.ranges:
                for index in range(start, min(start + count, message.count)):
                    self.acknowledge(("m", ack.msgID, index))
            return
        message.over = True
        self._declared -= len(message.data)
        for index in range(message.count):
            self.acknowledge(("m", ack.msgID, index))
        if ack.status == records.ACK_BUSY:
            message.refused = True
            self._refuse(message)
        else:
            del self._messages[ack.msgID]
            if ack.status == records.ACK_COMPLETE:
                message.deferred.callback(message.digest)
            else:
                message.deferred.errback(MessageAbandoned(f"message {ack.msgID}"))
        self._forgetPassed()
        self._startWaiting()

    def _forgetPassed(self) -> None:
        """
        The peer answers a busy refusal at once but passes the refused id
        only once every earlier message is finished there; until then the
        id still counts against its window of C{maxInflightMessages}.
        Forget the refused ids no earlier message holds back any more.
        """
        while self._messages:
            lowest = next(iter(self._messages.values()))
            if not lowest.refused:
                return
            del self._messages[lowest.msgID]

    def _refuse(self, message: _Message) -> None:
        """
        The peer has no memory for C{message} now: send its bytes again
        later, under a new id, or give up after C{BUSY_RETRIES} refusals.
        """
        if message.refusals + 1 >= BUSY_RETRIES:
            message.deferred.errback(
                PeerBusy(f"refused {BUSY_RETRIES} times, the last as message {message.msgID}")
            )
            return
        self._refused.append(
            (message.data, message.kind, message.deferred, message.refusals + 1)
        )
        if self._retryCall is None:
            delay = self._busyPolicy(message.refusals)
            self.log.info(
                "The peer has no memory to spare for message {msgID} now; "
                "sending it again in {delay:.1f} s",
                msgID=message.msgID, delay=delay,
            )
            self._retryCall = self._clock.callLater(delay, self._retryRefused)

    def _retryRefused(self) -> None:
        """
        Put the refused messages back at the head of the queue, in the
        order they were first sent.
        """
        self._retryCall = None
        refused, self._refused = self._refused, []
        self._waiting.extendleft(reversed(refused))
        self._startWaiting()

    # The scheduler.

    def addSource(self, source: Source) -> None:
        """
        Start taking records from C{source}.
        """
        self._sources.append(source)
        self.pump()

    def acknowledge(self, key: Hashable) -> bool:
        """
        The peer has what C{key} carried: forget it.

        @return: whether C{key} was still awaiting acknowledgement.
        """
        record = self._unacked.pop(key, None)
        if record is None:
            return False
        self._unackedBytes -= len(record)
        self._sentOn.pop(key, None)
        self.pump()
        return True

    # Sending files.

    def sendFile(self, sender) -> Deferred:
        """
        Start sending a file.

        @param sender: a L{spc.files.sending.FileSender}.
        @return: its Deferred.
        """
        if self._closed is not None:
            sender.sessionEnded(self._closed)
            return sender.deferred
        if sender.transferID in self._files:
            sender.sessionEnded(
                Failure(TransferFailed(f"{sender.name} is already being sent"))
            )
            return sender.deferred
        sender.messenger = self
        self._files[sender.transferID] = sender
        self.addSource(sender)
        return sender.deferred

    def outgoingFiles(self) -> list:
        """
        The L{spc.files.sending.FileSender}s still at work, oldest first.
        """
        return list(self._files.values())

    def fileAckReceived(self, ack: filerecords.FileAck) -> None:
        sender = self._files.get(ack.transferID)
        if sender is not None:
            sender.ackReceived(ack)

    def senderDone(self, sender) -> None:
        self._files.pop(sender.transferID, None)

    def renameSender(self, sender, previous: bytes) -> None:
        """
        A restarted file goes on under a new transfer id.
        """
        self._files.pop(previous, None)
        self._files[sender.transferID] = sender

    def pump(self) -> None:
        """
        Hand records to channels while one can take them: retransmissions
        first, then new records while the send window allows.
        """
        if self._pumping or self._closed is not None:
            return
        self._pumping = True
        try:
            while True:
                channel = self._sink.writableChannel()
                if channel is None:
                    return
                key = self._nextKey()
                if key is None:
                    return
                self._sentOn[key] = channel
                self._sink.sendOn(channel, self._unacked[key])
        finally:
            self._pumping = False

    def _nextKey(self):
        while self._retransmit:
            key = self._retransmit.popleft()
            if key in self._unacked:
                return key
        while self._sources and self._unackedBytes < self._window:
            source = self._sources[0]
            produced = source.nextRecord()
            if produced is YIELD:
                self._sources.rotate(-1)
                self._pumpSoon()
                return None
            if produced is None:
                self._sources.popleft()
                continue
            key, record = produced
            self._sources.rotate(-1)
            self._unacked[key] = record
            self._unackedBytes += len(record)
            return key
        return None

    def _pumpSoon(self) -> None:
        if self._pumpLater is None:
            self._pumpLater = self._clock.callLater(0, self._pumpNow)

    def _pumpNow(self) -> None:
        self._pumpLater = None
        self.pump()

    def channelDied(self, channel) -> None:
        """
        What C{channel} carried and nobody acknowledged goes out again.
        """
        lost = [key for key, on in self._sentOn.items() if on is channel]
        for key in lost:
            del self._sentOn[key]
        self._retransmit.extend(lost)
        self.pump()

    def resendAll(self) -> None:
        """
        Send again everything unacknowledged that is not on its way on a
        live channel: nothing could be sent, or a connection was replaced.
        """
        pending = set(self._retransmit)
        self._retransmit.extend(
            key for key in self._unacked if key not in self._sentOn and key not in pending
        )
        self.pump()

    def failAll(self, reason: Failure) -> None:
        """
        The session is over: every outstanding send fails with C{reason}.
        """
        self._closed = reason
        for call in (self._pumpLater, self._retryCall):
            if call is not None and call.active():
                call.cancel()
        self._pumpLater = self._retryCall = None
        messages, self._messages = self._messages, {}
        waiting, self._waiting = self._waiting, deque()
        waiting.extend(self._refused)
        self._refused = []
        self._sources = deque()
        files, self._files = self._files, {}
        self._unacked.clear()
        self._sentOn.clear()
        self._retransmit.clear()
        self._unackedBytes = 0
        for message in messages.values():
            if not message.refused:
                message.deferred.errback(reason)
        for _, _, deferred, _ in waiting:
            deferred.errback(reason)
        for sender in files.values():
            sender.sessionEnded(reason)
        self.reassembler.close()

    # Receiving.

    def fragmentReceived(self, fragment: records.Fragment) -> None:
        self.reassembler.fragmentReceived(fragment)


class _MessageSource:
    """
    Hands out a message's fragments, encoding each only when a channel can
    take it.
    """

    __slots__ = ("_message", "_view", "_size", "_next")

    def __init__(self, message: _Message, size: int) -> None:
        self._message = message
        self._view = memoryview(message.data)
        self._size = size
        self._next = 0

    def nextRecord(self):
        message = self._message
        index = self._next
        if index >= message.count or message.over:
            return None
        self._next = index + 1
        size = self._size
        record = records.Fragment(
            message.msgID,
            index,
            message.count,
            len(message.data),
            message.kind,
            message.digest,
            self._view[index * size : (index + 1) * size],
        ).encode()
        return ("m", message.msgID, index), record
