# -*- test-case-name: tests.unit.test_keypool -*-
"""
Tests for L{spc.client.keypool}: exchange keys made ahead in threads, each
handed out once.  C{connect} and C{spc send} drawing from a pool are tested
in L{tests.memory.test_keypool}.
"""

from __future__ import annotations

import itertools

from hypothesis import given, strategies as st
from twisted.internet.defer import CancelledError, Deferred
from twisted.trial.unittest import SynchronousTestCase

from spc.client import keypool
from spc.client.keypool import ExchangeKeyPool


class FakeThreads:
    """
    Runs nothing until told: each function given to L{run} waits, as a
    thread's work would, until L{finish}.

    @ivar jobs: the functions waiting, with the Deferred of each.
    """

    def __init__(self) -> None:
        self.jobs: list[tuple[object, Deferred]] = []

    def run(self, function) -> Deferred:
        done: Deferred = Deferred()
        self.jobs.append((function, done))
        return done

    def finish(self, count: int = 1) -> None:
        """
        Run the first C{count} waiting functions and hand over their
        results, as the reactor thread would get them.
        """
        for _ in range(count):
            function, done = self.jobs.pop(0)
            try:
                result = function()
            except Exception as error:
                done.errback(error)
            else:
                done.callback(result)


class Keys:
    """
    Makes distinct stand-in keys and counts them.

    @ivar made: every key made, in order.
    """

    def __init__(self) -> None:
        self.made: list[object] = []
        self._numbers = itertools.count()

    def __call__(self) -> object:
        key = ("key", next(self._numbers))
        self.made.append(key)
        return key


def cancelled(failure) -> None:
    """
    A take that was cancelled hands out nothing.
    """
    failure.trap(CancelledError)


def makePool(size: int = 2, threads: int = 2):
    """
    A pool over L{FakeThreads} and L{Keys}.
    """
    threads_, keys = FakeThreads(), Keys()
    pool = ExchangeKeyPool(size, threads, keys, threads_.run)
    return pool, threads_, keys


