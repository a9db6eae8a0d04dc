# -*- test-case-name: tests.unit.test_store,tests.memory.test_receiving -*-
"""
Making many files durable at once: the group commit of a receiver that
stores many small files (docs/protocol.rst, section 7.7).

An fsync on this kind of file system waits for a journal commit of its
own, a few milliseconds each: a thousand small files fsynced one by one
take seconds.  On Linux, one C{syncfs} of the file system makes every file
and folder on it durable in the time of about one fsync, so a batch of
files costs two of them (their data, then their names) whatever its size.
Elsewhere, or if C{syncfs} fails, each descriptor is fsynced.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from typing import Callable, Sequence

__all__ = ["fsyncFolder", "syncTogether"]


def _loadSyncfs() -> Callable[[int], int] | None:
    """
    The C library's C{syncfs}, where there is one.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function


_syncfs = _loadSyncfs()


def fsyncFolder(descriptor: int) -> None:
    """
    fsync a folder; a file system that cannot fsync folders at all is no
    reason to refuse a file, a failing disk is.
    """
    try:
        os.fsync(descriptor)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise


def syncTogether(files: Sequence[int], folders: Sequence[int] = ()) -> None:
    """
    Make the open C{files} and C{folders} durable: with one C{syncfs} per
    file system when there are several, otherwise one fsync each.

    @raise OSError: if the disk failed.
    """
    if _syncfs is not None and len(files) + len(folders) > 1:
        devices: dict[int, int] = {}
        for descriptor in (*files, *folders):
            devices.setdefault(os.fstat(descriptor).st_dev, descriptor)
        if all(_syncfs(descriptor) == 0 for descriptor in devices.values()):
            return
    for descriptor in files:
        os.fsync(descriptor)
    for descriptor in folders:
        fsyncFolder(descriptor)
