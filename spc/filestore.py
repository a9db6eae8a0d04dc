# -*- test-case-name: tests.test_filestore -*-
"""
Where received files live on disk before and after they are complete.

A file being received is a partial file under C{INBOX/.spc-partial/}, named
after the sender's identity and the transfer id, never after anything the
peer chose; next to it a small state file lists the byte ranges that are
written and fsynced, which is what a resumed transfer may skip (A12).  Only
after the whole-file SHA-256 matched is the file linked under its final
name, which is the sender's name reduced to safe path components and made
unique: an existing file is never replaced, and a partial or corrupt file
never appears under a final name.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import stat
import time
import unicodedata
from typing import Callable, Iterator

from spc._files import fsyncDirectory, replaceFile, unlinkQuietly
from spc.errors import NameUnavailable, ResourceLimitExceeded

__all__ = [
    "FileStore",
    "PartialFile",
    "RangeSet",
    "safeParts",
    "withoutControls",
]

PARTIAL_DIRECTORY = ".spc-partial"
MAX_COMPONENT_BYTES = 255
MAX_DEPTH = 32
MAX_NAME_BYTES = 4096
DEFAULT_RESERVE = 64 * 1024 * 1024
DEFAULT_QUOTA = 256 * 1024**3
KEEP_SECONDS = 24 * 3600
EXPIRY_INTERVAL = 3600
MAX_UNIQUE_TRIES = 10_000
_HASH_BLOCK = 1024 * 1024


def withoutControls(text: str) -> str:
    """
    C{text} without its characters of Unicode category C (controls, format
    characters such as bidirectional overrides, surrogates, private use and
    unassigned): a name from the wire may carry a terminal escape or a
    carriage return, which must reach neither a file system nor a screen.
    """
    return "".join(
        character for character in text if unicodedata.category(character)[0] != "C"
    )


def safeParts(name: str) -> list[str]:
    """
    Reduce a path from the wire to components that stay inside a directory:
    separators of either kind split, empty, C{.} and C{..} components go,
    control characters (NUL included) go, and what is left is bounded in
    length and depth.  A name with nothing left becomes C{unnamed}.
    """
    parts = []
    for raw in name.replace("\\", "/").split("/"):
        cleaned = withoutControls(unicodedata.normalize("NFC", raw)).strip()
        if cleaned in ("", ".", ".."):
            continue
        encoded = cleaned.encode("utf-8")[:MAX_COMPONENT_BYTES]
        cleaned = encoded.decode("utf-8", "ignore").strip() or "_"
        if cleaned.lower().startswith(PARTIAL_DIRECTORY):
            cleaned = "_" + cleaned
        parts.append(cleaned)
    return parts[-MAX_DEPTH:] or ["unnamed"]


def _numbered(name: str, number: int) -> str:
    """
    C{name (number).ext}, with the stem shortened (never inside a UTF-8
    character) so the result still fits a file-name component.
    """
    stem, dot, extension = name.rpartition(".")
    if not stem or not dot:
        stem, extension = name, ""
    suffix = f" ({number})" + (f".{extension}" if extension else "")
    room = MAX_COMPONENT_BYTES - len(suffix.encode("utf-8"))
    stem = stem.encode("utf-8")[: max(room, 1)].decode("utf-8", "ignore") or "_"
    return stem + suffix


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

    def total(self) -> int:
        return sum(end - start for start, end in zip(self._starts, self._ends))

    def ranges(self) -> list[tuple[int, int]]:
        """
        @return: C{(start, length)} pairs.
        """
        return [(start, end - start) for start, end in zip(self._starts, self._ends)]

    def __len__(self) -> int:
        return len(self._starts)


class PartialFile:
    """
    A file being received.

    @ivar size: the size the sender declared.
    @ivar name: the sender's name for it.
    @ivar held: byte ranges written and fsynced (safe to claim on resume).
    @ivar written: byte ranges written, fsynced or not.
    """

    def __init__(self, store: FileStore, key: str, name: str, size: int, held: RangeSet):
        self._store = store
        self.key = key
        self.name = name
        self.size = size
        self.held = held
        self.written = RangeSet(held.ranges())
        self.path = store.partialPath(key)
        self._descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def write(self, offset: int, data: bytes | memoryview) -> bool:
        """
        Write C{data} at C{offset}, unless those bytes are already written.

        @return: whether anything was written.
        """
        end = offset + len(data)
        if self.written.covers(offset, end):
            return False
        view = memoryview(data)
        done = 0
        while done < len(view):
            done += os.pwrite(self._descriptor, view[done:], offset + done)
        self.written.add(offset, end)
        return True

    def isComplete(self) -> bool:
        return self.written.covers(0, self.size) or self.size == 0

    def syncData(self) -> None:
        """
        Make what was written durable; safe to call from a thread while the
        reactor keeps writing (only ranges written before the call are
        covered).
        """
        os.fsync(self._descriptor)

    def saveHeld(self) -> None:
        """
        Record L{held} in the state file.
        """
        self._store.saveState(self)

    def sync(self) -> None:
        """
        Make what was written durable, then claim it in the state file: a
        resume never skips bytes a crash could have lost.
        """
        covered = self.written.ranges()
        self.syncData()
        self.held = RangeSet(covered)
        self.saveHeld()

    def digest(self) -> bytes:
        """
        SHA-256 of the file as written; reads it all, so call it off the
        reactor thread.
        """
        digest = hashlib.sha256()
        offset = 0
        while offset < self.size:
            block = os.pread(self._descriptor, min(_HASH_BLOCK, self.size - offset), offset)
            if not block:
                break
            digest.update(block)
            offset += len(block)
        return digest.digest()

    def finish(self) -> str:
        """
        Put the verified file under its final name and forget the partial.

        @return: the final path.
        """
        os.fsync(self._descriptor)
        os.close(self._descriptor)
        self._descriptor = -1
        try:
            final = self._store.place(self.path, self.name)
        except BaseException:
            self.discard()
            raise
        self._store.forget(self.key, completed=True)
        self._store._stored[self.key] = final
        return final

    def discard(self) -> None:
        """
        Delete the partial file and its state (a digest mismatch, a revoked
        sender, an expired transfer).
        """
        self.close()
        self._store.forget(self.key, completed=False)

    def close(self) -> None:
        if self._descriptor >= 0:
            os.close(self._descriptor)
            self._descriptor = -1


class FileStore:
    """
    Partial and finished files of an inbox directory.

    @ivar directory: the inbox.
    @ivar quota: the most bytes one identity's unfinished files may
        declare together (A12), so one sender cannot fill the disk with
        transfers it never finishes.
    @ivar _reserved: top-level names files may not take (the daemon's own
        files, such as C{messages.jsonl}), compared without case.
    @ivar _owners: C{key -> (identity, declared size)} of every partial
        file, kept in memory so an offer costs no directory scan.
    """

    def __init__(
        self,
        directory: str,
        reserve: int = DEFAULT_RESERVE,
        now: Callable[[], float] = time.time,
        reserved: frozenset[str] = frozenset(),
        quota: int = DEFAULT_QUOTA,
    ) -> None:
        self.directory = directory
        self._reserved = frozenset(name.lower() for name in reserved)
        self.reserve = reserve
        self.quota = quota
        self._now = now
        self._partials = os.path.join(directory, PARTIAL_DIRECTORY)
        os.makedirs(self._partials, mode=0o700, exist_ok=True)
        self._completedPath = os.path.join(self._partials, "completed.json")
        self._completed: dict[str, float] = self._loadCompleted()
        self._owners: dict[str, tuple[str, int]] = dict(self._loadOwners())
        self._stored: dict[str, str] = {}
        self._lastExpiry = self._now()
        self.expire()

    @staticmethod
    def key(peer: str, transferID: bytes) -> str:
        """
        Partial state belongs to one identity and transfer id: another
        sender can neither resume nor learn it.
        """
        return hashlib.sha256(peer.encode("utf-8") + b"\0" + transferID).hexdigest()[:40]

    def partialPath(self, key: str) -> str:
        return os.path.join(self._partials, key + ".part")

    def _statePath(self, key: str) -> str:
        return os.path.join(self._partials, key + ".json")

    def isCompleted(self, key: str) -> bool:
        finished = self._completed.get(key)
        return finished is not None and self._now() - finished < KEEP_SECONDS

    def completedName(self, key: str) -> str | None:
        """
        Where the file of a completed transfer is stored, relative to the
        inbox with C{/} separators, while the transfer counts as completed
        and a file is still there under that name; otherwise C{None}, and
        the file is to be received again.  Only transfers this store
        completed since it was opened have a name.
        """
        stored = self._stored.get(key)
        if stored is None or not self.isCompleted(key) or not os.path.isfile(stored):
            return None
        return os.path.relpath(stored, self.directory).replace(os.sep, "/")

    def open(self, key: str, name: str, size: int, peer: str = "") -> PartialFile:
        """
        The partial file for a transfer from C{peer}: resumed if its state
        matches, new otherwise.

        @raise ResourceLimitExceeded: when the file would not fit on disk
            beyond the reserve, or would take C{peer} over its quota.
        """
        if self._now() - self._lastExpiry > EXPIRY_INTERVAL:
            self._lastExpiry = self._now()
            self.expire()
        held = RangeSet()
        try:
            with open(self._statePath(key)) as f:
                state = json.load(f)
            if state.get("size") == size and state.get("name") == name:
                held = RangeSet((int(s), int(n)) for s, n in state["ranges"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        owing = sum(n for k, (owner, n) in list(self._owners.items()) if owner == peer and k != key)
        if owing + size > self.quota:
            raise ResourceLimitExceeded(
                f"{size} bytes would take the sender's unfinished files over "
                f"its quota of {self.quota} bytes"
            )
        missing = size - held.total()
        stats = os.statvfs(self._partials)
        if missing > stats.f_bavail * stats.f_frsize - self.reserve:
            raise ResourceLimitExceeded(f"no room for a file of {size} bytes")
        if not len(held):
            unlinkQuietly(self.partialPath(key))
        partial = PartialFile(self, key, name, size, held)
        self._owners[key] = (peer, size)
        self.saveState(partial)
        return partial

    def saveState(self, partial: PartialFile) -> None:
        """
        Record what C{partial} holds; nothing for a transfer that completed
        meanwhile (an older session's copy closing late).
        """
        if self.isCompleted(partial.key):
            return
        replaceFile(
            self._statePath(partial.key),
            json.dumps(
                {
                    "peer": self._owners.get(partial.key, ("", 0))[0],
                    "name": partial.name,
                    "size": partial.size,
                    "ranges": partial.held.ranges(),
                    "updated": self._now(),
                }
            ).encode("utf-8"),
            0o600,
        )

    def place(self, source: str, name: str) -> str:
        """
        Link C{source} under the safe, unique final path for C{name}.
        """
        parts = safeParts(name)
        folder = self._makeFolders(parts[:-1])
        first = 1 if len(parts) == 1 and parts[0].lower() in self._reserved else 0
        for number in range(first, MAX_UNIQUE_TRIES):
            leaf = parts[-1] if number == 0 else _numbered(parts[-1], number)
            final = os.path.join(folder, leaf)
            try:
                os.link(source, final)
            except FileExistsError:
                continue
            os.unlink(source)
            fsyncDirectory(folder)
            return final
        raise NameUnavailable(f"too many files named {parts[-1]!r}")

    def makeDirectory(self, name: str) -> str:
        """
        Make the folder C{name}, a path from the wire reduced to safe
        components as a file's name is, with the folders above it; a folder
        that exists already is kept.

        @return: its path.
        @raise NameUnavailable: when a component names something that is not
            a folder, or the folder would take a reserved name.
        """
        parts = safeParts(name)
        if len(parts) == 1 and parts[0].lower() in self._reserved:
            raise NameUnavailable(f"{parts[0]!r} is reserved in the inbox")
        return self._makeFolders(parts)

    def _makeFolders(self, parts: list[str]) -> str:
        """
        Make the folders C{parts} inside the inbox, each inside the one
        before, never following anything that is not a folder.

        @return: the last one's path (the inbox's for no parts).
        """
        folder = self.directory
        for part in parts:
            folder = os.path.join(folder, part)
            try:
                os.mkdir(folder, 0o700)
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(folder).st_mode):
                    raise NameUnavailable(f"{part!r} in the inbox is not a folder") from None
        return folder

    def forget(self, key: str, completed: bool) -> None:
        self._owners.pop(key, None)
        unlinkQuietly(self.partialPath(key))
        unlinkQuietly(self._statePath(key))
        if completed:
            now = self._now()
            self._completed = {
                k: t for k, t in self._completed.items() if now - t < KEEP_SECONDS
            }
            self._completed[key] = now
            replaceFile(
                self._completedPath, json.dumps(self._completed).encode("utf-8"), 0o600
            )

    def expire(self) -> int:
        """
        Delete partial files untouched for a day.

        @return: how many were deleted.
        """
        removed = 0
        for entry in os.scandir(self._partials):
            if entry.name.endswith(".json") and entry.name != "completed.json":
                if self._now() - entry.stat().st_mtime > KEEP_SECONDS:
                    self.forget(entry.name[: -len(".json")], completed=False)
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
            self.forget(key, completed=False)
        return len(revoked)

    def _loadOwners(self) -> Iterator[tuple[str, tuple[str, int]]]:
        for entry in os.scandir(self._partials):
            if entry.name.endswith(".json") and entry.name != "completed.json":
                try:
                    with open(entry.path) as f:
                        state = json.load(f)
                    owner = (str(state.get("peer", "")), int(state["size"]))
                except (OSError, ValueError, KeyError, TypeError, AttributeError):
                    continue
                yield entry.name[: -len(".json")], owner

    def _loadCompleted(self) -> dict[str, float]:
        try:
            with open(self._completedPath) as f:
                loaded = json.load(f)
            return {str(k): float(v) for k, v in loaded.items()}
        except (OSError, ValueError, AttributeError, TypeError):
            return {}
