# -*- test-case-name: tests.unit.test_sendinput,tests.integration.test_endtoend_input -*-
"""
What C{spc send} reads besides the files it is given: a message from a
file (C{--message-file FILE}) or from stdin (C{--message -}, or stdin
itself when it is not a terminal and nothing else was given), and a file
from stdin (the file argument C{-}, stored under C{--name}).

A message is held in memory whole, as the daemon holds it, so one is read
up to L{MESSAGE_LIMIT} and refused beyond, before anything is sent.  A
file from stdin has no size until it ends and cannot be read twice, yet
its offer (C{FIL:}) states its size and its digest comes after its last
byte: it is spooled whole to a temporary file (mode 0600, in C{$TMPDIR}),
bounded only by the room there, and removed when C{spc send} ends.  A
spooled copy is a new file each run, so what came from stdin never
resumes in a later run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import BinaryIO

from twisted.python import usage

from spc.cli.units import formatSize
from spc.protocol.frames import Params

__all__ = ["MESSAGE_LIMIT", "readMessage", "readMessageFile", "spool"]

MESSAGE_LIMIT = Params().maxMessageSize
"""
The most one message read from a file or stdin may hold: the daemon's
limit (it announces its own in the handshake, and a message over that
fails alone).
"""

SPOOL_PREFIX = "spc-stdin-"
_COPY_BLOCK = 1 << 20


def readMessage(stream: BinaryIO, where: str) -> bytes:
    """
    Read one message from C{stream} to its end.

    @param where: what C{stream} is, for the error.
    @raise usage.UsageError: when it holds more than L{MESSAGE_LIMIT}.
    """
    data = stream.read(MESSAGE_LIMIT + 1)
    if len(data) > MESSAGE_LIMIT:
        raise usage.UsageError(
            f"{where} holds more than {formatSize(MESSAGE_LIMIT)}, the most a message "
            "may hold; send it as a file (spc send - --name NAME reads one from stdin)"
        )
    return data


def readMessageFile(path: str) -> bytes:
    """
    The message in the file at C{path}, read as it is, in full.

    @raise usage.UsageError: when it cannot be read or is too long.
    """
    try:
        with open(path, "rb") as f:
            return readMessage(f, f"--message-file {path}")
    except OSError as error:
        raise usage.UsageError(
            f"--message-file: cannot read {path}: {error.strerror or error}"
        ) from None


def spool(stream: BinaryIO, directory: str | None = None) -> str:
    """
    Copy C{stream} to its end into a new file only this user may read.

    @param directory: where the file goes: C{$TMPDIR} (or C{/tmp}) unless
        given.
    @return: the file's path; the caller removes it.
    @raise OSError: when it cannot be written (no room left, say); then no
        file is left behind.
    """
    descriptor, path = tempfile.mkstemp(prefix=SPOOL_PREFIX, dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as copy:
            shutil.copyfileobj(stream, copy, _COPY_BLOCK)
    except BaseException:
        os.unlink(path)
        raise
    return path
