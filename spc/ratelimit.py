# -*- test-case-name: tests.unit.test_ratelimit -*-
"""
Counting things per key over time, for the daemon's limits on
unauthenticated peers and for its rate-limited log of their failures, for
a session's answers to duplicates and for the heartbeat requests its
connections receive.  Time comes from an injected clock,
so tests drive it with C{task.Clock}.

Memory follows the keys seen recently, not every key ever seen: a peer
that makes up new keys (addresses, session ids, message and transfer ids)
cannot grow these tables without bound.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque

from twisted.internet.interfaces import IReactorTime

__all__ = ["MAX_BUCKETS", "RateWindow", "TokenBuckets", "sourceKey"]

MAX_BUCKETS = 4096
"""
How many keys a L{TokenBuckets} remembers before it forgets the full ones.
"""


class TokenBuckets:
    """
    One token bucket per key: C{rate} tokens a second, up to C{burst}.
    """

    def __init__(self, clock: IReactorTime, rate: float, burst: float) -> None:
        self._clock = clock
        self._rate = rate
        self._burst = burst
        self._buckets: dict[object, tuple[float, float]] = {}

    def admit(self, key: object) -> bool:
        now = self._clock.seconds()
        if key not in self._buckets and len(self._buckets) >= MAX_BUCKETS:
            self._prune(now)
        tokens, last = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1, now)
        return True

    def forget(self, key: object) -> None:
        """
        C{key} is gone for good (a closed connection): drop its bucket now,
        rather than when the table is full.
        """
        self._buckets.pop(key, None)

    def _prune(self, now: float) -> None:
        """
        Forget keys whose buckets have refilled, so memory follows the
        sources seen recently, not every source ever seen.
        """
        for key, (tokens, last) in list(self._buckets.items()):
            if tokens + (now - last) * self._rate >= self._burst:
                del self._buckets[key]


class RateWindow:
    """
    Counts events per key in a sliding window of C{period} seconds.

    Keys are kept in the order of their latest event, so those with no
    event left in the window are at the front and are dropped as time
    passes, at constant cost per admission.
    """

    def __init__(self, clock: IReactorTime, period: float) -> None:
        self._clock = clock
        self._period = period
        self._events: OrderedDict[object, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        """
        How many keys the window remembers.
        """
        return len(self._events)

    def admit(self, key: object, limit: float) -> bool:
        """
        Count an event for C{key} unless C{limit} of its events are already
        in the window.

        @return: whether the event was counted.
        """
        now = self._clock.seconds()
        cutoff = now - self._period
        self._forgetIdle(cutoff)
        events = self._events.get(key) or deque()
        while events and events[0] <= cutoff:
            events.popleft()
        if len(events) >= limit:
            return False
        events.append(now)
        self._events[key] = events
        self._events.move_to_end(key)
        return True

    def _forgetIdle(self, cutoff: float) -> None:
        while self._events:
            key, events = next(iter(self._events.items()))
            if events and events[-1] > cutoff:
                return
            del self._events[key]

    def forget(self, key: object) -> None:
        self._events.pop(key, None)


def sourceKey(host: str) -> str:
    """
    The unit per-source limits count: an IPv4 address, or an IPv6 /64 (one
    host usually owns a whole /64).
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
