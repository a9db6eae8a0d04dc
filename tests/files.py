"""
Changing files behind spc's back, as a user or another program would, and
places short enough for a UNIX socket.
"""

from __future__ import annotations

import os
import shutil
import tempfile

__all__ = ["rewriteKeepingTimes", "shortTemporaryDirectory", "waitForChangeTimeAfter"]


def waitForChangeTimeAfter(changed: int, directory: str) -> None:
    """
    Return once a change made now gets a change time later than
    C{changed}: file systems stamp changes with a coarse clock, so a change
    made within the same tick would look like no change at all.
    """
    scratch = os.path.join(directory, ".clock-probe")
    with open(scratch, "wb"):
        pass
    try:
        for _ in range(10**6):
            os.utime(scratch)
            if os.stat(scratch).st_ctime_ns > changed:
                return
        raise AssertionError("the file system's change time does not advance")
    finally:
        os.unlink(scratch)


def rewriteKeepingTimes(path: str, data: bytes) -> os.stat_result:
    """
    Overwrite C{path} in place with C{data} of the same size, then set its
    access and modification times back (C{touch -r}): device, inode, size
    and modification time are as before, only the change time is not.

    @return: the file's new status.
    """
    before = os.stat(path)
    assert len(data) == before.st_size, "the size must stay the same"
    waitForChangeTimeAfter(before.st_ctime_ns, os.path.dirname(path))
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_dev, after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns
    )
    return after


def shortTemporaryDirectory(testCase) -> str:
    """
    A directory whose paths fit a UNIX socket's 107 bytes, wherever trial
    keeps its own temporary files (their paths grow with the checkout's
    path and the test's full name).
    """
    path = tempfile.mkdtemp(prefix="spc-test-")
    testCase.addCleanup(shutil.rmtree, path, True)
    return path
