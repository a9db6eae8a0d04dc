# -*- test-case-name: tests.unit.test_sendprogress,tests.integration.test_sendreports -*-
"""
What C{spc send} tells whoever shows its progress (a L{SendObserver}),
and the two sources of it: the books kept of the files' progress
(L{ProgressBooks}) and the watch kept on the session's channels
(L{ConnectionWatch}).

A file's sender reports one number, the bytes of the file the receiver
holds.  Its first report, made once the receiver answered the offer, is
what the receiver held before this run sent anything: nothing for a new
file, a part for one an earlier run was interrupted in, the whole file
for one an earlier run delivered.  The books tell those apart on that
first report, so that a display starts at what the daemon holds and
counts as sent, and in its rate, only what this run sent.
"""

from __future__ import annotations

from typing import Callable, Hashable, Sequence

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

__all__ = ["ConnectionWatch", "ProgressBooks", "SendObserver"]

WATCH_INTERVAL = 1.0
"""
Seconds between two looks at a session's channels.
"""


class SendObserver:
    """
    What a display of C{spc send}'s progress is told.  Each method does
    nothing here: a display overrides what it shows.
    """

    def starting(self, files: int, size: int) -> None:
        """
        C{files} files of C{size} bytes together are to be sent; told once,
        before anything is.
        """

    def fileStarted(self, name: str, size: int, held: int) -> None:
        """
        The daemon answered the offer of the file C{name} of C{size} bytes:
        it held C{held} of them already (all, for a file an earlier run
        delivered).  Told once per file.
        """

    def progressed(self, held: int) -> None:
        """
        The daemon now holds C{held} bytes of all the files together.
        """

    def fileDelivered(self, name: str) -> None:
        """
        The daemon stored and verified the file C{name}, or held it already.
        """

    def connectionLost(self, seconds: float, limit: float) -> None:
        """
        No channel to the daemon has been up for C{seconds}; they are being
        joined again, and the session is given up after C{limit} seconds.
        Told at once and every L{WATCH_INTERVAL} while it lasts.
        """

    def connectionBack(self) -> None:
        """
        A channel is up again after L{connectionLost}.
        """


class ProgressBooks:
    """
    The progress of every file of one C{spc send} run, across its
    sessions: turns the senders' reports into L{SendObserver} events.

    @ivar held: the bytes of all the files the daemon holds, as last
        reported.
    """

    def __init__(self, observer: SendObserver, files: Sequence[tuple[Hashable, str, int]]):
        """
        Tell C{observer} at once how many files there are, and their size.

        @param files: C{(key, name, size)} of each file, C{key} naming it in
            L{reporter} and L{delivered}.
        """
        self._observer = observer
        self._files = {key: (name, size) for key, name, size in files}
        self._reported: dict[Hashable, int] = {}
        self.held = 0
        observer.starting(len(self._files), sum(size for _, size in self._files.values()))

    def reporter(self, key: Hashable) -> Callable[[int], None]:
        """
        @return: the progress callback for the sender of the file C{key}.
        """
        return lambda held: self._report(key, held)

    def _report(self, key: Hashable, held: int) -> None:
        previous = self._reported.get(key)
        if previous is None:
            name, size = self._files[key]
            self._observer.fileStarted(name, size, held)
            previous = 0
        self._reported[key] = held
        self.held += held - previous
        self._observer.progressed(self.held)

    def delivered(self, result, key: Hashable):
        """
        The file C{key} was delivered; usable as a callback.
        """
        self._observer.fileDelivered(self._files[key][0])
        return result


class ConnectionWatch:
    """
    Tells an observer when a session has no channel up, and for how long,
    while its channels are being joined again; and when one is back.

    The session says at once when a channel is lost; nothing tells of a
    channel that rejoined, so the watch looks every L{WATCH_INTERVAL},
    which also counts the seconds.
    """

    def __init__(
        self, clock: IReactorTime, session, observer: SendObserver, limit: float
    ) -> None:
        """
        @param limit: seconds the session waits without a channel before it
            gives up.
        """
        self._clock = clock
        self._session = session
        self._observer = observer
        self._limit = limit
        self._since: float | None = None
        self._loop = LoopingCall(self.check)
        self._loop.clock = clock

    @property
    def lost(self) -> bool:
        """
        Whether the observer was last told that no channel is up.
        """
        return self._since is not None

    def start(self) -> None:
        self._session.onChannelLost.append(self._lost)
        self._loop.start(WATCH_INTERVAL, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()
        if self._lost in self._session.onChannelLost:
            self._session.onChannelLost.remove(self._lost)

    def _lost(self, index: int) -> None:
        self.check()

    def check(self) -> None:
        session = self._session
        if session.closedReason is not None:
            return
        if session.liveChannels():
            if self._since is not None:
                self._since = None
                self._observer.connectionBack()
            return
        now = self._clock.seconds()
        if self._since is None:
            self._since = now
        self._observer.connectionLost(now - self._since, self._limit)
