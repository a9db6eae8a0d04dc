# -*- test-case-name: tests.unit.test_completed -*-
"""
The memory of completed transfers: which file each one stored, and how
that file looked right after it was stored.

A transfer may be answered "complete" only while what it stored is still
there (L{spc.files.store.FileStore.completedName}), so each record keeps the
file's path relative to the inbox and its identity (device, inode, size,
modification and change times).

The records live in an append-only log, C{completed.jsonl}, one JSON
object a line: a completion appends one line, and the store makes many
completions durable with one fsync of the log (L{CompletedTransfers.sync}),
so storing a thousand small files does not rewrite a file a thousand
times.  A record dropped (its file went away) appends a line saying so.
The log is rewritten whole, atomically, with only the live records, once
it holds twice as many lines as records, or when a line would take it past
C{MAX_COMPLETED_BYTES}.  It is bounded in count (the newest
C{MAX_COMPLETED} records are kept) and in bytes (a larger log is not read
at all); a transfer forgotten early is only received again.  A
C{completed.json} of an older version is read once and replaced by the
log.
"""

from __future__ import annotations

import json
import math
import os
import threading
from typing import Callable, NamedTuple

from spc.keys.keyfiles import readRegularFile, replaceFile, unlinkQuietly

__all__ = ["CompletedTransfers", "Completion", "fileIdentity"]

MAX_COMPLETED = 16_384
MAX_COMPLETED_BYTES = 8 * 1024 * 1024
LOG_NAME = "completed.jsonl"
OLD_NAME = "completed.json"
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


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


def _line(key: str, record: Completion | None) -> bytes:
    """
    One line of the log: a record, or (C{record} is L{None}) the drop of
    C{key}'s.
    """
    entry = {"key": key, **(record.encode() if record is not None else {"drop": True})}
    return (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")


class CompletedTransfers:
    """
    Completed transfers of the last C{keep} seconds, logged in the folder
    C{directory}.

    @ivar _records: key to L{Completion}, oldest first.
    @ivar _lock: the store completes files in the writer's thread while
        the reactor looks records up and drops stale ones; every change
        and its line in the log happen under it.
    """

    def __init__(self, directory: str, now: Callable[[], float], keep: float) -> None:
        self._path = os.path.join(directory, LOG_NAME)
        self._oldPath = os.path.join(directory, OLD_NAME)
        self._now = now
        self._keep = keep
        self._lock = threading.Lock()
        self._lines = 0
        self._size = 0
        self._log = -1
        self._records: dict[str, Completion] = self._load()
        if os.path.exists(self._oldPath):
            with self._lock:
                self._compact()
            unlinkQuietly(self._oldPath)

    def get(self, key: str) -> Completion | None:
        """
        The record of C{key}, unless there is none or it expired.
        """
        record = self._records.get(key)
        if record is None or self._now() - record.finished >= self._keep:
            return None
        return record

    def add(self, key: str, name: str, status: os.stat_result) -> None:
        """
        Remember a completion; it is durable after the next L{sync}.
        """
        with self._lock:
            record = Completion(self._now(), name, fileIdentity(status))
            self._records.pop(key, None)
            self._records[key] = record
            while len(self._records) > MAX_COMPLETED:
                del self._records[next(iter(self._records))]
            self._append(_line(key, record))

    def drop(self, key: str) -> None:
        """
        Forget a completion.  Its line need not be durable: a record that
        comes back after a crash is checked, and dropped, again.
        """
        with self._lock:
            if self._records.pop(key, None) is not None:
                self._append(_line(key, None))

    def sync(self) -> None:
        """
        Make every completion added so far durable.
        """
        with self._lock:
            if self._log >= 0:
                os.fsync(self._log)

    def descriptor(self) -> int:
        """
        The open log, for a caller that makes it durable together with
        other files (L{spc.files.store.syncTogether}); -1 if none is open.
        """
        return self._log

    def close(self) -> None:
        with self._lock:
            if self._log >= 0:
                os.close(self._log)
                self._log = -1

    def _append(self, line: bytes) -> None:
        """
        Append C{line}, or rewrite the log with the live records if it
        grew too long for them or would grow too large.
        """
        if (
            self._lines >= 2 * len(self._records) + 64
            or self._size + len(line) > MAX_COMPLETED_BYTES
        ):
            self._compact()
            return
        if self._log < 0:
            self._log = os.open(
                self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | _O_CLOEXEC,
                0o600,
            )
        os.write(self._log, line)
        self._lines += 1
        self._size += len(line)

    def _compact(self) -> None:
        """
        Rewrite the log with the newest records that are not expired and
        fit half of C{MAX_COMPLETED_BYTES}, leaving room to append (the
        newest one is kept if it fits at all).
        """
        now = self._now()
        kept: list[tuple[str, bytes]] = []
        size = 0
        for key, record in reversed(self._records.items()):
            if now - record.finished >= self._keep or len(kept) >= MAX_COMPLETED:
                break
            line = _line(key, record)
            if size + len(line) > (MAX_COMPLETED_BYTES // 2 if kept else MAX_COMPLETED_BYTES):
                break
            size += len(line)
            kept.append((key, line))
        kept.reverse()
        self._records = {key: self._records[key] for key, _ in kept}
        if self._log >= 0:
            os.close(self._log)
            self._log = -1
        replaceFile(self._path, b"".join(line for _, line in kept), 0o600)
        self._lines, self._size = len(kept), size

    def _load(self) -> dict[str, Completion]:
        """
        The records of an older version's C{completed.json}, then those of
        the log, in the order they were written.
        """
        records: dict[str, Completion] = {}
        try:
            _, data = readRegularFile(self._oldPath, MAX_COMPLETED_BYTES)
            loaded = json.loads(data)
        except (OSError, ValueError):
            loaded = {}
        if isinstance(loaded, dict):
            for key, value in loaded.items():
                record = Completion.decode(value)
                if record is not None:
                    records[str(key)] = record
        records = dict(sorted(records.items(), key=lambda item: item[1].finished))
        try:
            _, data = readRegularFile(self._path, MAX_COMPLETED_BYTES)
        except OSError:
            return records
        except ValueError:
            self._size = MAX_COMPLETED_BYTES  # rewritten at the first change
            return records
        for raw in data.splitlines():
            self._lines += 1
            try:
                entry = json.loads(raw)
                key = entry.pop("key")
            except (ValueError, AttributeError, KeyError, TypeError):
                continue
            if not isinstance(key, str):
                continue
            records.pop(key, None)
            record = Completion.decode(entry)
            if record is not None:
                records[key] = record
        self._size = len(data)
        while len(records) > MAX_COMPLETED:
            del records[next(iter(records))]
        return records
