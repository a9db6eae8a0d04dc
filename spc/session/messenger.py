# -*- test-case-name: tests.memory.test_messenger -*-
"""
The MultiChannelMessenger: what a session sends, fragment by fragment, over
whichever of its channels has room, and what it receives, gathered back into
whole messages.

Sending is pull-based, and one engine serves messages and files alike.
Messages (L{spc.session.outgoing}) and files and folders
(L{spc.files.sending}) are I{sources} that make their next record only
when asked, and L{MultiChannelMessenger.pump} asks only while some channel
can take data (its transport has not paused it, A6/A10) and the bytes
awaiting acknowledgement stay within the send window.  Every record handed
out is kept until the peer acknowledges it; when a channel dies, what it
carried and nobody acknowledged goes out again on the others.  So a slow
channel never sets the pace, memory stays bounded whatever the size of a
file, and nothing is lost with a path.

The messenger owns the kept records, the window and retransmission; a
source only makes records and, told the peer's answer (C{ACK:},
C{FAK:}), says which of its records it acknowledges.  The messenger
forgets them all and pumps once per answer, not once per record.  A file
whose next records are being read in the reader's lane answers L{WAIT}
and says when they are there through the one callable it was given; no
source calls the messenger otherwise.

Files and folders start when the peer's limits allow: at most
C{FILES_AT_ONCE} at once, and no new one while those being sent declare
C{FILE_BYTES_AT_ONCE} or more, so many small files are offered together
(one round trip for a batch, not one each) and large ones follow each
other.

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
twice this loop's time per record.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Hashable, Iterable

from twisted.application.internet import backoffPolicy
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from spc.errors import MessageAbandoned, PeerBusy, TransferFailed
from spc.interfaces import WAIT, FragmentSink, Sender, Source
from spc.logs import events
from spc.protocol import filerecords, frames, records
from spc.session.outgoing import OutgoingMessage
from spc.session.pacing import Pacing
from spc.session.reassembly import Account, Reassembler

__all__ = ["FILES_AT_ONCE", "FILE_BYTES_AT_ONCE", "MultiChannelMessenger", "SEND_WINDOW"]

SEND_WINDOW = 16 * 1024 * 1024
FILES_AT_ONCE = 32
"""
The most files and folders being sent at once: half of what a receiver
takes (C{MAX_ACTIVE_FILES} in L{spc.files.receiving}), so its answers may
lag.
"""
FILE_BYTES_AT_ONCE = 64 * 1024 * 1024
"""
No file or folder starts while those being sent declare this many bytes
or more together.
"""
BUSY_RETRIES = 20
BUSY_POLICY = backoffPolicy(initialDelay=0.5, maxDelay=30.0)
"""
How long to wait before sending again the messages the peer refused as
busy, by how often the first of them was refused: 0.5 s growing by half
each time to at most 30 s, plus up to 1 s of jitter; the 19 waits before
the 20th refusal come to about five and a half minutes.
"""


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
        pacing: Pacing | None = None,
    ) -> None:
        """
        @param pacing: the sink's count of each channel's data in flight.
        """
        self._sink = sink
        self._pacing = pacing if pacing is not None else Pacing(clock)
        self._params = params
        self._clock = clock
        self._window = window
        self._busyPolicy = busyPolicy
        self.reassembler = Reassembler(params, deliver, sink.sendControl, clock, budget)
        self._nextID = 0
        self._messages: dict[int, OutgoingMessage] = {}
        self._declared = 0
        self._files: dict[bytes, Sender] = {}
        self._queuedFiles: deque[Sender] = deque()
        self._fileBytes = 0
        self._waiting: deque[tuple[bytes, int, Deferred, int]] = deque()
        self._refused: list[tuple[bytes, int, Deferred, int]] = []
        self._retryCall: IDelayedCall | None = None
        self._sources: deque[Source] = deque()
        self._turns: set[Source] = set()
        self._unacked: dict[Hashable, bytes] = {}
        self._keptBy: dict[Hashable, Source] = {}
        self._unackedBytes = 0
        self._sentOn: dict[Hashable, object] = {}
        self._retransmit: deque[Hashable] = deque()
        self._closed: Failure | None = None
        self._pumping = False

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
            message = OutgoingMessage(
                self._nextID, data, kind, self._params.fragmentSize, deferred, refusals
            )
            self._nextID += 1
            self._messages[message.msgID] = message
            self._takeTurns(message.source)
        self.pump()

    def ackReceived(self, ack: records.Ack) -> None:
        """
        The peer's C{ACK:}: forget what it acknowledges; a final answer
        settles the message.
        """
        message = self._messages.get(ack.msgID)
        if message is None or message.refused:
            return
        self._forget(message.source.ackReceived(ack))
        if ack.status != records.ACK_PROGRESS:
            self._settle(message, ack)
        self.pump()

    def _settle(self, message: OutgoingMessage, ack: records.Ack) -> None:
        message.over = True
        self._declared -= len(message.data)
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

    def _refuse(self, message: OutgoingMessage) -> None:
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
        Start taking records from C{source}, or again after it answered
        L{WAIT} or C{None}.
        """
        self._takeTurns(source)
        self.pump()

    def _takeTurns(self, source: Source) -> None:
        if source not in self._turns:
            self._turns.add(source)
            self._sources.append(source)

    def acknowledge(self, key: Hashable) -> bool:
        """
        The peer has what C{key} carried: forget it.

        @return: whether C{key} was still awaiting acknowledgement.
        """
        forgotten = self._forget((key,))
        self.pump()
        return bool(forgotten)

    def _forget(self, keys: Iterable[Hashable]) -> int:
        """
        Forget the records of C{keys}, those still kept; no pump.

        @return: how many were kept.
        """
        unacked, sentOn, keptBy = self._unacked, self._sentOn, self._keptBy
        forgotten = 0
        for key in keys:
            record = unacked.pop(key, None)
            if record is None:
                continue
            forgotten += 1
            self._unackedBytes -= len(record)
            channel = sentOn.pop(key, None)
            if channel is not None:
                self._pacing.acked(channel, (key,))
            keptBy.pop(key, None)
        return forgotten

    # Sending files.

    def sendFile(self, sender: Sender) -> Deferred:
        """
        Send a file or a folder, as soon as the peer's limits allow.

        @param sender: a L{spc.files.sending.FileSender} or
            L{spc.files.sending.FolderSender}.
        @return: its Deferred.
        """
        if self._closed is not None:
            sender.sessionEnded(self._closed)
            return sender.deferred
        self._queuedFiles.append(sender)
        self._startFiles()
        return sender.deferred

    def _startFiles(self) -> None:
        """
        Start queued files and folders while fewer than C{FILES_AT_ONCE}
        are under way and those declare fewer than C{FILE_BYTES_AT_ONCE}.
        """
        while self._queuedFiles and self._closed is None and (
            len(self._files) < FILES_AT_ONCE
            and (not self._files or self._fileBytes < FILE_BYTES_AT_ONCE)
        ):
            sender = self._queuedFiles.popleft()
            sender.start(lambda sender=sender: self._senderReady(sender))
            if sender.done:
                continue
            if sender.transferID in self._files:
                sender.sessionEnded(
                    Failure(TransferFailed(f"{sender.name} is already being sent"))
                )
                continue
            self._files[sender.transferID] = sender
            self._fileBytes += sender.size
            self._takeTurns(sender)
        self.pump()

    def _senderReady(self, sender: Sender) -> None:
        """
        C{sender} has records again, or ended, after answering L{WAIT}.
        """
        if self._files.get(sender.transferID) is sender:
            if sender.done:
                self._retire(sender, sender.transferID)
                self._startFiles()
            else:
                self.addSource(sender)

    def outgoingFiles(self) -> list:
        """
        The L{spc.files.sending.FileSender}s under way, oldest first.
        """
        return list(self._files.values())

    def fileAckReceived(self, ack: filerecords.FileAck) -> None:
        """
        The peer's C{FAK:}: its sender says what it acknowledges and what
        follows; one pump for the whole answer.
        """
        sender = self._files.get(ack.transferID)
        if sender is None:
            return
        self._forget(sender.ackReceived(ack))
        if sender.done:
            self._retire(sender, ack.transferID)
            self._startFiles()
            return
        if sender.transferID != ack.transferID:
            # Restarted: what the first attempt kept is of no use any more.
            self._retire(sender, ack.transferID)
            self._files[sender.transferID] = sender
            self._fileBytes += sender.size
        self.addSource(sender)

    def _retire(self, sender: Sender, transferID: bytes) -> None:
        """
        Forget C{sender} under C{transferID}, and everything kept of it.
        """
        if self._files.pop(transferID, None) is not None:
            self._fileBytes -= sender.size
        self._forget([key for key, source in self._keptBy.items() if source is sender])

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
                record = self._unacked[key]
                self._sentOn[key] = channel
                self._pacing.sent(channel, key, len(record))
                self._sink.sendOn(channel, record)
        finally:
            self._pumping = False

    def _nextKey(self):
        while self._retransmit:
            key = self._retransmit.popleft()
            if key in self._unacked:
                return key
        sources = self._sources
        while sources and self._unackedBytes < self._window:
            source = sources[0]
            produced = source.nextRecord()
            if produced is None or produced is WAIT:
                sources.popleft()
                self._turns.discard(source)
                if produced is None and getattr(source, "done", False):
                    self._retire(source, source.transferID)
                    self._startFiles()
                continue
            key, record = produced
            sources.rotate(-1)
            self._unacked[key] = record
            self._keptBy[key] = source
            self._unackedBytes += len(record)
            return key
        return None

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
        if self._retryCall is not None and self._retryCall.active():
            self._retryCall.cancel()
        self._retryCall = None
        messages, self._messages = self._messages, {}
        waiting, self._waiting = self._waiting, deque()
        waiting.extend(self._refused)
        self._refused = []
        self._sources = deque()
        self._turns = set()
        files, self._files = self._files, {}
        queuedFiles, self._queuedFiles = self._queuedFiles, deque()
        self._fileBytes = 0
        self._unacked.clear()
        self._keptBy.clear()
        self._sentOn.clear()
        self._retransmit.clear()
        self._unackedBytes = 0
        for message in messages.values():
            if not message.refused:
                message.deferred.errback(reason)
        for _, _, deferred, _ in waiting:
            deferred.errback(reason)
        for sender in [*files.values(), *queuedFiles]:
            sender.sessionEnded(reason)
        self.reassembler.close()

    # Receiving.

    def fragmentReceived(self, fragment: records.Fragment) -> None:
        self.reassembler.fragmentReceived(fragment)
