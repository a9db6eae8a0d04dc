# -*- test-case-name: tests.unit.test_store -*-
"""
Finished files in the inbox's folders, reached only through directory
descriptors.

Every folder of a final path is opened from the one above it with
C{O_NOFOLLOW | O_DIRECTORY}, and the file is linked and looked up relative
to the last one: a symbolic link planted in the inbox, or a C{..} that got
past the name rules, cannot lead out of it.  What this module creates is
fsynced (the file's folder, and the parent of every folder it made) before
it returns, or handed to the caller to fsync together with others, so a
stored file survives a crash of the machine.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import NamedTuple, Sequence

from spc.errors import NameUnavailable
from spc.files.durable import fsyncFolder
from spc.files.names import numbered
from spc.protocol.filerecords import NO_MTIME

__all__ = [
    "FILE_MODE",
    "FOLDER_MODE",
    "MAX_UNIQUE_TRIES",
    "StoredFile",
    "checkFolders",
    "finalAttributes",
    "findFile",
    "makeFolders",
    "placeFile",
]

MAX_UNIQUE_TRIES = 10_000
FILE_MODE = 0o600
FOLDER_MODE = 0o700
"""
The permissions of stored files and of the folders made for them, unless
the store is told others (the daemon's C{--inbox-umask}).
"""
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# What opening a symbolic link or a non-folder with those flags raises.
_NOT_A_FOLDER = frozenset({errno.ENOTDIR, errno.ELOOP, errno.EMLINK})


class StoredFile(NamedTuple):
    """
    A file as it was placed.

    @ivar path: its absolute path.
    @ivar name: its path relative to the inbox, C{/}-separated.
    @ivar status: its C{lstat} right after it was placed.
    """

    path: str
    name: str
    status: os.stat_result


def _checkComponent(name: str) -> None:
    """
    The name rules never give a component that leaves its folder; should
    they ever, nothing here makes, opens or links it.
    """
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise NameUnavailable(f"{name!r} cannot be a name in the inbox")


class _Folders:
    """
    The open folders from the inbox down a path, closed on exit.

    @ivar descriptors: the inbox's, then one per folder reached.
    @ivar made: for each folder reached, whether this walk created it.
    @ivar complete: whether every folder of the path was reached.
    @ivar mode: the permissions of a folder this walk makes, whatever the
        process's umask.
    """

    def __init__(
        self, inbox: str, folders: Sequence[str], create: bool, mode: int = FOLDER_MODE
    ) -> None:
        self._inbox = inbox
        self._folders = folders
        self._create = create
        self.mode = mode
        self.descriptors: list[int] = []
        self.made: list[bool] = []
        self.complete = False

    def __enter__(self) -> _Folders:
        try:
            # The inbox itself is the operator's choice and may be a link.
            self.descriptors.append(os.open(self._inbox, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC))
            for depth, folder in enumerate(self._folders):
                _checkComponent(folder)
                made = tried = False
                while True:
                    # Open first: a folder that exists (the usual case) costs
                    # no failed mkdir, a change of the directory's metadata.
                    try:
                        self.descriptors.append(os.open(
                            folder, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC,
                            dir_fd=self.descriptors[-1],
                        ))
                        break
                    except FileNotFoundError:
                        if not self._create:
                            return self
                        if tried:
                            raise
                    except OSError as error:
                        if error.errno not in _NOT_A_FOLDER:
                            raise
                        shown = "/".join(self._folders[: depth + 1])
                        raise NameUnavailable(f"{shown!r} in the inbox is not a folder") from None
                    tried = True
                    try:
                        os.mkdir(folder, self.mode & 0o700, dir_fd=self.descriptors[-1])
                        made = True
                    except FileExistsError:
                        pass
                if made:
                    # Made private, opened, then given its mode: a folder
                    # the group may read is never open before it is ours.
                    os.fchmod(self.descriptors[-1], self.mode)
                self.made.append(made)
            self.complete = True
            return self
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def last(self) -> int:
        return self.descriptors[-1]

    def syncMade(self, later: list[int] | None = None) -> None:
        """
        fsync the last folder, then, from the deepest up, the parent of
        every folder this walk created: each new entry is then on disk.

        @param later: if given, the folders are not synced now: copies of
            their descriptors are added to it, for the caller to sync
            together with others, and close.
        """
        folders = [self.last] + [
            self.descriptors[depth] for depth in reversed(range(len(self.made)))
            if self.made[depth]
        ]
        for folder in folders:
            if later is None:
                fsyncFolder(folder)
            else:
                later.append(os.dup(folder))

    def close(self) -> None:
        while self.descriptors:
            os.close(self.descriptors.pop())


def finalAttributes(descriptor: int, mode: int, mtime: int = NO_MTIME) -> None:
    """
    Give a verified file what it keeps under its final name: the store's
    mode and the sender's modification time, as C{scp -p} and C{rsync -t}
    do (the access time stays the time of arrival).  Set before the file
    is placed, since the completed-transfer check records the file's
    modification and change times once it is placed
    (L{spc.files.completed.fileIdentity}), and a change after that would
    make the file look edited.  A time the file system cannot hold leaves
    the file with the time it arrived.
    """
    os.fchmod(descriptor, mode)
    if mtime == NO_MTIME:
        return
    try:
        os.utime(descriptor, ns=(os.fstat(descriptor).st_atime_ns, mtime))
    except (OSError, OverflowError, ValueError):
        pass


def checkFolders(inbox: str, folders: Sequence[str]) -> None:
    """
    Refuse, before any data is sent, a path that could never be stored.

    @raise NameUnavailable: if an entry along C{folders} exists and is not
        a folder (a file, or a symbolic link, wherever it points).
    """
    with _Folders(inbox, folders, create=False):
        pass


def placeFile(
    inbox: str,
    source: str,
    parts: Sequence[str],
    folderMode: int = FOLDER_MODE,
    syncLater: list[int] | None = None,
) -> StoredFile:
    """
    Link C{source} into the inbox under C{parts}, or under the first free
    C{stem (n).ext}, creating the folders (with C{folderMode}); then
    unlink C{source}.  An existing entry is never replaced.

    @param syncLater: if given, the folders to fsync are added to it (as
        descriptors the caller closes) instead of being synced now
        (L{_Folders.syncMade}).

    @raise NameUnavailable: if a folder of the path is not one, or every
        numbered name is taken.
    """
    folders, wanted = parts[:-1], parts[-1]
    with _Folders(inbox, folders, create=True, mode=folderMode) as opened:
        for number in range(MAX_UNIQUE_TRIES):
            leaf = wanted if number == 0 else numbered(wanted, number)
            _checkComponent(leaf)
            try:
                os.link(source, leaf, dst_dir_fd=opened.last, follow_symlinks=False)
            except FileExistsError:
                continue
            os.unlink(source)
            status = os.stat(leaf, dir_fd=opened.last, follow_symlinks=False)
            opened.syncMade(syncLater)
            relative = "/".join([*folders, leaf])
            return StoredFile(os.path.join(inbox, *folders, leaf), relative, status)
    raise NameUnavailable(f"too many files named {wanted!r}")


def makeFolders(inbox: str, folders: Sequence[str], mode: int = FOLDER_MODE) -> str:
    """
    Make the folders C{folders} inside the inbox, each inside the one
    before, with C{mode}, keeping those that exist, and sync each new entry.

    @return: the path of the last one.
    @raise NameUnavailable: if an entry along the path is not a folder.
    """
    with _Folders(inbox, folders, create=True, mode=mode) as opened:
        opened.syncMade()
    return os.path.join(inbox, *folders)


def findFile(inbox: str, name: str) -> os.stat_result | None:
    """
    The C{lstat} of the regular file at C{name} (relative, C{/}-separated)
    inside the inbox, reached without following any symbolic link; L{None}
    if there is no such file.
    """
    *folders, leaf = name.split("/")
    try:
        _checkComponent(leaf)
        with _Folders(inbox, folders, create=False) as opened:
            if not opened.complete:
                return None
            status = os.stat(leaf, dir_fd=opened.last, follow_symlinks=False)
    except (OSError, NameUnavailable):
        return None
    return status if stat.S_ISREG(status.st_mode) else None
