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
import threading
from typing import Callable, Iterator, NamedTuple, Protocol

from spc.errors import TransferWithdrawn
from spc.keys.keyfiles import readRegularFile

__all__ = ["MAX_STATE_BYTES", "REMOVED", "Receiver", "Unfinished", "UnfinishedFiles"]

KEEP_SECONDS = 24 * 3600
MAX_STATE_BYTES = 16 * 1024 * 1024
"""
The largest state file read for a listing; one listing a million held
ranges is far smaller.
"""
REMOVED = "the daemon's operator removed the unfinished file"
STATE_SUFFIX = ".json"
PARTIAL_SUFFIX = ".part"
COMPLETED_NAME = "completed.json"


class Receiver(Protocol):
    """
    What receives an unfinished file now, as the store knows it: a
    session's claim on it (L{spc.files.receiving.IncomingFiles}).

    @ivar name: the sender's name for the file, shown before its state
        file is written (a new file gets one only when its first bytes are
        claimed, or its session ends).
    """

    name: str

    def heldBytes(self) -> int:
        """
        The bytes of the file written and fsynced so far.
        """

    def release(self, reason: str) -> bool:
        """
        Stop receiving the file, telling the sender C{reason}.

        @return: whether it did; not while the file is being verified.
        """


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
    C{_owners} and C{_receiving} maps and the lock of the first, its clock
    C{_now} and its C{forget}.  The writer's thread changes C{_owners};
    everything here runs on the reactor thread but L{expire}, which the
    writer's thread may run too.
    """

    _partials: str
    _owners: dict[str, tuple[str, int]]
    _receiving: dict[str, tuple[Receiver, float]]
    _stateLock: threading.Lock
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
        with self._stateLock:
            owners = sorted(self._owners.items())
        for key, (owner, size) in owners:
            if key > after:
                yield self._describe(key, owner, size)

    def _describe(self, key: str, owner: str, size: int) -> Unfinished:
        """
        What the state file of C{key} says.  A file being received that
        has none yet is described by its receiver, its age counted from
        when it began receiving it; otherwise, a state file that cannot be
        read leaves the name empty and nothing held.
        """
        name, held, updated = "", 0, None
        receiving = self._receiving.get(key)
        try:
            status, data = readRegularFile(self._statePath(key), MAX_STATE_BYTES)
            state = json.loads(data)
            name = str(state.get("name", ""))
            held = sum(int(length) for _, length in state.get("ranges", ()))
            updated = float(state.get("updated", status.st_mtime))
        except FileNotFoundError:
            if receiving is not None:
                receiver, updated = receiving
                name, held = receiver.name, receiver.heldBytes()
        except (OSError, ValueError, TypeError, AttributeError):
            pass
        age = 0.0 if updated is None else max(0.0, self._now() - updated)
        return Unfinished(key, owner, name, size, held, age, receiving is not None)

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
        with self._stateLock:
            owner, size = self._owners[key]
        found = self._describe(key, owner, size)
        receiving = self._receiving.get(key)
        if receiving is not None and not receiving[0].release(REMOVED):
            raise TransferWithdrawn("it is complete and being verified now")
        self.forget(key)
        return found

    def expire(self) -> int:
        """
        Delete partial files untouched for a day: those whose state was not
        rewritten, and those left without a state file (the daemon stopped
        before it closed them) and not written to.

        @return: how many were deleted.
        """
        removed = 0
        now = self._now()
        for entry in os.scandir(self._partials):
            key, suffix = os.path.splitext(entry.name)
            if suffix == STATE_SUFFIX and entry.name != COMPLETED_NAME:
                stale = now - entry.stat().st_mtime > KEEP_SECONDS
            elif suffix == PARTIAL_SUFFIX and key not in self._owners:
                stale = now - entry.stat().st_mtime > KEEP_SECONDS and not os.path.exists(
                    self._statePath(key)
                )
            else:
                continue
            if stale:
                self.forget(key)
                removed += 1
        return removed

    def forgetUnless(self, admitted: Callable[[str], bool]) -> int:
        """
        Delete the unfinished files of every identity C{admitted} refuses:
        a revoked sender can never resume them (A15).  Files recorded
        without their sender are left to expire.

        @return: how many were deleted.
        """
        with self._stateLock:
            revoked = [
                key for key, (owner, _) in self._owners.items() if owner and not admitted(owner)
            ]
        for key in revoked:
            self.forget(key)
        return len(revoked)
