# -*- test-case-name: tests.unit.test_lanes,tests.memory.test_lanes -*-
"""
Worker lanes: bulk work (sealing and opening large frames, reading,
hashing and writing file data) done off the reactor thread, in order, with
its results handed back to the reactor thread in batches (PROTOCOL
amendment A22).

A L{Lane} is one daemon thread fed by a C{queue.SimpleQueue}.  It runs its
jobs strictly in the order they were submitted and reports each result, in
the same order, on the reactor thread: the worker appends results to a
deque and asks the reactor to read it with one C{callFromThread} only when
that deque goes from empty to non-empty, so a burst of jobs costs one
wake-up of the reactor, not one each.  Measured here, a job handed over
this way costs about 6 microseconds of CPU in all, against about 66 for
C{deferToThread} (a thread pool, a Deferred and a wake-up per job): too
much for work of 35 microseconds, the sealing of a 256 KiB frame with
AES-GCM.

Nothing in a job may touch a Twisted object or state the reactor thread
also changes: a job gets what it needs as arguments and returns what it
made; the report, on the reactor thread, does the rest.  A lane does not
bound its own queue: each user bounds what it submits (a file's read-ahead,
a connection's queue of unsent frames, the bytes waiting to be written),
and L{Lane.pending} says how many of its jobs are not yet reported.

An L{InlineLane} has the same interface and runs each job at once on the
calling thread: the lane of work too small to be worth a hand-off, and
the synchronous runner of tests.  L{Workers} is the small, fixed set of
lanes a process uses, L{workersFor} the one of a reactor: real threads for
a reactor that runs threads, inline lanes for a test's clock.

When the reactor shuts down, its lanes are stopped only once every
service has stopped (in the "during" phase, as Twisted stops its own
thread pool): sessions ended by then have given their last jobs (keeping
partial files for a resume), and stopping waits for the threads to finish
them, so a daemon that exits has kept what it received.  A job given to
a stopped lane runs at once on the caller's thread.

L{InOrder} keeps results in order when some are made at once and some in
a lane: a connection seals its control records on the reactor thread and
its bulk frames in a lane, and writes them all in sequence order.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from typing import Any, Callable, Sequence

from twisted.internet.interfaces import IReactorThreads
from twisted.logger import Logger
from twisted.python.failure import Failure

from spc.logs import events

__all__ = ["InOrder", "InlineLane", "Lane", "Workers", "workersFor"]

Job = Callable[[], Any]
Report = Callable[[Any], None]
"""
Called on the reactor thread with the job's result, or with a L{Failure}
if the job raised.
"""

_STOP = object()


STOP_TIMEOUT = 60.0
"""
Seconds L{Lane.stop} waits for its thread to finish the jobs it was given.
"""


def startDaemonThread(target: Callable[[], None], name: str) -> threading.Thread:
    """
    Start C{target} in a daemon thread: a process that ends does not wait
    for a lane that is stuck (on a disk that stopped answering); stopping a
    lane waits for it, within C{STOP_TIMEOUT}.
    """
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


class Lane:
    """
    One worker thread running jobs in submission order.

    @ivar name: the thread's name, for a debugger's or profiler's view.
    @ivar pending: jobs submitted whose results were not yet reported.
    """

    log = events.NamedLogger(events.SESSION)

    def __init__(
        self,
        name: str,
        callFromThread: Callable[..., None],
        startThread: Callable[[Callable[[], None], str], object] = startDaemonThread,
    ) -> None:
        """
        @param callFromThread: how the worker reaches the reactor thread
            (C{reactor.callFromThread}); a test gives a list's C{append}
            and calls what it collected.
        @param startThread: starts the worker loop, and returns its thread
            (to wait for) or L{None}; a test keeps the loop and runs it by
            hand, after L{stop}, to run every job queued.
        """
        self.name = name
        self.pending = 0
        self._callFromThread = callFromThread
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._done: deque[tuple[Report, Any]] = deque()
        self._lock = threading.Lock()
        self._reportDue = False
        self._stopped = False
        self._thread = startThread(self._work, name)

    def submit(self, job: Job, report: Report) -> None:
        """
        Run C{job} in the worker after every job submitted before it, then
        call C{report} with its result on the reactor thread, after the
        reports of those jobs.  Once the lane is stopped, the job runs and
        is reported at once.
        """
        if self._stopped:
            _runNow(self.log, job, report)
            return
        self.pending += 1
        self._jobs.put((job, report))

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """
        Let the worker finish the jobs queued and end, and wait for it
        (within C{timeout} seconds); their results are still reported if
        the reactor runs.
        """
        if self._stopped:
            return
        self._stopped = True
        self._jobs.put(_STOP)
        join = getattr(self._thread, "join", None)
        if join is not None and self._thread is not threading.current_thread():
            join(timeout)

    def _work(self) -> None:
        """
        The worker loop: run each job, keep its result, and wake the
        reactor thread only when nothing was waiting for it already.
        """
        jobs, done = self._jobs, self._done
        while True:
            item = jobs.get()
            if item is _STOP:
                return
            job, report = item
            try:
                result = job()
            except BaseException:
                result = Failure()
            done.append((report, result))
            with self._lock:
                if self._reportDue:
                    continue
                self._reportDue = True
            self._callFromThread(self._report)

    def _report(self) -> None:
        """
        On the reactor thread: report every result the worker made so far,
        in order.  The flag is cleared before the deque is read, so a result
        appended meanwhile is either read now or wakes the reactor again.
        """
        with self._lock:
            self._reportDue = False
        done = self._done
        while done:
            report, result = done.popleft()
            self.pending -= 1
            _call(self.log, report, result)


class InlineLane:
    """
    A lane without a thread: each job runs when it is submitted and is
    reported before L{submit} returns.

    @ivar name: what it stands for.
    @ivar pending: always 0 between calls.
    """

    log = events.NamedLogger(events.SESSION)

    def __init__(self, name: str = "inline") -> None:
        self.name = name
        self.pending = 0

    def submit(self, job: Job, report: Report) -> None:
        _runNow(self.log, job, report)

    def stop(self) -> None:
        """
        Nothing runs apart from the caller.
        """


def _runNow(log: Logger, job: Job, report: Report) -> None:
    try:
        result = job()
    except BaseException:
        result = Failure()
    _call(log, report, result)


def _call(log: Logger, report: Report, result: Any) -> None:
    """
    Report one result; a report that raises is a bug, logged, and does not
    keep the next results from being reported.
    """
    try:
        report(result)
    except BaseException:
        log.failure("Reporting the result of a {lane} job failed", lane="worker")


class Workers:
    """
    The lanes of one process: few and fixed, shared by every session.

    @ivar reader: reads and hashes the files being sent.
    @ivar writer: writes and hashes the files being received, and
        commits them.
    @ivar crypto: seal and open bulk frames of the suites worth it, each
        connection always in the same lane so its frames keep their
        order.
    @ivar threaded: whether the lanes are threads (or run inline).
    """

    def __init__(self, reader, writer, crypto: Sequence, threaded: bool) -> None:
        self.reader = reader
        self.writer = writer
        self.crypto = list(crypto)
        self.threaded = threaded
        self._turn = 0

    @classmethod
    def inline(cls) -> Workers:
        """
        Every lane inline: everything on the calling thread.
        """
        return cls(InlineLane("reader"), InlineLane("writer"), [InlineLane("crypto")], False)

    @classmethod
    def threads(
        cls,
        callFromThread: Callable[..., None],
        cryptoLanes: int = 2,
        startThread: Callable[[Callable[[], None], str], object] = startDaemonThread,
    ) -> Workers:
        """
        One thread to read files, one to write them, and C{cryptoLanes}
        for bulk frames: on two cores, enough to keep both busy.
        """
        return cls(
            Lane("spc-reader", callFromThread, startThread),
            Lane("spc-writer", callFromThread, startThread),
            [Lane(f"spc-crypto-{n}", callFromThread, startThread) for n in range(cryptoLanes)],
            True,
        )

    def cryptoLane(self):
        """
        The crypto lane of a new connection: each in turn, so connections
        of the same session spread over them.
        """
        self._turn += 1
        return self.crypto[self._turn % len(self.crypto)]

    def stop(self) -> None:
        for lane in (self.reader, self.writer, *self.crypto):
            lane.stop()


_INLINE = Workers.inline()
_byReactor: dict[int, tuple[object, Workers]] = {}


def workersFor(reactor) -> Workers:
    """
    The workers of C{reactor}: threads, made once, reporting through its
    C{callFromThread} and stopped when it shuts down (once its services
    have stopped), if it runs threads; otherwise (a test's clock) lanes
    that run inline.
    """
    if not IReactorThreads.providedBy(reactor):
        return _INLINE
    known = _byReactor.get(id(reactor))
    if known is not None and known[0] is reactor:
        return known[1]
    workers = Workers.threads(reactor.callFromThread)
    _byReactor[id(reactor)] = (reactor, workers)

    def stop() -> None:
        workers.stop()
        _byReactor.pop(id(reactor), None)

    reactor.addSystemEventTrigger("during", "shutdown", stop)
    return workers


class InOrder:
    """
    Results that must come out in the order their work went in, whether
    each was made at once or in a lane.

    @ivar waiting: results not yet released, made or not.
    """

    def __init__(self, release: Callable[[Any], None]) -> None:
        """
        @param release: called with each result, in order.
        """
        self._release = release
        self._slots: deque[list] = deque()

    @property
    def waiting(self) -> int:
        return len(self._slots)

    def now(self, result: Any) -> None:
        """
        A result made at once: released now if nothing is ahead of it.
        """
        if not self._slots:
            self._release(result)
        else:
            self._slots.append([True, result])

    def later(self, lane, job: Job) -> None:
        """
        A result C{job} makes in C{lane}, released after those before it.
        """
        slot = [False, None]
        self._slots.append(slot)
        lane.submit(job, lambda result: self._filled(slot, result))

    def clear(self) -> None:
        """
        Release nothing more: results still to come are dropped.
        """
        for slot in self._slots:
            slot[0] = None
        self._slots.clear()

    def _filled(self, slot: list, result: Any) -> None:
        if slot[0] is None:
            return
        slot[0], slot[1] = True, result
        slots = self._slots
        while slots and slots[0][0]:
            _, value = slots.popleft()
            self._release(value)
