# -*- test-case-name: tests.unit.test_liveness -*-
"""
Heartbeats: is each channel alive, and do both ends agree on the epoch?

A channel is dead when nothing authenticated arrived on it for
C{missLimit} heartbeat intervals, or when that many heartbeats in a row got
no answer: a path that silently drops everything (no RST) is found within a
bounded time, and its fragments go elsewhere.  A slow path is not a dead
one: on a saturated link an answer waits behind the peer's data, so each
of these times is lengthened by a grace of C{LATE_RTTS} smoothed round
trips of the channel's answers (at most C{MAX_GRACE}), and a request counts
as missed only once it is older than that grace.  So is a channel whose peer
has read nothing of it for as long, heartbeats or not: one that answers
heartbeats it never read (their ids are sequential) still cannot keep a
connection whose send queue never drains.  Heartbeats carry each side's
committed and pending epochs, so a disagreement that outlives the rotation
overlap is detected and ends the session (PROTOCOL section 8).

A heartbeat is asked for only on a channel this end has sent nothing on
for an interval (amendment A21): a busy channel's frames, and its peer's,
say enough.  So each end sends something on every channel at least once
per interval, and each hears its live peer at least once per two.  The
interval in force is the session's: it stretches while the session is
idle, and every count here follows it.

The objects here only count and compare; the session's
L{spc.session.heartbeatdriver.HeartbeatDriver} owns the timer and says
what time it is, but for the rate limit on incoming requests (A18), whose
token buckets are L{spc.ratelimit.TokenBuckets} on the session's clock.
"""

from __future__ import annotations

from typing import Hashable

from twisted.internet.interfaces import IReactorTime

from spc.ratelimit import TokenBuckets

__all__ = ["LATE_RTTS", "Liveness", "MAX_GRACE", "RequestLimiter", "epochsAgree"]

LATE_RTTS = 4
"""
Smoothed round trips after which a heartbeat request is late.
"""
MAX_GRACE = 30.0
"""
The most, in seconds, a measured round trip lengthens the dead-time: a
dead channel is found within C{missLimit} intervals plus this, and one
beat.
"""
KEPT_REQUESTS = 256
"""
Requests whose sending times are kept, so that an answer that took many
intervals still counts as one.
"""
SRTT_GAIN = 0.125


class Liveness:
    """
    One channel's liveness.

    @ivar interval: the heartbeat interval in force, in seconds.
    @ivar lastHeard: when the last authenticated frame arrived.
    @ivar lastSent: when this end last sent a frame on the channel, as far
        as it has looked (L{sent}).
    @ivar unanswered: heartbeats sent since the last answer.
    @ivar rtt: the last measured round trip, in seconds, or C{None}.
    @ivar srtt: the smoothed round trip of the answers, or C{None}.
    """

    def __init__(self, interval: float, missLimit: int, now: float) -> None:
        self.interval = interval
        self._missLimit = missLimit
        self.lastHeard = now
        self.lastSent = now
        self.unanswered = 0
        self.rtt: float | None = None
        self.srtt: float | None = None
        self._nextID = 0
        self._sent: dict[int, float] = {}
        self._framesSeen = 0
        self._silenceFrom = now
        self._unansweredAt: list[float] = []

    def heard(self, now: float) -> None:
        self.lastHeard = now

    def pace(self, interval: float, now: float) -> None:
        """
        The session changed its interval.  A shorter dead-time counts from
        now: until now the channel was allowed the longer silence, and it is
        not dead for having used it.
        """
        if interval < self.interval:
            self._silenceFrom = now
        self.interval = interval

    @property
    def grace(self) -> float:
        """
        How much longer than its interval rule a channel may stay silent
        or unanswered: C{LATE_RTTS} smoothed round trips, at most
        C{MAX_GRACE}; none before the first answer.
        """
        return 0.0 if self.srtt is None else min(LATE_RTTS * self.srtt, MAX_GRACE)

    @property
    def deadTime(self) -> float:
        """
        Seconds of silence after which the channel is dead.
        """
        return self._missLimit * self.interval + self.grace

    def deadline(self) -> float:
        """
        When the channel is dead unless something authenticated arrives on
        it before.
        """
        return max(self.lastHeard, self._silenceFrom) + self.deadTime

    def isDead(self, now: float) -> bool:
        """
        Silent past its deadline, or C{missLimit} requests in a row
        unanswered, the last of them for longer than the grace.
        """
        if now > self.deadline():
            return True
        limit = self._missLimit
        return self.unanswered >= limit and now - self._unansweredAt[limit - 1] >= self.grace

    def sent(self, frames: int, now: float) -> None:
        """
        The channel has sent C{frames} frames in all by C{now}: if that is
        more than at the last look, this end sent something since, at
        C{now} at the latest.
        """
        if frames != self._framesSeen:
            self._framesSeen = frames
            self.lastSent = now

    def quiet(self, now: float) -> bool:
        """
        Whether this end has sent nothing on the channel for an interval,
        so that it asks for a heartbeat (A21).
        """
        return now - self.lastSent >= self.interval

    def isBlocked(self, pausedSince: float | None, now: float) -> bool:
        """
        Whether the connection's transport has taken nothing more from this
        end for longer than a silent peer may last.

        @param pausedSince: when the transport paused the connection, or
            L{None} if it takes data.
        """
        return pausedSince is not None and now - pausedSince > self.deadTime

    def request(self, now: float) -> int:
        """
        @return: the id of a new heartbeat request, sent now.
        """
        hbID = self._nextID = (self._nextID + 1) & 0xFFFFFFFF
        self.unanswered += 1
        if len(self._unansweredAt) < self._missLimit:
            self._unansweredAt.append(now)
        self._sent[hbID] = now
        if len(self._sent) > KEPT_REQUESTS:
            del self._sent[next(iter(self._sent))]
        return hbID

    def answered(self, hbID: int, now: float) -> bool:
        """
        An answer to request C{hbID} arrived.

        @return: whether it answers a kept request, and so measured a
            round trip.
        """
        sent = self._sent.pop(hbID, None)
        if sent is None:
            return False
        self.unanswered = 0
        self._unansweredAt = []
        self.rtt = rtt = max(0.0, now - sent)
        self.srtt = rtt if self.srtt is None else self.srtt + SRTT_GAIN * (rtt - self.srtt)
        return True


