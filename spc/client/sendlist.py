# -*- test-case-name: tests.unit.test_sendlist -*-
"""
What C{spc send} sends for the paths a user gave, decided before anything
is sent.

A named file is sent under its own name; a named folder as every file under
it, named by its path from the folder's parent, and every folder under it
with nothing in it to send is made on the other end, so empty folders
arrive too.  A named path that cannot be sent (missing, unreadable, not a
file or a folder, a name that is not UTF-8) stops the command before it
connects.  An entry inside a folder that cannot be sent (a special file, a
symbolic link that leads outside the folder or to a folder, an unreadable
file or folder, a name that is not UTF-8 or too long) is listed with why,
so that the command can say so and fail unless told to skip such entries;
nothing is left out silently.

Names travel as UTF-8 (C{FIL:}), so a name that is not UTF-8 is refused
rather than changed: no mapping of it could be told apart from a real
name on the other end.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from typing import NamedTuple, Sequence

from spc.errors import ConfigurationError
from spc.protocol import filerecords

__all__ = ["SendList", "checkName", "collectFiles", "shown"]

_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class SendList(NamedTuple):
    """
    @ivar files: C{(path, name)} of each file to send.
    @ivar folders: the names of folders to make, those with nothing in them
        to send.
    @ivar skipped: C{(shown name, why)} of each entry of a folder that is
        not sent.
    """

    files: list[tuple[str, str]]
    folders: list[str]
    skipped: list[tuple[str, str]]


def shown(text: str) -> str:
    """
    A local name as a terminal may show it: bytes that are not UTF-8 (which
    Python keeps as lone surrogates) and control characters become
    backslash escapes, so the user sees which entry is meant, and no name
    can move the cursor or change the terminal.
    """
    decoded = os.fsencode(text).decode("utf-8", "backslashreplace")
    return "".join(
        character.encode("unicode_escape").decode("ascii")
        if unicodedata.category(character)[0] == "C"
        else character
        for character in decoded
    )


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _nameProblem(name: str) -> str | None:
    """
    Why C{name} cannot go in C{FIL:}, or C{None}.
    """
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not valid UTF-8; rename it to send it"
    if len(encoded) > filerecords.MAX_FILE_NAME:
        return f"its name is longer than {filerecords.MAX_FILE_NAME} bytes"
    return None


def checkName(name: str) -> None:
    """
    Check a name given for a file on the command line (C{--name}) as a
    file's own name is checked.

    @raise ConfigurationError: when it cannot go in C{FIL:}, or is empty.
    """
    why = "it is empty" if not name else _nameProblem(name)
    if why is not None:
        raise ConfigurationError(f"cannot send a file as {shown(name)!r}: {why}")


def _fileProblem(path: str) -> str | None:
    """
    Why the file at C{path} (followed if a link) cannot be sent, or
    C{None}: only a regular file that opens for reading can.  Nothing else
    is opened, so a device or a pipe is never touched.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "it leads nowhere"
    except OSError as error:
        return f"it cannot be read ({error.strerror})"
    if stat.S_ISDIR(mode):
        return "it is a folder"
    if not stat.S_ISREG(mode):
        return f"it is {_kind(mode)}"
    try:
        os.close(os.open(path, os.O_RDONLY | _O_NONBLOCK | _O_CLOEXEC))
    except OSError as error:
        return f"it cannot be read ({error.strerror})"
    return None


def _linkProblem(path: str, root: str, top: str) -> str | None:
    """
    Why the symbolic link at C{path} is not sent, or C{None}: a link is
    sent, with its target's content, only when it leads to a readable file
    inside the folder being sent, so that nothing outside what was named
    goes out, and folders are never entered twice.
    """
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) != root:
        return f"it is a symbolic link that leads outside {shown(top)}"
    if os.path.isdir(real):
        return "it is a symbolic link to a folder; links are not followed into folders"
    why = _fileProblem(path)
    return None if why is None else f"it is a symbolic link, and {why}"


def _walk(folder: str, name: str, root: str, top: str, found: SendList) -> None:
    """
    Add what the readable folder C{folder}, sent as C{name}, holds.
    """
    with os.scandir(folder) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    sent = False
    for entry in entries:
        child = f"{name}/{entry.name}" if name else entry.name
        why = _nameProblem(child)
        if why is None and entry.is_dir(follow_symlinks=False):
            try:
                _walk(entry.path, child, root, top, found)
            except OSError as error:
                why = f"it is a folder that cannot be read ({error.strerror})"
        elif why is None:
            if entry.is_symlink():
                why = _linkProblem(entry.path, root, top)
            else:
                why = _fileProblem(entry.path)
            if why is None:
                found.files.append((entry.path, child))
        if why is None:
            sent = True
        else:
            found.skipped.append((shown(child), why))
    if not sent and name:
        found.folders.append(name)


def collectFiles(paths: Sequence[str]) -> SendList:
    """
    What to send for the paths a user named.

    @raise ConfigurationError: for a named path that cannot be sent.
    """
    found = SendList([], [], [])
    for path in paths:
        name = os.path.basename(os.path.abspath(path).rstrip(os.sep))
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            raise ConfigurationError(f"{shown(path)} does not exist") from None
        except OSError as error:
            raise ConfigurationError(f"cannot send {shown(path)}: {error.strerror}") from None
        why = _nameProblem(name)
        if why is None and stat.S_ISDIR(mode):
            try:
                _walk(path, name, os.path.realpath(path), path, found)
            except OSError as error:
                why = f"it is a folder that cannot be read ({error.strerror})"
        elif why is None and not stat.S_ISREG(mode):
            why = f"it is not a file or a folder but {_kind(mode)}"
        elif why is None:
            why = _fileProblem(path)
            if why is None:
                found.files.append((path, name))
        if why is not None:
            raise ConfigurationError(f"cannot send {shown(path)}: {why}")
    return found
