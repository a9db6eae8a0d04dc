# -*- test-case-name: tests.unit.test_output,tests.integration.test_endtoend_terminal -*-
"""
The progress bar of C{spc send} and C{spc demo}, on stderr, only when
stderr is a terminal (a log or a pipe gets the summary line alone).

Every figure on it is true of this run: the bar starts at what the daemon
held already (a resumed file says so, on a line of its own), the rate
and the time left count only the bytes this run sent, sizes are in the
units of L{spc.cli.units}, and while no channel is up the bar says so and
for how long, in place of a rate that no longer holds.  One file shows
its name; several show how many of them are delivered and the name of
the one started last, in place of a byte count.
"""

from __future__ import annotations

import os
from typing import TextIO

from tqdm import tqdm

from spc.cli.units import formatRate, formatSize
from spc.client.observer import SendObserver
from spc.client.sendlist import shown

__all__ = ["ProgressBar"]

REDRAW_INTERVAL = 0.1
"""
Seconds between two redraws for progress alone; a change of state (a file
resumed or delivered, the connection lost or back) redraws at once.
"""

DEFAULT_SIZE = os.terminal_size((80, 24))
"""
The terminal's columns and lines, when it does not tell its own (a
pseudo-terminal may say 0 and 0, and tqdm draws nothing on 0 lines).
"""

NAME_SHOWN = 30
"""
The most characters of a file's name on the bar: its end, which tells
files of one folder apart.
"""


def _size(stream: TextIO) -> os.terminal_size:
    try:
        columns, lines = os.get_terminal_size(stream.fileno())
    except (AttributeError, ValueError, OSError):
        columns = lines = 0
    return os.terminal_size((columns or DEFAULT_SIZE.columns, lines or DEFAULT_SIZE.lines))


def _short(name: str) -> str:
    return name if len(name) <= NAME_SHOWN else "…" + name[1 - NAME_SHOWN :]


class _Line(tqdm):
    """
    A tqdm bar whose text either side of the bar is ours: C{tqdm}'s own
    figures would name steps of 1024 with decimal prefixes (MB) and take
    the daemon's held bytes for a burst of speed.

    @ivar left: what goes before the percentage.
    @ivar right: what goes after the bar.
    """

    monitor_interval = 0

    def __init__(self, left: str, right: str, **kwargs) -> None:
        self.left, self.right = left, right
        super().__init__(**kwargs)

    @property
    def format_dict(self):
        return {**super().format_dict, "left": self.left, "right": self.right}


class ProgressBar(SendObserver):
    """
    Draws what a L{spc.client.observer.ProgressBooks} and a
    L{spc.client.observer.ConnectionWatch} tell, created on the first
    file's answer so that nothing is drawn for a send without files.
    """

    def __init__(self, stream: TextIO, clock, enabled: bool = True) -> None:
        """
        @param clock: what the rate's seconds are measured on: the reactor.
        """
        isatty = getattr(stream, "isatty", lambda: False)
        self._stream = stream
        self._clock = clock
        self._enabled = enabled and isatty()
        self._bar: _Line | None = None
        self._files = 0
        self._total = 0
        self._delivered = 0
        self._held = 0
        self._heldBefore = 0
        self._current = ""
        self._started: float | None = None
        self._drawn = 0.0
        self._lost: tuple[float, float] | None = None
        self._changed = False
        self._closed = False

    # SendObserver.

    def starting(self, files: int, size: int) -> None:
        self._files = files
        self._total = size

    def fileStarted(self, name: str, size: int, held: int) -> None:
        if not self._enabled or self._closed:
            return
        if self._started is None:
            self._started = self._clock.seconds()
        self._current = _short(shown(name))
        self._heldBefore += held
        if 0 < held < size:
            if self._bar is not None:
                self._bar.clear()
            self._stream.write(f"resuming {shown(name)}: {formatSize(held)} already there\n")
        self._changed = True

    def progressed(self, held: int) -> None:
        """
        The books tell of a file's start first, then of what is held with
        it: the bar is drawn then, with both.
        """
        self._held = held
        if self._changed or self._clock.seconds() - self._drawn >= REDRAW_INTERVAL:
            self._draw()

    def fileDelivered(self, name: str) -> None:
        self._delivered += 1
        self._draw()

    def connectionLost(self, seconds: float, limit: float) -> None:
        self._lost = (seconds, limit)
        self._draw()

    def connectionBack(self) -> None:
        self._lost = None
        self._draw()

    def update(self, held: int, total: int) -> None:
        """
        Show C{held} bytes of C{total}, for what knows only totals (C{spc
        receive}, which looks at what its files hold): every byte counts as
        this run's, and no file is named.
        """
        if not self._enabled or self._closed or total <= 0:
            return
        if self._started is None:
            self._started = self._clock.seconds()
        self._files, self._total, self._held = 1, total, held
        self._current = "receiving"
        self._draw()

    def close(self, passThrough=None):
        """
        Remove the bar for good; usable as a callback and an errback.
        """
        self._closed = True
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        return passThrough

    # Drawing.

    def _draw(self) -> None:
        if self._started is None or self._closed:
            return
        self._drawn = self._clock.seconds()
        self._changed = False
        held = min(self._held, self._total)
        if self._files == 1:
            left = f"{self._current} "
        else:
            left = f"{self._delivered}/{self._files} files "
        right = self._right(held)
        done = held if self._total else self._delivered
        bar, (columns, lines) = self._bar, _size(self._stream)
        if bar is None:
            self._bar = _Line(
                left, right, total=self._total or max(self._files, 1), initial=done,
                bar_format="{left}{percentage:3.0f}%|{bar}| {right}",
                file=self._stream, leave=False, ncols=columns, nrows=lines,
            )
            return
        bar.left, bar.right, bar.n = left, right, done
        bar.total = self._total or max(self._files, 1)
        bar.ncols, bar.nrows = columns, lines
        bar.refresh()

    def _right(self, held: int) -> str:
        """
        What follows the bar: while no channel is up, that and for how
        long; otherwise the bytes held (of one file), the rate and the time
        left over what this run sent, and the file started last (of
        several).
        """
        if self._lost is not None:
            seconds, limit = self._lost
            return (
                f"connection lost, reconnecting ({seconds:.0f} s; "
                f"gives up after {limit:.0f} s)"
            )
        figures = []
        if self._files == 1:
            figures.append(f"{formatSize(held)} of {formatSize(self._total)}")
        sent = max(held - self._heldBefore, 0)
        elapsed = self._drawn - self._started
        if sent and elapsed > 0:
            rate = sent / elapsed
            left = tqdm.format_interval((self._total - held) / rate)
            figures += [formatRate(rate), f"{left} left"]
        if self._files > 1:
            figures.append(self._current)
        return ", ".join(figures)
