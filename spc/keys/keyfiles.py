# -*- test-case-name: tests.unit.test_keyfiles,tests.unit.test_identity,tests.unit.test_trust -*-
"""
Reading and writing the small files that hold keys and trust, safely.

Key files (L{spc.keys.identity}) and trust files (L{spc.keys.trust}) have the same
two dangers, so they share this one implementation of the answers.

Reading: a name may point at a FIFO, a device or a huge file. Only a regular
file is read, through one descriptor that is both stat-ed and read, and never
more than a stated limit.

Writing: a crash or a concurrent reader must never see a partial file, and a
private key must never be readable by others, not even for a moment. New
content goes to a fresh temporary file in the same directory, created with
its final permissions. That file is fsynced and then renamed into place.

Trusting: a file is only as safe as the directories above it, since whoever
may write to one of them can put another file in its place. Before a key or
trust file is used, L{checkPrivatePath} refuses it, as OpenSSH's
C{StrictModes} does, unless only its user and root can change it or any
directory on the way to it.
"""

from __future__ import annotations

import errno
import os
import secrets
import shlex
import stat
from typing import Sequence

from spc.errors import InsecurePath

try:
    import pwd
except ImportError:  # Windows, where permissions are not checked
    pwd = None  # type: ignore[assignment]

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


def stage(finalPath: str, data: bytes, mode: int, durable: bool = True) -> str:
    """
    Write C{data} to a new temporary file beside C{finalPath} and fsync it
    (unless not C{durable}).

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
            if durable:
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


def replaceFile(path: str, data: bytes, mode: int, durable: bool = True) -> None:
    """
    Atomically and durably give C{path} the content C{data}: readers see the
    old file or the new one, never a mix.

    @param mode: The new file's permissions (less the umask).
    @param durable: whether the new content must survive a crash of the
        machine; if not, nothing is fsynced (a crash may leave the old
        content, or an empty file).
    """
    temporary = stage(path, data, mode, durable)
    try:
        os.replace(temporary, path)
    finally:
        unlinkQuietly(temporary)
    if durable:
        fsyncDirectory(os.path.dirname(path))


MAX_SYMLINKS = 40
"""Most symbolic links followed on the way to a file, as Linux allows."""


def checkPrivatePath(path: str, uid: int | None = None) -> None:
    """
    Refuse C{path} if a user other than C{uid} and root could change it or
    put another file in its place, as OpenSSH's C{StrictModes} does.

    The path is resolved one component at a time, following symbolic links
    as the kernel would, so that every directory a name is looked up in is
    examined, on the way to a link's target too. Every directory, link and
    file met must belong to C{uid} or root, and every directory must be
    writable by nobody else, unless it has the sticky bit (as C{/tmp}
    has): there only an entry's owner may remove or rename it, and the
    entries spc goes through are owned by C{uid} or root. The file itself
    (or directory, if C{path} names one) must be writable by nobody else.
    A path that does not exist passes if the directories that would hold it
    do: nobody else can create it there, or, in a sticky directory, what
    another user creates there later is theirs and will be refused.

    Once this passes, nobody but C{uid} and root can change what C{path}
    names, so opening it afterwards is not a race.

    @param uid: The user who may own the files (the effective user if
        L{None}). Root may always own them.
    @raise InsecurePath: Naming the file or directory at fault and the
        C{chmod} or C{chown} that fixes it.
    @raise OSError: If a component cannot be examined (permission denied,
        a file where a directory should be, too many symbolic links).
    """
    if os.name != "posix":
        return
    if uid is None:
        uid = os.geteuid()
    absolute = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)
    pending = _components(absolute)
    current, status = "/", os.lstat("/")
    _checkOwner(path, current, status, uid)
    links = 0
    while pending:
        name = pending.pop()
        if name in ("", "."):
            continue
        if name == "..":
            current = os.path.dirname(current)
            status = os.lstat(current)
            continue
        _checkDirectory(path, current, status)
        candidate = os.path.join(current, name)
        try:
            entry = os.lstat(candidate)
        except FileNotFoundError:
            return
        _checkOwner(path, candidate, entry, uid)
        if stat.S_ISLNK(entry.st_mode):
            links += 1
            if links > MAX_SYMLINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
            target = os.readlink(candidate)
            pending.extend(_components(target))
            if target.startswith("/"):
                current, status = "/", os.lstat("/")
            continue
        current, status = candidate, entry
    if status.st_mode & 0o022:
        _refuse(path, current, _writers(status), f"chmod go-w {shlex.quote(current)}")


def _components(path: str) -> list[str]:
    """
    @return: The names in C{path}, last first, to be popped in order.
    """
    return path.split("/")[::-1]


def _checkOwner(path: str, component: str, status: os.stat_result, uid: int) -> None:
    """
    Refuse a component of C{path} that belongs to a user other than C{uid}
    and root: its owner could change its permissions.
    """
    if status.st_uid not in (0, uid):
        trusted = "root" if uid == 0 else f"{_userName(uid)} or root"
        _refuse(
            path, component,
            f"belongs to user {_userName(status.st_uid)}, not to {trusted}",
            f"chown {shlex.quote(_userName(uid))} {shlex.quote(component)}",
        )


def _checkDirectory(path: str, directory: str, status: os.stat_result) -> None:
    """
    Refuse a directory on the way to C{path} that others may write to,
    unless it is sticky.
    """
    if status.st_mode & 0o022 and not status.st_mode & stat.S_ISVTX:
        _refuse(path, directory, _writers(status), f"chmod go-w {shlex.quote(directory)}")


def _writers(status: os.stat_result) -> str:
    """
    @return: Who besides the owner may write, for the error message.
    """
    who = {0o020: "its group", 0o002: "others", 0o022: "its group and others"}
    mode = stat.S_IMODE(status.st_mode)
    return f"is writable by {who[mode & 0o022]} (mode {mode:04o})"


def _refuse(path: str, component: str, problem: str, fix: str) -> None:
    """
    @raise InsecurePath: Saying which component of C{path} is at fault,
        why, and the command that fixes it.
    """
    where = component if os.path.abspath(path) == component else f"{path}: {component}"
    raise InsecurePath(f"{where} {problem}; fix it with: {fix}")


def _userName(uid: int) -> str:
    """
    @return: The name of user C{uid}, or the number if it has none; either
        suits C{chown}.
    """
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
