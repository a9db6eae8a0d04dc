# -*- test-case-name: tests.unit.test_liveness -*-
"""
Heartbeats: is each channel alive, and do both ends agree on the epoch?

A channel is dead when nothing authenticated arrived on it for
C{missLimit} heartbeat intervals, or when that many heartbeats in a row got
no answer: a path that silently drops everything (no RST) is found within a
bounded time, and its fragments go elsewhere.  So is a channel whose peer
has read nothing of it for as long, heartbeats or not: one that answers
heartbeats it never read (their ids are sequential) still cannot keep a
connection whose send queue never drains.  Heartbeats carry each side's
committed and pending epochs, so a disagreement that outlives the rotation
overlap is detected and ends the session (PROTOCOL section 8).

The objects here only count and compare; the session owns the timer and
says what time it is (A18 for the rate limit on incoming requests).
"""

from __future__ import annotations

__all__ = ["Liveness", "RequestLimiter", "epochsAgree"]


class Liveness:
    """
    One channel's liveness.

    @ivar lastHeard: when the last authenticated frame arrived.
    @ivar unanswered: heartbeats sent since the last answer.
    @ivar rtt: the last measured round trip, in seconds, or C{None}.
    """

    def __init__(self, interval: float, missLimit: int, now: float) -> None:
        self._interval = interval
        self._missLimit = missLimit
        self.lastHeard = now
        self.unanswered = 0
        self.rtt: float | None = None
        self._nextID = 0
        self._sent: dict[int, float] = {}

    def heard(self, now: float) -> None:
        self.lastHeard = now

    def isDead(self, now: float) -> bool:
        return (
            now - self.lastHeard > self._missLimit * self._interval
            or self.unanswered >= self._missLimit
        )

    def isBlocked(self, pausedSince: float | None, now: float) -> bool:
        """
        Whether the connection's transport has taken nothing more from this
        end for longer than a silent peer may last.

        @param pausedSince: when the transport paused the connection, or
            L{None} if it takes data.
        """
        return pausedSince is not None and now - pausedSince > self._missLimit * self._interval

    def request(self, now: float) -> int:
        """
        @return: the id of a new heartbeat request, sent now.
        """
        hbID = self._nextID = (self._nextID + 1) & 0xFFFFFFFF
        self.unanswered += 1
        self._sent[hbID] = now
        if len(self._sent) > self._missLimit + 1:
            del self._sent[min(self._sent)]
        return hbID

    def answered(self, hbID: int, now: float) -> None:
        sent = self._sent.pop(hbID, None)
        if sent is None:
            return
        self.unanswered = 0
        self.rtt = now - sent


class RequestLimiter:
    """
    A token bucket for incoming heartbeat requests (A18): two per interval
    with a burst of ten; requests beyond it are dropped, and only a
    sustained tenfold excess closes the connection.
    """

    def __init__(self, interval: float, now: float) -> None:
        self._rate = 2.0 / interval
        self._burst = 10.0
        self._tokens = self._burst
        self._last = now
        self._windowStart = now
        self._window = 10 * interval
        self._seen = 0

    def allow(self, now: float) -> bool:
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if now - self._windowStart > self._window:
            self._windowStart, self._seen = now, 0
        self._seen += 1
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def abusive(self) -> bool:
        """
        Whether the peer sent ten times the allowed rate over a whole window.
        """
        return self._seen > 10 * (self._burst + self._rate * self._window)


def epochsAgree(peer: int, committed: int, acceptable: frozenset[int]) -> bool:
    """
    Whether the peer's committed epoch is one this end can be in step with:
    its own committed epoch, the previous one during an overlap, or a
    pending one.
    """
    return peer == committed or peer in acceptable
