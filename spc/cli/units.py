# -*- test-case-name: tests.unit.test_output -*-
"""
How the C{spc} commands write sizes and rates: in IEC binary units, by
their names (1 KiB = 1024 bytes, MiB, GiB, TiB, and the same per second),
on the progress bar, in C{spc send}'s summary, in C{spc demo}'s report and
in C{spc status}'s table alike, so that any two figures can be compared.
"""

from __future__ import annotations

__all__ = ["formatRate", "formatSize"]

_UNITS = ("KiB", "MiB", "GiB", "TiB")


def formatSize(count: float) -> str:
    """
    C{count} bytes as a person reads them: whole bytes below 1 KiB, one
    decimal above, in the largest unit that keeps the number below 1024
    once rounded (so never C{1024.0 KiB}).
    """
    if count < 1024:
        return f"{int(count)} B"
    value = float(count)
    for unit in _UNITS:
        value /= 1024
        if round(value, 1) < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def formatRate(bytesPerSecond: float) -> str:
    """
    A rate in the units of L{formatSize}, per second.
    """
    return f"{formatSize(bytesPerSecond)}/s"
