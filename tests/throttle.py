# -*- test-case-name: tests.unit.test_pacing -*-
"""
A slow link for tests: a token bucket on a reactor's clock that lets bytes
through at a fixed rate, in order, and says when too many wait, so that its
user can stop reading from the source and let TCP's buffers fill, as they
do in front of a real bottleneck.  L{tests.faultproxy} puts one on a
channel's client-to-server direction; C{bench/slowlink.py} uses the proxy.
"""

from __future__ import annotations

from collections import deque
from typing import Callable

__all__ = ["THROTTLE_BUFFER", "THROTTLE_TICK", "Throttle"]

THROTTLE_BUFFER = 64 * 1024
"""
Bytes a throttled direction holds before the proxy stops reading from its
source: a small router buffer; the rest waits in TCP's.
"""
THROTTLE_TICK = 0.01
"""
Seconds between two writes of a throttle while bytes wait.
"""


class Throttle:
    """
    A token bucket on a reactor's clock that lets bytes through to
    C{write} at no more than C{rate} bytes per second, in order, holding
    the rest.

    @ivar waiting: bytes held, not yet written.
    @ivar written: bytes written so far.
    """

    def __init__(
        self,
        clock,
        rate: float,
        write: Callable[[bytes], None],
        burst: int = 16 * 1024,
        onBacklog: Callable[[bool], None] = lambda full: None,
        backlog: int = THROTTLE_BUFFER,
    ) -> None:
        """
        @param burst: bytes that may go at once after a quiet time; at
            least what the rate allows in two ticks.
        @param onBacklog: called with C{True} when more than C{backlog}
            bytes wait, and with C{False} once they drained below it.
        """
        self._clock = clock
        self._rate = rate
        self._write = write
        self._burst = max(burst, 2 * rate * THROTTLE_TICK)
        self._onBacklog = onBacklog
        self._backlog = backlog
        self._tokens = float(self._burst)
        self._stamp = clock.seconds()
        self._held: deque[memoryview] = deque()
        self._call = None
        self._full = False
        self.waiting = 0
        self.written = 0

    def send(self, data: bytes) -> None:
        if not data:
            return
        self._held.append(memoryview(data))
        self.waiting += len(data)
        if self._call is None:
            self._drain()
        else:
            self._checkBacklog()

    def stop(self) -> None:
        """
        Write nothing more; forget what waits.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._held.clear()
        self.waiting = 0

    def _drain(self) -> None:
        self._call = None
        now = self._clock.seconds()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        while self._held and self._tokens >= 1:
            head = self._held[0]
            count = min(len(head), int(self._tokens))
            if count == len(head):
                self._held.popleft()
            else:
                self._held[0] = head[count:]
            self._tokens -= count
            self.waiting -= count
            self.written += count
            self._write(bytes(head[:count]))
        self._checkBacklog()
        if self._held and self._call is None:
            self._call = self._clock.callLater(THROTTLE_TICK, self._drain)

    def _checkBacklog(self) -> None:
        full = self.waiting > self._backlog
        if full != self._full:
            self._full = full
            self._onBacklog(full)
