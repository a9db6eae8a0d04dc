# -*- test-case-name: tests.unit.test_keypool,tests.memory.test_keypool -*-
"""
Exchange keys made ahead of need, so that a session starts in milliseconds.

Every client session has an RSA-2048 exchange key of its own, made for it
and used by no other (PROTOCOL section 3.6, decision 1).  Making one takes
50 to 300 ms of CPU, far longer than the rest of a session's start on a
local network; but C{cryptography} releases the GIL while it works, so a
thread can make the next keys while the reactor serves what is open.  An
L{ExchangeKeyPool} keeps a few ready: L{ExchangeKeyPool.take} hands out a
ready key at once, each key once only, and the pool makes another in a
thread to replace it.  With none ready the caller waits for the next key
made, also in a thread: the reactor never waits for a key.

L{spc.client.connect.connect} draws from the process's pool,
L{defaultPool}, unless it is given one of its own.  C{spc send} makes its
one key while it loads its keys and connects, and keeps none in reserve,
so that it does not wait for a key nobody will use before it exits.
"""

from __future__ import annotations

from collections import deque
from typing import Callable

from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure

from spc.crypto import asymmetric
from spc.logs import events

__all__ = ["DEFAULT_SIZE", "DEFAULT_THREADS", "ExchangeKeyPool", "defaultPool"]

DEFAULT_SIZE = 2
"""
Keys the process's pool keeps ready: enough for an application that opens
a session now and then, or two at once; one that opens many at once
sizes the pool to its needs (L{ExchangeKeyPool.resize}).
"""

DEFAULT_THREADS = 2
"""
Keys made at the same time, at most: each takes a core while it is made.
"""


def _generate() -> rsa.RSAPrivateKey:
    """
    Make one key, with the generator of the moment (tests replace it with
    a cached key).
    """
    return asymmetric.generateExchangeKey()


class ExchangeKeyPool:
    """
    Fresh exchange keys, each handed out once, made in threads ahead of
    need.

    @ivar size: how many keys the pool keeps ready, making one for each
        key taken; 0 makes keys only when they are asked for (or warmed).
    """

    log = events.NamedLogger(events.CLIENT)

    def __init__(
        self,
        size: int = DEFAULT_SIZE,
        threads: int = DEFAULT_THREADS,
        generate: Callable[[], rsa.RSAPrivateKey] = _generate,
        runInThread: Callable[..., Deferred] = deferToThread,
    ) -> None:
        """
        @param threads: how many keys may be made at the same time.
        @param generate: makes one key; it runs in a thread.
        @param runInThread: runs a function in a thread and returns a
            Deferred firing, on the reactor thread, with its result.
        @raise ValueError: for a negative size or fewer than one thread.
        """
        if size < 0 or threads < 1:
            raise ValueError("a key pool needs a size of 0 or more and at least one thread")
        self.size = size
        self._threads = threads
        self._generate = generate
        self._runInThread = runInThread
        self._ready: deque[rsa.RSAPrivateKey] = deque()
        self._waiting: deque[Deferred] = deque()
        self._warming: list[tuple[int, Deferred]] = []
        self._making = 0

    @property
    def ready(self) -> int:
        """
        How many keys are ready to be taken now.
        """
        return len(self._ready)

    def take(self) -> Deferred:
        """
        A key no one else has had or will have.

        @return: a Deferred firing with it: at once when one is ready,
            otherwise when the next key made in a thread is done.
            Cancelling it gives up the wait; that key goes to the next
            taker or into the pool.
        """
        if self._ready:
            key = self._ready.popleft()
            self._makeMore()
            return succeed(key)
        waiter: Deferred = Deferred(lambda cancelled: self._waiting.remove(cancelled))
        self._waiting.append(waiter)
        self._makeMore()
        return waiter

    def warm(self, count: int | None = None) -> Deferred:
        """
        Make keys now until C{count} are ready (by default, the pool's
        size).  Keys beyond the pool's size stay ready until taken; they
        are not replaced.

        @return: a Deferred firing with L{None} once that many are ready,
            or with the failure of a key that could not be made.
        """
        target = self.size if count is None else count
        if len(self._ready) >= target:
            return succeed(None)
        warmed: Deferred = Deferred()
        self._warming.append((target, warmed))
        self._makeMore()
        return warmed

    def resize(self, size: int) -> None:
        """
        Keep C{size} keys ready from now on: ready keys beyond it are
        dropped, and missing ones are made.

        @raise ValueError: for a negative size.
        """
        if size < 0:
            raise ValueError("a key pool's size is 0 or more")
        self.size = size
        keep = max([size, *(target for target, _ in self._warming)])
        while len(self._ready) > keep:
            self._ready.pop()
        self._makeMore()

    def _wanted(self) -> int:
        """
        Keys to make: one for each taker waiting, and those the pool (or a
        warming) lacks.
        """
        target = max([self.size, *(target for target, _ in self._warming)])
        return len(self._waiting) + max(0, target - len(self._ready))

    def _makeMore(self) -> None:
        while self._making < min(self._wanted(), self._threads):
            self._making += 1
            self._runInThread(self._generate).addBoth(self._made)

    def _made(self, result: rsa.RSAPrivateKey | Failure) -> None:
        """
        A key is made: it goes to the first taker waiting, or into the
        pool.  A key that could not be made fails the first taker
        waiting, or else every warming, and is not tried again for the
        pool, only for the next taker.
        """
        self._making -= 1
        if isinstance(result, Failure):
            if self._waiting:
                self._waiting.popleft().errback(result)
            else:
                self.log.failure("Could not make an exchange key", result)
                warming, self._warming = self._warming, []
                for _, warmed in warming:
                    warmed.errback(result)
                return
        elif self._waiting:
            self._waiting.popleft().callback(result)
        else:
            self._ready.append(result)
        self._warmed()
        self._makeMore()

    def _warmed(self) -> None:
        done = [warmed for target, warmed in self._warming if len(self._ready) >= target]
        self._warming = [entry for entry in self._warming if entry[1] not in done]
        for warmed in done:
            warmed.callback(None)


_default: ExchangeKeyPool | None = None


def defaultPool() -> ExchangeKeyPool:
    """
    The process's pool, made on first use with L{DEFAULT_SIZE} keys, which
    makes its keys in the global reactor's thread pool.  Size it with
    L{ExchangeKeyPool.resize}; warm it (L{ExchangeKeyPool.warm}) early in
    a program that will soon connect.
    """
    global _default
    if _default is None:
        _default = ExchangeKeyPool()
    return _default
