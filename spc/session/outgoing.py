# -*- test-case-name: tests.memory.test_messenger -*-
"""
Messages on their way out, as sources of the messenger's one engine
(L{spc.session.messenger}): each hands out its C{MSG:} fragments one at a
time, encoded only when a channel can take them, and says which of its
fragments the peer's C{ACK:} acknowledges.  What to do once a message's
fate is known (its Deferred, a busy refusal, the next message's turn) is
the messenger's.
"""

from __future__ import annotations

from typing import Hashable

from twisted.internet.defer import Deferred

from spc.protocol import records

__all__ = ["MessageSource", "OutgoingMessage"]


class OutgoingMessage:
    """
    A message being sent, until the peer confirms, abandons or refuses it.

    @ivar over: the peer's answer is final; send no more of it.
    @ivar refused: the peer refused it as busy; its data went back to the
        queue under a new id, and this one only keeps its id's place in
        the peer's window until every earlier message is finished there.
    @ivar refusals: how often the peer refused these bytes before.
    @ivar source: what hands out its fragments.
    """

    __slots__ = (
        "msgID", "data", "kind", "digest", "count", "deferred", "over", "refused", "refusals",
        "source",
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
        self.source = MessageSource(self, size)


class MessageSource:
    """
    Hands out a message's fragments, encoding each only when a channel can
    take it.
    """

    __slots__ = ("_message", "_view", "_size", "_next")

    def __init__(self, message: OutgoingMessage, size: int) -> None:
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

    def ackReceived(self, ack: records.Ack) -> list[Hashable]:
        """
        @return: the keys of the fragments C{ack} acknowledges: those of
            its ranges (within the message), or every one for a final
            answer.
        """
        message = self._message
        if ack.status != records.ACK_PROGRESS:
            return [("m", message.msgID, index) for index in range(message.count)]
        return [
            ("m", message.msgID, index)
            for start, count in ack.ranges
            for index in range(start, min(start + count, message.count))
        ]
