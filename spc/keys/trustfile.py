# -*- test-case-name: tests.unit.test_trust -*-
"""
Reading the trust files, C{known_hosts} and C{authorized_keys}, for
L{spc.keys.trust}.

What both files share is here: a trust file is only read if nobody but its
user and root could have written it (L{spc.keys.keyfiles.checkPrivatePath}), never
beyond a size limit, and line by line, so that one bad line can be named by
its number, and, where the caller wants it, skipped while the others count.
"""

from __future__ import annotations

from typing import Iterator

from spc.errors import TrustFileError
from spc.keys.keyfiles import checkPrivatePath, readRegularFile

MAX_TRUST_FILE_SIZE = 1024 * 1024
"""Largest trust file read. That is about 15,000 entries."""


def readTrustFile(path: str, uid: int | None = None) -> str:
    """
    Read a trust file that nobody but its user and root could have written.

    @param uid: The user besides root who may own it and the directories
        above it (L{None}: the effective user).
    @return: The text of a trust file, or C{""} if it does not exist. Bytes
        that are not UTF-8 are kept as surrogate escapes, so that the parsers
        can refuse the lines that hold them one by one (L{checkUTF8}).
    @raise InsecurePath: If another user could change or replace it
        (L{checkPrivatePath}).
    @raise TrustFileError: If it is too large, not a regular file or
        cannot be read.
    """
    try:
        checkPrivatePath(path, uid)
        _, data = readRegularFile(path, MAX_TRUST_FILE_SIZE)
    except FileNotFoundError:
        return ""
    except ValueError as e:
        raise TrustFileError(f"{path}: {e}") from None
    except OSError as e:
        raise TrustFileError(f"{path}: {e.strerror or e}") from None
    return data.decode("utf-8", "surrogateescape")


def entryLines(text: str) -> Iterator[tuple[int, str]]:
    """
    @return: (line number, stripped line) for each line that is neither
        blank nor a C{#} comment, and for every line that is not UTF-8.
    """
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if (line and not line.startswith("#")) or not isUTF8(line):
            yield number, line


def isUTF8(line: str) -> bool:
    """
    @return: Whether C{line}, from L{readTrustFile}, was valid UTF-8.
    """
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def checkUTF8(line: str) -> None:
    """
    @raise ValueError: If C{line} was not valid UTF-8.
    """
    if not isUTF8(line):
        raise ValueError("not UTF-8 text")


def lineError(path: str, number: int, reason: str) -> TrustFileError:
    """
    @return: The error for a bad line, naming the file and line so that the
        user can fix it.
    """
    return TrustFileError(f"{path}, line {number}: {reason}")
