# -*- test-case-name: tests.unit.test_inboxdir,tests.integration.test_daemon_startup -*-
"""
The inbox folder at the daemon's start: made, with any missing folder
above it and the partial folder inside it, as the last step of building
the daemon, and taken away again if the daemon then fails to start (a port
in use, a control socket held by another daemon), so that a start that
fails leaves the file system as it found it.

A path that cannot be an inbox stops the daemon with one line saying why:
a file in its way, a place where no folder can be made (C{/proc}, C{/sys},
a read-only file system), or one the daemon's user may not write.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Sequence

from spc.errors import ConfigurationError
from spc.files.names import PARTIAL_DIRECTORY

__all__ = ["MadeFolders", "makeInbox"]


class MadeFolders:
    """
    The folders one start made, outermost first.

    @ivar paths: their absolute paths.
    """

    def __init__(self, paths: Sequence[str] = ()) -> None:
        self.paths = list(paths)

    def undo(self) -> None:
        """
        Remove them again, innermost first.  Only empty folders go (nothing
        was written in them yet); one that is gone or holds something
        stops the undoing quietly, since nothing above it can go either.
        """
        while self.paths:
            try:
                os.rmdir(self.paths.pop())
            except OSError:
                self.paths.clear()

    def keep(self) -> None:
        """
        The daemon started: they are its inbox now.
        """
        self.paths.clear()


def _problem(option: str, path: str, error: OSError) -> ConfigurationError:
    reason = error.strerror or str(error)
    return ConfigurationError(f"{option} {path}: {reason}")


def makeInbox(
    inbox: str, mode: int = 0o700, owner: tuple[int, int] | None = None,
    option: str = "--inbox",
) -> MadeFolders:
    """
    Make the inbox and its partial folder, and whichever folders above the
    inbox are missing, with C{mode} (the partial folder always private,
    0700); check that the daemon may write in both.

    @param owner: C{(uid, gid)} to give the folders made, when the daemon
        will run as another user than the one making them (C{twistd --uid}
        started as root).
    @param option: how the command line calls the inbox, for the message.
    @return: the folders made, for L{MadeFolders.undo} if the start fails.
    @raise ConfigurationError: naming the path and what is wrong with it;
        what was made is removed again first.
    """
    absolute = os.path.abspath(inbox)
    made = MadeFolders()
    try:
        current = os.sep
        for component in absolute.split(os.sep)[1:]:
            current = os.path.join(current, component)
            _ensureFolder(current, mode, owner, made, option)
        _ensureFolder(os.path.join(absolute, PARTIAL_DIRECTORY), 0o700, owner, made, option)
        for folder in (absolute, os.path.join(absolute, PARTIAL_DIRECTORY)):
            if not os.access(folder, os.W_OK | os.X_OK):
                reason = errno.EROFS if _readOnly(folder) else errno.EACCES
                raise ConfigurationError(
                    f"{option}: cannot write in {folder}: {os.strerror(reason)}"
                )
    except BaseException:
        made.undo()
        raise
    return made


def _readOnly(folder: str) -> bool:
    """
    Whether the file system of C{folder} takes no writes at all, rather
    than the folder's permissions refusing them.
    """
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _ensureFolder(
    path: str, mode: int, owner: tuple[int, int] | None, made: MadeFolders, option: str
) -> None:
    """
    Make C{path} unless it is a folder already (a symbolic link to one
    counts: the inbox and the folders above it are the operator's choice).

    @raise ConfigurationError: if it is something else, or cannot be made.
    """
    try:
        status = os.stat(path)
    except FileNotFoundError:
        status = None
    except OSError as error:
        raise _problem(option, path, error) from None
    if status is not None:
        if not stat.S_ISDIR(status.st_mode):
            raise ConfigurationError(f"{option} {path} is not a folder")
        return
    try:
        os.mkdir(path, mode)
    except OSError as error:
        raise ConfigurationError(
            f"{option}: cannot make the folder {path}: {error.strerror or error}"
        ) from None
    made.paths.append(path)
    try:
        # mkdir's mode is narrowed by the process's umask; the inbox's is
        # the daemon's to set.
        os.chmod(path, mode)
        if owner is not None:
            os.chown(path, *owner)
    except OSError as error:
        raise _problem(option, path, error) from None