class PoolTests(SynchronousTestCase):
    """
    L{ExchangeKeyPool} keeps keys ready, makes them only in threads, and
    hands each out once.
    """

    def test_emptyPoolMakesInThread(self) -> None:
        """
        With no key ready, C{take} waits for a key made in a thread: nothing
        is made on the calling thread, and the key comes once the thread is
        done.
        """
        pool, threads, keys = makePool(size=0)
        taken = pool.take()
        self.assertNoResult(taken)
        self.assertEqual(keys.made, [])
        self.assertEqual(len(threads.jobs), 1)
        threads.finish()
        self.assertEqual(self.successResultOf(taken), keys.made[0])
        self.assertEqual(threads.jobs, [])

    def test_readyKeyAtOnce(self) -> None:
        """
        A warmed pool hands out a ready key at once and makes another to
        replace it.
        """
        pool, threads, keys = makePool(size=2)
        warmed = pool.warm()
        threads.finish(2)
        self.successResultOf(warmed)
        self.assertEqual(pool.ready, 2)
        self.assertEqual(self.successResultOf(pool.take()), keys.made[0])
        self.assertEqual(pool.ready, 1)
        self.assertEqual(len(threads.jobs), 1)
        threads.finish()
        self.assertEqual(pool.ready, 2)

    def test_threadsBounded(self) -> None:
        """
        However many keys are wanted, at most C{threads} are made at once.
        """
        pool, threads, keys = makePool(size=5, threads=2)
        pool.warm()
        self.assertEqual(len(threads.jobs), 2)
        threads.finish()
        self.assertEqual(len(threads.jobs), 2)

    def test_waitersServedInOrder(self) -> None:
        """
        Takers waiting on an empty pool get the keys in the order they
        asked, each its own.
        """
        pool, threads, keys = makePool(size=0, threads=1)
        first, second = pool.take(), pool.take()
        threads.finish()
        self.assertEqual(self.successResultOf(first), keys.made[0])
        self.assertNoResult(second)
        threads.finish()
        self.assertEqual(self.successResultOf(second), keys.made[1])

    def test_cancelledTake(self) -> None:
        """
        A cancelled wait gives its key to the pool, not to anyone twice.
        """
        pool, threads, keys = makePool(size=0)
        taken = pool.take()
        taken.cancel()
        self.failureResultOf(taken, CancelledError)
        threads.finish()
        self.assertEqual(pool.ready, 1)
        self.assertEqual(self.successResultOf(pool.take()), keys.made[0])

    def test_failure(self) -> None:
        """
        A key that cannot be made fails the taker waiting for it; the next
        taker gets a new try.
        """
        pool, threads, keys = makePool(size=0)
        taken = pool.take()
        function, done = threads.jobs.pop()
        done.errback(MemoryError("no memory"))
        self.failureResultOf(taken, MemoryError)
        again = pool.take()
        threads.finish()
        self.assertEqual(self.successResultOf(again), keys.made[0])

    def test_failedWarming(self) -> None:
        """
        A warming fails with a key that cannot be made, and the pool does not
        try again for itself.
        """
        pool, threads, keys = makePool(size=1)
        warmed = pool.warm()
        function, done = threads.jobs.pop()
        done.errback(MemoryError("no memory"))
        self.failureResultOf(warmed, MemoryError)
        self.assertEqual(threads.jobs, [])
        self.flushLoggedErrors(MemoryError)

    def test_warmBeyondSize(self) -> None:
        """
        C{warm(count)} makes C{count} keys though the pool keeps none in
        reserve; they are not replaced once taken.
        """
        pool, threads, keys = makePool(size=0)
        warmed = pool.warm(1)
        threads.finish()
        self.successResultOf(warmed)
        self.assertEqual(self.successResultOf(pool.take()), keys.made[0])
        self.assertEqual(threads.jobs, [])

    def test_resize(self) -> None:
        """
        A larger size makes the missing keys; a smaller one drops the
        extra ready keys, which are never handed out.
        """
        pool, threads, keys = makePool(size=1)
        pool.warm()
        threads.finish()
        pool.resize(3)
        threads.finish(2)
        self.assertEqual(pool.ready, 3)
        pool.resize(1)
        self.assertEqual(pool.ready, 1)
        self.assertEqual(self.successResultOf(pool.take()), keys.made[0])
        self.assertRaises(ValueError, pool.resize, -1)

    def test_badConfiguration(self) -> None:
        """
        A negative size or no thread is refused.
        """
        self.assertRaises(ValueError, ExchangeKeyPool, -1)
        self.assertRaises(ValueError, ExchangeKeyPool, 1, 0)

    def test_defaultPool(self) -> None:
        """
        The process has one pool, kept between calls.
        """
        self.patch(keypool, "_default", None)
        self.assertIs(keypool.defaultPool(), keypool.defaultPool())
        self.assertEqual(keypool.defaultPool().size, keypool.DEFAULT_SIZE)

    @given(st.lists(st.sampled_from(["take", "finish", "cancel", "warm", "grow", "shrink"]),
                    max_size=60))
    def test_neverTwice(self, steps: list[str]) -> None:
        """
        Whatever the order of takes, threads finishing, cancellations,
        warmings and resizes, no key is handed out twice (nor kept ready
        after it was), every key handed out was made, and every taker has
        its key once the threads are done.
        """
        pool, threads, keys = makePool(size=1)
        takes: list[Deferred] = []
        for step in steps:
            if step == "take":
                takes.append(pool.take())
            elif step == "finish" and threads.jobs:
                threads.finish()
            elif step == "cancel" and takes:
                takes[-1].cancel()
            elif step == "warm":
                pool.warm(2)
            elif step == "grow":
                pool.resize(pool.size + 1)
            elif step == "shrink":
                pool.resize(max(0, pool.size - 1))
        while threads.jobs:
            threads.finish()
        handedOut = []
        for taken in takes:
            result = self.successResultOf(taken.addErrback(cancelled))
            if result is not None:
                handedOut.append(result)
        while pool.ready:
            handedOut.append(self.successResultOf(pool.take()))
        self.assertEqual(len(handedOut), len(set(handedOut)))
        self.assertLessEqual(set(handedOut), set(keys.made))
