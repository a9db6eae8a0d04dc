# -*- test-case-name: tests.memory.test_acks -*-
"""
When a receiver tells its sender what arrived (docs/protocol.rst, sections
7.2 and 7.6): one rule for the fragments of messages and the data of
files alike.  An item (a message, a file) is acknowledged after every
C{ACK_EVERY} new pieces of it, and at most C{ACK_DELAY} after any other
new piece, by one timer for every item of the session.  Fewer
acknowledgements cost the sender fewer wake-ups, and the sender's window
moves on soon enough.

The batcher only counts and keeps the timer; what an acknowledgement
says, and how it is sent, is its owner's (the reassembler of messages,
the incoming files).
"""

from __future__ import annotations

from typing import Callable, Hashable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = ["ACK_DELAY", "ACK_EVERY", "AckBatcher"]

ACK_EVERY = 16
ACK_DELAY = 0.25


class AckBatcher:
    """
    Counts the pieces of each item not yet acknowledged.

    @ivar due: items with pieces not yet acknowledged, and how many.
    """

    def __init__(self, clock: IReactorTime, acknowledge: Callable[[Hashable], None]) -> None:
        """
        @param acknowledge: called with an item when it is time to
            acknowledge what arrived of it.
        """
        self._clock = clock
        self._acknowledge = acknowledge
        self.due: dict[Hashable, int] = {}
        self._call: IDelayedCall | None = None

    def arrived(self, item: Hashable, pieces: int = 1) -> None:
        """
        New pieces of C{item} arrived: acknowledge it now if they make
        C{ACK_EVERY}, or within C{ACK_DELAY}.
        """
        count = self.due.get(item, 0) + pieces
        if count >= ACK_EVERY:
            self.due.pop(item, None)
            self._acknowledge(item)
            return
        self.due[item] = count
        if self._call is None:
            self._call = self._clock.callLater(ACK_DELAY, self._timeUp)

    def acknowledged(self, item: Hashable) -> None:
        """
        C{item} was acknowledged another way (its owner said everything at
        once): nothing of it is due any more.
        """
        self.due.pop(item, None)

    def flush(self) -> None:
        """
        Acknowledge every item with pieces due, now.
        """
        due, self.due = self.due, {}
        for item in due:
            self._acknowledge(item)

    def stop(self) -> None:
        """
        Acknowledge nothing more.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self.due.clear()

    def _timeUp(self) -> None:
        self._call = None
        self.flush()
