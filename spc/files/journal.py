# -*- test-case-name: tests.memory.test_inbox_records -*-
"""
The inbox's records: files of JSON lines (C{messages.jsonl},
C{files.jsonl}), one object per line, appended durably, and what a
received file's line holds (L{receiptRecord}).

A line is written whole and fsynced before L{Journal.append} returns (the
lines of many files stored together, with one fsync), and so is the inbox
when the line is the file's first (the file's entry must survive a crash
too): what a sender is told was stored is on disk.  Lines that could not
be written and fsynced whole are cut off again, so the next one starts on
a line of its own instead of being glued to a torn one.  The file is never
reached through a symbolic link.
"""

from __future__ import annotations

import datetime
import json
import os
import threading

from twisted.logger import Logger

from spc.keys.keyfiles import fsyncDirectory
from spc.text import withoutControls

__all__ = ["Journal", "receiptRecord"]

_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC


class Journal:
    """
    One JSON-lines file in a folder.

    @ivar directory: the folder.
    @ivar path: the file.
    @ivar mode: the permissions the file gets when an append creates it,
        whatever the process's umask; an existing file keeps its own.
    @ivar _lock: files complete in threads; one append at a time, so that
        cutting off a torn line never cuts another thread's whole one.
    """

    def __init__(self, directory: str, name: str, log: Logger, mode: int = 0o600) -> None:
        self.directory = directory
        self.path = os.path.join(directory, name)
        self.mode = mode
        self._log = log
        self._lock = threading.Lock()

    def append(self, *records: dict) -> None:
        """
        Append each of C{records} as one line, durably: all of them, with
        one fsync, or none.

        @raise OSError: when they could not be stored.
        """
        payload = "".join(
            json.dumps(record, ensure_ascii=False) + "\n" for record in records
        ).encode("utf-8")
        with self._lock:
            descriptor = self._open()
            try:
                start = os.fstat(descriptor).st_size
                try:
                    written = 0
                    while written < len(payload):
                        written += os.write(descriptor, payload[written:])
                    os.fsync(descriptor)
                except BaseException:
                    self._cutBack(descriptor, start)
                    raise
            finally:
                os.close(descriptor)
            if start == 0:
                fsyncDirectory(self.directory)

    def _open(self) -> int:
        """
        Open the file for appending, making it with L{mode} if it is not
        there.
        """
        try:
            descriptor = os.open(self.path, _FLAGS | os.O_CREAT | os.O_EXCL, self.mode)
        except FileExistsError:
            return os.open(self.path, _FLAGS)
        try:
            os.fchmod(descriptor, self.mode)
        except BaseException:
            os.close(descriptor)
            raise
        return descriptor

    def _cutBack(self, descriptor: int, size: int) -> None:
        """
        Remove what a failed append left after C{size} bytes; a failure to
        do so is logged, and the append's own error is what the caller
        sees.
        """
        try:
            os.ftruncate(descriptor, size)
            os.fsync(descriptor)
        except OSError as error:
            self._log.error(
                "Could not remove a torn line from {path}: {error}",
                path=self.path,
                error=str(error),
            )


def receiptRecord(
    sender: str,
    senderName: str | None,
    name: str,
    stored: str,
    size: int,
    digest: bytes | None,
    received: float,
) -> dict:
    """
    The line C{files.jsonl} holds for one stored file.

    @param sender: the sender's identity fingerprint (C{from}).
    @param senderName: its name in C{authorized_keys}, or L{None}
        (C{from_name}).
    @param name: the sender's name for the file (C{name}), kept without
        control characters: it is the peer's text, and the file is read on
        terminals.
    @param stored: where it is stored, relative to the inbox,
        C{/}-separated (C{stored}).
    @param size: its size in bytes (C{bytes}).
    @param digest: its SHA-256, as verified (C{sha256}, in hex).
    @param received: when it was stored, in seconds since the epoch
        (C{received}, ISO-8601 with milliseconds, UTC).
    """
    return {
        "from": sender,
        "from_name": senderName,
        "name": withoutControls(name),
        "stored": stored,
        "bytes": size,
        "sha256": None if digest is None else digest.hex(),
        "received": datetime.datetime.fromtimestamp(received, datetime.timezone.utc).isoformat(
            timespec="milliseconds"
        ),
    }
