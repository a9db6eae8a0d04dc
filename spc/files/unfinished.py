# -*- test-case-name: tests.memory.test_unfinished -*-
"""
The unfinished files of a store as a whole: what an operator may list and
remove (C{spc status}, C{spc discard}), and what the store deletes by
itself, after a day untouched or when their sender is revoked.

An unfinished file is invisible in the inbox and counts against its
sender's quota until it completes or is deleted, so an operator sees
each one (its sender, its name, the bytes held, how long since it was
last written, whether a session is receiving it now) and can remove one
before its day is up.  Removing one that a session is receiving stops
that transfer first, telling its sender why.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Callable, Iterator, NamedTuple

from spc.errors import TransferWithdrawn
from spc.keys.keyfiles import readRegularFile

if TYPE_CHECKING:
    from spc.files.store import PartialFile

__all__ = ["MAX_STATE_BYTES", "REMOVED", "Unfinished", "UnfinishedFiles"]

KEEP_SECONDS = 24 * 3600
MAX_STATE_BYTES = 16 * 1024 * 1024
"""
The largest state file read for a listing; one listing a million held
ranges is far smaller.
"""
REMOVED = "the daemon's operator removed the unfinished file"
STATE_SUFFIX = ".json"
COMPLETED_NAME = "completed.json"


class Unfinished(NamedTuple):
    """
    One unfinished file.

    @ivar key: its key in the store (L{spc.files.store.FileStore.key}).
    @ivar owner: its sender's identity fingerprint (C{""} when its state
        does not say).
    @ivar name: the sender's name for it.
    @ivar size: the size the sender declared.
    @ivar held: the bytes written and fsynced, which a resume skips.
    @ivar age: seconds since its state was last written.
    @ivar receiving: whether a session is receiving it now.
    """

    key: str
    owner: str
    name: str
    size: int
    held: int
    age: float
    receiving: bool


class UnfinishedFiles:
    """
    The part of L{spc.files.store.FileStore} that treats its unfinished
    files as a whole.  It uses the store's C{_partials} folder, its
    C{_owners} and C{_receiving} maps, its clock C{_now} and its
    C{forget}.
    """

    _partials: str
    _owners: dict[str, tuple[str, int]]
    _receiving: dict[str, PartialFile]
    _now: Callable[[], float]

    def forget(self, key: str, stored=None) -> None:
        raise NotImplementedError()

    def _statePath(self, key: str) -> str:
        return os.path.join(self._partials, key + STATE_SUFFIX)

    def unfinished(self, after: str = "") -> Iterator[Unfinished]:
        """
        The unfinished files whose keys sort after C{after}, in order of
        key; each state file is read only when its entry is asked for, so
        a reader that pages through them reads each once.
        """
        for key, (owner, size) in sorted(list(self._owners.items())):
            if key > after:
                yield self._describe(key, owner, size)

    def _describe(self, key: str, owner: str, size: int) -> Unfinished:
        """
        What the state file of C{key} says; a state file that cannot be
        read leaves the name empty and nothing held.
        """
        name, held, updated = "", 0, None
        try:
            status, data = readRegularFile(self._statePath(key), MAX_STATE_BYTES)
            state = json.loads(data)
            name = str(state.get("name", ""))
            held = sum(int(length) for _, length in state.get("ranges", ()))
            updated = float(state.get("updated", status.st_mtime))
        except (OSError, ValueError, TypeError, AttributeError):
            pass
        age = 0.0 if updated is None else max(0.0, self._now() - updated)
        return Unfinished(key, owner, name, size, held, age, key in self._receiving)

    def discardUnfinished(self, key: str) -> Unfinished:
        """
        Delete the unfinished file C{key}, as its day being up would.  A
        session receiving it stops first, and tells its sender that the
        operator removed it.

        @return: what it was.
        @raise KeyError: if there is no unfinished file C{key}.
        @raise TransferWithdrawn: if it is complete and being verified: it
            is about to be stored, or refused.
        """
        owner, size = self._owners[key]
        found = self._describe(key, owner, size)
        receiver = self._receiving.get(key)
        if receiver is not None and not receiver.release(REMOVED):
            raise TransferWithdrawn("it is complete and being verified now")
        self.forget(key)
        return found

    def expire(self) -> int:
        """
        Delete partial files untouched for a day.

        @return: how many were deleted.
        """
        removed = 0
        for entry in os.scandir(self._partials):
            if entry.name.endswith(STATE_SUFFIX) and entry.name != COMPLETED_NAME:
                if self._now() - entry.stat().st_mtime > KEEP_SECONDS:
                    self.forget(entry.name[: -len(STATE_SUFFIX)])
                    removed += 1
        return removed

    def forgetUnless(self, admitted: Callable[[str], bool]) -> int:
        """
        Delete the unfinished files of every identity C{admitted} refuses:
        a revoked sender can never resume them (A15).  Files recorded
        without their sender are left to expire.

        @return: how many were deleted.
        """
        revoked = [
            key for key, (owner, _) in list(self._owners.items())
            if owner and not admitted(owner)
        ]
        for key in revoked:
            self.forget(key)
        return len(revoked)
