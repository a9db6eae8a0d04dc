# -*- test-case-name: tests.unit.test_store -*-
"""
Byte ranges of a file: what a receiver has written and fsynced, what a
sender may skip on a resume, what a C{FAK:} acknowledges.  Both sides of a
transfer and the store keep them as a L{RangeSet}.
"""

from __future__ import annotations

import bisect
from typing import Iterator

__all__ = ["RangeSet"]


class RangeSet:
    """
    Sorted, merged half-open byte ranges.
    """

    def __init__(self, ranges: Iterator[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for start, length in ranges:
            self.add(start, start + length)

    def add(self, start: int, end: int) -> None:
        if start >= end:
            return
        left = bisect.bisect_left(self._ends, start)
        right = bisect.bisect_right(self._starts, end)
        if left < right:
            start = min(start, self._starts[left])
            end = max(end, self._ends[right - 1])
        self._starts[left:right] = [start]
        self._ends[left:right] = [end]

    def covers(self, start: int, end: int) -> bool:
        index = bisect.bisect_right(self._starts, start) - 1
        return index >= 0 and self._ends[index] >= end

    def runEnd(self, position: int) -> int | None:
        """
        @return: the end of the range that holds byte C{position}, or
            L{None} if none does.
        """
        index = bisect.bisect_right(self._starts, position) - 1
        if index >= 0 and self._ends[index] > position:
            return self._ends[index]
        return None

    def total(self) -> int:
        return sum(end - start for start, end in zip(self._starts, self._ends))

    def ranges(self) -> list[tuple[int, int]]:
        """
        @return: C{(start, length)} pairs.
        """
        return [(start, end - start) for start, end in zip(self._starts, self._ends)]

    def __len__(self) -> int:
        return len(self._starts)
