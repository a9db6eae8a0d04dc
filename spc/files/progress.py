# -*- test-case-name: tests.memory.test_status -*-
"""
How far a file in progress has come, in the one form both ends report it:
the sending side (L{spc.files.sending}) and the receiving side
(L{spc.files.receiving}) each describe their files this way, and the
daemon's status view (L{spc.status}) reads them without knowing which side
a file is on.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["TransferProgress"]


class TransferProgress(NamedTuple):
    """
    How far one file in progress has come, for an operator's status view.

    @ivar name: the sender's name for the file.
    @ivar size: its declared size.
    @ivar done: bytes the receiver has (outgoing: acknowledged; incoming:
        written).
    @ivar held: of those, bytes fsynced; known only on the receiving end
        (C{None} on the sending one).
    @ivar outgoing: whether this end is the sender.
    """

    name: str
    size: int
    done: int
    held: int | None
    outgoing: bool
