# -*- test-case-name: tests.unit.test_cli -*-
"""
The progress bar of C{spc send} and C{spc demo}: rate and time left, on
stderr, only when stderr is a terminal (a log or a pipe gets the summary
line alone).
"""

from __future__ import annotations

from typing import TextIO

__all__ = ["ProgressBar"]


class ProgressBar:
    """
    A byte counter drawn with tqdm, created on the first update so that
    nothing is drawn for a send without files.
    """

    def __init__(self, stream: TextIO, enabled: bool = True) -> None:
        isatty = getattr(stream, "isatty", lambda: False)
        self._stream = stream
        self._enabled = enabled and isatty()
        self._bar = None

    def update(self, done: int, total: int) -> None:
        if not self._enabled or total <= 0:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, unit="B", unit_scale=True, unit_divisor=1024,
                file=self._stream, leave=False, dynamic_ncols=True,
            )
        self._bar.update(done - self._bar.n)

    def close(self, passThrough=None):
        """
        Remove the bar; usable as a callback and an errback.
        """
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        return passThrough
