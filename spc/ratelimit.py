# -*- test-case-name: tests.test_service -*-
"""
Counting things per key over time, for the daemon's limits on
unauthenticated peers and for its rate-limited log of their failures.
Time comes from an injected clock, so tests drive it with C{task.Clock}.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict, deque

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
    """

    def __init__(self, clock: IReactorTime, period: float) -> None:
        self._clock = clock
        self._period = period
        self._events: dict[object, deque[float]] = defaultdict(deque)

    def admit(self, key: object, limit: float) -> bool:
        now = self._clock.seconds()
        events = self._events[key]
        while events and events[0] <= now - self._period:
            events.popleft()
        if len(events) >= limit:
            return False
        events.append(now)
        return True

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