REQUESTS_PER_INTERVAL = 2
REQUEST_BURST = 10
FLOOD_WINDOW = 10
"""
The intervals over which a connection's requests are counted for a flood.
"""
FLOOD_FACTOR = 10
"""
How many times what the bucket lets through in a window a flood is.
"""


class RequestLimiter:
    """
    The heartbeat requests each connection receives (A18): a token bucket
    of C{REQUESTS_PER_INTERVAL} per interval with a burst of
    C{REQUEST_BURST}; a request beyond it is dropped.  Every request is also
    counted in windows of C{FLOOD_WINDOW} intervals, and only a sustained
    excess, C{FLOOD_FACTOR} times what the bucket lets through in a window,
    is abuse.
    """

    def __init__(self, clock: IReactorTime, interval: float) -> None:
        self._clock = clock
        self._buckets = TokenBuckets(clock, REQUESTS_PER_INTERVAL / interval, REQUEST_BURST)
        self._window = FLOOD_WINDOW * interval
        self._floodLimit = FLOOD_FACTOR * (REQUEST_BURST + REQUESTS_PER_INTERVAL * FLOOD_WINDOW)
        self._counts: dict[Hashable, tuple[float, int]] = {}

    def start(self, key: Hashable) -> None:
        """
        A connection attached: its first window starts now.
        """
        self._counts[key] = (self._clock.seconds(), 0)

    def allow(self, key: Hashable) -> bool:
        """
        Count a request, and say whether it may be answered.
        """
        now = self._clock.seconds()
        start, seen = self._counts.get(key, (now, 0))
        if now - start > self._window:
            start, seen = now, 0
        self._counts[key] = (start, seen + 1)
        return self._buckets.admit(key)

    def abusive(self, key: Hashable) -> bool:
        """
        Whether C{key}'s window holds more requests than a flood.
        """
        return self._counts.get(key, (0.0, 0))[1] > self._floodLimit

    def forget(self, key: Hashable) -> None:
        self._counts.pop(key, None)
        self._buckets.forget(key)


def epochsAgree(peer: int, committed: int, acceptable: frozenset[int]) -> bool:
    """
    Whether the peer's committed epoch is one this end can be in step with:
    its own committed epoch, the previous one during an overlap, or a
    pending one.
    """
    return peer == committed or peer in acceptable
