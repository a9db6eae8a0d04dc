# -*- test-case-name: tests.memory.test_channel,tests.memory.test_service -*-
"""
The deadlines of a connection's handshake: the whole handshake's, and on
a server a shorter one for the client's first frame (amendment A16), so
that a peer that connects and says nothing holds a pending-handshake slot
for a moment, not for the whole handshake time.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = ["HandshakeDeadlines"]


class HandshakeDeadlines:
    """
    Two delayed calls on a clock, either of which reports the handshake
    as expired, once; a connection cancels both when its handshake ends
    however it ends.
    """

    def __init__(self, clock: IReactorTime, expired: Callable[[], None]) -> None:
        self._clock = clock
        self._expired = expired
        self._whole: IDelayedCall | None = None
        self._reply: IDelayedCall | None = None

    def start(self, handshakeTimeout: float, replyTimeout: float | None = None) -> None:
        """
        Start the handshake's deadline and, when C{replyTimeout} is given,
        the deadline of the peer's first frame.
        """
        self._whole = self._clock.callLater(handshakeTimeout, self._fire)
        if replyTimeout is not None:
            self._reply = self._clock.callLater(replyTimeout, self._fire)

    def replied(self) -> None:
        """
        The peer's first frame arrived: only the handshake's deadline
        still applies.
        """
        self._reply = _cancelled(self._reply)

    def cancel(self) -> None:
        """
        The handshake is over: neither deadline applies.
        """
        self._whole = _cancelled(self._whole)
        self._reply = _cancelled(self._reply)

    def _fire(self) -> None:
        self.cancel()
        self._expired()


def _cancelled(call: IDelayedCall | None) -> None:
    if call is not None and call.active():
        call.cancel()
    return None
