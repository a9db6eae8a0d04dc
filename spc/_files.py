# -*- test-case-name: tests.test_identity,tests.test_trust -*-
"""
Reading and writing the small files that hold keys and trust, safely.

Key files (L{spc.identity}) and trust files (L{spc.trust}) have the same
two dangers, so they share this one implementation of the answers.

Reading: a name may point at a FIFO, a device or a huge file. Only a regular
file is read, through one descriptor that is both stat-ed and read, and never
more than a stated limit.

Writing: a crash or a concurrent reader must never see a partial file, and a
private key must never be readable by others, not even for a moment. New
content goes to a fresh temporary file in the same directory, created with
its final permissions. That file is fsynced and then renamed into place.
"""

from __future__ import annotations

import os
import secrets
import stat
from typing import Sequence

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO must not hang the open
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def readRegularFile(path: str, limit: int) -> tuple[os.stat_result, bytes]:
    """
    Read a regular file of at most C{limit} bytes, stat-ing the descriptor
    that was read, not the name.

    @return: The file's status and its content.
    @raise ValueError: If the file is not a regular file or is too large.
    @raise OSError: If it cannot be opened or read.
    """
    fd = os.open(path, os.O_RDONLY | _O_NONBLOCK | _O_CLOEXEC | _O_BINARY)
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise ValueError("not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise ValueError(f"larger than {limit // 1024} KiB")
        return status, b"".join(chunks)
    finally:
        os.close(fd)


def unlinkQuietly(path: str) -> None:
    """
    Remove C{path} if it exists: clean-up must not hide the original error.
    """
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def stage(finalPath: str, data: bytes, mode: int) -> str:
    """
    Write C{data} to a new temporary file beside C{finalPath} and fsync it.

    The file is created with C{O_EXCL} and C{mode} (less the umask), so it
    never has wider permissions than that, and nobody else can have
    prepared it.

    @return: The temporary file's path, for the caller to rename.
    """
    directory, name = os.path.split(finalPath)
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY
    fd = os.open(temporary, flags, mode)
    try:
        with os.fdopen(fd, "wb", closefd=True) as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        unlinkQuietly(temporary)
        raise
    return temporary


def fsyncDirectory(directory: str) -> None:
    """
    Make renames in C{directory} durable, where the platform allows it.
    """
    if os.name != "posix":
        return
    fd = os.open(directory or ".", os.O_RDONLY | _O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse to fsync a directory
    finally:
        os.close(fd)


def install(temporary: str, finalPath: str, replace: bool) -> None:
    """
    Move a staged file to its final name. If C{replace} is false, an
    existing file is never clobbered, even one created since it was checked.

    @raise FileExistsError: If C{replace} is false and C{finalPath} exists.
    """
    if replace:
        os.replace(temporary, finalPath)
        return
    try:
        os.link(temporary, finalPath)  # atomic "create unless it exists"
    except FileExistsError:
        raise
    except OSError:
        # The file system has no hard links: check, then rename.
        if os.path.lexists(finalPath):
            raise FileExistsError(finalPath) from None
        os.replace(temporary, finalPath)


def installFiles(files: Sequence[tuple[str, bytes, int]], replace: bool) -> None:
    """
    Write a set of files that belong together (a private key and its
    public half or certificate): every one is staged completely before any
    is renamed into place, so a failure leaves the old set or the new one,
    never half of each.

    @param files: C{(path, data, mode)} of each file, all in one directory.
    @param replace: Replace existing files. Without it nothing is
        replaced, and the files of the set already installed are removed
        again when a later one exists.
    @raise FileExistsError: With the existing path as its argument.
    """
    staged: list[tuple[str, str]] = []
    installed: list[str] = []
    try:
        for path, data, mode in files:
            staged.append((stage(path, data, mode), path))
        for temporary, path in staged:
            try:
                install(temporary, path, replace=replace)
            except FileExistsError:
                raise FileExistsError(path) from None
            installed.append(path)
    except BaseException:
        if not replace:
            for path in installed:  # ours alone: they did not exist before
                unlinkQuietly(path)
        raise
    finally:
        for temporary, _ in staged:
            unlinkQuietly(temporary)
    fsyncDirectory(os.path.dirname(files[0][0]))


def replaceFile(path: str, data: bytes, mode: int) -> None:
    """
    Atomically and durably give C{path} the content C{data}: readers see the
    old file or the new one, never a mix.

    @param mode: The new file's permissions (less the umask).
    """
    temporary = stage(path, data, mode)
    try:
        os.replace(temporary, path)
    finally:
        unlinkQuietly(temporary)
    fsyncDirectory(os.path.dirname(path))
