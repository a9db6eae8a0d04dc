# -*- test-case-name: tests.unit.test_inflight -*-
"""
Counting work whose answer the peer still waits for (a file being
verified, a message being delivered), so that a server shutting down can
let it finish before it says goodbye.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed

__all__ = ["InFlight"]


class InFlight:
    """
    A count of unfinished pieces of work and the Deferreds waiting for it to
    reach zero.
    """

    def __init__(self) -> None:
        self.count = 0
        self._waiters: list[Deferred] = []

    def track(self, work: Deferred) -> Deferred:
        """
        Count C{work} until it fires; its result passes through unchanged.
        Add this after the callbacks that send the answer, so idleness
        means the answer went out.
        """
        self.count += 1
        return work.addBoth(self._finished)

    def _finished(self, result: object) -> object:
        self.count -= 1
        if not self.count:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.callback(None)
        return result

    def whenIdle(self) -> Deferred:
        """
        @return: a Deferred firing once nothing is in flight. Cancelling it
            (a shutdown that stopped waiting) only forgets the waiter.
        """
        if not self.count:
            return succeed(None)
        waiter: Deferred = Deferred(self._forget)
        self._waiters.append(waiter)
        return waiter

    def _forget(self, waiter: Deferred) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)
