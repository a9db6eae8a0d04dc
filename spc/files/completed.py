# -*- test-case-name: tests.unit.test_completed -*-
"""
The memory of completed transfers: which file each one stored, and how
that file looked right after it was stored.

A transfer may be answered "complete" only while what it stored is still
there (L{spc.files.store.FileStore.completedName}), so each record keeps the
file's path relative to the inbox and its identity (device, inode, size,
modification and change times).  The records live in one JSON file,
rewritten atomically, and bounded both in count and in bytes: the oldest
go first, and a transfer forgotten early is only received again.
"""

from __future__ import annotations

import json
import math
import os
import threading
from typing import Callable, NamedTuple

from spc.keys.keyfiles import readRegularFile, replaceFile

__all__ = ["CompletedTransfers", "Completion", "fileIdentity"]

MAX_COMPLETED = 16_384
MAX_COMPLETED_BYTES = 8 * 1024 * 1024


def fileIdentity(status: os.stat_result) -> tuple[int, ...]:
    """
    What must not change for a stored file to count as still the one
    stored: a move, a rewrite, a C{touch} or a C{chmod} each change one of
    these.
    """
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


class Completion(NamedTuple):
    """
    One completed transfer.

    @ivar finished: when it completed, by the store's clock.
    @ivar name: the stored file, relative to the inbox, C{/}-separated.
    @ivar identity: L{fileIdentity} of the stored file.
    """

    finished: float
    name: str
    identity: tuple[int, ...]

    def encode(self) -> dict:
        return {"finished": self.finished, "name": self.name, "file": list(self.identity)}

    @classmethod
    def decode(cls, value: object) -> Completion | None:
        """
        A record as saved, or L{None} for one this version cannot check
        (the bare completion time older versions saved, or garbage).
        """
        if not isinstance(value, dict):
            return None
        try:
            finished, name, identity = value["finished"], value["name"], value["file"]
            if not isinstance(name, str) or not isinstance(identity, list):
                return None
            identity = tuple(int(number) for number in identity)
            finished = float(finished)
            if len(identity) != 5 or not math.isfinite(finished):
                return None
            return cls(finished, name, identity)
        except (KeyError, TypeError, ValueError):
            return None


class CompletedTransfers:
    """
    Completed transfers of the last C{keep} seconds, saved in C{path}.

    @ivar _records: key to L{Completion}, oldest first.
    @ivar _lock: the store completes files in threads while the reactor
        looks records up and drops stale ones; every change and its save
        happen under it, so a save never loses another's record.
    """

    def __init__(self, path: str, now: Callable[[], float], keep: float) -> None:
        self._path = path
        self._now = now
        self._keep = keep
        self._lock = threading.Lock()
        self._records: dict[str, Completion] = self._load()

    def get(self, key: str) -> Completion | None:
        """
        The record of C{key}, unless there is none or it expired.
        """
        record = self._records.get(key)
        if record is None or self._now() - record.finished >= self._keep:
            return None
        return record

    def add(self, key: str, name: str, status: os.stat_result) -> None:
        with self._lock:
            self._records.pop(key, None)
            self._records[key] = Completion(self._now(), name, fileIdentity(status))
            self._save()

    def drop(self, key: str) -> None:
        with self._lock:
            if self._records.pop(key, None) is not None:
                self._save()

    def _save(self) -> None:
        """
        Keep the newest records that are not expired and fit the bounds,
        and write them.
        """
        now = self._now()
        kept: list[tuple[str, str]] = []
        size = 2
        for key, record in reversed(self._records.items()):
            if now - record.finished >= self._keep or len(kept) >= MAX_COMPLETED:
                break
            entry = json.dumps(key) + ":" + json.dumps(record.encode(), ensure_ascii=False)
            size += len(entry.encode("utf-8")) + 1
            if size > MAX_COMPLETED_BYTES:
                break
            kept.append((key, entry))
        kept.reverse()
        self._records = {key: self._records[key] for key, _ in kept}
        text = "{" + ",".join(entry for _, entry in kept) + "}"
        replaceFile(self._path, text.encode("utf-8"), 0o600)

    def _load(self) -> dict[str, Completion]:
        try:
            _, data = readRegularFile(self._path, MAX_COMPLETED_BYTES)
            loaded = json.loads(data)
        except (OSError, ValueError):
            return {}
        if not isinstance(loaded, dict):
            return {}
        records = {}
        for key, value in loaded.items():
            record = Completion.decode(value)
            if record is not None:
                records[str(key)] = record
        return dict(sorted(records.items(), key=lambda item: item[1].finished))
